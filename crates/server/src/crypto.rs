//! Secrets and randomness: the master key and what is derived from it (the secret pepper, the key-encryption key
//! and the refresh-token key), client secret generation and digests, sealing of private keys, random identifiers.
//! All primitives come from aws-lc-rs.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{hkdf, hmac, rand};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

/// The prefix of every client secret, so secret scanners can find leaked ones.
pub const SECRET_PREFIX: &str = "kw_sk_";

/// Random bytes from the system CSPRNG.
pub fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The system RNG failing is not recoverable and never happens on a working OS.
    #[allow(clippy::expect_used)]
    rand::fill(&mut b).expect("system random number generator failed");
    b
}

/// 16 random bytes for a token identifier (RFC 7519 §4.1.7 `jti`), served from a per-thread pool refilled 512
/// bytes at a time from the system CSPRNG. A `jti` must be unique and unguessable but is no secret (it travels in
/// the token), and one CSPRNG call per token was a visible share of the token endpoint's profile.
pub fn token_id_bytes() -> [u8; 16] {
    thread_local! {
        static POOL: std::cell::RefCell<([u8; 512], usize)> = const { std::cell::RefCell::new(([0; 512], 512)) };
    }
    POOL.with_borrow_mut(|(pool, used)| {
        if *used == pool.len() {
            *pool = random::<512>();
            *used = 0;
        }
        let mut out = [0u8; 16];
        out.copy_from_slice(&pool[*used..*used + 16]);
        *used += 16;
        out
    })
}

/// A token's `jti`: base64url of the client's instance (8 bytes) then 12 random bytes. Introspection reads the
/// instance back, so a client created later with the same id never sees the tokens of the one deleted before it.
pub fn token_id(instance: i64) -> String {
    let mut id = [0u8; 20];
    id[..8].copy_from_slice(&instance.to_be_bytes());
    id[8..].copy_from_slice(&token_id_bytes()[..12]);
    B64.encode(id)
}

/// The client instance a `jti` made by [`token_id`] names; `None` for a `jti` of another shape (tokens issued
/// before instances existed: 16 random bytes).
pub fn token_instance(jti: &str) -> Option<i64> {
    let bytes = B64.decode(jti).ok()?;
    let head: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    (bytes.len() == 20).then(|| i64::from_be_bytes(head))
}

/// A random client instance (`ClientRow::instance`).
pub fn random_instance() -> i64 {
    i64::from_be_bytes(random::<8>())
}

/// A random identifier: `prefix` then base64url of 12 random bytes.
pub fn random_id(prefix: &str) -> String {
    format!("{prefix}{}", B64.encode(random::<12>()))
}

/// A random RFC 9562 version 4 UUID, the shape integrators expect of a client id.
pub fn random_uuid() -> String {
    let mut b = random::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A new client secret: the prefix and 256 random bits; and a hint (its first characters) for listings.
pub fn new_secret() -> (String, String) {
    let secret = format!("{SECRET_PREFIX}{}", B64.encode(random::<32>()));
    let hint = format!("{}…", &secret[..SECRET_PREFIX.len() + 4]);
    (secret, hint)
}

/// A new bearer value of 256 random bits with a prefix naming its kind (`kwc_` codes, `kws_` sessions; refresh
/// tokens of the earlier form were `kwr_` ones), so a leaked one is recognisable. Only its digest is ever stored.
pub fn new_token(prefix: &str) -> String {
    format!("{prefix}{}", B64.encode(random::<32>()))
}

/// SHA-256 (PKCE S256, RFC 7636 §4.2).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Bytes of a refresh token's HMAC: 192 bits, beyond guessing.
pub const REFRESH_MAC_LEN: usize = 24;

/// Keys derived from the master key. Debug never shows them.
pub struct MasterKeys {
    pepper: hmac::Key,
    kek: LessSafeKey,
    refresh: hmac::Key,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKeys(..)")
    }
}

struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive(
    master: &[u8; 32],
    info: &'static [u8],
) -> Result<[u8; 32], aws_lc_rs::error::Unspecified> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"keyward").extract(master);
    let mut out = [0u8; 32];
    prk.expand(&[info], Len(32))?.fill(&mut out)?;
    Ok(out)
}

