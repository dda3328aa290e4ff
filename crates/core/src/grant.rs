//! Grant decisions: given an authenticated client, the request and the catalogue, what may be issued.

pub mod authorization_code;
pub mod client_credentials;

use crate::resource::SigningAlg;
use crate::scope::ScopeSet;

/// What a grant decision allows: the token to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The resource identifier, put in `aud`.
    pub audience: String,
    /// The scopes granted.
    pub scope: ScopeSet,
    /// Lifetime in seconds.
    pub ttl: i64,
    /// The algorithm to sign with.
    pub alg: SigningAlg,
}
