//! Runs a plan over the pool: phases in a safe order, actions of a phase in parallel.
//!
//! 1. directories to create and moves, shallow first (each needs its parent: one depth at a
//!    time, in parallel within it);
//! 2. conflicts and transfers, in parallel;
//! 3. file deletions, in parallel;
//! 4. directories to remove, deepest first, one at a time;
//! 5. skips, reported.
//!
//! Each finished action is committed to the state store by the task that did it.

use std::sync::Arc;

use tokio::task::JoinSet;

use super::{conflict, moves};
use crate::engine::pass::Shared;
use crate::engine::racy::shows_time_set;
use crate::engine::report::{Issue, Report};
use crate::engine::run::retrying;
use crate::engine::transfer::{changed, download, ranged_download, ranged_upload, upload};
use crate::error::{Class, Error, Result};
use crate::local::scan::entry_of;
use crate::path::RelPath;
use crate::reconcile::{Action, BaseEntry, Entry, Mtime, Plan, Precision, Side};
use crate::remote::ensure_dir;
use crate::remote::listing::{listed_entry, same_remote};

pub(crate) async fn execute(sh: &Arc<Shared>, plan: Plan, report: &mut Report) -> Result<()> {
    let mut phases: [Vec<Action>; 5] = Default::default();
    for a in plan.actions {
        let phase = match &a {
            Action::MkdirLocal { .. }
            | Action::MkdirRemote { .. }
            | Action::MoveRemote { .. }
            | Action::MoveLocal { .. } => 0,
            Action::KeepBoth { .. }
            | Action::Upload { .. }
            | Action::Download { .. }
            | Action::Adopt { .. }
            | Action::Forget { .. } => 1,
            Action::DeleteLocal { .. } | Action::DeleteRemote { .. } => 2,
            Action::RmdirLocal { .. } | Action::RmdirRemote { .. } => 3,
            Action::Skip { .. } => 4,
        };
        phases[phase].push(a);
    }
    let [structure, transfers, deletes, rmdirs, skips] = phases;
    let result = async {
        // A move out of a folder that is itself moved starts from the folder's new name: it
        // waits for that rename.
        let targets: Vec<RelPath> = structure
            .iter()
            .filter(|a| a.moved_from().is_some())
            .map(|a| a.path().clone())
            .collect();
        let waits = |a: &Action| {
            a.moved_from()
                .is_some_and(|(from, _)| targets.iter().any(|t| from.is_inside(t)))
        };
        let (later, first): (Vec<Action>, Vec<Action>) = structure.into_iter().partition(waits);
        for group in [first, later] {
            let mut by_depth: std::collections::BTreeMap<usize, Vec<Action>> = Default::default();
            for a in group {
                by_depth.entry(a.path().depth()).or_default().push(a);
            }
            for (_, level) in by_depth {
                parallel(sh, level, report).await?;
            }
        }
        parallel(sh, transfers, report).await?;
        confirm_uploads(sh).await;
        parallel(sh, deletes, report).await?;
        for a in rmdirs {
            let r = apply(sh, &a).await;
            absorb(report, &a, r)?;
        }
        for a in skips {
            let r = apply(sh, &a).await;
            absorb(report, &a, r)?;
        }
        Ok(())
    }
    .await;
    if result.is_err() {
        sh.run.cancel.cancel();
    }
    result
}

/// Records what the server lists for files uploaded to a LIST server (whose remote time was
/// noted unconfirmed): one listing per directory. A failure only leaves them unconfirmed, in
/// which case the next pass compares them by size and confirms them.
async fn confirm_uploads(sh: &Arc<Shared>) {
    let paths: Vec<RelPath> = sh
        .unconfirmed
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    let mut by_dir: std::collections::BTreeMap<Option<RelPath>, Vec<RelPath>> = Default::default();
    for p in paths {
        by_dir.entry(p.parent()).or_default().push(p);
    }
    for (dir, files) in by_dir {
        let remote_dir = dir
            .as_ref()
            .map_or(sh.folder.remote.clone(), |d| sh.remote_path(d));
        let listed = match retrying(&sh.run, &remote_dir, |c| Box::pin(c.list(&remote_dir))).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(dir = remote_dir, "uploads not confirmed by a listing: {e}");
                continue;
            }
        };
        for path in files {
            let Some(seen) = listed.iter().find(|l| l.name == path.name()) else {
                continue;
            };
            let seen = listed_entry(seen);
            let _ = sh.state(|s| {
                // Only the time we set confirms the upload: another one means someone wrote
                // the file since, and it stays unconfirmed for the next pass to check by content.
                if let Some(mut b) = s.get(&path)?
                    && b.remote.size == seen.size
                    && shows_time_set(&seen, b.remote.mtime)
                {
                    b.remote = seen.sig();
                    s.put(&path, &b)?;
                }
                Ok(())
            });
        }
    }
}

