//! Notification channels and the notices they carry: each kind's settings (parsed, checked
//! and masked for reading), and a notice's text. How each kind's request is built and sent is
//! the worker's (`worker::channels`).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use url::Url;

/// Longest channel name, in characters.
pub const MAX_CHANNEL_NAME: usize = 200;
/// Longest secret, token or key.
const MAX_SECRET: usize = 500;

/// Where a channel sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChannelKind {
    Webhook,
    Slack,
    Mattermost,
    Discord,
    Teams,
    Telegram,
    Ntfy,
    Gotify,
    Pagerduty,
    Email,
}

impl ChannelKind {
    pub const ALL: [Self; 10] = [
        Self::Webhook,
        Self::Slack,
        Self::Mattermost,
        Self::Discord,
        Self::Teams,
        Self::Telegram,
        Self::Ntfy,
        Self::Gotify,
        Self::Pagerduty,
        Self::Email,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "WEBHOOK",
            Self::Slack => "SLACK",
            Self::Mattermost => "MATTERMOST",
            Self::Discord => "DISCORD",
            Self::Teams => "TEAMS",
            Self::Telegram => "TELEGRAM",
            Self::Ntfy => "NTFY",
            Self::Gotify => "GOTIFY",
            Self::Pagerduty => "PAGERDUTY",
            Self::Email => "EMAIL",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(text))
    }

    /// The endpoint when none is given; `None`: the URL is required.
    fn default_url(self) -> Option<&'static str> {
        match self {
            Self::Telegram => Some("https://api.telegram.org"),
            Self::Ntfy => Some("https://ntfy.sh"),
            Self::Pagerduty => Some("https://events.pagerduty.com/v2/enqueue"),
            _ => None,
        }
    }

    /// Kinds whose URL is itself the secret (an incoming-webhook URL): read back masked.
    fn url_is_secret(self) -> bool {
        matches!(
            self,
            Self::Slack | Self::Mattermost | Self::Discord | Self::Teams
        )
    }

    /// Whether several notices may go as one message (PagerDuty keys each by its incident).
    pub fn groups(self) -> bool {
        self != Self::Pagerduty
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an email channel secures its SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum SmtpTls {
    /// In the clear (a relay on the same host or network).
    None,
    /// Upgraded with STARTTLS, which must succeed (port 587 by default).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465 by default).
    Tls,
}

impl SmtpTls {
    pub const ALL: [Self; 3] = [Self::None, Self::Starttls, Self::Tls];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Starttls => "STARTTLS",
            Self::Tls => "TLS",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(text.trim()))
    }

    pub fn default_port(self) -> u16 {
        match self {
            Self::None => 25,
            Self::Starttls => 587,
            Self::Tls => 465,
        }
    }
}

/// A channel's settings as stored: the endpoint and what the kind needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ChannelSettings {
    /// The HTTP endpoint; empty for EMAIL (its server is `smtp_host` and `smtp_port`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// The webhook's HMAC key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Telegram's bot token, Gotify's application token, ntfy's access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Telegram's chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    /// ntfy's topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// PagerDuty's integration (routing) key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
    /// Email: the sender's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Email: the recipients (stored by earlier versions as one comma-separated string).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub to: Vec<String>,
    /// Email: the SMTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_host: Option<String>,
    /// Email: its port (default by `smtp_tls`: 25, 587 or 465).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_tls: Option<SmtpTls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_password: Option<String>,
}

/// A list of addresses, or the comma-separated string earlier versions stored.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(text) => text
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(list) => list,
    })
}

/// Settings as a client sent them: each `None` when not sent (on an update: keep the stored).
#[derive(Debug, Clone, Default)]
pub struct SettingsInput {
    pub url: Option<String>,
    pub secret: Option<String>,
    pub token: Option<String>,
    pub chat_id: Option<String>,
    pub topic: Option<String>,
    pub routing_key: Option<String>,
    pub from: Option<String>,
    pub to: Option<Vec<String>>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i64>,
    pub smtp_tls: Option<SmtpTls>,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
}

