//! The per-path three-way decision table.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::conflict_copy::conflict_copy_name;
use super::plan::{Action, Side};
use super::policy::{ConflictPolicy, Direction, FirstSync, Policy};
use super::snapshot::{Base, BaseEntry, Entry, Kind, Precision, Snapshot};
use crate::path::RelPath;

/// How one side moved since the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Absent,
    New,
    Unchanged,
    Modified,
    Deleted,
}

/// How a side moved since the base, given how to tell that a file's signature moved.
/// A moved signature with the same known digest is a touch, not an edit.
fn change(
    base: Option<&BaseEntry>,
    now: Option<&Entry>,
    sig_moved: impl Fn(&BaseEntry, &Entry) -> bool,
) -> Change {
    match (base, now) {
        (None, None) => Change::Absent,
        (None, Some(_)) => Change::New,
        (Some(_), None) => Change::Deleted,
        (Some(b), Some(e)) if b.kind != e.kind => Change::Modified,
        (Some(_), Some(e)) if e.kind == Kind::Dir => Change::Unchanged,
        (Some(b), Some(e)) if !sig_moved(b, e) => Change::Unchanged,
        (Some(b), Some(e)) => match (&e.sha256, &b.sha256) {
            (Some(now), Some(then)) if now == then => Change::Unchanged,
            _ => Change::Modified,
        },
    }
}

/// The local disk's own (size, mtime) against what it said at the last sync.
pub fn local_change(base: Option<&BaseEntry>, now: Option<&Entry>) -> Change {
    change(base, now, |b, e| {
        e.size != b.local.size || e.mtime != b.local.mtime
    })
}

/// Remote change detection compares the server's own (size, modify) with what it said last
/// time, at the coarser precision of the two (docs/design.md, invariant 7).
pub fn remote_change(base: Option<&BaseEntry>, now: Option<&Entry>) -> Change {
    change(base, now, |b, e| {
        if e.size != b.remote.size {
            return true;
        }
        if b.remote.mtime.precision == Precision::Unconfirmed {
            // The time set after an upload was never seen listed (a pass cut before its
            // confirming listing): a same-size edit since would look the same, so only the
            // bytes tell, when the engine found them (`needs_remote_digest`).
            return e.sha256.is_some();
        }
        !e.mtime.same_as(&b.remote.mtime)
    })
}

/// Whether the engine must find the digest of the server's copy before planning: the base
/// holds an upload whose time was never confirmed and the size still matches.
pub fn needs_remote_digest(base: Option<&BaseEntry>, remote: &Entry) -> bool {
    base.is_some_and(|b| {
        b.kind == Kind::File
            && b.remote.mtime.precision == Precision::Unconfirmed
            && b.remote.size == remote.size
            && b.sha256.is_some()
    }) && remote.kind == Kind::File
        && remote.sha256.is_none()
}

/// Whether the engine must find the digest of the server's copy of a file deleted locally whose
/// server signature moved without its size changing: the same bytes under a new time (a file
/// that changed during our download, recorded with the time listed before) are no edit, and
/// the deletion goes through; only new bytes make it a conflict.
pub fn needs_touch_check(base: Option<&BaseEntry>, local: Option<&Entry>, remote: &Entry) -> bool {
    local.is_none()
        && remote.kind == Kind::File
        && remote.sha256.is_none()
        && base.is_some_and(|b| {
            b.kind == Kind::File
                && b.sha256.is_some()
                && b.remote.size == remote.size
                && remote_change(Some(b), Some(remote)) == Change::Modified
        })
}

/// Whether the two times agree to the second, both sides giving the time to the second or
/// better, and the server's not racy (in or after the second of the server's clock).
fn times_agree(local: &Entry, remote: &Entry, policy: &Policy) -> bool {
    local.mtime.precision <= Precision::Seconds
        && remote.mtime.precision <= Precision::Seconds
        && local.mtime.same_as(&remote.mtime)
        && policy
            .server_clock
            .is_none_or(|clock| remote.mtime.secs() < clock)
}

