//! `ftps-sync run`: one loop per folder.
//!
//! ```text
//!   pass at start ─► wait for: shutdown │ local change (debounced) │ poll timer │ retry timer
//!        ▲                                        │
//!        └──────────────── next pass ◄────────────┘
//! ```
//!
//! Watcher events never start transfers themselves: they only make the next pass come sooner,
//! and narrow it to the subtrees that changed. The poll timer's passes look at everything.
//! Shutdown is a parameter (a token): the first signal lets in-flight work finish for a grace
//! period, then cuts it, which leaves only part files.
//!
//! `run` takes its connector and its source of local changes (`Events`) from the caller:
//! `serve` gives it the FTPS connector and a watcher per folder; a test gives it changes of its
//! own, and can drive the loop as the simulation drives a pass.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{Config, Folder};
use crate::engine::{self, Dirty, Meter, Options, Scope, retry};
use crate::error::{Error, Result};
use crate::local::disk::DiskRef;
use crate::local::scan::Ignore;
use crate::local::watch::{Change, Watch};
use crate::metrics::{Metrics, PassEnd};
use crate::remote::Connector;

/// A pass that takes longer than this logs how far it got, and again after each such period.
const STATS_EVERY: Duration = Duration::from_secs(60);

/// How long in-flight transfers may go on after a shutdown request.
pub const GRACE: Duration = Duration::from_secs(10);

