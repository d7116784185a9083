//! Webhooks: every admin sees the endpoints and their deliveries; only administrators add,
//! enable, disable, delete, test and retry. Signing secrets are shown once, on the answer to
//! the form that made them.

use super::Form;
use super::apis::flash;
use super::session::{Administrator, Signed};
use super::view::{Fields, when};
use super::{ConsoleError, Frame, page};
use super::{Path, Query};
use crate::domain::api_user::Status;
use crate::domain::duration::{DurationError, HumanDuration};
use crate::domain::ids::{DeliveryId, WebhookId};
use crate::domain::webhook::{DeliveryQuery, DeliveryState, EventType, Webhook};
use crate::http::AppState;
use crate::store::StoreError;
use crate::webhooks::{AddWebhook, CreatedWebhook, WebhookError};
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

/// Deliveries shown per page.
const PAGE: u32 = 50;

impl From<WebhookError> for ConsoleError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::NoSuchWebhook(_) | WebhookError::NoSuchDelivery(_) => Self::NotFound,
            WebhookError::Store(store) => store.into(),
            WebhookError::Key(_) => {
                tracing::error!(error = %error, "a webhook secret could not be sealed");
                Self::Internal
            }
            other => Self::BadRequest(other.to_string()),
        }
    }
}

struct EventChoice {
    name: &'static str,
    about: &'static str,
    checked: bool,
}

fn choices(picked: &[String]) -> Vec<EventChoice> {
    EventType::SUBSCRIBABLE
        .iter()
        .map(|t| EventChoice {
            name: t.as_str(),
            about: t.describe(),
            checked: picked.is_empty() || picked.iter().any(|p| p == t.as_str()),
        })
        .collect()
}

struct WebhookRow {
    id: i64,
    url: String,
    description: String,
    events: Vec<&'static str>,
    enabled: bool,
    secret_hint: String,
    /// The secret before the last roll, while it still signs: its hint and until when.
    previous_secret: Option<String>,
    pending: i64,
    dead: i64,
    created: String,
}

impl From<&Webhook> for WebhookRow {
    fn from(w: &Webhook) -> Self {
        Self {
            id: w.id.0,
            url: w.url.to_string(),
            description: w.description.clone(),
            events: w.events.iter().map(EventType::as_str).collect(),
            enabled: w.status == Status::Enabled,
            secret_hint: w.secret_hint.clone(),
            previous_secret: w.previous_secret.as_ref().map(|previous| {
                format!(
                    "{} until {}",
                    previous.hint,
                    when(Some(previous.expires_at))
                )
            }),
            pending: w.pending,
            dead: w.dead,
            created: when(Some(w.created_at)),
        }
    }
}

#[derive(Template)]
#[template(path = "console/webhooks.html")]
struct WebhooksPage {
    frame: Frame,
    webhooks: Vec<WebhookRow>,
    events: Vec<EventChoice>,
    error: Option<String>,
    url: String,
    description: String,
}

#[derive(Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

async fn list_page(
    state: &AppState,
    signed: &Signed,
    form: (Option<String>, String, String, Vec<String>),
    done: Option<&str>,
) -> Result<WebhooksPage, ConsoleError> {
    let (error, url, description, picked) = form;
    let webhooks = state.webhooks.list().await?;
    Ok(WebhooksPage {
        frame: Frame::new(signed, "webhooks").with_flash(flash(done)),
        webhooks: webhooks.iter().map(WebhookRow::from).collect(),
        events: choices(&picked),
        error,
        url,
        description,
    })
}

pub async fn list(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<DoneQuery>,
) -> Result<Response, ConsoleError> {
    let blank = (None, String::new(), String::new(), Vec::new());
    Ok(page(
        list_page(&state, &signed, blank, query.done.as_deref()).await?,
    ))
}

#[derive(Template)]
#[template(path = "console/webhook_secret.html")]
struct SecretPage {
    frame: Frame,
    id: i64,
    url: String,
    events: Vec<&'static str>,
    secret: String,
    /// After a roll (not an add): what became of the old secret.
    rolled: Option<String>,
}

