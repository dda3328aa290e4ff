//! New credentials without a restart: on SIGHUP, or when the config file or a credential file has changed
//! (looked at every `reload_interval`), the file is read and checked again and each API's token source is given
//! its credentials (`set_credentials`), keeping the token it holds until its refresh is due. A file that fails its
//! checks changes nothing and the log says why; changes other than credentials wait for the next start, which the
//! log says too.

use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Agent;
use super::config::{self, AgentConfig, Env, Overrides};

/// Reloads that succeeded and that failed, for `/metrics`.
#[derive(Debug, Default)]
pub(super) struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl Counts {
    /// (succeeded, failed).
    pub(super) fn get(&self) -> (u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// SIGHUP deliveries; installed before the agent serves, since a SIGHUP with no handler ends the process.
pub(super) struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

/// Starts listening for SIGHUP.
pub(super) fn hangups() -> Hangups {
    #[cfg(unix)]
    {
        let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(
                |e| tracing::warn!(error = %e, "cannot listen for SIGHUP; files are still watched"),
            )
            .ok();
        Hangups { signal }
    }
    #[cfg(not(unix))]
    Hangups {}
}

impl Hangups {
    /// The next SIGHUP; never, where there is none to wait for.
    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = &mut self.signal {
            if s.recv().await.is_some() {
                return;
            }
        }
        std::future::pending::<()>().await;
    }
}

/// Watches for SIGHUP and for changed files until `stop`, reloading `path` each time.
pub(super) async fn watch(
    agent: Arc<Agent>,
    mut current: AgentConfig,
    path: PathBuf,
    overrides: Overrides,
    env: Arc<Env>,
    mut hangups: Hangups,
    stop: impl Future<Output = ()>,
) {
    let mut stop = pin!(stop);
    let mut seen = fingerprint(&path, &current);
    let mut tick = tokio::time::interval(current.settings.reload_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let signalled = tokio::select! {
            () = &mut stop => return,
            _ = tick.tick() => false,
            () = hangups.recv() => true,
        };
        let now = fingerprint(&path, &current);
        if !signalled && now == seen {
            continue;
        }
        // Remembered even when the reload fails, so a bad file is reported once, not at every look.
        seen = now;
        match config::load(&path, &overrides, env.as_ref()) {
            Err(e) => {
                agent.reloads.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "reload failed; the credentials in use are kept");
            }
            Ok(new) => {
                apply(&agent, &current, &new);
                agent.reloads.ok.fetch_add(1, Ordering::Relaxed);
                seen = fingerprint(&path, &new);
                current = new;
            }
        }
    }
}

/// Gives each API its new credentials; says what else changed and waits for a restart.
fn apply(agent: &Agent, old: &AgentConfig, new: &AgentConfig) {
    if old.settings != new.settings {
        tracing::warn!("changes to the agent's own settings take effect at the next start");
    }
    for a in &new.apis {
        let Some(api) = agent.apis.get(&a.name) else {
            tracing::warn!(api = %a.name, "a new API is served from the next start");
            continue;
        };
        let before = old.apis.iter().find(|o| o.name == a.name);
        if before.is_some_and(|b| b.settings != a.settings) {
            tracing::warn!(api = %a.name, "changes other than credentials take effect at the next start");
        }
        let changed =
            before.is_none_or(|b| b.client_id != a.client_id || b.credential != a.credential);
        if changed {
            api.source
                .set_credential(a.client_id.clone(), a.credential.clone());
            tracing::info!(api = %a.name, "reloaded: new credentials in use from the next token request");
        }
    }
    for o in &old.apis {
        if !new.apis.iter().any(|a| a.name == o.name) {
            tracing::warn!(api = %o.name, "removed from the file; served until the next start");
        }
    }
}

/// A digest of the config file and the credential files it names: a change of any shows as a new value. The
/// contents are hashed in memory and never kept.
fn fingerprint(path: &Path, config: &AgentConfig) -> u64 {
    let mut h = DefaultHasher::new();
    let files = std::iter::once(path).chain(
        config
            .apis
            .iter()
            .flat_map(|a| a.files.iter().map(PathBuf::as_path)),
    );
    for file in files {
        file.hash(&mut h);
        match std::fs::read(file) {
            Ok(bytes) => bytes.hash(&mut h),
            Err(e) => e.kind().hash(&mut h),
        }
    }
    h.finish()
}
