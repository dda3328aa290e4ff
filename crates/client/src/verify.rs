//! `Verifier`: checks Keyward access tokens (RFC 9068) in a resource server, exactly as Keyward's SECURITY.md
//! pins: the key named by `kid` from the issuer's JWKS with the algorithm bound to that key, `typ` `at+jwt`, `iss`
//! by exact string, `aud`, `exp` / `nbf` / `iat` with 15 s of leeway, typed claims. Nothing a token names is
//! fetched. The JWKS is found through discovery (RFC 8414), cached for its `max-age`, and fetched again when a
//! token names an unknown `kid`, at most once per `unknown_kid_interval`, so forged `kid`s cannot make the
//! verifier hammer the server.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName};
use keyward_core::jwt;

use crate::bound::{Binding, bearer_only};
use crate::cache;
pub use crate::claims::{Claims, VerifyError};
use crate::fetch::{self, HttpClient};
use crate::introspect::Introspector;
use crate::key::{PublicKey, parse_jwks};
use crate::presented::{Scheme, presented};

/// What the verifier needs to know, set through [`Verifier::builder`].
#[derive(Clone)]
pub struct Builder {
    issuer: String,
    audiences: Vec<String>,
    jwks_uri: Option<String>,
    token_header: Option<HeaderName>,
    unknown_kid_interval: Duration,
    default_max_age: Duration,
    timeout: Duration,
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    introspection: Option<(String, String, Duration)>,
    cache_size: usize,
    public_origin: Option<String>,
    replay_cache: usize,
}

impl Builder {
    /// How many verified tokens are remembered, so a token presented again skips the signature check (default
    /// 10,000; 0 turns the cache off).
    pub fn cache_size(mut self, entries: usize) -> Self {
        self.cache_size = entries;
        self
    }

    /// RFC 9449 §4.3 item 9: the origin clients call this API at (`https://api.example.com`), the start of the URL
    /// a DPoP proof's `htu` must name; the request's path follows it. Without it the URL is `https://` and the
    /// request's `Host` header, which lets a proof made for another server that shares the audience and whose
    /// clients send this `Host` pass here too: set it wherever DPoP-bound tokens are expected.
    pub fn public_origin(mut self, origin: impl Into<String>) -> Self {
        self.public_origin = Some(origin.into());
        self
    }

    /// How many DPoP proofs are remembered to refuse a replayed `jti` (default
    /// [`crate::dpop::DEFAULT_REPLAY_CACHE`]); when all are still in their window, further proofs are refused.
    pub fn dpop_replay_cache(mut self, entries: usize) -> Self {
        self.replay_cache = entries;
        self
    }

    /// An audience this resource server accepts (at least one is required): its resource identifier.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The JWKS URL, instead of reading it from the issuer's discovery document.
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// A header that may carry the token instead of `Authorization: Bearer`, such as Walmart's
    /// `WM_SEC.ACCESS_TOKEN`. Its value is the token itself.
    pub fn token_header(mut self, name: &str) -> Result<Self, String> {
        self.token_header = Some(
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{name:?} is not a valid header name"))?,
        );
        Ok(self)
    }

    /// The shortest time between two JWKS fetches caused by unknown `kid`s (default 10 s).
    pub fn unknown_kid_interval(mut self, interval: Duration) -> Self {
        self.unknown_kid_interval = interval;
        self
    }

    /// How long keys are kept when the JWKS response names no `max-age` (default 5 min).
    pub fn default_max_age(mut self, age: Duration) -> Self {
        self.default_max_age = age;
        self
    }

    /// The time allowed for each fetch (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The source of `now` in Unix seconds (default: the system clock); for tests.
    pub fn clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Client credentials for RFC 7662 introspection, used by [`Verifier::introspect`], and how long an answer is
    /// cached (at most until the token expires).
    pub fn introspection(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        cache: Duration,
    ) -> Self {
        self.introspection = Some((client_id.into(), client_secret.into(), cache));
        self
    }

