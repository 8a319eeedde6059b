//! One pass over one folder, in two halves:
//!
//! ```text
//!   prepare:  scan local  ──┐
//!             list remote ──┼─► reconcile::plan ─► Prepared { plan, totals }   (--dry-run,
//!             load base   ──┘        (pure)                                    status --remote)
//!   execute:  Prepared ─► queue: actions in phases, in parallel over the connection pool,
//!                         each retried on transient errors and committed to the state when done
//! ```
//!
//! The remote tree is listed with directories fetched concurrently over the pool.

mod candidates;
mod conflict;
mod digests;
mod download;
mod execute;
pub mod learned;
mod meter;
pub(crate) mod moves;
mod prepare;
mod queue;
mod racy;
mod remote_tree;
mod report;
pub mod retry;
pub mod scope;
mod segmented_upload;
mod segments;
mod settle;
mod transfer;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

pub use meter::{InFlight, Meter, Reading};
pub use prepare::{Prepared, prepare};
pub use report::{ActionCounts, Issue, Report, Totals, human_bytes};
pub use scope::{Dirty, Scope};

use crate::config::{Config, Folder};
use crate::error::{Class, Error, Result};
use crate::path::RelPath;
use crate::reconcile::{Entry, Mtime, Policy, Precision, Snapshot};
use crate::remote::listing::{Listed, ListedKind};
use crate::remote::pool::Pool;
use crate::remote::{Connector, Remote};
use crate::state::State;

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// What the pass looks at (the service narrows it to what the watcher saw change).
    pub scope: Scope,
    /// The quiet period: local files modified less than this long ago are left for a later
    /// pass, as they may still be being written (the service sets it; a one-shot sync does not).
    pub quiet_period: Option<std::time::Duration>,
    /// The wall clock: the system's, or the simulation's.
    pub clock: crate::clock::Clock,
    /// The plan is only shown (a dry run, `status --remote`): preparing it writes nothing,
    /// not even the part file a read-back download would otherwise keep for the transfer.
    pub plan_only: bool,
    /// Counts files and bytes as they move, for a progress display.
    pub meter: Option<Arc<Meter>>,
}

/// What every task of a pass reads (and the state store they commit to).
pub(crate) struct Shared {
    pub config: Config,
    pub folder: Folder,
    pub local: Snapshot,
    pub remote: Snapshot,
    pub state: Mutex<State>,
    pub run: Runner,
    /// Uploads whose remote time we set but have not seen listed (LIST servers): confirmed
    /// with one listing per directory after the transfers.
    pub unconfirmed: Mutex<Vec<RelPath>>,
    /// Paths whose intent this pass journaled and has not closed yet (see `close_open_intent`).
    pub open_intents: Mutex<std::collections::HashMap<RelPath, crate::state::Intent>>,
    /// The local root with its symlinks resolved, to check writes stay inside it.
    pub local_real: std::path::PathBuf,
    /// Local files with an mtime after this (nanoseconds) are left for a later pass.
    pub quiet_before: Option<i64>,
    /// Remote files read back whole to compare their content (no server hash), the bytes kept
    /// in the local part file of the path, with the remote signature they were read at: a
    /// download of that version uses them rather than reading the file again.
    pub read_back: Mutex<std::collections::HashMap<RelPath, crate::reconcile::Sig>>,
    /// Local folders made and found inside the sync root this pass (`transfer::local_dir_ready`).
    pub ready_dirs: Mutex<std::collections::HashSet<std::path::PathBuf>>,
    /// Whether the server keeps the bytes around a write at an offset, probed before the
    /// pass's first segmented upload (`segmented_upload::allowed`).
    pub writes_at: tokio::sync::OnceCell<bool>,
    /// What the scan and the listing leave out (the folder's `ignore` and the run's `--exclude`).
    pub ignore: crate::local::scan::Ignore,
    pub meter: Option<Arc<Meter>>,
    /// The server's clock before this pass read any file's content (`racy::read`), when it
    /// was read: a time recorded from the listing is racy unless it is older.
    pub server_clock: racy::ServerClock,
    /// How finely the local file system keeps times (`local::precision`): a local time within
    /// this of the moment it is recorded is racy.
    pub local_precision: std::time::Duration,
    /// When the pass began on the local clock (nanoseconds), before it read any local file: a
    /// local time within `local_precision` of it, or later, is racy.
    pub local_moment: i64,
}

