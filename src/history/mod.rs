//! The API history, written with group commit.
//!
//! Each request hands its row to one writer and waits; the writer commits everything that
//! arrived while the previous batch was being written, in one transaction, then answers every
//! waiter. So a row is durable before its response leaves, and a busy server commits hundreds
//! of rows per transaction instead of one. On a SQLite file the writer is a thread with its own
//! connection; elsewhere it is a task that writes through the store's async methods.

mod layer;

pub use layer::{CallInfo, CallSlot, HistoryState, Run, record, record_calls};

use crate::domain::api_user::NewSession;
use crate::domain::history::{HistoryEntry, LeftOut, settle_logins};
use crate::domain::ids::SessionId;
use crate::store::{Db, HistoryWriter, StoreError};
use crate::telemetry::metrics::HistoryFigures;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, oneshot};

const MAX_BATCH: usize = 4096;

/// Why a call's row was not written as it was handed in.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the history could not be written")]
    Unwritten,
    /// A login whose session was left out: its row was written saying so (see [`LeftOut`]).
    #[error("the login's session was left out ({})", .0.outcome)]
    SessionLeftOut(LeftOut),
}

/// Looks at each batch of rows the writer has just committed, off the requests' path: the
/// alerts' detector counts refusals this way without a query of its own.
pub trait CallObserver: Send + Sync {
    fn observe(&self, rows: &[HistoryEntry]);
}

/// Where a call waits for its row's commit.
type Done = oneshot::Sender<Result<(), RecordError>>;

enum Message {
    Row(HistoryEntry, Option<PendingSession>, Done),
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
    changing: Arc<Changing>,
}

/// The calls under way that may change something, each in a task of its own: a stop waits for
/// them, whatever it stops waiting for, so that none is cut between its change and its row.
#[derive(Default)]
struct Changing {
    count: AtomicUsize,
    none: Notify,
}

/// A call that may change something, under way until dropped.
pub struct ChangeUnderWay(Arc<Changing>);

impl Drop for ChangeUnderWay {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.none.notify_waiters();
        }
    }
}

/// What the writer has done so far.
#[derive(Debug)]
pub struct WriterStats {
    pub batches: AtomicU64,
    pub rows: AtomicU64,
    pub commit_micros: AtomicU64,
    /// Batches that could not be committed.
    pub failures: AtomicU64,
    /// Whether the last batch could not be committed.
    pub failing: AtomicBool,
    /// When the batch being written began, in microseconds after `epoch`, plus one; 0 while
    /// none is.
    writing_since: AtomicU64,
    epoch: Instant,
}

impl Default for WriterStats {
    fn default() -> Self {
        Self {
            batches: AtomicU64::default(),
            rows: AtomicU64::default(),
            commit_micros: AtomicU64::default(),
            failures: AtomicU64::default(),
            failing: AtomicBool::default(),
            writing_since: AtomicU64::default(),
            epoch: Instant::now(),
        }
    }
}

impl WriterStats {
    fn writing(&self, since: Instant) {
        let micros = since.saturating_duration_since(self.epoch).as_micros();
        let micros = u64::try_from(micros).unwrap_or(u64::MAX - 1);
        self.writing_since.store(micros + 1, Ordering::Relaxed);
    }

    /// How long the batch being written has waited for its commit (a database locked by
    /// another process, a disk that does not answer), if one is being written.
    pub fn held_up(&self) -> Option<Duration> {
        match self.writing_since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(
                self.epoch
                    .elapsed()
                    .saturating_sub(Duration::from_micros(since - 1)),
            ),
        }
    }
}

pub struct RecorderTask {
    tx: mpsc::UnboundedSender<Message>,
    writer: Writer,
}

enum Writer {
    Thread(std::thread::JoinHandle<()>),
    Task(tokio::task::JoinHandle<()>),
}

