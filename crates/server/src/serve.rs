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
    let mut tasks = vec![
        tokio::spawn(crate::follower::follow_changes(app.clone())),
        tokio::spawn(crate::housekeeping::housekeeping(app.clone())),
    ];
    if let Some(mailer) = &app.mailer {
        tasks.push(tokio::spawn(
            crate::mail::Outbox {
                store: app.store.clone(),
                master: app.master.clone(),
                clock: app.clock.clone(),
                mailer: mailer.clone(),
                node_id: app.settings.node_id.clone(),
            }
            .run(),
        ));
    }
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
    for lease in [crate::housekeeping::PURGE_LEASE, crate::mail::MAIL_LEASE] {
        let _ = app.store.lease_release(lease, &app.settings.node_id).await;
    }
    Ok(())
}
