//! Rows as both backends read them, one file per area, and their conversion into domain
//! types. The columns and their types are the same in both backends, so only the SQL that
//! fetches a row differs: a 32-bit column (`status` of the history and of idempotency records)
//! is read as `i32`, which SQLite's integers decode into as well.

pub(crate) mod admin;
pub(crate) mod api_users;
pub(crate) mod customers;
pub(crate) mod history;
pub(crate) mod idempotency;
pub(crate) mod orders;
pub(crate) mod products;
pub(crate) mod sessions;
pub(crate) mod webhooks;
