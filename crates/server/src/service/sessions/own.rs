//! What a signed-in account does with its own sign-ins: the sessions it has open (device, address, last use), ending
//! one or all the others, and changing its password, which needs the current one, must be strong enough, and ends
//! every other session (the current one is replaced by a new one, so a stolen cookie dies with the old password).

use serde_json::json;

use super::{SessionError, Sessions, verify_password};
use crate::crypto::{new_token, random_id};
use crate::service::Actor;
use crate::service::accounts::{check_strength, hash_password};
use crate::store::{SessionOrigin, SessionRow};

/// A session as its account sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    /// Its id, to end it by; `None` for a session from before sessions had ids (ended with the others).
    pub id: Option<String>,
    /// The browser it was opened in.
    pub device: String,
    /// The address it was opened from.
    pub address: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, to the minute.
    pub last_used_at: i64,
    /// Whether it is the session asking.
    pub current: bool,
}

/// The longest device text kept: a User-Agent can be kilobytes.
const MAX_DEVICE: usize = 200;

/// The device a User-Agent names, shortened and stripped of control characters.
pub fn device_of(user_agent: Option<&str>) -> String {
    user_agent
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_DEVICE)
        .collect()
}

/// One of an account's security events, as its holder sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventView {
    /// Unix seconds.
    pub at: i64,
    /// What happened, in words.
    pub what: String,
    /// The address it came from.
    pub source: String,
}

/// How many of its recent events the account sees.
pub(super) const EVENTS_SHOWN: i64 = 20;

/// An audit action about an account, in words.
fn in_words(action: &str) -> String {
    match action {
        "account.login" => "Signed in",
        "account.login_failed" => "A sign-in failed (wrong password)",
        "account.password.change" => "Password changed",
        "account.password.change_failed" => "A password change failed (wrong current password)",
        "account.session.end" => "A session was signed out",
        "account.session.end_others" => "Every other session was signed out",
        "account.create" => "Account created",
        "account.update" => "Account changed by an operator",
        other => other,
    }
    .to_owned()
}

impl Sessions {
    /// The account's recent security events, newest first (sign-ins, failed ones, password and session changes).
    pub async fn events(&self, account_id: &str) -> Result<Vec<EventView>, SessionError> {
        let entries = self
            .store
            .audit_of(account_id, "account.", EVENTS_SHOWN)
            .await?;
        Ok(entries
            .into_iter()
            .map(|e| EventView {
                at: e.at,
                what: in_words(&e.action),
                source: e.source,
            })
            .collect())
    }

    /// The origin of a new session: a fresh id, the device and the address.
    pub fn origin(user_agent: Option<&str>, address: &str) -> SessionOrigin {
        SessionOrigin {
            id: random_id("ses_"),
            device: device_of(user_agent),
            address: address.to_owned(),
        }
    }

    /// The live sessions of the account signed in with `cookie`.
    pub async fn list(
        &self,
        account_id: &str,
        cookie: &str,
    ) -> Result<Vec<SessionView>, SessionError> {
        let mine = self.master.digest(cookie);
        let rows = self.store.sessions_of(account_id, self.clock.now()).await?;
        Ok(rows
            .into_iter()
            .map(|r: SessionRow| SessionView {
                current: r.digest == mine,
                id: r.id,
                device: r.device,
                address: r.address,
                created_at: r.created_at,
                last_used_at: r.last_used_at,
            })
            .collect())
    }

    /// Ends one of the account's sessions; `NotFound` when it has no such session.
    pub async fn end(&self, actor: &Actor, account_id: &str, id: &str) -> Result<(), SessionError> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        if !tx.session_end(account_id, id).await? {
            return Err(SessionError::NotFound);
        }
        tx.audit(
            &actor.entry("account.session.end", account_id, json!({"session": id})),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends every session of the account but the one signed in with `cookie`.
    pub async fn end_others(
        &self,
        actor: &Actor,
        account_id: &str,
        cookie: &str,
    ) -> Result<u64, SessionError> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let ended = tx
            .sessions_end_others(account_id, &self.master.digest(cookie))
            .await?;
        let entry = actor.entry(
            "account.session.end_others",
            account_id,
            json!({"ended": ended}),
        );
        tx.audit(&entry, now).await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// Changes the password of the account signed in with `cookie`: the current password must be right (a failure
    /// counts toward the login throttle), the new one strong enough. Every session of the account ends, and a new
    /// one is opened for this browser: its cookie is returned.
    pub async fn change_password(
        &self,
        actor: &Actor,
        account_id: &str,
        current: &str,
        new: &str,
        origin: SessionOrigin,
    ) -> Result<String, SessionError> {
        let now = self.clock.now();
        let account = self.store.account_get(account_id).await?;
        if account.locked_until > now {
            return Err(SessionError::Throttled(account.locked_until - now));
        }
        if !verify_password(current.to_owned(), Some(account.password_hash.clone())).await {
            let entry = actor.entry("account.password.change_failed", account_id, json!({}));
            let failures = self.store.login_failed(account_id, &entry, now).await?;
            let delay = keyward_core::account::login_delay(failures);
            if delay > 0 {
                self.store.login_lock(account_id, now + delay).await?;
            }
            return Err(SessionError::WrongPassword);
        }
        check_strength(new, &account.email).map_err(SessionError::Weak)?;
        let hash = hash_password(new.to_owned())
            .await
            .map_err(|e| SessionError::Internal(e.to_string()))?;
        let session = new_token("kws_");
        let mut tx = self.store.begin().await?;
        let mut row = tx.account_get(account_id, true).await?;
        row.password_hash = hash;
        row.updated_at = now;
        tx.account_update(&row).await?;
        // Every session ends, this browser's too: the one opened below replaces it.
        tx.sessions_delete_for(account_id).await?;
        // A reset link made before the change must not undo it.
        tx.resets_delete_for(account_id).await?;
        tx.session_open(
            account_id,
            &self.master.digest(&session),
            &origin,
            (now, now + self.session_ttl),
        )
        .await?;
        tx.audit(
            &actor.entry("account.password.change", account_id, json!({})),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(session)
    }
}
