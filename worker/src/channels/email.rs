//! Email over SMTP (lettre): in the clear (a relay on the same host), upgraded with STARTTLS
//! (which must succeed), or TLS from the first byte; with a login when one is set. Each
//! message has a plain-text and an HTML part.

use std::time::Instant;

use domain::notification::{group_text, ChannelSettings, Notice, SmtpTls};
use lettre::{
    message::{Mailbox, MultiPart},
    transport::smtp::{
        authentication::Credentials,
        client::{Tls, TlsParameters},
    },
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};

use super::{Sent, SEND_TIMEOUT};

fn subject(notices: &[Notice]) -> String {
    match notices {
        [one] => one.title(),
        many => format!("{} monitors changed", many.len()),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(notices: &[Notice]) -> String {
    let mut body = format!("<h2>{}</h2><ul>", escape(&subject(notices)));
    for notice in notices {
        body.push_str("<li>");
        body.push_str(&escape(&notice.text()));
        body.push_str("</li>");
    }
    body.push_str("</ul>");
    format!("<!doctype html><html><body>{body}</body></html>")
}

pub(super) async fn send(settings: &ChannelSettings, notices: &[Notice]) -> Sent {
    let started = Instant::now();
    let result = try_send(settings, notices).await;
    let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    match result {
        Ok(code) => Sent {
            ok: true,
            response_code: Some(code),
            error: None,
            duration_ms,
        },
        Err((code, error)) => Sent {
            ok: false,
            response_code: code,
            error: Some(error),
            duration_ms,
        },
    }
}

/// The SMTP server's final reply code, or the failure (with its code when it answered).
async fn try_send(
    settings: &ChannelSettings,
    notices: &[Notice],
) -> Result<u16, (Option<u16>, String)> {
    let bad = |what: &str, err: &dyn std::fmt::Display| (None, format!("{what}: {err}"));
    let from: Mailbox = settings
        .from
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(|e| bad("the sender address is invalid", &e))?;
    let mut builder = Message::builder().from(from).subject(subject(notices));
    for to in &settings.to {
        let to: Mailbox = to
            .parse()
            .map_err(|e| bad("a recipient address is invalid", &e))?;
        builder = builder.to(to);
    }
    let message = builder
        .multipart(MultiPart::alternative_plain_html(
            group_text(notices),
            html(notices),
        ))
        .map_err(|e| bad("the message cannot be built", &e))?;
    let host = settings.smtp_host.as_deref().unwrap_or_default();
    let tls = match settings.smtp_tls.unwrap_or_default() {
        SmtpTls::None => Tls::None,
        SmtpTls::Starttls => Tls::Required(
            TlsParameters::new(host.to_owned()).map_err(|e| bad("TLS cannot be set up", &e))?,
        ),
        SmtpTls::Tls => Tls::Wrapper(
            TlsParameters::new(host.to_owned()).map_err(|e| bad("TLS cannot be set up", &e))?,
        ),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(settings.smtp_port())
        .tls(tls)
        .timeout(Some(SEND_TIMEOUT));
    if let Some(user) = &settings.smtp_username {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            settings.smtp_password.clone().unwrap_or_default(),
        ));
    }
    let transport = builder.build();
    match tokio::time::timeout(SEND_TIMEOUT, transport.send(message)).await {
        Err(_) => Err((
            None,
            format!("no answer within {} s", SEND_TIMEOUT.as_secs()),
        )),
        Ok(Ok(response)) => Ok(u16::from(response.code())),
        Ok(Err(err)) => {
            let code = err.status().map(u16::from);
            Err((code, format!("SMTP: {err}")))
        }
    }
}
