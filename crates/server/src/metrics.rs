//! Prometheus metrics: one recorder per `App` (several apps share a test process, so nothing is global), with
//! handles registered once at start and bumped on the paths that count. Served as text on `--metrics-listen`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics::{Counter, Gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::app::App;
use crate::store::Expiring;

/// Every metric Keyward records.
pub struct Metrics {
    handle: PrometheusHandle,
    /// Rows deleted by the purge, per kind of `Expiring::ALL`.
    pub purged_rows: [Counter; Expiring::ALL.len()],
    /// Purge rounds this node ran while holding the lease.
    pub purge_runs: Counter,
    /// 1 while this node holds the purge lease.
    pub purge_lease_held: Gauge,
    /// 1 while the last read of the change feed succeeded.
    pub database_up: Gauge,
    /// Seconds since the change feed was last read successfully (set when scraped).
    pub feed_age_seconds: Gauge,
    /// Change-feed entries applied to memory.
    pub feed_applied: Counter,
    /// PostgreSQL notifications received on the change channel.
    pub feed_notifications: Counter,
    /// Tokens issued while the database was unreachable (from the clients held in memory).
    pub stale_tokens: Counter,
}

impl Metrics {
    /// A recorder of its own, with every metric registered and described.
    pub fn new() -> Self {
        let recorder: PrometheusRecorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_counter!(
                "keyward_purged_rows_total",
                "Expired rows deleted by the purge, by table"
            );
            metrics::describe_gauge!(
                "keyward_purge_lease_held",
                "1 while this node holds the purge lease"
            );
            metrics::describe_gauge!(
                "keyward_database_up",
                "1 while the last read of the change feed succeeded"
            );
            metrics::describe_gauge!(
                "keyward_feed_age_seconds",
                "Seconds since this node last read the change feed"
            );
            metrics::describe_counter!(
                "keyward_stale_tokens_total",
                "Tokens issued from memory while the database was unreachable"
            );
            Metrics {
                handle: handle.clone(),
                purged_rows: Expiring::ALL.map(
                    |kind| metrics::counter!("keyward_purged_rows_total", "table" => kind.table()),
                ),
                purge_runs: metrics::counter!("keyward_purge_runs_total"),
                purge_lease_held: metrics::gauge!("keyward_purge_lease_held"),
                database_up: metrics::gauge!("keyward_database_up"),
                feed_age_seconds: metrics::gauge!("keyward_feed_age_seconds"),
                feed_applied: metrics::counter!("keyward_feed_applied_total"),
                feed_notifications: metrics::counter!("keyward_feed_notifications_total"),
                stale_tokens: metrics::counter!("keyward_stale_tokens_total"),
            }
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `GET /metrics` on the metrics listener.
pub(crate) async fn scrape(State(app): State<Arc<App>>) -> impl IntoResponse {
    app.metrics
        .feed_age_seconds
        .set(app.feed.age().as_secs_f64());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}

/// The metrics listener's router.
pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(app)
}
