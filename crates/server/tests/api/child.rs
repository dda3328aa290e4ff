//! Child processes as an operator runs them: the real `keyward` binary (or nginx) with its output collected line
//! by line, killed on drop or with `kill -9` mid-flight, and a fresh PostgreSQL database for them to share.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The line `keyward serve` logs once it accepts connections; it carries `listen=ADDR`.
pub const SERVING: &str = "keyward is serving";

/// How long a child may take to log what a test waits for. A debug build's first start on PostgreSQL takes
/// about a second; the margin is for a loaded two-core machine.
const WAIT: Duration = Duration::from_secs(20);

/// Any child process whose stdout and stderr are collected line by line (in arrival order, the two interleaved),
/// killed on drop so a failing test leaves no process behind.
pub struct Process {
    child: Child,
    name: String,
    log: Arc<Mutex<Vec<String>>>,
    stop: Option<Command>,
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut stop) = self.stop.take() {
            let _ = stop.stdout(Stdio::null()).stderr(Stdio::null()).status();
            let start = Instant::now();
            while matches!(self.child.try_wait(), Ok(None))
                && start.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Runs `command`; `name` names it in failure messages.
    pub fn spawn(name: &str, mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        collect(stdout, log.clone());
        collect(stderr, log.clone());
        Process {
            child,
            name: name.to_owned(),
            log,
            stop: None,
        }
    }

    /// On drop, runs `stop` and gives the process 5 s to exit before SIGKILL. For a process with children of its
    /// own, such as nginx's master: SIGKILL would leave its workers running, holding the port.
    pub fn stop_on_drop(mut self, stop: Command) -> Self {
        self.stop = Some(stop);
        self
    }

    /// The process id, for signals (`kill -HUP`).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Every line collected so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// How many lines collected so far contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Panics with the log if the process has exited: a test must not go on against a dead child it thinks is
    /// running.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            // The reader threads may still hold the last lines; give them a moment to land.
            std::thread::sleep(Duration::from_millis(100));
            panic!("{} exited ({status}): {:#?}", self.name, self.log());
        }
    }

    /// Waits for a line containing `needle` and returns it; fails when the process exits first or after
    /// 20 s.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            self.assert_running();
            assert!(
                start.elapsed() < WAIT,
                "{}: no line with {needle:?} after {WAIT:?}: {:#?}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`: SIGKILL (what `Child::kill` sends on Unix), so nothing of the process's shutdown runs, then
    /// reaps it. Fails if the process had already exited, which would make a crash test prove nothing.
    pub fn kill_9(&mut self) -> ExitStatus {
        self.assert_running();
        self.child.kill().expect("SIGKILL");
        let status = self.child.wait().expect("wait");
        assert!(
            !status.success(),
            "{} survived SIGKILL: {status}",
            self.name
        );
        status
    }
}

/// Reads `from` line by line into `log` on its own thread, until the pipe closes.
fn collect(from: impl Read + Send + 'static, log: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            log.lock().unwrap().push(line);
        }
    });
}

/// A `keyward` child that serves HTTP: the process, its base URL, and the temporary directories it uses.
pub struct Served {
    /// The process and its log.
    pub process: Process,
    /// `http://ADDR`, from the `listen=` field of the serving line.
    pub base: String,
    /// Kept for the process's lifetime; removed after it is killed (fields drop in order).
    dirs: Vec<tempfile::TempDir>,
}

impl Served {
    /// `keyward serve --listen 127.0.0.1:0 ARGS` with `env` added to the environment, once it is serving.
    /// `KEYWARD_*` variables of the test's own environment are removed first, so a developer's shell settings
    /// (a `KEYWARD_DATABASE`, say) never reach the child.
    pub fn serve<A, K, V>(
        args: impl IntoIterator<Item = A>,
        env: impl IntoIterator<Item = (K, V)>,
    ) -> Self
    where
        A: AsRef<OsStr>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("KEYWARD_") {
                command.env_remove(name);
            }
        }
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env);
        Self::spawn(command, SERVING)
    }

    /// Runs any `keyward` command that logs `ready` with a `listen=ADDR` field once it accepts connections.
    pub fn spawn(command: Command, ready: &str) -> Self {
        let mut process = Process::spawn("keyward", command);
        let line = process.wait_for(ready);
        // `listen=ADDR` in text logs, `"listen":"ADDR"` among the fields of JSON logs.
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("listen="))
            .map(str::to_owned)
            .or_else(|| {
                let entry: serde_json::Value = serde_json::from_str(&line).ok()?;
                entry["fields"]["listen"].as_str().map(str::to_owned)
            })
            .unwrap_or_else(|| panic!("listen= in the serving line: {line}"));
        Served {
            process,
            base: format!("http://{addr}"),
            dirs: Vec::new(),
        }
    }

    /// Keeps `dir` until this process is gone.
    pub fn keep(mut self, dir: tempfile::TempDir) -> Self {
        self.dirs.push(dir);
        self
    }

    /// `ADDR` of the base URL (`127.0.0.1:PORT`).
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// A full URL on this process.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every log line so far.
    pub fn log(&self) -> Vec<String> {
        self.process.log()
    }

    /// See [`Process::wait_for`].
    pub fn wait_for(&mut self, needle: &str) -> String {
        self.process.wait_for(needle)
    }

    /// See [`Process::kill_9`].
    pub fn kill_9(&mut self) -> ExitStatus {
        self.process.kill_9()
    }

    /// The admin client's (id, secret) a first start prints once on stderr (`print_first_start`), or `None`
    /// when this start was not the first. Complete once the serving line is in: both are printed before it.
    pub fn first_start(&self) -> Option<(String, String)> {
        let log = self.log();
        let value = |label: &str| {
            log.iter().find_map(|l| {
                l.trim_start()
                    .strip_prefix(label)
                    .map(|v| v.trim().to_owned())
            })
        };
        match (value("client_id:"), value("client_secret:")) {
            (Some(id), Some(secret)) => Some((id, secret)),
            (None, None) => None,
            _ => panic!("half of the first-start credentials: {log:#?}"),
        }
    }

    /// The first-start admin credentials, which this start must have printed.
    pub fn admin(&self) -> (String, String) {
        self.first_start()
            .unwrap_or_else(|| panic!("no first-start credentials: {:#?}", self.log()))
    }
}

/// A fresh PostgreSQL database, `kw_t_<random hex>`, dropped `WITH (FORCE)` on drop (as `TestApp` does), for
/// child processes to share. Fails, never skips, when PostgreSQL is unreachable.
pub struct FreshPg {
    /// Its name.
    pub name: String,
    /// `postgres://postgres@127.0.0.1:5432/NAME`.
    pub url: String,
}

impl FreshPg {
    /// Creates the database.
    pub async fn create() -> Self {
        let (name, url) = crate::harness::fresh_pg_database().await;
        FreshPg { name, url }
    }
}

impl Drop for FreshPg {
    fn drop(&mut self) {
        crate::harness::drop_pg_database(self.name.clone());
    }
}

/// A client_credentials request with Basic auth to the server (or proxy) at `base`, for servers that are not a
/// `TestApp` of this process.
pub fn token_request(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    secret: &str,
) -> reqwest::RequestBuilder {
    http.post(format!("{base}/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
}
