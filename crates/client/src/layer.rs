//! The HTTP side of verification: a tower layer that checks each request's token (and the route's scopes) before
//! the handler runs, the `Verified` axum extractor that hands the claims to the handler, and RFC 6750 §3 answers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tower::{Layer, Service};

use crate::bound::Request as Bound;
use crate::claims::{Claims, VerifyError};
use crate::dpop::ALGS;
use crate::presented::{Scheme, presented};
use crate::verify::Verifier;

/// How a route checks tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Against the issuer's keys, in process (the default): no call to Keyward per request.
    Local,
    /// By asking Keyward (RFC 7662), so that a revoked token is refused at once (within the cache time).
    Introspect,
}

/// Checks the token of every request through it, and the scopes the route requires.
#[derive(Clone)]
pub struct VerifyLayer {
    verifier: Verifier,
    scopes: Arc<[String]>,
    mode: Mode,
}

impl Verifier {
    /// A layer that verifies each request's token locally and passes the claims on as [`Verified`].
    pub fn layer(&self) -> VerifyLayer {
        VerifyLayer {
            verifier: self.clone(),
            scopes: Arc::from([]),
            mode: Mode::Local,
        }
    }
}

impl VerifyLayer {
    /// Requires a scope (all the scopes given, when called again): RFC 6750 §3.1 `insufficient_scope` otherwise.
    pub fn require_scope(mut self, scope: impl Into<String>) -> Self {
        let mut scopes = self.scopes.to_vec();
        scopes.push(scope.into());
        self.scopes = scopes.into();
        self
    }

    /// Checks tokens by introspection instead of locally (needs `Builder::introspection`).
    pub fn introspect(mut self) -> Self {
        self.mode = Mode::Introspect;
        self
    }

    /// The check of one request from its headers alone: token, verification, scopes. Without the method and URL
    /// no DPoP proof can be checked, so a DPoP-bound token is refused here; [`VerifyLayer::check_request`] is the
    /// whole check.
    pub async fn check(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Claims, VerifyError> {
        self.check_parts(headers, query, None).await
    }

    /// The whole check of one request (what the layer runs): token, verification, RFC 9449 §7 for a DPoP-bound
    /// token (the scheme, the one `DPoP` proof for this method and URL, `ath`, `cnf.jkt`, the `jti` spent), and
    /// the route's scopes. The URL is the builder's `public_origin` (else `https://` and `Host`) and `uri`'s path.
    pub async fn check_request(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Claims, VerifyError> {
        let request = Bound {
            method,
            uri,
            headers,
        };
        self.check_parts(headers, uri.query(), Some(request)).await
    }

    async fn check_parts(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        request: Option<Bound<'_>>,
    ) -> Result<Claims, VerifyError> {
        let (scheme, token) = presented(headers, query, self.verifier.token_header())?;
        let verified = match self.mode {
            Mode::Local => self.verifier.verify_token(token).await,
            Mode::Introspect => self.verifier.introspect_token(token).await,
        };
        // RFC 9449 §7.1: a request that used the DPoP scheme is answered with a DPoP challenge.
        let claims = verified.map_err(|e| match (scheme, e) {
            (Scheme::Dpop, VerifyError::Invalid(d)) => VerifyError::DpopToken(d),
            (_, e) => e,
        })?;
        // Every request, cached token or not: the verified-token cache holds the claims, never the binding.
        self.verifier
            .binding()
            .check(scheme, token, &claims, request, self.verifier.now())?;
        let missing = self.scopes.iter().any(|s| !claims.has_scope(s));
        if !missing {
            return Ok(claims);
        }
        // RFC 6750 §3: the scope attribute names what the resource needs.
        let scopes = self.scopes.join(" ");
        Err(match scheme {
            Scheme::Bearer => VerifyError::InsufficientScope(scopes),
            Scheme::Dpop => VerifyError::DpopScope(scopes),
        })
    }
}

impl<S> Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        VerifyService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`VerifyLayer`] wraps around a route.
#[derive(Clone)]
pub struct VerifyService<S> {
    inner: S,
    layer: VerifyLayer,
}

impl<S, B> Service<Request<B>> for VerifyService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The service that was polled ready is the one called; a fresh clone stays behind for the next request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            match layer
                .check_request(req.method(), req.uri(), req.headers())
                .await
            {
                Ok(claims) => {
                    req.extensions_mut().insert(Verified(claims));
                    inner.call(req).await
                }
                Err(e) => Ok(e.into_response()),
            }
        })
    }
}

/// The claims of the request's verified token, for a handler behind [`VerifyLayer`].
#[derive(Debug, Clone)]
pub struct Verified(pub Claims);

impl<S: Send + Sync> FromRequestParts<S> for Verified {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        parts.extensions.get::<Verified>().cloned().ok_or_else(|| {
            // A handler asking for claims without the layer in front is a wiring mistake: fail closed, loudly.
            tracing::error!("keyward-client: Verified extracted on a route without VerifyLayer");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "token verification is not configured",
            )
                .into_response()
        })
    }
}

impl VerifyError {
    /// The status and first `WWW-Authenticate` challenge RFC 6750 §3 or RFC 9449 §7.1 gives this error.
    pub fn challenge(&self) -> (StatusCode, String) {
        let (status, mut all) = self.challenges();
        (
            status,
            if all.is_empty() {
                String::new()
            } else {
                all.swap_remove(0)
            },
        )
    }

