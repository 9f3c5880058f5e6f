//! What things are, with no I/O: parsed monitor input, monitors and their check results,
//! check outcomes and events, the status-change rule and slot arithmetic. Every other crate
//! of ours may use it; it uses none of them.

pub mod check;
pub mod input;
pub mod monitor;
pub mod slot;
pub mod status;
pub mod url_password;

pub use check::{CheckEvent, CheckOutcome};
pub use input::{
    parse_id, IntervalSeconds, MonitorName, MonitorPatch, MonitorUrl, NewMonitor, TimeoutSeconds,
};
pub use monitor::{from_epoch_ms, CheckResult, CheckStatus, Monitor, MonitorSchedule};
pub use slot::Slot;
pub use status::{is_status_change, LatestStatus};
