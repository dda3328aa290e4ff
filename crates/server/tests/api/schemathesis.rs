//! The admin API against its own description: schemathesis (installed by `scripts/test`) generates requests from
//! the served `/admin/v1/openapi.json` and checks every answer of the real server (no server error, statuses,
//! bodies and headers as documented, invalid data refused, valid data accepted or refused only for a stated rule),
//! with a valid admin token, a bad one and none. Fails, never skips, when schemathesis is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::both_engines;
use crate::harness::TestApp;

/// The longest one schemathesis run may take before the test fails (on two cores a run takes 12 to 30 s).
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
    let started = Instant::now();
    // A blocking child on the blocking pool, so the server in this runtime keeps answering it.
    let child = tokio::task::spawn_blocking(move || command.output());
    let output = tokio::time::timeout(RUN_LIMIT, child)
        .await
        .unwrap_or_else(|_| panic!("schemathesis ({label}) ran longer than {RUN_LIMIT:?}"))
        .unwrap()
        .unwrap_or_else(|e| panic!("schemathesis ({label}) did not start: {e}"));
    let report = String::from_utf8_lossy(&output.stdout);
    let errors = String::from_utf8_lossy(&output.stderr);
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
        output.status.success(),
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
