//! Accounts: creating, changing and deleting them (admin API, operator pages and CLI, one code path), with their
//! passwords hashed by Argon2id and what their console keys may be given.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, SaltString};
use keyward_core::account::{check_password, check_role, normalize_email};
use keyward_core::console::{KeyScopes, check_key_scopes};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::admin::AdminError;
use super::delegated::DelegatedError;
use super::{Actor, Delegated, Invalid, Outcome, Refusal};
use crate::clock::Clock;
use crate::crypto::{new_token, random, random_id};
use crate::memory::OnCommit;
use crate::store::{AccountRow, Store, StoreError};

/// What the accounts service answers instead of doing what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// A field is wrong.
    #[error("{0}")]
    Invalid(Invalid),
    /// No such account.
    #[error("account not found")]
    NotFound,
    /// Another account has this email or partner id.
    #[error("an account with this email or partner_id exists")]
    Taken,
    /// The admin service refused or failed (an account's keys go with it).
    #[error(transparent)]
    Admin(AdminError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AccountError {
    /// A refusal worded `field: why`.
    fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(Invalid::from_message(message))
    }
}

impl From<DelegatedError> for AccountError {
    fn from(e: DelegatedError) -> Self {
        match e {
            DelegatedError::Store(e) => Self::Store(e),
            DelegatedError::Internal(e) => Self::Internal(e),
            e => Self::Internal(anyhow::anyhow!("revoking a grant: {e}")),
        }
    }
}

impl From<AdminError> for AccountError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Store(e) => Self::Store(e),
            AdminError::Internal(e) => Self::Internal(e),
            e => Self::Admin(e),
        }
    }
}

