//! Monitors and their check results as clients see them: what the worker produces and the API
//! shows. Their `Serialize` forms are the REST shapes.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    check::{Timings, TlsInfo},
    evaluate::AssertionResult,
    spec::{CheckSpec, MonitorKind},
    state::MonitorState,
};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CheckStatus {
    /// The URL answered in time with an accepted final status, and every assertion that
    /// is not a warning held.
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
    /// A short reason for DOWN (or for degraded), `None` for a plain UP.
    pub error: Option<String>,
    pub checked_at: DateTime<Utc>,
    /// UP, but slow or failing a warning assertion.
    #[serde(default)]
    pub degraded: bool,
    #[serde(default)]
    pub timings: Timings,
    #[serde(default)]
    pub tls: Option<TlsInfo>,
    #[serde(default)]
    pub assertion_results: Vec<AssertionResult>,
    /// Checked during a maintenance window of its monitor: stored, but it moved no state.
    #[serde(default)]
    pub in_maintenance: bool,
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
    pub kind: MonitorKind,
    /// A PUSH monitor's token (its pushes go to `/push/{token}`, its `url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_token: Option<String>,
    /// The check's options (the defaults for a plain check), secret header values masked.
    #[serde(flatten)]
    pub check: CheckSpec,
    pub failure_threshold: i32,
    pub success_threshold: i32,
    /// Seconds to the next check while a change is unconfirmed (`PENDING`); null: the interval.
    pub retry_interval_seconds: Option<i32>,
    /// Minutes between reminders while an incident stays open; null: none.
    pub reminder_interval_minutes: Option<i32>,
    /// Its channels are told when it turns DEGRADED and when it is UP again.
    #[serde(default)]
    pub notify_degraded: bool,
    pub state: MonitorState,
}

/// What checking and scheduling a monitor needs: its real URL (password included) and its
/// timing. Never shown to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorSchedule {
    pub id: i64,
    pub url: String,
    pub timeout_seconds: i32,
    pub interval_seconds: i32,
    pub active: bool,
    /// When its next check is due; `None` while paused or not yet scheduled.
    pub next_check_at: Option<DateTime<Utc>>,
    /// The check's options (secrets in clear); `None` for the plain check.
    pub spec: Option<CheckSpec>,
    /// Seconds to the next check while a change is unconfirmed.
    pub retry_interval_seconds: Option<i32>,
}

impl MonitorSchedule {
    /// When the monitor is due after `patch` is applied at `now`: never while paused; at once
    /// when resumed, pointed at a new URL or not yet scheduled; a shorter interval brings the
    /// next check forward, never back.
    pub fn next_check_after(
        &self,
        patch: &crate::MonitorPatch,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if !patch.active.unwrap_or(self.active) {
            return None;
        }
        let resumed = !self.active;
        let url_changed = patch.url.as_ref().is_some_and(|u| u.as_str() != self.url);
        let Some(scheduled) = self.next_check_at.filter(|_| !resumed && !url_changed) else {
            return Some(now);
        };
        match patch.interval {
            Some(interval) => {
                let sooner = now + chrono::Duration::seconds(i64::from(interval.get()));
                Some(scheduled.min(sooner))
            }
            None => Some(scheduled),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IntervalSeconds, MonitorPatch, MonitorUrl};

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    fn schedule(active: bool, next: Option<i64>) -> MonitorSchedule {
        MonitorSchedule {
            id: 1,
            url: "http://127.0.0.1/a".into(),
            timeout_seconds: 5,
            interval_seconds: 60,
            active,
            next_check_at: next.map(at),
            spec: None,
            retry_interval_seconds: None,
        }
    }

    #[test]
    fn the_next_check_moves_only_as_the_patch_asks() {
        let now = at(0);
        let none = MonitorPatch::default();
        assert_eq!(
            schedule(true, Some(50)).next_check_after(&none, now),
            Some(at(50))
        );
        // Paused: never due.
        let pause = MonitorPatch {
            active: Some(false),
            ..Default::default()
        };
        assert_eq!(schedule(true, Some(50)).next_check_after(&pause, now), None);
        assert_eq!(schedule(false, None).next_check_after(&none, now), None);
        // Resumed, or a new URL, or never scheduled: due at once.
        let resume = MonitorPatch {
            active: Some(true),
            ..Default::default()
        };
        assert_eq!(
            schedule(false, None).next_check_after(&resume, now),
            Some(now)
        );
        let moved = MonitorPatch {
            url: Some(MonitorUrl::parse("http://127.0.0.1/b").unwrap()),
            ..Default::default()
        };
        assert_eq!(
            schedule(true, Some(50)).next_check_after(&moved, now),
            Some(now)
        );
        let same = MonitorPatch {
            url: Some(MonitorUrl::parse("http://127.0.0.1/a").unwrap()),
            ..Default::default()
        };
        assert_eq!(
            schedule(true, Some(50)).next_check_after(&same, now),
            Some(at(50))
        );
        assert_eq!(schedule(true, None).next_check_after(&none, now), Some(now));
        // A shorter interval brings the check forward; a longer one leaves it.
        let shorter = MonitorPatch {
            interval: Some(IntervalSeconds::parse(10).unwrap()),
            ..Default::default()
        };
        assert_eq!(
            schedule(true, Some(50)).next_check_after(&shorter, now),
            Some(at(10))
        );
        let longer = MonitorPatch {
            interval: Some(IntervalSeconds::parse(3600).unwrap()),
            ..Default::default()
        };
        assert_eq!(
            schedule(true, Some(50)).next_check_after(&longer, now),
            Some(at(50))
        );
    }
}
