//! The in-memory registry of clients and resources that the token endpoint reads: every client is held in
//! memory, so issuing a token reads no database, and an unknown client is known to be unknown without a query
//! (which keeps unknown-client and wrong-secret answers equally fast). Changes arrive through the `changes` feed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use keyward_core::OAuthError;
use keyward_core::client::{AuthMethod, Client};
use keyward_core::resource::Resource;
use keyward_core::scope::ScopeSet;

use crate::crypto::{MasterKeys, digests_equal};
use crate::store::{ClientRow, ResourceRow, SecretRow, Store, StoreError, split_list};

/// A secret as the registry holds it: the digest only.
#[derive(Debug, Clone)]
pub struct CachedSecret {
    /// Secret id.
    pub id: String,
    /// HMAC-SHA-256 under the pepper.
    pub digest: Vec<u8>,
    /// When it stops working.
    pub expires_at: Option<i64>,
}

/// A client with its secrets.
#[derive(Debug, Clone)]
pub struct CachedClient {
    /// The client.
    pub client: Client,
    /// Its secrets.
    pub secrets: Vec<CachedSecret>,
}

/// Client credentials as presented.
#[derive(Debug)]
pub struct Credentials {
    /// Claimed client id.
    pub client_id: String,
    /// Presented secret.
    pub secret: String,
    /// How they were presented.
    pub method: AuthMethod,
}

type Resources = Arc<HashMap<String, Resource>>;

/// Clients and resources in memory.
#[derive(Debug, Default)]
pub struct Registry {
    clients: RwLock<HashMap<String, Arc<CachedClient>>>,
    resources: RwLock<Resources>,
    used: Mutex<HashMap<String, i64>>,
}

/// Builds the core view of a client from its rows.
pub fn to_client(row: &ClientRow, resources: Vec<String>) -> Client {
    Client {
        id: row.id.clone(),
        name: row.name.clone(),
        enabled: row.enabled,
        // Values are checked on write, so an unparsable one can only come from a newer version: skip it.
        grant_types: split_list(&row.grant_types)
            .iter()
            .filter_map(|g| g.parse().ok())
            .collect(),
        auth_methods: split_list(&row.auth_methods)
            .iter()
            .filter_map(|m| m.parse().ok())
            .collect(),
        resources,
        scopes: ScopeSet::from_tokens(split_list(&row.scopes)),
        default_resource: row.default_resource.clone(),
        serves_resources: split_list(&row.serves_resources),
    }
}

/// Builds the core view of a resource from its row.
pub fn to_resource(row: &ResourceRow) -> Option<Resource> {
    Some(Resource {
        id: row.id.clone(),
        identifier: row.identifier.clone(),
        name: row.name.clone(),
        scopes: ScopeSet::from_tokens(split_list(&row.scopes)),
        access_token_ttl: row.access_token_ttl,
        signing_alg: row.signing_alg.parse().ok()?,
    })
}

fn cached(row: &ClientRow, resources: Vec<String>, secrets: &[SecretRow]) -> CachedClient {
    CachedClient {
        client: to_client(row, resources),
        secrets: secrets
            .iter()
            .map(|s| CachedSecret {
                id: s.id.clone(),
                digest: s.digest.clone(),
                expires_at: s.expires_at,
            })
            .collect(),
    }
}

impl Registry {
    /// Loads every client and resource.
    pub async fn load(store: &Store) -> Result<Self, StoreError> {
        let registry = Self::default();
        registry.reload_resources(store).await?;
        let mut links: HashMap<String, Vec<String>> = HashMap::new();
        for (client, resource) in store.client_resources_all().await? {
            links.entry(client).or_default().push(resource);
        }
        let mut secrets: HashMap<String, Vec<SecretRow>> = HashMap::new();
        for s in store.secrets_all().await? {
            secrets.entry(s.client_id.clone()).or_default().push(s);
        }
        let mut clients = HashMap::new();
        for row in store.clients_all().await? {
            let c = cached(
                &row,
                links.remove(&row.id).unwrap_or_default(),
                secrets.get(&row.id).map_or(&[], Vec::as_slice),
            );
            clients.insert(row.id.clone(), Arc::new(c));
        }
        *registry.clients.write().unwrap_or_else(|e| e.into_inner()) = clients;
        Ok(registry)
    }

    /// Re-reads one client after a change (removing it when it is gone).
    pub async fn reload_client(&self, store: &Store, id: &str) -> Result<(), StoreError> {
        match store.client_get(id).await {
            Ok((row, resources, secrets)) => {
                let c = Arc::new(cached(&row, resources, &secrets));
                self.clients
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.to_owned(), c);
            }
            Err(StoreError::NotFound) => {
                self.clients
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(id);
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Re-reads every resource.
    pub async fn reload_resources(&self, store: &Store) -> Result<(), StoreError> {
        let map: HashMap<String, Resource> = store
            .resources_all()
            .await?
            .iter()
            .filter_map(to_resource)
            .map(|r| (r.identifier.clone(), r))
            .collect();
        *self.resources.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
        Ok(())
    }

    /// The resources, by identifier.
    pub fn resources(&self) -> Resources {
        self.resources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A client by id.
    pub fn client(&self, id: &str) -> Option<Arc<CachedClient>> {
        self.clients
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// RFC 6749 §2.3.1: authenticates a client. Every failure is the same `invalid_client`, and the digest is
    /// computed whether or not the client exists, so the answer and its timing do not tell which check failed.
    pub fn authenticate(
        &self,
        master: &MasterKeys,
        creds: &Credentials,
        now: i64,
    ) -> Result<Arc<CachedClient>, OAuthError> {
        let digest = master.digest(&creds.secret);
        let client = self.client(&creds.client_id);
        let mut matched = None;
        if let Some(c) = &client {
            for s in &c.secrets {
                let live = s.expires_at.is_none_or(|t| now < t);
                // Compare every secret (no early exit) so timing does not depend on which one matched.
                if digests_equal(&s.digest, &digest) && live {
                    matched = Some(s.id.clone());
                }
            }
        }
        match (client, matched) {
            (Some(c), Some(secret_id))
                if c.client.enabled && c.client.auth_methods.contains(&creds.method) =>
            {
                self.used
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(secret_id, now);
                Ok(c)
            }
            _ => Err(OAuthError::invalid_client()),
        }
    }

    /// Takes the last-used times gathered since the previous call, for a periodic flush.
    pub fn take_used(&self) -> Vec<(String, i64)> {
        std::mem::take(&mut *self.used.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .collect()
    }
}
