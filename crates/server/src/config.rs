//! Configuration: a TOML file, then `KEYWARD_*` environment variables, then command-line flags, in that order of
//! precedence. `RawConfig` is what was written; `Config` is checked, with every default applied. An error names
//! the key and what it expected. The environment is passed in, so tests never touch the process environment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use keyward_core::duration::parse_seconds;
use keyward_core::registration::ResourceRegistration;
use secrecy::{ExposeSecret, SecretBox};
use serde::Deserialize;

use crate::conn::Timeouts;
use crate::store::PoolSettings;
use keyward_core::registration::ResourceInput;

mod endpoint;
mod limits;

pub use endpoint::{BodyKind, BodyRules, NamedHeader, RawTokenEndpoint, TokenEndpoint};
pub use limits::{Endpoint, LimitSettings, Sharing};

/// Every key, as written in a file or the environment; values are checked later.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    listen: Option<toml::Value>,
    database: Option<toml::Value>,
    issuer: Option<toml::Value>,
    data_dir: Option<toml::Value>,
    master_key: Option<toml::Value>,
    max_access_token_ttl: Option<toml::Value>,
    key_publish_delay: Option<toml::Value>,
    jwks_max_age: Option<toml::Value>,
    db_max_connections: Option<toml::Value>,
    db_acquire_timeout: Option<toml::Value>,
    log_format: Option<toml::Value>,
    log_level: Option<toml::Value>,
    worker_threads: Option<toml::Value>,
    stale_while_unreachable: Option<toml::Value>,
    metrics_listen: Option<toml::Value>,
    refresh_token_ttl: Option<toml::Value>,
    refresh_token_idle_ttl: Option<toml::Value>,
    session_ttl: Option<toml::Value>,
    authorization_code_ttl: Option<toml::Value>,
    usage_flush_interval: Option<toml::Value>,
    rate_limit_token_client: Option<toml::Value>,
    rate_limit_token_address: Option<toml::Value>,
    rate_limit_introspect_client: Option<toml::Value>,
    rate_limit_introspect_address: Option<toml::Value>,
    rate_limit_revoke_client: Option<toml::Value>,
    rate_limit_revoke_address: Option<toml::Value>,
    quota_tokens_per_hour: Option<toml::Value>,
    quota_tokens_per_day: Option<toml::Value>,
    failed_auth_limit_client: Option<toml::Value>,
    failed_auth_limit_address: Option<toml::Value>,
    rate_limit_sharing: Option<toml::Value>,
    trusted_proxies: Option<toml::Value>,
    audit_retention: Option<toml::Value>,
    default_client_resource: Option<toml::Value>,
    metrics_client_labels: Option<toml::Value>,
    otlp_endpoint: Option<toml::Value>,
    request_header_timeout: Option<toml::Value>,
    request_body_timeout: Option<toml::Value>,
    keep_alive_timeout: Option<toml::Value>,
    response_write_timeout: Option<toml::Value>,
    /// `[[token_endpoint]]` tables: extra token endpoint paths (file only).
    #[serde(default)]
    token_endpoint: Vec<RawTokenEndpoint>,
    /// `[[resource]]` tables: resources created on start when missing (file only).
    #[serde(default)]
    resource: Vec<ResourceInput>,
}

/// The keys, in documentation order; `KEYWARD_<KEY>` in upper case sets each from the environment.
pub const KEYS: [&str; 40] = [
    "listen",
    "database",
    "issuer",
    "data_dir",
    "master_key",
    "max_access_token_ttl",
    "key_publish_delay",
    "jwks_max_age",
    "db_max_connections",
    "db_acquire_timeout",
    "log_format",
    "log_level",
    "worker_threads",
    "stale_while_unreachable",
    "metrics_listen",
    "refresh_token_ttl",
    "refresh_token_idle_ttl",
    "session_ttl",
    "authorization_code_ttl",
    "usage_flush_interval",
    "rate_limit_token_client",
    "rate_limit_token_address",
    "rate_limit_introspect_client",
    "rate_limit_introspect_address",
    "rate_limit_revoke_client",
    "rate_limit_revoke_address",
    "quota_tokens_per_hour",
    "quota_tokens_per_day",
    "failed_auth_limit_client",
    "failed_auth_limit_address",
    "rate_limit_sharing",
    "trusted_proxies",
    "audit_retention",
    "default_client_resource",
    "metrics_client_labels",
    "otlp_endpoint",
    "request_header_timeout",
    "request_body_timeout",
    "keep_alive_timeout",
    "response_write_timeout",
];

