//! One `[api.NAME]` table of the agent's file: a preset or an explicit token endpoint and dialect, the explicit
//! keys that override a preset's, the upstream of proxy mode, where the client id comes from, and its credential
//! and DPoP key (checked in `credential.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use axum::http::{HeaderName, HeaderValue, Uri};
use keyward_client::source::{Builder, Credential, Dialect, HeaderValue as Sent, Preset};
use keyward_client::{SigningKey, TokenSource};
use serde::Deserialize;

use super::config::Env;
use super::credential::{self, Given};

/// An `[api.NAME]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    preset: Option<String>,
    environment: Option<String>,
    region: Option<String>,
    market: Option<String>,
    base_url: Option<String>,
    token_url: Option<String>,
    api_url: Option<String>,
    client_id: Option<String>,
    client_id_env: Option<String>,
    client_id_file: Option<PathBuf>,
    client_secret: Option<String>,
    client_secret_env: Option<String>,
    client_secret_file: Option<PathBuf>,
    private_key_file: Option<PathBuf>,
    key_id: Option<String>,
    assertion_alg: Option<String>,
    assertion_file: Option<PathBuf>,
    github_actions_audience: Option<String>,
    dpop: Option<bool>,
    dpop_key_file: Option<PathBuf>,
    auth: Option<String>,
    body: Option<String>,
    accept: Option<String>,
    scope: Option<String>,
    audience: Option<String>,
    resource: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    correlation_header: Option<String>,
    token_header: Option<String>,
    refresh_share: Option<f64>,
    proxy_requires_header: Option<bool>,
}

/// A checked `[api.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// The name apps use: `/v1/token/NAME`, `/NAME/<path>`.
    pub name: String,
    /// How tokens are asked for and where proxied calls go.
    pub settings: ApiSettings,
    /// The client id, as read.
    pub client_id: String,
    /// What the client authenticates with: a secret, a private key, a platform token.
    pub credential: Credential,
    /// The files the id and the credential were read from, watched for change.
    pub files: Vec<PathBuf>,
}

/// Everything about an API but its credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiSettings {
    /// The token endpoint.
    pub token_url: String,
    /// How the token request is spoken.
    pub dialect: Dialect,
    /// Body parameters: `scope`, `audience`, `resource`.
    pub params: Vec<(String, String)>,
    /// Proxy mode's upstream base URL, without a trailing `/`; `None`: token mode only.
    pub api_url: Option<String>,
    /// The header proxied calls carry the token in; `None`: `Authorization: Bearer`.
    pub token_header: Option<String>,
    /// The share of a token's lifetime after which it is refreshed.
    pub refresh_share: Option<f64>,
    /// Whether proxy mode, like token mode, needs `Metadata-Flavor: Keyward` (default: it does), so that a request
    /// an app was tricked into sending, or a redirect it followed, cannot make an authenticated call.
    pub proxy_requires_header: bool,
    /// Whether tokens are bound to a DPoP key (RFC 9449): proxied calls then carry a fresh proof each.
    pub dpop: bool,
    /// The DPoP key from `dpop_key_file`; `None` with `dpop`: one generated at start, in memory only.
    pub dpop_key: Option<SigningKey>,
}

impl ApiConfig {
    /// The token source's builder for this API, with its credentials.
    pub fn builder(&self) -> Builder {
        let s = &self.settings;
        let mut b = TokenSource::with_credential(
            s.token_url.clone(),
            self.client_id.clone(),
            self.credential.clone(),
        )
        .dialect(s.dialect.clone());
        match (&s.dpop_key, s.dpop) {
            (Some(key), _) => b = b.dpop_key(key.clone()),
            (None, true) => b = b.dpop(),
            (None, false) => {}
        }
        for (name, value) in &s.params {
            b = b.param(name.clone(), value.clone());
        }
        if let Some(share) = s.refresh_share {
            b = b.refresh_share(share);
        }
        b
    }
}

