//! The `monitors` table: what to check, how often, and the outcome of the newest check.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One monitored URL.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "monitors")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    pub url: String,
    pub timeout_seconds: i32,
    pub interval_seconds: i32,
    pub active: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// When the newest stored check ran; null until the first check.
    pub last_checked_at: Option<DateTimeUtc>,
    /// Outcome of the newest stored check: true for UP, false for DOWN, null until checked.
    pub last_up: Option<bool>,
    /// When the scheduler should check this monitor next (kept so a restart resumes on time).
    pub next_check_at: Option<DateTimeUtc>,
    /// Due time of the newest scheduled slot with a stored result (deduplicates redelivered
    /// jobs).
    pub last_slot_at: Option<DateTimeUtc>,
    /// `seq` of this monitor's newest stored result; 0 before the first.
    #[serde(default)]
    pub last_seq: i32,
    /// The check's options as JSON (`domain::CheckSpec`); null for the plain check.
    pub check_spec: Option<String>,
    pub failure_threshold: i32,
    pub success_threshold: i32,
    /// The confirmed status (flap control): true for UP; null before the first confirmation.
    pub confirmed_up: Option<bool>,
    /// Consecutive newest results of one status that differ from the confirmed one.
    pub state_streak: i32,
    /// `UP`, `DOWN`, `PENDING` or `DEGRADED` after the newest result; null before the first.
    pub state: Option<String>,
    /// A PUSH monitor's token (unique; its URL is `/push/{token}`); null for other kinds.
    pub push_token: Option<String>,
    /// Seconds to the next check while a change is unconfirmed; null: the interval.
    pub retry_interval_seconds: Option<i32>,
    /// The open incident's first result number (`incidents.started_seq`); null when none.
    pub open_incident_seq: Option<i32>,
    /// When the open incident started.
    pub open_incident_at: Option<DateTimeUtc>,
    /// Minutes between reminders while an incident stays open; null: none.
    pub reminder_interval_minutes: Option<i32>,
    /// Tell its channels when it turns DEGRADED and when it is UP again.
    pub notify_degraded: bool,
    /// Whether its channels were last told it is DEGRADED.
    pub degraded_told: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::check_result::Entity")]
    CheckResult,
    #[sea_orm(has_many = "super::incident::Entity")]
    Incident,
}

impl Related<super::check_result::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CheckResult.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
