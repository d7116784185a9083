//! The client address from arbitrary Forwarded / X-Forwarded-For headers: never panics, and
//! an untrusted peer is always its own address.
#![no_main]

use axum::http::{HeaderMap, HeaderValue};
use keyward::auth::{ForwardedHeader, TrustedProxies};
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let (peer, rest) = data.split_at(4);
    let peer = IpAddr::from(<[u8; 4]>::try_from(peer).expect("4 bytes"));
    let mut headers = HeaderMap::new();
    for (i, value) in rest.split(|b| *b == b'\n').enumerate() {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(if i % 2 == 0 { "x-forwarded-for" } else { "forwarded" }, value);
        }
    }
    for header in [ForwardedHeader::XForwardedFor, ForwardedHeader::Forwarded] {
        let trusting = TrustedProxies::new(vec!["0.0.0.0/0".parse().expect("net")], header);
        let _ = trusting.resolve(peer, &headers);
        let untrusting = TrustedProxies::new(Vec::new(), header);
        assert_eq!(untrusting.resolve(peer, &headers), peer.to_canonical());
    }
});
