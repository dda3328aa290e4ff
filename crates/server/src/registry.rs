//! The in-memory registry of clients and resources that the token endpoint reads: every client is held in
//! memory, so issuing a token reads no database, and an unknown client is known to be unknown without a query
//! (which keeps unknown-client and wrong-secret answers equally fast). Changes arrive through the `changes` feed.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use keyward_client::PublicKey;
use keyward_core::OAuthError;
use keyward_core::client::{AuthMethod, Client};
use keyward_core::limit::{ClientLimits, Rate, RateSetting};
use keyward_core::registration::{FederatedCredential, KeySettings};
use keyward_core::resource::Resource;
use keyward_core::scope::ScopeSet;

use crate::config::Endpoint;
use crate::crypto::{MasterKeys, digests_equal};
use crate::store::{ClientRow, ResourceRow, SecretRow, Store, StoreError, split_list};

/// How stale a recorded `last_used_at` may get before a use is written down again (SECURITY.md). Every use
/// would be a database write per token; once an hour bounds the writes by the number of secrets in use, whatever
/// the token rate.
pub const LAST_USED_PRECISION: i64 = 3_600;

/// The most last-used times written per flush (one statement a second). A burst of first uses (a million clients
/// starting within a minute) then drains over minutes, well inside the hour of precision, instead of competing
/// with token issuing for the cores; in steady use far fewer than this are pending.
pub const LAST_USED_PER_FLUSH: usize = 1_000;

/// A secret as the registry holds it: the digest only.
#[derive(Debug)]
pub struct CachedSecret {
    /// Secret id (shared with the pending last-used times, so noting a use copies no string).
    pub id: Arc<str>,
    /// HMAC-SHA-256 under the pepper, held inline so checking a secret reads no other allocation.
    pub digest: [u8; 32],
    /// When it stops working.
    pub expires_at: Option<i64>,
    /// The last use recorded (in the database, or gathered for the next flush); 0 when never.
    last_used: AtomicI64,
}

/// A client with its secrets.
#[derive(Debug)]
pub struct CachedClient {
    /// The client.
    pub client: Client,
    /// Its secrets.
    pub secrets: Vec<CachedSecret>,
    /// Whether it may authenticate by each method: `client.enabled` and `client.auth_methods` folded into this
    /// struct, so with a million clients in memory an authentication touches as few cache lines as it can.
    accepts: [bool; 4],
    /// What its `private_key_jwt` assertions are checked against, when it has any (boxed: most clients have none,
    /// and a million of them then pay one pointer each).
    pub keys: Option<Box<AssertionKeys>>,
    /// RFC 9449 §5.2: its access tokens must be DPoP-bound.
    pub dpop_bound: bool,
    /// Whether an account owns it (a console key): only those have their tokens counted for the usage charts.
    owned: bool,
    /// Its own limits over the server's.
    limits: ClientLimits,
    /// Random per creation (`ClientRow::instance`): token ids, codes, grants, usage and limits carry it, so a client
    /// created later with the same id inherits nothing.
    pub instance: i64,
    /// When it was created (Unix seconds): tokens issued before instances existed are judged by it.
    pub created_at: i64,
    /// Its `keyward_tokens_issued_total` counters by grant type, made at its first token.
    pub(crate) issued: OnceLock<[metrics::Counter; 3]>,
    /// The minute and address it last authenticated from, folded (`Limits::client` remembers an address once a
    /// minute).
    pub(crate) remembered: AtomicU64,
    /// The ticket of the read it came from (`Registry::tickets`).
    ticket: u64,
}

impl CachedClient {
    /// Whether it is enabled and may authenticate with `method`.
    pub fn accepts(&self, method: AuthMethod) -> bool {
        self.accepts[method as usize]
    }

    /// Whether an account owns it (made in the console, or given an `owner_account`).
    pub fn is_owned(&self) -> bool {
        self.owned
    }

    /// Its own request rate on `endpoint`: `None` follows the server; `Some(None)` is no limit.
    pub fn rate(&self, endpoint: Endpoint) -> Option<Option<Rate>> {
        let own = match endpoint {
            Endpoint::Token => self.limits.token,
            Endpoint::Introspect => self.limits.introspect,
            Endpoint::Revoke => self.limits.revoke,
        };
        own.map(RateSetting::rate)
    }

    /// Its own token quotas per hour and per day (`None` follows the server; 0 is none).
    pub fn quotas(&self) -> [Option<u64>; 2] {
        [self.limits.tokens_per_hour, self.limits.tokens_per_day]
    }
}

