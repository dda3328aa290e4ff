//! Tokens issued per account-owned client (a console key) per hour, counted in memory on the token path (an add
//! under the lock of the calling thread's own shard, which no other request thread takes; no database write per
//! token) and added to `token_usage` by housekeeping every `usage_flush_interval`. Every node counts its own
//! tokens and adds them, so the table holds the cluster's totals; this node's unflushed counts are added to what
//! the console reads, so its own requests show at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use keyward_core::console::hour_start;

use crate::store::{Store, StoreError};

/// Counts not yet written: hour start → client id → (client instance, tokens) for each instance counted (one,
/// unless the client was deleted and made again with the same id within the hour).
type Counts = HashMap<i64, HashMap<String, Vec<(i64, i64)>>>;

/// One row to write: (client id, client instance, hour start, tokens).
type Row = (String, i64, i64, i64);

/// Counts not yet written, in shards: each thread adds to its own (threads outnumbering shards share), so request
/// threads do not wait on each other; the flush and the console take each shard in turn.
#[derive(Debug)]
pub struct Usage {
    shards: Box<[Mutex<Counts>]>,
}

impl Default for Usage {
    fn default() -> Self {
        let n = std::thread::available_parallelism().map_or(4, |n| n.get() * 2);
        Usage {
            shards: (0..n).map(|_| Mutex::default()).collect(),
        }
    }
}

/// This thread's number, given once at its first count.
fn thread_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    SLOT.with(|s| *s)
}

/// Adds `n` to the count of `instance` in `counts`.
fn add(counts: &mut Vec<(i64, i64)>, instance: i64, n: i64) {
    match counts.iter_mut().find(|(i, _)| *i == instance) {
        Some((_, c)) => *c += n,
        None => counts.push((instance, n)),
    }
}

impl Usage {
    fn shard(&self, i: usize) -> std::sync::MutexGuard<'_, Counts> {
        self.shards[i % self.shards.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one token issued to `client_id` (its instance `instance`) at `now`. The id is copied only the
    /// first time in an hour.
    pub fn record(&self, client_id: &str, instance: i64, now: i64) {
        let mut pending = self.shard(thread_slot());
        let hour = pending.entry(hour_start(now)).or_default();
        match hour.get_mut(client_id) {
            Some(counts) => add(counts, instance, 1),
            None => {
                hour.insert(client_id.to_owned(), vec![(instance, 1)]);
            }
        }
    }

    /// This node's unflushed counts for one instance of a client: (hour start, tokens), an hour possibly more
    /// than once.
    pub fn pending_of(&self, client_id: &str, instance: i64) -> Vec<(i64, i64)> {
        (0..self.shards.len())
            .flat_map(|i| {
                self.shard(i)
                    .iter()
                    .filter_map(|(hour, clients)| {
                        let counts = clients.get(client_id)?;
                        let (_, n) = counts.iter().find(|(i, _)| *i == instance)?;
                        Some((*hour, *n))
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Takes every unflushed count, one row per client instance and hour.
    fn take(&self) -> Vec<Row> {
        let mut merged = Counts::new();
        for i in 0..self.shards.len() {
            let taken = std::mem::take(&mut *self.shard(i));
            for (hour, clients) in taken {
                let into = merged.entry(hour).or_default();
                for (c, counts) in clients {
                    let slot = into.entry(c).or_default();
                    for (instance, n) in counts {
                        add(slot, instance, n);
                    }
                }
            }
        }
        merged
            .into_iter()
            .flat_map(|(hour, clients)| {
                clients.into_iter().flat_map(move |(c, counts)| {
                    counts
                        .into_iter()
                        .map(move |(instance, n)| (c.clone(), instance, hour, n))
                })
            })
            .collect()
    }

    /// Adds counts back (their write failed); they go out with the next flush.
    fn put_back(&self, rows: impl IntoIterator<Item = Row>) {
        let mut pending = self.shard(0);
        for (client, instance, hour, n) in rows {
            add(
                pending.entry(hour).or_default().entry(client).or_default(),
                instance,
                n,
            );
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
    fn counts_gather_per_client_instance_and_hour_and_survive_a_failed_write() {
        let u = Usage::default();
        for t in [10, 20, 3_599, 3_600] {
            u.record("a", 1, t);
        }
        u.record("b", 1, 30);
        // The same id, another instance (deleted and made again within the hour): counted apart.
        u.record("a", 2, 40);
        let mut a = u.pending_of("a", 1);
        a.sort();
        assert_eq!(a, vec![(0, 3), (3_600, 1)]);
        assert_eq!(u.pending_of("a", 2), vec![(0, 1)]);
        let mut rows = u.take();
        rows.sort();
        assert_eq!(
            rows,
            vec![
                ("a".into(), 1, 0, 3),
                ("a".into(), 1, 3_600, 1),
                ("a".into(), 2, 0, 1),
                ("b".into(), 1, 0, 1)
            ]
        );
        assert!(u.pending_of("a", 1).is_empty());
        // Put back beside new counts, they add up.
        u.record("a", 1, 100);
        u.put_back(rows);
        let mut sums = std::collections::BTreeMap::new();
        for (hour, n) in u.pending_of("a", 1) {
            *sums.entry(hour).or_insert(0) += n;
        }
        assert_eq!(
            sums.into_iter().collect::<Vec<_>>(),
            vec![(0, 4), (3_600, 1)]
        );
        // Counts from several threads (so several shards) come out as one row per client and hour.
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| (0..10).for_each(|_| u.record("c", 1, 7_200)));
            }
        });
        let rows = u.take();
        assert_eq!(
            rows.iter().filter(|r| r.0 == "c").collect::<Vec<_>>(),
            vec![&("c".to_owned(), 1, 7_200, 40)]
        );
    }
}
