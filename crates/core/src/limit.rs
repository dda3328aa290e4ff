//! Rate limits and quotas as arithmetic: the generic cell rate algorithm (GCRA) for request rates, fixed
//! calendar windows for token quotas, and how much allowance a node leases at once. Times are Unix
//! microseconds for rates (a burst of 100 per second needs sub-second steps) and Unix seconds for windows; the
//! caller passes `now`, so every rule is tested without a clock.

use std::fmt;

use serde::{Deserialize, Serialize};

const MICROS: i64 = 1_000_000;

/// How long leased allowance of a rate stays spendable, microseconds: a node that leased cells and then went
/// quiet cannot spend them much later, which bounds how far the cluster's admissions can bunch up.
pub const LEASE_TTL_US: i64 = MICROS;

/// A request rate: `count` per `period`, with bursts of up to `burst` at once (GCRA: one cell every
/// `period / count`, a tolerance of `burst` cells). Written `100/s`, `6000/min`, `20/h`, optionally followed by
/// `burst N` (`100/s burst 300`); the burst defaults to `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    count: u64,
    period_s: i64,
    burst: u64,
}

impl Rate {
    /// `count` per `period_s` seconds with bursts of `burst`; `None` when any of them is zero.
    pub fn new(count: u64, period_s: i64, burst: u64) -> Option<Self> {
        (count > 0 && period_s > 0 && burst > 0).then_some(Rate {
            count,
            period_s,
            burst,
        })
    }

    /// Parses `N/s`, `N/min`, `N/h` or `N/d`, with an optional ` burst M`. The message names what was expected.
    pub fn parse(s: &str) -> Result<Self, String> {
        let expected = || {
            format!(
                "expected a rate such as 100/s, 6000/min or 20/h (optionally \"100/s burst 300\"), got {s:?}"
            )
        };
        let mut words = s.split_whitespace();
        let rate = words.next().ok_or_else(expected)?;
        let burst = match (words.next(), words.next(), words.next()) {
            (None, _, _) => None,
            (Some("burst"), Some(n), None) => Some(n.parse::<u64>().map_err(|_| expected())?),
            _ => return Err(expected()),
        };
        let (count, unit) = rate.split_once('/').ok_or_else(expected)?;
        let count: u64 = count.parse().map_err(|_| expected())?;
        let period_s = match unit {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3_600,
            "d" | "day" => 86_400,
            _ => return Err(expected()),
        };
        if count == 0 || count > 1_000_000_000 || burst.is_some_and(|b| b == 0 || b > 1_000_000_000)
        {
            return Err(format!(
                "a rate and its burst must be between 1 and 1000000000, got {s:?}"
            ));
        }
        Rate::new(count, period_s, burst.unwrap_or(count)).ok_or_else(expected)
    }

    /// Microseconds between two cells at the steady rate (at least 1).
    pub fn interval_us(&self) -> i64 {
        (self.period_s * MICROS / self.count as i64).max(1)
    }

    /// Cells that may be spent at once.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// How many cells a node leases at once: a tenth of a second at the steady rate, at least one, at most a
    /// quarter of the burst (so two nodes sharing a small burst both get some).
    pub fn lease(&self) -> u64 {
        let tenth = (MICROS / 10) / self.interval_us();
        (tenth as u64).clamp(1, (self.burst / 4).max(1))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period_s {
            1 => "s",
            60 => "min",
            3_600 => "h",
            _ => "d",
        };
        write!(f, "{}/{unit}", self.count)?;
        if self.burst != self.count {
            write!(f, " burst {}", self.burst)?;
        }
        Ok(())
    }
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Rate::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// What one step of a limiter decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    /// Cells granted (at most what was asked).
    pub granted: u64,
    /// The state to store: a rate's theoretical arrival time (µs), or a window's count.
    pub state: i64,
    /// When fewer cells were granted than asked: how long until one more would be (µs for rates, seconds for
    /// windows); 0 otherwise.
    pub retry_after: i64,
}

