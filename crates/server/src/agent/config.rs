//! The agent's configuration file (`keyward agent --config agent.toml`): where it listens, who may ask, where its
//! metrics go, and the named APIs (`[api.NAME]`, checked in `api.rs`). Read at start and again at each reload;
//! unknown keys are refused and every error names its key (`api.walley.environment: …`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keyward_core::duration::parse_seconds;
use keyward_core::net::Cidr;
use serde::Deserialize;

use super::api::{self, ApiConfig, RawApi};

/// Where the agent listens when the file names neither `listen` nor `socket`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8931";

/// The networks TCP requests may come from when `allowed_sources` is not given: loopback.
const LOOPBACK: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// Looks up an environment variable. Injected, so that tests never touch the process's environment.
pub type Env = dyn Fn(&str) -> Option<String> + Send + Sync;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    listen: Option<String>,
    socket: Option<PathBuf>,
    metrics_listen: Option<String>,
    allowed_sources: Option<Vec<String>>,
    ca_file: Option<PathBuf>,
    reload_interval: Option<String>,
    upstream_timeout: Option<String>,
    log_level: Option<String>,
    #[serde(default)]
    api: BTreeMap<String, RawApi>,
}

/// What the command line sets over the file (`--listen`, `--metrics-listen`), at start and at every reload.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// The TCP address for token and proxy mode.
    pub listen: Option<String>,
    /// The address of `/metrics` and `/readyz`.
    pub metrics_listen: Option<String>,
}

/// The checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// Everything but the APIs.
    pub settings: Settings,
    /// The APIs, by name.
    pub apis: Vec<ApiConfig>,
}

/// The agent's own settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The TCP address of token and proxy mode; `None` when only the Unix socket serves.
    pub listen: Option<SocketAddr>,
    /// A Unix socket serving the same (created with mode 0600).
    pub socket: Option<PathBuf>,
    /// Where `GET /metrics` and `GET /readyz` are served, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The networks TCP requests may come from (default: loopback only).
    pub allowed_sources: Vec<Cidr>,
    /// Extra certificate authorities (PEM) trusted for token endpoints and APIs.
    pub ca_file: Option<PathBuf>,
    /// How often the credential files and this file are checked for change.
    pub reload_interval: Duration,
    /// How long an API may take to answer a proxied request with its headers (504 past it).
    pub upstream_timeout: Duration,
    /// The `tracing` filter.
    pub log_level: String,
}

/// Reads and checks the agent's file.
pub fn load(path: &Path, overrides: &Overrides, env: &Env) -> Result<AgentConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read agent config {}: {e}", path.display()))?;
    parse(&text, overrides, env).map_err(|m| format!("agent config {}: {m}", path.display()))
}

/// Checks the text of an agent file.
pub fn parse(text: &str, overrides: &Overrides, env: &Env) -> Result<AgentConfig, String> {
    let raw: RawAgent =
        serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            // A syntax error has no key to name: its line does instead.
            let line = inner
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            match (path.as_str(), line) {
                ("" | ".", Some(line)) => format!("line {line}: {}", inner.message()),
                ("" | ".", None) => inner.message().to_owned(),
                (path, _) => format!("{path}: {}", inner.message()),
            }
        })?;
    check(raw, overrides, env)
}

fn check(raw: RawAgent, overrides: &Overrides, env: &Env) -> Result<AgentConfig, String> {
    let widened = raw.allowed_sources.is_some();
    let sources = raw
        .allowed_sources
        .unwrap_or_else(|| LOOPBACK.iter().map(|s| (*s).to_owned()).collect());
    if sources.is_empty() {
        return Err(
            "allowed_sources: name at least one network (leave it out for loopback only)".into(),
        );
    }
    let allowed_sources = sources
        .iter()
        .map(|s| s.parse::<Cidr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("allowed_sources: {e}"))?;
    let socket = raw.socket;
    if socket.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        return Err("socket: expected the path of a Unix socket".into());
    }
    let listen = match overrides.listen.clone().or(raw.listen) {
        Some(text) => Some(address("listen", &text)?),
        None if socket.is_none() => Some(address("listen", DEFAULT_LISTEN)?),
        None => None,
    };
    if let Some(addr) = listen {
        if !addr.ip().is_loopback() && !widened {
            return Err(format!(
                "listen: `{addr}` is not a loopback address; to serve apps on other hosts, set allowed_sources \
                 to their networks"
            ));
        }
    }
    let metrics_listen = overrides
        .metrics_listen
        .clone()
        .or(raw.metrics_listen)
        .map(|t| address("metrics_listen", &t))
        .transpose()?;
    if let Some(path) = &raw.ca_file {
        keyward_client::read_ca_file(path).map_err(|e| format!("ca_file: {e}"))?;
    }
    let reload_interval = seconds("reload_interval", raw.reload_interval, 2, 86_400)?;
    let upstream_timeout = seconds("upstream_timeout", raw.upstream_timeout, 30, 3_600)?;
    let log_level = raw.log_level.unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        return Err(
            "log_level: expected a level (error, warn, info, debug, trace) or a filter".into(),
        );
    }
    if raw.api.is_empty() {
        return Err("api: declare at least one [api.NAME] table".into());
    }
    let apis = raw
        .api
        .into_iter()
        .map(|(name, api)| api::check(&name, api, env))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AgentConfig {
        settings: Settings {
            listen,
            socket,
            metrics_listen,
            allowed_sources,
            ca_file: raw.ca_file,
            reload_interval,
            upstream_timeout,
            log_level,
        },
        apis,
    })
}

