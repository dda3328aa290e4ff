//! Slow and idle clients cannot hold connections, in `keyward serve` and in `keyward gateway`: a request head or
//! body sent one byte a second is cut off within its timeout, a connection that sends nothing or sits idle after
//! a response is closed, a response the client stops reading ends the connection, and other clients are served
//! normally all the while. The timeouts are set to a few seconds here (the defaults are 10 s, 30 s, 75 s, 30 s).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Engine, TestApp};
use crate::verify::{UAT, serve, walley_clients};

const HEADER: Duration = Duration::from_secs(2);
const BODY: Duration = Duration::from_secs(3);
const IDLE: Duration = Duration::from_secs(2);
const WRITE: Duration = Duration::from_secs(2);
/// What a test allows beyond a timeout for the close to be seen (a loaded two-core machine).
const SLACK: Duration = Duration::from_millis(1_500);

async fn connect(base: &str) -> TcpStream {
    TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Sends `bytes` one a second; returns how long after the start the server ended the connection (a write that
/// fails, or a read that sees the end or a reset), or `None` if every byte went out and the connection stayed.
async fn trickle(stream: &mut TcpStream, bytes: &[u8]) -> Option<Duration> {
    let started = Instant::now();
    for b in bytes {
        if stream.write_all(&[*b]).await.is_err() {
            return Some(started.elapsed());
        }
        // Between bytes, watch for the server closing (a 408 it sent first counts as closing too).
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(n)) => {
                let answer = String::from_utf8_lossy(&buf[..n]);
                assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
                return Some(started.elapsed());
            }
        }
    }
    None
}

/// Waits for the server to end the connection without sending anything; returns how long that took.
async fn closed_after(stream: &mut TcpStream, limit: Duration, what: &str) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 64];
    match tokio::time::timeout(limit, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => started.elapsed(),
        Ok(Ok(n)) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(_) => panic!("{what}: the connection was still open after {limit:?}"),
    }
}

/// Reads `n` responses (head and `Content-Length` body each) from a kept-alive connection; returns their statuses.
async fn read_responses(stream: &mut TcpStream, n: usize) -> Vec<u16> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let mut statuses = Vec::new();
    let mut at = 0;
    while statuses.len() < n {
        // Every whole response in what has arrived.
        loop {
            let text = String::from_utf8_lossy(&data[at..]).to_string();
            let Some(end) = text.find("\r\n\r\n") else {
                break;
            };
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if data.len() - at < end + 4 + length {
                break;
            }
            statuses.push(text[9..12].parse().unwrap());
            at += end + 4 + length;
        }
        if statuses.len() >= n {
            break;
        }
        let got = stream.read(&mut buf).await.unwrap();
        assert!(got > 0, "closed before {n} whole responses");
        data.extend_from_slice(&buf[..got]);
    }
    statuses
}

/// Reads one response from a kept-alive connection; returns its status.
async fn read_response(stream: &mut TcpStream) -> u16 {
    read_responses(stream, 1).await[0]
}

