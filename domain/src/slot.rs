//! Slots: the points of a monitor's grid `due + k * interval` at which it is checked, and the
//! rules that move a monitor from one slot to the next.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::input::TIMEOUT_MAX_SECONDS;

/// Longest window over which monitors found overdue at start are spread.
pub const MAX_START_SPREAD: Duration = Duration::from_secs(60);

/// A scheduled slot a result completes: the due time it was checked for and the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub due: DateTime<Utc>,
    pub next: DateTime<Utc>,
}

impl Slot {
    /// Whether a monitor whose last completed slot was due at `last_slot_at` already has a
    /// result for this slot (it is then not stored again).
    pub fn is_done(&self, last_slot_at: Option<DateTime<Utc>>) -> bool {
        last_slot_at.is_some_and(|done| done >= self.due)
    }

    /// The monitor's next check time once this slot's result is stored, from the one it has:
    /// moved on to [`Slot::next`] only if nobody moved it since the slot began (an edit, a
    /// pause, or a distributed scheduler that already leased the next slot).
    pub fn next_check_at(&self, current: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        if current == Some(self.due) {
            Some(self.next)
        } else {
            current
        }
    }

    /// The latest this slot's check may start: half way to the next slot, so two consecutive
    /// checks of a monitor are always at least half an interval apart, however late it starts.
    pub fn latest_start(&self) -> DateTime<Utc> {
        self.due + (self.next - self.due) / 2
    }
}

/// How far after a slot due `behind` ago the next one lies: the first point of the grid
/// `k * interval` (k >= 1) past `behind`, so missed slots are skipped, not fired in a burst.
pub fn next_after(behind: Duration, interval: Duration) -> Duration {
    if interval > behind {
        return interval;
    }
    let step = interval.as_nanos().max(1);
    let k = behind.as_nanos() / step + 1;
    Duration::from_nanos(u64::try_from(k * step).unwrap_or(u64::MAX))
}

/// A stored `interval_seconds` as a duration (at least a second, whatever the row holds).
pub fn interval_of(seconds: i32) -> Duration {
    Duration::from_secs(u64::try_from(seconds.max(1)).unwrap_or(1))
}

/// A stored `timeout_seconds` as a duration (at least a second, whatever the row holds).
pub fn timeout_of(seconds: i32) -> Duration {
    Duration::from_secs(u64::try_from(seconds.max(1)).unwrap_or(1))
}

/// A timeout given in milliseconds (a check job's) within 1 ms and [`TIMEOUT_MAX_SECONDS`].
pub fn timeout_of_ms(ms: u64) -> Duration {
    Duration::from_millis(ms.clamp(1, TIMEOUT_MAX_SECONDS as u64 * 1000))
}

/// Where, within its interval (at most [`MAX_START_SPREAD`]), a monitor found overdue at start
/// is checked first: spread by id, so a restart never fires every overdue monitor at once.
pub fn start_offset(id: i64, interval: Duration) -> Duration {
    let window = interval.min(MAX_START_SPREAD).as_millis().max(1) as u64;
    Duration::from_millis((id as u64).wrapping_mul(2_654_435_761) % window)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    #[test]
    fn the_next_slot_skips_missed_slots_instead_of_bursting() {
        let second = Duration::from_secs(1);
        assert_eq!(next_after(Duration::ZERO, second), second);
        assert_eq!(next_after(Duration::from_millis(500), second), second);
        // Five and a half seconds late: the next slot is the sixth, not the first.
        assert_eq!(
            next_after(Duration::from_millis(5500), second),
            Duration::from_secs(6)
        );
        assert_eq!(next_after(second, second), 2 * second);
    }

    #[test]
    fn the_next_check_moves_on_only_from_the_slot_that_was_checked() {
        let slot = Slot {
            due: at(60_000),
            next: at(120_000),
        };
        assert_eq!(slot.next_check_at(Some(at(60_000))), Some(at(120_000)));
        // Edited, paused or leased again since the slot began: left as it is.
        assert_eq!(slot.next_check_at(Some(at(90_000))), Some(at(90_000)));
        assert_eq!(slot.next_check_at(Some(at(120_000))), Some(at(120_000)));
        assert_eq!(slot.next_check_at(None), None);
    }

    #[test]
    fn a_slot_with_a_result_is_done() {
        let slot = Slot {
            due: at(60_000),
            next: at(120_000),
        };
        assert!(!slot.is_done(None));
        assert!(!slot.is_done(Some(at(0))));
        assert!(slot.is_done(Some(at(60_000))));
        assert!(slot.is_done(Some(at(120_000))));
    }

    #[test]
    fn a_job_may_start_until_half_way_to_the_next_slot() {
        let slot = Slot {
            due: at(1_000_000),
            next: at(1_060_000),
        };
        assert_eq!(slot.latest_start(), at(1_030_000));
    }

    #[test]
    fn stored_durations_are_at_least_a_second_and_job_timeouts_are_bounded() {
        assert_eq!(interval_of(0), Duration::from_secs(1));
        assert_eq!(interval_of(-5), Duration::from_secs(1));
        assert_eq!(interval_of(60), Duration::from_secs(60));
        assert_eq!(timeout_of(0), Duration::from_secs(1));
        assert_eq!(timeout_of(30), Duration::from_secs(30));
        assert_eq!(timeout_of_ms(0), Duration::from_millis(1));
        assert_eq!(timeout_of_ms(u64::MAX), Duration::from_secs(300));
    }

    #[test]
    fn overdue_monitors_start_within_their_interval_and_a_minute() {
        for id in 1..500 {
            assert!(start_offset(id, Duration::from_secs(10)) < Duration::from_secs(10));
            assert!(start_offset(id, Duration::from_secs(3600)) < MAX_START_SPREAD);
        }
        assert_eq!(start_offset(7, Duration::ZERO), Duration::ZERO);
    }
}
