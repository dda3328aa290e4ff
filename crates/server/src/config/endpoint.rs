//! `[[token_endpoint]]`: extra token endpoint paths, each with its own manners (accepted client authentication
//! and body encodings, required headers, a correlation header, XML, grant types per market). A handful of
//! orthogonal settings, so that any vendor's documented interface is a configuration, not a code path.

use std::collections::{BTreeMap, HashSet};

use axum::http::HeaderName;
use keyward_core::client::AuthMethod;
use keyward_core::endpoint::{GRANT_NAMES, GrantRule, MarketRule};
use serde::Deserialize;

use super::ConfigError;

/// One `[[token_endpoint]]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokenEndpoint {
    path: String,
    auth_methods: Option<Vec<String>>,
    body: Option<Vec<String>>,
    untyped_body: Option<String>,
    #[serde(default)]
    required_headers: Vec<String>,
    correlation_header: Option<String>,
    #[serde(default)]
    xml: bool,
    grant_types: Option<Vec<String>>,
    market_header: Option<String>,
    market_grants: Option<BTreeMap<String, Vec<String>>>,
    partner_header: Option<String>,
    detail_path: Option<String>,
    access_token_header: Option<String>,
}

/// A request body encoding a token endpoint may accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/x-www-form-urlencoded` (RFC 6749 §3.2).
    Form,
    /// `application/json` with string members (the Auth0 style).
    Json,
}

impl BodyKind {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "form" => Some(Self::Form),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// How an OAuth endpoint reads a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyRules {
    /// Accepted encodings.
    pub accepted: Vec<BodyKind>,
    /// How a body without `Content-Type` is read; refused when `None`.
    pub untyped: Option<BodyKind>,
}

impl Default for BodyRules {
    /// The canonical endpoints: form or JSON, and a `Content-Type` is required.
    fn default() -> Self {
        BodyRules {
            accepted: vec![BodyKind::Form, BodyKind::Json],
            untyped: None,
        }
    }
}

/// A header named in the configuration: the name as written (for messages) and its parsed form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedHeader {
    /// As written, e.g. `WM_QOS.CORRELATION_ID`.
    pub display: String,
    /// Parsed (lower case).
    pub name: HeaderName,
}

/// A checked token endpoint alias.
#[derive(Debug, Clone)]
pub struct TokenEndpoint {
    /// The path it is served at.
    pub path: String,
    /// Client authentication methods it accepts.
    pub auth_methods: Vec<AuthMethod>,
    /// Body encodings it accepts.
    pub body: BodyRules,
    /// Headers a request must carry (non-empty).
    pub required_headers: Vec<NamedHeader>,
    /// A header whose value is echoed on the response and written to the request's log line.
    pub correlation_header: Option<NamedHeader>,
    /// Whether `Accept` may choose XML.
    pub xml: bool,
    /// Grant types served, optionally per market.
    pub grants: GrantRule,
    /// The header that names the market, when grants vary by market.
    pub market_header: Option<NamedHeader>,
    /// A header that authorization_code and refresh_token requests must carry, equal to the account's partner id
    /// (Walmart's `WM_PARTNER.ID`).
    pub partner_header: Option<NamedHeader>,
    /// Where the token detail endpoint is served for this interface (`GET`), when set.
    pub detail_path: Option<String>,
    /// A header that carries the access token besides `Authorization: Bearer` (Walmart's `WM_SEC.ACCESS_TOKEN`),
    /// read by the token detail endpoint.
    pub access_token_header: Option<NamedHeader>,
}

/// Paths Keyward serves itself, which an alias may not take.
const RESERVED: [&str; 11] = [
    "/oauth2/token",
    "/oauth2/introspect",
    "/oauth2/revoke",
    "/oauth2/jwks",
    "/oauth2/authorize",
    "/oauth2/token/detail",
    "/healthz",
    "/readyz",
    "/login",
    "/logout",
    "/account",
];

/// Headers that may not be a correlation header: ones Keyward sets on responses, and credentials.
const NOT_CORRELATION: [&str; 16] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "www-authenticate",
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "host",
    "allow",
    "vary",
    "cache-control",
    "pragma",
    "retry-after",
];

/// Path prefixes Keyward serves itself.
const RESERVED_PREFIXES: [&str; 5] = ["/admin", "/.well-known", "/account", "/assets", "/console"];

fn header(what: &str, name: &str) -> Result<NamedHeader, String> {
    HeaderName::from_bytes(name.as_bytes())
        .map(|parsed| NamedHeader {
            display: name.to_owned(),
            name: parsed,
        })
        .map_err(|_| format!("{what}: {name:?} is not a valid HTTP header name"))
}

