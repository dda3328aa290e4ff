//! The peer target a run can compare Keyward with: node-oidc-provider in `bench/peers/oidc-provider`, issuing ES256
//! JWT access tokens for `https://bench.api` (900 s) to one client by client_credentials, as Keyward's target does.
//! This file installs its npm packages and builds the command that starts it; `procs.rs` runs and stops it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

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
