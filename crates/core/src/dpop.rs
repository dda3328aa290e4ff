//! DPoP proofs (RFC 9449 §4) as pure decisions: the header (`typ` `dpop+jwt`, an asymmetric `alg` Keyward
//! accepts, a public `jwk` of the matching key type, no `crit`), the claims (`jti`, `htm`, `htu` after
//! normalisation, `iat` within [`IAT_MAX_AGE`] behind and [`IAT_MAX_AHEAD`] ahead, `ath`, `nonce`), and the
//! RFC 7638 thumbprint input of the proof's key. The signature, the hashes and spending the `jti` are the
//! caller's: this module has no crypto and no clock.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;
use serde_json::Value;

use crate::assertion::AssertionAlg;
use crate::jwt::{self, LEEWAY_SECONDS};

/// RFC 9449 §4.2: the `typ` header of a DPoP proof, compared exactly.
pub const TYP: &str = "dpop+jwt";
/// How far `iat` may lie behind now, in seconds: a proof is for one request, sent as it is made.
pub const IAT_MAX_AGE: i64 = 60;
/// How far `iat` may lie ahead of now, in seconds: the clock leeway Keyward allows everywhere.
pub const IAT_MAX_AHEAD: i64 = LEEWAY_SECONDS;
/// The longest `jti` accepted, so that what is kept to refuse a replay stays small.
pub const MAX_JTI: usize = 256;
/// JWK members that only a private (or symmetric) key has (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2).
pub use crate::registration::keys::PRIVATE_MEMBERS;

/// Why a proof is refused; the text is for the log and the `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    /// Not a compact JWS, or a part that does not decode.
    #[error("malformed DPoP proof: {0}")]
    Malformed(&'static str),
    /// `typ` is not `dpop+jwt` (RFC 9449 §4.3 item 4).
    #[error("the proof's typ must be dpop+jwt")]
    Type,
    /// `alg` is not an asymmetric algorithm Keyward accepts (RFC 9449 §4.3 item 5).
    #[error("algorithm `{0}` is not accepted for DPoP proofs")]
    Algorithm(String),
    /// A header Keyward does not accept (`crit`).
    #[error("unsupported header: {0}")]
    Header(&'static str),
    /// `jwk` is missing, private, of an unsupported type, or does not fit `alg` (RFC 9449 §4.3 items 6–7).
    #[error("unusable jwk: {0}")]
    Key(&'static str),
    /// A claim is missing or has the wrong type.
    #[error("malformed DPoP proof claims")]
    Claims,
    /// `jti` is empty or longer than [`MAX_JTI`].
    #[error("jti must be 1 to {MAX_JTI} characters")]
    Jti,
    /// `htm` is not the request's method (RFC 9449 §4.3 item 8).
    #[error("htm does not match the request's method")]
    Method,
    /// `htu` is not the request's URL (RFC 9449 §4.3 item 9).
    #[error("htu does not match the request's URL")]
    Url,
    /// `iat` lies more than [`IAT_MAX_AGE`] seconds behind now (RFC 9449 §4.3 item 11).
    #[error("the proof is too old (iat more than {IAT_MAX_AGE} s ago)")]
    TooOld,
    /// `iat` lies more than [`IAT_MAX_AHEAD`] seconds ahead of now.
    #[error("the proof is from the future (iat more than {IAT_MAX_AHEAD} s ahead)")]
    Ahead,
    /// `ath` is missing, or not the hash of the access token presented (RFC 9449 §4.3 item 12).
    #[error("ath {0}")]
    AccessTokenHash(&'static str),
    /// `nonce` is missing or not one the server gave (RFC 9449 §4.3 item 10, §8).
    #[error("the proof must carry the server's current nonce")]
    Nonce,
}

/// What the request the proof came with says, and what the proof must match.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The request's method, compared exactly with `htm`.
    pub method: &'a str,
    /// The URL the client sent the request to; its query and fragment are ignored.
    pub url: &'a str,
    /// `ath` the proof must carry: base64url SHA-256 of the access token presented (RFC 9449 §4.2), `None` when
    /// no access token comes with the request.
    pub ath: Option<&'a str>,
    /// The nonces the server accepts now (RFC 9449 §8); empty when the server asks for none.
    pub nonces: &'a [&'a str],
}

/// A proof whose header and claims pass, its signature not yet checked.
#[derive(Debug, Clone)]
pub struct Unverified<'a> {
    /// The algorithm it names, which fits the type of `jwk`.
    pub alg: AssertionAlg,
    /// The public key it carries, to check the signature with and to take the thumbprint of.
    pub jwk: Value,
    /// `header.payload`, as signed.
    pub signing_input: &'a str,
    /// The signature.
    pub signature: Vec<u8>,
    /// The `jti` to refuse again until [`Unverified::spend_until`].
    pub jti: String,
    /// `iat`, Unix seconds.
    pub iat: i64,
}

