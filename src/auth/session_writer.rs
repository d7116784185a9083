//! Group commit for logins: sessions created at the same moment share one transaction, so
//! the single SQLite writer commits once for a burst of logins instead of once per login.

use crate::domain::api_user::NewSession;
use crate::domain::ids::SessionId;
use crate::http::error::ApiError;
use crate::store::{Db, StoreError};
use tokio::sync::{mpsc, oneshot};

/// The most sessions one transaction writes.
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<SessionId, ApiError>>;

/// Hands new sessions to the writer task and waits for their commit.
#[derive(Clone)]
pub struct SessionWriter {
    tx: mpsc::UnboundedSender<(NewSession, Reply)>,
}

impl SessionWriter {
    /// Starts the writer task; it ends when the last `SessionWriter` is dropped.
    pub fn start(db: Db) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_sessions(db, rx));
        Self { tx }
    }

    /// Writes `session` and returns its id once it is committed.
    pub async fn create(&self, session: NewSession) -> Result<SessionId, ApiError> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send((session, reply))
            .map_err(|_| ApiError::unavailable())?;
        wait.await.unwrap_or_else(|_| Err(ApiError::unavailable()))
    }
}

async fn write_sessions(db: Db, mut rx: mpsc::UnboundedReceiver<(NewSession, Reply)>) {
    let mut sessions = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    while let Some((session, reply)) = rx.recv().await {
        sessions.push(session);
        replies.push(reply);
        while sessions.len() < MAX_BATCH
            && let Ok((session, reply)) = rx.try_recv()
        {
            sessions.push(session);
            replies.push(reply);
        }
        match db.create_sessions(&sessions).await {
            Ok(ids) => {
                for (reply, id) in replies.drain(..).zip(ids) {
                    let _ = reply.send(Ok(id));
                }
            }
            Err(error) => {
                let transient = matches!(error, StoreError::Unavailable(_));
                // Logs the cause once for the whole batch.
                let _ = ApiError::from(error);
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(if transient {
                        ApiError::unavailable()
                    } else {
                        ApiError::internal()
                    }));
                }
            }
        }
        sessions.clear();
    }
}
