//! Parsed monitor input. Each type can only hold a valid value, so the service layer never
//! re-checks: REST and GraphQL parse what the client sent into these, naming the field in
//! their own spelling when parsing fails.

/// Longest monitor name, in characters.
pub const NAME_MAX_CHARS: usize = 200;
/// Longest URL, in bytes.
pub const URL_MAX_BYTES: usize = 2048;
/// Largest `timeout_seconds`.
pub const TIMEOUT_MAX_SECONDS: i64 = 300;
/// Largest `interval_seconds` (one week).
pub const INTERVAL_MAX_SECONDS: i64 = 604_800;

/// A non-empty, trimmed name of at most [`NAME_MAX_CHARS`] characters without control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorName(String);

impl MonitorName {
    /// Parses a name; the error says what is wrong, without the field name.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        if name.is_empty() {
            return Err("must not be empty".into());
        }
        if name.chars().count() > NAME_MAX_CHARS {
            return Err(format!("must be at most {NAME_MAX_CHARS} characters"));
        }
        if name.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(name.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An absolute `http` or `https` URL with a host, at most [`URL_MAX_BYTES`] long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorUrl(String);

impl MonitorUrl {
    /// Parses a URL; the error says what is wrong, without the field name.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.len() > URL_MAX_BYTES {
            return Err(format!("must be at most {URL_MAX_BYTES} bytes"));
        }
        let url = url::Url::parse(raw)
            .map_err(|e| format!("must be an absolute http or https URL ({e})"))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!(
                "must be an absolute http or https URL (scheme `{}` is not supported)",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("must be an absolute http or https URL with a host".into());
        }
        // Keep what the user wrote (the parser would, say, add a trailing slash).
        Ok(Self(raw.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Seconds a whole check may take: 1 to [`TIMEOUT_MAX_SECONDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutSeconds(i32);

impl TimeoutSeconds {
    pub fn parse(raw: i64) -> Result<Self, String> {
        parse_bounded(raw, TIMEOUT_MAX_SECONDS).map(Self)
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// Seconds between two scheduled checks: 1 to [`INTERVAL_MAX_SECONDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalSeconds(i32);

impl IntervalSeconds {
    pub fn parse(raw: i64) -> Result<Self, String> {
        parse_bounded(raw, INTERVAL_MAX_SECONDS).map(Self)
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// The message used for every integer that is not in `1..=max`.
pub fn positive_int_problem(max: i64) -> String {
    format!("must be a positive integer no greater than {max}")
}

fn parse_bounded(raw: i64, max: i64) -> Result<i32, String> {
    if (1..=max).contains(&raw) {
        i32::try_from(raw).map_err(|_| positive_int_problem(max))
    } else {
        Err(positive_int_problem(max))
    }
}

/// A monitor to create.
#[derive(Debug, Clone)]
pub struct NewMonitor {
    pub name: MonitorName,
    pub url: MonitorUrl,
    pub timeout: TimeoutSeconds,
    pub interval: IntervalSeconds,
    pub active: bool,
}

/// A partial change to a monitor: `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct MonitorPatch {
    pub name: Option<MonitorName>,
    pub url: Option<MonitorUrl>,
    pub timeout: Option<TimeoutSeconds>,
    pub interval: Option<IntervalSeconds>,
    pub active: Option<bool>,
}

impl From<NewMonitor> for MonitorPatch {
    fn from(new: NewMonitor) -> Self {
        Self {
            name: Some(new.name),
            url: Some(new.url),
            timeout: Some(new.timeout),
            interval: Some(new.interval),
            active: Some(new.active),
        }
    }
}

/// Parses a resource id given as text (a path segment or a GraphQL `ID`).
pub fn parse_id(raw: &str) -> Result<i64, String> {
    match raw.trim().parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err("must be a positive integer".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            MonitorName::parse("  Google ").unwrap().into_inner(),
            "Google"
        );
        assert!(MonitorName::parse("   ").is_err());
        assert!(MonitorName::parse(&"x".repeat(NAME_MAX_CHARS + 1)).is_err());
        assert!(MonitorName::parse(&"é".repeat(NAME_MAX_CHARS)).is_ok());
        assert!(MonitorName::parse("a\u{0}b").is_err());
    }

    #[test]
    fn only_absolute_http_urls_with_a_host_are_accepted() {
        assert!(MonitorUrl::parse("https://example.com/health").is_ok());
        assert!(MonitorUrl::parse("http://127.0.0.1:8080").is_ok());
        for bad in [
            "ftp://example.com",
            "example.com",
            "/relative",
            "mailto:a@b.c",
            "http://",
            "file:///etc/passwd",
            "",
        ] {
            assert!(MonitorUrl::parse(bad).is_err(), "{bad} was accepted");
        }
        let long = format!("http://example.com/{}", "a".repeat(URL_MAX_BYTES));
        assert!(MonitorUrl::parse(&long).is_err());
    }

    #[test]
    fn durations_must_be_positive_and_bounded() {
        assert!(TimeoutSeconds::parse(0).is_err());
        assert!(TimeoutSeconds::parse(-5).is_err());
        assert!(TimeoutSeconds::parse(TIMEOUT_MAX_SECONDS + 1).is_err());
        assert_eq!(TimeoutSeconds::parse(5).unwrap().get(), 5);
        assert!(IntervalSeconds::parse(i64::MAX).is_err());
        assert_eq!(IntervalSeconds::parse(1).unwrap().get(), 1);
    }

    #[test]
    fn ids_must_be_positive_integers() {
        assert_eq!(parse_id("42"), Ok(42));
        for bad in ["0", "-1", "abc", "1.5", "", "99999999999999999999"] {
            assert!(parse_id(bad).is_err(), "{bad} was accepted");
        }
    }
}
