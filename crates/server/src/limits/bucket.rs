//! One limited key's state: what it limits (`Kind`: a rate or a quota), its `Bucket` (arrival time, leased cells,
//! what was spent on credit) and what `take` does after its first look at it (`Step`).

use std::sync::Arc;

use keyward_core::limit::{self, LEASE_TTL_US, Rate, Take, Window};

/// What a bucket limits.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Rate(Rate),
    Quota(u64, Window),
}

/// How many cells one lease of `kind` brings.
pub(super) fn lease_size(kind: Kind) -> u64 {
    match kind {
        Kind::Rate(r) => r.lease(),
        Kind::Quota(q, _) => limit::quota_lease(q),
    }
}

/// Until when cells leased at `now_us` may be spent: a second for a rate (µs), the window (its start, in
/// seconds) for a quota.
pub(super) fn valid_until(kind: Kind, now_us: i64) -> i64 {
    match kind {
        Kind::Rate(_) => now_us + LEASE_TTL_US,
        Kind::Quota(_, w) => w.start(now_us / 1_000_000),
    }
}

/// A refused `Take`'s wait in µs (`keyward_core::limit` answers rates in µs, windows in seconds).
pub(super) fn retry_us(kind: Kind, t: &Take) -> i64 {
    match kind {
        Kind::Rate(_) => t.retry_after,
        Kind::Quota(..) => t.retry_after.saturating_mul(1_000_000),
    }
}

#[derive(Debug)]
pub(super) struct Bucket {
    /// Node-only rates: the GCRA arrival time (µs).
    pub(super) tat: i64,
    /// Leased: cells this node may still spend.
    pub(super) left: u64,
    /// Leased: cells spent on credit the database has not been told of.
    pub(super) owed: u64,
    /// Of `owed`, the cells already counted in `tat` by the node's own arithmetic (while the database is away).
    pub(super) folded: u64,
    /// Leased: whether `left` is credit (spending it adds to `owed`) rather than allowance the database granted.
    pub(super) credit: bool,
    /// Leased: until when `left` may be spent (µs for rates; the window's start, in seconds, for quotas).
    pub(super) valid: i64,
    /// Refused until then (µs), without asking the database again.
    pub(super) denied_until: i64,
    pub(super) last_seen: i64,
    /// Held by the one request that leases for this bucket.
    pub(super) gate: Arc<tokio::sync::Mutex<()>>,
}

impl Bucket {
    pub(super) fn new(kind: Kind, now_us: i64) -> Self {
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
    pub(super) fn is_valid(&self, kind: Kind, now_us: i64) -> bool {
        match kind {
            Kind::Rate(_) => now_us < self.valid,
            Kind::Quota(..) => self.valid == valid_until(kind, now_us),
        }
    }

    /// Spends one leased cell if there is a valid one.
    pub(super) fn spend(&mut self, kind: Kind, now_us: i64) -> bool {
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

/// What `take` does after its first look at a bucket.
pub(super) enum Step {
    /// A cell was spent.
    Done,
    /// A cell was spent, and this request tops the bucket up (holding its gate).
    TopUp(tokio::sync::OwnedMutexGuard<()>),
    /// Refused for this many µs.
    Refused(i64),
    /// Empty: wait on the gate, then lease.
    Wait(Arc<tokio::sync::Mutex<()>>),
}
