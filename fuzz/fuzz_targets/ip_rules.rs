//! IP rule parsing: never panics, prints what parses back to itself, and matching any address
//! never panics.
#![no_main]

use keyward::domain::ip_rule::IpRule;
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let (probe, text) = data.split_at(16);
    let Ok(text) = std::str::from_utf8(text) else { return };
    if let Ok(rule) = IpRule::parse(text) {
        assert_eq!(IpRule::parse(&rule.to_string()), Ok(rule), "round trip of {text:?}");
        let v6: [u8; 16] = probe.try_into().expect("16 bytes");
        let v4: [u8; 4] = probe[..4].try_into().expect("4 bytes");
        let _ = rule.matches(IpAddr::from(v6));
        let _ = rule.matches(IpAddr::from(v4));
    }
});
