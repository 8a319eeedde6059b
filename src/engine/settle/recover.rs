//! Settling the intents a killed pass left open (docs/design.md, invariant 2), before the next pass
//! plans: a change found made is recorded with the entry its transfer would have recorded, so
//! whatever the user did to it since is seen as the user's; one not made is forgotten. Whether
//! it was made is told by its part file: written and flushed before the intent, gone only by
//! the rename. Nothing is moved or deleted here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::found::{Expected, Found, expected_at, holds, local_subtree, remote_subtree};
use super::intents::Intents;
use crate::config::Folder;
use crate::digest::HashAlgo;
use crate::engine::content::remote_sha256;
use crate::engine::run::{Runner, retrying};
use crate::error::{Error, Result};
use crate::local::disk::DiskRef;
use crate::local::part_name;
use crate::local::scan::entry_of;
use crate::local::write::{folder_identity, part_path};
use crate::path::RelPath;
use crate::reconcile::{Base, BaseEntry, Entry, Kind, Mtime, Precision, Sig};
use crate::remote::Remote;
use crate::remote::listing::{listed_entry, same_remote};
use crate::state::{Intent, Op, State, Transfer};

/// What an open intent is found to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Done: record the entry at the intent's path.
    Record(BaseEntry),
    /// A move found done: what the base held at `from` (and under it) is now at the path,
    /// where the renamed side holds it as it was (`carried`: the paths there now with the size
    /// and time the base had). Any other row is dropped: a file may have left the folder, or
    /// been replaced, before its rename as well as after, and only the second is a change to
    /// carry over; without the row, both sides' files are kept.
    Moved {
        from: RelPath,
        carried: std::collections::BTreeSet<RelPath>,
    },
    /// Not done: forget it.
    NotDone,
}

impl Settled {
    pub(crate) fn done(&self) -> bool {
        *self != Settled::NotDone
    }
}

/// Each open intent's path, and what it was found to be.
pub(crate) type Settlements = Vec<(RelPath, Settled)>;

/// Records `settlements` in the store (the intents closed, what was found done recorded); the
/// caller makes the commits durable (`GroupSync`). A rename found made may not be durable yet
/// (a folder sync that failed): its folders are synced first, before the record can say so.
pub(crate) fn record(
    state: &State,
    folder: &Folder,
    disk: &DiskRef,
    settlements: &Settlements,
) -> Result<()> {
    let dirs: BTreeSet<PathBuf> = settlements
        .iter()
        .filter(|(_, s)| s.done())
        .flat_map(|(path, s)| match s {
            Settled::Moved { from, .. } => vec![path, from],
            _ => vec![path],
        })
        .filter_map(|p| p.to_local(&folder.local).parent().map(Path::to_path_buf))
        .filter(|d| d.is_dir())
        .collect();
    for dir in dirs {
        disk.sync_dir(&dir)
            .map_err(Error::local("sync the folder", &dir))?;
    }
    let closing = Intents::default();
    settlements
        .iter()
        .try_for_each(|(path, settled)| closing.close_settled(state, path, settled))
}

/// Finds out which of `intents` were carried out. Only reads both sides.
pub(crate) async fn settle(
    run: &Runner,
    folder: &Folder,
    intents: Vec<Intent>,
    base: &Base,
) -> Result<Settlements> {
    let mut out = Vec::with_capacity(intents.len());
    for intent in intents {
        let target = intent.path.to_remote(&folder.remote);
        let expected = match &intent.op {
            Op::MoveRemote { from } => expected_at(base, from, &intent.path, |b| as_seen(b.kind, &b.remote)),
            Op::MoveLocal { from } => expected_at(base, from, &intent.path, |b| as_seen(b.kind, &b.local)),
            Op::Transfer(_) => Expected::new(),
        };
        let done = retrying(run, &target, |c| {
            Box::pin(settle_one(c, folder, &intent, &expected))
        })
        .await?;
        tracing::debug!(path = %intent.path, done = done.done(), "settled an intent a killed pass left open");
        out.push((intent.path, done));
    }
    Ok(out)
}

/// What the base's signature says a side showed.
fn as_seen(kind: Kind, sig: &Sig) -> Entry {
    match kind {
        Kind::Dir => Entry::dir(sig.mtime),
        Kind::File => Entry::file(sig.size, sig.mtime),
    }
}

