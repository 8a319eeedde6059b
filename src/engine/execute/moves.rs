//! Carrying out a move (`reconcile::moves`): the rename the user made on one side, made on the
//! other. Journaled like every visible change (docs/design.md, invariant 2): the intent names the
//! source, and a pass killed around the rename finds it done by the target holding what was
//! renamed (`settle`). A server that refuses the rename (an existing name, a rename
//! across folders) gets the transfer the plan would have had without move detection.

use crate::engine::pass::Shared;
use crate::engine::report::{MovedPath, Report};
use crate::engine::run::retrying;
use crate::engine::settle::{Expected, Found, Settled, expected_at, holds, local_subtree, remote_subtree};
use crate::engine::transfer::upload::upload;
use crate::engine::transfer::{changed, local_dir_ready, verify_err};
use crate::local::write::check_inside;
use crate::remote::ensure_dir;
use crate::remote::listing::{listed_entry, same_remote};
use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Class, Error, Result};
use crate::local::scan::{Ignore, entry_of};
use crate::path::RelPath;
use crate::reconcile::{BaseEntry, Entry, Kind, Side};
use crate::remote::Remote;
use crate::state::{Intent, Op};

/// The entry a move journals for its target: the base's, with the renamed side's signature as
/// it was seen before the rename (a rename keeps it), which settlement looks for at the target.
fn journaled(sh: &Shared, from: &RelPath, renamed: &Entry, op: Op, to: &RelPath) -> Result<Intent> {
    let base = sh
        .state(|s| s.get(from))?
        .ok_or_else(|| Error::Internal(format!("no base entry for the moved {from}")))?;
    let mut entry = base;
    match op {
        Op::MoveRemote { .. } => entry.remote = renamed.sig(),
        _ => entry.local = renamed.sig(),
    }
    Ok(Intent {
        path: to.clone(),
        op,
        entry,
        server_digest: None,
        folder: None,
    })
}

/// Records a move found done: what the base held at `from` (and under it) is at `to`. A row
/// goes along only where the renamed side held it when the plan was made and holds it as it was
/// at the new name now (`carried`): a file not there, or changed, may have left or changed
/// before the rename or after it, and only the second is a change to carry over; without its
/// row both sides' files are kept. The side the user moved is refreshed from its snapshot only
/// for the files the planner proved the same (`reconcile::moves::same_file`); any other keeps
/// the base's signature, so whatever changed it since still shows as a change.
fn record(sh: &Shared, from: &RelPath, to: &RelPath, user_moved_local: bool, carried: &Found) -> Result<()> {
    let (seen, renamed) = if user_moved_local {
        (&sh.local, &sh.remote)
    } else {
        (&sh.remote, &sh.local)
    };
    sh.state(|s| {
        sh.intents.close_moved(s, from, to, |new, mut e: BaseEntry| {
            let planned = new.rebased(to, from).and_then(|old| renamed.get(&old));
            if !planned.is_some_and(|was| holds(carried, new, was)) {
                return None;
            }
            let moved_on = if user_moved_local {
                Side::Local
            } else {
                Side::Remote
            };
            let proven = |n: &Entry| crate::reconcile::moves::same_file(moved_on, &e, n);
            if let Some(now) = seen
                .get(new)
                .filter(|n| n.kind == e.kind && n.kind == Kind::File && proven(n))
            {
                // As listed or scanned now: racy like any row this pass records.
                if user_moved_local {
                    e.local = sh.recorded_local(now.sig());
                    e.local_id = now.id;
                } else {
                    e.remote = sh.recorded_remote(now, e.sha256.is_some());
                    e.remote_id = now.id;
                }
            }
            Some(e)
        })
    })
}

fn moved(from: &RelPath, to: &RelPath, remote: bool) -> Report {
    let mut r = Report {
        moved_remote: usize::from(remote),
        moved_local: usize::from(!remote),
        ..Report::default()
    };
    let named = MovedPath {
        from: from.to_string(),
        to: to.to_string(),
    };
    if remote {
        r.paths.moved_remote.push(named);
    } else {
        r.paths.moved_local.push(named);
    }
    r
}

/// Whether an earlier attempt of this pass already made the move (its connection lost around
/// the rename): its intent is open. Settled here as the next pass would.
async fn made_by_earlier_attempt(sh: &Shared, conn: &mut dyn Remote, to: &RelPath) -> Result<Option<bool>> {
    let Some((_, settled)) = sh.settle_left_open(conn, to).await? else {
        return Ok(None);
    };
    if !settled.done() {
        sh.close_intent(to, &Settled::NotDone)?;
    }
    Ok(Some(settled.done()))
}

