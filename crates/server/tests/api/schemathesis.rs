//! The admin API against its own description: schemathesis (installed by `scripts/test`) generates requests from
//! the served `/admin/v1/openapi.json` and checks every answer of the real server (no server error, statuses,
//! bodies and headers as documented, invalid data refused, valid data accepted or refused only for a stated rule),
//! with a valid admin token, a bad one and none. Fails, never skips, when schemathesis is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::both_engines;
use crate::harness::TestApp;

/// The longest one schemathesis run may take before the test fails (on two cores a run takes 7 to 30 s).
const RUN_LIMIT: Duration = Duration::from_secs(150);

/// The `st` command: `SCHEMATHESIS_EXE` (set by `scripts/test`), else the virtualenv `scripts/test` makes
/// under `target/`.
fn st() -> PathBuf {
    if let Some(path) = std::env::var_os("SCHEMATHESIS_EXE") {
        return PathBuf::from(path);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/schemathesis/bin/st")
}

/// This test's schemathesis files: the configuration and Keyward's own check.
fn files() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/schemathesis")
}

/// Runs schemathesis against `app` with `authorization` (if any) and `extra` arguments; panics with its report
/// when it finds anything, or when it cannot run.
async fn run(app: &TestApp, label: &str, authorization: Option<String>, extra: &[&str]) {
    let st = st();
    assert!(
        st.exists(),
        "schemathesis is missing at {} (set SCHEMATHESIS_EXE, or run `bash scripts/test`, which installs it)",
        st.display()
    );
    let work = tempfile::tempdir().unwrap();
    let mut command = Command::new(&st);
    command
        .arg("--config-file")
        .arg(files().join("schemathesis.toml"))
        .arg("run")
        .arg(app.url("/admin/v1/openapi.json"))
        .args(["--no-color", "--output-truncate", "false"])
        .args(extra)
        .env("SCHEMATHESIS_HOOKS", "keyward_checks")
        .env("PYTHONPATH", files())
        // Nothing written into the source tree: schemathesis keeps its cache in the working directory.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(work.path())
        .stdin(Stdio::null());
    if let Some(value) = authorization {
        command.arg("-H").arg(format!("Authorization: {value}"));
    }
    // Its output goes to files, so a long report never fills a pipe nobody reads while the run is timed.
    let (out, err) = (work.path().join("out.txt"), work.path().join("err.txt"));
    command
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    let started = Instant::now();
    // A blocking wait on the blocking pool, so the server in this runtime keeps answering; past the limit the
    // child is killed, not left running against a server that is gone.
    let status = tokio::task::spawn_blocking(move || {
        let mut child = command.spawn()?;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Some(status));
            }
            if started.elapsed() > RUN_LIMIT {
                child.kill()?;
                child.wait()?;
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap()
    .unwrap_or_else(|e: std::io::Error| panic!("schemathesis ({label}) did not run: {e}"));
    let report = std::fs::read_to_string(&out).unwrap_or_default();
    let errors = std::fs::read_to_string(&err).unwrap_or_default();
    let Some(status) = status else {
        panic!(
            "schemathesis ({label}) ran longer than {RUN_LIMIT:?} and was stopped:\n{report}\n{errors}"
        );
    };
    // The summary (and any warnings before it) shows with `--nocapture`.
    let summary = report
        .find("WARNINGS")
        .or_else(|| report.find("SUMMARY"))
        .map_or("", |at| &report[at..]);
    eprintln!(
        "schemathesis ({label}) took {:.1} s\n{summary}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        status.success(),
        "schemathesis ({label}) found a problem:\n{report}\n{errors}"
    );
    // A run that tested nothing passes too: make sure it called the operations.
    assert!(
        report.contains("passed") && !report.contains("No operations"),
        "schemathesis ({label}) tested nothing:\n{report}"
    );
}

both_engines!(schemathesis_finds_nothing_in_the_admin_api, |app| {
    let token = app.admin_token().await;
    run(
        &app,
        "a valid admin token",
        Some(format!("Bearer {token}")),
        &[],
    )
    .await;
    // Without a usable token every operation answers 401 at once: fewer examples show it.
    let few = ["--max-examples", "5"];
    run(&app, "a bad token", Some("Bearer not-a-token".into()), &few).await;
    run(&app, "no token", None, &few).await;
});
