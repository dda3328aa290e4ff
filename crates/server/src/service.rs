//! The services: one struct per concern, each holding only the shared parts it uses, each answering with its own
//! error type. They sit between the lower layers (store, registry, key ring, limits, clock) and the edges (`http`,
//! `web`, the CLI), which extract, call one service and render.
//!
//! Who calls whom: `Issuer` → `Delegated` (the delegated grants at the token endpoint); `Consents` and `Accounts`
//! → `Delegated` (revoking grants); `ApiKeys` → `Admin` (an account's keys are clients). Nothing calls back up.

pub mod accounts;
pub mod actor;
pub mod admin;
pub mod api_keys;
pub mod assertions;
pub mod consents;
pub mod delegated;
pub mod dpop;
pub mod factors;
pub mod issuer;
pub mod resets;
pub mod sessions;

pub use accounts::Accounts;
pub use actor::Actor;
pub use admin::Admin;
pub use api_keys::ApiKeys;
pub use assertions::Assertions;
pub use consents::Consents;
pub use delegated::Delegated;
pub use factors::SecondFactors;
pub use issuer::Issuer;
pub use resets::Resets;
pub use sessions::Sessions;

use std::fmt;

use crate::store::StoreError;

/// A field a service refuses, and why: shown as `field: why`, the admin API's wording. The field is what a form
/// puts the message beside (`name`, `redirect_uris`, `line 3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The field, or empty when the refusal names none.
    pub field: String,
    /// What is wrong with it.
    pub why: String,
}

impl Invalid {
    /// A refusal of `field`.
    pub fn new(field: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            why: why.into(),
        }
    }

    /// A refusal worded `field: why` by a lower layer (core's checks), taken apart; text without a leading
    /// field name is kept whole as the reason.
    pub fn from_message(message: impl Into<String>) -> Self {
        let message = message.into();
        let named = message.split_once(": ").filter(|(field, _)| {
            !field.is_empty()
                && field
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | ' '))
        });
        match named {
            Some((field, why)) => Self::new(field, why),
            None => Self::new("", message),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.why)
        } else {
            write!(f, "{}: {}", self.field, self.why)
        }
    }
}

/// How a request was refused, whichever service refused it: what an edge needs to choose its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The request is wrong as it stands.
    Invalid,
    /// What it names does not exist (or is not the caller's).
    NotFound,
    /// It conflicts with the current state (a name taken, a limit reached, a rule that protects access).
    Conflict,
}

/// What every service's error tells an edge that renders it without knowing the service: a refusal (the
/// message is the error's `Display`), or the store's failure, or neither (a failure of the service itself).
pub trait Outcome: fmt::Display {
    /// The refusal, when the request was refused (by default never: the service only fails).
    fn refusal(&self) -> Option<Refusal> {
        None
    }
    /// The store's error, when the store failed (unavailable, or text it cannot store).
    fn store_error(&self) -> Option<&StoreError>;
}

/// A store error that is the request's fault, as every edge words it: a row that is not there, a uniqueness rule,
/// text the database cannot store. `None` for the store's own failures (unavailable, anything else).
pub fn store_refusal(e: &StoreError) -> Option<(Refusal, String)> {
    match e {
        StoreError::NotFound => Some((Refusal::NotFound, "the resource not found".into())),
        StoreError::Conflict(m) => Some((Refusal::Conflict, (*m).to_owned())),
        StoreError::Unstorable(_) => Some((
            Refusal::Invalid,
            "the request holds text that cannot be stored: NUL (U+0000) is not allowed".into(),
        )),
        StoreError::Unavailable(_) | StoreError::Db(_) => None,
    }
}

impl Outcome for StoreError {
    fn refusal(&self) -> Option<Refusal> {
        store_refusal(self).map(|(r, _)| r)
    }
    fn store_error(&self) -> Option<&StoreError> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worded_refusal_is_taken_apart_and_reads_the_same() {
        for message in [
            "name: must be 1 to 200 characters with no control characters",
            "scope_details.read.description: must be 1 to 500 characters",
            "line 3: name: required",
            "the request holds text that cannot be stored",
        ] {
            assert_eq!(Invalid::from_message(message).to_string(), message);
        }
        assert_eq!(Invalid::from_message("name: required").field, "name");
        assert_eq!(
            Invalid::from_message("line 3: name: required").field,
            "line 3"
        );
        assert_eq!(Invalid::from_message("no field here").field, "");
    }

    #[test]
    fn store_errors_that_are_the_requests_fault_are_refusals() {
        assert_eq!(StoreError::NotFound.refusal(), Some(Refusal::NotFound));
        assert_eq!(
            StoreError::Conflict("name taken").refusal(),
            Some(Refusal::Conflict)
        );
        assert_eq!(
            StoreError::Unavailable(sqlx::Error::PoolTimedOut).refusal(),
            None
        );
    }
}
