//! Tokens already verified, so a token presented again (integrators reuse a token until it expires, as every
//! seed asks) costs a SHA-256 and a map lookup instead of a signature check. The key is a digest of the whole
//! token; an entry holds the claims and the `kid` that verified them, and counts only while that key is still in
//! the JWKS and the token's times still hold.

use std::collections::HashMap;
use std::sync::RwLock;

use aws_lc_rs::digest::{SHA256, digest};

use crate::claims::Claims;

/// A bounded map from token digest to verified claims.
pub(crate) struct Verified {
    capacity: usize,
    map: RwLock<HashMap<[u8; 32], (String, Claims)>>,
}

/// The digest a token is cached under.
pub(crate) fn key(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

impl Verified {
    pub(crate) fn new(capacity: usize) -> Self {
        Verified {
            capacity,
            map: RwLock::new(HashMap::new()),
        }
    }

    /// The claims and `kid` a token was verified with, if cached.
    pub(crate) fn get(&self, key: &[u8; 32]) -> Option<(String, Claims)> {
        if self.capacity == 0 {
            return None;
        }
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// Remembers a verified token. When full, entries past their `exp` go first; if none have, the map starts
    /// over (a flood of distinct valid tokens only costs signature checks, as without a cache).
    pub(crate) fn put(&self, key: [u8; 32], kid: String, claims: Claims, now: i64) {
        if self.capacity == 0 {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.capacity {
            map.retain(|_, (_, c)| c.exp + keyward_core::jwt::LEEWAY_SECONDS > now);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(key, (kid, claims));
    }
}
