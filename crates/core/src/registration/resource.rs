//! A resource's registration (RFC 8707: the API a token is for, named by its identifier): the typed fields, a
//! change to them, and [`apply`], which checks every rule.

use std::collections::BTreeMap;

use super::{RegistrationError, check_name};
use crate::duration::format_seconds;
use crate::resource::{ScopeDetail, SigningAlg, check_identifier};
use crate::scope::is_scope_token;

/// A new resource's access-token lifetime: 15 minutes.
pub const DEFAULT_ACCESS_TOKEN_TTL: i64 = 900;
/// The longest scope description, in characters.
pub const MAX_SCOPE_DESCRIPTION: usize = 500;
/// The longest scope category or access level, in characters.
pub const MAX_SCOPE_LABEL: usize = 100;

/// What a resource is registered with (RFC 8707 §2: its identifier is every token's audience).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRegistration {
    /// The audience string (RFC 8707 §2 `resource`, RFC 9068 §2.2 `aud`); never changes.
    pub identifier: String,
    /// Display name.
    pub name: String,
    /// The scopes it offers (RFC 6749 §3.3), in the order given.
    pub scopes: Vec<String>,
    /// Access-token lifetime, seconds.
    pub access_token_ttl: i64,
    /// The algorithm its tokens are signed with.
    pub signing_alg: SigningAlg,
    /// What its scopes mean for people, by scope.
    pub scope_details: BTreeMap<String, ScopeDetail>,
    /// RFC 9449 §7.1: every token for it must be DPoP-bound.
    pub require_dpop: bool,
}

impl ResourceRegistration {
    /// A new resource with the defaults (no name or scope yet, 15-minute tokens, ES256), once its identifier is
    /// checked by [`check_identifier`]. A change that names it, given to [`apply`], completes it.
    pub fn new(identifier: &str) -> Result<Self, RegistrationError> {
        check_identifier(identifier).map_err(|m| RegistrationError::invalid("identifier", m))?;
        Ok(ResourceRegistration {
            identifier: identifier.to_owned(),
            name: String::new(),
            scopes: Vec::new(),
            access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            signing_alg: SigningAlg::ES256,
            scope_details: BTreeMap::new(),
            require_dpop: false,
        })
    }
}

/// A change to a resource: each field given replaces the current one. The identifier is not here: it never
/// changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceChange {
    /// Display name.
    pub name: Option<String>,
    /// The scope catalogue.
    pub scopes: Option<Vec<String>>,
    /// Access-token lifetime, seconds.
    pub access_token_ttl: Option<i64>,
    /// Signing algorithm ([`parse_signing_alg`] reads it from its name).
    pub signing_alg: Option<SigningAlg>,
    /// What scopes mean for people (replaces them all).
    pub scope_details: Option<BTreeMap<String, ScopeDetail>>,
    /// Whether every token for it must be DPoP-bound.
    pub require_dpop: Option<bool>,
}

/// Reads a signing algorithm from its JOSE name (RFC 7518 §3.1).
pub fn parse_signing_alg(name: &str) -> Result<SigningAlg, RegistrationError> {
    name.parse()
        .map_err(|m| RegistrationError::invalid("signing_alg", m))
}

