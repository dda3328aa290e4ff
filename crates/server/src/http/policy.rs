//! Token endpoint policies: `/oauth2/token` (the default policy) and each `[[token_endpoint]]`, as the one token
//! pipeline (`http/token.rs`) and the token detail handler (`http/detail.rs`) apply them. A policy is an endpoint's
//! manners (`TokenEndpoint`: auth methods, body rules, headers, XML, grant rule, detail path) and three flags for
//! the ways `/oauth2/token` has always answered unlike the configured endpoints; the checks and headers each
//! manner adds are here.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use keyward_core::client::AuthMethod;
use keyward_core::endpoint::{Format, GRANT_NAMES, GrantRule, negotiate};
use keyward_core::form::Params;
use keyward_core::{ErrorCode, OAuthError};

use super::extract::OAuthRequest;
use super::observe::CORRELATION_MAX;
use crate::config::{BodyRules, NamedHeader, TokenEndpoint};
use crate::http::error::{ApiError, Challenge};
use keyward_core::grant::PartnerCheck;

/// How one token endpoint path answers.
#[derive(Debug, Clone)]
pub(crate) struct TokenPolicy {
    /// The endpoint's manners.
    pub endpoint: TokenEndpoint,
    /// RFC 9110 §12.5.1, §12.5.5: `Accept` chooses JSON or XML, a 406 comes before any other check when nothing
    /// offered fits, and every answer on the policy's paths (tokens, errors, 405, 406, token detail) carries
    /// `Vary: accept`. Off for `/oauth2/token`, which answers JSON whatever `Accept` says and sends no `Vary`.
    pub negotiates: bool,
    /// The endpoint's grant rule (`grant_types`, `market_grants`) answers `unsupported_grant_type` after
    /// authentication and before the grant's own checks (RFC 6749 §5.2). Off for `/oauth2/token`, which leaves every
    /// grant type to the issuer (`Keyward offers client_credentials, authorization_code and refresh_token`).
    pub grant_rule: bool,
    /// A request refused before its body is read and its credentials found tells the log and metrics that it was
    /// a `token` request and its error code. Off for `/oauth2/token`, whose refusals at that stage are counted by
    /// path (endpoint `other`, outcome by status class).
    pub observes_unread: bool,
}

impl TokenPolicy {
    /// `POST /oauth2/token`, the default policy: the standard manners of RFC 6749 §3.2. Every client
    /// authentication method, a public client's `client_id` alone included (RFC 6749 §2.3.1, §2.1); form or JSON
    /// bodies with a `Content-Type`; no required, correlation, market or partner header; JSON only (RFC 6749
    /// §5.1); every grant type Keyward serves, left to the issuer; its token detail at `/oauth2/token/detail`, read
    /// from `Authorization: Bearer` alone. None of the three flags.
    pub(crate) fn canonical() -> Self {
        TokenPolicy {
            endpoint: TokenEndpoint {
                path: "/oauth2/token".to_owned(),
                auth_methods: AuthMethod::EVERY.to_vec(),
                body: BodyRules::default(),
                required_headers: Vec::new(),
                correlation_header: None,
                xml: false,
                grants: GrantRule {
                    grant_types: GRANT_NAMES.iter().map(|g| (*g).to_owned()).collect(),
                    market: None,
                },
                market_header: None,
                partner_header: None,
                detail_path: Some("/oauth2/token/detail".to_owned()),
                access_token_header: None,
            },
            negotiates: false,
            grant_rule: false,
            observes_unread: false,
        }
    }

    /// A `[[token_endpoint]]` from the configuration.
    pub(crate) fn configured(endpoint: TokenEndpoint) -> Self {
        TokenPolicy {
            endpoint,
            negotiates: true,
            grant_rule: true,
            observes_unread: true,
        }
    }

