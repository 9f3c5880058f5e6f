//! A monitor's confirmed state (flap control): a raw result changes the confirmed status only
//! after `failure_threshold` failures or `success_threshold` successes in a row; in between
//! the monitor is `PENDING`. What `statusChanges` reports are these confirmed changes.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::monitor::CheckStatus;

/// Largest failure or success threshold.
pub const MAX_THRESHOLD: i64 = 100;

/// What a monitor is, as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MonitorState {
    Up,
    Down,
    /// Not checked yet, or a change not yet confirmed.
    Pending,
    /// Up, but slow or failing a warning assertion.
    Degraded,
    /// Not checked (inactive).
    Paused,
    Maintenance,
}

impl MonitorState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "UP",
            Self::Down => "DOWN",
            Self::Pending => "PENDING",
            Self::Degraded => "DEGRADED",
            Self::Paused => "PAUSED",
            Self::Maintenance => "MAINTENANCE",
        }
    }

    /// The stored text back; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Up,
            Self::Down,
            Self::Pending,
            Self::Degraded,
            Self::Paused,
            Self::Maintenance,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

impl fmt::Display for MonitorState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Consecutive results needed to confirm a change: 1 to [`MAX_THRESHOLD`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold(i32);

impl Threshold {
    pub const ONE: Self = Self(1);

    pub fn parse(raw: i64) -> Result<Self, String> {
        if (1..=MAX_THRESHOLD).contains(&raw) {
            Ok(Self(raw as i32))
        } else {
            Err(format!("must be an integer from 1 to {MAX_THRESHOLD}"))
        }
    }

    /// A stored value, kept within bounds.
    pub fn stored(raw: i32) -> Self {
        Self(raw.clamp(1, MAX_THRESHOLD as i32))
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// When a monitor is checked again after a result at `checked_at` that left it in `state`:
/// `retry_interval_seconds` later while a change is unconfirmed (`PENDING`) and it is active;
/// `None` otherwise (its next slot stands).
pub fn retry_at(
    active: bool,
    state: Option<MonitorState>,
    retry_interval_seconds: Option<i32>,
    checked_at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let retry = retry_interval_seconds?;
    (active && state == Some(MonitorState::Pending))
        .then(|| checked_at + chrono::Duration::seconds(i64::from(retry.max(1))))
}

/// A monitor's flap-control memory, as stored with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Confirmation {
    /// The confirmed status; `None` before the first confirmation.
    pub confirmed: Option<CheckStatus>,
    /// Consecutive newest results of the same raw status that differ from `confirmed`.
    pub streak: i32,
    /// The state after the newest result (never `PAUSED`: that is the monitor's `active`).
    pub state: Option<MonitorState>,
}

impl Confirmation {
    /// Takes in the newest result (`previous` is the raw status of the one before it), and
    /// returns the confirmed change it makes, if any, as (from, to).
    pub fn apply(
        &mut self,
        previous: Option<CheckStatus>,
        raw: CheckStatus,
        degraded: bool,
        failure: Threshold,
        success: Threshold,
    ) -> Option<(Option<CheckStatus>, CheckStatus)> {
        let mut change = None;
        if self.confirmed == Some(raw) {
            self.streak = 0;
        } else {
            self.streak = if previous == Some(raw) && self.streak > 0 {
                self.streak.saturating_add(1)
            } else {
                1
            };
            let needed = match raw {
                CheckStatus::Up => success,
                CheckStatus::Down => failure,
            };
            if self.streak >= needed.get() {
                change = Some((self.confirmed, raw));
                self.confirmed = Some(raw);
                self.streak = 0;
            }
        }
        self.state = Some(match (self.confirmed, self.streak) {
            (_, s) if s > 0 => MonitorState::Pending,
            (None, _) => MonitorState::Pending,
            (Some(CheckStatus::Down), _) => MonitorState::Down,
            (Some(CheckStatus::Up), _) if degraded => MonitorState::Degraded,
            (Some(CheckStatus::Up), _) => MonitorState::Up,
        });
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CheckStatus::{Down, Up};

    fn run(failure: i32, success: i32, results: &[CheckStatus]) -> Vec<(MonitorState, bool)> {
        let mut c = Confirmation::default();
        let mut previous = None;
        results
            .iter()
            .map(|&raw| {
                let changed = c
                    .apply(previous, raw, false, Threshold(failure), Threshold(success))
                    .is_some();
                previous = Some(raw);
                (c.state.unwrap(), changed)
            })
            .collect()
    }

    #[test]
    fn thresholds_of_one_follow_every_result() {
        use MonitorState as S;
        assert_eq!(
            run(1, 1, &[Up, Down, Up]),
            [(S::Up, true), (S::Down, true), (S::Up, true)]
        );
    }

    #[test]
    fn n_failures_then_down_and_m_successes_then_up_with_pending_between() {
        use MonitorState as S;
        let got = run(
            3,
            2,
            &[Up, Up, Down, Down, Up, Down, Down, Down, Down, Up, Up],
        );
        assert_eq!(
            got,
            [
                (S::Pending, false), // first Up: 1 of 2
                (S::Up, true),
                (S::Pending, false), // 1 of 3 failures
                (S::Pending, false),
                (S::Up, false), // back to the confirmed status: the streak is over
                (S::Pending, false),
                (S::Pending, false),
                (S::Down, true),
                (S::Down, false),
                (S::Pending, false),
                (S::Up, true),
            ]
        );
    }

    #[test]
    fn degraded_shows_only_when_confirmed_up() {
        let mut c = Confirmation::default();
        c.apply(None, Up, true, Threshold::ONE, Threshold::ONE);
        assert_eq!(c.state, Some(MonitorState::Degraded));
        assert!(Threshold::parse(0).is_err() && Threshold::parse(101).is_err());
    }
}
