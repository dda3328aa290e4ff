//! Public keys from a JWKS (RFC 7517), each bound to the one algorithm it may verify (RFC 8725 §3.1): ES256 on
//! P-256, RS256 or PS256 on RSA of at least 2048 bits, EdDSA on Ed25519. Signatures are checked with aws-lc-rs.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256,
    RsaPublicKeyComponents, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::Value;

/// A verification key with the algorithm it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The key id (`kid`).
    pub kid: String,
    /// The JWS `alg` this key verifies, and no other.
    pub alg: &'static str,
    material: Material,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Material {
    /// An uncompressed P-256 point (`04 || x || y`).
    P256(Vec<u8>),
    /// An Ed25519 public key.
    Ed25519(Vec<u8>),
    /// RSA modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

/// Members only a private or symmetric key has (RFC 7518 §6).
const PRIVATE: [&str; 8] = keyward_core::registration::keys::PRIVATE_MEMBERS;

fn member<'a>(jwk: &'a Value, name: &str) -> Result<&'a str, String> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing or non-string `{name}`"))
}

fn bytes(jwk: &Value, name: &str) -> Result<Vec<u8>, String> {
    B64.decode(member(jwk, name)?)
        .map_err(|_| format!("`{name}` is not base64url"))
}

/// The key material of a JWK for `alg`, which must fit its `kty` and `crv`.
fn material(jwk: &Value, alg: &str) -> Result<(&'static str, Material), String> {
    Ok(match (member(jwk, "kty")?, alg) {
        ("EC", "ES256") => {
            if member(jwk, "crv")? != "P-256" {
                return Err("ES256 needs curve P-256".into());
            }
            let (x, y) = (bytes(jwk, "x")?, bytes(jwk, "y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err("P-256 coordinates are 32 bytes".into());
            }
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            ("ES256", Material::P256(point))
        }
        ("OKP", "EdDSA") => {
            if member(jwk, "crv")? != "Ed25519" {
                return Err("EdDSA needs curve Ed25519".into());
            }
            let x = bytes(jwk, "x")?;
            if x.len() != 32 {
                return Err("Ed25519 keys are 32 bytes".into());
            }
            ("EdDSA", Material::Ed25519(x))
        }
        ("RSA", alg @ ("RS256" | "PS256")) => {
            let (n, e) = (bytes(jwk, "n")?, bytes(jwk, "e")?);
            // RFC 7518 §6.3.1: unsigned big-endian with no leading zero byte, so the length is the key's size (a short
            // modulus padded with zeros would pass a length check it fails) and the thumbprint is canonical.
            if n.first() == Some(&0) || e.first() == Some(&0) || e.is_empty() {
                return Err("RSA n and e must be minimal (no leading zero byte)".into());
            }
            // RFC 7518 §3.3 and §3.5: at least 2048 bits.
            if n.len() < 256 {
                return Err("RSA keys must have at least 2048 bits".into());
            }
            let alg = if alg == "PS256" { "PS256" } else { "RS256" };
            (alg, Material::Rsa { n, e })
        }
        _ => return Err("unsupported kty/alg pair".into()),
    })
}

impl PublicKey {
    /// Reads one JWK. It must name its `kid` and an `alg` that fits its `kty` and `crv`, be for signatures
    /// (`use` absent or `sig`), and hold no private member: a JWKS that leaks a private key is refused rather than
    /// trusted.
    pub fn from_jwk(jwk: &Value) -> Result<Self, String> {
        let kid = member(jwk, "kid")?.to_owned();
        if jwk.get("use").is_some_and(|u| u != "sig") {
            return Err("key is not for signatures".into());
        }
        if PRIVATE.iter().any(|m| jwk.get(m).is_some()) {
            return Err("key has private members".into());
        }
        let (alg, material) = material(jwk, member(jwk, "alg")?)?;
        Ok(PublicKey { kid, alg, material })
    }

    /// Reads the key a DPoP proof carries in its header (RFC 9449 §4.2), which names neither `kid` nor `alg`:
    /// the proof's `alg` is bound to the key's type as for a JWKS key (P-256 for ES256, Ed25519 for EdDSA, RSA of
    /// at least 2048 bits for RS256 and PS256). Private members are refused.
    pub fn from_proof_jwk(jwk: &Value, alg: &str) -> Result<Self, String> {
        if PRIVATE.iter().any(|m| jwk.get(m).is_some()) {
            return Err("key has private members".into());
        }
        let (alg, material) = material(jwk, alg)?;
        Ok(PublicKey {
            kid: String::new(),
            alg,
            material,
        })
    }

    /// Checks `signature` over `input` with this key.
    pub fn verify(&self, input: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            Material::P256(point) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(input, signature)
                .is_ok(),
            Material::Ed25519(key) => UnparsedPublicKey::new(&ED25519, key)
                .verify(input, signature)
                .is_ok(),
            Material::Rsa { n, e } => {
                let padding = if self.alg == "PS256" {
                    &RSA_PSS_2048_8192_SHA256
                } else {
                    &RSA_PKCS1_2048_8192_SHA256
                };
                RsaPublicKeyComponents { n, e }
                    .verify(padding, input, signature)
                    .is_ok()
            }
        }
    }
}

