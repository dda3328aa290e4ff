//! Delegated access: `consents` (which apps an account authorized, for which scopes), `auth_codes`, `grants` (what
//! one authorization issued: a refresh-token family, with the generation of its one live refresh token),
//! `grant_tokens` (the access tokens a family issued, while they live) and `refresh_tokens` (refresh tokens of the
//! earlier form, one row each). Codes are kept as digests; using a code or a refresh token is a single conditional
//! `UPDATE` whose row count decides the one winner.

use super::{Store, StoreError, Tx, on_db, on_tx};

/// An app an account authorized on a resource, and the scopes it agreed to.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct ConsentRow {
    /// The account.
    pub account_id: String,
    /// The app.
    pub client_id: String,
    /// The resource identifier.
    pub resource: String,
    /// Space-delimited scopes agreed to.
    pub scopes: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// An authorization code (RFC 6749 §4.1.2), by digest.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct CodeRow {
    /// HMAC of the code under the pepper.
    pub digest: Vec<u8>,
    /// The client it was issued to.
    pub client_id: String,
    /// The account that authorized it.
    pub account_id: String,
    /// The authorization request's redirect URI.
    pub redirect_uri: String,
    /// The resource identifier.
    pub resource: String,
    /// Space-delimited scopes.
    pub scopes: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The instance of the client it was issued to (`ClientRow::instance`).
    pub client_instance: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// When it was redeemed (or a redemption failed), if it was.
    pub used_at: Option<i64>,
    /// The grant its redemption created.
    pub grant_id: Option<String>,
}

/// An instance of 0 on a code or a grant was written by a node of an earlier release while a rolling upgrade ran
/// (the column's default): it is taken as the client's, whatever its instance. Nothing of a deleted client can carry
/// it past the deletion: its codes are spent and its grants deleted with it.
pub(super) const ANY_INSTANCE: i64 = 0;

/// Whether a code or grant written for `instance` belongs to a client of instance `client`.
pub fn same_instance(instance: i64, client: i64) -> bool {
    instance == client || instance == ANY_INSTANCE
}

/// A grant: what one authorization issued, a family of refresh tokens and their access tokens.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq, serde::Serialize)]
pub struct GrantRow {
    /// `grt_…`.
    pub id: String,
    /// The account.
    pub account_id: String,
    /// The app.
    pub client_id: String,
    /// The instance of the app (`ClientRow::instance`): a client created later with the same id has another.
    #[serde(skip)]
    pub client_instance: i64,
    /// The resource identifier.
    pub resource: String,
    /// Space-delimited scopes.
    pub scopes: String,
    /// Unix seconds.
    pub created_at: i64,
    /// The absolute end of the family: no refresh token of it outlives this.
    pub expires_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// The generation of the family's live refresh token (the `refresh` module); every use moves it on by one.
    #[serde(skip)]
    pub refresh_gen: i64,
    /// When the family was last used (created, or refreshed): the idle timeout counts from here. 0 on a grant a
    /// node of an earlier release made during an upgrade: see [`GrantRow::last_used`].
    pub refreshed_at: i64,
    /// RFC 9449 §5: the thumbprint of the DPoP key a public client's refresh tokens are bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
}

impl GrantRow {
    /// When the family was last used: `refreshed_at`, or its creation when an earlier release left that unset.
    pub fn last_used(&self) -> i64 {
        if self.refreshed_at == 0 {
            self.created_at
        } else {
            self.refreshed_at
        }
    }
}

/// A refresh token of the earlier form (before the `refresh` module), by digest: one row each, no longer written.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct RefreshRow {
    /// HMAC of the token under the pepper.
    pub digest: Vec<u8>,
    /// Its family.
    pub grant_id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// When it was rotated, if it was.
    pub used_at: Option<i64>,
    /// The access token issued with it.
    pub access_jti: String,
    /// When that access token expires.
    pub access_expires_at: i64,
}

/// A refresh token row with the client of its grant.
#[derive(sqlx::FromRow)]
struct RefreshOf {
    #[sqlx(flatten)]
    row: RefreshRow,
    client_id: String,
    client_instance: i64,
}

const CODE_COLUMNS: &str = "digest, client_id, account_id, redirect_uri, resource, scopes, code_challenge, \
                            client_instance, created_at, expires_at, used_at, grant_id";
const GRANT_COLUMNS: &str = "id, account_id, client_id, client_instance, resource, scopes, created_at, \
                             expires_at, revoked_at, refresh_gen, refreshed_at, dpop_jkt";

