//! Where blocking local work (disk, fsync, hashing) runs.
//!
//! On a multi-thread runtime, which every binary builds, it runs on tokio's blocking threads,
//! so the disk and the network overlap. On a current-thread runtime (the simulation's, and a
//! plain `#[tokio::test]`) it runs on that one thread, in the order the engine reaches it: with
//! a paused clock and a simulated server, nothing else decides the order, so a seed replays
//! exactly (docs/design.md, "The simulation").

use std::future::Future;

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::task::JoinHandle;

use crate::error::{Result, join_failed};

fn inline() -> bool {
    Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::CurrentThread)
}

/// Runs `work` (blocking) to its end; `what` names it if its thread fails.
pub async fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    if inline() {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work).await.map_err(join_failed(what))
}

/// Starts `work`: blocking I/O between awaits on channels (a file streamed to or from the
/// network). It gets a thread of its own, or is a task of the current-thread runtime.
pub fn spawn<F>(work: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if inline() {
        return tokio::spawn(work);
    }
    let handle = Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(work))
}