impl Recorder {
    /// Starts the writer: on a thread of its own with a store that has its own writer (a
    /// SQLite file), else as a task. `commit_time` gets the duration of every batch's commit,
    /// and the `observer` sees every committed batch.
    pub fn start(
        db: Db,
        commit_time: metrics::Histogram,
        observer: Option<Arc<dyn CallObserver>>,
    ) -> Result<(Recorder, RecorderTask), StoreError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let stats = Arc::new(WriterStats::default());
        let books = Books {
            pending: pending.clone(),
            stats: stats.clone(),
            commit_time,
            observer,
        };
        let writer = match db.history_writer()? {
            Some(writer) => {
                let thread = std::thread::Builder::new()
                    .name("keyward-history".to_owned())
                    .spawn(move || write_on_thread(writer, rx, books))
                    .map_err(|e| {
                        StoreError::Open(format!("cannot start the history writer: {e}"))
                    })?;
                Writer::Thread(thread)
            }
            None => Writer::Task(tokio::spawn(write_as_task(db, rx, books))),
        };
        Ok((
            Recorder {
                tx: tx.clone(),
                pending,
                stats,
                changing: Arc::default(),
            },
            RecorderTask { tx, writer },
        ))
    }

    /// Counts a call that may change something as under way, until the guard is dropped.
    pub fn change_under_way(&self) -> ChangeUnderWay {
        self.changing.count.fetch_add(1, Ordering::AcqRel);
        ChangeUnderWay(self.changing.clone())
    }

    /// Resolves once no call that may change something is under way.
    pub async fn changes_done(&self) {
        loop {
            let none = self.changing.none.notified();
            if self.changing.count.load(Ordering::Acquire) == 0 {
                return;
            }
            none.await;
        }
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
            return Err(RecordError::Unwritten);
        }
        wait.await.unwrap_or(Err(RecordError::Unwritten))
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
    /// Writes every row handed in before this call, then stops the writer and waits until it
    /// has let go of what it had open.
    pub async fn finish(self) {
        let _ = self.tx.send(Message::Stop);
        let ended = match self.writer {
            Writer::Thread(thread) => {
                match tokio::task::spawn_blocking(move || thread.join()).await {
                    Ok(joined) => joined.is_ok(),
                    Err(_) => false,
                }
            }
            Writer::Task(task) => task.await.is_ok(),
        };
        if !ended {
            tracing::error!("history writer ended abnormally");
        }
    }
}

/// What the writer keeps up besides the rows: the rows waiting, its figures, the observer.
struct Books {
    pending: Arc<AtomicUsize>,
    stats: Arc<WriterStats>,
    commit_time: metrics::Histogram,
    observer: Option<Arc<dyn CallObserver>>,
}

/// The rows that arrived while the previous batch was being written, and their calls.
#[derive(Default)]
struct Batch {
    rows: Vec<HistoryEntry>,
    sessions: Vec<NewSession>,
    waiters: Vec<(Done, Option<SessionId>)>,
    stopping: bool,
}

impl Batch {
    /// Takes `first` and whatever else is waiting, up to [`MAX_BATCH`] rows.
    fn gather(&mut self, first: Message, rx: &mut mpsc::UnboundedReceiver<Message>) {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Row(row, session, done) => {
                    self.rows.push(row);
                    self.waiters.push((done, session.as_ref().map(|s| s.0.id)));
                    self.sessions.extend(session.map(|s| *s.0));
                }
                Message::Stop => self.stopping = true,
            }
            if self.rows.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
    }

    /// Answers the batch's calls with what its commit, which took `elapsed`, gave.
    fn answer(
        &mut self,
        books: &Books,
        result: Result<Vec<LeftOut>, RecordError>,
        elapsed: Duration,
    ) {
        books.commit_time.record(elapsed.as_secs_f64());
        let stats = &books.stats;
        stats.writing_since.store(0, Ordering::Relaxed);
        stats.failing.store(result.is_err(), Ordering::Relaxed);
        if result.is_ok() {
            stats.batches.fetch_add(1, Ordering::Relaxed);
            stats
                .rows
                .fetch_add(self.rows.len() as u64, Ordering::Relaxed);
            stats
                .commit_micros
                .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        } else {
            stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        books.pending.fetch_sub(self.rows.len(), Ordering::Relaxed);
        let left_out = result.as_deref().unwrap_or_default();
        for (done, session) in self.waiters.drain(..) {
            let left = session.and_then(|id| left_out.iter().find(|left| left.session == id));
            let _ = done.send(match (&result, left) {
                // A login whose session was left out gets no token.
                (Ok(_), Some(left)) => Err(RecordError::SessionLeftOut(*left)),
                (Ok(_), None) => Ok(()),
                (Err(_), _) => Err(RecordError::Unwritten),
            });
        }
        // After the answers are released: the requests never wait for this. A left-out
        // login's row as it was written.
        if let Some(observer) = &books.observer {
            observer.observe(&settle_logins(&self.rows, left_out));
        }
        self.rows.clear();
        self.sessions.clear();
    }
}

