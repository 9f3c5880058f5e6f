//! Notification channels and deliveries on GraphQL: the types, and the query and mutation
//! pieces that `Query`, `Mutation` and `Monitor` delegate to.

use async_graphql::{
    connection::{Connection, EmptyFields},
    Context, Enum, InputObject, Object, ID,
};
use domain::notification::{self, SettingsInput};
use service::{ChannelPatch, MonitorService, NewChannel};

use super::{
    paging::{connection, Cursor, PageArgs},
    parse_gql_id,
    types::Timestamp,
};
use crate::error::{ApiError, IntoGraphql};

/// Where a channel sends.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::notification::ChannelKind")]
pub enum NotificationChannelKind {
    /// Any HTTP endpoint: JSON, signed with `X-MM-Signature` (HMAC-SHA256) and `X-MM-Timestamp`.
    Webhook,
    Slack,
    Mattermost,
    Discord,
    /// A Microsoft Teams workflow webhook (an Adaptive Card).
    Teams,
    Telegram,
    Ntfy,
    Gotify,
    /// PagerDuty Events API v2: trigger and resolve keyed by the incident.
    Pagerduty,
    /// Email over SMTP (`smtpHost`, `smtpPort`, `smtpTls`), a plain-text and an HTML part.
    Email,
}

/// What a notification tells.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::notification::NoticeEvent")]
pub enum NotificationEvent {
    /// An incident opened.
    Down,
    /// An incident resolved (the message carries the downtime).
    Up,
    /// Still down: a reminder while the incident stays open.
    Reminder,
    /// Up, but slow or failing a warning assertion.
    Degraded,
    /// No longer degraded.
    Recovered,
    /// A test message.
    Test,
}

/// Where a delivery stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::notification::DeliveryState")]
pub enum DeliveryState {
    /// Not sent yet, or failed and to be tried again.
    Pending,
    Sent,
    /// Given up after 24 hours of failures (a test message: after its one try).
    Failed,
}

/// A notification channel; secrets read back as `***` and their last 4 characters, an
/// incoming-webhook URL without its path. Sending a masked value back keeps the stored one.
pub struct NotificationChannel(pub notification::Channel);

#[Object]
impl NotificationChannel {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn kind(&self) -> NotificationChannelKind {
        self.0.kind.into()
    }
    /// Notified for every monitor, besides the channels a monitor names.
    async fn is_default(&self) -> bool {
        self.0.is_default
    }
    /// The endpoint (Slack/Mattermost/Discord/Teams webhook URL, Telegram API base, ntfy or
    /// Gotify server, PagerDuty events URL, or the webhook's URL).
    async fn url(&self) -> Option<&str> {
        Some(self.0.settings.url.as_str()).filter(|u| !u.is_empty())
    }
    /// The webhook's signing secret, masked.
    async fn secret(&self) -> Option<&str> {
        self.0.settings.secret.as_deref()
    }
    /// Telegram's bot token, Gotify's app token or ntfy's access token, masked.
    async fn token(&self) -> Option<&str> {
        self.0.settings.token.as_deref()
    }
    async fn chat_id(&self) -> Option<&str> {
        self.0.settings.chat_id.as_deref()
    }
    async fn topic(&self) -> Option<&str> {
        self.0.settings.topic.as_deref()
    }
    /// PagerDuty's routing key, masked.
    async fn routing_key(&self) -> Option<&str> {
        self.0.settings.routing_key.as_deref()
    }
    /// Email: the sender.
    async fn from(&self) -> Option<&str> {
        self.0.settings.from.as_deref()
    }
    /// Email: the recipients.
    async fn to(&self) -> &[String] {
        &self.0.settings.to
    }
    /// Email: the SMTP server.
    async fn smtp_host(&self) -> Option<&str> {
        self.0.settings.smtp_host.as_deref()
    }
    /// Email: the SMTP port (the default for `smtpTls` when none was given).
    async fn smtp_port(&self) -> Option<i32> {
        self.0
            .settings
            .smtp_host
            .as_ref()
            .map(|_| i32::from(self.0.settings.smtp_port()))
    }
    async fn smtp_tls(&self) -> Option<SmtpTls> {
        self.0
            .settings
            .smtp_host
            .as_ref()
            .map(|_| self.0.settings.smtp_tls.unwrap_or_default().into())
    }
    async fn smtp_username(&self) -> Option<&str> {
        self.0.settings.smtp_username.as_deref()
    }
    /// Email: the SMTP password, masked.
    async fn smtp_password(&self) -> Option<&str> {
        self.0.settings.smtp_password.as_deref()
    }
    async fn created_at(&self) -> Timestamp {
        Timestamp(self.0.created_at)
    }
    async fn updated_at(&self) -> Timestamp {
        Timestamp(self.0.updated_at)
    }
}

/// A new channel. What each kind needs: WEBHOOK `url` and `secret` (16 characters or more);
/// SLACK, MATTERMOST, DISCORD, TEAMS `url`; TELEGRAM `token` and `chatId` (`url` defaults to
/// https://api.telegram.org); NTFY `topic` (`url` defaults to https://ntfy.sh, `token`
/// optional); GOTIFY `url` and `token`; PAGERDUTY `routingKey` (`url` defaults to the Events
/// API v2); EMAIL `smtpHost`, `from` and `to` (`smtpTls` default STARTTLS, `smtpPort` by
/// default 25, 587 or 465 for NONE, STARTTLS or TLS, `smtpUsername` and `smtpPassword` when
/// the server wants a login). A setting the kind does not take is refused.
#[derive(InputObject)]
pub struct CreateNotificationChannelInput {
    pub name: String,
    pub kind: NotificationChannelKind,
    #[graphql(default)]
    pub is_default: bool,
    #[graphql(flatten)]
    pub settings: ChannelSettingsInput,
}

