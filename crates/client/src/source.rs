//! [`TokenSource`]: the integrator's side of a token service. It gets an access token with the client
//! credentials grant (RFC 6749 §4.4), hands it out from memory until it nears its end, and refreshes it in the
//! background before then, timed by `expires_in` on the monotonic clock. One task does every fetch, so any
//! number of callers cause one request (single flight); while the server is busy or down it keeps handing out the
//! token it has, retrying with jittered backoff and never sooner than `Retry-After` says; when the server refuses
//! the client (`invalid_client`, `unauthorized_client`, any RFC 6749 §5.2 error) it stops and says why.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::fetch::HttpClient;
use crate::proof::Dpop;
use crate::secret::Secret;

mod answer;
mod builder;
mod credential;
pub mod dialect;
mod drive;
mod request;
mod timing;
mod token;

pub use builder::Builder;
pub use credential::{ASSERTION_LIFETIME, Credential, GITHUB_TOKEN_VAR, GITHUB_URL_VAR};
pub use dialect::{
    Accept, AuthMethod, BodyFormat, Dialect, HeaderValue, Preset, WalleyEnvironment,
    WllEnvironment, WllRegion,
};
use drive::{drive, lock};
use request::{Ask, Credentials};

pub use token::AccessToken;

/// Why no token could be handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The server refused the request (RFC 6749 §5.2); the source does not retry until its credentials change or
    /// [`Builder::refused_retry`] has passed.
    #[error("the token endpoint refused the request: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        /// The HTTP status (0 when the request could not be built).
        status: u16,
        /// The RFC 6749 §5.2 error code (`invalid_client`, …), or `http_<status>` when the answer had none.
        error: String,
        /// `error_description`, when the server gave one.
        description: Option<String>,
    },
    /// No valid token within the caller's bound; the last failure says why.
    #[error("no token within {waited:?}: {last}")]
    Unavailable {
        /// How long the caller waited.
        waited: Duration,
        /// The last failure, or that the first request is still under way.
        last: String,
    },
}

impl TokenError {
    /// Whether the server refused the client itself: its id or secret (`invalid_client`) or its grant
    /// (`unauthorized_client`).
    pub fn is_client_refused(&self) -> bool {
        matches!(self, TokenError::Refused { error, .. } if error == "invalid_client" || error == "unauthorized_client")
    }
}

/// Counts and the current state of a token source, for metrics and readiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Tokens received from the server.
    pub fetched: u64,
    /// Tokens handed to callers from memory.
    pub served: u64,
    /// Token requests that failed (refused, busy, unreachable).
    pub failures: u64,
    /// How long the token held has left, if one is held and usable.
    pub expires_in: Option<Duration>,
    /// The last failure since the last token, if any.
    pub last_error: Option<String>,
}

/// Gets, caches and refreshes an access token (RFC 6749 §4.4). Cheap to clone; clones share the token.
///
/// ```no_run
/// use keyward_client::{Secret, TokenSource};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let source = TokenSource::builder("https://auth.example.com/oauth2/token", "my-client", Secret::new("…"))
///     .audience("https://api.example.com")
///     .build()?;
/// let token = source.token().await?; // from memory after the first call
/// # let _ = token.secret(); Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.inner.shared.ask.token_url)
            .finish_non_exhaustive()
    }
}

/// What the handles share; dropping the last handle stops the background task.
struct Inner {
    shared: Arc<Shared>,
    max_wait: Duration,
    /// The background task, once started; started again if it has ended (its runtime shut down).
    driver: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.driver).as_ref() {
            task.abort();
        }
    }
}

/// What the background task and the callers share.
struct Shared {
    ask: Ask,
    credentials: Mutex<Credentials>,
    /// The DPoP key (RFC 9449), when tokens are to be bound to one; DPoP tokens carry it for their proofs.
    dpop: Option<Arc<Dpop>>,
    refresh_share: f64,
    request_timeout: Duration,
    default_lifetime: Duration,
    refused_retry: Duration,
    http: HttpClient,
    state: watch::Sender<State>,
    /// Wakes the task: a token was rejected, or the credentials changed.
    wake: Notify,
    fetched: AtomicU64,
    served: AtomicU64,
    failures: AtomicU64,
    /// Tokens refused by an API within `timing::FRESH` of their fetch, in a row.
    fresh_rejects: std::sync::atomic::AtomicU32,
}

