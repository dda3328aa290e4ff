//! [`SigningKey`]: a private key the integrator holds, for the JWTs a client signs itself: `private_key_jwt`
//! client assertions (RFC 7523 §2.2) and DPoP proofs (RFC 9449 §4.2). Read from a PEM PKCS#8 file (EC P-256,
//! Ed25519, RSA of at least 2048 bits) or generated in memory; signing is aws-lc-rs. Not a verifier: checking
//! signatures is [`PublicKey`](crate::PublicKey)'s.

use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RSA_PSS_SHA256, RsaKeyPair, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use keyward_core::assertion::AssertionAlg;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Map, Value, json};

/// A private signing key and the one algorithm it signs with. Cheap to clone; `Debug` shows the algorithm only.
#[derive(Clone)]
pub struct SigningKey {
    alg: AssertionAlg,
    pair: Arc<Pair>,
}

enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg.name())
            .finish_non_exhaustive()
    }
}

/// Two keys are the same when their public halves and algorithms are (a reloaded file with the same key is no
/// change).
impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        self.alg == other.alg && self.public_jwk() == other.public_jwk()
    }
}

impl Eq for SigningKey {}

impl SigningKey {
    /// A fresh ES256 key (P-256), held in memory only: what a DPoP key needs (RFC 9449 §2).
    pub fn generate_es256() -> Result<Self, String> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| "cannot generate a P-256 key".to_owned())?;
        Ok(SigningKey {
            alg: AssertionAlg::ES256,
            pair: Arc::new(Pair::Ec(pair)),
        })
    }

    /// Reads a PEM file holding one unencrypted PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`). EC P-256 signs
    /// ES256 and Ed25519 EdDSA; RSA signs PS256 unless `alg` says RS256. An `alg` that does not fit the key is an
    /// error, and so is RSA under 2048 bits (RFC 7518 §3.3). Errors name the file and say what to do.
    pub fn from_pem_file(path: &Path, alg: Option<AssertionAlg>) -> Result<Self, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_pem(&bytes, alg).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// As [`from_pem_file`](Self::from_pem_file), from the PEM text itself.
    pub fn from_pem(pem: &[u8], alg: Option<AssertionAlg>) -> Result<Self, String> {
        const CONVERT: &str =
            "convert it with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pkcs8`";
        if contains(pem, b"-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(format!(
                "the private key is encrypted; keyward-client reads unencrypted PKCS#8 keys only ({CONVERT}, \
                 and protect the file by its permissions)"
            ));
        }
        let der = match PrivateKeyDer::from_pem_slice(pem) {
            Ok(PrivateKeyDer::Pkcs8(der)) => der,
            Ok(PrivateKeyDer::Pkcs1(_)) => {
                return Err(format!(
                    "an `RSA PRIVATE KEY` (PKCS#1) block; a PKCS#8 `PRIVATE KEY` is expected: {CONVERT}"
                ));
            }
            Ok(PrivateKeyDer::Sec1(_)) => {
                return Err(format!(
                    "an `EC PRIVATE KEY` (SEC1) block; a PKCS#8 `PRIVATE KEY` is expected: {CONVERT}"
                ));
            }
            Ok(_) => return Err("an unknown kind of private key".into()),
            Err(rustls_pki_types::pem::Error::NoItemsFound) => {
                return Err(
                    "no `-----BEGIN PRIVATE KEY-----` block (a PEM PKCS#8 private key) in the file"
                        .into(),
                );
            }
            Err(e) => return Err(format!("not a readable PEM file: {e}")),
        };
        Self::from_pkcs8(der.secret_pkcs8_der(), alg)
    }

    /// From a PKCS#8 document (DER).
    pub fn from_pkcs8(der: &[u8], alg: Option<AssertionAlg>) -> Result<Self, String> {
        // The document says its own key type; each parser refuses the others', so the first that accepts wins.
        let (pair, natural) = if let Ok(p) =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
        {
            (Pair::Ec(p), AssertionAlg::ES256)
        } else if let Ok(p) = Ed25519KeyPair::from_pkcs8(der) {
            (Pair::Ed(p), AssertionAlg::EdDSA)
        } else if let Ok(p) = RsaKeyPair::from_pkcs8(der) {
            // RFC 7518 §3.3 and §3.5: 2048 bits at least.
            if p.public_modulus_len() < 256 {
                return Err("the RSA key is shorter than 2048 bits".into());
            }
            (Pair::Rsa(p), AssertionAlg::PS256)
        } else {
            return Err(
                "not a key keyward-client signs with: EC P-256, Ed25519 or RSA (2048 bits or more) in PKCS#8"
                    .into(),
            );
        };
        let alg = match (alg, &pair) {
            (None, _) => natural,
            (Some(a), Pair::Rsa(_)) if matches!(a, AssertionAlg::PS256 | AssertionAlg::RS256) => a,
            (Some(a), _) if a == natural => a,
            (Some(a), _) => {
                return Err(format!(
                    "a {} key signs {}, not {}",
                    pair.kind(),
                    natural_algs(&pair),
                    a.name()
                ));
            }
        };
        Ok(SigningKey {
            alg,
            pair: Arc::new(pair),
        })
    }

    /// The JWS algorithm it signs with.
    pub fn alg(&self) -> AssertionAlg {
        self.alg
    }

    /// The public key as a JWK (RFC 7517 §4) with its required members only (`kty`, `crv`, `x`, `y` / `n`, `e`):
    /// what a DPoP proof's `jwk` header carries (RFC 9449 §4.2). Never a private member.
    pub fn public_jwk(&self) -> Value {
        match self.pair.as_ref() {
            Pair::Ec(p) => {
                // An uncompressed point: 0x04, then x and y of 32 bytes each.
                let point = p.public_key().as_ref();
                let x = point.get(1..33).unwrap_or_default();
                let y = point.get(33..65).unwrap_or_default();
                json!({"kty": "EC", "crv": "P-256", "x": B64.encode(x), "y": B64.encode(y)})
            }
            Pair::Ed(p) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(p.public_key().as_ref())})
            }
            Pair::Rsa(p) => {
                let c: RsaPublicKeyComponents<Vec<u8>> = p.public_key().into();
                json!({"kty": "RSA", "n": B64.encode(&c.n), "e": B64.encode(&c.e)})
            }
        }
    }

    /// The public key as a JWKS entry for registering it with the server: [`public_jwk`](Self::public_jwk) with
    /// `kid`, `alg` and `use: sig`.
    pub fn public_jwk_for(&self, kid: &str) -> Value {
        let mut jwk = self.public_jwk();
        if let Some(o) = jwk.as_object_mut() {
            o.insert("kid".into(), Value::from(kid));
            o.insert("alg".into(), Value::from(self.alg.name()));
            o.insert("use".into(), Value::from("sig"));
        }
        jwk
    }

    /// The RFC 7638 thumbprint of the public key (SHA-256, base64url): what a DPoP-bound token's `cnf.jkt` names
    /// (RFC 9449 §6.1).
    pub fn thumbprint(&self) -> String {
        // The public JWK always has the members RFC 7638 requires of its type, so this cannot fail.
        crate::dpop::thumbprint(&self.public_jwk()).unwrap_or_default()
    }

    /// A compact JWS (RFC 7515 §7.1) of `claims` with `header`, to which `alg` is added.
    pub(crate) fn sign(
        &self,
        mut header: Map<String, Value>,
        claims: &Value,
    ) -> Result<String, String> {
        header.insert("alg".into(), Value::from(self.alg.name()));
        let input = format!(
            "{}.{}",
            B64.encode(Value::Object(header).to_string()),
            B64.encode(claims.to_string())
        );
        let signature = self.sign_bytes(input.as_bytes())?;
        Ok(format!("{input}.{}", B64.encode(signature)))
    }

    fn sign_bytes(&self, input: &[u8]) -> Result<Vec<u8>, String> {
        let rng = SystemRandom::new();
        let failed = |_| format!("signing with the {} key failed", self.alg.name());
        match self.pair.as_ref() {
            // The FIXED encoding is JWS's: r and s of 32 bytes each (RFC 7518 §3.4), not DER.
            Pair::Ec(p) => p
                .sign(&rng, input)
                .map(|s| s.as_ref().to_vec())
                .map_err(failed),
            Pair::Ed(p) => Ok(p.sign(input).as_ref().to_vec()),
            Pair::Rsa(p) => {
                let padding = if self.alg == AssertionAlg::RS256 {
                    &RSA_PKCS1_SHA256
                } else {
                    &RSA_PSS_SHA256
                };
                let mut out = vec![0; p.public_modulus_len()];
                p.sign(padding, &rng, input, &mut out).map_err(failed)?;
                Ok(out)
            }
        }
    }
}

