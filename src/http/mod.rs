//! HTTP: the router, its layers, and the handlers, which translate HTTP to calls of the
//! domain and the store and back. No business rule lives here.

pub mod api;
pub mod error;
pub mod extract;
pub(crate) mod idempotency;
pub mod opencart;
mod ops;
mod pagination;
pub mod request_id;
pub mod v1;

use crate::auth::policy::Policy;
use crate::auth::{AuthState, Authenticator, TrustedProxies};
use crate::clock::SharedClock;
use crate::credentials::Credentials;
use crate::credentials::admins::Admins;
use crate::domain::history::Outcome;
use crate::history::{HistoryState, Recorder};
use crate::store::Db;
use crate::telemetry::metrics::Metrics;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use error::ApiError;
use std::sync::Arc;
use std::time::Duration;
use tower_http::trace::TraceLayer;

/// Everything a handler may need. Cloned into every request, so it is one `Arc`: a clone is
/// one atomic increment, not one per service.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

pub struct Services {
    pub db: Db,
    pub clock: SharedClock,
    pub auth: Arc<Authenticator>,
    pub credentials: Credentials,
    pub admins: Admins,
    pub recorder: Recorder,
    pub limits: HttpLimits,
    pub console: crate::console::ConsoleSettings,
    pub metrics: Metrics,
    pub webhooks: crate::webhooks::Webhooks,
    pub alerts: crate::webhooks::Alerts,
    pub detector: Arc<crate::webhooks::Detector>,
    /// Leak reports per client address.
    pub leak_limit: crate::auth::AddressLimit,
}

#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("the API's route declarations are inconsistent: {0}")]
    Policy(#[from] crate::auth::policy::PolicyError),
    #[error("the API's routes cannot be told apart: {0}")]
    Routes(String),
}

/// The whole application: `/api/v1` through its own entry (`api`), the rest through axum's
/// router.
pub fn router(state: AppState, proxies: TrustedProxies) -> Result<api::Entry, RouterError> {
    let (handlers, doc) = v1::routes().split_for_parts();
    let policy = Arc::new(Policy::from_openapi(&doc, v1::PREFIX)?);
    let routes = api::route_table(&policy).map_err(RouterError::Routes)?;
    let calls = Arc::new(
        state
            .metrics
            .calls(policy.routes().chain(opencart::routes_counted())),
    );
    let history = |render| {
        Arc::new(HistoryState {
            recorder: state.recorder.clone(),
            clock: state.clock.clone(),
            timeout: state.limits.request_timeout,
            render,
            metrics: calls.clone(),
            refused_status: render(ApiError::unauthorized(Outcome::DisabledUser))
                .status()
                .as_u16(),
        })
    };
    let handlers = handlers
        .fallback(api_not_found)
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes));
    let api = api::Api {
        proxies: proxies.clone(),
        auth: AuthState {
            policy,
            app: state.clone(),
        },
        routes,
        history: history(IntoResponse::into_response),
        handlers,
    };
    let opencart = opencart::routes(state.clone(), history(opencart::render));

    let mut app = Router::new().merge(ops::routes(state.clone()));
    if state.metrics.on_main_listener() {
        app = app.merge(ops::metrics_routes(state.clone()));
    }
    let rest = app
        .merge(crate::console::routes(state.clone()))
        .merge(opencart)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(log_response),
        )
        .layer(from_fn_with_state(proxies, request_id::assign));
    Ok(api::Entry::new(api, rest))
}

fn request_span(request: &Request) -> tracing::Span {
    let extensions = request.extensions();
    let id = extensions
        .get::<request_id::RequestId>()
        .map_or("", request_id::RequestId::as_str);
    let client = extensions.get::<crate::auth::ClientIp>().map_or(
        std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        |ip| ip.0,
    );
    // The path only, a key pasted into it masked: a query string may hold a secret someone
    // sent by mistake, and so may a path.
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %crate::domain::secret::Redacted(request.uri().path()),
        request_id = %id,
        client_ip = %client,
    )
}

fn log_response(response: &Response, latency: Duration, _span: &tracing::Span) {
    tracing::debug!(
        status = response.status().as_u16(),
        latency_us = latency.as_micros() as u64,
        "answered"
    );
}

/// `/metrics` alone, for a listener of its own.
pub fn metrics_router(state: AppState) -> Router {
    ops::metrics_routes(state).fallback(not_found)
}

async fn api_not_found() -> ApiError {
    ApiError::not_found("API route")
}

async fn not_found() -> ApiError {
    ApiError::not_found("page")
}