/// Runs `actions` concurrently, as many at once as the pool has connections (twice that in
/// flight, so a connection never waits for the next job to be spawned).
async fn parallel(sh: &Arc<Shared>, actions: Vec<Action>, report: &mut Report) -> Result<()> {
    let limit = sh.config.server.connections * 2;
    let mut tasks: JoinSet<(Action, Result<Report>)> = JoinSet::new();
    let mut pending = actions.into_iter();
    loop {
        while tasks.len() < limit {
            let Some(a) = pending.next() else { break };
            let sh = sh.clone();
            tasks.spawn(async move {
                let r = apply(&sh, &a).await;
                (a, r)
            });
        }
        let Some(joined) = tasks.join_next().await else {
            return Ok(());
        };
        let (action, result) = joined.map_err(crate::error::join_failed("transfer"))?;
        if let Some(meter) = &sh.meter
            && matches!(
                action,
                Action::Upload { .. } | Action::Download { .. } | Action::KeepBoth { .. }
            )
        {
            meter.file_done();
        }
        absorb(report, &action, result)?;
    }
}

/// Folds one action's result into the report. Fatal errors stop the pass; a file that moved
/// under us is left for the next pass; other errors are reported and the pass goes on.
fn absorb(report: &mut Report, action: &Action, result: Result<Report>) -> Result<()> {
    let e = match result {
        Ok(delta) => {
            report.absorb_action(action.path().as_str(), delta);
            return Ok(());
        }
        Err(e) => e,
    };
    let issue = Issue {
        path: action.path().to_string(),
        reason: e.to_string(),
    };
    match e.class() {
        Class::Fatal => Err(e),
        _ if matches!(e, Error::Changed { .. }) => {
            tracing::info!(path = %action.path(), "{e}");
            report.skipped.push(issue);
            Ok(())
        }
        _ => {
            tracing::error!(path = %action.path(), "{e}");
            report.failed.push(issue);
            Ok(())
        }
    }
}

fn local_entry(sh: &Shared, path: &RelPath) -> Result<Entry> {
    sh.local
        .get(path)
        .cloned()
        .ok_or_else(|| changed(path, Side::Local))
}

fn remote_entry(sh: &Shared, path: &RelPath) -> Result<Entry> {
    sh.remote
        .get(path)
        .cloned()
        .ok_or_else(|| changed(path, Side::Remote))
}

/// Whether the local file was modified too recently to be taken as finished.
fn still_changing(sh: &Shared, path: &RelPath) -> bool {
    match (sh.quiet_before, sh.local.get(path)) {
        (Some(limit), Some(e)) => e.mtime.nanos > limit,
        _ => false,
    }
}

pub(crate) fn record_dir(sh: &Shared, path: &RelPath) -> Result<()> {
    let dir = Entry::dir(Mtime::new(0, Precision::Days));
    sh.state(|s| s.put(path, &BaseEntry::of(&dir, &dir)))
}

