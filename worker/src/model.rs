//! Domain types the worker produces and the API shows: a check's status and its stored result.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CheckStatus {
    /// The URL answered with a 2xx or 3xx final status in time.
    Up,
    /// Anything else: an error status, a timeout, a refused connection, ...
    Down,
}

impl CheckStatus {
    /// UP or DOWN from the stored boolean.
    pub fn from_up(up: bool) -> Self {
        if up {
            Self::Up
        } else {
            Self::Down
        }
    }

    /// The stored boolean.
    pub fn is_up(self) -> bool {
        self == Self::Up
    }

    /// `"UP"` or `"DOWN"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "UP",
            Self::Down => "DOWN",
        }
    }
}

/// One stored check, as clients see it (the REST shape is its `Serialize` form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRecord {
    pub id: i64,
    pub monitor_id: i64,
    /// Its number among its monitor's results (1, 2, 3, ... in the order stored): the key of
    /// history pages.
    #[serde(default)]
    pub seq: i32,
    pub status: CheckStatus,
    /// The final HTTP status, `None` when no response came.
    pub status_code: Option<u16>,
    pub response_time_ms: i64,
    /// A short reason for DOWN, `None` for UP.
    pub error: Option<String>,
    pub checked_at: DateTime<Utc>,
}

impl From<entity::check_result::Model> for CheckRecord {
    fn from(row: entity::check_result::Model) -> Self {
        Self {
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
}

/// A stored epoch-millisecond time as a UTC timestamp.
pub fn from_epoch_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
