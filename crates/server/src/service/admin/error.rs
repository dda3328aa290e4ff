//! `AdminError`: what the admin service answers instead of doing what it was asked, with the outcomes its callers
//! branch on (the console tells a taken name from a malformed one by the variant).

use keyward_core::registration::RegistrationError;

use crate::service::{Invalid, Outcome, Refusal};
use crate::store::StoreError;

/// What the admin service answers instead of doing what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A field is wrong.
    #[error("{0}")]
    Invalid(Invalid),
    /// What the request names does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The change conflicts with what exists, or would lock the caller out.
    #[error("{0}")]
    Conflict(String),
    /// The account already has a key with this name.
    #[error("name: this account already has a key with this name")]
    NameTaken,
    /// The account holds `MAX_KEYS_PER_ACCOUNT` keys.
    #[error("owner_account: the account holds the most keys it may (50)")]
    TooManyKeys,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AdminError {
    /// A refusal worded `field: why`.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(Invalid::from_message(message))
    }
}

impl From<RegistrationError> for AdminError {
    fn from(e: RegistrationError) -> Self {
        let RegistrationError::Invalid { field, why } = e;
        Self::Invalid(Invalid::new(field, why))
    }
}

impl Outcome for AdminError {
    fn refusal(&self) -> Option<Refusal> {
        match self {
            Self::Invalid(_) => Some(Refusal::Invalid),
            Self::NotFound(_) => Some(Refusal::NotFound),
            Self::Conflict(_) | Self::NameTaken | Self::TooManyKeys => Some(Refusal::Conflict),
            Self::Store(_) | Self::Internal(_) => None,
        }
    }
    fn store_error(&self) -> Option<&StoreError> {
        match self {
            Self::Store(e) => Some(e),
            _ => None,
        }
    }
}