impl Shared {
    pub fn remote_path(&self, p: &RelPath) -> String {
        p.to_remote(&self.folder.remote)
    }

    /// The remote signature at which `path`'s part file holds a whole read-back, once: a
    /// download uses it or starts over.
    fn take_read_back(&self, path: &RelPath) -> Option<crate::reconcile::Sig> {
        self.read_back.lock().ok()?.remove(path)
    }

    /// Whether `path`'s part file holds a read-back for its download to use.
    fn has_read_back(&self, path: &RelPath) -> bool {
        self.read_back.lock().is_ok_and(|r| r.contains_key(path))
    }

    /// A conflict renamed the server's version of `path` to `copy`: its read-back (if the
    /// rename moved the very version read) becomes the part file of the copy's download.
    fn carry_read_back(&self, path: &RelPath, copy: &RelPath, read: &Entry, moved: &Entry) {
        if self.take_read_back(path) != Some(read.sig()) || !same_remote(moved, read) {
            return;
        }
        let from = crate::local::write::part_path(&path.to_local(&self.folder.local));
        let to = crate::local::write::part_path(&copy.to_local(&self.folder.local));
        if std::fs::rename(&from, &to).is_ok()
            && let Ok(mut kept) = self.read_back.lock()
        {
            kept.insert(copy.clone(), moved.sig());
        }
    }

    /// Removes the part files of read-backs no download used.
    fn drop_read_backs(&self) {
        let unused = self
            .read_back
            .lock()
            .map(|mut k| std::mem::take(&mut *k))
            .unwrap_or_default();
        for path in unused.keys() {
            let _ = std::fs::remove_file(crate::local::write::part_path(&path.to_local(&self.folder.local)));
        }
    }

    /// Journals an intent (see `state::Intent`) before its change becomes visible.
    pub fn intend(&self, intent: &crate::state::Intent) -> Result<()> {
        self.state(|s| s.intend(intent))?;
        if let Ok(mut open) = self.open_intents.lock() {
            open.insert(intent.path.clone(), intent.clone());
        }
        Ok(())
    }

    /// Finishes the action at `path`: `done` recorded and its intent closed, or the intent
    /// only forgotten.
    pub fn finish(&self, path: &RelPath, done: Option<&crate::reconcile::BaseEntry>) -> Result<()> {
        self.state(|s| s.close_intent(path, done))?;
        if let Ok(mut open) = self.open_intents.lock() {
            open.remove(path);
        }
        Ok(())
    }

    /// Before a transfer makes, replaces or removes a part file: an intent a failed attempt of
    /// this pass left open (a connection lost around the rename) is settled first, as the next
    /// pass would (see `settle`), since settlement tells a rename by its part file being gone.
    /// If it was renamed, the plan's view of the target is out of date and the attempt stops
    /// with `Changed`; the next pass plans from the recorded entry.
    pub async fn settle_open_intent(&self, conn: &mut dyn Remote, path: &RelPath) -> Result<()> {
        let open = self.open_intents.lock().ok().and_then(|o| o.get(path).cloned());
        if let Some(intent) = open {
            let expected = moves::expected_by_plan(self, &intent);
            let settled = settle::settle_one(conn, &self.folder, &intent, &expected).await?;
            self.close_intent(path, &settled)?;
            if settled.done() {
                return Err(Error::Changed {
                    path: path.to_string(),
                    side: match intent.op {
                        crate::state::Op::Transfer(crate::state::Transfer::Download)
                        | crate::state::Op::MoveLocal { .. } => crate::reconcile::Side::Local,
                        _ => crate::reconcile::Side::Remote,
                    },
                });
            }
        }
        Ok(())
    }

    /// Closes the intent for `path` as `settled` found it.
    pub fn close_intent(&self, path: &RelPath, settled: &settle::Settled) -> Result<()> {
        self.state(|s| settled.close(s, path))?;
        if let Ok(mut open) = self.open_intents.lock() {
            open.remove(path);
        }
        Ok(())
    }

    /// A transfer of `size` bytes starts, on the meter if there is one.
    pub(crate) fn take_off(&self, path: &RelPath, upload: bool, size: u64) -> Option<meter::Flying> {
        if size >= meter::LARGE {
            let way = if upload { "uploading" } else { "downloading" };
            tracing::info!(path = %path, bytes = size, "{way} {}", human_bytes(size));
        }
        self.meter.as_ref().map(|m| m.take_off(path, upload, size))
    }

