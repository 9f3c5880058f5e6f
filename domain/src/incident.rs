//! Incidents: a monitor's confirmed outages. One opens when a result confirms the monitor
//! DOWN and closes when one confirms it UP again (flap control decides both, see
//! [`crate::state`]); a monitor has at most one open incident. Results are named by their
//! number among the monitor's results ([`crate::CheckResult::seq`]).

use chrono::{DateTime, Utc};

use crate::monitor::CheckStatus;

/// Longest acknowledgement note, in characters.
pub const MAX_NOTE_CHARS: usize = 2000;

/// A stored incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub id: i64,
    pub monitor_id: i64,
    /// The result that confirmed the monitor DOWN.
    pub started_seq: i32,
    pub started_at: DateTime<Utc>,
    /// The result that confirmed it UP again; `None` while open.
    pub resolved_seq: Option<i32>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledgement: Option<String>,
}

impl Incident {
    pub fn is_open(&self) -> bool {
        self.resolved_at.is_none()
    }

    /// Whole seconds from start to resolution, or to `now` while open.
    pub fn duration_seconds(&self, now: DateTime<Utc>) -> i64 {
        (self.resolved_at.unwrap_or(now) - self.started_at)
            .num_seconds()
            .max(0)
    }
}

/// What a stored result did to its monitor's incidents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncidentChange {
    /// The incident's first result and its time.
    pub started_seq: i32,
    pub started_at: DateTime<Utc>,
    /// Set when this result resolved it: when (the result's time).
    pub resolved_at: Option<DateTime<Utc>>,
}

impl IncidentChange {
    pub fn opened(&self) -> bool {
        self.resolved_at.is_none()
    }

    /// The downtime a resolution ends, in whole seconds.
    pub fn downtime_seconds(&self) -> Option<i64> {
        self.resolved_at
            .map(|end| (end - self.started_at).num_seconds().max(0))
    }
}

/// The open incident a monitor keeps with it: its first result number and start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenIncident {
    pub seq: i32,
    pub at: DateTime<Utc>,
}

/// What a confirmed change to `to` by result `seq` at `at` does, given the monitor's open
/// incident: a confirmed DOWN opens one unless one is open; a confirmed UP resolves the open
/// one. Returns the change, and updates `open`.
pub fn on_confirmed(
    open: &mut Option<OpenIncident>,
    to: CheckStatus,
    seq: i32,
    at: DateTime<Utc>,
) -> Option<IncidentChange> {
    match (to, *open) {
        (CheckStatus::Down, None) => {
            *open = Some(OpenIncident { seq, at });
            Some(IncidentChange {
                started_seq: seq,
                started_at: at,
                resolved_at: None,
            })
        }
        (CheckStatus::Up, Some(incident)) => {
            *open = None;
            Some(IncidentChange {
                started_seq: incident.seq,
                started_at: incident.at,
                // A result older than the start (clocks apart) still ends it at its start.
                resolved_at: Some(at.max(incident.at)),
            })
        }
        _ => None,
    }
}

/// An acknowledgement note: trimmed, empty as none, at most [`MAX_NOTE_CHARS`].
pub fn parse_note(raw: Option<&str>) -> Result<Option<String>, String> {
    let Some(note) = raw.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(format!("must be at most {MAX_NOTE_CHARS} characters"));
    }
    if note
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err("must not contain control characters".into());
    }
    Ok(Some(note.to_owned()))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn down_opens_once_and_up_resolves_with_the_downtime() {
        let mut open = None;
        let opened = on_confirmed(&mut open, CheckStatus::Down, 3, at(0)).unwrap();
        assert!(opened.opened());
        assert_eq!(open, Some(OpenIncident { seq: 3, at: at(0) }));
        // A second confirmed DOWN (after an edit reset the confirmation) opens nothing.
        assert_eq!(on_confirmed(&mut open, CheckStatus::Down, 4, at(5)), None);
        let resolved = on_confirmed(&mut open, CheckStatus::Up, 9, at(90)).unwrap();
        assert_eq!(resolved.started_seq, 3);
        assert_eq!(resolved.downtime_seconds(), Some(90));
        assert_eq!(open, None);
        // UP with nothing open: nothing.
        assert_eq!(on_confirmed(&mut open, CheckStatus::Up, 10, at(95)), None);
    }

    #[test]
    fn notes_are_trimmed_and_bounded() {
        assert_eq!(parse_note(Some("  ")), Ok(None));
        assert_eq!(parse_note(Some(" on it ")), Ok(Some("on it".into())));
        assert!(parse_note(Some(&"x".repeat(MAX_NOTE_CHARS + 1))).is_err());
        assert!(parse_note(Some("a\u{7}b")).is_err());
    }
}
