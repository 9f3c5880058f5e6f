//! Every operation of the service, called alike by REST, GraphQL and the WebSockets: over the
//! store for reads and writes, the worker's engine for manual checks and live events. It
//! takes parsed input and returns domain types and its own [`Error`], never a transport's
//! types or a database's errors.

mod error;
mod incidents;
mod maintenance;
mod monitors;
mod notifications;

pub use domain::{CheckEvent, CheckResult, CheckStatus, Incident, Monitor};
pub use error::Error;
pub use maintenance::{NewWindow, WindowPatch};
pub use monitors::{now, MonitorService};
pub use notifications::{ChannelPatch, NewChannel, MAX_MONITOR_CHANNELS};
pub use store::{IncidentFilter, Page};
