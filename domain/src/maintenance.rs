//! Maintenance windows: planned downtime during which checks still run and are stored, but
//! move no state, open no incident and send nothing. A window is one-off (`starts_at` to
//! `ends_at`) or recurring: it opens at each time its cron expression gives, read in its time
//! zone (daylight-saving changes included), from `starts_at` on, and lasts `ends_at -
//! starts_at` each time. [`Calendar`] answers "is this monitor in maintenance at this time"
//! on the check path, from occurrences worked out ahead.

use std::{
    collections::HashSet,
    str::FromStr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, RwLock,
    },
};

use chrono::{DateTime, Duration, Timelike, Utc};
use chrono_tz::Tz;
use croner::{
    parser::{CronParser, Seconds},
    Cron,
};

/// Longest window name, in characters.
pub const MAX_WINDOW_NAME: usize = 200;
/// Longest a window (or each occurrence of a recurring one) may last.
pub const MAX_WINDOW_DAYS: i64 = 31;
/// Most occurrences of a recurring window checked against each other and against other
/// windows' (a year of daily ones is 366; of hourly ones the checks cover the first 2,000).
pub const MAX_CHECKED: usize = 2_000;
/// Most windows there may be.
pub const MAX_WINDOWS: u64 = 200;
/// Most monitors a window may name.
pub const MAX_WINDOW_MONITORS: usize = 1000;

/// A refused part of a window: the field (its snake_case name) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowError {
    pub field: &'static str,
    pub problem: String,
}

fn refuse(field: &'static str, problem: impl Into<String>) -> WindowError {
    WindowError {
        field,
        problem: problem.into(),
    }
}

/// When a window is in effect.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The cron expression as given, and parsed.
    recurrence: Option<(String, Cron)>,
    pub time_zone: Tz,
    /// Ended early at this time: the occurrence then in effect ends there.
    pub ended_at: Option<DateTime<Utc>>,
}

impl Schedule {
    /// Checks a window's times: it ends after it starts, lasts at most [`MAX_WINDOW_DAYS`],
    /// names a known time zone (an IANA name such as `Europe/Berlin`) and, when recurring, a
    /// five-field cron expression that fires, with occurrences that do not overlap.
    pub fn parse(
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
        recurrence: Option<&str>,
        time_zone: Option<&str>,
    ) -> Result<Self, WindowError> {
        let schedule = Self::read(starts_at, ends_at, recurrence, time_zone)?;
        schedule.check_gaps()?;
        Ok(schedule)
    }

    /// A stored window, checked when it was stored: read without the overlap check (which
    /// works through a year of occurrences).
    pub fn stored(
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
        recurrence: Option<&str>,
        time_zone: Option<&str>,
    ) -> Result<Self, WindowError> {
        Self::read(starts_at, ends_at, recurrence, time_zone)
    }

    fn read(
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
        recurrence: Option<&str>,
        time_zone: Option<&str>,
    ) -> Result<Self, WindowError> {
        // Cron times are whole seconds: so are the window's.
        let whole = |t: DateTime<Utc>| t.with_nanosecond(0).unwrap_or(t);
        let (starts_at, ends_at) = (whole(starts_at), whole(ends_at));
        let time_zone = match time_zone.map(str::trim) {
            None | Some("") => Tz::UTC,
            Some(name) => Tz::from_str(name).map_err(|_| {
                refuse(
                    "time_zone",
                    format!(
                        "{name:?} is not a known time zone (an IANA name such as Europe/Berlin)"
                    ),
                )
            })?,
        };
        if ends_at <= starts_at {
            return Err(refuse(
                "ends_at",
                "must be after the window's start (a window cannot be empty)",
            ));
        }
        let length = ends_at - starts_at;
        if length > Duration::days(MAX_WINDOW_DAYS) {
            return Err(refuse(
                "ends_at",
                format!("must be at most {MAX_WINDOW_DAYS} days after the window's start"),
            ));
        }
        let recurrence = match recurrence.map(str::trim) {
            None | Some("") => None,
            Some(text) => {
                let cron = CronParser::builder()
                    .seconds(Seconds::Disallowed)
                    .build()
                    .parse(text)
                    .map_err(|e| {
                        refuse(
                            "recurrence",
                            format!(
                                "{text:?} is not a five-field cron expression (minute hour day \
                                 month weekday): {e}"
                            ),
                        )
                    })?;
                Some((text.to_owned(), cron))
            }
        };
        Ok(Self {
            starts_at,
            ends_at,
            recurrence,
            time_zone,
            ended_at: None,
        })
    }

