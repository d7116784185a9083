//! Rolling an API user's key from its page, once and only from the key the page showed.

use super::add::key_once;
use super::settings::refused;
use crate::console::Form;
use crate::console::Path;
use crate::console::session::{Manager, Signed};
use crate::console::view::{Fields, when};
use crate::console::{ConsoleError, Frame, page};
use crate::credentials::{KeySource, NewExpiry, Roll, ServiceError, grace_choice};
use crate::domain::api_user::ApiUser;
use crate::domain::ids::ApiKeyId;
use crate::domain::validation::Errors;
use crate::http::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use time::{Duration, OffsetDateTime};

pub async fn roll(
    State(state): State<AppState>,
    Manager(signed): Manager,
    Path(username): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, ConsoleError> {
    let fields = Fields(fields);
    let mut errors = Errors::new();
    let grace = match grace_choice(&fields.get("grace")) {
        Ok(grace) => grace,
        Err(ServiceError::Invalid(found)) => {
            errors.extend(found);
            Duration::ZERO
        }
        Err(other) => return Err(other.into()),
    };
    let expires = errors
        .check(
            "expires",
            NewExpiry::from_field(Some(&fields.get("expires"))),
        )
        .unwrap_or(NewExpiry::AsBefore);
    let Ok(seen) = seen_key(&fields.get("current_key")) else {
        return Err(ConsoleError::BadRequest(
            "The form does not say which key it rolls: reload the page and roll from there."
                .to_owned(),
        ));
    };
    if !errors.is_empty() {
        return Ok(refused(&state, &signed, &username, errors.into_vec(), |_| ()).await);
    }
    match state
        .credentials
        .rotate_seen(
            &signed.actor(),
            &username,
            seen,
            grace,
            KeySource::default(),
            expires,
        )
        .await
    {
        Ok(Roll::Issued(issued)) => Ok(key_once(
            &signed,
            &issued.user,
            issued.key.expose(),
            "rolled",
            &issued.stopped_now,
            &state,
        )),
        Ok(Roll::AlreadyRolled(user)) => Ok((
            StatusCode::CONFLICT,
            page(AlreadyRolledPage::new(
                &signed,
                &user,
                seen,
                state.clock.now(),
            )),
        )
            .into_response()),
        Err(ServiceError::Invalid(errors)) => {
            Ok(refused(&state, &signed, &username, errors, |_| ()).await)
        }
        Err(other) => Err(other.into()),
    }
}

/// The roll form's `current_key`: the id of the newest key the page showed, or empty when it
/// showed none.
fn seen_key(field: &str) -> Result<Option<ApiKeyId>, std::num::ParseIntError> {
    if field.is_empty() {
        Ok(None)
    } else {
        field.parse().map(|id| Some(ApiKeyId(id)))
    }
}

/// A roll form sent for a key that is no longer current: nothing was rolled.
#[derive(Template)]
#[template(path = "console/api_rolled_already.html")]
struct AlreadyRolledPage {
    frame: Frame,
    username: String,
    seen: Option<String>,
    current: Option<(String, String)>,
    in_grace: Vec<(String, String)>,
}

impl AlreadyRolledPage {
    fn new(signed: &Signed, user: &ApiUser, seen: Option<ApiKeyId>, now: OffsetDateTime) -> Self {
        let current = user.current_key(now);
        Self {
            frame: Frame::new(signed, "apis"),
            username: user.username.clone(),
            seen: seen.and_then(|id| {
                user.keys
                    .iter()
                    .find(|k| k.id == id)
                    .map(|k| k.hint.clone())
            }),
            current: current.map(|k| (k.hint.clone(), when(Some(k.created_at)))),
            in_grace: user
                .keys
                .iter()
                .filter(|k| k.is_live(now) && Some(k.id) != current.map(|c| c.id))
                .map(|k| (k.hint.clone(), when(k.expires_at)))
                .collect(),
        }
    }
}
