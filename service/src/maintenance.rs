//! Maintenance windows: created, changed, ended early and deleted here, checked against each
//! other, and the process's calendar reloaded at once so the change takes effect here without
//! waiting for the periodic reload (other processes pick it up within theirs).

use chrono::{DateTime, Duration, Utc};
use domain::maintenance::{
    parse_window_name, MaintenanceWindow, Schedule, WindowError, MAX_CHECKED, MAX_WINDOWS,
    MAX_WINDOW_MONITORS,
};
use store::WindowRow;

use crate::{monitors::now, Error, MonitorService};

/// A window to create, as sent.
#[derive(Debug, Clone, Default)]
pub struct NewWindow {
    pub name: String,
    /// Empty: all monitors.
    pub monitor_ids: Vec<i64>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub recurrence: Option<String>,
    pub time_zone: Option<String>,
}

/// A change to a window: what is `None` stays; `Some(None)` clears the recurrence.
#[derive(Debug, Clone, Default)]
pub struct WindowPatch {
    pub name: Option<String>,
    pub monitor_ids: Option<Vec<i64>>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub recurrence: Option<Option<String>>,
    pub time_zone: Option<String>,
}

/// How far ahead two windows are compared for overlaps (for at most
/// [`MAX_CHECKED`] occurrences of each).
const OVERLAP_HORIZON_DAYS: i64 = 366;

fn window_error(err: WindowError) -> Error {
    Error::invalid(err.field, err.problem)
}

fn not_found(id: i64) -> Error {
    Error::NotFound {
        what: "maintenance window",
        id,
    }
}

/// Whether two sorted lists of occurrences have a moment in common.
fn first_overlap(
    a: &[(DateTime<Utc>, DateTime<Utc>)],
    b: &[(DateTime<Utc>, DateTime<Utc>)],
) -> Option<DateTime<Utc>> {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (s1, e1) = a[i];
        let (s2, e2) = b[j];
        if s1 < e2 && s2 < e1 {
            return Some(s1.max(s2));
        }
        if e1 <= e2 {
            i += 1;
        } else {
            j += 1;
        }
    }
    None
}

impl MonitorService {
    pub async fn maintenance_windows(&self) -> Result<Vec<MaintenanceWindow>, Error> {
        Ok(self.db().maintenance_windows(now()).await?)
    }

