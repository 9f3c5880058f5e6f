//! Monitors and their check results as clients see them: what the worker produces and the API
//! shows. Their `Serialize` forms are the REST shapes.

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
pub struct CheckResult {
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

/// A stored epoch-millisecond time as a UTC timestamp.
pub fn from_epoch_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A monitor as clients see it (the REST shape is its `Serialize` form). Its `url` shows any
/// password as `***` (see [`crate::url_password`]): every transport reads monitors through
/// this type, so none of them can show the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Monitor {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub timeout_seconds: i32,
    pub interval_seconds: i32,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_status: Option<CheckStatus>,
}
