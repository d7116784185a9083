//! The entry of `/api/v1`: one service that gives each call its request id, span and history
//! row, runs the auth pipeline on its route, and only then hands it to axum's router of the
//! API's handlers. Everything else the server answers goes through axum's router with its
//! layers.
//!
//! Written out rather than stacked as axum middleware: each `from_fn` layer clones the boxed
//! service under it and boxes its own future, and nesting the API's router rewrote every
//! request's URI twice; together they were a sixth of the CPU of an `/api/v1/me` call.

use super::error::ApiError;
use super::{request_id, request_span};
use crate::auth::policy::Policy;
use crate::auth::{AuthState, TrustedProxies, answered_before_checks};
use crate::history::{HistoryState, Run};
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::{BoxFuture, Either};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tower::{Service, ServiceExt};
use tracing::Instrument;

/// Everything the server answers.
#[derive(Clone)]
pub struct Entry {
    api: Arc<Api>,
    rest: Router,
}

impl Entry {
    pub(super) fn new(api: Api, rest: Router) -> Self {
        Self {
            api: Arc::new(api),
            rest,
        }
    }
}

pub(super) struct Api {
    pub(super) proxies: TrustedProxies,
    pub(super) auth: AuthState,
    /// The API's route templates, without the prefix, each to its whole template.
    pub(super) routes: matchit::Router<Arc<str>>,
    pub(super) history: Arc<HistoryState>,
    pub(super) handlers: Router,
}

/// The API's routes, found as the auth policy names them.
pub(super) fn route_table(policy: &Policy) -> Result<matchit::Router<Arc<str>>, String> {
    let mut routes = matchit::Router::new();
    for (template, _) in policy.routes() {
        let relative = template.strip_prefix(super::v1::PREFIX).unwrap_or(template);
        routes
            .insert(relative, Arc::from(template))
            .map_err(|error| format!("route {template}: {error}"))?;
    }
    Ok(routes)
}

fn is_api(path: &str) -> bool {
    path.strip_prefix(super::v1::PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl<B> Service<axum::http::Request<B>> for Entry
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        <Router as Service<Request>>::Future,
        BoxFuture<'static, Result<Response, Infallible>>,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let request = request.map(Body::new);
        if is_api(request.uri().path()) {
            let api = self.api.clone();
            Either::Right(Box::pin(async move { Ok(api.serve(request).await) }))
        } else {
            Either::Left(self.rest.call(request))
        }
    }
}

impl Api {
    async fn serve(self: Arc<Self>, request: Request) -> Response {
        let api = self.clone();
        request_id::identify(&self.proxies, request, |request| {
            traced(request, |request| {
                let route = api.route_of(request.uri().path());
                let run = run_of(request.method(), route.as_deref());
                let history = api.history.clone();
                crate::history::record(history, request, run, move |request| {
                    api.checked(route, request)
                })
            })
        })
        .await
    }

    /// The route template of an API path (`/api/v1/products/{id}`), if it has one.
    fn route_of(&self, path: &str) -> Option<Arc<str>> {
        let relative = path.get(super::v1::PREFIX.len()..).unwrap_or_default();
        self.routes
            .at(relative)
            .ok()
            .map(|found| found.value.clone())
    }

    /// The auth pipeline on the call's route, then its handler.
    async fn checked(self: Arc<Self>, route: Option<Arc<str>>, request: Request) -> Response {
        let Some(route) = route else {
            let refusal = ApiError::not_found("API route").into_response();
            return answered_before_checks(&self.auth, &request.into_parts().0, refusal).await;
        };
        let most = self.auth.app.limits.max_body_bytes;
        if declared_length(&request).is_some_and(|length| length > most as u64) {
            // Refused before any of it is read: waiting for a body this size only ends in the
            // request's timeout, and nothing could have been done with it.
            let refusal = ApiError::unacceptable(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("The body is too large: at most {most} bytes."),
            )
            .into_response();
            return answered_before_checks(&self.auth, &request.into_parts().0, refusal).await;
        }
        let handlers = Handlers(self.handlers.clone());
        crate::auth::pipeline(&self.auth, &route, request, handlers).await
    }
}

/// How a call runs (see [`Run`]): a login too runs inline, as a read does. Its one change, the
/// new session, is written in its history row's transaction, so a login cut short leaves
/// either both or neither; a task of its own for each login cost 6 % of its CPU.
fn run_of(method: &Method, route: Option<&str>) -> Run {
    if *method == Method::POST && route == Some(super::v1::LOGIN) {
        Run::Inline
    } else {
        Run::by_method(method)
    }
}

/// The body's length as its `Content-Length` declares it.
pub(super) fn declared_length(request: &Request) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The request span and the log lines of an API call, as `TraceLayer` gives every other
/// request.
async fn traced<F, Fut>(request: Request, call: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let span = request_span(&request);
    let started = Instant::now();
    async move {
        tracing::debug!("started processing request");
        let response = call(request).await;
        let latency = started.elapsed();
        if response.status().is_server_error() {
            tracing::error!(
                status = response.status().as_u16(),
                latency_us = latency.as_micros() as u64,
                "response failed"
            );
        }
        super::log_response(&response, latency, &tracing::Span::current());
        response
    }
    .instrument(span)
    .await
}

/// The API's handlers, reached once a call's checks passed. Their routes are relative to
/// `/api/v1`.
#[derive(Clone)]
pub struct Handlers(Router);

impl Handlers {
    pub async fn run(self, mut request: Request) -> Response {
        strip_prefix(&mut request);
        match self.0.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// `/api/v1/me?x` → `/me?x`: the handlers' routes are relative to the API's prefix (the call's
/// route was found, so its path starts with it).
fn strip_prefix(request: &mut Request) {
    let relative = request
        .uri()
        .path_and_query()
        .and_then(|pq| pq.as_str().get(super::v1::PREFIX.len()..))
        .and_then(|rest| Uri::try_from(rest).ok());
    if let Some(relative) = relative {
        *request.uri_mut() = relative;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::v1;

    #[test]
    fn reads_and_logins_run_inline_other_calls_in_a_task_of_their_own() {
        let (_, doc) = v1::routes().split_for_parts();
        let routes =
            route_table(&Policy::from_openapi(&doc, v1::PREFIX).expect("policy")).expect("routes");
        let login = routes.at("/login").expect("the login route").value.clone();
        assert_eq!(&*login, v1::LOGIN);
        assert_eq!(run_of(&Method::POST, Some(&login)), Run::Inline);
        assert_eq!(run_of(&Method::GET, Some("/api/v1/me")), Run::Inline);
        assert_eq!(run_of(&Method::HEAD, None), Run::Inline);
        assert_eq!(run_of(&Method::POST, Some("/api/v1/logout")), Run::OwnTask);
        assert_eq!(run_of(&Method::PATCH, Some(&login)), Run::OwnTask);
        assert_eq!(run_of(&Method::POST, None), Run::OwnTask);
    }
}