/// A socket address such as `127.0.0.1:8931`.
fn address(key: &str, text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{key}: `{text}` is not an address such as 127.0.0.1:8931"))
}

/// A duration from 1 s to `max` seconds, `default` when not given.
fn seconds(key: &str, value: Option<String>, default: u64, max: u64) -> Result<Duration, String> {
    let Some(text) = value else {
        return Ok(Duration::from_secs(default));
    };
    parse_seconds(&text)
        .ok()
        .and_then(|s| u64::try_from(s).ok())
        .filter(|s| (1..=max).contains(s))
        .map(Duration::from_secs)
        .ok_or_else(|| {
            format!(
                "{key}: expected a duration from 1s to {}, such as \"2s\"",
                keyward_core::duration::format_seconds(max as i64)
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_client::source::{AuthMethod, BodyFormat, HeaderValue};

    fn env(name: &str) -> Option<String> {
        (name == "WALLEY_SECRET").then(|| "from-env".to_owned())
    }

    fn parse_text(text: &str) -> Result<AgentConfig, String> {
        parse(text, &Overrides::default(), &env)
    }

    const WALLEY: &str = "[api.walley]\npreset = \"walley\"\nenvironment = \"uat\"\nbase_url = \"http://127.0.0.1:8080/\"\nclient_id = \"c\"\nclient_secret_env = \"WALLEY_SECRET\"\n";

    #[test]
    fn presets_explicit_apis_and_overrides() {
        let dir = tempfile_dir();
        let secret = dir.join("secret");
        std::fs::write(&secret, "s3cret\r\n").unwrap();
        let text = format!(
            "metrics_listen = \"127.0.0.1:0\"\nreload_interval = \"1s\"\n{WALLEY}api_url = \"https://api.example.com/base/\"\n\
             [api.custom]\ntoken_url = \"https://auth.example.com/oauth2/token\"\nauth = \"client_secret_post\"\nbody = \"json\"\n\
             scope = \"a b\"\nheaders = {{ \"X-Thing\" = \"v\" }}\ncorrelation_header = \"X-Request-Id\"\n\
             token_header = \"X-Token\"\nrefresh_share = 0.5\nclient_id = \"id\"\nclient_secret_file = \"{}\"\n\
             [api.market]\npreset = \"walmart-marketplace\"\nmarket = \"MX\"\nclient_id = \"m\"\nclient_secret = \"x\"\nscope = \"\"\n",
            secret.display()
        );
        let c = parse_text(&text).unwrap();
        assert_eq!(c.settings.listen, Some(DEFAULT_LISTEN.parse().unwrap()));
        assert_eq!(c.settings.reload_interval, Duration::from_secs(1));
        let [custom, market, walley] = &c.apis[..] else {
            panic!("{:?}", c.apis)
        };
        assert_eq!(
            walley.settings.token_url,
            "http://127.0.0.1:8080/oauth2/v2.0/token"
        );
        assert_eq!(
            walley.settings.api_url.as_deref(),
            Some("https://api.example.com/base")
        );
        assert_eq!(secret_of(walley), "from-env");
        assert_eq!(walley.settings.params[0].0, "scope");
        assert_eq!(secret_of(custom), "s3cret", "the newline is trimmed");
        assert_eq!(custom.files, vec![secret]);
        assert_eq!(
            (custom.settings.dialect.auth, custom.settings.dialect.body),
            (AuthMethod::Post, BodyFormat::Json)
        );
        assert_eq!(custom.settings.dialect.headers.len(), 2);
        assert_eq!(
            custom.settings.dialect.headers[1].1,
            HeaderValue::Correlation
        );
        assert_eq!(custom.settings.token_header.as_deref(), Some("X-Token"));
        assert_eq!(
            market.settings.token_header.as_deref(),
            Some("WM_SEC.ACCESS_TOKEN"),
            "the preset's"
        );
        assert!(market.settings.params.is_empty());
        assert!(
            market
                .settings
                .dialect
                .headers
                .contains(&("WM_MARKET".into(), HeaderValue::Fixed("mx".into())))
        );
        // Overrides from the command line win.
        let o = Overrides {
            listen: Some("127.0.0.1:0".into()),
            metrics_listen: None,
        };
        let c = parse(WALLEY, &o, &env).unwrap();
        assert_eq!(c.settings.listen.unwrap().port(), 0);
    }

    #[test]
    fn errors_name_the_key_and_why() {
        let cases = [
            (
                WALLEY.replace("\"uat\"", "\"qa\""),
                "api.walley.environment: `qa` is not one of uat, prod",
            ),
            (
                WALLEY.replace("environment = \"uat\"\n", ""),
                "api.walley.environment: required",
            ),
            (
                WALLEY.replace("base_url = \"http://127.0.0.1:8080/\"\n", ""),
                "api.walley.base_url",
            ),
            (
                format!("{WALLEY}enviroment = \"x\"\n"),
                "api.walley.enviroment: unknown field `enviroment`",
            ),
            (format!("lisen = \"x\"\n{WALLEY}"), "unknown field `lisen`"),
            (
                format!("{WALLEY}client_secret = \"x\"\n"),
                "api.walley.client_secret: give exactly one",
            ),
            (
                WALLEY.replace("WALLEY_SECRET", "NOPE"),
                "api.walley.client_secret_env: the environment variable `NOPE` is not set",
            ),
            (WALLEY.replace("walley]", "v1]"), "api.v1: a name is"),
            (
                WALLEY.replace("walley]", "Walley]"),
                "api.Walley: a name is",
            ),
            (
                WALLEY.replace("preset = \"walley\"", "preset = \"azure\""),
                "api.walley.preset: `azure` is not one of walley, wll",
            ),
            (
                format!("{WALLEY}region = \"eu\"\n"),
                "api.walley.region: only the wll preset takes it",
            ),
            (
                format!("{WALLEY}refresh_share = 1.5\n"),
                "api.walley.refresh_share: must be above 0",
            ),
            (
                format!("{WALLEY}refresh_share = \"x\"\n"),
                "api.walley.refresh_share: invalid type",
            ),
            (
                format!("{WALLEY}auth = \"basic\"\n"),
                "api.walley.auth: `basic` is not one of client_secret_basic, client_secret_post",
            ),
            (
                format!("{WALLEY}headers = {{ \"a b\" = \"v\" }}\n"),
                "api.walley.headers: `a b` is not a valid header name",
            ),
            (
                format!("{WALLEY}api_url = \"ftp://x\"\n"),
                "api.walley.api_url",
            ),
            (
                "[api.x]\nclient_id = \"a\"\nclient_secret = \"b\"\n".into(),
                "api.x.token_url: required without a preset",
            ),
            (
                format!(
                    "{WALLEY}[api.w2]\npreset = \"wll\"\nenvironment = \"qa\"\nclient_id = \"a\"\nclient_secret = \"b\"\n"
                ),
                "api.w2.environment: `qa` is not one of staging, production, any",
            ),
            (
                format!("listen = \"0.0.0.0:8931\"\n{WALLEY}"),
                "listen: `0.0.0.0:8931` is not a loopback address",
            ),
            (
                format!("allowed_sources = [\"10.0.0.0/33\"]\n{WALLEY}"),
                "allowed_sources",
            ),
            (
                format!("reload_interval = \"0s\"\n{WALLEY}"),
                "reload_interval",
            ),
            (
                format!("metrics_listen = \"x\"\n{WALLEY}"),
                "metrics_listen",
            ),
            (
                "listen = \"127.0.0.1:1\"\n".into(),
                "api: declare at least one",
            ),
            ("[api.walley\n".into(), "line 1"),
        ];
        for (text, expected) in cases {
            let e = parse_text(&text).unwrap_err();
            assert!(e.contains(expected), "{text}\n=> {e}\nexpected {expected}");
        }
        // Widened sources allow other addresses.
        let c = parse_text(&format!(
            "listen = \"0.0.0.0:8931\"\nallowed_sources = [\"10.0.0.0/8\"]\n{WALLEY}"
        ))
        .unwrap();
        assert_eq!(c.settings.allowed_sources.len(), 1);
    }

    #[test]
    fn secrets_are_never_in_errors_or_debug() {
        let c = parse_text(&WALLEY.replace(
            "client_secret_env = \"WALLEY_SECRET\"",
            "client_secret = \"hunter2\"",
        ))
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        let e = parse_text(&format!(
            "{}auth = \"x\"\n",
            WALLEY.replace(
                "client_secret_env = \"WALLEY_SECRET\"",
                "client_secret = \"hunter2\""
            )
        ))
        .unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }

    /// The secret an API authenticates with.
    fn secret_of(api: &ApiConfig) -> &str {
        match &api.credential {
            keyward_client::source::Credential::Secret(s) => s.expose(),
            other => panic!("not a secret: {other:?}"),
        }
    }

    /// A fresh directory under the system's temporary one.
    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("keyward-agent-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
