//! Incident operations: pages with filters, one incident, acknowledgements, and the results
//! that opened and closed an incident. Incidents themselves are opened and resolved by the
//! result writer, in the batch that stores the confirming result.

use domain::{CheckEvent, CheckResult, Incident};
use store::{IncidentFilter, Page};

use crate::{now, Error, MonitorService};

impl MonitorService {
    /// Up to `limit` incidents matching `filter`, newest first, with ids below `before`. A
    /// window whose end is before its start is refused.
    pub async fn incidents(
        &self,
        filter: IncidentFilter,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Page<Incident>, Error> {
        if let (Some(from), Some(to)) = (filter.from, filter.to) {
            if to < from {
                return Err(Error::invalid("to", "must not be before from"));
            }
        }
        Ok(self.db().incidents(filter, before, limit).await?)
    }

    /// The incident with this id, or `NotFound`.
    pub async fn incident(&self, id: i64) -> Result<Incident, Error> {
        self.db().incident(id).await?.ok_or(Error::NotFound {
            what: "incident",
            id,
        })
    }

    /// The incident a stored result opened or resolved, as it now is; `None` when the result
    /// touched none (or the monitor was deleted since).
    pub async fn incident_of(&self, event: &CheckEvent) -> Result<Option<Incident>, Error> {
        let Some(change) = event.incident else {
            return Ok(None);
        };
        Ok(self
            .db()
            .incident_started_by(event.monitor.id, change.started_seq)
            .await?)
    }

    /// Acknowledges an incident with an optional note (a later acknowledgement replaces it).
    pub async fn acknowledge_incident(
        &self,
        id: i64,
        note: Option<&str>,
    ) -> Result<Incident, Error> {
        let note = domain::incident::parse_note(note).map_err(|p| Error::invalid("note", p))?;
        self.db()
            .acknowledge_incident(id, note, now())
            .await?
            .ok_or(Error::NotFound {
                what: "incident",
                id,
            })
    }

    /// One of a monitor's results by its number; `None` once retention removed it.
    pub async fn result_by_seq(
        &self,
        monitor_id: i64,
        seq: i32,
    ) -> Result<Option<CheckResult>, Error> {
        Ok(self.db().result_by_seq(monitor_id, seq).await?)
    }
}
