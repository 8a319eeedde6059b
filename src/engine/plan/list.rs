//! The server's side of a folder for one pass: its tree listed over the pool within
//! `listing_memory_limit`, each name validated, and every synced file it leaves out confirmed
//! gone before it is planned on.

use std::sync::Arc;

use tokio::task::JoinSet;

use crate::config::Folder;
use crate::engine::report::Issue;
use crate::engine::run::{Runner, retrying};
use crate::engine::scope::Scope;
use crate::error::{Error, Result, join_failed};
use crate::local::part_target;
use crate::local::scan::Ignore;
use crate::path::RelPath;
use crate::reconcile::{Base, Kind, Snapshot};
use crate::remote::listing::{Listed, ListedKind, listed_entry};

/// The remote tree in `scope`, each synced file it leaves out confirmed gone (`left_out`): a
/// listing that left out a file still there is taken again, twice at most.
pub(crate) async fn list_confirmed(
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
    let mut tasks: JoinSet<Result<Option<RelPath>>> = JoinSet::new();
    for w in 0..workers {
        let (run, absent, root) = (run.clone(), absent.clone(), folder.remote.clone());
        tasks.spawn(async move {
            for path in absent.iter().skip(w).step_by(workers) {
                let remote = path.to_remote(&root);
                if retrying(&run, &remote, |c| Box::pin(c.exists(&remote))).await? {
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

pub(crate) struct RemoteTree {
    pub snapshot: Snapshot,
    /// Our part files (remote path, the relative path they stand in for).
    pub parts: Vec<(String, RelPath)>,
    pub unsafe_names: Vec<Issue>,
}

/// What an entry of a listing is taken to hold in memory beside its path, for
/// `listing_memory_limit`: the entry, its place in the snapshot's map, its listing line's
/// parsed form while the folder is read.
const ENTRY_COST: u64 = 160;

/// What one folder's listing may hold (`listing_memory_limit`), and the server, to name it.
pub(crate) struct TreeBound {
    pub server: String,
    pub bytes: u64,
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
            let r = retrying(&run, &remote_dir, |c| Box::pin(c.list(&remote_dir))).await;
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
