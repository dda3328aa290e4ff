//! `/oauth2/authorize` (RFC 6749 §4.1.1, RFC 7636): the request is checked by core before anything else (an
//! unknown client or redirect URI gets Keyward's error page, never a redirect); then login if needed; then the
//! consent screen, unless the person already agreed to these scopes; then a code, sent to the redirect URI with
//! `state` and `iss` (RFC 9207). The consent form posts the request back, and it is checked again in full.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use keyward_core::OAuthError;
use keyward_core::form::{Params, encode_component};
use keyward_core::grant::authorization_code::{Authorization, AuthorizeError, check_authorize};

use super::pages;
use super::session::{
    forbidden_form, login_url, see_other, session_csrf, session_csrf_ok, signed_in, unavailable,
};
use crate::app::App;
use crate::service::accounts::AccountView;

/// `GET /oauth2/authorize`.
pub(crate) async fn show(State(app): State<App>, uri: Uri, headers: HeaderMap) -> Response {
    let params = match Params::parse(uri.query().unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(e) => return bad_request(&e),
    };
    let auth = match check(&app, &params).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (session, account) = match signed_in(&app, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            let here = format!("/oauth2/authorize?{}", uri.query().unwrap_or_default());
            return see_other(&login_url(&here));
        }
        Err(r) => return r,
    };
    if !auth.consent_may_be_remembered {
        // A public client: the person clicks every time, whatever they agreed to before.
        return consent_page(&app, &auth, &account, &session).await;
    }
    match app
        .consents
        .consented(
            &account.account_id,
            &auth.client_id,
            &auth.audience,
            &auth.scope,
        )
        .await
    {
        // Consent is remembered: straight back to the app with a code.
        Ok(true) => grant(&app, &auth, &account).await,
        Ok(false) => consent_page(&app, &auth, &account, &session).await,
        Err(e) => unavailable(e),
    }
}

/// `POST /oauth2/authorize`: the consent decision.
pub(crate) async fn decide(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let params = match Params::parse(&body) {
        Ok(p) => p,
        Err(e) => return bad_request(&e),
    };
    let (session, account) = match signed_in(&app, &headers).await {
        Ok(Some(s)) => s,
        // The session ended while the page was open: sign in again, then the app must start over.
        Ok(None) => return see_other(&login_url("/console/apps")),
        Err(r) => return r,
    };
    if !session_csrf_ok(&app, &session, &params) {
        return forbidden_form();
    }
    let auth = match check(&app, &params).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match params.single("decision").ok().flatten() {
        Some("allow") => {
            if let Err(e) = app
                .consents
                .consent_give(
                    &account.account_id,
                    &auth.client_id,
                    &auth.audience,
                    &auth.scope,
                )
                .await
            {
                return unavailable(e);
            }
            tracing::info!(account_id = %account.account_id, client_id = %auth.client_id, "consent given");
            grant(&app, &auth, &account).await
        }
        Some("deny") => see_other(&back(
            &app,
            &auth.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "the account holder denied the request"),
            ],
            auth.state.as_deref(),
        )),
        _ => bad_request(&OAuthError::invalid_request(
            "decision must be allow or deny",
        )),
    }
}

/// Core's check, with the client looked up first; errors become the page or the redirect core decided.
async fn check(app: &App, params: &Params) -> Result<Authorization, Response> {
    let client = match params.single("client_id").ok().flatten() {
        Some(id) => app
            .memory
            .registry
            .client(&app.store, id)
            .await
            .map_err(unavailable)?,
        None => None,
    };
    let resources = app.memory.registry.resources();
    check_authorize(params, client.as_ref().map(|c| &c.client), |id| {
        resources.get(id)
    })
    .map_err(|e| match e {
        AuthorizeError::Page(e) => bad_request(&e),
        AuthorizeError::Redirect {
            redirect_uri,
            state,
            error,
        } => see_other(&back(
            app,
            &redirect_uri,
            &[
                ("error", error.code.as_str()),
                ("error_description", &error.description),
            ],
            state.as_deref(),
        )),
    })
}

/// Issues a code and sends the browser back to the app with it.
async fn grant(app: &App, auth: &Authorization, account: &AccountView) -> Response {
    match app.delegated.issue_code(auth, &account.account_id).await {
        Ok(code) => see_other(&back(
            app,
            &auth.redirect_uri,
            &[("code", &code)],
            auth.state.as_deref(),
        )),
        Err(e) => unavailable(e),
    }
}

/// The redirect URI with parameters added to its query (RFC 6749 §4.1.2), `state` exactly as received, and
/// `iss` (RFC 9207) so a client talking to several servers knows which one answered.
fn back(app: &App, redirect_uri: &str, params: &[(&str, &str)], state: Option<&str>) -> String {
    let mut url = redirect_uri.to_owned();
    let mut sep = if url.contains('?') { '&' } else { '?' };
    let state = state.map(|s| ("state", s));
    for (k, v) in params
        .iter()
        .copied()
        .chain(state)
        .chain([("iss", app.settings.issuer.as_str())])
    {
        url.push(sep);
        url.push_str(k);
        url.push('=');
        url.push_str(&encode_component(v));
        sep = '&';
    }
    url
}

async fn consent_page(
    app: &App,
    auth: &Authorization,
    account: &AccountView,
    session: &str,
) -> Response {
    let client = match app
        .memory
        .registry
        .client(&app.store, &auth.client_id)
        .await
    {
        Ok(Some(c)) => c,
        Ok(None) => {
            return bad_request(&OAuthError::invalid_request(
                "the client is unknown or disabled",
            ));
        }
        Err(e) => return unavailable(e),
    };
    let resources = app.memory.registry.resources();
    let Some(resource) = resources.get(&auth.audience) else {
        return bad_request(&OAuthError::invalid_target("the resource is unknown"));
    };
    let scopes = auth
        .scope
        .iter()
        .map(|s| (s.to_owned(), resource.describe(s)))
        .collect();
    // The request, carried back to the decision as hidden fields: the resolved scope and resource, so the
    // decision covers exactly what the page showed.
    let mut fields = vec![
        ("response_type", "code".to_owned()),
        ("client_id", auth.client_id.clone()),
        ("redirect_uri", auth.redirect_uri.clone()),
        ("scope", auth.scope.to_string()),
        ("code_challenge", auth.code_challenge.clone()),
        ("code_challenge_method", keyward_core::pkce::S256.to_owned()),
        ("resource", auth.audience.clone()),
    ];
    if let Some(state) = &auth.state {
        fields.push(("state", state.clone()));
    }
    let redirect_host = auth
        .redirect_uri
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or(rest))
        .unwrap_or(&auth.redirect_uri);
    let csrf = session_csrf(app, session);
    pages::render(
        StatusCode::OK,
        &pages::Consent {
            app_name: &client.client.name,
            app_description: &client.client.description,
            email: &account.email,
            resource_name: &resource.name,
            scopes,
            redirect_host,
            csrf: &csrf,
            fields,
        },
    )
}

fn bad_request(e: &OAuthError) -> Response {
    pages::error(
        StatusCode::BAD_REQUEST,
        "This authorization request cannot be completed",
        &e.description,
        e.code.as_str(),
    )
}