/// Whether one intent was carried out.
/// `expected`: for a move, what its target should hold (`settle::Expected`).
pub(crate) async fn settle_one(
    conn: &mut dyn Remote,
    folder: &Folder,
    intent: &Intent,
    expected: &Expected,
) -> Result<Settled> {
    let record = |done: Option<BaseEntry>| done.map_or(Settled::NotDone, Settled::Record);
    Ok(match &intent.op {
        Op::Transfer(Transfer::Download) => record(local_done(folder, intent)),
        Op::Transfer(Transfer::Upload) => record(remote_done(conn, folder, intent).await?),
        Op::MoveLocal { from } if local_moved(folder, intent) => {
            let at_target = local_subtree(folder, &intent.path);
            let at_source = match intent.entry.kind {
                Kind::Dir => local_subtree(folder, from),
                Kind::File => Default::default(),
            };
            moved_folder(from, &intent.path, &at_target, &at_source, expected)
        }
        Op::MoveRemote { from } if remote_moved(conn, folder, intent).await? => {
            let at_target = remote_subtree(conn, folder, &intent.path, expected).await?;
            let at_source = match intent.entry.kind {
                Kind::Dir => remote_subtree(conn, folder, from, &Default::default()).await?,
                Kind::File => Default::default(),
            };
            moved_folder(from, &intent.path, &at_target, &at_source, expected)
        }
        Op::MoveLocal { .. } | Op::MoveRemote { .. } => Settled::NotDone,
    })
}

/// A move found done, unless it is a folder's and the old name holds more of what the base had
/// there than the new one: a user may have made a folder under the new name since, and one
/// under the old name; the rename went where the files are. A file counts where it has the
/// size and time the renamed side showed (a rename keeps them; a file made since has its own),
/// so files made under both names with the moved ones' names do not tip it.
fn moved_folder(
    from: &RelPath,
    to: &RelPath,
    at_target: &Found,
    at_source: &Found,
    expected: &Expected,
) -> Settled {
    let carried: std::collections::BTreeSet<RelPath> = expected
        .iter()
        .filter(|(p, e)| holds(at_target, p, e))
        .map(|(p, _)| p.clone())
        .collect();
    let at_old = expected
        .iter()
        .filter_map(|(p, e)| Some((p.rebased(to, from)?, e)))
        .filter(|(p, e)| holds(at_source, p, e))
        .count();
    if !at_source.is_empty() && at_old >= carried.len() {
        return Settled::NotDone;
    }
    Settled::Moved {
        from: from.clone(),
        carried,
    }
}

/// Applies settlements to the base a pass plans from (the state store gets them when the pass
/// executes).
pub(crate) fn apply(base: &mut Base, settlements: &Settlements) {
    for (path, settled) in settlements {
        match settled {
            Settled::Record(entry) => {
                base.insert(path.clone(), entry.clone());
            }
            Settled::Moved { from, carried } => {
                let moved: Vec<RelPath> = from.subtree_of(base).map(|(p, _)| p.clone()).collect();
                for old in moved {
                    let entry = base.remove(&old);
                    if let (Some(new), Some(entry)) = (old.rebased(from, path), entry)
                        && carried.contains(&new)
                    {
                        base.insert(new, entry);
                    }
                }
            }
            Settled::NotDone => {}
        }
    }
}

/// Whether a local rename to the intent's path happened: the path holds what was renamed, as it
/// was (a rename keeps a file's size and time). The path was free when the intent was written,
/// so that is the rename's doing. The source is not asked: a user may have made a new file or
/// folder under the old name since. Anything else reads as not done, and the planner sees both
/// names as they are: at worst a file is transferred again or kept twice, never lost; and what
/// is recorded as moved is only what the path holds (`Settled::Moved`).
fn local_moved(folder: &Folder, intent: &Intent) -> bool {
    let now = std::fs::symlink_metadata(intent.path.to_local(&folder.local)).map(|m| entry_of(&m));
    now.is_ok_and(|e| e.kind == intent.entry.kind && (e.kind == Kind::Dir || e.sig() == intent.entry.local))
}

