//! The load generator: `connections` keep-alive HTTP/1.1 connections, each sending one request after another for
//! a fixed time, recording every latency. Built on hyper's connection API, in this process, against 127.0.0.1 only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

/// One request, sent again and again.
#[derive(Clone)]
pub(crate) struct Shot {
    pub(crate) method: &'static str,
    pub(crate) url: String,
    pub(crate) host: String,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
    /// When not empty, each request carries one of these `Authorization` values, picked uniformly at random.
    pub(crate) auth_spread: Arc<Vec<String>>,
    /// A value each request uses once (a signed assertion or DPoP proof), taken from a pool filled beforehand.
    pub(crate) one_use: Option<Arc<OneUse>>,
}

/// Where a one-use value goes in its request.
pub(crate) enum Place {
    /// The value of this header.
    Header(&'static str),
    /// Appended to the shot's body (a form field's value, the field's name ending the body).
    Body,
}

/// Values that each go into one request only (an assertion or a proof with its own `jti`), signed before the
/// slice that sends them by `refill`, so the load generator's signing stays outside the measured time. A request
/// that finds the pool empty signs its own value then and there, and is counted in `late`.
pub(crate) struct OneUse {
    place: Place,
    make: Box<dyn Fn() -> String + Send + Sync>,
    pool: Mutex<Vec<String>>,
    taken: AtomicU64,
    late: AtomicU64,
}

impl OneUse {
    pub(crate) fn new(
        place: Place,
        make: impl Fn() -> String + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(OneUse {
            place,
            make: Box::new(make),
            pool: Mutex::new(Vec::new()),
            taken: AtomicU64::new(0),
            late: AtomicU64::new(0),
        })
    }

    /// Throws away what is left (older, closer to the end of its window) and signs `n` new values.
    pub(crate) fn refill(&self, n: usize) {
        let fresh: Vec<String> = (0..n).map(|_| (self.make)()).collect();
        *self.pool.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
    }

    fn take(&self) -> String {
        self.taken.fetch_add(1, Ordering::Relaxed);
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        pooled.unwrap_or_else(|| {
            self.late.fetch_add(1, Ordering::Relaxed);
            (self.make)()
        })
    }

    /// Values taken so far, and how many of them were signed during a run because the pool was empty.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.taken.load(Ordering::Relaxed),
            self.late.load(Ordering::Relaxed),
        )
    }
}

impl Shot {
    fn new(method: &'static str, url: String) -> Self {
        let rest = url.strip_prefix("http://").unwrap_or(&url);
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        Shot {
            method,
            host: host.to_owned(),
            path: format!("/{path}"),
            url,
            headers: Vec::new(),
            body: Bytes::new(),
            auth_spread: Arc::default(),
            one_use: None,
        }
    }

    pub(crate) fn get(url: impl Into<String>) -> Self {
        Shot::new("GET", url.into())
    }