/// The use of a grant's refresh token (`Tx::grant_advance`).
#[derive(Debug, Clone, Copy)]
pub struct Advance<'a> {
    /// The grant.
    pub grant_id: &'a str,
    /// The generation presented; `None` for a token of the earlier form (already spent by the caller).
    pub generation: Option<i64>,
    /// The client using it.
    pub client_id: &'a str,
    /// That client's instance.
    pub client_instance: i64,
    /// Now (the cluster's clock).
    pub now: i64,
    /// The idle timeout in seconds, if one is set.
    pub idle_ttl: Option<i64>,
}

/// Which grants a listing wants.
#[derive(Debug, Clone, Default)]
pub struct GrantFilter<'a> {
    /// Only this account's.
    pub account_id: Option<&'a str>,
    /// Only this app's.
    pub client_id: Option<&'a str>,
    /// Only grants neither revoked nor expired at this time.
    pub live_at: Option<i64>,
    /// With `live_at`: the refresh-token idle timeout, seconds (a grant unused for longer is not live either).
    pub idle_ttl: Option<i64>,
}

impl Store {
    /// The consent an account gave an app on a resource.
    pub async fn consent_get(
        &self,
        account_id: &str,
        client_id: &str,
        resource: &str,
    ) -> Result<Option<ConsentRow>, StoreError> {
        Ok(on_db!(&self.db, |p| sqlx::query_as(
            "SELECT account_id, client_id, resource, scopes, created_at, updated_at FROM consents \
             WHERE account_id = $1 AND client_id = $2 AND resource = $3"
        )
        .bind(account_id)
        .bind(client_id)
        .bind(resource)
        .fetch_optional(p)
        .await)?)
    }

    /// Every consent of an account, by app.
    pub async fn consents_for(&self, account_id: &str) -> Result<Vec<ConsentRow>, StoreError> {
        Ok(on_db!(&self.db, |p| sqlx::query_as(
            "SELECT account_id, client_id, resource, scopes, created_at, updated_at FROM consents \
             WHERE account_id = $1 ORDER BY client_id, resource"
        )
        .bind(account_id)
        .fetch_all(p)
        .await)?)
    }

