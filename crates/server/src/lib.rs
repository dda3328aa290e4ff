//! Keyward, the server: everything that touches a socket, a disk or the clock. Protocol decisions are in
//! `keyward-core`; this crate loads what they need, persists, signs and speaks HTTP.
//!
//! Layers, each importing only those below it (docs/ARCHITECTURE.md draws them):
//! - edges: `serve` (wires `http` and `web` with the background tasks), `http`, `web`, `gateway`, `agent`, `cli`;
//! - wiring and background: `app` (the server's), `toolkit` (the CLI's), `startup`, `first_start`, `follower`,
//!   `housekeeping`;
//! - services: `service` (issuer, delegated access, admin, accounts, sessions, consents, API keys);
//! - shared parts: `memory`, `registry`, `remote_keys`, `keys`, `limits`, `usage`, `metrics`, `feed`, `refresh`,
//!   `config`;
//! - ground: `store`, `crypto`, `clock`, `conn`, `otel`.

pub mod agent;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod conn;
pub mod crypto;
pub mod feed;
pub mod first_start;
pub mod follower;
pub mod gateway;
pub mod housekeeping;
pub mod http;
pub mod keys;
pub mod limits;
pub mod mail;
pub mod memory;
pub mod metrics;
pub mod otel;
pub mod refresh;
pub mod registry;
pub mod remote_keys;
pub mod serve;
pub mod service;
pub mod startup;
pub mod store;
pub mod toolkit;
pub mod usage;
pub mod web;
