//! Platform-wide admin operations: signing keys (listing, publish-then-sign rotation) and reading the audit log.

use keyward_core::resource::SigningAlg;
use serde::Serialize;
use serde_json::json;

use super::{Actor, Admin, AdminError};
use crate::store::AuditEntry;

impl Admin {
    /// Signing keys with their state.
    pub fn keys_list(&self) -> Vec<serde_json::Value> {
        self.keys.describe(self.clock.now())
    }

    /// Rotates signing keys (one algorithm, or all): the new key is published now and signs after
    /// `key_publish_delay` (publish-then-sign).
    pub async fn keys_rotate(
        &self,
        actor: &Actor,
        alg: Option<&str>,
    ) -> Result<Vec<serde_json::Value>, AdminError> {
        let now = self.clock.now();
        let algs = match alg {
            Some(a) => vec![
                a.parse::<SigningAlg>()
                    .map_err(|m| AdminError::invalid(format!("alg: {m}")))?,
            ],
            None => SigningAlg::ALL.to_vec(),
        };
        let mut tx = self.store.begin().await?;
        let mut made = Vec::new();
        for alg in algs {
            let row = crate::keys::generate(alg, &self.master, now, now + self.key_publish_delay)?;
            tx.key_insert(&row).await?;
            made.push(json!({"kid": row.kid, "alg": row.alg, "activates_at": row.activates_at}));
        }
        tx.audit(
            &actor.entry("keys.rotate", "signing_keys", json!({"new": made})),
            now,
        )
        .await?;
        tx.change("key", "*", now).await?;
        self.finish(tx, "key", "*").await?;
        Ok(made)
    }

    /// Audit entries, newest first; with `search`, those whose actor, action or target contains it.
    pub async fn audit_list(
        &self,
        before: Option<i64>,
        search: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditView>, AdminError> {
        let entries = self
            .store
            .audit_page(before.unwrap_or(i64::MAX), search, limit.clamp(1, 1_000))
            .await?;
        Ok(entries.into_iter().map(AuditView::from).collect())
    }
}

/// An audit entry as the admin API and the operator's pages show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditView {
    /// Position.
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// Who: `client:<id>` for the admin API, `account:<id>` for the console, `cli`, `config` or `system`.
    pub actor: String,
    /// What, such as `client.create`.
    pub action: String,
    /// The id acted on.
    pub target: String,
    /// JSON details (never a secret).
    pub detail: String,
    /// Where from: the peer address, or `cli`.
    pub source: String,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        AuditView {
            id: e.id,
            at: e.at,
            actor: e.actor,
            action: e.action,
            target: e.target,
            detail: e.detail,
            source: e.source,
        }
    }
}
