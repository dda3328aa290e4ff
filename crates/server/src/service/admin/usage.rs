//! A client's token counts per hour: what every node flushed to the database plus this node's counts not
//! flushed yet, for the admin API's usage endpoint and the console's charts.

use keyward_core::console::hourly_series;

use super::{Admin, AdminError};

impl Admin {
    /// Tokens issued to a client per hour over the last `hours` hours, oldest first: what every node has flushed
    /// to the database, plus this node's counts not flushed yet.
    pub async fn usage_series(
        &self,
        client_id: &str,
        hours: usize,
    ) -> Result<Vec<(i64, i64)>, AdminError> {
        let now = self.clock.now();
        let since = keyward_core::console::hour_start(now)
            - (hours as i64 - 1) * keyward_core::console::HOUR;
        // The counts of this instance of the client only: one deleted before it, with the same id, left its own.
        let instance = self
            .registry
            .client(&self.store, client_id)
            .await?
            .map(|c| c.instance)
            .ok_or_else(|| AdminError::NotFound("client"))?;
        let stored = self.store.usage_of(client_id, instance, since).await?;
        let pending = self.usage.pending_of(client_id, instance);
        Ok(hourly_series(
            stored
                .into_iter()
                .map(|r| (r.hour, r.tokens))
                .chain(pending),
            now,
            hours,
        ))
    }
}
