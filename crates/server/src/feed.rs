//! Following the `changes` feed. On PostgreSQL a sequence number is taken when a row is inserted, not when it
//! commits, so a later number can become visible before an earlier one. The cursor therefore keeps a watermark
//! below which every position was seen, remembers the positions seen above it, and waits a grace period for a
//! missing one (a transaction still committing) before giving it up as rolled back.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a missing position is waited for before it is taken as a rolled-back transaction.
pub const GAP_GRACE: Duration = Duration::from_secs(10);

/// Which feed positions have been applied.
#[derive(Debug)]
pub struct FeedCursor {
    watermark: i64,
    seen: BTreeSet<i64>,
    gap_since: Option<(i64, Instant)>,
}

impl FeedCursor {
    /// A cursor that has seen everything up to `head`.
    pub fn new(head: i64) -> Self {
        Self {
            watermark: head,
            seen: BTreeSet::new(),
            gap_since: None,
        }
    }

    /// Read the feed after this position.
    pub fn after(&self) -> i64 {
        self.watermark
    }

    /// Whether a position still needs applying.
    pub fn is_new(&self, seq: i64) -> bool {
        seq > self.watermark && !self.seen.contains(&seq)
    }

    /// Records an applied position.
    pub fn mark(&mut self, seq: i64) {
        if seq > self.watermark {
            self.seen.insert(seq);
        }
    }

    /// Moves the watermark over contiguous positions, and over a gap older than `grace`.
    pub fn advance(&mut self, now: Instant, grace: Duration) {
        loop {
            let next = self.watermark + 1;
            if self.seen.remove(&next) {
                self.watermark = next;
                continue;
            }
            if self.seen.is_empty() {
                self.gap_since = None;
                return;
            }
            match self.gap_since {
                Some((gap, since)) if gap == next => {
                    if now.duration_since(since) < grace {
                        return;
                    }
                    self.watermark = next;
                    self.gap_since = None;
                }
                _ => {
                    self.gap_since = Some((next, now));
                    return;
                }
            }
        }
    }
}

/// Whether this node's view of the database is current: when the change feed was last read, and whether the last
/// read failed. Measured on the monotonic clock (how long ago, not what time it is), so a test's fixed clock does
/// not make a healthy node look stale.
#[derive(Debug)]
pub struct FeedHealth {
    origin: Instant,
    /// Milliseconds after `origin` of the last successful read.
    last_ok: AtomicU64,
    down: AtomicBool,
}

impl Default for FeedHealth {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            last_ok: AtomicU64::new(0),
            down: AtomicBool::new(false),
        }
    }
}

impl FeedHealth {
    /// Records a successful read of the database.
    pub fn ok(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ok.fetch_max(ms, Ordering::Relaxed);
        self.down.store(false, Ordering::Relaxed);
    }

    /// Records a failed read; returns whether the database was up before (so the change is logged once).
    pub fn failed(&self) -> bool {
        !self.down.swap(true, Ordering::Relaxed)
    }

    /// Whether the last read failed.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// How long ago the database was last read successfully.
    pub fn age(&self) -> Duration {
        let now = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ok.load(Ordering::Relaxed)))
    }

    /// Whether the database has been unreachable for longer than `limit`: what is in memory may then miss
    /// changes (a disabled client, a rotated key) for too long to keep serving from it.
    pub fn is_stale(&self, limit: Duration) -> bool {
        self.is_down() && self.age() > limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_commit_is_not_skipped() {
        let t0 = Instant::now();
        let mut c = FeedCursor::new(10);
        // 12 is visible before 11 commits.
        assert!(c.is_new(12));
        c.mark(12);
        c.advance(t0, GAP_GRACE);
        assert_eq!(c.after(), 10, "waits below the gap");
        assert!(!c.is_new(12), "12 is not applied twice");
        assert!(c.is_new(11), "11 is still read when it commits");
        c.mark(11);
        c.advance(t0, GAP_GRACE);
        assert_eq!(c.after(), 12);
    }

    #[test]
    fn stale_only_when_down_past_the_limit() {
        let h = FeedHealth::default();
        h.ok();
        assert!(!h.is_stale(Duration::ZERO), "up: never stale");
        assert!(h.failed(), "first failure reported");
        assert!(!h.failed(), "second failure not reported again");
        std::thread::sleep(Duration::from_millis(5));
        assert!(h.is_stale(Duration::from_millis(1)));
        assert!(!h.is_stale(Duration::from_secs(60)));
        h.ok();
        assert!(!h.is_down() && !h.is_stale(Duration::ZERO));
    }

    #[test]
    fn a_rolled_back_position_is_given_up_after_the_grace() {
        let t0 = Instant::now();
        let mut c = FeedCursor::new(0);
        c.mark(2);
        c.advance(t0, GAP_GRACE);
        assert_eq!(c.after(), 0);
        c.advance(t0 + GAP_GRACE / 2, GAP_GRACE);
        assert_eq!(c.after(), 0);
        c.advance(t0 + GAP_GRACE, GAP_GRACE);
        assert_eq!(c.after(), 2);
    }
}
