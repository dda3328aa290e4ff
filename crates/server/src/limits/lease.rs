//! Spending a bucket's cells: node-only rates by GCRA in memory; shared rates and quotas from leases of
//! `limit_state`, topped up at half a lease, the node enforcing alone on credit while the database is away;
//! refusals checked without spending; quota cells given back.

use keyward_core::limit::{self, Take, Window};

use super::bucket::{Kind, Step, lease_size, retry_us, valid_until};
use super::{Limit, Limits, Refusal, lock};
use crate::store::{Store, StoreError};

impl Limits {
    /// Spends one cell of `key` under `kind`, or says how long to wait.
    pub(super) async fn take(
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
    pub(super) fn give_back(&self, key: &str, now_us: i64, window: Window) {
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
    pub(super) fn refused_now(&self, key: &str, kind: Kind, now_us: i64) -> Option<i64> {
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
}