/// A change to a channel: what is omitted stays; the kind cannot change.
#[derive(InputObject)]
pub struct UpdateNotificationChannelInput {
    pub name: Option<String>,
    pub is_default: Option<bool>,
    #[graphql(flatten)]
    pub settings: ChannelSettingsInput,
}

/// A channel's settings, as fields of the input and the patch.
#[derive(InputObject)]
pub struct ChannelSettingsInput {
    pub url: Option<String>,
    pub secret: Option<String>,
    pub token: Option<String>,
    pub chat_id: Option<String>,
    pub topic: Option<String>,
    pub routing_key: Option<String>,
    pub from: Option<String>,
    /// Email: the recipients (at most 20); replaces them.
    pub to: Option<Vec<String>>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i32>,
    pub smtp_tls: Option<SmtpTls>,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
}

/// How an email channel secures its SMTP connection.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::notification::SmtpTls")]
pub enum SmtpTls {
    /// In the clear (a relay on the same host or network).
    None,
    /// Upgraded with STARTTLS, which must succeed.
    Starttls,
    /// TLS from the first byte.
    Tls,
}

/// One message for one channel, and every try at sending it.
pub struct NotificationDelivery(pub notification::Delivery);

#[Object]
impl NotificationDelivery {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn channel_id(&self) -> ID {
        ID(self.0.channel_id.to_string())
    }
    /// The incident it tells of; null for a test message.
    async fn incident_id(&self) -> Option<ID> {
        self.0.incident_id.map(|id| ID(id.to_string()))
    }
    async fn event(&self) -> NotificationEvent {
        self.0.event.into()
    }
    async fn state(&self) -> DeliveryState {
        self.0.state.into()
    }
    async fn created_at(&self) -> Timestamp {
        Timestamp(self.0.created_at)
    }
    /// When it is tried next (while pending).
    async fn next_attempt_at(&self) -> Timestamp {
        Timestamp(self.0.next_attempt_at)
    }
    async fn sent_at(&self) -> Option<Timestamp> {
        self.0.sent_at.map(Timestamp)
    }
    /// The last failure's reason.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// Every try, oldest first.
    async fn attempts(&self) -> Vec<NotificationAttempt> {
        self.0
            .attempts
            .iter()
            .cloned()
            .map(NotificationAttempt)
            .collect()
    }
}

/// One try at sending.
pub struct NotificationAttempt(notification::Attempt);

#[Object]
impl NotificationAttempt {
    async fn attempted_at(&self) -> Timestamp {
        Timestamp(self.0.attempted_at)
    }
    async fn duration_ms(&self) -> i32 {
        self.0.duration_ms
    }
    /// The endpoint answered 2xx in time.
    async fn ok(&self) -> bool {
        self.0.ok
    }
    /// The endpoint's HTTP status, when it answered.
    async fn response_code(&self) -> Option<i32> {
        self.0.response_code.map(i32::from)
    }
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
}

/// A page of deliveries, newest first.
pub type DeliveryConnection = Connection<Cursor, NotificationDelivery, EmptyFields>;

pub async fn deliveries_page(
    ctx: &Context<'_>,
    channel_id: Option<ID>,
    page: PageArgs,
) -> async_graphql::Result<DeliveryConnection> {
    let channel_id = channel_id
        .map(|id| parse_gql_id("channelId", &id))
        .transpose()?;
    let (first, after) = page.parse().gql()?;
    let before = match after {
        None => None,
        Some(Cursor::Delivery(id)) => Some(id),
        Some(_) => {
            return Err(ApiError::invalid("after", "is not a cursor of deliveries")).gql();
        }
    };
    let service = ctx.data_unchecked::<MonitorService>();
    let page = service.deliveries(channel_id, before, first).await.gql()?;
    Ok(connection(
        page,
        EmptyFields,
        |d| Cursor::Delivery(d.id),
        NotificationDelivery,
    ))
}

impl From<ChannelSettingsInput> for SettingsInput {
    fn from(input: ChannelSettingsInput) -> Self {
        Self {
            url: input.url,
            secret: input.secret,
            token: input.token,
            chat_id: input.chat_id,
            topic: input.topic,
            routing_key: input.routing_key,
            from: input.from,
            to: input.to,
            smtp_host: input.smtp_host,
            smtp_port: input.smtp_port.map(i64::from),
            smtp_tls: input.smtp_tls.map(Into::into),
            smtp_username: input.smtp_username,
            smtp_password: input.smtp_password,
        }
    }
}

impl From<CreateNotificationChannelInput> for NewChannel {
    fn from(input: CreateNotificationChannelInput) -> Self {
        Self {
            name: input.name,
            kind: input.kind.into(),
            is_default: input.is_default,
            settings: input.settings.into(),
        }
    }
}

impl From<UpdateNotificationChannelInput> for ChannelPatch {
    fn from(input: UpdateNotificationChannelInput) -> Self {
        Self {
            name: input.name,
            is_default: input.is_default,
            settings: input.settings.into(),
        }
    }
}
