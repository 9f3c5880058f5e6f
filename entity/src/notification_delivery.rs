//! The `notification_deliveries` table, the outbox: one message for one channel, written when
//! the transition it tells of is fanned out, sent (and retried) by the delivery job.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub channel_id: i64,
    /// Null for a test message.
    pub incident_id: Option<i64>,
    /// `DOWN`, `UP`, `REMINDER` or `TEST`.
    pub event: String,
    /// The notice as JSON, fixed when written so every attempt sends the same.
    pub payload: String,
    /// `PENDING`, `SENT` or `FAILED` (given up).
    pub state: String,
    pub attempts: i32,
    pub created_at: DateTimeUtc,
    pub next_attempt_at: DateTimeUtc,
    /// A sender holds it until then; past it, another may take it.
    pub claimed_until: Option<DateTimeUtc>,
    pub sent_at: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    /// A reminder's number (1, 2, ...); 0 for anything else.
    pub reminder: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
