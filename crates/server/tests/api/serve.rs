//! `keyward serve --config examples/NAME.toml`, as a reader runs it: the real binary on each example, with its
//! log read from stderr.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;

use crate::child::Served;

/// `keyward serve --config examples/NAME.toml --listen 127.0.0.1:0`, on a data_dir that does not exist yet, as
/// on a fresh checkout.
fn serve_example(example: &str) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(format!("{example}.toml"));
    let data = dir.path().join("data").join(example);
    Served::serve(
        [std::ffi::OsStr::new("--config"), config.as_os_str()],
        [("KEYWARD_DATA_DIR", data)],
    )
    .keep(dir)
}

/// Sends a request and decodes its JSON body.
async fn json(req: reqwest::RequestBuilder) -> Value {
    let r = req.send().await.expect("request");
    r.json().await.expect("JSON body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_serves_its_interface() {
    let http = reqwest::Client::new();
    let examples = [
        ("walley", "/oauth2/v2.0/token", 2),
        ("wll", "/oauth/token", 3),
        ("wll-us", "/oauth/token", 3),
        ("walmart-marketplace", "/v3/token", 1),
        (
            "walmart-orders-hub",
            "/api-proxy/service/identity/oauth/v1/token",
            1,
        ),
        ("walmart-1p-supplier", "/v3/token", 1),
    ];
    for (example, path, declared) in examples {
        let mut served = serve_example(example);
        let (id, secret) = served.admin();
        // With port 0 and no issuer configured, the issuer names the bound port.
        let meta = json(http.get(format!(
            "{}/.well-known/oauth-authorization-server",
            served.base
        )))
        .await;
        assert_eq!(meta["issuer"], served.base.as_str(), "{example}");
        // The declared resources exist, next to the admin resource.
        let token = json(
            http.post(format!("{}/oauth2/token", served.base))
                .basic_auth(&id, Some(&secret))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await;
        let resources = json(
            http.get(format!("{}/admin/v1/resources", served.base))
                .bearer_auth(token["access_token"].as_str().unwrap()),
        )
        .await;
        assert_eq!(
            resources["items"].as_array().unwrap().len(),
            declared + 1,
            "{example}: {resources}"
        );
        // The alias path answers as a token endpoint: with no credentials, an OAuth error, never a 404.
        let r = http
            .post(format!("{}{path}", served.base))
            .header("WM_QOS.CORRELATION_ID", "corr-7f3a9c")
            .header("WM_SVC.NAME", "Walmart Marketplace")
            .header("WM_MARKET", "us")
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{example}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
        // Where a correlation header is configured, the request's log line carries its value.
        if example.starts_with("walmart-") && example != "walmart-orders-hub" {
            let line = served.wait_for("correlation_id=\"corr-7f3a9c\"");
            assert!(line.contains("status=401"), "{line}");
            assert!(line.contains(path), "{line}");
        }
    }
}

// `keyward gateway --config FILE`, as the README runs it, in front of orders-api.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_binary_protects_orders_api() {
    use crate::verify::{UAT, serve, walley_clients};
    let app = crate::harness::TestApp::sqlite().await;
    let [(id, secret), ..] = walley_clients(&app).await;
    let upstream = serve(orders_api::plain()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "upstream = \"{upstream}\"\nissuer = \"{}\"\naudience = \"{UAT}\"\n\
             [[route]]\nmethods = [\"GET\"]\npath = \"/manage/orders/{{id}}\"\nscopes = [\"orders:read\"]\n",
            app.app.settings.issuer
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
    command
        .args(["gateway", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"]);
    let mut gateway = Served::spawn(command, "keyward gateway is serving").keep(dir);
    let token = app.access_token(&id, &secret, &[]).await;
    let order = format!("{}/manage/orders/7", gateway.base);
    let body = json(app.http.get(&order).bearer_auth(&token)).await;
    assert_eq!(body["seen"]["x-keyward-client-id"], id.as_str());
    let r = app.http.get(&order).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    gateway.wait_for("status=401");
}

// `keyward serve --metrics-listen ADDR`: Prometheus metrics on a listener of their own, not on the public one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_their_own_listener() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = Served::serve(
        ["--metrics-listen", "127.0.0.1:0"],
        [("KEYWARD_DATA_DIR", dir.path())],
    );
    let line = served.wait_for("serving Prometheus metrics");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("metrics_listen="))
        .expect("metrics_listen= in the log line");
    let r = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    assert!(text.contains("keyward_database_up 1"), "{text}");
    assert!(
        text.contains("# TYPE keyward_purged_rows_total counter"),
        "{text}"
    );
    let public = reqwest::get(served.url("/metrics")).await.unwrap();
    assert_eq!(
        public.status(),
        StatusCode::NOT_FOUND,
        "not on the public listener"
    );
}
