//! Configuration: a TOML file, then `KEYWARD_*` environment variables, then command-line flags, in that order of
//! precedence. `RawConfig` is what was written; `Config` is checked, with every default applied. An error names
//! the key and what it expected. The environment is passed in, so tests never touch the process environment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keyward_core::registration::ResourceInput;
use secrecy::SecretBox;

use crate::conn::Timeouts;
use crate::store::PoolSettings;

mod check;
mod endpoint;
mod limits;
mod master_key;
mod raw;
mod smtp;
mod value;

pub use endpoint::{BodyKind, BodyRules, NamedHeader, RawTokenEndpoint, TokenEndpoint};
pub use limits::{Endpoint, LimitSettings, Sharing};
pub use master_key::decode_master_key;
pub use raw::{Flags, KEYS, RawConfig};
pub use smtp::{SmtpConfig, SmtpSecurity};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// The checked configuration.
#[derive(Debug)]
pub struct Config {
    /// Address the server listens on.
    pub listen: SocketAddr,
    /// Database URL or SQLite path.
    pub database: String,
    /// The `iss` of every token, and the base of the endpoints in discovery.
    pub issuer: String,
    /// Whether `issuer` was derived from `listen` rather than configured.
    pub issuer_is_default: bool,
    /// Where the generated master key file lives.
    pub data_dir: PathBuf,
    /// The master key, when configured rather than kept in a file.
    pub master_key: Option<SecretBox<[u8; 32]>>,
    /// Upper bound of any resource's access-token lifetime, seconds.
    pub max_access_token_ttl: i64,
    /// How long a new signing key is published before it signs, seconds.
    pub key_publish_delay: i64,
    /// `Cache-Control: max-age` of the JWKS, seconds.
    pub jwks_max_age: i64,
    /// Database pool.
    pub pool: PoolSettings,
    /// Log format.
    pub log_format: LogFormat,
    /// `tracing` filter directive.
    pub log_level: String,
    /// Threads serving requests; `None` is one per core.
    pub worker_threads: Option<usize>,
    /// How long a node that cannot read the database keeps issuing tokens to the clients it holds in memory.
    pub stale_while_unreachable: Duration,
    /// Where Prometheus metrics are served (`GET /metrics`), when set.
    pub metrics_listen: Option<SocketAddr>,
    /// Default absolute lifetime of a delegated grant (its refresh tokens), seconds; an app may set its own.
    pub refresh_token_ttl: i64,
    /// How long a login session lasts, seconds.
    pub session_ttl: i64,
    /// How often the token counts gathered in memory are added to the database.
    pub usage_flush_interval: Duration,
    /// Rate limits, quotas, brute-force limits and trusted proxies.
    pub limits: LimitSettings,
    /// How long audit entries are kept, seconds.
    pub audit_retention: i64,
    /// How many clients get a label of their own on `keyward_tokens_issued_total` (the rest are `_other`).
    pub metrics_client_labels: usize,
    /// Where traces are exported (OTLP over HTTP), when set.
    pub otlp_endpoint: Option<String>,
    /// A PEM file of certificate authorities trusted beside the Mozilla roots by Keyward's outbound HTTPS
    /// (client `jwks_uri`s, federated issuers).
    pub extra_ca_file: Option<PathBuf>,
    /// Where email is sent through (`smtp_url` and the keys beside it); `None`: no email.
    pub smtp: Option<SmtpConfig>,
    /// When set, DPoP proofs at the token endpoint must carry a server nonce (RFC 9449 §8), a new one every this
    /// many seconds.
    pub dpop_nonce_interval: Option<i64>,
    /// Whether Keyward's outbound fetches (client `jwks_uri`s, federated issuers) may reach private, loopback and
    /// link-local addresses (`outbound_private_addresses = "allow"`); public addresses only by default.
    pub outbound_private_addresses: bool,
    /// Whose accounts must set up a second factor before they can make keys.
    pub require_second_factor: keyward_core::account::SecondFactorPolicy,
    /// How long a connection may take over a request's head and body, sit idle, or leave a response unread.
    pub timeouts: Timeouts,
    /// How long an authorization code can be redeemed, seconds (RFC 6749 §4.1.2).
    pub authorization_code_ttl: i64,
    /// How long a grant may go unused before its refresh token stops working (RFC 9700 §4.14.2), seconds; `None` is no idle limit.
    pub refresh_token_idle_ttl: Option<i64>,
    /// The resource a new client is allowed when its registration names none (else the only resource there is).
    pub default_client_resource: Option<String>,
    /// Extra token endpoint paths with their own manners.
    pub token_endpoints: Vec<TokenEndpoint>,
    /// Resources the deployment declares; created on start when missing.
    pub resources: Vec<ResourceInput>,
}

/// A configuration error: which key, and what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (it names the key).
        message: String,
    },
    /// An environment variable Keyward does not know.
    #[error("unknown environment variable {0}: see `keyward config example` for the keys")]
    UnknownEnv(String),
    /// A table (`[[token_endpoint]]`, `[[resource]]`) with a wrong setting.
    #[error("config {section}: {message}")]
    Section {
        /// Which table, e.g. `[[token_endpoint]] path = "/v3/token"`.
        section: String,
        /// What was wrong, starting with the setting's name.
        message: String,
    },
    /// A value that does not fit its key.
    #[error("config key `{key}`: {message}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What was expected.
        message: String,
    },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// Loads the configuration: `path` (or `KEYWARD_CONFIG`), then the environment, then flags.
pub fn load(
    path: Option<&Path>,
    env: &HashMap<String, String>,
    flags: &Flags,
) -> Result<Config, ConfigError> {
    let path = path
        .map(Path::to_path_buf)
        .or_else(|| env.get("KEYWARD_CONFIG").map(PathBuf::from));
    let mut raw = match path {
        Some(p) => RawConfig::from_file(&p)?,
        None => RawConfig::default(),
    };
    raw.apply_env(env)?;
    raw.apply_flags(flags);
    raw.check()
}

/// The commented example printed by `keyward config example`.
pub const EXAMPLE: &str = include_str!("../../../docs/keyward.example.toml");

/// A process environment of `pairs`, for the configuration's tests.
#[cfg(test)]
pub(crate) fn test_env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses() {
        let raw: RawConfig = toml::from_str(EXAMPLE).unwrap();
        raw.check().unwrap();
    }
}
