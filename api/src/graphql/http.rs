//! GraphQL over HTTP, as the GraphQL-over-HTTP spec and the common clients expect:
//! `POST /graphql` with a JSON body only (a form or text body could be sent by any web page),
//! `GET /graphql?query=` for queries (mutations get 405), GraphiQL for a browser asking for
//! HTML, Apollo's automatic persisted queries, and the document limits of [`super::limits`].

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Request, ServerError, Variables};
use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, RawQuery, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use hashlink::LruCache;
use sha2::{Digest, Sha256};

use super::limits::{self, syntax_error, with_code};
use crate::AppState;

/// Most query documents kept parsed.
const CACHED_DOCUMENTS: usize = 128;
/// Longest query text kept parsed, in bytes: with the count above, at most about 15 MB of
/// parsed documents whatever clients send (a 1 KiB query of bare fields parses to about 100 KB).
const MAX_CACHED_QUERY: usize = 1024;
/// Largest `POST /graphql` body, in bytes: a query at its limit with room for variables.
pub const BODY_LIMIT_BYTES: usize = 128 * 1024;
/// Most persisted queries kept, each at most [`limits::MAX_QUERY_BYTES`]: at most 16 MiB.
const PERSISTED_QUERIES: usize = 512;

/// The media type of a GraphQL response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    /// `application/json`: 200 for every well-formed request, errors in the body.
    Json,
    /// `application/graphql-response+json`: 400 when the request failed before execution.
    GraphqlResponse,
}

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

impl Media {
    fn accepted(headers: &HeaderMap) -> Self {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if accept.to_ascii_lowercase().contains(GRAPHQL_RESPONSE) {
            Self::GraphqlResponse
        } else {
            Self::Json
        }
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Json => "application/json",
            Self::GraphqlResponse => GRAPHQL_RESPONSE,
        })
    }
}

/// `POST /graphql`: one operation in a JSON body.
pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let media = Media::accepted(&headers);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if !matches!(
        content_type.as_deref(),
        Some("application/json" | GRAPHQL_RESPONSE)
    ) {
        return request_failure(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            media,
            "POST /graphql needs Content-Type: application/json with a body {\"query\": ...}",
        );
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return request_failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                media,
                &format!("request body is over the limit of {BODY_LIMIT_BYTES} bytes"),
            )
        }
        Err(_) => {
            return request_failure(
                StatusCode::BAD_REQUEST,
                media,
                "could not read the request body",
            )
        }
    };
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(err) => {
            return request_failure(
                StatusCode::BAD_REQUEST,
                media,
                &format!("request body is not valid JSON: {err}"),
            )
        }
    };
    if value.is_array() {
        return request_failure(
            StatusCode::BAD_REQUEST,
            media,
            "batched requests are not supported: send one operation per request",
        );
    }
    let request: Request = match serde_json::from_value(value) {
        Ok(request) => request,
        Err(err) => {
            return request_failure(
                StatusCode::BAD_REQUEST,
                media,
                &format!("request body is not a GraphQL request: {err}"),
            )
        }
    };
    execute(&state, request, media, false).await
}

/// `GET /graphql`: GraphiQL for a browser asking for HTML, else a query from the URL.
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let media = Media::accepted(&headers);
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let asks_for_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.to_ascii_lowercase().contains("text/html"));
    if asks_for_html && param("query").is_none() && param("extensions").is_none() {
        return super::graphiql().await.into_response();
    }
    let mut request = Request::new(param("query").unwrap_or(""));
    if let Some(name) = param("operationName").filter(|n| !n.is_empty()) {
        request = request.operation_name(name);
    }
    for (name, raw) in [
        ("variables", param("variables")),
        ("extensions", param("extensions")),
    ] {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            continue;
        };
        let value = match serde_json::from_str::<serde_json::Value>(raw) {
            Ok(value @ serde_json::Value::Object(_)) => value,
            _ => {
                return request_failure(
                    StatusCode::BAD_REQUEST,
                    media,
                    &format!("the `{name}` parameter must be a JSON object"),
                )
            }
        };
        if name == "variables" {
            request = request.variables(Variables::from_json(value));
        } else if let Ok(extensions) = serde_json::from_value(value) {
            request.extensions = extensions;
        }
    }
    execute(&state, request, media, true).await
}

