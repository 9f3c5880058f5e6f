//! The delivery job: turns incidents into deliveries (the fan-out) and sends what is due, in
//! every process that serves the API. Claims keep each delivery to one sender at a time across
//! processes; a failed send is retried with backoff and jitter until it is given up after
//! [`GIVE_UP_AFTER_HOURS`]; every attempt is recorded. Each channel's message is sent on a
//! task of its own, so a slow or dead channel delays neither the others nor the checks.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use domain::{
    maintenance::Calendar,
    notification::{retry_delay_ms, Channel, Notice, GIVE_UP_AFTER_HOURS},
    TargetPolicy,
};
use store::{AttemptOutcome, Claimed, Database};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::channels;

/// How often the job looks for work.
pub const POLL: Duration = Duration::from_millis(250);
/// How long a claim holds (past a send's timeout plus a channel's gap): a sender that dies
/// mid-send leaves its deliveries to be sent again after it.
const LEASE_SECONDS: i64 = 45;
/// Most notices in one grouped message.
const MAX_GROUP: usize = 1000;
/// Most messages being sent at once.
const MAX_SENDING: usize = 32;
/// Most deliveries held here at once (claimed, waiting for their channel).
const MAX_HELD: usize = 2000;
/// How long a claimed delivery may wait here for its channel: past it, it is let go unsent
/// (another claim takes it once the lease ends). With the longest send (10 s, an email's name
/// lookup 5 s more) and a wait for the write lock to record it (10 s), a send that starts
/// within this never outlives its claim.
const HOLD_LIMIT: Duration = Duration::from_secs(10);
/// The least time between two messages on a channel that groups: what comes meanwhile waits
/// and goes as one message, so a storm of changes is a few messages, not hundreds.
pub const CHANNEL_GAP: Duration = Duration::from_secs(5);

/// A channel's queue in this process: what is claimed for it, what is on its way, and
/// whether a message is.
#[derive(Default)]
struct Lane {
    /// Claimed deliveries, each with when it was claimed.
    held: Vec<(Instant, Claimed)>,
    /// Deliveries being sent (a claim renewed meanwhile is not held again).
    in_flight: HashSet<i64>,
    busy: bool,
    last_start: Option<Instant>,
}

type Lanes = Arc<Mutex<HashMap<i64, Lane>>>;

/// Frees a lane when its message is done, however the send ended (a panic included).
struct Sending {
    lanes: Lanes,
    channel: i64,
    ids: Vec<i64>,
}

impl Drop for Sending {
    fn drop(&mut self) {
        if let Some(lane) = lock(&self.lanes).get_mut(&self.channel) {
            lane.busy = false;
            for id in &self.ids {
                lane.in_flight.remove(id);
            }
        }
    }
}

/// Runs until `stop`. Reminders are not sent for monitors `calendar` has in maintenance.
pub async fn run(db: Database, policy: TargetPolicy, calendar: Calendar, stop: CancellationToken) {
    let client = channels::client(&policy);
    let policy = Arc::new(policy);
    let sending = Arc::new(Semaphore::new(MAX_SENDING));
    let lanes: Lanes = Arc::default();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(POLL) => {}
        }
        if let Err(err) = round(&db, &client, &policy, &calendar, &sending, &lanes).await {
            tracing::warn!(error = %err, "notification delivery round failed; retrying");
        }
    }
}

