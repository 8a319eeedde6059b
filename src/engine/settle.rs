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
use crate::reconcile::{Base, BaseEntry, Kind};
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
        _ => Some(super::remote_sha256(conn, &target, now.size).await?) == expect.sha256,
    };
    Ok(same.then(|| BaseEntry {
        remote: now.sig(),
        ..expect.clone()
    }))
}
