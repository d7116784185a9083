//! Field-level validation errors, shared by every input type.

use serde::{Deserialize, Deserializer, Serialize};

/// For a field a change may remove (`#[serde(default, deserialize_with = "present")]`): tells
/// one sent as `null` (`Some(None)`) from one not sent (`None`).
pub fn present<'de, D>(deserializer: D) -> Result<Option<Option<String>>, D::Error>
where
    D: Deserializer<'de>,
{
    Option::<String>::deserialize(deserializer).map(Some)
}

/// For a text field a change may clear (`#[serde(default, deserialize_with =
/// "empty_if_null")]`): `null` sets it empty, as `""` does.
pub fn empty_if_null<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Option::<String>::deserialize(deserializer).map(|text| Some(text.unwrap_or_default()))
}

/// For a field a change may leave out but not clear (`#[serde(default, deserialize_with =
/// "not_null")]`): `null` is refused as the wrong type, where a plain `Option` would take it
/// for "left out" and answer that the change was made.
pub fn not_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    match Option::<T>::deserialize(deserializer)? {
        Some(value) => Ok(Some(value)),
        None => Err(serde::de::Error::custom(
            "cannot be null: leave it out to keep it as it is",
        )),
    }
}

/// A JSON object read as `T`. Serde's derived structs take a JSON array as well, its values
/// given to the fields in order, so `["MUG-1", 2]` would pass for `{"sku": "MUG-1", "quantity":
/// 2}` and go around the check of unknown fields: a body, and each object inside one, must be
/// an object.
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OnlyAnObject<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for OnlyAnObject<T> {
            type Value = T;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(OnlyAnObject(std::marker::PhantomData))
            .map(Object)
    }
}

/// For a list of objects (`#[serde(deserialize_with = "objects")]`): each one must be a JSON
/// object, as [`Object`] says.
pub fn objects<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let list = Vec::<Object<T>>::deserialize(deserializer)?;
    Ok(list.into_iter().map(|Object(value)| value).collect())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field, as a JSON path (`lines[2].quantity`).
    pub field: String,
    pub message: String,
}

/// `field: message; field: message`, for errors shown as one line.
pub fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Collects errors so a client learns of every bad field at once.
#[derive(Debug, Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Records `result`'s error under `field` and gives back its value.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        result.map_err(|e| self.add(field, e.to_string())).ok()
    }

    pub fn into_result<T>(self, value: impl FnOnce() -> T) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(self.0)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds errors found elsewhere (by a service, or a store).
    pub fn extend(&mut self, found: Vec<FieldError>) {
        self.0.extend(found);
    }

    pub fn into_vec(self) -> Vec<FieldError> {
        self.0
    }

    pub fn finish(self) -> Result<(), Vec<FieldError>> {
        self.into_result(|| ())
    }
}

/// Trims `text` and checks its length in characters: text of several lines, such as a
/// description or a comment, with the line breaks of every system (`\r\n` from Windows).
pub fn text(value: &str, min: usize, max: usize) -> Result<String, String> {
    checked(value, min, max, |c| matches!(c, '\n' | '\r' | '\t')).map_err(|error| {
        error.unwrap_or_else(|| {
            "must not contain control characters other than line breaks and tabs".to_owned()
        })
    })
}

/// Like [`text`], for a name: one line, no line break or tab.
pub fn line(value: &str, min: usize, max: usize) -> Result<String, String> {
    checked(value, min, max, |_| false).map_err(|error| {
        error.unwrap_or_else(|| "must be one line, without control characters".to_owned())
    })
}

fn checked(
    value: &str,
    min: usize,
    max: usize,
    allowed_control: impl Fn(char) -> bool,
) -> Result<String, Option<String>> {
    // `Err(None)`: a control character, which the caller words.
    let trimmed = value.trim();
    let len = trimmed.chars().count();
    if len < min {
        return Err(Some(if min == 1 {
            "must not be empty".to_owned()
        } else {
            format!("must be at least {min} characters")
        }));
    }
    if len > max {
        return Err(Some(format!("must be at most {max} characters")));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() && !allowed_control(c))
    {
        return Err(None);
    }
    Ok(trimmed.to_owned())
}
