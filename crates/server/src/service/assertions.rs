//! Client authentication by JWT assertion (`private_key_jwt`, RFC 7523 §2.2, RFC 7521 §4.2): the client's own
//! assertion checked against its registered keys (inline, or fetched from its `jwks_uri`), or a workload's platform
//! token checked against the client's federated credentials and the issuer's published keys. The claims are
//! `keyward_core::assertion`'s decisions; this signs nothing, checks the signature, and spends the `jti` once across
//! the cluster (one database write, after the signature is good, so a forged assertion costs none).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use keyward_client::PublicKey;
use keyward_core::assertion::{self, AssertionError, Unverified};

use crate::crypto::sha256;
use crate::registry::CachedClient;
use crate::remote_keys::{RemoteKeys, Source, candidates};
use crate::store::{Store, StoreError};

/// Why an assertion did not authenticate its client. Every refusal reaches the client as the same
/// `invalid_client`; the reason is for the log.
#[derive(Debug, thiserror::Error)]
pub enum AssertionRefusal {
    /// The header or claims are refused.
    #[error(transparent)]
    Claims(#[from] AssertionError),
    /// The client has no keys or federated credentials.
    #[error("the client has no keys to check assertions with")]
    NoKeys,
    /// No key of the client (or of the issuer) verifies the signature.
    #[error("no key verifies the signature")]
    Signature,
    /// The keys could not be fetched.
    #[error("keys unavailable: {0}")]
    KeysUnavailable(String),
    /// The `jti` was spent before: a replay.
    #[error("the jti was used before")]
    Replayed,
    /// The store failed while spending the `jti`.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks client assertions: its own service, so the issuer's secret path carries none of this.
pub struct Assertions {
    /// Where `jti`s are spent.
    pub store: Store,
    /// Keys fetched from `jwks_uri`s and federated issuers.
    pub remote: Arc<RemoteKeys>,
    /// Keyward's own names an assertion's `aud` may hold: its issuer and its endpoints' URLs (RFC 7523 §3 item 3).
    pub audiences: Vec<String>,
}

impl Assertions {
    /// Authenticates `client` by `assertion` at `now` (the cluster's time, which decides when a spent `jti` may be
    /// forgotten).
    pub async fn authenticate(
        &self,
        client: &CachedClient,
        assertion: &str,
        now: i64,
    ) -> Result<(), AssertionRefusal> {
        let keys = client.keys.as_deref().ok_or(AssertionRefusal::NoKeys)?;
        let id = &client.client.id;
        let iss = assertion::claimed_issuer(assertion)
            .ok_or(AssertionError::Malformed("no iss claim"))?;
        let (token, issuer, kind) = if iss == *id {
            // The client's own assertion (RFC 7523 §3 item 1: `iss` is the client).
            let audiences: Vec<&str> = self.audiences.iter().map(String::as_str).collect();
            let a = assertion::check(assertion, id, &audiences, now)?;
            let (kid, alg) = (a.kid.as_deref(), a.alg.name());
            if !verifies(candidates(&keys.inline, kid, alg), &a) {
                let Some(uri) = &keys.jwks_uri else {
                    return Err(AssertionRefusal::Signature);
                };
                let fetched = self.fetch(Source::Jwks(uri), &a).await?;
                if !verifies(candidates(&fetched, kid, alg), &a) {
                    return Err(AssertionRefusal::Signature);
                }
            }
            (a, id.as_str(), "client")
        } else {
            // A workload's platform token (workload identity federation).
            let f = assertion::check_federated(assertion, &keys.federated, now)?;
            let issuer = keys.federated[f.credential].issuer.as_str();
            let t = f.token;
            let fetched = self.fetch(Source::Issuer(issuer), &t).await?;
            if !verifies(candidates(&fetched, t.kid.as_deref(), t.alg.name()), &t) {
                return Err(AssertionRefusal::Signature);
            }
            (t, issuer, "federated")
        };
        match &token.jti {
            Some(jti) => self.spend(kind, issuer, jti, token.spend_until, now).await,
            None => Ok(()),
        }
    }

    /// The keys of `source` that may check `token`.
    async fn fetch(
        &self,
        source: Source<'_>,
        token: &Unverified<'_>,
    ) -> Result<Arc<[PublicKey]>, AssertionRefusal> {
        self.remote
            .keys(source, (token.kid.as_deref(), token.alg.name()))
            .await
            .map_err(AssertionRefusal::KeysUnavailable)
    }

    /// Spends a `jti` of `issuer` until `until` (RFC 7523 §3 item 7). The row's key is a digest, so ids of any
    /// length from any issuer take one short row.
    async fn spend(
        &self,
        kind: &str,
        issuer: &str,
        jti: &str,
        until: i64,
        now: i64,
    ) -> Result<(), AssertionRefusal> {
        let digest = sha256(format!("{kind}\0{issuer}\0{jti}").as_bytes());
        let key = format!("jti:{}", B64.encode(digest));
        if self.store.spend_once(&key, until, now).await? {
            Ok(())
        } else {
            Err(AssertionRefusal::Replayed)
        }
    }
}

/// Whether any of `keys` verifies `token`'s signature.
fn verifies<'a>(mut keys: impl Iterator<Item = &'a PublicKey>, token: &Unverified<'_>) -> bool {
    keys.any(|k| k.verify(token.signing_input.as_bytes(), &token.signature))
}
