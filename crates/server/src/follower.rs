//! The change-feed follower: loads every client, then applies what other processes change (clients, resources,
//! signing keys) to this node's memory within a second, and records whether the database answers.

use std::sync::Arc;
use std::time::Duration;

use crate::app::App;
use crate::feed::{FEED_CATCH_UP, FEED_POLL, FEED_RECENT, FeedCursor, GAP_GRACE};
use crate::store::{Store, StoreError};

/// The most feed entries read at a time.
const FEED_BATCH: usize = 1_000;

/// The longest a read of the feed may take before it counts as failed: a connection that died silently (no
/// reset, no answer) must not leave the node believing the database is up, and issuing tokens past its stale limit.
const FEED_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Loads every client into memory, retrying until it can. Serving does not wait for it: until it is done,
/// clients are read from the store one by one.
async fn load_clients(app: &App) {
    let started = std::time::Instant::now();
    loop {
        match app
            .memory
            .registry
            .reload_clients(&app.store.control())
            .await
        {
            Ok(count) => {
                app.feed.ok();
                tracing::info!(
                    clients = count,
                    seconds = started.elapsed().as_secs_f64(),
                    "every client is in memory"
                );
                return;
            }
            Err(e) => {
                database_unreachable(app, &e);
                tracing::warn!(error = %e, "loading clients failed; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// PostgreSQL: waits on the change channel and wakes the follower for each notification, and after every
/// reconnection (notifications sent while disconnected are lost, so the follower catches up). Returns at once on
/// SQLite.
async fn listen_for_changes(app: App, wake: Arc<tokio::sync::Notify>) {
    loop {
        let mut listener = match app.store.change_listener().await {
            None => return,
            Some(Ok(l)) => l,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "cannot listen for changes; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        wake.notify_one();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => {
                    app.metrics.feed_notifications.increment(1);
                    wake.notify_one();
                }
                // The connection was lost and has been re-established: catch up.
                Ok(None) => wake.notify_one(),
                Err(e) => {
                    // Start over with a new connection rather than trust this one.
                    tracing::debug!(error = %e, "the change listener failed; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
        }
    }
}

/// Follows the change feed so that changes made by other processes reach this one's memory within a second:
/// on PostgreSQL woken by a notification and caught up every `FEED_CATCH_UP`, on SQLite polled every `FEED_POLL`.
/// It starts by loading every client, then reads the feed from the position taken before the load, so a change
/// made while the load ran is applied after it. Each read records whether the database answered (`App::feed`).
pub(crate) async fn follow_changes(app: App) {
    load_clients(&app).await;
    let wake = Arc::new(tokio::sync::Notify::new());
    let listener = tokio::spawn(listen_for_changes(app.clone(), wake.clone()));
    let catch_up = match app.store.engine() {
        "postgres" => FEED_CATCH_UP,
        _ => FEED_POLL,
    };
    // The follower's reads use the control connections: requests holding every pooled connection must not hold
    // back the changes that concern them, nor make the database look unreachable.
    let control = app.store.control();
    let mut cursor = FeedCursor::new(
        app.settings.feed_start,
        FEED_RECENT,
        &app.settings.feed_recent,
        std::time::Instant::now(),
    );
    // Dropping the follower (at shutdown) stops its listener too.
    let _listener = AbortOnDrop(listener);
    loop {
        // A full batch means more is waiting: read on at once.
        if read_changes(&app, &control, &mut cursor).await {
            continue;
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(catch_up) => {}
        }
    }
}

/// One read of the feed: the gaps being watched (a transaction that committed late), then the new entries in order;
/// applies each, records the database's health. Returns whether more entries are waiting.
async fn read_changes(app: &App, control: &Store, cursor: &mut FeedCursor) -> bool {
    let read = tokio::time::timeout(FEED_READ_TIMEOUT, async {
        let late = control.changes_at(&cursor.watched()).await?;
        let fresh = control
            .changes_since(cursor.after(), FEED_BATCH as i64)
            .await?;
        Ok::<_, StoreError>((late, fresh))
    })
    .await
    .unwrap_or_else(|_| Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut)));
    let (late, fresh) = match read {
        Ok(read) => read,
        Err(e) => {
            database_unreachable(app, &e);
            return false;
        }
    };
    if app.feed.is_down() {
        tracing::info!("the database answers again");
    }
    app.feed.ok();
    app.metrics.database_up.set(1.0);
    let now = std::time::Instant::now();
    let caught_up = fresh.len() < FEED_BATCH;
    let todo: Vec<_> = late
        .iter()
        .chain(&fresh)
        .filter(|c| cursor.is_new(c.seq))
        .collect();
    for c in todo {
        // A watched position (a late commit, or a change that failed before) is not new to the log.
        let retrying = c.seq <= cursor.after();
        cursor.mark(c.seq, now);
        match app.memory.apply(control, &c.kind, &c.key).await {
            Ok(()) => app.metrics.feed_applied.increment(1),
            Err(e) => {
                // Watched afresh (it exists, so it is never given up) and applied again on the next read, while
                // the changes after it go on: each change re-reads what it names, so their order does not matter,
                // and one that cannot be applied (a key that does not unseal) must not hold back the others.
                cursor.retry(c.seq, now);
                app.metrics.feed_apply_failures.increment(1);
                if !retrying {
                    tracing::warn!(error = %e, kind = %c.kind, "applying a change failed; will retry");
                }
            }
        }
    }
    cursor.expire(now, GAP_GRACE);
    // Once a read has replayed everything that changed during the load, memory is current.
    if caught_up {
        app.memory.registry.mark_loaded();
    }
    !caught_up
}

/// Records a failed read of the database; the first of an outage is logged.
fn database_unreachable(app: &App, e: &StoreError) {
    app.metrics.database_up.set(0.0);
    if app.feed.failed() {
        tracing::warn!(
            error = %e,
            stale_limit_seconds = app.settings.stale_while_unreachable.as_secs(),
            "the database is unreachable: requests that need it answer 503, tokens for clients in memory \
             are issued for at most stale_while_unreachable"
        );
    }
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
