//! The status-change rule: which results change a monitor's status, and which result a
//! monitor's latest status comes from. The result writer, the live events and the
//! subscriptions all go through here.

use chrono::{DateTime, Utc};

use crate::monitor::CheckStatus;

/// Whether a result of status `current` changes a monitor whose status was `previous`: its
/// first result (`previous` is `None`), UP -> DOWN or DOWN -> UP.
pub fn is_status_change(previous: Option<CheckStatus>, current: CheckStatus) -> bool {
    previous != Some(current)
}

/// A monitor's latest status and when the check it comes from ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatestStatus {
    pub status: Option<CheckStatus>,
    pub checked_at: Option<DateTime<Utc>>,
}

impl LatestStatus {
    /// Takes in a stored result and returns the status the monitor had before it. A result
    /// older than the latest one (a late write) does not move the latest status back.
    pub fn apply(&mut self, status: CheckStatus, checked_at: DateTime<Utc>) -> Option<CheckStatus> {
        let previous = self.status;
        if self.checked_at.is_none_or(|last| checked_at >= last) {
            self.status = Some(status);
            self.checked_at = Some(checked_at);
        }
        previous
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CheckStatus::{Down, Up};

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    #[test]
    fn the_first_result_and_every_flip_are_status_changes() {
        assert!(is_status_change(None, Up));
        assert!(is_status_change(None, Down));
        assert!(is_status_change(Some(Up), Down));
        assert!(is_status_change(Some(Down), Up));
        assert!(!is_status_change(Some(Up), Up));
        assert!(!is_status_change(Some(Down), Down));
    }

    #[test]
    fn the_latest_status_follows_the_newest_result_and_reports_the_one_before() {
        let mut latest = LatestStatus::default();
        assert_eq!(latest.apply(Up, at(1_000)), None);
        assert_eq!(latest.apply(Down, at(2_000)), Some(Up));
        assert_eq!(latest.status, Some(Down));
        // A late result older than the latest: the status before it is reported, and kept.
        assert_eq!(latest.apply(Up, at(1_500)), Some(Down));
        assert_eq!(
            latest,
            LatestStatus {
                status: Some(Down),
                checked_at: Some(at(2_000)),
            }
        );
        // Same time counts as newer.
        assert_eq!(latest.apply(Up, at(2_000)), Some(Down));
        assert_eq!(latest.status, Some(Up));
    }
}
