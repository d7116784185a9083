//! Answers in OpenCart's shapes and words: `{"success": "…"}`, `{"error": "Warning: …"}`, or
//! a per-field `{"error": {"field": "…"}}`.
//!
//! OpenCart answers its API errors with HTTP 200, and its clients read the JSON: many never
//! look at the status, and those built on clients that throw on 4xx (Guzzle, axios,
//! `raise_for_status`) would lose the error text. So errors OpenCart itself would answer are
//! sent with 200, as OpenCart sends them. What tells a client to wait or retry keeps its
//! status, with the same body shape: 429 (with `Retry-After`), 503, 500, and 413 for a body
//! over the limit. The history keeps the precise outcome either way.

use super::Route;
use crate::domain::history::Outcome;
use crate::http::error::ApiError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::net::IpAddr;

pub const TEXT_LOGIN: &str = "Success: API session successfully started!";
pub const TEXT_ORDERS: &str = "Success: You have modified orders!";
pub const ERROR_PERMISSION: &str = "Warning: You do not have permission to access the API!";
pub const ERROR_KEY: &str = "Warning: Incorrect API Key!";
pub const ERROR_NOT_FOUND: &str = "Warning: Order could not be found!";
const ERROR_KEY_IN_URL: &str = "Warning: Send the API key in the POST body (form fields username \
     and key), never in the URL, where it ends up in logs!";
const ERROR_ROUTE: &str = "Warning: The page you requested cannot be found! This entry serves \
     api/login, api/account/login, api/order/info and api/order/history.";

/// A successful answer.
pub fn success(body: Value) -> Response {
    let mut response = Json(body).into_response();
    response.extensions_mut().insert(Outcome::Ok);
    response
}

/// A route this entry does not serve: 404, as OpenCart answers it.
pub fn unknown_route() -> Response {
    let mut response =
        (StatusCode::NOT_FOUND, Json(json!({ "error": ERROR_ROUTE }))).into_response();
    response.extensions_mut().insert(Outcome::NotFound);
    response
}

/// An error of `route`, worded as OpenCart words it. `ip` is the caller's address as seen.
pub fn error(error: ApiError, route: Route, ip: IpAddr) -> Response {
    let login = matches!(route, Route::Login3 | Route::Login4);
    let (status, message, field) = match error.outcome() {
        Outcome::SecretInQuery if login => (StatusCode::OK, ERROR_KEY_IN_URL.to_owned(), "key"),
        Outcome::IpNotAllowed => (
            StatusCode::OK,
            format!("Warning: Your IP {ip} is not allowed to access this API!"),
            "ip",
        ),
        Outcome::InsufficientScope => (
            StatusCode::OK,
            format!("{ERROR_PERMISSION} {}", error.message()),
            "key",
        ),
        Outcome::NotFound => (StatusCode::OK, ERROR_NOT_FOUND.to_owned(), "order_id"),
        // One message for every credential failure, as OpenCart has; the reason is in the
        // history. Clients that log in again on this exact text keep working.
        _ if error.status() == StatusCode::UNAUTHORIZED => {
            let text = if login { ERROR_KEY } else { ERROR_PERMISSION };
            (StatusCode::OK, text.to_owned(), "key")
        }
        // Short of stock: OpenCart words such a refusal as one warning, never as fields.
        _ if error.status() == StatusCode::CONFLICT => {
            let what: Vec<String> = error
                .details()
                .iter()
                .map(|d| format!("{}: {}", d.field, d.message))
                .collect();
            let text = match (error.details(), what.as_slice()) {
                (_, []) => error.message().to_owned(),
                // The message names the one product already.
                ([one], _) => format!("{} ({})!", error.message(), one.message),
                _ => format!("{} ({})!", error.message(), what.join("; ")),
            };
            (StatusCode::OK, warning(&text), "key")
        }
        _ => (kept_status(error.status()), warning(error.message()), "key"),
    };
    let body = if !error.details().is_empty() && error.status() != StatusCode::CONFLICT {
        let fields: Map<String, Value> = error
            .details()
            .iter()
            .map(|d| (d.field.clone(), Value::String(d.message.clone())))
            .collect();
        json!({ "error": fields })
    } else if route == Route::Login3 {
        // OpenCart 3.x's login names the field: `error.key`, `error.ip`.
        json!({ "error": { field: message } })
    } else {
        json!({ "error": message })
    };
    respond(status, body, &error)
}

/// An error with no route to word it for (the history layer's timeout, a panic): its status,
/// OpenCart's string shape.
pub fn plain(error: ApiError) -> Response {
    // A login refused after its check, as its user was disabled (see `LeftOut`): worded as
    // every refused login, so clients that log in again on this exact text keep working.
    let body = if error.status() == StatusCode::UNAUTHORIZED {
        json!({ "error": ERROR_KEY })
    } else {
        json!({ "error": warning(error.message()) })
    };
    respond(kept_status(error.status()), body, &error)
}

