//! JWT access tokens (RFC 9068) as text: building the signing input, splitting a compact JWS (RFC 7515 §7.1)
//! and validating claims. The signature itself is made and checked by the server with its crypto library.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, OAuthError};
use crate::resource::SigningAlg;

/// RFC 9068 §2.1: the `typ` header of an access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// Clock leeway allowed when checking `exp`, `nbf` and `iat` (SECURITY.md).
pub const LEEWAY_SECONDS: i64 = 15;
/// Longest token Keyward will consider parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// RFC 9068 §2.2 claims of a Keyward access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: for client_credentials, the client id.
    pub sub: String,
    /// Audience: the resource identifier.
    pub aud: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Unique token id, the key of the revocation denylist.
    pub jti: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scopes, space-delimited; absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Not before, Unix seconds (RFC 7519 §4.1.5). Keyward does not set it; a verifier honours it when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Confirmation (RFC 7800 §3.1, RFC 9449 §6.1): the key the token is bound to. A token that has it is good
    /// only with a DPoP proof signed by that key; absent for bearer tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// RFC 9449 §6.1: `cnf` of a DPoP-bound token. Any other confirmation method (such as mTLS's `x5t#S256`) makes
/// the claims unreadable, so a token bound in a way Keyward cannot check is refused rather than taken as bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirmation {
    /// The base64url SHA-256 JWK thumbprint (RFC 7638) of the proof key.
    pub jkt: String,
}

impl AccessTokenClaims {
    /// Whether the token grants `scope` (RFC 9068 §2.2.3, space-delimited `scope`).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|granted| granted == scope))
    }

    /// RFC 9068 §4: the token must name this resource server in `aud`.
    pub fn check_audience(&self, accepted: &[String]) -> Result<(), OAuthError> {
        if accepted.contains(&self.aud) {
            Ok(())
        } else {
            Err(invalid("wrong audience"))
        }
    }
}

/// The base64url JOSE header for a key: computed once per key, not per token.
pub fn encode_header(alg: SigningAlg, kid: &str) -> String {
    let header = serde_json::json!({ "alg": alg.as_str(), "typ": ACCESS_TOKEN_TYP, "kid": kid });
    B64.encode(header.to_string())
}

/// RFC 7515 §5.1: the signing input `header.claims`.
pub fn signing_input(
    encoded_header: &str,
    claims: &AccessTokenClaims,
) -> Result<String, serde_json::Error> {
    let json = serde_json::to_vec(claims)?;
    let mut out = String::with_capacity(encoded_header.len() + 1 + json.len() * 4 / 3 + 4);
    out.push_str(encoded_header);
    out.push('.');
    B64.encode_string(json, &mut out);
    Ok(out)
}

/// Appends the signature to a signing input, giving the compact serialization.
pub fn compact(signing_input: String, signature: &[u8]) -> String {
    let mut out = signing_input;
    out.push('.');
    B64.encode_string(signature, &mut out);
    out
}

/// The protected header members Keyward reads. `jku`, `x5u` and `jwk` are deliberately not read: a token never
/// names where its key comes from (SECURITY.md).
#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    /// Algorithm.
    pub alg: String,
    /// Type; RFC 9068 §4 requires `at+jwt` (or `application/at+jwt`).
    #[serde(default)]
    pub typ: Option<String>,
    /// Key id.
    #[serde(default)]
    pub kid: Option<String>,
    /// Critical extensions: Keyward understands none, so any is a reason to refuse (RFC 7515 §4.1.11).
    #[serde(default)]
    pub crit: Option<serde_json::Value>,
}

/// A compact JWS split into its parts, nothing verified yet.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// The decoded header.
    pub header: Header,
    /// `header.payload` as it was signed.
    pub signing_input: &'a str,
    /// The decoded payload.
    pub payload: Vec<u8>,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

fn invalid(description: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidToken, description)
}

/// Splits a compact JWS and checks the header: `typ` must be `at+jwt`, `crit` absent, `kid` present.
pub fn parse(token: &str) -> Result<Parsed<'_>, OAuthError> {
    let parsed = split(token).map_err(invalid)?;
    let typ_ok = parsed.header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || t.eq_ignore_ascii_case("application/at+jwt")
    });
    if !typ_ok {
        return Err(invalid("not an access token (typ)"));
    }
    if parsed.header.crit.is_some() || parsed.header.kid.is_none() {
        return Err(invalid("unsupported header"));
    }
    Ok(parsed)
}

