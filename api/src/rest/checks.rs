//! The `/monitors` API's check routes: run a check now, read a monitor's history.

use axum::{
    extract::{Path, RawQuery, State},
    Json,
};
use domain::CheckResult;

use super::body::path_id;
use crate::{error::ApiError, AppState};

/// Results returned when `?limit=` is absent.
pub const DEFAULT_LIMIT: u64 = 100;
/// Largest `?limit=`.
pub const MAX_LIMIT: u64 = 1000;

/// `POST /monitors/{id}/check`: runs a check now, stores and publishes it, returns it.
pub async fn run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CheckResult>, ApiError> {
    let id = path_id(&id)?;
    Ok(Json(state.monitors.run_check(id).await?))
}

/// `GET /monitors/{id}/check?limit=N`: the newest results first.
pub async fn history(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<CheckResult>>, ApiError> {
    let id = path_id(&id)?;
    let limit = limit_param(query.as_deref())?;
    let page = state.monitors.history(id, None, limit).await?;
    Ok(Json(page.items))
}

/// Reads `limit` from a query string: 1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`].
pub fn limit_param(query: Option<&str>) -> Result<u64, ApiError> {
    let Some(query) = query else {
        return Ok(DEFAULT_LIMIT);
    };
    let raw = url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "limit")
        .map(|(_, value)| value.into_owned());
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(raw) => raw
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid("limit", format!("must be an integer from 1 to {MAX_LIMIT}"))
            }),
    }
}