    /// A recurring window fires, and each occurrence ends before the next starts.
    fn check_gaps(&self) -> Result<(), WindowError> {
        let Some((text, _)) = &self.recurrence else {
            return Ok(());
        };
        let length = self.length();
        let first = self
            .next_start(self.starts_at, true)
            .ok_or_else(|| refuse("recurrence", format!("{text:?} never fires")))?;
        // Every gap over a year (daylight-saving days and uneven weekdays included).
        let starts = self.starts(first, first + Duration::days(366), MAX_CHECKED);
        if let Some(pair) = starts.windows(2).find(|p| p[1] - p[0] < length) {
            return Err(refuse(
                "recurrence",
                format!(
                    "fires again {} minutes after {}, sooner than the window's {} minutes \
                     end: occurrences would overlap",
                    (pair[1] - pair[0]).num_minutes(),
                    pair[0].to_rfc3339(),
                    length.num_minutes()
                ),
            ));
        }
        Ok(())
    }

    pub fn recurrence(&self) -> Option<&str> {
        self.recurrence.as_ref().map(|(text, _)| text.as_str())
    }

    /// How long each occurrence lasts.
    pub fn length(&self) -> Duration {
        self.ends_at - self.starts_at
    }

    /// The first start of an occurrence after `t` (at `t` too when `inclusive`), never before
    /// `starts_at`.
    fn next_start(&self, t: DateTime<Utc>, inclusive: bool) -> Option<DateTime<Utc>> {
        match &self.recurrence {
            None => {
                (t < self.starts_at || (inclusive && t == self.starts_at)).then_some(self.starts_at)
            }
            Some((_, cron)) => {
                let (from, inclusive) = if t < self.starts_at {
                    (self.starts_at, true)
                } else {
                    (t, inclusive)
                };
                cron.find_next_occurrence(&from.with_timezone(&self.time_zone), inclusive)
                    .ok()
                    .map(|at| at.with_timezone(&Utc))
            }
        }
    }

    /// Starts of occurrences from `from` (inclusive) to `to`, at most `limit`.
    fn starts(&self, from: DateTime<Utc>, to: DateTime<Utc>, limit: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut next = self.next_start(from, true);
        while let Some(start) = next.filter(|&s| s < to && out.len() < limit) {
            out.push(start);
            next = self.next_start(start, false);
        }
        out
    }

    /// The occurrence in effect at `t`, as (start, end), its end moved to `ended_at` if it was
    /// ended early.
    pub fn occurrence_at(&self, t: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let start = match &self.recurrence {
            None => self.starts_at,
            Some((_, cron)) => {
                let at = cron
                    .find_previous_occurrence(&t.with_timezone(&self.time_zone), true)
                    .ok()?
                    .with_timezone(&Utc);
                if at < self.starts_at {
                    return None;
                }
                at
            }
        };
        self.effective(start).filter(|&(s, e)| s <= t && t < e)
    }

    /// An occurrence starting at `start`, with an early end applied; `None` when ended before
    /// it began.
    fn effective(&self, start: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let mut end = start + self.length();
        if let Some(ended) = self.ended_at.filter(|&e| e >= start) {
            end = end.min(ended);
        }
        (end > start).then_some((start, end))
    }

    /// Occurrences that overlap `from..to`, oldest first (at most `limit`).
    pub fn occurrences(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut out = Vec::new();
        let mut cursor = from - self.length();
        let mut inclusive = true;
        while out.len() < limit {
            let Some(start) = self.next_start(cursor, inclusive) else {
                break;
            };
            if start >= to {
                break;
            }
            if let Some((s, e)) = self.effective(start) {
                if e > from {
                    out.push((s, e));
                }
            }
            cursor = start;
            inclusive = false;
        }
        out
    }

    /// Whether it can be in effect at or after `t`.
    pub fn has_future(&self, t: DateTime<Utc>) -> bool {
        self.occurrence_at(t).is_some() || self.next_start(t, false).is_some()
    }
}

/// A window as the calendar keeps it.
#[derive(Debug, Clone)]
pub struct CalendarWindow {
    pub id: i64,
    pub schedule: Schedule,
    /// Covers every monitor; else those of `monitors`.
    pub all_monitors: bool,
    pub monitors: HashSet<i64>,
}

impl CalendarWindow {
    pub fn covers(&self, monitor_id: i64) -> bool {
        self.all_monitors || self.monitors.contains(&monitor_id)
    }
}

/// How far around the time a snapshot is made its occurrences are worked out.
const HORIZON_HOURS: i64 = 24;
/// Most occurrences worked out per window and snapshot.
const MAX_OCCURRENCES: usize = 5_000;