/// GCRA over a theoretical arrival time `tat` (µs; 0 for a key never seen): records `spent` cells already
/// admitted elsewhere (a node's unreported use: always recorded, even past the limit), then grants up to `want`.
pub fn gcra(rate: &Rate, tat: i64, now_us: i64, spent: u64, want: u64) -> Take {
    let t = rate.interval_us();
    let cells = |n: u64| (n as i64).saturating_mul(t);
    // The furthest the arrival time may run ahead of now: the whole burst.
    let ceiling = now_us.saturating_add(cells(rate.burst));
    let mut tat = tat.max(now_us).saturating_add(cells(spent));
    let room = if ceiling > tat {
        ((ceiling - tat) / t) as u64
    } else {
        0
    };
    let granted = want.min(room);
    tat = tat.saturating_add(cells(granted));
    let retry_after = if granted < want {
        // The next cell conforms once the arrival time has fallen one interval below the ceiling.
        (tat + t - ceiling).max(1)
    } else {
        0
    };
    Take {
        granted,
        state: tat,
        retry_after,
    }
}

/// A calendar window of a quota (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// From the start of the hour.
    Hour,
    /// From midnight UTC.
    Day,
}

impl Window {
    /// Its length in seconds.
    pub fn seconds(self) -> i64 {
        match self {
            Window::Hour => 3_600,
            Window::Day => 86_400,
        }
    }

    /// The start of the window holding `now` (Unix seconds).
    pub fn start(self, now: i64) -> i64 {
        now - now.rem_euclid(self.seconds())
    }

    /// A short name (`hour`, `day`) for keys, labels and messages.
    pub fn name(self) -> &'static str {
        match self {
            Window::Hour => "hour",
            Window::Day => "day",
        }
    }
}

/// A quota window's count `used`: records `spent` cells, then grants up to `want` of what is left of `limit`;
/// `retry_after` is the seconds until the window ends.
pub fn quota(limit: u64, window: Window, used: i64, now: i64, spent: u64, want: u64) -> Take {
    let used = (used.max(0) as u64).saturating_add(spent);
    let granted = want.min(limit.saturating_sub(used));
    let retry_after = if granted < want {
        (window.start(now) + window.seconds() - now).max(1)
    } else {
        0
    };
    Take {
        granted,
        state: used.saturating_add(granted).min(i64::MAX as u64) as i64,
        retry_after,
    }
}

/// How many tokens of a quota a node leases at once: a twentieth of it, between 1 and 10,000, so the cells one
/// node holds unspent at the end of a window are a small part of the quota, and a node issuing tens of thousands of
/// tokens a second leases a few times a second.
pub fn quota_lease(limit: u64) -> u64 {
    (limit / 20).clamp(1, 10_000)
}

/// Whole seconds for a `Retry-After` header: rounded up, at least 1.
pub fn retry_after_seconds(micros: i64) -> u64 {
    (micros.max(1) as u64).div_ceil(MICROS as u64)
}

/// A limit that is either a rate or `off` (written `"off"`), where a client overrides the server's setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateSetting {
    /// No limit for this client.
    Off,
    /// This rate instead of the server's.
    Rate(Rate),
}

impl RateSetting {
    /// The rate in force, if any.
    pub fn rate(self) -> Option<Rate> {
        match self {
            RateSetting::Off => None,
            RateSetting::Rate(r) => Some(r),
        }
    }
}

impl Serialize for RateSetting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RateSetting::Off => s.serialize_str("off"),
            RateSetting::Rate(r) => r.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for RateSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim() == "off" {
            return Ok(RateSetting::Off);
        }
        Rate::parse(&s)
            .map(RateSetting::Rate)
            .map_err(serde::de::Error::custom)
    }
}

/// A client's own limits. An absent member follows the server's setting; `"off"` (or a quota of 0) lifts it for
/// this client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientLimits {
    /// Requests per client to the token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<RateSetting>,
    /// Requests per client to the introspection endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspect: Option<RateSetting>,
    /// Requests per client to the revocation endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke: Option<RateSetting>,
    /// Tokens issued per clock hour (UTC); 0 is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_hour: Option<u64>,
    /// Tokens issued per UTC day; 0 is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<u64>,
}

impl ClientLimits {
    /// Whether every member follows the server.
    pub fn is_empty(&self) -> bool {
        *self == ClientLimits::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str) -> Rate {
        Rate::parse(s).unwrap()
    }

