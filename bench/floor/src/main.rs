//! A bare axum server answering a small JSON document: what the benchmark compares Keyward to.

use axum::{Json, Router, routing::get};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8099".to_owned());
    let app = Router::new().route("/hello", get(|| async { Json(serde_like()) }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("floor listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}

fn serde_like() -> std::collections::BTreeMap<&'static str, &'static str> {
    [("hello", "world")].into_iter().collect()
}
