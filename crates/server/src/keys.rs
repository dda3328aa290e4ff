//! The key ring: signing keys parsed once and kept in memory, signing with the active key of an algorithm,
//! verifying against published keys, and the JWKS. Which key signs and which are published is decided by
//! `keyward_core::keys::plan`; this module holds the key material.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use keyward_client::PublicKey;
use keyward_core::jwt::{self, AccessTokenClaims};
use keyward_core::keys::{KeyMeta, KeyPlan, plan};
use keyward_core::resource::SigningAlg;
use keyward_core::{ErrorCode, OAuthError};
use serde_json::{Value, json};

use crate::crypto::{MasterKeys, random_id};
use crate::store::KeyRow;

enum Signer {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

struct LoadedKey {
    alg: SigningAlg,
    signer: Signer,
    /// The published key, checked by the same code as the verifier Keyward ships (keyward-client).
    verifier: PublicKey,
    header: String,
    jwk: Value,
}

struct Ring {
    keys: HashMap<String, LoadedKey>,
    metas: Vec<KeyMeta>,
    planned_at: i64,
    plan: Arc<KeyPlan>,
}

/// No key of the algorithm signs at the time asked (every key of it activates later): the node cannot sign now,
/// and the answer is 503, never 500.
#[derive(Debug, thiserror::Error)]
#[error("no {0} signing key is active yet")]
pub struct NoActiveKey(pub SigningAlg);

/// Parsed signing keys and the rotation plan at the current second.
pub struct KeyRing {
    ring: RwLock<Ring>,
    max_token_ttl: i64,
}

/// Generates a new key of `alg`, sealed for storage, activating at `activates_at`.
pub fn generate(
    alg: SigningAlg,
    master: &MasterKeys,
    now: i64,
    activates_at: i64,
) -> anyhow::Result<KeyRow> {
    let rng = SystemRandom::new();
    let err = |_| anyhow::anyhow!("key generation failed");
    let pkcs8 = match alg {
        SigningAlg::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(err)?
            .as_ref()
            .to_vec(),
        SigningAlg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(err)?
            .as_ref()
            .to_vec(),
        SigningAlg::RS256 => RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(err)?
            .as_der()
            .map_err(err)?
            .as_ref()
            .to_vec(),
    };
    let kid = random_id("");
    let loaded = load_key(&kid, alg, &pkcs8)?;
    Ok(KeyRow {
        private_key: master.seal(&pkcs8, &kid)?,
        public_jwk: loaded.jwk.to_string(),
        kid,
        alg: alg.as_str().to_owned(),
        created_at: now,
        activates_at,
    })
}

fn load_key(kid: &str, alg: SigningAlg, pkcs8: &[u8]) -> anyhow::Result<LoadedKey> {
    let bad = |_| anyhow::anyhow!("signing key {kid} is not a valid {alg} key");
    let (signer, jwk) = match alg {
        SigningAlg::ES256 => {
            let kp =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map_err(bad)?;
            let point = kp.public_key().as_ref().to_vec();
            // An uncompressed P-256 point is 0x04 || x (32 bytes) || y (32 bytes).
            let jwk = json!({"kty": "EC", "crv": "P-256", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])});
            (Signer::Es256(kp), jwk)
        }
        SigningAlg::EdDSA => {
            let kp = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(bad)?;
            let public = kp.public_key().as_ref().to_vec();
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(&public)});
            (Signer::EdDsa(kp), jwk)
        }
        SigningAlg::RS256 => {
            let kp = RsaKeyPair::from_pkcs8(pkcs8).map_err(bad)?;
            let n = kp
                .public_key()
                .modulus()
                .big_endian_without_leading_zero()
                .to_vec();
            let e = kp
                .public_key()
                .exponent()
                .big_endian_without_leading_zero()
                .to_vec();
            let jwk = json!({"kty": "RSA", "n": B64.encode(&n), "e": B64.encode(&e)});
            (Signer::Rs256(kp), jwk)
        }
    };
    let mut jwk = jwk;
    // SECURITY.md: every published key has kid, kty, alg and use, and never a private member.
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg.as_str());
    jwk["use"] = json!("sig");
    let verifier = PublicKey::from_jwk(&jwk)
        .map_err(|e| anyhow::anyhow!("signing key {kid}: public key unusable: {e}"))?;
    Ok(LoadedKey {
        alg,
        signer,
        verifier,
        header: jwt::encode_header(alg, kid),
        jwk,
    })
}

