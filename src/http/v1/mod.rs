//! `/api/v1`: the integration API. Each handler's `#[utoipa::path]` declares its route, its
//! scope and its answers; the OpenAPI description and the auth policy are both made from them.

pub mod api_users;
pub mod customers;
pub mod leaks;
pub mod me;
pub mod openapi;
pub mod orders;
pub mod products;
pub mod session;

use super::AppState;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub const PREFIX: &str = "/api/v1";

/// The login route's template, whose calls run inline (see `api::run_of`).
pub const LOGIN: &str = "/api/v1/login";

/// The API's routes, with their OpenAPI description (paths relative to `/api/v1`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(session::login))
        .routes(routes!(session::logout))
        .routes(routes!(me::me))
        .routes(routes!(products::list, products::create))
        .routes(routes!(products::show, products::update))
        .routes(routes!(products::set_stock))
        .routes(routes!(customers::list, customers::create))
        .routes(routes!(customers::show, customers::update))
        .routes(routes!(orders::list, orders::create))
        .routes(routes!(orders::show))
        .routes(routes!(orders::add_history))
        .routes(routes!(orders::statuses))
        .routes(routes!(api_users::list, api_users::create))
        .routes(routes!(
            api_users::show,
            api_users::update,
            api_users::delete
        ))
        .routes(routes!(api_users::rotate))
        .routes(routes!(
            api_users::ips,
            api_users::add_ip,
            api_users::replace_ips,
            api_users::remove_ip
        ))
        .routes(routes!(api_users::sessions, api_users::revoke_sessions))
        .routes(routes!(api_users::revoke_session))
        .routes(routes!(api_users::history))
        .routes(routes!(leaks::report))
}