/// Applies `change` to `current` and checks the result: the name; scopes are scope tokens (RFC 6749 §3.3) and none
/// ends in `/.default` (that suffix names a resource's every scope at the token endpoint); the lifetime is from 1
/// second to `max_ttl`; every scope described is one of the resource's, and each text is 1 to
/// [`MAX_SCOPE_DESCRIPTION`] (a description) or [`MAX_SCOPE_LABEL`] (a category, an access level) characters with
/// no control character. Fields are checked in the order [`ResourceChange`] lists them, and the first refusal is
/// returned.
pub fn apply(
    current: ResourceRegistration,
    change: ResourceChange,
    max_ttl: i64,
) -> Result<ResourceRegistration, RegistrationError> {
    let mut r = current;
    if let Some(name) = change.name {
        check_name(&name)?;
        r.name = name;
    }
    if let Some(scopes) = change.scopes {
        if let Some(bad) = scopes
            .iter()
            .find(|s| !is_scope_token(s) || s.ends_with("/.default"))
        {
            return Err(RegistrationError::invalid(
                "scopes",
                format!("{bad:?} is not a valid scope token"),
            ));
        }
        r.scopes = scopes;
    }
    if let Some(ttl) = change.access_token_ttl {
        if ttl < 0 {
            return Err(RegistrationError::invalid(
                "access_token_ttl",
                "must not be negative",
            ));
        }
        if ttl < 1 || ttl > max_ttl {
            return Err(RegistrationError::invalid(
                "access_token_ttl",
                format!(
                    "must be from 1s to {} (max_access_token_ttl)",
                    format_seconds(max_ttl)
                ),
            ));
        }
        r.access_token_ttl = ttl;
    }
    if let Some(alg) = change.signing_alg {
        r.signing_alg = alg;
    }
    if let Some(required) = change.require_dpop {
        r.require_dpop = required;
    }
    if let Some(details) = change.scope_details {
        r.scope_details = details;
    }
    for (scope, detail) in &r.scope_details {
        if !r.scopes.contains(scope) {
            return Err(RegistrationError::invalid(
                "scope_details",
                format!("{scope:?} is not in the resource's scopes"),
            ));
        }
        for (field, text, max) in [
            ("description", &detail.description, MAX_SCOPE_DESCRIPTION),
            ("category", &detail.category, MAX_SCOPE_LABEL),
            ("access", &detail.access, MAX_SCOPE_LABEL),
        ] {
            if text.as_ref().is_some_and(|t| {
                t.trim().is_empty() || t.chars().count() > max || t.chars().any(char::is_control)
            }) {
                return Err(RegistrationError::invalid(
                    format!("scope_details.{scope}.{field}"),
                    format!("must be 1 to {max} characters with no control characters"),
                ));
            }
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: i64 = 86_400;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    /// `https://api`, named, with the scopes `read` and `write`.
    fn resource() -> ResourceRegistration {
        let new = ResourceRegistration::new("https://api").unwrap();
        apply(
            new,
            ResourceChange {
                name: Some("API".into()),
                scopes: Some(strings(&["read", "write"])),
                ..ResourceChange::default()
            },
            MAX,
        )
        .unwrap()
    }

    fn refusal(change: ResourceChange) -> String {
        let e = apply(resource(), change, MAX).unwrap_err();
        let message = e.to_string();
        assert!(
            message.starts_with(&format!("{}: ", e.field())),
            "{message}"
        );
        message
    }

    fn detail(description: &str) -> ScopeDetail {
        ScopeDetail {
            description: Some(description.into()),
            ..ScopeDetail::default()
        }
    }

    #[test]
    fn a_new_resource_has_the_defaults() {
        let new = ResourceRegistration::new("https://api").unwrap();
        assert_eq!(new.access_token_ttl, DEFAULT_ACCESS_TOKEN_TTL);
        assert_eq!(new.signing_alg, SigningAlg::ES256);
        assert!(new.scopes.is_empty() && new.scope_details.is_empty() && new.name.is_empty());
        let r = resource();
        assert_eq!(r.identifier, "https://api");
        assert_eq!(r.name, "API");
        assert_eq!(r.scopes, ["read", "write"]);
    }

    #[test]
    fn identifiers_are_checked() {
        for bad in ["", "has space", &"x".repeat(256)] {
            let why = check_identifier(bad).unwrap_err();
            assert_eq!(
                ResourceRegistration::new(bad).unwrap_err().to_string(),
                format!("identifier: {why}")
            );
        }
        assert_eq!(
            ResourceRegistration::new("has space")
                .unwrap_err()
                .to_string(),
            "identifier: identifier must be printable ASCII with no space, `\"` or `\\`"
        );
    }

    #[test]
    fn a_valid_change_applies_every_field() {
        let details = BTreeMap::from([(
            "write".to_owned(),
            ScopeDetail {
                description: Some("Change orders".into()),
                category: Some("Orders".into()),
                access: Some("Full Access".into()),
            },
        )]);
        let changed = apply(
            resource(),
            ResourceChange {
                name: Some("Orders API".into()),
                scopes: Some(strings(&["write", "admin"])),
                access_token_ttl: Some(MAX),
                signing_alg: Some(SigningAlg::EdDSA),
                scope_details: Some(details.clone()),
                require_dpop: Some(true),
            },
            MAX,
        )
        .unwrap();
        assert_eq!(
            changed,
            ResourceRegistration {
                identifier: "https://api".into(),
                name: "Orders API".into(),
                scopes: strings(&["write", "admin"]),
                access_token_ttl: MAX,
                signing_alg: SigningAlg::EdDSA,
                scope_details: details,
                require_dpop: true,
            }
        );
        assert_eq!(
            apply(changed.clone(), ResourceChange::default(), MAX),
            Ok(changed)
        );
    }

    #[test]
    fn names_follow_the_name_rule() {
        assert_eq!(
            refusal(ResourceChange {
                name: Some(" ".into()),
                ..ResourceChange::default()
            }),
            "name: must be 1 to 200 characters with no control characters"
        );
    }

    #[test]
    fn scopes_are_tokens_without_the_default_suffix() {
        for bad in ["has space", "", "api/.default"] {
            assert_eq!(
                refusal(ResourceChange {
                    scopes: Some(strings(&["read", bad])),
                    ..ResourceChange::default()
                }),
                format!("scopes: {bad:?} is not a valid scope token")
            );
        }
        // An empty catalogue is allowed.
        let empty = ResourceChange {
            scopes: Some(vec![]),
            ..ResourceChange::default()
        };
        assert!(apply(resource(), empty, MAX).unwrap().scopes.is_empty());
    }

    #[test]
    fn lifetimes_stay_within_the_servers_maximum() {
        for ok in [1, MAX] {
            let r = apply(
                resource(),
                ResourceChange {
                    access_token_ttl: Some(ok),
                    ..ResourceChange::default()
                },
                MAX,
            )
            .unwrap();
            assert_eq!(r.access_token_ttl, ok);
        }
        for bad in [0, MAX + 1] {
            assert_eq!(
                refusal(ResourceChange {
                    access_token_ttl: Some(bad),
                    ..ResourceChange::default()
                }),
                "access_token_ttl: must be from 1s to 1d (max_access_token_ttl)"
            );
        }
        assert_eq!(
            refusal(ResourceChange {
                access_token_ttl: Some(-5),
                ..ResourceChange::default()
            }),
            "access_token_ttl: must not be negative"
        );
        let e = apply(
            resource(),
            ResourceChange {
                access_token_ttl: Some(5_401),
                ..ResourceChange::default()
            },
            5_400,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "access_token_ttl: must be from 1s to 90m (max_access_token_ttl)"
        );
    }

    #[test]
    fn signing_algs_are_read_from_their_names() {
        assert_eq!(parse_signing_alg("RS256"), Ok(SigningAlg::RS256));
        assert_eq!(
            parse_signing_alg("HS256").unwrap_err().to_string(),
            "signing_alg: unknown signing algorithm \"HS256\": use ES256, RS256 or EdDSA"
        );
    }

    #[test]
    fn scope_details_describe_the_resources_scopes() {
        assert_eq!(
            refusal(ResourceChange {
                scope_details: Some(BTreeMap::from([("delete".to_owned(), detail("x"))])),
                ..ResourceChange::default()
            }),
            "scope_details: \"delete\" is not in the resource's scopes"
        );
        // Taking a described scope out of the catalogue is refused while its details stay.
        let described = apply(
            resource(),
            ResourceChange {
                scope_details: Some(BTreeMap::from([("write".to_owned(), detail("x"))])),
                ..ResourceChange::default()
            },
            MAX,
        )
        .unwrap();
        assert_eq!(
            apply(
                described,
                ResourceChange {
                    scopes: Some(strings(&["read"])),
                    ..ResourceChange::default()
                },
                MAX
            )
            .unwrap_err()
            .to_string(),
            "scope_details: \"write\" is not in the resource's scopes"
        );
    }

    #[test]
    fn scope_detail_texts() {
        let cases = [
            (
                detail(&"d".repeat(MAX_SCOPE_DESCRIPTION + 1)),
                "scope_details.read.description: must be 1 to 500 characters with no control characters",
            ),
            (
                detail(" "),
                "scope_details.read.description: must be 1 to 500 characters with no control characters",
            ),
            (
                ScopeDetail {
                    category: Some("c".repeat(MAX_SCOPE_LABEL + 1)),
                    ..ScopeDetail::default()
                },
                "scope_details.read.category: must be 1 to 100 characters with no control characters",
            ),
            (
                ScopeDetail {
                    access: Some("View\nOnly".into()),
                    ..ScopeDetail::default()
                },
                "scope_details.read.access: must be 1 to 100 characters with no control characters",
            ),
        ];
        for (d, message) in cases {
            let e = apply(
                resource(),
                ResourceChange {
                    scope_details: Some(BTreeMap::from([("read".to_owned(), d)])),
                    ..ResourceChange::default()
                },
                MAX,
            )
            .unwrap_err();
            assert_eq!(e.field(), message.split(':').next().unwrap());
            assert_eq!(e.to_string(), message);
        }
        let longest = ScopeDetail {
            description: Some("d".repeat(MAX_SCOPE_DESCRIPTION)),
            category: Some("c".repeat(MAX_SCOPE_LABEL)),
            access: Some("a".repeat(MAX_SCOPE_LABEL)),
        };
        let change = ResourceChange {
            scope_details: Some(BTreeMap::from([("read".to_owned(), longest)])),
            ..ResourceChange::default()
        };
        assert!(apply(resource(), change, MAX).is_ok());
    }

    #[test]
    fn the_first_field_in_order_is_named() {
        assert_eq!(
            refusal(ResourceChange {
                name: Some(String::new()),
                scopes: Some(strings(&["a b"])),
                access_token_ttl: Some(0),
                ..ResourceChange::default()
            }),
            "name: must be 1 to 200 characters with no control characters"
        );
        assert_eq!(
            refusal(ResourceChange {
                scopes: Some(strings(&["a b"])),
                access_token_ttl: Some(0),
                ..ResourceChange::default()
            }),
            "scopes: \"a b\" is not a valid scope token"
        );
    }
}
