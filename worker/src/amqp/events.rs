//! Live events over the broker: every stored check goes to a fanout exchange, and each API
//! process feeds the exchange's events to its local subscribers.
//!
//! On the wire an event is [`WireEvent`], a type of its own with a version, never a table
//! model or a domain type's serde form: within a version fields are only added (with
//! defaults) and unknown ones are ignored, so processes of two releases share the exchange
//! during a rolling deploy; an event of a version this process does not know is skipped.

use std::{borrow::Cow, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use domain::{
    AssertionResult, CheckEvent, CheckResult, CheckSpec, CheckStatus, Monitor, MonitorKind,
    MonitorState, StatusChange, Timings, TlsInfo,
};
use futures_util::StreamExt;
use lapin::{
    options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions},
    types::FieldTable,
    Connection,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{connect, declare, AmqpConfig, ConsumerLost, Publisher};
use crate::events::EventBus;

/// The version this process writes, and the only one it reads.
pub const WIRE_VERSION: u32 = 1;

/// One stored check on the wire (version [`WIRE_VERSION`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct WireEvent<'a> {
    pub version: u32,
    pub result: WireResult<'a>,
    pub monitor: WireMonitor<'a>,
    /// The monitor's status before this result; absent for its first result.
    #[serde(default)]
    pub previous: Option<CheckStatus>,
    /// The confirmed change this result made; absent when none (or from an older writer,
    /// which made one whenever the raw status changed: see [`WireEvent::into_event`]).
    #[serde(default)]
    pub change: Option<WireChange>,
    /// Set by writers with flap control; events without it take the older rule (every raw
    /// change is a status change).
    #[serde(default)]
    pub confirms: bool,
    /// The incident this result opened or resolved; absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<WireIncident>,
}

/// An incident opened (no `resolved_at`) or resolved.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct WireIncident {
    pub started_seq: i32,
    pub started_at: DateTime<Utc>,
    #[serde(default)]
    pub resolved_at: Option<DateTime<Utc>>,
}

/// A confirmed status change.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct WireChange {
    #[serde(default)]
    pub from: Option<CheckStatus>,
    pub to: CheckStatus,
    pub state_before: MonitorState,
}

/// The stored result.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireResult<'a> {
    pub id: i64,
    pub monitor_id: i64,
    pub seq: i32,
    pub status: CheckStatus,
    #[serde(default)]
    pub status_code: Option<u16>,
    pub response_time_ms: i64,
    #[serde(default)]
    pub error: Option<Cow<'a, str>>,
    pub checked_at: DateTime<Utc>,
    #[serde(default)]
    pub degraded: bool,
    #[serde(default)]
    pub timings: Option<Timings>,
    #[serde(default)]
    pub tls: Option<TlsInfo>,
    #[serde(default, skip_serializing_if = "<[_]>::is_empty")]
    pub assertion_results: Cow<'a, [AssertionResult]>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_maintenance: bool,
}

/// The monitor after the result (its URL's password masked: the broker never sees one).
#[derive(Debug, Serialize, Deserialize)]
pub struct WireMonitor<'a> {
    pub id: i64,
    pub name: Cow<'a, str>,
    pub url: Cow<'a, str>,
    pub timeout_seconds: i32,
    pub interval_seconds: i32,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub last_checked_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_status: Option<CheckStatus>,
    /// Sent when not HTTP; a kind this process does not know reads as HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Cow<'a, str>>,
    /// The check options (secrets masked), kept as JSON: a field a newer writer added is
    /// dropped here rather than failing the whole event.
    #[serde(default)]
    pub check: Option<serde_json::Value>,
    #[serde(default)]
    pub failure_threshold: Option<i32>,
    #[serde(default)]
    pub success_threshold: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder_interval_minutes: Option<i32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notify_degraded: bool,
    #[serde(default)]
    pub state: Option<MonitorState>,
}

