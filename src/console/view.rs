//! Formatting for pages: times, summaries, form fields.

use crate::domain::api_user::ApiUser;
use crate::domain::ip_rule::IpRule;
use crate::domain::scope::{Scope, Scopes};
use crate::domain::validation::FieldError;
use time::OffsetDateTime;

/// `2026-11-23 14:05 UTC`, or "never".
pub fn when(t: Option<OffsetDateTime>) -> String {
    match t {
        Some(t) => format!(
            "{}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        None => "never".to_owned(),
    }
}

/// `2026-11-23 14:05:09.123`, for history rows.
pub fn precise(t: OffsetDateTime) -> String {
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// "3 min ago", "2 h ago", "5 d ago".
pub fn ago(t: Option<OffsetDateTime>, now: OffsetDateTime) -> String {
    let Some(t) = t else {
        return "never".to_owned();
    };
    let seconds = (now - t).whole_seconds();
    match seconds {
        s if s < 60 => "just now".to_owned(),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} d ago", s / 86_400),
    }
}

/// "1 call", "2 calls", "no calls".
pub fn calls(n: i64) -> String {
    match n {
        0 => "no calls".to_owned(),
        1 => "1 call".to_owned(),
        n => format!("{n} calls"),
    }
}

/// The name/value pairs of a posted form, which may repeat a name (checkboxes).
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn get(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    pub fn checked(&self, name: &str) -> bool {
        self.0
            .iter()
            .any(|(k, v)| k == name && (v == "on" || v == "true" || v == "1"))
    }
}

/// The scopes ticked on a posted form; one the grid does not know is left out.
pub fn ticked(fields: &Fields) -> Scopes {
    let mut scopes = Scopes::empty();
    for scope in fields.all("scope") {
        if let Ok(scope) = scope.parse::<Scope>() {
            scopes.insert(scope);
        }
    }
    scopes
}

/// One resource's row in the permissions grid.
pub struct ScopeRow {
    pub resource: &'static str,
    pub read: &'static str,
    pub write: &'static str,
    pub read_checked: bool,
    pub write_checked: bool,
}

pub fn scope_grid(scopes: &Scopes, management: bool) -> Vec<ScopeRow> {
    let mut rows = vec![
        ("Products", Scope::ProductsRead, Scope::ProductsWrite),
        ("Orders", Scope::OrdersRead, Scope::OrdersWrite),
        ("Customers", Scope::CustomersRead, Scope::CustomersWrite),
    ];
    if management {
        rows.push(("API users", Scope::ApiUsersRead, Scope::ApiUsersWrite));
    }
    rows.into_iter()
        .map(|(resource, read, write)| ScopeRow {
            resource,
            read: read.as_str(),
            write: write.as_str(),
            read_checked: scopes.contains(read),
            write_checked: scopes.contains(write),
        })
        .collect()
}

/// The IP list in one line, for tables.
pub fn ip_summary(ips: &[IpRule]) -> String {
    match ips.len() {
        0 => "none".to_owned(),
        1..=3 => ips
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        n => format!("{}, {} and {} more", ips[0], ips[1], n - 2),
    }
}

/// The warning an IP list deserves, if any.
pub fn ip_warning(ips: &[IpRule]) -> Option<&'static str> {
    if ips.is_empty() {
        Some("no address may call")
    } else if ips.iter().any(IpRule::is_any) {
        Some("* allows everyone")
    } else {
        None
    }
}

pub fn key_state(user: &ApiUser, now: OffsetDateTime) -> (String, &'static str) {
    match user.current_key(now) {
        Some(key) => (key.hint.clone(), "ok"),
        None => ("no live key".to_owned(), "bad"),
    }
}

/// An API user's last use: the database's, or the newer one not yet written to it.
pub fn last_use(
    user: &ApiUser,
    usage: &crate::auth::UsageTracker,
) -> (Option<OffsetDateTime>, Option<String>) {
    usage.last_use(user)
}

/// A field's name as the form shows it (`Rate limit`, `IP rule 2`), with its place on the
/// form, for messages that speak of what the admin sees rather than of internal names.
fn label(field: &str) -> (usize, String) {
    if let Some(index) = field
        .strip_prefix("ips[")
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|i| i.parse::<usize>().ok())
    {
        return (8, format!("IP rule {}", index + 1));
    }
    let (place, name) = match field {
        "username" => (0, "API username"),
        "description" => (1, "Description"),
        "environment" => (2, "Environment"),
        "status" => (3, "Status"),
        "rate_limit_per_minute" => (4, "Rate limit"),
        "expires" => (5, "Key expires"),
        "key_length" => (6, "Key length"),
        "grace" => (6, "Grace period"),
        "ips" => (7, "IP list"),
        "rule" => (7, "Address or block"),
        "scopes" => (9, "Permissions"),
        "management" => (10, "Management key"),
        other => (11, other),
    };
    (place, name.to_owned())
}

/// A form's field errors, in the order of the form, with the labels it shows.
pub struct FieldErrors(Vec<(String, String, String)>);

impl FieldErrors {
    pub fn new(errors: Vec<FieldError>) -> Self {
        let mut labelled: Vec<_> = errors
            .into_iter()
            .map(|e| (label(&e.field), e.field, e.message))
            .collect();
        labelled.sort_by_key(|((place, _), _, _)| *place);
        Self(
            labelled
                .into_iter()
                .map(|((_, label), field, message)| (field, label, message))
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(label, message)` of every error, for the summary above a form.
    pub fn all(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(_, label, message)| (label.as_str(), message.as_str()))
    }

    /// The message under one field: its own, and those of its items (`ips[1]`), named.
    pub fn of(&self, field: &str) -> Option<String> {
        let item = format!("{field}[");
        let messages: Vec<String> = self
            .0
            .iter()
            .filter_map(|(name, label, message)| {
                if name == field {
                    Some(message.clone())
                } else {
                    name.starts_with(&item)
                        .then(|| format!("{label}: {message}"))
                }
            })
            .collect();
        (!messages.is_empty()).then(|| messages.join(" "))
    }
}
