//! Tokens issued per client per hour, counted in memory on the token path (a short lock and an add; no database
//! write per token) and added to `token_usage` by housekeeping every `usage_flush_interval`. Every node counts its
//! own tokens and adds them, so the table holds the cluster's totals; this node's unflushed counts are added to
//! what the console reads, so its own requests show at once.

use std::collections::HashMap;
use std::sync::Mutex;

use keyward_core::console::hour_start;

use crate::store::{Store, StoreError};

/// Counts not yet written: hour start → client id → tokens.
#[derive(Debug, Default)]
pub struct Usage {
    pending: Mutex<HashMap<i64, HashMap<String, i64>>>,
}

impl Usage {
    /// Counts one token issued to `client_id` at `now`. The id is copied only the first time in an hour.
    pub fn record(&self, client_id: &str, now: i64) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let hour = pending.entry(hour_start(now)).or_default();
        match hour.get_mut(client_id) {
            Some(n) => *n += 1,
            None => {
                hour.insert(client_id.to_owned(), 1);
            }
        }
    }

    /// This node's unflushed counts for one client: (hour start, tokens).
    pub fn pending_of(&self, client_id: &str) -> Vec<(i64, i64)> {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending
            .iter()
            .filter_map(|(hour, clients)| clients.get(client_id).map(|n| (*hour, *n)))
            .collect()
    }

    /// Takes every unflushed count: (client id, hour start, tokens).
    fn take(&self) -> Vec<(String, i64, i64)> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        taken
            .into_iter()
            .flat_map(|(hour, clients)| clients.into_iter().map(move |(c, n)| (c, hour, n)))
            .collect()
    }

    /// Adds counts back (their write failed); they go out with the next flush.
    fn put_back(&self, rows: impl IntoIterator<Item = (String, i64, i64)>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (client, hour, n) in rows {
            *pending.entry(hour).or_default().entry(client).or_default() += n;
        }
    }

    /// Writes every unflushed count. Rows written before a failure stay written; the rest are put back, so no
    /// token is counted twice or lost while the process lives.
    pub async fn flush(&self, store: &Store) -> Result<usize, StoreError> {
        let rows = self.take();
        if rows.is_empty() {
            return Ok(0);
        }
        match store.usage_add(&rows).await {
            Ok(()) => Ok(rows.len()),
            Err((written, e)) => {
                self.put_back(rows.into_iter().skip(written));
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_gather_per_client_and_hour_and_survive_a_failed_write() {
        let u = Usage::default();
        for t in [10, 20, 3_599, 3_600] {
            u.record("a", t);
        }
        u.record("b", 30);
        let mut a = u.pending_of("a");
        a.sort();
        assert_eq!(a, vec![(0, 3), (3_600, 1)]);
        let mut rows = u.take();
        rows.sort();
        assert_eq!(
            rows,
            vec![
                ("a".into(), 0, 3),
                ("a".into(), 3_600, 1),
                ("b".into(), 0, 1)
            ]
        );
        assert!(u.pending_of("a").is_empty());
        // Put back beside new counts, they add up.
        u.record("a", 100);
        u.put_back(rows);
        let mut a = u.pending_of("a");
        a.sort();
        assert_eq!(a, vec![(0, 4), (3_600, 1)]);
    }
}