/// Whether a rename on the server to the intent's path happened: the same test.
async fn remote_moved(conn: &mut dyn Remote, folder: &Folder, intent: &Intent) -> Result<bool> {
    let Some(now) = conn.stat(&intent.path.to_remote(&folder.remote)).await? else {
        return Ok(false);
    };
    let now = listed_entry(&now);
    let expect = crate::reconcile::Entry {
        kind: intent.entry.kind,
        size: intent.entry.remote.size,
        mtime: intent.entry.remote.mtime,
        sha256: None,
        id: None,
    };
    Ok(now.kind == expect.kind && (now.kind == Kind::Dir || same_remote(&now, &expect)))
}

/// Whether a download's rename happened: its part file, fsynced before the intent was written,
/// is gone, and either the real name holds that very file (a rename keeps its inode, size and
/// time), or the folder at the part file's place is the one it was written in
/// (`folder_identity`). Then the entry is recorded whatever the real name holds now: if the user
/// deleted or edited it since, the planner sees exactly that against the recorded entry.
///
/// A part file also goes when the user moves or deletes the folder it is in, and a folder can be
/// made again under the old name, with a new file at the real name. That file is the user's, not
/// the download: taken as done, the planner would see it as an edit of the download and upload it
/// over the server's version, whose only local copy went away as a part file. So anything else
/// reads as not done, and so does everything but the file itself where the file system keeps no
/// creation time to tell a folder made again on the same inode: the planner sees both sides'
/// files as they are; at worst a deletion is undone or an edit kept as a conflict copy, never is
/// a version lost.
fn local_done(folder: &Folder, intent: &Intent) -> Option<BaseEntry> {
    let target = intent.path.to_local(&folder.local);
    if std::fs::symlink_metadata(part_path(&target)).is_ok() {
        return None;
    }
    let expect = &intent.entry;
    let the_file = std::fs::symlink_metadata(&target).is_ok_and(|m| {
        let now = entry_of(&m);
        now.id.is_some()
            && now.id == expect.local_id
            && now.size == expect.local.size
            && now.mtime.nanos == expect.local.mtime.nanos
    });
    let now = target.parent().and_then(folder_identity);
    let same_folder = now.is_some() && now == intent.folder;
    (the_file || same_folder).then(|| expect.clone())
}

/// Whether an upload's rename happened: its remote part file is gone and the real name holds
/// the bytes sent (by the server's hash, else read back); then the entry is recorded with the
/// server's time for them.
///
/// Anything else reads as not done. With the part file gone and the real name empty or holding
/// other bytes, the rename may have happened before the user deleted or rewrote the file, or
/// the part file may have gone with its folder moved away, and someone made the file anew: a
/// server cannot tell these apart (a folder is known by its name only). Taken as done, the last
/// would delete or overwrite the only copy of the upload; as not done, the first two cost at
/// worst a deletion undone or a conflict copy, and nothing is lost.
async fn remote_done(conn: &mut dyn Remote, folder: &Folder, intent: &Intent) -> Result<Option<BaseEntry>> {
    let part = intent
        .path
        .with_name(&part_name(intent.path.name()))?
        .to_remote(&folder.remote);
    if conn.exists(&part).await? {
        return Ok(None);
    }
    let target = intent.path.to_remote(&folder.remote);
    let expect = &intent.entry;
    let Some(listed) = conn.stat(&target).await? else {
        return Ok(None);
    };
    let now = listed_entry(&listed);
    if now.kind != Kind::File || now.size != expect.remote.size {
        return Ok(None);
    }
    let ours = |algo: HashAlgo| match (algo, &intent.server_digest) {
        (HashAlgo::Sha256, _) => expect.sha256.clone(),
        (a, Some((b, hex))) if a == *b => Some(hex.clone()),
        _ => None,
    };
    let same = match conn.hash(&target).await? {
        Some((algo, theirs)) if ours(algo).is_some() => ours(algo) == Some(theirs),
        _ => Some(remote_sha256(conn, &target, now.size).await?) == expect.sha256,
    };
    // Found after a kill, with no clock of the server read: the listed time may be in the
    // second of a write since, so it is confirmed by content on the next pass (docs/design.md,
    // "Racy times").
    let mut remote = now.sig();
    if expect.sha256.is_some() {
        remote.mtime = Mtime::new(remote.mtime.nanos, Precision::Unconfirmed);
    }
    Ok(same.then(|| BaseEntry {
        remote,
        ..expect.clone()
    }))
}