    /// Runs `f` on the state store (one short transaction, no await inside).
    pub fn state<T>(&self, f: impl FnOnce(&State) -> Result<T>) -> Result<T> {
        let guard = self.state.lock().map_err(|_| Error::Interrupted)?;
        f(&guard)
    }
}

/// A pass's retried attempts: how many, and why for the first few (a count alone does not
/// say which fault a pass kept meeting).
#[derive(Debug, Default)]
pub(crate) struct Retries {
    count: AtomicUsize,
    first: Mutex<Vec<Issue>>,
    by_reason: Mutex<std::collections::BTreeMap<String, usize>>,
}

impl Retries {
    const KEPT: usize = 10;

    fn add(&self, what: &str, e: &Error) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let reason = match e {
            Error::Reply { code: Some(code), .. } => code.to_string(),
            other => other.kind().to_owned(),
        };
        *self
            .by_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_default() += 1;
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        if first.len() < Self::KEPT {
            first.push(Issue {
                path: what.to_owned(),
                reason: e.to_string(),
            });
        }
    }

    /// How many, the first few with their reasons, and how many by reply code or kind.
    pub fn taken(&self) -> (usize, Vec<Issue>, std::collections::BTreeMap<String, usize>) {
        let first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        let by_reason = self.by_reason.lock().unwrap_or_else(|p| p.into_inner());
        (
            self.count.load(Ordering::Relaxed),
            first.clone(),
            by_reason.clone(),
        )
    }
}

/// Runs remote work on the pool, with the retry policy, until cancelled.
pub(crate) struct Runner {
    pub pool: Arc<Pool>,
    pub retry: crate::config::Retry,
    pub cancel: CancellationToken,
    /// Attempts that failed and were tried again, over the whole pass: retries hide a fault
    /// from a check of the end result only, so the report shows them.
    pub retries: Arc<Retries>,
    pub clock: crate::clock::Clock,
}

impl Runner {
    /// After a failed attempt: `Ok` once it is time to try again, `Err` when the error is not
    /// worth retrying or the attempts are used up.
    pub async fn pause_before_retry(&self, what: &str, attempt: u32, e: Error) -> Result<()> {
        if e.class() != Class::Transient || attempt >= self.retry.attempts {
            return Err(e);
        }
        // A refused unresumed data connection taught the connection to resume: no wait.
        let wait = match e {
            Error::NotResumed { .. } => std::time::Duration::ZERO,
            _ => retry::backoff(&self.retry, attempt, self.clock.jitter()),
        };
        self.retries.add(what, &e);
        tracing::warn!(what, attempt, "{e}; retrying in {wait:?}");
        tokio::select! {
            _ = self.cancel.cancelled() => Err(Error::Interrupted),
            _ = tokio::time::sleep(wait) => Ok(()),
        }
    }
}

/// One attempt of remote work on a leased connection. Boxed, so that `retrying` can take the
/// work as a closure: the future borrows the connection for `'c`, which a closure returning an
/// unboxed future cannot say.
pub(crate) type Attempt<'c, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>> + Send + 'c>>;

