//! Writes usage rows off the hot path. Requests hand their row to a bounded channel and move
//! on; one task batches rows into transactions. Nothing is dropped: when the channel is full
//! the row waits in a spawned task instead of blocking the response. On shutdown the writer
//! drains everything it has been given before it stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use store::{NewUsage, Store};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Rows written in one transaction at most.
const MAX_BATCH: usize = 256;
/// Rows that may wait for room beyond the queue (in tasks) before rows are dropped.
const MAX_PARKED: u64 = 100_000;
/// How long the first row of a batch waits for others to join it.
const BATCH_WINDOW: Duration = Duration::from_millis(25);
/// Attempts per batch before its rows are given up (and logged).
const MAX_ATTEMPTS: u32 = 5;

/// Counters for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub written: AtomicU64,
    pub failed: AtomicU64,
    /// Rows waiting in tasks for room in the full queue.
    pub parked: AtomicU64,
}

/// The sending side; cheap to clone, one per request path.
#[derive(Clone)]
pub struct UsageWriter {
    tx: mpsc::Sender<NewUsage>,
    stats: Arc<WriterStats>,
}

/// Owns the writer task; `close` drains it.
pub struct UsageWriterTask {
    handle: JoinHandle<()>,
}

impl UsageWriter {
    /// Starts the writer task with room for `capacity` queued rows.
    pub fn spawn(store: Store, capacity: usize) -> (UsageWriter, UsageWriterTask) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let stats = Arc::new(WriterStats::default());
        let handle = tokio::spawn(run(store, rx, stats.clone()));
        (UsageWriter { tx, stats }, UsageWriterTask { handle })
    }

    /// Queues a row without waiting. When the queue is full the row is handed to a task that
    /// waits for room, so a burst never loses rows and never stalls the caller.
    pub fn record(&self, row: NewUsage) {
        match self.tx.try_send(row) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(row)) => {
                // Bounded too: during a long database outage rows beyond this are counted
                // and logged as lost instead of growing memory without end.
                if self.stats.parked.fetch_add(1, Ordering::Relaxed) >= MAX_PARKED {
                    self.stats.parked.fetch_sub(1, Ordering::Relaxed);
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(request_id = %row.request_id, "usage queue overflowing; row dropped");
                    return;
                }
                let tx = self.tx.clone();
                let stats = Arc::clone(&self.stats);
                tokio::spawn(async move {
                    if tx.send(row).await.is_err() {
                        tracing::error!("usage writer stopped before a queued row could be handed over");
                    }
                    stats.parked.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!("usage row recorded after the writer stopped");
            }
        }
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }
}

impl UsageWriterTask {
    /// Waits until every row handed over before all `UsageWriter`s were dropped is written,
    /// or `timeout` passes. Returns `true` when the queue drained.
    pub async fn close(self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.handle).await.is_ok()
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<NewUsage>, stats: Arc<WriterStats>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // `recv_many` returns 0 only when every sender is gone and the queue is empty.
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // Let a burst gather first: one transaction for many rows costs the database (and the
        // cores the gateway shares with it) far less than one transaction per row.
        if batch.len() < MAX_BATCH {
            tokio::time::sleep(BATCH_WINDOW).await;
            while batch.len() < MAX_BATCH
                && let Ok(row) = rx.try_recv()
            {
                batch.push(row);
            }
        }
        write_batch(&store, &batch, &stats).await;
        batch.clear();
    }
}

async fn write_batch(store: &Store, batch: &[NewUsage], stats: &WriterStats) {
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=MAX_ATTEMPTS {
        match store.insert_usage(batch).await {
            Ok(()) => {
                stats.written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                touch_last_used(store, batch).await;
                return;
            }
            Err(e) if attempt < MAX_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, rows = batch.len(), "writing usage rows failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                stats.failed.fetch_add(batch.len() as u64, Ordering::Relaxed);
                let ids: Vec<&str> = batch.iter().map(|r| r.request_id.as_str()).collect();
                tracing::error!(error = %e, rows = batch.len(), request_ids = ?ids, "usage rows could not be written");
            }
        }
    }
}

/// Stamps `last_used_at` of the batch's accounts and keys with their latest row (best
/// effort: the rows themselves are what matters).
async fn touch_last_used(store: &Store, batch: &[NewUsage]) {
    let Some(latest) = batch.iter().map(|r| r.created_at).max() else { return };
    let mut accounts: Vec<i64> = batch.iter().filter_map(|r| r.account_id).collect();
    let mut keys: Vec<i64> = batch.iter().filter_map(|r| r.api_key_id).collect();
    for ids in [&mut accounts, &mut keys] {
        ids.sort_unstable();
        ids.dedup();
    }
    if let Err(e) = store.touch_accounts_used(&accounts, latest).await {
        tracing::warn!(error = %e, "stamping accounts' last use failed");
    }
    if let Err(e) = store.touch_api_keys_used(&keys, latest).await {
        tracing::warn!(error = %e, "stamping API keys' last use failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::testing::TestDb;

    fn row(i: usize) -> NewUsage {
        NewUsage {
            request_id: format!("req-{i}"),
            user_id: Some(1),
            api_key_id: Some(1),
            account_id: Some(1),
            group_id: None,
            requested_model: "m".into(),
            upstream_model: "m".into(),
            input_tokens: 1,
            output_tokens: 1,
            cache_creation_tokens: 0,
            cache_creation_5m_tokens: 0,
            cache_creation_1h_tokens: 0,
            cache_read_tokens: 0,
            input_cost: 0.0,
            output_cost: 0.0,
            cache_creation_cost: 0.0,
            cache_read_cost: 0.0,
            total_cost: 0.0,
            actual_cost: 0.0,
            rate_multiplier: 1.0,
            stream: false,
            status_code: 200,
            error_message: String::new(),
            duration_ms: 1,
            first_token_ms: None,
            user_agent: String::new(),
            created_at: time::OffsetDateTime::now_utc(),
        }
    }

    #[tokio::test]
    async fn a_burst_beyond_capacity_is_fully_written_and_drained_on_close() {
        let db = TestDb::sqlite().await;
        let (writer, task) = UsageWriter::spawn(db.store.clone(), 8);
        for i in 0..1000 {
            writer.record(row(i));
        }
        // Rows parked in overflow tasks hold their own senders, so closing waits for them too.
        let stats = Arc::clone(&writer.stats);
        drop(writer);
        assert!(task.close(Duration::from_secs(30)).await, "the queue drains");
        assert_eq!(stats.written.load(Ordering::Relaxed), 1000);
        assert_eq!(stats.failed.load(Ordering::Relaxed), 0);
        let totals = db.store.usage_totals(&store::UsageFilter::default()).await.unwrap();
        assert_eq!(totals.requests, 1000, "every row reached the database exactly once");
    }

    #[tokio::test]
    async fn rows_queued_before_close_are_not_lost() {
        let db = TestDb::sqlite().await;
        let (writer, task) = UsageWriter::spawn(db.store.clone(), 64);
        for i in 0..20 {
            writer.record(row(i));
        }
        drop(writer);
        assert!(task.close(Duration::from_secs(10)).await);
        assert_eq!(db.store.usage_totals(&store::UsageFilter::default()).await.unwrap().requests, 20);
    }
}