impl SecretPage {
    fn new(signed: &Signed, shown: &CreatedWebhook, rolled: Option<String>) -> Self {
        Self {
            frame: Frame::new(signed, "webhooks"),
            id: shown.webhook.id.0,
            url: shown.webhook.url.to_string(),
            events: shown.webhook.events.iter().map(EventType::as_str).collect(),
            secret: shown.secret.expose().to_owned(),
            rolled,
        }
    }
}

/// Adds an endpoint and answers with its secret, once: never a redirect to a page that could
/// show it again.
pub async fn create(
    State(state): State<AppState>,
    Administrator(signed): Administrator,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, ConsoleError> {
    let fields = Fields(fields);
    let request = AddWebhook {
        url: fields.get("url"),
        description: fields.get("description"),
        events: fields.all("event"),
    };
    match state.webhooks.add(&signed.actor(), request.clone()).await {
        Ok(created) => Ok(page(SecretPage::new(&signed, &created, None))),
        Err(error @ (WebhookError::Invalid(_) | WebhookError::NoKey(_))) => {
            // An empty choice of events means every event to the service; on the form, a
            // cleared box stays cleared.
            let form = (
                Some(error.to_string()),
                request.url,
                request.description,
                request.events,
            );
            let page = list_page(&state, &signed, form, None).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, super::page(page)).into_response())
        }
        Err(other) => Err(other.into()),
    }
}

struct DeliveryRow {
    id: i64,
    event_id: String,
    event_type: String,
    state: String,
    state_class: &'static str,
    attempts: i64,
    created: String,
    last_attempt: String,
    next_attempt: String,
    last_status: String,
    last_error: String,
}

#[derive(Template)]
#[template(path = "console/webhook_show.html")]
struct ShowPage {
    frame: Frame,
    webhook: WebhookRow,
    deliveries: Vec<DeliveryRow>,
    /// "", "pending", "delivered" or "dead".
    state: String,
    states: Vec<(&'static str, &'static str)>,
    older: Option<String>,
}

#[derive(Deserialize)]
pub struct ShowQuery {
    state: Option<String>,
    before: Option<i64>,
    done: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<i64>,
    Query(query): Query<ShowQuery>,
) -> Result<Response, ConsoleError> {
    let webhook = state.webhooks.get(WebhookId(id)).await?;
    let filter = match query.state.as_deref().filter(|s| !s.is_empty()) {
        Some(text) => Some(
            text.parse::<DeliveryState>()
                .map_err(ConsoleError::BadRequest)?,
        ),
        None => None,
    };
    let records = state
        .webhooks
        .deliveries(&DeliveryQuery {
            webhook_id: Some(webhook.id),
            state: filter,
            before_id: query.before,
            limit: PAGE + 1,
        })
        .await?;
    let state_name = filter.map_or("", DeliveryState::as_str);
    let older = (records.len() > PAGE as usize)
        .then(|| records.get(PAGE as usize - 1).map(|d| d.id))
        .flatten()
        .map(|last| format!("/admin/webhooks/{id}?state={state_name}&before={last}"));
    let deliveries = records
        .into_iter()
        .take(PAGE as usize)
        .map(|d| DeliveryRow {
            id: d.id.0,
            state_class: match d.state {
                DeliveryState::Delivered => "ok",
                DeliveryState::Pending => "warn",
                DeliveryState::Dead => "bad",
            },
            state: d.state.to_string(),
            event_id: d.event_id,
            event_type: d.event_type,
            attempts: d.attempts,
            created: when(Some(d.created_at)),
            last_attempt: d
                .last_attempt_at
                .map_or_else(|| "not yet".to_owned(), |t| when(Some(t))),
            next_attempt: d.next_attempt_at.map(|t| when(Some(t))).unwrap_or_default(),
            last_status: d.last_status.map(|s| s.to_string()).unwrap_or_default(),
            last_error: d.last_error.unwrap_or_default(),
        })
        .collect();
    Ok(page(ShowPage {
        frame: Frame::new(&signed, "webhooks").with_flash(flash(query.done.as_deref())),
        webhook: WebhookRow::from(&webhook),
        deliveries,
        state: state_name.to_owned(),
        states: vec![
            ("", "All"),
            ("pending", "Pending"),
            ("delivered", "Delivered"),
            ("dead", "Dead letters"),
        ],
        older,
    }))
}

