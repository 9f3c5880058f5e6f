//! What a check does beyond fetching a URL: the HTTP request's options, the status codes it
//! accepts, its assertions and when it is degraded. A monitor without options has no spec at
//! all (`None`), and its check is the plain GET that never reads a body.
//!
//! [`SpecInput`] is what a client sends (every field optional); [`CheckSpec::parse`] turns it
//! into a spec that can only hold valid values, naming the field (snake_case, with list
//! indexes) when something is wrong. Stored and sent to workers as JSON, refusing fields it
//! does not know, so a worker of an older version never checks something else than asked.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::input::no_control_characters;

/// Most headers a check sends.
pub const MAX_HEADERS: usize = 32;
/// Most assertions a monitor has.
pub const MAX_ASSERTIONS: usize = 20;
/// Longest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest header value, in bytes.
pub const MAX_HEADER_VALUE_BYTES: usize = 4096;
/// Longest assertion target or property, in bytes.
pub const MAX_TARGET_BYTES: usize = 1024;
/// Most redirects a monitor may allow.
pub const MAX_REDIRECTS_LIMIT: u8 = 20;
/// Redirects followed by default.
pub const DEFAULT_MAX_REDIRECTS: u8 = 10;
/// Largest `degraded_after_ms`.
pub const MAX_DEGRADED_AFTER_MS: i64 = 300_000;
/// The most of a response body read for assertions; the rest is not read.
pub const MAX_BODY_READ_BYTES: usize = 1024 * 1024;
/// Largest compiled size of an assertion's regex.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// The methods a check may use.
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Headers whose values are secrets: shown as `***` (after the scheme for `Authorization`).
const SECRET_HEADERS: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "x-auth-token",
    "x-access-token",
];

/// Headers the checker sets itself.
const RESERVED_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
];

/// What is shown instead of a secret.
pub const MASK: &str = "***";

/// The kind of check a monitor runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum MonitorKind {
    /// An HTTP request.
    #[default]
    Http,
    /// A TCP connection to `host:port`, with a TLS handshake for `tls://`.
    Tcp,
    /// A DNS query for `dns://name`, of `dns_record_type`, to the system's resolver or
    /// `dns_resolver`.
    Dns,
    /// The monitored thing calls `/push/{token}`; DOWN when it stops.
    Push,
}

impl MonitorKind {
    pub const ALL: [Self; 4] = [Self::Http, Self::Tcp, Self::Dns, Self::Push];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "HTTP",
            Self::Tcp => "TCP",
            Self::Dns => "DNS",
            Self::Push => "PUSH",
        }
    }

    pub fn is_http(&self) -> bool {
        *self == Self::Http
    }

    /// Parses a kind's name (any case).
    pub fn parse(raw: &str) -> Result<Self, String> {
        parse_enum(raw, &Self::ALL, Self::as_str)
    }

    /// The kind a URL scheme belongs to.
    pub fn of_scheme(scheme: &str) -> Option<Self> {
        match scheme {
            "http" | "https" => Some(Self::Http),
            "tcp" | "tls" => Some(Self::Tcp),
            "dns" => Some(Self::Dns),
            _ => None,
        }
    }

    /// The URL forms a monitor of this kind takes, for error messages.
    pub fn url_forms(self) -> &'static str {
        match self {
            Self::Http => "an http:// or https:// URL",
            Self::Tcp => "tcp://host:port (or tls://host:port for a TLS handshake)",
            Self::Dns => "dns://name",
            Self::Push => "none: its push URL /push/{token} is made for it",
        }
    }
}

/// The record type a DNS monitor asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum DnsRecordType {
    #[default]
    A,
    Aaaa,
    Cname,
    Mx,
    Txt,
    Ns,
}

impl DnsRecordType {
    pub const ALL: [Self; 6] = [
        Self::A,
        Self::Aaaa,
        Self::Cname,
        Self::Mx,
        Self::Txt,
        Self::Ns,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::Aaaa => "AAAA",
            Self::Cname => "CNAME",
            Self::Mx => "MX",
            Self::Txt => "TXT",
            Self::Ns => "NS",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        parse_enum(raw, &Self::ALL, Self::as_str)
    }
}

