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
use std::sync::Mutex;
use std::sync::atomic::AtomicI64;

use keyward_core::limit;
use metrics::Counter;

use crate::config::{LimitSettings, Sharing};

mod bucket;
mod checks;
mod lease;
mod refusal;
mod source;

use bucket::{Bucket, Kind};
pub use checks::Spent;
pub use refusal::{Limit, Refusal};
pub use source::Source;
use source::{KNOWN_SOURCE_SECONDS, KnownSources};

const SHARDS: usize = 16;

/// A bucket unused this long (µs) is dropped by `sweep` once it no longer holds anything back.
const IDLE_US: i64 = 60_000_000;

/// How long (µs) an idle bucket with unreported use on credit is kept for its next lease.
const OWED_KEPT_US: i64 = 3_600_000_000;

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