/// The token held and the last failure, published to callers.
#[derive(Clone, Default)]
struct State {
    token: Option<Held>,
    /// Set when the server refused the request; callers get it at once.
    refused: Option<TokenError>,
    /// The last failure since the last token.
    last_error: Option<String>,
}

#[derive(Clone)]
struct Held {
    token: AccessToken,
    /// When the request that got it was sent.
    obtained: Instant,
    usable_until: Instant,
    refresh_at: Instant,
    /// An API answered 401 `invalid_token` for it: not handed out again.
    rejected: bool,
    /// An API answered 401 for it while it was fresh: a new token may not help (the API may refuse every token),
    /// so it is still handed out and the next fetch waits for a backoff.
    suspect: bool,
}

impl Held {
    fn usable(&self, now: Instant) -> bool {
        !self.rejected && now < self.usable_until
    }
}

impl TokenSource {
    /// A source for `token_url` with a client's credentials, speaking RFC 6749's own dialect until told
    /// otherwise.
    pub fn builder(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Secret,
    ) -> Builder {
        Self::with_credential(token_url, client_id, Credential::Secret(client_secret))
    }

    /// A source for `token_url` that authenticates with `credential`: a secret, a private key
    /// (`private_key_jwt`, RFC 7523 §2.2) or a platform's token (workload identity federation). The builder's
    /// [`private_key_file`](Builder::private_key_file), [`assertion_file`](Builder::assertion_file) and
    /// [`github_actions`](Builder::github_actions) set the same on any builder, a preset's too.
    pub fn with_credential(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        credential: Credential,
    ) -> Builder {
        Builder {
            ask: Ask {
                token_url: token_url.into(),
                dialect: Dialect::default(),
                params: Vec::new(),
            },
            credentials: Credentials {
                client_id: client_id.into(),
                credential,
            },
            dpop: None,
            refresh_share: 0.75,
            max_wait: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            default_lifetime: Duration::from_secs(300),
            refused_retry: Duration::from_secs(300),
            extra_roots: Vec::new(),
        }
    }

    /// A source for one of the services the seed documents describe, at its documented host or at `base`.
    pub fn preset(
        preset: &Preset,
        base: Option<&str>,
        client_id: impl Into<String>,
        client_secret: Secret,
    ) -> Result<Builder, String> {
        let filled = preset.fill(base)?;
        let mut b =
            Self::builder(filled.token_url, client_id, client_secret).dialect(filled.dialect);
        if let Some(scope) = filled.scope {
            b = b.scope(scope);
        }
        if let Some(audience) = filled.audience {
            b = b.audience(audience);
        }
        Ok(b)
    }

    /// A valid access token: the one in memory, or, when there is none, the next one fetched, waiting at most the
    /// configured bound.
    pub async fn token(&self) -> Result<AccessToken, TokenError> {
        let shared = &self.inner.shared;
        if let Some(t) = self.current() {
            return Ok(t);
        }
        self.start();
        let waited = Instant::now();
        let deadline = timing::later(waited, self.inner.max_wait);
        let mut rx = shared.state.subscribe();
        loop {
            {
                let state = rx.borrow_and_update();
                if let Some(h) = state.token.as_ref().filter(|h| h.usable(Instant::now())) {
                    shared.served.fetch_add(1, Ordering::Relaxed);
                    return Ok(h.token.clone());
                }
                if let Some(refused) = &state.refused {
                    return Err(refused.clone());
                }
            }
            let changed = tokio::time::timeout_at(deadline, rx.changed()).await;
            if !matches!(changed, Ok(Ok(()))) {
                let last = rx.borrow().last_error.clone();
                return Err(TokenError::Unavailable {
                    waited: waited.elapsed(),
                    last: last.unwrap_or_else(|| "the token request is still under way".into()),
                });
            }
        }
    }

    /// The token in memory if it is usable, without waiting or starting anything.
    pub fn current(&self) -> Option<AccessToken> {
        let shared = &self.inner.shared;
        let state = shared.state.borrow();
        let held = state.token.as_ref().filter(|h| h.usable(Instant::now()))?;
        shared.served.fetch_add(1, Ordering::Relaxed);
        Some(held.token.clone())
    }

