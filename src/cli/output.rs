//! What commands print: aligned text for people, JSON for scripts (`--json`). Errors go to
//! stderr either way.

use super::CliError;
use super::serve::Started;
use crate::config::Config;
use crate::credentials::IssuedKey;
use crate::domain::admin::AdminUser;
use crate::domain::api_user::{ApiUser, ApiUserSummary, SessionRecord};
use crate::domain::duration::HumanDuration;
use crate::domain::history::HistoryRecord;
use anstyle::{AnsiColor, Style};
use serde_json::json;
use std::process::ExitCode;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub struct Output {
    pub(super) json: bool,
}

pub(super) fn when(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.replace_millisecond(0).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "never".to_owned())
}

pub(super) fn print_json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => say!("{text}"),
        Err(error) => eprintln!("cannot write JSON: {error}"),
    }
}

/// How a cell reads at a glance: green for what works, red for what is refused or stopped.
/// Colours reach a terminal only: `anstream` drops them when stdout is piped or `NO_COLOR`
/// is set, and `CLICOLOR_FORCE=1` keeps them.
fn tone(column: &str, cell: &str) -> Style {
    let good = Style::new().fg_color(Some(AnsiColor::Green.into()));
    let bad = Style::new().fg_color(Some(AnsiColor::Red.into()));
    match (column, cell) {
        ("STATUS" | "STATE" | "OUTCOME", "enabled" | "live" | "ok") => good,
        ("STATUS" | "STATE", "disabled" | "revoked" | "expired" | "dead") => bad,
        ("STATE", "delivered") => good,
        ("OUTCOME", _) => bad,
        ("HTTP", code) if code.starts_with('2') => good,
        ("HTTP", _) => bad,
        _ => Style::new(),
    }
}

/// Prints rows in columns as wide as their widest cell, under a bold header.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let last = header.len().saturating_sub(1);
    let line = |cells: Vec<String>, style: &dyn Fn(usize, &str) -> Style| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            let style = style(i, cell);
            // Pad outside the colour codes, so the columns line up; no trailing blanks.
            let pad = if i == last {
                0
            } else {
                width - cell.chars().count() + 2
            };
            text.push_str(&format!("{style}{cell}{style:#}{:pad$}", ""));
        }
        say!("{}", text.trim_end());
    };
    let bold = Style::new().bold();
    line(header.iter().map(|h| (*h).to_owned()).collect(), &|_, _| {
        bold
    });
    for row in rows {
        line(row.clone(), &|i, cell| tone(header[i], cell));
    }
}

