//! The first half of a pass: scan, list, digests and plan, with totals. Nothing changes on
//! either side and nothing is written to the state store, so `--dry-run` and
//! `status --remote` are this alone, and may run while a service works.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{
    Issue, Options, Report, Retries, Runner, Scope, Shared, Totals, listed_entry, policy_of, retrying,
};
use crate::config::{Config, Folder};
use crate::error::{Error, Result, join_failed};
use crate::local::part_target;
use crate::local::scan::{Ignore, ScanReport, scan, scan_subtrees};
use crate::path::RelPath;
use crate::reconcile::{self, Base, Kind, Part, Plan, Refusal, Side, Snapshot};
use crate::remote::Connector;
use crate::remote::limit::RateLimiter;
use crate::remote::listing::{Listed, ListedKind};
use crate::remote::pool::Pool;
use crate::state::State;

/// A planned pass: what `execute` carries out. It holds each tree once (the two snapshots
/// the actions check against, and the plan); the base is dropped once planned.
pub struct Prepared {
    pub(super) shared: Shared,
    pub(super) plan: Plan,
    pub(super) totals: Totals,
    /// Skips found on the way (unsafe names), for the report.
    pub(super) report: Report,
    pub(super) pool: Arc<Pool>,
    pub(super) retries: Arc<Retries>,
    pub(super) started: Instant,
    pub(super) local_parts: Vec<std::path::PathBuf>,
    /// Our remote part files: (remote path, the path they stand in for).
    pub(super) remote_parts: Vec<(String, RelPath)>,
    pub(super) remote_exists: bool,
    /// The intents a killed pass left open, settled; recorded when the pass executes.
    pub(super) settlements: super::settle::Settlements,
}

impl Prepared {
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Names found on either side that cannot be synced (skipped, reported).
    pub fn skipped(&self) -> &[Issue] {
        &self.report.skipped
    }

    pub fn folder(&self) -> &str {
        &self.shared.folder.name
    }

    /// Logs out of the server without doing anything (a dry run).
    pub async fn close(self) {
        self.shared.drop_read_backs();
        self.pool.close().await;
    }
}

fn refused(folder: &Folder, refusal: Refusal) -> Error {
    Error::Refused {
        folder: folder.name.clone(),
        refusal,
    }
}