/// A DNS monitor's resolver: an IP address, with a port (default 53).
pub fn parse_resolver(raw: &str) -> Result<std::net::SocketAddr, String> {
    let text = raw.trim();
    text.parse::<std::net::SocketAddr>()
        .or_else(|_| {
            text.parse::<std::net::IpAddr>()
                .map(|ip| std::net::SocketAddr::new(ip, 53))
        })
        .ok()
        .filter(|addr| addr.port() != 0)
        .ok_or_else(|| {
            format!(
                "`{}` is not a resolver address such as 1.1.1.1, 9.9.9.9:53 or [2606:4700::1111]:53",
                shown(raw)
            )
        })
}

/// One request header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// An inclusive range of accepted status codes (`"200-299"`, or `"418"` for one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    pub from: u16,
    pub to: u16,
}

impl StatusRange {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let code = |text: &str| -> Result<u16, String> {
            match text.trim().parse::<u16>() {
                Ok(code) if (100..=599).contains(&code) => Ok(code),
                _ => Err(format!(
                    "`{}` is not a status code or range such as `200-299` or `418` (codes are 100 to 599)",
                    shown(raw)
                )),
            }
        };
        let (from, to) = match raw.split_once('-') {
            Some((from, to)) => (code(from)?, code(to)?),
            None => {
                let one = code(raw)?;
                (one, one)
            }
        };
        if from > to {
            return Err(format!(
                "`{}` is a range that ends before it starts",
                shown(raw)
            ));
        }
        Ok(Self { from, to })
    }

    pub fn contains(self, code: u16) -> bool {
        (self.from..=self.to).contains(&code)
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

impl Serialize for StatusRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StatusRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// What an assertion looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AssertionSource {
    StatusCode,
    ResponseTime,
    Body,
    JsonBody,
    Header,
    CertExpiresInDays,
}

/// How an assertion compares what it found with its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Comparison {
    Equals,
    NotEquals,
    LessThan,
    GreaterThan,
    Contains,
    NotContains,
    Matches,
    IsEmpty,
    NotEmpty,
}

impl AssertionSource {
    pub const ALL: [Self; 6] = [
        Self::StatusCode,
        Self::ResponseTime,
        Self::Body,
        Self::JsonBody,
        Self::Header,
        Self::CertExpiresInDays,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::StatusCode => "STATUS_CODE",
            Self::ResponseTime => "RESPONSE_TIME",
            Self::Body => "BODY",
            Self::JsonBody => "JSON_BODY",
            Self::Header => "HEADER",
            Self::CertExpiresInDays => "CERT_EXPIRES_IN_DAYS",
        }
    }

    /// Its value is a number (compared as one).
    fn is_numeric(self) -> bool {
        matches!(
            self,
            Self::StatusCode | Self::ResponseTime | Self::CertExpiresInDays
        )
    }

    /// It needs a property: a JSON path or a header name.
    fn needs_property(self) -> bool {
        matches!(self, Self::JsonBody | Self::Header)
    }

    /// Whether a monitor of `kind` has what it looks at (a TCP check has no response,
    /// only its time and, over TLS, a certificate).
    pub fn applies_to(self, kind: MonitorKind) -> bool {
        match kind {
            MonitorKind::Http => true,
            MonitorKind::Tcp => matches!(self, Self::ResponseTime | Self::CertExpiresInDays),
            // A push's `ping`.
            // A DNS check's `BODY` is its answers, one per line.
            MonitorKind::Dns => matches!(self, Self::ResponseTime | Self::Body),
            MonitorKind::Push => self == Self::ResponseTime,
        }
    }

    /// It needs the response body.
    pub fn reads_body(self) -> bool {
        matches!(self, Self::Body | Self::JsonBody)
    }
}

impl Comparison {
    pub const ALL: [Self; 9] = [
        Self::Equals,
        Self::NotEquals,
        Self::LessThan,
        Self::GreaterThan,
        Self::Contains,
        Self::NotContains,
        Self::Matches,
        Self::IsEmpty,
        Self::NotEmpty,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Equals => "EQUALS",
            Self::NotEquals => "NOT_EQUALS",
            Self::LessThan => "LESS_THAN",
            Self::GreaterThan => "GREATER_THAN",
            Self::Contains => "CONTAINS",
            Self::NotContains => "NOT_CONTAINS",
            Self::Matches => "MATCHES",
            Self::IsEmpty => "IS_EMPTY",
            Self::NotEmpty => "NOT_EMPTY",
        }
    }

    fn takes_target(self) -> bool {
        !matches!(self, Self::IsEmpty | Self::NotEmpty)
    }

    fn is_ordering(self) -> bool {
        matches!(self, Self::LessThan | Self::GreaterThan)
    }
}

