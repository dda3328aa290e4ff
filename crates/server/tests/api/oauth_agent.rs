//! The delegated-access tests' driver: fixtures, PKCE pairs, a cookie-keeping browser that follows each hop by
//! hand (login, consent), HTML and URL parsing, and the app's side (token requests, refresh, introspection).

use crate::harness::TestApp;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use keyward_core::form::encode_component;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

/// The resource the apps ask for.
pub(crate) const API: &str = "https://api.example.com";
/// The apps' registered redirect URI.
pub(crate) const REDIRECT: &str = "https://app.example/cb";
/// Every test account's password.
pub(crate) const PASSWORD: &str = "correct horse battery";
/// What the authorization requests ask for, unless a test says otherwise.
pub(crate) const SCOPE: &str = "orders:read orders:write";
pub(crate) const EMAIL: &str = "seller@example.com";

// ---------------------------------------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------------------------------------

/// The resource, a confidential app allowed authorization_code and refresh_token, and an account.
pub(crate) struct Fixture {
    pub(crate) id: String,
    pub(crate) secret: String,
    pub(crate) account: String,
}

impl Fixture {
    pub(crate) fn basic(&self) -> Auth<'_> {
        Auth::Basic(&self.id, &self.secret)
    }
}

pub(crate) async fn fixture(app: &TestApp) -> Fixture {
    let (status, body) = app
        .admin_call(
            Method::POST,
            "/resources",
            Some(json!({
                "identifier": API,
                "name": "Orders API",
                "scopes": ["orders:read", "orders:write", "orders:admin"],
                "scope_details": {
                    "orders:read": {"description": "See your orders", "category": "Orders", "access": "View Only"},
                    "orders:write": {"description": "Change your orders", "category": "Orders", "access": "Full Access"},
                },
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (id, secret) = app.client(app_spec("Shop app", &[REDIRECT])).await;
    let account = account(app, EMAIL, "P-1").await;
    Fixture {
        id,
        secret,
        account,
    }
}

/// A confidential app's registration.
pub(crate) fn app_spec(name: &str, redirect_uris: &[&str]) -> Value {
    json!({
        "name": name,
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": redirect_uris,
        "resources": [API],
        "scopes": ["orders:read", "orders:write", "orders:admin"],
        "description": "Syncs your orders with the shop",
    })
}

/// Creates an account (through the App: the admin route is not ours to depend on); returns its id.
pub(crate) async fn account(app: &TestApp, email: &str, partner: &str) -> String {
    account_with(
        app,
        keyward::service::accounts::AccountInput {
            email: Some(email.into()),
            partner_id: Some(partner.into()),
            ..Default::default()
        },
    )
    .await
}

/// Creates an account from `input`, with [`PASSWORD`] unless it names one; returns its id.
pub(crate) async fn account_with(
    app: &TestApp,
    input: keyward::service::accounts::AccountInput,
) -> String {
    let input = keyward::service::accounts::AccountInput {
        password: input.password.or_else(|| Some(PASSWORD.into())),
        ..input
    };
    let (view, generated) = app
        .app
        .accounts
        .account_create(&keyward::service::admin::Actor::cli(), input)
        .await
        .unwrap();
    assert!(generated.is_none());
    assert!(view.account_id.starts_with("acct_"), "{}", view.account_id);
    view.account_id
}

// ---------------------------------------------------------------------------------------------------------------
// PKCE, URLs, HTML
// ---------------------------------------------------------------------------------------------------------------

/// A PKCE pair (RFC 7636 §4.1, §4.2): 43 unreserved characters and their base64url SHA-256.
pub(crate) struct Pkce {
    pub(crate) verifier: String,
    pub(crate) challenge: String,
}

pub(crate) fn pkce() -> Pkce {
    let verifier = B64.encode(keyward::crypto::random::<32>());
    assert_eq!(verifier.len(), 43);
    let challenge = B64.encode(keyward::crypto::sha256(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

/// The parameters of a good authorization request of `client_id`.
pub(crate) fn request<'a>(
    client_id: &'a str,
    challenge: &'a str,
    state: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", SCOPE),
        ("state", state),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

/// `params` with `name` set to `value` (added when absent), or removed when `value` is `None`.
pub(crate) fn with<'a>(
    mut params: Vec<(&'a str, &'a str)>,
    name: &'a str,
    value: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let at = params.iter().position(|(k, _)| *k == name);
    match (at, value) {
        (Some(i), Some(v)) => params[i].1 = v,
        (Some(i), None) => {
            params.remove(i);
        }
        (None, Some(v)) => params.push((name, v)),
        (None, None) => {}
    }
    params
}

/// A query string, every name and value percent-encoded.
pub(crate) fn query(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `/oauth2/authorize?…`.
pub(crate) fn authorize_path(params: &[(&str, &str)]) -> String {
    format!("/oauth2/authorize?{}", query(params))
}

/// Strict percent-decoding (a `+` stays a `+`: Keyward never sends one unencoded).
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The decoded parameters of a URL's query.
pub(crate) fn query_params(url: &str) -> Vec<(String, String)> {
    let Some((_, q)) = url.split_once('?') else {
        return Vec::new();
    };
    // What Keyward appends is encoded in full: nothing a client's parser could read two ways.
    assert!(
        q.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%&=".contains(&b)),
        "a raw character in {q}"
    );
    q.split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// The one value of `name` in a URL's query.
pub(crate) fn param(url: &str, name: &str) -> Option<String> {
    let all: Vec<String> = query_params(url)
        .into_iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v)
        .collect();
    assert!(all.len() <= 1, "{name} repeated in {url}");
    all.into_iter().next()
}

/// The `Location` of a response, which must be a 303.
pub(crate) fn location(r: &Response) -> String {
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "expected a redirect");
    r.headers()
        .get(LOCATION)
        .expect("Location")
        .to_str()
        .unwrap()
        .to_owned()
}

/// Undoes HTML escaping (named and numeric character references).
pub(crate) fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        let end = rest.find(';').expect("an unterminated character reference");
        let c = match &rest[..end] {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            e if e.starts_with("#x") || e.starts_with("#X") => {
                char::from_u32(u32::from_str_radix(&e[2..], 16).unwrap()).unwrap()
            }
            e if e.starts_with('#') => char::from_u32(e[1..].parse().unwrap()).unwrap(),
            e => panic!("unknown character reference &{e};"),
        };
        out.push(c);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Every hidden input of a page, in order, values unescaped.
pub(crate) fn hidden_fields(html: &str) -> Vec<(String, String)> {
    const OPEN: &str = "<input type=\"hidden\" name=\"";
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(OPEN) {
        rest = &rest[i + OPEN.len()..];
        let (name, after) = rest.split_once('"').unwrap();
        let after = after.trim_start().strip_prefix("value=\"").unwrap();
        let (value, after) = after.split_once('"').unwrap();
        out.push((unescape(name), unescape(value)));
        rest = after;
    }
    out
}

/// The value of the hidden input `name` (the first, when a page has several forms).
pub(crate) fn hidden(html: &str, name: &str) -> String {
    hidden_fields(html)
        .into_iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no hidden input {name} in {html}"))
        .1
}

/// SECURITY.md: what every page carries.
pub(crate) fn assert_page_headers(h: &HeaderMap, what: &str) {
    let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(get("x-frame-options").as_deref(), Some("DENY"), "{what}");
    assert!(
        get("content-security-policy").is_some_and(|c| c.contains("frame-ancestors 'none'")),
        "{what}: {:?}",
        get("content-security-policy")
    );
    assert_eq!(
        get("referrer-policy").as_deref(),
        Some("no-referrer"),
        "{what}"
    );
    assert_eq!(get("cache-control").as_deref(), Some("no-store"), "{what}");
}

/// The `Set-Cookie` header that sets `name`.
pub(crate) fn set_cookie(h: &HeaderMap, name: &str) -> String {
    h.get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no Set-Cookie for {name}: {h:?}"))
}

/// A cookie's attributes as SECURITY.md pins them on an http issuer.
pub(crate) fn assert_cookie_attributes(cookie: &str) {
    let attrs: Vec<String> = cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    assert!(attrs.iter().any(|a| a == "httponly"), "{cookie}");
    assert!(attrs.iter().any(|a| a == "samesite=lax"), "{cookie}");
    assert!(attrs.iter().any(|a| a == "path=/"), "{cookie}");
    assert!(
        !attrs.iter().any(|a| a == "secure"),
        "{cookie}: Secure on http"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// The browser
// ---------------------------------------------------------------------------------------------------------------

/// A browser: a cookie jar, no redirect following (each hop is checked).
pub(crate) struct Agent {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
}

impl Agent {
    pub(crate) fn new(app: &TestApp) -> Self {
        Agent {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.base.clone(),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        assert!(path.starts_with('/'), "not a path of ours: {path}");
        format!("{}{path}", self.base)
    }

    pub(crate) async fn get(&self, path: &str) -> Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    pub(crate) async fn post(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(query(form))
            .send()
            .await
            .unwrap()
    }

    /// GET /login, then POST it with `password`; returns the POST's response.
    pub(crate) async fn login_with(&self, email: &str, password: &str, next: &str) -> Response {
        let page = self
            .get(&format!("/login?next={}", encode_component(next)))
            .await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        let (csrf, next) = (hidden(&html, "csrf"), hidden(&html, "next"));
        self.post(
            "/login",
            &[
                ("email", email),
                ("password", password),
                ("csrf", &csrf),
                ("next", &next),
            ],
        )
        .await
    }

    /// Signs in; the session cookie goes to the jar.
    pub(crate) async fn sign_in(&self, email: &str) {
        let r = self.login_with(email, PASSWORD, "/console").await;
        assert_eq!(location(&r), "/console");
    }

    /// GETs an authorization request; when sent to the login page, signs in there (the form's `next` is the
    /// request) and follows back. Returns the answer of the request itself: a consent page or a redirect.
    pub(crate) async fn authorize(&self, params: &[(&str, &str)], email: &str) -> Response {
        let path = authorize_path(params);
        let r = self.get(&path).await;
        if r.status() != StatusCode::SEE_OTHER || !location(&r).starts_with("/login?") {
            return r;
        }
        let login = location(&r);
        assert_eq!(param(&login, "next").as_deref(), Some(path.as_str()));
        let page = self.get(&login).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_page_headers(page.headers(), "login page");
        let html = page.text().await.unwrap();
        let (csrf, next) = (hidden(&html, "csrf"), hidden(&html, "next"));
        assert_eq!(next, path, "the login form carries the request");
        let r = self
            .post(
                "/login",
                &[
                    ("email", email),
                    ("password", PASSWORD),
                    ("csrf", &csrf),
                    ("next", &next),
                ],
            )
            .await;
        assert_eq!(location(&r), path, "login returns to the request");
        self.get(&path).await
    }

    /// Submits a consent page's form with `decision`, every hidden field as the page had it.
    pub(crate) async fn decide(&self, html: &str, decision: &str) -> Response {
        let mut form = hidden_fields(html);
        form.push(("decision".into(), decision.into()));
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.post("/oauth2/authorize", &form).await
    }

    /// Runs an authorization request to its end as a person who allows it; returns the final redirect.
    pub(crate) async fn allow(&self, params: &[(&str, &str)], email: &str) -> String {
        let r = self.authorize(params, email).await;
        if r.status() == StatusCode::SEE_OTHER {
            return location(&r);
        }
        let html = consent_page(r).await;
        location(&self.decide(&html, "allow").await)
    }

    /// The code of an authorization request that must succeed.
    pub(crate) async fn code(&self, app: &TestApp, params: &[(&str, &str)], email: &str) -> String {
        let to = self.allow(params, email).await;
        code_of(app, &to, params)
    }
}

/// A consent page's HTML, checking its status and headers.
pub(crate) async fn consent_page(r: Response) -> String {
    assert_eq!(r.status(), StatusCode::OK, "expected the consent page");
    assert_page_headers(r.headers(), "consent page");
    let html = r.text().await.unwrap();
    assert!(html.contains("action=\"/oauth2/authorize\""), "{html}");
    html
}

/// The code of a redirect to the app, checking `state` and `iss`.
pub(crate) fn code_of(app: &TestApp, to: &str, params: &[(&str, &str)]) -> String {
    assert!(to.starts_with(&format!("{REDIRECT}?")), "{to}");
    assert_eq!(param(to, "error"), None, "{to}");
    let state = params.iter().find(|(k, _)| *k == "state").map(|(_, v)| *v);
    assert_eq!(param(to, "state").as_deref(), state, "{to}");
    assert_eq!(
        param(to, "iss").as_deref(),
        Some(app.app.settings.issuer.as_str())
    );
    param(to, "code").expect("code")
}

/// An error redirect to the app: its `error`, checking `state` and `iss`.
pub(crate) fn error_of(app: &TestApp, to: &str, state: &str) -> String {
    assert!(to.starts_with(&format!("{REDIRECT}?")), "{to}");
    assert_eq!(param(to, "code"), None, "{to}");
    assert_eq!(param(to, "state").as_deref(), Some(state), "{to}");
    assert_eq!(
        param(to, "iss").as_deref(),
        Some(app.app.settings.issuer.as_str())
    );
    assert!(param(to, "error_description").is_some(), "{to}");
    param(to, "error").expect("error")
}

// ---------------------------------------------------------------------------------------------------------------
// The app's side: the token endpoint and introspection
// ---------------------------------------------------------------------------------------------------------------

/// How an app authenticates at the token endpoint.
#[derive(Clone, Copy)]
pub(crate) enum Auth<'a> {
    /// A confidential app: HTTP Basic.
    Basic(&'a str, &'a str),
    /// A public app: `client_id` in the body, no secret.
    Public(&'a str),
}

pub(crate) async fn token_call(app: &TestApp, auth: Auth<'_>, form: &[(&str, &str)]) -> Response {
    match auth {
        Auth::Basic(id, secret) => {
            app.post_form("/oauth2/token", Some((id, secret)), form)
                .await
        }
        Auth::Public(id) => {
            let mut form = form.to_vec();
            form.push(("client_id", id));
            app.post_form("/oauth2/token", None, &form).await
        }
    }
}

pub(crate) async fn redeem(app: &TestApp, auth: Auth<'_>, code: &str, verifier: &str) -> Response {
    token_call(
        app,
        auth,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

pub(crate) async fn refresh(
    app: &TestApp,
    auth: Auth<'_>,
    token: &str,
    scope: Option<&str>,
) -> Response {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    token_call(app, auth, &form).await
}

/// A successful token response: (access_token, refresh_token, body).
pub(crate) async fn tokens(r: Response) -> (String, String, Value) {
    let status = r.status();
    let no_store = r.headers().get("cache-control").cloned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(no_store.unwrap(), "no-store");
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert!(body["expires_in"].as_i64().is_some_and(|e| e > 0), "{body}");
    let access = body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let refresh = body["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();
    (access, refresh, body)
}

/// Whether introspection by the app the token was issued to says the token is active.
pub(crate) async fn active(app: &TestApp, f: &Fixture, token: &str) -> bool {
    let r = app
        .post_form(
            "/oauth2/introspect",
            Some((&f.id, &f.secret)),
            &[("token", token)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    if v["active"] == false {
        assert_eq!(v, json!({"active": false}));
    }
    v["active"] == true
}

/// POSTs the login form of `EMAIL` with a CSRF token already taken from the page.
pub(crate) async fn login_post(agent: &Agent, csrf: &str, password: &str) -> Response {
    agent
        .post(
            "/login",
            &[
                ("email", EMAIL),
                ("password", password),
                ("csrf", csrf),
                ("next", "/account"),
            ],
        )
        .await
}

/// Status and `error` of each response.
pub(crate) async fn outcomes(rs: Vec<Response>) -> Vec<(StatusCode, String)> {
    let mut out = Vec::with_capacity(rs.len());
    for r in rs {
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        out.push((status, body["error"].as_str().unwrap_or("").to_owned()));
    }
    out
}

/// Exactly one 200, every other `invalid_grant`.
pub(crate) fn exactly_one_winner(results: &[(StatusCode, String)]) {
    let wins = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(wins, 1, "{results:?}");
    assert!(
        results.iter().all(|(s, e)| *s == StatusCode::OK
            || (*s == StatusCode::BAD_REQUEST && e == "invalid_grant")),
        "{results:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------------------
