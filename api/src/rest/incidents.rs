//! `/incidents`: a page of incidents with filters, one incident, and acknowledgements.

use axum::{
    extract::{Path, RawQuery, State},
    Json,
};
use chrono::{DateTime, SecondsFormat, Utc};
use domain::{CheckResult, Incident};
use serde::Serialize;
use service::{IncidentFilter, MonitorService};

use super::{
    body::{path_id, JsonObject},
    checks::{DEFAULT_LIMIT, MAX_LIMIT},
};
use crate::{error::ApiError, AppState};

/// An incident as REST shows it, with the results that opened and closed it.
#[derive(Serialize)]
pub struct IncidentBody {
    id: i64,
    monitor_id: i64,
    started_at: String,
    resolved_at: Option<String>,
    open: bool,
    duration_seconds: i64,
    /// The check that opened it (null once the result retention removed it).
    cause: Option<CheckResult>,
    resolved_by: Option<CheckResult>,
    acknowledged_at: Option<String>,
    acknowledgement: Option<String>,
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

async fn body(service: &MonitorService, incident: Incident) -> Result<IncidentBody, ApiError> {
    let cause = service
        .result_by_seq(incident.monitor_id, incident.started_seq)
        .await?;
    let resolved_by = match incident.resolved_seq {
        Some(seq) => service.result_by_seq(incident.monitor_id, seq).await?,
        None => None,
    };
    Ok(IncidentBody {
        id: incident.id,
        monitor_id: incident.monitor_id,
        started_at: time(incident.started_at),
        resolved_at: incident.resolved_at.map(time),
        open: incident.is_open(),
        duration_seconds: incident.duration_seconds(service::now()),
        cause,
        resolved_by,
        acknowledged_at: incident.acknowledged_at.map(time),
        acknowledgement: incident.acknowledgement,
    })
}

/// `GET /incidents?monitor_id=&open=true|false&from=&to=&before=&limit=`: newest first;
/// `before` (an incident id) pages on to older ones.
pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<IncidentBody>>, ApiError> {
    let mut filter = IncidentFilter::default();
    let mut before = None;
    let mut limit = DEFAULT_LIMIT;
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let value = value.trim();
        match &*key {
            "monitor_id" => filter.monitor_id = Some(id_param("monitor_id", value)?),
            "before" => before = Some(id_param("before", value)?),
            "open" => {
                filter.open = Some(match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(ApiError::invalid("open", "must be true or false")),
                });
            }
            "from" => filter.from = Some(time_param("from", value)?),
            "to" => filter.to = Some(time_param("to", value)?),
            "limit" => {
                limit = value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "limit",
                            format!("must be an integer from 1 to {MAX_LIMIT}"),
                        )
                    })?;
            }
            other => {
                return Err(ApiError::invalid(
                    other.chars().take(64).collect::<String>(),
                    "is not a parameter of /incidents (monitor_id, open, from, to, before, limit)",
                ))
            }
        }
    }
    let page = state.monitors.incidents(filter, before, limit).await?;
    let mut bodies = Vec::with_capacity(page.items.len());
    for incident in page.items {
        bodies.push(body(&state.monitors, incident).await?);
    }
    Ok(Json(bodies))
}

/// `GET /incidents/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<IncidentBody>, ApiError> {
    let id = path_id(&id)?;
    let incident = state.monitors.incident(id).await?;
    Ok(Json(body(&state.monitors, incident).await?))
}

/// `POST /incidents/{id}/acknowledge` with `{"note": "..."}` (the note is optional).
pub async fn acknowledge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonObject(fields): JsonObject,
) -> Result<Json<IncidentBody>, ApiError> {
    let id = path_id(&id)?;
    fields.allow_only(&["note"], &[])?;
    let note = fields.opt_str("note")?;
    let incident = state.monitors.acknowledge_incident(id, note).await?;
    Ok(Json(body(&state.monitors, incident).await?))
}

fn id_param(name: &'static str, raw: &str) -> Result<i64, ApiError> {
    domain::parse_id(raw).map_err(|problem| ApiError::invalid(name, problem))
}

fn time_param(name: &'static str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::invalid(
                name,
                "must be an RFC 3339 time such as 2026-12-03T16:19:14Z",
            )
        })
}