fn parse_enum<T: Copy>(
    raw: &str,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<T, String> {
    let wanted = raw.trim().to_ascii_uppercase();
    all.iter()
        .copied()
        .find(|v| name(*v) == wanted)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
            format!("`{}` is not one of {}", shown(raw), names.join(", "))
        })
}

impl AssertionSource {
    pub fn parse(raw: &str) -> Result<Self, String> {
        parse_enum(raw, &Self::ALL, Self::as_str)
    }
}

impl Comparison {
    pub fn parse(raw: &str) -> Result<Self, String> {
        parse_enum(raw, &Self::ALL, Self::as_str)
    }
}

/// One assertion (Checkly's model): `source`, its `property` where it needs one, a
/// `comparison` and its `target`. A failed assertion makes the check DOWN, or only degraded
/// when it is a `warning`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assertion {
    pub source: AssertionSource,
    #[serde(default)]
    pub property: Option<String>,
    pub comparison: Comparison,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub warning: bool,
}

impl fmt::Display for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.source.as_str())?;
        if let Some(property) = &self.property {
            write!(f, " {property}")?;
        }
        write!(f, " {}", self.comparison.as_str())?;
        if self.comparison.takes_target() {
            write!(f, " {:?}", self.target)?;
        }
        Ok(())
    }
}

/// A check's options, every one valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// Stored only when not HTTP, so an HTTP spec reads as before.
    #[serde(default, skip_serializing_if = "MonitorKind::is_http")]
    pub kind: MonitorKind,
    pub method: String,
    #[serde(default)]
    pub headers: Vec<Header>,
    #[serde(default)]
    pub body: Option<String>,
    pub accepted_status_codes: Vec<StatusRange>,
    pub follow_redirects: bool,
    pub max_redirects: u8,
    pub ignore_tls: bool,
    #[serde(default)]
    pub assertions: Vec<Assertion>,
    #[serde(default)]
    pub degraded_after_ms: Option<u32>,
    /// A DNS monitor's record type (stored only for DNS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_record_type: Option<DnsRecordType>,
    /// A DNS monitor's resolver, `ip:port`; none: the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_resolver: Option<String>,
}

impl Default for CheckSpec {
    fn default() -> Self {
        Self {
            kind: MonitorKind::Http,
            method: "GET".into(),
            headers: Vec::new(),
            body: None,
            accepted_status_codes: vec![StatusRange { from: 200, to: 299 }],
            follow_redirects: true,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            ignore_tls: false,
            assertions: Vec::new(),
            degraded_after_ms: None,
            dns_record_type: None,
            dns_resolver: None,
        }
    }
}

/// A client's check options, every field optional: `None` keeps the current (or default)
/// value. Lists replace the current list whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecInput {
    /// A new kind starts from that kind's defaults (keeping `degraded_after_ms`).
    pub kind: Option<MonitorKind>,
    pub method: Option<String>,
    pub headers: Option<Vec<Header>>,
    /// `Some(None)` clears the body.
    pub body: Option<Option<String>>,
    pub accepted_status_codes: Option<Vec<String>>,
    pub follow_redirects: Option<bool>,
    pub max_redirects: Option<i64>,
    pub ignore_tls: Option<bool>,
    pub assertions: Option<Vec<AssertionInput>>,
    /// `Some(None)` clears it.
    pub degraded_after_ms: Option<Option<i64>>,
    pub dns_record_type: Option<String>,
    /// `Some(None)` clears it (the system's resolver).
    pub dns_resolver: Option<Option<String>>,
}

/// An assertion as a client sends it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssertionInput {
    pub source: String,
    pub property: Option<String>,
    pub comparison: String,
    pub target: Option<String>,
    pub warning: Option<bool>,
}

/// A spec field that is wrong: its snake_case path (`assertions[1].target`) and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