/// What a client's `private_key_jwt` assertions are checked against (RFC 7523 §2.2): its own public keys, inline
/// or at a URL, and the external issuers it trusts.
#[derive(Debug)]
pub struct AssertionKeys {
    /// Its inline keys (`jwks`), parsed once when the client is read.
    pub inline: Vec<PublicKey>,
    /// Where its keys are published (`jwks_uri`).
    pub jwks_uri: Option<String>,
    /// External issuers whose tokens authenticate it.
    pub federated: Vec<FederatedCredential>,
}

/// Client credentials as presented.
#[derive(Debug)]
pub struct Credentials {
    /// Claimed client id.
    pub client_id: String,
    /// What proves it: the secret (`client_secret_basic`, `client_secret_post`), the assertion
    /// (`private_key_jwt`), or nothing (`none`).
    pub proof: String,
    /// How they were presented.
    pub method: AuthMethod,
}

type Resources = Arc<HashMap<String, Resource>>;

/// Clients and resources in memory.
#[derive(Debug, Default)]
pub struct Registry {
    clients: RwLock<HashMap<String, Arc<CachedClient>>>,
    /// Whether every client is in memory and the change feed has caught up with the load. Until then (the first
    /// seconds after a start with very many clients) clients are read from the store one by one, so serving does
    /// not wait for the load.
    loaded: AtomicBool,
    /// Whether the load has filled `clients` (changes to single clients can be applied to it from then on).
    populated: AtomicBool,
    resources: RwLock<Resources>,
    /// Last-used times noted and not yet written, oldest first. Each secret is noted at most once an hour, so
    /// this holds no duplicates unless a backlog outlives an hour (the flush keeps the latest).
    used: Mutex<VecDeque<(Arc<str>, i64)>>,
    /// Numbers every read of clients, taken before the read starts: a read that started later saw at least what
    /// an earlier one saw, so memory keeps the read with the higher number. Without it the feed follower's read of
    /// a client, begun before a write committed, could land after the writer's own reload and put the older state
    /// back in memory until the next read of the feed.
    tickets: AtomicU64,
    /// The most recent removals (client id, the ticket of the read that found it gone), so that an older read
    /// landing late cannot bring a deleted client back.
    removed: Mutex<VecDeque<(String, u64)>>,
}

/// How many removals `Registry::removed` remembers: far more than reads can be in flight at once.
const REMOVALS_KEPT: usize = 1_024;

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
        redirect_uris: split_list(&row.redirect_uris),
        description: row.description.clone(),
        refresh_token_ttl: row.refresh_token_ttl,
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
        // Checked on write; a document a newer version wrote and this one cannot read describes nothing.
        scope_details: serde_json::from_str(&row.scope_details).unwrap_or_default(),
        require_dpop: row.require_dpop,
    })
}

/// A row's key settings; most rows hold none, and are not parsed.
fn key_settings(row: &ClientRow) -> KeySettings {
    if row.key_settings == "{}" {
        return KeySettings::default();
    }
    // Checked on write; a document a newer version wrote and this one cannot read holds no keys here.
    serde_json::from_str(&row.key_settings).unwrap_or_default()
}

/// The assertion keys of `settings`, `None` when there are none. A key that does not parse (only a newer version
/// could have written one) is left out.
fn assertion_keys(settings: KeySettings) -> Option<Box<AssertionKeys>> {
    if !settings.has_assertion_keys() {
        return None;
    }
    Some(Box::new(AssertionKeys {
        inline: settings
            .keys()
            .iter()
            .filter_map(|k| PublicKey::from_jwk(k).ok())
            .collect(),
        jwks_uri: settings.jwks_uri,
        federated: settings.federated,
    }))
}

fn cached(row: &ClientRow, resources: Vec<String>, secrets: &[SecretRow]) -> CachedClient {
    let client = to_client(row, resources);
    let settings = key_settings(row);
    let mut accepts = [false; 4];
    for m in AuthMethod::EVERY {
        accepts[m as usize] = client.enabled && client.auth_methods.contains(&m);
    }
    CachedClient {
        client,
        secrets: secrets.iter().filter_map(cached_secret).collect(),
        accepts,
        dpop_bound: settings.dpop_bound_access_tokens,
        keys: assertion_keys(settings),
        owned: row.owner_account.is_some(),
        // Checked on write; limits a newer version wrote and this one cannot read fall back to the server's.
        limits: serde_json::from_str(&row.limits).unwrap_or_default(),
        instance: row.instance,
        created_at: row.created_at,
        issued: OnceLock::new(),
        remembered: AtomicU64::new(0),
        ticket: 0,
    }
}

