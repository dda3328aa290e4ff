//! Signing-key rotation as a pure plan: which key signs for each algorithm now, and which keys the JWKS
//! publishes. Rotation is publish-then-sign: a new key is published at once but signs only from its activation
//! time; a superseded key stays published until every token it signed has expired.

use std::collections::BTreeMap;

use crate::resource::SigningAlg;

/// What the plan needs to know of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMeta {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub alg: SigningAlg,
    /// When it was created (published).
    pub created_at: i64,
    /// When it starts signing.
    pub activates_at: i64,
}

/// The state of every key at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPlan {
    /// The signing key per algorithm.
    pub active: BTreeMap<SigningAlg, String>,
    /// Keys in the JWKS (and accepted by introspection), in creation order.
    pub published: Vec<String>,
}

/// Computes the plan at `now`. `max_token_ttl` bounds how long a superseded key's tokens may live; the JWT
/// leeway is added so that a token still accepted somewhere is still verifiable.
pub fn plan(keys: &[KeyMeta], now: i64, max_token_ttl: i64) -> KeyPlan {
    let mut out = KeyPlan::default();
    for alg in SigningAlg::ALL {
        let mut of_alg: Vec<&KeyMeta> = keys.iter().filter(|k| k.alg == alg).collect();
        of_alg.sort_by_key(|k| (k.activates_at, k.created_at));
        for (i, key) in of_alg.iter().enumerate() {
            if key.activates_at <= now {
                out.active.insert(alg, key.kid.clone());
            }
            // A key stops signing when the next one activates; it is kept while its tokens can live.
            let superseded_at = of_alg
                .get(i + 1)
                .map(|next| next.activates_at)
                .filter(|t| *t <= now);
            let keep = match superseded_at {
                None => true,
                Some(t) => now < t + max_token_ttl + crate::jwt::LEEWAY_SECONDS,
            };
            if keep {
                out.published.push(key.kid.clone());
            }
        }
    }
    let order: BTreeMap<&str, i64> = keys
        .iter()
        .map(|k| (k.kid.as_str(), k.created_at))
        .collect();
    out.published
        .sort_by_key(|kid| order.get(kid.as_str()).copied().unwrap_or(0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kid: &str, created: i64, activates: i64) -> KeyMeta {
        KeyMeta {
            kid: kid.into(),
            alg: SigningAlg::ES256,
            created_at: created,
            activates_at: activates,
        }
    }

    #[test]
    fn publish_then_sign_then_retire() {
        let keys = [key("old", 0, 0), key("new", 100, 400)];
        // Before activation: old signs, both published.
        let p = plan(&keys, 200, 900);
        assert_eq!(p.active[&SigningAlg::ES256], "old");
        assert_eq!(p.published, ["old", "new"]);
        // After activation: new signs, old still published for its tokens' lifetime.
        let p = plan(&keys, 400, 900);
        assert_eq!(p.active[&SigningAlg::ES256], "new");
        assert_eq!(p.published, ["old", "new"]);
        let p = plan(&keys, 400 + 900 + 15, 900);
        assert_eq!(p.published, ["new"]);
    }

    #[test]
    fn no_key_no_signer() {
        let p = plan(&[key("future", 0, 50)], 10, 900);
        assert!(p.active.is_empty());
        assert_eq!(p.published, ["future"]);
    }
}
