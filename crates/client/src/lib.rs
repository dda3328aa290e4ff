//! keyward-client: Keyward for the API side. A Rust API embeds [`Verifier`] to check Keyward access tokens:
//! local JWT verification against the issuer's JWKS (fetched through discovery, cached, refetched on rotation),
//! or introspection where revocation must be honoured at once; a tower layer with per-route scopes; an axum
//! extractor for the claims; RFC 6750 answers for every failure.
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

mod cache;
mod claims;
mod clock;
mod fetch;
mod introspect;
mod key;
mod layer;
mod verify;

pub use key::{PublicKey, parse_jwks};
pub use layer::{Mode, Verified, VerifyLayer, VerifyService};
pub use verify::{Builder, Claims, Verifier, VerifyError};