/// Whether a file on both sides is the same on both (docs/design.md, invariant 3). After a change on
/// both sides since the base, only equal digests say so: size and time come from two clocks. On
/// a first sync (no base), `first_sync: size-and-time` also takes equal size and times that
/// agree to the second.
pub fn same_content(base: Option<&BaseEntry>, local: &Entry, remote: &Entry, policy: &Policy) -> bool {
    if local.size != remote.size {
        return false;
    }
    match (&local.sha256, &remote.sha256) {
        (Some(a), Some(b)) => a == b,
        _ => {
            base.is_none()
                && policy.first_sync == FirstSync::SizeAndTime
                && times_agree(local, remote, policy)
        }
    }
}

/// Whether the planner needs the digests of both sides, which the engine then finds (the local
/// file read, the server's hash or the file read back) before planning: for `same_content`, and,
/// when both sides moved since the base, to tell an edit from a touch (a signature that moved
/// over the same bytes: a server that rewrote a file, or one that changed during our download).
/// Never a conflict on size and time alone.
pub fn needs_digests(base: Option<&BaseEntry>, local: &Entry, remote: &Entry, policy: &Policy) -> bool {
    let both_files = local.kind == Kind::File && remote.kind == Kind::File;
    let known = local.sha256.is_some() && remote.sha256.is_some();
    if !both_files || known {
        return false;
    }
    match base {
        None => {
            local.size == remote.size
                && (policy.first_sync == FirstSync::CompareContent || !times_agree(local, remote, policy))
        }
        Some(b) if b.sha256.is_none() && local.size != remote.size => false,
        Some(_) => {
            local_change(base, Some(local)) == Change::Modified
                && remote_change(base, Some(remote)) == Change::Modified
        }
    }
}

fn uploads(p: &Policy) -> bool {
    p.direction != Direction::Download
}

fn downloads(p: &Policy) -> bool {
    p.direction != Direction::Upload
}

pub struct Ctx<'a> {
    pub policy: &'a Policy,
    pub now: DateTime<Utc>,
    pub local: &'a Snapshot,
    pub remote: &'a Snapshot,
}

/// The action for one file path (neither side a directory).
pub fn decide_file(
    ctx: &Ctx<'_>,
    path: &RelPath,
    base: Option<&BaseEntry>,
    local: Option<&Entry>,
    remote: Option<&Entry>,
) -> Option<Action> {
    use Change::*;
    let p = ctx.policy;
    let lc = local_change(base, local);
    let rc = remote_change(base, remote);
    let up = || Action::Upload { path: path.clone() };
    let down = || Action::Download { path: path.clone() };
    match (lc, rc) {
        (Absent, Absent) => None,
        (Unchanged, Unchanged) => {
            let (b, l, r) = (base?, local?, remote?);
            // A touched file or a listing that changed shape: refresh the base, move nothing.
            (b.local != l.sig() || b.remote != r.sig()).then(|| Action::Adopt { path: path.clone() })
        }
        (New, Absent) | (Modified, Unchanged) | (Modified, Deleted) => uploads(p).then(up),
        (Absent, New) | (Unchanged, Modified) | (Deleted, Modified) => downloads(p).then(down),
        (Deleted, Unchanged) => {
            if p.delete && uploads(p) {
                Some(Action::DeleteRemote { path: path.clone() })
            } else if p.direction == Direction::Download {
                Some(down())
            } else {
                None
            }
        }
        (Unchanged, Deleted) => {
            if p.delete && downloads(p) {
                Some(Action::DeleteLocal { path: path.clone() })
            } else if p.direction == Direction::Upload {
                Some(up())
            } else {
                None
            }
        }
        (Deleted, Deleted) => Some(Action::Forget { path: path.clone() }),
        (New, New) | (Modified, Modified) => {
            let (l, r) = (local?, remote?);
            if same_content(base, l, r, p) {
                Some(Action::Adopt { path: path.clone() })
            } else {
                Some(conflict(ctx, path, l, r))
            }
        }
        // The remaining pairs cannot happen: base presence is shared by both sides.
        _ => None,
    }
}

