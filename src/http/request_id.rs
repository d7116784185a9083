//! A request id for every response (`X-Request-Id`), in the history row, the logs and error
//! bodies. It is made here, never taken from the client, so it is always safe to log.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

pub static HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: RequestId;
}

/// The id in its text form, held by value: the request's extensions and its task-local each
/// take a copy without an allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestId([u8; uuid::fmt::Simple::LENGTH]);

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RequestId").field(&self.as_str()).finish()
    }
}

impl RequestId {
    /// A UUIDv7 (time first, so the history can find a request by its id through the date
    /// index). Its random part comes from the thread's generator: `Uuid::now_v7` asks the
    /// kernel for it, a system call on every request.
    pub fn generate() -> Self {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        let id = uuid::Builder::from_unix_timestamp_millis(millis, &rand::random()).into_uuid();
        let mut text = [0; uuid::fmt::Simple::LENGTH];
        id.simple().encode_lower(&mut text);
        Self(text)
    }

    /// 32 lowercase hex digits.
    pub fn as_str(&self) -> &str {
        // Always ASCII: written by `encode_lower` only.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The id of the request being served, or "" outside of one.
pub fn current() -> String {
    REQUEST_ID
        .try_with(|id| id.as_str().to_owned())
        .unwrap_or_default()
}

/// Spawns `future` as a task that stays part of the current request: same request id, same
/// tracing span.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    use tracing::Instrument;
    let span = tracing::Span::current();
    match REQUEST_ID.try_with(|id| *id) {
        Ok(id) => tokio::spawn(REQUEST_ID.scope(id, future).instrument(span)),
        Err(_) => tokio::spawn(future.instrument(span)),
    }
}

/// The first layer of every request: gives it its id, and its client address (by the same rule
/// everywhere, trusted proxies included), before anything logs or records it.
pub async fn assign(
    axum::extract::State(proxies): axum::extract::State<crate::auth::TrustedProxies>,
    request: Request,
    next: Next,
) -> Response {
    identify(&proxies, request, |request| next.run(request)).await
}

/// [`assign`]'s work around `call`, for the API's entry, which is not an axum layer.
pub async fn identify<F, Fut>(
    proxies: &crate::auth::TrustedProxies,
    mut request: Request,
    call: F,
) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let id = RequestId::generate();
    crate::auth::resolve_client_ip(proxies, &mut request);
    request.extensions_mut().insert(id);
    let header = HeaderValue::from_str(id.as_str()).ok();
    let mut response = REQUEST_ID.scope(id, call(request)).await;
    if let Some(value) = header {
        response.headers_mut().insert(HEADER.clone(), value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::RequestId;
    use crate::domain::history::request_time;

    #[test]
    fn generated_ids_are_uuid_v7_that_tell_their_time() {
        let generated = RequestId::generate();
        let id = generated.as_str();
        let uuid = uuid::Uuid::parse_str(id).expect("a UUID");
        assert_eq!(uuid.get_version_num(), 7);
        assert_eq!(id.len(), 32);
        let at = request_time(id).expect("a time");
        let now = time::OffsetDateTime::now_utc();
        assert!((now - at).abs() < time::Duration::seconds(5));
        assert_ne!(RequestId::generate(), generated);
    }
}