    pub async fn maintenance_window(&self, id: i64) -> Result<MaintenanceWindow, Error> {
        self.db()
            .maintenance_window(id, now())
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// Checks a window as it would be stored: its name, times, time zone and recurrence, its
    /// monitors (each stored, at most [`MAX_WINDOW_MONITORS`]) and that it overlaps no other
    /// window for a monitor both cover.
    async fn checked(&self, mut new: NewWindow, except: Option<i64>) -> Result<WindowRow, Error> {
        let name = parse_window_name(&new.name).map_err(|p| Error::invalid("name", p))?;
        if self.db().window_name_taken(&name, except).await? {
            return Err(Error::invalid(
                "name",
                format!("{name:?} is the name of another maintenance window"),
            ));
        }
        let schedule = Schedule::parse(
            new.starts_at,
            new.ends_at,
            new.recurrence.as_deref(),
            new.time_zone.as_deref(),
        )
        .map_err(window_error)?;
        new.monitor_ids.sort_unstable();
        new.monitor_ids.dedup();
        if new.monitor_ids.len() > MAX_WINDOW_MONITORS {
            return Err(Error::invalid(
                "monitor_ids",
                format!("must name at most {MAX_WINDOW_MONITORS} monitors"),
            ));
        }
        let found = self.db().existing_monitors(&new.monitor_ids).await?;
        if let Some(missing) = new.monitor_ids.iter().find(|id| !found.contains(id)) {
            return Err(Error::invalid(
                "monitor_ids",
                format!("monitor {missing} does not exist"),
            ));
        }
        let all_monitors = new.monitor_ids.is_empty();
        let from = now().min(new.starts_at);
        let to = from + Duration::days(OVERLAP_HORIZON_DAYS);
        let mine = schedule.occurrences(from, to, MAX_CHECKED);
        let others = self.db().calendar_windows().await?;
        if except.is_none() && others.len() as u64 >= MAX_WINDOWS {
            return Err(Error::Conflict(
                format!("there are {MAX_WINDOWS} maintenance windows, the most there may be; delete one first").into(),
            ));
        }
        for other in others {
            if Some(other.id) == except {
                continue;
            }
            let shared = all_monitors
                || other.all_monitors
                || new.monitor_ids.iter().any(|id| other.monitors.contains(id));
            if !shared {
                continue;
            }
            let theirs = other.schedule.occurrences(from, to, MAX_CHECKED);
            if let Some(at) = first_overlap(&mine, &theirs) {
                return Err(Error::invalid(
                    "starts_at",
                    format!(
                        "overlaps maintenance window {} at {} for the same monitors; \
                         change one of them or join them into one",
                        other.id,
                        at.to_rfc3339()
                    ),
                ));
            }
        }
        Ok(WindowRow {
            name,
            starts_at: schedule.starts_at,
            ends_at: schedule.ends_at,
            recurrence: schedule.recurrence().map(str::to_owned),
            time_zone: schedule.time_zone.name().to_owned(),
            all_monitors,
            monitor_ids: new.monitor_ids,
        })
    }

    pub async fn create_window(&self, new: NewWindow) -> Result<MaintenanceWindow, Error> {
        let row = self.checked(new, None).await?;
        let window = self.db().insert_window(row, now()).await?;
        self.reload_calendar().await;
        Ok(window)
    }

    pub async fn update_window(
        &self,
        id: i64,
        patch: WindowPatch,
    ) -> Result<MaintenanceWindow, Error> {
        let current = self.maintenance_window(id).await?;
        if patch.monitor_ids.is_none() && !current.all_monitors && current.monitor_ids.is_empty() {
            return Err(Error::invalid(
                "monitor_ids",
                "must be given: the monitors this window named were deleted (an empty list \
                 makes it cover all monitors)",
            ));
        }
        let new = NewWindow {
            name: patch.name.unwrap_or(current.name),
            monitor_ids: patch.monitor_ids.unwrap_or(current.monitor_ids),
            starts_at: patch.starts_at.unwrap_or(current.starts_at),
            ends_at: patch.ends_at.unwrap_or(current.ends_at),
            recurrence: patch.recurrence.unwrap_or(current.recurrence),
            time_zone: Some(patch.time_zone.unwrap_or(current.time_zone)),
        };
        let seen = current.updated_at;
        let row = self.checked(new, Some(id)).await?;
        let window = match self.db().update_window(id, row, seen, now()).await? {
            store::WindowUpdate::Done(window) => window,
            store::WindowUpdate::Gone => return Err(not_found(id)),
            store::WindowUpdate::Changed => {
                return Err(Error::Conflict(
                    format!(
                        "maintenance window {id} was changed by another request meanwhile; \
                         read it again and retry"
                    )
                    .into(),
                ))
            }
        };
        self.reload_calendar().await;
        Ok(window)
    }

    /// Ends the occurrence in effect now; one not in effect is a conflict (delete a window to
    /// cancel it).
    pub async fn end_window(&self, id: i64) -> Result<MaintenanceWindow, Error> {
        let current = self.maintenance_window(id).await?;
        if !current.active {
            return Err(Error::Conflict(
                format!(
                    "maintenance window {id} is not in effect now; delete it to cancel it, or \
                     change its times"
                )
                .into(),
            ));
        }
        if !self.db().end_window(id, now()).await? {
            return Err(not_found(id));
        }
        self.reload_calendar().await;
        self.maintenance_window(id).await
    }

    pub async fn delete_window(&self, id: i64) -> Result<(), Error> {
        if !self.db().delete_window(id).await? {
            return Err(not_found(id));
        }
        self.reload_calendar().await;
        Ok(())
    }

    /// Takes a change into this process's calendar now (a failure leaves it to the periodic
    /// reload).
    async fn reload_calendar(&self) {
        if let Err(err) = worker::maintenance::reload(self.db(), self.calendar()).await {
            tracing::warn!(error = %err, "maintenance windows not reloaded after a change");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn overlaps_are_found_in_sorted_occurrences() {
        let t = |h| Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap();
        let a = [(t(1), t(2)), (t(5), t(6))];
        assert_eq!(first_overlap(&a, &[(t(2), t(3)), (t(4), t(5))]), None);
        assert_eq!(first_overlap(&a, &[(t(3), t(4)), (t(5), t(7))]), Some(t(5)));
    }
}
