//! Resources: the APIs (audiences) tokens are issued for. An environment such as UAT or PROD is its own resource.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::scope::{ScopeSet, is_scope_token};

/// A JWS signing algorithm Keyward issues tokens with (RFC 7518 §3.1, RFC 8037 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum SigningAlg {
    /// ECDSA P-256 SHA-256: the default, fast to sign and small.
    ES256,
    /// RSASSA-PKCS1-v1_5 SHA-256: required to be possible by RFC 9068 §4; slow to sign.
    RS256,
    /// Ed25519 (RFC 8037).
    EdDSA,
}

impl SigningAlg {
    /// Every algorithm, in the order keys are created at first start.
    pub const ALL: [SigningAlg; 3] = [SigningAlg::ES256, SigningAlg::RS256, SigningAlg::EdDSA];

    /// The JOSE `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::EdDSA => "EdDSA",
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ES256" => Ok(Self::ES256),
            "RS256" => Ok(Self::RS256),
            "EdDSA" => Ok(Self::EdDSA),
            _ => Err(format!(
                "unknown signing algorithm {s:?}: use ES256, RS256 or EdDSA"
            )),
        }
    }
}

/// The identifier of the built-in resource that guards Keyward's own admin API.
pub const ADMIN_RESOURCE: &str = "urn:keyward:admin";
/// The scope that grants the whole admin API.
pub const ADMIN_SCOPE: &str = "keyward:admin";
/// The scope that grants the admin API's read-only operations.
pub const ADMIN_READ_SCOPE: &str = "keyward:admin:read";

/// A resource as the token endpoint needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Internal id, used in admin URLs.
    pub id: String,
    /// The audience string put in `aud` (a URL, a GUID, a host name).
    pub identifier: String,
    /// Display name.
    pub name: String,
    /// The catalogue of scopes this resource understands.
    pub scopes: ScopeSet,
    /// Access-token lifetime in seconds.
    pub access_token_ttl: i64,
    /// The algorithm its tokens are signed with.
    pub signing_alg: SigningAlg,
    /// What each scope means, for people: the consent page and the token detail endpoint.
    pub scope_details: BTreeMap<String, ScopeDetail>,
    /// RFC 9449 §7.1: every token for it must be DPoP-bound.
    pub require_dpop: bool,
}

/// A scope described for people: a sentence for the consent page, and the API category and access level the token
/// detail endpoint groups it under (for example `Item` / `Full Access`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeDetail {
    /// What the scope lets an app do, in plain words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The API category (`Item`, `Reports`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The access level within the category (`View Only`, `Full Access`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
}

impl Resource {
    /// The plain-words description of `scope`, or the scope itself when none is given.
    pub fn describe(&self, scope: &str) -> String {
        self.scope_details
            .get(scope)
            .and_then(|d| d.description.clone())
            .unwrap_or_else(|| scope.to_owned())
    }

    /// The token detail view of `scope`: each category with its access level, in the order of the resource's
    /// catalogue, a later scope of the same category replacing an earlier one (declare levels from the lowest).
    /// Scopes without a category are left out.
    pub fn categories(&self, scope: &ScopeSet) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for s in self.scopes.iter().filter(|s| scope.contains(s)) {
            let Some(d) = self.scope_details.get(s) else {
                continue;
            };
            let Some(category) = &d.category else {
                continue;
            };
            let access = d.access.clone().unwrap_or_else(|| s.to_owned());
            match out.iter_mut().find(|(c, _)| c == category) {
                Some(entry) => entry.1 = access,
                None => out.push((category.clone(), access)),
            }
        }
        out
    }
}

/// Checks a resource identifier: it appears inside a scope token (`<identifier>/.default`), so it must be one.
pub fn check_identifier(s: &str) -> Result<(), String> {
    if s.len() > 255 {
        return Err("identifier is longer than 255 characters".into());
    }
    if !is_scope_token(s) {
        return Err("identifier must be printable ASCII with no space, `\"` or `\\`".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(check_identifier("705798e0-8cef-427c-ae00-6023deba29af").is_ok());
        assert!(check_identifier("https://api.example.com/v1").is_ok());
        assert!(check_identifier("staging.wlloyalty.net").is_ok());
        assert!(check_identifier("has space").is_err());
        assert!(check_identifier("").is_err());
    }

    #[test]
    fn algs_round_trip() {
        for a in SigningAlg::ALL {
            assert_eq!(a.as_str().parse::<SigningAlg>().unwrap(), a);
        }
    }
}