struct Snapshot {
    windows: Vec<CalendarWindow>,
    /// Per window (same order): its occurrences around `made_at`.
    occurrences: Vec<Vec<(DateTime<Utc>, DateTime<Utc>)>>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

impl Snapshot {
    fn new(windows: Vec<CalendarWindow>, now: DateTime<Utc>) -> Self {
        let from = now - Duration::hours(HORIZON_HOURS);
        let to = now + Duration::hours(HORIZON_HOURS);
        let occurrences = windows
            .iter()
            .map(|w| w.schedule.occurrences(from, to, MAX_OCCURRENCES))
            .collect();
        Self {
            windows,
            occurrences,
            from,
            to,
        }
    }
}

/// The windows in force, shared by the check path (results flagged), the reads (a monitor's
/// `MAINTENANCE` state) and the reminder job. Reloaded from the database when a window
/// changes here and every few seconds for changes made by other processes.
#[derive(Clone)]
pub struct Calendar {
    inner: Arc<RwLock<Arc<Snapshot>>>,
    /// Tickets of loads begun, and the newest applied: a load that began before another
    /// (and so may have read the database before a change) never replaces its result.
    tickets: Arc<AtomicU64>,
    applied: Arc<AtomicU64>,
}

impl Default for Calendar {
    fn default() -> Self {
        Self::new(Vec::new(), Utc::now())
    }
}

impl Calendar {
    pub fn new(windows: Vec<CalendarWindow>, now: DateTime<Utc>) -> Self {
        Self {
            inner: Arc::new(RwLock::new(Arc::new(Snapshot::new(windows, now)))),
            tickets: Arc::default(),
            applied: Arc::default(),
        }
    }

