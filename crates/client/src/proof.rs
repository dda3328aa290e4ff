//! DPoP (RFC 9449) on the client's side: a key the token source holds, the proof JWT it signs for each request
//! (to the token endpoint, and to an API with a DPoP-bound token), and the nonces servers hand out
//! (`DPoP-Nonce`): the token endpoint's apart, the APIs' per origin, each for the next proof to the same server.
//! Not the checks of a proof: those are the server's.

use std::collections::HashMap;
use std::sync::Mutex;

use hyper::header::{HeaderMap, HeaderName, HeaderValue, WWW_AUTHENTICATE};
use hyper::{StatusCode, Uri};
use serde_json::{Map, Value, json};

use crate::signing::{SigningKey, random_id};

/// The `DPoP` request header, and its nonce's answer header (RFC 9449 §4.1, §8).
pub const DPOP: HeaderName = HeaderName::from_static("dpop");
/// `DPoP-Nonce` (RFC 9449 §8.1).
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");
/// The most origins whose nonces are kept; past it the memory starts again (a nonce lost costs one retry).
const MAX_ORIGINS: usize = 64;

/// A DPoP key and the latest nonce each server gave it.
#[derive(Debug)]
pub(crate) struct Dpop {
    key: SigningKey,
    /// The token endpoint's (RFC 9449 §8), kept apart: an API on the same origin may hand out its own (§9).
    token_endpoint: Mutex<Option<String>>,
    /// The APIs', by origin.
    nonces: Mutex<HashMap<String, String>>,
}

impl PartialEq for Dpop {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Dpop {}

impl Dpop {
    pub(crate) fn new(key: SigningKey) -> Self {
        Dpop {
            key,
            token_endpoint: Mutex::new(None),
            nonces: Mutex::new(HashMap::new()),
        }
    }

    /// The key's public half, as proofs carry it.
    pub(crate) fn key(&self) -> &SigningKey {
        &self.key
    }

    /// A proof for one request (RFC 9449 §4.2): `typ: dpop+jwt`, the public `jwk`; `jti`, `htm`, `htu` (the URL
    /// without query and fragment), `iat`; the server's latest `nonce`; `ath` when an access token goes with it
    /// (§7.1). A proof without a token is for the token endpoint and carries its nonce; one with a token is for an
    /// API and carries that origin's.
    pub(crate) fn proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        now: i64,
    ) -> Result<String, String> {
        let (origin, htu) = target(url)?;
        let mut header = Map::new();
        header.insert("typ".into(), Value::from("dpop+jwt"));
        header.insert("jwk".into(), self.key.public_jwk());
        let mut claims = json!({
            "jti": random_id(16),
            "htm": method,
            "htu": htu,
            "iat": now,
        });
        let nonce = match access_token {
            None => lock(&self.token_endpoint).clone(),
            Some(_) => lock(&self.nonces).get(&origin).cloned(),
        };
        if let Some(nonce) = nonce {
            claims["nonce"] = Value::from(nonce);
        }
        if let Some(token) = access_token {
            claims["ath"] = Value::from(crate::dpop::ath(token));
        }
        self.key.sign(header, &claims)
    }

    /// Remembers the `DPoP-Nonce` of the token endpoint's answer, if it sent one; returns whether it did.
    pub(crate) fn remember_token_endpoint(&self, headers: &HeaderMap) -> bool {
        let Some(nonce) = nonce_of(headers) else {
            return false;
        };
        *lock(&self.token_endpoint) = Some(nonce.to_owned());
        true
    }

    /// Remembers the `DPoP-Nonce` of an API's answer from `url`, if it sent one; returns whether it did.
    pub(crate) fn remember(&self, url: &str, headers: &HeaderMap) -> bool {
        let Some(nonce) = nonce_of(headers) else {
            return false;
        };
        let Ok((origin, _)) = target(url) else {
            return false;
        };
        let mut nonces = lock(&self.nonces);
        if nonces.len() >= MAX_ORIGINS && !nonces.contains_key(&origin) {
            nonces.clear();
        }
        nonces.insert(origin, nonce.to_owned());
        true
    }
}

fn nonce_of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(DPOP_NONCE)
        .and_then(|v| v.to_str().ok())
        .filter(|n| !n.is_empty())
}

