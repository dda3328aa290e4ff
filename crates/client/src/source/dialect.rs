//! How a token request is spoken: where the credentials go (RFC 6749 §2.3.1), the body's encoding (form, or the
//! JSON body of Auth0-style servers), the answer's format (JSON, or Walmart's XML `OAuthTokenDTO`), headers sent
//! with every request (a fresh correlation id each time where a service asks for one), and the header API calls
//! carry the token in. [`Preset`] fills these in for each service the seed documents describe.

use std::fmt;
use std::str::FromStr;

/// Where the client's credentials travel (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `Authorization: Basic`, id and secret each form-encoded first (`client_secret_basic`).
    Basic,
    /// `client_id` and `client_secret` in the request body (`client_secret_post`).
    Post,
}

/// How the token request's parameters are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/x-www-form-urlencoded` (RFC 6749 §4.4.2).
    Form,
    /// A JSON object with the same members, as Auth0-style endpoints take.
    Json,
}

/// The answer format asked for with `Accept`; either is read whatever the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// `application/json` (RFC 6749 §5.1).
    Json,
    /// `application/xml`: Walmart's `<OAuthTokenDTO>`.
    Xml,
}

/// The value of a header sent with every token request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// The same value each time.
    Fixed(String),
    /// A fresh random UUID per request, as a correlation id (`WM_QOS.CORRELATION_ID`).
    Correlation,
}

/// Everything about a token request but its URL and the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialect {
    /// Where the credentials travel.
    pub auth: AuthMethod,
    /// The body's encoding.
    pub body: BodyFormat,
    /// The answer asked for.
    pub accept: Accept,
    /// Headers sent with every token request, in order.
    pub headers: Vec<(String, HeaderValue)>,
    /// The header API calls carry the token in, when not `Authorization: Bearer` (`WM_SEC.ACCESS_TOKEN`).
    pub api_header: Option<String>,
}

impl Default for Dialect {
    /// RFC 6749's own: Basic, a form body, JSON answers, `Authorization: Bearer` on API calls.
    fn default() -> Self {
        Dialect {
            auth: AuthMethod::Basic,
            body: BodyFormat::Form,
            accept: Accept::Json,
            headers: Vec::new(),
            api_header: None,
        }
    }
}

/// A service described by one of the seed documents, with what its token request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preset {
    /// Walley (Azure AD B2C): `/oauth2/v2.0/token`, a form body with the credentials, `scope=<guid>/.default`.
    Walley {
        /// UAT (testing) or PROD.
        environment: WalleyEnvironment,
    },
    /// WLL's admin API (Auth0 style): `https://auth[.us].wlloyalty.net/oauth/token`, a JSON body with `audience`.
    Wll {
        /// The tenant's region: EU or US.
        region: WllRegion,
        /// The environment the token is for: its `audience`.
        environment: WllEnvironment,
    },
    /// Walmart Marketplace: `/v3/token` with Basic, `WM_MARKET`, `WM_SVC.NAME` and a fresh `WM_QOS.CORRELATION_ID`.
    WalmartMarketplace {
        /// The market (`us`, `mx`, `ca`, `cl`).
        market: String,
    },
    /// Walmart Marketplace Orders Hub: `/api-proxy/service/identity/oauth/v1/token`, credentials in a form body.
    OrdersHub,
    /// Walmart 1P Supplier: `/v3/token` with Basic and a fresh `WM_QOS.CORRELATION_ID`.
    Supplier1P,
}

/// Walley's environments and the scope each one's documentation gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalleyEnvironment {
    /// Testing.
    Uat,
    /// Production.
    Prod,
}

/// WLL's regions, each its own token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WllRegion {
    /// `https://auth.wlloyalty.net`.
    Eu,
    /// `https://auth.us.wlloyalty.net`.
    Us,
}

/// WLL's environments: the audience a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WllEnvironment {
    /// `staging.wlloyalty.net`.
    Staging,
    /// `production.wlloyalty.net`.
    Production,
    /// `wlloyalty.net`: a token valid for every environment.
    Any,
}

/// What a preset fills in: the token URL (from the service's documented host unless a base URL is given), the
/// dialect, and the scope or audience asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filled {
    /// The token endpoint's URL.
    pub token_url: String,
    /// How the request is spoken.
    pub dialect: Dialect,
    /// `scope`, if the service asks for one.
    pub scope: Option<String>,
    /// `audience`, if the service asks for one.
    pub audience: Option<String>,
}

