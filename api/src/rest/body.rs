//! Request input for REST: a JSON-object body extractor whose every rejection is our JSON
//! error, typed field access that names the field when a value is wrong, and path ids.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::header,
};
use serde_json::{Map, Value};

use domain::parse_id;

use crate::error::ApiError;

/// Largest request body accepted, in bytes.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// A JSON object body. Rejections: 415 without a JSON content type, 413 past
/// [`BODY_LIMIT_BYTES`], 400 for malformed JSON or a body that is not an object.
#[derive(Debug)]
pub struct JsonObject(pub Fields);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge {
                    limit_bytes: BODY_LIMIT_BYTES,
                }
            } else {
                ApiError::BadRequest("could not read the request body".into())
            }
        })?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}").into()))?;
        match value {
            Value::Object(map) => Ok(Self(Fields {
                map,
                case_insensitive: false,
            })),
            other => Err(ApiError::BadRequest(
                format!("request body must be a JSON object, not {}", kind(&other)).into(),
            )),
        }
    }
}

/// The fields of a JSON object body, read by name with type checks; [`Self::allow_only`]
/// refuses keys a route does not read (a misspelt or unsupported field is not silently lost).
#[derive(Debug)]
pub struct Fields {
    map: Map<String, Value>,
    case_insensitive: bool,
}

impl Fields {
    /// Makes key look-ups ignore ASCII case (the `/services` body).
    pub fn case_insensitive(mut self) -> Self {
        self.case_insensitive = true;
        self
    }

    /// Refuses any key not in `allowed` (ignoring ASCII case when [`Self::case_insensitive`]),
    /// naming it as sent and listing the keys accepted (a key of `read_only`, one that reads
    /// show but writes cannot set, is called that), and a key sent twice in two spellings.
    pub fn allow_only(&self, allowed: &[&str], read_only: &[&str]) -> Result<(), ApiError> {
        let mut seen: Vec<(&str, &str)> = Vec::with_capacity(self.map.len());
        for key in self.map.keys() {
            let Some(known) = allowed.iter().find(|a| self.same_key(a, key)) else {
                let what = if read_only.iter().any(|r| self.same_key(r, key)) {
                    "read-only"
                } else {
                    "unknown"
                };
                return Err(ApiError::BadRequest(
                    format!(
                        "{what} field `{}`; allowed: {}",
                        shown_key(key),
                        allowed.join(", ")
                    )
                    .into(),
                ));
            };
            if let Some((_, first)) = seen.iter().find(|(k, _)| k == known) {
                return Err(ApiError::BadRequest(
                    format!(
                        "field `{known}` is given twice (as `{}` and `{}`)",
                        shown_key(first),
                        shown_key(key)
                    )
                    .into(),
                ));
            }
            seen.push((known, key));
        }
        Ok(())
    }

    fn same_key(&self, a: &str, b: &str) -> bool {
        if self.case_insensitive {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        let value = if self.case_insensitive {
            self.map
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        } else {
            self.map.get(key)
        };
        value.filter(|v| !v.is_null())
    }

    /// Whether the key was sent, null included.
    pub fn has(&self, key: &str) -> bool {
        if self.case_insensitive {
            self.map.keys().any(|k| k.eq_ignore_ascii_case(key))
        } else {
            self.map.contains_key(key)
        }
    }

    /// A field's raw value; `None` when absent or null.
    pub fn opt_value(&self, key: &str) -> Option<&Value> {
        self.get(key)
    }

    /// A string field; `None` when absent or null.
    pub fn opt_str(&self, key: &'static str) -> Result<Option<&str>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong_type(key, "a string", other)),
        }
    }

    /// An integer field; `None` when absent or null. Fractions and non-numbers are refused;
    /// integers too large for 64 bits come back as `i64::MAX` so the range check names them.
    pub fn opt_int(&self, key: &'static str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                if let Some(i) = n.as_i64() {
                    Ok(Some(i))
                } else if n.as_u64().is_some() {
                    Ok(Some(i64::MAX))
                } else {
                    match n.as_f64() {
                        Some(f) if f.fract() == 0.0 && f.is_finite() => {
                            Ok(Some(if f > 0.0 { i64::MAX } else { i64::MIN }))
                        }
                        _ => Err(ApiError::invalid(key, "must be an integer, not a fraction")),
                    }
                }
            }
            Some(other) => Err(wrong_type(key, "an integer", other)),
        }
    }

    /// A boolean field; `None` when absent or null.
    pub fn opt_bool(&self, key: &'static str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong_type(key, "a boolean", other)),
        }
    }
}

