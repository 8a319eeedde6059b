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
use crate::local::write::part_path;
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
/// is gone. Then the entry is recorded whatever the real name holds now: if the user deleted or
/// edited it since, the planner sees exactly that against the recorded entry.
///
/// A part file also goes when the user moves or deletes the folder it is in: with neither the
/// part, the real name nor their folder there, the intent reads as not done (at worst a
/// deletion made right after a killed pass is undone; no version is lost). A folder moved away
/// and made again under its old name before the next pass still reads as done: a hole the
/// simulation finds (seed 1520 of 10,000).
fn local_done(folder: &Folder, intent: &Intent) -> Option<BaseEntry> {
    let target = intent.path.to_local(&folder.local);
    let gone = |p: &std::path::Path| std::fs::symlink_metadata(p).is_err();
    let folder_gone = target.parent().is_some_and(gone);
    let renamed = gone(&part_path(&target)) && !(gone(&target) && folder_gone);
    renamed.then(|| intent.entry.clone())
}

/// Whether an upload's rename happened: its remote part file is gone. The server's time is
/// known only when the real name still holds the bytes sent (by the server's hash, else read
/// back); if it was deleted or changed since, the entry records a time no listing shows, so the
/// planner sees that change.
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
        // Neither the part file nor the real name: renamed then deleted, or the folder holding
        // the part file moved or deleted (see `local_done`); only the folder tells which.
        let folder_there = match intent.path.parent() {
            Some(dir) => conn.stat(&dir.to_remote(&folder.remote)).await?.is_some(),
            None => true,
        };
        return Ok(folder_there.then_some(done));
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
