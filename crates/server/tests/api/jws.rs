//! Test signing keys of every algorithm Keyward accepts for client assertions (ES256, EdDSA, RS256, PS256), made
//! with aws-lc-rs: their public JWKs, and compact JWSs signed with them, so tests can forge exactly what they mean
//! to (a wrong claim, a wrong key, a wrong algorithm) and nothing else.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RSA_PSS_SHA256, RsaKeyPair, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

/// A private key and the algorithm it signs with.
pub enum TestKey {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    Rsa(RsaKeyPair, &'static str),
}

impl TestKey {
    pub fn es256() -> Self {
        Self::Es256(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
    }

    /// A P-256 key from its PKCS#8 DER, as `crypto.subtle.exportKey("pkcs8", …)` writes it.
    pub fn es256_from_pkcs8(der: &[u8]) -> Self {
        Self::Es256(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).unwrap())
    }

    pub fn eddsa() -> Self {
        Self::EdDsa(Ed25519KeyPair::generate().unwrap())
    }

    pub fn rs256() -> Self {
        Self::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap(), "RS256")
    }

    pub fn ps256() -> Self {
        Self::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap(), "PS256")
    }

    pub fn alg(&self) -> &'static str {
        match self {
            Self::Es256(_) => "ES256",
            Self::EdDsa(_) => "EdDSA",
            Self::Rsa(_, alg) => alg,
        }
    }

    /// The public JWK, with `kid` and `alg`.
    pub fn jwk(&self, kid: &str) -> Value {
        let mut jwk = self.bare_jwk();
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(self.alg());
        jwk
    }

    /// The public JWK's required members only (RFC 7638 §3.2), as a DPoP proof carries it.
    pub fn bare_jwk(&self) -> Value {
        match self {
            Self::Es256(k) => {
                let point = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])})
            }
            Self::EdDsa(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(k.public_key().as_ref())})
            }
            Self::Rsa(k, _) => {
                let c: RsaPublicKeyComponents<Vec<u8>> = k.public_key().into();
                json!({"kty": "RSA", "n": B64.encode(&c.n), "e": B64.encode(&c.e)})
            }
        }
    }

    /// The private key as an integrator's key file holds it: PKCS#8 in PEM (ES256 keys only).
    pub fn pkcs8_pem(&self) -> String {
        let Self::Es256(k) = self else {
            panic!("pkcs8_pem is for ES256 test keys")
        };
        let der = k.to_pkcs8v1().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        )
    }

    /// Signs `input` with this key's algorithm.
    pub fn sign(&self, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Self::Es256(k) => k.sign(&rng, input).unwrap().as_ref().to_vec(),
            Self::EdDsa(k) => k.sign(input).as_ref().to_vec(),
            Self::Rsa(k, alg) => {
                let padding = if *alg == "PS256" {
                    &RSA_PSS_SHA256
                } else {
                    &RSA_PKCS1_SHA256
                };
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(padding, &rng, input, &mut sig).unwrap();
                sig
            }
        }
    }

    /// A compact JWS of `header` (its `alg` set to this key's unless given) and `claims`.
    pub fn jws(&self, mut header: Value, claims: &Value) -> String {
        if header.get("alg").is_none() {
            header["alg"] = json!(self.alg());
        }
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = self.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(sig))
    }
}

/// A JWS signed with HMAC-SHA-256 under `secret` (the "public key as an HMAC secret" forgery).
pub fn hs256(secret: &[u8], claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string()),
        B64.encode(claims.to_string())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", B64.encode(tag.as_ref()))
}

/// An unsigned JWS (`alg: none`).
pub fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        B64.encode(json!({"alg": "none"}).to_string()),
        B64.encode(claims.to_string())
    )
}
