//! [`Builder`]: how a [`TokenSource`] is configured (the token request's dialect and parameters, the credential
//! and DPoP key, its timing, the certificate authorities it trusts) and checked before it is built.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use keyward_core::assertion::AssertionAlg;

use super::request::{Ask, Credentials};
use super::{
    Accept, AuthMethod, BodyFormat, Credential, Dialect, HeaderValue, Inner, Shared, State,
    TokenSource, timing,
};
use crate::fetch;
use crate::proof::Dpop;
use crate::secret::Secret;
use crate::signing::SigningKey;

/// Configures a [`TokenSource`].
#[derive(Debug, Clone)]
pub struct Builder {
    pub(super) ask: Ask,
    pub(super) credentials: Credentials,
    pub(super) dpop: Option<DpopKey>,
    pub(super) refresh_share: f64,
    pub(super) max_wait: Duration,
    pub(super) request_timeout: Duration,
    pub(super) default_lifetime: Duration,
    pub(super) refused_retry: Duration,
    pub(super) extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

/// Where the DPoP key comes from.
#[derive(Debug, Clone)]
pub(super) enum DpopKey {
    /// A fresh ES256 key made when the source is built, never written anywhere.
    Generate,
    /// A key the integrator gave.
    Given(SigningKey),
}

impl Builder {
    /// Authenticates with `credential` instead of the one given so far (exactly one kind is used).
    pub fn credential(mut self, credential: Credential) -> Self {
        self.credentials.credential = credential;
        self
    }

    /// `private_key_jwt` (RFC 7523 §2.2): each token request carries a fresh assertion signed with `key`, whose
    /// header names `key_id` as its `kid`. Replaces the secret; the request carries no `Authorization` header.
    pub fn private_key(self, key: SigningKey, key_id: impl Into<String>) -> Self {
        self.credential(Credential::PrivateKey {
            key,
            key_id: key_id.into(),
        })
    }

    /// `private_key_jwt` with the key of a PEM PKCS#8 file: EC P-256 signs ES256, Ed25519 EdDSA, RSA (2048 bits
    /// or more) PS256, or RS256 when `alg` says so.
    pub fn private_key_file(
        self,
        path: &Path,
        key_id: impl Into<String>,
        alg: Option<AssertionAlg>,
    ) -> Result<Self, String> {
        Ok(self.private_key(SigningKey::from_pem_file(path, alg)?, key_id))
    }

    /// Workload identity federation from a file: each token request sends the token in `path` (a Kubernetes
    /// projected service-account token, say) as the client assertion, read again every time.
    pub fn assertion_file(self, path: impl Into<PathBuf>) -> Self {
        self.credential(Credential::AssertionFile(path.into()))
    }

    /// Workload identity federation on GitHub Actions: each token request sends a fresh OIDC token for
    /// `audience` from the job's endpoint (`request_url` is `$ACTIONS_ID_TOKEN_REQUEST_URL`, `request_token`
    /// `$ACTIONS_ID_TOKEN_REQUEST_TOKEN`).
    pub fn github_actions(
        self,
        request_url: impl Into<String>,
        request_token: Secret,
        audience: impl Into<String>,
    ) -> Self {
        self.credential(Credential::GithubActions {
            request_url: request_url.into(),
            request_token,
            audience: audience.into(),
        })
    }

    /// As [`github_actions`](Self::github_actions), with the URL and token read from the job's environment.
    pub fn github_actions_from_env(self, audience: impl Into<String>) -> Result<Self, String> {
        Ok(self.credential(Credential::github_actions_from_env(audience)?))
    }

    /// DPoP (RFC 9449) with a fresh ES256 key made at [`build`](Self::build) and held in memory only: each token
    /// request carries a proof, and a `DPoP` token is sent to APIs with a proof per call.
    pub fn dpop(mut self) -> Self {
        self.dpop = Some(DpopKey::Generate);
        self
    }

    /// DPoP with a key of the integrator's (from [`SigningKey::from_pem_file`], say), so that tokens stay bound
    /// to the same key across restarts.
    pub fn dpop_key(mut self, key: SigningKey) -> Self {
        self.dpop = Some(DpopKey::Given(key));
        self
    }

    /// Where API calls should carry the token: `None` for `Authorization: Bearer`, or a header such as
    /// `WM_SEC.ACCESS_TOKEN`.
    pub fn api_header(&self) -> Option<&str> {
        self.ask.dialect.api_header.as_deref()
    }

    /// How the request is spoken (default: RFC 6749's own, Basic and a form body).
    pub fn dialect(mut self, dialect: Dialect) -> Self {
        self.ask.dialect = dialect;
        self
    }