/// The presets, as the file names them.
const PRESETS: &str = "walley, wll, walmart-marketplace, walmart-orders-hub, walmart-1p-supplier";

/// Checks one `[api.NAME]` table and reads its credentials.
pub(super) fn check(name: &str, raw: RawApi, env: &Env) -> Result<ApiConfig, String> {
    let at = |key: &str, why: String| format!("api.{name}.{key}: {why}");
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid_name || name == "v1" {
        return Err(format!(
            "api.{name}: a name is 1 to 64 of a-z, 0-9, _ and -, and not v1 (token mode's path)"
        ));
    }
    let preset = match raw.preset.as_deref() {
        Some(p) => Some(preset(p, &raw).map_err(|(key, why)| at(key, why))?),
        None => None,
    };
    let base_url = raw
        .base_url
        .as_deref()
        .map(|u| url(u).map_err(|e| at("base_url", e)))
        .transpose()?;
    let token_url = raw
        .token_url
        .as_deref()
        .map(|u| url(u).map_err(|e| at("token_url", e)))
        .transpose()?;
    let (token_url, mut dialect, scope, audience) = match &preset {
        Some(p) => {
            // An explicit token_url replaces the preset's, so the preset needs no host of its own then.
            let filled = p
                .fill(base_url.as_deref().or(token_url.as_deref()))
                .map_err(|e| at("base_url", e))?;
            (
                token_url.unwrap_or(filled.token_url),
                filled.dialect,
                filled.scope,
                filled.audience,
            )
        }
        None => {
            if base_url.is_some() {
                return Err(at(
                    "base_url",
                    "only with a preset; without one, give token_url".into(),
                ));
            }
            let token_url = token_url.ok_or_else(|| {
                at(
                    "token_url",
                    format!("required without a preset (or set preset to one of {PRESETS})"),
                )
            })?;
            (token_url, Dialect::default(), None, None)
        }
    };
    if let Some(a) = &raw.auth {
        dialect.auth = a.parse().map_err(|e| at("auth", e))?;
    }
    if let Some(b) = &raw.body {
        dialect.body = b.parse().map_err(|e| at("body", e))?;
    }
    if let Some(a) = &raw.accept {
        dialect.accept = a.parse().map_err(|e| at("accept", e))?;
    }
    for (header, value) in &raw.headers {
        header_name(header).map_err(|e| at("headers", e))?;
        if HeaderValue::from_str(value).is_err() {
            return Err(at(
                "headers",
                format!("the value of `{header}` is not a valid header value"),
            ));
        }
        set_header(&mut dialect, header, Sent::Fixed(value.clone()));
    }
    if let Some(header) = &raw.correlation_header {
        header_name(header).map_err(|e| at("correlation_header", e))?;
        set_header(&mut dialect, header, Sent::Correlation);
    }
    let token_header = match &raw.token_header {
        Some(h) => {
            header_name(h).map_err(|e| at("token_header", e))?;
            (!h.eq_ignore_ascii_case("authorization")).then(|| h.clone())
        }
        None => dialect.api_header.clone(),
    };
    dialect.api_header = token_header.clone();
    // An explicit scope or audience replaces the preset's; an empty one sends none.
    let mut params = Vec::new();
    for (key, value) in [
        ("scope", raw.scope.or(scope)),
        ("audience", raw.audience.or(audience)),
        ("resource", raw.resource),
    ] {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            params.push((key.to_owned(), v));
        }
    }
    let api_url = raw
        .api_url
        .as_deref()
        .map(|u| url(u).map_err(|e| at("api_url", e)))
        .transpose()?;
    if let Some(share) = raw.refresh_share {
        if !(share > 0.0 && share <= 1.0) {
            return Err(at("refresh_share", "must be above 0 and at most 1".into()));
        }
    }
    let mut files = Vec::new();
    let client_id = credential::read(
        name,
        "client_id",
        (raw.client_id, raw.client_id_env, raw.client_id_file),
        env,
        &mut files,
    )?;
    let given = Given {
        secret: (
            raw.client_secret,
            raw.client_secret_env,
            raw.client_secret_file,
        ),
        private_key_file: raw.private_key_file,
        key_id: raw.key_id,
        assertion_alg: raw.assertion_alg,
        assertion_file: raw.assertion_file,
        github_actions_audience: raw.github_actions_audience,
        auth: raw.auth.is_some(),
    };
    let credential = credential::choose(name, given, env, &mut files)?;
    let (dpop, dpop_key) = credential::dpop(name, raw.dpop, raw.dpop_key_file)?;
    Ok(ApiConfig {
        name: name.to_owned(),
        settings: ApiSettings {
            token_url,
            dialect,
            params,
            api_url,
            token_header,
            refresh_share: raw.refresh_share,
            // Required unless turned off: the lesson of instance metadata services (a header, against SSRF).
            proxy_requires_header: raw.proxy_requires_header.unwrap_or(true),
            dpop,
            dpop_key,
        },
        client_id,
        credential,
        files,
    })
}

