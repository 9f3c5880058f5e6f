//! The monitor operations, used by REST, GraphQL and the WebSockets alike. They take parsed
//! input (see [`domain`]) and return domain types and [`Error`].

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use domain::{
    push::{self, PushReport},
    spec::FieldError,
    url_password, CheckEvent, CheckResult, CheckSpec, Monitor, MonitorKind, MonitorPatch,
    MonitorUrl, NewMonitor, SpecInput,
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

    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    /// The maintenance windows this process goes by.
    pub fn calendar(&self) -> &domain::maintenance::Calendar {
        self.engine.calendar()
    }

    /// Which addresses checks and notifications may reach.
    pub fn policy(&self) -> &domain::TargetPolicy {
        self.engine.policy()
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
        let monitors = self.db.monitors().await?;
        Ok(monitors.into_iter().map(|m| self.shown(m)).collect())
    }

    /// A monitor as clients see it now: `MAINTENANCE` while a window covers it.
    pub fn shown(&self, mut monitor: Monitor) -> Monitor {
        if monitor.active && self.engine.calendar().covers(monitor.id, now()) {
            monitor.state = domain::MonitorState::Maintenance;
        }
        monitor
    }

    /// Up to `limit` monitors with ids greater than `after`, oldest first.
    pub async fn list_page(
        &self,
        after: Option<i64>,
        limit: u64,
        active: Option<bool>,
    ) -> Result<Page<Monitor>, Error> {
        let mut page = self.db.monitor_page(after, limit, active).await?;
        page.items = page.items.into_iter().map(|m| self.shown(m)).collect();
        Ok(page)
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
        Ok(self.db.monitor(id).await?.map(|m| self.shown(m)))
    }

    /// The monitor with this id, or `NotFound`.
    pub async fn get(&self, id: i64) -> Result<Monitor, Error> {
        self.find(id).await?.ok_or(Error::NotFound {
            what: "monitor",
            id,
        })
    }

    /// Stores a new monitor; an active one is due for its first check at once (a PUSH
    /// monitor at the end of its first window). A URL whose password is the read mask `***`
    /// is refused: there is no stored password to restore.
    pub async fn create(&self, mut new: NewMonitor) -> Result<Monitor, Error> {
        if let Some(url) = &new.url {
            if url_password::is_masked(url.as_str()) {
                return Err(masked_password_error());
            }
            self.vet(url)?;
        }
        let mut input = std::mem::take(&mut new.spec);
        let kind = settle_kind(&mut input, &mut new.url, None)?;
        no_retry_for_push(kind, &mut new.retry_interval, false)?;
        let spec = CheckSpec::parse(input, None).map_err(spec_error)?;
        self.vet_resolver(spec.as_ref())?;
        if let Some(url) = &new.url {
            certificates_need_tls(spec.as_ref(), url.as_str())?;
        }
        if let Some(ids) = &mut new.channel_ids {
            self.check_channel_ids(ids, "notification_channel_ids")
                .await?;
        }
        let now = now();
        let due = new.active.then(|| match kind {
            MonitorKind::Push => push::deadline(now, new.interval.get(), new.timeout.get()),
            _ => now,
        });
        let monitor = self.db.insert_monitor(new, spec.as_ref(), now, due).await?;
        self.schedule.changed(monitor.id);
        Ok(self.shown(monitor))
    }

    /// Applies a partial change. Resuming a monitor or pointing it at a new URL makes it due
    /// at once; a shorter interval brings its next check forward (a PUSH monitor's deadline
    /// only ever comes sooner, unless it is resumed or just made PUSH: then a new window).
    /// A URL sent back with the read mask `***` for the stored scheme, user, host and port
    /// keeps the stored password.
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
        let kind = settle_kind(
            &mut patch.spec,
            &mut patch.url,
            Some((&current.url, current_kind)),
        )?;
        no_retry_for_push(kind, &mut patch.retry_interval, current_kind != kind)?;
        let spec = if patch.spec == SpecInput::default() {
            None
        } else {
            let input = std::mem::take(&mut patch.spec);
            Some(CheckSpec::parse(input, current.spec.as_ref()).map_err(spec_error)?)
        };
        if let Some(spec) = &spec {
            self.vet_resolver(spec.as_ref())?;
        }
        certificates_need_tls(
            spec.as_ref().map_or(current.spec.as_ref(), Option::as_ref),
            patch
                .url
                .as_ref()
                .map_or(current.url.as_str(), MonitorUrl::as_str),
        )?;
        if let Some(ids) = &mut patch.channel_ids {
            self.check_channel_ids(ids, "notification_channel_ids")
                .await?;
        }
        let now = now();
        let mut next_check_at = current.next_check_after(&patch, now);
        // New check options take effect at once, as a new URL does.
        if spec.is_some() && spec.as_ref().map(Option::as_ref) != Some(current.spec.as_ref()) {
            next_check_at = next_check_at.map(|_| now);
        }
        if kind == MonitorKind::Push {
            let window = push::deadline(
                now,
                patch.interval.map_or(current.interval_seconds, |i| i.get()),
                patch.timeout.map_or(current.timeout_seconds, |t| t.get()),
            );
            // Resumed, or just made PUSH: a new window. Otherwise an edit never moves the
            // deadline later (edits cannot keep a silent monitor from going DOWN), only
            // sooner when the window shrank.
            let fresh = !current.active || current_kind != MonitorKind::Push;
            next_check_at = next_check_at.map(|_| match current.next_check_at {
                Some(at) if !fresh => at.min(window),
                _ => window,
            });
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
        Ok(self.shown(monitor))
    }

    /// Records a push to the PUSH monitor with this token: a result like a check's, and the
    /// monitor next due (DOWN unless pushed again) at the end of a new window.
    pub async fn push(&self, token: &str, report: PushReport) -> Result<CheckResult, Error> {
        if !domain::input::is_push_token(token) {
            return Err(Error::UnknownPushToken);
        }
        let target = self
            .db
            .push_target(token)
            .await?
            .ok_or(Error::UnknownPushToken)?;
        if !target.active {
            return Err(Error::Conflict(
                format!(
                    "monitor {} is paused; pushes are recorded once it is resumed",
                    target.id
                )
                .into(),
            ));
        }
        let at = Utc::now().trunc_subsecs(3);
        let outcome = report.outcome(target.spec.as_ref(), at);
        let due = push::deadline(at, target.interval_seconds, target.timeout_seconds);
        let record = match self.engine.store_push(target.id, outcome, token, due).await {
            Ok(record) => record,
            Err(RunCheckError::NotFound(_) | RunCheckError::Pushed(_)) => {
                return Err(Error::UnknownPushToken)
            }
            Err(RunCheckError::Database(err)) => return Err(err.into()),
            Err(RunCheckError::Write(err)) => {
                tracing::error!(monitor.id = target.id, error = %err, "push not stored");
                return Err(Error::Unavailable);
            }
        };
        self.schedule.changed(target.id);
        Ok(record)
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
            Ok(event) => {
                // A result that leaves a change unconfirmed moved the stored due time of a
                // monitor with retries: the scheduler reads it.
                let m = &event.monitor;
                let retry = domain::state::retry_at(
                    m.active,
                    Some(m.state),
                    m.retry_interval_seconds,
                    event.result.checked_at,
                );
                if retry.is_some() {
                    self.schedule.changed(id);
                }
                Ok(event.result.clone())
            }
            Err(RunCheckError::NotFound(id)) => Err(Error::NotFound {
                what: "monitor",
                id,
            }),
            Err(RunCheckError::Pushed(id)) => Err(Error::Conflict(
                format!("monitor {id} is a PUSH monitor: it is not checked, it is pushed to (GET or POST /push/{{token}})").into(),
            )),
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

/// Decides the monitor's kind, `current` being its stored URL and kind (`None` for a new
/// monitor): the kind sent, else the URL's, else the current one. A URL of another kind is
/// refused; a PUSH monitor gets its URL made (with a new token when it becomes one; its URL is
/// never a client's). A change of kind is written into `input`.
fn settle_kind(
    input: &mut SpecInput,
    url: &mut Option<MonitorUrl>,
    current: Option<(&str, MonitorKind)>,
) -> Result<MonitorKind, Error> {
    let current_kind = current.map(|(_, kind)| kind);
    let kind = input
        .kind
        .or(url.as_ref().map(MonitorUrl::kind))
        .or(current_kind)
        .unwrap_or_default();
    if kind == MonitorKind::Push {
        let current_url = current
            .filter(|(_, kind)| *kind == MonitorKind::Push)
            .map(|(url, _)| url);
        if url
            .as_ref()
            .is_some_and(|u| Some(u.as_str()) != current_url)
        {
            return Err(Error::invalid(
                "url",
                "is made by the service for a PUSH monitor (/push/{token}); leave it out",
            ));
        }
        *url = match current_url {
            Some(_) => None,
            None => Some(MonitorUrl::push(&new_push_token()?)),
        };
    } else {
        match url.as_ref() {
            None if current_kind != Some(kind) => {
                return Err(match current {
                    Some(_) => Error::invalid(
                        "kind",
                        format!(
                            "{} needs a url of the form {}; send the new url with it",
                            kind.as_str(),
                            kind.url_forms()
                        ),
                    ),
                    None => Error::invalid("url", "is required (only a PUSH monitor has none)"),
                });
            }
            Some(given) if given.kind() != kind => {
                return Err(Error::invalid(
                    "url",
                    format!("must be {} for kind {}", kind.url_forms(), kind.as_str()),
                ));
            }
            _ => {}
        }
    }
    input.kind = (Some(kind) != current_kind || input.kind.is_some()).then_some(kind);
    Ok(kind)
}

/// Refuses a certificate assertion on a TCP monitor without TLS (`tcp://`): it has no
/// certificate to read, so the assertion could only fail.
fn certificates_need_tls(spec: Option<&CheckSpec>, url: &str) -> Result<(), Error> {
    let Some(spec) = spec.filter(|s| s.kind == MonitorKind::Tcp) else {
        return Ok(());
    };
    if url::Url::parse(url).map_or(true, |u| u.scheme() != "tcp") {
        return Ok(());
    }
    match spec
        .assertions
        .iter()
        .position(|a| a.source == domain::spec::AssertionSource::CertExpiresInDays)
    {
        Some(i) => Err(Error::invalid(
            format!("assertions[{i}].source"),
            "CERT_EXPIRES_IN_DAYS needs a TLS handshake: use tls://host:port",
        )),
        None => Ok(()),
    }
}

/// A PUSH monitor has no retries (it is not checked, it is pushed to): one sent is refused,
/// and a monitor that becomes PUSH loses its own.
fn no_retry_for_push(
    kind: MonitorKind,
    retry: &mut Option<Option<domain::IntervalSeconds>>,
    kind_changed: bool,
) -> Result<(), Error> {
    if kind != MonitorKind::Push {
        return Ok(());
    }
    if matches!(retry, Some(Some(_))) {
        return Err(Error::invalid(
            "retry_interval_seconds",
            "is not an option of PUSH monitors",
        ));
    }
    if kind_changed {
        *retry = Some(None);
    }
    Ok(())
}

/// A new push token: 24 random bytes from the operating system, URL-safe base64 (32
/// characters).
fn new_push_token() -> Result<String, Error> {
    use base64::Engine as _;
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|err| {
        tracing::error!(error = %err, "no randomness for a push token");
        Error::Internal
    })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

impl MonitorService {
    /// Refuses a DNS monitor's resolver the target policy blocks.
    fn vet_resolver(&self, spec: Option<&CheckSpec>) -> Result<(), Error> {
        let Some(addr) = spec
            .and_then(|s| s.dns_resolver.as_deref())
            .and_then(|r| domain::spec::parse_resolver(r).ok())
        else {
            return Ok(());
        };
        self.engine.policy().vet(addr.ip()).map_err(|why| {
            Error::invalid(
                "dns_resolver",
                format!("points at {}, which is {why}; checks may not connect there (see ALLOWED_NETWORKS)", addr.ip()),
            )
        })
    }
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