fn check_path(path: &str) -> Result<(), String> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || "-._~/".contains(c);
    if !path.starts_with('/')
        || path.len() < 2
        || path.ends_with('/')
        || path.contains("//")
        || !path.chars().all(valid_char)
    {
        return Err(
            "path: expected an absolute path such as \"/v3/token\" (letters, digits, - . _ ~ /)"
                .into(),
        );
    }
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if RESERVED.contains(&path) || RESERVED_PREFIXES.iter().any(|p| under(p)) {
        return Err(format!(
            "path: {path} is a path Keyward serves itself ({}, and everything under {})",
            RESERVED.join(", "),
            RESERVED_PREFIXES.join(", ")
        ));
    }
    Ok(())
}

impl RawTokenEndpoint {
    /// Checks every setting and applies the defaults: both auth methods, both body encodings, every grant type.
    pub fn check(self) -> Result<TokenEndpoint, ConfigError> {
        let path = self.path.clone();
        self.check_inner().map_err(|message| ConfigError::Section {
            section: format!("[[token_endpoint]] path = {path:?}"),
            message,
        })
    }

    fn check_inner(self) -> Result<TokenEndpoint, String> {
        check_path(&self.path)?;
        let auth_methods = match self.auth_methods {
            None => AuthMethod::ALL.to_vec(),
            Some(list) if list.is_empty() => return Err("auth_methods: must not be empty".into()),
            Some(list) => list
                .iter()
                .map(|m| m.parse().map_err(|e| format!("auth_methods: {e}")))
                .collect::<Result<_, _>>()?,
        };
        let accepted = match self.body {
            None => BodyRules::default().accepted,
            Some(list) if list.is_empty() => return Err("body: must not be empty".into()),
            Some(list) => list
                .iter()
                .map(|b| {
                    BodyKind::parse(b)
                        .ok_or_else(|| format!("body: {b:?} is not \"form\" or \"json\""))
                })
                .collect::<Result<_, _>>()?,
        };
        let untyped = match self.untyped_body.as_deref() {
            None => None,
            Some(b) => match BodyKind::parse(b) {
                Some(kind) if accepted.contains(&kind) => Some(kind),
                Some(_) => return Err(format!("untyped_body: {b:?} is not in `body`")),
                None => return Err(format!("untyped_body: {b:?} is not \"form\" or \"json\"")),
            },
        };
        let required_headers = self
            .required_headers
            .iter()
            .map(|h| header("required_headers", h))
            .collect::<Result<Vec<_>, _>>()?;
        let correlation_header = self
            .correlation_header
            .as_deref()
            .map(|h| header("correlation_header", h))
            .transpose()?;
        if let Some(h) = &correlation_header {
            // Its value is echoed and logged: never a header Keyward sets itself, nor a credential.
            if NOT_CORRELATION.contains(&h.name.as_str()) {
                return Err(format!(
                    "correlation_header: {} cannot be echoed or logged; use a header of your own",
                    h.display
                ));
            }
        }
        let grant_types = match self.grant_types {
            None => GRANT_NAMES.iter().map(|g| (*g).to_owned()).collect(),
            Some(list) if list.is_empty() => return Err("grant_types: must not be empty".into()),
            Some(list) => list,
        };
        if let Some(g) = grant_types
            .iter()
            .find(|g| !GRANT_NAMES.contains(&g.as_str()))
        {
            return Err(format!(
                "grant_types: {g:?} is not one of {}",
                GRANT_NAMES.join(", ")
            ));
        }
        let (market_header, market) = match (self.market_header, self.market_grants) {
            (None, None) => (None, None),
            (Some(h), Some(grants)) => {
                let named = header("market_header", &h)?;
                (Some(named), Some(market_rule(&h, grants, &grant_types)?))
            }
            _ => return Err("market_header and market_grants go together".into()),
        };
        let partner_header = self
            .partner_header
            .as_deref()
            .map(|h| header("partner_header", h))
            .transpose()?;
        if partner_header.is_some()
            && !grant_types
                .iter()
                .any(|g| g == "authorization_code" || g == "refresh_token")
        {
            return Err("partner_header: only authorization_code and refresh_token use it, and the endpoint \
                        serves neither"
                .into());
        }
        if let Some(p) = &self.detail_path {
            check_path(p).map_err(|m| format!("detail_path: {m}"))?;
            if *p == self.path {
                return Err("detail_path: must differ from path".into());
            }
        }
        let access_token_header = self
            .access_token_header
            .as_deref()
            .map(|h| header("access_token_header", h))
            .transpose()?;
        Ok(TokenEndpoint {
            path: self.path,
            auth_methods,
            body: BodyRules { accepted, untyped },
            required_headers,
            correlation_header,
            xml: self.xml,
            grants: GrantRule {
                grant_types,
                market,
            },
            market_header,
            partner_header,
            detail_path: self.detail_path,
            access_token_header,
        })
    }
}

