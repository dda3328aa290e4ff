//! The only place that reads the wall clock. Everything else receives `now` (Unix seconds) from a `Clock`, so
//! tests move time forward instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Where the time comes from.
#[derive(Clone, Debug)]
pub enum Clock {
    /// The system's wall clock.
    System,
    /// A time set and advanced by a test.
    Fixed(Arc<AtomicI64>),
}

impl Clock {
    /// A fixed clock at `now`.
    pub fn fixed(now: i64) -> Self {
        Clock::Fixed(Arc::new(AtomicI64::new(now)))
    }

    /// The current time in Unix seconds.
    pub fn now(&self) -> i64 {
        match self {
            #[allow(clippy::disallowed_methods)]
            // This is the one sanctioned reading of the wall clock.
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            Clock::Fixed(t) => t.load(Ordering::Relaxed),
        }
    }

    /// The current time in Unix microseconds, for rate limits finer than a second. A fixed clock has whole
    /// seconds only, so a test's limits refill exactly when it moves the clock.
    pub fn now_micros(&self) -> i64 {
        match self {
            #[allow(clippy::disallowed_methods)]
            // This is the one sanctioned reading of the wall clock.
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as i64)
                .unwrap_or(0),
            Clock::Fixed(t) => t.load(Ordering::Relaxed).saturating_mul(1_000_000),
        }
    }

    /// Moves a fixed clock forward; a system clock cannot be moved.
    pub fn advance(&self, seconds: i64) {
        if let Clock::Fixed(t) = self {
            t.fetch_add(seconds, Ordering::Relaxed);
        }
    }
}