    /// Starts the background task now rather than on the first [`token`](Self::token) call, so a token is
    /// ready before anyone asks. Outside a Tokio runtime it does nothing (the first `token` call starts it).
    pub fn start(&self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let mut driver = lock(&self.inner.driver);
            if driver
                .as_ref()
                .is_none_or(tokio::task::JoinHandle::is_finished)
            {
                *driver = Some(runtime.spawn(drive(self.inner.shared.clone())));
            }
        }
    }

    /// Says that an API answered 401 `invalid_token` for `token` (RFC 6750 §3.1): it is not handed out again and a
    /// new one is fetched at once. Only the token held counts, so a burst of such answers for one token causes one
    /// request. Tokens refused within 10 seconds of being fetched are replaced at once three times in a row; after
    /// that each is kept in use and replaced after a backoff that grows while fresh tokens keep being refused, so
    /// an API that refuses every token (a wrong audience) does not turn each call into a token request.
    pub fn reject(&self, token: &AccessToken) {
        let shared = &self.inner.shared;
        let now = Instant::now();
        let changed = shared.state.send_if_modified(|s| match &mut s.token {
            Some(h) if !h.rejected && !h.suspect && h.token.value == token.value => {
                if now.saturating_duration_since(h.obtained) >= timing::FRESH {
                    shared.fresh_rejects.store(0, Ordering::Relaxed);
                    h.rejected = true;
                } else if shared.fresh_rejects.fetch_add(1, Ordering::Relaxed)
                    < timing::FREE_REJECTS
                {
                    h.rejected = true;
                } else {
                    h.suspect = true;
                }
                true
            }
            _ => false,
        });
        if changed {
            shared.wake.notify_one();
        }
    }

    /// Replaces the credentials (a rotated secret). The token held stays in use until its refresh is due; a
    /// source stopped by a refusal tries again at once.
    pub fn set_credentials(&self, client_id: impl Into<String>, client_secret: Secret) {
        self.set_credential(client_id, Credential::Secret(client_secret));
    }

    /// Replaces the client id and credential of any kind (a rotated key, another token file), as
    /// [`set_credentials`](Self::set_credentials) does a secret.
    pub fn set_credential(&self, client_id: impl Into<String>, credential: Credential) {
        let shared = &self.inner.shared;
        let new = Credentials {
            client_id: client_id.into(),
            credential,
        };
        let changed = {
            let mut held = lock(&shared.credentials);
            let changed = *held != new;
            *held = new;
            changed
        };
        if changed {
            // Callers from now on wait for the new credentials' answer rather than hear the old refusal.
            shared
                .state
                .send_if_modified(|s| s.refused.take().is_some());
            shared.wake.notify_one();
        }
    }

    /// Counts and the current state.
    pub fn status(&self) -> Status {
        let shared = &self.inner.shared;
        let state = shared.state.borrow();
        let now = Instant::now();
        Status {
            fetched: shared.fetched.load(Ordering::Relaxed),
            served: shared.served.load(Ordering::Relaxed),
            failures: shared.failures.load(Ordering::Relaxed),
            expires_in: state
                .token
                .as_ref()
                .filter(|h| h.usable(now))
                .map(|h| h.usable_until.saturating_duration_since(now)),
            last_error: state
                .refused
                .as_ref()
                .map(ToString::to_string)
                .or_else(|| state.last_error.clone()),
        }
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> &str {
        &self.inner.shared.ask.token_url
    }

    /// Where API calls carry the token: `None` for `Authorization: Bearer`.
    pub fn api_header(&self) -> Option<&str> {
        self.inner.shared.ask.dialect.api_header.as_deref()
    }

    /// The public half of the DPoP key as a JWK (RFC 9449 §4.2), when the source has one; its RFC 7638
    /// thumbprint is what bound tokens name in `cnf.jkt`.
    pub fn dpop_jwk(&self) -> Option<serde_json::Value> {
        self.inner
            .shared
            .dpop
            .as_ref()
            .map(|d| d.key().public_jwk())
    }
}