    /// The status and every `WWW-Authenticate` challenge for this error, each its own header field: `Bearer`
    /// (RFC 6750 §3) and, where the client should (or did) use DPoP, `DPoP` with the accepted `algs` (RFC 9449
    /// §7.1).
    pub fn challenges(&self) -> (StatusCode, Vec<String>) {
        let quoted = |s: &str| s.replace(['"', '\\'], "");
        let bearer = |code: &str, d: &str| {
            format!(
                "Bearer error=\"{code}\", error_description=\"{}\"",
                quoted(d)
            )
        };
        let dpop = |code: &str, d: &str| {
            format!(
                "DPoP error=\"{code}\", error_description=\"{}\", algs=\"{ALGS}\"",
                quoted(d)
            )
        };
        let description = self.to_string();
        match self {
            VerifyError::Missing => (
                StatusCode::UNAUTHORIZED,
                vec!["Bearer".into(), format!("DPoP algs=\"{ALGS}\"")],
            ),
            VerifyError::Malformed(d) => {
                (StatusCode::BAD_REQUEST, vec![bearer("invalid_request", d)])
            }
            VerifyError::Invalid(d) => (StatusCode::UNAUTHORIZED, vec![bearer("invalid_token", d)]),
            VerifyError::InsufficientScope(scope) => (
                StatusCode::FORBIDDEN,
                vec![format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{}\"",
                    quoted(scope)
                )],
            ),
            VerifyError::DpopToken(d) => (StatusCode::UNAUTHORIZED, vec![dpop("invalid_token", d)]),
            VerifyError::DpopProof(d) => (
                StatusCode::UNAUTHORIZED,
                vec![dpop("invalid_dpop_proof", d)],
            ),
            VerifyError::BoundAsBearer => (
                StatusCode::UNAUTHORIZED,
                vec![
                    dpop("invalid_token", &description),
                    bearer("invalid_token", &description),
                ],
            ),
            VerifyError::DpopScope(scope) => (
                StatusCode::FORBIDDEN,
                vec![format!(
                    "DPoP error=\"insufficient_scope\", scope=\"{}\", algs=\"{ALGS}\"",
                    quoted(scope)
                )],
            ),
            VerifyError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, Vec::new()),
        }
    }

    /// The `error` code of the JSON body, when there is one.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            VerifyError::Missing => None,
            VerifyError::Malformed(_) => Some("invalid_request"),
            VerifyError::Invalid(_) | VerifyError::DpopToken(_) | VerifyError::BoundAsBearer => {
                Some("invalid_token")
            }
            VerifyError::DpopProof(_) => Some("invalid_dpop_proof"),
            VerifyError::InsufficientScope(_) | VerifyError::DpopScope(_) => {
                Some("insufficient_scope")
            }
            VerifyError::Unavailable => Some("temporarily_unavailable"),
        }
    }
}

impl IntoResponse for VerifyError {
    fn into_response(self) -> Response {
        let (status, challenges) = self.challenges();
        let body = match self.code() {
            Some(code) => json!({"error": code, "error_description": self.to_string()}),
            None => json!({"error_description": self.to_string()}),
        };
        let mut r = (status, axum::Json(body)).into_response();
        for challenge in challenges {
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                r.headers_mut().append(header::WWW_AUTHENTICATE, v);
            }
        }
        if matches!(self, VerifyError::Unavailable) {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_has_its_status_code_and_challenges() {
        let algs = r#"algs="ES256 PS256 RS256 EdDSA""#;
        let cases = [
            (
                VerifyError::Missing,
                401,
                None,
                vec!["Bearer".to_owned(), format!("DPoP {algs}")],
            ),
            (
                VerifyError::DpopProof("the proof was used before".into()),
                401,
                Some("invalid_dpop_proof"),
                vec![format!(
                    r#"DPoP error="invalid_dpop_proof", error_description="the proof was used before", {algs}"#
                )],
            ),
            (
                VerifyError::DpopToken(r#"bad "quoted" \ text"#.into()),
                401,
                Some("invalid_token"),
                vec![format!(
                    r#"DPoP error="invalid_token", error_description="bad quoted  text", {algs}"#
                )],
            ),
            (
                VerifyError::DpopScope("orders:write".into()),
                403,
                Some("insufficient_scope"),
                vec![format!(
                    r#"DPoP error="insufficient_scope", scope="orders:write", {algs}"#
                )],
            ),
        ];
        for (error, status, code, challenges) in cases {
            assert_eq!(
                error.challenges(),
                (StatusCode::from_u16(status).unwrap(), challenges.clone())
            );
            assert_eq!(error.code(), code);
            assert_eq!(error.challenge().1, challenges[0]);
        }
        // A bound token sent as Bearer: told both ways, DPoP first.
        let (status, both) = VerifyError::BoundAsBearer.challenges();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(both[0].starts_with(r#"DPoP error="invalid_token""#) && both[0].ends_with(algs));
        assert!(both[1].starts_with(r#"Bearer error="invalid_token""#));
        let r = VerifyError::BoundAsBearer.into_response();
        assert_eq!(
            r.headers().get_all(header::WWW_AUTHENTICATE).iter().count(),
            2
        );
    }
}
