//! The console's decisions: which scopes an account may give the API keys it makes itself, the hourly series a
//! usage chart shows, and when a key asks for far more tokens than their lifetime needs.

use std::collections::BTreeMap;

use crate::scope::is_scope_token;

/// What an account may give its own keys: resource identifier → scopes. Set by an operator (admin API, CLI,
/// operator pages); empty means the account cannot make keys.
pub type KeyScopes = BTreeMap<String, Vec<String>>;

/// Checks an allowance against the catalogue (`identifier → scopes the resource offers`) and returns it tidied
/// (scopes sorted and de-duplicated, resources with no scope dropped).
pub fn check_key_scopes(
    allowance: KeyScopes,
    offered: impl Fn(&str) -> Option<Vec<String>>,
) -> Result<KeyScopes, String> {
    let mut out = KeyScopes::new();
    for (resource, mut scopes) in allowance {
        let Some(catalogue) = offered(&resource) else {
            return Err(format!(
                "key_scopes: no resource has the identifier {resource:?}"
            ));
        };
        for s in &scopes {
            if !is_scope_token(s) || !catalogue.contains(s) {
                return Err(format!("key_scopes: {resource} offers no scope {s:?}"));
            }
        }
        scopes.sort();
        scopes.dedup();
        if !scopes.is_empty() {
            out.insert(resource, scopes);
        }
    }
    Ok(out)
}

/// What is wrong with a key an account asks for, field by field, so a form can show each message beside its
/// field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRequestError {
    /// The environment (resource) is not one the account may use.
    Environment(String),
    /// A scope is not allowed on that environment, or none was chosen.
    Scopes(String),
}

/// Checks the environment and scopes of a key an account asks for against its allowance. At least one scope is
/// needed: a key with no scope would get tokens that open nothing.
pub fn check_key_request(
    allowance: &KeyScopes,
    resource: &str,
    scopes: &[String],
) -> Result<(), KeyRequestError> {
    let Some(allowed) = allowance.get(resource) else {
        return Err(KeyRequestError::Environment(
            "Choose one of the environments listed.".into(),
        ));
    };
    if scopes.is_empty() {
        return Err(KeyRequestError::Scopes("Choose at least one scope.".into()));
    }
    if let Some(bad) = scopes.iter().find(|s| !allowed.contains(s)) {
        return Err(KeyRequestError::Scopes(format!(
            "{bad} is not available in this environment."
        )));
    }
    Ok(())
}

/// Seconds in an hour: usage is counted per hour.
pub const HOUR: i64 = 3_600;

/// The start of the hour holding `t` (Unix seconds).
pub fn hour_start(t: i64) -> i64 {
    t - t.rem_euclid(HOUR)
}

/// The `hours` hourly buckets ending with the hour holding `now`, oldest first, each with the sum of the counts
/// `rows` (hour start, tokens) give it; hours outside the window are ignored.
pub fn hourly_series(
    rows: impl IntoIterator<Item = (i64, i64)>,
    now: i64,
    hours: usize,
) -> Vec<(i64, i64)> {
    let last = hour_start(now);
    let first = last - (hours as i64 - 1) * HOUR;
    let mut series: Vec<(i64, i64)> = (0..hours as i64).map(|i| (first + i * HOUR, 0)).collect();
    for (hour, n) in rows {
        let h = hour_start(hour);
        if (first..=last).contains(&h) {
            series[((h - first) / HOUR) as usize].1 += n;
        }
    }
    series
}

/// How many times more tokens than needed a key may ask for before it is told to cache: several servers of one
/// integrator each holding their own token is normal, a token per API call is not.
pub const OVER_REQUEST_FACTOR: i64 = 10;
/// Below this many tokens a day, no advice (a restart or a few test runs).
pub const OVER_REQUEST_FLOOR: i64 = 50;

