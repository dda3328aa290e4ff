//! Logins and sessions: checking an email and password (Argon2id, on the blocking pool) with per-account
//! throttling, opening a session whose cookie value is stored only as a digest, and ending it; an account's own
//! sessions and password in `sessions/own.rs`.

mod own;

pub use own::{EventView, SessionView, device_of};

use std::sync::{Arc, OnceLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use keyward_core::account::{login_delay, normalize_email};

use super::accounts::AccountView;
use crate::clock::Clock;
use crate::crypto::{MasterKeys, digests_equal, new_token};
use crate::service::Actor;
use crate::service::factors::{FactorError, SecondFactors};
use crate::store::{SessionOrigin, Store, StoreError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::json;

/// How long the second step of a sign-in may take after the password.
pub const PENDING_TTL: i64 = 300;

/// What a correct password leads to.
#[derive(Debug)]
pub enum SignIn {
    /// A session (its cookie value) for the account.
    Session(String, AccountView),
    /// The account has a second factor: this proof of the password goes with the code (`Sessions::second_factor`).
    SecondFactor(String),
}

/// Logins and the sessions they open.
pub struct Sessions {
    /// Accounts and sessions.
    pub store: Store,
    /// Session digests.
    pub master: Arc<MasterKeys>,
    /// Where time comes from.
    pub clock: Clock,
    /// Session lifetime, seconds.
    pub session_ttl: i64,
    /// Second factors, checked at sign-in.
    pub factors: Arc<SecondFactors>,
}

/// Why a login failed, or a session could not be read or ended: the login page shows the same words for an
/// unknown email and a wrong password.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Wrong email or password (or a disabled account).
    #[error("wrong email or password")]
    Invalid,
    /// Too many failures: try again after this many seconds.
    #[error("too many failed logins: try again in {0} s")]
    Throttled(i64),
    /// The second factor's code is wrong or used.
    #[error(
        "That code is not right. Type the current code from your authenticator app, or a recovery code."
    )]
    WrongCode,
    /// The current password given to change it is wrong.
    #[error("The current password is not right.")]
    WrongPassword,
    /// The new password is too weak: the sentence says why.
    #[error("{0}")]
    Weak(String),
    /// The account has no such session.
    #[error("session not found")]
    NotFound,
    /// Hashing failed.
    #[error("{0}")]
    Internal(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl super::Outcome for SessionError {
    fn refusal(&self) -> Option<super::Refusal> {
        match self {
            Self::Invalid | Self::WrongPassword | Self::WrongCode | Self::Weak(_) => {
                Some(super::Refusal::Invalid)
            }
            Self::NotFound => Some(super::Refusal::NotFound),
            Self::Throttled(_) => Some(super::Refusal::Conflict),
            Self::Store(_) | Self::Internal(_) => None,
        }
    }
    fn store_error(&self) -> Option<&StoreError> {
        match self {
            Self::Store(e) => Some(e),
            _ => None,
        }
    }
}

/// Checks a password against a PHC string, on the blocking pool. `None` (an unknown email) checks against a
/// fixed hash, so an unknown email takes as long as a wrong password.
pub(crate) async fn verify_password(password: String, hash: Option<String>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    tokio::task::spawn_blocking(move || {
        let dummy = DUMMY.get_or_init(|| {
            let Ok(salt) = SaltString::encode_b64(&[7u8; 16]) else {
                return String::new();
            };
            Argon2::default()
                .hash_password(b"not a password", &salt)
                .map(|h| h.to_string())
                .unwrap_or_default()
        });
        let known = hash.is_some();
        let phc = hash.unwrap_or_else(|| dummy.clone());
        let ok = PasswordHash::new(&phc)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        known && ok
    })
    .await
    .unwrap_or(false)
}

impl Sessions {
    /// Checks an email and password. Failures are counted per account, and once there are
    /// [`keyward_core::account::FREE_FAILURES`] each further try must wait (`Throttled`), checked before the
    /// password so a throttled guess costs nothing. On success a session is opened (its cookie value is returned),
    /// or, for an account with a second factor, the proof of the password the second step needs.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        origin: SessionOrigin,
    ) -> Result<SignIn, SessionError> {
        let now = self.clock.now();
        let account = match normalize_email(email) {
            Ok(e) => self.store.account_by_email(&e).await?,
            Err(_) => None,
        };
        if let Some(a) = &account {
            if a.locked_until > now {
                return Err(SessionError::Throttled(a.locked_until - now));
            }
        }
        let ok = verify_password(
            password.to_owned(),
            account.as_ref().map(|a| a.password_hash.clone()),
        )
        .await;
        let Some(account) = account else {
            return Err(SessionError::Invalid);
        };
        if !ok || !account.enabled {
            let someone = Actor::sign_in(origin.address.clone());
            let entry = someone.entry(
                "account.login_failed",
                &account.id,
                json!({"device": origin.device}),
            );
            let failures = self.store.login_failed(&account.id, &entry, now).await?;
            let delay = login_delay(failures);
            if delay > 0 {
                self.store.login_lock(&account.id, now + delay).await?;
                tracing::warn!(account_id = %account.id, failures, delay, "failed logins: the account's next login waits");
            }
            return Err(SessionError::Invalid);
        }
        if self
            .factors
            .required(&account.id)
            .await
            .map_err(|e| SessionError::Internal(e.to_string()))?
        {
            return Ok(SignIn::SecondFactor(
                self.pending(&account.id, now + PENDING_TTL),
            ));
        }
        let session = self.open(&account.id, &origin, now).await?;
        Ok(SignIn::Session(session, AccountView::from(&account)))
    }

    /// Opens a session for `account_id` (the password, and the second factor where there is one, checked): its
    /// cookie value, stored only as a digest, with the sign-in's audit entry in the same transaction.
    async fn open(
        &self,
        account_id: &str,
        origin: &SessionOrigin,
        now: i64,
    ) -> Result<String, SessionError> {
        let session = new_token("kws_");
        self.store
            .login_succeeded(
                account_id,
                &self.master.digest(&session),
                origin,
                (now, now + self.session_ttl),
                &Actor::account(account_id, origin.address.clone()).entry(
                    "account.login",
                    account_id,
                    json!({"session": origin.id, "device": origin.device}),
                ),
            )
            .await?;
        Ok(session)
    }

    /// The proof that `account_id` gave its password, good until `until`, for the second-factor step: the account,
    /// the time and an HMAC of both under the pepper (nothing stored; it opens no session by itself).
    fn pending(&self, account_id: &str, until: i64) -> String {
        let mac = self
            .master
            .digest(&format!("pending\0{account_id}\0{until}"));
        format!("{account_id}.{until}.{}", B64.encode(mac))
    }

    /// The account a pending proof names, when it is genuine and not expired.
    fn pending_account(&self, pending: &str, now: i64) -> Option<String> {
        let (rest, mac) = pending.rsplit_once('.')?;
        let (account_id, until) = rest.rsplit_once('.')?;
        let until: i64 = until.parse().ok()?;
        let expected = B64.encode(
            self.master
                .digest(&format!("pending\0{account_id}\0{until}")),
        );
        (now < until && digests_equal(mac.as_bytes(), expected.as_bytes()))
            .then(|| account_id.to_owned())
    }

    /// The second step of a sign-in: a code from the authenticator app (or a recovery code) for the account whose
    /// password `pending` proves. A wrong code counts toward the login throttle.
    pub async fn second_factor(
        &self,
        pending: &str,
        code: &str,
        origin: SessionOrigin,
    ) -> Result<(String, AccountView), SessionError> {
        let now = self.clock.now();
        let account_id = self
            .pending_account(pending, now)
            .ok_or(SessionError::Invalid)?;
        let account = self.store.account_get(&account_id).await?;
        if account.locked_until > now {
            return Err(SessionError::Throttled(account.locked_until - now));
        }
        if !account.enabled {
            return Err(SessionError::Invalid);
        }
        match self.factors.check(&account_id, code).await {
            Ok(()) => {}
            Err(FactorError::WrongCode) => {
                let someone = Actor::sign_in(origin.address.clone());
                let entry = someone.entry("account.second_factor.failed", &account_id, json!({}));
                let failures = self.store.login_failed(&account_id, &entry, now).await?;
                let delay = login_delay(failures);
                if delay > 0 {
                    self.store.login_lock(&account_id, now + delay).await?;
                }
                return Err(SessionError::WrongCode);
            }
            Err(e) => return Err(SessionError::Internal(e.to_string())),
        }
        let session = self.open(&account_id, &origin, now).await?;
        Ok((session, AccountView::from(&account)))
    }

    /// The account of a session cookie's value, when the session is live; its use is noted (to the minute).
    pub async fn session(&self, cookie: &str) -> Result<Option<AccountView>, SessionError> {
        let (digest, now) = (self.master.digest(cookie), self.clock.now());
        let account = self.store.session_account(&digest, now).await?;
        if account.is_some() {
            self.store.session_touch(&digest, now).await?;
        }
        Ok(account.as_ref().map(AccountView::from))
    }

    /// Ends a session.
    pub async fn logout(&self, cookie: &str) -> Result<(), SessionError> {
        Ok(self
            .store
            .session_delete(&self.master.digest(cookie))
            .await?)
    }
}
