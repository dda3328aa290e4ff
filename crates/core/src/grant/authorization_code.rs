//! The authorization_code grant (RFC 6749 §4.1) with PKCE S256 required (RFC 7636, RFC 9700 §2.1.1), and the
//! refresh_token grant's scope rule (RFC 6749 §6). Two decisions: whether an authorization request may proceed
//! (and, when it may not, whether the error may be sent back to the client or must stay on Keyward's page), and
//! whether a stored code may be redeemed by this token request.

use crate::client::{Client, GrantType};
use crate::error::{ErrorCode, OAuthError};
use crate::form::Params;
use crate::pkce;
use crate::redirect;
use crate::resource::Resource;
use crate::scope::ScopeSet;

/// An authorization request that may proceed to login and consent (RFC 6749 §4.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The client.
    pub client_id: String,
    /// The registered redirect URI it named.
    pub redirect_uri: String,
    /// `state`, returned unchanged.
    pub state: Option<String>,
    /// The scopes asked for (the client's allowed scopes on the resource when it named none).
    pub scope: ScopeSet,
    /// The resource the tokens are for (`aud`).
    pub audience: String,
    /// The S256 challenge.
    pub code_challenge: String,
    /// Whether consent the account gave this client before may stand in for the consent page. Never for a
    /// public client (RFC 8252 §8.6, RFC 6749 §10.2): it proves nothing but its id, so any program on the
    /// user's machine can start a flow under that id with a PKCE challenge of its own, and only the user's click
    /// on the consent page tells the real app from it.
    pub consent_may_be_remembered: bool,
}

/// Why an authorization request cannot proceed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// RFC 6749 §4.1.2.1: the client or the redirect URI is missing, unknown or invalid. The error is shown to the
    /// user and the browser is never redirected (an open redirector otherwise).
    Page(OAuthError),
    /// Anything else, once the redirect URI is trusted: sent back to it with `state`.
    Redirect {
        /// Where to send it.
        redirect_uri: String,
        /// The request's `state`, when it had exactly one.
        state: Option<String>,
        /// The error.
        error: OAuthError,
    },
}

/// RFC 6749 §4.1.1 and §4.1.2.1: checks an authorization request. The client and redirect URI come first; only
/// once both are trusted do errors go back to the client. `client` is the one `client_id` names (`None` when
/// unknown); `lookup` finds a resource by identifier.
pub fn check_authorize<'r>(
    params: &Params,
    client: Option<&Client>,
    lookup: impl Fn(&str) -> Option<&'r Resource>,
) -> Result<Authorization, AuthorizeError> {
    let page = |e: OAuthError| AuthorizeError::Page(e);
    let client_id = params
        .single("client_id")
        .map_err(page)?
        .ok_or_else(|| page(OAuthError::invalid_request("client_id is missing")))?;
    let client = client
        .filter(|c| c.enabled && c.id == client_id)
        .ok_or_else(|| {
            page(OAuthError::invalid_request(
                "the client is unknown or disabled",
            ))
        })?;
    let redirect_uri = params
        .single("redirect_uri")
        .map_err(page)?
        .ok_or_else(|| page(OAuthError::invalid_request("redirect_uri is missing")))?;
    if !redirect::is_registered(&client.redirect_uris, redirect_uri) {
        return Err(page(OAuthError::invalid_request(
            "redirect_uri is not one the client registered (they must match exactly, but for the port of a \
             127.0.0.1 or [::1] address)",
        )));
    }
    // From here the redirect URI is trusted. A repeated `state` cannot be returned: which one?
    let state = params.single("state").ok().flatten().map(str::to_owned);
    let back = |error: OAuthError| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        state: state.clone(),
        error,
    };
    if params.single("state").is_err() {
        return Err(back(OAuthError::invalid_request(
            "parameter `state` is repeated",
        )));
    }
    match params.single("response_type").map_err(back)? {
        Some("code") => {}
        None => {
            return Err(back(OAuthError::invalid_request(
                "response_type is missing",
            )));
        }
        Some(_) => {
            return Err(back(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                "Keyward supports response_type=code only",
            )));
        }
    }
    if !client.grant_types.contains(&GrantType::AuthorizationCode) {
        return Err(back(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the client may not use authorization_code",
        )));
    }
    let code_challenge = pkce::check_challenge(
        params.single("code_challenge").map_err(back)?,
        params.single("code_challenge_method").map_err(back)?,
    )
    .map_err(back)?;
    let target = match params.single("resource").map_err(back)? {
        Some(r) => r,
        None => match (&client.default_resource, client.resources.as_slice()) {
            (Some(d), _) => d.as_str(),
            (None, [only]) => only.as_str(),
            _ => {
                return Err(back(OAuthError::invalid_request(
                    "no resource: the client has several, so the request must name one with `resource`",
                )));
            }
        },
    };
    let resource = lookup(target)
        .filter(|_| client.resources.iter().any(|r| r == target))
        .ok_or_else(|| {
            back(OAuthError::invalid_target(
                "the resource is unknown or not allowed for this client",
            ))
        })?;
    let allowed = client.scopes.intersection(&resource.scopes);
    let scope = match params.single("scope").map_err(back)? {
        None => allowed,
        Some(s) => {
            let asked = ScopeSet::parse(s).map_err(back)?;
            if !asked.is_subset(&allowed) {
                return Err(back(OAuthError::invalid_scope(
                    "a requested scope is unknown or not allowed for this client",
                )));
            }
            asked
        }
    };
    if scope.is_empty() {
        return Err(back(OAuthError::invalid_scope(
            "the client may have no scope on this resource",
        )));
    }
    Ok(Authorization {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        state,
        scope,
        audience: resource.identifier.clone(),
        code_challenge,
        consent_may_be_remembered: !client.is_public(),
    })
}

