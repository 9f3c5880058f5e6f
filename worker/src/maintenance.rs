//! Keeps a process's maintenance calendar current: loaded before the engine starts, reloaded
//! when this process changes a window and every [`RELOAD`] for changes made by others (and
//! to move its worked-out occurrences along with the clock).

use std::time::Duration;

use chrono::Utc;
use domain::maintenance::Calendar;
use store::Database;
use tokio_util::sync::CancellationToken;

/// How often the calendar is reloaded: a window created by another process takes effect
/// here within this.
pub const RELOAD: Duration = Duration::from_secs(2);

/// The windows as stored now.
pub async fn load(db: &Database) -> Result<Calendar, store::Error> {
    Ok(Calendar::new(db.calendar_windows().await?, Utc::now()))
}

/// Reloads `calendar` from the database (a reload begun earlier that ends later does not
/// undo it).
pub async fn reload(db: &Database, calendar: &Calendar) -> Result<(), store::Error> {
    let ticket = calendar.begin_load();
    let windows = db.calendar_windows().await?;
    calendar.replace(ticket, windows, Utc::now());
    Ok(())
}

/// Reloads every [`RELOAD`] until `stop`.
pub async fn keep_fresh(db: Database, calendar: Calendar, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RELOAD) => {}
        }
        if let Err(err) = reload(&db, &calendar).await {
            tracing::warn!(error = %err, "maintenance windows not reloaded; keeping the last ones");
        }
    }
}
