//! The domain: credentials, history and the store, free of HTTP and SQL.

pub mod admin;
pub mod api_key;
pub mod api_user;
pub mod catalog;
pub mod duration;
pub mod history;
pub mod ids;
pub mod ip_rule;
pub mod money;
pub mod scope;
pub mod secret;
pub mod token;
pub mod username;
pub mod validation;
pub mod webhook;