    /// Where the credentials travel.
    pub fn auth(mut self, auth: AuthMethod) -> Self {
        self.ask.dialect.auth = auth;
        self
    }

    /// The body's encoding.
    pub fn body(mut self, body: BodyFormat) -> Self {
        self.ask.dialect.body = body;
        self
    }

    /// The answer format to ask for.
    pub fn accept(mut self, accept: Accept) -> Self {
        self.ask.dialect.accept = accept;
        self
    }

    /// A header sent with every token request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.ask
            .dialect
            .headers
            .push((name.into(), HeaderValue::Fixed(value.into())));
        self
    }

    /// A header carrying a fresh correlation id (a random UUID) on every token request.
    pub fn correlation_header(mut self, name: impl Into<String>) -> Self {
        self.ask
            .dialect
            .headers
            .push((name.into(), HeaderValue::Correlation));
        self
    }

    /// `scope` (RFC 6749 §3.3), space-separated.
    pub fn scope(self, scope: impl Into<String>) -> Self {
        self.param("scope", scope)
    }

    /// `audience`, as Auth0-style servers (and Keyward) take it.
    pub fn audience(self, audience: impl Into<String>) -> Self {
        self.param("audience", audience)
    }

    /// `resource` (RFC 8707); may be given more than once.
    pub fn resource(self, resource: impl Into<String>) -> Self {
        self.param("resource", resource)
    }

    /// Any other body parameter.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.ask.params.push((name.into(), value.into()));
        self
    }

    /// The share of a token's lifetime after which it is refreshed (default 0.75). A token of two minutes or more
    /// is refreshed a minute before its end at the latest, whichever comes first.
    pub fn refresh_share(mut self, share: f64) -> Self {
        self.refresh_share = share;
        self
    }

    /// The longest a caller of [`TokenSource::token`] waits for a token (default 30 s).
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait.min(timing::FAR);
        self
    }

    /// The longest one token request may take (default 10 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout.min(timing::FAR);
        self
    }

    /// The lifetime assumed when the server leaves out `expires_in` (default 5 minutes).
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_lifetime = lifetime.min(timing::FAR);
        self
    }

    /// After the server refused the request, how long before one more try (default 5 minutes); a change of
    /// credentials tries at once.
    pub fn refused_retry(mut self, wait: Duration) -> Self {
        self.refused_retry = wait.min(timing::FAR);
        self
    }

    /// Trusts the certificate authorities of a PEM file beside the Mozilla roots.
    pub fn ca_file(mut self, path: &Path) -> Result<Self, String> {
        self.extra_roots.extend(fetch::read_ca_file(path)?);
        Ok(self)
    }

    /// The token source. It starts fetching on the first [`TokenSource::token`] (or [`TokenSource::start`]).
    pub fn build(self) -> Result<TokenSource, String> {
        let url: hyper::Uri = self
            .ask
            .token_url
            .parse()
            .map_err(|e| format!("token URL `{}`: {e}", self.ask.token_url))?;
        if !matches!(url.scheme_str(), Some("https" | "http")) || url.host().is_none() {
            return Err(format!(
                "token URL `{}`: must be an http:// or https:// URL",
                self.ask.token_url
            ));
        }
        if self.credentials.client_id.is_empty() {
            return Err("client id: must not be empty".into());
        }
        self.credentials.credential.check()?;
        let dpop = match self.dpop {
            None => None,
            Some(DpopKey::Generate) => Some(Arc::new(Dpop::new(SigningKey::generate_es256()?))),
            Some(DpopKey::Given(key)) => Some(Arc::new(Dpop::new(key))),
        };
        if !(self.refresh_share > 0.0 && self.refresh_share <= 1.0) {
            return Err("refresh share: must be above 0 and at most 1".into());
        }
        for (name, _) in &self.ask.dialect.headers {
            hyper::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("header `{name}`: not a valid header name"))?;
        }
        let http = fetch::client_trusting(&self.extra_roots);
        let (state, _) = watch::channel(State::default());
        Ok(TokenSource {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared {
                    ask: self.ask,
                    credentials: Mutex::new(self.credentials),
                    dpop,
                    refresh_share: self.refresh_share,
                    request_timeout: self.request_timeout,
                    default_lifetime: self.default_lifetime,
                    refused_retry: self.refused_retry,
                    http,
                    state,
                    wake: Notify::new(),
                    fetched: AtomicU64::new(0),
                    served: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                    fresh_rejects: std::sync::atomic::AtomicU32::new(0),
                }),
                max_wait: self.max_wait,
                driver: Mutex::new(None),
            }),
        })
    }
}