/// Splits a compact JWS (RFC 7515 §7.1) of at most [`MAX_TOKEN_LEN`] bytes into its decoded parts, checking
/// nothing of the header; the error says what is malformed.
pub fn split(token: &str) -> Result<Parsed<'_>, &'static str> {
    if token.len() > MAX_TOKEN_LEN {
        return Err("token too long");
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a compact JWS");
    };
    let header: Header = B64
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("malformed header")?;
    let payload = B64.decode(p).map_err(|_| "malformed payload")?;
    let signature = B64.decode(s).map_err(|_| "malformed signature")?;
    Ok(Parsed {
        header,
        signing_input: &token[..h.len() + 1 + p.len()],
        payload,
        signature,
    })
}

/// Validates the claims of a token whose signature has been verified: types, exact `iss`, and time with
/// [`LEEWAY_SECONDS`]. RFC 9068 §4.
pub fn validate_claims(
    payload: &[u8],
    issuer: &str,
    now: i64,
) -> Result<AccessTokenClaims, OAuthError> {
    // Typed decoding refuses a claim of the wrong type (a string `exp`, a numeric `iss`), missing claims included.
    let claims: AccessTokenClaims =
        serde_json::from_slice(payload).map_err(|_| invalid("malformed claims"))?;
    if claims.iss != issuer {
        return Err(invalid("wrong issuer"));
    }
    check_times(&claims, now)?;
    Ok(claims)
}

/// RFC 7519 §4.1.4–4.1.6: `exp`, `iat` and `nbf` against `now`, with [`LEEWAY_SECONDS`].
pub fn check_times(claims: &AccessTokenClaims, now: i64) -> Result<(), OAuthError> {
    if claims.exp.saturating_add(LEEWAY_SECONDS) <= now {
        return Err(invalid("token expired"));
    }
    if claims.iat > now + LEEWAY_SECONDS {
        return Err(invalid("token issued in the future"));
    }
    if claims.nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECONDS) {
        return Err(invalid("token not yet valid"));
    }
    Ok(())
}

/// What the unit tests of JWS-shaped inputs (assertions, DPoP proofs) build them with.
#[cfg(test)]
pub(crate) mod testing {
    use super::B64;
    use base64::Engine;
    use serde_json::Value;

    /// A compact JWS of `header` and `claims` with the signature `sig`: the checks before the signature's.
    pub(crate) fn jws(header: Value, claims: Value) -> String {
        format!(
            "{}.{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string()),
            B64.encode(b"sig")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://kw".into(),
            sub: "c".into(),
            aud: "api".into(),
            exp,
            iat: exp - 900,
            jti: "j".into(),
            client_id: "c".into(),
            scope: Some("a b".into()),
            nbf: None,
            cnf: None,
        }
    }

    #[test]
    fn round_trip_and_time_checks() {
        let input = signing_input(&encode_header(SigningAlg::ES256, "k1"), &claims(1_000)).unwrap();
        let token = compact(input.clone(), b"sig");
        let parsed = parse(&token).unwrap();
        assert_eq!(parsed.signing_input, input);
        assert_eq!(parsed.header.kid.as_deref(), Some("k1"));
        assert!(validate_claims(&parsed.payload, "https://kw", 1_014).is_ok());
        assert_eq!(
            validate_claims(&parsed.payload, "https://kw", 1_015)
                .unwrap_err()
                .code,
            ErrorCode::InvalidToken
        );
        assert!(validate_claims(&parsed.payload, "https://kw/", 500).is_err());
    }

    #[test]
    fn scope_audience_and_nbf() {
        let mut c = claims(1_000);
        assert!(c.has_scope("a") && c.has_scope("b") && !c.has_scope("a b") && !c.has_scope(""));
        assert!(c.check_audience(&["x".into(), "api".into()]).is_ok());
        assert!(c.check_audience(&["x".into()]).is_err());
        c.nbf = Some(600);
        let payload = serde_json::to_vec(&c).unwrap();
        assert!(validate_claims(&payload, "https://kw", 585).is_ok());
        assert!(validate_claims(&payload, "https://kw", 584).is_err());
    }

    #[test]
    fn refuses_wrong_typ_crit_and_types() {
        let h = B64.encode(r#"{"alg":"ES256","typ":"JWT","kid":"k"}"#);
        assert!(parse(&format!("{h}.e30.c2ln")).is_err());
        let h = B64.encode(r#"{"alg":"ES256","typ":"at+jwt","kid":"k","crit":["x"]}"#);
        assert!(parse(&format!("{h}.e30.c2ln")).is_err());
        let bad =
            br#"{"iss":"i","sub":"s","aud":"a","exp":"10","iat":1,"jti":"j","client_id":"c"}"#;
        assert!(validate_claims(bad, "i", 0).is_err());
        assert!(parse("a.b").is_err());
        assert!(parse("....").is_err());
    }
}