fn market_rule(
    header: &str,
    grants: BTreeMap<String, Vec<String>>,
    served: &[String],
) -> Result<MarketRule, String> {
    if grants.is_empty() {
        return Err("market_grants: name at least one market".into());
    }
    let mut out = BTreeMap::new();
    for (market, list) in grants {
        if market.is_empty() || !market.chars().all(|c| c.is_ascii_graphic()) {
            return Err(format!(
                "market_grants: {market:?} is not a valid market value"
            ));
        }
        if let Some(g) = list.iter().find(|g| !served.contains(g)) {
            return Err(format!(
                "market_grants.{market}: {g:?} is not in the endpoint's grant_types"
            ));
        }
        if out.insert(market.to_ascii_lowercase(), list).is_some() {
            return Err(format!(
                "market_grants: {market:?} is named twice (markets are compared without case)"
            ));
        }
    }
    Ok(MarketRule {
        header: header.to_owned(),
        grants: out,
    })
}

/// Checks a list of endpoints: each one, and that no two share a path.
pub(super) fn check_all(raw: Vec<RawTokenEndpoint>) -> Result<Vec<TokenEndpoint>, ConfigError> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let e = r.check()?;
        if !seen.insert(e.path.clone()) {
            return Err(ConfigError::Section {
                section: format!("[[token_endpoint]] path = {:?}", e.path),
                message: "the path is declared twice".into(),
            });
        }
        out.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<TokenEndpoint>, String> {
        #[derive(Deserialize)]
        struct File {
            token_endpoint: Vec<RawTokenEndpoint>,
        }
        let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
        check_all(f.token_endpoint).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let e = parse("[[token_endpoint]]\npath = \"/oauth/token\"\n").unwrap();
        let e = &e[0];
        assert_eq!(e.auth_methods, AuthMethod::ALL.to_vec());
        assert_eq!(e.body, BodyRules::default());
        assert_eq!(e.grants.grant_types.len(), GRANT_NAMES.len());
        assert!(!e.xml && e.correlation_header.is_none() && e.grants.market.is_none());
    }

    #[test]
    fn walmart_marketplace() {
        let e = parse(
            r#"
            [[token_endpoint]]
            path = "/v3/token"
            auth_methods = ["client_secret_basic"]
            body = ["form"]
            required_headers = ["WM_QOS.CORRELATION_ID", "WM_SVC.NAME"]
            correlation_header = "WM_QOS.CORRELATION_ID"
            xml = true
            grant_types = ["client_credentials", "authorization_code", "refresh_token"]
            market_header = "WM_MARKET"
            market_grants = { US = ["client_credentials", "authorization_code", "refresh_token"], mx = ["client_credentials"] }
            "#,
        )
        .unwrap();
        let e = &e[0];
        assert_eq!(e.required_headers[0].name.as_str(), "wm_qos.correlation_id");
        assert_eq!(e.required_headers[0].display, "WM_QOS.CORRELATION_ID");
        let m = e.grants.market.as_ref().unwrap();
        assert!(m.grants.contains_key("us"));
    }

    #[test]
    fn errors_name_the_endpoint_and_setting() {
        let cases = [
            ("path = \"v3/token\"", "path: expected"),
            ("path = \"/oauth2/token\"", "Keyward serves itself"),
            ("path = \"/admin\"", "Keyward serves itself"),
            ("path = \"/admin/v2/token\"", "Keyward serves itself"),
            ("path = \"/x/{id}\"", "path: expected"),
            (
                "path = \"/x\"\ncorrelation_header = \"Authorization\"",
                "cannot be echoed",
            ),
            (
                "path = \"/x\"\ncorrelation_header = \"Content-Type\"",
                "cannot be echoed",
            ),
            (
                "path = \"/x\"\nauth_methods = [\"tls_client_auth\"]",
                "auth_methods",
            ),
            ("path = \"/x\"\nbody = [\"xml\"]", "body"),
            (
                "path = \"/x\"\nbody = [\"json\"]\nuntyped_body = \"form\"",
                "untyped_body",
            ),
            (
                "path = \"/x\"\nrequired_headers = [\"bad header\"]",
                "required_headers",
            ),
            ("path = \"/x\"\ngrant_types = [\"password\"]", "grant_types"),
            ("path = \"/x\"\nmarket_header = \"M\"", "go together"),
            (
                "path = \"/x\"\ngrant_types = [\"client_credentials\"]\nmarket_header = \"M\"\nmarket_grants = { us = [\"refresh_token\"] }",
                "market_grants.us",
            ),
            (
                "path = \"/x\"\nmarket_header = \"M\"\nmarket_grants = { us = [], US = [] }",
                "named twice",
            ),
            ("path = \"/x\"\ncolour = \"red\"", "colour"),
        ];
        for (body, expected) in cases {
            let err = parse(&format!("[[token_endpoint]]\n{body}\n")).unwrap_err();
            assert!(err.contains(expected), "{body}: {err}");
        }
        let twice = "[[token_endpoint]]\npath = \"/t\"\n[[token_endpoint]]\npath = \"/t\"\n";
        assert!(parse(twice).unwrap_err().contains("declared twice"));
    }
}
