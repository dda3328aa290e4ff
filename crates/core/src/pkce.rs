//! Proof Key for Code Exchange (RFC 7636), S256 only: `plain` is refused (RFC 9700 §2.1.1), and a code issued with a
//! challenge can only be redeemed with the verifier that hashes to it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use crate::error::{ErrorCode, OAuthError};

/// The one challenge method Keyward accepts.
pub const S256: &str = "S256";

/// RFC 7636 §4.1 `unreserved` characters, the alphabet of verifiers (and of base64url challenges, a subset).
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 7636 §4.3: checks the authorization request's `code_challenge` and `code_challenge_method`. A missing
/// method would mean `plain` (§4.3), which is refused like any method other than `S256`. An S256 challenge is the
/// base64url encoding of 32 bytes: exactly 43 characters.
pub fn check_challenge(
    challenge: Option<&str>,
    method: Option<&str>,
) -> Result<String, OAuthError> {
    let challenge = challenge.ok_or_else(|| {
        OAuthError::invalid_request("code_challenge is required (PKCE, RFC 7636, with method S256)")
    })?;
    match method {
        Some(S256) => {}
        Some("plain") | None => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method must be S256: plain is not accepted",
            ));
        }
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            ));
        }
    }
    if challenge.len() != 43
        || !challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(OAuthError::invalid_request(
            "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
        ));
    }
    Ok(challenge.to_owned())
}

/// RFC 7636 §4.6: the verifier sent to the token endpoint must hash to the stored challenge. `sha256` is the
/// server's hash function (core does no cryptography of its own). Any failure is `invalid_grant`, the error for a
/// code that does not verify (RFC 7636 §4.6, RFC 6749 §5.2).
pub fn verify(
    verifier: Option<&str>,
    challenge: &str,
    sha256: impl FnOnce(&[u8]) -> [u8; 32],
) -> Result<(), OAuthError> {
    let Some(verifier) = verifier else {
        return Err(OAuthError::new(
            ErrorCode::InvalidGrant,
            "code_verifier is required: the code was issued with a PKCE challenge",
        ));
    };
    // §4.1: 43 to 128 unreserved characters.
    if !(43..=128).contains(&verifier.len()) || !verifier.bytes().all(is_unreserved) {
        return Err(OAuthError::new(
            ErrorCode::InvalidGrant,
            "code_verifier must be 43 to 128 unreserved characters",
        ));
    }
    let computed = B64.encode(sha256(verifier.as_bytes()));
    // Not a secret comparison (the challenge was public), but equal-time anyway costs nothing.
    let same = computed.len() == challenge.len()
        && computed
            .bytes()
            .zip(challenge.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err(OAuthError::new(
            ErrorCode::InvalidGrant,
            "code_verifier does not match the code_challenge",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // A verifier, its SHA-256 (computed elsewhere: core has no hash) and its S256 challenge.
    const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K50s1xJmCtdRnmIx0tNLamUnGM";
    const CHALLENGE: &str = "6RuGz5vFPq6_Jdk5ECSJvIoqUWAs_rv-qJOofdrKyUs";
    const DIGEST: [u8; 32] = [
        233, 27, 134, 207, 155, 197, 62, 174, 191, 37, 217, 57, 16, 36, 137, 188, 138, 42, 81, 96,
        44, 254, 187, 254, 168, 147, 168, 125, 218, 202, 201, 75,
    ];

    fn sha(input: &[u8]) -> [u8; 32] {
        assert_eq!(input, VERIFIER.as_bytes());
        DIGEST
    }

    #[test]
    fn challenge_rules() {
        assert_eq!(
            check_challenge(Some(CHALLENGE), Some("S256")).unwrap(),
            CHALLENGE
        );
        for (c, m) in [
            (None, Some("S256")),
            (Some(CHALLENGE), None),
            (Some(CHALLENGE), Some("plain")),
            (Some(CHALLENGE), Some("s256")),
            (Some("short"), Some("S256")),
            (Some(&CHALLENGE.replace('-', "+")[..]), Some("S256")),
        ] {
            let e = check_challenge(c, m).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{c:?} {m:?}");
        }
    }

    #[test]
    fn verifier_rules() {
        verify(Some(VERIFIER), CHALLENGE, sha).unwrap();
        let wrong = "A".repeat(43);
        assert_eq!(
            verify(Some(&wrong), CHALLENGE, |_| [0; 32])
                .unwrap_err()
                .code,
            ErrorCode::InvalidGrant
        );
        assert_eq!(
            verify(None, CHALLENGE, sha).unwrap_err().code,
            ErrorCode::InvalidGrant
        );
        // The challenge itself sent as verifier (a plain downgrade) hashes to something else.
        assert!(verify(Some(CHALLENGE), CHALLENGE, |_| [7; 32]).is_err());
        assert!(verify(Some("short"), CHALLENGE, |_| DIGEST).is_err());
        assert!(verify(Some(&format!("{VERIFIER} ")), CHALLENGE, |_| DIGEST).is_err());
    }
}