/// Runs `attempt` on a pooled connection, retrying transient errors on a fresh connection with
/// backoff. A connection goes back to the pool only if it is known to be in step.
/// (`'env` is what the work borrows besides the connection: the connection's type names it, so
/// every `'c` the closure is called with is within it.)
pub(crate) async fn retrying<'env, T, F>(run: &Runner, what: &str, mut attempt: F) -> Result<T>
where
    F: for<'c> FnMut(&'c mut (dyn Remote + 'env)) -> Attempt<'c, T>,
{
    let mut tries = 0u32;
    loop {
        tries += 1;
        // A connect can take the whole timeout: a stop request does not wait for it.
        let leased = tokio::select! {
            biased;
            _ = run.cancel.cancelled() => Err(Error::Interrupted),
            l = run.pool.get() => l,
        };
        let result = match leased {
            Ok(mut lease) => {
                let r = tokio::select! {
                    biased;
                    _ = run.cancel.cancelled() => Err(Error::Interrupted),
                    r = attempt(lease.conn()) => r,
                };
                match &r {
                    Ok(_) => lease.release(),
                    Err(e) => lease.check_after(e).await,
                }
                r
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(v) => return Ok(v),
            Err(e) => run.pause_before_retry(what, tries, e).await?,
        }
    }
}

/// Runs one pass for `folder`: prepare, then execute. A pass that fails or is refused before
/// it starts is recorded for `status` too (once the folder has a state store).
pub async fn sync_folder(
    config: &Config,
    folder: &Folder,
    connector: &Arc<dyn Connector>,
    options: Options,
    cancel: &CancellationToken,
) -> Result<Report> {
    let clock = options.clock.clone();
    let began = clock.now();
    match prepare(config, folder, connector, options, cancel).await {
        Ok(prepared) => prepared.execute().await,
        Err(e) => {
            if State::exists(&config.state_dir, &folder.name)
                && let Ok(state) = State::open(&config.state_dir, &folder.name)
            {
                let _ = state.pass_started(began);
                let _ = execute::record_failure(&state, &e, clock.now());
            }
            Err(e)
        }
    }
}

/// The folders `only` names (all of them when it is empty); an unknown name is the user's
/// mistake.
pub fn select_folders<'a>(config: &'a Config, only: &[String]) -> Result<Vec<&'a Folder>> {
    for name in only {
        if !config.folders.iter().any(|f| &f.name == name) {
            return Err(Error::Usage(format!(
                "no folder named {name:?} in {}",
                config.source.display()
            )));
        }
    }
    Ok(config
        .folders
        .iter()
        .filter(|f| only.is_empty() || only.contains(&f.name))
        .collect())
}

/// What one pass per folder did.
#[derive(Debug, Default)]
pub struct Passes {
    pub reports: Vec<Report>,
    /// Folders whose pass was refused (a guard fired); the others went on.
    pub refused: Vec<Error>,
}

impl Passes {
    /// Whether something is left for the user (exit code 1).
    pub fn unresolved(&self) -> bool {
        !self.refused.is_empty() || self.reports.iter().any(Report::unresolved)
    }
}

/// One pass over each of `folders`, in order, with `options`, holding the instance lock of the
/// state dir.
/// A refused folder does not stop the others; any other error stops them. `each` sees every
/// folder's outcome as it ends.
pub async fn sync_all(
    config: &Config,
    folders: &[&Folder],
    connector: &Arc<dyn Connector>,
    cancel: &CancellationToken,
    options: Options,
    mut each: impl FnMut(std::result::Result<&Report, &Error>),
) -> Result<Passes> {
    let _lock = crate::lock::InstanceLock::acquire(&config.state_dir)?;
    let mut passes = Passes::default();
    for folder in folders {
        match sync_folder(config, folder, connector, options.clone(), cancel).await {
            Ok(report) => {
                each(Ok(&report));
                passes.reports.push(report);
            }
            Err(e @ Error::Refused { .. }) => {
                each(Err(&e));
                passes.refused.push(e);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(passes)
}

/// What of a folder's config the planner looks at.
pub(crate) fn policy_of(folder: &Folder) -> Policy {
    Policy {
        direction: folder.direction,
        delete: folder.delete,
        conflict: folder.conflict,
        max_delete: folder.max_delete,
        first_sync: folder.first_sync,
        case_insensitive: cfg!(any(windows, target_os = "macos")),
        detect_moves: folder.detect_moves,
        // Until a listing shows otherwise (`prepare`).
        remote_moves_recognised: true,
        server_clock: None,
    }
}

/// A listed entry as a snapshot entry. A listing without a time compares by size alone.
pub(crate) fn listed_entry(l: &Listed) -> Entry {
    let mtime = l.mtime.unwrap_or(Mtime::new(0, Precision::Days));
    match l.kind {
        ListedKind::Dir => Entry::dir(mtime),
        _ => Entry::file(l.size, mtime),
    }
    .with_id(l.unique)
}

/// Whether a remote file still looks the way the snapshot saw it.
pub(crate) fn same_remote(now: &Entry, then: &Entry) -> bool {
    now.kind == then.kind && now.size == then.size && now.mtime.same_as(&then.mtime)
}

pub(crate) async fn ensure_remote_dir(conn: &mut dyn Remote, remote: &str) -> Result<()> {
    match conn.mkdir(remote).await {
        Ok(()) => Ok(()),
        Err(e @ Error::Reply { .. }) => match conn.list(remote).await {
            Ok(_) => Ok(()), // it was already there
            Err(_) => Err(e),
        },
        Err(e) => Err(e),
    }
}
