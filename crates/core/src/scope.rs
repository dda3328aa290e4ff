//! Scope tokens and scope sets (RFC 6749 §3.3). A scope token is one or more NQCHAR characters; a set is
//! space-delimited, ordered as first seen, without duplicates.

use std::fmt;

use crate::error::OAuthError;

/// The suffix that asks for every scope the client may have on a resource (`<identifier>/.default`).
pub const DEFAULT_SUFFIX: &str = "/.default";

/// RFC 6749 §3.3 `scope-token = 1*NQCHAR`, NQCHAR = %x21 / %x23-5B / %x5D-7E.
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// An ordered set of valid scope tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(Vec<String>);

impl ScopeSet {
    /// Parses a space-delimited scope string. Runs of spaces are tolerated; any other malformed token is
    /// `invalid_scope` (RFC 6749 §5.2).
    pub fn parse(s: &str) -> Result<Self, OAuthError> {
        let mut set = Self::default();
        for token in s.split(' ').filter(|t| !t.is_empty()) {
            if !is_scope_token(token) {
                return Err(OAuthError::invalid_scope("malformed scope"));
            }
            set.insert(token);
        }
        Ok(set)
    }

    /// Builds a set from tokens already known to be valid (the store, the catalogue).
    pub fn from_tokens<I: IntoIterator<Item = S>, S: AsRef<str>>(tokens: I) -> Self {
        let mut set = Self::default();
        for t in tokens {
            set.insert(t.as_ref());
        }
        set
    }

    fn insert(&mut self, token: &str) {
        if !self.contains(token) {
            self.0.push(token.to_owned());
        }
    }

    /// Whether the set holds this token.
    pub fn contains(&self, token: &str) -> bool {
        self.0.iter().any(|t| t == token)
    }

    /// Whether every token of `self` is in `other`.
    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.iter().all(|t| other.contains(t))
    }

    /// The tokens in both sets, in `self`'s order.
    pub fn intersection(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet(
            self.0
                .iter()
                .filter(|t| other.contains(t))
                .cloned()
                .collect(),
        )
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tokens, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// The tokens as owned strings.
    pub fn to_vec(&self) -> Vec<String> {
        self.0.clone()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_dedups() {
        let s = ScopeSet::parse("  orders:read  orders:write orders:read").unwrap();
        assert_eq!(s.to_string(), "orders:read orders:write");
    }

    #[test]
    fn refuses_quotes_backslash_and_non_ascii() {
        for bad in ["a\"b", "a\\b", "été", "a\tb"] {
            assert!(ScopeSet::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn display_parses_back(tokens in proptest::collection::vec("[!#-\\[\\]-~]{1,10}", 0..6)) {
            let set = ScopeSet::from_tokens(&tokens);
            prop_assert_eq!(ScopeSet::parse(&set.to_string()).unwrap(), set);
        }
    }
}