impl MasterKeys {
    /// Derives the pepper, the key-encryption key and the refresh-token key from the 32-byte master key
    /// (HKDF-SHA-256, RFC 5869).
    pub fn derive(master: &[u8; 32]) -> anyhow::Result<Self> {
        let err = |_| anyhow::anyhow!("key derivation failed");
        let pepper = hmac::Key::new(
            hmac::HMAC_SHA256,
            &derive(master, b"client-secret-pepper-v1").map_err(err)?,
        );
        let kek_bytes = derive(master, b"key-encryption-key-v1").map_err(err)?;
        let kek = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &kek_bytes).map_err(err)?);
        let refresh = hmac::Key::new(
            hmac::HMAC_SHA256,
            &derive(master, b"refresh-token-key-v1").map_err(err)?,
        );
        Ok(Self {
            pepper,
            kek,
            refresh,
        })
    }

    /// HMAC-SHA-256 of a client secret under the pepper: what is stored.
    pub fn digest(&self, secret: &str) -> [u8; 32] {
        let tag = hmac::sign(&self.pepper, secret.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// The secret part of a refresh token of `grant` at `generation`: an HMAC under a key of its own, so a token
    /// is recognised, spent or not, from the grant's row alone, and none can be made without the master key.
    pub fn refresh_mac(&self, grant: &[u8], generation: u32) -> [u8; REFRESH_MAC_LEN] {
        let mut input = Vec::with_capacity(grant.len() + 4);
        input.extend_from_slice(grant);
        input.extend_from_slice(&generation.to_be_bytes());
        let tag = hmac::sign(&self.refresh, &input);
        let mut out = [0u8; REFRESH_MAC_LEN];
        out.copy_from_slice(&tag.as_ref()[..REFRESH_MAC_LEN]);
        out
    }

    /// Encrypts `plain` with AES-256-GCM, binding `aad` (the key id); the output starts with the nonce.
    pub fn seal(&self, plain: &[u8], aad: &str) -> anyhow::Result<Vec<u8>> {
        let nonce = random::<NONCE_LEN>();
        let mut buf = plain.to_vec();
        self.kek
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut buf,
            )
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts what [`MasterKeys::seal`] produced.
    pub fn open(&self, sealed: &[u8], aad: &str) -> anyhow::Result<Vec<u8>> {
        let wrong = || {
            anyhow::anyhow!(
                "cannot decrypt a signing key: is the master key the one it was sealed with?"
            )
        };
        if sealed.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
        let mut buf = rest.to_vec();
        let plain = self
            .kek
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf)
            .map_err(|_| wrong())?;
        Ok(plain.to_vec())
    }
}

/// RFC 4226 HOTP: the `digits`-long code of `counter` under `secret` (HMAC-SHA-1, which RFC 6238 authenticator apps
/// use; SHA-1's weakness as a hash does not reach HMAC), truncated by `keyward_core::totp::truncate`. A TOTP code
/// is the HOTP of the time step.
pub fn hotp(secret: &[u8], counter: i64, digits: u32) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mut mac = [0u8; 20];
    mac.copy_from_slice(&tag.as_ref()[..20]);
    keyward_core::totp::truncate(&mac, digits)
}

/// Constant-time equality of two digests.
pub fn digests_equal(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_stay_distinct_across_pool_refills() {
        // 100 draws cross three refills of the 32-id pool.
        let ids: std::collections::HashSet<[u8; 16]> = (0..100).map(|_| token_id_bytes()).collect();
        assert_eq!(ids.len(), 100);
        assert!(!ids.contains(&[0u8; 16]));
    }

    #[test]
    fn secrets_are_long_prefixed_and_distinct() {
        let (a, hint) = new_secret();
        let (b, _) = new_secret();
        assert!(a.starts_with(SECRET_PREFIX) && a.len() >= SECRET_PREFIX.len() + 43);
        assert!(hint.starts_with(&a[..10]));
        assert_ne!(a, b);
    }

    #[test]
    fn seal_open_and_aad_binding() {
        let k = MasterKeys::derive(&[7; 32]).unwrap();
        let sealed = k.seal(b"private", "kid1").unwrap();
        assert_eq!(k.open(&sealed, "kid1").unwrap(), b"private");
        assert!(k.open(&sealed, "kid2").is_err());
        assert!(
            MasterKeys::derive(&[8; 32])
                .unwrap()
                .open(&sealed, "kid1")
                .is_err()
        );
    }

    #[test]
    fn uuid_shape() {
        let u = random_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }

    #[test]
    fn hotp_and_totp_match_the_rfc_vectors() {
        // RFC 4226 Appendix D: the secret "12345678901234567890", counters 0 to 9.
        let secret = b"12345678901234567890";
        let expected = [
            755_224, 287_082, 359_152, 969_429, 338_314, 254_676, 287_922, 162_583, 399_871,
            520_489,
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(secret, counter as i64, 6), *code, "counter {counter}");
        }
        // RFC 6238 Appendix B (SHA-1, 8 digits): T = 59, 1111111109, 2000000000.
        for (t, code) in [
            (59, 94_287_082),
            (1_111_111_109, 7_081_804),
            (2_000_000_000, 69_279_037),
        ] {
            assert_eq!(
                hotp(secret, keyward_core::totp::step(t), 8),
                code,
                "T = {t}"
            );
        }
    }
}