/// Makes an optional field required.
pub fn required<T>(key: &'static str, value: Option<T>) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::invalid(key, "is required"))
}

/// Parses with a domain parser, naming the field on failure.
pub fn parse_field<R, T>(
    key: &'static str,
    raw: R,
    parse: impl FnOnce(R) -> Result<T, String>,
) -> Result<T, ApiError> {
    parse(raw).map_err(|problem| ApiError::invalid(key, problem))
}

/// A resource id from the path.
pub fn path_id(raw: &str) -> Result<i64, ApiError> {
    parse_id(raw).map_err(|problem| ApiError::invalid("id", problem))
}

/// A client's key for an error message: control characters escaped, at most 64 characters.
fn shown_key(key: &str) -> String {
    let mut shown: String = key.chars().take(64).flat_map(char::escape_debug).collect();
    if key.chars().nth(64).is_some() {
        shown.push_str("...");
    }
    shown
}

fn wrong_type(key: &'static str, expected: &str, got: &Value) -> ApiError {
    ApiError::invalid(key, format!("must be {expected}, not {}", kind(got)))
}

/// What a JSON value is, for messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The ids listed under `key` (numbers, or numbers as text) of things called `what`; `None`
/// when the key is absent or null. A bad entry is named with its index (`key[2]`).
pub fn id_list(fields: &Fields, key: &str, what: &str) -> Result<Option<Vec<i64>>, ApiError> {
    let Some(value) = fields.opt_value(key) else {
        return Ok(None);
    };
    let Value::Array(items) = value else {
        return Err(ApiError::invalid(
            key.to_owned(),
            format!("must be an array of {what} ids, not {}", kind(value)),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = format!("{key}[{i}]");
            match item {
                Value::Number(n) => n
                    .as_i64()
                    .filter(|&id| id > 0)
                    .ok_or_else(|| ApiError::invalid(at, "must be a positive integer")),
                Value::String(s) => parse_id(s).map_err(|p| ApiError::invalid(at, p)),
                other => Err(ApiError::invalid(
                    at,
                    format!("must be a {what} id, not {}", kind(other)),
                )),
            }
        })
        .collect::<Result<Vec<i64>, ApiError>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: Value) -> Fields {
        match json {
            Value::Object(map) => Fields {
                map,
                case_insensitive: false,
            },
            _ => unreachable!("tests pass objects"),
        }
    }

    fn refusal(result: Result<(), ApiError>) -> String {
        result.expect_err("refused").message()
    }

    #[test]
    fn only_allowed_keys_pass_and_the_first_other_is_named() {
        let allowed = ["name", "url"];
        assert!(fields(serde_json::json!({"name": 1, "url": 2}))
            .allow_only(&allowed, &[])
            .is_ok());
        assert_eq!(
            refusal(fields(serde_json::json!({"name": 1, "Url": 2})).allow_only(&allowed, &[])),
            "unknown field `Url`; allowed: name, url"
        );
        assert_eq!(
            refusal(fields(serde_json::json!({"id": 1})).allow_only(&allowed, &["id"])),
            "read-only field `id`; allowed: name, url"
        );
    }

    #[test]
    fn ignoring_case_a_key_passes_in_any_spelling_but_only_once() {
        let allowed = ["name", "Timeout"];
        let ci = |json| fields(json).case_insensitive();
        assert!(ci(serde_json::json!({"NAME": 1, "timeout": 2}))
            .allow_only(&allowed, &[])
            .is_ok());
        assert_eq!(
            refusal(ci(serde_json::json!({"Name": 1, "name": 2})).allow_only(&allowed, &[])),
            "field `name` is given twice (as `Name` and `name`)"
        );
        assert_eq!(
            ci(serde_json::json!({"TIMEOUT": 7}))
                .opt_int("Timeout")
                .ok(),
            Some(Some(7))
        );
    }

    #[test]
    fn keys_in_messages_are_escaped_and_shortened() {
        assert_eq!(shown_key("method"), "method");
        assert_eq!(shown_key("a\nb\u{0}"), "a\\nb\\0");
        assert_eq!(shown_key(&"k".repeat(65)), format!("{}...", "k".repeat(64)));
        assert_eq!(shown_key(&"k".repeat(64)), "k".repeat(64));
    }
}