/// The user moved `from` to `to` locally: the same rename on the server.
pub(crate) async fn move_remote(sh: &Shared, from: &RelPath, to: &RelPath) -> Result<Report> {
    let expect = sh
        .remote
        .get(from)
        .cloned()
        .ok_or_else(|| changed(from, Side::Remote))?;
    let (source, target) = (sh.remote_path(from), sh.remote_path(to));
    let expected = expected_at(&sh.remote, from, to, Entry::clone);
    let (source, target, expected, expect) = (&source, &target, &expected, &expect);
    let renamed = retrying(&sh.run, target, move |c| Box::pin(async move {
        if made_by_earlier_attempt(sh, c, to).await? == Some(true) {
            return Ok(Some(remote_subtree(c, &sh.folder, to, expected).await?));
        }
        // A case-only rename: a server that ignores case finds the source itself there.
        let case_only = to.as_str().eq_ignore_ascii_case(from.as_str());
        if !case_only && c.exists(target).await? {
            return Err(changed(to, Side::Remote));
        }
        let now = c.stat(source).await?.map(|l| listed_entry(&l));
        let same =
            now.is_some_and(|n| n.kind == expect.kind && (n.kind == Kind::Dir || same_remote(&n, expect)));
        if !same {
            return Err(changed(from, Side::Remote));
        }
        if expect.kind == Kind::Dir
            && !holds_only_planned(
                &sh.ignore,
                &planned_under(&sh.remote, from),
                &remote_subtree(c, &sh.folder, from, &Expected::new()).await?,
            )
        {
            return Err(changed(from, Side::Remote));
        }
        sh.intend(&journaled(
            sh,
            from,
            expect,
            Op::MoveRemote { from: from.clone() },
            to,
        )?)
        .await?;
        failpoint!("move.intended");
        match c.rename(source, target).await {
            Err(e @ Error::Reply { .. }) if e.class() == Class::Permanent => {
                sh.close_intent(to, &Settled::NotDone)?;
                tracing::info!(from = %from, to = %to, "the server refused the rename ({e}); sending the file instead");
                return Ok(None);
            }
            other => other?,
        }
        failpoint!("move.renamed");
        // Confirmed by what the server now shows at the new name (docs/design.md, "The server": never a
        // reply alone).
        let now = c.stat(target).await?.map(|l| listed_entry(&l));
        let there =
            now.is_some_and(|n| n.kind == expect.kind && (n.kind == Kind::Dir || n.size == expect.size));
        if !there {
            return Err(verify_err(target, "not there after the rename".into()));
        }
        Ok(Some(remote_subtree(c, &sh.folder, to, expected).await?))
    })).await?;
    let Some(carried) = renamed else {
        return Box::pin(fall_back_remote(sh, from, to, expect)).await;
    };
    record(sh, from, to, true, &carried)?;
    tracing::info!(from = %from, to = %to, "moved on the server");
    Ok(moved(from, to, true))
}

/// The server refused the rename: the file is uploaded under its new name and the old one
/// deleted if it is still what the plan saw; a folder file by file, each its own move.
async fn fall_back_remote(sh: &Shared, from: &RelPath, to: &RelPath, expect: &Entry) -> Result<Report> {
    let mut done = Report::default();
    if expect.kind == Kind::Dir {
        return fall_back_remote_dir(sh, from, to).await;
    }
    done.absorb(upload_new(sh, to).await?);
    // Deleted only where it is still the version in sync: an edit made on the server (one that
    // would have followed the move) stays, for the next pass to bring down under its old name.
    let base = sh.state(|s| s.get(from))?;
    let in_sync = base.is_some_and(|b| {
        let then = Entry::file(b.remote.size, b.remote.mtime);
        same_remote(expect, &then)
    });
    if !in_sync {
        return Ok(done);
    }
    let source = sh.remote_path(from);
    let source = &source;
    let deleted = retrying(&sh.run, source, move |c| {
        Box::pin(async move {
            let now = c.stat(source).await?.map(|l| listed_entry(&l));
            if !now.is_some_and(|n| same_remote(&n, expect)) {
                // Changed since the plan: kept, for the next pass to bring back.
                return Ok(false);
            }
            c.remove(source).await.map(|()| true)
        })
    })
    .await?;
    if deleted {
        sh.state(|s| s.remove(from))?;
        done.deleted_remote += 1;
    }
    Ok(done)
}

