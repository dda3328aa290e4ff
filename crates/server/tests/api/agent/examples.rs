//! One agent in front of the five seed examples at once, each a real Keyward speaking its service's dialect: every
//! API's token in token mode (its `iss` and `aud` checked), Walley's API called through proxy mode behind
//! `keyward gateway` and examples/orders-api, 10,000 token-mode requests costing Keyward one token, and the
//! requests token mode and proxy mode refuse.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use super::{Admin, agent, claims, example, http, keyward_soon, metric, metrics_addr, token_mode};
use crate::child::Served;
use crate::verify::UAT;

/// Per example: the agent's name for it, its resource (the tokens' `aud`), and its `[api.NAME]` lines after the
/// preset (`{base}` is the Keyward's URL).
const EXAMPLES: [(&str, &str, &str, &str); 5] = [
    (
        "walley",
        "walley",
        UAT,
        "preset = \"walley\"\nenvironment = \"uat\"\nbase_url = \"{base}\"\n",
    ),
    (
        "wll",
        "wll",
        "staging.wlloyalty.net",
        "preset = \"wll\"\nenvironment = \"staging\"\ntoken_url = \"{base}/oauth/token\"\n",
    ),
    (
        "walmart-marketplace",
        "marketplace",
        "https://marketplace.walmartapis.com",
        "preset = \"walmart-marketplace\"\nmarket = \"us\"\nbase_url = \"{base}\"\n",
    ),
    (
        "walmart-orders-hub",
        "orders-hub",
        "https://developer.api.walmart.com/api-proxy/service/orders-hub",
        "preset = \"walmart-orders-hub\"\nbase_url = \"{base}\"\n",
    ),
    (
        "walmart-1p-supplier",
        "supplier",
        "https://api-gateway.walmart.com/1p-supplier",
        "preset = \"walmart-1p-supplier\"\nbase_url = \"{base}\"\n",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agent_for_the_five_examples() {
    let began = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    // The five Keywards start at once, beside the API.
    let starting: Vec<_> = EXAMPLES
        .iter()
        .map(|(file, ..)| keyward_soon(dir.path().join(file), Some(example(file))))
        .collect();
    let orders_api = crate::verify::serve(orders_api::plain()).await;
    let mut servers = Vec::new();
    for s in starting {
        servers.push(s.await.unwrap());
    }

    // The gateway in front of orders-api, for Walley's UAT tokens.
    let gateway_file = dir.path().join("gateway.toml");
    std::fs::write(
        &gateway_file,
        format!(
            "upstream = \"{orders_api}\"\nissuer = \"{}\"\naudience = \"{UAT}\"\n\
             [[route]]\nmethods = [\"GET\"]\npath = \"/manage/orders/{{id}}\"\n",
            servers[0].base
        ),
    )
    .unwrap();
    let gateway = tokio::task::spawn_blocking(move || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
        command
            .args(["gateway", "--listen", "127.0.0.1:0", "--config"])
            .arg(&gateway_file);
        Served::spawn(command, "keyward gateway is serving")
    });

    // A client per example, as its document describes; the agent reads the secrets three ways.
    let mut config = String::new();
    let mut env = Vec::new();
    let mut ids = Vec::new();
    for (i, ((_, name, resource, lines), served)) in EXAMPLES.iter().zip(&servers).enumerate() {
        let admin = Admin::of(served).await;
        let (id, secret) = admin.client(resource, serde_json::json!({})).await;
        config.push_str(&format!(
            "[api.{name}]\n{}",
            lines.replace("{base}", &served.base)
        ));
        config.push_str(&format!("client_id = \"{id}\"\n"));
        match i % 3 {
            0 => {
                let var = format!("SECRET_{i}");
                config.push_str(&format!("client_secret_env = \"{var}\"\n"));
                env.push((var, secret));
            }
            1 => {
                let file = dir.path().join(format!("{name}.secret"));
                std::fs::write(&file, format!("{secret}\n")).unwrap();
                config.push_str(&format!("client_secret_file = \"{}\"\n", file.display()));
            }
            _ => config.push_str(&format!("client_secret = \"{secret}\"\n")),
        }
        ids.push(id);
    }
    let gateway = gateway.await.unwrap();
    config = config.replacen(
        "[api.walley]\n",
        &format!("[api.walley]\napi_url = \"{}\"\n", gateway.base),
        1,
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut agent = agent(dir.path(), &config, &env);
    let agent_metrics = metrics_addr(&mut agent, "metrics_listen=");
    let http = http();
    eprintln!("agent test: everything started after {:?}", began.elapsed());

    // Token mode: each API's token, from its own Keyward, for its own audience.
    for ((_, name, resource, _), served) in EXAMPLES.iter().zip(&servers) {
        let r = token_mode(&http, &agent, name).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{name}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer", "{body}");
        let expires_in = body["expires_in"].as_u64().unwrap();
        assert!((800..=86_400).contains(&expires_in), "{name}: {body}");
        let c = claims(body["access_token"].as_str().unwrap());
        assert_eq!(c["iss"], served.base.as_str(), "{name}: {c}");
        assert_eq!(c["aud"], *resource, "{name}: {c}");
    }
    let r = http
        .get(format!("http://{agent_metrics}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "every API holds a token");

    // Proxy mode: Walley's API through the gateway, with the token the agent holds (the app's own header replaced).
    let r = http
        .get(agent.url("/walley/manage/orders/42"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let order: Value = r.json().await.unwrap();
    assert_eq!(order["orderId"], "42", "{order}");
    assert_eq!(
        order["seen"]["x-keyward-client-id"],
        ids[0].as_str(),
        "{order}"
    );
    let r = http.get(agent.url("/wll/anything")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "no_api_url");
    // Sent byte for byte: an HTTP client would resolve the dots itself.
    for path in ["/walley/manage/../orders/42", "/walley/%2e%2e/x"] {
        assert_eq!(
            raw_status(agent.addr(), path).await,
            400,
            "{path} could leave api_url"
        );
    }

    refusals(&http, &agent).await;

    // 10,000 token-mode requests, 50 at a time, within the token's lifetime: Keyward issued one token.
    let walley_metrics = metrics_addr(&mut servers[0], "serving Prometheus metrics");
    let issued = format!(
        "keyward_tokens_issued_total{{client=\"{}\",grant=\"client_credentials\"}}",
        ids[0]
    );
    assert_eq!(metric(&http, &walley_metrics, &issued).await, 1);
    let (first, _) = super::token_of(&http, &agent, "walley").await;
    let timed = Instant::now();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (http, url) = (http.clone(), agent.url("/v1/token/walley"));
            tokio::spawn(async move {
                let mut tokens = std::collections::HashSet::new();
                for _ in 0..200 {
                    tokens.insert(super::token_at(&http, &url).await.0);
                }
                tokens
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(
            t.await.unwrap(),
            std::collections::HashSet::from([first.clone()])
        );
    }
    eprintln!(
        "agent test: 10,000 token-mode requests in {:?}",
        timed.elapsed()
    );
    assert_eq!(
        metric(&http, &walley_metrics, &issued).await,
        1,
        "one token request"
    );
    let fetched = "keyward_agent_tokens_fetched_total{api=\"walley\"}";
    assert_eq!(metric(&http, &agent_metrics, fetched).await, 1);
    let served = "keyward_agent_tokens_served_total{api=\"walley\"}";
    assert!(metric(&http, &agent_metrics, served).await >= 10_000);
    assert!(
        metric(
            &http,
            &agent_metrics,
            "keyward_agent_token_expiry_seconds{api=\"walley\"}"
        )
        .await
            > 3_000
    );

    // No secret in the agent's log.
    for (_, secret) in &env {
        assert!(agent.log().iter().all(|l| !l.contains(secret)));
    }
    assert!(
        agent.log().iter().all(|l| !l.contains(&first)),
        "no token in the log"
    );
    eprintln!("agent test: the five examples took {:?}", began.elapsed());
}

/// Requests that were relayed, come from a page, lack `Metadata-Flavor` or name the agent by a DNS name are
/// refused; an unknown name is 404 and says which there are.
async fn refusals(http: &reqwest::Client, agent: &Served) {
    let refused = [
        ("x-forwarded-for", "203.0.113.7", "forwarded"),
        ("forwarded", "for=203.0.113.7", "forwarded"),
        ("host", "rebound.example:8931", "DNS rebinding"),
        ("origin", "https://evil.example", "web pages"),
        ("sec-fetch-site", "cross-site", "web pages"),
    ];
    for (header, value, why) in refused {
        for url in [
            agent.url("/v1/token/walley"),
            agent.url("/walley/manage/orders/42"),
        ] {
            let r = http
                .get(&url)
                .header("Metadata-Flavor", "Keyward")
                .header(header, value)
                .send()
                .await
                .unwrap();
            let body = super::refused(r, StatusCode::FORBIDDEN, why).await;
            assert_eq!(body["error"], "forbidden", "{url} {header}");
        }
    }
    let r = super::bare_http()
        .get(agent.url("/v1/token/walley"))
        .send()
        .await
        .unwrap();
    super::refused(r, StatusCode::FORBIDDEN, "Metadata-Flavor").await;
    let r = token_mode(http, agent, "stripe").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unknown_api");
    assert_eq!(
        body["error_description"],
        "no API named `stripe`; configured: marketplace, orders-hub, supplier, walley, wll"
    );
    let r = http
        .get(agent.url("/stripe/v1/charges"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = token_mode(http, agent, "walley")
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the same request without the refused header"
    );
}

/// Sends `GET path` byte for byte and returns the status code.
async fn raw_status(addr: &str, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nMetadata-Flavor: Keyward\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.split(' ').nth(1).unwrap().parse().unwrap()
}
