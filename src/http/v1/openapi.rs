//! The machine-readable description of the API, generated from the handlers' annotations.

use crate::auth::policy::SCHEME;
use crate::http::error::{ErrorBody, ErrorDetail};
use axum::Extension;
use axum::http::header;
use axum::response::IntoResponse;
use std::sync::Arc;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Keyward",
        description = "The integration API of an online store: products, stock, orders and customers, \
            behind per-integration API keys with IP allow-lists, scopes, rate limits and a full call history.",
    ),
    security(("api_key" = [])),
    modifiers(&Security),
    components(schemas(ErrorBody, ErrorDetail)),
    tags(
        (name = "auth", description = "Who is calling, and sessions"),
        (name = "products", description = "The catalog and its stock"),
        (name = "orders", description = "Orders, their lines and status history"),
        (name = "customers", description = "The store's customers"),
        (name = "meta", description = "This description"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Document) {
        let scheme = Http::builder()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "An API key (`kw_…`) or a session token (`kwt_…`) from /api/v1/login. \
                 `Authorization: Basic base64(username:key)` and `X-Api-Token: <token>` work too. \
                 Never put a key or token in the URL.",
            ))
            .build();
        doc.components
            .get_or_insert_default()
            .add_security_scheme(SCHEME, SecurityScheme::Http(scheme));
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    }
}

/// The served document: the generated one with every path under `/api/v1`.
pub struct OpenApiJson(pub String);

impl OpenApiJson {
    pub fn new(mut doc: Document) -> Self {
        let paths = std::mem::take(&mut doc.paths.paths);
        doc.paths.paths = paths
            .into_iter()
            .map(|(path, item)| (format!("{}{path}", super::PREFIX), item))
            .collect();
        Self(doc.to_pretty_json().unwrap_or_default())
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", security(()), responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi_json(Extension(doc): Extension<Arc<OpenApiJson>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], doc.0.clone())
}
