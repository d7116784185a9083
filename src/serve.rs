//! The accept loop: hyper's connection builder with a deadline for reading request headers,
//! so a client that opens a connection and stalls cannot hold it forever, and a graceful
//! shutdown that lets in-flight requests finish, for as long as `drain` allows: a client that
//! never reads its answers holds its connection open, and must not hold the stop with it.

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

pub async fn serve<S>(
    listener: TcpListener,
    router: S,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Drain<impl Future<Output = ()> + Send + 'static>,
) -> std::io::Result<()>
where
    S: tower::Service<
            axum::http::Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(move |mut request: axum::http::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                });
        let connection = builder.serve_connection_with_upgrades(
            TokioIo::new(stream),
            TowerToHyperService::new(service),
        );
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain.limit) => tracing::warn!(
            limit_s = drain.limit.as_secs(),
            "connections still open after the limit (clients not reading their answers): \
             stopping without them"
        ),
        () = drain.cut => tracing::warn!("told again to stop: no longer waiting for open connections"),
    }
    Ok(())
}

/// How long a stop waits for open connections: at most `limit`, and no longer once `cut`
/// resolves (a second signal).
pub struct Drain<F> {
    pub limit: Duration,
    pub cut: F,
}

/// The peer address type the router expects in `ConnectInfo`.
pub type Peer = SocketAddr;
