//! The kinds of key an account holder may make besides a secret: a public-key key (`private_key_jwt` with inline
//! public JWKs, RFC 7523 §2.2) and a federated key (tokens of an external OpenID Connect issuer), each of them
//! optionally DPoP-bound (RFC 9449 §5.2). Reads what the console's form sends into admin input, and changes a key's
//! public keys and federated credentials one at a time (rotation), always through `Admin::client_update`. A key's
//! `jwks_uri` is never set here (SECURITY.md: no address an account holder chooses is fetched but an issuer's).

use std::collections::BTreeMap;

use keyward_core::registration::keys::{MAX_FEDERATED, MAX_KEYS, PRIVATE_MEMBERS};
use keyward_core::registration::{FederatedCredential, KeySettings};
use serde_json::{Value, json};

use super::{ApiKeys, KeyError, KeyView};
use crate::service::Actor;
use crate::service::admin::{AdminError, ClientInput};
use crate::store::ClientRow;

/// How a key proves itself to Keyward.
#[derive(Debug, Clone, Default)]
pub enum KeyKind {
    /// A secret Keyward makes and shows once.
    #[default]
    Secret,
    /// `private_key_jwt`: the text of a public JWK or JWK Set, as pasted or made in the browser.
    PublicKey(String),
    /// Tokens of an external issuer (GitHub Actions, Kubernetes, any OpenID Connect issuer).
    Federated(FederatedForm),
}

/// A federated credential as the console's form has it: text fields, conditions one `claim=value` a line.
#[derive(Debug, Clone, Default)]
pub struct FederatedForm {
    /// A name for the credential; `credential-N` when empty.
    pub name: String,
    /// The issuer's HTTPS URL.
    pub issuer: String,
    /// The audience its tokens must carry.
    pub audience: String,
    /// The exact `sub` required; none when empty.
    pub subject: String,
    /// Other claim conditions, one `claim=value` a line.
    pub conditions: String,
}

impl FederatedForm {
    /// The credential this form asks for, named `fallback` when it names none; the shape rules (an https issuer,
    /// a subject or a claim) are `keyward_core::registration::keys::check`'s, applied by the admin service.
    pub(super) fn credential(&self, fallback: String) -> Result<FederatedCredential, String> {
        let mut claims = BTreeMap::new();
        for line in self
            .conditions
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let Some((claim, value)) = line.split_once('=') else {
                return Err(format!(
                    "Write each condition as claim=value, one a line: {line:?} has no '='."
                ));
            };
            let (claim, value) = (claim.trim(), value.trim());
            if claim == "sub" {
                return Err("Put the subject in its own field, not among the conditions.".into());
            }
            if claims.insert(claim.to_owned(), value.to_owned()).is_some() {
                return Err(format!("The condition on {claim:?} appears twice."));
            }
        }
        let subject = self.subject.trim();
        let name = self.name.trim();
        Ok(FederatedCredential {
            name: if name.is_empty() {
                fallback
            } else {
                name.to_owned()
            },
            issuer: self.issuer.trim().to_owned(),
            audience: self.audience.trim().to_owned(),
            subject: (!subject.is_empty()).then(|| subject.to_owned()),
            claims,
        })
    }
}

/// The public keys in `text`, a JWK or a JWK Set, each given a `kid` when it has none: its RFC 7638 thumbprint,
/// the same the console's script computes for a key it converts or makes. A private key is refused by name before
/// anything else, so its owner knows to keep it out of the form.
pub(super) fn public_keys(text: &str) -> Result<Vec<Value>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("Paste the public key: a JWK, or a PEM public key with JavaScript on.".into());
    }
    if text.starts_with("-----BEGIN") {
        // Converting PEM needs the browser's WebCrypto (console.js): without it, only JWKs are read.
        return Err(
            "This is a PEM key: convert it with the button beside the field (it needs JavaScript), or paste it as a JWK."
                .into(),
        );
    }
    let value: Value = serde_json::from_str(text).map_err(|_| {
        "This is not a JWK: paste a JSON object such as {\"kty\": \"EC\", …}.".to_owned()
    })?;
    let mut keys = match value {
        Value::Object(ref o) if o.contains_key("keys") => match value.get("keys") {
            Some(Value::Array(keys)) => keys.clone(),
            _ => return Err("A JWK Set's \"keys\" must be a list of JWKs.".into()),
        },
        Value::Object(_) => vec![value],
        _ => return Err("A JWK is a JSON object such as {\"kty\": \"EC\", …}.".into()),
    };
    if keys.is_empty() {
        return Err("The JWK Set holds no key.".into());
    }
    for key in &mut keys {
        let Some(o) = key.as_object_mut() else {
            return Err("Every key must be a JSON object.".into());
        };
        if PRIVATE_MEMBERS.iter().any(|m| o.contains_key(*m)) {
            return Err(
                "This is a private key. Paste only the public key: the private key stays with you. It was not stored."
                    .into(),
            );
        }
        if !o.contains_key("kid") {
            let kid = keyward_client::dpop::thumbprint(key)
                .map_err(|_| "This key is not a P-256, Ed25519 or RSA public key.".to_owned())?;
            key["kid"] = Value::from(kid);
        }
    }
    Ok(keys)
}

