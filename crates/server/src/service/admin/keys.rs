//! A client's public keys as the admin API takes them (RFC 7591 §2 `jwks`): each JWK read by the same code that
//! checks assertions, so a key that could never verify one is refused when it is registered, not at first use.
//! An `alg` left out is filled in from the key type where only one fits (RFC 7517 §4.4 leaves it optional).

use keyward_client::PublicKey;
use serde_json::Value;

use super::AdminError;
use keyward_core::registration::keys::default_alg;

/// Fills in each key's missing `alg` and checks that every key is one Keyward can verify assertions with: the
/// shape rules (a JWK Set, kids, no private members) are `keyward_core::registration::keys::check`'s, applied
/// after this.
pub(super) fn normalize_jwks(mut jwks: Value) -> Result<Value, AdminError> {
    let Some(keys) = jwks.get_mut("keys").and_then(Value::as_array_mut) else {
        // Not a JWK Set: the core check words the refusal.
        return Ok(jwks);
    };
    for key in keys.iter_mut() {
        if !key.is_object() {
            return Err(AdminError::invalid("jwks: every key must be a JSON object"));
        }
        if key.get("alg").is_none()
            && let Some(alg) = default_alg(key)
        {
            key["alg"] = Value::from(alg);
        }
        if key.get("kid").is_none() {
            // The core check refuses it by name.
            continue;
        }
        PublicKey::from_jwk(key).map_err(|why| {
            let kid = key.get("kid").and_then(Value::as_str).unwrap_or("");
            AdminError::invalid(format!("jwks: key {kid:?}: {why}"))
        })?;
    }
    Ok(jwks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fills_in_alg_and_refuses_keys_that_cannot_verify() {
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let ed = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "a"}]});
        let out = normalize_jwks(ed).unwrap();
        assert_eq!(out["keys"][0]["alg"], "EdDSA");
        let wrong =
            json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "a", "alg": "ES256"}]});
        assert!(normalize_jwks(wrong).is_err());
        let short = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": "a"}]});
        assert!(normalize_jwks(short).is_err());
        assert!(normalize_jwks(json!({"keys": ["x"]})).is_err());
    }
}
