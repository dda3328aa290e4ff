//! Each seed's documented token interface, served by its example deployment (`examples/*.toml`): a client is
//! created the way the seed's portal would, then the seed's own requests are replayed as documented (headers,
//! body encoding, scope strings) and the documented failures are checked.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::both_engines;
use crate::harness::{Engine as Db, TestApp, assert_error};

const UAT: &str = "705798e0-8cef-427c-ae00-6023deba29af";
const PROD: &str = "a3f3019f-2be9-41cc-a254-7bb347238e89";
const MARKETPLACE: &str = "https://marketplace.walmartapis.com";
const ORDERS_HUB: &str = "https://developer.api.walmart.com/api-proxy/service/orders-hub";
const SUPPLIER: &str = "https://api-gateway.walmart.com/1p-supplier";
const WLL_SCOPES: &str =
    "read:users write:users read:points write:points read:rewards write:rewards read:reports";

/// Sends a POST exactly as given: raw headers and body bytes.
async fn send(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> reqwest::Response {
    let mut req = app.http.post(app.url(path)).body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request")
}

/// The member names of a JSON object, sorted.
fn members(v: &Value) -> Vec<String> {
    let mut names: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    names.sort();
    names
}

/// `Basic base64(id:secret)`, encoded the way the Walmart 1P document's Python snippet does it.
fn walmart_basic(id: &str, secret: &str) -> String {
    format!("Basic {}", B64.encode(format!("{id}:{secret}")))
}

async fn ok_json(r: reqwest::Response) -> (HeaderMap, Value) {
    let status = r.status();
    let headers = r.headers().clone();
    let body: Value = r.json().await.expect("JSON body");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    (headers, body)
}

// Seed 000: Walley, Azure AD B2C.
both_engines!(walley, example "walley", |app| {
    // The Merchant Hub's "Create + / Api key" for UAT: the id and secret are shown once. Every example's key here is
    // made the plainest way, naming no resource, as its walkthrough in COMPATIBILITY.md does: the deployment's
    // default (or only) resource is the one.
    let (id, secret) = app.client(json!({"name": "Webshop (UAT)"})).await;
    let body = format!(
        "client_id={id}&client_secret={secret}&grant_type=client_credentials&scope={UAT}/.default"
    );
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let (_, t) = ok_json(send(&app, "/oauth2/v2.0/token", &form, &body).await).await;
    assert_eq!(members(&t), ["access_token", "expires_in", "token_type"]);
    assert_eq!((t["token_type"].as_str(), t["expires_in"].as_i64()), (Some("Bearer"), Some(3_600)));
    let claims = app.verify_jwt(t["access_token"].as_str().unwrap(), UAT).await;
    assert_eq!((claims["sub"].as_str(), claims["iss"].as_str()), (Some(id.as_str()), Some("http://127.0.0.1:8080")));

    // "Request a new token by executing the same request again": a fresh token each time.
    let (_, again) = ok_json(send(&app, "/oauth2/v2.0/token", &form, &body).await).await;
    assert_ne!(again["access_token"], t["access_token"]);

    // A UAT key cannot get a PROD token.
    let prod = body.replace(UAT, PROD);
    let r = send(&app, "/oauth2/v2.0/token", &form, &prod).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_scope").await;
    // The endpoint takes a form body only, and the canonical endpoint still works for the same key.
    let r = send(&app, "/oauth2/v2.0/token", &[("Content-Type", "application/json")], "{}").await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    let r = app.token(&id, &secret, &[("scope", &format!("{UAT}/.default"))]).await;
    assert_eq!(r.status(), StatusCode::OK);
    // A PROD key gets a PROD token.
    let (pid, psecret) = app.client(json!({"name": "Webshop (PROD)", "resources": [PROD]})).await;
    let body = format!(
        "client_id={pid}&client_secret={psecret}&grant_type=client_credentials&scope={PROD}/.default"
    );
    let (_, t) = ok_json(send(&app, "/oauth2/v2.0/token", &form, &body).await).await;
    app.verify_jwt(t["access_token"].as_str().unwrap(), PROD).await;
});

/// WLL's documented request: a JSON body naming the audience.
fn wll_body(id: &str, secret: &str, audience: &str) -> String {
    format!(
        "{{\"client_id\":\"{id}\",\"client_secret\":\"{secret}\",\"audience\":\"{audience}\",\"grant_type\":\"client_credentials\"}}"
    )
}

const WLL_JSON: [(&str, &str); 1] = [("content-type", "application/json")];

// Seed 001: WLL admin API, Auth0 style.
both_engines!(wll, example "wll", |app| {
    let scopes: Vec<&str> = WLL_SCOPES.split(' ').collect();
    let (id, secret) = app
        .client(json!({"name": "Acme (staging)", "scopes": scopes}))
        .await;
    let r = send(&app, "/oauth/token", &WLL_JSON, &wll_body(&id, &secret, "staging.wlloyalty.net")).await;
    let (_, t) = ok_json(r).await;
    assert_eq!(members(&t), ["access_token", "expires_in", "scope", "token_type"]);
    assert_eq!((t["expires_in"].as_i64(), t["scope"].as_str()), (Some(86_400), Some(WLL_SCOPES)));
    let c = app.verify_jwt(t["access_token"].as_str().unwrap(), "staging.wlloyalty.net").await;
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 86_400);
    assert_eq!(c["scope"], WLL_SCOPES);

    // Credentials for staging only: production is refused.
    let r = send(&app, "/oauth/token", &WLL_JSON, &wll_body(&id, &secret, "production.wlloyalty.net")).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_target").await;

    // "A token valid for any environment": audience wlloyalty.net, for credentials allowed it.
    let (any_id, any_secret) = app
        .client(json!({"name": "Acme (all)", "resources": ["wlloyalty.net"], "scopes": ["read:reports"]}))
        .await;
    let r = send(&app, "/oauth/token", &WLL_JSON, &wll_body(&any_id, &any_secret, "wlloyalty.net")).await;
    let (_, t) = ok_json(r).await;
    assert_eq!(t["scope"], "read:reports");
    app.verify_jwt(t["access_token"].as_str().unwrap(), "wlloyalty.net").await;
});

