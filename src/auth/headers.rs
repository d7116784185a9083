//! Reading credentials from a request. Secrets travel in headers only: `Authorization:
//! Bearer`, `Authorization: Basic` or `X-Api-Token`. One found in the query string is
//! refused, and so are two credentials in one request.

use crate::domain::secret::Secret;
use crate::domain::token::TOKEN_PREFIX;
use axum::http::{HeaderMap, header};
use base64::Engine;

#[derive(Debug, Clone)]
pub enum Presented {
    Key {
        username: Option<String>,
        key: Secret,
    },
    Token(Secret),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderProblem {
    Missing,
    Malformed,
    SecretInQuery,
}

/// Query parameters that carry a secret in other APIs (and in OpenCart).
const SECRET_PARAMS: [&str; 7] = [
    "api_token",
    "token",
    "key",
    "api_key",
    "apikey",
    "access_token",
    "password",
];

pub fn presented(headers: &HeaderMap, query: Option<&str>) -> Result<Presented, HeaderProblem> {
    if query.is_some_and(has_secret_param) {
        return Err(HeaderProblem::SecretInQuery);
    }
    // One credential per request: with two, which one was meant is a guess, and a guess
    // could let a call through on the other credential than the one its sender checks.
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    let mut api_token = headers.get_all("x-api-token").iter();
    if let Some(value) = authorization.next() {
        if authorization.next().is_some() || api_token.next().is_some() {
            return Err(HeaderProblem::Malformed);
        }
        let value = value.to_str().map_err(|_| HeaderProblem::Malformed)?.trim();
        let (scheme, rest) = value.split_once(' ').ok_or(HeaderProblem::Malformed)?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return Ok(bearer(rest));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            return basic(rest);
        }
        return Err(HeaderProblem::Malformed);
    }
    if let Some(token) = api_token.next() {
        if api_token.next().is_some() {
            return Err(HeaderProblem::Malformed);
        }
        let token = token.to_str().map_err(|_| HeaderProblem::Malformed)?.trim();
        return Ok(Presented::Token(Secret::new(token.to_owned())));
    }
    Err(HeaderProblem::Missing)
}

fn bearer(value: &str) -> Presented {
    if value.starts_with(TOKEN_PREFIX) {
        Presented::Token(Secret::new(value.to_owned()))
    } else {
        Presented::Key {
            username: None,
            key: Secret::new(value.to_owned()),
        }
    }
}

fn basic(encoded: &str) -> Result<Presented, HeaderProblem> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| HeaderProblem::Malformed)?;
    let text = String::from_utf8(decoded).map_err(|_| HeaderProblem::Malformed)?;
    let (username, key) = text.split_once(':').ok_or(HeaderProblem::Malformed)?;
    // `curl -u "$KEY:"`, as with Stripe: the key alone, as the username.
    if key.is_empty() {
        return Ok(bearer(username));
    }
    Ok(Presented::Key {
        username: Some(username.to_owned()),
        key: Secret::new(key.to_owned()),
    })
}

pub fn has_secret_param(query: &str) -> bool {
    query.split('&').any(|pair| {
        let name = pair.split('=').next().unwrap_or("");
        SECRET_PARAMS.iter().any(|p| name.eq_ignore_ascii_case(p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(name, HeaderValue::from_str(value).expect("header"));
        map
    }

    #[test]
    fn bearer_keys_and_tokens_are_told_apart_by_prefix() {
        assert!(matches!(
            presented(&with("authorization", "Bearer kw_abc"), None),
            Ok(Presented::Key { username: None, .. })
        ));
        assert!(matches!(
            presented(&with("authorization", "bearer kwt_abc"), None),
            Ok(Presented::Token(_))
        ));
        assert!(matches!(
            presented(&with("x-api-token", "kwt_abc"), None),
            Ok(Presented::Token(_))
        ));
    }

    #[test]
    fn basic_carries_username_and_key() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("erp:kw_secret:with:colons");
        match presented(&with("authorization", &format!("Basic {encoded}")), None) {
            Ok(Presented::Key {
                username: Some(user),
                key,
            }) => {
                assert_eq!(user, "erp");
                assert_eq!(key.expose(), "kw_secret:with:colons");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn basic_with_the_key_as_username_and_no_password_is_the_key() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("kw_abc:");
        match presented(&with("authorization", &format!("Basic {encoded}")), None) {
            Ok(Presented::Key {
                username: None,
                key,
            }) => assert_eq!(key.expose(), "kw_abc"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn secrets_in_the_query_string_are_refused_even_with_a_header() {
        let headers = with("authorization", "Bearer kw_abc");
        for query in ["api_token=x", "a=1&token=x", "KEY=x", "access_token"] {
            assert_eq!(
                presented(&headers, Some(query)).err(),
                Some(HeaderProblem::SecretInQuery),
                "{query}"
            );
        }
        assert!(presented(&headers, Some("limit=5&tokens_total=1")).is_ok());
    }

    #[test]
    fn two_credentials_are_refused_whichever_they_are() {
        let mut headers = with("authorization", "Bearer kw_abc");
        headers.append("x-api-token", HeaderValue::from_static("kwt_abc"));
        assert_eq!(
            presented(&headers, None).err(),
            Some(HeaderProblem::Malformed)
        );
        let mut headers = with("x-api-token", "kwt_abc");
        headers.append("x-api-token", HeaderValue::from_static("kwt_abc"));
        assert_eq!(
            presented(&headers, None).err(),
            Some(HeaderProblem::Malformed)
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_told_apart() {
        assert_eq!(
            presented(&HeaderMap::new(), None).err(),
            Some(HeaderProblem::Missing)
        );
        for value in ["Bearer", "Digest abc", "Basic !!!", "Basic Zm9v"] {
            assert_eq!(
                presented(&with("authorization", value), None).err(),
                Some(HeaderProblem::Malformed),
                "{value}"
            );
        }
    }
}
