//! The check options of a `/monitors` body (snake_case keys) read into [`SpecInput`]: types
//! checked here, naming the field with its list index; values checked by the service.

use serde_json::{Map, Value};

use domain::{
    spec::{AssertionInput, MonitorKind},
    Header, IntervalSeconds, ReminderMinutes, SpecInput, Threshold,
};

use super::body::{kind, Fields};
use crate::error::ApiError;

/// The option keys a `/monitors` body may have.
pub const SPEC_KEYS: &[&str] = &[
    "kind",
    "method",
    "headers",
    "body",
    "accepted_status_codes",
    "follow_redirects",
    "max_redirects",
    "ignore_tls",
    "assertions",
    "degraded_after_ms",
    "dns_record_type",
    "dns_resolver",
    "failure_threshold",
    "success_threshold",
    "retry_interval_seconds",
    "reminder_interval_minutes",
    "notification_channel_ids",
    "notify_degraded",
];

/// Flap control as sent: `None` keeps the stored value.
pub struct Flap {
    pub failure: Option<Threshold>,
    pub success: Option<Threshold>,
    /// `Some(None)`: cleared (sent as null).
    pub retry: Option<Option<IntervalSeconds>>,
    /// Likewise.
    pub reminder: Option<Option<ReminderMinutes>>,
    /// Replaces the channels the monitor notifies.
    pub channel_ids: Option<Vec<i64>>,
}

/// The options sent, and flap control.
pub fn parse_spec(body: &Fields) -> Result<(SpecInput, Flap), ApiError> {
    let input = SpecInput {
        kind: body
            .opt_str("kind")?
            .map(|raw| MonitorKind::parse(raw).map_err(|p| ApiError::invalid("kind", p)))
            .transpose()?,
        method: body.opt_str("method")?.map(str::to_owned),
        headers: body
            .opt_value("headers")
            .map(|v| list(v, "headers", header))
            .transpose()?,
        body: if body.has("body") {
            Some(body.opt_str("body")?.map(str::to_owned))
        } else {
            None
        },
        accepted_status_codes: body
            .opt_value("accepted_status_codes")
            .map(|v| {
                list(v, "accepted_status_codes", |item, at| match item {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(ApiError::invalid(
                        at,
                        format!("must be a string such as \"200-299\", not {}", kind(other)),
                    )),
                })
            })
            .transpose()?,
        follow_redirects: body.opt_bool("follow_redirects")?,
        max_redirects: body.opt_int("max_redirects")?,
        ignore_tls: body.opt_bool("ignore_tls")?,
        assertions: body
            .opt_value("assertions")
            .map(|v| list(v, "assertions", assertion))
            .transpose()?,
        degraded_after_ms: if body.has("degraded_after_ms") {
            Some(body.opt_int("degraded_after_ms")?)
        } else {
            None
        },
        dns_record_type: body.opt_str("dns_record_type")?.map(str::to_owned),
        dns_resolver: if body.has("dns_resolver") {
            Some(body.opt_str("dns_resolver")?.map(str::to_owned))
        } else {
            None
        },
    };
    let threshold = |key: &'static str| -> Result<Option<Threshold>, ApiError> {
        body.opt_int(key)?
            .map(|n| Threshold::parse(n).map_err(|p| ApiError::invalid(key, p)))
            .transpose()
    };
    let retry = if body.has("retry_interval_seconds") {
        Some(
            body.opt_int("retry_interval_seconds")?
                .map(|n| {
                    IntervalSeconds::parse(n)
                        .map_err(|p| ApiError::invalid("retry_interval_seconds", p))
                })
                .transpose()?,
        )
    } else {
        None
    };
    let reminder = if body.has("reminder_interval_minutes") {
        Some(
            body.opt_int("reminder_interval_minutes")?
                .map(|n| {
                    ReminderMinutes::parse(n)
                        .map_err(|p| ApiError::invalid("reminder_interval_minutes", p))
                })
                .transpose()?,
        )
    } else {
        None
    };
    let channel_ids = super::body::id_list(body, "notification_channel_ids", "channel")?;
    Ok((
        input,
        Flap {
            failure: threshold("failure_threshold")?,
            success: threshold("success_threshold")?,
            retry,
            reminder,
            channel_ids,
        },
    ))
}

fn list<T>(
    value: &Value,
    key: &str,
    item: impl Fn(&Value, String) -> Result<T, ApiError>,
) -> Result<Vec<T>, ApiError> {
    let Value::Array(items) = value else {
        return Err(ApiError::invalid(
            key.to_owned(),
            format!("must be an array, not {}", kind(value)),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| item(v, format!("{key}[{i}]")))
        .collect()
}

fn object<'a>(
    value: &'a Value,
    at: &str,
    keys: &[&str],
) -> Result<&'a Map<String, Value>, ApiError> {
    let Value::Object(map) = value else {
        return Err(ApiError::invalid(
            at.to_owned(),
            format!("must be an object, not {}", kind(value)),
        ));
    };
    if let Some(unknown) = map.keys().find(|k| !keys.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            format!("{at}.{}", unknown.chars().take(64).collect::<String>()),
            format!("is not a known field; allowed: {}", keys.join(", ")),
        ));
    }
    Ok(map)
}

fn string(
    map: &Map<String, Value>,
    at: &str,
    key: &str,
    required: bool,
) -> Result<Option<String>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) if required => {
            Err(ApiError::invalid(format!("{at}.{key}"), "is required"))
        }
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        // Targets may be sent as numbers.
        Some(Value::Number(n)) if key == "target" => Ok(Some(n.to_string())),
        Some(other) => Err(ApiError::invalid(
            format!("{at}.{key}"),
            format!("must be a string, not {}", kind(other)),
        )),
    }
}

fn header(value: &Value, at: String) -> Result<Header, ApiError> {
    let map = object(value, &at, &["name", "value"])?;
    Ok(Header {
        name: string(map, &at, "name", true)?.unwrap_or_default(),
        value: string(map, &at, "value", true)?.unwrap_or_default(),
    })
}

fn assertion(value: &Value, at: String) -> Result<AssertionInput, ApiError> {
    let map = object(
        value,
        &at,
        &["source", "property", "comparison", "target", "warning"],
    )?;
    let warning = match map.get("warning") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(ApiError::invalid(
                format!("{at}.warning"),
                format!("must be a boolean, not {}", kind(other)),
            ))
        }
    };
    Ok(AssertionInput {
        source: string(map, &at, "source", true)?.unwrap_or_default(),
        property: string(map, &at, "property", false)?,
        comparison: string(map, &at, "comparison", true)?.unwrap_or_default(),
        target: string(map, &at, "target", false)?,
        warning,
    })
}
