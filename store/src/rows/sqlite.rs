//! SQLite rows read with rusqlite (the result writer's and the hot reads' own connections)
//! as table models. Dates are read and written as sqlx does (RFC 3339, `+00:00`), so columns
//! written through either compare and sort alike.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use entity::{check_result, monitor};
use rusqlite::{
    types::{Type, ValueRef},
    Row,
};

/// The column list, written once for the two constants below (`concat!` takes literals only).
macro_rules! monitor_columns {
    () => {
        "id, name, url, timeout_seconds, interval_seconds, active, created_at, updated_at, \
         last_checked_at, last_up, next_check_at, last_slot_at, last_seq, check_spec, \
         failure_threshold, success_threshold, confirmed_up, state_streak, state, push_token, \
         retry_interval_seconds, open_incident_seq, open_incident_at, reminder_interval_minutes, \
         notify_degraded, degraded_told"
    };
}

/// The monitors' columns in the order [`monitor_from_row`] reads them.
pub(crate) const MONITOR_COLUMNS: &str = monitor_columns!();

/// One monitor by id, decoded by [`monitor_from_row`].
pub(crate) const SELECT_MONITOR: &str = concat!(
    "SELECT ",
    monitor_columns!(),
    " FROM monitors WHERE id = ?1"
);

/// The results' columns in the order [`result_from_row`] reads them.
pub(crate) const RESULT_COLUMNS: &str = "id, monitor_id, seq, checked_at_ms, up, status_code, \
     response_time_ms, error, degraded, dns_ms, connect_ms, tls_ms, first_byte_ms, details, in_maintenance";

pub(crate) fn monitor_from_row(row: &Row<'_>) -> rusqlite::Result<monitor::Model> {
    Ok(monitor::Model {
        id: row.get(0)?,
        name: row.get(1)?,
        url: row.get(2)?,
        timeout_seconds: row.get(3)?,
        interval_seconds: row.get(4)?,
        active: row.get(5)?,
        created_at: required_datetime(row, 6, "created_at")?,
        updated_at: required_datetime(row, 7, "updated_at")?,
        last_checked_at: datetime(row, 8)?,
        last_up: row.get(9)?,
        next_check_at: datetime(row, 10)?,
        last_slot_at: datetime(row, 11)?,
        last_seq: row.get(12)?,
        check_spec: row.get(13)?,
        failure_threshold: row.get(14)?,
        success_threshold: row.get(15)?,
        confirmed_up: row.get(16)?,
        state_streak: row.get(17)?,
        state: row.get(18)?,
        push_token: row.get(19)?,
        retry_interval_seconds: row.get(20)?,
        open_incident_seq: row.get(21)?,
        open_incident_at: datetime(row, 22)?,
        reminder_interval_minutes: row.get(23)?,
        notify_degraded: row.get(24)?,
        degraded_told: row.get(25)?,
    })
}

/// A NOT NULL date column.
fn required_datetime(row: &Row<'_>, idx: usize, name: &str) -> rusqlite::Result<DateTime<Utc>> {
    datetime(row, idx)?
        .ok_or_else(|| rusqlite::Error::InvalidColumnType(idx, name.into(), Type::Null))
}

/// A date column as sqlx reads it: RFC 3339 text, `YYYY-MM-DD HH:MM:SS[.f]` text taken as UTC,
/// or Unix seconds.
fn datetime(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let invalid = |kind: Type| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            kind,
            format!("column {idx} is not a date").into(),
        )
    };
    match row.get_ref(idx)? {
        ValueRef::Null => Ok(None),
        ValueRef::Text(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(parse_text)
            .map(Some)
            .ok_or_else(|| invalid(Type::Text)),
        ValueRef::Integer(seconds) => DateTime::from_timestamp(seconds, 0)
            .map(Some)
            .ok_or_else(|| invalid(Type::Integer)),
        other => Err(invalid(other.data_type())),
    }
}

fn parse_text(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|at| at.and_utc())
}

/// A date as sqlx writes it.
pub(crate) fn to_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

pub(crate) fn result_from_row(row: &Row<'_>) -> rusqlite::Result<check_result::Model> {
    Ok(check_result::Model {
        id: row.get(0)?,
        monitor_id: row.get(1)?,
        seq: row.get(2)?,
        checked_at_ms: row.get(3)?,
        up: row.get(4)?,
        status_code: row.get(5)?,
        response_time_ms: row.get(6)?,
        error: row.get(7)?,
        degraded: row.get(8)?,
        dns_ms: row.get(9)?,
        connect_ms: row.get(10)?,
        tls_ms: row.get(11)?,
        first_byte_ms: row.get(12)?,
        details: row.get(13)?,
        in_maintenance: row.get(14)?,
    })
}

#[cfg(test)]
mod tests {
    use chrono::Timelike;

    use super::*;

    #[test]
    fn dates_are_written_as_sqlx_writes_them_and_read_back() {
        let at = DateTime::parse_from_rfc3339("2026-11-21T10:20:30.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(to_text(at), "2026-11-21T10:20:30.123456+00:00");
        assert_eq!(parse_text(&to_text(at)), Some(at));
        assert_eq!(
            parse_text("2026-11-21 10:20:30"),
            Some(at.with_nanosecond(0).unwrap())
        );
        assert_eq!(parse_text("yesterday"), None);
    }
}
