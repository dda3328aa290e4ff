//! [`Builder`]: how a [`TokenSource`] is configured (the token request's dialect and parameters, its timing, the
//! certificate authorities it trusts) and checked before it is built.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::request::{Ask, Credentials};
use super::{
    Accept, AuthMethod, BodyFormat, Dialect, HeaderValue, Inner, Shared, State, TokenSource, timing,
};
use crate::fetch;

/// Configures a [`TokenSource`].
#[derive(Debug, Clone)]
pub struct Builder {
    pub(super) ask: Ask,
    pub(super) credentials: Credentials,
    pub(super) refresh_share: f64,
    pub(super) max_wait: Duration,
    pub(super) request_timeout: Duration,
    pub(super) default_lifetime: Duration,
    pub(super) refused_retry: Duration,
    pub(super) extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl Builder {
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
