//! `signing_keys`: token signing keys, private halves encrypted under the key-encryption key.

use super::{Store, StoreError, Tx, on_db, on_tx};

/// A signing key row.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct KeyRow {
    /// Key id (`kid`).
    pub kid: String,
    /// JOSE algorithm.
    pub alg: String,
    /// AES-256-GCM ciphertext of the PKCS#8 private key (nonce first).
    pub private_key: Vec<u8>,
    /// The public JWK, JSON.
    pub public_jwk: String,
    /// Unix seconds: when it was published.
    pub created_at: i64,
    /// Unix seconds: when it starts signing.
    pub activates_at: i64,
}

impl Store {
    /// Every key, oldest first.
    pub async fn keys_all(&self) -> Result<Vec<KeyRow>, StoreError> {
        Ok(on_db!(&self.db, |p| {
            sqlx::query_as(
            "SELECT kid, alg, private_key, public_jwk, created_at, activates_at FROM signing_keys ORDER BY created_at, kid"
        )
        .fetch_all(p)
        .await
        })?)
    }
}

impl Tx {
    /// Inserts a key.
    pub async fn key_insert(&mut self, k: &KeyRow) -> Result<(), StoreError> {
        on_tx!(self, |c| {
            sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at, activates_at) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(&k.kid)
        .bind(&k.alg)
        .bind(&k.private_key)
        .bind(&k.public_jwk)
        .bind(k.created_at)
        .bind(k.activates_at)
        .execute(c)
        .await.map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}
