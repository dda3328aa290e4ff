//! Extraction of OAuth endpoint requests: the body (form or JSON, same strictness), and client credentials from
//! Basic or the body, with every SECURITY.md rule on malformed and conflicting input. Rejections are `ApiError`s,
//! so they come out as RFC 6749 §5.2 errors like everything else (JSON, or XML where the endpoint negotiated it).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest};
use axum::http::request::Parts;
use axum::http::{Request, header};
use keyward_core::assertion::{CLIENT_ASSERTION_TYPE, claimed_client};
use keyward_core::basic;
use keyward_core::client::AuthMethod;
use keyward_core::form::Params;
use keyward_core::{ErrorCode, OAuthError};
use serde::de::{Deserializer, MapAccess, Visitor};

use crate::app::App;
use crate::config::{BodyKind, BodyRules};
use crate::http::error::{ApiError, Challenge};
use crate::limits::Source;
use crate::registry::Credentials;

/// Largest accepted body (SECURITY.md).
pub const BODY_LIMIT: usize = 64 * 1024;

/// A parsed request to the token, introspection or revocation endpoint.
#[derive(Debug)]
pub(crate) struct OAuthRequest {
    /// Body parameters, credentials included.
    pub params: Params,
    /// The client credentials presented, if any.
    pub credentials: Option<Credentials>,
    /// Whether a 401 must carry `WWW-Authenticate: Basic`.
    pub challenge: Challenge,
    /// Where it came from, as the per-address limits count it.
    pub source: Source,
}

fn bad(description: &'static str) -> ApiError {
    ApiError::oauth(OAuthError::invalid_request(description))
}

/// Introspection and revocation read their requests under the standard body rules; the token pipeline calls
/// [`OAuthRequest::read`] with its policy's.
impl FromRequest<App> for OAuthRequest {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, app: &App) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        OAuthRequest::read(&parts, body, &BodyRules::default(), app).await
    }
}

/// The request's source: the TCP peer, or the client a trusted proxy names in `X-Forwarded-For`.
pub(crate) fn source(parts: &Parts, app: &App) -> Source {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let trusted = &app.limits.settings().trusted_proxies;
    if trusted.is_empty() {
        return Source::new(peer);
    }
    let forwarded: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    Source::new(keyward_core::net::source(peer, &forwarded, trusted))
}

impl OAuthRequest {
    /// Reads a request under an endpoint's body rules: the body (RFC 6749 §3.2) and the client credentials
    /// (RFC 6749 §2.3.1).
    pub(crate) async fn read(
        parts: &Parts,
        body: Body,
        rules: &BodyRules,
        app: &App,
    ) -> Result<Self, ApiError> {
        // RFC 6749 §2.3.1 / §3.2: credentials and parameters never travel in the URL.
        if parts.uri.query().is_some_and(|q| !q.is_empty()) {
            return Err(bad(
                "parameters must be sent in the request body, not the query string",
            ));
        }
        // An empty Content-Type is as good as none (Walmart's "Content-Type: can be null").
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .map(|v| {
                v.to_str()
                    .map(|v| v.split(';').next().unwrap_or("").trim())
                    .map_err(|_| bad("malformed Content-Type header"))
            })
            .transpose()?
            .filter(|v| !v.is_empty());
        let mut authorizations = parts.headers.get_all(header::AUTHORIZATION).iter();
        let authorization = match (authorizations.next(), authorizations.next()) {
            (None, _) => None,
            (Some(one), None) => Some(
                one.to_str()
                    .map_err(|_| bad("malformed Authorization header"))?,
            ),
            (Some(_), Some(_)) => return Err(bad("more than one Authorization header")),
        };
        let bytes = axum::body::to_bytes(body, BODY_LIMIT)
            .await
            .map_err(|e| body_error(&e))?;
        // Media types are case-insensitive (RFC 9110 §8.3.1).
        let kind = match content_type {
            Some(t) if t.eq_ignore_ascii_case("application/x-www-form-urlencoded") => {
                Some(BodyKind::Form)
            }
            Some(t) if t.eq_ignore_ascii_case("application/json") => Some(BodyKind::Json),
            Some(_) => None,
            None => rules.untyped,
        }
        .filter(|k| rules.accepted.contains(k));
        let params = match kind {
            Some(BodyKind::Form) => Params::parse(&bytes).map_err(ApiError::oauth)?,
            Some(BodyKind::Json) => json_params(&bytes)?,
            None => return Err(bad(content_type_message(&rules.accepted))),
        };
        let (credentials, challenge) = credentials(authorization, &params)?;
        Ok(OAuthRequest {
            params,
            credentials,
            challenge,
            source: source(parts, app),
        })
    }
}

