//! Chat and push services, each in its own format: Slack and Mattermost incoming webhooks
//! (`{"text"}`), Discord webhooks (`{"content"}`, at most 2,000 characters), Microsoft Teams
//! workflow webhooks (an Adaptive Card), the Telegram Bot API (`sendMessage`), ntfy (the text
//! as the body, a title and tags as headers) and Gotify (`/message` with the app token).

use domain::notification::{group_text, ChannelKind, ChannelSettings, Notice};
use serde_json::json;

use super::Outgoing;

/// Discord's limit on `content`.
const DISCORD_MAX: usize = 2000;
/// Telegram's limit on a message's text.
const TELEGRAM_MAX: usize = 4096;

fn truncate(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        return text;
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

fn title(notices: &[Notice]) -> String {
    match notices {
        [one] => one.title(),
        many => format!("{} monitors changed", many.len()),
    }
}

pub(super) fn request(
    kind: ChannelKind,
    settings: &ChannelSettings,
    notices: &[Notice],
) -> Outgoing {
    let text = group_text(notices);
    let url = settings.url.clone();
    match kind {
        ChannelKind::Slack | ChannelKind::Mattermost => Outgoing::json(url, &json!({"text": text})),
        ChannelKind::Discord => {
            Outgoing::json(url, &json!({"content": truncate(text, DISCORD_MAX)}))
        }
        ChannelKind::Teams => Outgoing::json(
            url,
            &json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {"type": "TextBlock", "text": title(notices), "weight": "Bolder", "size": "Medium", "wrap": true},
                            {"type": "TextBlock", "text": text, "wrap": true},
                        ],
                    },
                }],
            }),
        ),
        ChannelKind::Telegram => Outgoing::json(
            format!(
                "{}/bot{}/sendMessage",
                url.trim_end_matches('/'),
                settings.token.as_deref().unwrap_or_default()
            ),
            &json!({
                "chat_id": settings.chat_id,
                "text": truncate(text, TELEGRAM_MAX),
                "disable_web_page_preview": true,
            }),
        ),
        ChannelKind::Ntfy => {
            let down = notices.iter().any(|n| n.event.is_down());
            let mut headers = vec![
                ("content-type", "text/plain; charset=utf-8".to_owned()),
                ("title", title(notices)),
                (
                    "tags",
                    if down {
                        "rotating_light"
                    } else {
                        "white_check_mark"
                    }
                    .to_owned(),
                ),
                ("priority", if down { "high" } else { "default" }.to_owned()),
            ];
            if let Some(token) = &settings.token {
                headers.push(("authorization", format!("Bearer {token}")));
            }
            Outgoing {
                url: format!(
                    "{}/{}",
                    url.trim_end_matches('/'),
                    settings.topic.as_deref().unwrap_or_default()
                ),
                headers,
                body: text.into_bytes(),
            }
        }
        ChannelKind::Gotify => {
            let down = notices.iter().any(|n| n.event.is_down());
            let mut outgoing = Outgoing::json(
                format!("{}/message", url.trim_end_matches('/')),
                &json!({"title": title(notices), "message": text, "priority": if down { 8 } else { 4 }}),
            );
            outgoing
                .headers
                .push(("x-gotify-key", settings.token.clone().unwrap_or_default()));
            outgoing
        }
        // Webhook, PagerDuty and email have modules of their own.
        ChannelKind::Webhook | ChannelKind::Pagerduty | ChannelKind::Email => {
            Outgoing::json(url, &json!({"text": text}))
        }
    }
}
