//! `clients` and `client_resources`: the client registry (its secrets are in `secrets.rs`).

use super::secrets::{SECRET_COLUMNS, SecretRow};
use super::{Store, StoreError, Tx, on_db, on_tx, split_list};
use futures_util::TryStreamExt as _;
use keyward_core::limit::ClientLimits;
use keyward_core::registration::ClientRegistration;

/// A client row (its resources are read separately).
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct ClientRow {
    /// Client id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether it may authenticate.
    pub enabled: bool,
    /// Space-delimited grant types.
    pub grant_types: String,
    /// Space-delimited auth methods.
    pub auth_methods: String,
    /// Space-delimited scopes.
    pub scopes: String,
    /// Default resource identifier.
    pub default_resource: Option<String>,
    /// Space-delimited identifiers of resources it serves.
    pub serves_resources: String,
    /// Space-delimited registered redirect URIs (a URI holds no space).
    pub redirect_uris: String,
    /// Shown on the consent page.
    pub description: String,
    /// Absolute lifetime of its grants, seconds; `None` is the server default.
    pub refresh_token_ttl: Option<i64>,
    /// The account that made it in the console (`None` for clients an operator made); never changes.
    pub owner_account: Option<String>,
    /// JSON: its own limits (`keyward_core::limit::ClientLimits`; `{}` follows the server).
    pub limits: String,
    /// JSON: its public keys, federated credentials and DPoP binding (`keyward_core::registration::KeySettings`;
    /// `{}` is none).
    pub key_settings: String,
    /// Random per creation: what a client created later with the same id does not share. Its codes, grants,
    /// token ids, usage counts and limit state carry it.
    pub instance: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl ClientRow {
    /// A new client's row holding `r`, every field written.
    pub fn new(id: String, r: &ClientRegistration, instance: i64, now: i64) -> Self {
        ClientRow {
            id,
            name: r.name.clone(),
            enabled: r.enabled,
            grant_types: join(&r.grant_types),
            auth_methods: join(&r.auth_methods),
            scopes: r.scopes.join(" "),
            default_resource: r.default_resource.clone(),
            serves_resources: r.serves_resources.join(" "),
            redirect_uris: r.redirect_uris.join(" "),
            description: r.description.clone(),
            refresh_token_ttl: r.refresh_token_ttl,
            owner_account: r.owner_account.clone(),
            limits: limits_text(&r.limits),
            key_settings: json_text(&r.keys),
            instance,
            created_at: now,
            updated_at: now,
        }
    }

    /// The registration this row holds, with `resources` (kept in `client_resources`). A grant type, method or
    /// limits document this version cannot read (a newer one wrote it) is left out, as the registry leaves it out.
    pub fn registration(&self, resources: Vec<String>) -> ClientRegistration {
        ClientRegistration {
            name: self.name.clone(),
            enabled: self.enabled,
            grant_types: parsed(&self.grant_types),
            auth_methods: parsed(&self.auth_methods),
            resources,
            scopes: split_list(&self.scopes),
            default_resource: self.default_resource.clone(),
            serves_resources: split_list(&self.serves_resources),
            redirect_uris: split_list(&self.redirect_uris),
            description: self.description.clone(),
            refresh_token_ttl: self.refresh_token_ttl,
            limits: serde_json::from_str(&self.limits).unwrap_or_default(),
            owner_account: self.owner_account.clone(),
            // Checked on write; a document a newer version wrote and this one cannot read holds no keys here.
            keys: serde_json::from_str(&self.key_settings).unwrap_or_default(),
        }
    }

    /// Writes `r` into the row (its resources are the caller's to write). A list or document whose value did not
    /// change keeps its stored text, so what a newer version wrote and this one cannot read survives a change to
    /// another field.
    pub fn set_registration(&mut self, r: &ClientRegistration) {
        let before = self.registration(Vec::new());
        self.name.clone_from(&r.name);
        self.enabled = r.enabled;
        if before.grant_types != r.grant_types {
            self.grant_types = join(&r.grant_types);
        }
        if before.auth_methods != r.auth_methods {
            self.auth_methods = join(&r.auth_methods);
        }
        if before.scopes != r.scopes {
            self.scopes = r.scopes.join(" ");
        }
        self.default_resource.clone_from(&r.default_resource);
        if before.serves_resources != r.serves_resources {
            self.serves_resources = r.serves_resources.join(" ");
        }
        if before.redirect_uris != r.redirect_uris {
            self.redirect_uris = r.redirect_uris.join(" ");
        }
        self.description.clone_from(&r.description);
        self.refresh_token_ttl = r.refresh_token_ttl;
        if before.limits != r.limits {
            self.limits = limits_text(&r.limits);
        }
        if before.keys != r.keys {
            self.key_settings = json_text(&r.keys);
        }
        self.owner_account.clone_from(&r.owner_account);
    }
}

/// A space-delimited list column of names.
fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The names of a list column this version can read.
fn parsed<T: std::str::FromStr>(list: &str) -> Vec<T> {
    split_list(list)
        .iter()
        .filter_map(|v| v.parse().ok())
        .collect()
}

/// The limits column: JSON, `{}` when the client follows the server.
fn limits_text(limits: &ClientLimits) -> String {
    json_text(limits)
}

/// A JSON document column. Writing a struct of options, strings and JSON values cannot fail; `{}` stands in if it
/// ever did.
fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".into())
}

