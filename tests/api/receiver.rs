//! A webhook receiver for tests: a real HTTP server on port 0 that records every request and
//! answers with the status it is told, and checks signatures as a receiver would.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    pub fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }

    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_owned())
            .unwrap_or_default()
    }

    /// The `v1` signatures of `Keyward-Signature: t=…,v1=…[,v1=…]`, in their order.
    pub fn signatures(&self) -> Vec<Vec<u8>> {
        self.header("keyward-signature")
            .split(',')
            .filter_map(|part| part.strip_prefix("v1="))
            .map(|v| hex::decode(v).expect("hex"))
            .collect()
    }

    /// Checks the signature header against `secret` as a receiver does (any `v1` may match),
    /// computing the HMAC here rather than trusting the server's own code.
    pub fn signed_with(&self, secret: &str) -> bool {
        let header = self.header("keyward-signature");
        let Some(timestamp) = header.split(',').find_map(|part| part.strip_prefix("t=")) else {
            return false;
        };
        self.signatures().iter().any(|signature| {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
            mac.update(format!("{timestamp}.{}", self.body).as_bytes());
            mac.verify_slice(signature).is_ok()
        })
    }
}

#[derive(Clone)]
struct Shared {
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
}

pub struct Receiver {
    pub url: String,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

async fn record(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    shared.received.lock().expect("lock").push(Received {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    StatusCode::from_u16(shared.status.load(Ordering::SeqCst)).unwrap_or(StatusCode::OK)
}

impl Receiver {
    pub async fn start() -> Self {
        let shared = Shared {
            received: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
        };
        let app = Router::new()
            .route("/hook", post(record))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}/hook"),
            shared,
            server,
        }
    }

    /// Answers every later request with `status`.
    pub fn answer_with(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("lock").clone()
    }

    /// The requests received so far of one event type.
    pub fn of_type(&self, kind: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.event_type() == kind)
            .collect()
    }

    /// Waits until `count` requests of `kind` have arrived, and returns them.
    pub async fn wait_for(&self, kind: &str, count: usize) -> Vec<Received> {
        for _ in 0..400 {
            let found = self.of_type(kind);
            if found.len() >= count {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "expected {count} {kind} event(s); received: {:?}",
            self.received()
                .iter()
                .map(Received::event_type)
                .collect::<Vec<_>>()
        );
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}