impl FieldError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl SpecInput {
    /// Whether the client sent any check option.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl CheckSpec {
    /// `input` applied over `current` (or the defaults): every value checked, secrets sent
    /// back masked (`***`) keeping their stored value. `None` when the result is the plain
    /// check (all defaults).
    pub fn parse(
        input: SpecInput,
        current: Option<&CheckSpec>,
    ) -> Result<Option<Self>, FieldError> {
        let mut spec = current.cloned().unwrap_or_default();
        if let Some(kind) = input.kind.filter(|k| *k != spec.kind) {
            spec = Self {
                kind,
                degraded_after_ms: spec.degraded_after_ms,
                dns_record_type: (kind == MonitorKind::Dns).then_some(DnsRecordType::A),
                ..Self::default()
            };
        }
        if spec.kind == MonitorKind::Dns {
            if let Some(raw) = &input.dns_record_type {
                spec.dns_record_type = Some(
                    DnsRecordType::parse(raw).map_err(|p| FieldError::new("dns_record_type", p))?,
                );
            }
            if let Some(resolver) = &input.dns_resolver {
                spec.dns_resolver = resolver
                    .as_deref()
                    .map(|raw| {
                        parse_resolver(raw)
                            .map(|addr| addr.to_string())
                            .map_err(|p| FieldError::new("dns_resolver", p))
                    })
                    .transpose()?;
            }
        } else {
            for (field, given) in [
                ("dns_record_type", input.dns_record_type.is_some()),
                (
                    "dns_resolver",
                    input.dns_resolver.as_ref().is_some_and(Option::is_some),
                ),
            ] {
                if given {
                    return Err(FieldError::new(
                        field,
                        format!("is not an option of {} monitors", spec.kind.as_str()),
                    ));
                }
            }
        }
        if !spec.kind.is_http() {
            http_only(&input, spec.kind)?;
        }
        if let Some(method) = input.method {
            let upper = method.trim().to_ascii_uppercase();
            if !METHODS.contains(&upper.as_str()) {
                return Err(FieldError::new(
                    "method",
                    format!("`{}` is not one of {}", shown(&method), METHODS.join(", ")),
                ));
            }
            spec.method = upper;
        }
        if let Some(headers) = input.headers {
            spec.headers = parse_headers(headers, current.map_or(&[][..], |c| &c.headers))?;
        }
        if let Some(body) = input.body {
            if let Some(text) = &body {
                if text.len() > MAX_BODY_BYTES {
                    return Err(FieldError::new(
                        "body",
                        format!("must be at most {MAX_BODY_BYTES} bytes"),
                    ));
                }
            }
            spec.body = body;
        }
        if let Some(codes) = input.accepted_status_codes {
            if codes.is_empty() {
                return Err(FieldError::new(
                    "accepted_status_codes",
                    "must list at least one status code or range",
                ));
            }
            if codes.len() > 50 {
                return Err(FieldError::new(
                    "accepted_status_codes",
                    "must list at most 50 entries",
                ));
            }
            spec.accepted_status_codes = codes
                .iter()
                .enumerate()
                .map(|(i, raw)| {
                    StatusRange::parse(raw)
                        .map_err(|p| FieldError::new(format!("accepted_status_codes[{i}]"), p))
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(follow) = input.follow_redirects {
            spec.follow_redirects = follow;
        }
        if let Some(max) = input.max_redirects {
            spec.max_redirects = u8::try_from(max)
                .ok()
                .filter(|m| *m <= MAX_REDIRECTS_LIMIT)
                .ok_or_else(|| {
                    FieldError::new(
                        "max_redirects",
                        format!("must be an integer from 0 to {MAX_REDIRECTS_LIMIT}"),
                    )
                })?;
        }
        if let Some(ignore) = input.ignore_tls {
            spec.ignore_tls = ignore;
        }
        if let Some(assertions) = input.assertions {
            if assertions.len() > MAX_ASSERTIONS {
                return Err(FieldError::new(
                    "assertions",
                    format!("must have at most {MAX_ASSERTIONS} entries"),
                ));
            }
            spec.assertions = assertions
                .into_iter()
                .enumerate()
                .map(|(i, a)| parse_assertion(a, &format!("assertions[{i}]"), spec.kind))
                .collect::<Result<_, _>>()?;
        }
        if let Some(after) = input.degraded_after_ms {
            spec.degraded_after_ms = match after {
                None => None,
                Some(ms) if (1..=MAX_DEGRADED_AFTER_MS).contains(&ms) => u32::try_from(ms).ok(),
                Some(_) => {
                    return Err(FieldError::new(
                        "degraded_after_ms",
                        format!(
                            "must be a positive integer no greater than {MAX_DEGRADED_AFTER_MS}"
                        ),
                    ))
                }
            };
        }
        if spec.body.is_some()
            && matches!(spec.method.as_str(), "GET" | "HEAD" | "OPTIONS" | "DELETE")
        {
            return Err(FieldError::new(
                "body",
                format!(
                    "a {} request takes no body; use POST, PUT or PATCH",
                    spec.method
                ),
            ));
        }
        Ok((spec != Self::default()).then_some(spec))
    }

    /// The spec as clients read it: secret header values masked.
    pub fn masked(&self) -> Self {
        let mut shown = self.clone();
        for header in &mut shown.headers {
            if is_secret_header(&header.name) {
                header.value = mask_secret(&header.value);
            }
        }
        shown
    }

    /// Whether a check must read the response body.
    pub fn reads_body(&self) -> bool {
        self.assertions.iter().any(|a| a.source.reads_body())
    }

    /// Whether `code` is an accepted final status.
    pub fn accepts(&self, code: u16) -> bool {
        self.accepted_status_codes.iter().any(|r| r.contains(code))
    }

    /// The spec as stored: JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A stored spec; an unreadable one is an error naming the problem.
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
}

fn is_secret_header(name: &str) -> bool {
    SECRET_HEADERS.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// `Bearer abc` → `Bearer ***`; anything else → `***`.
fn mask_secret(value: &str) -> String {
    match value.split_once(' ') {
        Some((scheme, _))
            if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            format!("{scheme} {MASK}")
        }
        _ => MASK.to_owned(),
    }
}

/// Refuses the HTTP options (and, for PUSH and DNS, `ignore_tls`) a monitor of another kind was sent
/// with values of their own
/// (the defaults are let through, so a monitor read back and sent again is accepted).
fn http_only(input: &SpecInput, kind: MonitorKind) -> Result<(), FieldError> {
    let plain = CheckSpec::default();
    let given = [
        (
            "method",
            input
                .method
                .as_ref()
                .is_some_and(|m| !m.trim().eq_ignore_ascii_case(&plain.method)),
        ),
        (
            "headers",
            input.headers.as_ref().is_some_and(|h| !h.is_empty()),
        ),
        ("body", input.body.as_ref().is_some_and(Option::is_some)),
        (
            "accepted_status_codes",
            input.accepted_status_codes.as_ref().is_some_and(|codes| {
                codes.len() != 1
                    || StatusRange::parse(&codes[0]).ok() != Some(plain.accepted_status_codes[0])
            }),
        ),
        (
            "follow_redirects",
            input
                .follow_redirects
                .is_some_and(|f| f != plain.follow_redirects),
        ),
        (
            "max_redirects",
            input
                .max_redirects
                .is_some_and(|m| m != i64::from(plain.max_redirects)),
        ),
        (
            "ignore_tls",
            matches!(kind, MonitorKind::Push | MonitorKind::Dns) && input.ignore_tls == Some(true),
        ),
    ];
    match given.iter().find(|(_, given)| *given) {
        Some((field, _)) => Err(FieldError::new(
            *field,
            format!("is not an option of {} monitors", kind.as_str()),
        )),
        None => Ok(()),
    }
}

fn parse_headers(headers: Vec<Header>, current: &[Header]) -> Result<Vec<Header>, FieldError> {
    if headers.len() > MAX_HEADERS {
        return Err(FieldError::new(
            "headers",
            format!("must have at most {MAX_HEADERS} entries"),
        ));
    }
    headers
        .into_iter()
        .enumerate()
        .map(|(i, header)| {
            let field = |part: &str| format!("headers[{i}].{part}");
            let name = header.name.trim();
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(FieldError::new(
                    field("name"),
                    format!("`{}` is not a valid header name", shown(&header.name)),
                ));
            }
            if RESERVED_HEADERS
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name))
            {
                return Err(FieldError::new(
                    field("name"),
                    format!("`{name}` is set by the checker and cannot be given"),
                ));
            }
            let value = header.value.trim();
            if value.len() > MAX_HEADER_VALUE_BYTES {
                return Err(FieldError::new(
                    field("value"),
                    format!("must be at most {MAX_HEADER_VALUE_BYTES} bytes"),
                ));
            }
            if !value
                .bytes()
                .all(|b| b == b' ' || b == b'\t' || (0x21..=0x7e).contains(&b))
            {
                return Err(FieldError::new(
                    field("value"),
                    "must be visible ASCII characters and spaces (no control characters)",
                ));
            }
            // A masked secret sent back keeps the stored value.
            let value =
                if is_secret_header(name) && value == mask_secret(value) && value.ends_with(MASK) {
                    match current.iter().find(|h| h.name.eq_ignore_ascii_case(name)) {
                        Some(stored) => stored.value.clone(),
                        None => {
                            return Err(FieldError::new(
                                field("value"),
                                "is the masked form `***` but no value is stored for this header",
                            ))
                        }
                    }
                } else {
                    value.to_owned()
                };
            Ok(Header {
                name: name.to_owned(),
                value,
            })
        })
        .collect()
}

