//! Housekeeping, off the request path: last-used times and token counts written in batches, metric histograms
//! drained, the database's clock sampled, idle limit buckets dropped, and expired rows purged by the node holding
//! the purge lease.

use std::time::Duration;

use crate::app::App;
use crate::registry::LAST_USED_PER_FLUSH;
use crate::store::{Expiring, StoreError};

/// The purge lease: one node of a cluster purges at a time. It lasts three purge rounds, so a node that stops
/// renewing it is replaced within 40 s (the lease, then up to one round of the next node).
pub(crate) const PURGE_LEASE: &str = "purge";
const PURGE_LEASE_SECONDS: i64 = 30;
/// Rows deleted per statement, and the pause between statements, so the purge never holds the database (or
/// SQLite's one writer) for long and requests get their turn between batches.
const PURGE_BATCH: i64 = 500;
const PURGE_PAUSE: Duration = Duration::from_millis(20);
/// Statements per table per round: 100,000 rows every ten seconds at most; the rest waits for the next round.
const PURGE_MAX_BATCHES: u32 = 200;

/// Writes last-used times every second (a lock and nothing more when there are none; at most
/// `LAST_USED_PER_FLUSH`, so a burst of first uses is paced), token counts every `usage_flush_interval`, and
/// every five seconds drains the metric histograms, every ten samples the database's clock, drops idle limit
/// buckets and purges expired rows if this node holds the purge lease; all off the request path.
pub(crate) async fn housekeeping(app: App) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let usage_every = app.settings.usage_flush_interval.as_secs().max(1);
    for round in 0u64.. {
        tick.tick().await;
        if round % 5 == 0 {
            app.metrics.upkeep();
        }
        if let Err(e) = flush_last_used(&app, LAST_USED_PER_FLUSH).await {
            tracing::warn!(error = %e, "recording last-used times failed");
        }
        if round % usage_every == 0 && round > 0 {
            if let Err(e) = app.usage.flush(&app.store).await {
                tracing::warn!(error = %e, "recording token counts failed; kept for the next flush");
            }
        }
        if round % crate::clock::SYNC_EVERY == 0 && round > 0 {
            if let Err(e) = crate::clock::sync_clock(&app.clock, &app.store.control()).await {
                tracing::debug!(error = %e, "the database's clock could not be read; kept the last sample");
            }
        }
        if round % 10 == 0 {
            app.limits.sweep(app.clock.now_micros());
            purge(&app).await;
        }
    }
}

/// One purge round: takes or renews the lease, then deletes expired rows table by table in small batches. Logged
/// when it deletes anything, counted in `keyward_purged_rows_total`.
pub async fn purge(app: &App) {
    let now = app.clock.now();
    match app
        .store
        .lease_acquire(PURGE_LEASE, &app.settings.node_id, now, PURGE_LEASE_SECONDS)
        .await
    {
        Ok(true) => app.metrics.purge_lease_held.set(1.0),
        Ok(false) => {
            app.metrics.purge_lease_held.set(0.0);
            return;
        }
        Err(e) => {
            app.metrics.purge_lease_held.set(0.0);
            tracing::debug!(error = %e, "purge lease not taken");
            return;
        }
    }
    app.metrics.purge_runs.increment(1);
    let started = std::time::Instant::now();
    let mut deleted = [0u64; Expiring::ALL.len()];
    for (i, kind) in Expiring::ALL.into_iter().enumerate() {
        let table = kind.table();
        for _ in 0..PURGE_MAX_BATCHES {
            match app
                .store
                .purge_expired(kind, now, app.settings.audit_retention, PURGE_BATCH)
                .await
            {
                Ok(n) => {
                    deleted[i] += n;
                    app.metrics.purged_rows[i].increment(n);
                    if n < PURGE_BATCH as u64 {
                        break;
                    }
                    tokio::time::sleep(PURGE_PAUSE).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, table, "purge failed; retried next round");
                    break;
                }
            }
        }
    }
    if deleted.iter().any(|n| *n > 0) {
        let counts: Vec<String> = Expiring::ALL
            .iter()
            .zip(deleted)
            .map(|(kind, n)| format!("{}={n}", kind.table()))
            .collect();
        tracing::info!(
            rows = %counts.join(" "),
            seconds = started.elapsed().as_secs_f64(),
            node = %app.settings.node_id,
            "purged expired rows"
        );
    }
}

/// Writes up to `limit` of the last-used times noted in memory (one transaction; nothing when there are
/// none). When the write fails they are put back for the next try. Called by housekeeping with
/// `LAST_USED_PER_FLUSH`, and at shutdown with no limit.
pub async fn flush_last_used(app: &App, limit: usize) -> Result<(), StoreError> {
    let used = app.memory.registry.take_used(limit);
    if used.is_empty() {
        return Ok(());
    }
    let written = app.store.secrets_touch(&used).await;
    if written.is_err() {
        app.memory.registry.put_back_used(used);
    }
    written
}
