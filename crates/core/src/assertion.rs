//! Client assertions (`private_key_jwt`, RFC 7523 §2.2 and §3, RFC 7521 §4.2) as pure decisions: the header (an
//! asymmetric algorithm Keyward accepts, no `crit`, not another kind of JWT), and the claims (`iss` and `sub` the
//! client, every `aud` one of Keyward's own names, `exp` present and at most [`MAX_AHEAD`] away, `iat` and `nbf`
//! within the leeway, a `jti` to spend once). The signature, the key's own algorithm and spending the `jti` across
//! the cluster are the server's; every refusal becomes the same `invalid_client` there, and the reason here is
//! for its log.

use serde::Deserialize;

use crate::jwt::{self, Header, LEEWAY_SECONDS};
use crate::registration::keys::{FederatedCredential, conditions_met};

/// `client_assertion_type` for a JWT client assertion (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The furthest `exp` may lie ahead of now: assertions are for one request, so their life is short.
pub const MAX_AHEAD: i64 = 300;
/// The longest `jti` accepted, so that what is stored to spend it stays small.
pub const MAX_JTI: usize = 256;

/// The algorithms a client's public key may sign assertions with (no `none`, no HMAC: RFC 8725 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionAlg {
    /// ECDSA P-256 SHA-256.
    ES256,
    /// RSASSA-PSS SHA-256.
    PS256,
    /// RSASSA-PKCS1-v1_5 SHA-256.
    RS256,
    /// Ed25519.
    EdDSA,
}

impl AssertionAlg {
    /// The algorithm a header names, if Keyward accepts it for assertions.
    pub fn from_name(alg: &str) -> Option<Self> {
        Some(match alg {
            "ES256" => Self::ES256,
            "PS256" => Self::PS256,
            "RS256" => Self::RS256,
            "EdDSA" => Self::EdDSA,
            _ => return None,
        })
    }

    /// Its JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::PS256 => "PS256",
            Self::RS256 => "RS256",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Every accepted algorithm, as discovery lists them
    /// (`token_endpoint_auth_signing_alg_values_supported`, RFC 8414 §2).
    pub const ALL: [AssertionAlg; 4] = [Self::ES256, Self::PS256, Self::RS256, Self::EdDSA];
}

/// Why an assertion is refused: for the log only, never for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// Not a compact JWS, or a part that does not decode.
    #[error("malformed assertion: {0}")]
    Malformed(&'static str),
    /// `alg` is not one Keyward accepts for assertions.
    #[error("algorithm `{0}` is not accepted for client assertions")]
    Algorithm(String),
    /// A header Keyward does not accept (`crit`, or the `typ` of another kind of JWT).
    #[error("unsupported header: {0}")]
    Header(&'static str),
    /// A claim is missing or has the wrong type.
    #[error("malformed claims")]
    Claims,
    /// `iss` or `sub` is not the client.
    #[error("iss and sub must both be the client id")]
    Subject,
    /// An `aud` value is not one of Keyward's names.
    #[error("aud must name this server (its issuer or token endpoint) and nothing else")]
    Audience,
    /// `exp` has passed.
    #[error("expired")]
    Expired,
    /// `exp` lies further ahead than [`MAX_AHEAD`].
    #[error("exp is more than {MAX_AHEAD} s ahead")]
    TooLong,
    /// `iat` or `nbf` lies ahead of now.
    #[error("not yet valid (iat or nbf in the future)")]
    NotYetValid,
    /// `jti` is missing, empty or longer than [`MAX_JTI`].
    #[error("jti must be present, 1 to {MAX_JTI} characters")]
    Jti,
    /// A federated token from an issuer none of the client's credentials trusts.
    #[error("no federated credential of the client trusts this issuer")]
    Issuer,
    /// A federated token whose audience or claims meet none of the credentials for its issuer.
    #[error("the token's audience or claims meet none of the client's federated credentials")]
    Conditions,
}

/// One name or several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims read from an assertion; unknown claims are ignored (RFC 7523 §3 item 9).
#[derive(Debug, Clone, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
}

/// An assertion (a client's own, or a federated token) whose header and claims pass, its signature not yet
/// checked.
#[derive(Debug)]
pub struct Unverified<'a> {
    /// The algorithm it claims; the key it is checked with must be bound to the same one.
    pub alg: AssertionAlg,
    /// `kid`, to pick the key among the client's (or the issuer's).
    pub kid: Option<String>,
    /// `header.payload`, as signed.
    pub signing_input: &'a str,
    /// The signature.
    pub signature: Vec<u8>,
    /// The `jti` to spend once: always there in a client's own assertion; in a federated token when the platform
    /// sets one (GitHub's tokens do; not every platform's do).
    pub jti: Option<String>,
    /// Until when the `jti` must stay spent: `exp` plus the leeway (Unix seconds).
    pub spend_until: i64,
}