/// Resolves a persisted query, checks the limits, runs the request and shapes the answer.
async fn execute(state: &AppState, mut request: Request, media: Media, over_get: bool) -> Response {
    let persisted = match state.persisted.resolve(&mut request) {
        Ok(persisted) => persisted,
        Err(error) => return errors_response(vec![error], media, StatusCode::OK),
    };
    if request.query.is_empty() {
        return request_failure(
            StatusCode::BAD_REQUEST,
            media,
            "the request has no query: give `query` (or a known persisted query hash)",
        );
    }
    if let Err(error) = limits::check_text(&request.query) {
        return errors_response(vec![error], media, StatusCode::BAD_REQUEST);
    }
    let fresh = match state.documents.prepare(&mut request) {
        Ok(fresh) => fresh,
        Err(error) => return errors_response(vec![error], media, StatusCode::BAD_REQUEST),
    };
    if let Some((_, document)) = &fresh {
        if let Err(error) = limits::check_document(document) {
            return errors_response(vec![error], media, StatusCode::BAD_REQUEST);
        }
    }
    if over_get {
        let name = request.operation_name.clone();
        let mutation = match &fresh {
            Some((_, document)) => is_mutation(document, name.as_deref()),
            None => request
                .parsed_query()
                .is_ok_and(|document| is_mutation(document, name.as_deref())),
        };
        if mutation {
            let mut response = errors_response(
                vec![with_code(
                    ServerError::new(
                        "mutations are not allowed over GET: send them with POST",
                        None,
                    ),
                    "BAD_USER_INPUT",
                )],
                media,
                StatusCode::METHOD_NOT_ALLOWED,
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
    }
    let query = persisted.map(|hash| (hash, request.query.clone()));
    let mut response = state.schema.execute(request).await;
    let executed =
        response.errors.is_empty() || !matches!(response.data, async_graphql::Value::Null);
    if response.errors.is_empty() {
        if let Some(fresh) = fresh {
            state.documents.keep(fresh);
        }
    }
    if executed {
        if let Some((hash, query)) = query {
            state.persisted.keep(hash, query);
        }
    }
    for error in &mut response.errors {
        limits::explain(error);
    }
    let status = if media == Media::GraphqlResponse && !executed {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut answer = json_response(&response, media, status);
    answer.headers_mut().extend(response.http_headers);
    answer
}

/// Whether the operation the request selects is a mutation.
fn is_mutation(document: &ExecutableDocument, operation_name: Option<&str>) -> bool {
    document.operations.iter().any(|(name, operation)| {
        let selected = match operation_name {
            Some(wanted) => name.is_some_and(|n| n.as_str() == wanted),
            None => true,
        };
        selected && operation.node.ty == OperationType::Mutation
    })
}

/// A request that could not run at all: a GraphQL-shaped error body.
fn request_failure(status: StatusCode, media: Media, message: &str) -> Response {
    let response = async_graphql::Response::from_errors(vec![with_code(
        ServerError::new(message, None),
        "BAD_USER_INPUT",
    )]);
    json_response(&response, media, status)
}

fn errors_response(errors: Vec<ServerError>, media: Media, status: StatusCode) -> Response {
    let response = async_graphql::Response::from_errors(errors);
    // Under application/json a well-formed request is answered 200, whatever its errors.
    let status = match (media, status) {
        (Media::Json, StatusCode::BAD_REQUEST) => StatusCode::OK,
        _ => status,
    };
    json_response(&response, media, status)
}

fn json_response(response: &async_graphql::Response, media: Media, status: StatusCode) -> Response {
    match serde_json::to_vec(response) {
        Ok(body) => (status, [(header::CONTENT_TYPE, media.content_type())], body).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "cannot serialize a GraphQL response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Parsed query documents, by query text, least recently used dropped first. Clients send the
/// same few queries again and again (a dashboard polls with one), and async-graphql's parser
/// is a tenth of such a read's CPU; a cached document is cloned instead. A document is cached
/// only once a request with it got an answer without errors, so queries that fail to parse,
/// pass the limits or validate never take a place. The checks that depend on more than the
/// text (complexity with the request's variables, the rest of validation) run for every
/// request.
#[derive(Clone)]
pub struct DocumentCache(Arc<Mutex<LruCache<String, ExecutableDocument>>>);

impl Default for DocumentCache {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(LruCache::new(CACHED_DOCUMENTS))))
    }
}

/// A document parsed for a request, to keep if the request succeeds.
type Fresh = (String, ExecutableDocument);

impl DocumentCache {
    /// Gives `request` its cached document (`Ok(None)`), or parses it and returns the fresh
    /// parse (`Ok(Some)`) for [`DocumentCache::keep`] and the document limits.
    pub fn prepare(&self, request: &mut Request) -> Result<Option<Fresh>, ServerError> {
        if request.query.len() <= MAX_CACHED_QUERY {
            let cached = lock(&self.0).get(&request.query).cloned();
            if let Some(document) = cached {
                request.set_parsed_query(document);
                return Ok(None);
            }
        }
        let document = async_graphql::parser::parse_query(&request.query).map_err(syntax_error)?;
        request.set_parsed_query(document.clone());
        Ok(Some((request.query.clone(), document)))
    }

    /// Keeps a document that [`DocumentCache::prepare`] parsed.
    pub fn keep(&self, (query, document): Fresh) {
        if query.len() <= MAX_CACHED_QUERY {
            lock(&self.0).insert(query, document);
        }
    }
}

/// Apollo's automatic persisted queries: a client sends a query's SHA-256 alone, and the full
/// text only when the server does not know the hash yet.
#[derive(Clone)]
pub struct PersistedQueries(Arc<Mutex<LruCache<[u8; 32], String>>>);

impl Default for PersistedQueries {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(LruCache::new(PERSISTED_QUERIES))))
    }
}

