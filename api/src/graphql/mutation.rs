//! `Mutation`: create, change and delete monitors, and run a check now.

use async_graphql::{Context, InputObject, MaybeUndefined, Object, ID};
use domain::{
    Header, IntervalSeconds, MonitorName, MonitorPatch, MonitorUrl, NewMonitor, ReminderMinutes,
    SpecInput, Threshold, TimeoutSeconds,
};
use service::MonitorService;

use super::{
    checks::{AssertionInput, DnsRecordType, HeaderInput, MonitorKind},
    parse_gql_id,
    types::{CheckResult, Monitor},
};
use crate::error::{ApiError, IntoGraphql};

/// A monitor to create.
#[derive(InputObject)]
pub struct CreateMonitorInput {
    /// 1 to 200 characters.
    name: String,
    /// An absolute http or https URL; for a TCP monitor, tcp://host:port or tls://host:port;
    /// none for a PUSH monitor (its push URL is made for it).
    url: Option<String>,
    /// Seconds a whole check may take (1 to 300).
    timeout_seconds: i64,
    /// Seconds between two scheduled checks (1 to 604800).
    interval_seconds: i64,
    /// Whether the scheduler checks it; default true.
    #[graphql(default = true)]
    active: bool,
    /// Default: the URL's (HTTP for http and https, TCP for tcp and tls); PUSH takes no URL.
    kind: Option<MonitorKind>,
    /// GET (default), HEAD, POST, PUT, PATCH, DELETE or OPTIONS.
    method: Option<String>,
    /// Replaces the request headers (at most 32).
    headers: Option<Vec<HeaderInput>>,
    /// The request body (POST, PUT and PATCH only); null clears it.
    body: MaybeUndefined<String>,
    /// Final statuses counted as UP: ranges such as "200-299" or codes such as "418".
    accepted_status_codes: Option<Vec<String>>,
    follow_redirects: Option<bool>,
    /// 0 to 20 (default 10).
    max_redirects: Option<i64>,
    ignore_tls: Option<bool>,
    /// Replaces the assertions (at most 20).
    assertions: Option<Vec<AssertionInput>>,
    /// A response slower than this (1 to 300000 ms) is degraded; null clears it.
    degraded_after_ms: MaybeUndefined<i64>,
    /// Consecutive failures before DOWN (1 to 100, default 1).
    failure_threshold: Option<i64>,
    /// Consecutive successes before UP again (1 to 100, default 1).
    success_threshold: Option<i64>,
    /// Seconds to the next check while a change is unconfirmed (1 to 604800); null clears it.
    retry_interval_seconds: MaybeUndefined<i64>,
    /// A DNS monitor's record type (default A).
    dns_record_type: Option<DnsRecordType>,
    /// A DNS monitor's resolver, an IP address with an optional port (default 53); null:
    /// the system's.
    dns_resolver: MaybeUndefined<String>,
    /// Minutes between reminders while an incident stays open (1 to 10080); null: none.
    reminder_interval_minutes: MaybeUndefined<i64>,
    /// The channels it notifies besides the default ones (at most 50); replaces them.
    notification_channel_ids: Option<Vec<ID>>,
    /// Tell its channels when it turns DEGRADED (slow, or failing a warning assertion such as
    /// a certificate about to expire) and when it is UP again (default false).
    notify_degraded: Option<bool>,
}

