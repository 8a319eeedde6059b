//! Moves: a file gone from one side since the base, paired with a new path on that side that
//! holds the same file, is one rename on the other side instead of a deletion there and a
//! transfer of every byte again. A folder moved whole is one rename of the folder.
//!
//! Only a certain pairing is a move; anything else stays a deletion and a transfer, which
//! loses nothing either:
//! - a local file is the same by its content: the SHA-256 of the new path (the engine finds it
//!   for new files whose size matches a vanished one) equals the base's. Its inode is a hint
//!   kept in the base, never evidence: inodes are reused;
//! - a server's file is the same by size and time (a rename keeps both) and either the same
//!   MLSD `unique` fact or the same content by the server's hash. On a server with neither
//!   (LIST only, no hash) nothing is paired: a wrong guess would lose data;
//! - the pairing is one to one: two new paths with the same content as one vanished file (or
//!   one new path matching two) stay transfers.
//!
//! The other side of a moved file may have changed since the base: then the file is renamed
//! there all the same and the change follows it to the new name (the transfer the plan already
//! had, now to the new name), the way Syncthing does it. Only where that side shows the changed
//! file is the one in the base (the same inode, the same `unique`): a new file put in place of
//! a renamed one looks like an edit by size and time, and following it would put it under the
//! other file's name. Without ids (LIST servers, Windows) such a pair stays two transfers, both
//! names kept. A file moved on both sides, or moved onto a name the other side made, is no
//! candidate: both names are kept.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::plan::{Action, Side};
use super::policy::{Direction, Policy};
use super::snapshot::{Base, BaseEntry, Entry, Kind, Precision, Snapshot};
use crate::path::RelPath;

/// What a move made on `side` (by the user) looks like in a plan, and what carries it out on
/// the other side.
#[derive(Clone, Copy)]
struct Way {
    /// Where the user moved the file.
    side: Side,
}

impl Way {
    fn moved<'a>(self, local: &'a Snapshot, remote: &'a Snapshot) -> &'a Snapshot {
        match self.side {
            Side::Local => local,
            Side::Remote => remote,
        }
    }

    fn other<'a>(self, local: &'a Snapshot, remote: &'a Snapshot) -> &'a Snapshot {
        match self.side {
            Side::Local => remote,
            Side::Remote => local,
        }
    }

    fn allowed(self, p: &Policy) -> bool {
        p.detect_moves
            && p.delete
            && match self.side {
                Side::Local => p.direction != Direction::Download,
                Side::Remote => p.direction != Direction::Upload,
            }
    }

    /// Whether `action` is what the plan had for a vanished file: deleted on the other side
    /// (unchanged there), or, changed there, sent back to the side it vanished from.
    fn is_source_action(self, action: &Action) -> bool {
        matches!(
            (self.side, action),
            (Side::Local, Action::DeleteRemote { .. } | Action::Download { .. })
                | (Side::Remote, Action::DeleteLocal { .. } | Action::Upload { .. })
        )
    }

    /// Whether `action` sends a new file from the side it was made on.
    fn is_target_action(self, action: &Action) -> bool {
        matches!(
            (self.side, action),
            (Side::Local, Action::Upload { .. }) | (Side::Remote, Action::Download { .. })
        )
    }

    /// Whether the other side's file at a vanished path is the base's file, changed in place:
    /// the same id there (see the module's note on edits that follow a move).
    fn same_file_changed(self, base: &BaseEntry, other_now: &Entry) -> bool {
        let then = match self.side {
            Side::Local => base.remote_id,
            Side::Remote => base.local_id,
        };
        then.is_some() && other_now.id == then
    }

    fn is_follow_up(self, source_action: &Action) -> bool {
        matches!(
            (self.side, source_action),
            (Side::Local, Action::Download { .. }) | (Side::Remote, Action::Upload { .. })
        )
    }

    fn follow_up(self, path: RelPath) -> Action {
        match self.side {
            Side::Local => Action::Download { path },
            Side::Remote => Action::Upload { path },
        }
    }

    fn action(self, from: RelPath, path: RelPath) -> Action {
        match self.side {
            Side::Local => Action::MoveRemote { from, path },
            Side::Remote => Action::MoveLocal { from, path },
        }
    }

    fn is_move(self, action: &Action) -> bool {
        action
            .moved_from()
            .is_some_and(|(_, renamed_on)| renamed_on != self.side)
    }

    fn is_mkdir_other(self, action: &Action) -> bool {
        matches!(
            (self.side, action),
            (Side::Local, Action::MkdirRemote { .. }) | (Side::Remote, Action::MkdirLocal { .. })
        )
    }

