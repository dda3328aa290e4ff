//! Password resets: a single-use link emailed on request (the same answer, after the same time, for a known and
//! an unknown address), or printed for an operator by the CLI; spending it sets a new password and ends every
//! session of the account. The link's token is stored only as a digest.

use std::sync::Arc;
use std::time::Duration;

use keyward_core::account::normalize_email;
use serde_json::json;

use super::Actor;
use super::accounts::{check_strength, hash_password};
use crate::clock::Clock;
use crate::crypto::{MasterKeys, new_token, random_id};
use crate::store::{MailRow, Store, StoreError, Tx};

/// How long a reset link lasts.
pub const RESET_TTL_SECONDS: i64 = 30 * 60;

/// At most one emailed link per account per this many seconds, and [`RESETS_PER_HOUR`] an hour; further requests
/// are answered the same and send nothing.
pub const RESET_COOLDOWN_SECONDS: i64 = 60;

/// Emailed links per account per hour.
pub const RESETS_PER_HOUR: i64 = 5;

/// A request's answer never comes sooner than this, so a known address (a database write) and an unknown one
/// (nothing to write) take the same time.
const ANSWER_AFTER: Duration = Duration::from_millis(300);

/// Password resets.
pub struct Resets {
    /// Accounts, reset links, the outbox.
    pub store: Store,
    /// Digests of reset tokens; the outbox's sealed bodies.
    pub master: Arc<MasterKeys>,
    /// Where time comes from.
    pub clock: Clock,
    /// The public base URL the links point to (the issuer).
    pub issuer: String,
    /// Whether email is configured; without it, only the CLI makes links.
    pub email: bool,
}

/// Why a reset could not be requested or completed.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// No SMTP server is configured: an operator makes the link with `keyward accounts reset-link`.
    #[error("email is not configured on this server: ask an operator for a reset link")]
    NoEmail,
    /// The link is unknown, spent or expired.
    #[error("this reset link is not valid (used, expired or replaced): ask for a new one")]
    BadLink,
    /// The new password breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// No such account (the CLI).
    #[error("no such account")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing or sealing failed.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl super::Outcome for ResetError {
    fn refusal(&self) -> Option<super::Refusal> {
        match self {
            Self::Invalid(_) | Self::BadLink => Some(super::Refusal::Invalid),
            Self::NotFound => Some(super::Refusal::NotFound),
            Self::NoEmail => Some(super::Refusal::Conflict),
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

/// The words of a reset email: the link, and how long it lasts.
fn reset_body(link: &str) -> String {
    format!(
        "Someone asked to reset the password of this account.\r\n\r\n\
         To choose a new password, open this link within {} minutes:\r\n\r\n{link}\r\n\r\n\
         The link works once. If you did not ask for it, ignore this message: your password stays as it is.\r\n",
        RESET_TTL_SECONDS / 60
    )
}

impl Resets {
    /// Whether reset links can be emailed (the forgot-password page says so when not).
    pub fn email_configured(&self) -> bool {
        self.email
    }

    /// Makes a reset link for an account inside `tx`: stores the token's digest and returns the link.
    async fn make_link(
        &self,
        tx: &mut Tx,
        account_id: &str,
        now: i64,
    ) -> Result<String, ResetError> {
        let token = new_token("kwp_");
        tx.reset_insert(
            &self.master.digest(&token),
            account_id,
            now,
            now + RESET_TTL_SECONDS,
        )
        .await?;
        Ok(format!("{}/login/reset?token={token}", self.issuer))
    }

    /// "Forgot password": for a known, enabled account outside its cooldown, a link is queued in the outbox in
    /// the transaction that stores it (a crash loses neither or both). The caller learns nothing: the same `Ok`
    /// for every address, after at least [`ANSWER_AFTER`].
    pub async fn request(&self, email: &str, source: &str) -> Result<(), ResetError> {
        if !self.email {
            return Err(ResetError::NoEmail);
        }
        let started = tokio::time::Instant::now();
        let outcome = self.request_inner(email, source).await;
        tokio::time::sleep_until(started + ANSWER_AFTER).await;
        outcome
    }

    async fn request_inner(&self, email: &str, source: &str) -> Result<(), ResetError> {
        let Ok(email) = normalize_email(email) else {
            return Ok(());
        };
        let Some(account) = self.store.account_by_email(&email).await? else {
            return Ok(());
        };
        if !account.enabled {
            return Ok(());
        }
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        if tx
            .resets_since(&account.id, now - RESET_COOLDOWN_SECONDS)
            .await?
            > 0
            || tx.resets_since(&account.id, now - 3600).await? >= RESETS_PER_HOUR
        {
            return Ok(());
        }
        let link = self.make_link(&mut tx, &account.id, now).await?;
        let id = random_id("mail_");
        let body = self.master.seal(reset_body(&link).as_bytes(), &id)?;
        tx.mail_enqueue(
            &MailRow {
                id,
                recipient: account.email.clone(),
                subject: "Reset your password".into(),
                body,
                attempts: 0,
            },
            now,
        )
        .await?;
        let actor = Actor {
            who: format!("account:{}", account.id),
            source: source.to_owned(),
        };
        tx.audit(
            &actor.entry(
                "account.reset_requested",
                &account.id,
                json!({"via": "email"}),
            ),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A link for an operator to hand over (`keyward accounts reset-link`), whether or not email is configured.
    pub async fn link_for(&self, actor: &Actor, account_id: &str) -> Result<String, ResetError> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let account = tx
            .account_get(account_id, true)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ResetError::NotFound,
                e => ResetError::Store(e),
            })?;
        let link = self.make_link(&mut tx, &account.id, now).await?;
        tx.audit(
            &actor.entry(
                "account.reset_requested",
                &account.id,
                json!({"via": "operator"}),
            ),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(link)
    }

    /// Spends a link and sets the new password: in one transaction the link is deleted (single use), the
    /// password replaced, every session and every other link of the account ended, and the reset audited.
    pub async fn complete(
        &self,
        token: &str,
        password: &str,
        source: &str,
    ) -> Result<(), ResetError> {
        // The strength check knows the account's email (a password made of it is weak): read, not spent, here.
        let digest = self.master.digest(token);
        let Some(account_id) = self.store.reset_account(&digest, self.clock.now()).await? else {
            return Err(ResetError::BadLink);
        };
        let account = self.store.account_get(&account_id).await?;
        check_strength(password, &account.email).map_err(ResetError::Invalid)?;
        // Hashing before the transaction keeps Argon2's time out of the write lock.
        let hash = hash_password(password.to_owned())
            .await
            .map_err(|e| ResetError::Internal(anyhow::anyhow!("{e}")))?;
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let Some(account_id) = tx.reset_spend(&digest, now).await? else {
            return Err(ResetError::BadLink);
        };
        let mut row = tx.account_get(&account_id, true).await?;
        if !row.enabled {
            return Err(ResetError::BadLink);
        }
        row.password_hash = hash;
        row.updated_at = now;
        tx.account_update(&row).await?;
        tx.sessions_delete_for(&account_id).await?;
        tx.resets_delete_for(&account_id).await?;
        let actor = Actor {
            who: format!("account:{account_id}"),
            source: source.to_owned(),
        };
        tx.audit(
            &actor.entry("account.reset_completed", &account_id, json!({})),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether a link is live (the reset page shows its form only then). Reading does not spend it.
    pub async fn link_live(&self, token: &str) -> Result<bool, ResetError> {
        Ok(self
            .store
            .reset_account(&self.master.digest(token), self.clock.now())
            .await?
            .is_some())
    }
}
