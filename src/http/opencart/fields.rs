//! The fields of an OpenCart call, read the way PHP fills `$_GET` and `$_POST`: the query
//! string, and a form-encoded or multipart body (what `curl_setopt(CURLOPT_POSTFIELDS, …)`
//! sends for a string or an array). Any other body is ignored, as PHP ignores it. When a name
//! repeats, the last value wins, as in PHP.
//!
//! The values include keys and tokens, so this type has no `Debug`.

use crate::domain::history::Outcome;
use crate::domain::secret::Secret;
use crate::domain::token::TOKEN_PREFIX;
use crate::http::error::ApiError;
use crate::http::extract::{FormKind, body_rejection, form_data, form_kind};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};

/// PHP's default `max_input_vars`: more fields than this are not read.
const MAX_FIELDS: usize = 1000;

#[derive(Default)]
pub struct Fields {
    get: Vec<(String, String)>,
    post: Vec<(String, String)>,
}

impl Fields {
    /// The query string alone, before the body is read.
    pub fn query(query: Option<&str>) -> Self {
        Self {
            get: pairs(query.unwrap_or("").as_bytes()),
            post: Vec::new(),
        }
    }

    /// Adds the body's fields.
    pub async fn read_body(&mut self, request: Request) -> Result<(), ApiError> {
        match form_kind(request.headers()) {
            Some(FormKind::UrlEncoded) => {
                let bytes = Bytes::from_request(request, &())
                    .await
                    .map_err(body_rejection)?;
                self.post = pairs(&bytes);
            }
            Some(FormKind::Multipart) => self.post = form_data(request, MAX_FIELDS).await?,
            None => {}
        }
        Ok(())
    }

    /// `$_GET[name]`.
    pub fn get(&self, name: &str) -> Option<&str> {
        last(&self.get, name)
    }

    /// `$_POST[name]`.
    pub fn post(&self, name: &str) -> Option<&str> {
        last(&self.post, name)
    }

    /// A field OpenCart reads from the query string, also taken from the body.
    pub fn get_or_post(&self, name: &str) -> Option<&str> {
        self.get(name).or_else(|| self.post(name))
    }

    /// The session token, as `api_token` (OpenCart 3.0 and later) or `token` (2.x), in the
    /// query string or the body. A caller that sends both, say an admin token beside the API
    /// token as in the write-up of OpenCart's mix-up, gets the one that is a session token;
    /// two different session tokens are refused.
    pub fn token(&self) -> Result<Secret, ApiError> {
        // A key written into the URL — as the login's `key`, where the token belongs, or in
        // any other parameter — is refused like any secret in a URL, so the history tells the
        // admin that this key has leaked into logs.
        let key_in_url = self.get("key").is_some_and(|key| !key.is_empty())
            || self
                .get
                .iter()
                .any(|(_, value)| crate::domain::api_key::looks_like_key(value));
        if key_in_url {
            return Err(ApiError::secret_in_query());
        }
        let candidates = [
            (self.get("api_token"), true),
            (self.post("api_token"), false),
            (self.get("token"), true),
            (self.post("token"), false),
        ];
        let present = candidates
            .into_iter()
            .filter_map(|(value, in_url)| value.filter(|v| !v.is_empty()).map(|v| (v, in_url)));
        // Two different session tokens: which one was meant is a guess, and a guess could run
        // the call as another API user than its sender checks (the API refuses two
        // credentials the same way).
        let mut sessions = present.clone().filter(|(v, _)| v.starts_with(TOKEN_PREFIX));
        if let Some((first, _)) = sessions.next()
            && sessions.any(|(other, _)| other != first)
        {
            return Err(ApiError::unauthorized(Outcome::MalformedCredentials));
        }
        let (token, _) = present
            .clone()
            .find(|(v, _)| v.starts_with(TOKEN_PREFIX))
            .or_else(|| present.clone().next())
            .ok_or_else(|| ApiError::unauthorized(Outcome::MissingCredentials))?;
        Ok(Secret::new(token.to_owned()))
    }
}

fn last<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Form-encoded pairs; invalid UTF-8 is replaced, as PHP would pass it through.
fn pairs(bytes: &[u8]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes).unwrap_or_default();
    pairs.truncate(MAX_FIELDS);
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(query: &str, body: &str) -> Fields {
        Fields {
            get: pairs(query.as_bytes()),
            post: pairs(body.as_bytes()),
        }
    }

    #[test]
    fn the_last_value_of_a_repeated_name_wins_as_in_php() {
        let f = fields("order_id=1&order_id=2", "comment=a+b&comment=c%20d");
        assert_eq!(f.get("order_id"), Some("2"));
        assert_eq!(f.post("comment"), Some("c d"));
        assert_eq!(f.get("comment"), None);
        assert_eq!(f.get_or_post("comment"), Some("c d"));
    }

    #[test]
    fn the_token_is_found_under_either_name_and_in_either_place() {
        for (query, body) in [
            ("api_token=kwt_a", ""),
            ("token=kwt_a", ""),
            ("", "api_token=kwt_a"),
            ("", "token=kwt_a"),
            ("token=admin-session&api_token=kwt_a", ""),
            ("api_token=admin-session&token=kwt_a", ""),
        ] {
            let token = fields(query, body).token().expect(query);
            assert_eq!(token.expose(), "kwt_a", "{query} {body}");
        }
    }

    #[test]
    fn a_missing_token_or_a_key_in_its_place_is_refused_with_its_reason() {
        let missing = fields("route=api/order/info&api_token=", "").token();
        assert_eq!(
            missing.err().map(|e| e.outcome()),
            Some(Outcome::MissingCredentials)
        );
        let key = fields(&format!("api_token=kw_{}", "a".repeat(61)), "").token();
        assert_eq!(key.err().map(|e| e.outcome()), Some(Outcome::SecretInQuery));
        // A value that only starts as a key does (a store named kw_shop) is no leak.
        assert!(fields("store=kw_shop&api_token=kwt_a", "").token().is_ok());
        assert!(fields("key=&api_token=kwt_a", "").token().is_ok());
        // In a body it is no leak: it is checked, and refused, as the token it is not.
        assert!(fields("", "api_token=kw_abc").token().is_ok());
        let unknown = fields("api_token=something-else", "").token();
        assert_eq!(
            unknown.ok().map(|t| t.expose().to_owned()),
            Some("something-else".to_owned())
        );
    }

    #[test]
    fn a_broken_query_string_reads_as_what_it_can() {
        let f = fields("a=%ff%fe&&=x&b", "");
        assert!(f.get("a").is_some());
        assert_eq!(f.get("b"), Some(""));
    }
}
