//! `RawConfig::check`: every value checked against its key's rules, with its default, into `Config`; the
//! `[[token_endpoint]]`, limit and `[[resource]]` settings checked by their own rules.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use keyward_core::registration::ResourceRegistration;
use secrecy::SecretBox;

use super::value::{duration, integer, text};
use super::{
    Config, ConfigError, LogFormat, RawConfig, decode_master_key, endpoint, invalid, limits,
};
use crate::conn::Timeouts;
use crate::store::PoolSettings;

impl RawConfig {
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
        let extra_ca_file = text("extra_ca_file", self.extra_ca_file)?.map(PathBuf::from);
        let smtp = super::smtp::check(
            self.smtp_url,
            self.smtp_username,
            self.smtp_password,
            self.smtp_password_file,
            self.mail_from,
        )?;
        let outbound_private_addresses = match text(
            "outbound_private_addresses",
            self.outbound_private_addresses,
        )?
        .as_deref()
        {
            None | Some("deny") => false,
            Some("allow") => true,
            Some(_) => {
                return Err(invalid(
                    "outbound_private_addresses",
                    "expected \"deny\" or \"allow\"",
                ));
            }
        };
        let require_second_factor = match text("require_second_factor", self.require_second_factor)?
        {
            None => keyward_core::account::SecondFactorPolicy::Off,
            Some(v) => keyward_core::account::SecondFactorPolicy::parse(&v)
                .map_err(|m| invalid("require_second_factor", m))?,
        };
        let dpop_nonce_interval = match self.dpop_nonce_interval {
            None => None,
            Some(v) => {
                let s = duration("dpop_nonce_interval", Some(v), 0)?;
                if !(10..=86_400).contains(&s) {
                    return Err(invalid("dpop_nonce_interval", "must be from 10s to 1d"));
                }
                Some(s)
            }
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
            extra_ca_file,
            smtp,
            dpop_nonce_interval,
            outbound_private_addresses,
            require_second_factor,
            timeouts,
            authorization_code_ttl,
            refresh_token_idle_ttl,
            default_client_resource,
            token_endpoints,
            resources: self.resource,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use crate::config::test_env as env;
    use crate::config::{Flags, load};

    #[test]
    fn defaults() {
        let c = load(None, &HashMap::new(), &Flags::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.issuer, "http://127.0.0.1:8080");
        assert_eq!(c.database, "./keyward.db");
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
}
