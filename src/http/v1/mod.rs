//! `/api/v1`: the integration API. Each handler's `#[utoipa::path]` declares its route, its
//! scope and its answers; the OpenAPI description and the auth policy are both made from them.

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
        .routes(routes!(leaks::report))
}
