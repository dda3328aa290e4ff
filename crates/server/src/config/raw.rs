//! What was written: `RawConfig`, every key as a raw TOML value, read from the file, then the `KEYWARD_*`
//! environment, then the command-line `Flags`; `KEYS`, the keys in documentation order.

use std::collections::HashMap;
use std::path::Path;

use keyward_core::registration::ResourceInput;
use serde::Deserialize;

use super::{ConfigError, RawTokenEndpoint};

/// Every key, as written in a file or the environment; values are checked later.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub(super) listen: Option<toml::Value>,
    pub(super) database: Option<toml::Value>,
    pub(super) issuer: Option<toml::Value>,
    pub(super) data_dir: Option<toml::Value>,
    pub(super) master_key: Option<toml::Value>,
    pub(super) max_access_token_ttl: Option<toml::Value>,
    pub(super) key_publish_delay: Option<toml::Value>,
    pub(super) jwks_max_age: Option<toml::Value>,
    pub(super) db_max_connections: Option<toml::Value>,
    pub(super) db_acquire_timeout: Option<toml::Value>,
    pub(super) log_format: Option<toml::Value>,
    pub(super) log_level: Option<toml::Value>,
    pub(super) worker_threads: Option<toml::Value>,
    pub(super) stale_while_unreachable: Option<toml::Value>,
    pub(super) metrics_listen: Option<toml::Value>,
    pub(super) refresh_token_ttl: Option<toml::Value>,
    pub(super) refresh_token_idle_ttl: Option<toml::Value>,
    pub(super) session_ttl: Option<toml::Value>,
    pub(super) authorization_code_ttl: Option<toml::Value>,
    pub(super) usage_flush_interval: Option<toml::Value>,
    pub(super) rate_limit_token_client: Option<toml::Value>,
    pub(super) rate_limit_token_address: Option<toml::Value>,
    pub(super) rate_limit_introspect_client: Option<toml::Value>,
    pub(super) rate_limit_introspect_address: Option<toml::Value>,
    pub(super) rate_limit_revoke_client: Option<toml::Value>,
    pub(super) rate_limit_revoke_address: Option<toml::Value>,
    pub(super) quota_tokens_per_hour: Option<toml::Value>,
    pub(super) quota_tokens_per_day: Option<toml::Value>,
    pub(super) failed_auth_limit_client: Option<toml::Value>,
    pub(super) failed_auth_limit_address: Option<toml::Value>,
    pub(super) rate_limit_sharing: Option<toml::Value>,
    pub(super) trusted_proxies: Option<toml::Value>,
    pub(super) audit_retention: Option<toml::Value>,
    pub(super) default_client_resource: Option<toml::Value>,
    pub(super) metrics_client_labels: Option<toml::Value>,
    pub(super) otlp_endpoint: Option<toml::Value>,
    pub(super) extra_ca_file: Option<toml::Value>,
    pub(super) dpop_nonce_interval: Option<toml::Value>,
    pub(super) outbound_private_addresses: Option<toml::Value>,
    pub(super) require_second_factor: Option<toml::Value>,
    pub(super) request_header_timeout: Option<toml::Value>,
    pub(super) request_body_timeout: Option<toml::Value>,
    pub(super) keep_alive_timeout: Option<toml::Value>,
    pub(super) response_write_timeout: Option<toml::Value>,
    pub(super) smtp_url: Option<toml::Value>,
    pub(super) smtp_username: Option<toml::Value>,
    pub(super) smtp_password: Option<toml::Value>,
    pub(super) smtp_password_file: Option<toml::Value>,
    pub(super) mail_from: Option<toml::Value>,
    /// `[[token_endpoint]]` tables: extra token endpoint paths (file only).
    #[serde(default)]
    pub(super) token_endpoint: Vec<RawTokenEndpoint>,
    /// `[[resource]]` tables: resources created on start when missing (file only).
    #[serde(default)]
    pub(super) resource: Vec<ResourceInput>,
}

/// The keys, in documentation order; `KEYWARD_<KEY>` in upper case sets each from the environment.
pub const KEYS: [&str; 49] = [
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
    "extra_ca_file",
    "dpop_nonce_interval",
    "outbound_private_addresses",
    "require_second_factor",
    "request_header_timeout",
    "request_body_timeout",
    "keep_alive_timeout",
    "response_write_timeout",
    "smtp_url",
    "smtp_username",
    "smtp_password",
    "smtp_password_file",
    "mail_from",
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
            "extra_ca_file" => &mut self.extra_ca_file,
            "smtp_url" => &mut self.smtp_url,
            "smtp_username" => &mut self.smtp_username,
            "smtp_password" => &mut self.smtp_password,
            "smtp_password_file" => &mut self.smtp_password_file,
            "mail_from" => &mut self.mail_from,
            "dpop_nonce_interval" => &mut self.dpop_nonce_interval,
            "outbound_private_addresses" => &mut self.outbound_private_addresses,
            "require_second_factor" => &mut self.require_second_factor,
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
}

#[cfg(test)]
mod tests {
    use crate::config::test_env as env;
    use crate::config::{Flags, load};

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
}
