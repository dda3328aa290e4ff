//! `client_secrets`: the digests of clients' secrets (never the secrets), their expiry and last use.

use std::sync::Arc;

use super::clients::BULK_ROWS;
use super::{Store, StoreError, Tx, on_tx};

/// A secret row: the digest, never the secret.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct SecretRow {
    /// Secret id.
    pub id: String,
    /// Owner.
    pub client_id: String,
    /// HMAC-SHA-256 of the secret under the server pepper.
    pub digest: Vec<u8>,
    /// The first characters, to tell secrets apart in listings.
    pub hint: String,
    /// Unix seconds.
    pub created_at: i64,
    /// When it stops working, if set.
    pub expires_at: Option<i64>,
    /// When it last authenticated (flushed periodically, not per request).
    pub last_used_at: Option<i64>,
}

pub(super) const SECRET_COLUMNS: &str =
    "id, client_id, digest, hint, created_at, expires_at, last_used_at";

impl Store {
    /// Records last-used times gathered in memory: one transaction, a thousand secrets per statement. Only ever
    /// moves a time forward.
    pub async fn secrets_touch(&self, used: &[(Arc<str>, i64)]) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        for chunk in used.chunks(BULK_ROWS) {
            on_tx!(&mut tx, |c| {
                // `VALUES` names its columns column1, column2 on both engines.
                let mut q = sqlx::QueryBuilder::new(
                    "UPDATE client_secrets SET last_used_at = v.column2 FROM (",
                );
                q.push_values(chunk, |mut b, (id, at)| {
                    b.push_bind(&**id).push_bind(*at);
                });
                q.push(
                    ") AS v WHERE client_secrets.id = v.column1 \
                     AND (client_secrets.last_used_at IS NULL OR client_secrets.last_used_at < v.column2)",
                );
                q.build().execute(c).await.map(|_| ())
            })?;
        }
        tx.commit().await
    }

    /// Every secret, streamed to `each`.
    pub async fn secrets_each(&self, each: impl FnMut(SecretRow)) -> Result<(), StoreError> {
        self.each_row(
            &format!("SELECT {SECRET_COLUMNS} FROM client_secrets"),
            each,
        )
        .await
    }
}

impl Tx {
    /// Adds a secret.
    pub async fn secret_insert(&mut self, s: &SecretRow) -> Result<(), StoreError> {
        self.secrets_insert_many(std::slice::from_ref(s)).await
    }

    /// Adds secrets (never used yet), up to `BULK_ROWS` per statement.
    pub async fn secrets_insert_many(&mut self, secrets: &[SecretRow]) -> Result<(), StoreError> {
        for chunk in secrets.chunks(BULK_ROWS) {
            on_tx!(self, |conn| {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO client_secrets (id, client_id, digest, hint, created_at, expires_at) ",
                );
                q.push_values(chunk, |mut b, s| {
                    b.push_bind(&s.id)
                        .push_bind(&s.client_id)
                        .push_bind(&s.digest)
                        .push_bind(&s.hint)
                        .push_bind(s.created_at)
                        .push_bind(s.expires_at);
                });
                q.build().execute(conn).await.map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }

    /// Sets when a secret stops working; `NotFound` when the client has no such secret.
    pub async fn secret_set_expiry(
        &mut self,
        client_id: &str,
        id: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        let done = on_tx!(self, |c| sqlx::query(
            "UPDATE client_secrets SET expires_at = $3 WHERE client_id = $1 AND id = $2 \
             AND (expires_at IS NULL OR expires_at > $3)"
        )
        .bind(client_id)
        .bind(id)
        .bind(at)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        if done == 0 {
            // Either the secret does not exist, or it already expires sooner: tell the two apart.
            let (n,): (i64,) = on_tx!(self, |c| sqlx::query_as(
                "SELECT COUNT(*) FROM client_secrets WHERE client_id = $1 AND id = $2"
            )
            .bind(client_id)
            .bind(id)
            .fetch_one(c)
            .await)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
        }
        Ok(())
    }
}
