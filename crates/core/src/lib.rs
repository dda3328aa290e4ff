//! Keyward's OAuth 2.0 protocol decisions: parsing of untrusted input, the client_credentials grant, token claims,
//! key rotation plans. No I/O, no clock, no async: every function takes the data and `now` it decides on, so each
//! rule is tested here without a runtime or a database.

pub mod account;
pub mod assertion;
pub mod basic;
pub mod client;
pub mod console;
pub mod dpop;
pub mod duration;
pub mod endpoint;
pub mod error;
pub mod form;
pub mod grant;
pub mod introspect;
pub mod jwt;
pub mod keys;
pub mod limit;
pub mod net;
pub mod pkce;
pub mod redirect;
pub mod registration;
pub mod resource;
pub mod scope;
pub mod totp;

pub use error::{ErrorCode, OAuthError};
