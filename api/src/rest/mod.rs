//! The REST routes of the `/monitors`, `/push`, `/incidents`, `/maintenance-windows` and
//! `/services` + `/ws` APIs, and the JSON answers for unknown routes and methods.

pub mod body;
pub mod checks;
pub mod incidents;
pub mod maintenance;
pub mod monitors;
pub mod push;
pub mod services;
pub mod spec;

use axum::{extract::DefaultBodyLimit, routing::get, Router};

use crate::{error::ApiError, AppState};

/// The REST routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(monitors::healthz))
        .route("/monitors", get(monitors::list).post(monitors::create))
        .route(
            "/monitors/{id}",
            get(monitors::get)
                .put(monitors::replace)
                .delete(monitors::delete),
        )
        .route(
            "/monitors/{id}/check",
            get(checks::history).post(checks::run),
        )
        .route("/push/{token}", get(push::push).post(push::push))
        .route("/incidents", get(incidents::list))
        .route("/incidents/{id}", get(incidents::get))
        .route(
            "/incidents/{id}/acknowledge",
            axum::routing::post(incidents::acknowledge),
        )
        .route(
            "/maintenance-windows",
            get(maintenance::list).post(maintenance::create),
        )
        .route(
            "/maintenance-windows/{id}",
            get(maintenance::get)
                .patch(maintenance::update)
                .delete(maintenance::delete),
        )
        .route(
            "/maintenance-windows/{id}/end",
            axum::routing::post(maintenance::end),
        )
        .route("/services", get(services::list).post(services::create))
        .route("/services/{id}/logs", get(services::logs))
        .route("/ws", get(services::ws))
        .layer(DefaultBodyLimit::max(body::BODY_LIMIT_BYTES))
}

/// 404 for any path no route serves.
pub async fn no_route() -> ApiError {
    ApiError::NoRoute
}

/// 405 for a known path with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