impl SettingsInput {
    /// The first email setting given, for a kind that is not EMAIL.
    fn email_field(&self) -> Option<&'static str> {
        [
            ("to", self.to.is_some()),
            ("smtp_host", self.smtp_host.is_some()),
            ("smtp_port", self.smtp_port.is_some()),
            ("smtp_tls", self.smtp_tls.is_some()),
            ("smtp_username", self.smtp_username.is_some()),
            ("smtp_password", self.smtp_password.is_some()),
        ]
        .into_iter()
        .find_map(|(field, given)| given.then_some(field))
    }
}

/// A refused setting: the field (its snake_case name) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub field: &'static str,
    pub problem: String,
}

fn refuse(field: &'static str, problem: impl Into<String>) -> SettingError {
    SettingError {
        field,
        problem: problem.into(),
    }
}

/// A masked value sent back: keep the stored one.
pub fn is_masked(value: &str) -> bool {
    value.starts_with("***")
}

impl ChannelSettings {
    /// `input` over `stored` (none for a new channel), checked for `kind`: what the kind
    /// needs is there, nothing it does not take is, the URL is http(s) with a host.
    pub fn parse(
        kind: ChannelKind,
        input: SettingsInput,
        stored: Option<&ChannelSettings>,
    ) -> Result<Self, SettingError> {
        let keep = |given: Option<String>, old: Option<&String>| match given {
            Some(v) if is_masked(&v) => old.cloned(),
            Some(v) if v.trim().is_empty() => None,
            Some(v) => Some(v.trim().to_owned()),
            None => old.cloned(),
        };
        if kind == ChannelKind::Email {
            return Self::parse_email(input, stored);
        }
        if let Some(field) = input.email_field() {
            return Err(refuse(
                field,
                format!("is not a setting of {kind} channels"),
            ));
        }
        let url = match input.url {
            Some(v) if is_masked(&v) || v.contains("/***") => stored.map(|s| s.url.clone()),
            // A password read back masked: the stored one, if the rest is the same.
            Some(v) if crate::url_password::is_masked(&v) => {
                let restored = stored.and_then(|s| crate::url_password::restore(v.trim(), &s.url));
                Some(restored.ok_or_else(|| {
                    refuse(
                        "url",
                        "holds the read mask *** as its password, and no stored password matches",
                    )
                })?)
            }
            Some(v) if v.trim().is_empty() => None,
            Some(v) => Some(v.trim().to_owned()),
            None => stored.map(|s| s.url.clone()),
        }
        .or_else(|| kind.default_url().map(str::to_owned))
        .ok_or_else(|| refuse("url", format!("is required for {kind} channels")))?;
        let parsed = Url::parse(&url).map_err(|e| refuse("url", format!("is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(refuse("url", "must be an http or https URL with a host"));
        }
        if url.len() > 2048 {
            return Err(refuse("url", "must be at most 2048 characters"));
        }
        let settings = Self {
            url,
            secret: keep(input.secret, stored.and_then(|s| s.secret.as_ref())),
            token: keep(input.token, stored.and_then(|s| s.token.as_ref())),
            chat_id: keep(input.chat_id, stored.and_then(|s| s.chat_id.as_ref())),
            topic: keep(input.topic, stored.and_then(|s| s.topic.as_ref())),
            routing_key: keep(
                input.routing_key,
                stored.and_then(|s| s.routing_key.as_ref()),
            ),
            from: keep(input.from, stored.and_then(|s| s.from.as_ref())),
            to: Vec::new(),
            smtp_host: None,
            smtp_port: None,
            smtp_tls: None,
            smtp_username: None,
            smtp_password: None,
        };
        settings.check(kind)?;
        Ok(settings)
    }

    /// An email channel's settings: the SMTP server, its security and login, the sender and
    /// the recipients.
    fn parse_email(
        input: SettingsInput,
        stored: Option<&ChannelSettings>,
    ) -> Result<Self, SettingError> {
        let kind = ChannelKind::Email;
        if input.url.as_deref().is_some_and(|u| !u.trim().is_empty()) {
            return Err(refuse(
                "url",
                "is not a setting of EMAIL channels: give the SMTP server's host and port",
            ));
        }
        let keep = |given: Option<String>, old: Option<&String>| match given {
            Some(v) if is_masked(&v) => old.cloned(),
            Some(v) if v.trim().is_empty() => None,
            Some(v) => Some(v.trim().to_owned()),
            None => old.cloned(),
        };
        let smtp_port = match input.smtp_port {
            Some(port) => Some(
                u16::try_from(port)
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| refuse("smtp_port", "must be a port number from 1 to 65535"))?,
            ),
            None => stored.and_then(|s| s.smtp_port),
        };
        let to = match input.to {
            Some(list) => list
                .into_iter()
                .map(|a| a.trim().to_owned())
                .filter(|a| !a.is_empty())
                .collect(),
            None => stored.map(|s| s.to.clone()).unwrap_or_default(),
        };
        let settings = Self {
            url: String::new(),
            secret: keep(input.secret, None),
            token: keep(input.token, None),
            chat_id: keep(input.chat_id, None),
            topic: keep(input.topic, None),
            routing_key: keep(input.routing_key, None),
            from: keep(input.from, stored.and_then(|s| s.from.as_ref())),
            to,
            smtp_host: keep(input.smtp_host, stored.and_then(|s| s.smtp_host.as_ref())),
            smtp_port,
            smtp_tls: input.smtp_tls.or(stored.and_then(|s| s.smtp_tls)),
            smtp_username: keep(
                input.smtp_username,
                stored.and_then(|s| s.smtp_username.as_ref()),
            ),
            // A password is kept as given, spaces and all.
            smtp_password: match input.smtp_password {
                Some(v) if is_masked(&v) => stored.and_then(|s| s.smtp_password.clone()),
                Some(v) if v.is_empty() => None,
                Some(v) => Some(v),
                None => stored.and_then(|s| s.smtp_password.clone()),
            },
        };
        settings.check(kind)?;
        let Some(host) = &settings.smtp_host else {
            return Err(refuse("smtp_host", "is required for EMAIL channels"));
        };
        if host.len() > 253 || url::Host::parse(host).is_err() || host.contains(['/', ':', '@']) {
            return Err(refuse(
                "smtp_host",
                format!("{host:?} is not a host name or IP address"),
            ));
        }
        if settings.to.is_empty() {
            return Err(refuse("to", "must name at least one address"));
        }
        if settings.smtp_password.is_some() && settings.smtp_username.is_none() {
            return Err(refuse(
                "smtp_username",
                "is required when a password is given",
            ));
        }
        for (field, value) in [
            ("smtp_username", &settings.smtp_username),
            ("smtp_password", &settings.smtp_password),
        ] {
            if value
                .as_ref()
                .is_some_and(|v| v.chars().count() > MAX_SECRET || v.chars().any(char::is_control))
            {
                return Err(refuse(
                    field,
                    format!("must be at most {MAX_SECRET} characters, without control characters"),
                ));
            }
        }
        Ok(settings)
    }

    /// Settings as stored by an earlier version, in today's form: an email channel's server
    /// given as an `smtp://` or `smtps://` URL (its login in it, `?tls=required` for
    /// STARTTLS) moves into the `smtp_*` fields.
    pub fn upgraded(mut self, kind: ChannelKind) -> Self {
        if kind != ChannelKind::Email || self.smtp_host.is_some() || self.url.is_empty() {
            return self;
        }
        if let Ok(url) = Url::parse(&self.url) {
            self.smtp_host = url
                .host_str()
                .map(|h| h.trim_matches(['[', ']']).to_owned());
            self.smtp_port = url.port();
            self.smtp_tls = Some(match (url.scheme(), url.query()) {
                ("smtps", _) => SmtpTls::Tls,
                (_, Some(query)) if query.contains("tls=") => SmtpTls::Starttls,
                _ => SmtpTls::None,
            });
            // The URL's login is percent-encoded, as the earlier version read it.
            let decoded = |text: &str| {
                percent_encoding::percent_decode_str(text)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            if !url.username().is_empty() {
                self.smtp_username = Some(decoded(url.username()));
                self.smtp_password = url.password().map(decoded);
            }
        }
        self.url.clear();
        self
    }

    /// An email channel's port: the one given, or the default for its security.
    pub fn smtp_port(&self) -> u16 {
        self.smtp_port
            .unwrap_or_else(|| self.smtp_tls.unwrap_or_default().default_port())
    }

    fn check(&self, kind: ChannelKind) -> Result<(), SettingError> {
        use ChannelKind as K;
        let fields: [(&'static str, &Option<String>, bool); 6] = [
            ("secret", &self.secret, kind == K::Webhook),
            (
                "token",
                &self.token,
                matches!(kind, K::Telegram | K::Ntfy | K::Gotify),
            ),
            ("chat_id", &self.chat_id, kind == K::Telegram),
            ("topic", &self.topic, kind == K::Ntfy),
            ("routing_key", &self.routing_key, kind == K::Pagerduty),
            ("from", &self.from, kind == K::Email),
        ];
        for (field, value, takes) in fields {
            match value {
                Some(_) if !takes => {
                    return Err(refuse(
                        field,
                        format!("is not a setting of {kind} channels"),
                    ))
                }
                Some(v) if v.chars().count() > MAX_SECRET || v.chars().any(char::is_control) => {
                    return Err(refuse(
                        field,
                        format!(
                            "must be at most {MAX_SECRET} characters, without control characters"
                        ),
                    ))
                }
                _ => {}
            }
        }
        let required: &[(&'static str, &Option<String>)] = match kind {
            K::Webhook => &[("secret", &self.secret)],
            K::Telegram => &[("token", &self.token), ("chat_id", &self.chat_id)],
            K::Ntfy => &[("topic", &self.topic)],
            K::Gotify => &[("token", &self.token)],
            K::Pagerduty => &[("routing_key", &self.routing_key)],
            K::Email => &[("from", &self.from)],
            _ => &[],
        };
        for (field, value) in required {
            if value.is_none() {
                return Err(refuse(field, format!("is required for {kind} channels")));
            }
        }
        if let Some(secret) = &self.secret {
            if secret.len() < 16 {
                return Err(refuse("secret", "must be at least 16 characters"));
            }
        }
        if let Some(token) = &self.token {
            if !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-' | b'.'))
            {
                return Err(refuse(
                    "token",
                    "must be letters, digits, ':', '_', '-' or '.'",
                ));
            }
        }
        if let Some(from) = &self.from {
            if !is_address(from) {
                return Err(refuse("from", format!("{from:?} is not an email address")));
            }
        }
        if self.to.len() > 20 {
            return Err(refuse("to", "must name at most 20 addresses"));
        }
        if let Some(bad) = self.to.iter().find(|a| !is_address(a)) {
            return Err(refuse("to", format!("{bad:?} is not an email address")));
        }
        if let Some(topic) = &self.topic {
            if !topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                || topic.len() > 64
            {
                return Err(refuse(
                    "topic",
                    "must be 1 to 64 letters, digits, '-' or '_'",
                ));
            }
        }
        Ok(())
    }

    /// The settings as a client may read them: secrets as `***` and their last 4 characters
    /// (when long enough to spare them), an incoming-webhook URL without its path.
    pub fn masked(&self, kind: ChannelKind) -> Self {
        let mask = |v: &Option<String>| v.as_deref().map(mask_secret);
        Self {
            url: if kind.url_is_secret() {
                mask_url_path(&self.url)
            } else {
                crate::url_password::mask(&self.url).into_owned()
            },
            secret: mask(&self.secret),
            token: mask(&self.token),
            chat_id: self.chat_id.clone(),
            topic: self.topic.clone(),
            routing_key: mask(&self.routing_key),
            from: self.from.clone(),
            to: self.to.clone(),
            smtp_host: self.smtp_host.clone(),
            smtp_port: self.smtp_port,
            smtp_tls: self.smtp_tls,
            smtp_username: self.smtp_username.clone(),
            smtp_password: mask(&self.smtp_password),
        }
    }
}

/// `local@domain`: one `@`, both sides non-empty, a dotted domain, no spaces, quotes, commas or
/// angle brackets, at most 254 characters.
fn is_address(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    text.len() <= 254
        && !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && text
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, '<' | '>' | ',' | '"'))
}

fn mask_secret(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() >= 16 {
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("***{tail}")
    } else {
        "***".to_owned()
    }
}

fn mask_url_path(url: &str) -> String {
    match Url::parse(url) {
        Ok(parsed) => {
            let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}/***",
                parsed.scheme(),
                parsed.host_str().unwrap_or_default()
            )
        }
        Err(_) => "***".to_owned(),
    }
}

/// A channel name: trimmed, 1 to [`MAX_CHANNEL_NAME`] characters.
pub fn parse_channel_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > MAX_CHANNEL_NAME || name.chars().any(char::is_control) {
        return Err(format!(
            "must be at most {MAX_CHANNEL_NAME} characters, without control characters"
        ));
    }
    Ok(name.to_owned())
}

/// What a notice tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum NoticeEvent {
    Down,
    Up,
    /// Still down: a reminder while an incident stays open.
    Reminder,
    /// Up, but slow or failing a warning assertion (of a monitor that asks to be told).
    Degraded,
    /// Up and no longer degraded.
    Recovered,
    Test,
}

impl NoticeEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Down => "DOWN",
            Self::Up => "UP",
            Self::Reminder => "REMINDER",
            Self::Degraded => "DEGRADED",
            Self::Recovered => "RECOVERED",
            Self::Test => "TEST",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Down,
            Self::Up,
            Self::Reminder,
            Self::Degraded,
            Self::Recovered,
            Self::Test,
        ]
        .into_iter()
        .find(|e| e.as_str() == text)
    }

    /// Tells of something down (urgent where a kind has priorities).
    pub fn is_down(self) -> bool {
        matches!(self, Self::Down | Self::Reminder)
    }
}

/// One thing to tell: fixed when the delivery is written, so every attempt sends the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub event: NoticeEvent,
    pub monitor_id: i64,
    pub monitor_name: String,
    /// The monitor's URL, its password masked.
    pub monitor_url: String,
    #[serde(default)]
    pub incident_id: Option<i64>,
    /// When the outage started (DOWN and UP).
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended (UP).
    #[serde(default)]
    pub resolved_at: Option<DateTime<Utc>>,
    /// The check that confirmed the change: its status code and error.
    #[serde(default)]
    pub status_code: Option<u16>,
    #[serde(default)]
    pub error: Option<String>,
    /// A reminder's number (1, 2, ...) and the time it was due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<DateTime<Utc>>,
}

impl Notice {
    /// Whole seconds down: for an UP, the outage; for a reminder, so far.
    pub fn downtime_seconds(&self) -> Option<i64> {
        match (self.started_at, self.resolved_at.or(self.as_of)) {
            (Some(start), Some(end)) => Some((end - start).num_seconds().max(0)),
            _ => None,
        }
    }

    fn reason(&self) -> String {
        match (&self.error, self.status_code) {
            (Some(e), _) => e.clone(),
            (None, Some(code)) => format!("HTTP {code}"),
            (None, None) => "down".into(),
        }
    }

    /// One line for chat kinds.
    pub fn text(&self) -> String {
        match self.event {
            NoticeEvent::Down => format!(
                "DOWN: {} ({}): {}",
                self.monitor_name,
                self.monitor_url,
                self.reason()
            ),
            NoticeEvent::Degraded => format!(
                "DEGRADED: {} ({}): {}",
                self.monitor_name,
                self.monitor_url,
                self.error.as_deref().unwrap_or("slow")
            ),
            NoticeEvent::Recovered => format!(
                "RECOVERED: {} ({}) is no longer degraded",
                self.monitor_name, self.monitor_url
            ),
            NoticeEvent::Reminder => format!(
                "STILL DOWN: {} ({}) for {}: {}",
                self.monitor_name,
                self.monitor_url,
                human_duration(self.downtime_seconds().unwrap_or(0)),
                self.reason()
            ),
            NoticeEvent::Up => format!(
                "UP: {} ({}) is back after {}",
                self.monitor_name,
                self.monitor_url,
                human_duration(self.downtime_seconds().unwrap_or(0))
            ),
            NoticeEvent::Test => format!(
                "Test message from Monitor Manager for channel {}",
                self.monitor_name
            ),
        }
    }

    /// A title for kinds that take one.
    pub fn title(&self) -> String {
        match self.event {
            NoticeEvent::Test => "Monitor Manager test".into(),
            event => format!("{} {}", self.monitor_name, event.as_str()),
        }
    }
}

/// `1h 2m 3s`, `4m 0s`, `5s`.
pub fn human_duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

/// The text of several notices as one message: a count and one line each.
pub fn group_text(notices: &[Notice]) -> String {
    if let [one] = notices {
        return one.text();
    }
    let down = notices
        .iter()
        .filter(|n| n.event == NoticeEvent::Down)
        .count();
    let up = notices
        .iter()
        .filter(|n| n.event == NoticeEvent::Up)
        .count();
    let still = notices
        .iter()
        .filter(|n| n.event == NoticeEvent::Reminder)
        .count();
    let mut text = format!("{} changes: {down} down, {up} up", notices.len());
    if still > 0 {
        text = format!(
            "{} notices: {down} down, {up} up, {still} still down",
            notices.len()
        );
    }
    for notice in notices.iter().take(GROUP_LINES) {
        text.push('\n');
        text.push_str(&notice.text());
    }
    if notices.len() > GROUP_LINES {
        text.push_str(&format!("\n... and {} more", notices.len() - GROUP_LINES));
    }
    text
}

/// Most lines a grouped message's text lists (the webhook's JSON carries every notice).
pub const GROUP_LINES: usize = 50;

/// A stored channel, its settings masked unless read for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub id: i64,
    pub name: String,
    pub kind: ChannelKind,
    pub is_default: bool,
    pub settings: ChannelSettings,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    Sent,
    /// Given up after [`GIVE_UP_AFTER_HOURS`]; the last error says why.
    Failed,
}

/// How long a delivery is retried before it is given up.
pub const GIVE_UP_AFTER_HOURS: i64 = 24;

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Sent => "SENT",
            Self::Failed => "FAILED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Sent, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One message for one channel, and its attempts so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub channel_id: i64,
    pub incident_id: Option<i64>,
    pub event: NoticeEvent,
    pub state: DeliveryState,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub attempts: Vec<Attempt>,
}

/// One try at sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub attempted_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub ok: bool,
    /// The endpoint's HTTP status, when it answered.
    pub response_code: Option<u16>,
    pub error: Option<String>,
}

/// When to try again after `attempts` failed tries (1, 2, ...): 5 s doubling up to 10 min,
/// with up to a fifth more at random (`jitter` in 0..1) so failed channels do not retry in step.
pub fn retry_delay_ms(attempts: i32, jitter: f64) -> i64 {
    let base = 5_000i64.saturating_mul(1i64 << attempts.clamp(1, 20).saturating_sub(1));
    let capped = base.min(600_000);
    capped + (capped as f64 * 0.2 * jitter.clamp(0.0, 1.0)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(url: &str) -> SettingsInput {
        SettingsInput {
            url: Some(url.into()),
            ..SettingsInput::default()
        }
    }

    #[test]
    fn each_kind_takes_what_it_needs_and_nothing_else() {
        let slack = ChannelSettings::parse(
            ChannelKind::Slack,
            input("https://hooks.slack.com/services/T0/B0/XYZ"),
            None,
        )
        .unwrap();
        assert_eq!(
            slack.masked(ChannelKind::Slack).url,
            "https://hooks.slack.com/***"
        );
        let err = ChannelSettings::parse(ChannelKind::Webhook, input("http://127.0.0.1:9/h"), None)
            .unwrap_err();
        assert_eq!(err.field, "secret");
        let mut with_topic = input("https://hooks.slack.com/x");
        with_topic.topic = Some("alerts".into());
        let err = ChannelSettings::parse(ChannelKind::Slack, with_topic, None).unwrap_err();
        assert_eq!(err.field, "topic");
        assert!(err.problem.contains("not a setting of SLACK"), "{err:?}");
        let err =
            ChannelSettings::parse(ChannelKind::Discord, input("ftp://x/y"), None).unwrap_err();
        assert_eq!(err.field, "url");
        let err = ChannelSettings::parse(ChannelKind::Discord, SettingsInput::default(), None)
            .unwrap_err();
        assert_eq!(err.problem, "is required for DISCORD channels");
        // PagerDuty has a default endpoint.
        let pd = ChannelSettings::parse(
            ChannelKind::Pagerduty,
            SettingsInput {
                routing_key: Some("R0UT1NGKEY0123456789".into()),
                ..SettingsInput::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(pd.url, "https://events.pagerduty.com/v2/enqueue");
        assert_eq!(
            pd.masked(ChannelKind::Pagerduty).routing_key.as_deref(),
            Some("***6789")
        );
    }

    #[test]
    fn a_masked_value_sent_back_keeps_the_stored_one() {
        let mut first = input("http://127.0.0.1:9/hook");
        first.secret = Some("0123456789abcdefXYZW".into());
        let stored = ChannelSettings::parse(ChannelKind::Webhook, first, None).unwrap();
        let read = stored.masked(ChannelKind::Webhook);
        let back = SettingsInput {
            url: Some(read.url.clone()),
            secret: read.secret.clone(),
            ..SettingsInput::default()
        };
        let again = ChannelSettings::parse(ChannelKind::Webhook, back, Some(&stored)).unwrap();
        assert_eq!(again, stored);
    }

    #[test]
    fn email_settings_stored_by_an_earlier_version_read_in_todays_form() {
        let old: ChannelSettings = serde_json::from_str(
            r#"{"url":"smtp://mailer:p%40ss@mail.example:2525?tls=required","from":"a@b.c","to":"x@y.z, w@y.z"}"#,
        )
        .unwrap();
        let new = old.upgraded(ChannelKind::Email);
        assert_eq!(new.smtp_host.as_deref(), Some("mail.example"));
        assert_eq!(new.smtp_port(), 2525);
        assert_eq!(new.smtp_tls, Some(SmtpTls::Starttls));
        assert_eq!(new.smtp_username.as_deref(), Some("mailer"));
        assert_eq!(new.smtp_password.as_deref(), Some("p@ss"));
        assert_eq!(new.to, ["x@y.z", "w@y.z"]);
        assert!(new.url.is_empty());
    }

    #[test]
    fn retries_back_off_to_ten_minutes() {
        assert_eq!(retry_delay_ms(1, 0.0), 5_000);
        assert_eq!(retry_delay_ms(2, 0.0), 10_000);
        assert_eq!(retry_delay_ms(30, 0.0), 600_000);
        assert_eq!(retry_delay_ms(1, 1.0), 6_000);
    }

    #[test]
    fn texts_carry_the_reason_and_the_downtime() {
        let mut notice = Notice {
            event: NoticeEvent::Down,
            monitor_id: 1,
            monitor_name: "api".into(),
            monitor_url: "https://api.example/".into(),
            incident_id: Some(3),
            started_at: Some(DateTime::from_timestamp(1_000, 0).unwrap()),
            resolved_at: None,
            status_code: Some(503),
            error: None,
            reminder: None,
            as_of: None,
        };
        assert_eq!(notice.text(), "DOWN: api (https://api.example/): HTTP 503");
        notice.event = NoticeEvent::Up;
        notice.resolved_at = Some(DateTime::from_timestamp(1_000 + 3_723, 0).unwrap());
        assert_eq!(
            notice.text(),
            "UP: api (https://api.example/) is back after 1h 2m 3s"
        );
        let group = group_text(&[notice.clone(), notice]);
        assert!(group.starts_with("2 changes: 0 down, 2 up\n"), "{group}");
    }
}
