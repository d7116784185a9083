//! One error type for the integration API and one mapping to HTTP. Every refusal carries a
//! code from the spec; database and unexpected errors are logged with their chain and
//! answered with a generic body that never holds the database's text.

use super::request_id;
use crate::domain::history::Outcome;
use crate::domain::scope::Scope;
use crate::domain::validation::FieldError;
use crate::store::StoreError;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::net::IpAddr;
use utoipa::ToSchema;

/// A refusal's text quotes what the client sent (a value, a field's name, the parser's
/// complaint), and a client may have sent a key or token there by mistake: it never goes back.
fn redact(text: String) -> String {
    if text.contains("kw") {
        crate::domain::secret::redact_secrets(&text)
    } else {
        text
    }
}

/// The message of every credential failure: the precise reason goes to the history only.
pub const UNAUTHORIZED_MESSAGE: &str = "Authentication failed: check the API username and key, or log in again. The API history tells the store admin why.";

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Vec<FieldError>,
    headers: Vec<(HeaderName, HeaderValue)>,
    outcome: Outcome,
}

/// `{"error": {...}}`, the body of every error.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// One of `unauthorized`, `ip_not_allowed`, `insufficient_scope`, `rate_limited`,
    /// `bad_request`, `not_found`, `conflict`, `invalid`, `unavailable`, `internal`.
    pub code: &'static str,
    pub message: String,
    pub request_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        code: &'static str,
        outcome: Outcome,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            message: redact(message.into()),
            details: Vec::new(),
            headers: Vec::new(),
            outcome,
        }
    }

    pub fn unauthorized(outcome: Outcome) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            outcome,
            UNAUTHORIZED_MESSAGE,
        )
        .with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"keyward\""),
        )
    }

    /// The one 401 whose message differs: it tells the client how to fix its request.
    pub fn secret_in_query() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            Outcome::SecretInQuery,
            "Keys and tokens are never accepted in the URL, where they end up in logs. Send them in a \
             header instead: `Authorization: Bearer <key or token>` or `X-Api-Token: <token>`.",
        )
        .with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"keyward\""),
        )
    }

    pub fn ip_not_allowed(ip: IpAddr) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "ip_not_allowed",
            Outcome::IpNotAllowed,
            format!(
                "The address {ip} is not on this API user's IP list. Ask the store admin to add it."
            ),
        )
    }

    pub fn insufficient_scope(scope: Scope) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            Outcome::InsufficientScope,
            format!("This call needs the scope `{scope}`, which this API user does not have."),
        )
    }

    pub fn rate_limited(limit: u32, retry_after_secs: u64) -> Self {
        let retry = retry_after_secs.max(1);
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            Outcome::RateLimited,
            format!("Over the limit of {limit} calls per minute; retry in {retry} s."),
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from(retry))
        .with_header(
            HeaderName::from_static("ratelimit-limit"),
            HeaderValue::from(limit),
        )
        .with_header(
            HeaderName::from_static("ratelimit-remaining"),
            HeaderValue::from(0),
        )
        .with_header(
            HeaderName::from_static("ratelimit-reset"),
            HeaderValue::from(retry),
        )
    }

    pub fn login_throttled(retry_after_secs: u64) -> Self {
        let retry = retry_after_secs.max(1);
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            Outcome::LoginThrottled,
            format!(
                "Too many failed logins from this address or for this username; retry in {retry} s."
            ),
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from(retry))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            Outcome::BadRequest,
            message,
        )
    }

    /// The field-level detail of a refusal about one field, parameter or header.
    pub fn on_field(self, field: &str, message: impl Into<String>) -> Self {
        self.with_details(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }

    /// A request the server cannot take in its form (size, media type, method).
    pub fn unacceptable(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, "bad_request", Outcome::BadRequest, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            Outcome::NotFound,
            format!("No {what} matches this request."),
        )
    }

    pub fn conflict(message: impl Into<String>, details: Vec<FieldError>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", Outcome::Conflict, message)
            .with_details(details)
    }

    pub fn invalid(mut details: Vec<FieldError>) -> Self {
        // A thousand bad items need not make a thousand-line answer.
        const SHOWN: usize = 20;
        if details.len() > SHOWN {
            let more = details.len() - SHOWN;
            details.truncate(SHOWN);
            details.push(FieldError {
                field: "…".to_owned(),
                message: format!("and {more} more"),
            });
        }
        let fields: Vec<&str> = details.iter().map(|d| d.field.as_str()).collect();
        let message = format!("Some fields are invalid: {}.", fields.join(", "));
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            Outcome::Invalid,
            message,
        )
        .with_details(details)
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            Outcome::Unavailable,
            "The store's database is unavailable right now; nothing was changed. Retry shortly.",
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    }

    /// The call ran, but its history row could not be written, so its answer is withheld.
    /// `changed_nothing`: a read, a refusal, or a login (whose session is written with its
    /// row) — the advice to check before retrying is for the other calls.
    pub fn history_unavailable(changed_nothing: bool) -> Self {
        let message = if changed_nothing {
            "The call could not be recorded in the API history, so its answer was withheld. \
             Nothing was changed: retry shortly."
        } else {
            "The call could not be recorded in the API history, so its answer was withheld. It may \
             have taken effect: retry with the same Idempotency-Key, or check before retrying."
        };
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            Outcome::Unavailable,
            message,
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    }

    pub fn timed_out(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            Outcome::Unavailable,
            format!(
                "The call did not finish within {} s and was stopped. It may have taken effect: \
                 retry with the same Idempotency-Key, or check before retrying.",
                limit.as_secs()
            ),
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            Outcome::Error,
            "An internal error occurred; it has been logged with this request id.",
        )
    }

    pub fn with_details(mut self, details: Vec<FieldError>) -> Self {
        self.details = details
            .into_iter()
            .map(|d| FieldError {
                field: redact(d.field),
                message: redact(d.message),
            })
            .collect();
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn details(&self) -> &[FieldError] {
        &self.details
    }

    /// Headers the answer must carry (`Retry-After`, `RateLimit-*`, `WWW-Authenticate`).
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }
}

