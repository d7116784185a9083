//! Extractors whose rejections use the API's error body, with field-level details.

use super::error::ApiError;
use crate::domain::validation::{FieldError, Object};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

/// A JSON body. Errors name the field that failed (`lines[0].quantity`).
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match read_body(request, state).await? {
            (Body::Json, bytes) => parse_json(&bytes).map(Json),
            (Body::Form, _) => Err(unsupported()),
        }
    }
}

/// How a body reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Without a type, with a JSON type, or a form whose body is JSON: `curl -d '{…}'` labels
    /// its JSON as a form.
    Json,
    /// `application/x-www-form-urlencoded` fields.
    Form,
}

/// Reads the body, and how it reads: any other type is refused (415) before it is read.
pub async fn read_body<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<(Body, Bytes), ApiError> {
    let kind = body_kind(request.headers().get(header::CONTENT_TYPE));
    if kind == BodyKind::Other {
        return Err(unsupported());
    }
    let bytes = Bytes::from_request(request, state)
        .await
        .map_err(body_rejection)?;
    let first = without_bom(&bytes)
        .iter()
        .find(|b| !b.is_ascii_whitespace());
    let body = if kind == BodyKind::Form && !matches!(first, Some(b'{' | b'[')) {
        Body::Form
    } else {
        Body::Json
    };
    Ok((body, bytes))
}

/// Parses `bytes` as `T`, reporting syntax errors as 400 and type errors as 422 on the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes = without_bom(bytes);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let Object(value) = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        json_error(&path, error.into_inner(), bytes)
    })?;
    deserializer
        .end()
        .map_err(|error| json_error(".", error, bytes))?;
    Ok(value)
}

/// `bytes` without the byte order mark Windows tools put before a JSON file's text: RFC 8259
/// (8.1) lets a parser ignore it, and refusing it helps nobody.
pub fn without_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

fn json_error(path: &str, error: serde_json::Error, bytes: &[u8]) -> ApiError {
    if error.is_data() {
        let text = error.to_string();
        let text = text.split(" at line ").next().unwrap_or(&text);
        // "missing field `price`" belongs to the field that is missing, not to its parent.
        let missing = text
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let field = match (path, missing) {
            (".", Some(name)) => name.to_owned(),
            (_, Some(name)) => format!("{path}.{name}"),
            (".", None) => "body".to_owned(),
            (_, None) => path.to_owned(),
        };
        let message = match missing {
            Some(_) => "is required".to_owned(),
            None => plain_types(text),
        };
        ApiError::invalid(vec![FieldError { field, message }])
    } else if error.is_eof() && bytes.iter().all(u8::is_ascii_whitespace) {
        ApiError::bad_request("The request needs a JSON body.").on_field("body", "is required")
    } else {
        ApiError::bad_request(format!("The body is not valid JSON: {error}."))
            .on_field("body", format!("is not valid JSON: {error}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Json,
    Form,
    Other,
}

fn body_kind(content_type: Option<&header::HeaderValue>) -> BodyKind {
    let Some(value) = content_type else {
        // A body without a type is taken as JSON.
        return BodyKind::Json;
    };
    let Ok(value) = value.to_str() else {
        // A type that is not even text names no type this API reads.
        return BodyKind::Other;
    };
    let mime = mime_of(value);
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        BodyKind::Json
    } else if mime == "application/x-www-form-urlencoded" {
        BodyKind::Form
    } else {
        BodyKind::Other
    }
}

/// A form, as a browser or `curl` sends one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormKind {
    /// `application/x-www-form-urlencoded` (`curl -d`).
    UrlEncoded,
    /// `multipart/form-data` (`curl -F`).
    Multipart,
}

/// Which form the request's `Content-Type` names, if any.
pub fn form_kind(headers: &header::HeaderMap) -> Option<FormKind> {
    match mime_of(headers.get(header::CONTENT_TYPE)?.to_str().ok()?).as_str() {
        "application/x-www-form-urlencoded" => Some(FormKind::UrlEncoded),
        "multipart/form-data" => Some(FormKind::Multipart),
        _ => None,
    }
}

/// A `Content-Type`'s type without its parameters, in lower case.
fn mime_of(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The text fields of a `multipart/form-data` body, at most `most` of them; uploaded files
/// are no fields (PHP puts them in `$_FILES`).
pub async fn form_data(request: Request, most: usize) -> Result<Vec<(String, String)>, ApiError> {
    let unreadable = |status: StatusCode, text: String| {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::unacceptable(status, "The body is too large.")
        } else {
            ApiError::bad_request(format!("The multipart body could not be read: {text}"))
        }
    };
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|e| unreadable(e.status(), e.body_text()))?;
    let mut fields = Vec::new();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| unreadable(e.status(), e.body_text()))?
    {
        let Some(name) = field
            .name()
            .filter(|_| field.file_name().is_none())
            .map(str::to_owned)
        else {
            continue;
        };
        let value = field
            .text()
            .await
            .map_err(|e| unreadable(e.status(), e.body_text()))?;
        if fields.len() < most {
            fields.push((name, value));
        }
    }
    Ok(fields)
}

pub fn unsupported() -> ApiError {
    ApiError::unacceptable(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Send the body as JSON with `Content-Type: application/json`.",
    )
}

