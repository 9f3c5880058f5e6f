//! The `incidents` table: a monitor's confirmed outages, each from the result that confirmed
//! it DOWN (`started_seq`) to the one that confirmed it UP again (`resolved_seq`, null while
//! open). Results are named by their number among the monitor's results.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "incidents")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub monitor_id: i64,
    pub started_seq: i32,
    pub started_at: DateTimeUtc,
    pub resolved_seq: Option<i32>,
    pub resolved_at: Option<DateTimeUtc>,
    pub acknowledged_at: Option<DateTimeUtc>,
    pub acknowledgement: Option<String>,
    /// 0: nothing sent yet; 1: its opening fanned out; 2: its resolution too.
    pub notified: i16,
    /// Reminders fanned out so far.
    pub reminders_sent: i32,
    /// When the next reminder is due; null when none is (resolved, or no reminders asked).
    pub next_reminder_at: Option<DateTimeUtc>,
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