/// A URL's origin (`scheme://authority`, the key nonces are kept under) and its `htu` (RFC 9449 §4.2: the URL
/// without query and fragment).
fn target(url: &str) -> Result<(String, String), String> {
    let without_fragment = url.split('#').next().unwrap_or(url);
    let uri: Uri = without_fragment
        .parse()
        .map_err(|_| format!("`{url}` is not a URL"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(format!(
            "`{url}` is not an absolute URL; a DPoP proof names the full URL of its request"
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    let authority = authority.as_str().to_ascii_lowercase();
    let path = match uri.path() {
        "" => "/",
        p => p,
    };
    Ok((
        format!("{scheme}://{authority}"),
        format!("{scheme}://{authority}{path}"),
    ))
}

/// Whether an API's answer asks for a proof with a fresh nonce (RFC 9449 §9): 401 with a `DPoP` challenge naming
/// `error="use_dpop_nonce"`, and a `DPoP-Nonce` to use.
pub fn nonce_required(status: StatusCode, headers: &HeaderMap) -> bool {
    status == StatusCode::UNAUTHORIZED
        && headers.contains_key(DPOP_NONCE)
        && headers.get_all(WWW_AUTHENTICATE).iter().any(|v| {
            let text = String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase();
            text.trim_start().starts_with("dpop") && text.contains("use_dpop_nonce")
        })
}

/// The `DPoP` header value for a proof.
pub(crate) fn header_value(proof: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(proof).map_err(|_| "the DPoP proof cannot be sent in a header".to_owned())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::PublicKey;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

    fn part(jwt: &str, i: usize) -> Value {
        serde_json::from_slice(&B64.decode(jwt.split('.').nth(i).unwrap()).unwrap()).unwrap()
    }

    /// Checks a proof's signature with the key its own header carries, as a server does.
    pub(crate) fn verifies_with_its_own_jwk(proof: &str) -> bool {
        let header = part(proof, 0);
        let mut jwk = header["jwk"].clone();
        jwk["kid"] = json!("dpop");
        jwk["alg"] = header["alg"].clone();
        let public = PublicKey::from_jwk(&jwk).unwrap();
        let (input, sig) = proof.rsplit_once('.').unwrap();
        public.verify(input.as_bytes(), &B64.decode(sig).unwrap())
    }

    #[test]
    fn a_proof_names_its_request_carries_the_public_key_only_and_verifies() {
        let key = SigningKey::generate_es256().unwrap();
        let dpop = Dpop::new(key.clone());
        let proof = dpop
            .proof(
                "POST",
                "https://Auth.Example.com:8443/oauth2/token?x=1#frag",
                None,
                1_800_000_000,
            )
            .unwrap();
        let header = part(&proof, 0);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["jwk"], key.public_jwk());
        assert!(header["jwk"].get("d").is_none());
        let claims = part(&proof, 1);
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], "https://auth.example.com:8443/oauth2/token");
        assert_eq!(claims["iat"], 1_800_000_000);
        assert!(B64.decode(claims["jti"].as_str().unwrap()).unwrap().len() >= 16);
        assert!(claims.get("ath").is_none() && claims.get("nonce").is_none());
        assert!(verifies_with_its_own_jwk(&proof));
        assert!(dpop.proof("GET", "/relative", None, 0).is_err());

        // With a token: `ath` is base64url(SHA-256(token)) (RFC 9449 §4.2).
        let proof = dpop
            .proof("GET", "https://api.example.com/orders", Some("tok"), 0)
            .unwrap();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"tok");
        assert_eq!(part(&proof, 1)["ath"], B64.encode(digest));
    }

    #[test]
    fn nonces_are_remembered_per_origin() {
        let dpop = Dpop::new(SigningKey::generate_es256().unwrap());
        let mut answer = HeaderMap::new();
        assert!(!dpop.remember("https://api.example.com/x", &answer));
        answer.insert(DPOP_NONCE, HeaderValue::from_static("n-1"));
        assert!(dpop.remember("https://api.example.com/x", &answer));
        let same = dpop
            .proof("GET", "https://API.example.com/y", Some("t"), 0)
            .unwrap();
        assert_eq!(part(&same, 1)["nonce"], "n-1");
        let other = dpop
            .proof("GET", "https://auth.example.com/t", Some("t"), 0)
            .unwrap();
        assert!(part(&other, 1).get("nonce").is_none());
        // The token endpoint's nonce is its own, even on the API's origin.
        let token_endpoint = dpop
            .proof("POST", "https://api.example.com/token", None, 0)
            .unwrap();
        assert!(part(&token_endpoint, 1).get("nonce").is_none());
        let mut from_token_endpoint = HeaderMap::new();
        from_token_endpoint.insert(DPOP_NONCE, HeaderValue::from_static("as-1"));
        assert!(dpop.remember_token_endpoint(&from_token_endpoint));
        let token_endpoint = dpop
            .proof("POST", "https://api.example.com/token", None, 0)
            .unwrap();
        assert_eq!(part(&token_endpoint, 1)["nonce"], "as-1");
        let api = dpop
            .proof("GET", "https://api.example.com/y", Some("t"), 0)
            .unwrap();
        assert_eq!(part(&api, 1)["nonce"], "n-1");

        answer.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"DPoP error="use_dpop_nonce", error_description="x""#),
        );
        assert!(nonce_required(StatusCode::UNAUTHORIZED, &answer));
        assert!(!nonce_required(StatusCode::BAD_REQUEST, &answer));
        answer.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"DPoP error="invalid_token""#),
        );
        assert!(!nonce_required(StatusCode::UNAUTHORIZED, &answer));
    }
}
