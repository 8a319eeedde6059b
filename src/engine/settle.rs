//! Settling the intents a killed pass left open (DESIGN.md invariant 2), before the next pass
//! plans: a change found made is recorded with the entry its transfer would have recorded, so
//! whatever the user did to it since is seen as the user's; one not made is forgotten. Whether
//! it was made is told by its part file: written and flushed before the intent, gone only by
//! the rename. Nothing is moved or deleted here.

use super::{Runner, listed_entry, retrying};
use crate::config::Folder;
use crate::digest::HashAlgo;
use crate::error::Result;
use crate::local::part_name;
use crate::local::write::{folder_identity, part_path};
use crate::path::RelPath;
use crate::reconcile::{Base, BaseEntry, Kind, Mtime, Precision, Sig};
use crate::remote::Remote;
use crate::state::{Intent, Transfer};

/// Each open intent's path, and the entry to record for it (`None`: not done, forget it).
pub(super) type Settlements = Vec<(RelPath, Option<BaseEntry>)>;

/// Finds out which of `intents` were carried out. Only reads both sides.
pub(super) async fn settle(run: &Runner, folder: &Folder, intents: Vec<Intent>) -> Result<Settlements> {
    let mut out = Vec::with_capacity(intents.len());
    for intent in intents {
        let target = intent.path.to_remote(&folder.remote);
        let done = retrying!(run, &target, |c| settle_one(c, folder, &intent))?;
        tracing::debug!(path = %intent.path, done = done.is_some(), "settled an intent a killed pass left open");
        out.push((intent.path, done));
    }
    Ok(out)
}

/// Whether one intent was carried out: the entry to record, or `None`.
pub(super) async fn settle_one(
    conn: &mut dyn Remote,
    folder: &Folder,
    intent: &Intent,
) -> Result<Option<BaseEntry>> {
    match intent.op {
        Transfer::Download => Ok(local_done(folder, intent)),
        Transfer::Upload => remote_done(conn, folder, intent).await,
    }
}

/// Applies settlements to the base a pass plans from (the state store gets them when the pass
/// executes).
pub(super) fn apply(base: &mut Base, settlements: &Settlements) {
    for (path, done) in settlements {
        if let Some(entry) = done {
            base.insert(path.clone(), entry.clone());
        }
    }
}

/// Whether a download's rename happened: its part file, fsynced before the intent was written,
/// is gone, and the real name holds a file or is in the same folder as the part file was (the
/// user deleted it since). Then the entry is recorded whatever the real name holds now: if the
/// user deleted or edited it since, the planner sees exactly that against the recorded entry.
///
/// A part file also goes when the user moves or deletes the folder it is in, and a folder can be
/// made again under the old name: with the real name empty and the folder not the one the part
/// file was in (`folder_identity`), the intent reads as not done. Nothing then records a
/// deletion that may not be one: at worst a file comes back, never is a version lost.
fn local_done(folder: &Folder, intent: &Intent) -> Option<BaseEntry> {
    let target = intent.path.to_local(&folder.local);
    let there = |p: &std::path::Path| std::fs::symlink_metadata(p).is_ok();
    let same_folder = || {
        let now = target.parent().and_then(folder_identity);
        now.is_some() && now == intent.folder
    };
    let renamed = !there(&part_path(&target)) && (there(&target) || same_folder());
    renamed.then(|| intent.entry.clone())
}

/// Whether an upload's rename happened: its remote part file is gone and the real name holds
/// a file. The server's time is known only when that file holds the bytes sent (by the
/// server's hash, else read back); if it was changed since, the entry records a time no listing
/// shows, so the planner sees that change.
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
    let mut done = expect.clone();
    done.remote = Sig {
        size: expect.remote.size,
        mtime: Mtime::new(0, Precision::Nanos),
    };
    let Some(listed) = conn.stat(&target).await? else {
        // Neither the part file nor the real name: renamed then deleted, or the part file moved
        // or deleted with its folder, which a server cannot tell apart (a folder is known by its
        // name only, and can be made again). Not done (see `local_done`).
        return Ok(None);
    };
    let now = listed_entry(&listed);
    if now.kind != Kind::File || now.size != expect.remote.size {
        return Ok(Some(done));
    }
    let ours = |algo: HashAlgo| match (algo, &intent.server_digest) {
        (HashAlgo::Sha256, _) => expect.sha256.clone(),
        (a, Some((b, hex))) if a == *b => Some(hex.clone()),
        _ => None,
    };
    let same = match conn.hash(&target).await? {
        Some((algo, theirs)) if ours(algo).is_some() => ours(algo) == Some(theirs),
        _ => Some(super::remote_sha256(conn, &target).await?) == expect.sha256,
    };
    if same {
        done.remote = now.sig();
    }
    Ok(Some(done))
}
