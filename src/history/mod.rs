//! The API history, written with group commit.
//!
//! Each request hands its row to one writer task and waits; the writer commits everything
//! that arrived while the previous batch was being written, in one transaction, then answers
//! every waiter. So a row is durable before its response leaves, and a busy server commits
//! hundreds of rows per transaction instead of one.

mod layer;

pub use layer::{CallInfo, CallSlot, HistoryState, record, record_calls};

use crate::domain::api_user::NewSession;
use crate::domain::history::HistoryEntry;
use crate::domain::ids::SessionId;
use crate::store::Db;
use crate::telemetry::metrics::HistoryFigures;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const MAX_BATCH: usize = 4096;

#[derive(Debug, thiserror::Error)]
#[error("the history could not be written")]
pub struct RecordError;

/// Looks at each batch of rows the writer has just committed, off the requests' path: the
/// alerts' detector counts refusals this way without a query of its own.
pub trait CallObserver: Send + Sync {
    fn observe(&self, rows: &[HistoryEntry]);
}

enum Message {
    Row(
        HistoryEntry,
        Option<PendingSession>,
        oneshot::Sender<Result<(), RecordError>>,
    ),
    Stop,
}

/// A session a login made, to be written in the same transaction as the login's history row:
/// the login answers once both are committed, after one commit instead of two.
#[derive(Debug, Clone)]
pub struct PendingSession(pub Box<NewSession>);

/// The handle requests use to write their history row.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Message>,
    pending: Arc<AtomicUsize>,
    stats: Arc<WriterStats>,
}

/// What the writer has done so far.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub batches: AtomicU64,
    pub rows: AtomicU64,
    pub commit_micros: AtomicU64,
    /// Batches that could not be committed.
    pub failures: AtomicU64,
}

pub struct RecorderTask {
    tx: mpsc::UnboundedSender<Message>,
    handle: JoinHandle<()>,
}

impl Recorder {
    /// Starts the writer; `commit_time` gets the duration of every batch's commit, and the
    /// `observer` sees every committed batch.
    pub fn start(
        db: Db,
        commit_time: metrics::Histogram,
        observer: Option<Arc<dyn CallObserver>>,
    ) -> (Recorder, RecorderTask) {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let stats = Arc::new(WriterStats::default());
        let handle = tokio::spawn(write_batches(
            db,
            rx,
            pending.clone(),
            stats.clone(),
            commit_time,
            observer,
        ));
        (
            Recorder {
                tx: tx.clone(),
                pending,
                stats,
            },
            RecorderTask { tx, handle },
        )
    }

    /// Writes `entry`, and `session` with it, and returns once they are committed.
    pub async fn record(
        &self,
        entry: HistoryEntry,
        session: Option<PendingSession>,
    ) -> Result<(), RecordError> {
        let (done, wait) = oneshot::channel();
        self.pending.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Message::Row(entry, session, done)).is_err() {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            return Err(RecordError);
        }
        wait.await.unwrap_or(Err(RecordError))
    }

    /// Writes `entry` without waiting: for a call whose client is gone.
    pub fn record_detached(&self, entry: HistoryEntry) {
        let (done, _) = oneshot::channel();
        self.pending.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Message::Row(entry, None, done)).is_err() {
            self.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Rows waiting for their commit (for metrics and tests).
    pub fn queue_depth(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// What `/metrics` shows of the writer.
    pub fn figures(&self) -> HistoryFigures {
        HistoryFigures {
            queue_depth: self.queue_depth(),
            rows: self.stats.rows.load(Ordering::Relaxed),
            batches: self.stats.batches.load(Ordering::Relaxed),
            failures: self.stats.failures.load(Ordering::Relaxed),
        }
    }
}

impl RecorderTask {
    /// Writes every row handed in before this call, then stops the writer.
    pub async fn finish(self) {
        let _ = self.tx.send(Message::Stop);
        if let Err(error) = self.handle.await {
            tracing::error!(%error, "history writer ended abnormally");
        }
    }
}

async fn write_batches(
    db: Db,
    mut rx: mpsc::UnboundedReceiver<Message>,
    pending: Arc<AtomicUsize>,
    stats: Arc<WriterStats>,
    commit_time: metrics::Histogram,
    observer: Option<Arc<dyn CallObserver>>,
) {
    let _let_go = LetGo(db.clone());
    let mut rows = Vec::with_capacity(256);
    let mut sessions = Vec::new();
    let mut waiters = Vec::with_capacity(256);
    let mut stopping = false;
    while !stopping {
        if rx.is_empty() {
            db.history_idle();
        }
        let Some(first) = rx.recv().await else { break };
        // Calls already woken on this worker run first and join the batch: a batch twice as
        // large for the cost of one turn of the scheduler.
        tokio::task::yield_now().await;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Row(row, session, done) => {
                    rows.push(row);
                    waiters.push((done, session.as_ref().map(|s| s.0.id)));
                    sessions.extend(session.map(|s| *s.0));
                }
                Message::Stop => stopping = true,
            }
            if rows.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if rows.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        let result = commit_with_retry(&db, &rows, &sessions).await;
        let elapsed = started.elapsed();
        commit_time.record(elapsed.as_secs_f64());
        if result.is_ok() {
            stats.batches.fetch_add(1, Ordering::Relaxed);
            stats.rows.fetch_add(rows.len() as u64, Ordering::Relaxed);
            stats
                .commit_micros
                .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        } else {
            stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        pending.fetch_sub(rows.len(), Ordering::Relaxed);
        for (done, session) in waiters.drain(..) {
            let _ = done.send(match (&result, session) {
                // A login whose session was left out (its user deleted meanwhile) gets no
                // token: it is answered as if its row had failed.
                (Ok(written), Some(session)) if !written.contains(&session) => Err(RecordError),
                (Ok(_), _) => Ok(()),
                (Err(_), _) => Err(RecordError),
            });
        }
        // After the answers are released: the requests never wait for this.
        if let Some(observer) = &observer {
            observer.observe(&rows);
        }
        db.history_answered().await;
        rows.clear();
        sessions.clear();
    }
}

/// Gives back what the store kept for the writer however the writer ends, a panic included:
/// SQLite's only write connection must not go with it.
struct LetGo(Db);

impl Drop for LetGo {
    fn drop(&mut self) {
        self.0.history_idle();
    }
}

/// One retry covers a passing lock held by another process; after that the requests are
/// answered 503 rather than left waiting. A database that could not be reached for the pool's
/// whole wait (PostgreSQL restarting) gets no second wait: the rows that queued meanwhile try
/// again as the next batch, so no call waits more than twice the pool's timeout.
async fn commit_with_retry(
    db: &Db,
    rows: &[HistoryEntry],
    sessions: &[NewSession],
) -> Result<Vec<SessionId>, RecordError> {
    let mut attempt = 0;
    loop {
        match db.append_history(rows, sessions).await {
            Ok(written) => return Ok(written),
            Err(error) => {
                tracing::error!(
                    error = &error as &dyn std::error::Error,
                    rows = rows.len(),
                    attempt,
                    "history commit failed"
                );
                if attempt == 1 || error.waited_out() {
                    return Err(RecordError);
                }
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
