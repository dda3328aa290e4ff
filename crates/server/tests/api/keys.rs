//! Signing-key rotation: publish-then-sign, and retirement after the last token a key signed has expired.

use serde_json::Value;

use crate::both_engines;
use crate::harness::{TestApp, claims};

/// The `kid`s a server's JWKS publishes.
pub(crate) async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let v: Value = app.get_json(&app.url("/oauth2/jwks")).await;
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// The `kid` a token was signed with.
pub(crate) fn kid(token: &str) -> String {
    let header: Value = {
        use base64::Engine;
        let h = token.split('.').next().unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .unwrap(),
        )
        .unwrap()
    };
    header["kid"].as_str().unwrap().to_owned()
}

both_engines!(rotation_is_publish_then_sign, |app| {
    let (id, secret) = app.api_client().await;
    let old_token = app.access_token(&id, &secret, &[]).await;
    let old_kid = kid(&old_token);
    let r = app.http.get(app.url("/oauth2/jwks")).send().await.unwrap();
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    let jwks: Value = r.json().await.unwrap();
    for k in jwks["keys"].as_array().unwrap() {
        for member in ["kid", "kty", "alg", "use"] {
            assert!(k.get(member).is_some(), "{member} in {k}");
        }
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(
                k.get(private).is_none(),
                "private member {private} published"
            );
        }
    }

    let (status, made) = app
        .admin_call(
            reqwest::Method::POST,
            "/keys/rotate",
            Some(serde_json::json!({"alg": "ES256"})),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let new_kid = made["items"][0]["kid"].as_str().unwrap().to_owned();
    // Published at once, but the old key still signs.
    assert!(jwks_kids(&app).await.contains(&new_kid));
    assert_eq!(kid(&app.access_token(&id, &secret, &[]).await), old_kid);
    // After the publish delay (10 min) the new key signs; the old one stays published for its tokens.
    app.clock.advance(600);
    let new_token = app.access_token(&id, &secret, &[]).await;
    assert_eq!(kid(&new_token), new_kid);
    assert!(jwks_kids(&app).await.contains(&old_kid));
    // Once every token the old key signed has expired (max lifetime 1 h + 15 s leeway), it is withdrawn.
    app.clock.advance(3_600 + 15);
    assert!(!jwks_kids(&app).await.contains(&old_kid));
    assert!(jwks_kids(&app).await.contains(&new_kid));
    let (_, keys) = app.admin_call(reqwest::Method::GET, "/keys", None).await;
    let states: Vec<&str> = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert!(states.contains(&"retired") && states.contains(&"active"));
    assert_eq!(claims(&new_token)["iss"], app.base.as_str());
});