    fn is_delete_other(self, action: &Action) -> bool {
        matches!(
            (self.side, action),
            (Side::Local, Action::DeleteRemote { .. }) | (Side::Remote, Action::DeleteLocal { .. })
        )
    }

    fn delete_other(self, path: RelPath) -> Action {
        match self.side {
            Side::Local => Action::DeleteRemote { path },
            Side::Remote => Action::DeleteLocal { path },
        }
    }

    fn rmdir_other(self, path: RelPath) -> Action {
        match self.side {
            Side::Local => Action::RmdirRemote { path },
            Side::Remote => Action::RmdirLocal { path },
        }
    }

    fn is_rmdir_other(self, action: &Action) -> bool {
        matches!(
            (self.side, action),
            (Side::Local, Action::RmdirRemote { .. }) | (Side::Remote, Action::RmdirLocal { .. })
        )
    }

    fn same_file(self, base: &BaseEntry, now: &Entry) -> bool {
        same_file(self.side, base, now)
    }

    /// The size a new file must have to be a candidate for `base`.
    fn size(self, base: &BaseEntry) -> u64 {
        match self.side {
            Side::Local => base.local.size,
            Side::Remote => base.remote.size,
        }
    }
}

const WAYS: [Way; 2] = [Way { side: Side::Local }, Way { side: Side::Remote }];

/// The new files on `side` whose content the planner needs to pair them (`pair`): those that
/// could be a vanished file, by size (and, on the server, time), and whose content is not known
/// yet. Locally the engine reads them for their SHA-256; on the server it asks the server's
/// hash, needed only where the `unique` facts cannot decide.
pub fn needs_content(
    base: &Base,
    local: &Snapshot,
    remote: &Snapshot,
    policy: &Policy,
    side: Side,
) -> Vec<RelPath> {
    let way = Way { side };
    if !way.allowed(policy) {
        return Vec::new();
    }
    let (moved, other) = (way.moved(local, remote), way.other(local, remote));
    let mut sources: HashMap<u64, Vec<&BaseEntry>> = HashMap::new();
    for (p, b) in base {
        if b.kind == Kind::File
            && b.sha256.is_some()
            && !moved.contains_key(p)
            && other.get(p).is_some_and(|e| e.kind == Kind::File)
        {
            sources.entry(way.size(b)).or_default().push(b);
        }
    }
    if sources.is_empty() {
        return Vec::new();
    }
    moved
        .iter()
        .filter(|(p, e)| {
            e.kind == Kind::File && e.sha256.is_none() && !base.contains_key(*p) && !other.contains_key(*p)
        })
        .filter(|(_, e)| {
            sources.get(&e.size).is_some_and(|bs| match side {
                Side::Local => true,
                // An id pairs only with a time that proves something (`same_file`).
                Side::Remote => bs.iter().any(|b| {
                    e.mtime.same_as(&b.remote.mtime)
                        && (e.id.is_none()
                            || b.remote_id.is_none()
                            || b.remote.mtime.precision == Precision::Unconfirmed)
                }),
            })
        })
        .map(|(p, _)| p.clone())
        .collect()
}

/// Pairs vanished files with new ones into moves, in the per-file actions of a plan (before its
/// directories are decided: a move's source counts as gone from its folder).
pub(super) fn pair(
    base: &Base,
    local: &Snapshot,
    remote: &Snapshot,
    policy: &Policy,
    actions: &mut Vec<Action>,
) {
    each_way(policy, |way| pair_one_way(way, base, local, remote, actions));
}

fn each_way(policy: &Policy, mut f: impl FnMut(Way)) {
    WAYS.into_iter().filter(|w| w.allowed(policy)).for_each(&mut f);
}

