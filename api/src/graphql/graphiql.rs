//! GraphiQL served by the binary itself: the page of `GET /graphql` (from our own template,
//! under a `Content-Security-Policy` of `'self'`) and its scripts and styles at
//! `GET /graphql/assets/{file}`, embedded at build time, so a browser needs no CDN.

use axum::{
    extract::{rejection::PathRejection, Path},
    http::{header, HeaderValue, StatusCode},
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
            versioned: $versioned,
        }
    };
}

/// Every file under `/graphql/assets/` (provenance in `api/assets/graphiql/README.md`).
const ASSETS: &[Asset] = &[
    asset!("graphiql-3.8.2.min.js", JS, true),
    asset!("graphiql-3.8.2.min.css", CSS, true),
    asset!("react-18.3.1.production.min.js", JS, true),
    asset!("react-dom-18.3.1.production.min.js", JS, true),
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

/// `GET /graphql/assets/{file}`: an embedded file, or 404 JSON for any other name.
pub async fn asset(file: Result<Path<String>, PathRejection>) -> Response {
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
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(if asset.versioned {
                    IMMUTABLE
                } else {
                    REVALIDATE
                }),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        asset.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

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
