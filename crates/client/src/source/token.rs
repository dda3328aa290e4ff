//! [`AccessToken`]: a token a [`TokenSource`](super::TokenSource) hands out, and the headers an API call carries it
//! in: `Authorization: Bearer` (RFC 6750 §2.1) or a preset's header, or for a DPoP-bound token `Authorization:
//! DPoP` with a fresh proof for that call (RFC 9449 §7.1). Not the fetching: that is the source's.

use std::sync::Arc;
use std::time::Duration;

use hyper::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, InvalidHeaderValue};
use hyper::{Method, Uri};
use tokio::time::Instant;

use crate::proof::{self as dpop, Dpop};

/// An access token handed out by a [`TokenSource`](super::TokenSource).
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub(super) value: Arc<str>,
    pub(super) token_type: Arc<str>,
    pub(super) scope: Option<Arc<str>>,
    pub(super) expires_at: Instant,
    /// The key the token is bound to, for a `DPoP` token (RFC 9449 §6).
    pub(super) dpop: Option<Arc<Dpop>>,
}

impl AccessToken {
    /// The token itself, for an `Authorization: Bearer` header.
    pub fn secret(&self) -> &str {
        &self.value
    }

    /// `Bearer` (RFC 6750), or `DPoP` (RFC 9449 §5) for a token bound to the source's DPoP key: such a token is
    /// sent with [`request_headers`](Self::request_headers), never alone.
    pub fn token_type(&self) -> &str {
        &self.token_type
    }

    /// Whether the token is bound to the source's DPoP key.
    pub fn is_dpop(&self) -> bool {
        self.dpop.is_some()
    }

    /// The scope the server granted, when it said.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The header an API call carries the token in (RFC 6750 §2.1): `Authorization: Bearer <token>`, or the bare
    /// token in `header` (Walmart's `WM_SEC.ACCESS_TOKEN`). The value is marked sensitive; an error means the token
    /// holds bytes a header cannot carry. For a DPoP token this is `Authorization: DPoP <token>`, which an API
    /// accepts only with a proof: use [`request_headers`](Self::request_headers).
    pub fn header(
        &self,
        header: Option<&HeaderName>,
    ) -> Result<(HeaderName, HeaderValue), InvalidHeaderValue> {
        let (name, mut value) = match (header, self.dpop.is_some()) {
            (_, true) => (
                AUTHORIZATION,
                HeaderValue::from_str(&format!("DPoP {}", self.secret()))?,
            ),
            (Some(h), false) => (h.clone(), HeaderValue::from_str(self.secret())?),
            (None, false) => (
                AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {}", self.secret()))?,
            ),
        };
        value.set_sensitive(true);
        Ok((name, value))
    }

    /// Every header one API call needs for this token. A Bearer token: [`header`](Self::header)'s, nothing else.
    /// A DPoP token (RFC 9449 §7.1): `Authorization: DPoP <token>` and a `DPoP` proof made now for `method` and
    /// `uri` (which must be absolute), with `ath` the token's hash and the API's latest nonce; `header` does not
    /// apply, since DPoP names its own. Call it once per request sent, a retry included: a proof is good once.
    pub fn request_headers(
        &self,
        header: Option<&HeaderName>,
        method: &Method,
        uri: &Uri,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
        let token = self
            .header(header)
            .map_err(|_| "the token cannot be sent in a header".to_owned())?;
        let Some(dpop) = &self.dpop else {
            return Ok(vec![token]);
        };
        let proof = dpop.proof(
            method.as_str(),
            &uri.to_string(),
            Some(self.secret()),
            crate::clock::now(),
        )?;
        Ok(vec![token, (dpop::DPOP, dpop::header_value(&proof)?)])
    }

    /// Keeps the `DPoP-Nonce` an API at `uri` answered with (RFC 9449 §9), for the next proof to it; returns
    /// whether there was one. Nothing for a Bearer token.
    pub fn remember_nonce(&self, uri: &Uri, headers: &HeaderMap) -> bool {
        self.dpop
            .as_ref()
            .is_some_and(|d| d.remember(&uri.to_string(), headers))
    }

    /// How long the token has left, by this process's monotonic clock.
    pub fn expires_in(&self) -> Duration {
        self.expires_at.saturating_duration_since(Instant::now())
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::SigningKey;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

    fn token(dpop: Option<Arc<Dpop>>) -> AccessToken {
        AccessToken {
            value: Arc::from("tok.en.value"),
            token_type: Arc::from(if dpop.is_some() { "DPoP" } else { "Bearer" }),
            scope: None,
            expires_at: Instant::now() + Duration::from_secs(60),
            dpop,
        }
    }

    #[test]
    fn bearer_tokens_carry_one_header_as_before() {
        let t = token(None);
        let uri: Uri = "https://api.example.com/x".parse().unwrap();
        let headers = t.request_headers(None, &Method::GET, &uri).unwrap();
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[0].0, AUTHORIZATION);
        assert_eq!(headers[0].1, "Bearer tok.en.value");
        let wm = HeaderName::from_static("wm_sec.access_token");
        let headers = t.request_headers(Some(&wm), &Method::GET, &uri).unwrap();
        assert_eq!(
            (&headers[0].0, &headers[0].1),
            (&wm, &HeaderValue::from_static("tok.en.value"))
        );
        assert!(!t.remember_nonce(&uri, &HeaderMap::new()));
    }

    #[tokio::test]
    async fn dpop_tokens_get_a_fresh_proof_for_each_call() {
        let key = SigningKey::generate_es256().unwrap();
        let t = token(Some(Arc::new(Dpop::new(key.clone()))));
        let uri: Uri = "https://api.example.com/orders/7?expand=lines"
            .parse()
            .unwrap();
        let headers = t.request_headers(None, &Method::DELETE, &uri).unwrap();
        assert_eq!(headers[0].1, "DPoP tok.en.value");
        assert!(headers[0].1.is_sensitive());
        assert_eq!(headers[1].0, "dpop");
        let proof = headers[1].1.to_str().unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(proof.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(claims["htm"], "DELETE");
        assert_eq!(claims["htu"], "https://api.example.com/orders/7");
        let ath = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"tok.en.value");
        assert_eq!(claims["ath"], B64.encode(ath));
        assert!(crate::proof::tests::verifies_with_its_own_jwk(proof));
        let again = t.request_headers(None, &Method::DELETE, &uri).unwrap();
        assert_ne!(again[1].1, headers[1].1, "a new jti, a new proof");
        // The API's nonce goes into the next proof.
        let mut answer = HeaderMap::new();
        answer.insert("dpop-nonce", HeaderValue::from_static("rs-nonce"));
        assert!(t.remember_nonce(&uri, &answer));
        let next = t.request_headers(None, &Method::GET, &uri).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &B64.decode(next[1].1.to_str().unwrap().split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["nonce"], "rs-nonce");
        let relative: Uri = "/orders".parse().unwrap();
        assert!(t.request_headers(None, &Method::GET, &relative).is_err());
    }
}