async fn wll_token(app: &TestApp, id: &str, secret: &str) -> String {
    let body = wll_body(id, secret, "staging.wlloyalty.net");
    let (_, t) = ok_json(send(app, "/oauth/token", &WLL_JSON, &body).await).await;
    t["access_token"].as_str().unwrap().to_owned()
}

// Seed 001, regions: the US deployment has its own issuer and keys; the EU one does not accept its tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wll_regions_are_separate() {
    let eu = TestApp::example("wll", Db::Sqlite).await;
    let us = TestApp::example("wll-us", Db::Postgres).await;
    assert_ne!(eu.app.settings.issuer, us.app.settings.issuer);
    let spec =
        json!({"name": "Acme", "resources": ["staging.wlloyalty.net"], "scopes": ["read:users"]});
    let (eu_id, eu_secret) = eu.client(spec.clone()).await;
    let (us_id, us_secret) = us.client(spec).await;
    let eu_token = wll_token(&eu, &eu_id, &eu_secret).await;
    let us_token = wll_token(&us, &us_id, &us_secret).await;
    us.verify_jwt(&us_token, "staging.wlloyalty.net").await;

    // The staging API in the EU introspects both: only the EU token is active there.
    let (api, api_secret) = eu
        .client(json!({"name": "staging API", "resources": [], "serves_resources": ["staging.wlloyalty.net"]}))
        .await;
    for (token, active) in [(&eu_token, true), (&us_token, false)] {
        let r = eu
            .post_form(
                "/oauth2/introspect",
                Some((&api, &api_secret)),
                &[("token", token)],
            )
            .await;
        assert_eq!(r.json::<Value>().await.unwrap()["active"], active);
    }
    // The US token's key is not in the EU JWKS.
    let kid = jsonwebtoken::decode_header(&us_token).unwrap().kid.unwrap();
    let eu_jwks: jsonwebtoken::jwk::JwkSet = eu.get_json(&eu.url("/oauth2/jwks")).await;
    assert!(eu_jwks.find(&kid).is_none());
    // EU credentials mean nothing in the US.
    let r = send(
        &us,
        "/oauth/token",
        &WLL_JSON,
        &wll_body(&eu_id, &eu_secret, "staging.wlloyalty.net"),
    )
    .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

/// The headers of a documented Marketplace token request.
fn marketplace_headers<'a>(
    basic: &'a str,
    market: &'a str,
    accept: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("Authorization", basic),
        ("WM_MARKET", market),
        (
            "WM_QOS.CORRELATION_ID",
            "b3261d2d-028a-4ef7-8602-633c23200af6",
        ),
        ("WM_SVC.NAME", "Walmart Marketplace"),
        ("Accept", accept),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ]
}