impl Unverified<'_> {
    /// Until when the `jti` must be remembered: past it, `iat` is too old anyway (Unix seconds).
    pub fn spend_until(&self) -> i64 {
        spend_until(self.iat)
    }
}

/// Until when a proof made at `iat` must stay spent: past the last second its `iat` still passes, with the
/// leeway to spare, so that a store that forgets an id at `spend_until` (`expires_at <= now`) and a cache that
/// keeps it through `spend_until` both refuse it as long as it could be accepted.
pub fn spend_until(iat: i64) -> i64 {
    iat.saturating_add(IAT_MAX_AGE)
        .saturating_add(LEEWAY_SECONDS)
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    jwk: Option<Value>,
    #[serde(default)]
    crit: Option<Value>,
}

/// RFC 9449 §4.2 claims; others are ignored.
#[derive(Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// RFC 9449 §4.3 items 1–12 but the signature (item 7's check with the key is the caller's, as is refusing a
/// replayed `jti`): checks a proof's header and claims against the request at `now`.
pub fn check<'a>(
    proof: &'a str,
    expected: &Expected<'_>,
    now: i64,
) -> Result<Unverified<'a>, DpopError> {
    let parsed = jwt::split(proof).map_err(DpopError::Malformed)?;
    // `jwt::Header` leaves `jwk` out on purpose (tokens never name their key), so the header is read again here.
    let encoded = proof.split('.').next().unwrap_or_default();
    let header: Header = B64
        .decode(encoded)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(DpopError::Malformed("malformed header"))?;
    if header.typ.as_deref() != Some(TYP) {
        return Err(DpopError::Type);
    }
    let alg = AssertionAlg::from_name(&header.alg)
        .ok_or_else(|| DpopError::Algorithm(header.alg.clone()))?;
    if header.crit.is_some() {
        return Err(DpopError::Header("crit"));
    }
    let jwk = header.jwk.ok_or(DpopError::Key("missing"))?;
    check_key(&jwk, alg)?;
    let claims: Claims = serde_json::from_slice(&parsed.payload).map_err(|_| DpopError::Claims)?;
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI {
        return Err(DpopError::Jti);
    }
    if claims.htm != expected.method {
        return Err(DpopError::Method);
    }
    let same_url = match (normalize_url(&claims.htu), normalize_url(expected.url)) {
        (Some(claimed), Some(actual)) => claimed == actual,
        _ => false,
    };
    if !same_url {
        return Err(DpopError::Url);
    }
    if claims.iat < now.saturating_sub(IAT_MAX_AGE) {
        return Err(DpopError::TooOld);
    }
    if claims.iat > now.saturating_add(IAT_MAX_AHEAD) {
        return Err(DpopError::Ahead);
    }
    if let Some(want) = expected.ath {
        match claims.ath.as_deref() {
            None => return Err(DpopError::AccessTokenHash("is missing")),
            Some(ath) if ath != want => {
                return Err(DpopError::AccessTokenHash(
                    "does not match the access token",
                ));
            }
            Some(_) => {}
        }
    }
    if !expected.nonces.is_empty()
        && !claims
            .nonce
            .as_deref()
            .is_some_and(|n| expected.nonces.contains(&n))
    {
        return Err(DpopError::Nonce);
    }
    Ok(Unverified {
        alg,
        jwk,
        signing_input: parsed.signing_input,
        signature: parsed.signature,
        jti: claims.jti,
        iat: claims.iat,
    })
}

