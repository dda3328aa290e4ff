//! Reading one raw TOML value as its key expects it: a string, a whole number (also written as a string, as the
//! environment gives it), a positive duration (`90s`, `15m`, `24h`, `7d`, or seconds).

use keyward_core::duration::parse_seconds;

use super::{ConfigError, invalid};

pub(super) fn text(
    key: &'static str,
    v: Option<toml::Value>,
) -> Result<Option<String>, ConfigError> {
    match v {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(key, "expected a string")),
    }
}

pub(super) fn integer(v: &toml::Value) -> Option<i64> {
    match v {
        toml::Value::Integer(n) => Some(*n),
        toml::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub(super) fn duration(
    key: &'static str,
    v: Option<toml::Value>,
    default: i64,
) -> Result<i64, ConfigError> {
    let secs = match v {
        None => return Ok(default),
        Some(toml::Value::Integer(n)) => n,
        Some(toml::Value::String(s)) => parse_seconds(&s).map_err(|m| invalid(key, m))?,
        Some(_) => return Err(invalid(key, "expected a duration such as \"15m\"")),
    };
    if secs <= 0 {
        return Err(invalid(key, "must be positive"));
    }
    Ok(secs)
}