fn pair_one_way(way: Way, base: &Base, local: &Snapshot, remote: &Snapshot, actions: &mut Vec<Action>) {
    let (moved, other) = (way.moved(local, remote), way.other(local, remote));
    let mut sources_by_size: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut targets = Vec::new();
    for (i, a) in actions.iter().enumerate() {
        let p = a.path();
        match base.get(p) {
            Some(b)
                if b.kind == Kind::File
                    && way.is_source_action(a)
                    && !moved.contains_key(p)
                    && other.get(p).is_some_and(|e| {
                        e.kind == Kind::File && (!way.is_follow_up(a) || way.same_file_changed(b, e))
                    }) =>
            {
                sources_by_size.entry(way.size(b)).or_default().push(i);
            }
            None if way.is_target_action(a) && !other.contains_key(p) => {
                if let Some(e) = moved.get(p).filter(|e| e.kind == Kind::File) {
                    targets.push((i, e));
                }
            }
            _ => {}
        }
    }
    if sources_by_size.is_empty() || targets.is_empty() {
        return;
    }
    // Every candidate pair, then only those unique both ways.
    let mut of_target: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut per_source: HashMap<usize, usize> = HashMap::new();
    for (t, entry) in targets {
        let Some(sources) = sources_by_size.get(&entry.size) else {
            continue;
        };
        let matching: Vec<usize> = sources
            .iter()
            .copied()
            .filter(|s| {
                base.get(actions[*s].path())
                    .is_some_and(|b| way.same_file(b, entry))
            })
            .collect();
        for s in &matching {
            *per_source.entry(*s).or_default() += 1;
        }
        if !matching.is_empty() {
            of_target.push((t, matching));
        }
    }
    let mut dropped = BTreeSet::new();
    let mut follow_ups = Vec::new();
    for (t, sources) in of_target {
        let [s] = sources[..] else { continue };
        if per_source.get(&s) != Some(&1) {
            continue;
        }
        let (from, to) = (actions[s].path().clone(), actions[t].path().clone());
        if way.is_follow_up(&actions[s]) {
            // A conflict copy is the sync's own rename of one version, made when both sides
            // wrote one name: no edit of another file follows into it (and replaces it).
            if super::conflict_copy::is_conflict_copy(to.name()) {
                continue;
            }
            follow_ups.push(way.follow_up(to.clone()));
        }
        actions[t] = way.action(from, to);
        dropped.insert(s);
    }
    let mut i = 0;
    actions.retain(|_| {
        i += 1;
        !dropped.contains(&(i - 1))
    });
    actions.extend(follow_ups);
}

/// Whether `now`, a file on the side a user moved it on (`moved_on`), is the file `base` was:
/// locally by its content; on the server by its size and time (a rename keeps them) and its id
/// or its content. What pairs a move, and what the engine refreshes a moved row by.
pub fn same_file(moved_on: Side, base: &BaseEntry, now: &Entry) -> bool {
    let same_content = now.sha256.is_some() && now.sha256 == base.sha256;
    match moved_on {
        Side::Local => now.size == base.local.size && same_content,
        Side::Remote => {
            let same_id = now.id.is_some() && now.id == base.remote_id;
            // A time never confirmed (an upload's, a racy one) proves nothing: the content must.
            let same_time = match base.remote.mtime.precision {
                Precision::Unconfirmed => same_content,
                _ => now.mtime.same_as(&base.remote.mtime),
            };
            now.size == base.remote.size && same_time && (same_id || same_content)
        }
    }
}

/// Turns the file moves of a folder moved whole into one move of the folder (after the
/// directories are decided: its removal and the new one's creation go with them).
///
/// A folder `D` gone from one side was moved to `T`, new on that side, when files the base
/// holds under `D` were paired with the same places under `T`. It is one rename of `D` on the
/// other side when that carries nothing there unplanned: everything the other side holds under
/// `D` is in the base, and each file of it is moved (to its place under `T`, or elsewhere) or
/// deleted. What the plan does to those after the rename is then done under `T`: a move out of
/// the folder starts from `T`, a deletion deletes under `T`, and a folder the user removed
/// from it is removed under `T`. New files under `T` are sent after the rename.
pub(super) fn collapse(
    base: &Base,
    local: &Snapshot,
    remote: &Snapshot,
    policy: &Policy,
    actions: &mut Vec<Action>,
) {
    each_way(policy, |way| collapse_one_way(way, base, local, remote, actions));
}

