//! What operators see: a scrape of `/metrics` that parses as Prometheus text and moves as requests are made
//! (bounded client labels included), one structured log line per request with its correlation id and never a
//! secret or a token, and an audit log kept under its retention setting.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::child::Served;
use crate::harness::{Engine, TestApp};

/// Samples of a Prometheus text exposition, keyed by `name{labels}` as written. Panics on any line that is not
/// a comment, a blank or `name{labels} value`, so a malformed exposition fails the test.
pub(crate) fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                comment.starts_with("HELP ") || comment.starts_with("TYPE "),
                "comment: {line}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("sample: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value: {line}")),
        };
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "name: {line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(
                    labels.starts_with('{') && labels.ends_with('}'),
                    "labels: {line}"
                );
                for pair in labels[1..labels.len() - 1].split("\",") {
                    let (k, v) = pair
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("label: {line}"));
                    assert!(!k.is_empty() && !v.contains('\n'), "label: {line}");
                }
            }
        }
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "twice: {line}"
        );
    }
    samples
}

/// Serves `app`'s metrics on a free port (as `--metrics-listen` does) and returns a scraper.
pub(crate) async fn metrics_of(
    app: &TestApp,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = HashMap<String, f64>>>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    let router = keyward::http::metrics_router(app.app.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    move || {
        let url = url.clone();
        Box::pin(async move {
            let r = reqwest::get(&url).await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            parse(&r.text().await.unwrap())
        })
    }
}

pub(crate) fn get(samples: &HashMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_parses_and_moves_as_requests_are_made() {
    let app = TestApp::with_env(Engine::Sqlite, &[("KEYWARD_METRICS_CLIENT_LABELS", "2")]).await;
    let scrape = metrics_of(&app).await;
    let (id, secret) = app.api_client().await;
    let before = scrape().await;
    let ok =
        "keyward_requests_total{endpoint=\"token\",grant=\"client_credentials\",outcome=\"ok\"}";
    let bad = "keyward_requests_total{endpoint=\"token\",grant=\"client_credentials\",outcome=\"invalid_client\"}";
    let count = "keyward_request_duration_seconds_count{endpoint=\"token\"}";
    let mine =
        format!("keyward_tokens_issued_total{{client=\"{id}\",grant=\"client_credentials\"}}");
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(app.access_token(&id, &secret, &[]).await);
    }
    assert_eq!(
        app.token(&id, "kw_sk_wrong", &[]).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .post_form(
            "/oauth2/introspect",
            Some((&id, &secret)),
            &[("token", &tokens[0])],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let after = scrape().await;
    assert_eq!(get(&after, ok) - get(&before, ok), 3.0);
    assert_eq!(get(&after, bad) - get(&before, bad), 1.0);
    assert_eq!(get(&after, count) - get(&before, count), 4.0);
    assert_eq!(get(&after, &mine), 3.0, "{mine}");
    let introspected =
        "keyward_requests_total{endpoint=\"introspect\",grant=\"none\",outcome=\"ok\"}";
    assert_eq!(get(&after, introspected), 1.0);
    // A histogram: buckets up to +Inf, which holds every request.
    let inf = "keyward_request_duration_seconds_bucket{endpoint=\"token\",le=\"+Inf\"}";
    assert_eq!(get(&after, inf), get(&after, count));
    // Gauges read at scrape time.
    assert!(after.contains_key("keyward_db_pool_connections{state=\"idle\"}"));
    assert!(get(&after, "keyward_signing_key_age_seconds{alg=\"ES256\"}") >= 0.0);
    assert!(after.contains_key("keyward_signing_key_age_seconds{alg=\"ES256\"}"));
    assert_eq!(get(&after, "keyward_signing_keys{state=\"active\"}"), 3.0);
    // Four lookups, from memory once the feed has brought the new client (under load it may not have yet).
    let lookups = get(&after, "keyward_client_lookups_total{result=\"memory\"}")
        + get(&after, "keyward_client_lookups_total{result=\"database\"}");
    assert!(lookups >= 4.0, "{lookups}");
    assert!(after.contains_key("keyward_rate_limited_total{limit=\"token_client\"}"));
    // Two client labels: the admin client's and this client's; a third client counts as _other.
    let (other, other_secret) = app
        .client(
            json!({"name": "third", "resources": ["https://api.example.com"], "scopes": ["read"]}),
        )
        .await;
    app.access_token(&other, &other_secret, &[]).await;
    let last = scrape().await;
    assert!(
        !last.keys().any(|k| k.contains(&other)),
        "{other} has a label"
    );
    assert!(
        get(
            &last,
            "keyward_tokens_issued_total{client=\"_other\",grant=\"client_credentials\"}"
        ) >= 1.0
    );
    let labelled: std::collections::HashSet<&str> = last
        .keys()
        .filter(|k| k.starts_with("keyward_tokens_issued_total{"))
        .filter_map(|k| k.split("client=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(labelled.len(), 3, "{labelled:?}");
    // A refusal by a limit is counted by limit.
    for _ in 0..21 {
        app.token("nobody", "kw_sk_guess", &[]).await;
    }
    let limited = scrape().await;
    assert!(
        get(
            &limited,
            "keyward_rate_limited_total{limit=\"failed_auth_address\"}"
        ) >= 1.0
    );
}

// `keyward serve` with `log_format = "json"`: one JSON line per request with method, path, status, latency,
// client id and correlation id; no secret and no token anywhere in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_one_json_line_per_request_and_never_hold_a_secret_or_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = Served::serve(
        std::iter::empty::<&str>(),
        [
            ("KEYWARD_DATA_DIR", dir.path().to_str().unwrap()),
            ("KEYWARD_LOG_FORMAT", "json"),
            ("KEYWARD_LOG_LEVEL", "debug,sqlx=warn,hyper=warn"),
        ],
    );
    let (admin_id, admin_secret) = served.admin();
    let http = reqwest::Client::new();
    let token_of = |id: &str, secret: &str, correlation: Option<&str>| {
        let mut req = http
            .post(served.url("/oauth2/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")]);
        if let Some(c) = correlation {
            req = req.header("X-Correlation-ID", c);
        }
        req.send()
    };
    let r = token_of(&admin_id, &admin_secret, Some("corr-42"))
        .await
        .unwrap();
    assert_eq!(r.headers()["x-correlation-id"], "corr-42");
    let admin_token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A client made through the admin API, its secret used, a wrong one tried, its token introspected and revoked.
    let call = |method: Method, path: &str, body: Value| {
        http.request(method, served.url(&format!("/admin/v1{path}")))
            .bearer_auth(&admin_token)
            .json(&body)
            .send()
    };
    call(
        Method::POST,
        "/resources",
        json!({"identifier": "https://api.example.com", "name": "API", "scopes": ["read"]}),
    )
    .await
    .unwrap();
    let made: Value = call(
        Method::POST,
        "/clients",
        json!({"name": "shop", "resources": ["https://api.example.com"], "scopes": ["read"]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let (id, secret) = (
        made["client_id"].as_str().unwrap().to_owned(),
        made["client_secret"].as_str().unwrap().to_owned(),
    );
    let r = token_of(&id, &secret, None).await.unwrap();
    let generated = r.headers()["x-correlation-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 24, "{generated}");
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong = "kw_sk_this_is_a_wrong_secret_0123456789";
    assert_eq!(
        token_of(&id, wrong, None).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    for path in ["/oauth2/introspect", "/oauth2/revoke"] {
        let r = http
            .post(served.url(path))
            .basic_auth(&id, Some(&secret))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    // The revoke is the last request: wait for its line.
    served.wait_for("/oauth2/revoke");
    let log = served.log();
    let mut requests = Vec::new();
    // The first-start block, between two rules, shows the admin secret once by design (docs/SECURITY.md); it is
    // the one thing on stderr that is not a log line.
    let mut in_first_start = false;
    for line in &log {
        if !line.is_empty() && line.chars().all(|c| c == '=') {
            in_first_start = !in_first_start;
            continue;
        }
        if in_first_start {
            continue;
        }
        for needle in [admin_secret.as_str(), &secret, wrong, &admin_token, &token] {
            assert!(
                !line.contains(needle),
                "a secret or token in the log: {line}"
            );
        }
        if line.is_empty() {
            continue;
        }
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if entry["fields"]["message"] == "request" {
            requests.push(entry["fields"].clone());
        }
    }
    assert_eq!(requests.len(), 7, "{requests:#?}");
    for r in &requests {
        for field in [
            "method",
            "path",
            "status",
            "latency_ms",
            "client_id",
            "correlation_id",
        ] {
            assert!(!r[field].is_null(), "{field} missing: {r}");
        }
    }
    let first = &requests[0];
    assert_eq!(first["correlation_id"], "corr-42", "{first}");
    assert_eq!(first["client_id"], admin_id.as_str());
    assert_eq!(first["status"], 200);
    let failed = requests.iter().find(|r| r["status"] == 401).unwrap();
    assert_eq!(failed["client_id"], "", "no client authenticated: {failed}");
    let generated_line = requests
        .iter()
        .find(|r| r["correlation_id"] == generated.as_str())
        .unwrap();
    assert_eq!(generated_line["client_id"], id.as_str());
}

// Audit entries are listed newest first with paging, and dropped by the purge once older than `audit_retention`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_pages_and_is_kept_under_its_retention() {
    let app = TestApp::with_env(Engine::Sqlite, &[("KEYWARD_AUDIT_RETENTION", "2d")]).await;
    let (id, _) = app.api_client().await;
    app.admin_call(Method::POST, &format!("/clients/{id}/disable"), None)
        .await;
    let (status, page) = app.admin_call(Method::GET, "/audit?limit=2", None).await;
    assert_eq!(status, StatusCode::OK);
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["action"], "client.update");
    assert_eq!(items[0]["target"], id.as_str());
    assert_eq!(items[0]["actor"], format!("client:{}", app.admin.client_id));
    assert_eq!(items[0]["source"], "127.0.0.1");
    let before = page["next_before"].as_i64().unwrap();
    let (_, next) = app
        .admin_call(
            Method::GET,
            &format!("/audit?limit=2&before={before}"),
            None,
        )
        .await;
    let older = next["items"].as_array().unwrap();
    assert!(!older.is_empty());
    assert!(older.iter().all(|e| e["id"].as_i64().unwrap() < before));
    // Three days on, a new change is kept and everything older than two days is purged.
    app.clock.advance(3 * 86_400);
    app.admin_call(Method::POST, &format!("/clients/{id}/enable"), None)
        .await;
    keyward::housekeeping::purge(&app.app).await;
    let (_, all) = app.admin_call(Method::GET, "/audit", None).await;
    let actions: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["client.update"]);
}
