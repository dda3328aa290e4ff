//! The peer target a run can compare Keyward with: node-oidc-provider in `bench/peers/oidc-provider`, issuing ES256
//! JWT access tokens for `https://bench.api` (900 s) to one client by client_credentials, as Keyward's target does.
//! This file installs its npm packages, builds the command that starts it (`procs.rs` runs and stops it), and
//! measures it beside a one-client Keyward (`peer`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::procs::{self, Procs};
use crate::scenarios::{alternating, keyward_cc_beside, token_shot};
use crate::{Options, Row};

/// The peer's directory, relative to the repository root.
const DIR: &str = "bench/peers/oidc-provider";

/// The peer's one client (`client_secret_basic`, grant `client_credentials` only).
pub(crate) const CLIENT_ID: &str = "bench";
/// The secret of [`CLIENT_ID`].
pub(crate) const CLIENT_SECRET: &str = "bench-secret";

/// Whether `npm` can be run (and so, with it, `node`).
pub(crate) fn npm_available() -> bool {
    Command::new("npm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs the peer's pinned packages with `npm ci` unless they are already installed from the current
/// `package-lock.json`, and returns the peer's directory. "Installed" is judged by `node_modules/.package-lock.json`,
/// which npm writes at the end of every complete install: missing or older than `package-lock.json` means install.
pub(crate) fn install(repo_root: &Path) -> anyhow::Result<PathBuf> {
    let dir = repo_root.join(DIR);
    let lock = dir.join("package-lock.json");
    let locked = std::fs::metadata(&lock)
        .and_then(|m| m.modified())
        .with_context(|| format!("reading {}", lock.display()))?;
    let installed = std::fs::metadata(dir.join("node_modules/.package-lock.json"))
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= locked);
    if installed {
        return Ok(dir);
    }
    if !npm_available() {
        bail!(
            "the oidc-provider peer needs Node.js and npm, and `npm` cannot be run: install them, or leave the peer \
             target out"
        );
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--silent"])
        .current_dir(&dir)
        .status()
        .with_context(|| format!("running npm ci in {}", dir.display()))?;
    if !status.success() {
        bail!(
            "npm ci in {} failed ({status}); run it there without --silent to see why",
            dir.display()
        );
    }
    Ok(dir)
}

/// `node server.mjs` in `dir` (from [`install`]), listening on 127.0.0.1:`port` in production mode. The caller
/// spawns it, waits for the port and stops it; it prints one line to stderr once listening.
pub(crate) fn command(dir: &Path, port: u16) -> Command {
    let mut c = Command::new("node");
    c.arg("server.mjs")
        .current_dir(dir)
        .env("NODE_ENV", "production")
        .env("PORT", port.to_string());
    c
}

/// node-oidc-provider issuing ES256 JWTs for client_credentials (`--peers`), measured beside a one-client Keyward
/// (keyward-cc) in alternating slices: the goal compares the two.
pub(crate) async fn peer(
    o: &Options,
    procs: &mut Procs,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let dir = install(&o.repo_root)?;
    let (pid, base) = procs.peer(&dir).await?;
    let shot = token_shot(&base, "/token").header(
        "authorization",
        keyward_core::basic::encode(CLIENT_ID, CLIENT_SECRET),
    );
    let (one_shot, one_kw) = keyward_cc_beside(o, procs).await?;
    let (m, b) = alternating(shot, one_shot, o).await;
    let row = Row::new(
        "peer-oidc-provider ES256".into(),
        m,
        procs::peak_rss_mib(pid),
    )
    .beside(
        rows,
        "  keyward-cc-sqlite ES256, alternating".into(),
        b,
        procs::peak_rss_mib(one_kw.pid),
    );
    rows.push(row);
    procs.stop(pid);
    procs.stop(one_kw.pid);
    Ok(())
}