fn collapse_one_way(way: Way, base: &Base, local: &Snapshot, remote: &Snapshot, actions: &mut Vec<Action>) {
    let (moved, other) = (way.moved(local, remote), way.other(local, remote));
    let file_moves: BTreeMap<&RelPath, &RelPath> = actions
        .iter()
        .filter(|a| way.is_move(a))
        .filter_map(|a| a.moved_from().map(|(from, _)| (from, a.path())))
        .collect();
    if file_moves.is_empty() {
        return;
    }
    let sent: BTreeSet<RelPath> = actions
        .iter()
        .filter(|a| way.is_target_action(a))
        .map(|a| a.path().clone())
        .collect();
    let deleted: BTreeSet<&RelPath> = actions
        .iter()
        .filter(|a| way.is_delete_other(a))
        .map(Action::path)
        .collect();
    let mut folders: Vec<(RelPath, RelPath)> = Vec::new();
    for (d, b) in base {
        if b.kind != Kind::Dir
            || moved.contains_key(d)
            || !other.get(d).is_some_and(|e| e.kind == Kind::Dir)
            || folders.iter().any(|(done, _)| d.is_inside(done))
        {
            continue;
        }
        if let Some(t) = moved_whole(d, base, moved, other, &file_moves, &deleted, &sent) {
            folders.push((d.clone(), t));
        }
    }
    if folders.is_empty() {
        return;
    }
    // Where a path under a moved folder is after the rename.
    let after = |p: &RelPath| {
        folders
            .iter()
            .find_map(|(d, t)| p.rebased(d, t).filter(|_| p != d))
    };
    let mut kept = Vec::with_capacity(actions.len());
    for a in actions.drain(..) {
        let p = a.path().clone();
        if way.is_move(&a) {
            let from = a.moved_from().map(|(f, _)| f.clone()).expect("a move");
            match after(&from) {
                // Carried by the folder's rename.
                Some(now) if now == p => {}
                Some(now) => kept.push(way.action(now, p)),
                None => kept.push(a),
            }
        } else if way.is_delete_other(&a) {
            match after(&p) {
                // A new file under the new name replaces it there (its transfer is planned).
                Some(now) if sent.contains(&now) => {}
                Some(now) => kept.push(way.delete_other(now)),
                None => kept.push(a),
            }
        } else if way.is_rmdir_other(&a) {
            if folders.iter().any(|(d, _)| *d == p) {
                continue;
            }
            match after(&p) {
                // The user keeps it under the new name: the rename carries it there.
                Some(now) if moved.get(&now).is_some_and(|e| e.kind == Kind::Dir) => {}
                Some(now) => kept.push(way.rmdir_other(now)),
                None => kept.push(a),
            }
        } else if way.is_mkdir_other(&a)
            && folders.iter().any(|(d, t)| {
                p == *t || (p.is_inside(t) && p.rebased(t, d).is_some_and(|old| other.contains_key(&old)))
            })
        {
            // The folder itself, and those under it the rename brings along.
        } else {
            kept.push(a);
        }
    }
    kept.extend(folders.into_iter().map(|(d, t)| way.action(d, t)));
    *actions = kept;
}

/// Where the folder `d` went on the moved side, if one rename of it does (see `collapse`).
fn moved_whole(
    d: &RelPath,
    base: &Base,
    moved: &Snapshot,
    other: &Snapshot,
    file_moves: &BTreeMap<&RelPath, &RelPath>,
    deleted: &BTreeSet<&RelPath>,
    sent: &BTreeSet<RelPath>,
) -> Option<RelPath> {
    // The new name: the one most files under it went to, at the same place.
    let mut votes: BTreeMap<RelPath, usize> = BTreeMap::new();
    for (p, b) in d.under_in(base) {
        let Some(to) = file_moves.get(p).filter(|_| b.kind == Kind::File) else {
            continue;
        };
        let suffix = &p.as_str()[d.as_str().len()..];
        if let Some(t) = to
            .as_str()
            .strip_suffix(suffix)
            .and_then(|t| RelPath::new(t).ok())
        {
            *votes.entry(t).or_default() += 1;
        }
    }
    let (t, _) = votes.into_iter().max_by_key(|(_, n)| *n)?;
    let fresh = |p: &RelPath| !base.contains_key(p) && !other.contains_key(p);
    if !fresh(&t) || !moved.get(&t).is_some_and(|e| e.kind == Kind::Dir) || t.is_inside(d) || d.is_inside(&t)
    {
        return None;
    }
    // Nothing of the other side under the new name yet, nor any folder under it that the
    // rename would bring there while the user made it anew.
    if t.under_in(other).next().is_some() {
        return None;
    }
    // A file deleted from the folder: nothing is at its new name, or a new file sent there
    // (which replaces what the rename carries).
    let new_file_there = |p: &RelPath| {
        p.rebased(d, &t)
            .is_none_or(|new| !moved.contains_key(&new) || sent.contains(&new))
    };
    let accounted = d.under_in(other).all(|(p, e)| {
        base.contains_key(p)
            && match e.kind {
                Kind::File => file_moves.contains_key(p) || (deleted.contains(p) && new_file_there(p)),
                Kind::Dir => p.rebased(d, &t).is_some_and(|new| !base.contains_key(&new)),
            }
    });
    accounted.then_some(t)
}
