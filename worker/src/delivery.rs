//! The delivery job: turns incidents into deliveries (the fan-out) and sends what is due, in
//! every process that serves the API. Claims keep each delivery to one sender at a time across
//! processes; a failed send is retried with backoff and jitter until it is given up after
//! [`GIVE_UP_AFTER_HOURS`]; every attempt is recorded. Each channel's message is sent on a
//! task of its own, so a slow or dead channel delays neither the others nor the checks.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use domain::{
    notification::{retry_delay_ms, Channel, Notice, GIVE_UP_AFTER_HOURS},
    TargetPolicy,
};
use store::{AttemptOutcome, Claimed, Database};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::channels;

/// How often the job looks for work.
pub const POLL: Duration = Duration::from_millis(250);
/// How long a claim holds (well past a send's timeout): a sender that dies mid-send leaves
/// its deliveries to be sent again after it.
const LEASE_SECONDS: i64 = 60;
/// Most notices in one grouped message.
const MAX_GROUP: usize = 50;
/// Most messages being sent at once.
const MAX_SENDING: usize = 32;

/// Runs until `stop`.
pub async fn run(db: Database, policy: TargetPolicy, stop: CancellationToken) {
    let client = channels::client(&policy);
    let policy = Arc::new(policy);
    let sending = Arc::new(Semaphore::new(MAX_SENDING));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(POLL) => {}
        }
        if let Err(err) = round(&db, &client, &policy, &sending).await {
            tracing::warn!(error = %err, "notification delivery round failed; retrying");
        }
    }
}

/// One round: fan out new incidents, claim what is due, start sending it.
async fn round(
    db: &Database,
    client: &reqwest::Client,
    policy: &Arc<TargetPolicy>,
    sending: &Arc<Semaphore>,
) -> Result<(), store::Error> {
    let now = Utc::now();
    db.fan_out(now, 50).await?;
    let free = sending.available_permits();
    if free == 0 {
        return Ok(());
    }
    // No more than can start now, so no claim lapses while it waits for a slot.
    let claimed = db
        .claim_deliveries(now, chrono::Duration::seconds(LEASE_SECONDS), free as u64)
        .await?;
    for group in groups(claimed) {
        let permit = match sending.clone().acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => return Ok(()),
        };
        let (db, client, policy) = (db.clone(), client.clone(), policy.clone());
        tokio::spawn(async move {
            deliver(&db, &client, &policy, group).await;
            drop(permit);
        });
    }
    Ok(())
}

/// Claimed deliveries as messages: per channel, in order, up to [`MAX_GROUP`] notices each
/// for kinds that group, one each for the others.
fn groups(claimed: Vec<Claimed>) -> Vec<Vec<Claimed>> {
    let mut by_channel: BTreeMap<i64, Vec<Claimed>> = BTreeMap::new();
    for c in claimed {
        by_channel.entry(c.channel.id).or_default().push(c);
    }
    let mut out = Vec::new();
    for (_, list) in by_channel {
        let size = if list[0].channel.kind.groups() {
            MAX_GROUP
        } else {
            1
        };
        let mut list = list.into_iter().peekable();
        while list.peek().is_some() {
            out.push(list.by_ref().take(size).collect());
        }
    }
    out
}

/// Sends one message for `group` (one channel) and records the attempt on each delivery.
async fn deliver(
    db: &Database,
    client: &reqwest::Client,
    policy: &TargetPolicy,
    group: Vec<Claimed>,
) {
    let Some(first) = group.first() else { return };
    let channel: Channel = first.channel.clone();
    let notices: Vec<Notice> = group.iter().map(|c| c.notice.clone()).collect();
    let now = Utc::now();
    let sent = channels::deliver(client, policy, &channel, &notices, now.timestamp()).await;
    if !sent.ok {
        tracing::warn!(
            channel.id = channel.id,
            channel.kind = %channel.kind,
            error = sent.error.as_deref().unwrap_or_default(),
            "notification not delivered; will retry"
        );
    }
    for claimed in &group {
        let outcome = outcome(sent.ok, claimed.attempts, claimed.created_at, now);
        if let Err(err) = db
            .record_attempt(
                claimed.delivery_id,
                now,
                sent.duration_ms,
                sent.response_code,
                sent.error.as_deref(),
                &outcome,
            )
            .await
        {
            // The claim lapses and the delivery is tried again: at least once, never lost.
            tracing::warn!(delivery.id = claimed.delivery_id, error = %err, "attempt not recorded");
        }
    }
}

/// What a send means for a delivery made at `created_at`, tried `attempts` times.
fn outcome(
    ok: bool,
    attempts: i32,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> AttemptOutcome {
    if ok {
        return AttemptOutcome::Sent;
    }
    let next = now + chrono::Duration::milliseconds(retry_delay_ms(attempts, rand::random()));
    if next - created_at > chrono::Duration::hours(GIVE_UP_AFTER_HOURS) {
        AttemptOutcome::GiveUp
    } else {
        AttemptOutcome::Retry(next)
    }
}

/// Sends a test message on `channel` now, once (no retries), recording it as a delivery; the
/// delivery's id.
pub async fn send_test(
    db: &Database,
    policy: &TargetPolicy,
    channel: &Channel,
) -> Result<i64, store::Error> {
    let now = Utc::now();
    let notice = Notice {
        event: domain::notification::NoticeEvent::Test,
        monitor_id: 0,
        monitor_name: channel.name.clone(),
        monitor_url: String::new(),
        incident_id: None,
        started_at: None,
        resolved_at: None,
        status_code: None,
        error: None,
    };
    let id = db.insert_test_delivery(channel.id, &notice, now).await?;
    let client = channels::client(policy);
    let sent = channels::deliver(&client, policy, channel, &[notice], now.timestamp()).await;
    let outcome = if sent.ok {
        AttemptOutcome::Sent
    } else {
        AttemptOutcome::GiveUp
    };
    db.record_attempt(
        id,
        now,
        sent.duration_ms,
        sent.response_code,
        sent.error.as_deref(),
        &outcome,
    )
    .await?;
    Ok(id)
}
