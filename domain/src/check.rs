//! A check as it happens: what a probe found ([`CheckOutcome`]), and the event published once
//! it is stored ([`CheckEvent`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    evaluate::AssertionResult,
    incident::IncidentChange,
    monitor::{CheckResult, CheckStatus, Monitor},
    state::MonitorState,
};

/// How long each phase of a check took, in milliseconds; `None` for a phase that did not
/// happen (no DNS lookup for a literal address, no TLS for `http`). Phases are summed over
/// every redirect hop, so together they never exceed the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Timings {
    pub dns_ms: Option<i32>,
    pub connect_ms: Option<i32>,
    pub tls_ms: Option<i32>,
    /// From the request sent to the response head received.
    pub first_byte_ms: Option<i32>,
    /// The whole check (the result's `response_time_ms`).
    pub total_ms: i32,
}

/// The certificate a TLS server presented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsInfo {
    pub subject: String,
    pub issuer: String,
    pub not_after: DateTime<Utc>,
    /// Whole days from the check to `not_after` (negative once expired).
    pub days_left: i64,
}

/// What one check found, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    /// When the check started.
    pub started_at: DateTime<Utc>,
    pub status: CheckStatus,
    /// The final HTTP status, `None` when no response came.
    pub status_code: Option<u16>,
    /// Milliseconds the whole check took (until the response head, or the body when an
    /// assertion reads it, or the failure).
    pub response_time_ms: i64,
    /// A short reason for DOWN (or for degraded).
    pub error: Option<String>,
    /// UP, but slow or failing a warning assertion.
    pub degraded: bool,
    pub timings: Timings,
    pub tls: Option<TlsInfo>,
    pub assertion_results: Vec<AssertionResult>,
}

impl CheckOutcome {
    /// An outcome with only the basics (no phases, TLS or assertions).
    pub fn basic(
        started_at: DateTime<Utc>,
        status: CheckStatus,
        status_code: Option<u16>,
        response_time_ms: i64,
        error: Option<String>,
    ) -> Self {
        Self {
            started_at,
            status,
            status_code,
            response_time_ms,
            error,
            degraded: false,
            timings: Timings {
                total_ms: i32::try_from(response_time_ms).unwrap_or(i32::MAX),
                ..Timings::default()
            },
            tls: None,
            assertion_results: Vec::new(),
        }
    }
}

/// One stored check, as every subscriber in any process sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckEvent {
    /// The stored result.
    pub result: CheckResult,
    /// The monitor after this result was applied (its URL's password masked).
    pub monitor: Monitor,
    /// The monitor's raw status before this result; `None` for its first result.
    pub previous: Option<CheckStatus>,
    /// The confirmed status change this result made, if any (see [`crate::state`]).
    pub change: Option<StatusChange>,
    /// The incident this result opened or resolved, if any.
    pub incident: Option<IncidentChange>,
}

/// A confirmed change of a monitor's status: from what it was confirmed as (`None` before
/// its first confirmation) to what it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusChange {
    pub from: Option<CheckStatus>,
    pub to: CheckStatus,
    /// The monitor's state before this result.
    pub state_before: MonitorState,
}

impl CheckEvent {
    /// True when this result confirmed a change of the monitor's status (its first
    /// confirmation included): what `statusChanges` reports.
    pub fn is_status_change(&self) -> bool {
        self.change.is_some()
    }
}