/// The one service lifecycle, for `run` and both services: take the state dir's lock, say
/// "running" (and call `running`, for the SCM), run until `shutdown`, let in-flight work
/// drain for `GRACE`, say "stopped".
pub async fn serve(config: &Config, shutdown: CancellationToken, running: impl FnOnce()) -> Result<()> {
    let _lock = crate::lock::InstanceLock::acquire(&config.state_dir)?;
    running();
    tracing::info!(folders = config.folders.len(), "ftps-sync running");
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            tracing::info!("stopping: in-flight transfers get {}s to finish", GRACE.as_secs());
        });
    }
    let connector = crate::remote::ftps::FtpsConnector::remembering(
        &config.server,
        crate::engine::learned::memory(config),
    )?;
    let drive = Drive {
        connector,
        events: Events::Watcher,
        clock: Clock::default(),
        disk: DiskRef::default(),
        turns: None,
    };
    run(config, drive, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Where each folder's local changes come from.
pub enum Events {
    /// A watcher of the file system on each folder (`run` and the services).
    Watcher,
    /// The changes the caller sends, by folder name (a folder not named gets none): the tests
    /// drive the service loop so, as the simulation drives a pass.
    Sent(HashMap<String, mpsc::UnboundedReceiver<Change>>),
}

/// What the loops run with besides the config: `serve` gives the FTPS connector, a watcher per
/// folder and the system clock; a test gives its own (the simulation: its server, its changes,
/// its clock, and passes in turn).
pub struct Drive {
    pub connector: Arc<dyn Connector>,
    pub events: Events,
    /// The wall clock passes read (`Options::clock`), and the retry waits' jitter.
    pub clock: Clock,
    /// The local disk passes rename, remove and sync through (`Options::disk`).
    pub disk: DiskRef,
    /// Passes in turn: `None`, a pass runs when it is due.
    pub turns: Option<Turns>,
}

/// Passes in turn, for a caller that interleaves them with what it does (the simulation, with
/// one folder): a loop that has a pass due waits for a permit of `grant`, and sends how the
/// pass ended (one cut short by shutdown sends nothing). With several folders the permits and
/// the ends are shared, and say no folder.
pub struct Turns {
    pub grant: Arc<tokio::sync::Semaphore>,
    pub ended: mpsc::UnboundedSender<std::result::Result<engine::Report, String>>,
}

/// One loop per folder, its passes through `drive`'s connector and woken by its events, until
/// `shutdown` (and the grace period after it).
pub async fn run(config: &Config, drive: Drive, shutdown: CancellationToken) -> Result<()> {
    let Drive {
        connector,
        mut events,
        clock,
        disk,
        turns,
    } = drive;
    let turns = turns.map(Arc::new);
    // Work is cut only when the grace period after the shutdown request is over.
    let cut = CancellationToken::new();
    {
        let (shutdown, cut) = (shutdown.clone(), cut.clone());
        tokio::spawn(async move {
            shutdown.cancelled().await;
            tokio::time::sleep(GRACE).await;
            cut.cancel();
        });
    }
    let metrics = match config.metrics_listen {
        Some(addr) => {
            let metrics = Metrics::new(config.server.connections);
            crate::metrics::serve(addr, metrics.clone())?;
            Some(metrics)
        }
        None => None,
    };
    let mut loops = JoinSet::new();
    for folder in &config.folders {
        // `None`: a watcher, started by the folder's own loop.
        let sent = match &mut events {
            Events::Watcher => None,
            Events::Sent(by_folder) => Some(by_folder.remove(&folder.name)),
        };
        let (config, folder, connector) = (config.clone(), folder.clone(), connector.clone());
        let (shutdown, cut, metrics) = (shutdown.clone(), cut.clone(), metrics.clone());
        let (clock, disk, turns) = (clock.clone(), disk.clone(), turns.clone());
        loops.spawn(async move {
            let looping = Loop {
                config: &config,
                folder: &folder,
                connector: &connector,
                shutdown: &shutdown,
                cut: &cut,
                metrics: metrics.as_deref(),
                clock: &clock,
                disk: &disk,
                turns: turns.as_deref(),
            };
            let changes = match sent {
                None => Changes::watching(&folder)?,
                Some(sent) => Changes::Sent(sent),
            };
            folder_loop(looping, changes).await
        });
    }
    if let Events::Sent(by_folder) = &events
        && let Some(name) = by_folder.keys().next()
    {
        shutdown.cancel();
        return Err(Error::Internal(format!(
            "changes sent for {name:?}, which is no folder"
        )));
    }
    let mut first_error = None;
    while let Some(joined) = loops.join_next().await {
        let result = joined.map_err(crate::error::join_failed("folder loop"))?;
        if let Err(e) = result
            && first_error.is_none()
        {
            first_error = Some(e);
            shutdown.cancel();
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// What one folder's loop works with.
struct Loop<'a> {
    config: &'a Config,
    folder: &'a Folder,
    connector: &'a Arc<dyn Connector>,
    shutdown: &'a CancellationToken,
    cut: &'a CancellationToken,
    metrics: Option<&'a Metrics>,
    clock: &'a Clock,
    disk: &'a DiskRef,
    turns: Option<&'a Turns>,
}

/// One folder's source of local changes.
enum Changes {
    /// The file system's watcher; none once it stopped or could not start (the poll timer goes
    /// on alone).
    Watched(Option<Watch>),
    /// Sent by the caller (`Events::Sent`); none once the sender is gone.
    Sent(Option<mpsc::UnboundedReceiver<Change>>),
}

impl Changes {
    fn watching(folder: &Folder) -> Result<Changes> {
        Ok(Changes::Watched(
            match Watch::start(&folder.local, Ignore::new(&folder.ignore)?) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(
                        folder = folder.name,
                        "cannot watch {}: {e}; relying on the poll timer",
                        folder.local.display()
                    );
                    None
                }
            },
        ))
    }

    /// The next change; never, once there is no source left.
    async fn next(&mut self) -> Change {
        let next = match self {
            Changes::Watched(Some(w)) => w.next().await,
            Changes::Sent(Some(r)) => r.recv().await,
            Changes::Watched(None) | Changes::Sent(None) => None,
        };
        if let Some(change) = next {
            return change;
        }
        // The source stopped (or there was none): the poll timer goes on alone.
        match self {
            Changes::Watched(w) => *w = None,
            Changes::Sent(r) => *r = None,
        }
        std::future::pending().await
    }
}

async fn folder_loop(at: Loop<'_>, mut changes: Changes) -> Result<()> {
    let Loop {
        config,
        folder,
        connector,
        shutdown,
        cut,
        metrics,
        clock,
        disk,
        turns,
    } = at;
    let mut dirty = Dirty::default();
    dirty.add_full(); // the pass at start
    let mut next_poll = Instant::now();
    let mut wake_at: Option<Instant> = None;
    let mut failures = 0u32;
    let mut last_error: Option<String> = None;
    loop {
        // Wait for the poll timer, a retry or deferral timer, or local changes gone quiet.
        if dirty.is_empty() || wake_at.is_some() {
            let deadline = wake_at.map_or(next_poll, |w| w.min(next_poll));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep_until(deadline) => break,
                    change = changes.next() => {
                        note(folder, &mut dirty, change);
                        if let Some(m) = metrics {
                            m.set_pending(&folder.name, dirty.pending());
                        }
                        if failures > 0 {
                            continue; // backing off: changes wait for the retry
                        }
                        // Debounce: until changes have been quiet for `debounce`, but no
                        // longer than ten times that while a burst goes on.
                        let latest = Instant::now() + config.debounce * 10;
                        loop {
                            tokio::select! {
                                _ = shutdown.cancelled() => return Ok(()),
                                _ = tokio::time::sleep(config.debounce) => break,
                                _ = tokio::time::sleep_until(latest) => break,
                                change = changes.next() => note(folder, &mut dirty, change),
                            }
                        }
                        break;
                    }
                }
            }
        }
        wake_at = None;
        if let Some(turns) = turns {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                permit = turns.grant.acquire() => match permit {
                    Ok(p) => p.forget(),
                    Err(_) => return Ok(()), // the caller is gone
                },
            }
        }
        if Instant::now() >= next_poll {
            dirty.add_full();
        }
        let Some(scope) = dirty.take() else {
            if let Some(turns) = turns {
                turns.grant.add_permits(1); // no pass after all: the turn stays
            }
            continue;
        };
        if let Some(m) = metrics {
            m.set_pending(&folder.name, 0);
        }
        let full = scope == Scope::Full;
        let meter = Meter::new();
        let options = Options {
            scope: scope.clone(),
            quiet_period: Some(config.debounce),
            meter: Some(meter.clone()),
            clock: clock.clone(),
            disk: disk.clone(),
            ..Options::default()
        };
        let pass = engine::sync_folder(config, folder, connector, options, cut);
        let outcome = with_stats_lines(pass, &meter, STATS_EVERY).await;
        if let Some(turns) = turns
            && !matches!(outcome, Err(Error::Interrupted))
        {
            let _ = turns
                .ended
                .send(outcome.as_ref().map(Clone::clone).map_err(ToString::to_string));
        }
        if let Some(m) = metrics {
            let end = match &outcome {
                Ok(report) => PassEnd::Done(report),
                Err(_) => PassEnd::Failed,
            };
            if !matches!(outcome, Err(Error::Interrupted)) {
                m.record_pass(&folder.name, end, chrono::Utc::now().timestamp());
            }
        }
        match outcome {
            Ok(report) => {
                if last_error.take().is_some() {
                    tracing::info!(folder = folder.name, "the server is reachable again");
                }
                failures = 0;
                if full {
                    next_poll = Instant::now() + config.poll_interval;
                }
                if report.deferred > 0 {
                    // Files still being written: look again once they may have settled.
                    dirty.add_scope(scope);
                    wake_at = Some(Instant::now() + config.debounce.max(Duration::from_millis(100)));
                }
                if report.uploaded + report.downloaded + report.deleted_local + report.deleted_remote > 0
                    || report.unresolved()
                {
                    tracing::info!("{}", report.summary());
                }
            }
            Err(Error::Interrupted) => return Ok(()),
            Err(e) => {
                failures += 1;
                // Logged once per state change, not once per attempt.
                let text = e.to_string();
                if last_error.as_deref() != Some(text.as_str()) {
                    tracing::error!(folder = folder.name, "pass failed: {text}; retrying with backoff");
                    last_error = Some(text);
                }
                // Retried forever, the wait capped at max_backoff (at least a second).
                let mut policy = config.retry;
                policy.max_backoff = policy.max_backoff.max(Duration::from_secs(1));
                wake_at = Some(Instant::now() + retry::backoff(&policy, failures.min(30), clock.jitter()));
                dirty.add_full();
            }
        }
        if shutdown.is_cancelled() {
            return Ok(());
        }
    }
}

