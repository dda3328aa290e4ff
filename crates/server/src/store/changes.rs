//! `changes`: an ordered feed of what changed, written in the same transaction as the change. Every process
//! (server nodes, the CLI) writes it; every server reads it to invalidate its caches within a second.

use super::{Store, StoreError, Tx, on_db, on_tx};

/// One change: what kind of thing, and which one.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct Change {
    /// Position in the feed.
    pub seq: i64,
    /// `client`, `clients` (every client), `resource`, `key` or `revoked`.
    pub kind: String,
    /// The id of what changed.
    pub key: String,
}

impl Tx {
    /// Records a change.
    pub async fn change(&mut self, kind: &str, key: &str, now: i64) -> Result<(), StoreError> {
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO changes (at, kind, key) VALUES ($1, $2, $3)"
        )
        .bind(now)
        .bind(kind)
        .bind(key)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }
}

impl Store {
    /// The newest position in the feed (0 when empty).
    pub async fn changes_head(&self) -> Result<i64, StoreError> {
        let (v,): (Option<i64>,) =
            on_db!(&self.db, |p| sqlx::query_as("SELECT MAX(seq) FROM changes")
                .fetch_one(p)
                .await)?;
        Ok(v.unwrap_or(0))
    }

    /// Changes after `seq`, oldest first, at most `limit`.
    pub async fn changes_since(&self, seq: i64, limit: i64) -> Result<Vec<Change>, StoreError> {
        Ok(on_db!(&self.db, |p| sqlx::query_as(
            "SELECT seq, kind, key FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2"
        )
        .bind(seq)
        .bind(limit)
        .fetch_all(p)
        .await)?)
    }

    /// The entries at these positions that exist (the gaps a follower watches for late commits).
    /// PostgreSQL binds the positions as an array; SQLite reads them from a JSON array.
    pub async fn changes_at(&self, seqs: &[i64]) -> Result<Vec<Change>, StoreError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        Ok(match &self.db {
            super::Db::Postgres(p) => {
                sqlx::query_as(
                    "SELECT seq, kind, key FROM changes WHERE seq = ANY($1) ORDER BY seq",
                )
                .bind(seqs)
                .fetch_all(p)
                .await?
            }
            super::Db::Sqlite(p) => {
                let list = serde_json::to_string(seqs).unwrap_or_else(|_| "[]".into());
                sqlx::query_as(
                    "SELECT seq, kind, key FROM changes WHERE seq IN (SELECT value FROM json_each($1)) \
                     ORDER BY seq",
                )
                .bind(list)
                .fetch_all(p)
                .await?
            }
        })
    }

    /// The positions that exist after `seq` (at start: which of the newest positions are still missing).
    pub async fn changes_present_after(&self, seq: i64) -> Result<Vec<i64>, StoreError> {
        let rows: Vec<(i64,)> = on_db!(&self.db, |p| sqlx::query_as(
            "SELECT seq FROM changes WHERE seq > $1"
        )
        .bind(seq)
        .fetch_all(p)
        .await)?;
        Ok(rows.into_iter().map(|(s,)| s).collect())
    }

    /// Deletes up to `limit` feed entries older than `before` (Unix seconds), oldest first, keeping the newest so
    /// the head never goes back.
    pub async fn changes_purge(&self, before: i64, limit: i64) -> Result<u64, StoreError> {
        self.delete_batch(
            "DELETE FROM changes WHERE seq IN (SELECT seq FROM changes \
             WHERE at < $1 AND seq < (SELECT MAX(seq) FROM changes) ORDER BY seq LIMIT $2)",
            before,
            limit,
        )
        .await
    }
}
