//! `accounts` and `sessions`: the people who own data on the platform, and their browser login sessions (kept
//! as digests of the cookie's value).

use super::{Store, StoreError, Tx, on_db, on_tx};

/// An account row. The password is an Argon2id PHC string, never the password.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct AccountRow {
    /// `acct_…`, the `sub` of its delegated tokens.
    pub id: String,
    /// Lower-case email address, unique.
    pub email: String,
    /// The platform's id of the seller (Walmart's `WM_PARTNER.ID`), unique when set.
    pub partner_id: Option<String>,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// `user` or `operator`.
    pub role: String,
    /// Disabled accounts cannot log in.
    pub enabled: bool,
    /// Failed logins since the last success.
    pub failed_logins: i64,
    /// No login is tried before this time (Unix seconds).
    pub locked_until: i64,
    /// JSON: resource identifier -> the scopes the account may give the keys it makes in the console.
    pub key_scopes: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

const COLUMNS: &str = "id, email, partner_id, password_hash, role, enabled, failed_logins, locked_until, \
                       key_scopes, created_at, updated_at";

impl Store {
    /// The account with this (lower-case) email.
    pub async fn account_by_email(&self, email: &str) -> Result<Option<AccountRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM accounts WHERE email = $1");
        Ok(on_db!(&self.db, |p| sqlx::query_as(&sql)
            .bind(email)
            .fetch_optional(p)
            .await)?)
    }

    /// One account; `NotFound` when absent.
    pub async fn account_get(&self, id: &str) -> Result<AccountRow, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM accounts WHERE id = $1");
        Ok(on_db!(&self.db, |p| sqlx::query_as(&sql)
            .bind(id)
            .fetch_one(p)
            .await)?)
    }

    /// A page of accounts ordered by id, after `after`; with `search`, only those whose email or partner id
    /// contains it (any case).
    pub async fn accounts_page(
        &self,
        after: &str,
        search: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AccountRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM accounts WHERE id > $1 AND ($2 = '' OR email LIKE $2 ESCAPE '\\' \
             OR LOWER(COALESCE(partner_id, '')) LIKE $2 ESCAPE '\\') ORDER BY id LIMIT $3"
        );
        Ok(on_db!(&self.db, |p| sqlx::query_as(&sql)
            .bind(after)
            .bind(super::contains_pattern(search))
            .bind(limit)
            .fetch_all(p)
            .await)?)
    }

    /// Counts a failed login and returns the count (one statement, so concurrent failures all count), with its
    /// audit entry in the same transaction.
    pub async fn login_failed(
        &self,
        id: &str,
        audit: &super::NewAudit<'_>,
        now: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let (n,): (i64,) = on_tx!(&mut tx, |c| {
            sqlx::query_as(
            "UPDATE accounts SET failed_logins = failed_logins + 1 WHERE id = $1 RETURNING failed_logins"
        )
        .bind(id)
        .fetch_one(c)
        .await
        })?;
        tx.audit(audit, now).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Sets when the next login may be tried.
    pub async fn login_lock(&self, id: &str, until: i64) -> Result<(), StoreError> {
        on_db!(&self.db, |p| sqlx::query(
            "UPDATE accounts SET locked_until = $2 WHERE id = $1 AND locked_until < $2"
        )
        .bind(id)
        .bind(until)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The account a live session belongs to, when the session exists, has not expired and its account is
    /// enabled.
    pub async fn session_account(
        &self,
        digest: &[u8],
        now: i64,
    ) -> Result<Option<AccountRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM sessions s JOIN accounts a ON a.id = s.account_id \
             WHERE s.digest = $1 AND s.expires_at > $2 AND a.enabled",
            COLUMNS
                .split(", ")
                .map(|c| format!("a.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(on_db!(&self.db, |p| sqlx::query_as(&sql)
            .bind(digest)
            .bind(now)
            .fetch_optional(p)
            .await)?)
    }

    /// Ends a session (logout).
    pub async fn session_delete(&self, digest: &[u8]) -> Result<(), StoreError> {
        on_db!(&self.db, |p| sqlx::query(
            "DELETE FROM sessions WHERE digest = $1"
        )
        .bind(digest)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// A successful login: resets the failure count and opens a session, in one transaction.
    pub async fn login_succeeded(
        &self,
        id: &str,
        session_digest: &[u8],
        origin: &super::SessionOrigin,
        (now, expires_at): (i64, i64),
        audit: &super::NewAudit<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, |c| sqlx::query(
            "UPDATE accounts SET failed_logins = 0, locked_until = 0 WHERE id = $1"
        )
        .bind(id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        tx.session_open(id, session_digest, origin, (now, expires_at))
            .await?;
        tx.audit(audit, now).await?;
        tx.commit().await
    }

    /// Removes up to `limit` expired sessions (one purge batch).
    pub async fn sessions_purge(&self, now: i64, limit: i64) -> Result<u64, StoreError> {
        self.delete_batch(
            "DELETE FROM sessions WHERE digest IN (SELECT digest FROM sessions WHERE expires_at < $1 LIMIT $2)",
            now,
            limit,
        )
        .await
    }
}

impl Tx {
    /// Inserts an account.
    pub async fn account_insert(&mut self, a: &AccountRow) -> Result<(), StoreError> {
        on_tx!(self, |c| {
            sqlx::query(
            "INSERT INTO accounts (id, email, partner_id, password_hash, role, enabled, failed_logins, \
             locked_until, created_at, updated_at, key_scopes) VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7, $8, $9)"
        )
        .bind(&a.id)
        .bind(&a.email)
        .bind(&a.partner_id)
        .bind(&a.password_hash)
        .bind(&a.role)
        .bind(a.enabled)
        .bind(a.created_at)
        .bind(a.updated_at)
        .bind(&a.key_scopes)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// One account, locked for update on PostgreSQL when `lock` is set.
    pub async fn account_get(&mut self, id: &str, lock: bool) -> Result<AccountRow, StoreError> {
        let sql = self.lockable(
            format!("SELECT {COLUMNS} FROM accounts WHERE id = $1"),
            lock,
        );
        Ok(on_tx!(self, |c| sqlx::query_as(&sql)
            .bind(id)
            .fetch_one(c)
            .await)?)
    }

    /// Writes an account's changeable fields.
    pub async fn account_update(&mut self, a: &AccountRow) -> Result<(), StoreError> {
        on_tx!(self, |c| {
            sqlx::query(
            "UPDATE accounts SET email = $2, partner_id = $3, password_hash = $4, role = $5, enabled = $6, \
             updated_at = $7, key_scopes = $8 WHERE id = $1"
        )
        .bind(&a.id)
        .bind(&a.email)
        .bind(&a.partner_id)
        .bind(&a.password_hash)
        .bind(&a.role)
        .bind(a.enabled)
        .bind(a.updated_at)
        .bind(&a.key_scopes)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Ends every session of an account (password change, disable, delete).
    pub async fn sessions_delete_for(&mut self, account_id: &str) -> Result<(), StoreError> {
        on_tx!(self, |c| sqlx::query(
            "DELETE FROM sessions WHERE account_id = $1"
        )
        .bind(account_id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Deletes an account (its sessions, consents and grants go with it).
    pub async fn account_delete(&mut self, id: &str) -> Result<(), StoreError> {
        let n = on_tx!(self, |c| sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(id)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
