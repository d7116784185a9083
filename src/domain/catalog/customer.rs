//! Customers and their validation.

use crate::domain::ids::CustomerId;
use crate::domain::validation::{Errors, FieldError, line, not_null, present};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Customer {
    pub id: CustomerId,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Which customers a list holds.
#[derive(Debug, Clone, Default)]
pub struct CustomerFilter {
    /// Only the customer with this email, compared as emails are kept unique: case aside.
    pub email: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[serde(default)]
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerPatch {
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    pub email: Option<String>,
    /// A new number; `null` or `""` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
}

pub fn email(value: &str) -> Result<String, String> {
    let value = value.trim();
    let valid = value.len() <= 254
        && value.split_once('@').is_some_and(|(local, domain)| {
            // RFC 5321's limit on the part before the @.
            (1..=64).contains(&local.len())
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && value.matches('@').count() == 1;
    if valid {
        Ok(value.to_owned())
    } else {
        Err("must be an email address such as name@example.com".to_owned())
    }
}

pub fn phone(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.len() > 32
        || !value
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
        || value.chars().filter(char::is_ascii_digit).count() < 3
    {
        return Err(
            "must be up to 32 digits, spaces and + - ( ) ., with at least 3 digits".to_owned(),
        );
    }
    Ok(value.to_owned())
}

impl CustomerInput {
    pub fn validate(self) -> Result<CustomerInput, Vec<FieldError>> {
        let mut errors = Errors::new();
        let name = errors.check("name", line(&self.name, 1, 255));
        let email = errors.check("email", email(&self.email));
        let phone = match self
            .phone
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            Some(p) => errors.check("phone", phone(p)),
            None => None,
        };
        errors.into_result(|| CustomerInput {
            name: name.unwrap_or_default(),
            email: email.unwrap_or_default(),
            phone,
        })
    }
}

impl CustomerPatch {
    pub fn validate(mut self) -> Result<CustomerPatch, Vec<FieldError>> {
        let mut errors = Errors::new();
        if let Some(v) = &self.name {
            self.name = errors.check("name", line(v, 1, 255));
        }
        if let Some(v) = &self.email {
            self.email = errors.check("email", email(v));
        }
        self.phone = match self.phone.take() {
            Some(Some(v)) if !v.trim().is_empty() => errors.check("phone", phone(&v)).map(Some),
            Some(_) => Some(None),
            None => None,
        };
        errors.into_result(|| self)
    }
}