/// RFC 9110 token characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn parse_assertion(
    input: AssertionInput,
    at: &str,
    kind: MonitorKind,
) -> Result<Assertion, FieldError> {
    let field = |part: &str| format!("{at}.{part}");
    let source =
        AssertionSource::parse(&input.source).map_err(|p| FieldError::new(field("source"), p))?;
    if !source.applies_to(kind) {
        let names: Vec<&str> = AssertionSource::ALL
            .iter()
            .filter(|s| s.applies_to(kind))
            .map(|s| s.as_str())
            .collect();
        return Err(FieldError::new(
            field("source"),
            format!(
                "{} does not apply to a {} monitor; use one of {}",
                source.as_str(),
                kind.as_str(),
                names.join(", ")
            ),
        ));
    }
    let comparison = Comparison::parse(&input.comparison)
        .map_err(|p| FieldError::new(field("comparison"), p))?;
    let property = input
        .property
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty());
    let target = input.target.unwrap_or_default();
    for (name, text) in [
        ("property", property.as_deref().unwrap_or("")),
        ("target", &target),
    ] {
        no_control_characters(text).map_err(|p| FieldError::new(field(name), p))?;
        if text.len() > MAX_TARGET_BYTES {
            return Err(FieldError::new(
                field(name),
                format!("must be at most {MAX_TARGET_BYTES} bytes"),
            ));
        }
    }
    match (&property, source.needs_property()) {
        (None, true) => {
            let what = if source == AssertionSource::Header {
                "a header name"
            } else {
                "a JSON path such as `$.status`"
            };
            return Err(FieldError::new(
                field("property"),
                format!("is required for {} (give {what})", source.as_str()),
            ));
        }
        (Some(_), false) => {
            return Err(FieldError::new(
                field("property"),
                format!("is not used by {}; leave it out", source.as_str()),
            ))
        }
        _ => {}
    }
    if let Some(property) = &property {
        match source {
            AssertionSource::JsonBody => {
                serde_json_path::JsonPath::parse(property).map_err(|e| {
                    FieldError::new(
                        field("property"),
                        format!("is not a valid JSON path (RFC 9535): {e}"),
                    )
                })?;
            }
            AssertionSource::Header if !property.bytes().all(is_token_byte) => {
                return Err(FieldError::new(
                    field("property"),
                    format!("`{}` is not a valid header name", shown(property)),
                ))
            }
            _ => {}
        }
    }
    let allowed: &[Comparison] = if source.is_numeric() {
        &[
            Comparison::Equals,
            Comparison::NotEquals,
            Comparison::LessThan,
            Comparison::GreaterThan,
        ]
    } else {
        &Comparison::ALL
    };
    if !allowed.contains(&comparison) {
        let names: Vec<&str> = allowed.iter().map(|c| c.as_str()).collect();
        return Err(FieldError::new(
            field("comparison"),
            format!(
                "{} cannot be used with {}; use one of {}",
                comparison.as_str(),
                source.as_str(),
                names.join(", ")
            ),
        ));
    }
    if comparison.takes_target() {
        if (source.is_numeric() || comparison.is_ordering())
            && target
                .trim()
                .parse::<f64>()
                .map_or(true, |n| !n.is_finite())
        {
            return Err(FieldError::new(
                field("target"),
                format!(
                    "must be a number for {} {}",
                    source.as_str(),
                    comparison.as_str()
                ),
            ));
        }
        if comparison == Comparison::Matches {
            compile_regex(&target).map_err(|p| FieldError::new(field("target"), p))?;
        }
    } else if !target.is_empty() {
        return Err(FieldError::new(
            field("target"),
            format!("is not used by {}; leave it out", comparison.as_str()),
        ));
    }
    Ok(Assertion {
        source,
        property,
        comparison,
        target,
        warning: input.warning.unwrap_or(false),
    })
}

