//! The `maintenance_window_monitors` table: the monitors a window covers (none: all).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "maintenance_window_monitors")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub window_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub monitor_id: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
