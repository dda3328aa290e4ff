//! The HTTP side of verification: a tower layer that checks each request's token (and the route's scopes) before
//! the handler runs, the `Verified` axum extractor that hands the claims to the handler, and RFC 6750 §3 answers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tower::{Layer, Service};

use crate::claims::{Claims, VerifyError};
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

    /// The whole check of one request: token from the headers, verification, scopes.
    pub async fn check(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Claims, VerifyError> {
        let token = self.verifier.token_from(headers, query)?;
        let claims = match self.mode {
            Mode::Local => self.verifier.verify(token).await?,
            Mode::Introspect => self.verifier.introspect(token).await?,
        };
        let missing: Vec<&str> = self
            .scopes
            .iter()
            .filter(|s| !claims.has_scope(s))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            Ok(claims)
        } else {
            // RFC 6750 §3: the scope attribute names what the resource needs.
            Err(VerifyError::InsufficientScope(self.scopes.join(" ")))
        }
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
            match layer.check(req.headers(), req.uri().query()).await {
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
    /// The status and `WWW-Authenticate` value RFC 6750 §3 gives this error.
    pub fn challenge(&self) -> (StatusCode, String) {
        let quoted = |s: &str| s.replace(['"', '\\'], "");
        match self {
            VerifyError::Missing => (StatusCode::UNAUTHORIZED, "Bearer".into()),
            VerifyError::Malformed(d) => (
                StatusCode::BAD_REQUEST,
                format!(
                    "Bearer error=\"invalid_request\", error_description=\"{}\"",
                    quoted(d)
                ),
            ),
            VerifyError::Invalid(d) => (
                StatusCode::UNAUTHORIZED,
                format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    quoted(d)
                ),
            ),
            VerifyError::InsufficientScope(scope) => (
                StatusCode::FORBIDDEN,
                format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{}\"",
                    quoted(scope)
                ),
            ),
            VerifyError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, String::new()),
        }
    }

    /// The `error` code of the JSON body, when there is one.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            VerifyError::Missing => None,
            VerifyError::Malformed(_) => Some("invalid_request"),
            VerifyError::Invalid(_) => Some("invalid_token"),
            VerifyError::InsufficientScope(_) => Some("insufficient_scope"),
            VerifyError::Unavailable => Some("temporarily_unavailable"),
        }
    }
}

impl IntoResponse for VerifyError {
    fn into_response(self) -> Response {
        let (status, challenge) = self.challenge();
        let body = match self.code() {
            Some(code) => json!({"error": code, "error_description": self.to_string()}),
            None => json!({"error_description": self.to_string()}),
        };
        let mut r = (status, axum::Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            if !challenge.is_empty() {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        if matches!(self, VerifyError::Unavailable) {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        r
    }
}
