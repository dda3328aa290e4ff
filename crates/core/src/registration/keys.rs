//! What a client proves itself with besides secrets, as registered: its public keys (`jwks`, RFC 7591 §2) or the
//! HTTPS address that publishes them (`jwks_uri`), the external issuers whose tokens it accepts instead of a key
//! (workload identity federation: GitHub Actions, Kubernetes, any OpenID Connect issuer), and whether its access
//! tokens must be bound to a DPoP key (`dpop_bound_access_tokens`, RFC 9449 §5.2). The shapes are checked here;
//! the server parses the key material itself with its crypto library.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::RegistrationError;

/// The most public keys a client may register inline: two to rotate, with room to spare.
pub const MAX_KEYS: usize = 10;
/// The most federated credentials a client may hold (Entra ID allows 20).
pub const MAX_FEDERATED: usize = 20;
/// The most claim conditions one federated credential may carry.
pub const MAX_CONDITIONS: usize = 10;
/// The longest URL, audience, subject or claim value accepted.
pub const MAX_TEXT: usize = 512;
/// Members that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
pub const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A client's keys and key-related metadata; the default is none of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySettings {
    /// Its public keys as a JWK Set (RFC 7517 §5), for `private_key_jwt` assertions it signs itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    /// Where its JWK Set is published (HTTPS), fetched and cached instead of `jwks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// External issuers whose tokens it may present as its assertion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub federated: Vec<FederatedCredential>,
    /// RFC 9449 §5.2: every access token it gets must be bound to a DPoP key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens: bool,
}

impl KeySettings {
    /// Whether it holds anything a `private_key_jwt` assertion can be checked against.
    pub fn has_assertion_keys(&self) -> bool {
        self.jwks.is_some() || self.jwks_uri.is_some() || !self.federated.is_empty()
    }

    /// The inline keys' JWKs (empty without `jwks`).
    pub fn keys(&self) -> &[Value] {
        self.jwks
            .as_ref()
            .and_then(|j| j.get("keys"))
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }
}

/// Trust in an external issuer's tokens (workload identity federation): a token it signed, for `audience`,
/// whose claims meet every condition, authenticates the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederatedCredential {
    /// A name unique within the client, to list and remove it by.
    pub name: String,
    /// The issuer's URL, compared with the token's `iss` exactly; its keys are found through OpenID Connect
    /// discovery (`/.well-known/openid-configuration`) over HTTPS.
    pub issuer: String,
    /// The audience the token must carry (`aud`).
    pub audience: String,
    /// The exact `sub` required, if any (a Kubernetes service account: `system:serviceaccount:NS:NAME`; GitHub:
    /// `repo:ORG/REPO:ref:refs/heads/main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Other claims that must equal these strings exactly (GitHub: `repository`, `ref`, `environment`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
}

/// Claims a condition may not name: those checked for every federated token already, or that say nothing about
/// which workload it is.
const RESERVED_CLAIMS: [&str; 7] = ["iss", "aud", "exp", "nbf", "iat", "jti", "sub"];

fn invalid(field: &str, why: impl Into<String>) -> RegistrationError {
    RegistrationError::invalid(field, why)
}

/// The algorithm a key of this type verifies when its JWK names none: ES256 for P-256, EdDSA for Ed25519, RS256
/// for RSA (the one every JWT library and platform issuer uses; a key for PS256 says so in `alg`).
pub fn default_alg(jwk: &Value) -> Option<&'static str> {
    match (
        jwk.get("kty").and_then(Value::as_str),
        jwk.get("crv").and_then(Value::as_str),
    ) {
        (Some("EC"), Some("P-256")) => Some("ES256"),
        (Some("OKP"), Some("Ed25519")) => Some("EdDSA"),
        (Some("RSA"), _) => Some("RS256"),
        _ => None,
    }
}