/// Which of a key's credentials a change is about, for its refusals.
enum Part {
    PublicKeys,
    Federated,
}

impl ApiKeys {
    /// Adds public keys (a JWK or JWK Set in `text`) to one of the account's public-key keys: the first step of a
    /// rotation. Each is checked as at creation; a `kid` the key has already is refused.
    pub async fn key_add_public_key(
        &self,
        actor: &Actor,
        account_id: &str,
        client_id: &str,
        text: &str,
    ) -> Result<KeyView, KeyError> {
        let key = self.key_of(account_id, client_id).await?;
        let mut keys = current(&key, Part::PublicKeys)?;
        let added = public_keys(text).map_err(KeyError::Invalid)?;
        for k in added {
            if keys.iter().any(|o| o.get("kid") == k.get("kid")) {
                return Err(KeyError::Invalid(format!(
                    "This key already has a public key with the kid {}.",
                    k["kid"]
                )));
            }
            keys.push(k);
        }
        if keys.len() > MAX_KEYS {
            return Err(KeyError::Invalid(format!(
                "A key holds at most {MAX_KEYS} public keys: remove one first."
            )));
        }
        self.update_keys(actor, &key, keys).await
    }

    /// Removes the public key `kid` from one of the account's public-key keys: the last step of a rotation.
    /// The last one stays (the key could not authenticate without it).
    pub async fn key_remove_public_key(
        &self,
        actor: &Actor,
        account_id: &str,
        client_id: &str,
        kid: &str,
    ) -> Result<KeyView, KeyError> {
        let key = self.key_of(account_id, client_id).await?;
        let mut keys = current(&key, Part::PublicKeys)?;
        let before = keys.len();
        keys.retain(|k| k.get("kid").and_then(Value::as_str) != Some(kid));
        if keys.len() == before {
            return Err(KeyError::NotFound);
        }
        if keys.is_empty() {
            return Err(KeyError::LastCredential(
                "This is the key's only public key, so removing it would lock the key out. Add its replacement first, then remove this one.",
            ));
        }
        self.update_keys(actor, &key, keys).await
    }

    /// Adds a federated credential to one of the account's federated keys (a second repository, a new cluster).
    pub async fn key_add_federated(
        &self,
        actor: &Actor,
        account_id: &str,
        client_id: &str,
        form: &FederatedForm,
    ) -> Result<KeyView, KeyError> {
        let key = self.key_of(account_id, client_id).await?;
        current(&key, Part::Federated)?;
        let mut list = key.client.federated_credentials.clone();
        if list.len() >= MAX_FEDERATED {
            return Err(KeyError::Invalid(format!(
                "A key holds at most {MAX_FEDERATED} federated credentials: remove one first."
            )));
        }
        let fallback = (1..)
            .map(|n| format!("credential-{n}"))
            .find(|n| list.iter().all(|c| c.name != *n))
            .unwrap_or_default();
        let credential = form.credential(fallback).map_err(KeyError::Invalid)?;
        if list.iter().any(|c| c.name == credential.name) {
            return Err(KeyError::Invalid(format!(
                "This key already has a credential named {:?}.",
                credential.name
            )));
        }
        list.push(credential);
        self.update_federated(actor, &key, list).await
    }

    /// Removes the federated credential `name` from one of the account's federated keys; the last one stays.
    pub async fn key_remove_federated(
        &self,
        actor: &Actor,
        account_id: &str,
        client_id: &str,
        name: &str,
    ) -> Result<KeyView, KeyError> {
        let key = self.key_of(account_id, client_id).await?;
        current(&key, Part::Federated)?;
        let mut list = key.client.federated_credentials.clone();
        let before = list.len();
        list.retain(|c| c.name != name);
        if list.len() == before {
            return Err(KeyError::NotFound);
        }
        if list.is_empty() {
            return Err(KeyError::LastCredential(
                "This is the key's only federated credential, so removing it would lock the key out. Add another first, or delete the key.",
            ));
        }
        self.update_federated(actor, &key, list).await
    }

    /// Requires DPoP-bound tokens of one of the account's keys, or stops requiring them.
    pub async fn key_set_dpop(
        &self,
        actor: &Actor,
        account_id: &str,
        client_id: &str,
        required: bool,
    ) -> Result<KeyView, KeyError> {
        self.key_of(account_id, client_id).await?;
        let input = ClientInput {
            dpop_bound_access_tokens: Some(required),
            ..ClientInput::default()
        };
        // A flag, not a list: nothing read before can be overwritten.
        self.update_if(actor, client_id, input, |_| true).await
    }

