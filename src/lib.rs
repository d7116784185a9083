//! Keyward: the integration API of an online store, built around its API credentials.
//!
//! A request's way is short and straight: HTTP (`http`) → auth pipeline (`auth`) →
//! handler (`http::v1`) → domain (`domain`, `credentials`) → store (`store`).
//! See ARCHITECTURE.md for the module map and the invariants.

pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod credentials;
pub mod demo;
pub mod domain;
pub mod history;
pub mod http;
pub mod serve;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod transfer;
pub mod webhooks;
