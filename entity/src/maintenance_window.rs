//! The `maintenance_windows` table: planned downtime, one-off (`starts_at` to `ends_at`) or
//! recurring (each time `recurrence`, a cron expression in `time_zone`, fires from `starts_at`
//! on, for as long as `ends_at - starts_at`). `ended_at`: ended early at that time (for a
//! recurring window, the occurrence then in effect).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "maintenance_windows")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    pub starts_at: DateTimeUtc,
    pub ends_at: DateTimeUtc,
    pub recurrence: Option<String>,
    pub time_zone: String,
    /// Covers every monitor; else the linked ones.
    pub all_monitors: bool,
    pub ended_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
