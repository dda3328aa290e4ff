//! Following the `changes` feed. On PostgreSQL a sequence number is taken when a row is inserted, not when it
//! commits, so a later number can become visible before an earlier one. The cursor therefore keeps a watermark
//! below which every position was seen, remembers the positions seen above it, and waits a grace period for a
//! missing one (a transaction still committing) before giving it up as rolled back.

use std::collections::BTreeSet;
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