/// Whether `url` is an absolute `https` URL with a host, no fragment and no credentials, of a sane length.
pub fn is_https_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    url.len() <= MAX_TEXT
        && !authority.is_empty()
        && !authority.contains('@')
        && !url.contains('#')
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Checks the shape of a client's key settings: `jwks` and `jwks_uri` not both (RFC 7591 §2), at most
/// [`MAX_KEYS`] keys, each a public JWK with a unique `kid`; `jwks_uri` and each issuer an HTTPS URL; each
/// federated credential named uniquely with an audience and at least one condition (an issuer such as GitHub
/// signs tokens for every workload it runs, so the issuer and audience alone would admit all of them).
pub fn check(settings: &KeySettings) -> Result<(), RegistrationError> {
    if settings.jwks.is_some() && settings.jwks_uri.is_some() {
        return Err(invalid(
            "jwks",
            "give jwks or jwks_uri, not both (RFC 7591 §2)",
        ));
    }
    if let Some(jwks) = &settings.jwks {
        let keys = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("jwks", "must be a JWK Set: {\"keys\": [...]}"))?;
        if keys.is_empty() || keys.len() > MAX_KEYS {
            return Err(invalid("jwks", format!("must hold 1 to {MAX_KEYS} keys")));
        }
        let mut kids = Vec::with_capacity(keys.len());
        for key in keys {
            let kid = key.get("kid").and_then(Value::as_str).unwrap_or("");
            if kid.is_empty() || kid.len() > MAX_TEXT {
                return Err(invalid("jwks", "every key needs a kid"));
            }
            if kids.contains(&kid) {
                return Err(invalid("jwks", format!("kid {kid:?} appears twice")));
            }
            kids.push(kid);
            if PRIVATE_MEMBERS.iter().any(|m| key.get(m).is_some()) {
                return Err(invalid(
                    "jwks",
                    format!("key {kid:?} holds private key material: register the public key only"),
                ));
            }
        }
    }
    if let Some(uri) = &settings.jwks_uri
        && !is_https_url(uri)
    {
        return Err(invalid("jwks_uri", "must be an https URL"));
    }
    if settings.federated.len() > MAX_FEDERATED {
        return Err(invalid(
            "federated_credentials",
            format!("at most {MAX_FEDERATED}"),
        ));
    }
    for (i, f) in settings.federated.iter().enumerate() {
        check_federated(f)?;
        if settings.federated[..i].iter().any(|o| o.name == f.name) {
            return Err(invalid(
                "federated_credentials",
                format!("the name {:?} appears twice", f.name),
            ));
        }
    }
    Ok(())
}

fn check_federated(f: &FederatedCredential) -> Result<(), RegistrationError> {
    let field = "federated_credentials";
    let name_ok = !f.name.is_empty()
        && f.name.len() <= 64
        && f.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return Err(invalid(
            field,
            "name: 1 to 64 letters, digits, '-', '_' or '.'",
        ));
    }
    if !is_https_url(&f.issuer) || f.issuer.contains('?') {
        return Err(invalid(
            field,
            format!("{}: issuer must be an https URL", f.name),
        ));
    }
    let text_ok =
        |t: &str| !t.is_empty() && t.len() <= MAX_TEXT && !t.chars().any(char::is_control);
    if !text_ok(&f.audience) {
        return Err(invalid(field, format!("{}: audience is required", f.name)));
    }
    if f.subject.as_deref().is_some_and(|s| !text_ok(s)) {
        return Err(invalid(
            field,
            format!("{}: subject must not be empty", f.name),
        ));
    }
    if f.subject.is_none() && f.claims.is_empty() {
        return Err(invalid(
            field,
            format!(
                "{}: name a subject or at least one claim the workload's token must carry",
                f.name
            ),
        ));
    }
    if f.claims.len() > MAX_CONDITIONS {
        return Err(invalid(
            field,
            format!("{}: at most {MAX_CONDITIONS} claims", f.name),
        ));
    }
    for (claim, value) in &f.claims {
        if RESERVED_CLAIMS.contains(&claim.as_str()) {
            return Err(invalid(
                field,
                format!(
                    "{}: claim {claim:?} cannot be a condition (use subject for sub)",
                    f.name
                ),
            ));
        }
        if !text_ok(claim) || !text_ok(value) {
            return Err(invalid(
                field,
                format!("{}: claims must be non-empty strings", f.name),
            ));
        }
    }
    Ok(())
}

