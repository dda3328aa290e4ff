//! Client secrets through the admin service: adding one (rotation with an overlap), listing them (never their
//! values) and retiring one. Each change is audited and fed to every node like any other.

use keyward_core::client::AuthMethod;
use serde::Serialize;
use serde_json::json;

use super::{Actor, Admin, AdminError, DurationValue, not_found};
use crate::crypto::{new_secret, random_id};
use crate::store::SecretRow;

/// The longest overlap a rotation may give the older secrets: ten years.
const MAX_OVERLAP: i64 = 10 * 365 * 86_400;

/// A secret as listed: never its value.
#[derive(Debug, Clone, Serialize)]
pub struct SecretView {
    /// Secret id.
    pub id: String,
    /// First characters.
    pub hint: String,
    /// Unix seconds.
    pub created_at: i64,
    /// When it stops working.
    pub expires_at: Option<i64>,
    /// Last successful use (recorded within about 10 seconds).
    pub last_used_at: Option<i64>,
}

/// A newly made secret, shown once.
#[derive(Debug, Clone, Serialize)]
pub struct NewSecret {
    /// The client.
    pub client_id: String,
    /// The secret's id.
    pub secret_id: String,
    /// The secret: shown once, never stored.
    pub client_secret: String,
    /// When the client's older secrets stop working, if rotation scheduled it.
    pub old_secrets_expire_at: Option<i64>,
}

pub(super) fn secret_view(s: &SecretRow) -> SecretView {
    SecretView {
        id: s.id.clone(),
        hint: s.hint.clone(),
        created_at: s.created_at,
        expires_at: s.expires_at,
        last_used_at: s.last_used_at,
    }
}

impl Admin {
    /// Adds a secret; with `retire_old_after`, every older secret stops working that many seconds from now
    /// (rotation with overlap). Issued tokens are never affected.
    pub async fn secret_add(
        &self,
        actor: &Actor,
        id: &str,
        retire_old_after: Option<DurationValue>,
    ) -> Result<NewSecret, AdminError> {
        let now = self.clock.now();
        let retire = retire_old_after
            .map(|d| super::seconds(&d, "retire_old_after"))
            .transpose()?;
        // Bounded so that `now` plus the overlap stays a time (an unbounded one overflowed).
        if retire.is_some_and(|r| r > MAX_OVERLAP) {
            return Err(AdminError::invalid(
                "retire_old_after: must be at most 3650d",
            ));
        }
        let (secret, hint) = new_secret();
        let row = SecretRow {
            id: random_id("sec_"),
            client_id: id.to_owned(),
            digest: self.master.digest(&secret).to_vec(),
            hint,
            created_at: now,
            expires_at: None,
            last_used_at: None,
        };
        let mut tx = self.store.begin().await?;
        tx.change("client", id, now).await?;
        // Read under the lock, so a secret added concurrently is retired too.
        let (client, _, existing) = tx
            .client_get(id, true)
            .await
            .map_err(|e| not_found(e, "client"))?;
        if client.auth_methods == AuthMethod::None.as_str() {
            return Err(AdminError::invalid(
                "a public client has no secret: make it confidential first (client_type)",
            ));
        }
        tx.secret_insert(&row).await?;
        let old_expire = retire.map(|r| now + r);
        if let Some(at) = old_expire {
            for old in &existing {
                tx.secret_set_expiry(id, &old.id, at).await?;
            }
        }
        tx.audit(
            &actor.entry(
                "client.secret.add",
                id,
                json!({"secret_id": row.id, "old_secrets_expire_at": old_expire}),
            ),
            now,
        )
        .await?;
        self.finish(tx, "client", id).await?;
        Ok(NewSecret {
            client_id: id.to_owned(),
            secret_id: row.id,
            client_secret: secret,
            old_secrets_expire_at: old_expire,
        })
    }

    /// Lists a client's secrets (never their values).
    pub async fn secrets_list(&self, id: &str) -> Result<Vec<SecretView>, AdminError> {
        let (_, _, secrets) = self
            .store
            .client_get(id)
            .await
            .map_err(|e| not_found(e, "client"))?;
        Ok(secrets.iter().map(secret_view).collect())
    }

    /// Retires a secret now.
    pub async fn secret_retire(
        &self,
        actor: &Actor,
        id: &str,
        secret_id: &str,
    ) -> Result<(), AdminError> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        tx.secret_set_expiry(id, secret_id, now)
            .await
            .map_err(|e| not_found(e, "secret"))?;
        if actor.is_client(id) {
            // Read after the write, under its lock: a secret added or retired concurrently is counted.
            let (_, _, secrets) = tx
                .client_get(id, true)
                .await
                .map_err(|e| not_found(e, "client"))?;
            if !secrets.iter().any(|s| s.expires_at.is_none_or(|t| t > now)) {
                return Err(super::lockout());
            }
        }
        tx.audit(
            &actor.entry("client.secret.retire", id, json!({"secret_id": secret_id})),
            now,
        )
        .await?;
        tx.change("client", id, now).await?;
        self.finish(tx, "client", id).await
    }
}
