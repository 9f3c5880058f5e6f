//! Judging a response: its status code against the accepted ranges, each assertion against
//! what was observed (recording the actual value), and whether the check is degraded.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::spec::{compile_regex, Assertion, AssertionSource, CheckSpec, Comparison};

/// Longest `actual` value recorded, in characters.
pub const MAX_ACTUAL_CHARS: usize = 200;

/// One assertion's outcome on one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionResult {
    pub assertion: Assertion,
    pub passed: bool,
    /// What was found (`None` when there was nothing: no response, no such header, ...).
    pub actual: Option<String>,
}

/// What a probe saw of a response.
pub struct Observed<'a> {
    /// The final HTTP status; `None` for a check with no HTTP exchange (TCP).
    pub status_code: Option<u16>,
    pub response_time_ms: i64,
    /// The body read (at most [`crate::spec::MAX_BODY_READ_BYTES`]); `None` when not read.
    pub body: Option<&'a [u8]>,
    /// A response header's value by name (case-insensitive).
    pub header: &'a dyn Fn(&str) -> Option<String>,
    pub cert_days_left: Option<i64>,
}

/// An assertion made ready to run: its pattern or JSON path compiled once.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub assertion: Assertion,
    regex: Option<regex::Regex>,
    path: Option<serde_json_path::JsonPath>,
}

impl Prepared {
    /// `None` when the assertion cannot be compiled (never for a parsed spec).
    pub fn new(assertion: &Assertion) -> Option<Self> {
        let regex = match assertion.comparison {
            Comparison::Matches => Some(compile_regex(&assertion.target).ok()?),
            _ => None,
        };
        let path = match assertion.source {
            AssertionSource::JsonBody => {
                Some(serde_json_path::JsonPath::parse(assertion.property.as_deref()?).ok()?)
            }
            _ => None,
        };
        Some(Self {
            assertion: assertion.clone(),
            regex,
            path,
        })
    }
}

/// The verdict on one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub up: bool,
    pub degraded: bool,
    /// Why DOWN (or degraded), for the result's `error`.
    pub reason: Option<String>,
    pub results: Vec<AssertionResult>,
}

/// Judges `seen` by `spec`'s accepted status codes and `assertions` (prepared from its
/// assertions, in order).
pub fn judge(spec: &CheckSpec, assertions: &[Prepared], seen: &Observed<'_>) -> Verdict {
    let mut reason = None;
    let mut up = true;
    let mut degraded = false;
    if let Some(code) = seen.status_code.filter(|c| !spec.accepts(*c)) {
        up = false;
        reason = Some(format!("HTTP status {code}"));
    }
    // A JSON body is parsed once for every JSON assertion.
    let json: Option<Result<Value, ()>> = assertions
        .iter()
        .any(|a| a.assertion.source == AssertionSource::JsonBody)
        .then(|| {
            seen.body
                .ok_or(())
                .and_then(|b| serde_json::from_slice(b).map_err(|_| ()))
        });
    let mut results = Vec::with_capacity(assertions.len());
    for prepared in assertions {
        let (passed, actual) = evaluate(prepared, seen, json.as_ref());
        if !passed {
            let what = format!(
                "assertion failed: {} (actual {})",
                prepared.assertion,
                actual
                    .as_deref()
                    .map_or_else(|| "none".to_owned(), |a| format!("{a:?}"))
            );
            if prepared.assertion.warning {
                degraded = true;
                if reason.is_none() && up {
                    reason = Some(what);
                }
            } else if up {
                up = false;
                reason = Some(what);
            }
        }
        results.push(AssertionResult {
            assertion: prepared.assertion.clone(),
            passed,
            actual: actual.map(|a| bounded(&a)),
        });
    }
    if let Some(limit) = spec.degraded_after_ms {
        if seen.response_time_ms > i64::from(limit) {
            degraded = true;
            if reason.is_none() && up {
                reason = Some(format!(
                    "slow: {} ms, degraded after {limit} ms",
                    seen.response_time_ms
                ));
            }
        }
    }
    Verdict {
        up,
        degraded: up && degraded,
        reason,
        results,
    }
}

/// Judges assertions when no response came: each fails, with no actual value, except the
/// response time (which is known) and the certificate's days (when the handshake got one).
pub fn no_response(
    assertions: &[Prepared],
    response_time_ms: i64,
    cert_days_left: Option<i64>,
) -> Vec<AssertionResult> {
    assertions
        .iter()
        .map(|p| {
            let actual = match p.assertion.source {
                AssertionSource::ResponseTime => Some(response_time_ms.to_string()),
                AssertionSource::CertExpiresInDays => cert_days_left.map(|d| d.to_string()),
                _ => None,
            };
            AssertionResult {
                assertion: p.assertion.clone(),
                passed: false,
                actual,
            }
        })
        .collect()
}

