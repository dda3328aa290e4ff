//! Public keys Keyward fetches from elsewhere to check client assertions: a client's `jwks_uri` (RFC 7591 §2), and
//! a federated issuer's JWKS found through OpenID Connect discovery (`{issuer}/.well-known/openid-configuration`,
//! its `issuer` checked to be exactly the one configured). HTTPS only; each document at most 256 KiB, a whole fetch
//! (discovery and keys) within 5 s; cached for its `max-age` (between a minute and a day; 5 minutes when it names
//! none); fetched again early when an assertion names an unknown `kid`, at most once per [`MIN_REFETCH`] per
//! source, so a flood of forged `kid`s costs one fetch per interval. Keys already fetched keep working while a
//! source is unreachable, for at most [`MAX_STALE`] past their freshness: a key its owner removed (rotated out
//! after a leak) is not trusted for ever by a source that has gone quiet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyward_client::{HttpClient, PublicKey, get_json};
use keyward_core::registration::keys::default_alg;
use serde_json::Value;

/// The shortest time between two fetches of one source.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);
/// How long one fetch of a source may take, discovery and keys together.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long keys are still used past their freshness while their source cannot be fetched.
pub const MAX_STALE: Duration = Duration::from_secs(3_600);
/// How long keys are kept when the answer names no `max-age`.
pub const DEFAULT_AGE: Duration = Duration::from_secs(300);
/// The bounds put on a source's own `max-age`.
pub const AGE_BOUNDS: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(86_400));
/// The most keys kept from one document.
pub const MAX_KEYS: usize = 100;

/// Where a set of keys comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// A JWK Set at this URL.
    Jwks(&'a str),
    /// The JWK Set an OpenID Connect issuer publishes.
    Issuer(&'a str),
}

impl Source<'_> {
    fn key(&self) -> String {
        match self {
            Source::Jwks(url) => format!("jwks {url}"),
            Source::Issuer(issuer) => format!("issuer {issuer}"),
        }
    }
}

#[derive(Default)]
struct Entry {
    keys: Arc<[PublicKey]>,
    fresh_until: Option<Instant>,
    fetched_at: Option<Instant>,
}

/// The cache of fetched keys, one entry per source (sources are what operators and account holders registered,
/// so the map is as bounded as the registrations are).
pub struct RemoteKeys {
    http: HttpClient,
    /// Whether sources may be at private, loopback or link-local addresses (`outbound_private_addresses`).
    allow_private: bool,
    entries: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Entry>>>>,
}

impl std::fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeys").finish_non_exhaustive()
    }
}

/// Reads a JWK Set's keys as they are published by platforms: an absent `alg` is filled in from the key type, an
/// absent `kid` read as empty (such a key matches tokens that name no `kid`). Keys that cannot verify are skipped.
pub fn read_jwks(doc: &Value) -> Vec<PublicKey> {
    let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
        return Vec::new();
    };
    keys.iter()
        .take(MAX_KEYS)
        .filter_map(|k| {
            let mut k = k.clone();
            if k.get("alg").is_none() {
                k["alg"] = Value::from(default_alg(&k)?);
            }
            if k.get("kid").is_none() {
                k["kid"] = Value::from("");
            }
            PublicKey::from_jwk(&k).ok()
        })
        .collect()
}

/// The keys among `keys` that may check a signature made with `alg` and naming `kid`.
pub fn candidates<'a>(
    keys: &'a [PublicKey],
    kid: Option<&'a str>,
    alg: &'a str,
) -> impl Iterator<Item = &'a PublicKey> {
    keys.iter()
        .filter(move |k| k.alg == alg && kid.is_none_or(|kid| k.kid == kid))
}

