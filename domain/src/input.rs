//! Parsed monitor input. Each type can only hold a valid value, so the service layer never
//! re-checks: REST and GraphQL parse what the client sent into these, naming the field in
//! their own spelling when parsing fails.

use crate::{
    spec::{MonitorKind, SpecInput},
    state::Threshold,
};

/// Longest monitor name, in characters.
pub const NAME_MAX_CHARS: usize = 200;
/// Longest URL, in bytes.
pub const URL_MAX_BYTES: usize = 2048;
/// Largest `timeout_seconds`.
pub const TIMEOUT_MAX_SECONDS: i64 = 300;
/// Largest `interval_seconds` (one week).
pub const INTERVAL_MAX_SECONDS: i64 = 604_800;

/// A trimmed name of at most [`NAME_MAX_CHARS`] characters, with at least one visible
/// character and no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorName(String);

impl MonitorName {
    /// Parses a name; the error says what is wrong, without the field name. Control characters
    /// are looked for before trimming, so a trailing newline or tab is refused, not dropped.
    pub fn parse(raw: &str) -> Result<Self, String> {
        no_control_characters(raw)?;
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        let name = raw.trim();
        if name.chars().count() > NAME_MAX_CHARS {
            return Err(format!("must be at most {NAME_MAX_CHARS} characters"));
        }
        if !name.chars().any(is_visible) {
            return Err("must contain a visible character".into());
        }
        Ok(Self(name.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Refuses any `char::is_control` character (NUL, TAB, CR, LF, DEL, C1 controls), naming the
/// first one found.
pub fn no_control_characters(raw: &str) -> Result<(), String> {
    match raw.chars().enumerate().find(|(_, c)| c.is_control()) {
        Some((at, c)) => Err(format!(
            "must not contain control characters (U+{:04X} at character {})",
            u32::from(c),
            at + 1
        )),
        None => Ok(()),
    }
}

/// Whether a character shows something on its own: a letter, digit, punctuation mark or
/// symbol (or a private-use glyph), but not a space, a format or bidi control, a combining
/// mark, a variation selector, an unassigned code point, or one of the letters and symbols
/// that are drawn blank (the Hangul fillers, the Braille blank).
pub fn is_visible(c: char) -> bool {
    use unicode_properties::general_category::{
        GeneralCategory as G, GeneralCategoryGroup as Group, UnicodeGeneralCategory as _,
    };
    if matches!(
        c,
        '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' | '\u{2800}'
    ) {
        return false;
    }
    match c.general_category_group() {
        Group::Letter | Group::Number | Group::Punctuation | Group::Symbol => true,
        Group::Other => c.general_category() == G::PrivateUse,
        Group::Mark | Group::Separator => false,
    }
}

/// An absolute `http` or `https` URL with a host and a port other than 0, or a TCP target
/// `tcp://host:port` (`tls://host:port` for a TLS handshake) with nothing after the port; at
/// most [`URL_MAX_BYTES`] long, without control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorUrl(String);

impl MonitorUrl {
    /// Parses a URL; the error says what is wrong, without the field name.
    /// URLs are checked for control characters before parsing: the URL parser silently drops
    /// TAB, CR and LF, so `http://exa\tmple.com` would otherwise name another host.
    pub fn parse(raw: &str) -> Result<Self, String> {
        no_control_characters(raw)?;
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.len() > URL_MAX_BYTES {
            return Err(format!("must be at most {URL_MAX_BYTES} bytes"));
        }
        if let Some(token) = raw.strip_prefix(PUSH_PATH) {
            return if is_push_token(token) {
                Ok(Self(raw.to_owned()))
            } else {
                Err(
                    "is not a push URL /push/{token} (made by the service for a PUSH monitor)"
                        .into(),
                )
            };
        }
        const FORMS: &str =
            "an absolute http or https URL, tcp://host:port, tls://host:port or dns://name";
        let url = url::Url::parse(raw).map_err(|e| format!("must be {FORMS} ({e})"))?;
        let kind = MonitorKind::of_scheme(url.scheme()).ok_or_else(|| {
            format!(
                "must be {FORMS} (scheme `{}` is not supported)",
                url.scheme()
            )
        })?;
        match kind {
            MonitorKind::Tcp => return Self::parse_tcp(raw, &url),
            MonitorKind::Dns => return Self::parse_dns(raw, &url),
            _ => {}
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("must be an absolute http or https URL with a host".into());
        }
        if url.port() == Some(0) {
            return Err("must not use port 0 (no server listens there)".into());
        }
        // Keep what the user wrote (the parser would, say, add a trailing slash).
        Ok(Self(raw.to_owned()))
    }

    fn parse_tcp(raw: &str, url: &url::Url) -> Result<Self, String> {
        let form = MonitorKind::Tcp.url_forms();
        let Some(special) = special_form(raw) else {
            return Err(format!("must be {form} with a valid host"));
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("must be {form}: the host is missing"));
        }
        match url.port() {
            None => return Err(format!("must be {form}: the port is missing")),
            Some(0) => return Err("must not use port 0 (no server listens there)".into()),
            Some(_) => {}
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "must be {form}: a TCP target takes no user or password"
            ));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(format!("must be {form}, with nothing after the port"));
        }
        if special.host_str().is_none_or(str::is_empty) {
            return Err(format!("must be {form} with a valid host"));
        }
        Ok(Self(raw.to_owned()))
    }

    fn parse_dns(raw: &str, url: &url::Url) -> Result<Self, String> {
        let form = "dns://name (such as dns://example.com)";
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("must be {form}: the name is missing"));
        }
        if url.port().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
            || !matches!(url.path(), "" | "/")
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(format!(
                "must be {form}, the name alone (the resolver is dns_resolver)"
            ));
        }
        match special_form(raw).as_ref().and_then(url::Url::host) {
            Some(url::Host::Domain(name)) if !name.is_empty() => Ok(Self(raw.to_owned())),
            Some(_) => Err(format!(
                "must be {form}: an address is not a name to resolve"
            )),
            None => Err(format!("must be {form} with a valid name")),
        }
    }

    /// A DNS monitor's name to query, as DNS spells it (IDNA applied), without a final dot.
    pub fn dns_name(&self) -> Option<String> {
        if self.kind() != MonitorKind::Dns {
            return None;
        }
        match special_form(&self.0)?.host()? {
            url::Host::Domain(name) => Some(name.trim_end_matches('.').to_owned()),
            _ => None,
        }
    }

    /// A PUSH monitor's URL: the path its pushes go to.
    pub fn push(token: &str) -> Self {
        Self(format!("{PUSH_PATH}{token}"))
    }

    /// A PUSH monitor's token.
    pub fn push_token(&self) -> Option<&str> {
        push_token_of(&self.0)
    }

    /// The kind of monitor its scheme is for.
    pub fn kind(&self) -> MonitorKind {
        if self.push_token().is_some() {
            return MonitorKind::Push;
        }
        url::Url::parse(&self.0)
            .ok()
            .and_then(|u| MonitorKind::of_scheme(u.scheme()))
            .unwrap_or_default()
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Where a PUSH monitor's pushes go, followed by its token.
pub const PUSH_PATH: &str = "/push/";

/// Shortest and longest push token.
const PUSH_TOKEN_CHARS: std::ops::RangeInclusive<usize> = 16..=64;

/// Whether `token` has a push token's form (URL-safe base64 characters); says nothing of
/// whether a monitor has it.
pub fn is_push_token(token: &str) -> bool {
    PUSH_TOKEN_CHARS.contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The token of a PUSH monitor's URL (`/push/{token}`).
pub fn push_token_of(url: &str) -> Option<&str> {
    url.strip_prefix(PUSH_PATH).filter(|t| is_push_token(t))
}

/// A monitor URL parsed as the `http` or `https` URL with the same host and port:
/// `tcp://` reads as `http://` and `tls://` as `https://`, so a TCP target's host is read
/// as a web URL's is (`127.1` is the address 127.0.0.1) and vetted the same way.
pub fn special_form(raw: &str) -> Option<url::Url> {
    let (scheme, rest) = raw.split_once("://")?;
    let special = match scheme.to_ascii_lowercase().as_str() {
        "http" | "https" => return url::Url::parse(raw).ok(),
        "tcp" | "dns" => "http",
        "tls" => "https",
        _ => return None,
    };
    url::Url::parse(&format!("{special}://{rest}")).ok()
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

/// Longest time between reminders: a week.
pub const REMINDER_MAX_MINUTES: i64 = 10_080;

/// Minutes between reminders while an incident stays open: 1 to [`REMINDER_MAX_MINUTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReminderMinutes(i32);

impl ReminderMinutes {
    pub fn parse(raw: i64) -> Result<Self, String> {
        parse_bounded(raw, REMINDER_MAX_MINUTES).map(Self)
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
    /// `None` only for a PUSH monitor (the service makes its URL).
    pub url: Option<MonitorUrl>,
    pub timeout: TimeoutSeconds,
    pub interval: IntervalSeconds,
    pub active: bool,
    /// The check's options as sent; the service parses them ([`crate::CheckSpec::parse`]).
    pub spec: SpecInput,
    /// `None`: 1 for a new monitor, the stored value for a replacement.
    pub failure_threshold: Option<Threshold>,
    pub success_threshold: Option<Threshold>,
    /// How soon to check again while a change is unconfirmed; `None` keeps the stored value
    /// (none for a new monitor), `Some(None)` clears it.
    pub retry_interval: Option<Option<IntervalSeconds>>,
    /// Reminders while an incident stays open, likewise.
    pub reminder_interval: Option<Option<ReminderMinutes>>,
    /// The channels it notifies (besides the default ones); `None` keeps them.
    pub channel_ids: Option<Vec<i64>>,
    /// Tell them when it turns DEGRADED and UP again; `None` keeps it (false for a new one).
    pub notify_degraded: Option<bool>,
}

/// A partial change to a monitor: `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct MonitorPatch {
    pub name: Option<MonitorName>,
    pub url: Option<MonitorUrl>,
    pub timeout: Option<TimeoutSeconds>,
    pub interval: Option<IntervalSeconds>,
    pub active: Option<bool>,
    /// Check options as sent, applied over the stored ones by the service.
    pub spec: SpecInput,
    pub failure_threshold: Option<Threshold>,
    pub success_threshold: Option<Threshold>,
    /// `Some(None)` clears it.
    pub retry_interval: Option<Option<IntervalSeconds>>,
    /// `Some(None)` clears it.
    pub reminder_interval: Option<Option<ReminderMinutes>>,
    /// Replaces the channels it notifies.
    pub channel_ids: Option<Vec<i64>>,
    pub notify_degraded: Option<bool>,
}

impl From<NewMonitor> for MonitorPatch {
    fn from(new: NewMonitor) -> Self {
        Self {
            name: Some(new.name),
            url: new.url,
            timeout: Some(new.timeout),
            interval: Some(new.interval),
            active: Some(new.active),
            spec: new.spec,
            failure_threshold: new.failure_threshold,
            success_threshold: new.success_threshold,
            retry_interval: new.retry_interval,
            reminder_interval: new.reminder_interval,
            channel_ids: new.channel_ids,
            notify_degraded: new.notify_degraded,
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
    fn control_characters_are_refused_anywhere_in_a_name_even_at_the_ends() {
        for bad in [
            "a\u{0}b", "a\tb", "a\rb", "a\nb", "name\n", "\tname", "a\u{7F}b", "a\u{85}b",
            "a\u{9F}b",
        ] {
            let err = MonitorName::parse(bad).expect_err(bad);
            assert!(err.contains("control characters"), "{bad:?}: {err}");
        }
        assert_eq!(
            MonitorName::parse("a\tb").unwrap_err(),
            "must not contain control characters (U+0009 at character 2)"
        );
    }

    #[test]
    fn names_made_only_of_invisible_characters_are_refused() {
        for bad in [
            "\u{200B}",
            "\u{200C}\u{200D}",
            "\u{2060}",
            "\u{FEFF}",
            "\u{00AD}",
            "\u{200E}\u{200F}",
            "\u{202A}\u{202B}\u{202C}\u{202D}\u{202E}",
            "\u{2066}\u{2067}\u{2068}\u{2069}",
            "\u{FE0F}",
            "\u{E0100}",
            "\u{3164}",
            "\u{115F}\u{1160}",
            "\u{FFA0}",
            "\u{180E}",
            "\u{0301}",
            "\u{20DD}",
            "\u{2800}",
            " \u{200B} \u{034F} ",
            "\u{E0001}\u{E0041}",
        ] {
            assert_eq!(
                MonitorName::parse(bad),
                Err("must contain a visible character".to_owned()),
                "{bad:?}"
            );
        }
        for blank in [
            "   ",
            "\u{00A0}\u{2003}\u{3000}",
            "\u{2028}\u{2029}",
            " \u{205F} ",
        ] {
            assert_eq!(
                MonitorName::parse(blank),
                Err("must contain a visible character".to_owned()),
                "{blank:?}"
            );
        }
        assert_eq!(MonitorName::parse(""), Err("must not be empty".to_owned()));
    }

    #[test]
    fn names_with_a_visible_character_are_kept_whole() {
        for good in [
            "A",
            "é",
            "e\u{0301}",
            "日本",
            "🙂",
            "\u{200B}x\u{200B}",
            "\u{202E}abc",
            "-",
            "1",
            "$",
            "👍🏽",
        ] {
            assert_eq!(MonitorName::parse(good).unwrap().into_inner(), good);
        }
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
    fn tcp_targets_name_a_host_and_a_port_and_nothing_else() {
        for good in [
            "tcp://db.example.com:5432",
            "tls://127.0.0.1:993",
            "tcp://[::1]:22",
        ] {
            let url = MonitorUrl::parse(good).unwrap();
            assert_eq!(url.kind(), MonitorKind::Tcp, "{good}");
        }
        assert_eq!(
            MonitorUrl::parse("https://x.example").unwrap().kind(),
            MonitorKind::Http
        );
        for (bad, problem) in [
            ("tcp://example.com", "port is missing"),
            ("tcp://:80", "host"),
            ("tcp://example.com:0", "port 0"),
            ("tcp://example.com:80/path", "nothing after the port"),
            ("tcp://example.com:80?q=1", "nothing after the port"),
            ("tcp://user:pw@example.com:80", "no user or password"),
            ("udp://example.com:53", "not supported"),
        ] {
            let err = MonitorUrl::parse(bad).expect_err(bad);
            assert!(err.contains(problem), "{bad}: {err}");
        }
        // The host reads as a web URL's: shorthand addresses are addresses.
        let special = special_form("tcp://127.1:80").unwrap();
        assert_eq!(
            special.host(),
            Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
        );
        assert_eq!(
            special_form("tls://h.example:993").unwrap().scheme(),
            "https"
        );
    }

    #[test]
    fn urls_with_control_characters_are_refused_before_the_parser_drops_them() {
        for bad in [
            "http://exa\tmple.com/",
            "http://example.com/\r\nx",
            "http://example.com/a\u{0}b",
            "http://example.com/\n",
            "\thttp://example.com/",
        ] {
            let err = MonitorUrl::parse(bad).expect_err(bad);
            assert!(err.contains("control characters"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn port_zero_is_refused() {
        for bad in [
            "http://example.com:0/",
            "https://127.0.0.1:0",
            "http://[::1]:0/x",
        ] {
            assert_eq!(
                MonitorUrl::parse(bad),
                Err("must not use port 0 (no server listens there)".to_owned()),
                "{bad}"
            );
        }
        assert!(MonitorUrl::parse("http://example.com:1/").is_ok());
        assert!(MonitorUrl::parse("http://example.com:00080/").is_ok());
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