    /// The answer's format: what `Accept` prefers among the offers (RFC 9110 §12.5.1), JSON when the policy does
    /// not negotiate; `None` when nothing offered is acceptable (a 406).
    pub(crate) fn format(&self, headers: &HeaderMap) -> Option<Format> {
        if !self.negotiates {
            return Some(Format::Json);
        }
        negotiate(accept(headers).as_deref(), self.endpoint.xml)
    }

    /// 406 (RFC 9110 §15.5.7) naming what the endpoint offers, in JSON: the client accepts nothing else offered.
    pub(crate) fn not_acceptable(&self) -> Response {
        let offered = if self.endpoint.xml {
            "application/json or application/xml"
        } else {
            "application/json"
        };
        ApiError::Plain {
            status: StatusCode::NOT_ACCEPTABLE,
            code: "invalid_request",
            message: format!(
                "this endpoint answers in {offered}, which the Accept header does not allow"
            ),
        }
        .render(Format::Json)
    }

    /// The request's shape before its body is read: the correlation value (when sent), the required headers in
    /// their order, then the market header. `correlation_ok` says whether the correlation value may be echoed.
    /// Returns the market the request names, when grants vary by market.
    pub(crate) fn check_headers(
        &self,
        headers: &HeaderMap,
        correlation_ok: bool,
    ) -> Result<Option<&str>, ApiError> {
        let ep = &self.endpoint;
        let invalid = |message: String| ApiError::oauth(OAuthError::invalid_request(message));
        if let Some(h) = &ep.correlation_header {
            if matches!(sent(headers, h), Sent::NotText | Sent::Text(_)) && !correlation_ok {
                return Err(invalid(format!(
                    "header {} must be printable ASCII of at most {CORRELATION_MAX} characters",
                    h.display
                )));
            }
        }
        for h in &ep.required_headers {
            match sent(headers, h) {
                Sent::Absent => return Err(invalid(format!("header {} is required", h.display))),
                Sent::NotText => return Err(invalid(format!("header {} is not text", h.display))),
                Sent::Text(_) => {}
            }
        }
        Ok(match (&ep.grants.market, &ep.market_header) {
            (Some(rule), Some(h)) => {
                let value = match sent(headers, h) {
                    Sent::Absent => None,
                    Sent::Text(t) => Some(t),
                    // Not text cannot name a market: answered like any unknown market.
                    Sent::NotText => Some(""),
                };
                Some(rule.market(value).map_err(ApiError::oauth)?)
            }
            _ => None,
        })
    }

    /// The client authentication method the request used must be one the endpoint accepts (RFC 6749 §2.3):
    /// otherwise `invalid_client` (RFC 6749 §5.2) naming the accepted ones.
    pub(crate) fn check_method(&self, req: &OAuthRequest) -> Result<(), ApiError> {
        let methods = &self.endpoint.auth_methods;
        match &req.credentials {
            Some(c) if !methods.contains(&c.method) => {
                let accepted: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
                Err(ApiError::OAuth(
                    OAuthError::new(
                        ErrorCode::InvalidClient,
                        format!(
                            "this endpoint accepts client authentication by: {}",
                            accepted.join(", ")
                        ),
                    ),
                    self.challenge(req.challenge),
                ))
            }
            _ => Ok(()),
        }
    }

    /// How a 401 challenges (RFC 6749 §5.2): a Basic-only endpoint challenges for Basic even when the request
    /// tried something else (RFC 7235 §4.1); any other keeps what the request `found`.
    pub(crate) fn challenge(&self, found: Challenge) -> Challenge {
        if self.endpoint.auth_methods == [AuthMethod::ClientSecretBasic] {
            Challenge::Basic
        } else {
            found
        }
    }

    /// The grant rule, when the policy applies one: `grant_type` is present (`invalid_request`), served by the
    /// endpoint and in `market` (`unsupported_grant_type`, RFC 6749 §5.2).
    pub(crate) fn check_grant(
        &self,
        params: &Params,
        market: Option<&str>,
    ) -> Result<(), ApiError> {
        if !self.grant_rule {
            return Ok(());
        }
        let grant_type = params.required("grant_type").map_err(ApiError::oauth)?;
        self.endpoint
            .grants
            .check(grant_type, market)
            .map_err(ApiError::oauth)
    }

