//! Rate limits, token quotas and the brute-force defence of client authentication, enforced in memory on the
//! request path. `keyward_core::limit` does the arithmetic; this module keeps the state.
//!
//! A limited key (`token/client/ID/INSTANCE`, `token/address/IP`, `quota/hour/ID/INSTANCE/…`) is a bucket in one
//! of the sharded maps. Counted by the node alone, a rate bucket is a GCRA arrival time. Shared through the
//! database, a bucket holds allowance leased in batches from `limit_state` (see `Store::limit_take`): requests
//! spend it without a round trip; the request that leaves half a batch or less leases the next one while the
//! others go on, reporting what the node spent on credit, and a request that finds the bucket empty waits for
//! that lease.
//! A new rate bucket starts with one batch of credit, so an address that sends a few requests never costs a
//! database write; a quota bucket starts empty, so quotas are leased before they are spent.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use keyward_core::limit::{self, LEASE_TTL_US, Rate, Take, Window};
use metrics::Counter;

use crate::config::{Endpoint, LimitSettings, Sharing};
use crate::registry::CachedClient;
use crate::store::{Store, StoreError};

const SHARDS: usize = 16;

/// A bucket unused this long (µs) is dropped by `sweep` once it no longer holds anything back.
const IDLE_US: i64 = 60_000_000;

/// How long (µs) an idle bucket with unreported use on credit is kept for its next lease.
const OWED_KEPT_US: i64 = 3_600_000_000;

/// How long (seconds) an address that authenticated as a client stays trusted for it while the client is under a
/// password-guessing attack.
const KNOWN_SOURCE_SECONDS: i64 = 86_400;

/// Known sources kept per client (the most recent).
const KNOWN_SOURCES_PER_CLIENT: usize = 16;

/// Which limit refused a request: the `limit` label of `keyward_rate_limited_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Requests per client, by endpoint.
    Client(Endpoint),
    /// Requests per source address, by endpoint.
    Address(Endpoint),
    /// Tokens per client per window.
    Quota(Window),
    /// Failed authentications of one client id.
    FailedClient,
    /// Failed authentications from one address.
    FailedAddress,
}

impl Limit {
    /// Every limit, in label order.
    pub const ALL: [Limit; 10] = [
        Limit::Client(Endpoint::Token),
        Limit::Client(Endpoint::Introspect),
        Limit::Client(Endpoint::Revoke),
        Limit::Address(Endpoint::Token),
        Limit::Address(Endpoint::Introspect),
        Limit::Address(Endpoint::Revoke),
        Limit::Quota(Window::Hour),
        Limit::Quota(Window::Day),
        Limit::FailedClient,
        Limit::FailedAddress,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Limit::Client(Endpoint::Token) => "token_client",
            Limit::Client(Endpoint::Introspect) => "introspect_client",
            Limit::Client(Endpoint::Revoke) => "revoke_client",
            Limit::Address(Endpoint::Token) => "token_address",
            Limit::Address(Endpoint::Introspect) => "introspect_address",
            Limit::Address(Endpoint::Revoke) => "revoke_address",
            Limit::Quota(Window::Hour) => "quota_hour",
            Limit::Quota(Window::Day) => "quota_day",
            Limit::FailedClient => "failed_auth_client",
            Limit::FailedAddress => "failed_auth_address",
        }
    }

    fn index(self) -> usize {
        Limit::ALL.iter().position(|l| *l == self).unwrap_or(0)
    }
}

/// A request refused by a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Which limit.
    pub limit: Limit,
    /// Whole seconds until a retry can succeed (`Retry-After`).
    pub retry_after: u64,
}

impl Refusal {
    /// The `error_description` of the 429.
    pub fn message(&self) -> String {
        match self.limit {
            Limit::Quota(w) => format!(
                "the client's token quota for this {} is spent; retry after {} s",
                w.name(),
                self.retry_after
            ),
            Limit::FailedClient | Limit::FailedAddress => format!(
                "too many failed authentications; retry after {} s",
                self.retry_after
            ),
            _ => format!("rate limit reached; retry after {} s", self.retry_after),
        }
    }
}

/// What a bucket limits.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Rate(Rate),
    Quota(u64, Window),
}

/// How many cells one lease of `kind` brings.
fn lease_size(kind: Kind) -> u64 {
    match kind {
        Kind::Rate(r) => r.lease(),
        Kind::Quota(q, _) => limit::quota_lease(q),
    }
}