/// Advice for a key that asks for far more tokens than their lifetime needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheAdvice {
    /// Tokens issued in the last 24 hours.
    pub tokens: i64,
    /// Tokens a day one cache-holding client needs (one per lifetime).
    pub needed: i64,
    /// The tokens' lifetime, seconds.
    pub ttl: i64,
}

/// Whether `tokens` issued in the last 24 hours, each living `ttl` seconds, is far more than a client that
/// caches its token needs (every seed document asks integrators to cache and reuse tokens until they expire).
pub fn cache_advice(tokens: i64, ttl: i64) -> Option<CacheAdvice> {
    let ttl = ttl.max(1);
    let needed = (86_400 + ttl - 1) / ttl;
    (tokens >= OVER_REQUEST_FLOOR && tokens > needed * OVER_REQUEST_FACTOR).then_some(CacheAdvice {
        tokens,
        needed,
        ttl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowance() -> KeyScopes {
        KeyScopes::from([(
            "https://api".to_owned(),
            vec!["a".to_owned(), "b".to_owned()],
        )])
    }

    #[test]
    fn key_scopes_are_checked_against_the_catalogue() {
        let offered = |r: &str| (r == "https://api").then(|| vec!["a".to_owned(), "b".to_owned()]);
        let tidy = check_key_scopes(
            KeyScopes::from([(
                "https://api".to_owned(),
                vec!["b".to_owned(), "a".to_owned(), "b".to_owned()],
            )]),
            offered,
        )
        .unwrap();
        assert_eq!(tidy, allowance());
        assert!(
            check_key_scopes(KeyScopes::from([("https://x".to_owned(), vec![])]), offered)
                .unwrap_err()
                .contains("no resource")
        );
        assert!(
            check_key_scopes(
                KeyScopes::from([("https://api".to_owned(), vec!["c".to_owned()])]),
                offered
            )
            .unwrap_err()
            .contains("offers no scope \"c\"")
        );
        // A resource with no scope is dropped rather than kept as an empty entry.
        assert!(
            check_key_scopes(
                KeyScopes::from([("https://api".to_owned(), vec![])]),
                offered
            )
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn a_key_request_stays_inside_the_allowance() {
        let a = allowance();
        assert_eq!(check_key_request(&a, "https://api", &["a".into()]), Ok(()));
        assert!(matches!(
            check_key_request(&a, "https://other", &["a".into()]),
            Err(KeyRequestError::Environment(_))
        ));
        assert!(matches!(
            check_key_request(&a, "https://api", &[]),
            Err(KeyRequestError::Scopes(_))
        ));
        assert_eq!(
            check_key_request(&a, "https://api", &["a".into(), "z".into()]),
            Err(KeyRequestError::Scopes(
                "z is not available in this environment.".into()
            ))
        );
    }

    #[test]
    fn the_series_has_one_bucket_per_hour_ending_now() {
        let now = 10 * HOUR + 125;
        let s = hourly_series(
            [
                (10 * HOUR, 3),
                (9 * HOUR + 60, 2),
                (9 * HOUR, 1),
                (2 * HOUR, 99),
            ],
            now,
            3,
        );
        assert_eq!(s, vec![(8 * HOUR, 0), (9 * HOUR, 3), (10 * HOUR, 3)]);
        assert_eq!(hour_start(-1), -HOUR);
    }

    #[test]
    fn advice_comes_only_when_far_more_tokens_than_the_lifetime_needs() {
        // The example: 4,000 tokens a day of 24-hour tokens.
        assert_eq!(
            cache_advice(4_000, 86_400),
            Some(CacheAdvice {
                tokens: 4_000,
                needed: 1,
                ttl: 86_400
            })
        );
        // A handful of tokens is never worth a warning.
        assert_eq!(cache_advice(49, 86_400), None);
        // 15-minute tokens: 96 a day is one client caching; ten such clients too.
        assert_eq!(cache_advice(960, 900), None);
        assert!(cache_advice(961, 900).is_some());
    }
}
