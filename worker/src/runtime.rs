//! The checks' own threads.
//!
//! The in-process scheduler and the checks it starts run on single-threaded runtimes of
//! their own, one per core by default, each scheduling the monitors of its shard (by id).
//!
//! A check is a string of small wake-ups (the scheduler's timer, the connect, the request
//! written, the response, the HTTP client's connection task), and on the shared
//! multi-threaded runtime each of them may wake another parked worker thread to steal the
//! work: a futex call and, on a virtual machine, an interrupt between processors, which can
//! cost as much CPU as the check itself (docs/decisions/001-check-threads.md). On one thread the
//! wake-ups are plain queue pushes; the API, the store and the database pool stay on the main
//! runtime, and the checks reach them through channels. A shard's monitors never move to
//! another thread, so the threads share the load as evenly as the monitors' ids spread their
//! checks (evenly, for any sizeable number of monitors).

use std::future::Future;

use tokio::{sync::oneshot, task::JoinHandle};

/// Runs `future` to completion on a new thread named `name`, on a single-threaded runtime
/// of its own. The returned handle (on the calling runtime) completes when it is done; tasks
/// it spawned and left running are dropped with its runtime.
pub fn spawn_on_own_thread(
    name: &str,
    future: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name(name)
        .build()?;
    let (done, finished) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            runtime.block_on(future);
            drop(runtime);
            let _ = done.send(());
        })?;
    Ok(tokio::spawn(async move {
        // An error means the thread panicked; it has stopped either way.
        let _ = finished.await;
    }))
}
