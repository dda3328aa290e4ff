//! Serving: the HTTP router (the OAuth and admin API from `http`, the pages from `web`) on this node's accept loop,
//! with the background tasks beside it, until shutdown; then what is still in memory is written.

use tokio::net::TcpListener;

use crate::app::App;

/// Serves HTTP on `listener` until `shutdown` completes; background tasks stop with it.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tasks = [
        tokio::spawn(crate::follower::follow_changes(app.clone())),
        tokio::spawn(crate::housekeeping::housekeeping(app.clone())),
    ];
    let router = crate::http::router(app.clone(), crate::web::routes());
    crate::conn::serve(listener, router, app.settings.timeouts, shutdown).await;
    for t in tasks {
        t.abort();
    }
    // Last-used times gathered since the last flush are written before exit, and the purge lease is handed
    // back so another node takes it at once.
    if let Err(e) = crate::housekeeping::flush_last_used(&app, usize::MAX).await {
        tracing::warn!(error = %e, "recording last-used times at shutdown failed");
    }
    if let Err(e) = app.usage.flush(&app.store).await {
        tracing::warn!(error = %e, "recording token counts at shutdown failed");
    }
    let _ = app
        .store
        .lease_release(crate::housekeeping::PURGE_LEASE, &app.settings.node_id)
        .await;
    Ok(())
}
