//! The machine-readable description of the API, generated from the handlers' annotations.

use crate::auth::policy::SCHEME;
use crate::http::error::{ErrorBody, ErrorDetail};
use axum::http::header;
use axum::response::IntoResponse;
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
        (name = "api_users", description = "The Management API: API users, their keys, IP lists, sessions and history. \
            Needs `api_users:read` / `api_users:write`, which only management keys hold; every change is audited with the key as the actor."),
        (name = "leaks", description = "Reporting leaked keys, for secret scanners"),
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
            .map(|(path, mut item)| {
                for operation in [
                    &mut item.get,
                    &mut item.post,
                    &mut item.patch,
                    &mut item.put,
                    &mut item.delete,
                ]
                .into_iter()
                .flatten()
                {
                    add_common_errors(operation);
                }
                (format!("{}{path}", super::PREFIX), item)
            })
            .collect();
        Self(doc.to_pretty_json().unwrap_or_default())
    }
}

/// The answers every operation can give besides its own: bad input, refused credentials,
/// limits, an unavailable database. Declared once here instead of on every handler.
fn add_common_errors(operation: &mut utoipa::openapi::path::Operation) {
    let public = operation.security.as_ref().is_some_and(|list| {
        list.iter().any(|requirement| {
            serde_json::to_value(requirement).is_ok_and(|v| v == serde_json::json!({}))
        })
    });
    let has_body = operation.request_body.is_some();
    let is_login = operation.operation_id.as_deref() == Some("login");
    let mut codes: Vec<(&str, &str)> = vec![
        (
            "400",
            "The request is malformed: a bad query parameter, header or JSON body",
        ),
        (
            "503",
            "The database is unavailable, or the call ran past the time limit",
        ),
    ];
    if !public || is_login {
        codes.extend([
            (
                "401",
                "Missing or invalid credentials (the history says why)",
            ),
            (
                "403",
                "The address is not on the IP list, or the scope is missing",
            ),
            ("429", "Over the rate limit, or too many failed logins"),
        ]);
    }
    if has_body {
        codes.extend([
            ("413", "The body is too large"),
            (
                "415",
                if is_login {
                    "The body is neither JSON nor a form"
                } else {
                    "The body is not JSON"
                },
            ),
            ("422", "Some fields are invalid (details name them)"),
        ]);
    }
    if has_body && !is_login {
        codes.push((
            "409",
            "An `Idempotency-Key` request is still running (retry after `Retry-After`) or took \
             effect without an answer, or a conflict with the store",
        ));
    }
    let error =
        utoipa::openapi::Content::new(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")));
    for (code, description) in codes {
        operation
            .responses
            .responses
            .entry(code.to_owned())
            .or_insert_with(|| {
                utoipa::openapi::ResponseBuilder::new()
                    .description(description)
                    .content("application/json", error.clone())
                    .into()
            });
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", security(()), responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.0.as_str(),
    )
}

/// Made once, from the same routes the router serves.
static DOCUMENT: std::sync::LazyLock<OpenApiJson> =
    std::sync::LazyLock::new(|| OpenApiJson::new(super::routes().split_for_parts().1));
