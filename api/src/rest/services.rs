//! The `/services` + `/ws` API: `/services` (a service is a monitor, the same row), its logs, and
//! the `/ws` WebSocket that pushes one message per check. Keys are exactly as that API
//! has always spelled them.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{
        ws::{rejection::WebSocketUpgradeRejection, Message, WebSocket, WebSocketUpgrade},
        Path, RawQuery, State,
    },
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use domain::{CheckResult, CheckStatus, Monitor};
use futures_util::SinkExt;
use serde::Serialize;
use service::CheckEvent;
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};

use super::{
    body::{path_id, JsonObject},
    checks::limit_param,
    monitors::{parse_monitor_fields, MonitorKeys},
};
use crate::{
    error::ApiError,
    server::ConnectionSlot,
    socket::{self, Beat, KeepAlive, SERVICE_RESTART},
    AppState,
};
use axum::Extension;

/// `Timeout` used when a `/services` body has none.
pub const DEFAULT_SERVICE_TIMEOUT_SECONDS: i64 = 10;

/// What Go's zero `time.Time` looks like in JSON: the seed's "never".
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

const SERVICE_KEYS: MonitorKeys = MonitorKeys {
    name: "name",
    url: "url",
    timeout: "Timeout",
    interval: "interval",
    url_optional: false,
};

/// Every key a `POST /services` body may have (matched ignoring case): the seed's four, and
/// `active` as on `/monitors`.
const SERVICE_BODY_KEYS: &[&str] = &["name", "url", "interval", "Timeout", "active"];

/// Keys a service read shows (either listing's spelling) that no write sets.
const SERVICE_READ_ONLY_KEYS: &[&str] = &[
    "id",
    "LastStatus",
    "CreatedAt",
    "LastCheck",
    "last_status",
    "created_at",
    "last_state",
];

/// The `POST /services` answer.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreatedService {
    #[serde(rename = "ID")]
    id: i64,
    name: String,
    #[serde(rename = "URL")]
    url: String,
    interval: i32,
    last_status: &'static str,
    created_at: DateTime<Utc>,
    last_check: String,
    timeout: i32,
}

/// One element of `GET /services`.
#[derive(Serialize)]
pub struct ListedService {
    id: i64,
    name: String,
    url: String,
    interval: i32,
    last_status: &'static str,
    created_at: DateTime<Utc>,
    /// The time of the last check (the seed's name for it).
    last_state: String,
    timeout: i32,
}

/// One element of `GET /services/{id}/logs`.
#[derive(Serialize)]
pub struct ServiceLog {
    #[serde(rename = "ID")]
    id: i64,
    #[serde(rename = "ServiceID")]
    service_id: i64,
    #[serde(rename = "Status")]
    status: CheckStatus,
    #[serde(rename = "LatencyMs")]
    latency_ms: i64,
    #[serde(rename = "CheckedAt")]
    checked_at: DateTime<Utc>,
}

fn status_text(status: Option<CheckStatus>) -> &'static str {
    status.map(CheckStatus::as_str).unwrap_or("")
}

fn last_check_text(at: Option<DateTime<Utc>>) -> String {
    at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| GO_ZERO_TIME.to_owned())
}

impl From<Monitor> for CreatedService {
    fn from(m: Monitor) -> Self {
        Self {
            id: m.id,
            last_status: status_text(m.last_status),
            last_check: last_check_text(m.last_checked_at),
            name: m.name,
            url: m.url,
            interval: m.interval_seconds,
            created_at: m.created_at,
            timeout: m.timeout_seconds,
        }
    }
}

impl From<Monitor> for ListedService {
    fn from(m: Monitor) -> Self {
        Self {
            id: m.id,
            last_status: status_text(m.last_status),
            last_state: last_check_text(m.last_checked_at),
            name: m.name,
            url: m.url,
            interval: m.interval_seconds,
            created_at: m.created_at,
            timeout: m.timeout_seconds,
        }
    }
}

impl From<CheckResult> for ServiceLog {
    fn from(r: CheckResult) -> Self {
        Self {
            id: r.id,
            service_id: r.monitor_id,
            status: r.status,
            latency_ms: r.response_time_ms,
            checked_at: r.checked_at,
        }
    }
}

/// `POST /services`: keys matched case-insensitively; `Timeout` defaults to
/// [`DEFAULT_SERVICE_TIMEOUT_SECONDS`].
pub async fn create(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<(StatusCode, Json<CreatedService>), ApiError> {
    let body = body.case_insensitive();
    body.allow_only(SERVICE_BODY_KEYS, SERVICE_READ_ONLY_KEYS)?;
    let active = body.opt_bool("active")?.unwrap_or(true);
    let new = parse_monitor_fields(
        &body,
        &SERVICE_KEYS,
        active,
        Some(DEFAULT_SERVICE_TIMEOUT_SECONDS),
    )?;
    let monitor = state.monitors.create(new).await?;
    Ok((StatusCode::CREATED, Json(monitor.into())))
}

/// `GET /services`.
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<ListedService>>, ApiError> {
    let monitors = state.monitors.list_all().await?;
    Ok(Json(monitors.into_iter().map(Into::into).collect()))
}

/// `GET /services/{id}/logs?limit=N`: newest first.
pub async fn logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<ServiceLog>>, ApiError> {
    let id = path_id(&id)?;
    let limit = limit_param(query.as_deref())?;
    let page = state.monitors.history(id, None, limit).await?;
    Ok(Json(page.items.into_iter().map(Into::into).collect()))
}

/// The `/ws` message for one check.
#[derive(Serialize)]
struct WsCheck<'a> {
    service_id: i64,
    name: &'a str,
    old_status: &'static str,
    new_status: &'static str,
    latency: i64,
}