/// Values given on the command line, which override everything else.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--database`.
    pub database: Option<String>,
    /// `--issuer`.
    pub issuer: Option<String>,
    /// `--metrics-listen`.
    pub metrics_listen: Option<String>,
}

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

impl RawConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.message().to_owned(),
        })
    }

    fn slot(&mut self, key: &str) -> Option<&mut Option<toml::Value>> {
        Some(match key {
            "listen" => &mut self.listen,
            "database" => &mut self.database,
            "issuer" => &mut self.issuer,
            "data_dir" => &mut self.data_dir,
            "master_key" => &mut self.master_key,
            "max_access_token_ttl" => &mut self.max_access_token_ttl,
            "key_publish_delay" => &mut self.key_publish_delay,
            "jwks_max_age" => &mut self.jwks_max_age,
            "db_max_connections" => &mut self.db_max_connections,
            "db_acquire_timeout" => &mut self.db_acquire_timeout,
            "log_format" => &mut self.log_format,
            "log_level" => &mut self.log_level,
            "worker_threads" => &mut self.worker_threads,
            "stale_while_unreachable" => &mut self.stale_while_unreachable,
            "metrics_listen" => &mut self.metrics_listen,
            "refresh_token_ttl" => &mut self.refresh_token_ttl,
            "refresh_token_idle_ttl" => &mut self.refresh_token_idle_ttl,
            "session_ttl" => &mut self.session_ttl,
            "authorization_code_ttl" => &mut self.authorization_code_ttl,
            "usage_flush_interval" => &mut self.usage_flush_interval,
            "rate_limit_token_client" => &mut self.rate_limit_token_client,
            "rate_limit_token_address" => &mut self.rate_limit_token_address,
            "rate_limit_introspect_client" => &mut self.rate_limit_introspect_client,
            "rate_limit_introspect_address" => &mut self.rate_limit_introspect_address,
            "rate_limit_revoke_client" => &mut self.rate_limit_revoke_client,
            "rate_limit_revoke_address" => &mut self.rate_limit_revoke_address,
            "quota_tokens_per_hour" => &mut self.quota_tokens_per_hour,
            "quota_tokens_per_day" => &mut self.quota_tokens_per_day,
            "failed_auth_limit_client" => &mut self.failed_auth_limit_client,
            "failed_auth_limit_address" => &mut self.failed_auth_limit_address,
            "rate_limit_sharing" => &mut self.rate_limit_sharing,
            "trusted_proxies" => &mut self.trusted_proxies,
            "audit_retention" => &mut self.audit_retention,
            "default_client_resource" => &mut self.default_client_resource,
            "metrics_client_labels" => &mut self.metrics_client_labels,
            "otlp_endpoint" => &mut self.otlp_endpoint,
            "request_header_timeout" => &mut self.request_header_timeout,
            "request_body_timeout" => &mut self.request_body_timeout,
            "keep_alive_timeout" => &mut self.keep_alive_timeout,
            "response_write_timeout" => &mut self.response_write_timeout,
            _ => return None,
        })
    }

    /// Applies `KEYWARD_*` variables. `KEYWARD_CONFIG` names the file and is read by the caller.
    pub fn apply_env(&mut self, env: &HashMap<String, String>) -> Result<(), ConfigError> {
        for (name, value) in env {
            let Some(key) = name.strip_prefix("KEYWARD_") else {
                continue;
            };
            if key == "CONFIG" {
                continue;
            }
            let slot = self
                .slot(&key.to_ascii_lowercase())
                .ok_or_else(|| ConfigError::UnknownEnv(name.clone()))?;
            *slot = Some(toml::Value::String(value.clone()));
        }
        Ok(())
    }

    /// Applies command-line flags.
    pub fn apply_flags(&mut self, flags: &Flags) {
        let set = |slot: &mut Option<toml::Value>, v: &Option<String>| {
            if let Some(v) = v {
                *slot = Some(toml::Value::String(v.clone()));
            }
        };
        set(&mut self.listen, &flags.listen);
        set(&mut self.database, &flags.database);
        set(&mut self.issuer, &flags.issuer);
        set(&mut self.metrics_listen, &flags.metrics_listen);
    }

    /// Checks every value and applies defaults.
    pub fn check(self) -> Result<Config, ConfigError> {
        let listen: SocketAddr = text("listen", self.listen)?
            .unwrap_or_else(|| "127.0.0.1:8080".into())
            .parse()
            .map_err(|_| invalid("listen", "expected an address such as 127.0.0.1:8080"))?;
        let data_dir =
            PathBuf::from(text("data_dir", self.data_dir)?.unwrap_or_else(|| ".".into()));
        let database = match text("database", self.database)? {
            Some(d) if d.is_empty() => return Err(invalid("database", "must not be empty")),
            Some(d) => d,
            None => data_dir.join("keyward.db").to_string_lossy().into_owned(),
        };
        let issuer_text = text("issuer", self.issuer)?;
        let issuer_is_default = issuer_text.is_none();
        let issuer = issuer_text.unwrap_or_else(|| format!("http://{listen}"));
        let issuer = issuer.trim_end_matches('/').to_owned();
        if !(issuer.starts_with("https://") || issuer.starts_with("http://"))
            || issuer.contains(['?', '#', ' '])
            || issuer.len() <= "https://".len()
        {
            return Err(invalid(
                "issuer",
                "expected an http(s) URL with no query or fragment",
            ));
        }
        let master_key = match text("master_key", self.master_key)? {
            None => None,
            Some(k) => Some(SecretBox::new(Box::new(
                decode_master_key(&k).map_err(|m| invalid("master_key", m))?,
            ))),
        };
        let max_access_token_ttl =
            duration("max_access_token_ttl", self.max_access_token_ttl, 3_600)?;
        let key_publish_delay = duration("key_publish_delay", self.key_publish_delay, 600)?;
        let jwks_max_age = duration("jwks_max_age", self.jwks_max_age, 300)?;
        let stale_while_unreachable =
            duration("stale_while_unreachable", self.stale_while_unreachable, 300)?;
        // A node serves its JWKS while its view is at most stale_while_unreachable old, and caches keep that
        // document for jwks_max_age: a key must be published that long before it signs, or a token signed with
        // it could meet a JWKS that lacks it.
        if key_publish_delay < jwks_max_age + stale_while_unreachable {
            return Err(invalid(
                "key_publish_delay",
                "must be at least jwks_max_age + stale_while_unreachable, so every node's JWKS and every cache \
                 has a key before it signs",
            ));
        }
        let refresh_token_ttl =
            duration("refresh_token_ttl", self.refresh_token_ttl, 365 * 86_400)?;
        if !(60..=10 * 365 * 86_400).contains(&refresh_token_ttl) {
            return Err(invalid("refresh_token_ttl", "must be from 60s to 3650d"));
        }
        let session_ttl = duration("session_ttl", self.session_ttl, 12 * 3_600)?;
        if !(60..=30 * 86_400).contains(&session_ttl) {
            return Err(invalid("session_ttl", "must be from 60s to 30d"));
        }
        let usage_flush_interval = duration("usage_flush_interval", self.usage_flush_interval, 60)?;
        if !(1..=3_600).contains(&usage_flush_interval) {
            return Err(invalid("usage_flush_interval", "must be from 1s to 1h"));
        }
        let metrics_listen = match text("metrics_listen", self.metrics_listen)? {
            None => None,
            Some(a) => Some(a.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "metrics_listen",
                    "expected an address such as 127.0.0.1:9090",
                )
            })?),
        };
        let max_connections = match self.db_max_connections {
            None => 16,
            Some(v) => integer(&v)
                .filter(|n| (1..=1_000).contains(n))
                .ok_or_else(|| {
                    invalid(
                        "db_max_connections",
                        "expected a whole number from 1 to 1000",
                    )
                })? as u32,
        };
        let acquire_timeout =
            Duration::from_secs(duration("db_acquire_timeout", self.db_acquire_timeout, 2)? as u64);
        let log_format = match text("log_format", self.log_format)?.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(_) => return Err(invalid("log_format", "expected \"text\" or \"json\"")),
        };
        let log_level = text("log_level", self.log_level)?.unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(invalid(
                "log_level",
                "expected a level (error, warn, info, debug, trace) or a filter",
            ));
        }
        let worker_threads =
            match self.worker_threads {
                None => None,
                Some(v) => Some(integer(&v).filter(|n| (1..=1_024).contains(n)).ok_or_else(
                    || invalid("worker_threads", "expected a whole number from 1 to 1024"),
                )? as usize),
            };
        let limits = limits::RawLimits {
            rate_limit_token_client: self.rate_limit_token_client,
            rate_limit_token_address: self.rate_limit_token_address,
            rate_limit_introspect_client: self.rate_limit_introspect_client,
            rate_limit_introspect_address: self.rate_limit_introspect_address,
            rate_limit_revoke_client: self.rate_limit_revoke_client,
            rate_limit_revoke_address: self.rate_limit_revoke_address,
            quota_tokens_per_hour: self.quota_tokens_per_hour,
            quota_tokens_per_day: self.quota_tokens_per_day,
            failed_auth_limit_client: self.failed_auth_limit_client,
            failed_auth_limit_address: self.failed_auth_limit_address,
            rate_limit_sharing: self.rate_limit_sharing,
            trusted_proxies: self.trusted_proxies,
        }
        .check()?;
        let audit_retention = duration("audit_retention", self.audit_retention, 365 * 86_400)?;
        if audit_retention < 86_400 {
            return Err(invalid("audit_retention", "must be at least 1d"));
        }
        let metrics_client_labels = match self.metrics_client_labels {
            None => 50,
            Some(v) => integer(&v)
                .filter(|n| (0..=10_000).contains(n))
                .ok_or_else(|| {
                    invalid(
                        "metrics_client_labels",
                        "expected a whole number from 0 to 10000",
                    )
                })? as usize,
        };
        let otlp_endpoint = match text("otlp_endpoint", self.otlp_endpoint)? {
            Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                return Err(invalid(
                    "otlp_endpoint",
                    "expected an http(s) URL such as http://127.0.0.1:4318",
                ));
            }
            other => other.map(|u| u.trim_end_matches('/').to_owned()),
        };
        let defaults = Timeouts::default();
        // At most a day: a connection's deadlines are added to the time it opened.
        let seconds = |key, v, default: Duration| {
            let s = duration(key, v, default.as_secs() as i64)?;
            if s > 86_400 {
                return Err(invalid(key, "must be at most 1d"));
            }
            Ok(Duration::from_secs(s as u64))
        };
        let timeouts = Timeouts {
            header: seconds(
                "request_header_timeout",
                self.request_header_timeout,
                defaults.header,
            )?,
            body: seconds(
                "request_body_timeout",
                self.request_body_timeout,
                defaults.body,
            )?,
            idle: seconds("keep_alive_timeout", self.keep_alive_timeout, defaults.idle)?,
            write: seconds(
                "response_write_timeout",
                self.response_write_timeout,
                defaults.write,
            )?,
        };
        let authorization_code_ttl = duration(
            "authorization_code_ttl",
            self.authorization_code_ttl,
            keyward_core::grant::authorization_code::CODE_TTL,
        )?;
        if authorization_code_ttl > 600 {
            return Err(invalid(
                "authorization_code_ttl",
                "must be from 1s to 10m (RFC 6749 §4.1.2)",
            ));
        }
        let refresh_token_idle_ttl = match self.refresh_token_idle_ttl {
            None => None,
            Some(toml::Value::String(s)) if s == "off" => None,
            v => {
                let t = duration("refresh_token_idle_ttl", v, 0)?;
                if !(60..=3_650 * 86_400).contains(&t) {
                    return Err(invalid(
                        "refresh_token_idle_ttl",
                        "must be from 60s to 3650d, or \"off\"",
                    ));
                }
                Some(t)
            }
        };
        let default_client_resource =
            text("default_client_resource", self.default_client_resource)?
                .filter(|s| !s.is_empty());
        let token_endpoints = endpoint::check_all(self.token_endpoint)?;
        let mut identifiers = std::collections::HashSet::new();
        for r in &self.resource {
            let section = || format!("[[resource]] identifier = {:?}", r.identifier);
            ResourceRegistration::new(&r.identifier)
                .and_then(|new| {
                    keyward_core::registration::resource::apply(
                        new,
                        r.change()?,
                        max_access_token_ttl,
                    )
                })
                .map_err(|e| ConfigError::Section {
                    section: section(),
                    message: e.to_string(),
                })?;
            if !identifiers.insert(r.identifier.as_str()) {
                return Err(ConfigError::Section {
                    section: section(),
                    message: "the identifier is declared twice".into(),
                });
            }
        }
        Ok(Config {
            listen,
            database,
            issuer,
            issuer_is_default,
            data_dir,
            master_key,
            max_access_token_ttl,
            key_publish_delay,
            jwks_max_age,
            pool: PoolSettings {
                max_connections,
                acquire_timeout,
            },
            log_format,
            log_level,
            worker_threads,
            stale_while_unreachable: Duration::from_secs(stale_while_unreachable as u64),
            metrics_listen,
            refresh_token_ttl,
            session_ttl,
            usage_flush_interval: Duration::from_secs(usage_flush_interval as u64),
            limits,
            audit_retention,
            metrics_client_labels,
            otlp_endpoint,
            timeouts,
            authorization_code_ttl,
            refresh_token_idle_ttl,
            default_client_resource,
            token_endpoints,
            resources: self.resource,
        })
    }
}

