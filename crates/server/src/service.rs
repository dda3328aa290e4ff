//! The services: one struct per concern, each holding only the shared parts it uses, each answering with its own
//! error type. They sit between the lower layers (store, registry, key ring, limits, clock) and the edges (`http`,
//! `web`, the CLI), which extract, call one service and render.
//!
//! Who calls whom: `Issuer` → `Delegated` (the delegated grants at the token endpoint); `Consents` and `Accounts`
//! → `Delegated` (revoking grants); `ApiKeys` → `Admin` (an account's keys are clients). Nothing calls back up.

pub mod accounts;
pub mod actor;
pub mod admin;
pub mod api_keys;
pub mod consents;
pub mod delegated;
pub mod issuer;
pub mod sessions;

pub use accounts::Accounts;
pub use actor::Actor;
pub use admin::Admin;
pub use api_keys::ApiKeys;
pub use consents::Consents;
pub use delegated::Delegated;
pub use issuer::Issuer;
pub use sessions::Sessions;
