//! One pass over one folder:
//!
//! ```text
//!   scan local  ──┐
//!   list remote ──┼─► reconcile::plan ─► Plan ─► queue: actions in phases, in parallel over the
//!   load base   ──┘        (pure)          │        connection pool, each retried on transient
//!                                          │        errors and committed to the state when done
//!                                          └─► --dry-run: print it, change nothing
//! ```
//!
//! The remote tree is listed with directories fetched concurrently over the pool.

mod queue;
mod report;
pub mod retry;
pub mod scope;
mod transfer;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use report::{Issue, Report, human_bytes};
pub use scope::{Dirty, Scope};

use crate::config::{Config, Folder};
use crate::error::{Class, Error, Result};
use crate::local::is_part_name;
use crate::local::scan::{Ignore, scan, scan_subtrees, sha256_file};
use crate::path::RelPath;
use crate::reconcile::{self, Base, Entry, Kind, Mtime, Part, Policy, Precision, Snapshot};
use crate::remote::ftps::Ftps;
use crate::remote::limit::RateLimiter;
use crate::remote::listing::{Listed, ListedKind};
use crate::remote::pool::Pool;
use crate::remote::tls::TlsContext;
use crate::state::{State, Transfer};

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub dry_run: bool,
    /// What the pass looks at (the service narrows it to what the watcher saw change).
    pub scope: Scope,
    /// Leave local files modified less than this long ago for a later pass: they may still
    /// be being written (the service sets it; a one-shot sync does not).
    pub settle: Option<std::time::Duration>,
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
    /// The local root with its symlinks resolved, to check writes stay inside it.
    pub local_real: std::path::PathBuf,
    /// Local files with an mtime after this (nanoseconds) are left for a later pass.
    pub settled_before: Option<i64>,
}

impl Shared {
    pub fn remote_path(&self, p: &RelPath) -> String {
        p.to_remote(&self.folder.remote)
    }

    /// Runs `f` on the state store (one short transaction, no await inside).
    pub fn state<T>(&self, f: impl FnOnce(&State) -> Result<T>) -> Result<T> {
        let guard = self.state.lock().map_err(|_| Error::Interrupted)?;
        f(&guard)
    }
}

/// Runs remote work on the pool, with the retry policy, until cancelled.
pub(crate) struct Runner {
    pub pool: Arc<Pool>,
    pub retry: crate::config::Retry,
    pub cancel: CancellationToken,
    /// Attempts that failed and were tried again, over the whole pass: retries hide a fault
    /// from a check of the end result only, so the report shows them.
    pub retries: Arc<AtomicUsize>,
}

impl Runner {
    /// After a failed attempt: `Ok` once it is time to try again, `Err` when the error is not
    /// worth retrying or the attempts are used up.
    pub async fn pause_before_retry(&self, what: &str, attempt: u32, e: Error) -> Result<()> {
        if e.class() != Class::Transient || attempt >= self.retry.attempts {
            return Err(e);
        }
        let wait = retry::backoff(&self.retry, attempt, retry::jitter());
        self.retries.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(what, attempt, "{e}; retrying in {wait:?}");
        tokio::select! {
            _ = self.cancel.cancelled() => Err(Error::Interrupted),
            _ = tokio::time::sleep(wait) => Ok(()),
        }
    }
}

