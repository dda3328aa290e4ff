//! `mail_outbox` and `password_resets`: messages waiting to be sent (written in the transaction of the change
//! that causes them, sent by the node holding the `mail` lease), and reset links kept as digests.

use super::{Store, StoreError, Tx, on_db, on_tx};

/// A message as the outbox holds it; the body is sealed with the master key.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct MailRow {
    /// `mail_…`, also the sealed body's associated data.
    pub id: String,
    /// One address.
    pub recipient: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body, sealed.
    pub body: Vec<u8>,
    /// Attempts made so far.
    pub attempts: i64,
}

/// Sent messages' rows are kept a day (an operator can see what left), then purged.
pub const MAIL_KEPT_SECONDS: i64 = 86_400;

impl Tx {
    /// Queues a message, due at once.
    pub async fn mail_enqueue(&mut self, m: &MailRow, now: i64) -> Result<(), StoreError> {
        on_tx!(self, |c| {
            sqlx::query(
            "INSERT INTO mail_outbox (id, recipient, subject, body, created_at, next_attempt_at, attempts) \
             VALUES ($1, $2, $3, $4, $5, $5, 0)"
        )
        .bind(&m.id)
        .bind(&m.recipient)
        .bind(&m.subject)
        .bind(&m.body)
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Stores a reset link's digest for an account until `expires_at`.
    pub async fn reset_insert(
        &mut self,
        digest: &[u8],
        account_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        on_tx!(self, |c| {
            sqlx::query(
            "INSERT INTO password_resets (digest, account_id, created_at, expires_at) VALUES ($1, $2, $3, $4)"
        )
        .bind(digest)
        .bind(account_id)
        .bind(now)
        .bind(expires_at)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Spends a live reset link: deletes it and returns its account. Deleting on read makes the link single-use
    /// even when two requests race.
    pub async fn reset_spend(
        &mut self,
        digest: &[u8],
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = on_tx!(self, |c| {
            sqlx::query_as(
            "DELETE FROM password_resets WHERE digest = $1 AND expires_at > $2 RETURNING account_id"
        )
        .bind(digest)
        .bind(now)
        .fetch_optional(c)
        .await
        })?;
        Ok(row.map(|(a,)| a))
    }

    /// Invalidates every reset link of an account (its password changed).
    pub async fn resets_delete_for(&mut self, account_id: &str) -> Result<(), StoreError> {
        on_tx!(self, |c| sqlx::query(
            "DELETE FROM password_resets WHERE account_id = $1"
        )
        .bind(account_id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// How many reset links were made for an account since `since` (the per-account cooldown).
    pub async fn resets_since(&mut self, account_id: &str, since: i64) -> Result<i64, StoreError> {
        let (n,): (i64,) = on_tx!(self, |c| sqlx::query_as(
            "SELECT COUNT(*) FROM password_resets WHERE account_id = $1 AND created_at > $2"
        )
        .bind(account_id)
        .bind(since)
        .fetch_one(c)
        .await)?;
        Ok(n)
    }
}

impl Store {
    /// Up to `limit` messages due at `now`, oldest first.
    pub async fn mail_due(&self, now: i64, limit: i64) -> Result<Vec<MailRow>, StoreError> {
        Ok(on_db!(&self.db, |p| sqlx::query_as(
            "SELECT id, recipient, subject, body, attempts FROM mail_outbox \
             WHERE done_at IS NULL AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2"
        )
        .bind(now)
        .bind(limit)
        .fetch_all(p)
        .await)?)
    }

    /// Records an attempt: `sent`, or failed and retried at `retry_at` (`None`: given up). `error` is the SMTP
    /// client's message, never the body.
    pub async fn mail_attempted(
        &self,
        id: &str,
        now: i64,
        sent: bool,
        retry_at: Option<i64>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let done = if sent || retry_at.is_none() {
            Some(now)
        } else {
            None
        };
        on_db!(&self.db, |p| sqlx::query(
            "UPDATE mail_outbox SET attempts = attempts + 1, sent = $2, done_at = $3, \
             next_attempt_at = COALESCE($4, next_attempt_at), last_error = $5 WHERE id = $1"
        )
        .bind(id)
        .bind(sent)
        .bind(done)
        .bind(retry_at)
        .bind(error)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Every outbox row's attempts and whether it was sent, oldest first (what an operator or a test inspects).
    pub async fn mail_attempts(&self) -> Result<Vec<(i64, bool)>, StoreError> {
        Ok(on_db!(&self.db, |p| sqlx::query_as(
            "SELECT attempts, sent FROM mail_outbox ORDER BY created_at, id"
        )
        .fetch_all(p)
        .await)?)
    }

    /// Counts the messages not yet sent or given up.
    pub async fn mail_pending(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = on_db!(&self.db, |p| sqlx::query_as(
            "SELECT COUNT(*) FROM mail_outbox WHERE done_at IS NULL"
        )
        .fetch_one(p)
        .await)?;
        Ok(n)
    }

    /// Deletes up to `limit` outbox rows finished before `before` (one purge batch).
    pub async fn mail_purge(&self, before: i64, limit: i64) -> Result<u64, StoreError> {
        self.delete_batch(
            "DELETE FROM mail_outbox WHERE id IN \
             (SELECT id FROM mail_outbox WHERE done_at IS NOT NULL AND done_at < $1 LIMIT $2)",
            before,
            limit,
        )
        .await
    }

    /// Deletes up to `limit` expired reset links (one purge batch).
    pub async fn resets_purge(&self, now: i64, limit: i64) -> Result<u64, StoreError> {
        self.delete_batch(
            "DELETE FROM password_resets WHERE digest IN \
             (SELECT digest FROM password_resets WHERE expires_at < $1 LIMIT $2)",
            now,
            limit,
        )
        .await
    }
}

impl Store {
    /// The account of a stored, unexpired reset link (read only: the link is not spent).
    pub async fn reset_account(
        &self,
        digest: &[u8],
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = on_db!(&self.db, |p| sqlx::query_as(
            "SELECT account_id FROM password_resets WHERE digest = $1 AND expires_at > $2"
        )
        .bind(digest)
        .bind(now)
        .fetch_optional(p)
        .await)?;
        Ok(row.map(|(a,)| a))
    }
}
