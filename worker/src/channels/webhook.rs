//! The generic webhook: a JSON body with every notice, signed with the channel's secret:
//! `X-MM-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` and `X-MM-Timestamp`
//! (Unix seconds), so a receiver can check both origin and freshness.

use domain::notification::{group_text, ChannelSettings, Notice};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::Outgoing;

pub(super) fn request(settings: &ChannelSettings, notices: &[Notice], now_unix: i64) -> Outgoing {
    let items: Vec<serde_json::Value> = notices
        .iter()
        .map(|n| {
            json!({
                "event": n.event.as_str(),
                "monitor": {"id": n.monitor_id, "name": n.monitor_name, "url": n.monitor_url},
                "incident_id": n.incident_id,
                "started_at": n.started_at,
                "resolved_at": n.resolved_at,
                "downtime_seconds": n.downtime_seconds(),
                "status_code": n.status_code,
                "error": n.error,
                "reminder": n.reminder,
                "text": n.text(),
            })
        })
        .collect();
    let body = json!({"text": group_text(notices), "notifications": items}).to_string();
    let mut outgoing = Outgoing {
        url: settings.url.clone(),
        headers: vec![("content-type", "application/json".into())],
        body: body.into_bytes(),
    };
    let secret = settings.secret.as_deref().unwrap_or_default();
    outgoing.headers.push((
        "x-mm-signature",
        signature(secret, now_unix, &outgoing.body),
    ));
    outgoing
        .headers
        .push(("x-mm-timestamp", now_unix.to_string()));
    outgoing
}

/// `sha256=` and the hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_rfc_4231_hmac_of_timestamp_dot_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = signature("Jefe", 0, b"what do ya want for nothing?");
        // Over "0.what do ...": checked against the known value of the plain data by
        // computing both ways.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"0.what do ya want for nothing?");
        assert_eq!(
            sig,
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        );
        let mut plain = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        plain.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(plain.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
