//! Every request body of the API: arbitrary bytes give a value or a clear error, and a value
//! that deserialises validates without panicking.
#![no_main]

use keyward::domain::catalog::{
    CustomerInput, CustomerPatch, OrderHistoryInput, OrderInput, ProductInput, ProductPatch, StockUpdate,
};
use keyward::domain::money::Money;
use keyward::http::extract::parse_json;
use keyward::http::v1::leaks::LeakReport;
use keyward::http::v1::session::LoginRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = parse_json::<ProductInput>(data) {
        let _ = v.validate();
    }
    if let Ok(v) = parse_json::<ProductPatch>(data) {
        let _ = v.validate();
    }
    if let Ok(v) = parse_json::<StockUpdate>(data) {
        let _ = v.validate();
    }
    if let Ok(v) = parse_json::<CustomerInput>(data) {
        let _ = v.validate();
    }
    if let Ok(v) = parse_json::<CustomerPatch>(data) {
        let _ = v.validate();
    }
    if let Ok(v) = parse_json::<OrderInput>(data) {
        let _ = v.validate();
    }
    if let Ok(v) = parse_json::<OrderHistoryInput>(data) {
        let _ = v.validate();
    }
    let _ = parse_json::<LoginRequest>(data);
    if let Ok(report) = parse_json::<LeakReport>(data) {
        for key in &report.keys {
            let _ = keyward::domain::api_key::inspect(key.trim());
        }
    }
    if let Ok(money) = parse_json::<Money>(data) {
        assert_eq!(money.to_string().parse::<Money>(), Ok(money));
    }
});