/// Scans, lists and plans one pass for `folder`.
pub async fn prepare(
    config: &Config,
    folder: &Folder,
    connector: &Arc<dyn Connector>,
    options: Options,
    cancel: &CancellationToken,
) -> Result<Prepared> {
    let started = Instant::now();
    if !folder.local.is_dir() {
        return Err(refused(
            folder,
            Refusal::MissingRoot {
                side: Side::Local,
                root: folder.local.display().to_string(),
            },
        ));
    }
    let state = State::open(&config.state_dir, &folder.name)?;
    let mut base = state.load()?;
    let ignore = Ignore::new(&[folder.ignore.as_slice(), folder.exclude.as_slice()].concat())?;
    let exclude = Ignore::new(&folder.exclude)?;

    let limiter = config.bandwidth_limit.map(|r| Arc::new(RateLimiter::new(r)));
    let pool = Pool::new(connector.clone(), config.server.connections, limiter);
    let retries = Arc::new(Retries::default());
    let runner = |cancel: &CancellationToken| Runner {
        pool: pool.clone(),
        retry: config.retry,
        cancel: cancel.child_token(),
        retries: retries.clone(),
        clock: options.clock.clone(),
    };
    // Before anything is planned: what a killed pass made visible is the sync's own work.
    let intents = state.intents()?;
    let settlements = match super::settle::settle(&runner(cancel), folder, intents, &base).await {
        Ok(s) => s,
        Err(e) => return abandon(&pool, e).await,
    };
    super::settle::apply(&mut base, &settlements);
    if !folder.exclude.is_empty() {
        // Left out of this pass, so never planned: their rows stay for the next one.
        base.retain(|path, _| !exclude.hides(path));
    }
    let base = Arc::new(base);
    let mut scope = widen(options.scope.clone(), &base, &folder.local);
    let (scanned, listing) = loop {
        let scanned = match scan_local(folder, &ignore, &base, &scope).await {
            Ok(s) => s,
            Err(e) => return abandon(&pool, e).await,
        };
        let run = Arc::new(runner(cancel));
        let bound = TreeBound {
            server: format!("{}:{}", config.server.host, config.server.port),
            bytes: config.listing_memory_limit,
        };
        let listing = list_confirmed(run, folder, &ignore, &base, &scope, &bound).await;
        if matches!((&listing, &scope), (Ok(None), Scope::Paths(_))) {
            // A directory above the changes is gone on the server.
            tracing::debug!(
                folder = folder.name,
                "a parent of the changes is missing remotely; looking at the whole folder"
            );
            scope = Scope::Full;
            continue;
        }
        break (scanned, listing);
    };
    // The scan's task is done with it: this is the only copy left.
    let mut base = Arc::try_unwrap(base).unwrap_or_else(|shared| (*shared).clone());
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
        ..Report::default()
    };
    for (path, reason) in &scanned.unsafe_names {
        tracing::warn!(path = %path.display(), reason, "local name cannot be synced; skipped");
        report.skip(path.display().to_string(), reason.clone());
    }
    let (remote, remote_parts, remote_exists) = match listing {
        Err(e) => return abandon(&pool, e).await,
        Ok(Some(tree)) => {
            report.skipped.extend(tree.unsafe_names);
            (tree.snapshot, tree.parts, true)
        }
        Ok(None) if !base.is_empty() => {
            let refusal = Refusal::MissingRoot {
                side: Side::Remote,
                root: folder.remote.clone(),
            };
            return abandon(&pool, refused(folder, refusal)).await;
        }
        Ok(None) => (Snapshot::new(), Vec::new(), false),
    };
    let local_real = match folder.local.canonicalize() {
        Ok(p) => p,
        Err(e) => return abandon(&pool, Error::local("resolve", &folder.local)(e)).await,
    };
    let mut shared = Shared {
        config: config.clone(),
        folder: folder.clone(),
        local: scanned.snapshot,
        remote,
        state: Mutex::new(state),
        run: runner(cancel),
        unconfirmed: Mutex::new(Vec::new()),
        open_intents: Mutex::new(Default::default()),
        local_real,
        settled_before: options.settle.map(|d| {
            options.clock.now().timestamp_nanos_opt().unwrap_or(i64::MAX)
                - d.as_nanos().min(i64::MAX as u128) as i64
        }),
        read_back: Mutex::new(Default::default()),
        ready_dirs: Mutex::new(Default::default()),
        writes_at: Default::default(),
        ignore: ignore.clone(),
        meter: options.meter.clone(),
    };
    let mut policy = policy_of(folder);
    if let Err(e) = super::digests::fill_digests(&mut shared, &base, &policy, options.plan_only).await {
        return abandon(&pool, e).await;
    }
    if let Err(e) = super::candidates::fill(&mut shared, &base, &mut policy).await {
        return abandon(&pool, e).await;
    }
    let plan = match reconcile::plan_part(
        &base,
        &shared.local,
        &shared.remote,
        &policy,
        options.clock.now(),
        part,
    ) {
        Ok(plan) => plan,
        Err(refusal) => return abandon(&pool, refused(folder, refusal)).await,
    };
    // The transfers that follow a move find the moved file at its new name.
    reconcile::moves::rebase(&plan.actions, &mut shared.local, &mut shared.remote);
    let totals = Totals::of(&plan, &shared.local, &shared.remote);
    if let Some(meter) = &shared.meter {
        meter.planned(&folder.name, &totals);
    }
    Ok(Prepared {
        shared,
        plan,
        totals,
        report,
        pool,
        retries,
        started,
        local_parts: scanned.part_files,
        remote_parts,
        remote_exists,
        settlements,
    })
}

/// The remote tree in `scope`, each synced file it leaves out confirmed gone (`left_out`): a
/// listing that left out a file still there is taken again, twice at most.
async fn list_confirmed(
    run: Arc<Runner>,
    folder: &Folder,
    ignore: &Ignore,
    base: &Base,
    scope: &Scope,
    bound: &TreeBound,
) -> Result<Option<RemoteTree>> {
    let mut relisted = 0;
    loop {
        let Some(tree) = list_tree(run.clone(), folder, ignore, scope, bound).await? else {
            return Ok(None);
        };
        let Some(path) = left_out(&run, folder, base, &tree.snapshot, scope).await? else {
            return Ok(Some(tree));
        };
        if relisted == 2 {
            return Err(Error::Verify {
                path: path.to_remote(&folder.remote),
                detail: "the server's listings left it out three times, though it exists".into(),
            });
        }
        relisted += 1;
        tracing::warn!(folder = folder.name, %path, "the server's listing left out a file it holds; listing again");
    }
}

/// A synced file the listing says is gone from the server but that is still there, if any.
///
/// Servers under load can answer a listing with nothing in it (226, no lines). Believed, that
/// reads as the user deleting every file of the directory on the server, and a pass would
/// delete them locally, or forget files deleted on both sides and bring them back later. So
/// every such absence is confirmed on the control channel (MLST, or SIZE) before it is planned
/// on; a user's real deletions on the server cost one round trip each, over the pool.
async fn left_out(
    run: &Arc<Runner>,
    folder: &Folder,
    base: &Base,
    listed: &Snapshot,
    scope: &Scope,
) -> Result<Option<RelPath>> {
    let absent: Vec<RelPath> = base
        .iter()
        .filter(|(p, b)| b.kind == Kind::File && scope.holds(p) && listed.get(*p).is_none())
        .map(|(p, _)| p.clone())
        .collect();
    if absent.is_empty() {
        return Ok(None);
    }
    let workers = run.pool.size().min(absent.len());
    let absent = Arc::new(absent);
    let mut tasks = JoinSet::new();
    for w in 0..workers {
        let (run, absent, root) = (run.clone(), absent.clone(), folder.remote.clone());
        tasks.spawn(async move {
            for path in absent.iter().skip(w).step_by(workers) {
                let remote = path.to_remote(&root);
                if retrying!(&run, &remote, |c| c.exists(&remote))? {
                    return Ok(Some(path.clone()));
                }
            }
            Ok(None)
        });
    }
    let mut found = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Err(e) if e.is_cancelled() => {}
            joined => {
                if let Some(path) = joined.map_err(join_failed("confirm"))?? {
                    found = Some(path);
                    tasks.abort_all();
                }
            }
        }
    }
    Ok(found)
}

