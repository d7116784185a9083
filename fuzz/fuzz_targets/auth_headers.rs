//! Reading credentials from arbitrary Authorization / X-Api-Token headers and query strings.
#![no_main]

use axum::http::{HeaderMap, HeaderValue};
use keyward::auth::presented;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let (Some(authorization), Some(token), query) = (parts.next(), parts.next(), parts.next()) else { return };
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(authorization) {
        headers.insert("authorization", value);
    }
    if let Ok(value) = HeaderValue::from_bytes(token) {
        headers.insert("x-api-token", value);
    }
    let query = query.and_then(|q| std::str::from_utf8(q).ok());
    let _ = presented(&headers, query);
});
