//! The only place that reads the wall clock, and the one clock of a cluster. Nodes' clocks differ and jump, so
//! what the cluster shares (when a code, a refresh token, a session, a throttle or a lease expires; when a key
//! starts signing; the times in a token) is decided by the database's clock: each node samples it at start and
//! every few seconds, and carries it forward between samples on its own monotonic clock, which no step of the
//! wall clock moves. Everything else receives `now` from a `Clock`, so tests move time instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use crate::store::{Store, StoreError};

/// Where the time comes from.
#[derive(Clone, Debug)]
pub enum Clock {
    /// The database's clock as this node last sampled it (`Clock::sync`), carried forward on the monotonic clock.
    Synced(Arc<Synced>),
    /// A time set and advanced by a test (the cluster's clock in tests: nodes of a test share it).
    Fixed(Arc<AtomicI64>),
}

/// The database's time as an offset from this process's monotonic clock.
#[derive(Debug)]
pub struct Synced {
    origin: Instant,
    /// Unix microseconds at `origin`, as the last sample puts it.
    offset_us: AtomicI64,
    /// Whether a sample has set the clock yet (until then it is the wall clock, which the first sample replaces
    /// whichever way it moves).
    sampled: std::sync::atomic::AtomicBool,
    /// How far this node's wall clock is off (a test's stand-in for a machine whose clock is wrong, or is
    /// stepped); 0 in production.
    wall_skew_us: AtomicI64,
}

/// How far back a sample may move a clock that was set already: the uncertainty of a sample (half a round trip of at
/// most a second) and no more.
pub const BACKWARD_TOLERANCE_US: i64 = 1_000_000;

/// Unix microseconds on this machine's wall clock.
#[allow(clippy::disallowed_methods)]
// This is the one sanctioned reading of the wall clock.
fn wall_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl Clock {
    /// The production clock: this machine's wall clock until the first `sync`, the database's from then on.
    pub fn system() -> Self {
        Self::system_skewed(0)
    }

    /// A production clock on a machine whose wall clock is `seconds` off (negative: behind). For tests of nodes
    /// with wrong clocks: once synced, the skew no longer matters.
    pub fn system_skewed(seconds: i64) -> Self {
        let origin = Instant::now();
        let wall_skew_us = seconds.saturating_mul(1_000_000);
        Clock::Synced(Arc::new(Synced {
            origin,
            offset_us: AtomicI64::new(wall_us() + wall_skew_us),
            sampled: std::sync::atomic::AtomicBool::new(false),
            wall_skew_us: AtomicI64::new(wall_skew_us),
        }))
    }

    /// A fixed clock at `now`.
    pub fn fixed(now: i64) -> Self {
        Clock::Fixed(Arc::new(AtomicI64::new(now)))
    }

    /// This machine's wall clock in Unix seconds, for what is not shared (a test's starting point).
    pub fn wall() -> i64 {
        wall_us() / 1_000_000
    }

    /// The current time in Unix seconds.
    pub fn now(&self) -> i64 {
        self.now_micros().div_euclid(1_000_000)
    }

    /// The current time in Unix microseconds, for rate limits finer than a second. A fixed clock has whole
    /// seconds only, so a test's limits refill exactly when it moves the clock.
    pub fn now_micros(&self) -> i64 {
        match self {
            Clock::Synced(s) => {
                s.offset_us.load(Ordering::Relaxed) + s.origin.elapsed().as_micros() as i64
            }
            Clock::Fixed(t) => t.load(Ordering::Relaxed).saturating_mul(1_000_000),
        }
    }

    /// Sets the clock from a sample of the database's time: `sample_us` read by a query sent `before` and answered
    /// `after` (this process's monotonic clock), taken as the midpoint. Returns how far the clock moved, in
    /// microseconds (the node's error until then), or, as `Err`, how far back the sample would have moved it: once
    /// set, the clock never goes back by more than `BACKWARD_TOLERANCE_US`, so a database clock stepped back (on
    /// SQLite, the machine's own) gives nothing that expired a second life while this process runs; it goes on
    /// counting forward until the database's clock catches up. A fixed clock is left alone.
    pub fn sync(&self, sample_us: i64, before: Instant, after: Instant) -> Result<i64, i64> {
        let Clock::Synced(s) = self else {
            return Ok(0);
        };
        let mid = before + (after.saturating_duration_since(before)) / 2;
        let offset = sample_us - mid.saturating_duration_since(s.origin).as_micros() as i64;
        let current = s.offset_us.load(Ordering::Relaxed);
        let first = !s.sampled.swap(true, Ordering::Relaxed);
        if !first && offset < current - BACKWARD_TOLERANCE_US {
            return Err(current - offset);
        }
        Ok(offset - s.offset_us.swap(offset, Ordering::Relaxed))
    }

    /// How far this node's own wall clock is from the cluster's, in seconds (positive: ahead), for a metric and a
    /// warning. Zero for a fixed clock.
    pub fn wall_offset(&self) -> i64 {
        match self {
            Clock::Synced(s) => {
                (wall_us() + s.wall_skew_us.load(Ordering::Relaxed) - self.now_micros()) / 1_000_000
            }
            Clock::Fixed(_) => 0,
        }
    }

    /// Steps this machine's wall clock as an operator or a bad NTP server would (a test's stand-in): a synced clock
    /// does not move, since it never reads the wall clock again.
    pub fn step_wall(&self, seconds: i64) {
        if let Clock::Synced(s) = self {
            s.wall_skew_us
                .fetch_add(seconds.saturating_mul(1_000_000), Ordering::Relaxed);
        }
    }

    /// Moves a fixed clock forward; a synced clock cannot be moved.
    pub fn advance(&self, seconds: i64) {
        if let Clock::Fixed(t) = self {
            t.fetch_add(seconds, Ordering::Relaxed);
        }
    }
}