    pub(crate) fn post_form(url: impl Into<String>, body: &str) -> Self {
        let mut s = Shot::new("POST", url.into());
        s.headers.push((
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
        s.body = Bytes::copy_from_slice(body.as_bytes());
        s
    }

    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Each request takes one value of `values` (see [`OneUse`]).
    pub(crate) fn one_use(mut self, values: Arc<OneUse>) -> Self {
        self.one_use = Some(values);
        self
    }

    /// The request, its one-use value (if any) taken.
    fn build(&self) -> hyper::http::request::Builder {
        let req = self.request();
        match &self.one_use {
            None => req,
            Some(values) => match values.place {
                Place::Header(name) => req.header(name, values.take()),
                Place::Body => req,
            },
        }
    }

    /// The body, with the one-use value appended when it goes there.
    fn body(&self) -> Bytes {
        match &self.one_use {
            Some(values) if matches!(values.place, Place::Body) => {
                let mut b = self.body.to_vec();
                b.extend_from_slice(values.take().as_bytes());
                Bytes::from(b)
            }
            _ => self.body.clone(),
        }
    }

    /// The request line and fixed headers, ready for a body.
    fn request(&self) -> hyper::http::request::Builder {
        let mut req = Request::builder()
            .method(self.method)
            .uri(self.path.as_str())
            .header("host", self.host.as_str());
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        req
    }

    /// Spreads requests uniformly over these `Authorization` values (many clients).
    pub(crate) fn spread_auth(mut self, values: Arc<Vec<String>>) -> Self {
        self.auth_spread = values;
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
    /// How many answered 200.
    pub(crate) ok: u64,
}

/// Sends requests from `shots` (each connection takes them in turn, starting at its own offset) for `seconds`.
/// Each connection is one HTTP/1.1 handshake and one task sending requests back to back (no pool, no locks), so
/// the generator costs as little as it can. A request counts as an error unless it answers 200.
pub(crate) async fn run(shots: Arc<Vec<Shot>>, connections: usize, seconds: f64) -> Measured {
    run_raw(shots, connections, seconds).await.summary()
}

/// Measures `a` and `b` in alternating slices of `slice` seconds, `seconds` in all for each, so that whatever
/// else the shared machine is doing weighs on both alike; the ratio of the two is then far steadier than the
/// ratio of two runs made one after the other.
pub(crate) async fn run_alternating(
    a: Arc<Vec<Shot>>,
    b: Arc<Vec<Shot>>,
    connections: usize,
    seconds: f64,
    slice: f64,
) -> (Measured, Measured) {
    let (mut ra, mut rb) = (Raw::default(), Raw::default());
    let slices = (seconds / slice).ceil().max(1.0) as usize;
    for _ in 0..slices {
        ra.add(run_raw(a.clone(), connections, slice).await);
        rb.add(run_raw(b.clone(), connections, slice).await);
    }
    (ra.summary(), rb.summary())
}

/// Latencies and errors of one or more runs, before they are summed up.
#[derive(Default)]
pub(crate) struct Raw {
    latencies: Vec<Duration>,
    errors: u64,
    elapsed: f64,
}

impl Raw {
    pub(crate) fn add(&mut self, other: Raw) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.elapsed += other.elapsed;
    }

    pub(crate) fn summary(mut self) -> Measured {
        let all = &mut self.latencies;
        all.sort_unstable();
        let pct = |p: f64| {
            all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        Measured {
            rps: all.len() as f64 / self.elapsed,
            p50: pct(0.50),
            p99: pct(0.99),
            errors: self.errors,
            ok: all.len() as u64,
        }
    }
}

/// Sends requests as `run` does; returns what it measured before summing up, so runs can be added together.
pub(crate) async fn run_raw(shots: Arc<Vec<Shot>>, connections: usize, seconds: f64) -> Raw {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let shots = shots.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(65_536);
            let mut errors = 0u64;
            let mut i = c;
            // xorshift64, seeded per connection: uniform picks without a shared generator.
            let mut rng =
                0x9E37_79B9_7F4A_7C15u64 ^ (c as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            'reconnect: while Instant::now() < deadline {
                // Connections are spread over the shots' hosts (several nodes of a cluster: connection c goes to
                // the host of shot c); with one host they all go there.
                let Some(mut sender) = connect(&shots[c % shots.len()].url).await else {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                while Instant::now() < deadline {
                    let shot = &shots[i % shots.len()];
                    i += 1;
                    let mut req = shot.build();
                    if !shot.auth_spread.is_empty() {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let pick = (rng % shot.auth_spread.len() as u64) as usize;
                        req = req.header("authorization", shot.auth_spread[pick].as_str());
                    }
                    let Ok(req) = req.body(Full::new(shot.body())) else {
                        errors += 1;
                        continue;
                    };
                    let sent = Instant::now();
                    if sender.ready().await.is_err() {
                        errors += 1;
                        continue 'reconnect;
                    }
                    let ok = match sender.send_request(req).await {
                        Ok(resp) => {
                            let status = resp.status();
                            resp.into_body().collect().await.is_ok() && status == 200
                        }
                        Err(_) => {
                            errors += 1;
                            continue 'reconnect;
                        }
                    };
                    if ok {
                        latencies.push(sent.elapsed());
                    } else {
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut raw = Raw::default();
    for t in tasks {
        if let Ok((l, e)) = t.await {
            raw.latencies.extend(l);
            raw.errors += e;
        }
    }
    raw.elapsed = start.elapsed().as_secs_f64();
    raw
}

/// One keep-alive HTTP/1.1 connection to the host of `url`.
async fn connect(url: &str) -> Option<http1::SendRequest<Full<Bytes>>> {
    let authority = url.strip_prefix("http://")?.split('/').next()?;
    let stream = tokio::net::TcpStream::connect(authority).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(conn);
    Some(sender)
}

/// Sends `shot` once on a new connection; whether it answered 200.
pub(crate) async fn once(shot: &Shot) -> bool {
    fetch(shot).await.is_some_and(|(status, _)| status == 200)
}

/// Sends `shot` once on a new connection: its status and body, or `None` when it could not be sent or read.
pub(crate) async fn fetch(shot: &Shot) -> Option<(u16, Bytes)> {
    let mut sender = connect(&shot.url).await?;
    let req = shot.build().body(Full::new(shot.body())).ok()?;
    let resp = sender.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.into_body().collect().await.ok()?.to_bytes()))
}
