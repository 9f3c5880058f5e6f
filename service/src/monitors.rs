//! The monitor operations, used by REST, GraphQL and the WebSockets alike. They take parsed
//! input (see [`domain`]) and return domain types and [`Error`].

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use domain::{
    spec::FieldError, url_password, CheckEvent, CheckResult, CheckSpec, Monitor, MonitorKind,
    MonitorPatch, MonitorUrl, NewMonitor, SpecInput,
};
use store::{Database, Page};
use tokio::sync::broadcast;
use worker::{Engine, RunCheckError, ScheduleNotifier};

use crate::Error;

/// Monitor operations over one database. Cheap to clone.
#[derive(Clone)]
pub struct MonitorService {
    db: Database,
    engine: Engine,
    schedule: ScheduleNotifier,
}

impl MonitorService {
    /// A service over `db`; `engine` runs manual checks and carries live events, `schedule`
    /// hears about changes.
    pub fn new(db: Database, engine: Engine, schedule: ScheduleNotifier) -> Self {
        Self {
            db,
            engine,
            schedule,
        }
    }

    /// Every stored check this process hears of, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CheckEvent>> {
        self.engine.subscribe()
    }

    /// One monitor's stored checks, from now on.
    pub fn subscribe_to(&self, monitor_id: i64) -> broadcast::Receiver<Arc<CheckEvent>> {
        self.engine.subscribe_to(monitor_id)
    }

    /// Every monitor, oldest first.
    pub async fn list_all(&self) -> Result<Vec<Monitor>, Error> {
        Ok(self.db.monitors().await?)
    }

    /// Up to `limit` monitors with ids greater than `after`, oldest first.
    pub async fn list_page(
        &self,
        after: Option<i64>,
        limit: u64,
        active: Option<bool>,
    ) -> Result<Page<Monitor>, Error> {
        Ok(self.db.monitor_page(after, limit, active).await?)
    }

    /// How many monitors exist (optionally only active or paused ones).
    pub async fn count(&self, active: Option<bool>) -> Result<u64, Error> {
        Ok(self.db.count_monitors(active).await?)
    }

    /// How many results a monitor has.
    pub async fn result_count(&self, monitor_id: i64) -> Result<u64, Error> {
        Ok(self.db.result_count(monitor_id).await?)
    }

    /// The monitor with this id, if any.
    pub async fn find(&self, id: i64) -> Result<Option<Monitor>, Error> {
        Ok(self.db.monitor(id).await?)
    }

    /// The monitor with this id, or `NotFound`.
    pub async fn get(&self, id: i64) -> Result<Monitor, Error> {
        self.find(id).await?.ok_or(Error::NotFound {
            what: "monitor",
            id,
        })
    }

    /// Stores a new monitor; an active one is due for its first check at once. A URL whose
    /// password is the read mask `***` is refused: there is no stored password to restore.
    pub async fn create(&self, new: NewMonitor) -> Result<Monitor, Error> {
        if url_password::is_masked(new.url.as_str()) {
            return Err(masked_password_error());
        }
        self.vet(&new.url)?;
        let mut input = new.spec.clone();
        settle_kind(&mut input, new.url.kind(), MonitorKind::Http, true)?;
        let spec = CheckSpec::parse(input, None).map_err(spec_error)?;
        let now = now();
        let due = new.active.then_some(now);
        let monitor = self.db.insert_monitor(new, spec.as_ref(), now, due).await?;
        self.schedule.changed(monitor.id);
        Ok(monitor)
    }

    /// Applies a partial change. Resuming a monitor or pointing it at a new URL makes it due
    /// at once; a shorter interval brings its next check forward. A URL sent back with the
    /// read mask `***` for the stored scheme, user, host and port keeps the stored password.
    pub async fn update(&self, id: i64, mut patch: MonitorPatch) -> Result<Monitor, Error> {
        let not_found = || Error::NotFound {
            what: "monitor",
            id,
        };
        let current = self.db.monitor_schedule(id).await?.ok_or_else(not_found)?;
        if let Some(url) = &patch.url {
            if url_password::is_masked(url.as_str()) {
                let restored = url_password::restore(url.as_str(), &current.url)
                    .ok_or_else(masked_password_error)?;
                patch.url = Some(
                    MonitorUrl::parse(&restored)
                        .map_err(|problem| Error::invalid("url", problem))?,
                );
            }
        }
        if let Some(url) = &patch.url {
            self.vet(url)?;
        }
        let current_kind = current.spec.as_ref().map(|s| s.kind).unwrap_or_default();
        let url_kind = match &patch.url {
            Some(url) => url.kind(),
            None => MonitorUrl::parse(&current.url)
                .map(|u| u.kind())
                .unwrap_or(current_kind),
        };
        settle_kind(&mut patch.spec, url_kind, current_kind, patch.url.is_some())?;
        let spec = if patch.spec == SpecInput::default() {
            None
        } else {
            let input = std::mem::take(&mut patch.spec);
            Some(CheckSpec::parse(input, current.spec.as_ref()).map_err(spec_error)?)
        };
        let now = now();
        let mut next_check_at = current.next_check_after(&patch, now);
        // New check options take effect at once, as a new URL does.
        if spec.is_some() && spec.as_ref().map(Option::as_ref) != Some(current.spec.as_ref()) {
            next_check_at = next_check_at.map(|_| now);
        }
        let monitor = self
            .db
            .update_monitor(
                id,
                patch,
                spec.as_ref().map(Option::as_ref),
                now,
                next_check_at,
            )
            .await?
            .ok_or_else(not_found)?;
        self.schedule.changed(id);
        Ok(monitor)
    }

    /// Deletes a monitor and, by cascade, its check history.
    pub async fn delete(&self, id: i64) -> Result<(), Error> {
        if !self.db.delete_monitor(id).await? {
            return Err(Error::NotFound {
                what: "monitor",
                id,
            });
        }
        self.schedule.changed(id);
        Ok(())
    }

    /// Like [`Self::check_history`], but `NotFound` when the monitor does not exist. The
    /// existence query runs only when the page is empty, so the common case costs one query.
    pub async fn history(
        &self,
        monitor_id: i64,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Page<CheckResult>, Error> {
        let page = self.check_history(monitor_id, before, limit).await?;
        if page.items.is_empty() && !self.exists(monitor_id).await? {
            return Err(Error::NotFound {
                what: "monitor",
                id: monitor_id,
            });
        }
        Ok(page)
    }

    /// Up to `limit` results of one monitor, newest first, older than its result number
    /// `before` (a [`CheckResult::seq`]).
    pub async fn check_history(
        &self,
        monitor_id: i64,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Page<CheckResult>, Error> {
        Ok(self.db.history(monitor_id, before, limit).await?)
    }

    /// Checks a monitor now; the result is stored and published like a scheduled one.
    pub async fn run_check(&self, id: i64) -> Result<CheckResult, Error> {
        match self.engine.run_check(id).await {
            Ok(record) => Ok(record),
            Err(RunCheckError::NotFound(id)) => Err(Error::NotFound {
                what: "monitor",
                id,
            }),
            Err(RunCheckError::Database(err)) => Err(err.into()),
            Err(RunCheckError::Write(err)) => {
                tracing::error!(monitor.id = id, error = %err, "manual check not stored");
                Err(Error::Unavailable)
            }
        }
    }

    /// Whether the database answers.
    pub async fn healthy(&self) -> bool {
        self.db
            .ping()
            .await
            .map_err(|e| tracing::warn!(error = %e, "health check: database unreachable"))
            .is_ok()
    }

    /// Whether a monitor with this id exists.
    pub async fn exists(&self, id: i64) -> Result<bool, Error> {
        Ok(self.db.monitor_exists(id).await?)
    }
}

impl MonitorService {
    /// Refuses a URL whose host is a literal address the target policy blocks (a name is
    /// vetted by each check, once resolved).
    fn vet(&self, url: &MonitorUrl) -> Result<(), Error> {
        let Some(parsed) = domain::input::special_form(url.as_str()) else {
            return Ok(());
        };
        self.engine.policy().vet_url(&parsed).map_err(|(ip, why)| {
            Error::invalid(
                "url",
                format!("points at {ip}, which is {why}; checks may not connect there (see ALLOWED_NETWORKS)"),
            )
        })
    }
}

/// Decides the monitor's kind: the one sent, else the new URL's, else the current one; and
/// refuses a URL that is not of that kind. A change of kind is written into `input`.
fn settle_kind(
    input: &mut SpecInput,
    url_kind: MonitorKind,
    current_kind: MonitorKind,
    url_is_new: bool,
) -> Result<(), Error> {
    let kind = input
        .kind
        .unwrap_or(if url_is_new { url_kind } else { current_kind });
    if kind != url_kind {
        return Err(if input.kind.is_some() && !url_is_new {
            Error::invalid(
                "kind",
                format!(
                    "{} needs a url of the form {}; send the new url with it",
                    kind.as_str(),
                    kind.url_forms()
                ),
            )
        } else {
            Error::invalid(
                "url",
                format!("must be {} for kind {}", kind.url_forms(), kind.as_str()),
            )
        });
    }
    input.kind = (kind != current_kind || input.kind.is_some()).then_some(kind);
    Ok(())
}

fn spec_error(err: FieldError) -> Error {
    Error::invalid(err.field, err.problem)
}

/// A URL carries the read mask as its password where no stored password can take its place.
fn masked_password_error() -> Error {
    Error::invalid(
        "url",
        "has the password `***`, which is how reads mask a password; send the real password (the stored one is kept only for the same scheme, user, host and port)",
    )
}

/// The current time at the precision both databases keep (microseconds).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
