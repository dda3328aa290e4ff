//! What the admin API, the CLI and a configuration's `[[resource]]` tables send, as read from JSON or TOML, and how
//! each becomes a typed change: durations as seconds or text, algorithms by name.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::RegistrationError;
use super::resource::ResourceChange;
use crate::duration::parse_seconds;
use crate::resource::ScopeDetail;

/// A duration given as seconds or as text such as `"15m"`.
#[derive(Debug, Clone)]
pub enum DurationValue {
    /// Seconds.
    Seconds(i64),
    /// Text.
    Text(String),
}

impl<'de> Deserialize<'de> for DurationValue {
    // By hand, so a wrong value is refused in words ("expected whole seconds or …"), not as an untagged enum.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl serde::de::Visitor<'_> for Either {
            type Value = DurationValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("whole seconds, or text such as \"90s\", \"15m\", \"24h\" or \"7d\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DurationValue, E> {
                Ok(DurationValue::Seconds(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DurationValue, E> {
                i64::try_from(v)
                    .map(DurationValue::Seconds)
                    .map_err(|_| E::custom("duration too large"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationValue, E> {
                Ok(DurationValue::Text(v.to_owned()))
            }
        }
        d.deserialize_any(Either)
    }
}

impl DurationValue {
    /// The value in seconds as given, negative included (the registration rules refuse that in their turn); `field`
    /// names it when the text is no duration.
    pub fn raw_seconds(&self, field: &str) -> Result<i64, RegistrationError> {
        match self {
            DurationValue::Seconds(s) => Ok(*s),
            DurationValue::Text(t) => {
                parse_seconds(t).map_err(|m| RegistrationError::invalid(field, m))
            }
        }
    }
}

/// Fields of a new resource.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceInput {
    /// The audience string.
    pub identifier: String,
    /// Display name.
    pub name: String,
    /// Scope catalogue.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Token lifetime (default 15 minutes).
    pub access_token_ttl: Option<DurationValue>,
    /// Signing algorithm (default ES256).
    pub signing_alg: Option<String>,
    /// What scopes mean for people: the consent page's words, the token detail's category and access level.
    pub scope_details: Option<BTreeMap<String, ScopeDetail>>,
    /// RFC 9449 §7.1: every token for it must be DPoP-bound (default false).
    pub require_dpop: Option<bool>,
}

impl ResourceInput {
    /// The fields of the new resource as a change to `ResourceRegistration::new(identifier)`, the lifetime and
    /// algorithm read.
    pub fn change(&self) -> Result<ResourceChange, RegistrationError> {
        self.clone().into_patch().change()
    }

    /// The input as a patch of every field.
    pub fn into_patch(self) -> ResourcePatch {
        ResourcePatch {
            name: Some(self.name),
            scopes: Some(self.scopes),
            access_token_ttl: self.access_token_ttl,
            signing_alg: self.signing_alg,
            scope_details: self.scope_details,
            require_dpop: self.require_dpop,
        }
    }
}

/// Changes to a resource; the identifier never changes (it is every token's audience).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourcePatch {
    /// Display name.
    pub name: Option<String>,
    /// Scope catalogue.
    pub scopes: Option<Vec<String>>,
    /// Token lifetime.
    pub access_token_ttl: Option<DurationValue>,
    /// Signing algorithm.
    pub signing_alg: Option<String>,
    /// Scope descriptions, categories and access levels (replaces them all).
    pub scope_details: Option<BTreeMap<String, ScopeDetail>>,
    /// Whether every token for it must be DPoP-bound.
    pub require_dpop: Option<bool>,
}

impl ResourcePatch {
    /// The change this patch asks for, the lifetime and algorithm read.
    pub fn change(self) -> Result<ResourceChange, RegistrationError> {
        Ok(ResourceChange {
            name: self.name,
            scopes: self.scopes,
            access_token_ttl: self
                .access_token_ttl
                .map(|t| t.raw_seconds("access_token_ttl"))
                .transpose()?,
            signing_alg: self
                .signing_alg
                .as_deref()
                .map(super::resource::parse_signing_alg)
                .transpose()?,
            scope_details: self.scope_details,
            require_dpop: self.require_dpop,
        })
    }
}