    /// Stores a new authorization code.
    pub async fn code_insert(&self, c: &CodeRow) -> Result<(), StoreError> {
        on_db!(&self.db, |p| {
            sqlx::query(
            "INSERT INTO auth_codes (digest, client_id, account_id, redirect_uri, resource, scopes, code_challenge, \
             client_instance, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        )
        .bind(&c.digest)
        .bind(&c.client_id)
        .bind(&c.account_id)
        .bind(&c.redirect_uri)
        .bind(&c.resource)
        .bind(&c.scopes)
        .bind(&c.code_challenge)
        .bind(c.client_instance)
        .bind(c.created_at)
        .bind(c.expires_at)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// A page of grants, newest id last, after `after`.
    pub async fn grants_page(
        &self,
        filter: &GrantFilter<'_>,
        after: &str,
        limit: i64,
    ) -> Result<Vec<GrantRow>, StoreError> {
        // Optional filters as `($n IS NULL OR column = $n)`, so the statement is written once.
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE id > $1 \
             AND ($2 IS NULL OR account_id = $2) AND ($3 IS NULL OR client_id = $3) \
             AND ($4 IS NULL OR (revoked_at IS NULL AND expires_at > $4 \
             AND ($6 = 0 OR (CASE WHEN refreshed_at = 0 THEN created_at ELSE refreshed_at END) + $6 > $4))) \
             ORDER BY id LIMIT $5"
        );
        Ok(on_db!(&self.db, |p| sqlx::query_as(&sql)
            .bind(after)
            .bind(filter.account_id)
            .bind(filter.client_id)
            .bind(filter.live_at)
            .bind(limit)
            .bind(filter.idle_ttl.unwrap_or(0))
            .fetch_all(p)
            .await)?)
    }

    /// One grant.
    pub async fn grant_get(&self, id: &str) -> Result<GrantRow, StoreError> {
        let sql = format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1");
        Ok(on_db!(&self.db, |p| sqlx::query_as(&sql)
            .bind(id)
            .fetch_one(p)
            .await)?)
    }

    /// Removes up to `limit` authorization codes that expired before `before` (one purge batch).
    pub async fn codes_purge(&self, before: i64, limit: i64) -> Result<u64, StoreError> {
        self.delete_batch(
            "DELETE FROM auth_codes WHERE digest IN \
             (SELECT digest FROM auth_codes WHERE expires_at < $1 LIMIT $2)",
            before,
            limit,
        )
        .await
    }

    /// Removes up to `limit` records of a family's access tokens that expired before `before` (one purge batch):
    /// past its expiry a token needs no revoking.
    pub async fn grant_tokens_purge(&self, before: i64, limit: i64) -> Result<u64, StoreError> {
        self.delete_batch(
            "DELETE FROM grant_tokens WHERE jti IN \
             (SELECT jti FROM grant_tokens WHERE expires_at < $1 LIMIT $2)",
            before,
            limit,
        )
        .await
    }

    /// Removes up to `limit` grants that ended before `before`, with their refresh tokens (one purge batch).
    pub async fn grants_purge(&self, before: i64, limit: i64) -> Result<u64, StoreError> {
        self.delete_batch(
            "DELETE FROM grants WHERE id IN (SELECT id FROM grants WHERE expires_at < $1 LIMIT $2)",
            before,
            limit,
        )
        .await
    }
}

impl Tx {
    /// Records (or widens) what an account agreed an app may have on a resource.
    pub async fn consent_upsert(
        &mut self,
        account_id: &str,
        client_id: &str,
        resource: &str,
        scopes: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        on_tx!(self, |c| {
            sqlx::query(
            "INSERT INTO consents (account_id, client_id, resource, scopes, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (account_id, client_id, resource) \
             DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at"
        )
        .bind(account_id)
        .bind(client_id)
        .bind(resource)
        .bind(scopes)
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Withdraws an account's consents to an app; returns how many there were.
    pub async fn consent_delete(
        &mut self,
        account_id: &str,
        client_id: &str,
    ) -> Result<u64, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query(
            "DELETE FROM consents WHERE account_id = $1 AND client_id = $2"
        )
        .bind(account_id)
        .bind(client_id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?)
    }

    /// RFC 6749 §4.1.2: spends a code. Exactly one caller gets the row back, however many try at once; later ones
    /// get `None` and find it with [`Tx::code_get`].
    pub async fn code_consume(
        &mut self,
        digest: &[u8],
        now: i64,
    ) -> Result<Option<CodeRow>, StoreError> {
        let sql = format!(
            "UPDATE auth_codes SET used_at = $2 WHERE digest = $1 AND used_at IS NULL RETURNING {CODE_COLUMNS}"
        );
        Ok(on_tx!(self, |c| sqlx::query_as(&sql)
            .bind(digest)
            .bind(now)
            .fetch_optional(c)
            .await)?)
    }

    /// A code, used or not.
    pub async fn code_get(&mut self, digest: &[u8]) -> Result<Option<CodeRow>, StoreError> {
        let sql = format!("SELECT {CODE_COLUMNS} FROM auth_codes WHERE digest = $1");
        Ok(on_tx!(self, |c| sqlx::query_as(&sql)
            .bind(digest)
            .fetch_optional(c)
            .await)?)
    }

    /// Notes the grant a code's redemption created, so a second redemption can revoke it.
    pub async fn code_set_grant(
        &mut self,
        digest: &[u8],
        grant_id: &str,
    ) -> Result<(), StoreError> {
        on_tx!(self, |c| sqlx::query(
            "UPDATE auth_codes SET grant_id = $2 WHERE digest = $1"
        )
        .bind(digest)
        .bind(grant_id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Inserts a grant.
    pub async fn grant_insert(&mut self, g: &GrantRow) -> Result<(), StoreError> {
        on_tx!(self, |c| {
            sqlx::query(
            "INSERT INTO grants (id, account_id, client_id, client_instance, resource, scopes, created_at, \
             expires_at, refresh_gen, refreshed_at, dpop_jkt) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        )
        .bind(&g.id)
        .bind(&g.account_id)
        .bind(&g.client_id)
        .bind(g.client_instance)
        .bind(&g.resource)
        .bind(&g.scopes)
        .bind(g.created_at)
        .bind(g.expires_at)
        .bind(g.refresh_gen)
        .bind(g.refreshed_at)
        .bind(&g.dpop_jkt)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// One grant.
    pub async fn grant_get(&mut self, id: &str) -> Result<Option<GrantRow>, StoreError> {
        let sql = format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1");
        Ok(on_tx!(self, |c| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(c)
            .await)?)
    }

    /// The ids of an account's grants to an app that are not revoked.
    pub async fn grants_of(
        &mut self,
        account_id: &str,
        client_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = on_tx!(self, |c| {
            sqlx::query_as(
            "SELECT id FROM grants WHERE account_id = $1 AND client_id = $2 AND revoked_at IS NULL"
        )
        .bind(account_id)
        .bind(client_id)
        .fetch_all(c)
        .await
        })?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// The ids of every grant of an account that is not revoked.
    pub async fn grants_of_account(&mut self, account_id: &str) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = on_tx!(self, |c| sqlx::query_as(
            "SELECT id FROM grants WHERE account_id = $1 AND revoked_at IS NULL"
        )
        .bind(account_id)
        .fetch_all(c)
        .await)?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Marks a grant revoked and returns the access tokens of its family that still verify at `now` (`jti`, and
    /// until when: its `exp` plus `leeway`), for the denylist: those recorded in `grant_tokens` (which hold that
    /// time already), and those of refresh tokens of the earlier form. Revoking a revoked grant returns them again
    /// (harmless: the denylist ignores repeats).
    pub async fn grant_revoke(
        &mut self,
        id: &str,
        now: i64,
        leeway: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        on_tx!(self, |c| sqlx::query(
            "UPDATE grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL"
        )
        .bind(id)
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(on_tx!(self, |c| {
            sqlx::query_as(
                "SELECT jti, expires_at FROM grant_tokens WHERE grant_id = $1 AND expires_at > $2 \
                 UNION SELECT access_jti, access_expires_at + $3 FROM refresh_tokens \
                 WHERE grant_id = $1 AND access_expires_at + $3 > $2",
            )
            .bind(id)
            .bind(now)
            .bind(leeway)
            .fetch_all(c)
            .await
        })?)
    }

    /// RFC 6749 §6 with rotation (RFC 9700 §4.14.2): moves a grant's refresh token from `advance.generation` (any,
    /// when `None`: a token of the earlier form was spent just before) to the next, if the grant is the client's
    /// (that instance's), not revoked, not past its end, and, with an idle timeout, used within it. Exactly one
    /// caller gets the grant back (as it is after the move), however many try at once.
    pub async fn grant_advance(
        &mut self,
        advance: &Advance<'_>,
    ) -> Result<Option<GrantRow>, StoreError> {
        let sql = format!(
            "UPDATE grants SET refresh_gen = refresh_gen + 1, refreshed_at = $5 WHERE id = $1 \
             AND ($2 < 0 OR refresh_gen = $2) AND client_id = $3 AND client_instance IN ($4, 0) \
             AND revoked_at IS NULL AND expires_at > $5 \
             AND ($6 = 0 OR (CASE WHEN refreshed_at = 0 THEN created_at ELSE refreshed_at END) + $6 > $5) \
             RETURNING {GRANT_COLUMNS}"
        );
        Ok(on_tx!(self, |c| sqlx::query_as(&sql)
            .bind(advance.grant_id)
            .bind(advance.generation.unwrap_or(-1))
            .bind(advance.client_id)
            .bind(advance.client_instance)
            .bind(advance.now)
            .bind(advance.idle_ttl.unwrap_or(0))
            .fetch_optional(c)
            .await)?)
    }

    /// Records an access token a family issued, until `until` (its `exp` and the verifiers' leeway), so that
    /// revoking the family (`Tx::grant_revoke`) denylists it.
    pub async fn grant_token_insert(
        &mut self,
        grant_id: &str,
        jti: &str,
        until: i64,
    ) -> Result<(), StoreError> {
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO grant_tokens (jti, grant_id, expires_at) VALUES ($1, $2, $3)"
        )
        .bind(jti)
        .bind(grant_id)
        .bind(until)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// A refresh token of the earlier form (one row each), spent by its use, if it is `client_id`'s (that
    /// instance's): exactly one caller gets its grant id, however many try at once; others get `None` and look
    /// with [`Tx::refresh_find`]. The caller then moves the grant on with [`Tx::grant_advance`].
    pub async fn refresh_use(
        &mut self,
        digest: &[u8],
        client_id: &str,
        client_instance: i64,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = on_tx!(self, |c| {
            sqlx::query_as(
            "UPDATE refresh_tokens SET used_at = $4 WHERE digest = $1 AND used_at IS NULL \
             AND grant_id IN (SELECT id FROM grants WHERE client_id = $2 AND client_instance IN ($3, 0)) \
             RETURNING grant_id"
        )
        .bind(digest)
        .bind(client_id)
        .bind(client_instance)
        .bind(now)
        .fetch_optional(c)
        .await
        })?;
        Ok(row.map(|(g,)| g))
    }

    /// A refresh token of the earlier form with the client (id and instance) of its grant, used or not.
    pub async fn refresh_find(
        &mut self,
        digest: &[u8],
    ) -> Result<Option<(RefreshRow, String, i64)>, StoreError> {
        let found: Option<RefreshOf> = on_tx!(self, |c| {
            sqlx::query_as(
                "SELECT r.digest, r.grant_id, r.created_at, r.used_at, r.access_jti, r.access_expires_at, \
                 g.client_id, g.client_instance FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id \
                 WHERE r.digest = $1",
            )
            .bind(digest)
            .fetch_optional(c)
            .await
        })?;
        Ok(found.map(|f| (f.row, f.client_id, f.client_instance)))
    }
}