/// Why a body could not be read: too large (413), too slow (408, and the connection closes), or cut off.
pub(crate) fn body_error(e: &axum::Error) -> ApiError {
    use axum::http::StatusCode;
    let (status, message) = if crate::conn::BodyTimedOut::caused(e) {
        (
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time".to_owned(),
        )
    } else if is_too_large(e) {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {BODY_LIMIT} bytes"),
        )
    } else {
        (
            StatusCode::BAD_REQUEST,
            "the request body could not be read".to_owned(),
        )
    };
    ApiError::Plain {
        status,
        code: "invalid_request",
        message,
    }
}

fn is_too_large(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

fn content_type_message(accepted: &[BodyKind]) -> &'static str {
    match accepted {
        [BodyKind::Form] => "Content-Type must be application/x-www-form-urlencoded",
        [BodyKind::Json] => "Content-Type must be application/json",
        _ => "Content-Type must be application/x-www-form-urlencoded or application/json",
    }
}

/// Reads credentials from the header or the body; refuses two mechanisms at once.
fn credentials(
    authorization: Option<&str>,
    params: &Params,
) -> Result<(Option<Credentials>, Challenge), ApiError> {
    let body_id = params.single("client_id").map_err(ApiError::oauth)?;
    let body_secret = params.single("client_secret").map_err(ApiError::oauth)?;
    let assertion_type = params
        .single("client_assertion_type")
        .map_err(ApiError::oauth)?;
    let assertion = params.single("client_assertion").map_err(ApiError::oauth)?;
    if assertion_type.is_some() || assertion.is_some() {
        if authorization.is_some() || body_secret.is_some() || params.contains("client_secret") {
            return Err(bad(
                "use one client authentication method, not a client assertion and a secret together",
            ));
        }
        let (Some(kind), Some(assertion)) = (assertion_type, assertion) else {
            return Err(bad(
                "client_assertion and client_assertion_type are sent together (RFC 7521 §4.2)",
            ));
        };
        if kind != CLIENT_ASSERTION_TYPE {
            return Err(ApiError::OAuth(
                OAuthError::new(
                    ErrorCode::InvalidClient,
                    "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                Challenge::None,
            ));
        }
        // RFC 7521 §4.2: client_id is optional; without it the assertion names the client (`sub`). A federated
        // token names a workload, not the client, so it needs client_id.
        let client_id = body_id
            .map(str::to_owned)
            .or_else(|| claimed_client(assertion))
            .ok_or(ApiError::OAuth(
                OAuthError::invalid_client(),
                Challenge::None,
            ))?;
        let creds = Credentials {
            client_id,
            proof: assertion.to_owned(),
            method: AuthMethod::PrivateKeyJwt,
        };
        return Ok((Some(creds), Challenge::None));
    }
    if let Some(header) = authorization {
        let Some(basic) = basic::parse(header).map_err(ApiError::oauth)? else {
            // Another scheme (Bearer, Digest…) cannot authenticate a client here.
            return Err(ApiError::OAuth(
                OAuthError::invalid_client(),
                Challenge::Basic,
            ));
        };
        if body_secret.is_some() || params.contains("client_secret") {
            return Err(bad(
                "use one client authentication method, not Basic and client_secret together",
            ));
        }
        if body_id.is_some_and(|id| id != basic.client_id) {
            return Err(bad(
                "client_id in the body differs from the Authorization header",
            ));
        }
        let creds = Credentials {
            client_id: basic.client_id,
            proof: basic.client_secret,
            method: AuthMethod::ClientSecretBasic,
        };
        return Ok((Some(creds), Challenge::Basic));
    }
    match (body_id, body_secret) {
        (Some(id), Some(secret)) => Ok((
            Some(Credentials {
                client_id: id.to_owned(),
                proof: secret.to_owned(),
                method: AuthMethod::ClientSecretPost,
            }),
            Challenge::None,
        )),
        // A public client sends its id alone (RFC 6749 §2.3.1, RFC 7591 `none`).
        (Some(id), None) => Ok((
            Some(Credentials {
                client_id: id.to_owned(),
                proof: String::new(),
                method: AuthMethod::None,
            }),
            Challenge::None,
        )),
        _ => Ok((None, Challenge::None)),
    }
}

/// A JSON object body, every member a string, read with the same strictness as a form: a repeated member, a
/// non-string value or a control character is `invalid_request`.
fn json_params(bytes: &[u8]) -> Result<Params, ApiError> {
    struct Pairs(Vec<(String, serde_json::Value)>);
    impl<'de> serde::Deserialize<'de> for Pairs {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Pairs;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                    let mut out = Vec::new();
                    while let Some(entry) = map.next_entry()? {
                        out.push(entry);
                    }
                    Ok(Pairs(out))
                }
            }
            d.deserialize_map(V)
        }
    }
    let Pairs(pairs) =
        serde_json::from_slice(bytes).map_err(|_| bad("the body is not a JSON object"))?;
    let mut out = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        let serde_json::Value::String(s) = v else {
            return Err(bad("every member of the JSON body must be a string"));
        };
        if k.chars().chain(s.chars()).any(char::is_control) {
            return Err(bad("a parameter contains a control character"));
        }
        out.push((k, s));
    }
    Ok(Params::from_pairs(out))
}