pub fn body_rejection(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::unacceptable(status, "The body is too large.")
    } else {
        ApiError::bad_request(format!(
            "The body could not be read: {}",
            rejection.body_text()
        ))
    }
}

/// The parameter serde's refusal of a query names: `unknown field `x`, expected …` or
/// `limit: invalid digit …`; `query` when it names none.
fn query_field(text: &str) -> &str {
    if let Some(rest) = text.strip_prefix("unknown field `") {
        return rest.split('`').next().unwrap_or("query");
    }
    match text.split_once(": ") {
        Some((name, _)) if is_parameter_name(name) => name,
        _ => "query",
    }
}

/// Whether `name` reads as one of the API's parameter names, so an error may name it.
fn is_parameter_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Query parameters; a bad one is a 400 naming it.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(pair) = parts.uri.query().and_then(nul_in_query) {
            let name = pair.split('=').next().unwrap_or_default();
            let name = if is_parameter_name(name) {
                name
            } else {
                "query"
            };
            return Err(ApiError::bad_request(
                "Bad query parameter: it holds a NUL character (%00).",
            )
            .on_field(name, "holds a NUL character (%00)"));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|rejection: QueryRejection| {
                let text = rejection.body_text();
                let text = text.trim_start_matches("Failed to deserialize query string: ");
                ApiError::bad_request(format!("Bad query parameter: {text}."))
                    .on_field(query_field(text), text)
            })
    }
}

/// The parameter (`name=value`) of `query` that holds a NUL (`%00`): the value of no filter,
/// and a text PostgreSQL refuses.
pub fn nul_in_query(query: &str) -> Option<&str> {
    query.split('&').find(|pair| pair.contains("%00"))
}

/// Path parameters; a malformed id is a 404, as it can match nothing.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|_: PathRejection| ApiError::not_found("record"))
    }
}

/// serde names Rust types ("expected i64"); clients think in JSON types.
fn plain_types(message: &str) -> String {
    let mut text = message.to_owned();
    for (rust, json) in [
        ("expected i64", "expected an integer"),
        ("expected i32", "expected an integer"),
        // `-1` for a count: "expected an integer" would puzzle whoever sent one.
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected usize", "expected a non-negative integer"),
        ("expected u16", "expected a non-negative integer"),
        ("expected u8", "expected a non-negative integer"),
        // An integer too large for any integer type is read as a float first.
        ("invalid type: floating point", "invalid type: number"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected an object"),
        ("invalid type: map", "invalid type: object"),
        ("invalid type: sequence", "invalid type: array"),
    ] {
        text = text.replace(rust, json);
    }
    // An integer past 2^64 was read as a float: "number `1e+20`" for the digits sent.
    if text.contains("invalid type: number `")
        && text.contains("e+")
        && let Some(at) = text.find(", expected ")
    {
        text = format!("is too large{}", &text[at..]);
    }
    // "expected struct ProductInput with 6 elements", "expected struct StockUpdate": the
    // program's own names mean nothing to a client.
    if let Some(at) = text.find("expected struct ") {
        text.truncate(at);
        text.push_str("expected an object");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_s_rust_types_are_told_as_json_types() {
        assert_eq!(
            plain_types("invalid type: sequence, expected struct ProductInput with 6 elements"),
            "invalid type: array, expected an object"
        );
        assert_eq!(
            plain_types("invalid type: string \"x\", expected i64"),
            "invalid type: string \"x\", expected an integer"
        );
        assert_eq!(
            plain_types("invalid value: integer `-1`, expected u32"),
            "invalid value: integer `-1`, expected a non-negative integer"
        );
        assert_eq!(
            plain_types("invalid type: floating point `1e20`, expected u32"),
            "invalid type: number `1e20`, expected a non-negative integer"
        );
    }

    #[test]
    fn an_integer_past_any_integer_type_is_too_large_not_a_float() {
        #[derive(Debug, serde::Deserialize)]
        struct Count {
            #[allow(dead_code)]
            n: i64,
        }
        let error = parse_json::<Count>(br#"{"n": 99999999999999999999}"#).expect_err("refused");
        assert_eq!(
            error.details()[0].message,
            "is too large, expected an integer"
        );
        let error = parse_json::<Count>(br#"{"n": 2.5}"#).expect_err("refused");
        assert_eq!(
            error.details()[0].message,
            "invalid type: number `2.5`, expected an integer"
        );
    }

    #[test]
    fn a_body_is_json_when_it_says_so_or_says_nothing() {
        let kind = |value: Option<&[u8]>| {
            let value = value.map(|v| header::HeaderValue::from_bytes(v).expect("a header value"));
            body_kind(value.as_ref())
        };
        assert_eq!(kind(None), BodyKind::Json);
        assert_eq!(
            kind(Some(b"application/json; charset=utf-8")),
            BodyKind::Json
        );
        assert_eq!(kind(Some(b"application/merge-patch+json")), BodyKind::Json);
        assert_eq!(
            kind(Some(b"application/x-www-form-urlencoded")),
            BodyKind::Form
        );
        assert_eq!(kind(Some(b"text/plain")), BodyKind::Other);
        assert_eq!(
            kind(Some(b"\xff")),
            BodyKind::Other,
            "not text, so not JSON"
        );
    }
}
