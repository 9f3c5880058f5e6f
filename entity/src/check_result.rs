//! The `check_results` table: one row per check performed. It is the largest table by far, so
//! the row is kept narrow: the outcome is a boolean, the time is epoch milliseconds, and the
//! key is `(monitor_id, seq)`, two 4-byte integers.

use sea_orm::entity::prelude::*;

/// One stored check.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "check_results")]
pub struct Model {
    /// The result's id, from one sequence for the whole table (what clients see).
    pub id: i64,
    /// A 4-byte integer in the table, so the history key is 8 bytes (see migration 5).
    #[sea_orm(primary_key, auto_increment = false)]
    pub monitor_id: i32,
    /// The result's number among its monitor's results: 1, 2, 3, ... in the order stored.
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i32,
    /// When the check started, in milliseconds since the Unix epoch (UTC).
    pub checked_at_ms: i64,
    /// True for UP, false for DOWN.
    pub up: bool,
    /// The final HTTP status, null when no response came.
    pub status_code: Option<i16>,
    pub response_time_ms: i32,
    /// A short reason for DOWN (or degraded); null for a plain UP.
    pub error: Option<String>,
    /// UP, but slow or failing a warning assertion.
    pub degraded: bool,
    /// Phase timings in milliseconds; null where the phase did not happen.
    pub dns_ms: Option<i32>,
    pub connect_ms: Option<i32>,
    pub tls_ms: Option<i32>,
    pub first_byte_ms: Option<i32>,
    /// JSON: `{"tls": ..., "assertions": [...]}`; null when there is neither.
    pub details: Option<String>,
    /// Checked during a maintenance window of its monitor: stored, but it moved no state.
    pub in_maintenance: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::monitor::Entity",
        from = "Column::MonitorId",
        to = "super::monitor::Column::Id",
        on_delete = "Cascade"
    )]
    Monitor,
}

impl Related<super::monitor::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Monitor.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
