//! Key and token recognition: any text is judged without panicking, a key that passes its
//! checksum keeps passing it, and a token names a positive session number. Webhook URLs and event lists, typed by administrators, likewise.
#![no_main]

use keyward::domain::api_key::{self, KeyShape};
use keyward::domain::token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let shape = api_key::inspect(text);
    let _ = api_key::hint(text);
    if let Some((id, hash)) = token::parse(text) {
        assert!(id.0 > 0, "a session number is positive");
        assert_eq!(token::parse(text), Some((id, hash)));
    }
    let _ = keyward::domain::secret::redact(text);
    if let Ok(url) = keyward::domain::webhook::WebhookUrl::parse(text) {
        assert!(url.as_str().starts_with("http://") || url.as_str().starts_with("https://"));
        let _ = url.origin();
    }
    let _ = keyward::domain::webhook::EventTypes::parse(&[text]);
    if let Ok(KeyShape::Generated) = shape {
        let key = api_key::ApiKey::import(text).expect("a key that passed inspection imports");
        assert_eq!(key.shape(), KeyShape::Generated);
    }
});
