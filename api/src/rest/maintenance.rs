//! `/maintenance-windows`: list, create, read, change, end early and delete windows, in the
//! snake_case forms of the GraphQL inputs.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use chrono::{DateTime, SecondsFormat, Utc};
use domain::maintenance::MaintenanceWindow;
use serde::Serialize;
use service::{NewWindow, WindowPatch};

use super::body::{id_list, path_id, required, Fields, JsonObject};
use crate::{error::ApiError, AppState};

/// A window as REST shows it.
#[derive(Serialize)]
pub struct WindowBody {
    id: i64,
    name: String,
    all_monitors: bool,
    monitor_ids: Vec<i64>,
    starts_at: String,
    ends_at: String,
    recurrence: Option<String>,
    time_zone: String,
    active: bool,
    ended_at: Option<String>,
    current_starts_at: Option<String>,
    current_ends_at: Option<String>,
    created_at: String,
    updated_at: String,
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl From<MaintenanceWindow> for WindowBody {
    fn from(w: MaintenanceWindow) -> Self {
        Self {
            id: w.id,
            name: w.name,
            all_monitors: w.all_monitors,
            monitor_ids: w.monitor_ids,
            starts_at: time(w.starts_at),
            ends_at: time(w.ends_at),
            recurrence: w.recurrence,
            time_zone: w.time_zone,
            active: w.active,
            ended_at: w.ended_at.map(time),
            current_starts_at: w.current_or_next.map(|(s, _)| time(s)),
            current_ends_at: w.current_or_next.map(|(_, e)| time(e)),
            created_at: time(w.created_at),
            updated_at: time(w.updated_at),
        }
    }
}

const KEYS: &[&str] = &[
    "name",
    "monitor_ids",
    "starts_at",
    "ends_at",
    "recurrence",
    "time_zone",
];
const READ_ONLY: &[&str] = &[
    "id",
    "all_monitors",
    "active",
    "ended_at",
    "current_starts_at",
    "current_ends_at",
    "created_at",
    "updated_at",
];

fn time_field(fields: &Fields, key: &'static str) -> Result<Option<DateTime<Utc>>, ApiError> {
    fields
        .opt_str(key)?
        .map(|raw| {
            DateTime::parse_from_rfc3339(raw.trim())
                .map(|at| at.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::invalid(key, "must be an RFC 3339 time such as 2026-12-03T16:19:14Z")
                })
        })
        .transpose()
}

fn monitor_ids(fields: &Fields) -> Result<Option<Vec<i64>>, ApiError> {
    id_list(fields, "monitor_ids", "monitor")
}

/// `GET /maintenance-windows`: every window, oldest first.
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<WindowBody>>, ApiError> {
    let windows = state.monitors.maintenance_windows().await?;
    Ok(Json(windows.into_iter().map(WindowBody::from).collect()))
}

/// `POST /maintenance-windows`.
pub async fn create(
    State(state): State<AppState>,
    JsonObject(fields): JsonObject,
) -> Result<(StatusCode, Json<WindowBody>), ApiError> {
    fields.allow_only(KEYS, READ_ONLY)?;
    let new = NewWindow {
        name: required("name", fields.opt_str("name")?)?.to_owned(),
        monitor_ids: monitor_ids(&fields)?.unwrap_or_default(),
        starts_at: required("starts_at", time_field(&fields, "starts_at")?)?,
        ends_at: required("ends_at", time_field(&fields, "ends_at")?)?,
        recurrence: fields.opt_str("recurrence")?.map(str::to_owned),
        time_zone: fields.opt_str("time_zone")?.map(str::to_owned),
    };
    let window = state.monitors.create_window(new).await?;
    Ok((StatusCode::CREATED, Json(window.into())))
}

/// `GET /maintenance-windows/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<WindowBody>, ApiError> {
    let id = path_id(&id)?;
    Ok(Json(state.monitors.maintenance_window(id).await?.into()))
}

/// `PATCH /maintenance-windows/{id}`: what is omitted stays; `"recurrence": null` makes it
/// one-off.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonObject(fields): JsonObject,
) -> Result<Json<WindowBody>, ApiError> {
    let id = path_id(&id)?;
    fields.allow_only(KEYS, READ_ONLY)?;
    let patch = WindowPatch {
        name: fields.opt_str("name")?.map(str::to_owned),
        monitor_ids: monitor_ids(&fields)?,
        starts_at: time_field(&fields, "starts_at")?,
        ends_at: time_field(&fields, "ends_at")?,
        recurrence: if fields.has("recurrence") {
            Some(fields.opt_str("recurrence")?.map(str::to_owned))
        } else {
            None
        },
        time_zone: fields.opt_str("time_zone")?.map(str::to_owned),
    };
    Ok(Json(state.monitors.update_window(id, patch).await?.into()))
}

/// `POST /maintenance-windows/{id}/end`: ends the occurrence in effect now.
pub async fn end(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<WindowBody>, ApiError> {
    let id = path_id(&id)?;
    Ok(Json(state.monitors.end_window(id).await?.into()))
}

/// `DELETE /maintenance-windows/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id)?;
    state.monitors.delete_window(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
