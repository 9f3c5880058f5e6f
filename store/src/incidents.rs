//! Incidents: pages with filters, single incidents, acknowledgements, and the results that
//! opened and closed them (incidents are opened and resolved by the batch write, in
//! [`crate::batch`]).

use chrono::{DateTime, Utc};
use domain::{CheckResult, Incident};
use entity::{check_result, incident};
use sea_orm::{
    sea_query::Expr, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::{rows, Database, Error, Page};

/// Which incidents a page holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IncidentFilter {
    pub monitor_id: Option<i64>,
    /// Open only (`true`) or resolved only (`false`).
    pub open: Option<bool>,
    /// Those that overlap the window: not resolved before `from`, not started after `to`.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl Database {
    /// Up to `limit` incidents matching `filter`, newest first, with ids below `before`.
    pub async fn incidents(
        &self,
        filter: IncidentFilter,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Page<Incident>, Error> {
        let mut query = incident::Entity::find().order_by_desc(incident::Column::Id);
        if let Some(before) = before {
            query = query.filter(incident::Column::Id.lt(before));
        }
        if let Some(monitor_id) = filter.monitor_id {
            query = query.filter(incident::Column::MonitorId.eq(monitor_id));
        }
        match filter.open {
            Some(true) => query = query.filter(incident::Column::ResolvedAt.is_null()),
            Some(false) => query = query.filter(incident::Column::ResolvedAt.is_not_null()),
            None => {}
        }
        if let Some(from) = filter.from {
            query = query.filter(
                Condition::any()
                    .add(incident::Column::ResolvedAt.is_null())
                    .add(incident::Column::ResolvedAt.gte(from)),
            );
        }
        if let Some(to) = filter.to {
            query = query.filter(incident::Column::StartedAt.lte(to));
        }
        let rows = query.limit(limit + 1).all(&self.conn).await?;
        Ok(Page::of(rows, limit, rows::incident))
    }

    pub async fn incident(&self, id: i64) -> Result<Option<Incident>, Error> {
        Ok(incident::Entity::find_by_id(id)
            .one(&self.conn)
            .await?
            .map(rows::incident))
    }

    /// A monitor's incident by the result that opened it.
    pub async fn incident_started_by(
        &self,
        monitor_id: i64,
        started_seq: i32,
    ) -> Result<Option<Incident>, Error> {
        Ok(incident::Entity::find()
            .filter(incident::Column::MonitorId.eq(monitor_id))
            .filter(incident::Column::StartedSeq.eq(started_seq))
            .one(&self.conn)
            .await?
            .map(rows::incident))
    }

    /// Records an acknowledgement (replacing an earlier note); the incident as it now is, or
    /// `None` when there is no such incident.
    pub async fn acknowledge_incident(
        &self,
        id: i64,
        note: Option<String>,
        at: DateTime<Utc>,
    ) -> Result<Option<Incident>, Error> {
        // Acknowledged: someone is on it, so the reminders still waiting go too.
        let txn = self.begin_write().await?;
        let done = incident::Entity::update_many()
            .col_expr(incident::Column::AcknowledgedAt, Expr::value(at))
            .col_expr(incident::Column::Acknowledgement, Expr::value(note))
            .filter(incident::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        if done.rows_affected == 0 {
            return Ok(None);
        }
        crate::notifications::drop_reminders(&txn, id, "not sent: the incident was acknowledged")
            .await?;
        txn.commit().await?;
        self.incident(id).await
    }

    /// One result of a monitor by its number.
    pub async fn result_by_seq(
        &self,
        monitor_id: i64,
        seq: i32,
    ) -> Result<Option<CheckResult>, Error> {
        Ok(result_row(&self.conn, monitor_id, seq)
            .await?
            .map(rows::check_result))
    }
}

/// One of a monitor's result rows by its number, on `conn` (the pool or a transaction); none
/// for a monitor id past the table's 4-byte integers.
pub(crate) async fn result_row(
    conn: &impl sea_orm::ConnectionTrait,
    monitor_id: i64,
    seq: i32,
) -> Result<Option<check_result::Model>, sea_orm::DbErr> {
    let Ok(monitor_id) = i32::try_from(monitor_id) else {
        return Ok(None);
    };
    check_result::Entity::find_by_id((monitor_id, seq))
        .one(conn)
        .await
}