    /// Replaces the public keys of `key` with `keys`, computed from `key` as read: refused if they changed since.
    async fn update_keys(
        &self,
        actor: &Actor,
        key: &KeyView,
        keys: Vec<Value>,
    ) -> Result<KeyView, KeyError> {
        let input = ClientInput {
            jwks: Some(Some(json!({ "keys": keys }))),
            ..ClientInput::default()
        };
        let before = key.client.jwks.clone();
        self.update_if(actor, &key.client.client_id, input, move |now| {
            now.jwks == before
        })
        .await
    }

    /// Replaces the federated credentials of `key` with `list`, computed from `key` as read: refused if they
    /// changed since.
    async fn update_federated(
        &self,
        actor: &Actor,
        key: &KeyView,
        list: Vec<FederatedCredential>,
    ) -> Result<KeyView, KeyError> {
        let input = ClientInput {
            federated_credentials: Some(list),
            ..ClientInput::default()
        };
        let before = key.client.federated_credentials.clone();
        self.update_if(actor, &key.client.client_id, input, move |now| {
            now.federated == before
        })
        .await
    }

    /// One update through the admin service (audit, change feed, memory), made only if `unchanged` holds of the
    /// client's keys inside the transaction, for a list computed from an earlier read: two tabs adding a key at
    /// once end in one success and one "changed meanwhile", never a lost key. What the rules refuse is said to
    /// the account holder as a sentence.
    async fn update_if(
        &self,
        actor: &Actor,
        client_id: &str,
        input: ClientInput,
        unchanged: impl FnOnce(&KeySettings) -> bool,
    ) -> Result<KeyView, KeyError> {
        let check = |row: &ClientRow| {
            let now: KeySettings = serde_json::from_str(&row.key_settings).unwrap_or_default();
            if unchanged(&now) {
                Ok(())
            } else {
                Err(AdminError::Conflict(
                    "This key's credentials changed while you edited them: reload the page and try again.".into(),
                ))
            }
        };
        match self
            .admin
            .client_update_checked(actor, client_id, input, check)
            .await
        {
            Ok(view) => Ok(self.key_view(view)),
            Err(AdminError::Invalid(i)) => Err(KeyError::Invalid(super::as_sentence(&i.why))),
            Err(e) => Err(e.into()),
        }
    }
}

/// The key's inline public keys, or its federated credentials: refused when the key is not of that kind, so a
/// secret key never gains a second way in from these forms.
fn current(key: &KeyView, part: Part) -> Result<Vec<Value>, KeyError> {
    match part {
        Part::PublicKeys => match key.client.jwks.as_ref().and_then(|j| j.get("keys")) {
            Some(Value::Array(keys)) => Ok(keys.clone()),
            _ => Err(KeyError::WrongKind(
                "This key does not authenticate with public keys.",
            )),
        },
        Part::Federated if key.client.federated_credentials.is_empty() => Err(KeyError::WrongKind(
            "This key does not authenticate with federated credentials.",
        )),
        Part::Federated => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_keys_are_read_and_given_their_thumbprint() {
        // RFC 7638 §3.1's example key and thumbprint.
        let rsa = r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256"}"#;
        let keys = public_keys(rsa).unwrap();
        assert_eq!(
            keys[0]["kid"],
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        let set = format!(r#"{{"keys": [{rsa}]}}"#);
        assert_eq!(public_keys(&set).unwrap(), keys);
        let named = r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"mine"}"#;
        assert_eq!(public_keys(named).unwrap()[0]["kid"], "mine");
        for (text, says) in [
            ("", "Paste"),
            ("-----BEGIN PUBLIC KEY-----\nMFkw", "PEM"),
            ("not json", "not a JWK"),
            ("[1]", "JSON object"),
            (r#"{"keys": []}"#, "no key"),
            (
                r#"{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"c"}"#,
                "private key",
            ),
            (r#"{"kty":"oct","k":"c2VjcmV0"}"#, "private key"),
            (r#"{"kty":"XX"}"#, "not a P-256"),
        ] {
            let e = public_keys(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn conditions_are_read_one_a_line() {
        let form = FederatedForm {
            issuer: " https://token.actions.githubusercontent.com ".into(),
            audience: "https://kw.example".into(),
            conditions: "repository = acme/shop\n\nref=refs/heads/main\n".into(),
            ..FederatedForm::default()
        };
        let c = form.credential("credential-1".into()).unwrap();
        assert_eq!(c.name, "credential-1");
        assert_eq!(c.issuer, "https://token.actions.githubusercontent.com");
        assert_eq!(c.subject, None);
        assert_eq!(c.claims["repository"], "acme/shop");
        assert_eq!(c.claims["ref"], "refs/heads/main");
        for bad in ["repository", "a=1\na=2", "sub=x"] {
            let form = FederatedForm {
                conditions: bad.into(),
                ..FederatedForm::default()
            };
            assert!(form.credential("c".into()).is_err(), "{bad}");
        }
    }
}
