//! Keyward: the integration API of an online store, built around its API credentials.
//!
//! A request's way is short and straight: HTTP (`http`) → auth pipeline (`auth`) →
//! handler (`http::v1`) → domain (`domain`, `credentials`) → store (`store`).
//! See ARCHITECTURE.md for the module map and the invariants.

pub mod clock;
pub mod domain;
pub mod store;