/// Runs `pass`, logging a line of `meter`'s counts every `every` while it goes on.
async fn with_stats_lines<T>(
    pass: impl std::future::Future<Output = T>,
    meter: &Meter,
    every: Duration,
) -> T {
    let started = Instant::now();
    let mut ticks = tokio::time::interval_at(started + every, every);
    tokio::pin!(pass);
    loop {
        tokio::select! {
            done = &mut pass => return done,
            _ = ticks.tick() => {
                tracing::info!("still syncing, {}", meter.reading().summary(started.elapsed()));
            }
        }
    }
}

fn note(folder: &Folder, dirty: &mut Dirty, change: Change) {
    match change {
        Change::Path(p) => {
            tracing::debug!(folder = folder.name, path = %p, "local change");
            dirty.add(p);
        }
        Change::Rescan(why) => {
            tracing::warn!(folder = folder.name, "{why}: looking at the whole folder");
            dirty.add_full();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_pass_says_how_far_it_got_once_a_period() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let meter = Meter::new();
        let pass = async {
            tokio::time::sleep(Duration::from_secs(150)).await;
            "done"
        };
        let every = Duration::from_secs(60);
        assert_eq!(with_stats_lines(pass, &meter, every).await, "done");
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches("still syncing").count(), 2, "{text}");
        assert!(text.contains("0 of 0 files"), "{text}");
    }
}
