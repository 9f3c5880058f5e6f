//! The service's edge policy: which browser origins and `Host` names are served, and the
//! limits on connections and WebSockets. Built once from the settings; every transport reads
//! the same values.

use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue};

/// Browser origins allowed to call the API from another origin (CORS) and to open its
/// WebSockets. The page's own origin is always allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Origins {
    /// No other origin (the default).
    #[default]
    None,
    /// Any origin (`*`).
    Any,
    /// These origins, lowercased, as `scheme://host[:port]`.
    List(Vec<String>),
}

impl Origins {
    /// Parses `CORS_ALLOWED_ORIGINS`: empty for none, `*`, or comma-separated origins.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(Self::None);
        }
        if raw == "*" {
            return Ok(Self::Any);
        }
        let mut list = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let url = url::Url::parse(entry).map_err(|_| {
                format!("CORS_ALLOWED_ORIGINS: `{entry}` is not an origin such as https://app.example.com")
            })?;
            let origin = url.origin();
            if !origin.is_tuple() || !matches!(url.scheme(), "http" | "https") {
                return Err(format!(
                    "CORS_ALLOWED_ORIGINS: `{entry}` is not an http or https origin"
                ));
            }
            if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
                return Err(format!(
                    "CORS_ALLOWED_ORIGINS: `{entry}` must be an origin alone, without a path"
                ));
            }
            list.push(origin.ascii_serialization());
        }
        Ok(Self::List(list))
    }

    /// Whether `origin` (an `Origin` header's value) is one of the configured origins.
    pub fn lists(&self, origin: &str) -> bool {
        match self {
            Self::None => false,
            Self::Any => true,
            Self::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }
}

/// `Host` names the server answers to, against DNS rebinding: a page on an attacker's domain
/// that resolves to this machine sends that domain in `Host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedHosts {
    /// Any host (`*`).
    Any,
    /// IP literals, `localhost` and these names (lowercased, without port).
    Names(Vec<String>),
}

impl Default for AllowedHosts {
    fn default() -> Self {
        Self::Names(Vec::new())
    }
}

impl AllowedHosts {
    /// Parses `ALLOWED_HOSTS`: empty for the default, `*`, or comma-separated host names.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw == "*" {
            return Ok(Self::Any);
        }
        let mut names = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let name = entry.to_ascii_lowercase();
            let valid = name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '*'));
            if !valid || name.starts_with('.') || name.contains("**") {
                return Err(format!(
                    "ALLOWED_HOSTS: `{entry}` is not a host name (give names without scheme or port, such as monitor.example.com or *.example.com)"
                ));
            }
            names.push(name);
        }
        Ok(Self::Names(names))
    }

    /// Whether a request's `Host` (a name or IP literal, with or without port) is served. IP
    /// literals are always served: a rebinding page cannot make a browser send one.
    pub fn allows(&self, host: &str) -> bool {
        let names = match self {
            Self::Any => return true,
            Self::Names(names) => names,
        };
        let Some(name) = host_without_port(host) else {
            return false;
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name.parse::<std::net::IpAddr>().is_ok() || name == "localhost" {
            return true;
        }
        names
            .iter()
            .any(|allowed| match allowed.strip_prefix("*.") {
                Some(suffix) => name
                    .strip_suffix(suffix)
                    .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
                None => *allowed == name,
            })
    }
}

/// The host part of a `Host` header (`name`, `name:port`, `[v6]`, `[v6]:port`); `None` when
/// it is malformed.
pub fn host_without_port(host: &str) -> Option<&str> {
    if let Some(rest) = host.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        return match after {
            "" => Some(inside),
            port if port.strip_prefix(':').is_some_and(is_port) => Some(inside),
            _ => None,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if is_port(port) && !name.contains(':') => Some(name),
        Some(_) => None,
        None if host.is_empty() => None,
        None => Some(host),
    }
}

fn is_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

