//! Checkpoints off the writer's path.
//!
//! SQLite's default is for the connection that commits to copy the write-ahead log back into
//! the database whenever the log passes 1,000 pages, waiting for the disk twice as it does:
//! every call whose history row was in that batch, and every call queued behind it, waited
//! with it (the p99 of `/api/v1/me` was that wait). A server's writer leaves the copying to a
//! connection of its own, which follows the log beside the writer. A checkpoint beside a busy
//! writer never reaches the log's end, though, and only a log copied to its end starts again
//! from its beginning: so when the log is about to pass [`RESTART_AT`] pages, the history
//! writer checkpoints too, after it has answered its batch's calls, and finds almost every page
//! already copied. Should the background connection fail, the writer checkpoints after every
//! batch of a round, as SQLite would have.

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, SqliteConnection};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The log's length, in pages (4 KiB each by default), that the writer aims to restart it
/// before: at the round after which, growing as much as since the previous one, it would
/// pass it (by ~1,700 pages a round when a writer commits without a pause), but not before
/// half of it...
const RESTART_AT: i64 = 4000;
/// ...once at most this many pages are left to copy: a log that a long read kept from being
/// copied is left to the background connection until it has caught up, rather than copied
/// by the writer while every call waits.
const CAUGHT_UP: i64 = 500;

/// The least time between two rounds: the log grows by at most this much of the writer's
/// work before the writer learns that it should restart it.
const ROUND: Duration = Duration::from_millis(25);

/// A server that writes no history still has its log copied this often.
const QUIET: Duration = Duration::from_secs(10);

/// The checkpoint that waits for no one.
const PASSIVE: &str = "PRAGMA wal_checkpoint(PASSIVE)";

/// The background checkpointer. It stops with its store's `close`, or when dropped.
pub(super) struct Checkpointer {
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Whether the writer should restart the log: set by a round that found it long and
    /// almost all copied, and while the rounds fail, so that the writer takes over.
    restart: AtomicBool,
    /// Raised at each commit of the history writer; an idle server runs a round every
    /// [`QUIET`] only.
    wrote: Notify,
    /// Raised by `stop`: the task closes its connection and ends.
    stop: Notify,
}

impl Checkpointer {
    pub(super) fn start(options: SqliteConnectOptions) -> Self {
        let shared = Arc::new(Shared::default());
        Self {
            task: std::sync::Mutex::new(Some(tokio::spawn(run(options, shared.clone())))),
            shared,
        }
    }

    /// After the history writer's commit: whether it should checkpoint, once it has answered
    /// the batch's calls, so that its next write restarts the log. Answers yes once per long
    /// log; otherwise the background connection is told to copy what was written.
    pub(super) fn committed(&self) -> bool {
        let restart = &self.shared.restart;
        if restart.load(Ordering::Relaxed) && restart.swap(false, Ordering::Relaxed) {
            return true;
        }
        self.shared.wrote.notify_one();
        false
    }

    /// Runs the writer's checkpoint on the history writer's connection. A checkpoint the
    /// background one kept from running is tried again after the next batch.
    pub(super) fn restart(&self, writer: &rusqlite::Connection) {
        let round = writer.query_row(PASSIVE, [], |row| {
            Ok(Round::from((row.get(0)?, row.get(1)?, row.get(2)?)))
        });
        match round {
            Ok(round) if round.busy => self.shared.restart.store(true, Ordering::Relaxed),
            Ok(_) => {}
            Err(error) => {
                self.shared.restart.store(true, Ordering::Relaxed);
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "checkpoint failed"
                );
            }
        }
    }

    /// Stops the task and waits until its connection is closed: the last connection to close
    /// copies the log back and removes it, which must not happen after the store is closed.
    pub(super) async fn stop(&self) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            self.shared.stop.notify_one();
            let _ = task.await;
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

async fn run(options: SqliteConnectOptions, shared: Arc<Shared>) {
    let mut connection: Option<SqliteConnection> = None;
    let mut failing = false;
    // The log's length at the previous round.
    let mut previous = 0;
    loop {
        // Other writes (the console's, a login's session) are copied at the next round too.
        tokio::select! {
            () = shared.wrote.notified() => {}
            () = tokio::time::sleep(QUIET) => {}
            () = shared.stop.notified() => break,
        }
        let result = match &mut connection {
            Some(connection) => checkpoint(connection).await,
            None => match options.connect().await {
                Ok(mut opened) => {
                    let result = checkpoint(&mut opened).await;
                    connection = Some(opened);
                    result
                }
                Err(error) => Err(error),
            },
        };
        match result {
            Ok(round) => {
                // Unless another checkpoint (the writer's, another process's) held the log,
                // which leaves nothing learnt about its length.
                if !round.busy {
                    // A shorter log than at the previous round started again in between.
                    let grew = round.pages - if round.pages >= previous { previous } else { 0 };
                    previous = round.pages;
                    let due = round.pages >= RESTART_AT / 2
                        && round.pages + grew >= RESTART_AT
                        && round.pages - round.copied <= CAUGHT_UP;
                    shared.restart.store(due, Ordering::Relaxed);
                }
                if failing {
                    failing = false;
                    tracing::info!("background checkpoints work again");
                }
            }
            Err(error) => {
                // The writer checkpoints meanwhile.
                shared.restart.store(true, Ordering::Relaxed);
                if !failing {
                    tracing::warn!(
                        error = &error as &dyn std::error::Error,
                        "background checkpoint failed; the writer checkpoints until it works again"
                    );
                }
                failing = true;
                if let Some(connection) = connection.take() {
                    let _ = connection.close().await;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(ROUND) => {}
            () = shared.stop.notified() => break,
        }
    }
    if let Some(connection) = connection {
        let _ = connection.close().await;
    }
}

/// What a checkpoint did.
struct Round {
    /// Another checkpoint kept this one from running.
    busy: bool,
    /// The log's length, in pages.
    pages: i64,
    /// Of which copied into the database.
    copied: i64,
}

/// Copies what it can of the log.
async fn checkpoint(connection: &mut SqliteConnection) -> Result<Round, sqlx::Error> {
    let columns: (i64, i64, i64) = sqlx::query_as(PASSIVE).fetch_one(connection).await?;
    Ok(Round::from(columns))
}

impl From<(i64, i64, i64)> for Round {
    /// From `PRAGMA wal_checkpoint`'s row.
    fn from((busy, pages, copied): (i64, i64, i64)) -> Self {
        Self {
            busy: busy != 0,
            pages,
            copied,
        }
    }
}