/// A client with its allowed resources, as written by create and update.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// The row.
    pub row: ClientRow,
    /// Allowed resource identifiers.
    pub resources: Vec<String>,
}

const CLIENT_COLUMNS: &str = "id, name, enabled, grant_types, auth_methods, scopes, default_resource, serves_resources, redirect_uris, description, refresh_token_ttl, owner_account, limits, key_settings, instance, created_at, updated_at";

impl Store {
    /// One client with its resources and secrets; `NotFound` when absent.
    pub async fn client_get(
        &self,
        id: &str,
    ) -> Result<(ClientRow, Vec<String>, Vec<SecretRow>), StoreError> {
        // One read transaction, so the three reads agree with each other.
        let mut tx = self.begin_read().await?;
        let found = tx.client_get(id, false).await;
        tx.commit().await?;
        found
    }

    /// A page of clients ordered by id, after `after`; with `search`, only those whose id or name contains it
    /// (any case).
    pub async fn clients_page(
        &self,
        after: &str,
        search: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ClientRow>, StoreError> {
        let sql = format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE id > $1 \
             AND ($2 = '' OR LOWER(id) LIKE $2 ESCAPE '\\' OR LOWER(name) LIKE $2 ESCAPE '\\') \
             ORDER BY id LIMIT $3"
        );
        Ok(on_db!(&self.db, |p| sqlx::query_as(&sql)
            .bind(after)
            .bind(super::contains_pattern(search))
            .bind(limit)
            .fetch_all(p)
            .await)?)
    }

    /// The clients an account made in the console, newest first.
    pub async fn clients_owned(&self, account_id: &str) -> Result<Vec<ClientRow>, StoreError> {
        let sql = format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE owner_account = $1 ORDER BY created_at DESC, id"
        );
        Ok(on_db!(&self.db, |p| sqlx::query_as(&sql)
            .bind(account_id)
            .fetch_all(p)
            .await)?)
    }
}

/// Rows per multi-row INSERT: 10,000 bound values at most, well under SQLite's 32,766 and PostgreSQL's 65,535.
pub(super) const BULK_ROWS: usize = 1_000;

impl Tx {
    /// Inserts a client and its resources.
    pub async fn client_insert(&mut self, c: &NewClient) -> Result<(), StoreError> {
        self.clients_insert_many(std::slice::from_ref(c)).await
    }

