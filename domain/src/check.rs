//! A check as it happens: what a probe found ([`CheckOutcome`]), and the event published once
//! it is stored ([`CheckEvent`]).

use chrono::{DateTime, Utc};

use crate::monitor::{CheckResult, CheckStatus, Monitor};

/// What one check found, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    /// When the check started.
    pub started_at: DateTime<Utc>,
    pub status: CheckStatus,
    /// The final HTTP status, `None` when no response came.
    pub status_code: Option<u16>,
    /// Milliseconds until the response headers (or the failure) arrived.
    pub response_time_ms: i64,
    /// A short reason for DOWN.
    pub error: Option<String>,
}

/// One stored check, as every subscriber in any process sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckEvent {
    /// The stored result.
    pub result: CheckResult,
    /// The monitor after this result was applied (its URL's password masked).
    pub monitor: Monitor,
    /// The monitor's status before this result; `None` for its first result.
    pub previous: Option<CheckStatus>,
}

impl CheckEvent {
    /// True for the first result and whenever UP turns DOWN or DOWN turns UP (see
    /// [`crate::is_status_change`]).
    pub fn is_status_change(&self) -> bool {
        crate::is_status_change(self.previous, self.result.status)
    }
}