impl ApiError {
    /// Maps a store error, naming `what` was not found.
    pub fn or_not_found(what: &'static str) -> impl Fn(StoreError) -> ApiError {
        move |error| match error {
            StoreError::NotFound => ApiError::not_found(what),
            other => other.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Self::not_found("record"),
            StoreError::Conflict { message, details } => Self::conflict(message, details),
            StoreError::Invalid(details) => Self::invalid(details),
            StoreError::Unavailable(source) => {
                tracing::warn!(
                    error = &source as &dyn std::error::Error,
                    "database unavailable"
                );
                Self::unavailable()
            }
            other => {
                tracing::error!(error = &other as &dyn std::error::Error, "database error");
                Self::internal()
            }
        }
    }
}

impl From<crate::credentials::ServiceError> for ApiError {
    fn from(error: crate::credentials::ServiceError) -> Self {
        use crate::credentials::ServiceError as E;
        match error {
            E::NoSuchUser(_) => Self::not_found("API user"),
            E::NoSuchSession { .. } => Self::not_found("open session of this API user"),
            E::Invalid(details) => Self::invalid(details),
            // The refusals of the escalation rules: the caller's key does not reach that far.
            E::Forbidden(message) => Self::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                Outcome::InsufficientScope,
                message,
            ),
            E::Unconfirmed(message) => Self::conflict(message, Vec::new()),
            E::Store(store) => store.into(),
        }
    }
}

impl From<Vec<FieldError>> for ApiError {
    fn from(details: Vec<FieldError>) -> Self {
        Self::invalid(details)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                request_id: request_id::current(),
                details: self.details,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response.extensions_mut().insert(self.outcome);
        response
    }
}
