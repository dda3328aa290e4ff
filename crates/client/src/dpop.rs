//! DPoP proofs checked whole (RFC 9449 §4.3), for a resource server (the verifier and its layer) and for a token
//! endpoint (the Keyward server): keyward-core's header and claim checks, then the signature with the proof's own
//! key, its thumbprint (`jkt`, RFC 7638) and the access token hash (`ath`) with aws-lc-rs. [`ReplayCache`]
//! refuses a proof's `jti` a second time while its `iat` could still pass; spending it is the caller's last step.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use keyward_core::assertion::AssertionAlg;
use keyward_core::dpop::{self as rules, Expected};
use serde_json::Value;

use crate::key::PublicKey;

pub use keyward_core::dpop::{IAT_MAX_AGE, IAT_MAX_AHEAD, MAX_JTI, normalize_url};

/// The algorithms a proof may be signed with, as the `algs` of a `DPoP` challenge (RFC 9449 §7.1) and
/// `dpop_signing_alg_values_supported` (RFC 9449 §5.1) list them.
pub const ALGS: &str = "ES256 PS256 RS256 EdDSA";
/// How many proofs a [`ReplayCache`] remembers by default: its window is [`IAT_MAX_AGE`] +
/// [`IAT_MAX_AHEAD`] seconds, so this is about 1,300 proofs a second, sustained, in about 10 MB.
pub const DEFAULT_REPLAY_CACHE: usize = 100_000;

/// A proof that passed every check of RFC 9449 §4.3 but the replay check: what the caller binds and spends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedProof {
    /// The base64url SHA-256 thumbprint of the proof's key (RFC 7638): `cnf.jkt` of a token bound to it.
    pub jkt: String,
    /// The proof's `jti`, to spend once.
    pub jti: String,
    /// The proof's `iat`, Unix seconds: the `jti` must stay spent until `iat` + [`IAT_MAX_AGE`].
    pub iat: i64,
    /// The algorithm the proof is signed with.
    pub alg: AssertionAlg,
}

impl CheckedProof {
    /// Until when its `jti` must stay spent (Unix seconds).
    pub fn spend_until(&self) -> i64 {
        rules::spend_until(self.iat)
    }
}

/// Why a proof is refused; the text is for the log and the `error_description` (RFC 9449 §7.1
/// `invalid_dpop_proof`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    /// A header or claim check of RFC 9449 §4.3 failed.
    #[error(transparent)]
    Proof(#[from] rules::DpopError),
    /// The proof's `jwk` cannot be used with its `alg` (wrong curve, RSA under 2048 bits, bad encoding).
    #[error("unusable jwk: {0}")]
    Key(String),
    /// The signature does not verify with the proof's own key.
    #[error("bad proof signature")]
    Signature,
    /// The proof's `jti` was seen before within its window (RFC 9449 §11.1).
    #[error("the proof was used before")]
    Replayed,
    /// The replay cache is full of proofs still in their window: refused rather than forgetting one.
    #[error("too many proofs at once; try again shortly")]
    Busy,
}

/// RFC 9449 §4.3: checks `proof` (a `DPoP` header's value) for a request with `method` to `url` at `now`. With
/// `access_token`, its `ath` must be the token's hash (RFC 9449 §7); with `nonces`, its `nonce` must be one of
/// them (empty: no nonce asked for). The `jti` is not spent here: [`ReplayCache::spend`] does it, once every
/// other check of the request has passed.
pub fn check(
    proof: &str,
    method: &str,
    url: &str,
    now: i64,
    access_token: Option<&str>,
    nonces: &[&str],
) -> Result<CheckedProof, DpopError> {
    let ath = access_token.map(self::ath);
    let expected = Expected {
        method,
        url,
        ath: ath.as_deref(),
        nonces,
    };
    let unverified = rules::check(proof, &expected, now)?;
    let key = PublicKey::from_proof_jwk(&unverified.jwk, unverified.alg.name())
        .map_err(DpopError::Key)?;
    if !key.verify(unverified.signing_input.as_bytes(), &unverified.signature) {
        return Err(DpopError::Signature);
    }
    Ok(CheckedProof {
        jkt: thumbprint(&unverified.jwk)?,
        jti: unverified.jti,
        iat: unverified.iat,
        alg: unverified.alg,
    })
}

/// RFC 7638 §3: the base64url SHA-256 thumbprint of a public JWK (EC, RSA or OKP).
pub fn thumbprint(jwk: &Value) -> Result<String, DpopError> {
    let input = rules::thumbprint_input(jwk)?;
    Ok(B64.encode(digest(&SHA256, input.as_bytes())))
}

/// RFC 9449 §4.2 `ath`: the base64url SHA-256 of an access token.
pub fn ath(access_token: &str) -> String {
    B64.encode(digest(&SHA256, access_token.as_bytes()))
}

/// Proof `jti`s already used, each kept until its proof's `iat` is too old to pass (RFC 9449 §11.1), at most
/// `capacity` of them. Keyed by key thumbprint and `jti` together, so one client's `jti`s never block another's.
pub struct ReplayCache {
    capacity: usize,
    spent: Mutex<Spent>,
}

#[derive(Default)]
struct Spent {
    until: HashMap<[u8; 32], i64>,
    /// In the order spent, for dropping the expired from the front.
    order: VecDeque<(i64, [u8; 32])>,
}

impl ReplayCache {
    /// A cache of at most `capacity` proofs (at least one).
    pub fn new(capacity: usize) -> Self {
        ReplayCache {
            capacity: capacity.max(1),
            spent: Mutex::new(Spent::default()),
        }
    }