/// Until when cells leased at `now_us` may be spent: a second for a rate (µs), the window (its start, in
/// seconds) for a quota.
fn valid_until(kind: Kind, now_us: i64) -> i64 {
    match kind {
        Kind::Rate(_) => now_us + LEASE_TTL_US,
        Kind::Quota(_, w) => w.start(now_us / 1_000_000),
    }
}

/// A refused `Take`'s wait in µs (`keyward_core::limit` answers rates in µs, windows in seconds).
fn retry_us(kind: Kind, t: &Take) -> i64 {
    match kind {
        Kind::Rate(_) => t.retry_after,
        Kind::Quota(..) => t.retry_after.saturating_mul(1_000_000),
    }
}

#[derive(Debug)]
struct Bucket {
    /// Node-only rates: the GCRA arrival time (µs).
    tat: i64,
    /// Leased: cells this node may still spend.
    left: u64,
    /// Leased: cells spent on credit the database has not been told of.
    owed: u64,
    /// Of `owed`, the cells already counted in `tat` by the node's own arithmetic (while the database is away).
    folded: u64,
    /// Leased: whether `left` is credit (spending it adds to `owed`) rather than allowance the database granted.
    credit: bool,
    /// Leased: until when `left` may be spent (µs for rates; the window's start, in seconds, for quotas).
    valid: i64,
    /// Refused until then (µs), without asking the database again.
    denied_until: i64,
    last_seen: i64,
    /// Held by the one request that leases for this bucket.
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl Bucket {
    fn new(kind: Kind, now_us: i64) -> Self {
        // A rate starts with one lease of credit; a quota with nothing (leased before it is spent).
        let (left, valid) = match kind {
            Kind::Rate(r) => (r.lease(), valid_until(kind, now_us)),
            Kind::Quota(..) => (0, 0),
        };
        Bucket {
            tat: 0,
            left,
            owed: 0,
            folded: 0,
            credit: matches!(kind, Kind::Rate(_)),
            valid,
            denied_until: 0,
            last_seen: now_us,
            gate: Arc::default(),
        }
    }

    /// Whether `left` may still be spent: a rate's lease has not lapsed, a quota's is for this window.
    fn is_valid(&self, kind: Kind, now_us: i64) -> bool {
        match kind {
            Kind::Rate(_) => now_us < self.valid,
            Kind::Quota(..) => self.valid == valid_until(kind, now_us),
        }
    }

    /// Spends one leased cell if there is a valid one.
    fn spend(&mut self, kind: Kind, now_us: i64) -> bool {
        if !self.is_valid(kind, now_us) || self.left == 0 {
            return false;
        }
        self.left -= 1;
        if self.credit {
            self.owed += 1;
        }
        true
    }
}

/// Per client id: addresses that authenticated as it, with when they last did (Unix seconds).
type KnownSources = HashMap<String, Vec<(IpAddr, i64)>>;

/// The limits in force and their state.
pub struct Limits {
    settings: LimitSettings,
    /// Whether request rates are leased from the database (quotas always are).
    shared: bool,
    shards: Box<[Mutex<HashMap<String, Bucket>>]>,
    known: Box<[Mutex<KnownSources>]>,
    hasher: RandomState,
    refused: [Counter; 10],
    lease_failures: Counter,
    /// Until when (µs) a failed authentication may still hold something back.
    failures_until: AtomicI64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a shard cannot leave a bucket half-written in a way that matters: keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Limits {
    /// The limits of `settings`, counted in memory or leased from the database as `settings.sharing` (or the
    /// engine: PostgreSQL shares) says. `refused` are the rejection counters in `Limit::ALL` order.
    pub fn new(
        settings: LimitSettings,
        postgres: bool,
        refused: [Counter; 10],
        lease_failures: Counter,
    ) -> Self {
        let shared = match settings.sharing {
            Some(Sharing::Database) => true,
            Some(Sharing::Node) => false,
            None => postgres,
        };
        Limits {
            settings,
            shared,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            known: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            refused,
            lease_failures,
            failures_until: AtomicI64::new(0),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &LimitSettings {
        &self.settings
    }

    fn shard<'a, T>(&self, shards: &'a [Mutex<T>], key: &str) -> &'a Mutex<T> {
        &shards[self.hasher.hash_one(key) as usize % shards.len()]
    }

    /// Runs `f` on `key`'s bucket under its shard's lock, making the bucket if there is none.
    fn with_bucket<R>(
        &self,
        key: &str,
        kind: Kind,
        now_us: i64,
        f: impl FnOnce(&mut Bucket) -> R,
    ) -> R {
        let mut shard = lock(self.shard(&self.shards, key));
        let b = shard
            .entry(key.to_owned())
            .or_insert_with(|| Bucket::new(kind, now_us));
        f(b)
    }

    fn refuse(&self, limit: Limit, retry_after_us: i64) -> Refusal {
        self.refused[limit.index()].increment(1);
        Refusal {
            limit,
            retry_after: limit::retry_after_seconds(retry_after_us),
        }
    }

    /// Spends one cell of `key` under `kind`, or says how long to wait.
    async fn take(
        &self,
        store: &Store,
        key: &str,
        kind: Kind,
        limit: Limit,
        now_us: i64,
    ) -> Result<(), Refusal> {
        if let (Kind::Rate(rate), false) = (kind, self.shared) {
            let t = self.with_bucket(key, kind, now_us, |b| {
                b.last_seen = now_us;
                let t = limit::gcra(&rate, b.tat, now_us, 0, 1);
                if t.granted == 1 {
                    b.tat = t.state;
                }
                t
            });
            return if t.granted == 1 {
                Ok(())
            } else {
                Err(self.refuse(limit, t.retry_after))
            };
        }
        let step = self.with_bucket(key, kind, now_us, |b| {
            b.last_seen = now_us;
            // Cells in hand are spent even while refused: a quota cell given back after a refused token.
            if b.spend(kind, now_us) {
                // Half the lease spent: this request (its cell already spent) tops the bucket up while the
                // others go on spending what is left, so none of them waits for the database.
                let low = !b.credit && b.left <= lease_size(kind) / 2;
                match low.then(|| b.gate.clone().try_lock_owned().ok()).flatten() {
                    Some(guard) => Step::TopUp(guard),
                    None => Step::Done,
                }
            } else if now_us < b.denied_until {
                Step::Refused(b.denied_until - now_us)
            } else {
                Step::Wait(b.gate.clone())
            }
        });
        let gate = match step {
            Step::Done => return Ok(()),
            Step::Refused(wait) => return Err(self.refuse(limit, wait)),
            Step::TopUp(_leasing) => {
                self.refill(store, key, kind, now_us).await;
                return Ok(());
            }
            Step::Wait(gate) => gate,
        };
        // The bucket is empty: one request leases for it; the others wait for it and then spend what it brought.
        let _leasing = gate.lock().await;
        let ready = self.with_bucket(key, kind, now_us, |b| {
            if b.spend(kind, now_us) {
                Some(Ok(()))
            } else if now_us < b.denied_until {
                Some(Err(b.denied_until - now_us))
            } else {
                None
            }
        });
        let spent = match ready {
            Some(r) => r,
            None => {
                self.refill(store, key, kind, now_us).await;
                self.with_bucket(key, kind, now_us, |b| {
                    if b.spend(kind, now_us) {
                        Ok(())
                    } else {
                        Err((b.denied_until - now_us).max(1))
                    }
                })
            }
        };
        spent.map_err(|wait| self.refuse(limit, wait))
    }

    /// Reports what the node spent on credit and adds a lease to the bucket (the caller holds its gate).
    async fn refill(&self, store: &Store, key: &str, kind: Kind, now_us: i64) {
        let owed = self.with_bucket(key, kind, now_us, |b| std::mem::take(&mut b.owed));
        let answer = self.lease(store, key, kind, owed, now_us).await;
        if let Err(e) = &answer {
            if !matches!(e, StoreError::Conflict(_)) {
                tracing::warn!(error = %e, key, "cannot lease a limit's allowance; enforcing on this node alone");
                self.lease_failures.increment(1);
            }
        }
        self.with_bucket(key, kind, now_us, |b| {
            // Cells left of an earlier lease still count while it is valid.
            if !b.is_valid(kind, now_us) {
                b.left = 0;
            }
            match answer {
                Ok(t) => {
                    b.left += t.granted;
                    b.credit = false;
                    if let Kind::Rate(_) = kind {
                        // The shared arrival time: `sweep` keeps the bucket while it still holds something back.
                        b.tat = t.state;
                    }
                    // What was owed is reported: none of what is owed now was counted by the node alone.
                    b.folded = 0;
                    b.valid = valid_until(kind, now_us);
                    if b.left == 0 {
                        b.denied_until = now_us + retry_us(kind, &t);
                    }
                }
                Err(StoreError::Conflict(_)) => {
                    // Nodes kept racing for this key: refused for a moment rather than admitted uncounted.
                    b.owed += owed;
                    if b.left == 0 {
                        b.denied_until = now_us + 1_000_000;
                    }
                }
                Err(_) => {
                    // The database is unreachable: rather than refuse every client for an outage that is not
                    // theirs, the node enforces each limit alone (and tells the database what it spent once it
                    // can): a rate by its own arithmetic on the bucket's arrival time, a quota by what this node
                    // spent unreported in the window.
                    b.owed += owed;
                    b.credit = true;
                    let t = match kind {
                        Kind::Rate(rate) => {
                            // What was spent on credit since the last count goes into the arrival time first.
                            let unfolded = b.owed.saturating_sub(b.folded);
                            let t = limit::gcra(&rate, b.tat, now_us, unfolded, lease_size(kind));
                            b.tat = t.state;
                            b.folded = b.owed + t.granted;
                            t
                        }
                        Kind::Quota(q, w) => {
                            limit::quota(q, w, 0, now_us / 1_000_000, b.owed, lease_size(kind))
                        }
                    };
                    b.left += t.granted;
                    if b.left == 0 {
                        b.denied_until = now_us + retry_us(kind, &t).max(1);
                    }
                    b.valid = valid_until(kind, now_us);
                }
            }
        });
    }

    /// Reports `owed` cells and leases a batch from the database.
    async fn lease(
        &self,
        store: &Store,
        key: &str,
        kind: Kind,
        owed: u64,
        now_us: i64,
    ) -> Result<Take, StoreError> {
        match kind {
            Kind::Rate(rate) => {
                let want = rate.lease();
                store
                    .limit_take(key, |tat| {
                        let t = limit::gcra(&rate, tat, now_us, owed, want);
                        // The row says nothing once its arrival time has passed.
                        (t, t.state / 1_000_000 + 1)
                    })
                    .await
            }
            Kind::Quota(q, w) => {
                let now = now_us / 1_000_000;
                let expires = w.start(now) + w.seconds() + 3_600;
                store
                    .limit_take(key, |used| {
                        (
                            limit::quota(q, w, used, now, owed, lease_size(kind)),
                            expires,
                        )
                    })
                    .await
            }
        }
    }

    /// Gives back one quota cell spent on a token that was then not issued.
    fn give_back(&self, key: &str, now_us: i64, window: Window) {
        let mut shard = lock(self.shard(&self.shards, key));
        if let Some(b) = shard.get_mut(key) {
            if b.valid == window.start(now_us / 1_000_000) {
                b.left += 1;
                if b.credit {
                    b.owed = b.owed.saturating_sub(1);
                }
            }
        }
    }

    /// Whether `key` is refused right now, without spending anything (failed-authentication limits are checked
    /// before the secret and spent only when it is wrong).
    fn refused_now(&self, key: &str, kind: Kind, now_us: i64) -> Option<i64> {
        let shard = lock(self.shard(&self.shards, key));
        let b = shard.get(key)?;
        if now_us < b.denied_until {
            return Some(b.denied_until - now_us);
        }
        match kind {
            Kind::Rate(rate) if !self.shared => {
                let t = limit::gcra(&rate, b.tat, now_us, 0, 1);
                (t.granted == 0).then_some(t.retry_after)
            }
            _ => None,
        }
    }

    /// Drops buckets that hold nothing back any more, so memory follows the live keys, not every address seen.
    pub fn sweep(&self, now_us: i64) {
        for shard in self.shards.iter() {
            lock(shard).retain(|_, b| {
                let idle = now_us - b.last_seen > IDLE_US;
                // Use spent on credit and not yet reported is kept for its next lease, for an hour at most (so
                // a slow rate cannot be beaten by pausing between requests; memory still follows live keys).
                let owes = b.owed > 0 && now_us - b.last_seen < OWED_KEPT_US;
                !(idle && !owes && b.tat <= now_us && b.denied_until <= now_us)
            });
        }
        let now = now_us / 1_000_000;
        for shard in self.known.iter() {
            lock(shard).retain(|_, sources| {
                sources.retain(|(_, at)| now - at < KNOWN_SOURCE_SECONDS);
                !sources.is_empty()
            });
        }
    }

    /// Buckets held in memory (a gauge of the metrics).
    pub fn buckets(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}

/// The request-path checks, in the order `App::authenticate` and `App::token` run them.
impl Limits {
    /// Before anything else: requests from `address` to `endpoint`.
    pub async fn address(
        &self,
        store: &Store,
        endpoint: Endpoint,
        source: &Source,
        now_us: i64,
    ) -> Result<(), Refusal> {
        let Some(rate) = self.settings.per_address[endpoint as usize] else {
            return Ok(());
        };
        let key = format!("{}/address/{}", endpoint.name(), source.key());
        self.take(
            store,
            &key,
            Kind::Rate(rate),
            Limit::Address(endpoint),
            now_us,
        )
        .await
    }

    /// Before the secret is checked: whether `address` may try to authenticate as `client_id` at all. An address
    /// that failed too often is refused; a client id that failed too often from everywhere is refused to every
    /// address except those that have authenticated as it, so an attacker cannot lock its owner out.
    pub fn may_try(&self, client_id: &str, source: &Source, now_us: i64) -> Result<(), Refusal> {
        // No failure lately: nothing can refuse, and nothing is looked up.
        if now_us > self.failures_until.load(Ordering::Relaxed) {
            return Ok(());
        }
        if let Some(rate) = self.settings.failed_auth_address {
            let key = format!("failed/address/{}", source.key());
            if let Some(wait) = self.refused_now(&key, Kind::Rate(rate), now_us) {
                return Err(self.refuse(Limit::FailedAddress, wait));
            }
        }
        if let Some(rate) = self.settings.failed_auth_client {
            let key = self.failed_client_key(client_id);
            if let Some(wait) = self.refused_now(&key, Kind::Rate(rate), now_us) {
                if !self.is_known(client_id, source.ip, now_us / 1_000_000) {
                    return Err(self.refuse(Limit::FailedClient, wait));
                }
            }
        }
        Ok(())
    }

    /// After a wrong secret or an unknown client id (the same path for both): counts the failure against the
    /// address and the client id.
    pub async fn failed(&self, store: &Store, client_id: &str, source: &Source, now_us: i64) {
        // Until the slowest failure limit has refilled from a whole burst, `may_try` must look.
        let refill = [
            self.settings.failed_auth_address,
            self.settings.failed_auth_client,
        ]
        .into_iter()
        .flatten()
        .map(|r| (r.burst() as i64).saturating_mul(r.interval_us()))
        .max()
        .unwrap_or(0);
        self.failures_until.fetch_max(
            now_us.saturating_add(refill).saturating_add(1_000_000),
            Ordering::Relaxed,
        );
        if let Some(rate) = self.settings.failed_auth_address {
            let key = format!("failed/address/{}", source.key());
            let _ = self
                .take(store, &key, Kind::Rate(rate), Limit::FailedAddress, now_us)
                .await;
        }
        if let Some(rate) = self.settings.failed_auth_client {
            let key = self.failed_client_key(client_id);
            let _ = self
                .take(store, &key, Kind::Rate(rate), Limit::FailedClient, now_us)
                .await;
        }
    }

    /// After a successful authentication: remembers the address as one the client uses, and spends one request
    /// of the client's rate on `endpoint` (its own override, else the server's).
    pub async fn client(
        &self,
        store: &Store,
        endpoint: Endpoint,
        client: &CachedClient,
        ip: IpAddr,
        now_us: i64,
    ) -> Result<(), Refusal> {
        let client_id = client.client.id.as_str();
        if self.settings.failed_auth_client.is_some() {
            // Once a minute per client and address is enough to know it; the common case is one atomic swap.
            let now = now_us / 1_000_000;
            let mark = ((now / 60) as u64) << 32 | u64::from(fold(ip));
            if client.remembered.swap(mark, Ordering::Relaxed) != mark {
                self.remember(client_id, ip, now);
            }
        }
        let own = client.rate(endpoint);
        let Some(rate) = own.unwrap_or(self.settings.per_client[endpoint as usize]) else {
            return Ok(());
        };
        // Keyed by the client's instance too: a client made again with the same id starts afresh.
        let key = format!(
            "{}/client/{client_id}/{:x}",
            endpoint.name(),
            client.instance
        );
        self.take(
            store,
            &key,
            Kind::Rate(rate),
            Limit::Client(endpoint),
            now_us,
        )
        .await
    }

    /// Before a token is issued: one token of each quota in force (the client's own, else the server's; 0 is
    /// none). Returns the quota keys spent, to give back if the token is then not issued.
    pub async fn quota(
        &self,
        store: &Store,
        client: &CachedClient,
        now_us: i64,
    ) -> Result<Spent, Refusal> {
        let (client_id, own) = (&client.client.id, client.quotas());
        let mut spent = Spent::default();
        let server = [self.settings.tokens_per_hour, self.settings.tokens_per_day];
        for (i, window) in [Window::Hour, Window::Day].into_iter().enumerate() {
            let q = own[i].unwrap_or(server[i]);
            if q == 0 {
                continue;
            }
            let start = window.start(now_us / 1_000_000);
            let key = format!(
                "quota/{}/{client_id}/{:x}/{start}",
                window.name(),
                client.instance
            );
            if let Err(r) = self
                .take(
                    store,
                    &key,
                    Kind::Quota(q, window),
                    Limit::Quota(window),
                    now_us,
                )
                .await
            {
                self.give_back_all(&spent, now_us);
                return Err(r);
            }
            spent.keys.push((key, window));
        }
        Ok(spent)
    }

    /// Gives back what `quota` spent (the token was refused after all).
    pub fn give_back_all(&self, spent: &Spent, now_us: i64) {
        for (key, window) in &spent.keys {
            self.give_back(key, now_us, *window);
        }
    }

    /// The failure key of a presented client id. An id longer than any real one (the caller chose it) is keyed by
    /// its hash, so a bucket's key stays short whatever was sent.
    fn failed_client_key(&self, client_id: &str) -> String {
        if client_id.len() <= 255 {
            format!("failed/client/{client_id}")
        } else {
            format!("failed/client/#{:016x}", self.hasher.hash_one(client_id))
        }
    }

    fn remember(&self, client_id: &str, ip: IpAddr, now: i64) {
        let mut shard = lock(self.shard(&self.known, client_id));
        let sources = match shard.get_mut(client_id) {
            Some(s) => s,
            None => shard.entry(client_id.to_owned()).or_default(),
        };
        if let Some(entry) = sources.iter_mut().find(|(a, _)| *a == ip) {
            entry.1 = now;
            return;
        }
        if sources.len() >= KNOWN_SOURCES_PER_CLIENT {
            if let Some(oldest) = sources
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(i, _)| i)
            {
                sources.swap_remove(oldest);
            }
        }
        sources.push((ip, now));
    }

    fn is_known(&self, client_id: &str, ip: IpAddr, now: i64) -> bool {
        lock(self.shard(&self.known, client_id))
            .get(client_id)
            .is_some_and(|s| {
                s.iter()
                    .any(|(a, at)| *a == ip && now - at < KNOWN_SOURCE_SECONDS)
            })
    }
}

/// What `take` does after its first look at a bucket.
enum Step {
    /// A cell was spent.
    Done,
    /// A cell was spent, and this request tops the bucket up (holding its gate).
    TopUp(tokio::sync::OwnedMutexGuard<()>),
    /// Refused for this many µs.
    Refused(i64),
    /// Empty: wait on the gate, then lease.
    Wait(Arc<tokio::sync::Mutex<()>>),
}

/// Where a request came from, as the per-address limits count it.
#[derive(Debug, Clone)]
pub struct Source {
    /// The client's address (the TCP peer, or what a trusted proxy forwarded).
    pub ip: IpAddr,
}

impl Source {
    /// The source at `ip`.
    pub fn new(ip: IpAddr) -> Self {
        Source { ip }
    }

    /// The key it is counted under (`keyward_core::net::limit_key`), made only when a limit needs it.
    pub fn key(&self) -> String {
        keyward_core::net::limit_key(self.ip)
    }
}

/// An address folded into 32 bits (FNV-1a), to tell one address from another in a marker.
fn fold(ip: IpAddr) -> u32 {
    let step = |h: u32, b: &u8| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    match ip {
        IpAddr::V4(v4) => v4.octets().iter().fold(0x811c_9dc5, step),
        IpAddr::V6(v6) => v6.octets().iter().fold(0x811c_9dc5, step),
    }
}

/// Quota cells spent on a token being issued.
#[derive(Debug, Default)]
pub struct Spent {
    keys: Vec<(String, Window)>,
}