/// The preset named `name`, with the keys it takes; an error names the key and why.
fn preset(name: &str, raw: &RawApi) -> Result<Preset, (&'static str, String)> {
    if !PRESETS.split(", ").any(|p| p == name) {
        return Err(("preset", format!("`{name}` is not one of {PRESETS}")));
    }
    let takes = |key: &'static str, value: &Option<String>, presets: &[&str]| {
        if value.is_some() && !presets.contains(&name) {
            let which = match presets {
                [one] => format!("the {one} preset takes"),
                _ => format!("the {} presets take", presets.join(" and ")),
            };
            return Err((key, format!("only {which} it")));
        }
        Ok(())
    };
    takes("environment", &raw.environment, &["walley", "wll"])?;
    takes("region", &raw.region, &["wll"])?;
    takes("market", &raw.market, &["walmart-marketplace"])?;
    let environment = |allowed: &str| {
        raw.environment.as_deref().ok_or_else(|| {
            (
                "environment",
                format!("required by the {name} preset ({allowed})"),
            )
        })
    };
    Ok(match name {
        "walley" => Preset::Walley {
            environment: environment("uat or prod")?
                .parse()
                .map_err(|e| ("environment", e))?,
        },
        "wll" => Preset::Wll {
            region: raw
                .region
                .as_deref()
                .unwrap_or("eu")
                .parse()
                .map_err(|e| ("region", e))?,
            environment: environment("staging, production or any")?
                .parse()
                .map_err(|e| ("environment", e))?,
        },
        "walmart-marketplace" => {
            let market = raw.market.as_deref().unwrap_or("us").to_ascii_lowercase();
            if !["us", "mx", "ca", "cl"].contains(&market.as_str()) {
                return Err(("market", format!("`{market}` is not one of us, mx, ca, cl")));
            }
            Preset::WalmartMarketplace { market }
        }
        "walmart-orders-hub" => Preset::OrdersHub,
        "walmart-1p-supplier" => Preset::Supplier1P,
        other => {
            return Err(("preset", format!("`{other}` is not one of {PRESETS}")));
        }
    })
}

/// An `http://` or `https://` URL with a host and no query, without a trailing `/`.
fn url(text: &str) -> Result<String, String> {
    let uri: Uri = text.parse().map_err(|_| format!("`{text}` is not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(format!("`{text}` is not an http:// or https:// URL"));
    }
    if uri.query().is_some() {
        return Err(format!("`{text}`: a query has no place here"));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

fn header_name(name: &str) -> Result<(), String> {
    HeaderName::from_bytes(name.as_bytes())
        .map(|_| ())
        .map_err(|_| format!("`{name}` is not a valid header name"))
}

/// Sets a header of the token request, replacing the preset's of the same name.
fn set_header(dialect: &mut Dialect, name: &str, value: Sent) {
    dialect
        .headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    dialect.headers.push((name.to_owned(), value));
}