impl<'a> From<&'a CheckEvent> for WireEvent<'a> {
    fn from(event: &'a CheckEvent) -> Self {
        let (r, m) = (&event.result, &event.monitor);
        Self {
            version: WIRE_VERSION,
            result: WireResult {
                id: r.id,
                monitor_id: r.monitor_id,
                seq: r.seq,
                status: r.status,
                status_code: r.status_code,
                response_time_ms: r.response_time_ms,
                error: r.error.as_deref().map(Cow::Borrowed),
                checked_at: r.checked_at,
                degraded: r.degraded,
                timings: Some(r.timings),
                tls: r.tls.clone(),
                assertion_results: Cow::Borrowed(&r.assertion_results),
                in_maintenance: r.in_maintenance,
            },
            monitor: WireMonitor {
                id: m.id,
                name: Cow::Borrowed(&m.name),
                url: Cow::Borrowed(&m.url),
                timeout_seconds: m.timeout_seconds,
                interval_seconds: m.interval_seconds,
                active: m.active,
                created_at: m.created_at,
                updated_at: m.updated_at,
                last_checked_at: m.last_checked_at,
                last_status: m.last_status,
                kind: (!m.kind.is_http()).then(|| Cow::Borrowed(m.kind.as_str())),
                check: (m.check != CheckSpec::default())
                    .then(|| serde_json::to_value(&m.check).ok())
                    .flatten(),
                failure_threshold: Some(m.failure_threshold),
                success_threshold: Some(m.success_threshold),
                retry_interval_seconds: m.retry_interval_seconds,
                reminder_interval_minutes: m.reminder_interval_minutes,
                notify_degraded: m.notify_degraded,
                state: Some(m.state),
            },
            previous: event.previous,
            change: event.change.map(|c| WireChange {
                from: c.from,
                to: c.to,
                state_before: c.state_before,
            }),
            confirms: true,
            incident: event.incident.map(|i| WireIncident {
                started_seq: i.started_seq,
                started_at: i.started_at,
                resolved_at: i.resolved_at,
            }),
        }
    }
}

impl WireEvent<'_> {
    /// The event, or why it cannot be taken: a version this process does not read.
    pub fn into_event(self) -> Result<CheckEvent, String> {
        if self.version != WIRE_VERSION {
            return Err(format!(
                "event of wire version {}, this process reads version {WIRE_VERSION}",
                self.version
            ));
        }
        let (r, m) = (self.result, self.monitor);
        let check = m.check.and_then(lenient_spec).unwrap_or_default();
        let push_token = domain::input::push_token_of(&m.url).map(str::to_owned);
        let change = match (self.confirms, self.change) {
            (true, change) => change.map(|c| StatusChange {
                from: c.from,
                to: c.to,
                state_before: c.state_before,
            }),
            (false, _) => {
                domain::is_status_change(self.previous, r.status).then_some(StatusChange {
                    from: self.previous,
                    to: r.status,
                    state_before: MonitorState::Pending,
                })
            }
        };
        Ok(CheckEvent {
            result: CheckResult {
                id: r.id,
                monitor_id: r.monitor_id,
                seq: r.seq,
                status: r.status,
                status_code: r.status_code,
                response_time_ms: r.response_time_ms,
                error: r.error.map(Cow::into_owned),
                checked_at: r.checked_at,
                degraded: r.degraded,
                timings: r.timings.unwrap_or(Timings {
                    total_ms: i32::try_from(r.response_time_ms).unwrap_or(i32::MAX),
                    ..Timings::default()
                }),
                tls: r.tls,
                assertion_results: r.assertion_results.into_owned(),
                in_maintenance: r.in_maintenance,
            },
            monitor: Monitor {
                id: m.id,
                name: m.name.into_owned(),
                url: m.url.into_owned(),
                timeout_seconds: m.timeout_seconds,
                interval_seconds: m.interval_seconds,
                active: m.active,
                created_at: m.created_at,
                updated_at: m.updated_at,
                last_checked_at: m.last_checked_at,
                last_status: m.last_status,
                kind: m
                    .kind
                    .as_deref()
                    .and_then(|k| MonitorKind::parse(k).ok())
                    .unwrap_or_default(),
                push_token,
                check,
                failure_threshold: m.failure_threshold.unwrap_or(1),
                success_threshold: m.success_threshold.unwrap_or(1),
                retry_interval_seconds: m.retry_interval_seconds,
                reminder_interval_minutes: m.reminder_interval_minutes,
                notify_degraded: m.notify_degraded,
                state: m.state.unwrap_or(if m.active {
                    match m.last_status {
                        Some(CheckStatus::Up) => MonitorState::Up,
                        Some(CheckStatus::Down) => MonitorState::Down,
                        None => MonitorState::Pending,
                    }
                } else {
                    MonitorState::Paused
                }),
            },
            previous: self.previous,
            change,
            incident: self.incident.map(|i| domain::IncidentChange {
                started_seq: i.started_seq,
                started_at: i.started_at,
                resolved_at: i.resolved_at,
            }),
        })
    }

    /// Decodes one message: the event, or a reason to skip it.
    pub fn decode(bytes: &[u8]) -> Result<CheckEvent, String> {
        serde_json::from_slice::<WireEvent<'_>>(bytes)
            .map_err(|err| format!("malformed event message: {err}"))?
            .into_event()
    }
}