/// Reads the client id an assertion names (`sub`, or `iss`) before anything is trusted, so that the client's keys
/// can be found when the request carries no `client_id` (RFC 7521 §4.2: it is optional).
pub fn claimed_client(assertion: &str) -> Option<String> {
    let parsed = jwt::split(assertion).ok()?;
    let claims: Claims = serde_json::from_slice(&parsed.payload).ok()?;
    Some(claims.sub)
}

/// Checks an assertion's header and claims for `client_id` at `now`; `audiences` are Keyward's own names (its
/// issuer and its token endpoint URLs).
pub fn check<'a>(
    assertion: &'a str,
    client_id: &str,
    audiences: &[&str],
    now: i64,
) -> Result<Unverified<'a>, AssertionError> {
    let parsed = jwt::split(assertion).map_err(AssertionError::Malformed)?;
    let alg = check_header(&parsed.header)?;
    let claims: Claims =
        serde_json::from_slice(&parsed.payload).map_err(|_| AssertionError::Claims)?;
    if claims.iss != client_id || claims.sub != client_id {
        return Err(AssertionError::Subject);
    }
    // Every value must be one of ours, so an assertion meant for another server (or for several, one an
    // attacker's) is never accepted here.
    let values = match &claims.aud {
        Audience::One(a) => std::slice::from_ref(a),
        Audience::Many(many) => many.as_slice(),
    };
    if values.is_empty() || !values.iter().all(|a| audiences.contains(&a.as_str())) {
        return Err(AssertionError::Audience);
    }
    if claims.exp.saturating_add(LEEWAY_SECONDS) <= now {
        return Err(AssertionError::Expired);
    }
    if claims.exp > now + MAX_AHEAD + LEEWAY_SECONDS {
        return Err(AssertionError::TooLong);
    }
    let future = |t: Option<i64>| t.is_some_and(|t| t > now + LEEWAY_SECONDS);
    if future(claims.iat) || future(claims.nbf) {
        return Err(AssertionError::NotYetValid);
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI)
        .ok_or(AssertionError::Jti)?;
    Ok(Unverified {
        alg,
        kid: parsed.header.kid,
        signing_input: parsed.signing_input,
        signature: parsed.signature,
        jti: Some(jti),
        spend_until: claims.exp.saturating_add(LEEWAY_SECONDS),
    })
}

/// A federated token (a workload's platform token presented as its client assertion) whose header and claims
/// pass for one of the client's federated credentials, its signature not yet checked.
#[derive(Debug)]
pub struct Federated<'a> {
    /// The token, to check with the issuer's key.
    pub token: Unverified<'a>,
    /// The credential it met (an index into the list given).
    pub credential: usize,
}

/// The issuer a token names (`iss`), read before anything is trusted, to tell a client's own assertion (`iss`
/// is the client) from a federated token.
pub fn claimed_issuer(assertion: &str) -> Option<String> {
    let parsed = jwt::split(assertion).ok()?;
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&parsed.payload).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// Checks a federated token's header and claims against a client's credentials at `now`: an accepted asymmetric
/// `alg`, `iss` exactly a credential's issuer, its audience among `aud`, `exp` present and not passed, `iat` and
/// `nbf` not ahead, and the credential's conditions on `sub` and other claims. Unlike a client's own assertion,
/// `exp` may lie far ahead (a platform decides its tokens' lives) and `jti` may be absent.
pub fn check_federated<'a>(
    token: &'a str,
    credentials: &[FederatedCredential],
    now: i64,
) -> Result<Federated<'a>, AssertionError> {
    let parsed = jwt::split(token).map_err(AssertionError::Malformed)?;
    let alg = check_header(&parsed.header)?;
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&parsed.payload).map_err(|_| AssertionError::Claims)?;
    let text = |name: &str| claims.get(name).and_then(serde_json::Value::as_str);
    let time = |name: &str| claims.get(name).map(serde_json::Value::as_i64);
    let iss = text("iss").ok_or(AssertionError::Claims)?;
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => vec![a.as_str()],
        Some(serde_json::Value::Array(many)) => many
            .iter()
            .map(|a| a.as_str().ok_or(AssertionError::Claims))
            .collect::<Result<_, _>>()?,
        _ => return Err(AssertionError::Claims),
    };
    let exp = time("exp").flatten().ok_or(AssertionError::Claims)?;
    let (iat, nbf) = (time("iat"), time("nbf"));
    if iat.is_some_and(|t| t.is_none()) || nbf.is_some_and(|t| t.is_none()) {
        return Err(AssertionError::Claims);
    }
    if exp.saturating_add(LEEWAY_SECONDS) <= now {
        return Err(AssertionError::Expired);
    }
    let future = |t: Option<Option<i64>>| t.flatten().is_some_and(|t| t > now + LEEWAY_SECONDS);
    if future(iat) || future(nbf) {
        return Err(AssertionError::NotYetValid);
    }
    let jti = match claims.get("jti") {
        None => None,
        Some(serde_json::Value::String(j)) if !j.is_empty() && j.len() <= MAX_JTI => {
            Some(j.clone())
        }
        Some(_) => return Err(AssertionError::Jti),
    };
    let of_issuer: Vec<usize> = (0..credentials.len())
        .filter(|&i| credentials[i].issuer == iss)
        .collect();
    if of_issuer.is_empty() {
        return Err(AssertionError::Issuer);
    }
    let credential = of_issuer
        .into_iter()
        .find(|&i| {
            audiences.contains(&credentials[i].audience.as_str())
                && conditions_met(&credentials[i], &claims)
        })
        .ok_or(AssertionError::Conditions)?;
    Ok(Federated {
        token: Unverified {
            alg,
            kid: parsed.header.kid,
            signing_input: parsed.signing_input,
            signature: parsed.signature,
            jti,
            spend_until: exp.saturating_add(LEEWAY_SECONDS),
        },
        credential,
    })
}

