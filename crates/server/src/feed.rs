//! Following the `changes` feed. On PostgreSQL a sequence number is taken when a row is inserted, not when it
//! commits, so a later number can become visible before an earlier one, and a transaction that rolls back leaves
//! its number unused for ever. The cursor therefore reads on from the highest position it has seen, so that no gap
//! ever holds a later change back, and watches each missing position below it for a grace period (a transaction
//! still committing) before giving it up as rolled back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How many of the newest feed positions a starting node checks for gaps (transactions still committing).
pub const FEED_RECENT: i64 = 1_000;

/// How often a server reads the change feed on SQLite, which has no notifications.
pub const FEED_POLL: Duration = Duration::from_millis(250);

/// On PostgreSQL a notification wakes the follower at once; this catch-up read runs anyway, so a notification
/// lost with its connection delays a change by at most this long.
pub const FEED_CATCH_UP: Duration = Duration::from_millis(500);

/// How long a missing position is watched before it is taken as a rolled-back transaction. A gap holds nothing back,
/// so the grace is long enough for any transaction still committing (a lock wait, a stalled connection): watching
/// costs one query by position per read.
pub const GAP_GRACE: Duration = Duration::from_secs(300);

/// The most missing positions watched at once; past it the oldest are given up first (a sequence that jumped by
/// thousands after a crash, say, leaves no transaction behind to wait for).
pub const MAX_WATCHED: usize = 10_000;

/// Which feed positions have been applied: everything up to `high` except the positions in `missing`.
#[derive(Debug)]
pub struct FeedCursor {
    high: i64,
    missing: BTreeMap<i64, Instant>,
}

impl FeedCursor {
    /// A cursor that has seen everything up to `head`, except the positions in `(head - recent, head]` that
    /// `present` lacks: those may belong to transactions still committing while this node loaded its state, and
    /// are watched like any gap.
    pub fn new(head: i64, recent: i64, present: &[i64], now: Instant) -> Self {
        let mut cursor = Self {
            high: head,
            missing: BTreeMap::new(),
        };
        let present: std::collections::HashSet<i64> = present.iter().copied().collect();
        for seq in (head - recent + 1).max(1)..=head {
            if !present.contains(&seq) {
                cursor.missing.insert(seq, now);
            }
        }
        cursor.bound();
        cursor
    }

    /// Read new entries after this position.
    pub fn after(&self) -> i64 {
        self.high
    }

    /// The positions below `after` still watched for a late commit, oldest first.
    pub fn watched(&self) -> Vec<i64> {
        self.missing.keys().copied().collect()
    }

    /// Whether a position still needs applying.
    pub fn is_new(&self, seq: i64) -> bool {
        seq > self.high || self.missing.contains_key(&seq)
    }

    /// Records an applied position; the positions it skipped over become watched gaps.
    pub fn mark(&mut self, seq: i64, now: Instant) {
        if seq > self.high {
            // Only the newest gaps can be watched anyway: a jump of millions costs no more than the watch list.
            for gap in (self.high + 1).max(seq - MAX_WATCHED as i64)..seq {
                self.missing.insert(gap, now);
            }
            self.high = seq;
            self.bound();
        } else {
            self.missing.remove(&seq);
        }
    }

    /// Watches `seq` afresh: it exists but could not be applied yet.
    pub fn retry(&mut self, seq: i64, now: Instant) {
        if seq <= self.high {
            self.missing.insert(seq, now);
        }
    }

    /// Gives up the gaps watched for longer than `grace`: their transactions rolled back.
    pub fn expire(&mut self, now: Instant, grace: Duration) {
        self.missing
            .retain(|_, since| now.duration_since(*since) < grace);
    }

    fn bound(&mut self) {
        while self.missing.len() > MAX_WATCHED {
            self.missing.pop_first();
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
        let mut c = FeedCursor::new(10, 0, &[], t0);
        // 12 is visible before 11 commits: 12 is applied at once, 11 is watched.
        assert!(c.is_new(12));
        c.mark(12, t0);
        assert_eq!(c.after(), 12, "later changes are never held back");
        assert_eq!(c.watched(), [11]);
        assert!(!c.is_new(12), "12 is not applied twice");
        assert!(c.is_new(11), "11 is still read when it commits");
        c.mark(11, t0);
        assert!(c.watched().is_empty());
        assert!(!c.is_new(11));
    }

    #[test]
    fn many_gaps_never_hold_back_what_follows() {
        let t0 = Instant::now();
        let mut c = FeedCursor::new(0, 0, &[], t0);
        // Twenty rolled-back writes, each leaving a hole, among a thousand that committed.
        let mut seq = 0;
        for i in 0..1_020 {
            seq += 1;
            if i % 51 == 0 {
                continue;
            }
            c.mark(seq, t0);
        }
        assert_eq!(c.after(), seq);
        assert_eq!(c.watched().len(), 20);
        c.expire(t0 + GAP_GRACE / 2, GAP_GRACE);
        assert_eq!(c.watched().len(), 20);
        c.expire(t0 + GAP_GRACE, GAP_GRACE);
        assert!(c.watched().is_empty());
    }

    #[test]
    fn positions_missing_at_start_are_watched() {
        let t0 = Instant::now();
        let c = FeedCursor::new(100, 5, &[96, 98, 100], t0);
        assert_eq!(c.watched(), [97, 99]);
        assert!(c.is_new(97) && c.is_new(101) && !c.is_new(98));
    }

    #[test]
    fn the_watch_list_is_bounded() {
        let t0 = Instant::now();
        let mut c = FeedCursor::new(0, 0, &[], t0);
        c.mark(MAX_WATCHED as i64 + 101, t0);
        assert_eq!(c.watched().len(), MAX_WATCHED);
        assert_eq!(c.watched()[0], 101, "the oldest are given up first");
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
}
