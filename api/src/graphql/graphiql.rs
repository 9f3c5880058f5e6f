//! GraphiQL served by the binary itself: the page of `GET /graphql` (from our own template,
//! under a `Content-Security-Policy` of `'self'`) and its scripts and styles at
//! `GET /graphql/assets/{file}`, embedded at build time, so a browser needs no CDN. The large
//! files are embedded gzipped too, and sent so to clients accepting gzip (GraphiQL's script is
//! 3.5 MB as published, 0.7 MB gzipped).

use axum::{
    extract::{rejection::PathRejection, Path},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};

/// Where the assets are served; the page refers to them under this prefix.
pub const ASSETS_PATH: &str = "/graphql/assets/{file}";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    /// The same bytes gzipped (`gzip -9 -n`, committed beside the file), for the large ones.
    gzipped: Option<&'static [u8]>,
    /// The name carries the version: the content under it never changes.
    versioned: bool,
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

macro_rules! asset {
    ($name:literal, $content_type:expr, $versioned:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../../assets/graphiql/", $name)),
            gzipped: None,
            versioned: $versioned,
        }
    };
    ($name:literal, $content_type:expr, $versioned:literal, gzipped) => {
        Asset {
            gzipped: Some(include_bytes!(concat!(
                "../../assets/graphiql/",
                $name,
                ".gz"
            ))),
            ..asset!($name, $content_type, $versioned)
        }
    };
}

/// Every file under `/graphql/assets/` (provenance in `api/assets/graphiql/README.md`).
const ASSETS: &[Asset] = &[
    asset!("graphiql-3.8.2.min.js", JS, true, gzipped),
    asset!("graphiql-3.8.2.min.css", CSS, true, gzipped),
    asset!("react-18.3.1.production.min.js", JS, true),
    asset!("react-dom-18.3.1.production.min.js", JS, true, gzipped),
    asset!("start.js", JS, false),
    asset!("LICENSE-graphiql.txt", TEXT, false),
    asset!("LICENSE-react.txt", TEXT, false),
];

/// Cache policy of versioned names: a year, never revalidated.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Cache policy of the page and unversioned files: revalidated on every use.
const REVALIDATE: &str = "no-cache";

/// What the page may load: its own origin only, plus inline styles (GraphiQL sets them),
/// `data:` fonts and images (inlined in GraphiQL's CSS) and WebSockets for subscriptions.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; font-src 'self' data:; img-src 'self' data:; \
     connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page: title "Monitor Manager", queries at `/graphql`, subscriptions at `/graphql/ws`
/// (`start.js` turns it into ws:// or wss:// from `location`).
const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Monitor Manager</title>
<link rel="stylesheet" href="/graphql/assets/graphiql-3.8.2.min.css">
<style>html, body, #graphiql { height: 100%; margin: 0; }</style>
</head>
<body>
<div id="graphiql" data-endpoint="/graphql" data-subscriptions="/graphql/ws">Loading GraphiQL...</div>
<script src="/graphql/assets/react-18.3.1.production.min.js"></script>
<script src="/graphql/assets/react-dom-18.3.1.production.min.js"></script>
<script src="/graphql/assets/graphiql-3.8.2.min.js"></script>
<script src="/graphql/assets/start.js"></script>
</body>
</html>
"#;

/// The GraphiQL page, with its security and cache headers.
pub fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::CACHE_CONTROL, REVALIDATE),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        PAGE,
    )
        .into_response()
}

/// `GET /graphql/assets/{file}`: an embedded file (gzipped when the client accepts it and a
/// gzipped copy is embedded), or 404 JSON for any other name.
pub async fn asset(file: Result<Path<String>, PathRejection>, headers: HeaderMap) -> Response {
    let found = file
        .ok()
        .and_then(|Path(file)| ASSETS.iter().find(|asset| asset.name == file));
    let Some(asset) = found else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "no such GraphiQL asset" })),
        )
            .into_response();
    };
    let cache = if asset.versioned {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let mut response = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        asset.bytes,
    )
        .into_response();
    if let Some(gzipped) = asset.gzipped {
        let response_headers = response.headers_mut();
        response_headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        if accepts_gzip(&headers) {
            response_headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            *response.body_mut() = axum::body::Body::from(gzipped);
        }
    }
    response
}

/// Whether `Accept-Encoding` accepts gzip: listed (or `*`, when gzip is not listed) without
/// `q=0`.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for entry in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
    {
        let mut parts = entry.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let accepted = !parts.any(|param| {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            name.trim().eq_ignore_ascii_case("q")
                && value.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
        });
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(accepted);
        } else if coding == "*" {
            any = Some(accepted);
        }
    }
    gzip.or(any).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(value: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        accepts_gzip(&headers)
    }

    #[test]
    fn gzip_is_sent_only_to_clients_that_accept_it() {
        assert!(accepts("gzip, deflate, br, zstd"));
        assert!(accepts("br;q=1.0, GZIP;q=0.5"));
        assert!(accepts("*"));
        assert!(!accepts("identity"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("gzip; q=0.000, *"));
        assert!(!accepts("br, *;q=0"));
        assert!(!accepts(""));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn gzipped_copies_are_gzip() {
        for asset in ASSETS {
            if let Some(gzipped) = asset.gzipped {
                assert!(gzipped.starts_with(&[0x1f, 0x8b]), "{}", asset.name);
                // gzip's trailer ends with the uncompressed size modulo 2^32.
                let size = u32::from_le_bytes(gzipped[gzipped.len() - 4..].try_into().unwrap());
                assert_eq!(size as usize, asset.bytes.len(), "{}", asset.name);
            }
        }
    }

    #[test]
    fn every_file_the_page_loads_is_embedded() {
        for reference in PAGE.split("/graphql/assets/").skip(1) {
            let name = reference.split('"').next().unwrap_or_default();
            assert!(
                ASSETS.iter().any(|asset| asset.name == name),
                "the page loads {name}, which is not embedded"
            );
        }
    }
}
