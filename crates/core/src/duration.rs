//! Durations as operators write them in config files and on the command line: `90s`, `15m`, `24h`, `7d`,
//! or a bare number of seconds.

/// Parses a duration into whole seconds. Returns a message naming what was expected on failure.
pub fn parse_seconds(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("expected a duration such as 90s, 15m, 24h or 7d, got {s:?}"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("unknown duration unit {unit:?}: use s, m, h or d")),
    };
    n.checked_mul(unit_secs)
        .ok_or_else(|| "duration too large".to_owned())
}

/// Formats seconds the way [`parse_seconds`] reads them, using the largest exact unit.
pub fn format_seconds(secs: i64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs != 0 && secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_seconds("90").unwrap(), 90);
        assert_eq!(parse_seconds("15m").unwrap(), 900);
        assert_eq!(parse_seconds("24h").unwrap(), 86_400);
        assert_eq!(parse_seconds("7d").unwrap(), 604_800);
        assert!(parse_seconds("5x").is_err());
        assert!(parse_seconds("m").is_err());
        assert!(parse_seconds("99999999999999999d").is_err());
    }

    #[test]
    fn formats_back() {
        for s in [1, 60, 900, 3_600, 86_400, 90] {
            assert_eq!(parse_seconds(&format_seconds(s)).unwrap(), s);
        }
    }
}
