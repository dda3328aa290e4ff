//! Integration tests: the real server on 127.0.0.1:0 with a real HTTP client, on a temporary SQLite file and on a
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]
//! fresh PostgreSQL database per test. `both_engines!` runs a test once on each.

mod account_self;
mod accounts;
mod admin;
mod admin_input;
mod agent;
mod browser;
mod child;
mod cli;
mod client_assertions;
mod clocks;
mod cluster;
mod concurrency;
mod consent;
mod console;
mod console_browser;
mod console_keys;
mod console_keys_browser;
mod crash;
mod delegated;
mod deleted;
mod discovery;
mod dpop;
mod dpop_issue;
mod examples;
mod federation;
mod forms;
mod gateway;
mod harness;
mod interop;
mod introspect;
mod jws;
mod keyless_source;
mod keys;
mod keys_cli;
mod limits;
mod mail;
mod native;
mod nginx;
mod oauth_agent;
mod observability;
mod operator;
mod otel;
mod outage;
mod pg;
mod readiness;
mod refresh_tokens;
mod schemathesis;
mod serve;
mod slow;
mod spent;
mod tls;
mod token;
mod token_source;
mod unstorable;
mod verify;