#[derive(Deserialize)]
pub struct StatusForm {
    status: String,
}

pub async fn set_status(
    State(state): State<AppState>,
    Administrator(signed): Administrator,
    Path(id): Path<i64>,
    Form(form): Form<StatusForm>,
) -> Result<Response, ConsoleError> {
    let status: Status = form.status.parse().map_err(ConsoleError::BadRequest)?;
    state
        .webhooks
        .set_status(&signed.actor(), WebhookId(id), status)
        .await?;
    let done = match status {
        Status::Enabled => "webhook_enabled",
        Status::Disabled => "webhook_disabled",
    };
    Ok(Redirect::to(&format!("/admin/webhooks/{id}?done={done}")).into_response())
}

pub async fn send_test(
    State(state): State<AppState>,
    Administrator(signed): Administrator,
    Path(id): Path<i64>,
) -> Result<Response, ConsoleError> {
    state
        .webhooks
        .send_test(&signed.actor(), WebhookId(id))
        .await?;
    Ok(Redirect::to(&format!("/admin/webhooks/{id}?done=test_sent")).into_response())
}

#[derive(Deserialize)]
pub struct RollForm {
    /// How long the old secret keeps signing: 0, or a duration such as 24h.
    grace: String,
    /// The hint of the secret the page showed: sent again, or after another admin's roll,
    /// the form rolls nothing.
    current_secret: String,
}

/// Rolls the endpoint's secret and answers with the new one, once, as [`create`] does.
pub async fn roll_secret(
    State(state): State<AppState>,
    Administrator(signed): Administrator,
    Path(id): Path<i64>,
    Form(form): Form<RollForm>,
) -> Result<Response, ConsoleError> {
    let grace: HumanDuration = form
        .grace
        .parse()
        .map_err(|e: DurationError| ConsoleError::BadRequest(e.to_string()))?;
    let rolled = state
        .webhooks
        .roll_secret(
            &signed.actor(),
            WebhookId(id),
            grace.0,
            Some(form.current_secret),
        )
        .await
        .map_err(|error| match error {
            WebhookError::Store(StoreError::Conflict { message, .. }) => {
                ConsoleError::Conflict(message)
            }
            other => other.into(),
        })?;
    let old = match &rolled.webhook.previous_secret {
        Some(previous) => format!(
            "The old secret ({}) signs every delivery beside the new one until {}: put the new one in the receiver before then.",
            previous.hint,
            when(Some(previous.expires_at))
        ),
        None => {
            "The old secret stopped now: deliveries are signed with the new one only.".to_owned()
        }
    };
    Ok(page(SecretPage::new(&signed, &rolled, Some(old))))
}

pub async fn delete(
    State(state): State<AppState>,
    Administrator(signed): Administrator,
    Path(id): Path<i64>,
) -> Result<Response, ConsoleError> {
    state
        .webhooks
        .remove(&signed.actor(), WebhookId(id))
        .await?;
    Ok(Redirect::to("/admin/webhooks?done=webhook_deleted").into_response())
}

pub async fn retry(
    State(state): State<AppState>,
    Administrator(signed): Administrator,
    Path(id): Path<i64>,
) -> Result<Response, ConsoleError> {
    let delivery = state
        .webhooks
        .retry(&signed.actor(), DeliveryId(id))
        .await?;
    Ok(Redirect::to(&format!(
        "/admin/webhooks/{}?done=retried",
        delivery.webhook_id
    ))
    .into_response())
}