fn text(key: &'static str, v: Option<toml::Value>) -> Result<Option<String>, ConfigError> {
    match v {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(key, "expected a string")),
    }
}

fn integer(v: &toml::Value) -> Option<i64> {
    match v {
        toml::Value::Integer(n) => Some(*n),
        toml::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn duration(key: &'static str, v: Option<toml::Value>, default: i64) -> Result<i64, ConfigError> {
    let secs = match v {
        None => return Ok(default),
        Some(toml::Value::Integer(n)) => n,
        Some(toml::Value::String(s)) => parse_seconds(&s).map_err(|m| invalid(key, m))?,
        Some(_) => return Err(invalid(key, "expected a duration such as \"15m\"")),
    };
    if secs <= 0 {
        return Err(invalid(key, "must be positive"));
    }
    Ok(secs)
}

/// Decodes a master key: 32 bytes, base64url without padding (as `keyward.secret` holds it).
pub fn decode_master_key(text: &str) -> Result<[u8; 32], String> {
    B64.decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| "expected 32 bytes in base64url without padding (43 characters)".to_owned())
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

impl Config {
    /// Creates `data_dir` when missing: SQLite creates its file but not the directory it lives in.
    pub fn create_data_dir(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.data_dir)
            .map_err(|e| anyhow::anyhow!("cannot create data_dir {}: {e}", self.data_dir.display()))
    }

    /// The master key: configured, or read from (or, on first start, generated into) `data_dir/keyward.secret`.
    /// Returns whether it was generated now.
    pub fn master_key(&self) -> anyhow::Result<([u8; 32], bool)> {
        if let Some(k) = &self.master_key {
            return Ok((*k.expose_secret(), false));
        }
        let path = self.data_dir.join("keyward.secret");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = decode_master_key(&text)
                    .map_err(|m| anyhow::anyhow!("{}: {m}", path.display()))?;
                Ok((key, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.data_dir)?;
                let key = crate::crypto::random::<32>();
                // Written aside then linked into place: linking fails if the name exists, so when two processes
                // start together exactly one key wins and the other reads it.
                let tmp = self
                    .data_dir
                    .join(format!(".keyward.secret.{}", std::process::id()));
                let _ = std::fs::remove_file(&tmp);
                write_private(&tmp, &B64.encode(key))?;
                let linked = std::fs::hard_link(&tmp, &path);
                let _ = std::fs::remove_file(&tmp);
                match linked {
                    Ok(()) => Ok((key, true)),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self.master_key(),
                    Err(e) => Err(anyhow::anyhow!("cannot write {}: {e}", path.display())),
                }
            }
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// The commented example printed by `keyward config example`.
pub const EXAMPLE: &str = include_str!("../../../docs/keyward.example.toml");

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = load(None, &HashMap::new(), &Flags::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.issuer, "http://127.0.0.1:8080");
        assert_eq!(c.database, "./keyward.db");
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:1\"\ndatabase = \"a.db\"\nissuer = \"https://a\"\n",
        )
        .unwrap();
        let e = env(&[
            ("KEYWARD_DATABASE", "b.db"),
            ("KEYWARD_ISSUER", "https://b"),
        ]);
        let flags = Flags {
            issuer: Some("https://c/".into()),
            ..Flags::default()
        };
        let c = load(Some(&path), &e, &flags).unwrap();
        assert_eq!(
            (c.listen.port(), c.database.as_str(), c.issuer.as_str()),
            (1, "b.db", "https://c")
        );
    }

    #[test]
    fn errors_name_the_key() {
        let bad = |pairs: &[(&str, &str)]| {
            load(None, &env(pairs), &Flags::default())
                .unwrap_err()
                .to_string()
        };
        assert!(bad(&[("KEYWARD_LISTEN", "nope")]).contains("`listen`"));
        assert!(bad(&[("KEYWARD_MAX_ACCESS_TOKEN_TTL", "5x")]).contains("`max_access_token_ttl`"));
        assert!(bad(&[("KEYWARD_ISSUER", "ftp://x")]).contains("`issuer`"));
        assert!(bad(&[("KEYWARD_MASTER_KEY", "short")]).contains("`master_key`"));
        assert!(bad(&[("KEYWARD_LISTNE", "x")]).contains("KEYWARD_LISTNE"));
        assert!(bad(&[("KEYWARD_WORKER_THREADS", "0")]).contains("`worker_threads`"));
        assert!(bad(&[("KEYWARD_REQUEST_BODY_TIMEOUT", "2d")]).contains("`request_body_timeout`"));
        assert!(
            bad(&[("KEYWARD_KEEP_ALIVE_TIMEOUT", "9223372036854775807")])
                .contains("`keep_alive_timeout`")
        );
        assert!(
            bad(&[("KEYWARD_REFRESH_TOKEN_IDLE_TTL", "10s")]).contains("`refresh_token_idle_ttl`")
        );
        assert!(
            bad(&[("KEYWARD_AUTHORIZATION_CODE_TTL", "11m")]).contains("`authorization_code_ttl`")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(&path, "lissten = \"x\"\n").unwrap();
        assert!(
            load(Some(&path), &HashMap::new(), &Flags::default())
                .unwrap_err()
                .to_string()
                .contains("lissten")
        );
    }

    #[test]
    fn publish_delay_covers_cache_age_and_stale_limit() {
        let c = load(None, &HashMap::new(), &Flags::default()).unwrap();
        assert_eq!(c.stale_while_unreachable, Duration::from_secs(300));
        assert_eq!(c.metrics_listen, None);
        // 10m publish delay < 5m JWKS age + 6m stale limit: a key could sign before some node or cache has it.
        let e = env(&[("KEYWARD_STALE_WHILE_UNREACHABLE", "6m")]);
        let err = load(None, &e, &Flags::default()).unwrap_err().to_string();
        assert!(err.contains("key_publish_delay"), "{err}");
        let e = env(&[
            ("KEYWARD_STALE_WHILE_UNREACHABLE", "6m"),
            ("KEYWARD_KEY_PUBLISH_DELAY", "11m"),
            ("KEYWARD_METRICS_LISTEN", "127.0.0.1:9090"),
        ]);
        let c = load(None, &e, &Flags::default()).unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9090".parse().unwrap()));
        let e = env(&[("KEYWARD_METRICS_LISTEN", "nine")]);
        let err = load(None, &e, &Flags::default()).unwrap_err().to_string();
        assert!(err.contains("metrics_listen"), "{err}");
    }

    #[test]
    fn example_parses() {
        let raw: RawConfig = toml::from_str(EXAMPLE).unwrap();
        raw.check().unwrap();
    }
}
