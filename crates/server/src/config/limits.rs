//! The abuse-protection keys: request rates per client and per address on each OAuth endpoint, token quotas, the
//! brute-force limits on failed client authentication, trusted proxies, and where the limits' state lives.

use keyward_core::limit::Rate;
use keyward_core::net::Cidr;

use super::value::{integer, text};
use super::{ConfigError, invalid};

/// The OAuth endpoints a rate limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /oauth2/token` and its aliases.
    Token = 0,
    /// `POST /oauth2/introspect`.
    Introspect = 1,
    /// `POST /oauth2/revoke`.
    Revoke = 2,
}

impl Endpoint {
    /// A short name, for keys, labels and messages.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::Introspect => "introspect",
            Endpoint::Revoke => "revoke",
        }
    }
}

/// Where the limits' counts live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// In the database, leased to nodes in batches: the limits hold for the whole cluster.
    Database,
    /// In each node's memory: each node enforces the limits alone (one node, or no cluster-wide need).
    Node,
}

/// The checked settings.
#[derive(Debug, Clone, Default)]
pub struct LimitSettings {
    /// Requests per client, by `Endpoint`.
    pub per_client: [Option<Rate>; 3],
    /// Requests per source address, by `Endpoint`.
    pub per_address: [Option<Rate>; 3],
    /// Tokens per client per hour (0: none).
    pub tokens_per_hour: u64,
    /// Tokens per client per day (0: none).
    pub tokens_per_day: u64,
    /// Failed authentications of one client id, from all addresses.
    pub failed_auth_client: Option<Rate>,
    /// Failed authentications from one address, whatever the client id.
    pub failed_auth_address: Option<Rate>,
    /// Where request rates are counted; `None` picks by engine (database on PostgreSQL, node on SQLite).
    pub sharing: Option<Sharing>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
}

/// The keys as written.
#[derive(Debug, Default)]
pub(super) struct RawLimits {
    pub rate_limit_token_client: Option<toml::Value>,
    pub rate_limit_token_address: Option<toml::Value>,
    pub rate_limit_introspect_client: Option<toml::Value>,
    pub rate_limit_introspect_address: Option<toml::Value>,
    pub rate_limit_revoke_client: Option<toml::Value>,
    pub rate_limit_revoke_address: Option<toml::Value>,
    pub quota_tokens_per_hour: Option<toml::Value>,
    pub quota_tokens_per_day: Option<toml::Value>,
    pub failed_auth_limit_client: Option<toml::Value>,
    pub failed_auth_limit_address: Option<toml::Value>,
    pub rate_limit_sharing: Option<toml::Value>,
    pub trusted_proxies: Option<toml::Value>,
}

/// What failed client authentications may do by default: 60 a minute against one client id from everywhere (past
/// that, only addresses that have authenticated as it keep trying), 20 a minute from one address.
const FAILED_AUTH_CLIENT: &str = "60/min";
const FAILED_AUTH_ADDRESS: &str = "20/min";

fn rate(
    key: &'static str,
    v: Option<toml::Value>,
    default: Option<&str>,
) -> Result<Option<Rate>, ConfigError> {
    match text(key, v)?.as_deref().or(default) {
        None => Ok(None),
        Some(s) if s.trim() == "off" => Ok(None),
        Some(s) => Rate::parse(s).map(Some).map_err(|m| invalid(key, m)),
    }
}

fn count(key: &'static str, v: Option<toml::Value>) -> Result<u64, ConfigError> {
    match v {
        None => Ok(0),
        Some(v) => integer(&v)
            .filter(|n| (0..=1_000_000_000_000).contains(n))
            .map(|n| n as u64)
            .ok_or_else(|| invalid(key, "expected a whole number of tokens (0 for none)")),
    }
}

impl RawLimits {
    pub(super) fn check(self) -> Result<LimitSettings, ConfigError> {
        let sharing = match text("rate_limit_sharing", self.rate_limit_sharing)?.as_deref() {
            None => None,
            Some("database") => Some(Sharing::Database),
            Some("node") => Some(Sharing::Node),
            Some(_) => {
                return Err(invalid(
                    "rate_limit_sharing",
                    "expected \"database\" or \"node\"",
                ));
            }
        };
        // A list in a file, or commas in one string (the environment).
        let proxies: Vec<String> = match self.trusted_proxies {
            None => Vec::new(),
            Some(toml::Value::String(s)) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            Some(toml::Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s),
                    _ => Err(invalid(
                        "trusted_proxies",
                        "expected addresses or networks as strings",
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(invalid(
                    "trusted_proxies",
                    "expected a list such as [\"10.0.0.0/8\"] or a comma-separated string",
                ));
            }
        };
        let trusted_proxies = proxies
            .iter()
            .map(|p| p.parse::<Cidr>().map_err(|m| invalid("trusted_proxies", m)))
            .collect::<Result<_, _>>()?;
        Ok(LimitSettings {
            per_client: [
                rate(
                    "rate_limit_token_client",
                    self.rate_limit_token_client,
                    None,
                )?,
                rate(
                    "rate_limit_introspect_client",
                    self.rate_limit_introspect_client,
                    None,
                )?,
                rate(
                    "rate_limit_revoke_client",
                    self.rate_limit_revoke_client,
                    None,
                )?,
            ],
            per_address: [
                rate(
                    "rate_limit_token_address",
                    self.rate_limit_token_address,
                    None,
                )?,
                rate(
                    "rate_limit_introspect_address",
                    self.rate_limit_introspect_address,
                    None,
                )?,
                rate(
                    "rate_limit_revoke_address",
                    self.rate_limit_revoke_address,
                    None,
                )?,
            ],
            tokens_per_hour: count("quota_tokens_per_hour", self.quota_tokens_per_hour)?,
            tokens_per_day: count("quota_tokens_per_day", self.quota_tokens_per_day)?,
            failed_auth_client: rate(
                "failed_auth_limit_client",
                self.failed_auth_limit_client,
                Some(FAILED_AUTH_CLIENT),
            )?,
            failed_auth_address: rate(
                "failed_auth_limit_address",
                self.failed_auth_limit_address,
                Some(FAILED_AUTH_ADDRESS),
            )?,
            sharing,
            trusted_proxies,
        })
    }
}
