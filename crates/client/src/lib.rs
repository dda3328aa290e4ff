//! keyward-client: Keyward for both ends of an API call.
//!
//! The API side embeds [`Verifier`] to check Keyward access tokens: local JWT verification against the issuer's
//! JWKS (fetched through discovery, cached, refetched on rotation), or introspection where revocation must be
//! honoured at once; a tower layer with per-route scopes that also checks DPoP-bound tokens (RFC 9449 §7: the
//! proof, `ath`, `cnf.jkt`, replayed `jti`s) on every request; an axum extractor for the claims; RFC 6750 and
//! RFC 9449 answers for every failure. [`dpop`] checks a DPoP proof whole, for the Keyward server's token endpoint
//! too.
//!
//! The calling side (the integrator) holds a [`TokenSource`]: it gets a token with the client credentials grant
//! from Keyward or any OAuth 2.0 server (with a [`Preset`] for each service the seed documents describe), caches
//! it, refreshes it ahead of expiry, and [`AttachTokenLayer`] adds it to outgoing requests. Without a shared
//! secret, it signs `private_key_jwt` assertions with a [`SigningKey`] or sends a platform's token
//! ([`source::Credential`]), and binds tokens to a DPoP key, with a proof per API call.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use keyward_client::{Verified, Verifier};
//!
//! # async fn run() -> Result<(), String> {
//! let verifier = Verifier::builder("https://auth.example.com")
//!     .audience("https://api.example.com")
//!     .build()?;
//! let app: Router = Router::new().route(
//!     "/orders/{id}",
//!     get(|Verified(claims): Verified| async move { claims.client_id })
//!         .layer(verifier.layer().require_scope("orders:read")),
//! );
//! # Ok(()) }
//! ```

mod bound;
mod cache;
mod claims;
mod clock;
pub mod dpop;
mod fetch;
mod introspect;
mod key;
mod layer;
mod outgoing;
mod presented;
mod proof;
mod secret;
mod signing;
pub mod source;
mod verify;

pub use fetch::{HttpClient, client_trusting, get_json, read_ca_file, tls_config};
pub use key::{PublicKey, parse_jwks};
pub use keyward_core::assertion::AssertionAlg;
pub use layer::{Mode, Verified, VerifyLayer, VerifyService};
pub use outgoing::{AttachToken, AttachTokenLayer, token_refused};
pub use proof::{DPOP, DPOP_NONCE, nonce_required as dpop_nonce_required};
pub use secret::Secret;
pub use signing::SigningKey;
pub use source::{AccessToken, Preset, Status, TokenError, TokenSource};
pub use verify::{Builder, Claims, Verifier, VerifyError};