impl Pair {
    fn kind(&self) -> &'static str {
        match self {
            Pair::Ec(_) => "P-256",
            Pair::Ed(_) => "Ed25519",
            Pair::Rsa(_) => "RSA",
        }
    }
}

fn natural_algs(pair: &Pair) -> &'static str {
    match pair {
        Pair::Ec(_) => "ES256",
        Pair::Ed(_) => "EdDSA",
        Pair::Rsa(_) => "PS256 or RS256",
    }
}

/// base64url(SHA-256(text)): a thumbprint's last step (RFC 7638 §3.1), and DPoP's `ath` (RFC 9449 §4.2).
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `n` random bytes, base64url: a `jti` (RFC 7519 §4.1.7).
pub(crate) fn random_id(n: usize) -> String {
    let mut b = vec![0u8; n];
    // The system's random source does not fail on the platforms aws-lc-rs runs on.
    let _ = aws_lc_rs::rand::fill(&mut b);
    B64.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PublicKey;

    fn verify(key: &SigningKey, jws: &str) -> bool {
        let public = PublicKey::from_jwk(&key.public_jwk_for("k")).unwrap();
        let (input, sig) = jws.rsplit_once('.').unwrap();
        public.verify(input.as_bytes(), &B64.decode(sig).unwrap())
    }

    pub(crate) fn pem(label: &str, der: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn each_key_type_signs_what_its_public_half_verifies() {
        let ec =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let ed = Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new()).unwrap();
        let rsa = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let rsa = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&rsa)
            .unwrap();
        let cases = [
            (pem("PRIVATE KEY", ec.as_ref()), None, "ES256"),
            (pem("PRIVATE KEY", ed.as_ref()), None, "EdDSA"),
            (pem("PRIVATE KEY", rsa.as_ref()), None, "PS256"),
            (
                pem("PRIVATE KEY", rsa.as_ref()),
                Some(AssertionAlg::RS256),
                "RS256",
            ),
        ];
        for (text, alg, name) in cases {
            let key = SigningKey::from_pem(text.as_bytes(), alg).unwrap();
            assert_eq!(key.alg().name(), name);
            let jws = key.sign(Map::new(), &json!({"a": 1})).unwrap();
            assert!(verify(&key, &jws), "{name}");
            assert!(
                !verify(&key, &jws.replace(".eyJhIjoxfQ.", ".eyJhIjoyfQ.")),
                "{name}"
            );
            assert_eq!(key, SigningKey::from_pem(text.as_bytes(), alg).unwrap());
            assert!(!format!("{key:?}").contains(&text[30..60]));
        }
        let generated = SigningKey::generate_es256().unwrap();
        assert!(verify(
            &generated,
            &generated.sign(Map::new(), &json!({})).unwrap()
        ));
        assert_ne!(generated, SigningKey::generate_es256().unwrap());
    }

    #[test]
    fn pem_errors_say_what_is_wrong_and_what_to_do() {
        let ec =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let cases = [
            (pem("RSA PRIVATE KEY", b"x"), "PKCS#1"),
            (pem("EC PRIVATE KEY", b"x"), "SEC1"),
            (pem("ENCRYPTED PRIVATE KEY", b"x"), "encrypted"),
            (
                pem("CERTIFICATE", b"x"),
                "no `-----BEGIN PRIVATE KEY-----` block",
            ),
            (
                "just text".to_owned(),
                "no `-----BEGIN PRIVATE KEY-----` block",
            ),
            (
                pem("PRIVATE KEY", b"garbage"),
                "not a key keyward-client signs with",
            ),
        ];
        for (text, expected) in cases {
            let e = SigningKey::from_pem(text.as_bytes(), None).unwrap_err();
            assert!(e.contains(expected), "{e}");
        }
        let e = SigningKey::from_pem(
            pem("PRIVATE KEY", ec.as_ref()).as_bytes(),
            Some(AssertionAlg::PS256),
        )
        .unwrap_err();
        assert_eq!(e, "a P-256 key signs ES256, not PS256");
        let e = SigningKey::from_pem_file(Path::new("/nonexistent/key.pem"), None).unwrap_err();
        assert!(e.starts_with("cannot read /nonexistent/key.pem"), "{e}");
    }

    #[test]
    fn public_jwk_has_no_private_member_and_a_stable_thumbprint() {
        let key = SigningKey::generate_es256().unwrap();
        let jwk = key.public_jwk();
        let mut members: Vec<&String> = jwk.as_object().unwrap().keys().collect();
        members.sort();
        assert_eq!(members, ["crv", "kty", "x", "y"]);
        assert_eq!(key.thumbprint(), key.clone().thumbprint());
        assert_eq!(key.thumbprint().len(), 43);
        // RFC 7638 §3.1's example key and thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            crate::dpop::thumbprint(&serde_json::json!({"kty": "RSA", "e": "AQAB", "n": n}))
                .unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert_eq!(random_id(16).len(), 22);
    }
}