impl Preset {
    /// The request for this service. `base` (scheme and host, e.g. a Keyward deployment serving the example
    /// config) replaces the documented host; Walley's and 1P Supplier's documents name none, so they need it.
    pub fn fill(&self, base: Option<&str>) -> Result<Filled, String> {
        let at = |documented: Option<&str>, path: &str| -> Result<String, String> {
            let host = base.or(documented).ok_or_else(|| {
                format!("the {self} preset needs a base URL: its documentation names no host")
            })?;
            Ok(format!("{}{path}", host.trim_end_matches('/')))
        };
        let correlation = ("WM_QOS.CORRELATION_ID".to_owned(), HeaderValue::Correlation);
        let walmart = |headers| Dialect {
            headers,
            api_header: Some("WM_SEC.ACCESS_TOKEN".into()),
            ..Dialect::default()
        };
        Ok(match self {
            Preset::Walley { environment } => Filled {
                token_url: at(None, "/oauth2/v2.0/token")?,
                dialect: Dialect {
                    auth: AuthMethod::Post,
                    ..Dialect::default()
                },
                scope: Some(format!("{}/.default", environment.resource())),
                audience: None,
            },
            Preset::Wll {
                region,
                environment,
            } => Filled {
                token_url: at(Some(region.host()), "/oauth/token")?,
                dialect: Dialect {
                    auth: AuthMethod::Post,
                    body: BodyFormat::Json,
                    ..Dialect::default()
                },
                scope: None,
                audience: Some(environment.audience().to_owned()),
            },
            Preset::WalmartMarketplace { market } => Filled {
                token_url: at(Some("https://marketplace.walmartapis.com"), "/v3/token")?,
                dialect: walmart(vec![
                    ("WM_MARKET".into(), HeaderValue::Fixed(market.clone())),
                    correlation,
                    (
                        "WM_SVC.NAME".into(),
                        HeaderValue::Fixed("Walmart Marketplace".into()),
                    ),
                ]),
                scope: None,
                audience: None,
            },
            Preset::OrdersHub => Filled {
                token_url: at(
                    Some("https://developer.api.walmart.com"),
                    "/api-proxy/service/identity/oauth/v1/token",
                )?,
                dialect: Dialect {
                    auth: AuthMethod::Post,
                    ..Dialect::default()
                },
                scope: None,
                audience: None,
            },
            Preset::Supplier1P => Filled {
                token_url: at(None, "/v3/token")?,
                dialect: walmart(vec![correlation]),
                scope: None,
                audience: None,
            },
        })
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Preset::Walley { .. } => "walley",
            Preset::Wll { .. } => "wll",
            Preset::WalmartMarketplace { .. } => "walmart-marketplace",
            Preset::OrdersHub => "walmart-orders-hub",
            Preset::Supplier1P => "walmart-1p-supplier",
        })
    }
}

impl WalleyEnvironment {
    /// The resource GUID whose `/.default` scope the documentation gives for the environment.
    pub fn resource(self) -> &'static str {
        match self {
            WalleyEnvironment::Uat => "705798e0-8cef-427c-ae00-6023deba29af",
            WalleyEnvironment::Prod => "a3f3019f-2be9-41cc-a254-7bb347238e89",
        }
    }
}

impl WllRegion {
    fn host(self) -> &'static str {
        match self {
            WllRegion::Eu => "https://auth.wlloyalty.net",
            WllRegion::Us => "https://auth.us.wlloyalty.net",
        }
    }
}

impl WllEnvironment {
    /// The `audience` the documentation gives for the environment.
    pub fn audience(self) -> &'static str {
        match self {
            WllEnvironment::Staging => "staging.wlloyalty.net",
            WllEnvironment::Production => "production.wlloyalty.net",
            WllEnvironment::Any => "wlloyalty.net",
        }
    }
}

/// Parses a lower-case name from a list, or says which names are allowed.
fn one_of<T: Copy>(s: &str, names: &[(&str, T)]) -> Result<T, String> {
    let lower = s.to_ascii_lowercase();
    names
        .iter()
        .find(|(n, _)| *n == lower)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let allowed: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
            format!("`{s}` is not one of {}", allowed.join(", "))
        })
}

impl FromStr for WalleyEnvironment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        one_of(s, &[("uat", Self::Uat), ("prod", Self::Prod)])
    }
}

impl FromStr for WllRegion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        one_of(s, &[("eu", Self::Eu), ("us", Self::Us)])
    }
}

impl FromStr for WllEnvironment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        one_of(
            s,
            &[
                ("staging", Self::Staging),
                ("production", Self::Production),
                ("any", Self::Any),
            ],
        )
    }
}

impl FromStr for AuthMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        one_of(
            s,
            &[
                ("client_secret_basic", Self::Basic),
                ("client_secret_post", Self::Post),
            ],
        )
    }
}

impl FromStr for BodyFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        one_of(s, &[("form", Self::Form), ("json", Self::Json)])
    }
}

impl FromStr for Accept {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        one_of(s, &[("json", Self::Json), ("xml", Self::Xml)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_follow_their_documents() {
        let w = Preset::Walley {
            environment: WalleyEnvironment::Uat,
        };
        assert!(w.fill(None).is_err(), "Walley names no host");
        let f = w.fill(Some("http://127.0.0.1:8080/")).unwrap();
        assert_eq!(f.token_url, "http://127.0.0.1:8080/oauth2/v2.0/token");
        assert_eq!(
            f.scope.as_deref(),
            Some("705798e0-8cef-427c-ae00-6023deba29af/.default")
        );
        assert_eq!(f.dialect.auth, AuthMethod::Post);

        let wll = Preset::Wll {
            region: WllRegion::Us,
            environment: WllEnvironment::Staging,
        };
        let f = wll.fill(None).unwrap();
        assert_eq!(f.token_url, "https://auth.us.wlloyalty.net/oauth/token");
        assert_eq!(
            (f.dialect.body, f.audience.as_deref()),
            (BodyFormat::Json, Some("staging.wlloyalty.net"))
        );

        let m = Preset::WalmartMarketplace {
            market: "mx".into(),
        }
        .fill(None)
        .unwrap();
        assert_eq!(m.token_url, "https://marketplace.walmartapis.com/v3/token");
        assert_eq!(
            m.dialect.headers[0],
            ("WM_MARKET".into(), HeaderValue::Fixed("mx".into()))
        );
        assert_eq!(m.dialect.api_header.as_deref(), Some("WM_SEC.ACCESS_TOKEN"));
        assert!(Preset::Supplier1P.fill(None).is_err());
    }

    #[test]
    fn names_parse_or_say_what_is_allowed() {
        assert_eq!(
            "UAT".parse::<WalleyEnvironment>(),
            Ok(WalleyEnvironment::Uat)
        );
        assert_eq!(
            "asia".parse::<WllRegion>(),
            Err("`asia` is not one of eu, us".to_owned())
        );
    }
}
