//! Which database a URL names, and how it appears in messages.

/// Which database engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database URL known to name a supported engine.
#[derive(Debug, Clone)]
pub struct DatabaseUrl {
    pub url: String,
    pub backend: Backend,
}

impl DatabaseUrl {
    /// The URL with any password replaced by `***`, for messages.
    pub fn redacted(&self) -> String {
        redact(&self.url)
    }
}

/// `url` with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme_end + 3], user, &rest[at..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_messages() {
        assert_eq!(
            redact("postgres://admin:s3cret@db:5432/monitor_db"),
            "postgres://admin:***@db:5432/monitor_db"
        );
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}
