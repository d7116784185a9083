//! Which routes need what, read from the OpenAPI description that the handlers' own
//! annotations generate: a route's scope is declared once, on the route, and the same
//! declaration documents it. A route missing from the description is refused by default.

use super::Need;
use crate::domain::scope::Scope;
use axum::http::Method;
use serde_json::Value;
use std::collections::HashMap;

/// The name of the security scheme in the OpenAPI description.
pub const SCHEME: &str = "api_key";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    Authenticated(Need),
}

#[derive(Debug, Default)]
pub struct Policy {
    /// Route template → its declared methods.
    routes: HashMap<String, Vec<Operation>>,
}

#[derive(Debug)]
struct Operation {
    method: Method,
    access: Access,
    /// Whether it declares query parameters.
    query: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("route {method} {path}: {problem}")]
pub struct PolicyError {
    method: String,
    path: String,
    problem: String,
}

impl Policy {
    /// Reads the description of routes that are served under `prefix`.
    pub fn from_openapi(doc: &utoipa::openapi::OpenApi, prefix: &str) -> Result<Self, PolicyError> {
        let doc = serde_json::to_value(doc).unwrap_or(Value::Null);
        let global = doc.get("security");
        let mut routes: HashMap<String, Vec<Operation>> = HashMap::new();
        let paths = doc
            .get("paths")
            .and_then(Value::as_object)
            .into_iter()
            .flatten();
        for (path, item) in paths {
            for (method, operation) in item.as_object().into_iter().flatten() {
                let Ok(method) = method.to_ascii_uppercase().parse::<Method>() else {
                    continue;
                };
                let error = |problem: String| PolicyError {
                    method: method.to_string(),
                    path: path.clone(),
                    problem,
                };
                let security = operation.get("security").or(global);
                let access = access_of(security).map_err(error)?;
                let query = operation
                    .get("parameters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|parameter| parameter.get("in").and_then(Value::as_str) == Some("query"));
                routes
                    .entry(format!("{prefix}{path}"))
                    .or_default()
                    .push(Operation {
                        method,
                        access,
                        query,
                    });
            }
        }
        Ok(Self { routes })
    }

    /// What `method` on the route template `route` requires; `None` when the route has no
    /// such method (the router then answers 405 without running a handler).
    pub fn access(&self, method: &Method, route: &str) -> Option<Access> {
        self.operation(method, route)
            .map(|operation| operation.access)
    }

    /// Whether `method` on `route` declares query parameters; the others are called without
    /// a query string.
    pub fn takes_query(&self, method: &Method, route: &str) -> bool {
        self.operation(method, route)
            .is_some_and(|operation| operation.query)
    }

    fn operation(&self, method: &Method, route: &str) -> Option<&Operation> {
        // axum answers HEAD with the GET handler, so HEAD is what GET is.
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.routes
            .get(route)?
            .iter()
            .find(|operation| operation.method == *method)
    }

    /// Every declared route template with its methods.
    pub fn routes(&self) -> impl Iterator<Item = (&str, Vec<Method>)> {
        self.routes
            .keys()
            .map(|route| (route.as_str(), self.methods(route)))
    }

    /// The methods declared for `route`, for an `Allow` header.
    pub fn methods(&self, route: &str) -> Vec<Method> {
        let mut methods: Vec<Method> = self
            .routes
            .get(route)
            .into_iter()
            .flatten()
            .map(|operation| operation.method.clone())
            .collect();
        methods.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        methods
    }
}

fn access_of(security: Option<&Value>) -> Result<Access, String> {
    let Some(requirements) = security.and_then(Value::as_array) else {
        return Ok(Access::Authenticated(Need::Nothing));
    };
    if requirements
        .iter()
        .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
    {
        return Ok(Access::Public);
    }
    let scopes = requirements
        .iter()
        .filter_map(|r| r.get(SCHEME))
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>();
    match scopes.as_slice() {
        [] => Ok(Access::Authenticated(Need::Nothing)),
        [scope] => scope
            .parse::<Scope>()
            .map(|s| Access::Authenticated(Need::Scope(s)))
            .map_err(|e| e.to_string()),
        _ => Err("declare one scope per operation".to_owned()),
    }
}
