//! The worker: it checks URLs, schedules checks, stores their results and publishes them.
//! It knows the database (through `entity`) but never the API.

pub mod model;

pub use model::{CheckRecord, CheckStatus};

mod notify;
pub use notify::ScheduleNotifier;