/// Logs out of the server and gives `e` back.
async fn abandon<T>(pool: &Pool, e: Error) -> Result<T> {
    pool.close().await;
    Err(e)
}

/// Scans what of the local folder is in `scope`.
async fn scan_local(folder: &Folder, ignore: &Ignore, base: &Arc<Base>, scope: &Scope) -> Result<ScanReport> {
    let (root, ignore, base, scope) = (folder.local.clone(), ignore.clone(), base.clone(), scope.clone());
    crate::local::io::blocking("scan", move || match scope {
        Scope::Full => scan(&root, &ignore, &base),
        Scope::Paths(paths) => scan_subtrees(&root, &paths.into_iter().collect::<Vec<_>>(), &ignore, &base),
    })
    .await?
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
    let mut grown = super::Dirty::default();
    for mut p in paths {
        while let Some(parent) = p.parent().filter(|q| !settled(q)) {
            p = parent;
        }
        grown.add(p);
    }
    grown.take().unwrap_or(Scope::Full)
}

struct RemoteTree {
    snapshot: Snapshot,
    /// Our part files (remote path, the relative path they stand in for).
    parts: Vec<(String, RelPath)>,
    unsafe_names: Vec<Issue>,
}

/// What an entry of a listing is taken to hold in memory beside its path, for
/// `listing_memory_limit`: the entry, its place in the snapshot's map, its listing line's
/// parsed form while the folder is read.
const ENTRY_COST: u64 = 160;

/// What one folder's listing may hold (`listing_memory_limit`), and the server, to name it.
struct TreeBound {
    server: String,
    bytes: u64,
}

/// Lists what of the remote folder is in `scope`, directories fetched concurrently over the
/// pool. `None` when the folder itself (or, for a scope of paths, a parent of one) does not
/// exist. Each name is validated as a path component before it goes any further. What the
/// tree holds is counted against `memory_limit` as it grows (a server may list without end).
async fn list_tree(
    run: Arc<Runner>,
    folder: &Folder,
    ignore: &Ignore,
    scope: &Scope,
    bound: &TreeBound,
) -> Result<Option<RemoteTree>> {
    let mut held = 0u64;
    let mut tree = RemoteTree {
        snapshot: Snapshot::new(),
        parts: Vec::new(),
        unsafe_names: Vec::new(),
    };
    // Collected first, so that the snapshot is built packed (see `reconcile::Snapshot`).
    let mut found = Vec::new();
    let mut tasks: JoinSet<(Option<RelPath>, Result<Vec<Listed>>)> = JoinSet::new();
    let spawn = |tasks: &mut JoinSet<_>, dir: Option<RelPath>| {
        let run = run.clone();
        let remote_dir = dir
            .as_ref()
            .map_or(folder.remote.clone(), |d| d.to_remote(&folder.remote));
        tasks.spawn(async move {
            let r = retrying!(&run, &remote_dir, |c| c.list(&remote_dir));
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
        let (dir, entries) = joined.map_err(join_failed("listing"))?;
        let remote_dir = dir
            .as_ref()
            .map_or(folder.remote.clone(), |d| d.to_remote(&folder.remote));
        let entries = match entries {
            Err(Error::Reply { code: Some(550), .. }) if starts.contains(&dir) => return Ok(None),
            other => other?,
        };
        held += entries
            .iter()
            .map(|l| (remote_dir.len() + l.name.len()) as u64 + ENTRY_COST)
            .sum::<u64>();
        if held > bound.bytes {
            return Err(Error::TooLarge {
                server: bound.server.clone(),
                command: "listing",
                path: folder.remote.clone(),
                what: format!(
                    "a tree of more than {} entries, more than listing_memory_limit allows",
                    found.len() + entries.len()
                ),
                bound: format!("listing_memory_limit: {} MiB", bound.bytes >> 20),
            });
        }
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
            if let Some(target) = part_target(path.name()) {
                if dir_held && let Ok(target) = path.with_name(target) {
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
                    found.push((path, listed_entry(&l)));
                }
                ListedKind::File => {
                    found.push((path, listed_entry(&l)));
                }
                ListedKind::Other => {
                    tracing::debug!(path = %path, "remote symlink or special file not synced")
                }
            }
        }
    }
    tree.snapshot = found.into_iter().collect();
    Ok(Some(tree))
}