fn evaluate(
    prepared: &Prepared,
    seen: &Observed<'_>,
    json: Option<&Result<Value, ()>>,
) -> (bool, Option<String>) {
    let a = &prepared.assertion;
    match a.source {
        AssertionSource::StatusCode => numeric(a, seen.status_code.map(f64::from)),
        AssertionSource::ResponseTime => numeric(a, Some(seen.response_time_ms as f64)),
        AssertionSource::CertExpiresInDays => numeric(a, seen.cert_days_left.map(|d| d as f64)),
        AssertionSource::Body => {
            let text = seen.body.map(String::from_utf8_lossy);
            text_compare(prepared, text.as_deref(), None)
        }
        AssertionSource::Header => {
            let name = a.property.as_deref().unwrap_or("");
            let value = (seen.header)(name);
            let number = value.as_deref().and_then(|v| v.trim().parse::<f64>().ok());
            text_compare(prepared, value.as_deref(), number)
        }
        AssertionSource::JsonBody => {
            let Some(Ok(document)) = json else {
                let passed = a.comparison == Comparison::IsEmpty;
                return (
                    passed,
                    Some("body is not JSON".to_owned()).filter(|_| seen.body.is_some()),
                );
            };
            let Some(path) = &prepared.path else {
                return (false, None);
            };
            let nodes = path.query(document).all();
            let node = match nodes.as_slice() {
                [] => None,
                [one] => Some(*one),
                _ => {
                    // Several matches compare as a JSON array of them.
                    let list = Value::Array(nodes.iter().map(|v| (*v).clone()).collect());
                    return json_compare(prepared, Some(&list));
                }
            };
            json_compare(prepared, node)
        }
    }
}

fn json_compare(prepared: &Prepared, node: Option<&Value>) -> (bool, Option<String>) {
    let text = node.map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let number = node.and_then(Value::as_f64);
    let empty = match node {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        _ => false,
    };
    let a = &prepared.assertion;
    match a.comparison {
        Comparison::IsEmpty => (empty, text),
        Comparison::NotEmpty => (!empty, text),
        _ => text_compare(prepared, text.as_deref(), number),
    }
}

/// Compares a numeric source's value; no value fails.
fn numeric(a: &Assertion, value: Option<f64>) -> (bool, Option<String>) {
    let Some(value) = value else {
        return (false, None);
    };
    let target = a.target.trim().parse::<f64>().unwrap_or(f64::NAN);
    let passed = match a.comparison {
        Comparison::Equals => value == target,
        Comparison::NotEquals => value != target,
        Comparison::LessThan => value < target,
        Comparison::GreaterThan => value > target,
        _ => false,
    };
    (passed, Some(format_number(value)))
}

/// Compares text (`number` is the text read as a number, for ordering and for numeric
/// equality: `1.0` equals `1`).
fn text_compare(
    prepared: &Prepared,
    text: Option<&str>,
    number: Option<f64>,
) -> (bool, Option<String>) {
    let a = &prepared.assertion;
    let actual = text.map(str::to_owned);
    let Some(text) = text else {
        let passed = matches!(
            a.comparison,
            Comparison::IsEmpty | Comparison::NotContains | Comparison::NotEquals
        );
        return (passed, None);
    };
    let target_number = a.target.trim().parse::<f64>().ok();
    let passed = match a.comparison {
        Comparison::Equals => match (number, target_number) {
            (Some(n), Some(t)) => n == t,
            _ => text == a.target,
        },
        Comparison::NotEquals => match (number, target_number) {
            (Some(n), Some(t)) => n != t,
            _ => text != a.target,
        },
        Comparison::LessThan => matches!((number, target_number), (Some(n), Some(t)) if n < t),
        Comparison::GreaterThan => matches!((number, target_number), (Some(n), Some(t)) if n > t),
        Comparison::Contains => text.contains(a.target.as_str()),
        Comparison::NotContains => !text.contains(a.target.as_str()),
        Comparison::Matches => prepared.regex.as_ref().is_some_and(|r| r.is_match(text)),
        Comparison::IsEmpty => text.trim().is_empty(),
        Comparison::NotEmpty => !text.trim().is_empty(),
    };
    // A body is recorded by its start, as much as the record holds.
    (passed, actual)
}

fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        value.to_string()
    }
}

