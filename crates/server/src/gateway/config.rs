//! The gateway's configuration file (`keyward gateway --config gateway.toml`): where to listen, the upstream API,
//! the issuer and audiences tokens must have, and the route table. Checked at start; an error names the setting.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::http::Method;
use keyward_core::duration::parse_seconds;
use serde::Deserialize;

use super::routes::{Pattern, Route};

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    listen: Option<String>,
    upstream: String,
    issuer: String,
    audience: OneOrMany,
    jwks_uri: Option<String>,
    token_header: Option<String>,
    public_origin: Option<String>,
    dpop_replay_cache: Option<usize>,
    upstream_timeout: Option<String>,
    jwks_min_refetch: Option<String>,
    log_level: Option<String>,
    introspection_client_id: Option<String>,
    introspection_client_secret: Option<String>,
    introspection_cache: Option<String>,
    request_header_timeout: Option<String>,
    request_body_timeout: Option<String>,
    keep_alive_timeout: Option<String>,
    response_write_timeout: Option<String>,
    #[serde(default)]
    route: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    path: String,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    introspect: bool,
}

/// The checked gateway configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Address to listen on (default 127.0.0.1:8443).
    pub listen: SocketAddr,
    /// The API's base URL (`http://host:port`, optionally with a base path).
    pub upstream: String,
    /// The Keyward issuer tokens must come from.
    pub issuer: String,
    /// Audiences accepted (the API's resource identifiers).
    pub audiences: Vec<String>,
    /// The JWKS URL, when not discovered from the issuer.
    pub jwks_uri: Option<String>,
    /// A header that may carry the token instead of `Authorization: Bearer` (e.g. `WM_SEC.ACCESS_TOKEN`).
    pub token_header: Option<String>,
    /// The origin clients call the gateway at (`https://api.example.com`): the start of the URL a DPoP proof's
    /// `htu` must name (RFC 9449 §4.3). Without it, `https://` and the request's `Host`.
    pub public_origin: Option<String>,
    /// How many DPoP proofs are remembered to refuse replays (default 1,000,000: 75 s of about 13,000 proofs a
    /// second, some 150 MiB at most); when every place holds a proof still in its window, requests get 503.
    pub dpop_replay_cache: usize,
    /// Time allowed for the upstream to answer with headers (default 30 s): 504 past it.
    pub upstream_timeout: Duration,
    /// The shortest time between JWKS fetches caused by tokens with unknown `kid`s (default 10 s).
    pub jwks_min_refetch: Duration,
    /// `tracing` filter (default `info`: a line per request); `warn` turns the request lines off.
    pub log_level: String,
    /// Credentials for routes that introspect: a Keyward client serving the audience.
    pub introspection: Option<(String, String, Duration)>,
    /// How long a client connection may take over a request, sit idle, or leave a response unread (the same
    /// settings and defaults as `keyward serve`).
    pub timeouts: crate::conn::Timeouts,
    /// The route table, in file order; the first match wins.
    pub routes: Vec<Route>,
}

/// The gateway's default `dpop_replay_cache`: a gateway is an API's one door, so it holds ten times a library
/// verifier's default.
pub const DPOP_REPLAY_CACHE: usize = 1_000_000;

/// Reads and checks a gateway file. `listen` from the command line overrides the file's.
pub fn load(path: &Path, listen: Option<&str>) -> Result<GatewayConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read gateway config {}: {e}", path.display()))?;
    let raw: RawGateway = toml::from_str(&text)
        .map_err(|e| format!("gateway config {}: {}", path.display(), e.message()))?;
    check(raw, listen).map_err(|m| format!("gateway config {}: {m}", path.display()))
}