fn check_header(header: &Header) -> Result<AssertionAlg, AssertionError> {
    let alg = AssertionAlg::from_name(&header.alg)
        .ok_or_else(|| AssertionError::Algorithm(header.alg.clone()))?;
    if header.crit.is_some() {
        return Err(AssertionError::Header("crit"));
    }
    // An access token or a DPoP proof is not a client assertion, whatever its claims say (RFC 8725 §3.11).
    if let Some(typ) = &header.typ {
        let typ = typ.to_ascii_lowercase();
        let typ = typ.strip_prefix("application/").unwrap_or(&typ);
        if !matches!(typ, "jwt" | "client-authentication+jwt") {
            return Err(AssertionError::Header("typ"));
        }
    }
    Ok(alg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const NOW: i64 = 1_800_000_000;
    const ISSUER: &str = "https://kw.example";
    const TOKEN_URL: &str = "https://kw.example/oauth2/token";

    use crate::jwt::testing::jws;

    fn good() -> Value {
        json!({"iss": "c1", "sub": "c1", "aud": TOKEN_URL, "exp": NOW + 60, "iat": NOW, "jti": "j-1"})
    }

    fn with(claims: Value, change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
        let mut c = claims;
        if let Value::Object(m) = &mut c {
            change(m);
        }
        c
    }

    fn run(header: Value, claims: Value) -> Result<(), AssertionError> {
        let t = jws(header, claims);
        check(&t, "c1", &[ISSUER, TOKEN_URL], NOW).map(|_| ())
    }

    fn es256() -> Value {
        json!({"alg": "ES256", "kid": "k1"})
    }

    #[test]
    fn a_good_assertion_passes_with_what_the_server_needs() {
        let t = jws(es256(), good());
        let u = check(&t, "c1", &[ISSUER, TOKEN_URL], NOW).unwrap();
        assert_eq!(
            (
                u.alg,
                u.kid.as_deref(),
                u.jti.as_deref().unwrap_or_default()
            ),
            (AssertionAlg::ES256, Some("k1"), "j-1")
        );
        assert_eq!(u.spend_until, NOW + 60 + LEEWAY_SECONDS);
        assert_eq!(u.signature, b"sig");
        assert_eq!(claimed_client(&t).as_deref(), Some("c1"));
        // The issuer as the audience, alone or with the token endpoint.
        assert!(
            run(
                es256(),
                with(good(), |m| {
                    m.insert("aud".into(), json!(ISSUER));
                })
            )
            .is_ok()
        );
        assert!(
            run(
                es256(),
                with(good(), |m| {
                    m.insert("aud".into(), json!([ISSUER, TOKEN_URL]));
                })
            )
            .is_ok()
        );
        for typ in [
            "JWT",
            "client-authentication+jwt",
            "application/client-authentication+jwt",
        ] {
            assert!(
                run(json!({"alg": "EdDSA", "typ": typ}), good()).is_ok(),
                "{typ}"
            );
        }
    }

    #[test]
    fn forged_or_wrong_values_are_refused() {
        use AssertionError as E;
        for alg in ["none", "HS256", "ES384", "RS512", ""] {
            assert_eq!(
                run(json!({"alg": alg}), good()),
                Err(E::Algorithm(alg.into())),
                "{alg}"
            );
        }
        assert_eq!(
            run(json!({"alg": "ES256", "crit": ["x"]}), good()),
            Err(E::Header("crit"))
        );
        for typ in ["at+jwt", "dpop+jwt", "application/at+jwt"] {
            assert_eq!(
                run(json!({"alg": "ES256", "typ": typ}), good()),
                Err(E::Header("typ")),
                "{typ}"
            );
        }
        let cases: [(&str, Value, E); 9] = [
            ("iss", json!("c2"), E::Subject),
            ("sub", json!("c2"), E::Subject),
            ("aud", json!("https://other.example"), E::Audience),
            (
                "aud",
                json!([TOKEN_URL, "https://attacker.example"]),
                E::Audience,
            ),
            ("aud", json!([]), E::Audience),
            ("exp", json!(NOW - LEEWAY_SECONDS), E::Expired),
            (
                "exp",
                json!(NOW + MAX_AHEAD + LEEWAY_SECONDS + 1),
                E::TooLong,
            ),
            ("nbf", json!(NOW + LEEWAY_SECONDS + 1), E::NotYetValid),
            ("iat", json!(NOW + LEEWAY_SECONDS + 1), E::NotYetValid),
        ];
        for (claim, value, error) in cases {
            let claims = with(good(), |m| {
                m.insert(claim.into(), value.clone());
            });
            assert_eq!(run(es256(), claims), Err(error), "{claim} = {value}");
        }
        for jti in [json!(""), json!("x".repeat(MAX_JTI + 1))] {
            assert_eq!(
                run(
                    es256(),
                    with(good(), |m| {
                        m.insert("jti".into(), jti);
                    })
                ),
                Err(E::Jti)
            );
        }
        assert_eq!(
            run(
                es256(),
                with(good(), |m| {
                    m.remove("jti");
                })
            ),
            Err(E::Jti)
        );
        for claim in ["exp", "iss", "aud"] {
            assert_eq!(
                run(
                    es256(),
                    with(good(), |m| {
                        m.remove(claim);
                    })
                ),
                Err(E::Claims),
                "{claim}"
            );
        }
        assert_eq!(
            run(
                es256(),
                with(good(), |m| {
                    m.insert("exp".into(), json!("soon"));
                })
            ),
            Err(E::Claims)
        );
        assert_eq!(
            check("a.b", "c1", &[ISSUER], NOW).unwrap_err(),
            E::Malformed("not a compact JWS")
        );
    }

    #[test]
    fn federated_tokens_must_meet_a_credential() {
        use crate::registration::keys::FederatedCredential;
        use std::collections::BTreeMap;
        const GH: &str = "https://token.actions.githubusercontent.com";
        let creds = vec![FederatedCredential {
            name: "deploy".into(),
            issuer: GH.into(),
            audience: "https://kw.example".into(),
            subject: None,
            claims: BTreeMap::from([("repository".into(), "acme/shop".into())]),
        }];
        let good = json!({"iss": GH, "sub": "repo:acme/shop:ref:refs/heads/main", "aud": "https://kw.example",
                          "repository": "acme/shop", "exp": NOW + 3_000, "iat": NOW, "jti": "g-1"});
        let rs = json!({"alg": "RS256", "kid": "gh"});
        let t = jws(rs.clone(), good.clone());
        let f = check_federated(&t, &creds, NOW).unwrap();
        assert_eq!(
            (f.credential, f.token.jti.as_deref(), f.token.alg),
            (0, Some("g-1"), AssertionAlg::RS256)
        );
        assert_eq!(claimed_issuer(&t).as_deref(), Some(GH));
        let run =
            |claims: Value| check_federated(&jws(rs.clone(), claims), &creds, NOW).map(|_| ());
        use AssertionError as E;
        let cases: [(&str, Value, E); 6] = [
            ("iss", json!("https://evil.example"), E::Issuer),
            ("aud", json!("https://other.example"), E::Conditions),
            ("repository", json!("acme/other"), E::Conditions),
            ("exp", json!(NOW - LEEWAY_SECONDS), E::Expired),
            ("nbf", json!(NOW + 60), E::NotYetValid),
            ("jti", json!(7), E::Jti),
        ];
        for (claim, value, error) in cases {
            let claims = with(good.clone(), |m| {
                m.insert(claim.into(), value.clone());
            });
            assert_eq!(run(claims), Err(error), "{claim} = {value}");
        }
        // No jti is allowed; HS256 and none never are.
        assert!(
            run(with(good.clone(), |m| {
                m.remove("jti");
            }))
            .is_ok()
        );
        for alg in ["HS256", "none"] {
            let t = jws(json!({"alg": alg}), good.clone());
            assert!(check_federated(&t, &creds, NOW).is_err());
        }
    }
}
