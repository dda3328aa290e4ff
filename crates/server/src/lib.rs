//! Keyward, the server: everything that touches a socket, a disk or the clock. Protocol decisions are in
//! `keyward-core`; this crate loads what they need, persists, signs and speaks HTTP.

pub mod accounts;
pub mod admin;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod conn;
pub mod console;
pub mod crypto;
pub mod delegated;
pub mod error;
pub mod feed;
pub mod gateway;
pub mod http;
pub mod issuer;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod otel;
pub mod refresh;
pub mod registry;
pub mod store;
pub mod usage;
pub mod web;
pub mod xml;