/// A stored authorization code, as the redemption check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCode<'a> {
    /// The client it was issued to.
    pub client_id: &'a str,
    /// The redirect URI of the authorization request.
    pub redirect_uri: &'a str,
    /// The S256 challenge.
    pub code_challenge: &'a str,
    /// Unix seconds.
    pub expires_at: i64,
}

/// The default lifetime of an authorization code (RFC 6749 §4.1.2 recommends at most 10 minutes; SECURITY.md pins
/// 60 s; `authorization_code_ttl` changes it).
pub const CODE_TTL: i64 = 60;

/// RFC 6749 §4.1.3, RFC 7636 §4.6: whether `client` may redeem `code` with this `redirect_uri` and verifier at
/// `now`. The caller has already consumed the code: a failure here still spends it.
pub fn check_redemption(
    code: &IssuedCode<'_>,
    client: &Client,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
    now: i64,
    sha256: impl FnOnce(&[u8]) -> [u8; 32],
) -> Result<(), OAuthError> {
    // One description for "not yours" and "expired": a client learns nothing about codes it does not hold.
    if code.client_id != client.id || now >= code.expires_at {
        return Err(OAuthError::invalid_grant(
            "the code is invalid, expired, used, or was issued to another client",
        ));
    }
    match redirect_uri {
        None => {
            return Err(OAuthError::invalid_request(
                "redirect_uri is required: the authorization request named one",
            ));
        }
        Some(r) if r != code.redirect_uri => {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the authorization request's",
            ));
        }
        Some(_) => {}
    }
    pkce::verify(verifier, code.code_challenge, sha256)
}

