//! Passwords in monitor URLs. A check needs the password, so it is stored as given; every read
//! shows it as [`MASK`], and a write that sends the masked form back for the same scheme, user,
//! host and port keeps the stored password (a client that reads and writes back loses nothing).

use std::{borrow::Cow, ops::Range};

use url::Url;

/// What reads show in place of a URL's password.
pub const MASK: &str = "***";

/// The URL with its password, if any, replaced by [`MASK`]; the rest as written.
pub fn mask(url: &str) -> Cow<'_, str> {
    if let Some(span) = password_span(url) {
        return Cow::Owned(format!("{}{MASK}{}", &url[..span.start], &url[span.end..]));
    }
    // A form the text scan does not recognise (`http:user:pw@host`): the parser's view decides,
    // and its normalised serialisation is shown masked.
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => match parsed.set_password(Some(MASK)) {
            Ok(()) => Cow::Owned(parsed.into()),
            Err(()) => Cow::Borrowed(url),
        },
        _ => Cow::Borrowed(url),
    }
}

/// Whether the URL's password is the [`MASK`] that reads show.
pub fn is_masked(url: &str) -> bool {
    Url::parse(url).is_ok_and(|parsed| parsed.password() == Some(MASK))
}

/// `new` with `stored`'s password in place of [`MASK`], or `None` when `new` does not carry the
/// mask or names another scheme, user, host or port than `stored` (the stored password belongs
/// to that server alone).
pub fn restore(new: &str, stored: &str) -> Option<String> {
    let new_parsed = Url::parse(new).ok()?;
    let stored_parsed = Url::parse(stored).ok()?;
    let same_server = new_parsed.password() == Some(MASK)
        && stored_parsed.password().is_some()
        && new_parsed.scheme() == stored_parsed.scheme()
        && new_parsed.username() == stored_parsed.username()
        && new_parsed.host_str() == stored_parsed.host_str()
        && new_parsed.port_or_known_default() == stored_parsed.port_or_known_default();
    if !same_server {
        return None;
    }
    match (password_span(new), password_span(stored)) {
        (Some(at), Some(from)) => Some(format!(
            "{}{}{}",
            &new[..at.start],
            &stored[from],
            &new[at.end..]
        )),
        _ => {
            let mut restored = new_parsed;
            restored.set_password(stored_parsed.password()).ok()?;
            Some(restored.into())
        }
    }
}

/// Where the non-empty password sits in `scheme://user:password@host...`: after the first `:`
/// of the user info, which ends at the authority's last `@` (as the URL standard reads it).
fn password_span(url: &str) -> Option<Range<usize>> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let authority = &rest[..rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len())];
    let at = authority.rfind('@')?;
    let colon = authority[..at].find(':')?;
    (colon + 1 < at).then(|| start + colon + 1..start + at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_and_everything_else_is_kept_as_written() {
        for (url, shown) in [
            (
                "https://user:secret@host/path",
                "https://user:***@host/path",
            ),
            (
                "http://u:p%40ss@host:8080/a?b=c#d",
                "http://u:***@host:8080/a?b=c#d",
            ),
            ("http://u:pa@ss@host/", "http://u:***@host/"),
            ("http://u:p@host?x=a:b@c", "http://u:***@host?x=a:b@c"),
            ("HTTP://u:p@Host", "HTTP://u:***@Host"),
            ("http://user@host/", "http://user@host/"),
            ("http://user:@host/", "http://user:@host/"),
            ("http://host/a:b@c", "http://host/a:b@c"),
            ("http://host/", "http://host/"),
        ] {
            assert_eq!(mask(url), shown, "{url}");
        }
        assert_eq!(mask("http:u:secret@host/x"), "http://u:***@host/x");
    }

    #[test]
    fn the_masked_form_sent_back_restores_the_stored_password() {
        let stored = "https://user:s%3Acret@host/old";
        assert_eq!(
            restore("https://user:***@host/new?q", stored).as_deref(),
            Some("https://user:s%3Acret@host/new?q")
        );
        assert_eq!(
            restore("https://user:***@host:443/old", stored).as_deref(),
            Some("https://user:s%3Acret@host:443/old")
        );
        assert!(is_masked("https://user:***@host/"));
        assert!(!is_masked("https://user:secret@host/"));
    }

    #[test]
    fn the_stored_password_goes_to_its_own_server_only() {
        let stored = "https://user:secret@host/";
        for other in [
            "http://user:***@host/",
            "https://other:***@host/",
            "https://user:***@elsewhere/",
            "https://user:***@host:8443/",
            "https://user:new@host/",
        ] {
            assert_eq!(restore(other, stored), None, "{other}");
        }
        assert_eq!(restore("https://user:***@host/", "https://host/"), None);
    }
}