/// A partial change: omitted fields keep their value.
#[derive(InputObject)]
pub struct UpdateMonitorInput {
    name: Option<String>,
    url: Option<String>,
    timeout_seconds: Option<i64>,
    interval_seconds: Option<i64>,
    active: Option<bool>,
    /// A new kind starts from its defaults; send the new kind's url with it.
    kind: Option<MonitorKind>,
    /// GET (default), HEAD, POST, PUT, PATCH, DELETE or OPTIONS.
    method: Option<String>,
    /// Replaces the request headers (at most 32).
    headers: Option<Vec<HeaderInput>>,
    /// The request body (POST, PUT and PATCH only); null clears it.
    body: MaybeUndefined<String>,
    /// Final statuses counted as UP: ranges such as "200-299" or codes such as "418".
    accepted_status_codes: Option<Vec<String>>,
    follow_redirects: Option<bool>,
    /// 0 to 20 (default 10).
    max_redirects: Option<i64>,
    ignore_tls: Option<bool>,
    /// Replaces the assertions (at most 20).
    assertions: Option<Vec<AssertionInput>>,
    /// A response slower than this (1 to 300000 ms) is degraded; null clears it.
    degraded_after_ms: MaybeUndefined<i64>,
    /// Consecutive failures before DOWN (1 to 100, default 1).
    failure_threshold: Option<i64>,
    /// Consecutive successes before UP again (1 to 100, default 1).
    success_threshold: Option<i64>,
    /// Seconds to the next check while a change is unconfirmed (1 to 604800); null clears it.
    retry_interval_seconds: MaybeUndefined<i64>,
    /// A DNS monitor's record type (default A).
    dns_record_type: Option<DnsRecordType>,
    /// A DNS monitor's resolver, an IP address with an optional port (default 53); null:
    /// the system's.
    dns_resolver: MaybeUndefined<String>,
    /// Minutes between reminders while an incident stays open (1 to 10080); null: none.
    reminder_interval_minutes: MaybeUndefined<i64>,
    /// The channels it notifies besides the default ones (at most 50); replaces them.
    notification_channel_ids: Option<Vec<ID>>,
    /// Tell its channels when it turns DEGRADED (slow, or failing a warning assertion such as
    /// a certificate about to expire) and when it is UP again (default false).
    notify_degraded: Option<bool>,
}

fn field<R, T>(
    name: &'static str,
    raw: R,
    parse: impl FnOnce(R) -> Result<T, String>,
) -> Result<T, ApiError> {
    parse(raw).map_err(|problem| ApiError::invalid(name, problem))
}

impl CreateMonitorInput {
    fn parse(self) -> Result<NewMonitor, ApiError> {
        Ok(NewMonitor {
            name: field("name", &*self.name, MonitorName::parse)?,
            url: self
                .url
                .map(|v| field("url", &*v, MonitorUrl::parse))
                .transpose()?,
            timeout: field(
                "timeoutSeconds",
                self.timeout_seconds,
                TimeoutSeconds::parse,
            )?,
            interval: field(
                "intervalSeconds",
                self.interval_seconds,
                IntervalSeconds::parse,
            )?,
            active: self.active,
            spec: spec_input(
                self.kind,
                self.method,
                self.headers,
                self.body,
                self.accepted_status_codes,
                self.follow_redirects,
                self.max_redirects,
                self.ignore_tls,
                self.assertions,
                self.degraded_after_ms,
                self.dns_record_type,
                self.dns_resolver,
            ),
            failure_threshold: threshold("failureThreshold", self.failure_threshold)?,
            success_threshold: threshold("successThreshold", self.success_threshold)?,
            retry_interval: retry_interval(self.retry_interval_seconds)?,
            reminder_interval: reminder_interval(self.reminder_interval_minutes)?,
            channel_ids: channel_ids(self.notification_channel_ids)?,
            notify_degraded: self.notify_degraded,
        })
    }
}

/// The options sent, for the service to check and apply.
#[allow(clippy::too_many_arguments)]
fn spec_input(
    kind: Option<MonitorKind>,
    method: Option<String>,
    headers: Option<Vec<HeaderInput>>,
    body: MaybeUndefined<String>,
    accepted_status_codes: Option<Vec<String>>,
    follow_redirects: Option<bool>,
    max_redirects: Option<i64>,
    ignore_tls: Option<bool>,
    assertions: Option<Vec<AssertionInput>>,
    degraded_after_ms: MaybeUndefined<i64>,
    dns_record_type: Option<DnsRecordType>,
    dns_resolver: MaybeUndefined<String>,
) -> SpecInput {
    SpecInput {
        kind: kind.map(Into::into),
        method,
        headers: headers.map(|list| {
            list.into_iter()
                .map(|h| Header {
                    name: h.name,
                    value: h.value,
                })
                .collect()
        }),
        body: maybe(body),
        accepted_status_codes,
        follow_redirects,
        max_redirects,
        ignore_tls,
        assertions: assertions.map(|list| list.into_iter().map(Into::into).collect()),
        degraded_after_ms: maybe(degraded_after_ms),
        dns_record_type: dns_record_type
            .map(|t| domain::spec::DnsRecordType::from(t).as_str().to_owned()),
        dns_resolver: maybe(dns_resolver),
    }
}

/// Undefined: keep the value; null: clear it.
fn maybe<T>(value: MaybeUndefined<T>) -> Option<Option<T>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

