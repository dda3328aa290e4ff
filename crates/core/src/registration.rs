//! Registration rules: what a client (RFC 6749 §2, with the client metadata of RFC 7591 §2) or a resource (RFC 8707)
//! may be registered with, as typed values. A change is applied to the current registration and every rule is
//! checked in one place, so the admin API, the CLI, the console, `clients import` and the configuration's
//! `[[resource]]` tables all refuse the same things with the same words. No storage here: the server turns its
//! rows into these values and back.

pub mod client;
pub mod input;
pub mod keys;
pub mod resource;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;

pub use client::{ClientChange, ClientRegistration, ClientType};
pub use input::{DurationValue, ResourceInput, ResourcePatch};
pub use keys::{FederatedCredential, KeySettings};
pub use resource::{ResourceChange, ResourceRegistration};

/// Why a registration or a change to one was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationError {
    /// A field holds a value the rules refuse. Displayed as `{field}: {why}`, the text the admin API answers with.
    Invalid {
        /// The field, as the admin API names it (`name`, `redirect_uris`, `scope_details.read.description`).
        field: String,
        /// What is wrong with it, in words.
        why: String,
    },
}

impl RegistrationError {
    /// A refusal of `field` because of `why`.
    pub fn invalid(field: impl Into<String>, why: impl Into<String>) -> Self {
        RegistrationError::Invalid {
            field: field.into(),
            why: why.into(),
        }
    }

    /// The field the refusal is about.
    pub fn field(&self) -> &str {
        match self {
            RegistrationError::Invalid { field, .. } => field,
        }
    }
}

impl fmt::Display for RegistrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistrationError::Invalid { field, why } => write!(f, "{field}: {why}"),
        }
    }
}

impl std::error::Error for RegistrationError {}

/// The resources a client may be registered with (RFC 8707 §2): each resource's identifier and the scopes it
/// offers.
pub trait Catalogue {
    /// Whether a resource has the identifier `identifier`.
    fn has_resource(&self, identifier: &str) -> bool;
    /// Whether the resource `identifier` exists and offers `scope`.
    fn offers(&self, identifier: &str, scope: &str) -> bool;
}

impl<S: BuildHasher> Catalogue for HashMap<String, Vec<String>, S> {
    fn has_resource(&self, identifier: &str) -> bool {
        self.contains_key(identifier)
    }
    fn offers(&self, identifier: &str, scope: &str) -> bool {
        self.get(identifier)
            .is_some_and(|scopes| scopes.iter().any(|s| s == scope))
    }
}

impl Catalogue for BTreeMap<String, Vec<String>> {
    fn has_resource(&self, identifier: &str) -> bool {
        self.contains_key(identifier)
    }
    fn offers(&self, identifier: &str, scope: &str) -> bool {
        self.get(identifier)
            .is_some_and(|scopes| scopes.iter().any(|s| s == scope))
    }
}

/// The longest display name of a client or a resource, in characters.
pub const MAX_NAME: usize = 200;

/// Checks a display name (a client's `client_name`, RFC 7591 §2, or a resource's): 1 to [`MAX_NAME`] characters,
/// not only white space, no control character.
pub fn check_name(name: &str) -> Result<(), RegistrationError> {
    if name.trim().is_empty()
        || name.chars().count() > MAX_NAME
        || name.chars().any(char::is_control)
    {
        return Err(RegistrationError::invalid(
            "name",
            "must be 1 to 200 characters with no control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_field_then_reason() {
        let e = RegistrationError::invalid("name", "required");
        assert_eq!(e.to_string(), "name: required");
        assert_eq!(e.field(), "name");
    }

    #[test]
    fn names() {
        assert_eq!(check_name("Orders API"), Ok(()));
        assert_eq!(check_name(&"é".repeat(200)), Ok(()));
        for bad in ["", "   ", "a\nb", "tab\there", &"x".repeat(201)] {
            let e = check_name(bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                "name: must be 1 to 200 characters with no control characters",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn catalogues_answer_for_maps() {
        let hash: HashMap<String, Vec<String>> =
            HashMap::from([("https://api".to_owned(), vec!["read".to_owned()])]);
        let tree: BTreeMap<String, Vec<String>> = hash.clone().into_iter().collect();
        for c in [&hash as &dyn Catalogue, &tree] {
            assert!(c.has_resource("https://api"));
            assert!(!c.has_resource("https://other"));
            assert!(c.offers("https://api", "read"));
            assert!(!c.offers("https://api", "write"));
            assert!(!c.offers("https://other", "read"));
        }
    }
}
