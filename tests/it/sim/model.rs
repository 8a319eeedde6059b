//! The model: every version a user wrote, where users put it and what replaced it; what a
//! seed's run did.

use super::*;

/// Every version a user wrote (unique bytes); where users put each one and where a later
/// action of theirs replaced, deleted or moved it away; what happened, for the failure message.
#[derive(Default)]
pub(super) struct Model {
    pub(super) versions: BTreeSet<Vec<u8>>,
    /// (path, version) -> whether the version is still wanted there (false: a user replaced
    /// it, deleted it or moved it away, on either side). Versions move with renames, and one
    /// version can be at many paths, so this is kept per path.
    pub(super) places: BTreeMap<(String, Vec<u8>), Place>,
    /// When (in server commands) the last pass began: one that began after a put can have
    /// seen it.
    pub(super) pass_began: u64,
    /// When the last pass that was not killed began: a killed pass can have seen a put and not
    /// recorded it (an adopt is no journaled step), so what it saw may come back.
    pub(super) whole_pass_began: u64,
    /// What each side (local, server) held when the last pass ended.
    pub(super) after_pass: [BTreeMap<String, Vec<u8>>; 2],
    /// The version both sides held at a path after a pass, brought to at least one of them by
    /// the sync (so it knows it, or its journal does): a conflict copy of it is a false one.
    pub(super) agreed: BTreeMap<String, Vec<u8>>,
    /// (path, version) a user deleted, replaced or moved away while a transfer to it was still
    /// open in the journal (a killed pass): see `Env::gone`. It may come back.
    pub(super) may_return: BTreeSet<(String, Vec<u8>)>,
    /// The store was lost (torn at a power cut) and no pass has ended whole since: the base
    /// that tells a deletion from a file never synced is gone (`base_lost`).
    pub(super) base_is_lost: bool,
    /// (path, version) users removed before a lost base was rebuilt: they may come back, and
    /// those that do are counted. Once the base is whole again, only those that came back stay
    /// (`passed`), until a user removes them again (`gone`).
    pub(super) returns_of_a_lost_base: BTreeSet<(String, Vec<u8>)>,
    /// The base became whole again at the pass just ended: `passed` keeps only the returns
    /// that are there.
    pub(super) base_whole_again: bool,

    /// Files users moved: (side, old path, new path, version). An edit the other side makes
    /// at the old path to that version follows the move (issue 15): it may replace the version
    /// at the new name.
    pub(super) moves: Vec<(Side, String, String, Vec<u8>)>,
    /// Edits that may have followed a move: (the edit, old path, new path, the version moved).
    pub(super) followed: Vec<(Vec<u8>, String, String, Vec<u8>)>,

    pub(super) count: u64,
    pub(super) log: Vec<String>,
    /// Local paths changed since the last pass began: what a watcher would report.
    pub(super) dirty: BTreeSet<String>,
}

impl Model {
    /// Bytes no one wrote before; of `size` when given (a same-size edit).
    pub(super) fn new_version(&mut self, path: &str, size: Option<usize>) -> Vec<u8> {
        self.count += 1;
        let mut v = format!("{path} v{} ", self.count).into_bytes();
        let size = size
            .unwrap_or(v.len() + (self.count * 7 % 40) as usize)
            .max(v.len());
        let mut fill = self.count;
        while v.len() < size {
            fill = fill
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            v.push(b'a' + (fill >> 59) as u8 % 26);
        }
        v.truncate(size);
        self.versions.insert(v.clone());
        v
    }

    /// `side` edits `path`, which held `old`: where the other side moved that version away
    /// from `path`, the edit may follow it to the new name and replace it there (the version
    /// moved is the one the edit supersedes). So that version at the new name may be there or
    /// not. Only where a side still holds it there (`holds`): a version replaced at the new name
    /// since (a conflict copy made of it, an edit) is no file the edit can follow to.
    pub(super) fn edit_follows_moves(
        &mut self,
        side: Side,
        path: &str,
        old: &[u8],
        edit: &[u8],
        holds: impl Fn(&str, &[u8]) -> bool,
    ) {
        let mut followed: Vec<(String, Vec<u8>)> = self
            .moves
            .iter()
            .filter(|(s, from, _, v)| *s != side && from == path && v == old)
            .map(|(_, _, to, v)| (to.clone(), v.clone()))
            .collect();
        // An edit of an edit that may follow a move may follow it too.
        followed.extend(
            self.followed
                .iter()
                .filter(|(e, from, _, _)| e == old && from == path)
                .map(|(_, _, to, moved)| (to.clone(), moved.clone())),
        );
        // Moved on again since (`d` to `x`, then `x/f` to `c`): the edit may follow every hop.
        let mut seen = BTreeSet::new();
        while let Some((to, moved)) = followed.pop() {
            if !seen.insert(to.clone()) {
                continue;
            }
            // A name the version moved on from is only a hop on the way.
            if holds(&to, &moved) {
                self.edit_meets_move(path, &to, &moved, edit);
            }
            followed.extend(
                self.moves
                    .iter()
                    .filter(|(s, from, _, v)| *s != side && *from == to && *v == moved)
                    .map(|(_, _, next, v)| (next.clone(), v.clone())),
            );
        }
    }