/// A spec from an event, dropping fields this version does not know.
fn lenient_spec(mut value: serde_json::Value) -> Option<CheckSpec> {
    if let Ok(spec) = serde_json::from_value::<CheckSpec>(value.clone()) {
        return Some(spec);
    }
    let known = serde_json::to_value(CheckSpec::default()).ok()?;
    if let (Some(object), Some(known)) = (value.as_object_mut(), known.as_object()) {
        object.retain(|key, _| known.contains_key(key));
    }
    serde_json::from_value(value).ok()
}

/// Forwards locally stored check events to the events exchange until `stop` fires and what
/// is queued has been sent.
pub async fn forward_events(
    publisher: Arc<Publisher>,
    mut events: mpsc::Receiver<Arc<CheckEvent>>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(256);
    loop {
        tokio::select! {
            biased;
            received = events.recv_many(&mut batch, 256) => {
                if received == 0 {
                    return;
                }
            }
            _ = stop.cancelled() => {
                while let Ok(event) = events.try_recv() {
                    batch.push(event);
                }
                if !batch.is_empty() {
                    if let Err(err) = publisher.publish_events(&batch).await {
                        tracing::warn!(error = %err, events = batch.len(), "live events not sent at shutdown");
                    }
                }
                return;
            }
        }
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=10 {
            match publisher.publish_events(&batch).await {
                Ok(()) => break,
                Err(err) if attempt == 10 => {
                    tracing::error!(error = %err, events = batch.len(), "live events dropped: RabbitMQ kept failing (results are stored)");
                }
                Err(err) => {
                    tracing::warn!(error = %err, "could not publish live events; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        batch.clear();
    }
}

/// Feeds every event on the exchange to this process's local subscribers, until `stop`.
pub async fn relay_events(config: AmqpConfig, bus: EventBus, stop: CancellationToken) {
    while let Some(conn) = connect(&config, &stop).await {
        match relay_once(&conn, &config, &bus, &stop).await {
            Ok(()) => {
                let _ = conn.close(200, "shutting down".into()).await;
                return;
            }
            Err(err) => tracing::warn!(error = %err, "event relay lost RabbitMQ; reconnecting"),
        }
    }
}

async fn relay_once(
    conn: &Connection,
    config: &AmqpConfig,
    bus: &EventBus,
    stop: &CancellationToken,
) -> Result<(), ConsumerLost> {
    let channel = conn.create_channel().await?;
    declare(&channel, config).await?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            queue.name().clone(),
            config.events_exchange().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    tracing::info!("relaying live events from RabbitMQ");
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            delivery = consumer.next() => match delivery {
                Some(Ok(delivery)) => match WireEvent::decode(&delivery.data) {
                    Ok(event) => bus.publish_local(Arc::new(event)),
                    Err(reason) => tracing::warn!(%reason, "live event skipped"),
                },
                Some(Err(err)) => return Err(ConsumerLost::Amqp(err)),
                None => return Err(ConsumerLost::Ended),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn event() -> CheckEvent {
        let at = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        CheckEvent {
            result: CheckResult {
                id: 9,
                monitor_id: 3,
                seq: 2,
                status: CheckStatus::Down,
                status_code: Some(503),
                response_time_ms: 12,
                error: Some("HTTP 503".into()),
                checked_at: at,
                degraded: false,
                timings: domain::Timings {
                    total_ms: 12,
                    ..Default::default()
                },
                tls: None,
                assertion_results: Vec::new(),
                in_maintenance: false,
            },
            monitor: Monitor {
                id: 3,
                name: "api".into(),
                url: "http://u:***@127.0.0.1/".into(),
                timeout_seconds: 5,
                interval_seconds: 60,
                active: true,
                created_at: at,
                updated_at: at,
                last_checked_at: Some(at),
                last_status: Some(CheckStatus::Down),
                kind: domain::MonitorKind::Http,
                push_token: None,
                check: domain::CheckSpec::default(),
                failure_threshold: 1,
                success_threshold: 1,
                retry_interval_seconds: None,
                reminder_interval_minutes: None,
                notify_degraded: false,
                state: domain::MonitorState::Down,
            },
            previous: Some(CheckStatus::Up),
            change: Some(StatusChange {
                from: Some(CheckStatus::Up),
                to: CheckStatus::Down,
                state_before: MonitorState::Up,
            }),
            incident: None,
        }
    }

    /// Version 1 as the first release wrote it (no check options, timings or confirmed
    /// changes): still read, every raw change taken as a status change.
    const V1_FIRST: &str = r#"{"version":1,"result":{"id":9,"monitor_id":3,"seq":2,"status":"DOWN","status_code":503,"response_time_ms":12,"error":"HTTP 503","checked_at":"2027-01-15T08:00:00Z"},"monitor":{"id":3,"name":"api","url":"http://u:***@127.0.0.1/","timeout_seconds":5,"interval_seconds":60,"active":true,"created_at":"2027-01-15T08:00:00Z","updated_at":"2027-01-15T08:00:00Z","last_checked_at":"2027-01-15T08:00:00Z","last_status":"DOWN"},"previous":"UP"}"#;

    /// Version 1 as it travels now. A change to this text breaks processes of other
    /// releases.
    const V1: &str = r#"{"version":1,"result":{"id":9,"monitor_id":3,"seq":2,"status":"DOWN","status_code":503,"response_time_ms":12,"error":"HTTP 503","checked_at":"2027-01-15T08:00:00Z","degraded":false,"timings":{"dns_ms":null,"connect_ms":null,"tls_ms":null,"first_byte_ms":null,"total_ms":12},"tls":null},"monitor":{"id":3,"name":"api","url":"http://u:***@127.0.0.1/","timeout_seconds":5,"interval_seconds":60,"active":true,"created_at":"2027-01-15T08:00:00Z","updated_at":"2027-01-15T08:00:00Z","last_checked_at":"2027-01-15T08:00:00Z","last_status":"DOWN","check":null,"failure_threshold":1,"success_threshold":1,"state":"DOWN"},"previous":"UP","change":{"from":"UP","to":"DOWN","state_before":"UP"},"confirms":true}"#;

    #[test]
    fn an_event_of_the_first_release_still_reads() {
        let read = WireEvent::decode(V1_FIRST.as_bytes()).unwrap();
        let mut expected = event();
        expected.change = Some(StatusChange {
            from: Some(CheckStatus::Up),
            to: CheckStatus::Down,
            state_before: MonitorState::Pending,
        });
        assert_eq!(read, expected);
    }

    #[test]
    fn version_1_is_written_and_read_as_pinned() {
        let event = event();
        let text = serde_json::to_string(&WireEvent::from(&event)).unwrap();
        assert_eq!(text, V1);
        assert_eq!(WireEvent::decode(V1.as_bytes()), Ok(event));
    }

    #[test]
    fn an_incident_travels_with_its_event() {
        let mut event = event();
        let at = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        event.incident = Some(domain::IncidentChange {
            started_seq: 2,
            started_at: at,
            resolved_at: None,
        });
        let text = serde_json::to_string(&WireEvent::from(&event)).unwrap();
        assert!(
            text.ends_with(r#","confirms":true,"incident":{"started_seq":2,"started_at":"2027-01-15T08:00:00Z","resolved_at":null}}"#),
            "{text}"
        );
        assert_eq!(WireEvent::decode(text.as_bytes()), Ok(event));
    }

    #[test]
    fn a_newer_writer_may_add_fields_and_an_unknown_version_is_skipped() {
        let added = V1.replacen(r#""seq":2,"#, r#""seq":2,"region":"eu","#, 1);
        assert_eq!(WireEvent::decode(added.as_bytes()), Ok(event()));
        let newer = V1.replacen(r#""version":1"#, r#""version":2"#, 1);
        let err = WireEvent::decode(newer.as_bytes()).unwrap_err();
        assert!(err.contains("wire version 2"), "{err}");
        let err = WireEvent::decode(b"{\"version\":1}").unwrap_err();
        assert!(err.starts_with("malformed event message"), "{err}");
    }
}