/// Does one action; returns what it changed for the report.
async fn apply(sh: &Arc<Shared>, action: &Action) -> Result<Report> {
    let mut d = Report::default();
    match action {
        Action::MkdirLocal { path } => {
            let full = path.to_local(&sh.folder.local);
            crate::local::write::check_inside(&sh.local_real, &full)?;
            sh.disk
                .make_dirs(&full, &sh.folder.local)
                .map_err(Error::local("create directory", &full))?;
            record_dir(sh, path)?;
            d.dirs_created += 1;
        }
        Action::MkdirRemote { path } => {
            let remote = sh.remote_path(path);
            retrying(&sh.run, &remote, |c| Box::pin(ensure_dir(c, &remote))).await?;
            record_dir(sh, path)?;
            d.dirs_created += 1;
        }
        Action::Upload { path } | Action::KeepBoth { path, .. } if still_changing(sh, path) => {
            tracing::debug!(path = %path, "still being written; left for a later pass");
            d.deferred += 1;
        }
        Action::Upload { path } => {
            let local = local_entry(sh, path)?;
            let expect = sh.remote.get(path).cloned();
            d.absorb(if ranged_upload::wanted(sh, &local) {
                ranged_upload::upload(sh, path, &local, expect.as_ref()).await?
            } else {
                retrying(&sh.run, path.as_str(), |c| {
                    Box::pin(upload::upload(sh, c, path, &local, expect.as_ref()))
                })
                .await?
            });
        }
        Action::Download { path } => {
            let remote = remote_entry(sh, path)?;
            let expect = sh.local.get(path).cloned();
            // The connection goes back to the pool once the bytes are in: it fetches the next
            // file while this one is made durable and renamed.
            let fetched = if ranged_download::wanted(sh, path, &remote) {
                ranged_download::fetch(sh, path, &remote).await?
            } else {
                retrying(&sh.run, path.as_str(), |c| {
                    Box::pin(download::fetch(sh, c, path, &remote))
                })
                .await?
            };
            d.absorb(download::place(sh, path, &remote, fetched, expect.as_ref()).await?);
        }
        Action::KeepBoth { path, loser, copy } => {
            let delta = retrying(&sh.run, path.as_str(), |c| {
                Box::pin(conflict::keep_both(sh, c, path, *loser, copy))
            })
            .await?;
            d.absorb(delta);
            d.conflicts += 1;
        }
        Action::MoveRemote { from, path } => d.absorb(moves::move_remote(sh, from, path).await?),
        Action::MoveLocal { from, path } => d.absorb(moves::move_local(sh, from, path).await?),
        Action::Adopt { path } => {
            if let (Some(l), Some(r)) = (sh.local.get(path), sh.remote.get(path)) {
                let mut b = BaseEntry::of(l, r);
                b.remote = sh.recorded_remote(r, b.sha256.is_some());
                if b.sha256.is_some() {
                    b.local = sh.recorded_local(l.sig());
                }
                sh.state(|s| s.put(path, &b))?;
            }
        }
        Action::Forget { path } => {
            // Gone from both sides: gone locally for good before the base forgets it (an unlink
            // whose folder sync failed may not be durable yet).
            let dir = path.to_local(&sh.folder.local);
            if let Some(dir) = dir
                .parent()
                .filter(|d| d.is_dir())
                .map(std::path::Path::to_path_buf)
                && !sh.forgotten_in.lock().is_ok_and(|d| d.contains(&dir))
            {
                let disk = sh.disk.clone();
                let synced = dir.clone();
                crate::local::io::blocking("sync", move || {
                    disk.sync_dir(&synced)
                        .map_err(Error::local("sync the folder", &synced))
                })
                .await??;
                if let Ok(mut d) = sh.forgotten_in.lock() {
                    d.insert(dir);
                }
            }
            sh.state(|s| s.remove(path))?
        }
        Action::DeleteLocal { path } => {
            let full = path.to_local(&sh.folder.local);
            let expect = local_entry(sh, path)?;
            match std::fs::symlink_metadata(&full) {
                Ok(m) if entry_of(&m).sig() == expect.sig() => {}
                _ => return Err(changed(path, Side::Local)),
            }
            let disk = sh.disk.clone();
            crate::local::io::blocking("delete", move || {
                disk.delete(&full, false).map_err(Error::local("delete", &full))
            })
            .await??;
            sh.state(|s| s.remove(path))?;
            tracing::info!(path = %path, "deleted locally");
            d.deleted_local += 1;
        }
        Action::DeleteRemote { path } => {
            let remote = sh.remote_path(path);
            let expect = remote_entry(sh, path)?;
            let (remote, expect) = (&remote, &expect);
            retrying(&sh.run, remote, move |c| {
                Box::pin(async move {
                    let now = c.stat(remote).await?;
                    if !now.is_some_and(|n| same_remote(&listed_entry(&n), expect)) {
                        return Err(changed(path, Side::Remote));
                    }
                    c.remove(remote).await
                })
            })
            .await?;
            sh.state(|s| s.remove(path))?;
            tracing::info!(path = %path, "deleted on the server");
            d.deleted_remote += 1;
        }
        Action::RmdirLocal { path } => {
            let full = path.to_local(&sh.folder.local);
            let disk = sh.disk.clone();
            match crate::local::io::blocking("delete", move || disk.delete(&full, true)).await? {
                Ok(()) => d.dirs_removed += 1,
                Err(e) => d.skip(path.to_string(), format!("local directory not removed: {e}")),
            }
            sh.state(|s| s.remove(path))?;
        }
        Action::RmdirRemote { path } => {
            let remote = sh.remote_path(path);
            match retrying(&sh.run, &remote, |c| Box::pin(c.rmdir(&remote))).await {
                Ok(()) => d.dirs_removed += 1,
                Err(Error::Reply { reply, .. }) => {
                    d.skip(path.to_string(), format!("remote directory not removed: {reply}"))
                }
                Err(e) => return Err(e),
            }
            sh.state(|s| s.remove(path))?;
        }
        Action::Skip { path, reason } => {
            tracing::warn!(path = %path, "skipped: {reason}");
            d.skip(path.to_string(), reason.clone());
        }
    }
    Ok(d)
}
