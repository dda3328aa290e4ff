//! When a token source refreshes, how long it hands a token out, and how long it waits after a failure: pure
//! functions of durations measured on the monotonic clock, so a wall clock that is skewed or jumps changes
//! nothing (only an HTTP-date `Retry-After` is read against the answer's own `Date`).

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// A token is refreshed at the latest this long before it expires (when its lifetime allows).
pub(crate) const REFRESH_BEFORE: Duration = Duration::from_secs(60);
/// A token is not handed out in its last moments: at most this long, or a tenth of its lifetime.
const MARGIN: Duration = Duration::from_secs(5);
/// The shortest time between two scheduled refreshes, whatever lifetime the server gives.
const MIN_REFRESH: Duration = Duration::from_secs(1);
/// The first retry's wait; each failure in a row doubles it.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// The longest wait between retries, without a `Retry-After` saying otherwise.
pub(crate) const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// The longest `Retry-After` honoured: a server that asks for more is retried after this.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(3_600);
/// The longest of any duration a source holds (a lifetime, a setting): ten years. `expires_in` of 2^63 seconds
/// is read as this, so no deadline overflows the clock.
pub(crate) const FAR: Duration = Duration::from_secs(10 * 365 * 86_400);
/// A token an API refuses sooner than this after it was fetched is suspect: past [`FREE_REJECTS`] in a row, a new
/// token may not help, so it is kept and replaced after a backoff (see `TokenSource::reject`).
pub(crate) const FRESH: Duration = Duration::from_secs(10);
/// Fresh tokens refused in a row that are replaced at once; each one after waits `backoff(n)`.
pub(crate) const FREE_REJECTS: u32 = 3;

/// `at + wait`, or as far as the clock goes (durations are capped at [`FAR`], so that is never reached).
pub(crate) fn later(at: Instant, wait: Duration) -> Instant {
    at.checked_add(wait)
        .or_else(|| at.checked_add(FAR))
        .unwrap_or(at)
}

/// Offsets from the moment a token request was sent (not answered, so the server's clock has run at least as
/// long): when to refresh the token and until when to hand it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schedule {
    pub(crate) refresh_after: Duration,
    pub(crate) usable_for: Duration,
}

/// The schedule of a token that lives `lifetime` (`expires_in`): refreshed once `share` of its life has passed
/// or [`REFRESH_BEFORE`] its end, whichever is first. The minute before the end counts only where it falls in the
/// second half of the life, so a token of 61 s is refreshed by its share, not every second.
pub(crate) fn schedule(lifetime: Duration, share: f64) -> Schedule {
    let lifetime = lifetime.min(FAR);
    let by_share = lifetime.mul_f64(share.clamp(0.0, 1.0));
    let by_end = lifetime
        .checked_sub(REFRESH_BEFORE)
        .filter(|e| *e >= lifetime / 2);
    let refresh_after = by_end
        .map_or(by_share, |e| e.min(by_share))
        .max(MIN_REFRESH);
    let usable_for = lifetime.saturating_sub(MARGIN.min(lifetime / 10));
    Schedule {
        refresh_after,
        usable_for,
    }
}

/// The wait before retry number `failures` (1 for the first), with "equal jitter": half the exponential step,
/// plus a random part of the other half, so that many clients that failed together do not retry together.
pub(crate) fn backoff(failures: u32, random: u32) -> Duration {
    let step = BACKOFF_BASE
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(BACKOFF_CAP);
    let half = step / 2;
    half + half.mul_f64(f64::from(random) / f64::from(u32::MAX))
}

/// The wait before the next try after failure number `failures`: the backoff, or the server's `Retry-After` with
/// up to a tenth more (at most 5 s) when that is longer, so clients told the same time do not all return at once.
pub(crate) fn retry_wait(failures: u32, retry_after: Option<Duration>, random: u32) -> Duration {
    let backoff = backoff(failures, random);
    match retry_after {
        Some(r) => {
            let spread = (r / 10).min(Duration::from_secs(5));
            backoff.max(r + spread.mul_f64(f64::from(random) / f64::from(u32::MAX)))
        }
        None => backoff,
    }
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date read against the answer's `Date` (the
/// server's clock on both sides, so this machine's clock does not matter), or against `now` without one.
pub(crate) fn retry_after(value: &str, date: Option<&str>, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        let from = date
            .and_then(|d| httpdate::parse_http_date(d.trim()).ok())
            .unwrap_or(now);
        at.duration_since(from).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(RETRY_AFTER_CAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn refreshes_at_a_share_or_a_minute_before_the_end() {
        // 15 minutes: three quarters (675 s) comes before the last minute (840 s).
        assert_eq!(schedule(S(900), 0.75).refresh_after, S(675));
        // 2 minutes at share 0.9 (108 s): the last minute (60 s) comes first.
        assert_eq!(schedule(S(120), 0.9).refresh_after, S(60));
        // Shorter than a minute: the share alone.
        assert_eq!(schedule(S(8), 0.5).refresh_after, S(4));
        // Never a loop of refreshes: just over a minute is refreshed by its share, not after one second.
        assert_eq!(schedule(S(0), 0.5).refresh_after, S(1));
        assert_eq!(
            schedule(S(62), 0.75).refresh_after,
            Duration::from_millis(46_500)
        );
        // An absurd lifetime is read as ten years, and nothing overflows.
        assert_eq!(
            schedule(Duration::MAX, 1.0).refresh_after,
            FAR - REFRESH_BEFORE
        );
        let now = Instant::now();
        assert!(later(now, Duration::MAX) > now);
        assert_eq!(schedule(S(900), 0.75).usable_for, S(895));
        assert_eq!(schedule(S(10), 0.75).usable_for, S(9));
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_a_cap() {
        assert_eq!(backoff(1, 0), Duration::from_millis(500));
        assert_eq!(backoff(1, u32::MAX), S(1));
        assert_eq!(backoff(3, 0), S(2));
        assert_eq!(backoff(40, u32::MAX), BACKOFF_CAP);
        assert!(backoff(2, u32::MAX / 2) > S(1) && backoff(2, u32::MAX / 2) < S(2));
    }

    #[test]
    fn retry_after_is_waited_out_with_a_little_spread() {
        assert_eq!(retry_wait(1, None, 0), Duration::from_millis(500));
        assert_eq!(retry_wait(1, Some(S(30)), 0), S(30));
        assert_eq!(retry_wait(1, Some(S(30)), u32::MAX), S(33));
        assert_eq!(retry_wait(1, Some(S(600)), u32::MAX), S(605));
        // A backoff longer than Retry-After wins.
        assert_eq!(retry_wait(10, Some(S(1)), u32::MAX), BACKOFF_CAP);
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date_on_the_servers_clock() {
        let now = SystemTime::UNIX_EPOCH + S(1_000_000_000);
        assert_eq!(retry_after(" 7 ", None, now), Some(S(7)));
        // The server's Date and Retry-After are 30 s apart; this machine's clock is a day off.
        let date = "Sun, 09 Sep 2001 01:46:40 GMT";
        let later = "Sun, 09 Sep 2001 01:47:10 GMT";
        assert_eq!(retry_after(later, Some(date), now + S(86_400)), Some(S(30)));
        assert_eq!(retry_after(later, None, now), Some(S(30)));
        assert_eq!(retry_after("soon", None, now), None);
        assert_eq!(retry_after("999999", None, now), Some(S(3_600)));
    }
}