/// At most [`MAX_ACTUAL_CHARS`] characters, control characters as spaces.
pub(crate) fn bounded(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_ACTUAL_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(MAX_ACTUAL_CHARS).is_some() {
        out.pop();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{AssertionInput, SpecInput};

    fn spec(assertions: &[(&str, Option<&str>, &str, &str, bool)]) -> (CheckSpec, Vec<Prepared>) {
        let input = SpecInput {
            assertions: Some(
                assertions
                    .iter()
                    .map(|(s, p, c, t, w)| AssertionInput {
                        source: (*s).into(),
                        property: p.map(Into::into),
                        comparison: (*c).into(),
                        target: Some((*t).into()).filter(|t: &String| !t.is_empty()),
                        warning: Some(*w),
                    })
                    .collect(),
            ),
            degraded_after_ms: Some(Some(500)),
            ..Default::default()
        };
        let spec = CheckSpec::parse(input, None).unwrap().unwrap();
        let prepared = spec
            .assertions
            .iter()
            .map(|a| Prepared::new(a).unwrap())
            .collect();
        (spec, prepared)
    }

    fn seen<'a>(
        code: u16,
        ms: i64,
        body: &'a [u8],
        header: &'a dyn Fn(&str) -> Option<String>,
    ) -> Observed<'a> {
        Observed {
            status_code: Some(code),
            response_time_ms: ms,
            body: Some(body),
            header,
            cert_days_left: Some(30),
        }
    }

    #[test]
    fn assertions_pass_and_fail_with_the_actual_value() {
        let headers =
            |name: &str| (name.eq_ignore_ascii_case("x-version")).then(|| "12".to_owned());
        let (s, p) = spec(&[
            ("JSON_BODY", Some("$.status"), "EQUALS", "up", false),
            ("JSON_BODY", Some("$.load"), "LESS_THAN", "0.9", false),
            ("BODY", None, "MATCHES", "^\\{", false),
            ("HEADER", Some("X-Version"), "GREATER_THAN", "10", false),
            ("CERT_EXPIRES_IN_DAYS", None, "GREATER_THAN", "14", false),
            ("STATUS_CODE", None, "EQUALS", "200", false),
        ]);
        let body = br#"{"status":"up","load":0.5}"#;
        let v = judge(&s, &p, &seen(200, 10, body, &headers));
        assert!(v.up && !v.degraded, "{v:?}");
        let actual: Vec<_> = v
            .results
            .iter()
            .map(|r| r.actual.clone().unwrap())
            .collect();
        assert_eq!(actual[0], "up");
        assert_eq!(actual[1], "0.5");
        assert_eq!(actual[3], "12");
        assert_eq!(actual[4], "30");

        let down = br#"{"status":"down","load":0.5}"#;
        let v = judge(&s, &p, &seen(200, 10, down, &headers));
        assert!(!v.up);
        assert!(!v.results[0].passed);
        assert_eq!(v.results[0].actual.as_deref(), Some("down"));
        assert_eq!(
            v.reason.as_deref(),
            Some("assertion failed: JSON_BODY $.status EQUALS \"up\" (actual \"down\")")
        );
        let v = judge(&s, &p, &seen(200, 10, b"<html>error</html>", &headers));
        assert!(!v.up);
        assert_eq!(v.results[0].actual.as_deref(), Some("body is not JSON"));
    }

    #[test]
    fn warnings_and_slowness_degrade_without_taking_the_monitor_down() {
        let none = |_: &str| None;
        let (s, p) = spec(&[("BODY", None, "CONTAINS", "ok", true)]);
        let v = judge(&s, &p, &seen(200, 10, b"fine", &none));
        assert!(v.up && v.degraded);
        let v = judge(&s, &p, &seen(200, 900, b"ok", &none));
        assert!(v.up && v.degraded);
        assert_eq!(
            v.reason.as_deref(),
            Some("slow: 900 ms, degraded after 500 ms")
        );
        let v = judge(&s, &p, &seen(503, 10, b"ok", &none));
        assert!(!v.up && !v.degraded);
        assert_eq!(v.reason.as_deref(), Some("HTTP status 503"));
    }

    #[test]
    fn missing_values() {
        let none = |_: &str| None;
        let (s, p) = spec(&[
            ("HEADER", Some("X-Gone"), "IS_EMPTY", "", false),
            ("JSON_BODY", Some("$.missing"), "IS_EMPTY", "", false),
            ("JSON_BODY", Some("$.list[*]"), "CONTAINS", "b", false),
        ]);
        let v = judge(&s, &p, &seen(200, 1, br#"{"list":["a","b"]}"#, &none));
        assert!(v.up, "{v:?}");
        assert_eq!(v.results[2].actual.as_deref(), Some(r#"["a","b"]"#));
    }
}
