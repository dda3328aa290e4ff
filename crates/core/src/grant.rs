//! Grant decisions: given an authenticated client, the request and the catalogue, what may be issued.

pub mod authorization_code;
pub mod client_credentials;

use serde::Serialize;

use crate::OAuthError;
use crate::resource::SigningAlg;
use crate::scope::ScopeSet;

/// What a grant decision allows: the token to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The resource identifier, put in `aud`.
    pub audience: String,
    /// The scopes granted.
    pub scope: ScopeSet,
    /// Lifetime in seconds.
    pub ttl: i64,
    /// The algorithm to sign with.
    pub alg: SigningAlg,
    /// RFC 9449 §7.1: the resource takes DPoP-bound tokens only.
    pub require_dpop: bool,
}

/// RFC 6749 §5.1 successful token response.
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    /// The JWT.
    pub access_token: String,
    /// `Bearer` (RFC 6750), or `DPoP` for a token bound to a key (RFC 9449 §5).
    pub token_type: &'static str,
    /// Seconds.
    pub expires_in: i64,
    /// RFC 6749 §5.1: the rotated refresh token, on the delegated grants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Granted scopes (RFC 6749 §3.3), absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Whether a token endpoint ties delegated grants to a partner header (Walmart's `WM_PARTNER.ID`): the value
/// must be sent and equal the account's partner id.
#[derive(Debug, Clone, Copy)]
pub enum PartnerCheck<'a> {
    /// The endpoint asks for no partner header.
    None,
    /// The endpoint's header, and what the request sent in it.
    Header {
        /// The header's name, for the error message.
        name: &'a str,
        /// Its value, when sent.
        value: Option<&'a str>,
    },
}

impl PartnerCheck<'_> {
    /// The partner header's rule for a delegated grant of an account with `account_partner`: sent, and equal to
    /// it. A missing header is `invalid_request` (RFC 6749 §5.2), a different one `invalid_grant`.
    pub fn check(self, account_partner: Option<&str>) -> Result<(), OAuthError> {
        match self {
            PartnerCheck::None => Ok(()),
            PartnerCheck::Header { name, value: None } => Err(OAuthError::invalid_request(
                format!("header {name} is required for this grant type"),
            )),
            PartnerCheck::Header {
                name,
                value: Some(v),
            } if account_partner != Some(v) => Err(OAuthError::invalid_grant(format!(
                "{name} is not the partner id of the seller who authorized this app"
            ))),
            PartnerCheck::Header { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod partner_tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn partner_header_must_be_sent_and_match() {
        let header = |value| PartnerCheck::Header {
            name: "WM_PARTNER.ID",
            value,
        };
        assert!(PartnerCheck::None.check(None).is_ok());
        assert!(header(Some("p1")).check(Some("p1")).is_ok());
        let missing = header(None).check(Some("p1")).unwrap_err();
        assert_eq!(missing.code, ErrorCode::InvalidRequest);
        let other = header(Some("p2")).check(Some("p1")).unwrap_err();
        assert_eq!(other.code, ErrorCode::InvalidGrant);
        assert_eq!(
            header(Some("p1")).check(None).unwrap_err().code,
            ErrorCode::InvalidGrant
        );
    }
}
