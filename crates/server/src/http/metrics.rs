//! The metrics listener (`--metrics-listen`): `GET /metrics` in Prometheus text, with the gauges that are read
//! at scrape time (pool, limit buckets, signing keys, feed age) set first.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::app::App;

/// `GET /metrics` on the metrics listener: sets the gauges read at scrape time, then renders everything.
async fn scrape(State(app): State<App>) -> impl IntoResponse {
    let m = &app.metrics;
    m.feed_age_seconds.set(app.feed.age().as_secs_f64());
    let (size, idle) = app.store.pool_stats();
    m.set(
        "keyward_db_pool_connections",
        &[("state", "idle".into())],
        idle as f64,
    );
    m.set(
        "keyward_db_pool_connections",
        &[("state", "busy".into())],
        size.saturating_sub(idle as u32) as f64,
    );
    m.set("keyward_limit_buckets", &[], app.limits.buckets() as f64);
    let now = app.clock.now();
    let keys = app.memory.keys.describe(now);
    for state in ["active", "pending", "retiring", "retired"] {
        let n = keys.iter().filter(|k| k["state"] == state).count();
        m.set("keyward_signing_keys", &[("state", state.into())], n as f64);
    }
    for k in keys.iter().filter(|k| k["state"] == "active") {
        if let (Some(alg), Some(at)) = (k["alg"].as_str(), k["activates_at"].as_i64()) {
            m.set(
                "keyward_signing_key_age_seconds",
                &[("alg", alg.to_owned())],
                (now - at).max(0) as f64,
            );
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.render(),
    )
}

/// The metrics listener's router.
pub fn metrics_router(app: App) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(app)
}
