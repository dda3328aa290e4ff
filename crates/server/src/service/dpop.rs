//! DPoP proofs at the token endpoint (RFC 9449 §4.3, §5): the proof checked for this request's method and URL
//! (by keyward-client's checks, the same a resource server runs) before the client is authenticated, its `jti`
//! spent once across the cluster for the proof's window after (one database write), and server nonces (§8) when
//! `dpop_nonce_interval` is set: stateless, an HMAC of the interval's number under the pepper, so every node makes
//! and accepts the same ones without sharing anything but the master key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use keyward_client::dpop::{self, CheckedProof, DpopError};
use keyward_core::{ErrorCode, OAuthError};
use std::sync::Arc;

use crate::crypto::{MasterKeys, sha256};
use crate::store::{Store, StoreError};

/// The `DPoP` header of a token request, as the edge found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofHeader<'a> {
    /// None was sent.
    Absent,
    /// One, as text.
    One(&'a str),
    /// Several, or one that is not text: never a valid proof (RFC 9449 §4.3 item 1).
    Malformed,
}

/// Why a token request's proof was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProofRefusal {
    /// RFC 9449 §5: `invalid_dpop_proof`, or §8: `use_dpop_nonce`.
    #[error("{0}")]
    OAuth(OAuthError),
    /// The store failed while spending the `jti`.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks DPoP proofs at the token endpoint.
pub struct DpopProofs {
    /// Where proof `jti`s are spent.
    pub store: Store,
    /// The pepper, which keys the nonces.
    pub master: Arc<MasterKeys>,
    /// How long a nonce interval lasts, seconds; `None` when nonces are not required.
    pub nonce_interval: Option<i64>,
}

fn invalid(description: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidDpopProof, description)
}

impl DpopProofs {
    /// The nonce to hand out at `now` (RFC 9449 §8), when nonces are required.
    pub fn nonce(&self, now: i64) -> Option<String> {
        self.nonce_interval
            .map(|every| self.nonce_of(now.div_euclid(every)))
    }

    fn nonce_of(&self, interval: i64) -> String {
        let mac = self.master.digest(&format!("dpop-nonce\0{interval}"));
        format!("{interval}.{}", B64.encode(&mac[..18]))
    }

    /// The nonces accepted at `now`: this interval's and its neighbours', so a nonce stays good across an interval
    /// boundary and across nodes whose clocks differ by less than an interval.
    fn accepted(&self, now: i64) -> Vec<String> {
        let Some(every) = self.nonce_interval else {
            return Vec::new();
        };
        let current = now.div_euclid(every);
        (current - 1..=current + 1)
            .map(|i| self.nonce_of(i))
            .collect()
    }

    /// Checks the proof of a token request to `htu` (the endpoint's URL) at `now`, writing nothing: `None` when
    /// none was sent. Run before the client is authenticated, so that a proof refused (a missing nonce, above
    /// all) costs the client nothing it cannot send again, such as a single-use platform token.
    pub fn check(
        &self,
        header: ProofHeader<'_>,
        htu: &str,
        now: i64,
    ) -> Result<Option<CheckedProof>, OAuthError> {
        let proof = match header {
            ProofHeader::Absent => return Ok(None),
            ProofHeader::Malformed => {
                return Err(invalid("send exactly one DPoP header, as text"));
            }
            ProofHeader::One(p) => p,
        };
        let nonces = self.accepted(now);
        let nonces: Vec<&str> = nonces.iter().map(String::as_str).collect();
        match dpop::check(proof, "POST", htu, now, None, &nonces) {
            Ok(checked) => Ok(Some(checked)),
            Err(DpopError::Proof(keyward_core::dpop::DpopError::Nonce)) => Err(OAuthError::new(
                ErrorCode::UseDpopNonce,
                "use the nonce in the DPoP-Nonce header in the DPoP proof",
            )),
            Err(e) => Err(invalid(format!("DPoP proof refused: {e}"))),
        }
    }

    /// Spends a checked proof's `jti` across the cluster until its `iat` is too old (RFC 9449 §11.1): the one
    /// write a DPoP token request costs, made once the client is authenticated.
    pub async fn spend(&self, proof: &CheckedProof, now: i64) -> Result<(), ProofRefusal> {
        // Per key, so one client's ids never collide with another's; a digest, so any id takes one short row.
        let digest = sha256(format!("dpop\0{}\0{}", proof.jkt, proof.jti).as_bytes());
        let key = format!("dpop:{}", B64.encode(digest));
        if self
            .store
            .spend_once(&key, proof.spend_until(), now)
            .await?
        {
            Ok(())
        } else {
            Err(ProofRefusal::OAuth(invalid(
                "the DPoP proof was used before",
            )))
        }
    }
}