impl RemoteKeys {
    /// A cache fetching through `http` (which trusts the configured extra CA file), from public addresses only
    /// unless `allow_private`.
    pub fn new(http: HttpClient, allow_private: bool) -> Self {
        RemoteKeys {
            http,
            allow_private,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The keys of `source`, fetched when none are cached, when they are stale, or when `wanted` (a `kid` and
    /// algorithm) matches none of them, within the refetch interval. An error says why nothing could be fetched
    /// (for the log); keys fetched before are returned instead while there are any.
    pub async fn keys(
        &self,
        source: Source<'_>,
        wanted: (Option<&str>, &str),
    ) -> Result<Arc<[PublicKey]>, String> {
        let slot = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries.entry(source.key()).or_default().clone()
        };
        // One fetch per source at a time: callers arriving during it wait for it and use what it brought.
        let mut entry = slot.lock().await;
        let now = Instant::now();
        let fresh = entry.fresh_until.is_some_and(|t| now < t);
        let (kid, alg) = wanted;
        let known = candidates(&entry.keys, kid, alg).next().is_some();
        let may_fetch = entry
            .fetched_at
            .is_none_or(|t| now.duration_since(t) >= MIN_REFETCH);
        if (fresh && known) || !may_fetch {
            return Ok(entry.keys.clone());
        }
        entry.fetched_at = Some(now);
        let fetched = tokio::time::timeout(FETCH_TIMEOUT, self.fetch(source))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "{}: no answer within {FETCH_TIMEOUT:?}",
                    source.key()
                ))
            });
        match fetched {
            Ok((keys, age)) => {
                entry.keys = keys.into();
                entry.fresh_until = Some(now + age);
                Ok(entry.keys.clone())
            }
            Err(e) => {
                let usable = entry.fresh_until.is_some_and(|t| now < t + MAX_STALE);
                if !usable {
                    entry.keys = Arc::from([]);
                    return Err(e);
                }
                tracing::warn!(error = %e, "could not refresh a key set; keeping the keys fetched before");
                Ok(entry.keys.clone())
            }
        }
    }

    async fn fetch(&self, source: Source<'_>) -> Result<(Vec<PublicKey>, Duration), String> {
        let jwks_uri = match source {
            Source::Jwks(url) => url.to_owned(),
            Source::Issuer(issuer) => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                let (doc, _) = self.get(&url).await?;
                // OpenID Connect Discovery 1.0 §4.3: the document must name the issuer it was fetched for.
                if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
                    return Err(format!("{url}: the document names another issuer"));
                }
                doc.get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{url}: no jwks_uri"))?
                    .to_owned()
            }
        };
        let (doc, max_age) = self.get(&jwks_uri).await?;
        let keys = read_jwks(&doc);
        if keys.is_empty() {
            return Err(format!("{jwks_uri}: no usable key"));
        }
        let age = max_age
            .unwrap_or(DEFAULT_AGE)
            .clamp(AGE_BOUNDS.0, AGE_BOUNDS.1);
        Ok((keys, age))
    }

    async fn get(&self, url: &str) -> Result<(Value, Option<Duration>), String> {
        if !keyward_core::registration::keys::is_https_url(url) {
            return Err(format!("{url}: only https URLs are fetched"));
        }
        if !self.allow_private {
            self.refuse_internal(url).await?;
        }
        get_json(&self.http, url, FETCH_TIMEOUT).await
    }

    /// Refuses a URL whose host is, or resolves to, an address that is not public (`keyward_core::net::is_public`):
    /// a JWKS URL or an issuer an account holder registered must not make Keyward reach into its own network.
    /// The name is resolved again when connecting; a name that changes its answer in between (DNS rebinding) is
    /// not caught here.
    async fn refuse_internal(&self, url: &str) -> Result<(), String> {
        let uri: axum::http::Uri = url.parse().map_err(|_| format!("{url}: not a URL"))?;
        let host = uri.host().unwrap_or("");
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(443);
        let addrs: Vec<std::net::IpAddr> = match host.parse() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| format!("{url}: {e}"))?
                .map(|a| a.ip())
                .collect(),
        };
        if addrs.is_empty() || addrs.iter().any(|ip| !keyward_core::net::is_public(*ip)) {
            return Err(format!(
                "{url}: {host} is not a public address (outbound_private_addresses = \"allow\" permits it)"
            ));
        }
        Ok(())
    }
}
