//! The load generator: `connections` keep-alive HTTP/1.1 connections, each sending one request after another for
//! a fixed time, recording every latency. Built on hyper, in this process, against 127.0.0.1 only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// One request, sent again and again.
#[derive(Clone)]
pub(crate) struct Shot {
    pub(crate) method: &'static str,
    pub(crate) url: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

impl Shot {
    pub(crate) fn get(url: impl Into<String>) -> Self {
        Shot {
            method: "GET",
            url: url.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub(crate) fn post_form(url: impl Into<String>, body: &str) -> Self {
        Shot {
            method: "POST",
            url: url.into(),
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// What a run measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Measured {
    pub(crate) rps: f64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) errors: u64,
}

/// Sends requests from `shots` (each connection takes them in turn, starting at its own offset) for `seconds`.
/// A request counts as an error unless it answers 200.
pub(crate) async fn run(shots: Arc<Vec<Shot>>, connections: usize, seconds: f64) -> Measured {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let http: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(connections)
        .build(connector);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let (http, shots) = (http.clone(), shots.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(65_536);
            let mut errors = 0u64;
            let mut i = c;
            while Instant::now() < deadline {
                let shot = &shots[i % shots.len()];
                i += 1;
                let mut req = Request::builder().method(shot.method).uri(&shot.url);
                for (k, v) in &shot.headers {
                    req = req.header(k, v);
                }
                let Ok(req) = req.body(Full::new(shot.body.clone())) else {
                    errors += 1;
                    continue;
                };
                let sent = Instant::now();
                let ok = match http.request(req).await {
                    Ok(resp) => {
                        let status = resp.status();
                        resp.into_body().collect().await.is_ok() && status == 200
                    }
                    Err(_) => false,
                };
                if ok {
                    latencies.push(sent.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Measured {
        rps: all.len() as f64 / elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
        errors,
    }
}