fn respond(status: StatusCode, body: Value, error: &ApiError) -> Response {
    let mut response = (status, Json(body)).into_response();
    for (name, value) in error.headers() {
        // A challenge on a 200 would mean nothing.
        if name != header::WWW_AUTHENTICATE {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    if status == StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(header::RETRY_AFTER)
    {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response.extensions_mut().insert(error.outcome());
    response
}

/// The statuses a client must see; every other error is answered 200, as OpenCart does.
fn kept_status(status: StatusCode) -> StatusCode {
    match status {
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::PAYLOAD_TOO_LARGE => status,
        s if s.is_server_error() => s,
        _ => StatusCode::OK,
    }
}

/// `"Warning: "` and the message with its first letter capitalised, as OpenCart's are.
fn warning(message: &str) -> String {
    let mut chars = message.chars();
    let first = chars.next().map(|c| c.to_uppercase().to_string());
    format!("Warning: {}{}", first.unwrap_or_default(), chars.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::scope::Scope;
    use crate::domain::validation::FieldError;
    use std::net::Ipv4Addr;

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));

    async fn body_of(response: Response) -> (StatusCode, Value) {
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn credential_failures_read_as_opencart_words_them_with_200() {
        let refused = ApiError::unauthorized(Outcome::WrongKey);
        let (status, body) = body_of(error(refused, Route::Login3, IP)).await;
        assert_eq!(status, 200);
        assert_eq!(body, json!({"error": {"key": ERROR_KEY}}));

        let refused = ApiError::unauthorized(Outcome::WrongKey);
        let (_, body) = body_of(error(refused, Route::Login4, IP)).await;
        assert_eq!(body, json!({"error": ERROR_KEY}));

        let refused = ApiError::unauthorized(Outcome::ExpiredToken);
        let response = error(refused, Route::OrderInfo, IP);
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
        assert_eq!(
            response.extensions().get::<Outcome>(),
            Some(&Outcome::ExpiredToken)
        );
        let (_, body) = body_of(response).await;
        assert_eq!(body, json!({"error": ERROR_PERMISSION}));
    }

    #[tokio::test]
    async fn ip_and_scope_refusals_say_what_is_wrong() {
        let (_, body) = body_of(error(ApiError::ip_not_allowed(IP), Route::Login3, IP)).await;
        assert_eq!(
            body,
            json!({"error": {"ip": "Warning: Your IP 203.0.113.9 is not allowed to access this API!"}})
        );
        let scope = ApiError::insufficient_scope(Scope::OrdersWrite);
        let (_, body) = body_of(error(scope, Route::OrderHistory, IP)).await;
        let text = body["error"].as_str().expect("a string");
        assert!(text.starts_with(ERROR_PERMISSION), "{text}");
        assert!(text.contains("orders:write"), "{text}");
    }

    #[tokio::test]
    async fn a_shortage_of_stock_is_one_warning_as_opencart_words_it() {
        let short = ApiError::conflict(
            "not enough stock for DIS-1",
            vec![FieldError {
                field: "DIS-1".to_owned(),
                message: "0 in stock, 2 wanted".to_owned(),
            }],
        );
        let (status, body) = body_of(error(short, Route::OrderHistory, IP)).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({"error": "Warning: Not enough stock for DIS-1 (0 in stock, 2 wanted)!"})
        );
    }

    #[tokio::test]
    async fn waits_and_outages_keep_their_status_and_retry_after() {
        let response = error(ApiError::rate_limited(60, 12), Route::OrderInfo, IP);
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "12");
        assert_eq!(response.headers()["ratelimit-limit"], "60");
        let (_, body) = body_of(response).await;
        assert!(
            body["error"]
                .as_str()
                .expect("text")
                .starts_with("Warning: Over the limit")
        );

        let response = plain(ApiError::unavailable());
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        let response = plain(ApiError::internal());
        assert_eq!(response.status(), 500);
    }

    #[tokio::test]
    async fn validation_errors_are_per_field_and_a_missing_order_is_opencarts_text() {
        let invalid = ApiError::invalid(vec![FieldError {
            field: "order_status_id".into(),
            message: "Order status required!".into(),
        }]);
        let (status, body) = body_of(error(invalid, Route::OrderHistory, IP)).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({"error": {"order_status_id": "Order status required!"}})
        );
        let (_, body) = body_of(error(ApiError::not_found("order"), Route::OrderInfo, IP)).await;
        assert_eq!(body, json!({"error": ERROR_NOT_FOUND}));
    }
}
