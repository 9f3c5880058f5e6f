//! Table models as domain types: the one place a stored monitor or result becomes what the
//! rest of the service sees. [`sqlite`] reads rows into table models on rusqlite's
//! connections; sea-orm decodes them on its own.

pub(crate) mod sqlite;

use std::borrow::Cow;

use domain::{from_epoch_ms, url_password, CheckResult, CheckStatus, Monitor, MonitorSchedule};
use entity::{check_result, monitor};

/// A stored monitor as clients see it, its URL's password masked.
pub(crate) fn monitor(row: monitor::Model) -> Monitor {
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
    }
}

/// A stored check result as clients see it.
pub(crate) fn check_result(row: check_result::Model) -> CheckResult {
    CheckResult {
        id: row.id,
        monitor_id: i64::from(row.monitor_id),
        seq: row.seq,
        status: CheckStatus::from_up(row.up),
        status_code: row.status_code.and_then(|c| u16::try_from(c).ok()),
        response_time_ms: i64::from(row.response_time_ms),
        error: row.error,
        checked_at: from_epoch_ms(row.checked_at_ms),
    }
}

/// What checking and scheduling a stored monitor needs.
pub(crate) fn schedule(row: monitor::Model) -> MonitorSchedule {
    MonitorSchedule {
        id: row.id,
        url: row.url,
        timeout_seconds: row.timeout_seconds,
        interval_seconds: row.interval_seconds,
        active: row.active,
        next_check_at: row.next_check_at,
    }
}