/// Compiles an assertion's pattern with a bounded size.
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => {
                "is a regular expression too large to run".to_owned()
            }
            other => format!(
                "is not a valid regular expression: {}",
                first_line(&other.to_string())
            ),
        })
}

fn first_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| text.lines().next().unwrap_or(""))
        .trim()
        .to_owned()
}

/// A client's text for an error message: control characters escaped, at most 64 characters.
fn shown(raw: &str) -> String {
    let mut out: String = raw.chars().take(64).flat_map(char::escape_debug).collect();
    if raw.chars().nth(64).is_some() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assertion(
        source: &str,
        property: Option<&str>,
        comparison: &str,
        target: &str,
    ) -> AssertionInput {
        AssertionInput {
            source: source.into(),
            property: property.map(Into::into),
            comparison: comparison.into(),
            target: Some(target.into()),
            warning: None,
        }
    }

    fn parse(input: SpecInput) -> Result<Option<CheckSpec>, FieldError> {
        CheckSpec::parse(input, None)
    }

    #[test]
    fn defaults_are_the_plain_check() {
        assert_eq!(parse(SpecInput::default()), Ok(None));
        let same = SpecInput {
            method: Some("get".into()),
            accepted_status_codes: Some(vec!["200-299".into()]),
            ..Default::default()
        };
        assert_eq!(parse(same), Ok(None));
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases: Vec<(SpecInput, &str, &str)> = vec![
            (
                SpecInput {
                    method: Some("FETCH".into()),
                    ..Default::default()
                },
                "method",
                "not one of",
            ),
            (
                SpecInput {
                    accepted_status_codes: Some(vec!["200".into(), "299-200".into()]),
                    ..Default::default()
                },
                "accepted_status_codes[1]",
                "ends before",
            ),
            (
                SpecInput {
                    accepted_status_codes: Some(vec!["2xx".into()]),
                    ..Default::default()
                },
                "accepted_status_codes[0]",
                "not a status code",
            ),
            (
                SpecInput {
                    body: Some(Some("x".into())),
                    ..Default::default()
                },
                "body",
                "takes no body",
            ),
            (
                SpecInput {
                    headers: Some(vec![Header {
                        name: "Bad Name".into(),
                        value: "v".into(),
                    }]),
                    ..Default::default()
                },
                "headers[0].name",
                "not a valid header name",
            ),
            (
                SpecInput {
                    headers: Some(vec![Header {
                        name: "X-A".into(),
                        value: "a\r\nb".into(),
                    }]),
                    ..Default::default()
                },
                "headers[0].value",
                "visible ASCII",
            ),
            (
                SpecInput {
                    headers: Some(vec![Header {
                        name: "Host".into(),
                        value: "x".into(),
                    }]),
                    ..Default::default()
                },
                "headers[0].name",
                "set by the checker",
            ),
            (
                SpecInput {
                    assertions: Some(vec![assertion("BODY", None, "MATCHES", "(unclosed")]),
                    ..Default::default()
                },
                "assertions[0].target",
                "not a valid regular expression",
            ),
            (
                SpecInput {
                    assertions: Some(vec![assertion(
                        "JSON_BODY",
                        Some("$.[broken"),
                        "EQUALS",
                        "up",
                    )]),
                    ..Default::default()
                },
                "assertions[0].property",
                "JSON path",
            ),
            (
                SpecInput {
                    assertions: Some(vec![assertion("STATUS_CODE", None, "CONTAINS", "20")]),
                    ..Default::default()
                },
                "assertions[0].comparison",
                "cannot be used",
            ),
            (
                SpecInput {
                    assertions: Some(vec![assertion("RESPONSE_TIME", None, "LESS_THAN", "fast")]),
                    ..Default::default()
                },
                "assertions[0].target",
                "must be a number",
            ),
            (
                SpecInput {
                    assertions: Some(vec![assertion("HEADER", None, "EQUALS", "x")]),
                    ..Default::default()
                },
                "assertions[0].property",
                "is required",
            ),
            (
                SpecInput {
                    assertions: Some(vec![assertion("SIZE", None, "EQUALS", "x")]),
                    ..Default::default()
                },
                "assertions[0].source",
                "not one of",
            ),
            (
                SpecInput {
                    max_redirects: Some(21),
                    ..Default::default()
                },
                "max_redirects",
                "0 to 20",
            ),
            (
                SpecInput {
                    degraded_after_ms: Some(Some(0)),
                    ..Default::default()
                },
                "degraded_after_ms",
                "positive",
            ),
            (
                SpecInput {
                    assertions: Some(vec![
                        assertion("BODY", None, "CONTAINS", "x");
                        MAX_ASSERTIONS + 1
                    ]),
                    ..Default::default()
                },
                "assertions",
                "at most 20",
            ),
        ];
        for (input, field, problem) in cases {
            let err = parse(input.clone()).expect_err(&format!("{input:?}"));
            assert_eq!(err.field, field, "{err:?}");
            assert!(err.problem.contains(problem), "{err:?}");
        }
    }

    #[test]
    fn secrets_are_masked_and_a_masked_value_keeps_the_stored_one() {
        let spec = parse(SpecInput {
            headers: Some(vec![
                Header {
                    name: "Authorization".into(),
                    value: "Bearer s3cret".into(),
                },
                Header {
                    name: "X-Trace".into(),
                    value: "1".into(),
                },
            ]),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        let shown = spec.masked();
        assert_eq!(shown.headers[0].value, "Bearer ***");
        assert_eq!(shown.headers[1].value, "1");
        let again = CheckSpec::parse(
            SpecInput {
                headers: Some(shown.headers.clone()),
                ..Default::default()
            },
            Some(&spec),
        )
        .unwrap()
        .unwrap();
        assert_eq!(again.headers[0].value, "Bearer s3cret");
        let json = spec.to_json();
        assert_eq!(CheckSpec::from_json(&json).unwrap(), spec);
        // An older worker refuses a field it does not know.
        assert!(
            CheckSpec::from_json(&json.replace("\"method\"", "\"novel\":1,\"method\"")).is_err()
        );
    }

    #[test]
    fn a_tcp_spec_takes_only_what_a_connection_has() {
        let tcp = |more: SpecInput| {
            parse(SpecInput {
                kind: Some(MonitorKind::Tcp),
                ..more
            })
        };
        let spec = tcp(SpecInput::default()).unwrap().unwrap();
        assert_eq!(spec.kind, MonitorKind::Tcp);
        assert!(spec.to_json().contains("\"kind\":\"TCP\""));
        assert_eq!(CheckSpec::from_json(&spec.to_json()).unwrap(), spec);
        // An HTTP spec is stored as before, without a kind.
        let http = parse(SpecInput {
            method: Some("HEAD".into()),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        assert!(!http.to_json().contains("kind"));
        let err = tcp(SpecInput {
            method: Some("POST".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.field, "method");
        assert!(
            err.problem.contains("not an option of TCP monitors"),
            "{err:?}"
        );
        let err = tcp(SpecInput {
            assertions: Some(vec![assertion("BODY", None, "CONTAINS", "x")]),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.field, "assertions[0].source");
        assert!(
            err.problem.contains("RESPONSE_TIME, CERT_EXPIRES_IN_DAYS"),
            "{err:?}"
        );
        // Defaults sent back (a monitor read and sent again) are let through.
        let again = tcp(SpecInput {
            method: Some("GET".into()),
            headers: Some(vec![]),
            accepted_status_codes: Some(vec!["200-299".into()]),
            follow_redirects: Some(true),
            max_redirects: Some(10),
            assertions: Some(vec![assertion("RESPONSE_TIME", None, "LESS_THAN", "500")]),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        assert_eq!(again.assertions.len(), 1);
        // Switching kind starts from the new kind's defaults, keeping degraded_after_ms.
        let rich = parse(SpecInput {
            method: Some("POST".into()),
            body: Some(Some("{}".into())),
            degraded_after_ms: Some(Some(800)),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        let switched = CheckSpec::parse(
            SpecInput {
                kind: Some(MonitorKind::Tcp),
                ..Default::default()
            },
            Some(&rich),
        )
        .unwrap()
        .unwrap();
        assert_eq!(switched.method, "GET");
        assert_eq!(switched.body, None);
        assert_eq!(switched.degraded_after_ms, Some(800));
        assert_eq!(MonitorKind::parse("tcp"), Ok(MonitorKind::Tcp));
        assert!(MonitorKind::parse("ICMP")
            .unwrap_err()
            .contains("HTTP, TCP"));
    }

    #[test]
    fn status_ranges() {
        let r = StatusRange::parse("200-399").unwrap();
        assert!(r.contains(302) && !r.contains(404));
        assert_eq!(StatusRange::parse(" 418 ").unwrap().to_string(), "418");
        assert!(StatusRange::parse("99").is_err());
        assert!(StatusRange::parse("600").is_err());
    }
}
