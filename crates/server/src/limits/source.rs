//! Where a request came from (`Source`, as the per-address limits count it), and the addresses each client
//! authenticated from, trusted for it while its id is under a password-guessing attack.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{Limits, lock};

/// How long (seconds) an address that authenticated as a client stays trusted for it while the client is under a
/// password-guessing attack.
pub(super) const KNOWN_SOURCE_SECONDS: i64 = 86_400;

/// Known sources kept per client (the most recent).
const KNOWN_SOURCES_PER_CLIENT: usize = 16;

/// Per client id: addresses that authenticated as it, with when they last did (Unix seconds).
pub(super) type KnownSources = HashMap<String, Vec<(IpAddr, i64)>>;

/// Where a request came from, as the per-address limits count it.
#[derive(Debug, Clone)]
pub struct Source {
    /// The client's address (the TCP peer, or what a trusted proxy forwarded).
    pub ip: IpAddr,
}

impl Source {
    /// The source at `ip`.
    pub fn new(ip: IpAddr) -> Self {
        Source { ip }
    }

    /// The key it is counted under (`keyward_core::net::limit_key`), made only when a limit needs it.
    pub fn key(&self) -> String {
        keyward_core::net::limit_key(self.ip)
    }
}

/// An address folded into 32 bits (FNV-1a), to tell one address from another in a marker.
pub(super) fn fold(ip: IpAddr) -> u32 {
    let step = |h: u32, b: &u8| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    match ip {
        IpAddr::V4(v4) => v4.octets().iter().fold(0x811c_9dc5, step),
        IpAddr::V6(v6) => v6.octets().iter().fold(0x811c_9dc5, step),
    }
}

impl Limits {
    pub(super) fn remember(&self, client_id: &str, ip: IpAddr, now: i64) {
        let mut shard = lock(self.shard(&self.known, client_id));
        let sources = match shard.get_mut(client_id) {
            Some(s) => s,
            None => shard.entry(client_id.to_owned()).or_default(),
        };
        if let Some(entry) = sources.iter_mut().find(|(a, _)| *a == ip) {
            entry.1 = now;
            return;
        }
        if sources.len() >= KNOWN_SOURCES_PER_CLIENT {
            if let Some(oldest) = sources
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(i, _)| i)
            {
                sources.swap_remove(oldest);
            }
        }
        sources.push((ip, now));
    }

    pub(super) fn is_known(&self, client_id: &str, ip: IpAddr, now: i64) -> bool {
        lock(self.shard(&self.known, client_id))
            .get(client_id)
            .is_some_and(|s| {
                s.iter()
                    .any(|(a, at)| *a == ip && now - at < KNOWN_SOURCE_SECONDS)
            })
    }
}
