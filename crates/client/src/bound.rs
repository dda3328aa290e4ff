//! DPoP-bound tokens at the resource server (RFC 9449 §7): a token whose claims carry `cnf.jkt` is good only
//! under the `DPoP` scheme with exactly one `DPoP` proof for this request's method and URL, whose `ath` is the
//! token's hash and whose key has that thumbprint; its `jti` is then spent. A bound token sent as `Bearer` is
//! refused, and so is the `DPoP` scheme with a token bound to nothing. The proof itself is checked by `dpop`.

use std::borrow::Cow;

use axum::http::{HeaderMap, Method, Uri, header};

use crate::claims::{Claims, VerifyError};
use crate::dpop::{self, DpopError, ReplayCache};
use crate::presented::Scheme;

/// The DPoP proof header (RFC 9449 §4.1).
const DPOP: &str = "dpop";

/// What the verifier checks DPoP-bound tokens with: the origin proofs must name, and the spent `jti`s.
pub(crate) struct Binding {
    /// `scheme://host[:port]`, normalised; `None`: taken from the request's `Host`.
    origin: Option<String>,
    replay: ReplayCache,
}

impl Binding {
    /// Checks the configured public origin: an http(s) origin, with no path, query or fragment.
    pub(crate) fn new(origin: Option<&str>, replay_entries: usize) -> Result<Self, String> {
        let origin = match origin {
            None => None,
            Some(text) => {
                let url = dpop::normalize_url(text)
                    .filter(|_| !text.contains(['?', '#']))
                    .ok_or("public_origin: expected an origin such as https://api.example.com")?;
                // Normalised, an origin is `scheme://authority/`: its one `/` after `://` is the last byte.
                let authority = url.find("://").map_or(0, |i| i + 3);
                if url[authority..].find('/').map(|i| authority + i + 1) != Some(url.len()) {
                    return Err("public_origin: an origin has no path".into());
                }
                Some(url[..url.len() - 1].to_owned())
            }
        };
        Ok(Binding {
            origin,
            replay: ReplayCache::new(replay_entries),
        })
    }
}

/// Refuses a token bound to a key where no proof is checked.
pub(crate) fn bearer_only(claims: Claims) -> Result<Claims, VerifyError> {
    if claims.cnf.is_some() {
        return Err(VerifyError::BoundAsBearer);
    }
    Ok(claims)
}

/// The request a token came with, as far as DPoP needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'r> {
    pub(crate) method: &'r Method,
    pub(crate) uri: &'r Uri,
    pub(crate) headers: &'r HeaderMap,
}

fn proof_error(e: DpopError) -> VerifyError {
    VerifyError::DpopProof(Cow::Owned(e.to_string()))
}

impl Binding {
    /// RFC 9449 §7.1–7.2: whether a verified token may be used the way it came, at `now`. `request` is `None` where
    /// the caller knows no method or URL, and then a bound token is refused.
    pub(crate) fn check(
        &self,
        scheme: Scheme,
        token: &str,
        claims: &Claims,
        request: Option<Request<'_>>,
        now: i64,
    ) -> Result<(), VerifyError> {
        let jkt = match (&claims.cnf, scheme) {
            (None, Scheme::Bearer) => return Ok(()),
            (None, Scheme::Dpop) => {
                return Err(VerifyError::DpopToken(Cow::Borrowed(
                    "the token is not bound to a key: present it as a Bearer token",
                )));
            }
            (Some(_), Scheme::Bearer) => return Err(VerifyError::BoundAsBearer),
            (Some(cnf), Scheme::Dpop) => &cnf.jkt,
        };
        let Some(request) = request else {
            return Err(VerifyError::DpopToken(Cow::Borrowed(
                "a DPoP-bound token is checked with its request (VerifyLayer::check_request)",
            )));
        };
        let proof = match request.headers.get_all(DPOP).iter().collect::<Vec<_>>()[..] {
            [] => return Err(VerifyError::DpopProof("the DPoP proof is missing".into())),
            [one] => one
                .to_str()
                .map_err(|_| VerifyError::DpopProof("malformed DPoP header".into()))?,
            _ => {
                return Err(VerifyError::DpopProof("more than one DPoP header".into()));
            }
        };
        let url = self.request_url(request.uri, request.headers)?;
        let checked = dpop::check(
            proof.trim(),
            request.method.as_str(),
            &url,
            now,
            Some(token),
            &[],
        )
        .map_err(proof_error)?;
        if checked.jkt != *jkt {
            return Err(VerifyError::DpopProof(
                "the proof is signed by another key than the token is bound to".into(),
            ));
        }
        // Spent last, so a proof refused for another reason does not take a place in the cache.
        match self.replay.spend(&checked, now) {
            Ok(()) => Ok(()),
            Err(DpopError::Busy) => Err(VerifyError::Unavailable),
            Err(e) => Err(proof_error(e)),
        }
    }

    /// The URL the client sent the request to: the configured public origin (or `https://` and the `Host`
    /// header, or the request target's own origin when it has one) and the request's path.
    fn request_url(&self, uri: &Uri, headers: &HeaderMap) -> Result<String, VerifyError> {
        let path = uri.path();
        if let Some(origin) = &self.origin {
            return Ok(format!("{origin}{path}"));
        }
        if let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) {
            return Ok(format!("{scheme}://{authority}{path}"));
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && !h.contains(['/', '@', '?', '#']))
            .ok_or(VerifyError::DpopProof(
                "the request's URL is unknown (no Host header)".into(),
            ))?;
        Ok(format!("https://{host}{path}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_origins() {
        let origin = |t: &str| Binding::new(Some(t), 1).map(|b| b.origin);
        assert_eq!(
            origin("HTTPS://API.example.com:443").unwrap().as_deref(),
            Some("https://api.example.com")
        );
        assert_eq!(
            origin("http://127.0.0.1:8080/").unwrap().as_deref(),
            Some("http://127.0.0.1:8080")
        );
        for bad in [
            "api.example.com",
            "https://api.example.com/v1",
            "https://h?x",
            "ftp://h",
        ] {
            assert!(origin(bad).is_err(), "{bad}");
        }
        assert!(Binding::new(None, 1).unwrap().origin.is_none());
    }
}