impl PersistedQueries {
    /// Fills in the query of a request that names a known hash. Returns the hash to keep once
    /// the query ran; errors as Apollo's link expects (`PERSISTED_QUERY_NOT_FOUND` makes it
    /// send the full text).
    fn resolve(&self, request: &mut Request) -> Result<Option<[u8; 32]>, ServerError> {
        let Some(extension) = request.extensions.get("persistedQuery") else {
            return Ok(None);
        };
        let extension = extension.clone().into_json().unwrap_or_default();
        if extension.get("version").and_then(|v| v.as_i64()) != Some(1) {
            return Err(apq_error(
                "PERSISTED_QUERY_NOT_SUPPORTED",
                "unsupported persisted query version: only version 1 is supported",
            ));
        }
        let hash = extension
            .get("sha256Hash")
            .and_then(|v| v.as_str())
            .and_then(|hex_hash| hex::decode(hex_hash).ok())
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| {
                apq_error(
                    "BAD_USER_INPUT",
                    "persistedQuery.sha256Hash must be 64 hexadecimal digits",
                )
            })?;
        if request.query.is_empty() {
            let known = lock(&self.0).get(&hash).cloned();
            return match known {
                Some(query) => {
                    request.query = query;
                    Ok(None)
                }
                None => Err(apq_error(
                    "PERSISTED_QUERY_NOT_FOUND",
                    "PersistedQueryNotFound",
                )),
            };
        }
        if Sha256::digest(request.query.as_bytes())[..] != hash {
            return Err(apq_error(
                "BAD_USER_INPUT",
                "persistedQuery.sha256Hash is not the SHA-256 of the query",
            ));
        }
        Ok(Some(hash))
    }

    fn keep(&self, hash: [u8; 32], query: String) {
        if query.len() <= limits::MAX_QUERY_BYTES {
            lock(&self.0).insert(hash, query);
        }
    }
}

fn apq_error(code: &str, message: &str) -> ServerError {
    with_code(ServerError::new(message, None), code)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