    /// Spends a checked proof's `jti` at `now`: [`DpopError::Replayed`] if it was spent before and is still
    /// remembered, [`DpopError::Busy`] if the cache is full of proofs still in their window.
    pub fn spend(&self, proof: &CheckedProof, now: i64) -> Result<(), DpopError> {
        let mut key = [0u8; 32];
        let text = format!("{} {}", proof.jkt, proof.jti);
        key.copy_from_slice(digest(&SHA256, text.as_bytes()).as_ref());
        let until = proof.spend_until();
        let mut spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        // Proofs are spent in roughly `iat` order, so the front holds the first to expire; one spent out of
        // order only stays a little longer than it must.
        while let Some(&(first, k)) = spent.order.front() {
            if first >= now {
                break;
            }
            spent.order.pop_front();
            if spent.until.get(&k) == Some(&first) {
                spent.until.remove(&k);
            }
        }
        if spent.until.get(&key).is_some_and(|&u| u >= now) {
            return Err(DpopError::Replayed);
        }
        if spent.until.len() >= self.capacity {
            tracing::warn!(
                capacity = self.capacity,
                "keyward-client: DPoP replay cache full; proofs refused until entries expire"
            );
            return Err(DpopError::Busy);
        }
        spent.until.insert(key, until);
        spent.order.push_back((until, key));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const URL: &str = "https://api.example.com/orders/1";

    fn key() -> (EcdsaKeyPair, Value) {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..])});
        (pair, jwk)
    }

    fn sign(pair: &EcdsaKeyPair, header: Value, claims: Value) -> String {
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }

    fn proof(pair: &EcdsaKeyPair, jwk: &Value, jti: &str, iat: i64) -> String {
        sign(
            pair,
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}),
            json!({"jti": jti, "htm": "GET", "htu": URL, "iat": iat, "ath": ath("tok")}),
        )
    }

    #[test]
    fn a_signed_proof_passes_and_gives_the_thumbprint() {
        let (pair, jwk) = key();
        let p = proof(&pair, &jwk, "j1", NOW);
        let checked = check(&p, "GET", URL, NOW, Some("tok"), &[]).unwrap();
        assert_eq!(checked.jkt, thumbprint(&jwk).unwrap());
        assert_eq!(
            (checked.jti.as_str(), checked.iat, checked.alg),
            ("j1", NOW, AssertionAlg::ES256)
        );
        assert_eq!(
            check(&p, "GET", URL, NOW, Some("another"), &[]),
            Err(DpopError::Proof(rules::DpopError::AccessTokenHash(
                "does not match the access token"
            )))
        );
        assert_eq!(ALGS, AssertionAlg::ALL.map(AssertionAlg::name).join(" "));
    }

    #[test]
    fn a_proof_signed_by_another_key_or_tampered_is_refused() {
        let (pair, jwk) = key();
        let (other, _) = key();
        let forged = proof(&other, &jwk, "j1", NOW);
        assert_eq!(
            check(&forged, "GET", URL, NOW, Some("tok"), &[]),
            Err(DpopError::Signature)
        );
        let good = proof(&pair, &jwk, "j1", NOW);
        let mut parts: Vec<&str> = good.split('.').collect();
        let claims = B64.encode(
            json!({"jti": "j1", "htm": "POST", "htu": URL, "iat": NOW, "ath": ath("tok")})
                .to_string(),
        );
        parts[1] = &claims;
        assert_eq!(
            check(&parts.join("."), "POST", URL, NOW, Some("tok"), &[]),
            Err(DpopError::Signature)
        );
        // A key of the right type but the wrong size never reaches the signature check.
        let short = json!({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"});
        let p = sign(
            &pair,
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": short}),
            json!({"jti": "j", "htm": "GET", "htu": URL, "iat": NOW}),
        );
        assert!(matches!(
            check(&p, "GET", URL, NOW, None, &[]),
            Err(DpopError::Key(_))
        ));
    }

    #[test]
    fn thumbprint_of_rfc_7638_example() {
        // RFC 7638 §3.1: the example RSA key and its thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let jwk = json!({"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"});
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn a_jti_is_spent_once_within_its_window_and_the_cache_is_bounded() {
        let spent = |jkt: &str, jti: &str, iat: i64| CheckedProof {
            jkt: jkt.into(),
            jti: jti.into(),
            iat,
            alg: AssertionAlg::ES256,
        };
        let cache = ReplayCache::new(2);
        assert_eq!(cache.spend(&spent("k1", "a", NOW), NOW), Ok(()));
        assert_eq!(
            cache.spend(&spent("k1", "a", NOW), NOW + IAT_MAX_AGE),
            Err(DpopError::Replayed)
        );
        // The same jti from another key is another proof.
        assert_eq!(cache.spend(&spent("k2", "a", NOW), NOW), Ok(()));
        assert_eq!(
            cache.spend(&spent("k1", "b", NOW), NOW),
            Err(DpopError::Busy)
        );
        // Once their iat is too old to pass (and the leeway has gone by too), the entries go and room is made.
        assert_eq!(
            cache.spend(&spent("k1", "a", NOW), NOW + IAT_MAX_AGE + 15),
            Err(DpopError::Replayed)
        );
        let later = NOW + IAT_MAX_AGE + 16;
        assert_eq!(cache.spend(&spent("k1", "b", later), later), Ok(()));
        assert_eq!(cache.spend(&spent("k1", "a", later), later), Ok(()));
    }
}
