//! The first half of a pass: scan, list, digests and plan, with totals. Nothing changes on
//! either side and nothing is written to the state store, so `--dry-run` and
//! `status --remote` are this alone, and may run while a service works.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

mod candidates;
mod clock;
mod digests;
mod list;

use crate::config::{Config, Folder};
use crate::engine::pass::Shared;
use crate::engine::report::meter::Meter;
use crate::engine::report::{Issue, Report, Totals};
use crate::engine::run::{Retries, Runner};
use crate::engine::scope::Scope;
use crate::engine::settle::{self, GroupSync, Intents};
use crate::error::{Error, Result};
use crate::local::scan::{Ignore, ScanReport, scan, scan_subtrees};
use crate::path::RelPath;
use crate::reconcile::{self, Base, Kind, Part, Plan, Policy, Refusal, Side, Snapshot};
use crate::remote::Connector;
use crate::remote::limit::RateLimiter;
use crate::remote::pool::Pool;
use crate::state::State;
use list::{TreeBound, list_confirmed};

/// How a pass runs: what it looks at, and what it may write.
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
    /// The local disk: the real one, or the simulation's.
    pub disk: crate::local::disk::DiskRef,
}

/// A planned pass: what `execute` carries out. It holds each tree once (the two snapshots
/// the actions check against, and the plan); the base is dropped once planned.
pub struct Prepared {
    pub(crate) shared: Shared,
    pub(crate) plan: Plan,
    pub(crate) totals: Totals,
    /// Skips found on the way (unsafe names), for the report.
    pub(crate) report: Report,
    pub(crate) pool: Arc<Pool>,
    pub(crate) retries: Arc<Retries>,
    pub(crate) started: Instant,
    pub(crate) local_parts: Vec<std::path::PathBuf>,
    /// Our remote part files: (remote path, the path they stand in for).
    pub(crate) remote_parts: Vec<(String, RelPath)>,
    pub(crate) remote_exists: bool,
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
        self.shared.drop_kept_reads();
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
    // Before any local file is read (`recorded_local`).
    let local_moment = options.clock.now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    if !folder.local.is_dir() {
        return Err(refused(
            folder,
            Refusal::MissingRoot {
                side: Side::Local,
                root: folder.local.display().to_string(),
            },
        ));
    }
    let (state, mut base, rebuilt) = open_store(config, folder, &options)?;
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
    let intents = Intents::left_open(&state)?;
    let settlements = match settle::settle(&runner(cancel), folder, intents, &base).await {
        Ok(s) => s,
        Err(e) => return abandon(&pool, e).await,
    };
    settle::apply(&mut base, &settlements);
    // What a killed pass left undone: its two sides may be two writes of one size in one
    // second, which size and time alone would take for one file (`digests::fill_digests`).
    let undone: std::collections::BTreeSet<RelPath> = settlements
        .iter()
        .filter(|(_, s)| !s.done())
        .map(|(p, _)| p.clone())
        .collect();
    let durable = GroupSync::new(&state, options.disk.clone());
    // Recorded at once, and on disk, before this pass makes a part file of its own: a read-back
    // kept in one would read as a rename not made, were this pass killed before recording.
    if !options.plan_only && !settlements.is_empty() {
        let recorded = match settle::record(&state, folder, &options.disk, &settlements) {
            Ok(()) => durable.all_so_far().await,
            Err(e) => Err(e),
        };
        if let Err(e) = recorded {
            return abandon(&pool, e).await;
        }
    }
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
        intents: Intents::default(),
        durable,
        local_real,
        quiet_before: options.quiet_period.map(|d| {
            options.clock.now().timestamp_nanos_opt().unwrap_or(i64::MAX)
                - d.as_nanos().min(i64::MAX as u128) as i64
        }),
        kept_reads: Mutex::new(Default::default()),
        ready_dirs: Mutex::new(Default::default()),
        forgotten_in: Mutex::new(Default::default()),
        writes_at: Default::default(),
        ignore: ignore.clone(),
        meter: options.meter.clone(),
        disk: options.disk.clone(),
        server_clock: Default::default(),
        local_precision: crate::local::precision::of(&folder.local),
        local_moment,
    };
    // Before any content is read from the server (the digests below, the downloads).
    if !options.plan_only && crate::engine::racy::needed(folder, &base, &shared.remote) {
        shared.server_clock = clock::read(&shared.run, folder).await;
    }
    if !options.plan_only {
        match clock::look_to_the_second(&mut shared, &base).await {
            Ok(looked) => report.confirmed.by_mdtm = looked,
            Err(e) => return abandon(&pool, e).await,
        }
    }
    let mut policy = policy_of(folder);
    policy.server_clock = shared.server_clock.racy_from();
    if rebuilt {
        // A lost base proves nothing: only equal content makes two files one.
        policy.first_sync = crate::config::FirstSync::CompareContent;
    }
    match digests::fill_digests(&mut shared, &base, &policy, &undone, options.plan_only).await {
        Ok(looked) => {
            report.confirmed.by_hash = looked.by_hash;
            report.confirmed.by_read_back = looked.by_read_back;
        }
        Err(e) => return abandon(&pool, e).await,
    }
    if let Err(e) = candidates::fill(&mut shared, &base, &mut policy).await {
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
    reconcile::plan::rebase(&plan.actions, &mut shared.local, &mut shared.remote);
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
    })
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
    let mut grown = crate::engine::scope::Dirty::default();
    for mut p in paths {
        while let Some(parent) = p.parent().filter(|q| !settled(q)) {
            p = parent;
        }
        grown.add(p);
    }
    grown.take().unwrap_or(Scope::Full)
}

/// The folder's store and its base. A store SQLite says is damaged is moved aside, and the
/// pass starts from an empty base, as a first sync that compares content (`rebuilt`).
fn open_store(config: &Config, folder: &Folder, options: &Options) -> Result<(State, Base, bool)> {
    let open = || -> Result<(State, Base)> {
        let mut state = State::open(&config.state_dir, &folder.name)?;
        state.check_if_left_open()?;
        let disk = options.disk.clone();
        state.when_synced(Arc::new(move |store| disk.store_synced(store)));
        let base = state.load()?;
        Ok((state, base))
    };
    match open() {
        Ok((state, base)) => Ok((state, base, false)),
        Err(e) if crate::state::is_damaged(&e) => {
            let stamp = options.clock.now().format("%Y%m%d-%H%M%S").to_string();
            let aside = State::set_aside(&config.state_dir, &folder.name, &stamp)?;
            tracing::warn!(
                folder = folder.name,
                "the state store {} is damaged ({e}); it is moved to {} and a new one made: this \
                 pass compares both sides as a first sync does, keeps both versions where they \
                 differ, and deletes nothing",
                State::path(&config.state_dir, &folder.name).display(),
                aside.display()
            );
            let (state, base) = open()?;
            Ok((state, base, true))
        }
        Err(e) => Err(e),
    }
}

/// What of a folder's config the planner looks at.
fn policy_of(folder: &Folder) -> Policy {
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