/// `warning: …` in yellow on a terminal.
fn warn(text: &str) {
    let yellow = Style::new().fg_color(Some(AnsiColor::Yellow.into())).bold();
    say!("{yellow}warning:{yellow:#} {text}");
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether scripts read the output (`--json`): no tables, no progress bars.
    pub fn is_json(&self) -> bool {
        self.json
    }

    pub fn fail(&self, error: &CliError) -> ExitCode {
        if self.json {
            eprintln!(
                "{}",
                json!({ "error": { "code": error.code(), "message": error.to_string() } })
            );
        } else {
            let red = Style::new().fg_color(Some(AnsiColor::Red.into())).bold();
            anstream::eprintln!("{red}error:{red:#} {error}");
        }
        match error {
            CliError::Usage(_) => ExitCode::from(2),
            CliError::NotFound(_) => ExitCode::from(3),
            _ => ExitCode::from(1),
        }
    }

    /// The server's first words: where it listens and, once, the secrets it made. With
    /// `--json`, one line of JSON, so a script can read the address and the demo key.
    pub fn started(&self, started: &Started) {
        let Started {
            base,
            metrics,
            database_url,
            first_admin,
            seeded,
            demo,
        } = started;
        if self.json {
            let admin = first_admin
                .as_ref()
                .map(|(username, password)| json!({ "username": username, "password": password }));
            let demo = demo.as_ref().map(|demo| {
                let issued = &demo.issued;
                json!({
                    "username": issued.user.username,
                    "scopes": issued.user.scopes.to_string(),
                    "key": issued.key.expose(),
                    "rolled": demo.rolled,
                    "stopped_now": issued.stopped_now,
                })
            });
            say!(
                "{}",
                json!({
                    "version": env!("CARGO_PKG_VERSION"),
                    "listening": base,
                    "metrics": metrics,
                    "database_url": database_url,
                    "first_admin": admin,
                    "demo_seeded": seeded,
                    "demo": demo,
                })
            );
            return;
        }
        say!(
            "Keyward {} is listening on {base} (database: {database_url})",
            env!("CARGO_PKG_VERSION")
        );
        if let Some(metrics) = metrics {
            say!("Prometheus metrics: {metrics}");
        }
        match first_admin {
            Some((username, Some(password))) => say!(
                "First run: created the admin user `{username}` with the password {password} (shown once)."
            ),
            Some((username, None)) => {
                say!("First run: created the admin user `{username}` with KEYWARD_ADMIN_PASSWORD.")
            }
            None => {}
        }
        if *seeded {
            say!("Demo: seeded the store with products, customers and orders.");
        }
        if let Some(demo) = demo {
            let issued = &demo.issued;
            let key = issued.key.expose();
            say!();
            say!(
                "Demo API user `{}` (scopes: {}; allowed from 127.0.0.1 and ::1).",
                issued.user.username,
                issued.user.scopes
            );
            if demo.rolled {
                say!(
                    "It existed: this is a new key. The key the previous --demo start printed keeps \
                     working for {}{}.",
                    HumanDuration(crate::demo::DEMO_KEY_GRACE),
                    match issued.stopped_now.as_slice() {
                        [] => String::new(),
                        stopped => format!("; older keys stopped now ({})", stopped.join(", ")),
                    }
                );
            }
            say!("Its key, shown once:");
            say!();
            say!("    {key}");
            say!();
            say!("Try it:");
            say!();
            say!("    curl -H 'Authorization: Bearer {key}' {base}/api/v1/me");
            say!("    curl -H 'Authorization: Bearer {key}' '{base}/api/v1/products?limit=5'");
            say!();
        }
    }

    pub fn message(&self, text: &str) {
        if self.json {
            print_json(&json!({ "ok": true, "message": text }));
        } else {
            say!("{text}");
        }
    }

    /// A key made or imported. An imported key (`imported`) is not printed back to the
    /// terminal or script that typed or piped it (with `--json`, `key` is null): its hint
    /// says which it was.
    pub fn issued_key(&self, done: &str, issued: &IssuedKey, now: OffsetDateTime, imported: bool) {
        let key = issued.key.expose();
        if self.json {
            print_json(&json!({
                "username": issued.user.username,
                "key": (!imported).then_some(key),
                "imported": imported,
                "stopped_now": issued.stopped_now,
                "api_user": issued.user
            }));
            return;
        }
        say!("{done}");
        say!();
        if imported {
            say!(
                "Key imported ({}): only its digest is kept, and it is not printed back here.",
                issued.key.hint()
            );
        } else {
            say!("Key (shown once; store it in a secrets manager now, it cannot be shown again):");
            say!();
            say!("    {key}");
        }
        say!();
        let in_grace = issued.user.keys.iter().filter(|k| k.is_live(now)).count() > 1;
        for hint in &issued.stopped_now {
            if in_grace {
                say!(
                    "note: {hint}, still in the grace period of an earlier roll, stopped now: at most two keys live at once."
                );
            } else {
                say!("note: {hint} stopped now.");
            }
        }
        for warning in issued.user.warnings(now) {
            warn(warning);
        }
    }

    pub fn done(&self, message: &str, user: &ApiUser) {
        if self.json {
            print_json(&json!({ "ok": true, "message": message, "api_user": user }));
        } else {
            say!("{message}");
        }
    }

    /// A change to a user that stays: with the warnings its settings now deserve.
    pub fn changed(&self, message: &str, user: &ApiUser) {
        let warnings = user.warnings(OffsetDateTime::now_utc());
        if self.json {
            print_json(
                &json!({ "ok": true, "message": message, "warnings": warnings, "api_user": user }),
            );
            return;
        }
        say!("{message}");
        for warning in warnings {
            warn(warning);
        }
    }

    pub fn user_list(&self, users: &[ApiUserSummary], search: Option<&str>, now: OffsetDateTime) {
        if self.json {
            print_json(&users);
            return;
        }
        if users.is_empty() {
            match search {
                Some(text) => say!("No API user matches `{text}`."),
                None => say!(
                    "No API users yet. Create one with: keyward api create --username NAME --ip ADDRESS --scope SCOPE"
                ),
            }
            return;
        }
        let rows: Vec<Vec<String>> = users
            .iter()
            .map(|s| {
                let u = &s.user;
                vec![
                    u.username.clone(),
                    u.status.to_string(),
                    u.environment.to_string(),
                    if u.ips.is_empty() {
                        "(none)".to_owned()
                    } else {
                        u.ips
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(",")
                    },
                    if u.scopes.is_empty() {
                        "(none)".to_owned()
                    } else {
                        u.scopes.to_string().replace(' ', ",")
                    },
                    u.current_key(now)
                        .map_or_else(|| "(no live key)".to_owned(), |k| k.hint.clone()),
                    when(u.last_used_at),
                    format!("{}/{}", s.calls_24h, s.refused_24h),
                ]
            })
            .collect();
        table(
            &[
                "USERNAME",
                "STATUS",
                "ENV",
                "IPS",
                "SCOPES",
                "KEY",
                "LAST USED",
                "24H CALLS/REFUSED",
            ],
            &rows,
        );
    }

    pub fn user(&self, user: &ApiUser, now: OffsetDateTime) {
        if self.json {
            print_json(user);
            return;
        }
        let rows = [
            ("Username", user.username.clone()),
            ("Description", user.description.clone()),
            ("Environment", user.environment.to_string()),
            ("Status", user.status.to_string()),
            (
                "Scopes",
                if user.scopes.is_empty() {
                    "(none)".to_owned()
                } else {
                    user.scopes.to_string()
                },
            ),
            (
                "Rate limit",
                format!("{} calls/minute", user.rate_limit_per_minute),
            ),
            (
                "Management key",
                if user.management { "yes" } else { "no" }.to_owned(),
            ),
            (
                "IP rules",
                if user.ips.is_empty() {
                    "(none: no address may call)".to_owned()
                } else {
                    user.ips
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            ),
            (
                "Last used",
                match &user.last_used_ip {
                    Some(ip) => format!("{} from {ip}", when(user.last_used_at)),
                    None => when(user.last_used_at),
                },
            ),
            ("Created", when(Some(user.created_at))),
        ];
        for (label, value) in rows {
            say!("{label:<15} {value}");
        }
        say!();
        let keys: Vec<Vec<String>> = user
            .keys
            .iter()
            .map(|k| {
                vec![
                    k.hint.clone(),
                    k.state(now).to_owned(),
                    when(Some(k.created_at)),
                    k.expires_at
                        .map_or_else(|| "-".to_owned(), |t| when(Some(t))),
                    k.revoked_reason.clone().unwrap_or_default(),
                ]
            })
            .collect();
        table(&["KEY", "STATE", "CREATED", "EXPIRES", "REVOKED"], &keys);
        let warnings = user.warnings(now);
        if !warnings.is_empty() {
            say!();
            for warning in warnings {
                warn(warning);
            }
        }
    }

    pub fn history(&self, rows: &[HistoryRecord]) {
        if self.json {
            // Each row as the Management API gives it: with its outcome in words.
            let rows: Vec<serde_json::Value> = rows
                .iter()
                .map(|row| {
                    let mut value = json!(row);
                    value["reason"] = json!(row.reason());
                    value
                })
                .collect();
            print_json(&rows);
            return;
        }
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    when(Some(r.date_added)),
                    r.username.clone().unwrap_or_else(|| "-".to_owned()),
                    r.call.clone(),
                    r.ip.clone(),
                    r.status.to_string(),
                    r.outcome.clone(),
                    format!("{:.1} ms", r.duration_ms),
                    r.request_id.clone(),
                ]
            })
            .collect();
        table(
            &[
                "DATE ADDED",
                "USERNAME",
                "CALL",
                "IP",
                "HTTP",
                "OUTCOME",
                "DURATION",
                "REQUEST ID",
            ],
            &rows,
        );
    }

    pub fn sessions(&self, sessions: &[SessionRecord]) {
        if self.json {
            print_json(&sessions);
            return;
        }
        if sessions.is_empty() {
            say!("No open sessions.");
            return;
        }
        let rows: Vec<Vec<String>> = sessions
            .iter()
            .map(|s| {
                vec![
                    s.id.to_string(),
                    s.ip.clone(),
                    when(Some(s.created_at)),
                    when(Some(s.last_seen_at)),
                    when(Some(s.expires_at)),
                ]
            })
            .collect();
        table(&["ID", "IP", "CREATED", "LAST SEEN", "EXPIRES"], &rows);
    }

    pub fn revoked(&self, count: u64) {
        if self.json {
            print_json(&json!({ "revoked": count }));
        } else {
            say!("Ended {count} session(s).");
        }
    }

    pub fn admin_created(&self, admin: &AdminUser) {
        if self.json {
            print_json(admin);
        } else {
            say!("Created admin user {} ({}).", admin.username, admin.role);
        }
    }

    pub fn pruned(&self, rows: u64, age: HumanDuration) {
        if self.json {
            print_json(&json!({ "deleted": rows, "older_than": age }));
        } else {
            say!("Deleted {rows} history row(s) older than {age}.");
        }
    }

    pub fn config(&self, config: &Config) {
        if self.json {
            print_json(config);
            return;
        }
        match toml::to_string(config) {
            Ok(text) => say_raw!("{text}"),
            Err(error) => eprintln!("cannot print the configuration: {error}"),
        }
    }
}