    /// What the delegated grants check of the partner header, when the endpoint has one.
    pub(crate) fn partner<'a>(&'a self, headers: &'a HeaderMap) -> PartnerCheck<'a> {
        match &self.endpoint.partner_header {
            None => PartnerCheck::None,
            Some(h) => PartnerCheck::Header {
                name: &h.display,
                value: match sent(headers, h) {
                    Sent::Text(t) => Some(t),
                    // Not text cannot equal a partner id; answered like a wrong one.
                    Sent::NotText => Some(""),
                    Sent::Absent => None,
                },
            },
        }
    }

    /// The correlation value when it is safe to echo (the request's log line carries it too: `observe`).
    pub(crate) fn correlation(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let h = self.endpoint.correlation_header.as_ref()?;
        let v = headers.get(&h.name)?;
        super::observe::correlation_text(v).map(|_| v.clone())
    }

    /// Every answer's last headers: the correlation value echoed, and `Vary: accept` (RFC 9110 §12.5.5) where
    /// the policy negotiates, since the answer then depends on `Accept` even without XML: a 406 or not.
    pub(crate) fn finish(&self, mut r: Response, correlation: Option<HeaderValue>) -> Response {
        if let (Some(h), Some(v)) = (&self.endpoint.correlation_header, correlation) {
            r.headers_mut().insert(h.name.clone(), v);
        }
        if self.negotiates {
            r.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("accept"));
        }
        r
    }
}

/// What a request carries in a configured header.
enum Sent<'h> {
    /// Nothing, or only blanks.
    Absent,
    /// Text, trimmed.
    Text(&'h str),
    /// Bytes that are not visible ASCII (RFC 9110 §5.5 obs-text).
    NotText,
}

fn sent<'h>(headers: &'h HeaderMap, h: &NamedHeader) -> Sent<'h> {
    match headers.get(&h.name).map(|v| v.to_str().map(str::trim)) {
        None => Sent::Absent,
        Some(Ok("")) => Sent::Absent,
        Some(Ok(t)) => Sent::Text(t),
        Some(Err(_)) => Sent::NotText,
    }
}

/// Every `Accept` header, joined as RFC 9110 §5.3 allows.
fn accept(headers: &HeaderMap) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    axum::http::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn the_default_policy_answers_json_whatever_accept_says() {
        let canonical = TokenPolicy::canonical();
        for accept in ["application/xml", "text/html", "application/json;q=0"] {
            let h = headers(&[("accept", accept)]);
            assert_eq!(canonical.format(&h), Some(Format::Json), "{accept}");
        }
        let r = canonical.finish(Response::default(), None);
        assert!(r.headers().get(header::VARY).is_none());
    }

    #[test]
    fn a_configured_policy_negotiates_and_varies() {
        let mut ep = TokenPolicy::canonical().endpoint;
        ep.path = "/v3/token".into();
        let alias = TokenPolicy::configured(ep);
        assert_eq!(
            alias.format(&headers(&[("accept", "application/xml")])),
            None
        );
        assert_eq!(alias.format(&HeaderMap::new()), Some(Format::Json));
        let r = alias.finish(Response::default(), None);
        assert_eq!(r.headers()[header::VARY], "accept");
    }

    #[test]
    fn the_default_policy_adds_no_check() {
        let canonical = TokenPolicy::canonical();
        let h = headers(&[("accept", "application/xml")]);
        assert_eq!(canonical.check_headers(&h, false).unwrap(), None);
        assert!(canonical.correlation(&h).is_none());
        assert!(matches!(canonical.partner(&h), PartnerCheck::None));
        let params = Params::from_pairs(vec![("grant_type".into(), "password".into())]);
        assert!(canonical.check_grant(&params, None).is_ok());
        assert_eq!(canonical.challenge(Challenge::None), Challenge::None);
    }
}