    /// Inserts clients and their resource links, up to `BULK_ROWS` rows per statement.
    pub async fn clients_insert_many(&mut self, clients: &[NewClient]) -> Result<(), StoreError> {
        for chunk in clients.chunks(BULK_ROWS) {
            on_tx!(self, |conn| {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO clients (id, name, enabled, grant_types, auth_methods, scopes, default_resource, \
                     serves_resources, redirect_uris, description, refresh_token_ttl, owner_account, limits, \
                     key_settings, instance, created_at, updated_at) ",
                );
                q.push_values(chunk, |mut b, c| {
                    let r = &c.row;
                    b.push_bind(&r.id)
                        .push_bind(&r.name)
                        .push_bind(r.enabled)
                        .push_bind(&r.grant_types)
                        .push_bind(&r.auth_methods)
                        .push_bind(&r.scopes)
                        .push_bind(&r.default_resource)
                        .push_bind(&r.serves_resources)
                        .push_bind(&r.redirect_uris)
                        .push_bind(&r.description)
                        .push_bind(r.refresh_token_ttl)
                        .push_bind(&r.owner_account)
                        .push_bind(&r.limits)
                        .push_bind(&r.key_settings)
                        .push_bind(r.instance)
                        .push_bind(r.created_at)
                        .push_bind(r.updated_at);
                });
                q.build().execute(conn).await.map(|r| r.rows_affected())
            })?;
            let links: Vec<(&str, &str)> = chunk
                .iter()
                .flat_map(|c| c.resources.iter().map(|r| (c.row.id.as_str(), r.as_str())))
                .collect();
            self.links_insert(&links).await?;
        }
        Ok(())
    }

    /// Updates a client's fields and replaces its resources.
    pub async fn client_update(&mut self, c: &NewClient) -> Result<(), StoreError> {
        let r = &c.row;
        let done = on_tx!(self, |conn| {
            sqlx::query(
            "UPDATE clients SET name = $2, enabled = $3, grant_types = $4, auth_methods = $5, scopes = $6, \
             default_resource = $7, serves_resources = $8, updated_at = $9, redirect_uris = $10, \
             description = $11, refresh_token_ttl = $12, limits = $13, key_settings = $14 WHERE id = $1"
        )
        .bind(&r.id)
        .bind(&r.name)
        .bind(r.enabled)
        .bind(&r.grant_types)
        .bind(&r.auth_methods)
        .bind(&r.scopes)
        .bind(&r.default_resource)
        .bind(&r.serves_resources)
        .bind(r.updated_at)
        .bind(&r.redirect_uris)
        .bind(&r.description)
        .bind(r.refresh_token_ttl)
        .bind(&r.limits)
        .bind(&r.key_settings)
        .execute(conn)
        .await.map(|r| r.rows_affected())
        })?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        on_tx!(self, |conn| sqlx::query(
            "DELETE FROM client_resources WHERE client_id = $1"
        )
        .bind(&r.id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
        self.client_set_resources(&r.id, &c.resources).await
    }

    async fn client_set_resources(
        &mut self,
        client_id: &str,
        resources: &[String],
    ) -> Result<(), StoreError> {
        let links: Vec<(&str, &str)> = resources.iter().map(|r| (client_id, r.as_str())).collect();
        self.links_insert(&links).await
    }

    /// Inserts (client, resource) links, up to `BULK_ROWS` per statement.
    async fn links_insert(&mut self, links: &[(&str, &str)]) -> Result<(), StoreError> {
        for chunk in links.chunks(BULK_ROWS) {
            on_tx!(self, |conn| {
                let mut q =
                    sqlx::QueryBuilder::new("INSERT INTO client_resources (client_id, resource) ");
                q.push_values(chunk, |mut b, (client, resource)| {
                    b.push_bind(*client).push_bind(*resource);
                });
                q.build().execute(conn).await.map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }

    /// Deletes a client; its secrets, resource links, consents and grants (with their refresh tokens) go with it,
    /// and its unredeemed codes are spent.
    pub async fn client_delete(&mut self, id: &str, now: i64) -> Result<(), StoreError> {
        on_tx!(self, |c| sqlx::query(
            "UPDATE auth_codes SET used_at = $2 WHERE client_id = $1 AND used_at IS NULL"
        )
        .bind(id)
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        let done = on_tx!(self, |c| sqlx::query("DELETE FROM clients WHERE id = $1")
            .bind(id)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

impl Store {
    /// Streams the rows of `sql` to `each`, never holding the whole result (the registry's load).
    pub(super) async fn each_row<T>(
        &self,
        sql: &str,
        mut each: impl FnMut(T),
    ) -> Result<(), StoreError>
    where
        T: Send
            + Unpin
            + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        on_db!(&self.db, |p| {
            let mut rows = sqlx::query_as::<_, T>(sql).fetch(p);
            while let Some(row) = rows.try_next().await? {
                each(row);
            }
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(())
    }

    /// Every client, streamed to `each`, in no order.
    pub async fn clients_each(&self, each: impl FnMut(ClientRow)) -> Result<(), StoreError> {
        self.each_row(&format!("SELECT {CLIENT_COLUMNS} FROM clients"), each)
            .await
    }

    /// Every (client, resource) link, streamed to `each`.
    pub async fn client_resources_each(
        &self,
        mut each: impl FnMut(String, String),
    ) -> Result<(), StoreError> {
        self.each_row(
            "SELECT client_id, resource FROM client_resources",
            |(client, resource)| each(client, resource),
        )
        .await
    }
}

impl Tx {
    /// One client with its resources and secrets, read inside this transaction; with `lock`, locked against
    /// concurrent changes until the transaction ends (see `Tx::lockable`).
    pub async fn client_get(
        &mut self,
        id: &str,
        lock: bool,
    ) -> Result<(ClientRow, Vec<String>, Vec<SecretRow>), StoreError> {
        let sql = self.lockable(
            format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE id = $1"),
            lock,
        );
        let row: ClientRow = on_tx!(self, |c| sqlx::query_as(&sql).bind(id).fetch_one(c).await)?;
        let resources: Vec<(String,)> = on_tx!(self, |c| sqlx::query_as(
            "SELECT resource FROM client_resources WHERE client_id = $1 ORDER BY resource"
        )
        .bind(id)
        .fetch_all(c)
        .await)?;
        let secrets_sql = format!(
            "SELECT {SECRET_COLUMNS} FROM client_secrets WHERE client_id = $1 ORDER BY created_at, id"
        );
        let secrets = on_tx!(self, |c| sqlx::query_as(&secrets_sql)
            .bind(id)
            .fetch_all(c)
            .await)?;
        Ok((row, resources.into_iter().map(|(r,)| r).collect(), secrets))
    }
}

impl Tx {
    /// Ids of the clients an account made, read inside this transaction (deleting the account deletes them).
    pub async fn clients_owned_ids(&mut self, account_id: &str) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = on_tx!(self, |c| sqlx::query_as(
            "SELECT id FROM clients WHERE owner_account = $1 ORDER BY id"
        )
        .bind(account_id)
        .fetch_all(c)
        .await)?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Disables every enabled key an account made, each with a feed entry; returns their ids.
    pub async fn owned_clients_disable(
        &mut self,
        account_id: &str,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = on_tx!(self, |c| {
            sqlx::query_as(
            "UPDATE clients SET enabled = FALSE, updated_at = $2 WHERE owner_account = $1 AND enabled \
             RETURNING id"
        )
        .bind(account_id)
        .bind(now)
        .fetch_all(c)
        .await
        })?;
        let ids: Vec<String> = rows.into_iter().map(|(id,)| id).collect();
        for id in &ids {
            self.change("client", id, now).await?;
        }
        Ok(ids)
    }

    /// Whether the account already has a key with this name.
    pub async fn owned_name_taken(
        &mut self,
        account_id: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        let (n,): (i64,) = on_tx!(self, |c| sqlx::query_as(
            "SELECT COUNT(*) FROM clients WHERE owner_account = $1 AND name = $2"
        )
        .bind(account_id)
        .bind(name)
        .fetch_one(c)
        .await)?;
        Ok(n > 0)
    }

    /// Ids of clients whose `serves_resources` names `identifier`.
    pub async fn clients_serving(&mut self, identifier: &str) -> Result<Vec<String>, StoreError> {
        // LIKE narrows the rows (a `%` or `_` in the identifier only widens it); the exact test is below.
        let rows: Vec<(String, String)> = on_tx!(self, |c| {
            sqlx::query_as(
            "SELECT id, serves_resources FROM clients WHERE serves_resources LIKE $1 ORDER BY id"
        )
        .bind(format!("%{identifier}%"))
        .fetch_all(c)
        .await
        })?;
        Ok(rows
            .into_iter()
            .filter(|(_, serves)| serves.split(' ').any(|s| s == identifier))
            .map(|(id, _)| id)
            .collect())
    }
}

#[cfg(test)]
mod tests;