fn check(raw: RawGateway, listen: Option<&str>) -> Result<GatewayConfig, String> {
    let listen = listen
        .or(raw.listen.as_deref())
        .unwrap_or("127.0.0.1:8443")
        .parse()
        .map_err(|_| "listen: expected an address such as 127.0.0.1:8443".to_owned())?;
    let upstream = raw.upstream.trim_end_matches('/').to_owned();
    if !upstream.starts_with("http://") || upstream.contains(['?', '#']) {
        return Err("upstream: expected an http:// URL without query or fragment".into());
    }
    let issuer = raw.issuer.trim_end_matches('/').to_owned();
    if !(issuer.starts_with("http://") || issuer.starts_with("https://")) {
        return Err("issuer: expected the Keyward issuer URL, http(s)://…".into());
    }
    if let Some(o) = &raw.public_origin {
        // The verifier's builder reads it again; checked here so the error names the key at start.
        keyward_client::Verifier::builder("https://issuer.invalid")
            .audience("a")
            .public_origin(o.clone())
            .build()
            .map_err(|_| {
                format!("public_origin: {o:?} is not an origin such as https://api.example.com")
            })?;
    }
    if let Some(h) = &raw.token_header {
        axum::http::HeaderName::from_bytes(h.as_bytes())
            .map_err(|_| format!("token_header: {h:?} is not a valid header name"))?;
    }
    let audiences = match raw.audience {
        OneOrMany::One(a) => vec![a],
        OneOrMany::Many(list) => list,
    };
    if audiences.is_empty() || audiences.iter().any(String::is_empty) {
        return Err("audience: name the API's resource identifier(s)".into());
    }
    let seconds = |key: &str, v: Option<String>, default: u64| -> Result<Duration, String> {
        match v {
            None => Ok(Duration::from_secs(default)),
            Some(t) => parse_seconds(&t)
                .ok()
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs)
                .ok_or_else(|| format!("{key}: expected a duration such as \"30s\"")),
        }
    };
    let upstream_timeout = seconds("upstream_timeout", raw.upstream_timeout, 30)?;
    let jwks_min_refetch = seconds("jwks_min_refetch", raw.jwks_min_refetch, 10)?;
    let defaults = crate::conn::Timeouts::default();
    let positive = |key: &str, v: Option<String>, default: Duration| {
        let d = seconds(key, v, default.as_secs())?;
        if d.is_zero() || d > Duration::from_secs(86_400) {
            return Err(format!("{key}: must be from 1s to 1d"));
        }
        Ok(d)
    };
    let timeouts = crate::conn::Timeouts {
        header: positive(
            "request_header_timeout",
            raw.request_header_timeout,
            defaults.header,
        )?,
        body: positive(
            "request_body_timeout",
            raw.request_body_timeout,
            defaults.body,
        )?,
        idle: positive("keep_alive_timeout", raw.keep_alive_timeout, defaults.idle)?,
        write: positive(
            "response_write_timeout",
            raw.response_write_timeout,
            defaults.write,
        )?,
    };
    let log_level = raw.log_level.unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        return Err(
            "log_level: expected a level (error, warn, info, debug, trace) or a filter".into(),
        );
    }
    let introspection = match (raw.introspection_client_id, raw.introspection_client_secret) {
        (Some(id), Some(secret)) => Some((
            id,
            secret,
            seconds("introspection_cache", raw.introspection_cache, 5)?,
        )),
        (None, None) => None,
        _ => {
            return Err(
                "introspection_client_id and introspection_client_secret go together".into(),
            );
        }
    };
    let mut routes = Vec::with_capacity(raw.route.len());
    for (i, r) in raw.route.into_iter().enumerate() {
        let at = |m: String| format!("route {} ({}): {m}", i + 1, r.path);
        let pattern = Pattern::parse(&r.path).map_err(at)?;
        let methods = r
            .methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| at(format!("methods: {m:?} is not an HTTP method")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if r.public && (r.introspect || !r.scopes.is_empty()) {
            return Err(at(
                "a public route takes no scopes and no introspection".into()
            ));
        }
        if r.introspect && introspection.is_none() {
            return Err(at(
                "introspect needs introspection_client_id and introspection_client_secret".into(),
            ));
        }
        if let Some(s) = r
            .scopes
            .iter()
            .find(|s| !keyward_core::scope::is_scope_token(s))
        {
            return Err(at(format!("scopes: {s:?} is not a scope")));
        }
        routes.push(Route {
            pattern,
            methods,
            scopes: r.scopes,
            public: r.public,
            introspect: r.introspect,
        });
    }
    if routes.is_empty() {
        return Err(
            "route: declare at least one [[route]]; requests matching none are refused".into(),
        );
    }
    Ok(GatewayConfig {
        listen,
        upstream,
        issuer,
        audiences,
        jwks_uri: raw.jwks_uri,
        token_header: raw.token_header,
        public_origin: raw.public_origin,
        dpop_replay_cache: match raw.dpop_replay_cache {
            None => DPOP_REPLAY_CACHE,
            Some(0) => return Err("dpop_replay_cache: must be at least 1".into()),
            Some(n) => n,
        },
        upstream_timeout,
        jwks_min_refetch,
        log_level,
        introspection,
        timeouts,
        routes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GatewayConfig, String> {
        check(toml::from_str(text).map_err(|e| e.to_string())?, None)
    }

    const BASE: &str = "upstream = \"http://127.0.0.1:3000\"\nissuer = \"http://127.0.0.1:8080\"\naudience = \"api\"\n";

    #[test]
    fn a_full_file() {
        let c = parse(&format!(
            "{BASE}token_header = \"WM_SEC.ACCESS_TOKEN\"\nintrospection_client_id = \"gw\"\nintrospection_client_secret = \"s\"\n\
             [[route]]\npath = \"/manage/orders/{{id}}\"\nmethods = [\"get\"]\nscopes = [\"orders:read\"]\n\
             [[route]]\npath = \"/health\"\npublic = true\n\
             [[route]]\npath = \"/manage/{{*rest}}\"\nintrospect = true\n"
        ))
        .unwrap();
        assert_eq!(c.routes.len(), 3);
        assert_eq!(c.routes[0].methods, vec![Method::GET]);
        assert_eq!(c.upstream_timeout, Duration::from_secs(30));
        assert_eq!(c.introspection.unwrap().2, Duration::from_secs(5));
    }

    #[test]
    fn errors_name_the_setting() {
        let route = "[[route]]\npath = \"/x\"\n";
        let cases = [
            (BASE.to_string(), "declare at least one"),
            (
                BASE.replace("http://127.0.0.1:3000", "ftp://x") + route,
                "upstream",
            ),
            (
                BASE.replace("audience = \"api\"", "audience = []") + route,
                "audience",
            ),
            (
                format!("{BASE}{route}public = true\nscopes = [\"a\"]\n"),
                "public route",
            ),
            (
                format!("{BASE}{route}introspect = true\n"),
                "introspect needs",
            ),
            (format!("{BASE}{route}methods = [\"GE T\"]\n"), "methods"),
            (format!("{BASE}[[route]]\npath = \"x\"\n"), "route 1 (x)"),
            (
                format!("{BASE}upstream_timeout = \"soon\"\n{route}"),
                "upstream_timeout",
            ),
            (
                BASE.replace("http://127.0.0.1:8080", "auth.example") + route,
                "issuer",
            ),
            (
                format!("{BASE}token_header = \"a b\"\n{route}"),
                "token_header",
            ),
            (
                format!("{BASE}public_origin = \"https://api.example.com/v1\"\n{route}"),
                "public_origin",
            ),
        ];
        for (text, expected) in cases {
            let e = parse(&text).unwrap_err();
            assert!(e.contains(expected), "{text}: {e}");
        }
    }
}
