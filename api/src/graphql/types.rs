//! GraphQL output types: thin wrappers over the domain types.

use async_graphql::{
    Context, Enum, InputValueError, InputValueResult, Object, Scalar, ScalarType, Value, ID,
};
use chrono::{DateTime, Utc};

use async_graphql::connection::Connection;
use service::MonitorService;

use super::checks::{
    Assertion, AssertionResult, CheckTimings, DnsRecordType, Header, MonitorKind, MonitorState,
    TlsCertificate,
};
use super::paging::{connection, page_complexity, Cursor, MonitorCount, PageArgs, ResultCount};
use crate::error::{ApiError, IntoGraphql};

/// A point in time: RFC 3339 in UTC with `Z`, as REST writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub DateTime<Utc>);

/// A point in time, RFC 3339 in UTC (`2026-12-03T16:19:14.123Z`).
#[Scalar(name = "DateTime")]
impl ScalarType for Timestamp {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => DateTime::parse_from_rfc3339(text)
                .map(|at| Self(at.with_timezone(&Utc)))
                .map_err(|_| {
                    InputValueError::custom("must be an RFC 3339 time such as 2026-12-03T16:19:14Z")
                }),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }
}

/// UP or DOWN.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::CheckStatus")]
pub enum CheckStatus {
    /// The URL answered in time with an accepted status, and every assertion that is not a
    /// warning held.
    Up,
    /// It did not: an error status, a timeout, a refused connection, ...
    Down,
}

/// A monitored URL and its schedule.
pub struct Monitor(pub domain::Monitor);

