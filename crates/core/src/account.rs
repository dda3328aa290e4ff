//! Accounts: the people who own data on the platform (sellers, merchants) and delegate access to apps. The rules
//! here are the ones a login page and the admin API share: what an email and a password must look like, and how
//! long a login must wait after failures.

/// An account id's prefix: its delegated tokens carry it as `sub`, which no client id may start with.
pub use crate::client::ACCOUNT_SUBJECT_PREFIX;

/// Failed logins allowed before each further try must wait.
pub const FREE_FAILURES: i64 = 5;
/// The longest wait between tries, seconds.
pub const MAX_DELAY: i64 = 900;

/// Normalises an email address for storage and lookup (trimmed, lower case) and checks its shape: one `@`, a
/// non-empty local part and a domain with a dot, at most 254 characters, no spaces or control characters.
pub fn normalize_email(email: &str) -> Result<String, String> {
    let e = email.trim().to_lowercase();
    let ok = e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(e.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.contains('@')
               && !domain.starts_with('.') && !domain.ends_with('.'));
    if ok {
        Ok(e)
    } else {
        Err("email: expected an address such as seller@example.com".into())
    }
}

/// A password must be 10 to 256 characters (NIST SP 800-63B §5.1.1.2 asks at least 8 and no composition rules).
pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if !(10..=256).contains(&n) {
        return Err("password: must be 10 to 256 characters".into());
    }
    Ok(())
}

/// How long the next login must wait after `failures` consecutive failures: nothing for the first
/// [`FREE_FAILURES`], then 1 s doubling up to [`MAX_DELAY`]. A throttle, not a lockout: the owner gets in once the
/// wait is over, and an attacker gets a handful of guesses an hour.
pub fn login_delay(failures: i64) -> i64 {
    if failures < FREE_FAILURES {
        return 0;
    }
    let exp = (failures - FREE_FAILURES).min(20) as u32;
    (1i64 << exp).min(MAX_DELAY)
}

/// An account's role: `user` (an account holder) or `operator` (runs the platform: the console's operator
/// pages).
pub fn check_role(role: &str) -> Result<(), String> {
    match role {
        "user" | "operator" => Ok(()),
        _ => Err("role: must be user or operator".into()),
    }
}

/// Whose accounts must set up a second factor before they can make keys (`require_second_factor`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SecondFactorPolicy {
    /// Nobody's (`off`, the default): a second factor is each account's choice.
    #[default]
    Off,
    /// Operators' (`operators`).
    Operators,
    /// Every account's (`all`).
    All,
}

impl SecondFactorPolicy {
    /// Reads the setting's value.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "off" => Ok(Self::Off),
            "operators" => Ok(Self::Operators),
            "all" => Ok(Self::All),
            _ => Err("expected \"off\", \"operators\" or \"all\"".into()),
        }
    }

    /// Whether an account of `role` must have a second factor.
    pub fn applies(self, role: &str) -> bool {
        match self {
            Self::Off => false,
            Self::Operators => role == "operator",
            Self::All => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            normalize_email(" Seller@Example.COM ").unwrap(),
            "seller@example.com"
        );
        for bad in [
            "",
            "a",
            "a@b",
            "@b.c",
            "a b@c.d",
            "a@b.c@d.e",
            "a@.b",
            "a@b.",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn delays_grow_and_cap() {
        assert_eq!(login_delay(0), 0);
        assert_eq!(login_delay(4), 0);
        assert_eq!(login_delay(5), 1);
        assert_eq!(login_delay(6), 2);
        assert_eq!(login_delay(14), 512);
        assert_eq!(login_delay(15), MAX_DELAY);
        assert_eq!(login_delay(10_000), MAX_DELAY);
    }

    #[test]
    fn passwords() {
        assert!(check_password("short").is_err());
        assert!(check_password("long enough!").is_ok());
    }

    #[test]
    fn second_factor_policies() {
        use SecondFactorPolicy as P;
        assert_eq!(P::parse("operators"), Ok(P::Operators));
        assert!(P::parse("yes").is_err());
        assert!(!P::Off.applies("operator"));
        assert!(P::Operators.applies("operator") && !P::Operators.applies("user"));
        assert!(P::All.applies("user"));
    }
}
