//! The change feed: one connection per server that LISTENs on `keyward_credentials`, so a
//! credential change committed by any process reaches this one within milliseconds.
//!
//! Notifications only say "look now"; the change log is what the cache reads. A notification
//! lost while the connection was down is therefore no change lost: while the listener is down
//! the cache reads the log every [`POLL_WHILE_DOWN`], and when it is back the marker moves
//! once more, so the cache reads everything after the last number it saw.

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// The channel the change-log triggers notify (migration 0005).
pub const CHANNEL: &str = "keyward_credentials";
/// The listening connection's `application_name`, so an operator can find it in
/// `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "keyward-listener";
/// How often the cache reads the change log while notifications arrive: only a safety net.
pub const POLL_WHILE_LIVE: Duration = Duration::from_secs(1);
/// How often while they do not: well inside the one-second promise.
pub const POLL_WHILE_DOWN: Duration = Duration::from_millis(100);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What this process knows of credential changes: a marker the cache compares on every
/// request, whether notifications are arriving, and a wake-up for the cache's sync task.
#[derive(Default)]
pub struct ChangeFeed {
    marker: AtomicU64,
    live: AtomicBool,
    wake: Notify,
}

impl ChangeFeed {
    pub fn marker(&self) -> u64 {
        self.marker.load(Ordering::SeqCst)
    }

    /// Something may have changed: move the marker and wake whoever waits.
    pub fn moved(&self) {
        self.marker.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
    }

    pub async fn wait(&self) {
        self.wake.notified().await;
    }

    pub fn poll_interval(&self) -> Duration {
        if self.live.load(Ordering::SeqCst) {
            POLL_WHILE_LIVE
        } else {
            POLL_WHILE_DOWN
        }
    }

    fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::SeqCst);
        if live {
            // Whatever was committed while nobody listened: read the log now.
            self.moved();
        } else {
            // Only the timer's pace changes: requests go on without reading the log themselves,
            // so a database that is down does not hold every request up (the poll reads it).
            self.wake.notify_one();
        }
    }
}

/// Listens until the task is aborted, reconnecting with backoff whenever the connection drops.
pub async fn listen(options: PgConnectOptions, feed: std::sync::Arc<ChangeFeed>) {
    let options = options.application_name(APPLICATION_NAME);
    let mut backoff = BACKOFF_FIRST;
    let mut ever_live = false;
    loop {
        match connect(options.clone()).await {
            Ok(mut listener) => {
                backoff = BACKOFF_FIRST;
                feed.set_live(true);
                if ever_live {
                    tracing::info!("listening for credential changes again");
                } else {
                    tracing::debug!("listening for credential changes");
                }
                ever_live = true;
                let error = loop {
                    match listener.try_recv().await {
                        Ok(Some(_)) => {
                            // One sync covers every notification already here.
                            while listener.next_buffered().is_some() {}
                            feed.moved();
                        }
                        Ok(None) => break None,
                        Err(error) => break Some(error),
                    }
                };
                feed.set_live(false);
                match error {
                    Some(error) => tracing::warn!(
                        error = &error as &dyn std::error::Error,
                        "lost the credential-change listener; reading the change log every {} ms until it is back",
                        POLL_WHILE_DOWN.as_millis()
                    ),
                    None => tracing::warn!(
                        "lost the credential-change listener; reading the change log every {} ms until it is back",
                        POLL_WHILE_DOWN.as_millis()
                    ),
                }
            }
            Err(error) => tracing::warn!(
                error = &error as &dyn std::error::Error,
                retry_ms = backoff.as_millis() as u64,
                "cannot listen for credential changes; reading the change log every {} ms meanwhile",
                POLL_WHILE_DOWN.as_millis()
            ),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// A listener on a connection of its own (a pool of one), so it never takes one of the
/// requests' connections, and a reconnect starts from scratch.
async fn connect(options: PgConnectOptions) -> Result<PgListener, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    // This loop reconnects itself, after telling the cache; the pool is this listener's alone.
    listener.eager_reconnect(false);
    listener.ignore_pool_close_event(true);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