    /// The verifier. Nothing is fetched yet: discovery and the JWKS are read on first use, so an API can start
    /// while Keyward is down; [`Verifier::refresh`] fetches them now.
    pub fn build(self) -> Result<Verifier, String> {
        if self.audiences.is_empty() {
            return Err("a verifier needs at least one audience".into());
        }
        let issuer = self.issuer.trim_end_matches('/').to_owned();
        if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
            return Err("the issuer must be an http(s) URL".into());
        }
        let binding = Binding::new(self.public_origin.as_deref(), self.replay_cache)?;
        let http = fetch::client();
        let introspector = self
            .introspection
            .map(|(id, secret, cache)| Introspector::new(id, secret, cache));
        Ok(Verifier {
            inner: Arc::new(Inner {
                issuer,
                audiences: self.audiences,
                token_header: self.token_header,
                unknown_kid_interval: self.unknown_kid_interval,
                default_max_age: self.default_max_age,
                timeout: self.timeout,
                clock: self.clock,
                http,
                keys: RwLock::new(KeyCache {
                    keys: HashMap::new(),
                    expires: None,
                    jwks_uri: self.jwks_uri,
                    introspection_uri: None,
                    last_attempt: None,
                }),
                refreshing: tokio::sync::Mutex::new(()),
                introspector,
                verified: cache::Verified::new(self.cache_size),
                binding,
            }),
        })
    }
}

/// Verifies Keyward access tokens for one resource server. Cheap to clone; clones share the key cache.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audiences: Vec<String>,
    token_header: Option<HeaderName>,
    unknown_kid_interval: Duration,
    default_max_age: Duration,
    timeout: Duration,
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    http: HttpClient,
    keys: RwLock<KeyCache>,
    /// Held while fetching, so concurrent requests wait for one fetch instead of each making their own.
    refreshing: tokio::sync::Mutex<()>,
    introspector: Option<Introspector>,
    verified: cache::Verified,
    binding: Binding,
}

struct KeyCache {
    keys: HashMap<String, PublicKey>,
    /// When the keys must be fetched again; `None` before the first successful fetch.
    expires: Option<Instant>,
    jwks_uri: Option<String>,
    introspection_uri: Option<String>,
    last_attempt: Option<Instant>,
}

fn invalid(description: &'static str) -> VerifyError {
    VerifyError::Invalid(Cow::Borrowed(description))
}

impl Verifier {
    /// Starts a verifier for tokens from `issuer` (compared by exact string, as `iss` must equal it).
    pub fn builder(issuer: impl Into<String>) -> Builder {
        Builder {
            issuer: issuer.into(),
            audiences: Vec::new(),
            jwks_uri: None,
            token_header: None,
            unknown_kid_interval: Duration::from_secs(10),
            default_max_age: Duration::from_secs(300),
            timeout: Duration::from_secs(5),
            clock: Arc::new(crate::clock::now),
            introspection: None,
            cache_size: 10_000,
            public_origin: None,
            replay_cache: crate::dpop::DEFAULT_REPLAY_CACHE,
        }
    }

    /// The issuer tokens must name.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The header configured to carry a bearer token, if any.
    pub(crate) fn token_header(&self) -> Option<&HeaderName> {
        self.inner.token_header.as_ref()
    }