    #[test]
    fn parses_rates_with_and_without_burst() {
        assert_eq!(rate("100/s"), Rate::new(100, 1, 100).unwrap());
        assert_eq!(rate("6000/min"), Rate::new(6000, 60, 6000).unwrap());
        assert_eq!(rate("20/h burst 5"), Rate::new(20, 3600, 5).unwrap());
        assert_eq!(rate("  3/d  "), Rate::new(3, 86_400, 3).unwrap());
        for bad in [
            "",
            "100",
            "0/s",
            "10/week",
            "x/s",
            "10/s burst",
            "10/s burst 0",
            "10/s up 3",
            "-1/s",
        ] {
            assert!(Rate::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(rate("20/h burst 5").to_string(), "20/h burst 5");
        assert_eq!(rate("100/s").to_string(), "100/s");
    }

    #[test]
    fn a_burst_then_the_steady_rate() {
        let r = rate("10/s burst 3"); // one cell per 100 ms
        let now = 1_000_000_000;
        let mut tat = 0;
        for _ in 0..3 {
            let t = gcra(&r, tat, now, 0, 1);
            assert_eq!(t.granted, 1);
            tat = t.state;
        }
        let refused = gcra(&r, tat, now, 0, 1);
        assert_eq!(refused.granted, 0);
        assert_eq!(refused.retry_after, 100_000);
        // One interval later exactly one more conforms.
        let later = gcra(&r, tat, now + 100_000, 0, 2);
        assert_eq!(later.granted, 1);
        assert_eq!(later.retry_after, 100_000);
    }

    #[test]
    fn leases_and_unreported_use_share_the_burst() {
        let r = rate("100/s burst 40");
        let now = 5_000_000;
        // A node that spent 30 on credit asks for 25 more: only 10 are left of the burst.
        let t = gcra(&r, 0, now, 30, 25);
        assert_eq!(t.granted, 10);
        assert!(t.retry_after > 0);
        // Use past the burst is still recorded, pushing the next grant further out.
        let over = gcra(&r, t.state, now, 5, 1);
        assert_eq!(over.granted, 0);
        assert_eq!(over.retry_after, 60_000);
    }

    #[test]
    fn lease_sizes() {
        assert_eq!(rate("1000/s").lease(), 100);
        assert_eq!(rate("1000/s burst 40").lease(), 10);
        assert_eq!(rate("5/s").lease(), 1);
        assert_eq!(rate("10/min").lease(), 1);
        assert_eq!(quota_lease(40), 2);
        assert_eq!(quota_lease(10), 1);
        assert_eq!(quota_lease(10_000_000), 10_000);
    }

    #[test]
    fn quota_windows() {
        let now = 1_700_000_123;
        let hour = Window::Hour.start(now);
        assert_eq!(hour % 3600, 0);
        assert!(hour <= now && now < hour + 3600);
        assert_eq!(Window::Day.start(now) % 86_400, 0);
        let t = quota(10, Window::Hour, 7, now, 1, 5);
        assert_eq!(t.granted, 2);
        assert_eq!(t.state, 10);
        assert_eq!(t.retry_after, hour + 3600 - now);
        let ok = quota(10, Window::Hour, 0, now, 0, 5);
        assert_eq!((ok.granted, ok.state, ok.retry_after), (5, 5, 0));
    }

    #[test]
    fn client_limits_read_and_write_json() {
        let l: ClientLimits = serde_json::from_str(
            r#"{"token":"10/s burst 20","introspect":"off","tokens_per_hour":500}"#,
        )
        .unwrap();
        assert_eq!(l.token, Some(RateSetting::Rate(rate("10/s burst 20"))));
        assert_eq!(l.introspect, Some(RateSetting::Off));
        assert_eq!(l.revoke, None);
        assert_eq!(l.tokens_per_hour, Some(500));
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"{"token":"10/s burst 20","introspect":"off","tokens_per_hour":500}"#
        );
        assert!(serde_json::from_str::<ClientLimits>(r#"{"token":"fast"}"#).is_err());
        assert!(serde_json::from_str::<ClientLimits>(r#"{"tokens":"1/s"}"#).is_err());
        assert!(ClientLimits::default().is_empty());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_seconds(1), 1);
        assert_eq!(retry_after_seconds(1_000_000), 1);
        assert_eq!(retry_after_seconds(1_000_001), 2);
        assert_eq!(retry_after_seconds(-5), 1);
    }
}
