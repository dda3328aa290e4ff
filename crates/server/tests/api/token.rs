//! The token endpoint: client_credentials by Basic, form and JSON; every row of SECURITY.md's error table;
//! Basic encoding edge cases; `.default`; audience selection; rotation overlap; disable and delete.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_engines;
use crate::harness::{TestApp, assert_error, claims};

both_engines!(basic_auth_gets_a_verifiable_rfc9068_token, |app| {
    let (id, secret) = app.api_client().await;
    let r = app.token(&id, &secret, &[("scope", "read")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (
            body["token_type"].as_str(),
            body["expires_in"].as_i64(),
            body["scope"].as_str()
        ),
        (Some("Bearer"), Some(900), Some("read"))
    );
    let token = body["access_token"].as_str().unwrap();

    // Verified by an independent JWT library against the published JWKS.
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    let c = app.verify_jwt(token, "https://api.example.com").await;
    assert_eq!(c["sub"], id.as_str());
    assert_eq!(c["client_id"], id.as_str());
    assert_eq!(c["scope"], "read");
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 900);
    assert!(c["jti"].as_str().is_some_and(|j| j.len() >= 16));
});

both_engines!(post_and_json_bodies_work, |app| {
    let (id, secret) = app.api_client().await;
    let form = app
        .post_form(
            "/oauth2/token",
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_eq!(form.status(), 200);
    let body = json!({"client_id": id, "client_secret": secret, "grant_type": "client_credentials",
        "audience": "https://api.example.com", "scope": "read write"});
    let r = app
        .http
        .post(app.url("/oauth2/token"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["scope"], "read write");
});

both_engines!(every_error_row_of_the_security_table, |app| {
    let (id, secret) = app.api_client().await;
    let basic = Some((id.as_str(), secret.as_str()));
    let cc = ("grant_type", "client_credentials");
    let bad = StatusCode::BAD_REQUEST;

    // invalid_request: missing, repeated, malformed; query string; two mechanisms; mismatched ids; broken header.
    assert_error(
        app.post_form("/oauth2/token", basic, &[]).await,
        bad,
        "invalid_request",
    )
    .await;
    assert_error(
        app.post_form(
            "/oauth2/token",
            basic,
            &[cc, ("scope", "read"), ("scope", "write")],
        )
        .await,
        bad,
        "invalid_request",
    )
    .await;
    assert_error(
        app.post_form("/oauth2/token?client_id=x", basic, &[cc])
            .await,
        bad,
        "invalid_request",
    )
    .await;
    assert_error(
        app.post_form("/oauth2/token", basic, &[cc, ("client_secret", &secret)])
            .await,
        bad,
        "invalid_request",
    )
    .await;
    assert_error(
        app.post_form("/oauth2/token", basic, &[cc, ("client_id", "someone-else")])
            .await,
        bad,
        "invalid_request",
    )
    .await;
    for header in ["Basic !!!", "Basic", "Basic YWJj", "Basic YTolenp6"] {
        let r = app
            .http
            .post(app.url("/oauth2/token"))
            .header("authorization", header)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        assert_error(r, bad, "invalid_request").await;
    }
    for raw in [
        "grant_type=client_credentials&scope=%zz",
        "grant_type=client_credentials&scope=%FF",
        "grant_type=client%00_credentials",
        "a=%0A",
    ] {
        let r = app
            .post_raw(
                "/oauth2/token",
                Some((&id, &secret)),
                "application/x-www-form-urlencoded",
                raw,
            )
            .await;
        assert_error(r, bad, "invalid_request").await;
    }
    let r = app
        .post_raw("/oauth2/token", Some((&id, &secret)), "text/plain", "x")
        .await;
    assert_error(r, bad, "invalid_request").await;
    for json_body in [
        r#"{"grant_type":"client_credentials","scope":1}"#,
        r#"{"grant_type":"client_credentials","grant_type":"client_credentials"}"#,
        "[1]",
        "{",
    ] {
        let r = app
            .post_raw(
                "/oauth2/token",
                Some((&id, &secret)),
                "application/json",
                json_body,
            )
            .await;
        assert_error(r, bad, "invalid_request").await;
    }

    // invalid_client: no credentials (no challenge), unknown client and wrong secret (identical, with challenge).
    let none = app.post_form("/oauth2/token", None, &[cc]).await;
    assert!(none.headers().get("www-authenticate").is_none());
    assert_error(none, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let unknown = app.token("no-such-client", &secret, &[]).await;
    assert_eq!(
        unknown.headers()["www-authenticate"],
        "Basic realm=\"keyward\""
    );
    let unknown = assert_error(unknown, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let wrong = assert_error(
        app.token(&id, "kw_sk_wrong", &[]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    assert_eq!(
        unknown, wrong,
        "unknown client and wrong secret must be indistinguishable"
    );
    let r = app
        .http
        .post(app.url("/oauth2/token"))
        .bearer_auth("x")
        .form(&[cc])
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;

    // invalid_client: an auth method the client is not registered for.
    let (post_only, post_secret) = app.client(json!({"name": "p", "resources": ["https://api.example.com"], "auth_methods": ["client_secret_post"]})).await;
    assert_error(
        app.token(&post_only, &post_secret, &[]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;

    // unauthorized_client, unsupported_grant_type, invalid_scope, invalid_target.
    let (no_grant, ng_secret) = app
        .client(json!({"name": "n", "resources": ["https://api.example.com"], "grant_types": []}))
        .await;
    assert_error(
        app.token(&no_grant, &ng_secret, &[]).await,
        bad,
        "unauthorized_client",
    )
    .await;
    // A grant Keyward offers but this client may not use is unauthorized_client.
    for g in ["authorization_code", "refresh_token"] {
        assert_error(
            app.post_form("/oauth2/token", basic, &[("grant_type", g)])
                .await,
            bad,
            "unauthorized_client",
        )
        .await;
    }
    for g in [
        "password",
        "implicit",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ] {
        assert_error(
            app.post_form("/oauth2/token", basic, &[("grant_type", g)])
                .await,
            bad,
            "unsupported_grant_type",
        )
        .await;
    }
    for s in ["admin", "read \"x", "read other"] {
        assert_error(
            app.token(&id, &secret, &[("scope", s)]).await,
            bad,
            "invalid_scope",
        )
        .await;
    }
    assert_error(
        app.token(&id, &secret, &[("audience", "https://nope.example.com")])
            .await,
        bad,
        "invalid_target",
    )
    .await;

    // 405 with Allow, 413 over 64 KiB.
    let r = app.http.get(app.url("/oauth2/token")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "POST");
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(70 * 1024)
    );
    let r = app
        .post_raw(
            "/oauth2/token",
            Some((&id, &secret)),
            "application/x-www-form-urlencoded",
            &big,
        )
        .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
});

both_engines!(basic_encoding_edge_cases, |app| {
    app.resource("api", &["read"]).await;
    for client_id in [
        "id:with:colons",
        "100%+sure",
        "with space",
        "été-ü-日本",
        "a+b%2B",
    ] {
        let (id, secret) = app
            .client(json!({"client_id": client_id, "name": "x", "resources": ["api"]}))
            .await;
        assert_eq!(id, client_id);
        // reqwest is not used for Basic here: it does not form-encode per RFC 6749 §2.3.1; the harness does.
        let t = app.access_token(&id, &secret, &[]).await;
        assert_eq!(claims(&t)["client_id"], client_id);
        // The same credentials in the body (form-encoded by the harness) work too.
        let r = app
            .post_form(
                "/oauth2/token",
                None,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &id),
                    ("client_secret", &secret),
                ],
            )
            .await;
        assert_eq!(r.status(), 200, "{client_id}");
    }
});

both_engines!(default_scope_and_audience_selection, |app| {
    let uat = "705798e0-8cef-427c-ae00-6023deba29af";
    let prod = "a3f3019f-2be9-41cc-a254-7bb347238e89";
    app.resource(uat, &["orders:read", "orders:write"]).await;
    app.resource(prod, &["orders:read", "orders:write"]).await;
    let (uat_id, uat_secret) = app.client(json!({"name": "uat key", "resources": [uat], "scopes": ["orders:read", "orders:write"]})).await;
    let t = app
        .access_token(
            &uat_id,
            &uat_secret,
            &[("scope", &format!("{uat}/.default"))],
        )
        .await;
    assert_eq!(
        (claims(&t)["aud"].as_str(), claims(&t)["scope"].as_str()),
        (Some(uat), Some("orders:read orders:write"))
    );
    // A UAT key cannot get a PROD token: named by scope, the error is invalid_scope; by resource, invalid_target.
    let r = app
        .token(
            &uat_id,
            &uat_secret,
            &[("scope", &format!("{prod}/.default"))],
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_scope").await;
    let r = app.token(&uat_id, &uat_secret, &[("resource", prod)]).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_target").await;
    // Its only resource is the default; audience and resource (RFC 8707) name it explicitly.
    assert_eq!(
        claims(&app.access_token(&uat_id, &uat_secret, &[]).await)["aud"],
        uat
    );
    assert_eq!(
        claims(
            &app.access_token(&uat_id, &uat_secret, &[("resource", uat)])
                .await
        )["aud"],
        uat
    );

    let (both, both_secret) = app.client(json!({"name": "both", "resources": [uat, prod], "scopes": ["orders:read"], "default_resource": prod})).await;
    assert_eq!(
        claims(&app.access_token(&both, &both_secret, &[]).await)["aud"],
        prod
    );
    assert_eq!(
        claims(
            &app.access_token(&both, &both_secret, &[("audience", uat)])
                .await
        )["aud"],
        uat
    );
    let r = app
        .token(
            &both,
            &both_secret,
            &[("audience", uat), ("resource", prod)],
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    let r = app
        .token(
            &both,
            &both_secret,
            &[("audience", uat), ("scope", &format!("{prod}/.default"))],
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_scope").await;
    // Scope beyond the client is rejected, never narrowed.
    let r = app
        .token(
            &both,
            &both_secret,
            &[("scope", "orders:read orders:write")],
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_scope").await;
});

both_engines!(rotation_overlap_then_old_secret_stops, |app| {
    let (id, old) = app.api_client().await;
    let (status, made) = app
        .admin_call(
            reqwest::Method::POST,
            &format!("/clients/{id}/secrets"),
            Some(json!({"retire_old_after": "1h"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let new = made["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    app.access_token(&id, &old, &[]).await;
    app.access_token(&id, &new, &[]).await;
    app.clock.advance(3_600);
    assert_error(
        app.token(&id, &old, &[]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    app.access_token(&id, &new, &[]).await;
    // Listing shows secrets without their values.
    let (_, list) = app
        .admin_call(
            reqwest::Method::GET,
            &format!("/clients/{id}/secrets"),
            None,
        )
        .await;
    let text = list.to_string();
    assert!(!text.contains(&new) && !text.contains(&old));
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
});

both_engines!(disable_and_delete_take_effect_at_once, |app| {
    let (id, secret) = app.api_client().await;
    let token = app.access_token(&id, &secret, &[]).await;
    let (s, _) = app
        .admin_call(
            reqwest::Method::POST,
            &format!("/clients/{id}/disable"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_error(
        app.token(&id, &secret, &[]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    let (s, _) = app
        .admin_call(
            reqwest::Method::POST,
            &format!("/clients/{id}/enable"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    app.access_token(&id, &secret, &[]).await;
    let (s, _) = app
        .admin_call(reqwest::Method::DELETE, &format!("/clients/{id}"), None)
        .await;
    assert_eq!(s, 204);
    assert_error(
        app.token(&id, &secret, &[]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    // Issued tokens are not revoked by disabling: they expire on their own (or are revoked explicitly).
    assert!(!token.is_empty());
});

both_engines!(issuing_tokens_writes_nothing_to_the_database, |app| {
    let (id, secret) = app.api_client().await;
    let counts = || async {
        let mut out = Vec::new();
        for table in [
            "clients",
            "client_secrets",
            "resources",
            "signing_keys",
            "revoked_tokens",
            "audit_log",
            "changes",
            "meta",
        ] {
            out.push(app.app.store.count_rows(table).await.unwrap());
        }
        out
    };
    let before = counts().await;
    for _ in 0..20 {
        app.access_token(&id, &secret, &[]).await;
    }
    assert_eq!(before, counts().await);
});

#[tokio::test]
async fn alternative_signing_algorithms() {
    let app = TestApp::sqlite().await;
    for alg in ["RS256", "EdDSA"] {
        let ident = format!("api-{alg}");
        let (s, b) = app.admin_call(reqwest::Method::POST, "/resources", Some(json!({"identifier": ident, "name": alg, "scopes": ["read"], "signing_alg": alg, "access_token_ttl": "24m"}))).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let (id, secret) = app
            .client(json!({"name": alg, "resources": [ident], "scopes": ["read"]}))
            .await;
        let r = app.token(&id, &secret, &[]).await;
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["expires_in"], 1_440);
        let token = body["access_token"].as_str().unwrap();
        let header = jsonwebtoken::decode_header(token).unwrap();
        app.verify_jwt(token, &ident).await;
        assert_eq!(format!("{:?}", header.alg), alg);
        // Introspection verifies every algorithm too.
        let r = app
            .post_form(
                "/oauth2/introspect",
                Some((&id, &secret)),
                &[("token", token)],
            )
            .await;
        assert_eq!(r.json::<Value>().await.unwrap()["active"], true);
    }
}

both_engines!(
    last_used_is_written_at_most_once_an_hour_per_secret,
    |app| {
        let (id, secret) = app.api_client().await;
        let last_used = async |app: &TestApp, id: &str| {
            let (_, body) = app
                .admin_call(
                    reqwest::Method::GET,
                    &format!("/clients/{id}/secrets"),
                    None,
                )
                .await;
            body["items"][0]["last_used_at"].as_i64()
        };
        assert_eq!(last_used(&app, &id).await, None);
        let first = app.clock.now();
        for _ in 0..3 {
            app.access_token(&id, &secret, &[]).await;
        }
        keyward::housekeeping::flush_last_used(&app.app, usize::MAX)
            .await
            .unwrap();
        assert_eq!(last_used(&app, &id).await, Some(first));

        // Uses within the hour are not written again: the token path stays write-free.
        app.clock.advance(600);
        app.access_token(&id, &secret, &[]).await;
        keyward::housekeeping::flush_last_used(&app.app, usize::MAX)
            .await
            .unwrap();
        assert_eq!(last_used(&app, &id).await, Some(first));

        app.clock.advance(3_000);
        app.access_token(&id, &secret, &[]).await;
        keyward::housekeeping::flush_last_used(&app.app, usize::MAX)
            .await
            .unwrap();
        assert_eq!(last_used(&app, &id).await, Some(first + 3_600));

        // The server's own housekeeping writes them too, within seconds (paced, a thousand a second at most).
        let mut others = Vec::new();
        for name in ["a", "b", "c"] {
            let spec = json!({"name": name, "resources": ["https://api.example.com"]});
            others.push(app.client(spec).await);
        }
        for (id, secret) in &others {
            app.access_token(id, secret, &[]).await;
        }
        let now = app.clock.now();
        for attempt in 0.. {
            let mut written = 0;
            for (id, _) in &others {
                written += usize::from(last_used(&app, id).await == Some(now));
            }
            if written == others.len() {
                break;
            }
            assert!(attempt < 50, "last-used times not written after 5 s");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
);

both_engines!(
    until_every_client_is_in_memory_clients_are_read_from_the_store,
    |app| {
        let (id, secret) = app.api_client().await;
        let twin = app.unserved_twin().await;
        assert!(!twin.memory.registry.is_loaded());
        let creds = |id: &str, secret: &str| keyward::registry::Credentials {
            client_id: id.into(),
            proof: secret.into(),
            method: keyward_core::client::AuthMethod::ClientSecretBasic,
        };
        let here = keyward::limits::Source::new(std::net::Ipv4Addr::LOCALHOST.into());
        let token = keyward::config::Endpoint::Token;
        let found = twin
            .issuer
            .authenticate(Some(&creds(&id, &secret)), &here, token)
            .await;
        assert_eq!(found.map(|c| c.client.id.clone()).ok(), Some(id.clone()));
        for (who, secret) in [
            (id.as_str(), "kw_sk_wrong"),
            ("no-such-client", secret.as_str()),
        ] {
            let refused = twin
                .issuer
                .authenticate(Some(&creds(who, secret)), &here, token)
                .await;
            assert!(
                matches!(&refused, Err(keyward::service::issuer::IssueError::OAuth(e)) if e.code.as_str() == "invalid_client"),
                "{who}: {refused:?}"
            );
        }
        // The served app loads every client in the background and says so.
        let start = std::time::Instant::now();
        loop {
            let ready: Value = app.get_json(&app.url("/readyz")).await;
            if ready["clients"] == "in memory" {
                break;
            }
            assert_eq!(ready["clients"], "loading");
            assert!(
                start.elapsed() < std::time::Duration::from_secs(5),
                "{ready}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
);
