//! The background task of a [`TokenSource`](super::TokenSource): one per source, it does every token request:
//! when the token held is due for refresh, missing or rejected; after a failure it waits out the backoff or
//! `Retry-After`; after a refusal it waits for new credentials.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::answer::{Answer, Issued};
use super::request::{self, Credentials};
use super::{AccessToken, Held, Shared, State, TokenError, timing};

/// The background task: fetches when the token held is due for refresh, missing or rejected, and after a failure
/// waits (backoff, `Retry-After`) before the next try.
pub(super) async fn drive(shared: Arc<Shared>) {
    let mut next = Instant::now();
    let mut failures: u32 = 0;
    // The server refused the last request.
    let mut refused = false;
    // Where a wait was imposed (Retry-After, backoff), a rejected token does not shorten it.
    let mut not_before = Instant::now();
    let mut credentials = current_credentials(&shared);
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = shared.wake.notified() => {
                let now_creds = current_credentials(&shared);
                let creds_changed = now_creds != credentials;
                credentials = now_creds;
                let (needed, suspect) = {
                    let s = shared.state.borrow();
                    let held = s.token.as_ref();
                    (held.is_none_or(|h| h.rejected), held.filter(|h| h.suspect).map(|h| h.obtained))
                };
                // New credentials undo a refusal of the old ones, and its wait; a busy server's Retry-After stands.
                if creds_changed && refused {
                    refused = false;
                    failures = 0;
                    not_before = Instant::now();
                    next = not_before;
                }
                if needed {
                    next = not_before.max(Instant::now());
                } else if let Some(obtained) = suspect {
                    let past_free = shared
                        .fresh_rejects
                        .load(Ordering::Relaxed)
                        .saturating_sub(timing::FREE_REJECTS);
                    let wait = timing::backoff(past_free, random());
                    next = next.min(not_before.max(timing::later(obtained, wait)));
                }
                continue;
            }
        }
        // Read now, not at the last wake: a refresh due at the moment new credentials arrived uses the new ones.
        credentials = current_credentials(&shared);
        let sent = Instant::now();
        let answer = request::exchange(
            &shared.http,
            &shared.ask,
            &credentials,
            shared.dpop.as_deref(),
            shared.request_timeout,
            crate::clock::wall(),
        )
        .await;
        match answer {
            Answer::Token(issued) => {
                failures = 0;
                refused = false;
                // A token that reached its refresh unrefused ends a run of refused fresh tokens.
                if shared
                    .state
                    .borrow()
                    .token
                    .as_ref()
                    .is_some_and(|h| !h.rejected && !h.suspect)
                {
                    shared.fresh_rejects.store(0, Ordering::Relaxed);
                }
                shared.fetched.fetch_add(1, Ordering::Relaxed);
                let held = hold(&shared, issued, sent);
                next = held.refresh_at;
                not_before = Instant::now();
                shared.state.send_replace(State {
                    token: Some(held),
                    refused: None,
                    last_error: None,
                });
            }
            Answer::Refused {
                status,
                error,
                description,
            } => {
                shared.failures.fetch_add(1, Ordering::Relaxed);
                refused = true;
                let error = TokenError::Refused {
                    status,
                    error,
                    description,
                };
                tracing::warn!(token_url = %shared.ask.token_url, error = %error, "token request refused; not retrying until the credentials change");
                next = timing::later(Instant::now(), shared.refused_retry);
                not_before = next;
                shared.state.send_modify(|s| {
                    s.last_error = Some(error.to_string());
                    s.refused = Some(error);
                });
            }
            Answer::Retry { why, retry_after } => {
                shared.failures.fetch_add(1, Ordering::Relaxed);
                failures = failures.saturating_add(1);
                let wait = timing::retry_wait(failures, retry_after, random());
                tracing::warn!(token_url = %shared.ask.token_url, error = %why, retry_in = ?wait, "token request failed; retrying");
                next = timing::later(Instant::now(), wait);
                not_before = next;
                shared.state.send_modify(|s| s.last_error = Some(why));
            }
        }
    }
}

/// A lock that a panic elsewhere does not poison for good: what it guards stays valid between statements.
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(super) fn current_credentials(shared: &Shared) -> Credentials {
    lock(&shared.credentials).clone()
}

/// The token as held: its schedule counted from when the request was sent.
fn hold(shared: &Shared, issued: Issued, sent: Instant) -> Held {
    // A lifetime beyond any real token's (an `expires_in` of 2^63) is read as the longest one held.
    let lifetime = issued
        .lifetime
        .unwrap_or(shared.default_lifetime)
        .min(timing::FAR);
    let schedule = timing::schedule(lifetime, shared.refresh_share);
    Held {
        token: AccessToken {
            value: Arc::from(issued.access_token),
            token_type: Arc::from(issued.token_type.as_str()),
            scope: issued.scope.map(Arc::from),
            expires_at: timing::later(sent, lifetime),
            // Only a token the server bound is sent with proofs; a Bearer one from a server without DPoP is not.
            dpop: shared.dpop.clone().filter(|_| issued.token_type == "DPoP"),
        },
        obtained: sent,
        usable_until: timing::later(sent, schedule.usable_for),
        refresh_at: timing::later(sent, schedule.refresh_after),
        rejected: false,
        suspect: false,
    }
}

/// Random bits for jitter.
fn random() -> u32 {
    let mut b = [0u8; 4];
    let _ = aws_lc_rs::rand::fill(&mut b);
    u32::from_le_bytes(b)
}
