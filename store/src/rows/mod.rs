//! Table models as domain types: the one place a stored monitor or result becomes what the
//! rest of the service sees. [`sqlite`] reads rows into table models on rusqlite's
//! connections; sea-orm decodes them on its own.

pub(crate) mod sqlite;

use std::borrow::Cow;

use domain::{
    from_epoch_ms, url_password, AssertionResult, CheckResult, CheckSpec, CheckStatus, Monitor,
    MonitorSchedule, MonitorState, Timings, TlsInfo,
};
use entity::{check_result, incident, monitor};
use serde::{Deserialize, Serialize};

/// A stored monitor as clients see it, its URL's password and secret headers masked.
pub(crate) fn monitor(row: monitor::Model) -> Monitor {
    let mut check = spec(row.id, row.check_spec.as_deref())
        .map(|s| s.masked())
        .unwrap_or_default();
    let state = if row.active {
        row.state
            .as_deref()
            .and_then(MonitorState::parse)
            .unwrap_or(MonitorState::Pending)
    } else {
        MonitorState::Paused
    };
    Monitor {
        id: row.id,
        name: row.name,
        url: match url_password::mask(&row.url) {
            Cow::Borrowed(_) => row.url,
            Cow::Owned(masked) => masked,
        },
        timeout_seconds: row.timeout_seconds,
        interval_seconds: row.interval_seconds,
        active: row.active,
        created_at: row.created_at,
        updated_at: row.updated_at,
        last_checked_at: row.last_checked_at,
        last_status: row.last_up.map(CheckStatus::from_up),
        // The kind is the monitor's field; the flattened options do not repeat it.
        kind: std::mem::take(&mut check.kind),
        push_token: row.push_token,
        check,
        failure_threshold: row.failure_threshold,
        success_threshold: row.success_threshold,
        retry_interval_seconds: row.retry_interval_seconds,
        reminder_interval_minutes: row.reminder_interval_minutes,
        notify_degraded: row.notify_degraded,
        state,
    }
}

/// A stored spec; one that cannot be read (written by a newer version) is logged and
/// treated as none.
pub(crate) fn spec(id: i64, text: Option<&str>) -> Option<CheckSpec> {
    let text = text?;
    match CheckSpec::from_json(text) {
        Ok(spec) => Some(spec),
        Err(err) => {
            tracing::error!(monitor.id = id, error = %err, "stored check options cannot be read");
            None
        }
    }
}

/// What a result's `details` column holds.
#[derive(Serialize, Deserialize, Default)]
struct Details {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tls: Option<TlsInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    assertions: Vec<AssertionResult>,
}

/// The `details` column for a result: null when it has no certificate and no assertions.
pub(crate) fn details_json(
    tls: Option<&TlsInfo>,
    assertions: &[AssertionResult],
) -> Option<String> {
    if tls.is_none() && assertions.is_empty() {
        return None;
    }
    serde_json::to_string(&serde_json::json!({
        "tls": tls,
        "assertions": assertions,
    }))
    .ok()
}

/// A stored check result as clients see it.
pub(crate) fn incident(row: incident::Model) -> domain::Incident {
    domain::Incident {
        id: row.id,
        monitor_id: row.monitor_id,
        started_seq: row.started_seq,
        started_at: row.started_at,
        resolved_seq: row.resolved_seq,
        resolved_at: row.resolved_at,
        acknowledged_at: row.acknowledged_at,
        acknowledgement: row.acknowledgement,
    }
}

pub(crate) fn check_result(row: check_result::Model) -> CheckResult {
    let details: Details = row
        .details
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    CheckResult {
        id: row.id,
        monitor_id: i64::from(row.monitor_id),
        seq: row.seq,
        status: CheckStatus::from_up(row.up),
        status_code: row.status_code.and_then(|c| u16::try_from(c).ok()),
        response_time_ms: i64::from(row.response_time_ms),
        error: row.error,
        checked_at: from_epoch_ms(row.checked_at_ms),
        degraded: row.degraded,
        timings: Timings {
            dns_ms: row.dns_ms,
            connect_ms: row.connect_ms,
            tls_ms: row.tls_ms,
            first_byte_ms: row.first_byte_ms,
            total_ms: row.response_time_ms,
        },
        tls: details.tls,
        assertion_results: details.assertions,
        in_maintenance: row.in_maintenance,
    }
}

/// What checking and scheduling a stored monitor needs.
pub(crate) fn schedule(row: monitor::Model) -> MonitorSchedule {
    MonitorSchedule {
        spec: spec(row.id, row.check_spec.as_deref()),
        id: row.id,
        url: row.url,
        timeout_seconds: row.timeout_seconds,
        interval_seconds: row.interval_seconds,
        active: row.active,
        next_check_at: row.next_check_at,
        retry_interval_seconds: row.retry_interval_seconds,
    }
}
