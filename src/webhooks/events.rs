//! Events as receivers see them: `{"id", "type", "created", "data"}`, with no secret in them
//! (keys appear only as hints).

use crate::domain::ids::ApiUserId;
use crate::domain::webhook::{EventType, NewEvent};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// A new event of `kind` with its `data`, made at `now`.
pub fn event(kind: EventType, data: Value, now: OffsetDateTime) -> NewEvent {
    let id = format!("evt_{}", uuid::Uuid::now_v7().simple());
    let payload = json!({
        "id": id,
        "type": kind.as_str(),
        "created": now.unix_timestamp(),
        "data": data,
    })
    .to_string();
    NewEvent {
        id,
        kind,
        created_at: now,
        payload,
    }
}

/// How events name an API user.
pub fn api_user(id: ApiUserId, username: &str) -> Value {
    json!({ "id": id, "username": username })
}

/// A time in events: RFC 3339, UTC.
pub fn time(t: OffsetDateTime) -> Value {
    Value::String(crate::clock::rfc3339(t))
}