/// Parses an XML body and returns (root element name, child element name → text).
fn xml(text: &str) -> (String, Vec<(String, String)>) {
    let doc = roxmltree::Document::parse(text).expect("well-formed XML");
    let root = doc.root_element();
    let children = root
        .descendants()
        .skip(1)
        .filter(|n| n.is_element() && n.children().all(|c| c.is_text()))
        .map(|n| {
            (
                n.tag_name().name().to_owned(),
                n.text().unwrap_or("").to_owned(),
            )
        })
        .collect();
    (root.tag_name().name().to_owned(), children)
}

// Seed 002: Walmart Marketplace Token API.
both_engines!(walmart_marketplace, example "walmart-marketplace", |app| {
    let (id, secret) = app.client(json!({"name": "Seller 10000012345"})).await;
    let basic = walmart_basic(&id, &secret);
    let body = "grant_type=client_credentials";

    // JSON in every market, with the correlation id echoed.
    for market in ["us", "mx", "ca", "cl"] {
        let r = send(&app, "/v3/token", &marketplace_headers(&basic, market, "application/json"), body).await;
        let (headers, t) = ok_json(r).await;
        assert_eq!(headers["wm_qos.correlation_id"], "b3261d2d-028a-4ef7-8602-633c23200af6");
        assert_eq!(members(&t), ["access_token", "expires_in", "token_type"]);
        assert_eq!(t["expires_in"], 900);
        app.verify_jwt(t["access_token"].as_str().unwrap(), MARKETPLACE).await;
    }

    // XML by Accept, in Walmart's OAuthTokenDTO shape.
    let r = send(&app, "/v3/token", &marketplace_headers(&basic, "us", "application/xml"), body).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/xml"));
    assert_eq!(r.headers()["vary"], "accept");
    let (root, fields) = xml(&r.text().await.unwrap());
    assert_eq!(root, "OAuthTokenDTO");
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["accessToken", "tokenType", "expiresIn"]);
    assert_eq!((fields[1].1.as_str(), fields[2].1.as_str()), ("Bearer", "900"));
    app.verify_jwt(&fields[0].1, MARKETPLACE).await;

    // A missing required header is invalid_request naming it; in XML when XML was asked for.
    for missing in ["WM_SVC.NAME", "WM_QOS.CORRELATION_ID", "WM_MARKET"] {
        let headers: Vec<_> = marketplace_headers(&basic, "us", "application/json")
            .into_iter()
            .filter(|(k, _)| *k != missing)
            .collect();
        let e = assert_error(send(&app, "/v3/token", &headers, body).await, StatusCode::BAD_REQUEST, "invalid_request").await;
        assert!(e["error_description"].as_str().unwrap().contains(missing), "{e}");
    }
    let headers: Vec<_> = marketplace_headers(&basic, "us", "application/xml")
        .into_iter()
        .filter(|(k, _)| *k != "WM_SVC.NAME")
        .collect();
    let r = send(&app, "/v3/token", &headers, body).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["wm_qos.correlation_id"], "b3261d2d-028a-4ef7-8602-633c23200af6");
    let (root, fields) = xml(&r.text().await.unwrap());
    assert_eq!(root, "errors");
    assert_eq!(fields[0], ("code".into(), "invalid_request".into()));
    assert!(fields[1].1.contains("WM_SVC.NAME"));

    // An unknown market.
    let r = send(&app, "/v3/token", &marketplace_headers(&basic, "br", "application/json"), body).await;
    let e = assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(e["error_description"].as_str().unwrap().contains("WM_MARKET must be one of: ca, cl, mx, us"), "{e}");

    // authorization_code is US-only: elsewhere the market rule refuses it; in the US it reaches the token
    // endpoint, where this seller's own key (client_credentials only) may not use it.
    let code = "grant_type=authorization_code&code=65CA5DA313A549D49D15D3119D9AD85D&redirect_uri=https%3A%2F%2Fexample-client-app.com";
    let r = send(&app, "/v3/token", &marketplace_headers(&basic, "mx", "application/json"), code).await;
    let e = assert_error(r, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    assert!(e["error_description"].as_str().unwrap().contains("market mx"), "{e}");
    let r = send(&app, "/v3/token", &marketplace_headers(&basic, "us", "application/json"), code).await;
    assert_error(r, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    let r = send(&app, "/v3/token", &marketplace_headers(&basic, "ca", "application/json"), "grant_type=refresh_token&refresh_token=APXcIoTpKMH9OQN").await;
    let e = assert_error(r, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    assert!(e["error_description"].as_str().unwrap().contains("market ca"), "{e}");

    // Basic only: credentials in the body are refused with a Basic challenge; a wrong secret in XML.
    let mut headers: Vec<_> = marketplace_headers(&basic, "us", "application/json")
        .into_iter()
        .filter(|(k, _)| *k != "Authorization")
        .collect();
    let posted = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let r = send(&app, "/v3/token", &headers, &posted).await;
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"keyward\"");
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let wrong = walmart_basic(&id, "kw_sk_wrong");
    headers = marketplace_headers(&wrong, "us", "application/xml");
    let r = send(&app, "/v3/token", &headers, body).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (root, fields) = xml(&r.text().await.unwrap());
    assert_eq!((root.as_str(), fields[0].1.as_str()), ("errors", "invalid_client"));

    // An Accept the endpoint cannot serve is 406; wildcards get JSON; no Content-Type is read as a form.
    let r = send(&app, "/v3/token", &marketplace_headers(&basic, "us", "text/html"), body).await;
    assert_eq!(r.status(), StatusCode::NOT_ACCEPTABLE);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    ok_json(send(&app, "/v3/token", &marketplace_headers(&basic, "us", "*/*"), body).await).await;
    let untyped: Vec<_> = marketplace_headers(&basic, "US", "application/json")
        .into_iter()
        .filter(|(k, _)| *k != "Content-Type")
        .chain([("WM_CONSUMER.CHANNEL.TYPE", "0f3e4dd4-0514-4346-b39d-af7d3f1c3e5d")])
        .collect();
    ok_json(send(&app, "/v3/token", &untyped, body).await).await;

    // Another method: 405, in XML when asked.
    let r = app.http.get(app.url("/v3/token")).header("Accept", "application/xml").send().await.unwrap();
    assert_eq!((r.status(), r.headers()["allow"].to_str().unwrap()), (StatusCode::METHOD_NOT_ALLOWED, "POST"));
    assert_eq!(xml(&r.text().await.unwrap()).0, "errors");
});
// Delegated access on Walmart's interface: a solution provider's app trades a seller's code and refresh tokens at
// /v3/token with WM_PARTNER.ID (US only), and /v3/token/detail says what the seller delegated, by category.
both_engines!(walmart_marketplace_delegated, example "walmart-marketplace", |app| {
    use keyward::service::accounts::AccountInput;
    use keyward::service::admin::Actor;
    use keyward_core::grant::authorization_code::Authorization;
    use keyward_core::scope::ScopeSet;

    let redirect = "https://example-client-app.com/callback";
    let (status, body) = app
        .admin_call(
            reqwest::Method::POST,
            "/clients",
            Some(json!({
                "name": "Repricer", "grant_types": ["authorization_code", "refresh_token"],
                "redirect_uris": [redirect], "resources": [MARKETPLACE],
                "scopes": ["item:view", "item:full", "orders:view", "reports:view"]
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (id, secret) = (body["client_id"].as_str().unwrap(), body["client_secret"].as_str().unwrap());
    let basic = walmart_basic(id, secret);
    let (seller, _) = app
        .app
        .accounts.account_create(
            &Actor::cli(),
            AccountInput {
                email: Some("seller@example.com".into()),
                partner_id: Some("10000012345".into()),
                ..AccountInput::default()
            },
        )
        .await
        .unwrap();
    // The consent flow itself is tested in delegated.rs and consent.rs; here the code comes from the same call.
    let verifier = "walmart-delegated-verifier-0123456789-abcdefgh";
    let issue = || async {
        let auth = Authorization {
            client_id: id.to_owned(),
            redirect_uri: redirect.to_owned(),
            state: None,
            scope: ScopeSet::parse("item:view item:full orders:view reports:view").unwrap(),
            audience: MARKETPLACE.to_owned(),
            code_challenge: base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(keyward::crypto::sha256(verifier.as_bytes())),
            consent_may_be_remembered: true,
        };
        app.app.delegated.issue_code(&auth, &seller.account_id).await.unwrap()
    };
    let redeem = |code: String| {
        format!(
            "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={verifier}",
            keyward_core::form::encode_component(redirect)
        )
    };
    let with_partner = |market: &'static str, accept: &'static str, partner: &'static str| {
        let mut h = marketplace_headers(&basic, market, accept);
        h.push(("WM_PARTNER.ID", partner));
        h
    };

    // WM_PARTNER.ID is required for these grants, and must be the seller's.
    let r = send(&app, "/v3/token", &marketplace_headers(&basic, "us", "application/json"), &redeem(issue().await)).await;
    let e = assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(e["error_description"].as_str().unwrap().contains("WM_PARTNER.ID"), "{e}");
    let r = send(&app, "/v3/token", &with_partner("us", "application/json", "99999"), &redeem(issue().await)).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // Outside the US the grant is refused as the document says.
    let r = send(&app, "/v3/token", &with_partner("mx", "application/json", "10000012345"), &redeem(issue().await)).await;
    let e = assert_error(r, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    assert!(e["error_description"].as_str().unwrap().contains("market mx"), "{e}");

    let r = send(&app, "/v3/token", &with_partner("us", "application/json", "10000012345"), &redeem(issue().await)).await;
    let (headers, t) = ok_json(r).await;
    assert_eq!(headers["wm_qos.correlation_id"], "b3261d2d-028a-4ef7-8602-633c23200af6");
    assert_eq!(members(&t), ["access_token", "expires_in", "refresh_token", "scope", "token_type"]);
    assert_eq!(t["expires_in"], 900);
    let claims = app.verify_jwt(t["access_token"].as_str().unwrap(), MARKETPLACE).await;
    assert_eq!(claims["sub"], seller.account_id.as_str());

    // refresh_token in XML: OAuthTokenDTO with the rotated refresh token; refused in ca.
    let refresh = format!("grant_type=refresh_token&refresh_token={}", t["refresh_token"].as_str().unwrap());
    let r = send(&app, "/v3/token", &with_partner("ca", "application/json", "10000012345"), &refresh).await;
    assert_error(r, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    let r = send(&app, "/v3/token", &with_partner("us", "application/xml", "10000012345"), &refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (root, fields) = xml(&r.text().await.unwrap());
    assert_eq!(root, "OAuthTokenDTO");
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["accessToken", "tokenType", "expiresIn", "refreshToken", "scope"]);
    assert_ne!(fields[3].1, t["refresh_token"].as_str().unwrap(), "rotated");
    let access = fields[0].1.clone();

    // Token detail: the scopes by category, the later level of a category winning; the token in WM_SEC.ACCESS_TOKEN.
    let r = app
        .http
        .get(app.url("/v3/token/detail"))
        .header("WM_SEC.ACCESS_TOKEN", &access)
        .header("WM_QOS.CORRELATION_ID", "detail-1")
        .send()
        .await
        .unwrap();
    let (headers, d) = ok_json(r).await;
    assert_eq!(headers["wm_qos.correlation_id"], "detail-1");
    assert_eq!(d["is_valid"], true);
    assert_eq!(d["subject"], seller.account_id.as_str());
    assert_eq!(d["scopes"], json!({"Item": "Full Access", "Orders": "View Only", "Reports": "View Only"}));
    let r = app.bearer(reqwest::Method::GET, &app.url("/oauth2/token/detail"), &access).await;
    assert_eq!(r.json::<Value>().await.unwrap()["scopes"], d["scopes"]);
    let r = app.http.get(app.url("/v3/token/detail")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let r = app.bearer(reqwest::Method::GET, &app.url("/v3/token/detail"), "not-a-token").await;
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
});

// Seed 003: Walmart Marketplace Orders Hub.
both_engines!(walmart_orders_hub, example "walmart-orders-hub", |app| {
    let (id, secret) = app.client(json!({"name": "Orders Hub integration"})).await;
    let path = "/api-proxy/service/identity/oauth/v1/token";
    let headers = [("Accept", "application/json"), ("Content-Type", "application/x-www-form-urlencoded")];
    let body = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let (_, t) = ok_json(send(&app, path, &headers, &body).await).await;
    // Exactly the documented members.
    assert_eq!(members(&t), ["access_token", "expires_in", "token_type"]);
    assert_eq!((t["token_type"].as_str(), t["expires_in"].as_i64()), (Some("Bearer"), Some(900)));
    app.verify_jwt(t["access_token"].as_str().unwrap(), ORDERS_HUB).await;

    // The token is an RFC 6750 bearer token: introspection by the Hub's API sees it active.
    let (api, api_secret) = app
        .client(json!({"name": "Hub API", "resources": [], "serves_resources": [ORDERS_HUB]}))
        .await;
    let r = app
        .post_form("/oauth2/introspect", Some((&api, &api_secret)), &[("token", t["access_token"].as_str().unwrap())])
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["active"], true);

    // Form-body credentials only; JSON only.
    let basic = walmart_basic(&id, &secret);
    let r = send(&app, path, &[("Authorization", &basic), headers[1]], "grant_type=client_credentials").await;
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let r = send(&app, path, &[("Accept", "application/xml"), headers[1]], &body).await;
    assert_eq!(r.status(), StatusCode::NOT_ACCEPTABLE);
    // A wrong secret, and a missing one.
    let r = send(&app, path, &headers, &body.replace(&secret, "kw_sk_nope")).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let r = send(&app, path, &headers, &format!("grant_type=client_credentials&client_id={id}")).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
});

// Seed 004: Walmart 1P Supplier.
both_engines!(walmart_1p_supplier, example "walmart-1p-supplier", |app| {
    let (id, secret) = app.client(json!({"name": "Supplier API key"})).await;
    let basic = walmart_basic(&id, &secret);
    for accept in ["application/json", "application/xml"] {
        let headers = [
            ("Authorization", basic.as_str()),
            ("WM_CONSUMER.CHANNEL.TYPE", "0f3e4dd4-0514-4346-b39d-af7d3f1c3e5d"),
            ("WM_QOS.CORRELATION_ID", "12s4hfvgtr"),
            ("Accept", accept),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        let r = send(&app, "/v3/token", &headers, "grant_type=client_credentials").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["wm_qos.correlation_id"], "12s4hfvgtr");
        let text = r.text().await.unwrap();
        let token = if accept == "application/json" {
            serde_json::from_str::<Value>(&text).unwrap()["access_token"].as_str().unwrap().to_owned()
        } else {
            let (root, fields) = xml(&text);
            assert_eq!(root, "OAuthTokenDTO");
            fields[0].1.clone()
        };
        app.verify_jwt(&token, SUPPLIER).await;
    }
    // "Content-Type: Can be null".
    let r = send(&app, "/v3/token", &[("Authorization", &basic), ("WM_QOS.CORRELATION_ID", "12s4hfvgtr")], "grant_type=client_credentials").await;
    ok_json(r).await;
    // WM_QOS.CORRELATION_ID is required.
    let r = send(&app, "/v3/token", &[("Authorization", &basic), ("Accept", "application/json")], "grant_type=client_credentials").await;
    let e = assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(e["error_description"].as_str().unwrap().contains("WM_QOS.CORRELATION_ID"));
    // Only client_credentials is served here.
    let r = send(&app, "/v3/token", &[("Authorization", &basic), ("WM_QOS.CORRELATION_ID", "x")], "grant_type=refresh_token&refresh_token=r").await;
    let e = assert_error(r, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    assert_eq!(e["error_description"], "this endpoint does not serve this grant type");
    // An empty Content-Type is as good as none; text/xml gets text/xml.
    let headers = [("Authorization", basic.as_str()), ("WM_QOS.CORRELATION_ID", "x"), ("Content-Type", ""), ("Accept", "application/xml;q=0, text/xml")];
    let r = send(&app, "/v3/token", &headers, "grant_type=client_credentials").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/xml;charset=UTF-8");
    assert_eq!(xml(&r.text().await.unwrap()).0, "OAuthTokenDTO");
    // A correlation value that is not printable ASCII is refused, neither echoed nor logged.
    let r = app
        .http
        .post(app.url("/v3/token"))
        .header("Authorization", basic.as_str())
        .header("WM_QOS.CORRELATION_ID", reqwest::header::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("wm_qos.correlation_id").is_none());
    let e = assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(e["error_description"].as_str().unwrap().contains("printable ASCII"), "{e}");
});

// Declared resources are created once; a later start keeps what the admin API changed since.
both_engines!(declared_resources_are_created_once, example "walley", |app| {
    let (status, body) = app
        .admin_call(reqwest::Method::PATCH, &format!("/resources/{UAT}"), Some(json!({"name": "UAT, renamed"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let config_file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/walley.toml");
    let env = std::collections::HashMap::from([
        ("KEYWARD_DATABASE".to_owned(), app.database.clone()),
        ("KEYWARD_DATA_DIR".to_owned(), app.dir.path().to_string_lossy().into_owned()),
    ]);
    let config = keyward::config::load(Some(&config_file), &env, &keyward::config::Flags::default()).unwrap();
    let (again, first) = keyward::app::App::open(&config, app.clock.clone()).await.unwrap();
    assert!(first.is_none());
    let names: Vec<String> = again
        .store
        .resources_all()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"UAT, renamed".to_owned()), "{names:?}");
});