/// Reads a JWKS document, keeping the keys that parse and reporting how many were skipped.
pub fn parse_jwks(doc: &Value) -> Result<(Vec<PublicKey>, usize), String> {
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("not a JWKS: no `keys` array")?;
    let mut out = Vec::with_capacity(keys.len());
    let mut skipped = 0;
    for k in keys {
        match PublicKey::from_jwk(k) {
            Ok(key) => out.push(key),
            Err(_) => skipped += 1,
        }
    }
    Ok((out, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn binds_alg_to_kty_and_refuses_private_members() {
        let x = B64.encode([1u8; 32]);
        let ed = json!({"kid": "k", "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "x": x});
        assert_eq!(PublicKey::from_jwk(&ed).unwrap().alg, "EdDSA");
        let mut wrong = ed.clone();
        wrong["alg"] = json!("ES256");
        assert!(PublicKey::from_jwk(&wrong).is_err());
        let mut hs = ed.clone();
        hs["alg"] = json!("HS256");
        assert!(PublicKey::from_jwk(&hs).is_err());
        let mut private = ed.clone();
        private["d"] = json!(x);
        assert!(PublicKey::from_jwk(&private).is_err());
        let mut enc = ed;
        enc["use"] = json!("enc");
        assert!(PublicKey::from_jwk(&enc).is_err());
        let small_rsa = json!({"kid": "r", "kty": "RSA", "alg": "RS256", "n": B64.encode([7u8; 128]), "e": "AQAB"});
        assert!(PublicKey::from_jwk(&small_rsa).is_err());
    }

    #[test]
    fn rsa_keys_verify_only_their_own_padding() {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaKeyPair};
        let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let public = pair.public_key();
        let jwk = |alg: &str| {
            let c: RsaPublicKeyComponents<Vec<u8>> = public.into();
            json!({"kid": "r", "kty": "RSA", "alg": alg, "n": B64.encode(&c.n), "e": B64.encode(&c.e)})
        };
        let rng = SystemRandom::new();
        let mut pss = vec![0; pair.public_modulus_len()];
        pair.sign(&RSA_PSS_SHA256, &rng, b"input", &mut pss)
            .unwrap();
        let mut pkcs1 = vec![0; pair.public_modulus_len()];
        pair.sign(&RSA_PKCS1_SHA256, &rng, b"input", &mut pkcs1)
            .unwrap();
        let ps = PublicKey::from_jwk(&jwk("PS256")).unwrap();
        let rs = PublicKey::from_jwk(&jwk("RS256")).unwrap();
        assert!(ps.verify(b"input", &pss) && !ps.verify(b"input", &pkcs1));
        assert!(rs.verify(b"input", &pkcs1) && !rs.verify(b"input", &pss));
        assert!(!ps.verify(b"other", &pss));
    }

    #[test]
    fn jwks_skips_what_it_cannot_use() {
        let doc = json!({"keys": [{"kid": "a", "kty": "oct", "alg": "HS256", "k": "c2VjcmV0"}]});
        assert_eq!(parse_jwks(&doc).unwrap().1, 1);
        assert!(parse_jwks(&json!({})).is_err());
    }
}
