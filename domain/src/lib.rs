//! What things are, with no I/O: parsed monitor input, monitors and their check results,
//! check specs and their assertions, incidents, notifications, maintenance windows, pushes, the target policy, check outcomes and events, the
//! status-change rule, flap control and slot arithmetic. Every other crate of ours may use
//! it; it uses none of them.

pub mod check;
pub mod evaluate;
pub mod incident;
pub mod input;
pub mod maintenance;
pub mod monitor;
pub mod notification;
pub mod policy;
pub mod push;
pub mod slot;
pub mod spec;
pub mod state;
pub mod status;
pub mod url_password;

pub use check::{CheckEvent, CheckOutcome, StatusChange, Timings, TlsInfo};
pub use evaluate::AssertionResult;
pub use incident::{Incident, IncidentChange};
pub use input::{
    parse_id, IntervalSeconds, MonitorName, MonitorPatch, MonitorUrl, NewMonitor, ReminderMinutes,
    TimeoutSeconds,
};
pub use monitor::{from_epoch_ms, CheckResult, CheckStatus, Monitor, MonitorSchedule};
pub use policy::{Blocked, TargetPolicy};
pub use slot::Slot;
pub use spec::{Assertion, CheckSpec, Header, MonitorKind, SpecInput};
pub use state::{Confirmation, MonitorState, Threshold};
pub use status::{is_status_change, LatestStatus};