impl Outcome for AccountError {
    fn refusal(&self) -> Option<Refusal> {
        match self {
            Self::Invalid(_) => Some(Refusal::Invalid),
            Self::NotFound => Some(Refusal::NotFound),
            Self::Taken => Some(Refusal::Conflict),
            Self::Admin(e) => e.refusal(),
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

/// Fields of an account, for create (`email` required) and update (only those given change).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountInput {
    /// Email address (login name).
    pub email: Option<String>,
    /// The platform's seller id (`WM_PARTNER.ID`); `""` clears it.
    pub partner_id: Option<String>,
    /// A new password; on create, one is generated (and returned once) when absent.
    pub password: Option<String>,
    /// `user` (default) or `operator`.
    pub role: Option<String>,
    /// Whether it may log in. Disabling also disables the API keys it made and revokes its grants.
    pub enabled: Option<bool>,
    /// What the account may give the API keys it makes in the console: resource identifier → scopes (each
    /// offered by the resource). Replaces the whole allowance; `{}` takes it away (existing keys keep theirs).
    pub key_scopes: Option<KeyScopes>,
}

/// An account as the admin API shows it: never the password hash.
#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    /// `acct_…`.
    pub account_id: String,
    /// Email.
    pub email: String,
    /// Seller id.
    pub partner_id: Option<String>,
    /// `user` or `operator`.
    pub role: String,
    /// Whether it may log in.
    pub enabled: bool,
    /// Failed logins since the last success.
    pub failed_logins: i64,
    /// What its console keys may have: resource identifier → scopes.
    pub key_scopes: KeyScopes,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl From<&AccountRow> for AccountView {
    fn from(a: &AccountRow) -> Self {
        AccountView {
            account_id: a.id.clone(),
            email: a.email.clone(),
            partner_id: a.partner_id.clone(),
            role: a.role.clone(),
            enabled: a.enabled,
            failed_logins: a.failed_logins,
            key_scopes: key_scopes_of(a),
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// The least zxcvbn score a password chosen by its account must reach (3: "safely unguessable", about 10^10 guesses).
pub const MIN_STRENGTH: zxcvbn::Score = zxcvbn::Score::Three;

/// Whether a password an account holder chooses is strong enough: the length rule (`check_password`), then an
/// estimate of the guesses it takes (zxcvbn: its own lists of common passwords, names and words, keyboard patterns,
/// dates and repeats, and the account's email as a word it knows).
pub fn check_strength(password: &str, email: &str) -> Result<(), String> {
    if check_password(password).is_err() {
        return Err("The new password must be 10 to 256 characters.".into());
    }
    let local = email.split('@').next().unwrap_or_default();
    let estimate = zxcvbn::zxcvbn(password, &[email, local]);
    if estimate.score() < MIN_STRENGTH {
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning())
            .map(|w| format!(" ({w})"))
            .unwrap_or_default();
        return Err(format!(
            "The new password is too easy to guess{hint}: use a longer passphrase of unrelated words."
        ));
    }
    Ok(())
}

/// Argon2id with the crate's defaults (RFC 9106's second recommended option scaled down: 19 MiB, 2 passes, one
/// lane, as OWASP recommends), run on the blocking pool so a login never stalls the token endpoint's threads.
pub(crate) async fn hash_password(password: String) -> Result<String, AccountError> {
    tokio::task::spawn_blocking(move || {
        let salt =
            SaltString::encode_b64(&random::<16>()).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
    })
    .await
    .map_err(|e| AccountError::Internal(e.into()))?
    .map_err(AccountError::Internal)
}

fn check_partner_id(p: &str) -> Result<(), AccountError> {
    if p.chars().count() > 100 || p.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(AccountError::invalid(
            "partner_id: at most 100 characters, no spaces or control characters",
        ));
    }
    Ok(())
}

/// An account's allowance as stored (JSON). Checked on write; a document a newer version wrote and this one cannot
/// read allows nothing.
fn key_scopes_of(a: &AccountRow) -> KeyScopes {
    serde_json::from_str(&a.key_scopes).unwrap_or_default()
}

fn conflict_on_email(e: StoreError) -> AccountError {
    match e {
        StoreError::Conflict(_) => AccountError::Taken,
        e => e.into(),
    }
}

fn not_found(e: StoreError) -> AccountError {
    match e {
        StoreError::NotFound => AccountError::NotFound,
        e => e.into(),
    }
}

/// Accounts: the people who log in to the console and authorize apps.
pub struct Accounts {
    /// Accounts, their keys and grants.
    pub store: Store,
    /// Where time comes from.
    pub clock: Clock,
    /// The commit hook of this node's memory (an account's keys, disabled or deleted with it).
    pub memory: Arc<dyn OnCommit>,
    /// Revokes an account's grants.
    pub delegated: Arc<Delegated>,
}

impl Accounts {
    /// Creates an account; returns it and, when the input had no password, the generated one (shown once).
    pub async fn account_create(
        &self,
        actor: &Actor,
        input: AccountInput,
    ) -> Result<(AccountView, Option<String>), AccountError> {
        let email = normalize_email(input.email.as_deref().unwrap_or_default())
            .map_err(AccountError::invalid)?;
        let role = input.role.unwrap_or_else(|| "user".into());
        check_role(&role).map_err(AccountError::invalid)?;
        let partner_id = input.partner_id.filter(|p| !p.is_empty());
        if let Some(p) = &partner_id {
            check_partner_id(p)?;
        }
        let (password, generated) = match input.password {
            Some(p) => {
                check_password(&p).map_err(AccountError::invalid)?;
                (p, None)
            }
            None => {
                let p = new_token("");
                (p.clone(), Some(p))
            }
        };
        let key_scopes = match input.key_scopes {
            Some(k) => self.checked_key_scopes(k).await?,
            None => "{}".into(),
        };
        let now = self.clock.now();
        let row = AccountRow {
            id: random_id(keyward_core::account::ACCOUNT_SUBJECT_PREFIX),
            email,
            partner_id,
            password_hash: hash_password(password).await?,
            role,
            enabled: input.enabled.unwrap_or(true),
            failed_logins: 0,
            locked_until: 0,
            key_scopes,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.store.begin().await?;
        tx.account_insert(&row).await.map_err(conflict_on_email)?;
        tx.audit(
            &actor.entry(
                "account.create",
                &row.id,
                json!({"email": row.email, "partner_id": row.partner_id, "role": row.role}),
            ),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok((AccountView::from(&row), generated))
    }

    /// One account.
    pub async fn account_get(&self, id: &str) -> Result<AccountView, AccountError> {
        Ok(AccountView::from(
            &self.store.account_get(id).await.map_err(not_found)?,
        ))
    }

    /// Checks an allowance against the resources and returns it as stored.
    async fn checked_key_scopes(&self, k: KeyScopes) -> Result<String, AccountError> {
        let catalogue = super::admin::catalogue(&self.store).await?;
        let k =
            check_key_scopes(k, |r| catalogue.get(r).cloned()).map_err(AccountError::invalid)?;
        Ok(serde_json::to_string(&k).unwrap_or_else(|_| "{}".into()))
    }

    /// A page of accounts by id, after `after`; with `search`, those whose email or partner id contains it.
    pub async fn accounts_list(
        &self,
        after: &str,
        search: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AccountView>, AccountError> {
        let rows = self
            .store
            .accounts_page(after, search, limit.clamp(1, 1_000))
            .await?;
        Ok(rows.iter().map(AccountView::from).collect())
    }

    /// Changes an account. A new password, a new role, or disabling, ends its sessions; disabling also revokes its
    /// grants and disables the API keys it made (enabling the account again leaves them disabled: each is enabled
    /// again on its own).
    pub async fn account_update(
        &self,
        actor: &Actor,
        id: &str,
        input: AccountInput,
    ) -> Result<AccountView, AccountError> {
        let new_hash = match &input.password {
            Some(p) => {
                check_password(p).map_err(AccountError::invalid)?;
                Some(hash_password(p.clone()).await?)
            }
            None => None,
        };
        let new_scopes = match input.key_scopes {
            Some(k) => Some(self.checked_key_scopes(k).await?),
            None => None,
        };
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let mut row = tx.account_get(id, true).await.map_err(not_found)?;
        let mut fields = Vec::new();
        if let Some(k) = new_scopes {
            row.key_scopes = k;
            fields.push("key_scopes");
        }
        if let Some(e) = input.email {
            row.email = normalize_email(&e).map_err(AccountError::invalid)?;
            fields.push("email");
        }
        if let Some(p) = input.partner_id {
            if !p.is_empty() {
                check_partner_id(&p)?;
            }
            row.partner_id = (!p.is_empty()).then_some(p);
            fields.push("partner_id");
        }
        let mut role_changed = false;
        if let Some(r) = input.role {
            check_role(&r).map_err(AccountError::invalid)?;
            role_changed = r != row.role;
            row.role = r;
            fields.push("role");
        }
        if let Some(h) = new_hash {
            row.password_hash = h;
            fields.push("password");
        }
        let disabling = input.enabled == Some(false) && row.enabled;
        if let Some(e) = input.enabled {
            row.enabled = e;
            fields.push("enabled");
        }
        row.updated_at = now;
        tx.account_update(&row).await.map_err(conflict_on_email)?;
        // A new password, a disabled account or a change of privilege ends every session: a session opened under
        // the old role or password does not carry over.
        if fields.contains(&"password") || disabling || role_changed {
            tx.sessions_delete_for(id).await?;
            // A reset link made before the password changed must not undo the change.
            tx.resets_delete_for(id).await?;
        }
        let mut keys = Vec::new();
        if disabling {
            for g in tx.grants_of_account(id).await? {
                self.delegated
                    .revoke_grant_in(&mut tx, &g, "account.disabled", actor, now)
                    .await?;
            }
            keys = tx.owned_clients_disable(id, now).await?;
            for k in &keys {
                tx.audit(
                    &actor.entry(
                        "client.update",
                        k,
                        json!({"fields": ["enabled"], "why": "account.disabled"}),
                    ),
                    now,
                )
                .await?;
            }
        }
        tx.audit(
            &actor.entry("account.update", id, json!({"fields": fields})),
            now,
        )
        .await?;
        tx.commit().await?;
        self.apply_clients(&keys).await;
        Ok(AccountView::from(&row))
    }

    /// Turns off an account's second factor for its holder who lost it (an operator's act, audited): its app and
    /// recovery codes go, and every session of the account ends. `false` when it had none.
    pub async fn second_factor_remove(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<bool, AccountError> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        tx.account_get(id, true).await.map_err(not_found)?;
        if !tx.factor_remove(id).await? {
            return Ok(false);
        }
        tx.sessions_delete_for(id).await?;
        tx.audit(
            &actor.entry(
                "account.second_factor.remove",
                id,
                json!({"by": "operator"}),
            ),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes an account: its grants are revoked first (their access tokens denylisted), then it goes with its
    /// sessions, consents and grants.
    pub async fn account_delete(&self, actor: &Actor, id: &str) -> Result<(), AccountError> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        tx.account_get(id, true).await.map_err(not_found)?;
        for g in tx.grants_of_account(id).await? {
            self.delegated
                .revoke_grant_in(&mut tx, &g, "account.deleted", actor, now)
                .await?;
        }
        // Its keys go first, one by one with a feed entry each, so every node drops them from memory.
        let keys = tx.clients_owned_ids(id).await?;
        for k in &keys {
            super::admin::client_delete_in(
                &mut tx,
                actor,
                k,
                json!({"why": "account.deleted"}),
                now,
            )
            .await?;
        }
        tx.account_delete(id).await.map_err(not_found)?;
        tx.audit(&actor.entry("account.delete", id, json!({})), now)
            .await?;
        tx.commit().await?;
        self.apply_clients(&keys).await;
        Ok(())
    }

    /// Applies committed changes to clients to this process's memory (others follow the feed).
    async fn apply_clients(&self, ids: &[String]) {
        for id in ids {
            self.memory.committed("client", id).await;
        }
    }
}
