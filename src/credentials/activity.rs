//! What an API user did and has open: its history and its sessions.

use super::{Change, Credentials, Result, ServiceError};
use crate::domain::admin::Actor;
use crate::domain::api_user::SessionRecord;
use crate::domain::history::{HistoryQuery, HistoryRecord};
use crate::domain::ids::SessionId;
use serde_json::json;

impl Credentials {
    #[tracing::instrument(level = "debug", skip_all, fields(%username))]
    pub async fn history(&self, username: &str, query: HistoryQuery) -> Result<Vec<HistoryRecord>> {
        Ok(self.history_known(username, query).await?.0)
    }

    /// [`Credentials::history`] for a name typed by hand (the CLI, the Management API): a
    /// name no user has and no call ever presented is most likely mistyped, and is refused as
    /// an unknown user instead of answered with an empty history that would hide the typo.
    pub async fn history_of_name(
        &self,
        username: &str,
        query: HistoryQuery,
    ) -> Result<Vec<HistoryRecord>> {
        let narrowed = query.narrowed();
        let (rows, known) = self.history_known(username, query).await?;
        if rows.is_empty() && !known {
            // Filtered or paged, an empty answer says nothing of the name's other rows.
            let any = HistoryQuery {
                username: Some(username.to_owned()),
                limit: 1,
                ..HistoryQuery::default()
            };
            if !narrowed || self.db.history(&any).await?.is_empty() {
                return Err(ServiceError::NoSuchUser(username.to_owned()));
            }
        }
        Ok(rows)
    }

    /// The rows, and whether `username` is a user's (else it is a name calls presented).
    async fn history_known(
        &self,
        username: &str,
        mut query: HistoryQuery,
    ) -> Result<(Vec<HistoryRecord>, bool)> {
        // A deleted user's history stays: it is found by the username its calls presented.
        let known = match self.get(username).await {
            Ok(user) => {
                query.api_user_id = Some(user.id);
                true
            }
            Err(ServiceError::NoSuchUser(_)) => {
                query.username = Some(username.to_owned());
                false
            }
            Err(other) => return Err(other),
        };
        Ok((self.db.history(&query).await?, known))
    }

    /// History across all API users, for refusals no user can be tied to.
    pub async fn all_history(&self, query: HistoryQuery) -> Result<Vec<HistoryRecord>> {
        Ok(self.db.history(&query).await?)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%username))]
    pub async fn sessions(&self, username: &str, active_only: bool) -> Result<Vec<SessionRecord>> {
        let user = self.get(username).await?;
        let at = active_only.then(|| self.clock.now());
        Ok(self.db.sessions(user.id, at).await?)
    }

    /// Ends one session, or all; returns how many were open.
    #[tracing::instrument(level = "debug", skip_all, fields(%username))]
    pub async fn revoke_sessions(
        &self,
        actor: &Actor,
        username: &str,
        only: Option<SessionId>,
    ) -> Result<u64> {
        let user = self.changeable(actor, username, Change::Sessions).await?;
        let now = self.clock.now();
        if let Some(id) = only {
            let open = self.db.sessions(user.id, Some(now)).await?;
            if !open.iter().any(|s| s.id == id) {
                return Err(ServiceError::NoSuchSession {
                    id,
                    username: username.to_owned(),
                });
            }
        }
        let audit = self.audit(
            actor,
            "api_user.sessions_revoke",
            username,
            json!({ "session_id": only, "all": only.is_none() }),
        );
        Ok(self
            .db
            .revoke_sessions(user.id, only, now, Some(&audit))
            .await?)
    }
}