fn reminder_interval(
    raw: MaybeUndefined<i64>,
) -> Result<Option<Option<ReminderMinutes>>, ApiError> {
    maybe(raw)
        .map(|v| {
            v.map(|n| field("reminderIntervalMinutes", n, ReminderMinutes::parse))
                .transpose()
        })
        .transpose()
}

fn channel_ids(raw: Option<Vec<ID>>) -> Result<Option<Vec<i64>>, ApiError> {
    raw.map(|ids| {
        ids.iter()
            .map(|id| field("notificationChannelIds", id.as_str(), domain::parse_id))
            .collect()
    })
    .transpose()
}

fn retry_interval(raw: MaybeUndefined<i64>) -> Result<Option<Option<IntervalSeconds>>, ApiError> {
    maybe(raw)
        .map(|v| {
            v.map(|n| field("retryIntervalSeconds", n, IntervalSeconds::parse))
                .transpose()
        })
        .transpose()
}

fn threshold(name: &'static str, raw: Option<i64>) -> Result<Option<Threshold>, ApiError> {
    raw.map(|n| field(name, n, Threshold::parse)).transpose()
}

impl UpdateMonitorInput {
    fn parse(self) -> Result<MonitorPatch, ApiError> {
        Ok(MonitorPatch {
            name: self
                .name
                .map(|v| field("name", &*v, MonitorName::parse))
                .transpose()?,
            url: self
                .url
                .map(|v| field("url", &*v, MonitorUrl::parse))
                .transpose()?,
            timeout: self
                .timeout_seconds
                .map(|v| field("timeoutSeconds", v, TimeoutSeconds::parse))
                .transpose()?,
            interval: self
                .interval_seconds
                .map(|v| field("intervalSeconds", v, IntervalSeconds::parse))
                .transpose()?,
            active: self.active,
            spec: spec_input(
                self.kind,
                self.method,
                self.headers,
                self.body,
                self.accepted_status_codes,
                self.follow_redirects,
                self.max_redirects,
                self.ignore_tls,
                self.assertions,
                self.degraded_after_ms,
                self.dns_record_type,
                self.dns_resolver,
            ),
            failure_threshold: threshold("failureThreshold", self.failure_threshold)?,
            success_threshold: threshold("successThreshold", self.success_threshold)?,
            retry_interval: retry_interval(self.retry_interval_seconds)?,
            reminder_interval: reminder_interval(self.reminder_interval_minutes)?,
            channel_ids: channel_ids(self.notification_channel_ids)?,
            notify_degraded: self.notify_degraded,
        })
    }
}

pub struct Mutation;

#[Object]
impl Mutation {
    /// Creates a monitor; an active one is checked at once and then every interval.
    async fn create_monitor(
        &self,
        ctx: &Context<'_>,
        input: CreateMonitorInput,
    ) -> async_graphql::Result<Monitor> {
        let new = input.parse().gql()?;
        let service = ctx.data_unchecked::<MonitorService>();
        service.create(new).await.map(Monitor).gql()
    }

    /// Changes the given fields of a monitor.
    async fn update_monitor(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateMonitorInput,
    ) -> async_graphql::Result<Monitor> {
        let id = parse_gql_id("id", &id)?;
        let patch = input.parse().gql()?;
        let service = ctx.data_unchecked::<MonitorService>();
        service.update(id, patch).await.map(Monitor).gql()
    }