    pub(super) fn put(&mut self, side: Side, path: &str, version: Vec<u8>, at: u64) {
        let place = self.places.entry((path.to_owned(), version)).or_default();
        place.wanted = true;
        place.put[side as usize] = Some(at);
    }

    /// A removal undoes a put the other side made only if the sync can have brought it over
    /// since (a pass began, or the path was transferred); otherwise the two are concurrent
    /// and the other side's put stands.
    pub(super) fn gone(
        &mut self,
        side: Side,
        path: &str,
        version: Vec<u8>,
        synced: bool,
        delivered_since: impl Fn(u64) -> bool,
    ) {
        let key = (path.to_owned(), version.clone());
        if self.base_is_lost {
            self.returns_of_a_lost_base.insert(key);
        } else {
            self.returns_of_a_lost_base.remove(&key);
        }
        let pass_began = self.pass_began;
        let place = self.places.entry((path.to_owned(), version.clone())).or_default();
        place.put[side as usize] = None;
        let other = place.put[1 - side as usize];
        if other.is_some_and(|at| !synced && !delivered_since(at) && pass_began <= at) {
            return;
        }
        if other.is_some_and(|at| !synced && self.whole_pass_began <= at) {
            // Seen (even read) by a killed pass only, which may have recorded nothing of it
            // there (an adopt is no journaled step): the file may come back.
            self.may_return.insert((path.to_owned(), version.clone()));
        }
        *place = Place::default();
        // An edit that followed a move is one place at both names: gone from one, it is gone.
        let linked: Vec<String> = self
            .followed
            .iter()
            .filter(|(v, _, _, _)| *v == version)
            .filter_map(|(_, a, b, _)| {
                (a == path)
                    .then(|| b.clone())
                    .or_else(|| (b == path).then(|| a.clone()))
            })
            .collect();
        for p in linked {
            if let Some(place) = self.places.get_mut(&(p, version.clone())) {
                *place = Place::default();
            }
        }
    }

    /// `side` changed `old` to `edit` while the other side moved the version it held there,
    /// `moved`, to `new` (one before the other, both since the last pass): the edit may follow
    /// the move (issue 15). Then the moved version is superseded at `new`, so it may be there or
    /// not, and the edit is one place at either name.
    pub(super) fn edit_meets_move(&mut self, old: &str, new: &str, moved: &[u8], edit: &[u8]) {
        let key = (new.to_owned(), moved.to_vec());
        if let Some(place) = self.places.get_mut(&key) {
            place.wanted = false;
        }
        self.may_return.insert(key);
        self.may_return.insert((new.to_owned(), edit.to_vec()));
        self.followed
            .push((edit.to_vec(), old.to_owned(), new.to_owned(), moved.to_vec()));
    }

    /// A version moved on from `from` to `to` that an edit may follow (`edit_meets_move`): the
    /// edit may follow it to `to` as well.
    pub(super) fn moved_on(&mut self, from: &str, to: &str, version: &[u8]) {
        let onward: Vec<(Vec<u8>, String)> = self
            .followed
            .iter()
            .filter(|(_, _, new, moved)| new == from && moved == version)
            .map(|(edit, old, _, _)| (edit.clone(), old.clone()))
            .collect();
        for (edit, old) in onward {
            self.edit_meets_move(&old, to, version, &edit);
        }
    }
}

impl Model {
    /// The store is lost: the next pass rebuilds the base as a first sync does, deleting
    /// nothing and keeping both versions where the sides differ. Whatever users removed may
    /// come back, and until a pass ends whole, no version is one both sides agreed on (a
    /// conflict copy of it is no false one: without a base, an edit on one side cannot be told
    /// from edits on both).
    pub(super) fn base_lost(&mut self) {
        self.base_is_lost = true;
        let gone: Vec<_> = self
            .places
            .iter()
            .filter(|(_, place)| !place.wanted)
            .map(|(k, _)| k.clone())
            .collect();
        self.returns_of_a_lost_base.extend(gone);
        self.agreed.clear();
    }

    /// A pass over the whole folder ended: if it left no file out (failed, skipped as changed
    /// under it, or deferred as still being written), the base is whole again.
    pub(super) fn ended(&mut self, whole_folder: bool, r: &Report) {
        if whole_folder && r.failed.is_empty() && r.skipped.is_empty() && r.deferred == 0 {
            self.base_whole_again |= self.base_is_lost;
            self.base_is_lost = false;
        }
    }

