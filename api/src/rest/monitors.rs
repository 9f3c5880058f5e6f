//! The `/monitors` REST API's routes: `/monitors` CRUD and `/healthz`. Thin adapters: parse the
//! request into domain types, call [`MonitorService`], shape the answer.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};

use domain::{
    IntervalSeconds, Monitor, MonitorName, MonitorUrl, NewMonitor, SpecInput, TimeoutSeconds,
};

use super::body::{parse_field, path_id, required, Fields, JsonObject};
use crate::{error::ApiError, AppState};

/// `POST /monitors`: 201 and the new monitor.
pub async fn create(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<(StatusCode, Json<Monitor>), ApiError> {
    body.allow_only(&MONITOR_BODY_KEYS, MONITOR_READ_ONLY_KEYS)?;
    let active = body.opt_bool("active")?.unwrap_or(true);
    let new = parse_monitor_body(&body, active)?;
    let monitor = state.monitors.create(new).await?;
    Ok((StatusCode::CREATED, Json(monitor)))
}

/// `GET /monitors`: every monitor, oldest first.
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Monitor>>, ApiError> {
    Ok(Json(state.monitors.list_all().await?))
}

/// `GET /monitors/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Monitor>, ApiError> {
    let id = path_id(&id)?;
    Ok(Json(state.monitors.get(id).await?))
}

/// `PUT /monitors/{id}`: the same body as `POST`; an omitted `active` keeps its value.
pub async fn replace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<Monitor>, ApiError> {
    let id = path_id(&id)?;
    body.allow_only(&MONITOR_BODY_KEYS, MONITOR_READ_ONLY_KEYS)?;
    let active = body.opt_bool("active")?;
    let mut patch: domain::MonitorPatch = parse_monitor_body(&body, true)?.into();
    patch.active = active;
    Ok(Json(state.monitors.update(id, patch).await?))
}

/// `DELETE /monitors/{id}`: 204; the history goes with it.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id)?;
    state.monitors.delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /healthz`: 200 `{"status":"ok"}`, 503 when the database does not answer.
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if state.monitors.healthy().await {
        (StatusCode::OK, Json(serde_json::json!({ "status": "ok" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "status": "unavailable",
                "error": "the database cannot be reached"
            })),
        )
    }
}

/// Every key a `/monitors` body may have: the monitor's own, then the check options.
static MONITOR_BODY_KEYS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    [
        "name",
        "url",
        "timeout_seconds",
        "interval_seconds",
        "active",
    ]
    .into_iter()
    .chain(super::spec::SPEC_KEYS.iter().copied())
    .collect()
});

/// Keys a monitor read shows that no write sets.
const MONITOR_READ_ONLY_KEYS: &[&str] = &[
    "id",
    "created_at",
    "updated_at",
    "last_checked_at",
    "last_status",
    "state",
    "push_token",
];

/// The keys of a monitor body, as one API spells them.
pub struct MonitorKeys {
    pub name: &'static str,
    pub url: &'static str,
    pub timeout: &'static str,
    pub interval: &'static str,
    /// Whether the URL may be left out (a PUSH monitor has none; the service decides).
    pub url_optional: bool,
}

/// The first seed's spelling.
pub const MONITOR_KEYS: MonitorKeys = MonitorKeys {
    name: "name",
    url: "url",
    timeout: "timeout_seconds",
    interval: "interval_seconds",
    url_optional: true,
};

fn parse_monitor_body(body: &Fields, active: bool) -> Result<NewMonitor, ApiError> {
    let mut new = parse_monitor_fields(body, &MONITOR_KEYS, active, None)?;
    let (spec, flap) = super::spec::parse_spec(body)?;
    new.spec = spec;
    new.failure_threshold = flap.failure;
    new.success_threshold = flap.success;
    new.retry_interval = flap.retry;
    new.reminder_interval = flap.reminder;
    new.channel_ids = flap.channel_ids;
    new.notify_degraded = body.opt_bool("notify_degraded")?;
    Ok(new)
}

/// Reads name, URL, timeout and interval under the given keys; all are required, except the
/// timeout when a default is given.
pub fn parse_monitor_fields(
    body: &Fields,
    keys: &MonitorKeys,
    active: bool,
    default_timeout: Option<i64>,
) -> Result<NewMonitor, ApiError> {
    let name = required(keys.name, body.opt_str(keys.name)?)?;
    let url = match body.opt_str(keys.url)? {
        None if keys.url_optional => None,
        url => Some(required(keys.url, url)?),
    };
    let timeout = required(
        keys.timeout,
        body.opt_int(keys.timeout)?.or(default_timeout),
    )?;
    let interval = required(keys.interval, body.opt_int(keys.interval)?)?;
    Ok(NewMonitor {
        name: parse_field(keys.name, name, MonitorName::parse)?,
        url: url
            .map(|url| parse_field(keys.url, url, MonitorUrl::parse))
            .transpose()?,
        timeout: parse_field(keys.timeout, timeout, TimeoutSeconds::parse)?,
        interval: parse_field(keys.interval, interval, IntervalSeconds::parse)?,
        active,
        spec: SpecInput::default(),
        failure_threshold: None,
        success_threshold: None,
        retry_interval: None,
        reminder_interval: None,
        channel_ids: None,
        notify_degraded: None,
    })
}