/// A folder whose rename was refused: its folders made under the new name (shallow first), each
/// file moved on its own (or sent, where it has no old name), then the old folders removed
/// (deepest first) where they are empty.
async fn fall_back_remote_dir(sh: &Shared, from: &RelPath, to: &RelPath) -> Result<Report> {
    let mut done = Report::default();
    let under = |snapshot: &crate::reconcile::Snapshot, dir: &RelPath| -> Vec<(RelPath, Kind)> {
        std::iter::once((dir.clone(), Kind::Dir))
            .chain(dir.under_in(snapshot).map(|(p, e)| (p.clone(), e.kind)))
            .collect()
    };
    let new = under(&sh.local, to);
    for (dir, _) in new.iter().filter(|(_, k)| *k == Kind::Dir) {
        let remote = sh.remote_path(dir);
        retrying(&sh.run, &remote, |c| Box::pin(ensure_dir(c, &remote))).await?;
        sh.record_dir(dir)?;
    }
    for (file, _) in new.iter().filter(|(_, k)| *k == Kind::File) {
        let old = file.rebased(to, from);
        match old.as_ref().and_then(|o| sh.remote.get(o).map(|e| (o, e))) {
            Some((old, e)) if e.kind == Kind::File => {
                done.absorb(Box::pin(move_remote(sh, old, file)).await?)
            }
            _ => done.absorb(upload_new(sh, file).await?),
        }
    }
    for (dir, _) in under(&sh.remote, from)
        .iter()
        .rev()
        .filter(|(_, k)| *k == Kind::Dir)
    {
        let remote = sh.remote_path(dir);
        if retrying(&sh.run, &remote, |c| Box::pin(c.rmdir(&remote)))
            .await
            .is_ok()
        {
            sh.state(|s| s.remove(dir))?;
        }
    }
    Ok(done)
}

async fn upload_new(sh: &Shared, path: &RelPath) -> Result<Report> {
    let local = sh
        .local
        .get(path)
        .cloned()
        .ok_or_else(|| changed(path, Side::Local))?;
    retrying(&sh.run, path.as_str(), |c| {
        Box::pin(upload(sh, c, path, &local, None))
    })
    .await
}

/// The user moved `from` to `to` on the server: the same rename locally, never over a name
/// that is there.
pub(crate) async fn move_local(sh: &Shared, from: &RelPath, to: &RelPath) -> Result<Report> {
    let expect = sh
        .local
        .get(from)
        .cloned()
        .ok_or_else(|| changed(from, Side::Local))?;
    let (source, target) = (from.to_local(&sh.folder.local), to.to_local(&sh.folder.local));
    check_inside(&sh.local_real, &source)?;
    local_dir_ready(sh, &target)?;
    let now = std::fs::symlink_metadata(&source).ok().map(|m| entry_of(&m));
    let same = now.is_some_and(|n| n.kind == expect.kind && (n.kind == Kind::Dir || n.sig() == expect.sig()));
    if !same {
        return Err(changed(from, Side::Local));
    }
    if std::fs::symlink_metadata(&target).is_ok() {
        return Err(changed(to, Side::Local));
    }
    sh.intend(&journaled(
        sh,
        from,
        &expect,
        Op::MoveLocal { from: from.clone() },
        to,
    )?)
    .await?;
    failpoint!("move.intended");
    let renamed = crate::local::io::blocking("rename", {
        let (source, target) = (source.clone(), target.clone());
        let folder = sh.folder.clone();
        let disk = sh.disk.clone();
        let from = from.clone();
        let planned =
            (expect.kind == Kind::Dir).then(|| (planned_under(&sh.local, &from), sh.ignore.clone()));
        move || -> Result<()> {
            // Again, right before: the journal's fsync leaves time for a user to save there.
            if std::fs::symlink_metadata(&target).is_ok() {
                return Err(Error::Changed {
                    path: target.display().to_string(),
                    side: Side::Local,
                });
            }
            if let Some((planned, ignore)) = &planned
                && !holds_only_planned(ignore, planned, &local_subtree(&folder, &from))
            {
                return Err(Error::Changed {
                    path: source.display().to_string(),
                    side: Side::Local,
                });
            }
            disk.rename(&source, &target)
                .map_err(Error::local("rename", &target))?;
            for dir in [source.parent(), target.parent()].into_iter().flatten() {
                disk.sync_dir(dir)
                    .map_err(Error::local(crate::local::write::SYNC_FOLDER, &target))?;
            }
            Ok(())
        }
    })
    .await?;
    if let Err(e) = renamed {
        // Renamed but not known durable: the intent stays open, for the next pass.
        if !crate::local::write::renamed_not_durable(&e) {
            sh.close_intent(to, &Settled::NotDone)?;
        }
        return Err(e);
    }
    failpoint!("move.renamed");
    let carried = local_subtree(&sh.folder, to);
    record(sh, from, to, false, &carried)?;
    tracing::info!(from = %from, to = %to, "moved locally");
    Ok(moved(from, to, false))
}

/// Whether a folder about to be renamed holds nothing the plan did not see (`now`: what it holds
/// now): a file a user put there during the pass would move with it to a name they never gave
/// it. Then the rename waits for the next pass, which sees that file.
fn holds_only_planned(ignore: &Ignore, planned: &BTreeSet<RelPath>, now: &Found) -> bool {
    now.keys()
        .filter(|p| !ignore.hides(p))
        .all(|p| planned.contains(p))
}

/// What `map` holds at `dir` and under it (`dir` itself always).
fn planned_under<V>(snapshot: &BTreeMap<RelPath, V>, dir: &RelPath) -> BTreeSet<RelPath> {
    std::iter::once(dir.clone())
        .chain(dir.subtree_of(snapshot).map(|(p, _)| p.clone()))
        .collect()
}
