//! The plan is a value: computed by `reconcile::plan`, printed for `--dry-run`, executed by the
//! engine. Nothing in here does I/O.

use std::fmt;

use serde::Serialize;

use super::snapshot::{Entry, Snapshot};
use crate::path::RelPath;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Local,
    Remote,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Local => "local",
            Side::Remote => "remote",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    MkdirLocal {
        path: RelPath,
    },
    MkdirRemote {
        path: RelPath,
    },
    /// Both sides changed: the loser's version moves to `copy` on both sides, the winner's
    /// takes the real name. Nothing is overwritten.
    KeepBoth {
        path: RelPath,
        loser: Side,
        copy: RelPath,
    },
    Upload {
        path: RelPath,
    },
    Download {
        path: RelPath,
    },
    /// Moved locally since the base (`from` is now `path`, the same file): the same rename on
    /// the server. A folder moved whole is one rename, with all under it.
    MoveRemote {
        from: RelPath,
        path: RelPath,
    },
    /// Moved on the server since the base: the same rename locally.
    MoveLocal {
        from: RelPath,
        path: RelPath,
    },
    /// Both sides hold the same thing: record it as in sync, transfer nothing.
    Adopt {
        path: RelPath,
    },
    /// Gone from both sides: drop it from the base.
    Forget {
        path: RelPath,
    },
    DeleteLocal {
        path: RelPath,
    },
    DeleteRemote {
        path: RelPath,
    },
    RmdirLocal {
        path: RelPath,
    },
    RmdirRemote {
        path: RelPath,
    },
    /// Left alone and reported (exit code 1).
    Skip {
        path: RelPath,
        reason: String,
    },
}

impl Action {
    pub fn path(&self) -> &RelPath {
        match self {
            Action::MkdirLocal { path }
            | Action::MkdirRemote { path }
            | Action::KeepBoth { path, .. }
            | Action::Upload { path }
            | Action::Download { path }
            | Action::MoveRemote { path, .. }
            | Action::MoveLocal { path, .. }
            | Action::Adopt { path }
            | Action::Forget { path }
            | Action::DeleteLocal { path }
            | Action::DeleteRemote { path }
            | Action::RmdirLocal { path }
            | Action::RmdirRemote { path }
            | Action::Skip { path, .. } => path,
        }
    }

    /// Execution phase: mkdirs and moves (shallow first: each needs its target's parent, which
    /// a shallower one may make), conflicts, transfers, bookkeeping, file deletes, directory
    /// deletes (deepest first), skips.
    fn order_key(&self) -> (u8, i64) {
        let depth = self.path().depth() as i64;
        match self {
            Action::MkdirLocal { .. }
            | Action::MkdirRemote { .. }
            | Action::MoveRemote { .. }
            | Action::MoveLocal { .. } => (0, depth),
            Action::KeepBoth { .. } => (1, 0),
            Action::Upload { .. } | Action::Download { .. } => (2, 0),
            Action::Adopt { .. } | Action::Forget { .. } => (3, 0),
            Action::DeleteLocal { .. } | Action::DeleteRemote { .. } => (4, 0),
            Action::RmdirLocal { .. } | Action::RmdirRemote { .. } => (5, -depth),
            Action::Skip { .. } => (6, 0),
        }
    }

    /// A move's source, and on which side it is renamed.
    pub fn moved_from(&self) -> Option<(&RelPath, Side)> {
        match self {
            Action::MoveRemote { from, .. } => Some((from, Side::Remote)),
            Action::MoveLocal { from, .. } => Some((from, Side::Local)),
            _ => None,
        }
    }

    pub fn is_delete(&self) -> bool {
        matches!(self, Action::DeleteLocal { .. } | Action::DeleteRemote { .. })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::MkdirLocal { path } => write!(f, "mkdir   local   {path}/"),
            Action::MkdirRemote { path } => write!(f, "mkdir   remote  {path}/"),
            Action::KeepBoth { path, loser, copy } => {
                write!(
                    f,
                    "conflict        {path} (the {loser} version is kept as {copy})"
                )
            }
            Action::Upload { path } => write!(f, "upload          {path}"),
            Action::Download { path } => write!(f, "download        {path}"),
            Action::MoveRemote { from, path } => write!(f, "move    remote  {from} -> {path}"),
            Action::MoveLocal { from, path } => write!(f, "move    local   {from} -> {path}"),
            Action::Adopt { path } => write!(f, "in sync         {path}"),
            Action::Forget { path } => write!(f, "forget          {path}"),
            Action::DeleteLocal { path } => write!(f, "delete  local   {path}"),
            Action::DeleteRemote { path } => write!(f, "delete  remote  {path}"),
            Action::RmdirLocal { path } => write!(f, "rmdir   local   {path}/"),
            Action::RmdirRemote { path } => write!(f, "rmdir   remote  {path}/"),
            Action::Skip { path, reason } => write!(f, "skip            {path}: {reason}"),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub actions: Vec<Action>,
}

impl Plan {
    pub fn new(mut actions: Vec<Action>) -> Plan {
        actions.sort_by(|a, b| {
            a.order_key()
                .cmp(&b.order_key())
                .then_with(|| a.path().cmp(b.path()))
        });
        Plan { actions }
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Actions that change something on either side (not bookkeeping, not skips).
    pub fn changes(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter().filter(|a| {
            !matches!(
                a,
                Action::Adopt { .. } | Action::Forget { .. } | Action::Skip { .. }
            )
        })
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes().next().is_none() && !self.actions.iter().any(|a| matches!(a, Action::Skip { .. })) {
            return writeln!(f, "  nothing to do");
        }
        for a in &self.actions {
            if !matches!(a, Action::Adopt { .. } | Action::Forget { .. }) {
                writeln!(f, "  {a}")?;
            }
        }
        Ok(())
    }
}

/// The snapshots as they will be once the plan's moves are done: the renamed side's entries
/// copied to their new names, for the transfers that follow a move to find what they expect.
pub fn rebase(actions: &[Action], local: &mut Snapshot, remote: &mut Snapshot) {
    // In the order they run: a move out of a moved folder starts from its new name.
    let targets: Vec<&RelPath> = actions
        .iter()
        .filter(|a| a.moved_from().is_some())
        .map(Action::path)
        .collect();
    let waits = |a: &&Action| {
        a.moved_from()
            .is_some_and(|(from, _)| targets.iter().any(|t| from.is_inside(t)))
    };
    let (later, first): (Vec<&Action>, Vec<&Action>) = actions.iter().partition(waits);
    for a in first.into_iter().chain(later) {
        let Some((from, renamed_on)) = a.moved_from() else {
            continue;
        };
        let snapshot = match renamed_on {
            Side::Local => &mut *local,
            Side::Remote => &mut *remote,
        };
        let mut copies: Vec<(RelPath, Entry)> = from
            .under_in(snapshot)
            .filter_map(|(p, e)| Some((p.rebased(from, a.path())?, e.clone())))
            .collect();
        if let Some(e) = snapshot.get(from) {
            copies.push((a.path().clone(), e.clone()));
        }
        snapshot.extend(copies);
    }
}