/// Limits on connections and WebSockets.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most connections open at once (HTTP and WebSocket together).
    pub max_connections: usize,
    /// Time a client has to send a request's headers (also an idle keep-alive's limit).
    pub header_read_timeout: Duration,
    /// Longest a request may take, body and answer included (not WebSockets).
    pub request_timeout: Duration,
    /// Time a GraphQL WebSocket client has to send `connection_init` (then close 4408).
    pub ws_init_timeout: Duration,
    /// Most subscriptions open on one GraphQL WebSocket.
    pub ws_max_subscriptions: usize,
    /// Largest WebSocket message a client may send, in bytes (then close 1009).
    pub ws_max_message_bytes: usize,
    /// Interval of the server's keep-alive pings; a client silent for two of them is closed.
    pub ws_keepalive: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            ws_init_timeout: Duration::from_secs(10),
            ws_max_subscriptions: 100,
            ws_max_message_bytes: 64 * 1024,
            ws_keepalive: Duration::from_secs(30),
        }
    }
}

/// Everything the edge enforces.
#[derive(Debug, Clone, Default)]
pub struct EdgeConfig {
    pub cors_allowed_origins: Origins,
    pub allowed_hosts: AllowedHosts,
    pub limits: Limits,
}

impl EdgeConfig {
    /// Whether a browser request's `Origin` may use this server: no `Origin` (not a browser,
    /// or a same-origin GET), the server's own origin (same host and port as `Host`), or a
    /// configured one.
    pub fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        same_origin(origin, headers.get(header::HOST)) || self.cors_allowed_origins.lists(origin)
    }
}

/// Whether `origin` names the host (and port) the request was sent to.
fn same_origin(origin: &str, host: Option<&HeaderValue>) -> bool {
    let Some(host) = host.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    let Some(origin_host) = url.host_str() else {
        return false;
    };
    let origin_port = url.port_or_known_default();
    let Some(request_host) = host_without_port(host) else {
        return false;
    };
    let request_port = match host.rsplit_once(':') {
        Some((_, port)) if is_port(port) && !host.ends_with(']') => port.parse().ok(),
        _ => url::Url::parse(&format!("{}://{host}", url.scheme()))
            .ok()
            .and_then(|u| u.port_or_known_default()),
    };
    let origin_host = origin_host.trim_start_matches('[').trim_end_matches(']');
    origin_host.eq_ignore_ascii_case(request_host) && origin_port == request_port
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_to_their_serialization() {
        assert_eq!(Origins::parse("").unwrap(), Origins::None);
        assert_eq!(Origins::parse(" * ").unwrap(), Origins::Any);
        assert_eq!(
            Origins::parse("https://App.example.com, http://localhost:3000").unwrap(),
            Origins::List(vec![
                "https://app.example.com".into(),
                "http://localhost:3000".into()
            ])
        );
        for bad in ["app.example.com", "ftp://x.y", "https://x.y/path", "null"] {
            assert!(Origins::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn hosts_allow_ip_literals_localhost_and_listed_names_only() {
        let hosts = AllowedHosts::parse("monitor.example.com,*.internal").unwrap();
        for ok in [
            "127.0.0.1:2433",
            "[::1]:2433",
            "10.1.2.3",
            "localhost:2433",
            "Monitor.Example.com",
            "a.internal:80",
        ] {
            assert!(hosts.allows(ok), "{ok} was refused");
        }
        for bad in [
            "evil.example:2433",
            "internal",
            "example.com",
            "",
            "a:b:c",
            "[::1",
        ] {
            assert!(!hosts.allows(bad), "{bad} was allowed");
        }
        assert!(AllowedHosts::Any.allows("anything.example"));
        assert!(AllowedHosts::parse("http://x").is_err());
    }

    #[test]
    fn the_own_origin_and_listed_origins_are_allowed() {
        let edge = EdgeConfig {
            cors_allowed_origins: Origins::parse("https://app.example.com").unwrap(),
            ..EdgeConfig::default()
        };
        let headers = |origin: &str, host: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ORIGIN, origin.parse().unwrap());
            h.insert(header::HOST, host.parse().unwrap());
            h
        };
        assert!(edge.origin_allowed(&headers("http://127.0.0.1:2433", "127.0.0.1:2433")));
        assert!(edge.origin_allowed(&headers("http://[::1]:2433", "[::1]:2433")));
        assert!(edge.origin_allowed(&headers("https://app.example.com", "127.0.0.1:2433")));
        assert!(!edge.origin_allowed(&headers("http://127.0.0.1:9999", "127.0.0.1:2433")));
        assert!(!edge.origin_allowed(&headers("https://evil.example", "127.0.0.1:2433")));
        assert!(edge.origin_allowed(&HeaderMap::new()));
    }
}