    /// RFC 6750 §2: the bearer token of a request, from `Authorization: Bearer` or the configured header. A token
    /// in the query string (§2.3) is refused, as is a request carrying two different tokens. A token under the
    /// `DPoP` scheme is not a bearer token: [`VerifyError::Missing`].
    pub fn token_from<'h>(
        &self,
        headers: &'h HeaderMap,
        query: Option<&str>,
    ) -> Result<&'h str, VerifyError> {
        match presented(headers, query, self.token_header())? {
            (Scheme::Bearer, token) => Ok(token),
            (Scheme::Dpop, _) => Err(VerifyError::Missing),
        }
    }

    /// What DPoP-bound tokens are checked with.
    pub(crate) fn binding(&self) -> &Binding {
        &self.inner.binding
    }

    /// Now, Unix seconds, from the configured clock.
    pub(crate) fn now(&self) -> i64 {
        (self.inner.clock)()
    }

    /// Verifies a bearer token locally against the issuer's keys; no call to Keyward unless the keys must be
    /// fetched. A token verified before is recognised by its digest while its key is still published. A token
    /// bound to a key (`cnf`, RFC 9449 §6.1) is refused: it is good only with its DPoP proof, which
    /// [`VerifyLayer::check_request`](crate::VerifyLayer::check_request) checks.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        bearer_only(self.verify_token(token).await?)
    }

    /// [`Verifier::verify`] without the refusal of bound tokens, for the request check that binds them.
    pub(crate) async fn verify_token(&self, token: &str) -> Result<Claims, VerifyError> {
        let now = (self.inner.clock)();
        let digest = cache::key(token);
        if let Some((kid, claims)) = self.inner.verified.get(&digest) {
            let published = self
                .inner
                .keys
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .keys
                .contains_key(&kid);
            if published {
                jwt::check_times(&claims, now).map_err(|e| VerifyError::Invalid(e.description))?;
                return Ok(claims);
            }
        }
        let parsed = jwt::parse(token).map_err(|e| VerifyError::Invalid(e.description))?;
        let kid = parsed.header.kid.clone().unwrap_or_default();
        let key = self.key(&kid).await?;
        // The key decides the algorithm: `none`, HS256 with the public key as secret, or any other alg than
        // the key's own never reaches a signature check.
        if parsed.header.alg != key.alg {
            return Err(invalid("algorithm does not match the key"));
        }
        if !key.verify(parsed.signing_input.as_bytes(), &parsed.signature) {
            return Err(invalid("bad signature"));
        }
        let claims = jwt::validate_claims(&parsed.payload, &self.inner.issuer, now)
            .map_err(|e| VerifyError::Invalid(e.description))?;
        claims
            .check_audience(&self.inner.audiences)
            .map_err(|e| VerifyError::Invalid(e.description))?;
        self.inner
            .verified
            .put(digest, key.kid.clone(), claims.clone(), now);
        Ok(claims)
    }

    /// Verifies a bearer token by asking Keyward (RFC 7662), so a revoked token is refused at once. Answers are
    /// cached for the configured time (never past the token's expiry). Needs [`Builder::introspection`]. A token
    /// bound to a key is refused, as by [`Verifier::verify`].
    pub async fn introspect(&self, token: &str) -> Result<Claims, VerifyError> {
        bearer_only(self.introspect_token(token).await?)
    }

    /// [`Verifier::introspect`] without the refusal of bound tokens.
    pub(crate) async fn introspect_token(&self, token: &str) -> Result<Claims, VerifyError> {
        let Some(introspector) = &self.inner.introspector else {
            return Err(VerifyError::Unavailable);
        };
        let uri = self.discovered(|c| c.introspection_uri.clone()).await?;
        let claims = introspector
            .check(
                &self.inner.http,
                &uri,
                token,
                self.inner.timeout,
                (self.inner.clock)(),
            )
            .await?;
        // Keyward checked signature, issuer and expiry; the audience is this server's to check.
        if claims.iss != self.inner.issuer {
            return Err(invalid("wrong issuer"));
        }
        claims
            .check_audience(&self.inner.audiences)
            .map_err(|e| VerifyError::Invalid(e.description))?;
        Ok(claims)
    }

    /// Fetches discovery (if needed) and the JWKS now, replacing the cached keys.
    pub async fn refresh(&self) -> Result<(), VerifyError> {
        let _guard = self.inner.refreshing.lock().await;
        self.fetch_keys().await
    }

    /// The key for `kid`: from the cache when fresh. Stale keys are fetched again, but while Keyward cannot be
    /// reached (or another request is fetching) the keys held keep serving. An unknown `kid` causes a fetch at
    /// most once per `unknown_kid_interval`.
    async fn key(&self, kid: &str) -> Result<PublicKey, VerifyError> {
        let now = Instant::now();
        let (found, fresh, may_retry) = {
            let cache = self.inner.keys.read().unwrap_or_else(|e| e.into_inner());
            (
                cache.keys.get(kid).cloned(),
                cache.expires.is_some_and(|e| now < e),
                cache
                    .last_attempt
                    .is_none_or(|t| now.duration_since(t) >= self.inner.unknown_kid_interval),
            )
        };
        match found {
            Some(key) if fresh => return Ok(key),
            Some(key) => {
                if !may_retry {
                    return Ok(key);
                }
                let Ok(_guard) = self.inner.refreshing.try_lock() else {
                    return Ok(key);
                };
                if self.fetch_keys().await.is_err() {
                    return Ok(key);
                }
            }
            None => {
                // Waiting here also covers a fetch another request has under way.
                let _guard = self.inner.refreshing.lock().await;
                let fetch_now = {
                    let cache = self.inner.keys.read().unwrap_or_else(|e| e.into_inner());
                    let fetched_meanwhile = cache.last_attempt.is_some_and(|t| t >= now);
                    !fetched_meanwhile && may_retry
                };
                let failed = if fetch_now {
                    self.fetch_keys().await.err()
                } else {
                    None
                };
                let cache = self.inner.keys.read().unwrap_or_else(|e| e.into_inner());
                if let Some(key) = cache.keys.get(kid) {
                    return Ok(key.clone());
                }
                // Never loaded: the keys are unavailable, which says nothing about the token.
                if cache.expires.is_none() {
                    return Err(failed.unwrap_or(VerifyError::Unavailable));
                }
                return Err(invalid("unknown key"));
            }
        }
        let cache = self.inner.keys.read().unwrap_or_else(|e| e.into_inner());
        cache
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| invalid("unknown key"))
    }

    /// Discovery, when its answer is needed and not yet known.
    async fn discovered(
        &self,
        pick: impl Fn(&KeyCache) -> Option<String>,
    ) -> Result<String, VerifyError> {
        if let Some(v) = pick(&self.inner.keys.read().unwrap_or_else(|e| e.into_inner())) {
            return Ok(v);
        }
        let url = format!(
            "{}/.well-known/oauth-authorization-server",
            self.inner.issuer
        );
        let doc = fetch::json(&self.inner.http, &url, None, self.inner.timeout)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "keyward-client: discovery failed");
                VerifyError::Unavailable
            })?
            .body;
        // RFC 8414 §3.3: the metadata must be for the issuer asked about.
        if doc.get("issuer").and_then(|v| v.as_str()) != Some(self.inner.issuer.as_str()) {
            tracing::warn!(%url, "keyward-client: discovery names another issuer");
            return Err(VerifyError::Unavailable);
        }
        let member = |name: &str| doc.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        let mut cache = self.inner.keys.write().unwrap_or_else(|e| e.into_inner());
        if cache.jwks_uri.is_none() {
            cache.jwks_uri = member("jwks_uri");
        }
        cache.introspection_uri = member("introspection_endpoint");
        pick(&cache).ok_or(VerifyError::Unavailable)
    }

    async fn fetch_keys(&self) -> Result<(), VerifyError> {
        self.inner
            .keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .last_attempt = Some(Instant::now());
        let uri = self.discovered(|c| c.jwks_uri.clone()).await?;
        let fetched = fetch::json(&self.inner.http, &uri, None, self.inner.timeout)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "keyward-client: fetching the JWKS failed");
                VerifyError::Unavailable
            })?;
        let (keys, skipped) = parse_jwks(&fetched.body).map_err(|e| {
            tracing::warn!(error = %e, "keyward-client: unusable JWKS");
            VerifyError::Unavailable
        })?;
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "keyward-client: JWKS keys skipped (unsupported or unsafe)"
            );
        }
        let age = fetched.max_age.unwrap_or(self.inner.default_max_age);
        let mut cache = self.inner.keys.write().unwrap_or_else(|e| e.into_inner());
        cache.keys = keys.into_iter().map(|k| (k.kid.clone(), k)).collect();
        cache.expires = Some(Instant::now() + age);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_checks() {
        assert!(Verifier::builder("http://x").build().is_err());
        assert!(Verifier::builder("ftp://x").audience("a").build().is_err());
        assert_eq!(
            Verifier::builder("http://x/")
                .audience("a")
                .build()
                .unwrap()
                .issuer(),
            "http://x"
        );
    }
}
