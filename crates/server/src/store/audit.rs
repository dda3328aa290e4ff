//! `audit_log`: who changed what, when, and from where. Written in the same transaction as the change.

use super::{Store, StoreError, Tx, on_db, on_tx};

/// An audit entry as read back.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    /// Position.
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// Who: `client:<id>` for the admin API, `cli` for the command line, `system` at first start.
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

/// An audit entry to write.
#[derive(Debug, Clone)]
pub struct NewAudit<'a> {
    /// Who.
    pub actor: &'a str,
    /// Where from.
    pub source: &'a str,
    /// What.
    pub action: &'a str,
    /// On what.
    pub target: &'a str,
    /// Details, JSON.
    pub detail: String,
}

impl Tx {
    /// Writes an audit entry.
    pub async fn audit(&mut self, e: &NewAudit<'_>, now: i64) -> Result<(), StoreError> {
        on_tx!(self, |c| {
            sqlx::query(
            "INSERT INTO audit_log (at, actor, action, target, detail, source) VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(now)
        .bind(e.actor)
        .bind(e.action)
        .bind(e.target)
        .bind(&e.detail)
        .bind(e.source)
        .execute(c)
        .await.map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}

impl Store {
    /// Audit entries, newest first, before id `before` (exclusive; `i64::MAX` for the first page); with `search`,
    /// only those whose actor, action or target contains it (any case).
    pub async fn audit_page(
        &self,
        before: i64,
        search: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(on_db!(&self.db, |p| {
            sqlx::query_as(
                "SELECT id, at, actor, action, target, detail, source FROM audit_log WHERE id < $1 \
             AND ($2 = '' OR LOWER(actor) LIKE $2 ESCAPE '\\' OR LOWER(action) LIKE $2 ESCAPE '\\' \
             OR LOWER(target) LIKE $2 ESCAPE '\\') ORDER BY id DESC LIMIT $3",
            )
            .bind(before)
            .bind(super::contains_pattern(search))
            .bind(limit)
            .fetch_all(p)
            .await
        })?)
    }

    /// The newest `limit` entries about `target` whose action starts with `prefix` (an account's own security
    /// events: `account.`).
    pub async fn audit_of(
        &self,
        target: &str,
        prefix: &str,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(on_db!(&self.db, |p| {
            sqlx::query_as(
                "SELECT id, at, actor, action, target, detail, source FROM audit_log WHERE target = $1 \
                 AND action LIKE $2 ORDER BY id DESC LIMIT $3",
            )
            .bind(target)
            .bind(format!("{prefix}%"))
            .bind(limit)
            .fetch_all(p)
            .await
        })?)
    }

    /// Deletes up to `limit` audit entries written before `before`.
    pub async fn audit_purge(&self, before: i64, limit: i64) -> Result<u64, StoreError> {
        self.delete_batch(
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < $1 LIMIT $2)",
            before,
            limit,
        )
        .await
    }
}