/// Runs `$body` (a future using the connection `$c`) on a pooled connection, retrying
/// transient errors on a fresh connection with backoff. A connection goes back to the pool
/// only if it is known to be in step. (A macro, not a closure taking `&mut Ftps`: futures
/// borrowing their argument do not yet prove `Send` for spawned tasks.)
macro_rules! retrying {
    ($run:expr, $what:expr, |$c:ident| $body:expr) => {{
        let run: &$crate::engine::Runner = $run;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = match run.pool.get().await {
                Ok(mut lease) => {
                    let r = {
                        let $c: &mut $crate::remote::ftps::Ftps = lease.conn();
                        tokio::select! {
                            biased;
                            _ = run.cancel.cancelled() => Err($crate::error::Error::Interrupted),
                            r = $body => r,
                        }
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
                Ok(v) => break Ok(v),
                Err(e) => {
                    if let Err(e) = run.pause_before_retry($what, attempt, e).await {
                        break Err(e);
                    }
                }
            }
        }
    }};
}
pub(crate) use retrying;

/// Runs one pass for `folder`: scan, list, plan, execute, commit.
pub async fn sync_folder(
    config: &Config,
    folder: &Folder,
    tls: &TlsContext,
    options: Options,
    cancel: &CancellationToken,
) -> Result<Report> {
    let started = Instant::now();
    let refused = |reason: String| Error::Refused {
        folder: folder.name.clone(),
        reason,
    };
    if !folder.local.is_dir() {
        return Err(refused(format!(
            "local folder {} is missing: is the disk mounted?",
            folder.local.display()
        )));
    }
    let state = State::open(&config.state_dir, &folder.name)?;
    let mut base = state.load()?;
    let ignore = Ignore::new(&folder.ignore)?;
    let mut scope = widen(options.scope.clone(), &base, &folder.local);

    let limiter = config.bandwidth_limit.map(|r| Arc::new(RateLimiter::new(r)));
    let pool = Pool::new(&config.server, tls, limiter);
    let retries = Arc::new(AtomicUsize::new(0));
    let runner = |cancel: &CancellationToken| Runner {
        pool: pool.clone(),
        retry: config.retry,
        cancel: cancel.child_token(),
        retries: retries.clone(),
    };
    let (scanned, listing) = loop {
        let scanned = scan_local(folder, &ignore, &base, &scope).await?;
        let listing = list_tree(Arc::new(runner(cancel)), folder, &ignore, &scope).await;
        match (&listing, &scope) {
            (Ok(None), Scope::Paths(_)) => {
                // A directory above the changes is gone on the server.
                tracing::debug!(
                    folder = folder.name,
                    "a parent of the changes is missing remotely; looking at the whole folder"
                );
                scope = Scope::Full;
            }
            _ => break (scanned, listing),
        }
    };
    let part = match &scope {
        Scope::Full => None,
        Scope::Paths(paths) => {
            tracing::debug!(folder = folder.name, ?paths, "pass over the changed paths");
            let synced_files = base.values().filter(|b| b.kind == Kind::File).count();
            base.retain(|p, _| scope.holds(p));
            Some(Part { synced_files })
        }
    };
    let mut report = Report {
        folder: folder.name.clone(),
        dry_run: options.dry_run,
        ..Report::default()
    };
    for (path, reason) in &scanned.unsafe_names {
        tracing::warn!(path = %path.display(), reason, "local name cannot be synced; skipped");
        report.skip(path.display().to_string(), reason.clone());
    }

    let listing = match listing {
        Ok(l) => l,
        Err(e) => {
            pool.close().await;
            if !options.dry_run {
                let _ = record_outcome(&state, &format!("error: {e}"), &report);
            }
            return Err(e);
        }
    };
    let (remote, remote_parts, remote_exists) = match listing {
        Some(tree) => {
            report.skipped.extend(tree.unsafe_names);
            (tree.snapshot, tree.parts, true)
        }
        None if !base.is_empty() => {
            pool.close().await;
            return Err(refused(format!(
                "remote folder {} is missing but files were in sync: refusing to delete them locally",
                folder.remote
            )));
        }
        None => (Snapshot::new(), Vec::new(), false),
    };

    let mut sh = Shared {
        config: config.clone(),
        folder: folder.clone(),
        local: scanned.snapshot,
        remote,
        state: Mutex::new(state),
        run: runner(cancel),
        unconfirmed: Mutex::new(Vec::new()),
        local_real: folder
            .local
            .canonicalize()
            .map_err(Error::local("resolve", &folder.local))?,
        settled_before: options.settle.map(|d| {
            Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX) - d.as_nanos().min(i64::MAX as u128) as i64
        }),
    };
    let result = async {
        fill_first_sync_digests(&mut sh, &base).await?;
        let policy = policy_of(folder);
        let plan =
            reconcile::plan_part(&base, &sh.local, &sh.remote, &policy, Utc::now(), part).map_err(refused)?;
        if options.dry_run {
            report.plan = Some(plan);
            return Ok(None);
        }
        sh.state(|s| s.set_meta("last_pass_start", &Utc::now().to_rfc3339()))?;
        remove_stale_parts(&sh, &scanned.part_files, &remote_parts).await?;
        if !remote_exists && plan.changes().next().is_some() {
            mkdir_remote_root(&sh).await?;
        }
        Ok(Some(plan))
    }
    .await;
    let sh = Arc::new(sh);
    let result = match result {
        Ok(Some(plan)) => queue::execute(&sh, plan, &mut report).await,
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    report.seconds = started.elapsed().as_secs_f64();
    report.retries = retries.load(Ordering::Relaxed);
    if !options.dry_run {
        let outcome = match &result {
            Ok(()) if report.unresolved() => "unresolved".to_owned(),
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("error: {e}"),
        };
        let _ = sh.state(|s| record_outcome(s, &outcome, &report));
    }
    pool.close().await;
    result.map(|()| report)
}

/// Scans what of the local folder is in `scope`.
async fn scan_local(
    folder: &Folder,
    ignore: &Ignore,
    base: &Base,
    scope: &Scope,
) -> Result<crate::local::scan::ScanReport> {
    let (root, ignore, base, scope) = (folder.local.clone(), ignore.clone(), base.clone(), scope.clone());
    tokio::task::spawn_blocking(move || match scope {
        Scope::Full => scan(&root, &ignore, &base),
        Scope::Paths(paths) => scan_subtrees(&root, &paths.into_iter().collect::<Vec<_>>(), &ignore, &base),
    })
    .await
    .map_err(crate::error::join_failed("scan"))?
}

/// A scope of paths grown until each one's parent is a directory in sync (in the state and on
/// disk), so a pass over it sees whole subtrees under settled parents; the whole folder when
/// nothing is in sync yet or the local folder is empty (for the guards to judge).
fn widen(scope: Scope, base: &Base, root: &std::path::Path) -> Scope {
    let Scope::Paths(paths) = scope else {
        return Scope::Full;
    };
    let emptied = std::fs::read_dir(root).map_or(true, |mut d| d.next().is_none());
    if base.is_empty() || emptied {
        return Scope::Full;
    }
    let settled = |dir: &RelPath| {
        base.get(dir).is_some_and(|b| b.kind == Kind::Dir)
            && std::fs::symlink_metadata(dir.to_local(root)).is_ok_and(|m| m.is_dir())
    };
    let mut grown = Dirty::default();
    for mut p in paths {
        while let Some(parent) = p.parent().filter(|q| !settled(q)) {
            p = parent;
        }
        grown.add(p);
    }
    grown.take().unwrap_or(Scope::Full)
}

/// What of a folder's config the planner looks at.
pub(crate) fn policy_of(folder: &Folder) -> Policy {
    Policy {
        direction: folder.direction,
        delete: folder.delete,
        conflict: folder.conflict,
        max_delete_percent: folder.max_delete_percent,
        case_insensitive: cfg!(any(windows, target_os = "macos")),
    }
}

/// What `status` shows about the last pass.
fn record_outcome(s: &State, outcome: &str, report: &Report) -> Result<()> {
    s.set_meta("last_pass_end", &Utc::now().to_rfc3339())?;
    s.set_meta("last_result", outcome)?;
    let counts = serde_json::json!({
        "uploaded": report.uploaded,
        "downloaded": report.downloaded,
        "deleted": report.deleted_local + report.deleted_remote,
        "conflicts": report.conflicts,
        "skipped": report.skipped.len(),
        "failed": report.failed.len(),
        "deferred": report.deferred,
    });
    s.set_meta("last_report", &counts.to_string())?;
    if let Some(stripped) = outcome.strip_prefix("error: ") {
        s.set_meta("last_error", stripped)?;
    }
    Ok(())
}

/// A listed entry as a snapshot entry. A listing without a time compares by size alone.
pub(crate) fn listed_entry(l: &Listed) -> Entry {
    let mtime = l.mtime.unwrap_or(Mtime::new(0, Precision::Days));
    match l.kind {
        ListedKind::Dir => Entry::dir(mtime),
        _ => Entry::file(l.size, mtime),
    }
}

/// Whether a remote file still looks the way the snapshot saw it.
pub(crate) fn same_remote(now: &Entry, then: &Entry) -> bool {
    now.kind == then.kind && now.size == then.size && now.mtime.same_as(&then.mtime)
}

struct RemoteTree {
    snapshot: Snapshot,
    /// Our part files (remote path, the relative path they stand in for).
    parts: Vec<(String, RelPath)>,
    unsafe_names: Vec<Issue>,
}

/// Lists what of the remote folder is in `scope`, directories fetched concurrently over the
/// pool. `None` when the folder itself (or, for a scope of paths, a parent of one) does not
/// exist. Each name is validated as a path component before it goes any further.
async fn list_tree(
    run: Arc<Runner>,
    folder: &Folder,
    ignore: &Ignore,
    scope: &Scope,
) -> Result<Option<RemoteTree>> {
    let mut tree = RemoteTree {
        snapshot: Snapshot::new(),
        parts: Vec::new(),
        unsafe_names: Vec::new(),
    };
    let mut tasks: JoinSet<(Option<RelPath>, Result<Vec<Listed>>)> = JoinSet::new();
    let spawn = |tasks: &mut JoinSet<_>, dir: Option<RelPath>| {
        let run = run.clone();
        let remote_dir = dir
            .as_ref()
            .map_or(folder.remote.clone(), |d| d.to_remote(&folder.remote));
        tasks.spawn(async move {
            let r = retrying!(&run, &remote_dir, |c| c.list_dir(&remote_dir));
            (dir, r)
        });
    };
    // The directories that hold the scope's paths; each listed alone, not what else is in it.
    let starts: std::collections::BTreeSet<Option<RelPath>> = match scope {
        Scope::Full => [None].into(),
        Scope::Paths(paths) => paths.iter().map(RelPath::parent).collect(),
    };
    for dir in &starts {
        spawn(&mut tasks, dir.clone());
    }
    while let Some(joined) = tasks.join_next().await {
        let (dir, entries) = joined.map_err(crate::error::join_failed("listing"))?;
        let remote_dir = dir
            .as_ref()
            .map_or(folder.remote.clone(), |d| d.to_remote(&folder.remote));
        let entries = match entries {
            Err(Error::Reply { code: Some(550), .. }) if starts.contains(&dir) => return Ok(None),
            other => other?,
        };
        let dir_held = dir.as_ref().map_or(*scope == Scope::Full, |d| scope.holds(d));
        let mut seen = std::collections::HashSet::new();
        for l in entries {
            let path = match RelPath::child(dir.as_ref(), &l.name) {
                Ok(p) => p,
                Err(_) if !dir_held => continue,
                Err(e) => {
                    tracing::warn!(dir = remote_dir, name = ?l.name, "unsafe remote name skipped: {e}");
                    tree.unsafe_names.push(Issue {
                        path: crate::path::join_remote(&remote_dir, &format!("{:?}", l.name)),
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            if is_part_name(path.name()) && dir_held {
                let target = path.name()[1..path.name().len() - crate::local::PART_SUFFIX.len()].to_owned();
                if let Ok(target) = path.with_name(&target) {
                    tree.parts.push((path.to_remote(&folder.remote), target));
                }
                continue;
            }
            if !scope.holds(&path) {
                continue;
            }
            if !seen.insert(l.name.clone()) {
                tracing::warn!(path = %path, "duplicate name in a remote listing skipped");
                continue;
            }
            if ignore.skips(&path) {
                continue;
            }
            match l.kind {
                ListedKind::Dir => {
                    spawn(&mut tasks, Some(path.clone()));
                    tree.snapshot.insert(path, listed_entry(&l));
                }
                ListedKind::File => {
                    tree.snapshot.insert(path, listed_entry(&l));
                }
                ListedKind::Other => {
                    tracing::debug!(path = %path, "remote symlink or special file not synced")
                }
            }
        }
    }
    Ok(Some(tree))
}

/// Part files left by an interrupted pass are removed, unless the state says which source
/// they were started from: those may be resumed.
async fn remove_stale_parts(
    sh: &Shared,
    local_parts: &[std::path::PathBuf],
    remote_parts: &[(String, RelPath)],
) -> Result<()> {
    for part in local_parts {
        let target = part
            .strip_prefix(&sh.folder.local)
            .ok()
            .and_then(|rel| rel.to_str())
            .map(|rel| rel.replace('\\', "/"))
            .and_then(|rel| {
                let (dir, name) = rel.rsplit_once('/').map_or(("", rel.as_str()), |(d, n)| (d, n));
                let name = name.strip_prefix('.')?.strip_suffix(crate::local::PART_SUFFIX)?;
                RelPath::new(&if dir.is_empty() {
                    name.to_owned()
                } else {
                    format!("{dir}/{name}")
                })
                .ok()
            });
        let resumable = match &target {
            Some(t) => sh.state(|s| s.partial(t, Transfer::Download))?.is_some(),
            None => false,
        };
        if !resumable {
            tracing::debug!(part = %part.display(), "removing a part file left by an interrupted pass");
            let _ = std::fs::remove_file(part);
        }
    }
    for (part, target) in remote_parts {
        if sh.state(|s| s.partial(target, Transfer::Upload))?.is_none() {
            tracing::debug!(part, "removing a remote part file left by an interrupted pass");
            retrying!(&sh.run, part, |c| c.remove(part))?;
        }
    }
    Ok(())
}

/// On a first sync, a file on both sides with the same size but different times may still
/// be the same file: compare digests rather than make a needless conflict copy.
async fn fill_first_sync_digests(sh: &mut Shared, base: &Base) -> Result<()> {
    let candidates: Vec<RelPath> =
        sh.local
            .iter()
            .filter(|(p, l)| {
                l.kind == Kind::File
                    && !base.contains_key(*p)
                    && sh.remote.get(*p).is_some_and(|r| {
                        r.kind == Kind::File && r.size == l.size && !r.mtime.same_as(&l.mtime)
                    })
            })
            .map(|(p, _)| p.clone())
            .collect();
    for path in candidates {
        let local = sha256_file(&path.to_local(&sh.folder.local))?;
        let remote_path = sh.remote_path(&path);
        let remote = retrying!(&sh.run, &remote_path, |c| remote_sha256(c, &remote_path))?;
        if let Some(e) = sh.local.get_mut(&path) {
            e.sha256 = Some(local);
        }
        if let Some(e) = sh.remote.get_mut(&path) {
            e.sha256 = Some(remote);
        }
    }
    Ok(())
}

/// The SHA-256 of a remote file: the server's when it offers one, else by reading it.
async fn remote_sha256(conn: &mut Ftps, remote_path: &str) -> Result<String> {
    if let Some((crate::digest::HashAlgo::Sha256, hex)) = conn.hash(remote_path).await? {
        return Ok(hex);
    }
    let hashing = crate::local::stream::write_file(None, 0, None, std::path::Path::new(remote_path));
    let result = conn.download(remote_path, 0, &hashing.chunks).await;
    let (digests, _) = hashing.finish().await?;
    result?;
    Ok(digests.sha256)
}

async fn mkdir_remote_root(sh: &Shared) -> Result<()> {
    let root = sh.folder.remote.clone();
    let mut prefix = if root.starts_with('/') {
        "/".to_owned()
    } else {
        String::new()
    };
    for part in root.split('/').filter(|p| !p.is_empty()) {
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        prefix.push_str(part);
        let dir = prefix.clone();
        retrying!(&sh.run, &dir, |c| ensure_remote_dir(c, &dir))?;
    }
    Ok(())
}

pub(crate) async fn ensure_remote_dir(conn: &mut Ftps, remote: &str) -> Result<()> {
    match conn.mkdir(remote).await {
        Ok(()) => Ok(()),
        Err(e @ Error::Reply { .. }) => match conn.list_dir(remote).await {
            Ok(_) => Ok(()), // it was already there
            Err(_) => Err(e),
        },
        Err(e) => Err(e),
    }
}