/// One round: fan out new incidents, due reminders and degraded changes, claim what is due,
/// and start a
/// message on each channel that is free.
async fn round(
    db: &Database,
    client: &reqwest::Client,
    policy: &Arc<TargetPolicy>,
    calendar: &Calendar,
    sending: &Arc<Semaphore>,
    lanes: &Lanes,
) -> Result<(), store::Error> {
    let now = Utc::now();
    db.fan_out(now, 500).await?;
    db.remind(now, 100, |monitor| calendar.covers(monitor, now))
        .await?;
    db.tell_degraded(now, 500).await?;
    let held: usize = lock(lanes).values().map(|l| l.held.len()).sum();
    if held < MAX_HELD {
        // The lease counts from here, as does the time a claim may be held.
        let (claimed_at, at) = (Utc::now(), Instant::now());
        let claimed = db
            .claim_deliveries(
                claimed_at,
                chrono::Duration::seconds(LEASE_SECONDS),
                (MAX_HELD - held) as u64,
            )
            .await?;
        let mut all = lock(lanes);
        for c in claimed {
            let lane = all.entry(c.channel.id).or_default();
            // A claim renewed after it lapsed here is held (or sent) once.
            let known = lane.in_flight.contains(&c.delivery_id)
                || lane
                    .held
                    .iter()
                    .any(|(_, h)| h.delivery_id == c.delivery_id);
            if !known {
                lane.held.push((at, c));
            }
        }
    }
    for (permit, group) in ready(lanes, sending) {
        let (db, client, policy) = (db.clone(), client.clone(), policy.clone());
        let Some(channel) = group.first().map(|c| c.channel.id) else {
            continue;
        };
        let guard = Sending {
            lanes: lanes.clone(),
            channel,
            ids: group.iter().map(|c| c.delivery_id).collect(),
        };
        tokio::spawn(async move {
            let _guard = guard;
            let _permit = permit;
            deliver(&db, &client, &policy, group).await;
        });
    }
    Ok(())
}

/// The messages that may start now, each with its sending permit: per free channel whose gap
/// has passed, what it holds, in order, up to [`MAX_GROUP`] notices for kinds that group, one
/// for the others (PagerDuty keys each by its incident, so it has no gap either).
fn ready(
    lanes: &Lanes,
    sending: &Arc<Semaphore>,
) -> Vec<(tokio::sync::OwnedSemaphorePermit, Vec<Claimed>)> {
    let mut out = Vec::new();
    let mut all = lock(lanes);
    all.retain(|_, lane| {
        lane.busy
            || !lane.held.is_empty()
            || lane.last_start.is_some_and(|at| at.elapsed() < CHANNEL_GAP)
    });
    // The lane whose oldest claim is oldest first, so no channel waits on the others' turns.
    let mut order: Vec<(Instant, i64)> = all
        .iter_mut()
        .filter_map(|(&id, lane)| {
            lane.held.retain(|(at, _)| at.elapsed() < HOLD_LIMIT);
            lane.held.first().map(|(at, _)| (*at, id))
        })
        .collect();
    order.sort_unstable();
    for (_, id) in order {
        let Some(lane) = all.get_mut(&id) else {
            continue;
        };
        let Some((_, first)) = lane.held.first() else {
            continue;
        };
        if !first.channel.kind.groups() {
            // One message each, as many at once as there are permits.
            while !lane.held.is_empty() {
                let Ok(permit) = sending.clone().try_acquire_owned() else {
                    return out;
                };
                let (_, one) = lane.held.remove(0);
                lane.in_flight.insert(one.delivery_id);
                out.push((permit, vec![one]));
            }
            continue;
        }
        if lane.busy || lane.last_start.is_some_and(|at| at.elapsed() < CHANNEL_GAP) {
            continue;
        }
        let Ok(permit) = sending.clone().try_acquire_owned() else {
            break;
        };
        let group: Vec<Claimed> = lane
            .held
            .drain(..MAX_GROUP.min(lane.held.len()))
            .map(|(_, c)| c)
            .collect();
        lane.in_flight.extend(group.iter().map(|c| c.delivery_id));
        lane.busy = true;
        lane.last_start = Some(Instant::now());
        out.push((permit, group));
    }
    out
}

fn lock(lanes: &Lanes) -> std::sync::MutexGuard<'_, HashMap<i64, Lane>> {
    lanes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
    let outcomes: Vec<(i64, AttemptOutcome)> = group
        .iter()
        .map(|c| {
            (
                c.delivery_id,
                outcome(sent.ok, c.attempts, c.created_at, now),
            )
        })
        .collect();
    let tried = store::Tried {
        at: now,
        duration_ms: sent.duration_ms,
        response_code: sent.response_code,
        error: sent.error.as_deref(),
    };
    if let Err(err) = db.record_attempts(&outcomes, &tried).await {
        // The claims lapse and the deliveries are tried again: at least once, never lost.
        tracing::warn!(channel.id = channel.id, error = %err, "attempts not recorded");
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
        reminder: None,
        as_of: None,
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
