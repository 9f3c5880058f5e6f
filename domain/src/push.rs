//! PUSH monitors: the monitored thing reports to `/push/{token}`, optionally saying `down`,
//! with a message and the time its own work took (`ping`). A push is a result like a check's;
//! a monitor with no push within its interval plus its grace (`timeout_seconds`) gets a
//! DOWN result from the scheduler ([`missed`]).

use chrono::{DateTime, Utc};

use crate::{
    check::CheckOutcome,
    evaluate::{self, bounded, Observed, Prepared},
    monitor::CheckStatus,
    slot,
    spec::CheckSpec,
};

/// Largest `ping`, in milliseconds (one day).
pub const MAX_PING_MS: i64 = 86_400_000;

/// What a push says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    pub status: CheckStatus,
    /// At most 200 characters, control characters as spaces.
    pub msg: Option<String>,
    pub ping_ms: Option<i64>,
}

impl PushReport {
    /// Reads a push's `status` (`up` or `down`, any case; default up), `msg` and `ping`
    /// (milliseconds, a number from 0 to a day). The error is the parameter and its problem.
    pub fn parse(
        status: Option<&str>,
        msg: Option<&str>,
        ping: Option<&str>,
    ) -> Result<Self, (&'static str, String)> {
        let status = match status.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            None | Some("" | "up") => CheckStatus::Up,
            Some("down") => CheckStatus::Down,
            Some(other) => {
                return Err((
                    "status",
                    format!("must be up or down, not `{}`", bounded(other)),
                ))
            }
        };
        let ping_ms = match ping.map(str::trim).filter(|p| !p.is_empty()) {
            None => None,
            Some(raw) => match raw.parse::<f64>() {
                Ok(ms) if ms.is_finite() && (0.0..=MAX_PING_MS as f64).contains(&ms) => {
                    Some(ms.round() as i64)
                }
                _ => {
                    return Err((
                        "ping",
                        format!(
                            "must be a number of milliseconds from 0 to {MAX_PING_MS}, not `{}`",
                            bounded(raw)
                        ),
                    ))
                }
            },
        };
        let msg = msg.map(str::trim).filter(|m| !m.is_empty()).map(bounded);
        Ok(Self {
            status,
            msg,
            ping_ms,
        })
    }

    /// The push as a result at `at`, judged by the monitor's options: a reported DOWN is DOWN
    /// with its message; a `ping` is the response time its assertions and `degraded_after_ms`
    /// look at.
    pub fn outcome(&self, spec: Option<&CheckSpec>, at: DateTime<Utc>) -> CheckOutcome {
        let ms = self.ping_ms.unwrap_or(0);
        let mut outcome = CheckOutcome::basic(at, self.status, None, ms, self.msg.clone());
        let Some(spec) = spec else {
            return outcome;
        };
        let assertions: Vec<Prepared> = spec.assertions.iter().filter_map(Prepared::new).collect();
        let verdict = evaluate::judge(
            spec,
            &assertions,
            &Observed {
                status_code: None,
                response_time_ms: ms,
                body: None,
                header: &|_| None,
                cert_days_left: None,
            },
        );
        outcome.assertion_results = verdict.results;
        if self.status == CheckStatus::Up {
            outcome.status = CheckStatus::from_up(verdict.up);
            outcome.degraded = verdict.degraded;
            // Why it is DOWN or degraded comes first; the push's own message after it.
            if let Some(reason) = verdict.reason {
                outcome.error = Some(bounded(&match &self.msg {
                    Some(msg) => format!("{reason}; push message: {msg}"),
                    None => reason,
                }));
            }
        } else if outcome.error.is_none() {
            outcome.error = Some("the push reported down".to_owned());
        }
        outcome
    }
}

/// When a PUSH monitor is next due if no push comes: its interval plus its grace (its
/// `timeout_seconds`) after `at`, from the stored seconds.
pub fn deadline(at: DateTime<Utc>, interval_seconds: i32, timeout_seconds: i32) -> DateTime<Utc> {
    let window = slot::interval_of(interval_seconds) + slot::timeout_of(timeout_seconds);
    at + chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX)
}

/// The result of a PUSH monitor whose deadline passed without a push.
pub fn missed(at: DateTime<Utc>) -> CheckOutcome {
    CheckOutcome::basic(
        at,
        CheckStatus::Down,
        None,
        0,
        Some("no push received within the interval and its grace period".to_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{AssertionInput, MonitorKind, SpecInput};

    #[test]
    fn a_push_says_up_or_down_with_a_message_and_a_ping() {
        let up = PushReport::parse(None, None, None).unwrap();
        assert_eq!(up.status, CheckStatus::Up);
        let down = PushReport::parse(Some("DOWN"), Some(" disk\nfull "), Some("12.6")).unwrap();
        assert_eq!(down.status, CheckStatus::Down);
        assert_eq!(down.msg.as_deref(), Some("disk full"));
        assert_eq!(down.ping_ms, Some(13));
        for (status, ping, field) in [
            (Some("sideways"), None, "status"),
            (None, Some("-1"), "ping"),
            (None, Some("fast"), "ping"),
            (None, Some("1e12"), "ping"),
            (None, Some("NaN"), "ping"),
        ] {
            assert_eq!(PushReport::parse(status, None, ping).unwrap_err().0, field);
        }
        let long = "x".repeat(500);
        let report = PushReport::parse(None, Some(&long), None).unwrap();
        assert_eq!(report.msg.unwrap().chars().count(), 200);
    }

    #[test]
    fn a_ping_is_judged_like_a_response_time() {
        let spec = CheckSpec::parse(
            SpecInput {
                kind: Some(MonitorKind::Push),
                degraded_after_ms: Some(Some(500)),
                assertions: Some(vec![AssertionInput {
                    source: "RESPONSE_TIME".into(),
                    comparison: "LESS_THAN".into(),
                    target: Some("2000".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            None,
        )
        .unwrap()
        .unwrap();
        let at = Utc::now();
        let slow = PushReport::parse(None, None, Some("900")).unwrap();
        let outcome = slow.outcome(Some(&spec), at);
        assert_eq!(outcome.status, CheckStatus::Up);
        assert!(outcome.degraded);
        assert_eq!(outcome.response_time_ms, 900);
        let too_slow = PushReport::parse(None, Some("backup ok"), Some("2500")).unwrap();
        let outcome = too_slow.outcome(Some(&spec), at);
        assert_eq!(outcome.status, CheckStatus::Down);
        let error = outcome.error.unwrap();
        assert!(error.starts_with("assertion failed"), "{error}");
        assert!(error.ends_with("; push message: backup ok"), "{error}");
        let down = PushReport::parse(Some("down"), None, None).unwrap();
        assert_eq!(
            down.outcome(Some(&spec), at).error.as_deref(),
            Some("the push reported down")
        );
    }
}