/// Whether a federated token's claims meet a credential's conditions: `sub` and every named claim equal, as
/// strings, to what is registered. `iss`, `aud` and the times are checked before.
pub fn conditions_met(f: &FederatedCredential, claims: &serde_json::Map<String, Value>) -> bool {
    let equals = |name: &str, want: &str| claims.get(name).and_then(Value::as_str) == Some(want);
    f.subject.as_deref().is_none_or(|s| equals("sub", s))
        && f.claims.iter().all(|(name, want)| equals(name, want))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn github() -> FederatedCredential {
        FederatedCredential {
            name: "deploy".into(),
            issuer: "https://token.actions.githubusercontent.com".into(),
            audience: "https://kw.example".into(),
            subject: None,
            claims: BTreeMap::from([("repository".into(), "acme/shop".into())]),
        }
    }

    fn field_of(s: &KeySettings) -> String {
        check(s).unwrap_err().field().to_owned()
    }

    #[test]
    fn jwks_must_be_public_keys_with_distinct_kids() {
        let key = json!({"kty": "OKP", "crv": "Ed25519", "x": "abc", "kid": "a"});
        let ok = KeySettings {
            jwks: Some(json!({"keys": [key]})),
            ..KeySettings::default()
        };
        assert!(check(&ok).is_ok());
        assert_eq!(ok.keys().len(), 1);
        assert!(ok.has_assertion_keys());
        let bad = [
            json!({"keys": []}),
            json!([key]),
            json!({"keys": [key, key]}),
            json!({"keys": [{"kty": "OKP", "x": "abc"}]}),
            json!({"keys": [{"kty": "EC", "kid": "p", "d": "secret"}]}),
            json!({"keys": [{"kty": "oct", "kid": "h", "k": "secret"}]}),
        ];
        for jwks in bad {
            let s = KeySettings {
                jwks: Some(jwks.clone()),
                ..KeySettings::default()
            };
            assert_eq!(field_of(&s), "jwks", "{jwks}");
        }
        let both = KeySettings {
            jwks_uri: Some("https://app.example/jwks".into()),
            ..ok
        };
        assert_eq!(field_of(&both), "jwks");
    }

    #[test]
    fn urls_must_be_https() {
        for (uri, good) in [
            ("https://app.example/jwks.json", true),
            ("https://127.0.0.1:8443/jwks", true),
            ("http://app.example/jwks", false),
            ("https://", false),
            ("https://user@app.example/jwks", false),
            ("https://app.example/jwks#x", false),
            ("https://app.example/a b", false),
        ] {
            assert_eq!(is_https_url(uri), good, "{uri}");
        }
    }

    #[test]
    fn federated_credentials_need_a_condition_and_a_unique_name() {
        let ok = KeySettings {
            federated: vec![github()],
            ..KeySettings::default()
        };
        assert!(check(&ok).is_ok());
        let mut twice = ok.clone();
        twice.federated.push(github());
        assert_eq!(field_of(&twice), "federated_credentials");
        let mut bare = github();
        bare.claims.clear();
        let mut reserved = github();
        reserved.claims.insert("aud".into(), "x".into());
        let mut http = github();
        http.issuer = "http://token.example".into();
        let mut no_audience = github();
        no_audience.audience.clear();
        for f in [bare, reserved, http, no_audience] {
            let s = KeySettings {
                federated: vec![f],
                ..KeySettings::default()
            };
            assert_eq!(field_of(&s), "federated_credentials");
        }
    }

    #[test]
    fn conditions_compare_strings_exactly() {
        let f = FederatedCredential {
            subject: Some("repo:acme/shop:ref:refs/heads/main".into()),
            ..github()
        };
        let claims = |v: Value| v.as_object().cloned().unwrap();
        let good =
            claims(json!({"sub": "repo:acme/shop:ref:refs/heads/main", "repository": "acme/shop"}));
        assert!(conditions_met(&f, &good));
        for bad in [
            json!({"sub": "repo:acme/shop:ref:refs/heads/dev", "repository": "acme/shop"}),
            json!({"sub": "repo:acme/shop:ref:refs/heads/main", "repository": "acme/shop2"}),
            json!({"sub": "repo:acme/shop:ref:refs/heads/main"}),
            json!({"sub": "repo:acme/shop:ref:refs/heads/main", "repository": ["acme/shop"]}),
        ] {
            assert!(!conditions_met(&f, &claims(bad.clone())), "{bad}");
        }
    }
}