/// The writer of a store with a writer of its own, on its thread: no hand-over between a
/// task and the database's thread per batch.
fn write_on_thread(
    mut writer: Box<dyn HistoryWriter>,
    mut rx: mpsc::UnboundedReceiver<Message>,
    books: Books,
) {
    let mut batch = Batch::default();
    while !batch.stopping {
        if rx.is_empty() {
            writer.idle();
        }
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        batch.gather(first, &mut rx);
        if batch.rows.is_empty() {
            continue;
        }
        let started = Instant::now();
        books.stats.writing(started);
        let mut retry = Retry::default();
        let result = loop {
            match writer.append(&batch.rows, &batch.sessions) {
                Ok(left_out) => break Ok(left_out),
                Err(error) if retry.again(&error, batch.rows.len()) => {
                    std::thread::sleep(RETRY_AFTER);
                }
                Err(_) => break Err(RecordError::Unwritten),
            }
        };
        batch.answer(&books, result, started.elapsed());
        writer.answered();
    }
    writer.idle();
}

/// The writer of a store written through its async methods (PostgreSQL, SQLite in memory).
async fn write_as_task(db: Db, mut rx: mpsc::UnboundedReceiver<Message>, books: Books) {
    let _let_go = LetGo(db.clone());
    let mut batch = Batch::default();
    while !batch.stopping {
        if rx.is_empty() {
            db.history_idle();
        }
        let Some(first) = rx.recv().await else { break };
        // Calls already woken on this worker run first and join the batch: a batch twice as
        // large for the cost of one turn of the scheduler.
        tokio::task::yield_now().await;
        batch.gather(first, &mut rx);
        if batch.rows.is_empty() {
            continue;
        }
        let started = Instant::now();
        books.stats.writing(started);
        let mut retry = Retry::default();
        let result = loop {
            match db.append_history(&batch.rows, &batch.sessions).await {
                Ok(left_out) => break Ok(left_out),
                Err(error) if retry.again(&error, batch.rows.len()) => {
                    tokio::time::sleep(RETRY_AFTER).await;
                }
                Err(_) => break Err(RecordError::Unwritten),
            }
        };
        batch.answer(&books, result, started.elapsed());
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

const RETRY_AFTER: Duration = Duration::from_millis(50);

/// One retry covers a passing lock held by another process; after that the requests are
/// answered 503 rather than left waiting. A database that could not be reached for the pool's
/// whole wait (PostgreSQL restarting) gets no second wait: the rows that queued meanwhile try
/// again as the next batch, so no call waits more than twice the pool's timeout.
#[derive(Default)]
struct Retry {
    attempts: u32,
}

impl Retry {
    /// Logs the failed commit of `rows`; whether to try again after [`RETRY_AFTER`].
    fn again(&mut self, error: &StoreError, rows: usize) -> bool {
        tracing::error!(
            error = error as &dyn std::error::Error,
            rows,
            attempt = self.attempts,
            "history commit failed"
        );
        self.attempts += 1;
        self.attempts == 1 && !error.waited_out()
    }
}