/// What the rotation plan reads of a stored key.
fn meta(row: &KeyRow) -> anyhow::Result<KeyMeta> {
    Ok(KeyMeta {
        kid: row.kid.clone(),
        alg: row.alg.parse().map_err(anyhow::Error::msg)?,
        created_at: row.created_at,
        activates_at: row.activates_at,
    })
}

impl Ring {
    fn new(keys: HashMap<String, LoadedKey>, metas: Vec<KeyMeta>) -> Self {
        Self {
            keys,
            metas,
            planned_at: i64::MIN,
            plan: Arc::default(),
        }
    }
}

fn invalid(description: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidToken, description)
}

impl KeyRing {
    /// Decrypts and parses every stored key.
    pub fn load(rows: &[KeyRow], master: &MasterKeys, max_token_ttl: i64) -> anyhow::Result<Self> {
        let ring = Self::build(rows, master)?;
        Ok(Self {
            ring: RwLock::new(ring),
            max_token_ttl,
        })
    }

    /// The stored keys' metadata only, none decrypted: a ring that lists keys and their states (`describe`) and
    /// signs, verifies and publishes nothing, for a process that only reports on keys (the CLI).
    pub fn listing(rows: &[KeyRow], max_token_ttl: i64) -> anyhow::Result<Self> {
        let metas = rows.iter().map(meta).collect::<anyhow::Result<_>>()?;
        Ok(Self {
            ring: RwLock::new(Ring::new(HashMap::new(), metas)),
            max_token_ttl,
        })
    }

    fn build(rows: &[KeyRow], master: &MasterKeys) -> anyhow::Result<Ring> {
        let mut keys = HashMap::new();
        let mut metas = Vec::new();
        for row in rows {
            let meta = meta(row)?;
            let pkcs8 = master.open(&row.private_key, &row.kid)?;
            keys.insert(row.kid.clone(), load_key(&row.kid, meta.alg, &pkcs8)?);
            metas.push(meta);
        }
        Ok(Ring::new(keys, metas))
    }

    /// Replaces the keys after a rotation (here or on another node).
    pub fn reload(&self, rows: &[KeyRow], master: &MasterKeys) -> anyhow::Result<()> {
        let fresh = Self::build(rows, master)?;
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// The plan at `now`, recomputed at most once per second.
    pub fn plan(&self, now: i64) -> Arc<KeyPlan> {
        {
            let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
            if ring.planned_at == now {
                return ring.plan.clone();
            }
        }
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        if ring.planned_at != now {
            ring.plan = Arc::new(plan(&ring.metas, now, self.max_token_ttl));
            ring.planned_at = now;
        }
        ring.plan.clone()
    }

    /// Signs claims with the active key of `alg` (RFC 7515 compact serialization).
    pub fn sign(
        &self,
        alg: SigningAlg,
        claims: &AccessTokenClaims,
        now: i64,
    ) -> anyhow::Result<String> {
        let plan = self.plan(now);
        let kid = plan
            .active
            .get(&alg)
            .ok_or_else(|| anyhow::Error::new(NoActiveKey(alg)))?;
        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        let key = ring
            .keys
            .get(kid)
            .ok_or_else(|| anyhow::anyhow!("active key {kid} is not loaded"))?;
        let input = jwt::signing_input(&key.header, claims)?;
        let err = |_| anyhow::anyhow!("signing failed");
        // Sign first, then move the input into the token: no copy of it per token.
        let signature = match &key.signer {
            Signer::Es256(k) => k
                .sign(&SystemRandom::new(), input.as_bytes())
                .map_err(err)?
                .as_ref()
                .to_vec(),
            Signer::EdDsa(k) => k.sign(input.as_bytes()).as_ref().to_vec(),
            Signer::Rs256(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    input.as_bytes(),
                    &mut sig,
                )
                .map_err(err)?;
                sig
            }
        };
        let token = jwt::compact(input, &signature);
        Ok(token)
    }

