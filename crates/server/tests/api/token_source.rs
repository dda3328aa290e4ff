//! The integrator's side against the real server: `keyward_client::TokenSource` speaking each seed's dialect to
//! its example deployment, one token request for a thousand callers, a refresh ahead of expiry, `Retry-After`
//! honoured while the held token is still handed out, a refusal reported at once and not retried, a bounded
//! wait on an unreachable server, and `AttachTokenLayer` retrying once when an API refuses a revoked token.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use keyward_client::source::{Accept, WalleyEnvironment, WllEnvironment, WllRegion};
use keyward_client::{AttachTokenLayer, Preset, Secret, TokenError, TokenSource, Verifier};
use serde_json::json;
use tower::{Layer, Service, ServiceExt};

use crate::harness::{Engine, TestApp};
use crate::observability::{get, metrics_of};

const API: &str = "https://api.example.com";

fn issued(client: &str) -> String {
    format!("keyward_tokens_issued_total{{client=\"{client}\",grant=\"client_credentials\"}}")
}

/// Each seed's token request, spoken by its preset to the seed's example deployment; the token is checked as
/// the seed's API would (signature, `iss`, `aud`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_seed_dialect_gets_a_token_through_its_preset() {
    let cases = [
        (
            "walley",
            Preset::Walley {
                environment: WalleyEnvironment::Uat,
            },
            "705798e0-8cef-427c-ae00-6023deba29af",
        ),
        (
            "wll",
            Preset::Wll {
                region: WllRegion::Eu,
                environment: WllEnvironment::Staging,
            },
            "staging.wlloyalty.net",
        ),
        (
            "walmart-marketplace",
            Preset::WalmartMarketplace {
                market: "us".into(),
            },
            "https://marketplace.walmartapis.com",
        ),
        (
            "walmart-orders-hub",
            Preset::OrdersHub,
            "https://developer.api.walmart.com/api-proxy/service/orders-hub",
        ),
        (
            "walmart-1p-supplier",
            Preset::Supplier1P,
            "https://api-gateway.walmart.com/1p-supplier",
        ),
    ];
    for (example, preset, audience) in cases {
        let app = TestApp::example(example, Engine::Sqlite).await;
        let (id, secret) = app.client(json!({"name": example})).await;
        let source = TokenSource::preset(&preset, Some(&app.base), &id, Secret::new(&secret))
            .unwrap()
            .build()
            .unwrap();
        let token = source
            .token()
            .await
            .unwrap_or_else(|e| panic!("{example}: {e}"));
        assert_eq!(token.token_type(), "Bearer");
        let claims = app.verify_jwt(token.secret(), audience).await;
        assert_eq!(claims["sub"], id.as_str(), "{example}");
        assert!(
            token.expires_in() > Duration::from_secs(800),
            "{example}: {token:?}"
        );
        // Walmart's APIs take the token in WM_SEC.ACCESS_TOKEN; the others in Authorization: Bearer.
        let walmart = example.starts_with("walmart-") && example != "walmart-orders-hub";
        assert_eq!(source.api_header().is_some(), walmart, "{example}");

        if example == "walmart-marketplace" {
            // The same request answered in Walmart's XML.
            let xml = TokenSource::preset(&preset, Some(&app.base), &id, Secret::new(&secret))
                .unwrap()
                .accept(Accept::Xml)
                .build()
                .unwrap();
            let t = xml.token().await.unwrap();
            app.verify_jwt(t.secret(), audience).await;
            // A market that is not one of the configured four is refused, and said so.
            let bad = TokenSource::preset(
                &Preset::WalmartMarketplace {
                    market: "zz".into(),
                },
                Some(&app.base),
                &id,
                Secret::new(&secret),
            )
            .unwrap()
            .build()
            .unwrap();
            let e = bad.token().await.unwrap_err();
            assert!(
                matches!(e, TokenError::Refused { status: 400, .. }),
                "{e:?}"
            );
        }
    }
}

/// Single flight: a thousand callers with no token cause one token request, as Keyward's own count shows; later
/// callers are served from memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_callers_cause_one_token_request() {
    let app = TestApp::sqlite().await;
    let (id, secret) = app.api_client().await;
    let scrape = metrics_of(&app).await;
    let source = TokenSource::builder(app.url("/oauth2/token"), &id, Secret::new(&secret))
        .audience(API)
        .build()
        .unwrap();
    let callers: Vec<_> = (0..1_000)
        .map(|_| {
            let s = source.clone();
            tokio::spawn(async move { s.token().await.map(|t| t.secret().to_owned()) })
        })
        .collect();
    let mut tokens = std::collections::HashSet::new();
    for c in callers {
        tokens.insert(c.await.unwrap().unwrap());
    }
    assert_eq!(tokens.len(), 1);
    for _ in 0..1_000 {
        source.token().await.unwrap();
    }
    assert_eq!(get(&scrape().await, &issued(&id)), 1.0);
    let status = source.status();
    assert_eq!((status.fetched, status.failures), (1, 0));
    assert!(status.served >= 2_000, "{status:?}");
}

