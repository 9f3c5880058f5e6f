//! GraphQL types of check options and their outcomes: kinds, states, headers, assertions,
//! phase timings and certificates.

use async_graphql::{Enum, InputObject, SimpleObject};

use super::types::Timestamp;

/// What a monitor checks.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::MonitorKind")]
pub enum MonitorKind {
    /// An HTTP request to the URL.
    Http,
    /// A TCP connection to `tcp://host:port`, with a TLS handshake for `tls://host:port`.
    Tcp,
    /// A DNS query for `dns://name` (`dnsRecordType`, to `dnsResolver` or the system's).
    Dns,
    /// The monitored thing calls `GET` or `POST /push/{token}`; DOWN when no push comes
    /// within the interval plus `timeoutSeconds` of grace.
    Push,
}

/// The record type a DNS monitor asks for.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::spec::DnsRecordType")]
pub enum DnsRecordType {
    A,
    Aaaa,
    Cname,
    Mx,
    Txt,
    Ns,
}

/// A monitor's state: its confirmed status (after flap control), or why it has none.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::MonitorState")]
pub enum MonitorState {
    Up,
    Down,
    /// Not checked yet, or a change not yet confirmed by the thresholds.
    Pending,
    /// Up, but slower than `degradedAfterMs` or failing a warning assertion.
    Degraded,
    /// Not checked (inactive).
    Paused,
    Maintenance,
}

/// What an assertion looks at.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::spec::AssertionSource")]
pub enum AssertionSource {
    StatusCode,
    /// Milliseconds for the whole check.
    ResponseTime,
    /// The body as text (at most 1 MiB is read).
    Body,
    /// A value in a JSON body, chosen by `property` (an RFC 9535 JSON path).
    JsonBody,
    /// The response header named by `property`.
    Header,
    /// Whole days until the server's certificate expires.
    CertExpiresInDays,
}

/// How an assertion compares what it found with its target.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::spec::Comparison")]
pub enum Comparison {
    Equals,
    NotEquals,
    LessThan,
    GreaterThan,
    Contains,
    NotContains,
    /// A regular expression (Rust `regex` syntax).
    Matches,
    IsEmpty,
    NotEmpty,
}

/// A request header.
#[derive(SimpleObject, Clone)]
pub struct Header {
    pub name: String,
    /// Secret headers (Authorization, Cookie, API keys) read back masked.
    pub value: String,
}

/// A request header to send.
#[derive(InputObject, Clone)]
pub struct HeaderInput {
    pub name: String,
    /// Sending back the masked value keeps the stored one.
    pub value: String,
}

/// A condition a response must meet.
#[derive(SimpleObject, Clone)]
pub struct Assertion {
    pub source: AssertionSource,
    /// The JSON path or header name, where the source needs one.
    pub property: Option<String>,
    pub comparison: Comparison,
    pub target: String,
    /// A failed warning makes the check degraded instead of DOWN.
    pub warning: bool,
}

/// A condition to check on each response.
#[derive(InputObject, Clone)]
pub struct AssertionInput {
    pub source: AssertionSource,
    pub property: Option<String>,
    pub comparison: Comparison,
    pub target: Option<String>,
    #[graphql(default = false)]
    pub warning: bool,
}

/// One assertion's outcome on one check.
#[derive(SimpleObject, Clone)]
pub struct AssertionResult {
    pub assertion: Assertion,
    pub passed: bool,
    /// What was found; null when there was nothing to look at.
    pub actual: Option<String>,
}

/// Milliseconds per phase of a check (null where the phase did not happen), summed over
/// redirect hops.
#[derive(SimpleObject, Clone, Copy)]
pub struct CheckTimings {
    pub dns_ms: Option<i32>,
    pub connect_ms: Option<i32>,
    pub tls_ms: Option<i32>,
    /// From the request sent to the response head.
    pub first_byte_ms: Option<i32>,
    pub total_ms: i32,
}

/// The certificate the server presented.
#[derive(SimpleObject, Clone)]
pub struct TlsCertificate {
    pub subject: String,
    pub issuer: String,
    pub not_after: Timestamp,
    /// Whole days from the check to `notAfter` (negative once expired).
    pub days_left: i64,
}

impl From<&domain::Assertion> for Assertion {
    fn from(a: &domain::Assertion) -> Self {
        Self {
            source: a.source.into(),
            property: a.property.clone(),
            comparison: a.comparison.into(),
            target: a.target.clone(),
            warning: a.warning,
        }
    }
}

impl From<AssertionInput> for domain::spec::AssertionInput {
    fn from(a: AssertionInput) -> Self {
        Self {
            source: domain::spec::AssertionSource::from(a.source)
                .as_str()
                .to_owned(),
            property: a.property,
            comparison: domain::spec::Comparison::from(a.comparison)
                .as_str()
                .to_owned(),
            target: a.target,
            warning: Some(a.warning),
        }
    }
}

impl From<&domain::AssertionResult> for AssertionResult {
    fn from(r: &domain::AssertionResult) -> Self {
        Self {
            assertion: (&r.assertion).into(),
            passed: r.passed,
            actual: r.actual.clone(),
        }
    }
}

/// A snake_case field path from the service (`assertions[0].target`) in GraphQL's
/// camelCase (`assertions[0].target`, `acceptedStatusCodes[1]`).
pub fn camel_case_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut upper = false;
    for c in path.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}
