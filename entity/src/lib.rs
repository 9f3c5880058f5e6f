//! SeaORM entities: one module per table. These are storage models only; the API has its own
//! types, so a column can change without changing what clients see.

pub mod check_result;
pub mod incident;
pub mod maintenance_window;
pub mod maintenance_window_monitor;
pub mod monitor;
pub mod monitor_channel;
pub mod notification_attempt;
pub mod notification_channel;
pub mod notification_delivery;

pub mod prelude {
    //! Short names for the entities.
    pub use super::check_result::Entity as CheckResult;
    pub use super::incident::Entity as Incident;
    pub use super::monitor::Entity as Monitor;
}