    /// After a pass (ended or killed), given what each side holds now: each conflict copy it
    /// made must hold a version of a true conflict, not one both sides last agreed on at
    /// that path (DESIGN §6: no conflict copy without a true conflict). Then the versions the
    /// sync brought over become the agreed ones.
    pub(super) fn passed(&mut self, now: [BTreeMap<String, Vec<u8>>; 2]) -> Result<(), String> {
        for (side, files) in now.iter().enumerate() {
            for (copy, bytes) in files {
                if self.after_pass.iter().any(|t| t.contains_key(copy)) {
                    continue;
                }
                let Some(path) = conflict_origin(copy) else {
                    continue;
                };
                if self.agreed.get(&path) == Some(bytes)
                    && !self.may_return.contains(&(path.clone(), bytes.clone()))
                {
                    let side = ["local", "server"][side];
                    return Err(format!(
                        "a false conflict: the {side} copy {copy} holds {:?}, the version both \
                         sides last agreed on at {path}",
                        String::from_utf8_lossy(bytes)
                    ));
                }
            }
        }
        let [local, server] = &now;
        if std::mem::take(&mut self.base_whole_again) {
            self.returns_of_a_lost_base
                .retain(|(path, v)| local.get(path) == Some(v) || server.get(path) == Some(v));
        }
        for (path, bytes) in local.iter().filter(|_| !self.base_is_lost) {
            if path.ends_with('/') || server.get(path) != Some(bytes) {
                continue;
            }
            let place = self.places.get(&(path.clone(), bytes.clone()));
            if place.is_none_or(|p| p.put.iter().any(Option::is_none)) {
                self.agreed.insert(path.clone(), bytes.clone());
            }
        }
        self.agreed
            .retain(|p, _| local.contains_key(p) || server.contains_key(p));
        self.after_pass = now;
        Ok(())
    }
}

/// The path a conflict copy (`a.conflict-20261124-120000-local-2.txt`) is a copy of.
pub(super) fn conflict_origin(copy: &str) -> Option<String> {
    let (dir, name) = copy.rsplit_once('/').map_or(("", copy), |(d, n)| (d, n));
    if !ftps_sync::reconcile::is_conflict_copy(name) {
        return None;
    }
    let at = name.find(".conflict-")?;
    let rest = &name[at + ".conflict-".len()..];
    let ext = rest.split_once('.').map(|(_, e)| e);
    let name = match ext {
        Some(ext) => format!("{}.{ext}", &name[..at]),
        None => name[..at].to_owned(),
    };
    Some(if dir.is_empty() {
        name
    } else {
        format!("{dir}/{name}")
    })
}

/// The last word of the users on a version at a path.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Place {
    pub(super) wanted: bool,
    /// When (in server commands) each side (local, server) put it there, if it did.
    pub(super) put: [Option<u64>; 2],
}

#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Outcome {
    pub(super) steps: usize,
    pub(super) crashes: usize,
    /// Crashes that were power cuts (`sim::disk`).
    pub(super) power_cuts: usize,
    /// Power cuts that tore the store (`sim::disk`), and the files users had removed that came
    /// back with the base rebuilt.
    pub(super) lost_stores: usize,
    pub(super) came_back: usize,
    /// Local disk calls that failed (`sim::disk`).
    pub(super) disk_faults: u64,
    pub(super) passes: usize,
    pub(super) faults: u64,
    pub(super) commands: u64,
    /// Writes at an offset the server kept (the ranges of segmented uploads, and probes).
    pub(super) writes_at: u64,
    /// Uploads that waited for another into the same file (a server that serializes them).
    pub(super) waited: u64,
    /// The most points (server commands, before and after each) a pass passed to finish.
    pub(super) points: u64,
    /// Server writes made in the round trip between the client's last look and its rename.
    pub(super) window_losses: usize,
    /// Moves the passes made (a folder's counts once), local and on the server.
    pub(super) moves: [usize; 2],
    /// The server's command trace and the log: equal for two runs of one seed.
    pub(super) trace: u64,
    pub(super) log: Vec<String>,
}

impl Outcome {
    /// A pass that ended after `points` points: counted, and its line for the log.
    pub(super) fn ended<E: std::fmt::Display>(&mut self, points: u64, r: &Result<Report, E>) -> String {
        self.points = self.points.max(points);
        match r {
            Ok(r) => {
                self.moves[0] += r.moved_local;
                self.moves[1] += r.moved_remote;
                summary(r)
            }
            Err(e) => format!("failed: {e}"),
        }
    }
}