    /// Verifies a token's signature against a published key, with the algorithm bound to that key, then its
    /// claims (RFC 9068 §4). Fetches nothing a token names.
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        now: i64,
    ) -> Result<AccessTokenClaims, OAuthError> {
        let parsed = jwt::parse(token)?;
        let kid = parsed.header.kid.as_deref().unwrap_or_default();
        let plan = self.plan(now);
        if !plan.published.iter().any(|k| k == kid) {
            return Err(invalid("unknown key"));
        }
        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        let key = ring.keys.get(kid).ok_or_else(|| invalid("unknown key"))?;
        // The header's alg must be the key's own: a token cannot choose how it is checked.
        if parsed.header.alg != key.alg.as_str() {
            return Err(invalid("algorithm does not match the key"));
        }
        let ok = key
            .verifier
            .verify(parsed.signing_input.as_bytes(), &parsed.signature);
        if !ok {
            return Err(invalid("bad signature"));
        }
        jwt::validate_claims(&parsed.payload, issuer, now)
    }

    /// The JWKS document (RFC 7517 §5): published public keys only.
    pub fn jwks(&self, now: i64) -> Value {
        let plan = self.plan(now);
        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        let keys: Vec<&Value> = plan
            .published
            .iter()
            .filter_map(|kid| ring.keys.get(kid))
            .map(|k| &k.jwk)
            .collect();
        json!({ "keys": keys })
    }

    /// Key metadata with the state of each at `now`, for listings.
    pub fn describe(&self, now: i64) -> Vec<Value> {
        let plan = self.plan(now);
        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        ring.metas
            .iter()
            .map(|m| {
                let state = if plan.active.values().any(|k| *k == m.kid) {
                    "active"
                } else if m.activates_at > now {
                    "pending"
                } else if plan.published.contains(&m.kid) {
                    "retiring"
                } else {
                    "retired"
                };
                json!({"kid": m.kid, "alg": m.alg.as_str(), "created_at": m.created_at, "activates_at": m.activates_at, "state": state})
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_describes_keys_as_the_loaded_ring_does_and_signs_nothing() {
        let master = MasterKeys::derive(&[7; 32]).unwrap();
        let day = 86_400;
        let rows: Vec<KeyRow> = [
            (SigningAlg::ES256, 0),
            (SigningAlg::ES256, 10 * day),
            (SigningAlg::EdDSA, 0),
            (SigningAlg::EdDSA, 20 * day),
        ]
        .into_iter()
        .map(|(alg, at)| generate(alg, &master, at, at).unwrap())
        .collect();
        let loaded = KeyRing::load(&rows, &master, 3_600).unwrap();
        let listing = KeyRing::listing(&rows, 3_600).unwrap();
        // Before, between and after the rotations: pending, active, retiring and retired keys.
        let mut states = std::collections::BTreeSet::new();
        for now in [day, 10 * day + 60, 20 * day - 60, 20 * day + 60, 30 * day] {
            let described = listing.describe(now);
            assert_eq!(described, loaded.describe(now), "at {now}");
            states.extend(described.iter().map(|k| k["state"].to_string()));
        }
        assert_eq!(states.len(), 4, "{states:?}");
        let claims = AccessTokenClaims {
            iss: "https://issuer.example".into(),
            sub: "c".into(),
            aud: "https://api.example".into(),
            iat: 30 * day,
            nbf: None,
            cnf: None,
            exp: 30 * day + 60,
            jti: "j".into(),
            client_id: "c".into(),
            scope: None,
        };
        assert!(loaded.sign(SigningAlg::ES256, &claims, 30 * day).is_ok());
        assert!(listing.sign(SigningAlg::ES256, &claims, 30 * day).is_err());
        assert_eq!(listing.jwks(30 * day), json!({"keys": []}));
    }
}
