//! `ftps-sync run`: one loop per folder.
//!
//! ```text
//!   pass at start ─► wait for: shutdown │ local change (debounced) │ poll timer │ retry timer
//!        ▲                                        │
//!        └──────────────── next pass ◄────────────┘
//! ```
//!
//! Watcher events never start transfers themselves: they only make the next pass come sooner.
//! Shutdown is a parameter (a token): the first signal lets in-flight work finish for a grace
//! period, then cuts it, which leaves only part files.

use std::path::Path;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Folder};
use crate::engine::{self, Options, retry};
use crate::error::{Error, Result};
use crate::local::is_part_name;
use crate::remote::tls::TlsContext;

/// How long in-flight transfers may go on after a shutdown request.
pub const GRACE: Duration = Duration::from_secs(10);

pub async fn run(config: &Config, shutdown: CancellationToken) -> Result<()> {
    let tls = TlsContext::new(&config.server)?;
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
    let mut loops = JoinSet::new();
    for folder in &config.folders {
        let (config, folder, tls) = (config.clone(), folder.clone(), tls.clone());
        let (shutdown, cut) = (shutdown.clone(), cut.clone());
        loops.spawn(async move { folder_loop(&config, &folder, &tls, &shutdown, &cut).await });
    }
    let mut first_error = None;
    while let Some(joined) = loops.join_next().await {
        let result = joined.map_err(|e| Error::Usage(format!("folder loop failed: {e}")))?;
        if let Err(e) = result
            && first_error.is_none()
        {
            first_error = Some(e);
            shutdown.cancel();
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Whether a watcher event is about something a pass could sync. Reads and opens are not
/// (a pass's own scan opens every directory); our part files are not.
fn relevant(event: &notify::Result<notify::Event>) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    match event {
        Ok(e) => {
            let changes = match e.kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
                EventKind::Access(_) => false,
                _ => true,
            };
            changes
                && e.paths
                    .iter()
                    .any(|p| !p.file_name().and_then(|n| n.to_str()).is_some_and(is_part_name))
        }
        Err(_) => true, // overflow or watcher trouble: a full pass finds out
    }
}

async fn folder_loop(
    config: &Config,
    folder: &Folder,
    tls: &TlsContext,
    shutdown: &CancellationToken,
    cut: &CancellationToken,
) -> Result<()> {
    let (tx, mut events) = mpsc::channel(4096);
    let watcher = watch(&folder.local, tx);
    if let Err(e) = &watcher {
        tracing::warn!(
            folder = folder.name,
            "cannot watch {}: {e}; relying on the poll timer",
            folder.local.display()
        );
    }
    let mut failures = 0u32;
    let mut last_error: Option<String> = None;
    loop {
        let options = Options {
            dry_run: false,
            settle: Some(config.debounce),
        };
        let mut deferred = false;
        match engine::sync_folder(config, folder, tls, options, cut).await {
            Ok(report) => {
                deferred = report.deferred > 0;
                if last_error.take().is_some() {
                    tracing::info!(folder = folder.name, "the server is reachable again");
                }
                failures = 0;
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
            }
        }
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let wait = if deferred {
            // Files still being written: look again once they may have settled.
            config.debounce.max(Duration::from_millis(100))
        } else if failures > 0 {
            // Retried forever, the wait capped at max_backoff (at least the poll interval's).
            let mut policy = config.retry;
            policy.max_backoff = policy.max_backoff.max(Duration::from_secs(1));
            retry::backoff(&policy, failures.min(30), retry::jitter())
        } else {
            config.poll_interval
        };
        // Wait for the timer or a relevant local change; other events (reads, our part files)
        // go on waiting.
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep_until(deadline) => break,
                Some(event) = events.recv() => {
                    if !relevant(&event) {
                        continue;
                    }
                    tracing::debug!(folder = folder.name, ?event, "local change");
                    // Debounce: wait until changes have been quiet for `debounce`, but no
                    // longer than ten times that while a burst goes on.
                    let latest = tokio::time::Instant::now() + config.debounce * 10;
                    loop {
                        tokio::select! {
                            _ = shutdown.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(config.debounce) => break,
                            _ = tokio::time::sleep_until(latest) => break,
                            Some(_) = events.recv() => {}
                        }
                    }
                    break;
                }
            }
        }
    }
}

/// A recursive watcher feeding `tx`; dropped (and stopped) with the returned value.
fn watch(
    root: &Path,
    tx: mpsc::Sender<notify::Result<notify::Event>>,
) -> notify::Result<notify::RecommendedWatcher> {
    let mut w = notify::recommended_watcher(move |event| {
        // A full channel means a pass is already due: dropping the event loses nothing.
        let _ = tx.try_send(event);
    })?;
    w.watch(root, RecursiveMode::Recursive)?;
    Ok(w)
}
