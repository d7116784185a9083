//! Integration tests: the real server on port 0, a fresh database per test, spoken to over
//! HTTP; the CLI run as a process. One binary, so CI links once.

mod helpers;
mod nodes;
mod receiver;

mod auth_forms;
mod browser;
mod cli;
mod cluster;
mod config;
mod console;
mod errors;
mod faults;
mod history;
mod hostile;
mod ip_rules;
mod leaks;
mod management;
mod metrics;
mod migrate;
mod openapi;
mod opencart;
mod opencart_compat;
mod orders;
mod products;
mod rotation;
mod serve;
mod sessions;
mod store_story;
mod transfer;
mod webhooks;