/// RFC 9449 §4.3 item 6–7 and RFC 8725 §3.1: a public key whose type fits `alg` (P-256 for ES256, RSA for
/// RS256 and PS256, Ed25519 for EdDSA); the key's size is checked where it is parsed.
fn check_key(jwk: &Value, alg: AssertionAlg) -> Result<(), DpopError> {
    let Value::Object(members) = jwk else {
        return Err(DpopError::Key("not a JSON object"));
    };
    if PRIVATE_MEMBERS.iter().any(|m| members.contains_key(*m)) {
        return Err(DpopError::Key("it holds private key members"));
    }
    let text = |name: &str| members.get(name).and_then(Value::as_str);
    let fits = match (text("kty"), alg) {
        (Some("EC"), AssertionAlg::ES256) => text("crv") == Some("P-256"),
        (Some("OKP"), AssertionAlg::EdDSA) => text("crv") == Some("Ed25519"),
        (Some("RSA"), AssertionAlg::RS256 | AssertionAlg::PS256) => true,
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(DpopError::Key("its type does not fit alg"))
    }
}

/// RFC 7638 §3: the text whose SHA-256 is the key's thumbprint: the required members of an EC, RSA or OKP
/// (RFC 8037 §2) public key, in lexicographic order, without whitespace. The caller hashes it.
pub fn thumbprint_input(jwk: &Value) -> Result<String, DpopError> {
    let member = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .map(|s| Value::from(s).to_string())
            .ok_or(DpopError::Key("a required member is missing"))
    };
    Ok(match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            member("crv")?,
            member("x")?,
            member("y")?
        ),
        Some("RSA") => format!(
            r#"{{"e":{},"kty":"RSA","n":{}}}"#,
            member("e")?,
            member("n")?
        ),
        Some("OKP") => format!(
            r#"{{"crv":{},"kty":"OKP","x":{}}}"#,
            member("crv")?,
            member("x")?
        ),
        _ => return Err(DpopError::Key("unsupported kty")),
    })
}

/// RFC 9449 §4.3 item 9 with RFC 3986 §6.2.2 (syntax-based) and §6.2.3 (scheme-based) normalisation: an http(s)
/// URL without its query and fragment, scheme and host in lower case, the default port dropped, an empty path
/// as `/`, dot segments removed, percent-encodings in upper case and unreserved characters decoded. `None` for
/// anything else (another scheme, user information, no host, a bad port).
pub fn normalize_url(url: &str) -> Option<String> {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    if authority.contains('@') {
        return None;
    }
    // An IPv6 literal carries colons of its own: the port is only after the closing bracket.
    let port_at = authority
        .rfind(':')
        .filter(|&i| !authority[i..].contains(']'));
    let (host, port) = port_at.map_or((authority, ""), |i| (&authority[..i], &authority[i + 1..]));
    if host.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut out = format!("{scheme}://{}", host.to_ascii_lowercase());
    let port = port.trim_start_matches('0');
    if !port.is_empty() && port != default_port {
        out.push(':');
        out.push_str(port);
    }
    let path = normalize_percent(path)?;
    let path = remove_dot_segments(&path);
    out.push_str(if path.is_empty() { "/" } else { &path });
    Some(out)
}

/// RFC 3986 §6.2.2.1–6.2.2.2: percent-encodings in upper case, unreserved characters decoded.
fn normalize_percent(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(char::from(bytes[i]));
            i += 1;
            continue;
        }
        let hex = path.get(i + 1..i + 3)?;
        let byte = u8::from_str_radix(hex, 16).ok()?;
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push_str(&hex.to_ascii_uppercase());
        }
        i += 3;
    }
    // Non-ASCII bytes were pushed one by one above; a path with any is not a URI (RFC 3986 §2).
    path.is_ascii().then_some(out)
}

/// RFC 3986 §5.2.4: `.` and `..` segments resolved.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, s) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *s {
            "." | ".." => {
                if *s == ".." {
                    out.pop();
                }
                // A dot segment at the end leaves a directory: `/a/b/..` is `/a/`.
                if last {
                    out.push("");
                }
            }
            other => out.push(other),
        }
    }
    if segments.is_empty() {
        return String::new();
    }
    let mut text = String::with_capacity(path.len());
    for s in out {
        text.push('/');
        text.push_str(s);
    }
    if text.is_empty() {
        text.push('/');
    }
    text
}

#[cfg(test)]
mod tests;
