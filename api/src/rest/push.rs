//! `GET` or `POST /push/{token}`: a PUSH monitor's report, with optional `status` (`up` or
//! `down`), `msg` and `ping` (milliseconds) in the query. Answers 200 with the stored result,
//! 404 for a token no monitor has, 409 for a paused monitor, 400 naming a bad parameter.

use axum::{
    extract::{Path, RawQuery, State},
    Json,
};
use domain::{push::PushReport, CheckResult};

use crate::{error::ApiError, AppState};

/// Longest query string read, in bytes.
const MAX_QUERY_BYTES: usize = 4096;

pub async fn push(
    State(state): State<AppState>,
    Path(token): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<CheckResult>, ApiError> {
    let query = query.unwrap_or_default();
    if query.len() > MAX_QUERY_BYTES {
        return Err(ApiError::BadRequest(
            format!("the query string is longer than {MAX_QUERY_BYTES} bytes").into(),
        ));
    }
    let (mut status, mut msg, mut ping) = (None, None, None);
    // Unknown parameters (a cache-buster, say) are let through; the first of a repeated one
    // counts.
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match key.as_ref() {
            "status" => &mut status,
            "msg" => &mut msg,
            "ping" => &mut ping,
            _ => continue,
        };
        slot.get_or_insert(value.into_owned());
    }
    let report = PushReport::parse(status.as_deref(), msg.as_deref(), ping.as_deref())
        .map_err(|(field, problem)| ApiError::invalid(field, problem))?;
    Ok(Json(state.monitors.push(&token, report).await?))
}