    /// Checks a monitor now; the result is stored and published like a scheduled one.
    async fn run_check(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<CheckResult> {
        let id = parse_gql_id("id", &id)?;
        let service = ctx.data_unchecked::<MonitorService>();
        service.run_check(id).await.map(CheckResult).gql()
    }

    /// Deletes a monitor and its history; returns the deleted id.
    async fn delete_monitor(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let id_num = parse_gql_id("id", &id)?;
        let service = ctx.data_unchecked::<MonitorService>();
        service.delete(id_num).await.gql()?;
        Ok(ID(id_num.to_string()))
    }

    /// Acknowledges an incident, with an optional note (at most 2,000 characters); a later
    /// acknowledgement replaces the note.
    async fn acknowledge_incident(
        &self,
        ctx: &Context<'_>,
        id: ID,
        note: Option<String>,
    ) -> async_graphql::Result<super::incidents::Incident> {
        let id = parse_gql_id("id", &id)?;
        let service = ctx.data_unchecked::<MonitorService>();
        service
            .acknowledge_incident(id, note.as_deref())
            .await
            .map(super::incidents::Incident)
            .gql()
    }

    /// Creates a notification channel (see `CreateNotificationChannelInput` for what each kind
    /// needs).
    async fn create_notification_channel(
        &self,
        ctx: &Context<'_>,
        input: super::notifications::CreateNotificationChannelInput,
    ) -> async_graphql::Result<super::notifications::NotificationChannel> {
        let service = ctx.data_unchecked::<MonitorService>();
        service
            .create_channel(input.into())
            .await
            .map(super::notifications::NotificationChannel)
            .gql()
    }

    /// Changes a notification channel; what is omitted, or sent back masked, stays.
    async fn update_notification_channel(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: super::notifications::UpdateNotificationChannelInput,
    ) -> async_graphql::Result<super::notifications::NotificationChannel> {
        let id = parse_gql_id("id", &id)?;
        let service = ctx.data_unchecked::<MonitorService>();
        service
            .update_channel(id, input.into())
            .await
            .map(super::notifications::NotificationChannel)
            .gql()
    }

    /// Deletes a notification channel and its deliveries; returns the deleted id.
    async fn delete_notification_channel(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<ID> {
        let id_num = parse_gql_id("id", &id)?;
        let service = ctx.data_unchecked::<MonitorService>();
        service.delete_channel(id_num).await.gql()?;
        Ok(ID(id_num.to_string()))
    }

    /// Sends a test message on a channel now (once, no retries); the delivery with its
    /// attempt, whose error says what the endpoint answered when it failed.
    async fn test_notification_channel(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<super::notifications::NotificationDelivery> {
        let id = parse_gql_id("id", &id)?;
        let service = ctx.data_unchecked::<MonitorService>();
        service
            .test_channel(id)
            .await
            .map(super::notifications::NotificationDelivery)
            .gql()
    }

    /// Creates a maintenance window; it takes effect at once in this process and within
    /// 2 seconds in others.
    async fn create_maintenance_window(
        &self,
        ctx: &Context<'_>,
        input: super::maintenance::CreateMaintenanceWindowInput,
    ) -> async_graphql::Result<super::maintenance::MaintenanceWindow> {
        let new = input.parse()?;
        let service = ctx.data_unchecked::<MonitorService>();
        service
            .create_window(new)
            .await
            .map(super::maintenance::MaintenanceWindow)
            .gql()
    }

    /// Changes a maintenance window; what is omitted stays.
    async fn update_maintenance_window(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: super::maintenance::UpdateMaintenanceWindowInput,
    ) -> async_graphql::Result<super::maintenance::MaintenanceWindow> {
        let id = parse_gql_id("id", &id)?;
        let patch = input.parse()?;
        let service = ctx.data_unchecked::<MonitorService>();
        service
            .update_window(id, patch)
            .await
            .map(super::maintenance::MaintenanceWindow)
            .gql()
    }

    /// Ends the window's occurrence in effect now (a window not in effect is refused:
    /// delete it to cancel it).
    async fn end_maintenance_window(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<super::maintenance::MaintenanceWindow> {
        let id = parse_gql_id("id", &id)?;
        let service = ctx.data_unchecked::<MonitorService>();
        service
            .end_window(id)
            .await
            .map(super::maintenance::MaintenanceWindow)
            .gql()
    }

    /// Deletes a maintenance window; returns the deleted id.
    async fn delete_maintenance_window(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<ID> {
        let id_num = parse_gql_id("id", &id)?;
        let service = ctx.data_unchecked::<MonitorService>();
        service.delete_window(id_num).await.gql()?;
        Ok(ID(id_num.to_string()))
    }

    /// Sets the channels a monitor notifies (besides the default channels); at most 50.
    async fn set_monitor_notification_channels(
        &self,
        ctx: &Context<'_>,
        monitor_id: ID,
        channel_ids: Vec<ID>,
    ) -> async_graphql::Result<Vec<super::notifications::NotificationChannel>> {
        let monitor_id = parse_gql_id("monitorId", &monitor_id)?;
        let ids = channel_ids
            .iter()
            .map(|id| parse_gql_id("channelIds", id))
            .collect::<async_graphql::Result<Vec<i64>>>()?;
        let service = ctx.data_unchecked::<MonitorService>();
        let channels = service.set_monitor_channels(monitor_id, ids).await.gql()?;
        Ok(channels
            .into_iter()
            .map(super::notifications::NotificationChannel)
            .collect())
    }
}