    /// A ticket for a load about to read the windows (give it to [`Calendar::replace`]).
    pub fn begin_load(&self) -> u64 {
        self.tickets.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Replaces the windows (occurrences worked out around `now`) with those a load read,
    /// unless a load begun after it was applied already.
    pub fn replace(&self, ticket: u64, windows: Vec<CalendarWindow>, now: DateTime<Utc>) {
        let snapshot = Arc::new(Snapshot::new(windows, now));
        let mut inner = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.applied.load(Ordering::SeqCst) > ticket {
            return;
        }
        self.applied.store(ticket, Ordering::SeqCst);
        *inner = snapshot;
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether any window is known (the check path's shortcut).
    pub fn is_empty(&self) -> bool {
        self.snapshot().windows.is_empty()
    }

    /// The window that has `monitor_id` in maintenance at `t`, if any.
    pub fn window_at(&self, monitor_id: i64, t: DateTime<Utc>) -> Option<i64> {
        let snapshot = self.snapshot();
        let near = t >= snapshot.from && t < snapshot.to;
        snapshot
            .windows
            .iter()
            .zip(&snapshot.occurrences)
            .find(|(window, occurrences)| {
                window.covers(monitor_id)
                    && if near {
                        occurrences.iter().any(|&(s, e)| s <= t && t < e)
                    } else {
                        window.schedule.occurrence_at(t).is_some()
                    }
            })
            .map(|(window, _)| window.id)
    }

    pub fn covers(&self, monitor_id: i64, t: DateTime<Utc>) -> bool {
        self.window_at(monitor_id, t).is_some()
    }
}

/// A window name: trimmed, 1 to [`MAX_WINDOW_NAME`] characters.
pub fn parse_window_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > MAX_WINDOW_NAME || name.chars().any(char::is_control) {
        return Err(format!(
            "must be at most {MAX_WINDOW_NAME} characters, without control characters"
        ));
    }
    Ok(name.to_owned())
}

/// A stored window as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceWindow {
    pub id: i64,
    pub name: String,
    /// Covers every monitor; else those of `monitor_ids`.
    pub all_monitors: bool,
    pub monitor_ids: Vec<i64>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub recurrence: Option<String>,
    pub time_zone: String,
    pub ended_at: Option<DateTime<Utc>>,
    /// In effect now.
    pub active: bool,
    /// The occurrence in effect now or the next one, as (start, end); none when it is over.
    pub current_or_next: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn bad_windows_are_named() {
        let t = utc(2026, 12, 1, 0, 0);
        let err = Schedule::parse(t, t, None, None).unwrap_err();
        assert_eq!(err.field, "ends_at");
        let err =
            Schedule::parse(t, t + Duration::hours(1), None, Some("Mars/Olympus")).unwrap_err();
        assert_eq!(err.field, "time_zone");
        assert!(err.problem.contains("Mars/Olympus"), "{err:?}");
        let err = Schedule::parse(t, t + Duration::hours(1), Some("61 * * * *"), None).unwrap_err();
        assert_eq!(err.field, "recurrence");
        // Every 30 minutes for an hour: each occurrence would run into the next.
        let err =
            Schedule::parse(t, t + Duration::hours(1), Some("*/30 * * * *"), None).unwrap_err();
        assert!(err.problem.contains("overlap"), "{err:?}");
        let err = Schedule::parse(t, t + Duration::hours(1), Some("0 0 30 2 *"), None).unwrap_err();
        assert!(err.problem.contains("never fires"), "{err:?}");
        // Uneven gaps: Monday and Tuesday at midnight, 30 hours each (1 December is a Tuesday).
        let err =
            Schedule::parse(t, t + Duration::hours(30), Some("0 0 * * 1,2"), None).unwrap_err();
        assert!(err.problem.contains("overlap"), "{err:?}");
        // Daily for 24 hours in Berlin: the spring-forward day is 23 hours long.
        let err = Schedule::parse(
            t,
            t + Duration::hours(24),
            Some("0 2 * * *"),
            Some("Europe/Berlin"),
        )
        .unwrap_err();
        assert!(err.problem.contains("overlap"), "{err:?}");
        assert!(Schedule::parse(
            t,
            t + Duration::hours(23),
            Some("0 3 * * *"),
            Some("Europe/Berlin")
        )
        .is_ok());
    }

    #[test]
    fn a_one_off_window_and_its_early_end() {
        let start = utc(2026, 12, 1, 10, 0);
        let mut s = Schedule::parse(start, start + Duration::hours(2), None, None).unwrap();
        assert!(s.occurrence_at(start - Duration::seconds(1)).is_none());
        assert!(s.occurrence_at(start).is_some());
        assert!(s.occurrence_at(start + Duration::hours(2)).is_none());
        s.ended_at = Some(start + Duration::minutes(30));
        assert!(s.occurrence_at(start + Duration::minutes(29)).is_some());
        assert!(s.occurrence_at(start + Duration::minutes(30)).is_none());
    }

    #[test]
    fn a_weekly_window_follows_local_time_across_daylight_saving() {
        // Saturdays 02:00-03:00 in Berlin: 01:00 UTC in winter, 00:00 UTC in summer.
        let s = Schedule::parse(
            utc(2026, 1, 3, 1, 0),
            utc(2026, 1, 3, 2, 0),
            Some("0 2 * * SAT"),
            Some("Europe/Berlin"),
        )
        .unwrap();
        assert!(s.occurrence_at(utc(2026, 1, 10, 1, 30)).is_some());
        assert!(s.occurrence_at(utc(2026, 1, 10, 0, 30)).is_none());
        assert!(s.occurrence_at(utc(2026, 7, 4, 0, 30)).is_some());
        assert!(s.occurrence_at(utc(2026, 7, 4, 1, 30)).is_none());
        // Not before the window's first day, nor on other days.
        assert!(s.occurrence_at(utc(2025, 12, 27, 1, 30)).is_none());
        assert!(s.occurrence_at(utc(2026, 1, 11, 1, 30)).is_none());
        let weeks = s.occurrences(utc(2026, 3, 1, 0, 0), utc(2026, 4, 1, 0, 0), 10);
        assert_eq!(weeks.len(), 4);
        // 28 March (winter, UTC+1) is 01:00 UTC; clocks change on 29 March.
        assert_eq!(weeks[3].0, utc(2026, 3, 28, 1, 0));
    }

    #[test]
    fn the_calendar_answers_for_the_monitors_a_window_names() {
        let now = utc(2026, 12, 1, 10, 0);
        let one = CalendarWindow {
            id: 7,
            schedule: Schedule::parse(now, now + Duration::hours(1), None, None).unwrap(),
            all_monitors: false,
            monitors: [1].into(),
        };
        let calendar = Calendar::new(vec![one], now);
        assert_eq!(calendar.window_at(1, now + Duration::minutes(5)), Some(7));
        assert!(!calendar.covers(2, now + Duration::minutes(5)));
        assert!(!calendar.covers(1, now + Duration::hours(2)));
        // Far from the snapshot's time: worked out directly.
        assert!(!calendar.covers(1, now + Duration::days(30)));
        // A load begun before another never replaces what the later one read.
        let (older, newer) = (calendar.begin_load(), calendar.begin_load());
        calendar.replace(newer, Vec::new(), now);
        let again = CalendarWindow {
            id: 8,
            schedule: Schedule::parse(now, now + Duration::hours(1), None, None).unwrap(),
            all_monitors: true,
            monitors: HashSet::new(),
        };
        calendar.replace(older, vec![again], now);
        assert!(calendar.is_empty());
    }
}