fn cached_secret(s: &SecretRow) -> Option<CachedSecret> {
    Some(CachedSecret {
        id: Arc::from(s.id.as_str()),
        // Digests are written 32 bytes long; any other length could never match.
        digest: s.digest.as_slice().try_into().ok()?,
        expires_at: s.expires_at,
        last_used: AtomicI64::new(s.last_used_at.unwrap_or(0)),
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Appends to a vector that stays small (a client's secrets, its resources) without the spare room `push` would
/// leave: with a million clients, three spare slots each would be hundreds of megabytes.
fn push_exact<T>(v: &mut Vec<T>, item: T) {
    v.reserve_exact(1);
    v.push(item);
}

impl Registry {
    /// A registry that never loads (the CLI's): every client asked for is read from the store, and it holds no
    /// resources.
    pub fn unloaded() -> Self {
        Self::default()
    }

    /// Loads the resources; clients come later, from `reload_clients`.
    pub async fn load(store: &Store) -> Result<Self, StoreError> {
        let registry = Self::default();
        registry.reload_resources(store).await?;
        Ok(registry)
    }

    /// Whether lookups are served from memory.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Whether the clients have been read into memory (the feed may not have caught up yet).
    pub fn is_populated(&self) -> bool {
        self.populated.load(Ordering::Acquire)
    }

    /// Serves lookups from memory from now on: called once the feed has replayed what changed during the load,
    /// since the load's reads are not one snapshot.
    pub fn mark_loaded(&self) {
        self.loaded.store(true, Ordering::Release);
    }

    /// Reads every client into memory and replaces what was there (at start, and after an import). The caller
    /// replays the change feed from before the call, so a change made while this reads is not lost.
    pub async fn reload_clients(&self, store: &Store) -> Result<usize, StoreError> {
        let ticket = self.tickets.fetch_add(1, Ordering::AcqRel) + 1;
        // Clients first, then their resource links and secrets straight into them, each row dropped as soon as it
        // is used: no map of rows outlives the load, which keeps the peak memory down and leaves no heap full of
        // freed rows for the token path's allocations to search through. A link or secret whose client arrived
        // after the first read is skipped; the feed, replayed from before the load, reloads that client.
        let mut clients: HashMap<String, Arc<CachedClient>> = HashMap::new();
        store
            .clients_each(|row| {
                let mut c = cached(&row, Vec::new(), &[]);
                c.ticket = ticket;
                clients.insert(row.id, Arc::new(c));
            })
            .await?;
        // Nothing else holds these `Arc`s yet, so `get_mut` always succeeds.
        store
            .client_resources_each(|client, resource| {
                if let Some(c) = clients.get_mut(&client).and_then(Arc::get_mut) {
                    push_exact(&mut c.client.resources, resource);
                }
            })
            .await?;
        store
            .secrets_each(|s| {
                let c = clients.get_mut(&s.client_id).and_then(Arc::get_mut);
                if let (Some(c), Some(secret)) = (c, cached_secret(&s)) {
                    push_exact(&mut c.secrets, secret);
                }
            })
            .await?;
        let mut map = self.clients.write().unwrap_or_else(|e| e.into_inner());
        // What single reads brought in or took out since this load began is newer than what the load read.
        for (id, c) in map.iter() {
            if c.ticket > ticket {
                clients.insert(id.clone(), c.clone());
            }
        }
        for (id, at) in lock(&self.removed).iter() {
            if *at > ticket {
                clients.remove(id);
            }
        }
        let count = clients.len();
        *map = clients;
        drop(map);
        self.populated.store(true, Ordering::Release);
        Ok(count)
    }

    /// Re-reads one client after a change (removing it when it is gone).
    pub async fn reload_client(&self, store: &Store, id: &str) -> Result<(), StoreError> {
        let ticket = self.tickets.fetch_add(1, Ordering::AcqRel) + 1;
        let newer_in_memory = |clients: &HashMap<String, Arc<CachedClient>>| {
            clients.get(id).is_some_and(|c| c.ticket > ticket)
        };
        match store.client_get(id).await {
            Ok((row, resources, secrets)) => {
                let mut c = cached(&row, resources, &secrets);
                c.ticket = ticket;
                let mut clients = self.clients.write().unwrap_or_else(|e| e.into_inner());
                let removed_since = lock(&self.removed)
                    .iter()
                    .any(|(r, at)| r == id && *at > ticket);
                if newer_in_memory(&clients) || removed_since {
                    return Ok(());
                }
                // A use noted in memory but not yet flushed is not in the rows just read: keep it, or the next use
                // would be noted (and written) again within the hour.
                if let Some(old) = clients.get(id) {
                    for s in &c.secrets {
                        if let Some(o) = old.secrets.iter().find(|o| o.id == s.id) {
                            s.last_used
                                .fetch_max(o.last_used.load(Ordering::Relaxed), Ordering::Relaxed);
                        }
                    }
                }
                clients.insert(id.to_owned(), Arc::new(c));
            }
            Err(StoreError::NotFound) => {
                let mut clients = self.clients.write().unwrap_or_else(|e| e.into_inner());
                if newer_in_memory(&clients) {
                    return Ok(());
                }
                clients.remove(id);
                let mut removed = lock(&self.removed);
                if removed.len() == REMOVALS_KEPT {
                    removed.pop_front();
                }
                removed.push_back((id.to_owned(), ticket));
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

    /// A client by id: from memory once every client is loaded, from the store until then.
    pub async fn client(
        &self,
        store: &Store,
        id: &str,
    ) -> Result<Option<Arc<CachedClient>>, StoreError> {
        if self.is_loaded() {
            return Ok(self
                .clients
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(id)
                .cloned());
        }
        match store.client_get(id).await {
            Ok((row, resources, secrets)) => Ok(Some(Arc::new(cached(&row, resources, &secrets)))),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// RFC 6749 §2.3.1: authenticates a client. Every failure is the same `invalid_client`, and the digest is
    /// computed whether or not the client exists, so the answer and its timing do not tell which check failed.
    /// `client` is what `Registry::client` found for the presented id.
    pub fn authenticate(
        &self,
        master: &MasterKeys,
        creds: &Credentials,
        client: Option<Arc<CachedClient>>,
        now: i64,
    ) -> Result<Arc<CachedClient>, OAuthError> {
        let Some(client) = client else {
            // The digest is still computed, so an unknown client costs what a known one does.
            let _ = master.digest(&creds.proof);
            return Err(OAuthError::invalid_client());
        };
        if creds.method == AuthMethod::None {
            // A public client (RFC 6749 §2.1) proves nothing but its id; the grants it may use bind what it gets
            // to something else (a PKCE verifier, a refresh token issued to it).
            return if client.accepts(AuthMethod::None) {
                Ok(client)
            } else {
                Err(OAuthError::invalid_client())
            };
        }
        let digest = master.digest(&creds.proof);
        let mut matched = None;
        for s in &client.secrets {
            let live = s.expires_at.is_none_or(|t| now < t);
            // Compare every secret (no early exit) so timing does not depend on which one matched.
            if digests_equal(&s.digest, &digest) && live {
                matched = Some(s);
            }
        }
        let usable = client.accepts(creds.method);
        match matched {
            Some(secret) if usable => self.note_use(secret, now),
            _ => return Err(OAuthError::invalid_client()),
        }
        Ok(client)
    }

    /// Notes a secret's use for the next flush, only when the recorded use is older than the precision: the
    /// token path takes no lock, and the database sees at most one write per secret per hour.
    fn note_use(&self, secret: &CachedSecret, now: i64) {
        let recorded = secret.last_used.load(Ordering::Relaxed);
        let stale = now - recorded >= LAST_USED_PRECISION;
        // One request of many arriving together wins the exchange and notes the use.
        if stale
            && secret
                .last_used
                .compare_exchange(recorded, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.used
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back((Arc::clone(&secret.id), now));
        }
    }

    /// Takes up to `limit` of the last-used times noted and not yet written, oldest first, for a flush (one time
    /// per secret, the latest). What is left waits for the next flush.
    pub fn take_used(&self, limit: usize) -> Vec<(Arc<str>, i64)> {
        let taken: Vec<_> = {
            let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
            let n = limit.min(used.len());
            used.drain(..n).collect()
        };
        let mut latest: HashMap<Arc<str>, i64> = HashMap::with_capacity(taken.len());
        for (id, at) in taken {
            let slot = latest.entry(id).or_insert(at);
            *slot = (*slot).max(at);
        }
        latest.into_iter().collect()
    }

    /// Puts back last-used times whose write failed, to be tried first at the next flush.
    pub fn put_back_used(&self, taken: Vec<(Arc<str>, i64)>) {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        for entry in taken {
            used.push_front(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_uses_leave_oldest_first_and_once_per_secret() {
        let r = Registry::default();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        r.used.lock().unwrap().extend([
            (a.clone(), 10),
            (b.clone(), 20),
            (a.clone(), 3_700),
            (b.clone(), 3_800),
        ]);
        let mut first = r.take_used(3);
        first.sort();
        // Of the first three, `a` twice (an hour apart: the later kept) and `b` once.
        assert_eq!(first, vec![(a.clone(), 3_700), (b.clone(), 20)]);
        // A failed write puts them back in front of what is still pending.
        r.put_back_used(first);
        let mut rest = r.take_used(usize::MAX);
        rest.sort();
        assert_eq!(rest, vec![(a, 3_700), (b, 3_800)]);
        assert!(r.take_used(10).is_empty());
    }
}
