//! Refresh tokens as Keyward spells them (RFC 6749 §6, rotated on every use as RFC 9700 §4.14.2 asks): `kwr_` then
//! base64url of the grant's id, the token's generation and an HMAC of both under a key derived from the master
//! key. The grant's row holds the generation of its one live token, so using, replaying, revoking or
//! introspecting a token needs that row alone: no row per token is written, and a family refreshed every few
//! minutes for a year stays one row. Tokens issued before this form (32 random bytes, one row each in
//! `refresh_tokens`) are still read.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use crate::crypto::{MasterKeys, REFRESH_MAC_LEN, digests_equal};

/// The prefix of every refresh token, which tells `/oauth2/revoke` and `/oauth2/introspect` what they were given.
pub const REFRESH_PREFIX: &str = "kwr_";

/// The prefix of a grant's id; the 12 random bytes after it (base64url) go into its tokens.
const GRANT_PREFIX: &str = "grt_";

/// Bytes of a grant id's random part.
const GRANT_ID_LEN: usize = 12;

/// What a presented refresh token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// A token of this form whose HMAC checks: the grant and the generation it names.
    Derived {
        /// The grant (`grt_…`).
        grant_id: String,
        /// Its generation: current when it equals the grant's `refresh_gen`, spent when lower.
        generation: i64,
    },
    /// A token of the earlier form: looked up by digest in `refresh_tokens`.
    Stored,
    /// Anything else, a forged or damaged token included.
    Unknown,
}

/// The refresh token of `grant_id` at `generation`; `None` when the grant id is not one Keyward made.
pub fn make(master: &MasterKeys, grant_id: &str, generation: i64) -> Option<String> {
    let raw = grant_bytes(grant_id)?;
    let generation = u32::try_from(generation).ok()?;
    let mut bytes = Vec::with_capacity(GRANT_ID_LEN + 4 + REFRESH_MAC_LEN);
    bytes.extend_from_slice(&raw);
    bytes.extend_from_slice(&generation.to_be_bytes());
    bytes.extend_from_slice(&master.refresh_mac(&raw, generation));
    Some(format!("{REFRESH_PREFIX}{}", B64.encode(bytes)))
}

/// Reads a presented refresh token. The HMAC is compared in constant time; a token that fails it is `Unknown`,
/// like any other.
pub fn read(master: &MasterKeys, token: &str) -> Presented {
    let Some(body) = token.strip_prefix(REFRESH_PREFIX) else {
        return Presented::Unknown;
    };
    let Ok(bytes) = B64.decode(body) else {
        return Presented::Unknown;
    };
    match bytes.len() {
        32 => Presented::Stored,
        n if n == GRANT_ID_LEN + 4 + REFRESH_MAC_LEN => {
            let (raw, rest) = bytes.split_at(GRANT_ID_LEN);
            let (generation, mac) = rest.split_at(4);
            let generation =
                u32::from_be_bytes([generation[0], generation[1], generation[2], generation[3]]);
            if !digests_equal(&master.refresh_mac(raw, generation), mac) {
                return Presented::Unknown;
            }
            Presented::Derived {
                grant_id: format!("{GRANT_PREFIX}{}", B64.encode(raw)),
                generation: i64::from(generation),
            }
        }
        _ => Presented::Unknown,
    }
}

/// The random bytes of a grant id Keyward made (`grt_` and 12 bytes in base64url).
fn grant_bytes(grant_id: &str) -> Option<[u8; GRANT_ID_LEN]> {
    let raw = B64.decode(grant_id.strip_prefix(GRANT_PREFIX)?).ok()?;
    raw.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_forgeries_are_unknown() {
        let master = MasterKeys::derive(&[9; 32]).unwrap();
        let grant = crate::crypto::random_id(GRANT_PREFIX);
        let t0 = make(&master, &grant, 0).unwrap();
        let t1 = make(&master, &grant, 1).unwrap();
        assert_ne!(t0, t1);
        assert_eq!(
            read(&master, &t1),
            Presented::Derived {
                grant_id: grant.clone(),
                generation: 1
            }
        );
        // Another master key, a changed generation or a flipped character: unknown.
        let other = MasterKeys::derive(&[8; 32]).unwrap();
        assert_eq!(read(&other, &t1), Presented::Unknown);
        let mut bytes = B64.decode(&t1[REFRESH_PREFIX.len()..]).unwrap();
        bytes[GRANT_ID_LEN + 3] ^= 1;
        let forged = format!("{REFRESH_PREFIX}{}", B64.encode(&bytes));
        assert_eq!(read(&master, &forged), Presented::Unknown);
        for junk in ["", "kwr_", "kwr_!!", "abc", &t1[..t1.len() - 1]] {
            assert_eq!(read(&master, junk), Presented::Unknown, "{junk}");
        }
        // The earlier form is recognised by its length.
        assert_eq!(
            read(&master, &crate::crypto::new_token(REFRESH_PREFIX)),
            Presented::Stored
        );
        assert!(make(&master, "not-a-grant", 0).is_none());
        assert!(make(&master, &grant, -1).is_none());
    }
}