/// `GET /ws`: one JSON text frame per check performed, from any monitor. A foreign `Origin`
/// gets 403; messages from the client are read (for close, pings and the size limit) and
/// otherwise ignored.
pub async fn ws(
    State(state): State<AppState>,
    headers: HeaderMap,
    slot: Option<Extension<ConnectionSlot>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match socket::accept(&state, &headers, upgrade) {
        Ok(upgrade) => upgrade,
        Err(refused) => return refused.into_response(),
    };
    // Held until the socket ends, so shutdown waits for its close frame.
    let tracked = state.sockets.token();
    upgrade.on_upgrade(move |ws| async move {
        // The socket keeps its connection's place among MAX_CONNECTIONS.
        let _held = (tracked, slot);
        push_checks(ws, state).await;
    })
}

/// Pushes check events until the client goes, the server stops (1012), the client sends a
/// message over the limit (1009) or stays silent for two keep-alive intervals (1001).
async fn push_checks(mut ws: WebSocket, state: AppState) {
    let mut events = state.monitors.subscribe();
    let limits = state.edge.limits.clone();
    let mut keepalive = KeepAlive::new(limits.ws_keepalive);
    let shutdown = state.shutdown.clone();
    let close = loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break Some((SERVICE_RESTART, "service restart".to_owned())),
            message = ws.recv() => {
                keepalive.heard();
                match message {
                    // Pings are answered by the WebSocket layer; other messages are ignored.
                    Some(Ok(Message::Close(_))) | None => break None,
                    Some(Err(err)) => break socket::close_for_read_error(err, &limits),
                    Some(Ok(_)) => {}
                }
            },
            beat = keepalive.beat() => match beat {
                Beat::Dead => break Some((socket::GOING_AWAY, keepalive.dead_reason())),
                Beat::Ping => {
                    let ping = ws.send(Message::Ping(Bytes::new()));
                    if !matches!(tokio::time::timeout(keepalive.write_limit(), ping).await, Ok(Ok(()))) {
                        return;
                    }
                }
            },
            event = events.recv() => {
                let limit = keepalive.write_limit();
                match tokio::time::timeout(limit, push(&mut ws, &mut events, event)).await {
                    Ok(Pushed::Sent) => {}
                    Ok(Pushed::Stopped) => {
                        break Some((SERVICE_RESTART, "service restart".to_owned()))
                    }
                    // Gone, or took nothing in for two keep-alive intervals.
                    Ok(Pushed::Gone) | Err(_) => return,
                }
            }
        }
    };
    match close {
        Some((code, reason)) => socket::close(&mut ws, code, &reason).await,
        // Sends the reply to the client's close frame, when there was one.
        None => socket::flush_briefly(&mut ws).await,
    }
}

/// What [`push`] did.
enum Pushed {
    Sent,
    /// The engine stopped: the server is going down.
    Stopped,
    /// The client is gone.
    Gone,
}

/// Writes `first` and every event already waiting after it, with one flush.
async fn push(
    ws: &mut WebSocket,
    events: &mut broadcast::Receiver<Arc<CheckEvent>>,
    first: Result<Arc<CheckEvent>, RecvError>,
) -> Pushed {
    let mut next = Some(first);
    let mut stopped = false;
    while let Some(event) = next.take() {
        let text = match event {
            Ok(event) => serde_json::to_string(&WsCheck {
                service_id: event.result.monitor_id,
                name: &event.monitor.name,
                old_status: status_text(event.previous),
                new_status: event.result.status.as_str(),
                latency: event.result.response_time_ms,
            }),
            Err(RecvError::Lagged(missed)) => serde_json::to_string(&serde_json::json!({
                "error": "this client fell behind; some checks were not sent",
                "missed": missed,
            })),
            Err(RecvError::Closed) => {
                stopped = true;
                break;
            }
        };
        if let Ok(text) = text {
            if ws.feed(Message::Text(text.into())).await.is_err() {
                return Pushed::Gone;
            }
        }
        next = match events.try_recv() {
            Ok(event) => Some(Ok(event)),
            Err(TryRecvError::Lagged(missed)) => Some(Err(RecvError::Lagged(missed))),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
        };
    }
    if ws.flush().await.is_err() {
        return Pushed::Gone;
    }
    match stopped {
        true => Pushed::Stopped,
        false => Pushed::Sent,
    }
}
