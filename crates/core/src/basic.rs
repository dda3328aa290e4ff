//! HTTP Basic client authentication as RFC 6749 §2.3.1 defines it: the client id and secret are each
//! form-urlencoded, joined by `:`, then base64-encoded. A header that cannot be read this way is `invalid_request`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

use crate::error::OAuthError;
use crate::form::decode_component;

/// Credentials read from an `Authorization: Basic` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    /// The decoded client identifier.
    pub client_id: String,
    /// The decoded client secret.
    pub client_secret: String,
}

/// Parses the value of an `Authorization` header whose scheme is Basic (case-insensitive, RFC 7617 §2).
/// Returns `Ok(None)` when the scheme is not Basic.
pub fn parse(header: &str) -> Result<Option<BasicCredentials>, OAuthError> {
    let Some((scheme, rest)) = header.split_once(' ') else {
        return if header.eq_ignore_ascii_case("basic") {
            Err(malformed())
        } else {
            Ok(None)
        };
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let encoded = rest.trim_matches(' ');
    // Padding is required by RFC 7617, but some clients strip it; both spellings decode the same bytes.
    let raw = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
        .map_err(|_| malformed())?;
    let raw = String::from_utf8(raw).map_err(|_| malformed())?;
    // The id cannot contain a raw `:` (it is form-encoded as %3A), so the first one separates id and secret.
    let (id, secret) = raw.split_once(':').ok_or_else(malformed)?;
    let client_id = decode_component(id).map_err(|e| malformed_part("client id", &e))?;
    let client_secret =
        decode_component(secret).map_err(|e| malformed_part("client secret", &e))?;
    if client_id.is_empty() {
        return Err(malformed());
    }
    Ok(Some(BasicCredentials {
        client_id,
        client_secret,
    }))
}

/// Encodes credentials the RFC 6749 §2.3.1 way; used by clients and tests.
pub fn encode(client_id: &str, client_secret: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!(
            "{}:{}",
            form_encode(client_id),
            form_encode(client_secret)
        ))
    )
}

/// `application/x-www-form-urlencoded` encoding of one component.
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn malformed() -> OAuthError {
    OAuthError::invalid_request("malformed Basic authorization header")
}

/// A part that does not decode (a broken `%` escape, not UTF-8, a control character such as NUL): the message says
/// which part and why, never what it held.
fn malformed_part(part: &str, e: &OAuthError) -> OAuthError {
    OAuthError::invalid_request(format!(
        "malformed Basic authorization header: the {part}: {}",
        e.description
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_rfc6749_encoding() {
        let h = encode("id:with %+ été", "s:e c+r%t");
        let c = parse(&h).unwrap().unwrap();
        assert_eq!(c.client_id, "id:with %+ été");
        assert_eq!(c.client_secret, "s:e c+r%t");
    }

    #[test]
    fn other_schemes_are_not_basic() {
        assert_eq!(parse("Bearer abc").unwrap(), None);
    }

    #[test]
    fn scheme_is_case_insensitive_and_padding_optional() {
        let c = parse("basic YTpi").unwrap().unwrap();
        assert_eq!((c.client_id.as_str(), c.client_secret.as_str()), ("a", "b"));
        assert!(parse("BASIC YTpiYw").unwrap().is_some());
    }

    #[test]
    fn broken_headers_are_invalid_request() {
        for bad in [
            "Basic",
            "Basic !!!",
            "Basic YWJj",
            "Basic OmI=",
            "Basic YTolenp6",
        ] {
            // "YWJj" = "abc" (no colon), "OmI=" = ":b" (empty id), "YTolenp6" = "a:%zz"
            assert_eq!(
                parse(bad).unwrap_err().code,
                crate::ErrorCode::InvalidRequest,
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn round_trips(id in "\\PC{1,30}", secret in "\\PC{0,30}") {
            prop_assume!(!id.chars().any(char::is_control) && !secret.chars().any(char::is_control));
            let c = parse(&encode(&id, &secret)).unwrap().unwrap();
            prop_assert_eq!(c.client_id, id);
            prop_assert_eq!(c.client_secret, secret);
        }

        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse(&s);
        }
    }
}