#[Object]
impl Monitor {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The channels this monitor notifies, besides the default channels.
    async fn notification_channels(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<super::notifications::NotificationChannel>> {
        let service = ctx.data_unchecked::<MonitorService>();
        let channels = service.monitor_channels(self.0.id).await.gql()?;
        Ok(channels
            .into_iter()
            .map(super::notifications::NotificationChannel)
            .collect())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// What is checked; for a PUSH monitor, the path its pushes go to.
    async fn url(&self) -> &str {
        &self.0.url
    }
    /// Seconds a whole check may take.
    async fn timeout_seconds(&self) -> i32 {
        self.0.timeout_seconds
    }
    /// Seconds between two scheduled checks.
    async fn interval_seconds(&self) -> i32 {
        self.0.interval_seconds
    }
    /// Whether the scheduler checks it (false: paused).
    async fn active(&self) -> bool {
        self.0.active
    }
    async fn created_at(&self) -> Timestamp {
        Timestamp(self.0.created_at)
    }
    async fn updated_at(&self) -> Timestamp {
        Timestamp(self.0.updated_at)
    }
    /// When the newest check ran; null until the first.
    async fn last_checked_at(&self) -> Option<Timestamp> {
        self.0.last_checked_at.map(Timestamp)
    }
    /// Status of the newest check; null until the first.
    async fn last_status(&self) -> Option<CheckStatus> {
        self.0.last_status.map(Into::into)
    }
    /// The confirmed state: the thresholds applied, degraded and paused shown.
    async fn state(&self) -> MonitorState {
        self.0.state.into()
    }
    async fn kind(&self) -> MonitorKind {
        self.0.kind.into()
    }
    /// A DNS monitor's record type; null for other kinds.
    async fn dns_record_type(&self) -> Option<DnsRecordType> {
        self.0.check.dns_record_type.map(Into::into)
    }
    /// A DNS monitor's resolver (`ip:port`); null: the system's (or not a DNS monitor).
    async fn dns_resolver(&self) -> Option<&str> {
        self.0.check.dns_resolver.as_deref()
    }
    /// A PUSH monitor's token: pushes go to `/push/{token}` (its `url`). Null for other kinds.
    async fn push_token(&self) -> Option<&str> {
        self.0.push_token.as_deref()
    }
    /// The HTTP method (default GET).
    async fn method(&self) -> &str {
        &self.0.check.method
    }
    /// Request headers; secret values masked.
    async fn headers(&self) -> Vec<Header> {
        self.0
            .check
            .headers
            .iter()
            .map(|h| Header {
                name: h.name.clone(),
                value: h.value.clone(),
            })
            .collect()
    }
    /// The request body, for POST, PUT and PATCH.
    async fn body(&self) -> Option<&str> {
        self.0.check.body.as_deref()
    }
    /// Final statuses counted as UP, as ranges (`"200-299"`) or single codes.
    async fn accepted_status_codes(&self) -> Vec<String> {
        self.0
            .check
            .accepted_status_codes
            .iter()
            .map(ToString::to_string)
            .collect()
    }
    async fn follow_redirects(&self) -> bool {
        self.0.check.follow_redirects
    }
    async fn max_redirects(&self) -> i32 {
        i32::from(self.0.check.max_redirects)
    }
    /// Whether certificate errors are ignored (the certificate is still read).
    async fn ignore_tls(&self) -> bool {
        self.0.check.ignore_tls
    }
    async fn assertions(&self) -> Vec<Assertion> {
        self.0.check.assertions.iter().map(Into::into).collect()
    }
    /// A response slower than this is degraded; null: never.
    async fn degraded_after_ms(&self) -> Option<i32> {
        self.0.check.degraded_after_ms.map(|ms| ms as i32)
    }
    /// Consecutive failed checks before the state turns DOWN.
    async fn failure_threshold(&self) -> i32 {
        self.0.failure_threshold
    }
    /// Consecutive good checks before the state turns UP again.
    async fn success_threshold(&self) -> i32 {
        self.0.success_threshold
    }
    /// Seconds to the next check while a change is unconfirmed (`PENDING`); null: the
    /// interval.
    async fn retry_interval_seconds(&self) -> Option<i32> {
        self.0.retry_interval_seconds
    }
    /// Minutes between reminders while an incident stays open; null: no reminders.
    async fn reminder_interval_minutes(&self) -> Option<i32> {
        self.0.reminder_interval_minutes
    }
    /// Its channels are told when it turns DEGRADED and when it is UP again.
    async fn notify_degraded(&self) -> bool {
        self.0.notify_degraded
    }
    /// This monitor's check history, newest first.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn check_results(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many results (0 to 1000, default 50).")] first: Option<i32>,
        #[graphql(desc = "Return results older than this cursor.")] after: Option<String>,
    ) -> async_graphql::Result<ResultConnection> {
        check_results_page(ctx, self.0.id, PageArgs { first, after }).await
    }
}

/// One performed check.
pub struct CheckResult(pub domain::CheckResult);

#[Object]
impl CheckResult {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn monitor_id(&self) -> ID {
        ID(self.0.monitor_id.to_string())
    }
    async fn status(&self) -> CheckStatus {
        self.0.status.into()
    }
    /// The final HTTP status; null when no response came.
    async fn status_code(&self) -> Option<i32> {
        self.0.status_code.map(i32::from)
    }
    /// Milliseconds from the start of the check to the response (or to the failure).
    async fn response_time_ms(&self) -> i64 {
        self.0.response_time_ms
    }
    /// A short reason for DOWN (or for degraded); null for a plain UP.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// When the check started.
    async fn checked_at(&self) -> Timestamp {
        Timestamp(self.0.checked_at)
    }
    /// UP, but slow or failing a warning assertion.
    async fn degraded(&self) -> bool {
        self.0.degraded
    }
    /// Checked during a maintenance window of its monitor: stored, but it changed no state,
    /// opened no incident and sent nothing.
    async fn in_maintenance(&self) -> bool {
        self.0.in_maintenance
    }
    /// Milliseconds per phase.
    async fn timings(&self) -> CheckTimings {
        let t = self.0.timings;
        CheckTimings {
            dns_ms: t.dns_ms,
            connect_ms: t.connect_ms,
            tls_ms: t.tls_ms,
            first_byte_ms: t.first_byte_ms,
            total_ms: t.total_ms,
        }
    }
    /// The server's certificate, for https checks that got one.
    async fn tls(&self) -> Option<TlsCertificate> {
        self.0.tls.as_ref().map(|c| TlsCertificate {
            subject: c.subject.clone(),
            issuer: c.issuer.clone(),
            not_after: Timestamp(c.not_after),
            days_left: c.days_left,
        })
    }
    /// Each assertion's outcome, in the monitor's order.
    async fn assertion_results(&self) -> Vec<AssertionResult> {
        self.0.assertion_results.iter().map(Into::into).collect()
    }
}

/// A page of monitors.
pub type MonitorConnection = Connection<Cursor, Monitor, MonitorCount>;
/// A page of check results.
pub type ResultConnection = Connection<Cursor, CheckResult, ResultCount>;

/// A page of monitors, oldest first.
pub async fn monitors_page(
    ctx: &Context<'_>,
    args: PageArgs,
    active: Option<bool>,
) -> async_graphql::Result<MonitorConnection> {
    let (first, after) = args.parse().gql()?;
    let after = match after {
        None => None,
        Some(Cursor::Monitor(id)) => Some(id),
        Some(_) => return Err(ApiError::invalid("after", "is not a cursor of monitors")).gql(),
    };
    let service = ctx.data_unchecked::<MonitorService>();
    let page = service.list_page(after, first, active).await.gql()?;
    Ok(connection(
        page,
        MonitorCount { active },
        |m| Cursor::Monitor(m.id),
        Monitor,
    ))
}

/// A page of one monitor's check results, newest first; `NOT_FOUND` when it does not exist.
pub async fn check_results_page(
    ctx: &Context<'_>,
    monitor_id: i64,
    args: PageArgs,
) -> async_graphql::Result<ResultConnection> {
    let (first, after) = args.parse().gql()?;
    let after = match after {
        None => None,
        Some(Cursor::Result {
            monitor_id: of,
            seq,
        }) if of == monitor_id => Some(seq),
        Some(_) => {
            return Err(ApiError::invalid(
                "after",
                "is not a cursor of this monitor's check results",
            ))
            .gql()
        }
    };
    let service = ctx.data_unchecked::<MonitorService>();
    let page = service.history(monitor_id, after, first).await.gql()?;
    Ok(connection(
        page,
        ResultCount { monitor_id },
        |r| Cursor::Result {
            monitor_id,
            seq: i64::from(r.seq),
        },
        CheckResult,
    ))
}
