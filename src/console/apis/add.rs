//! Add New: the form, the user it creates, and the page that shows a new key once.

use super::parse::{conflict, parse_choice, parse_expiry, parse_number, parse_rate_limit};
use super::{environments, lines};
use crate::console::Form;
use crate::console::session::{Manager, Signed};
use crate::console::view::{FieldErrors, Fields, ScopeRow, scope_grid, ticked, when};
use crate::console::{ConsoleError, Frame, page};
use crate::credentials::{CreateApiUser, Credentials, KeySource, NewExpiry, ServiceError};
use crate::domain::api_key::{DEFAULT_KEY_LEN, MAX_KEY_LEN, MIN_KEY_LEN};
use crate::domain::api_user::{ApiUser, DEFAULT_RATE_LIMIT, Environment, Status};
use crate::domain::scope::Scopes;
use crate::domain::validation::Errors;
use crate::http::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The values of the Add New form, as typed.
struct FormValues {
    username: String,
    description: String,
    environment: String,
    status: String,
    ips: String,
    rate_limit: String,
    expires: String,
    key_length: String,
    management: bool,
    add_my_ip: bool,
}

#[derive(Template)]
#[template(path = "console/api_new.html")]
struct NewPage {
    frame: Frame,
    form: FormValues,
    scopes: Vec<ScopeRow>,
    errors: FieldErrors,
    my_ip: String,
    environments: Vec<&'static str>,
}

pub async fn new(Manager(signed): Manager) -> Response {
    let form = FormValues {
        username: String::new(),
        description: String::new(),
        environment: "production".to_owned(),
        status: "enabled".to_owned(),
        ips: String::new(),
        rate_limit: DEFAULT_RATE_LIMIT.to_string(),
        expires: String::new(),
        key_length: DEFAULT_KEY_LEN.to_string(),
        management: false,
        add_my_ip: false,
    };
    let my_ip = signed.ip.to_string();
    let management = signed.role().manages_admins();
    page(NewPage {
        frame: Frame::new(&signed, "apis"),
        form,
        scopes: scope_grid(&Scopes::empty(), management),
        errors: FieldErrors::new(Vec::new()),
        my_ip,
        environments: environments(),
    })
}

pub async fn create(
    State(state): State<AppState>,
    Manager(signed): Manager,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, ConsoleError> {
    let fields = Fields(fields);
    let mut errors = Errors::new();
    let mut ips = lines(&fields.get("ips"));
    let add_my_ip = fields.checked("add_my_ip");
    if add_my_ip && !ips.contains(&signed.ip.to_string()) {
        ips.push(signed.ip.to_string());
    }
    let management = fields.checked("management");
    let request = CreateApiUser {
        username: fields.get("username"),
        description: fields.get("description"),
        environment: parse_choice("environment", &fields, &mut errors)
            .unwrap_or(Environment::Production),
        status: parse_choice("status", &fields, &mut errors).unwrap_or(Status::Enabled),
        scopes: fields.all("scope"),
        ips: ips.clone(),
        rate_limit_per_minute: parse_rate_limit(&fields, &mut errors),
        management,
        key: KeySource::Generate {
            length: parse_number(
                "key_length",
                &fields.get("key_length"),
                MIN_KEY_LEN..=MAX_KEY_LEN,
                " characters",
                &mut errors,
            )
            .unwrap_or(DEFAULT_KEY_LEN),
        },
        expires_in: parse_expiry(&fields.get("expires"), &mut errors)
            .map_or(NewExpiry::AsBefore, NewExpiry::In),
    };
    let result = if errors.is_empty() {
        state.credentials.create(&signed.actor(), request).await
    } else {
        // Every field's error at once: the form's own and the service's.
        Err(ServiceError::Invalid(
            Credentials::new_user(&request).err().unwrap_or_default(),
        ))
    };
    match result.map_err(conflict) {
        Ok(issued) => Ok(key_once(
            &signed,
            &issued.user,
            issued.key.expose(),
            "created",
            &issued.stopped_now,
            &state,
        )),
        Err(Ok(found)) => {
            errors.extend(found);
            let form = FormValues {
                username: fields.get("username"),
                description: fields.get("description"),
                environment: fields.get("environment"),
                status: fields.get("status"),
                ips: ips.join("\n"),
                rate_limit: fields.get("rate_limit"),
                expires: fields.get("expires"),
                key_length: fields.get("key_length"),
                management,
                add_my_ip,
            };
            let page = page(NewPage {
                frame: Frame::new(&signed, "apis"),
                form,
                scopes: scope_grid(&ticked(&fields), signed.role().manages_admins()),
                errors: FieldErrors::new(errors.into_vec()),
                my_ip: signed.ip.to_string(),
                environments: environments(),
            });
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(Err(other)) => Err(other.into()),
    }
}

#[derive(Template)]
#[template(path = "console/key_once.html")]
struct KeyOncePage {
    frame: Frame,
    username: String,
    key: String,
    what: &'static str,
    stopped_now: Vec<String>,
    old_key_until: Option<String>,
    warnings: Vec<&'static str>,
}

/// The page that shows a new key, once. It is answered to the POST itself (never a redirect
/// to a URL that could show it again) and is never cached.
pub(super) fn key_once(
    signed: &Signed,
    user: &ApiUser,
    key: &str,
    what: &'static str,
    stopped_now: &[String],
    state: &AppState,
) -> Response {
    let now = state.clock.now();
    let current = user.current_key(now).map(|k| k.id);
    let old_key_until = user
        .keys
        .iter()
        .find(|k| k.is_live(now) && Some(k.id) != current)
        .map(|k| when(k.expires_at));
    page(KeyOncePage {
        frame: Frame::new(signed, "apis"),
        username: user.username.clone(),
        key: key.to_owned(),
        what,
        stopped_now: stopped_now.to_vec(),
        old_key_until,
        warnings: user.warnings(now),
    })
}
