//! `second_factors` and `recovery_codes`: an account's authenticator app (its TOTP secret, sealed) and its one-time
//! recovery codes (digests). Using a code is one conditional statement, so of two sign-ins racing with the same
//! code (or the same time step) exactly one succeeds.

use super::{Store, StoreError, Tx, on_db, on_tx};

/// An account's authenticator app.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct FactorRow {
    /// The account.
    pub account_id: String,
    /// The TOTP secret, sealed with the master key (the account id as associated data).
    pub totp_secret: Vec<u8>,
    /// When the account confirmed it with a code; `None` while it is being set up.
    pub confirmed_at: Option<i64>,
    /// The last time step a code was accepted for.
    pub last_step: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
}

impl Store {
    /// The account's authenticator app, confirmed or not.
    pub async fn factor_of(&self, account_id: &str) -> Result<Option<FactorRow>, StoreError> {
        Ok(on_db!(&self.db, |p| {
            sqlx::query_as(
            "SELECT account_id, totp_secret, confirmed_at, last_step, created_at FROM second_factors \
             WHERE account_id = $1"
        )
        .bind(account_id)
        .fetch_optional(p)
        .await
        })?)
    }

    /// Accepts a code of `step`: only when it is later than the last step used (RFC 6238 §5.2), in one statement.
    pub async fn factor_use_step(&self, account_id: &str, step: i64) -> Result<bool, StoreError> {
        let n = on_db!(&self.db, |p| {
            sqlx::query(
            "UPDATE second_factors SET last_step = $2 WHERE account_id = $1 AND confirmed_at IS NOT NULL \
             AND (last_step IS NULL OR last_step < $2)"
        )
        .bind(account_id)
        .bind(step)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Spends a recovery code by its digest: `true` the one time it is unused.
    pub async fn recovery_code_use(
        &self,
        account_id: &str,
        digest: &[u8],
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = on_db!(&self.db, |p| {
            sqlx::query(
            "UPDATE recovery_codes SET used_at = $3 WHERE account_id = $1 AND digest = $2 AND used_at IS NULL"
        )
        .bind(account_id)
        .bind(digest)
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }
}

impl Tx {
    /// Starts (or restarts) setting up an authenticator app; refused (`Conflict`) when one is confirmed already.
    pub async fn factor_begin(
        &mut self,
        account_id: &str,
        sealed: &[u8],
        now: i64,
    ) -> Result<(), StoreError> {
        let n = on_tx!(self, |c| {
            sqlx::query(
            "INSERT INTO second_factors (account_id, totp_secret, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (account_id) DO UPDATE SET totp_secret = excluded.totp_secret, \
             created_at = excluded.created_at, last_step = NULL WHERE second_factors.confirmed_at IS NULL"
        )
        .bind(account_id)
        .bind(sealed)
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Err(StoreError::Conflict("a second factor is set up already"));
        }
        Ok(())
    }

    /// Confirms the app with the step of the code typed, and replaces the recovery codes with `codes` (digests).
    pub async fn factor_confirm(
        &mut self,
        account_id: &str,
        step: i64,
        codes: &[Vec<u8>],
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = on_tx!(self, |c| sqlx::query(
            "UPDATE second_factors SET confirmed_at = $2, last_step = $3 WHERE account_id = $1 \
             AND confirmed_at IS NULL"
        )
        .bind(account_id)
        .bind(now)
        .bind(step)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        if n == 0 {
            return Ok(false);
        }
        on_tx!(self, |c| sqlx::query(
            "DELETE FROM recovery_codes WHERE account_id = $1"
        )
        .bind(account_id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        for digest in codes {
            on_tx!(self, |c| sqlx::query(
                "INSERT INTO recovery_codes (account_id, digest) VALUES ($1, $2)"
            )
            .bind(account_id)
            .bind(digest)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        }
        Ok(true)
    }

    /// Removes the account's authenticator app and recovery codes; `false` when it had none.
    pub async fn factor_remove(&mut self, account_id: &str) -> Result<bool, StoreError> {
        on_tx!(self, |c| sqlx::query(
            "DELETE FROM recovery_codes WHERE account_id = $1"
        )
        .bind(account_id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        let n = on_tx!(self, |c| sqlx::query(
            "DELETE FROM second_factors WHERE account_id = $1"
        )
        .bind(account_id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}