/// RFC 6749 §6: the scope of a refreshed access token. It may narrow what the grant holds, never widen it; the
/// rotated refresh token keeps the grant's full scope.
pub fn refresh_scope(granted: &ScopeSet, requested: Option<&str>) -> Result<ScopeSet, OAuthError> {
    let Some(requested) = requested else {
        return Ok(granted.clone());
    };
    let asked = ScopeSet::parse(requested)?;
    if asked.is_empty() || !asked.is_subset(granted) {
        return Err(OAuthError::invalid_scope(
            "the scope may only narrow what the grant holds",
        ));
    }
    Ok(asked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::AuthMethod;
    use crate::resource::SigningAlg;

    const CHALLENGE: &str = "6RuGz5vFPq6_Jdk5ECSJvIoqUWAs_rv-qJOofdrKyUs";

    fn app() -> Client {
        Client {
            id: "app".into(),
            name: "App".into(),
            enabled: true,
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            auth_methods: AuthMethod::ALL.to_vec(),
            resources: vec!["https://api".into()],
            scopes: ScopeSet::parse("orders:read orders:write").unwrap(),
            default_resource: None,
            serves_resources: vec![],
            redirect_uris: vec!["https://app.example/cb".into()],
            description: String::new(),
            refresh_token_ttl: None,
        }
    }

    fn api() -> Resource {
        Resource {
            id: "res_1".into(),
            identifier: "https://api".into(),
            name: "API".into(),
            scopes: ScopeSet::parse("orders:read orders:write admin").unwrap(),
            access_token_ttl: 900,
            signing_alg: SigningAlg::ES256,
            scope_details: Default::default(),
            require_dpop: false,
        }
    }

    fn query(q: &str) -> Params {
        Params::parse(q.as_bytes()).unwrap()
    }

    fn check(q: &str) -> Result<Authorization, AuthorizeError> {
        let (c, r) = (app(), api());
        check_authorize(&query(q), Some(&c), |id| (id == r.identifier).then_some(&r))
    }

    const GOOD: &str = "response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb\
                        &code_challenge=6RuGz5vFPq6_Jdk5ECSJvIoqUWAs_rv-qJOofdrKyUs&code_challenge_method=S256";

    #[test]
    fn a_good_request_proceeds() {
        let a = check(&format!("{GOOD}&state=x%26y&scope=orders%3Aread")).unwrap();
        assert_eq!(a.state.as_deref(), Some("x&y"));
        assert_eq!(a.scope.to_string(), "orders:read");
        assert_eq!(a.audience, "https://api");
        // No scope: what the client may have there.
        assert_eq!(
            check(GOOD).unwrap().scope.to_string(),
            "orders:read orders:write"
        );
    }

    #[test]
    fn client_and_redirect_errors_stay_on_the_page() {
        for q in [
            GOOD.replace("client_id=app", "client_id=other"),
            GOOD.replace("&client_id=app", ""),
            GOOD.replace("cb&", "cb%2F&"),
            GOOD.replace("&redirect_uri=https%3A%2F%2Fapp.example%2Fcb", ""),
            format!("{GOOD}&redirect_uri=https%3A%2F%2Fapp.example%2Fcb"),
        ] {
            assert!(matches!(check(&q), Err(AuthorizeError::Page(_))), "{q}");
        }
    }

    #[test]
    fn other_errors_go_back_with_state() {
        let cases = [
            (
                GOOD.replace("code_challenge_method=S256", "code_challenge_method=plain"),
                ErrorCode::InvalidRequest,
            ),
            (
                GOOD.replace("&code_challenge_method=S256", ""),
                ErrorCode::InvalidRequest,
            ),
            (
                GOOD.replace(&format!("code_challenge={CHALLENGE}&"), ""),
                ErrorCode::InvalidRequest,
            ),
            (
                GOOD.replace("response_type=code", "response_type=token"),
                ErrorCode::UnsupportedResponseType,
            ),
            (format!("{GOOD}&scope=admin"), ErrorCode::InvalidScope),
            (
                format!("{GOOD}&resource=https%3A%2F%2Fother"),
                ErrorCode::InvalidTarget,
            ),
        ];
        for (q, code) in cases {
            match check(&format!("{q}&state=s1")) {
                Err(AuthorizeError::Redirect { state, error, .. }) => {
                    assert_eq!(error.code, code, "{q}");
                    assert_eq!(state.as_deref(), Some("s1"));
                }
                other => panic!("{q}: {other:?}"),
            }
        }
    }

    #[test]
    fn redemption() {
        let c = app();
        let code = IssuedCode {
            client_id: "app",
            redirect_uri: "https://app.example/cb",
            code_challenge: CHALLENGE,
            expires_at: 160,
        };
        let verifier = "dBjftJeZ4CVP-mJ92K50s1xJmCtdRnmIx0tNLamUnGM";
        let digest = |_: &[u8]| {
            let mut d = [0u8; 32];
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode_slice(CHALLENGE, &mut d)
                .unwrap();
            d
        };
        check_redemption(
            &code,
            &c,
            Some("https://app.example/cb"),
            Some(verifier),
            100,
            digest,
        )
        .unwrap();
        let mut other = app();
        other.id = "other".into();
        let good = Some("https://app.example/cb");
        // (client, redirect_uri, verifier, now) → the error.
        let cases = [
            (&c, good, Some(verifier), 160, ErrorCode::InvalidGrant),
            (&other, good, Some(verifier), 100, ErrorCode::InvalidGrant),
            (
                &c,
                Some("https://app.example/cb/"),
                Some(verifier),
                100,
                ErrorCode::InvalidGrant,
            ),
            (&c, None, Some(verifier), 100, ErrorCode::InvalidRequest),
            (&c, good, None, 100, ErrorCode::InvalidGrant),
        ];
        for (client, redirect, v, now, expected) in cases {
            let e = check_redemption(&code, client, redirect, v, now, digest).unwrap_err();
            assert_eq!(e.code, expected, "{redirect:?} {v:?} {now}");
        }
    }

    #[test]
    fn refresh_narrows_never_widens() {
        let granted = ScopeSet::parse("a b").unwrap();
        assert_eq!(refresh_scope(&granted, None).unwrap(), granted);
        assert_eq!(refresh_scope(&granted, Some("b")).unwrap().to_string(), "b");
        assert!(refresh_scope(&granted, Some("a c")).is_err());
        assert!(refresh_scope(&granted, Some("")).is_err());
    }
}