/// How often, in seconds, the clock is set from the database's again (it is carried on the monotonic clock
/// meanwhile, which drifts by milliseconds an hour at most).
pub const SYNC_EVERY: u64 = 10;

/// Sets `clock` from the database's clock; returns whether a sample was taken. A sample whose query took longer
/// than a second says too little about when it was read, and is skipped.
pub async fn sync_clock(clock: &Clock, store: &Store) -> Result<bool, StoreError> {
    let before = Instant::now();
    let sample = store.clock_us().await?;
    let after = Instant::now();
    if after.duration_since(before) > std::time::Duration::from_secs(1) {
        return Ok(false);
    }
    match clock.sync(sample, before, after) {
        Ok(moved) if moved.abs() > 1_000_000 => tracing::info!(
            seconds = moved as f64 / 1e6,
            "the clock was set from the database's"
        ),
        Ok(_) => {}
        Err(back) => tracing::warn!(
            seconds = back as f64 / 1e6,
            "the database's clock went back; this node keeps counting forward until it catches up"
        ),
    }
    Ok(true)
}

/// The first sample of the database's clock, before anything is written: retried a few times when a query is too
/// slow to say when it was read, and said out loud when none is.
pub async fn first_sample(clock: &Clock, store: &Store) -> Result<(), StoreError> {
    for _ in 0..5 {
        if sync_clock(clock, store).await? {
            return Ok(());
        }
    }
    tracing::warn!(
        "the database's clock could not be sampled quickly; this node uses its own clock until the next sample"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_synced_clock_follows_the_sample_not_the_wall() {
        // A node whose wall clock is an hour behind reads the database's time once synced.
        let clock = Clock::system_skewed(-3_600);
        assert!((clock.now() - (Clock::wall() - 3_600)).abs() <= 1);
        let before = Instant::now();
        let after = before + Duration::from_millis(2);
        let database = wall_us();
        clock.sync(database, before, after).unwrap();
        assert!((clock.now() - Clock::wall()).abs() <= 1, "{}", clock.now());
        assert!(
            (clock.wall_offset() + 3_600).abs() <= 1,
            "{}",
            clock.wall_offset()
        );
        // Carried forward on the monotonic clock.
        let t0 = clock.now_micros();
        std::thread::sleep(Duration::from_millis(20));
        assert!(clock.now_micros() - t0 >= 20_000);
    }

    #[test]
    fn a_set_clock_never_goes_back_more_than_a_second() {
        let clock = Clock::system();
        let now = || Instant::now();
        clock.sync(wall_us() - 3_600_000_000, now(), now()).unwrap();
        let set = clock.now();
        // Stepped back another hour: refused, and the clock goes on from where it was.
        let back = clock
            .sync(wall_us() - 7_200_000_000, now(), now())
            .unwrap_err();
        assert!((back - 3_600_000_000).abs() < 1_000_000, "{back}");
        assert!(clock.now() >= set);
        // Half a second back (a sample's uncertainty) and any step forward are taken.
        let t = clock.now_micros();
        clock.sync(t - 500_000, now(), now()).unwrap();
        assert!(clock.now_micros() < t);
        clock.sync(wall_us(), now(), now()).unwrap();
        assert!((clock.now() - Clock::wall()).abs() <= 1);
    }

    #[test]
    fn a_fixed_clock_ignores_samples() {
        let clock = Clock::fixed(1_000);
        assert_eq!(
            clock.sync(5_000_000_000, Instant::now(), Instant::now()),
            Ok(0)
        );
        assert_eq!(clock.now(), 1_000);
        clock.advance(5);
        assert_eq!(clock.now_micros(), 1_005_000_000);
    }
}
