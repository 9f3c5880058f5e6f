//! PagerDuty Events API v2: `trigger` on DOWN and `resolve` on UP, keyed by the incident
//! (`dedup_key`), so PagerDuty's own incident opens and closes with ours. Never grouped.

use domain::notification::{ChannelSettings, Notice, NoticeEvent};
use serde_json::json;

use super::Outgoing;

pub(super) fn request(settings: &ChannelSettings, notice: &Notice) -> Outgoing {
    let dedup_key = match (notice.incident_id, notice.event) {
        (Some(id), _) => format!("monitor-manager-incident-{id}"),
        (None, NoticeEvent::Degraded | NoticeEvent::Recovered) => {
            format!("monitor-manager-degraded-{}", notice.monitor_id)
        }
        (None, _) => format!("monitor-manager-test-{}", notice.monitor_id),
    };
    let action = match notice.event {
        NoticeEvent::Up | NoticeEvent::Recovered => "resolve",
        NoticeEvent::Degraded => "trigger",
        // PagerDuty folds a repeated trigger into the open alert (same key).
        NoticeEvent::Down | NoticeEvent::Reminder | NoticeEvent::Test => "trigger",
    };
    let severity = match notice.event {
        NoticeEvent::Test => "info",
        NoticeEvent::Degraded | NoticeEvent::Recovered => "warning",
        _ => "critical",
    };
    Outgoing::json(
        settings.url.clone(),
        &json!({
            "routing_key": settings.routing_key,
            "event_action": action,
            "dedup_key": dedup_key,
            "payload": {
                "summary": notice.text(),
                "source": notice.monitor_url,
                "severity": severity,
                "component": notice.monitor_name,
                "custom_details": {
                    "monitor_id": notice.monitor_id,
                    "status_code": notice.status_code,
                    "error": notice.error,
                    "downtime_seconds": notice.downtime_seconds(),
                },
            },
        }),
    )
}
