//! Checkpoints off the writer's path.
//!
//! SQLite's default is for the connection that commits to copy the write-ahead log back into
//! the database whenever the log passes 1,000 pages, waiting for the disk twice as it does:
//! every call whose history row was in that batch, and every call queued behind it, waited
//! with it (the p99 of `/api/v1/me` was that wait). A server's writer leaves the copying to a
//! connection of its own, which follows the log beside the writer. A checkpoint beside a busy
//! writer never reaches the log's end, though, and only a log copied to its end starts again
//! from its beginning: so once the log is [`RESTART_AT`] pages long, the writer checkpoints
//! too, after its next batch, and finds almost every page already copied.

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, SqliteConnection};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The log's length, in pages (4 KiB each), at which the writer restarts it.
const RESTART_AT: i64 = 4000;

/// The least time between two rounds: the log grows by at most this much of the writer's
/// work before the writer learns that it should restart it.
const ROUND: Duration = Duration::from_millis(25);

/// A server that writes no history still has its log copied this often.
const QUIET: Duration = Duration::from_secs(10);

/// The checkpoint that waits for no one.
pub(super) const PASSIVE: &str = "PRAGMA wal_checkpoint(PASSIVE)";

/// The background checkpointer; it stops when dropped (with its store).
pub(super) struct Checkpointer {
    task: JoinHandle<()>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// The log's length at the last round, in pages.
    log: AtomicI64,
    /// Raised at each commit of the history writer; an idle server runs a round every
    /// [`QUIET`] only.
    wrote: Notify,
}

impl Checkpointer {
    pub(super) fn start(options: SqliteConnectOptions) -> Self {
        let shared = Arc::new(Shared::default());
        Self {
            task: tokio::spawn(run(options, shared.clone())),
            shared,
        }
    }

    /// After the writer's commit: whether it should checkpoint now, so that its next write
    /// restarts the log. Answers yes once per long log.
    pub(super) fn committed(&self) -> bool {
        self.shared.wrote.notify_one();
        let log = &self.shared.log;
        log.load(Ordering::Relaxed) >= RESTART_AT && log.swap(0, Ordering::Relaxed) > 0
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(options: SqliteConnectOptions, shared: Arc<Shared>) {
    let mut connection: Option<SqliteConnection> = None;
    let mut failing = false;
    loop {
        // Other writes (the console's, a login's session) are copied at the next round too.
        tokio::select! {
            () = shared.wrote.notified() => {}
            () = tokio::time::sleep(QUIET) => {}
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
            Ok(pages) => {
                shared.log.store(pages, Ordering::Relaxed);
                if failing {
                    failing = false;
                    tracing::info!("background checkpoints work again");
                }
            }
            Err(error) => {
                // Once, not at every round; the writer's checkpoints still run meanwhile.
                if !failing {
                    tracing::warn!(
                        error = &error as &dyn std::error::Error,
                        "background checkpoint failed; retrying"
                    );
                }
                failing = true;
                if let Some(connection) = connection.take() {
                    let _ = connection.close().await;
                }
            }
        }
        tokio::time::sleep(ROUND).await;
    }
}

/// Copies what it can of the log; answers the log's length in pages.
async fn checkpoint(connection: &mut SqliteConnection) -> Result<i64, sqlx::Error> {
    let (_busy, pages, _copied): (i64, i64, i64) =
        sqlx::query_as(PASSIVE).fetch_one(connection).await?;
    Ok(pages)
}