/// A 3-second token is replaced in the background once three quarters of its life have passed: callers never
/// get a token past its end, and never wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_replaced_before_it_expires() {
    let app = TestApp::sqlite().await;
    let (status, body) = app
        .admin_call(
            reqwest::Method::POST,
            "/resources",
            Some(json!({"identifier": API, "name": "short", "access_token_ttl": "3s"})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    let (id, secret) = app
        .client(json!({"name": "shop", "resources": [API]}))
        .await;
    let source = TokenSource::builder(app.url("/oauth2/token"), &id, Secret::new(&secret))
        .audience(API)
        .build()
        .unwrap();
    let first = source.token().await.unwrap();
    assert!(first.expires_in() <= Duration::from_secs(3));
    let mut seen = vec![first.secret().to_owned()];
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(7) {
        let asked = std::time::Instant::now();
        let t = source.token().await.unwrap();
        assert!(
            asked.elapsed() < Duration::from_millis(500),
            "a caller waited"
        );
        assert!(t.expires_in() > Duration::ZERO);
        if seen.last() != Some(&t.secret().to_owned()) {
            seen.push(t.secret().to_owned());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 7 s of 3-second tokens refreshed every 2.25 s: three or four tokens, each one seen.
    assert!((3..=4).contains(&seen.len()), "{}", seen.len());
}

/// `Retry-After` on 429: the client may have one token a minute, so the background refresh is refused; the held
/// token is still handed out while it is usable, and no request is sent again before the server's time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_and_the_held_token_kept() {
    let app = TestApp::sqlite().await;
    app.admin_call(
        reqwest::Method::POST,
        "/resources",
        Some(json!({"identifier": API, "name": "short", "access_token_ttl": "4s"})),
    )
    .await;
    let (id, secret) = app
        .client(json!({"name": "shop", "resources": [API], "limits": {"token": "1/min"}}))
        .await;
    let scrape = metrics_of(&app).await;
    let source = TokenSource::builder(app.url("/oauth2/token"), &id, Secret::new(&secret))
        .audience(API)
        .refresh_share(0.5)
        .max_wait(Duration::from_secs(1))
        .build()
        .unwrap();
    let first = source.token().await.unwrap();
    // The refresh at 2 s is refused with Retry-After ≈ 58 s; until 3.6 s the held token is handed out.
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    assert_eq!(source.token().await.unwrap().secret(), first.secret());
    let status = source.status();
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("429")),
        "{status:?}"
    );
    // Past its end, callers are told why within their bound; still no second try.
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    match source.token().await {
        Err(TokenError::Unavailable { last, .. }) => assert!(last.contains("429"), "{last}"),
        other => panic!("{other:?}"),
    }
    let samples = scrape().await;
    let limited = "keyward_requests_total{endpoint=\"token\",grant=\"client_credentials\",outcome=\"rate_limited\"}";
    assert_eq!(
        get(&samples, limited),
        1.0,
        "one refused refresh, not retried before Retry-After"
    );
    assert_eq!(get(&samples, &issued(&id)), 1.0);
}

/// A wrong secret: `invalid_client` at once, not a retry loop; the second caller gets the same answer without a
/// request. New credentials are used at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_is_reported_at_once_and_not_retried() {
    let app = TestApp::sqlite().await;
    let (id, secret) = app.api_client().await;
    let scrape = metrics_of(&app).await;
    let source = TokenSource::builder(app.url("/oauth2/token"), &id, Secret::new("wrong"))
        .audience(API)
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let e = source.token().await.unwrap_err();
    assert!(e.is_client_refused(), "{e:?}");
    assert!(e.to_string().contains("invalid_client"), "{e}");
    assert_eq!(source.token().await.unwrap_err(), e);
    assert!(started.elapsed() < Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = "keyward_requests_total{endpoint=\"token\",grant=\"client_credentials\",outcome=\"invalid_client\"}";
    assert_eq!(get(&scrape().await, refused), 1.0);
    // The secret is not in the error or the source's Debug.
    assert!(!format!("{source:?} {e:?}").contains(&secret));

    source.set_credentials(&id, Secret::new(&secret));
    let t = source.token().await.unwrap();
    app.verify_jwt(t.secret(), API).await;
}

