//! `Browser`: a real headless Chromium driven through chromedriver (W3C WebDriver over HTTP), for tests that click
//! through pages as a person would. `bash scripts/test` installs Debian's `chromium` and `chromium-driver`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The key under which WebDriver returns an element's id.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One chromedriver process with one Chromium session; dropping it ends both.
pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT`, where chromedriver listens.
    base: String,
    /// The session's id, until it is deleted.
    session: Option<String>,
    driver: Child,
    /// chromedriver's and Chromium's TMPDIR, which holds the profile and a socket folder Chromium leaves behind;
    /// removed after both have ended (fields drop after `Drop::drop`).
    _tmp: tempfile::TempDir,
}

/// An element of the current page, as `Browser::find` found it.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
    /// The selector that found it, to find it again when a page load replaced it.
    css: String,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session on it.
    pub async fn start() -> Browser {
        for (binary, package) in [(CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")] {
            assert!(
                Path::new(binary).exists(),
                "{package} is not installed: run bash scripts/test, which installs it ({binary} is missing)"
            );
        }
        let tmp = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        // From here on, a panic drops `browser`, which ends chromedriver.
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            http,
            base,
            session: None,
            driver,
            _tmp: tmp,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = browser.http.get(format!("{}/status", browser.base));
            if let Ok(status) = status.send().await {
                let body: Value = status.json().await.unwrap_or_default();
                if body["value"]["ready"] == true {
                    break;
                }
            }
            if let Ok(Some(exit)) = browser.driver.try_wait() {
                panic!("{CHROMEDRIVER} exited at start ({exit})");
            }
            assert!(
                Instant::now() < deadline,
                "{CHROMEDRIVER} on port {port} was not ready within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                // --no-sandbox: Chromium's sandbox refuses to run as root, which tests in a container are.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900"],
            },
        }}});
        let created = browser.command(Method::POST, "", Some(capabilities)).await;
        let id = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {created}"));
        browser.session = Some(id.to_owned());
        browser
    }

    /// Sends one WebDriver command to the session (to `POST /session` before there is one); `Err((error,
    /// message))` when the driver answers an error.
    async fn try_command(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, (String, String)> {
        let id = self
            .session
            .as_deref()
            .map(|id| format!("/{id}"))
            .unwrap_or_default();
        let request = self
            .http
            .request(method.clone(), format!("{}/session{id}{path}", self.base));
        // WebDriver wants a JSON body on every POST, `{}` when there is nothing to say.
        let request = match (body, method == Method::POST) {
            (Some(body), _) => request.json(&body),
            (None, true) => request.json(&json!({})),
            (None, false) => request,
        };
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("chromedriver {method} {path}: {e}"));
        let mut body: Value = response.json().await.unwrap();
        let value = body["value"].take();
        match value["error"].as_str() {
            Some(error) => Err((
                error.to_owned(),
                value["message"].as_str().unwrap_or("").to_owned(),
            )),
            None => Ok(value),
        }
    }

    /// Sends one WebDriver command and panics on an error answer.
    async fn command(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let shown = format!("{method} {path}");
        self.try_command(method, path, body)
            .await
            .unwrap_or_else(|(error, message)| panic!("WebDriver {shown}: {error}: {message}"))
    }

    /// `GET path` for a string value.
    async fn string(&self, path: &str) -> String {
        let value = self.command(Method::GET, path, None).await;
        value
            .as_str()
            .unwrap_or_else(|| panic!("GET {path}: not a string: {value}"))
            .to_owned()
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.command(Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// The URL of the current page; after a redirect to an unreachable host, the URL that could not load.
    pub async fn current_url(&self) -> String {
        self.string("/url").await
    }

    /// The HTML of the current page.
    pub async fn source(&self) -> String {
        self.string("/source").await
    }

    /// Runs `script` in the page as a function body (`arguments` holds `args`) and returns what it returns: how a
    /// test reads what no attribute shows (a text box's value) or watches what the page does (a form's body).
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.command(
            Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// The title of the current page.
    pub async fn title(&self) -> String {
        self.string("/title").await
    }

    /// The first element matching the CSS selector `css`, waiting up to 5 s for it to appear.
    pub async fn find(&self, css: &str) -> Element<'_> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let query = json!({"using": "css selector", "value": css});
        loop {
            match self
                .try_command(Method::POST, "/element", Some(query.clone()))
                .await
            {
                Ok(found) => {
                    let id = found[ELEMENT_KEY].as_str().unwrap().to_owned();
                    return Element {
                        browser: self,
                        id,
                        css: css.to_owned(),
                    };
                }
                Err((error, message)) if error != "no such element" => {
                    panic!("find {css:?}: {error}: {message}")
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(_) => {
                    let (url, source) = (self.current_url().await, self.source().await);
                    let excerpt: String = source.chars().take(2000).collect();
                    panic!(
                        "no element matches {css:?} within 5 s on {url}; the page begins:\n{excerpt}"
                    );
                }
            }
        }
    }

    /// Resizes the window to `width` × `height` CSS pixels (a phone's, for one), keeping the page.
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.command(
            Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// Saves a PNG screenshot of the window to `path`, creating its folders.
    pub async fn screenshot(&self, path: impl AsRef<Path>) {
        let encoded = self.command(Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap();
        let path = path.as_ref();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// Ends the session (closing Chromium), then chromedriver.
    pub async fn quit(mut self) {
        self.command(Method::DELETE, "", None).await;
        self.session = None;
        // Drop ends chromedriver.
    }

    /// A blocking HTTP/1.1 request to chromedriver, for `Drop`, which cannot await; errors are ignored.
    fn blocking_request(&self, method: &str, path: &str) {
        let Ok(mut stream) = TcpStream::connect(self.base.trim_start_matches("http://")) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request =
            format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        // The first bytes of the answer are enough: chromedriver answers once it is done, but may keep the
        // connection open, so reading to the end would wait for the timeout.
        if stream.write_all(request.as_bytes()).is_ok() {
            let _ = stream.read(&mut [0; 1024]);
        }
    }
}

impl Drop for Browser {
    /// Best effort: deletes the session, asks chromedriver to shut down (it then removes the profile),
    /// waits up to 5 s for it to exit, and kills it if it has not.
    fn drop(&mut self) {
        if let Some(id) = self.session.take() {
            self.blocking_request("DELETE", &format!("/session/{id}"));
        }
        self.blocking_request("GET", "/shutdown");
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.driver.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Element<'_> {
    async fn command(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let path = format!("/element/{}{path}", self.id);
        self.browser.command(method, &path, body).await
    }

    /// Clicks the element (and waits for a page load it starts).
    pub async fn click(&self) {
        self.command(Method::POST, "/click", None).await;
    }

    /// Types `text` into the element.
    pub async fn send_keys(&self, text: &str) {
        self.command(Method::POST, "/value", Some(json!({"text": text})))
            .await;
    }

    /// The element's visible text. An element a page load replaced between `find` and now (a click's navigation
    /// still finishing) is found again, for up to 5 s.
    pub async fn text(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut id = self.id.clone();
        loop {
            let path = format!("/element/{id}/text");
            match self.browser.try_command(Method::GET, &path, None).await {
                Ok(value) => {
                    return value
                        .as_str()
                        .unwrap_or_else(|| panic!("GET {path}: not a string: {value}"))
                        .to_owned();
                }
                Err((error, _))
                    if error == "stale element reference" && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    id = Box::pin(self.browser.find(&self.css)).await.id;
                }
                Err((error, message)) => panic!("WebDriver GET {path}: {error}: {message}"),
            }
        }
    }

    /// The element's attribute `name`, or `None` when it has none.
    pub async fn attribute(&self, name: &str) -> Option<String> {
        self.command(Method::GET, &format!("/attribute/{name}"), None)
            .await
            .as_str()
            .map(str::to_owned)
    }
}

/// Where the self-test's form sends the browser: port 9 (discard) refuses connections on this machine.
const UNREACHABLE: &str = "http://127.0.0.1:9/cb?";

#[tokio::test]
async fn browser_drives_a_form() {
    use axum::response::{Html, Redirect};
    use axum::routing::{get, post};

    let started = Instant::now();
    let page = r#"<!doctype html><title>Self-test</title>
        <form method="post" action="/submit"><input id="text" name="text"><button id="go">Send</button></form>"#;
    let app = axum::Router::new()
        .route("/", get(move || async move { Html(page) }))
        // The form body (`text=…`, already URL-encoded) becomes the query of a 303 to a host that cannot answer,
        // as a consent page sends the browser to a client's redirect URI.
        .route(
            "/submit",
            post(|body: String| async move { Redirect::to(&format!("{UNREACHABLE}{body}")) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let browser = Browser::start().await;
    browser.goto(&format!("{base}/")).await;
    assert_eq!(browser.title().await, "Self-test");
    assert_eq!(browser.current_url().await, format!("{base}/"));
    assert!(browser.source().await.contains("<form"));
    let input = browser.find("#text").await;
    assert_eq!(input.attribute("name").await.as_deref(), Some("text"));
    assert_eq!(input.attribute("placeholder").await, None);
    input.send_keys("hello keyward 42").await;
    let button = browser.find("button#go").await;
    assert_eq!(button.text().await, "Send");

    // target/browser/selftest.png: CARGO_TARGET_TMPDIR is target/tmp, wherever CARGO_TARGET_DIR puts target.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("browser/selftest.png");
    browser.screenshot(&shot).await;
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        shot.display()
    );

    button.click().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut url = browser.current_url().await;
    while !url.starts_with(UNREACHABLE) {
        assert!(
            Instant::now() < deadline,
            "the form did not redirect to {UNREACHABLE}: still on {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        url = browser.current_url().await;
    }
    assert_eq!(url, format!("{UNREACHABLE}text=hello+keyward+42"));
    browser.quit().await;
    eprintln!("browser self-test took {:?}", started.elapsed());
}