fn conflict(ctx: &Ctx<'_>, path: &RelPath, local: &Entry, remote: &Entry) -> Action {
    let p = ctx.policy;
    let local_newer = local.mtime.nanos >= remote.mtime.nanos;
    let winner = match p.conflict {
        ConflictPolicy::KeepBoth => {
            let loser = match p.direction {
                Direction::Upload => Side::Remote,
                Direction::Download => Side::Local,
                Direction::Both if local_newer => Side::Remote,
                Direction::Both => Side::Local,
            };
            return match conflict_copy_name(path, ctx.now, loser, ctx.local, ctx.remote) {
                Some(copy) => Action::KeepBoth {
                    path: path.clone(),
                    loser,
                    copy,
                },
                None => Action::Skip {
                    path: path.clone(),
                    reason: "conflict: no free name for a conflict copy".into(),
                },
            };
        }
        ConflictPolicy::Newer if local_newer => Side::Local,
        ConflictPolicy::Newer => Side::Remote,
        ConflictPolicy::Local => Side::Local,
        ConflictPolicy::Remote => Side::Remote,
    };
    match winner {
        Side::Local if uploads(p) => Action::Upload { path: path.clone() },
        Side::Remote if downloads(p) => Action::Download { path: path.clone() },
        side => Action::Skip {
            path: path.clone(),
            reason: format!(
                "conflict: the {side} version wins but direction is {:?}",
                p.direction
            )
            .to_lowercase(),
        },
    }
}

/// The paths a plan removes so far, on each side: for a directory, decided after everything
/// under it, to know whether all of it goes.
#[derive(Default)]
pub(super) struct Removed {
    local: BTreeSet<RelPath>,
    remote: BTreeSet<RelPath>,
}

impl Removed {
    pub(super) fn note(&mut self, action: &Action) {
        // A move takes its source away from its folder on the side it is renamed on.
        if let Some((from, side)) = action.moved_from() {
            match side {
                Side::Local => self.local.insert(from.clone()),
                Side::Remote => self.remote.insert(from.clone()),
            };
            return;
        }
        match action {
            Action::DeleteLocal { .. } | Action::RmdirLocal { .. } => {
                self.local.insert(action.path().clone())
            }
            Action::DeleteRemote { .. } | Action::RmdirRemote { .. } => {
                self.remote.insert(action.path().clone())
            }
            _ => false,
        };
    }

    fn on(&self, side: Side) -> &BTreeSet<RelPath> {
        match side {
            Side::Local => &self.local,
            Side::Remote => &self.remote,
        }
    }
}

/// A directory's action, decided after everything under it (`removed`: what goes of it): removed
/// only where everything under it goes too, created where something under it needs it.
pub(super) fn decide_dir(
    policy: &Policy,
    path: &RelPath,
    base: &Base,
    local: &Snapshot,
    remote: &Snapshot,
    removed: &Removed,
) -> Option<Action> {
    let uploads = policy.direction != Direction::Download;
    let downloads = policy.direction != Direction::Upload;
    let in_base = base.contains_key(path);
    let (l, r) = (local.contains_key(path), remote.contains_key(path));
    let p = || path.clone();
    // Everything under `path` on `side` is being removed (or nothing is there).
    let emptied =
        |snapshot: &Snapshot, side: Side| path.under_in(snapshot).all(|(k, _)| removed.on(side).contains(k));
    match (in_base, l, r) {
        (_, true, true) => (!in_base).then(|| Action::Adopt { path: p() }),
        (false, true, false) => uploads.then(|| Action::MkdirRemote { path: p() }),
        (false, false, true) => downloads.then(|| Action::MkdirLocal { path: p() }),
        (true, false, false) => Some(Action::Forget { path: p() }),
        (true, false, true) => {
            if policy.delete && uploads && emptied(remote, Side::Remote) {
                Some(Action::RmdirRemote { path: p() })
            } else if downloads && (policy.direction == Direction::Download || !emptied(remote, Side::Remote))
            {
                Some(Action::MkdirLocal { path: p() })
            } else {
                None
            }
        }
        (true, true, false) => {
            if policy.delete && downloads && emptied(local, Side::Local) {
                Some(Action::RmdirLocal { path: p() })
            } else if uploads && (policy.direction == Direction::Upload || !emptied(local, Side::Local)) {
                Some(Action::MkdirRemote { path: p() })
            } else {
                None
            }
        }
        (false, false, false) => None,
    }
}