/// Every slow-client bound against `base`, while `healthy` keeps being answered.
async fn slow_clients_are_cut_off(base: &str, healthy: impl Fn() -> Fut) {
    let head = async {
        let mut s = connect(base).await;
        let request = b"POST /oauth2/token HTTP/1.1\r\nHost: keyward\r\nContent-Type: application/x-www-form-urlencoded\r\n";
        let cut = trickle(&mut s, request)
            .await
            .expect("the slow head was never cut off");
        assert!(cut <= HEADER + SLACK, "head cut after {cut:?}");
    };
    let silent = async {
        let mut s = connect(base).await;
        let waited = closed_after(&mut s, HEADER + SLACK, "silent").await;
        assert!(waited >= HEADER - Duration::from_millis(200), "{waited:?}");
    };
    let body = async {
        let mut s = connect(base).await;
        s.write_all(
            b"POST /oauth2/token HTTP/1.1\r\nHost: keyward\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 60\r\n\r\n",
        )
        .await
        .unwrap();
        let cut = trickle(&mut s, &[b'a'; 60])
            .await
            .expect("the slow body was never cut off");
        assert!(cut <= BODY + SLACK, "body cut after {cut:?}");
    };
    let idle = async {
        let mut s = connect(base).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: keyward\r\n\r\n")
            .await
            .unwrap();
        let status = read_response(&mut s).await;
        assert!(status == 200 || status == 404, "{status}");
        // Kept alive, then closed once idle for the keep-alive timeout.
        let waited = closed_after(&mut s, IDLE + SLACK, "idle").await;
        assert!(waited >= IDLE - Duration::from_millis(200), "{waited:?}");
    };
    let pipelined = async {
        // Two requests in one write: both answered, in order, on the one connection.
        let mut s = connect(base).await;
        s.write_all(
            b"GET /healthz HTTP/1.1\r\nHost: k\r\n\r\nGET /healthz HTTP/1.1\r\nHost: k\r\n\r\n",
        )
        .await
        .unwrap();
        let statuses = read_responses(&mut s, 2).await;
        assert_eq!(statuses[0], statuses[1], "{statuses:?}");
    };
    let served = async {
        let started = Instant::now();
        let mut answered = 0;
        while started.elapsed() < BODY {
            healthy().await;
            answered += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(answered >= 5, "{answered}");
    };
    tokio::join!(head, silent, body, idle, pipelined, served);
}

type Fut = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

const TIMEOUTS: [(&str, &str); 4] = [
    ("KEYWARD_REQUEST_HEADER_TIMEOUT", "2s"),
    ("KEYWARD_REQUEST_BODY_TIMEOUT", "3s"),
    ("KEYWARD_KEEP_ALIVE_TIMEOUT", "2s"),
    ("KEYWARD_RESPONSE_WRITE_TIMEOUT", "2s"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_hold_the_server() {
    let app = TestApp::with_env(Engine::Sqlite, &TIMEOUTS).await;
    let (id, secret) = app.api_client().await;
    // Each check owns what it sends (`Fut` is `'static`).
    let http = app.http.clone();
    let url = app.url("/oauth2/token");
    let healthy_static = move || -> Fut {
        let req = http
            .post(&url)
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")]);
        Box::pin(async move {
            assert_eq!(req.send().await.unwrap().status(), StatusCode::OK);
        })
    };
    slow_clients_are_cut_off(&app.base, healthy_static).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_hold_the_gateway() {
    let app = TestApp::sqlite().await;
    let [(rw, rw_secret), ..] = walley_clients(&app).await;
    let token = app.access_token(&rw, &rw_secret, &[]).await;
    // An upstream with a response far larger than the sockets' buffers, for a client that stops reading it.
    let upstream = serve(
        orders_api::plain()
            .route(
                "/oauth2/token",
                axum::routing::post(|body: axum::body::Bytes| async move { body }),
            )
            .route(
                "/big",
                axum::routing::get(|| async {
                    let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
                    let chunks = futures_util::stream::iter(
                        (0..1_024).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                    );
                    axum::body::Body::from_stream(chunks)
                }),
            ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            r#"
upstream = "{upstream}"
issuer = "{issuer}"
audience = "{UAT}"
request_header_timeout = "2s"
request_body_timeout = "3s"
keep_alive_timeout = "2s"
response_write_timeout = "2s"

[[route]]
path = "/health"
public = true

[[route]]
methods = ["POST"]
path = "/oauth2/token"
public = true

[[route]]
path = "/big"
scopes = ["orders:read"]
"#,
            issuer = app.app.settings.issuer,
        ),
    )
    .unwrap();
    let config = keyward::gateway::config::load(&path, Some("127.0.0.1:0")).unwrap();
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let gw = keyward::gateway::Gateway::new(config).unwrap();
    tokio::spawn(keyward::gateway::serve(
        gw,
        listener,
        std::future::pending(),
    ));

    let http = reqwest::Client::new();
    let health = format!("{base}/health");
    slow_clients_are_cut_off(&base, move || -> Fut {
        let req = http.get(&health);
        Box::pin(async move {
            assert_eq!(req.send().await.unwrap().status(), StatusCode::OK);
        })
    })
    .await;

    // A client that asks for 64 MiB and stops reading after the head: the gateway ends the connection once its
    // writes have made no progress for the write timeout, and what arrives in the end is far less than asked.
    let mut s = connect(&base).await;
    s.write_all(
        format!("GET /big HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut first = [0u8; 512];
    let n = s.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    tokio::time::sleep(WRITE + SLACK + Duration::from_secs(1)).await;
    let mut received = n;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received += n,
            Err(_) => panic!("the stalled connection is still open, {received} bytes read"),
        }
    }
    assert!(received < 32 << 20, "{received} bytes arrived");
}