/// Nothing listening: callers wait at most their bound and hear why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_costs_a_caller_at_most_its_bound() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/oauth2/token", closed.local_addr().unwrap());
    drop(closed);
    let source = TokenSource::builder(url, "id", Secret::new("s"))
        .max_wait(Duration::from_millis(1_500))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let e = source.token().await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1_400) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    match e {
        TokenError::Unavailable { last, .. } => {
            assert!(last.to_lowercase().contains("connect"), "{last}")
        }
        other => panic!("{other:?}"),
    }
    assert!(source.status().failures >= 1);
}

/// The outgoing layer: the API (introspecting every token) answers 401 `invalid_token` once the held token is
/// revoked; the layer drops that token, gets a new one and sends the request again, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_adds_the_token_and_retries_once_after_invalid_token() {
    let app = TestApp::sqlite().await;
    let (id, secret) = app.api_client().await;
    let (api_id, api_secret) = app
        .client(json!({"name": "the API", "resources": [], "serves_resources": [API]}))
        .await;
    let verifier = Verifier::builder(app.app.settings.issuer.clone())
        .audience(API)
        .introspection(api_id, api_secret, Duration::ZERO)
        .build()
        .unwrap();
    let api = crate::verify::serve(
        axum::Router::new().route(
            "/orders",
            axum::routing::post(
                |keyward_client::Verified(c): keyward_client::Verified| async move { c.client_id },
            )
            .layer(verifier.layer().introspect()),
        ),
    )
    .await;
    let scrape = metrics_of(&app).await;
    let source = TokenSource::builder(app.url("/oauth2/token"), &id, Secret::new(&secret))
        .audience(API)
        .build()
        .unwrap();
    let http: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut service = AttachTokenLayer::new(source.clone()).unwrap().layer(http);
    let call = || {
        hyper::Request::post(format!("{api}/orders"))
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    };
    let r = service.ready().await.unwrap().call(call()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.into_body().collect().await.unwrap().to_bytes(),
        id.as_bytes()
    );

    let held = source.token().await.unwrap();
    app.revoke(&id, &secret, held.secret()).await;
    let r = service.ready().await.unwrap().call(call()).await.unwrap();
    assert_eq!(r.status(), 200, "retried with a fresh token");
    assert_ne!(source.token().await.unwrap().secret(), held.secret());
    assert_eq!(get(&scrape().await, &issued(&id)), 2.0);
}

/// A token endpoint of the test's own that misbehaves as a third-party server might: an `expires_in` of 2^63
/// seconds, then (for an API that refuses every token) nothing wrong at all. Counts its requests.
async fn odd_token_endpoint() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    let base = crate::verify::serve(axum::Router::new().route(
        "/token",
        axum::routing::post(move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                // Raw text: 2^63 does not fit the i64 a JSON library would write, and a server may still send it.
                (
                    [("content-type", "application/json")],
                    format!(
                        r#"{{"access_token":"t{n}","token_type":"Bearer","expires_in":9223372036854775808}}"#
                    ),
                )
            }
        }),
    ))
    .await;
    (format!("{base}/token"), count)
}

/// Neither an absurd `expires_in` nor an API that refuses every token makes the source spin or fail: the first
/// is read as a long life (and the task keeps running), the second costs a few token requests, not one per call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_servers_and_refusing_apis_cannot_make_it_spin() {
    use std::sync::atomic::Ordering;
    let (url, count) = odd_token_endpoint().await;
    let source = TokenSource::builder(url, "id", Secret::new("s"))
        .build()
        .unwrap();
    let t = source.token().await.unwrap();
    assert!(t.expires_in() > Duration::from_secs(365 * 86_400), "{t:?}");
    assert_eq!(source.token().await.unwrap().secret(), t.secret());
    assert_eq!(count.load(Ordering::SeqCst), 1);

    // An API that answers 401 to every token, called in a loop for 3 s: three fresh tokens are replaced at once,
    // then each waits a growing backoff; callers are never kept waiting.
    let started = std::time::Instant::now();
    let mut calls = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let asked = std::time::Instant::now();
        let t = source.token().await.unwrap();
        assert!(asked.elapsed() < Duration::from_secs(1));
        source.reject(&t);
        calls += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let requests = count.load(Ordering::SeqCst);
    assert!(calls > 100, "{calls}");
    assert!(
        (4..=8).contains(&requests),
        "{requests} token requests for {calls} refused calls"
    );
}
