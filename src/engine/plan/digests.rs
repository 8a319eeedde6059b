//! The digests a plan needs before it can decide: both sides' SHA-256 of the files whose size
//! and time cannot prove them equal or changed (a local one hashed, a remote one from the
//! server's hash or read back whole), found over the whole pool at once.

use futures_util::{StreamExt, TryStreamExt, stream};

use crate::digest::HashAlgo;
use crate::engine::content::{local_digests, local_sha256, read_back};
use crate::engine::pass::Shared;
use crate::engine::report::Confirmed;
use crate::engine::run::retrying;
use crate::error::{Error, Result};
use crate::path::RelPath;
use crate::reconcile::{self, Base, Mtime, Policy, Precision};

/// The SHA-256 of the remote file at `path` (`size` bytes as listed), read whole: into the
/// path's local part file when `keep` and its folder is there (`Shared::kept_reads`).
async fn read_and_keep(sh: &Shared, path: &RelPath, size: u64, keep: bool) -> Result<String> {
    let remote_path = sh.remote_path(path);
    let target = path.to_local(&sh.folder.local);
    let part = (keep
        && target.parent().is_some_and(|d| d.is_dir())
        && crate::local::write::check_inside(&sh.local_real, &target).is_ok())
    .then(|| crate::local::write::part_path(&target));
    let (digest, kept) = match read_whole(sh, &remote_path, size, part.as_deref()).await {
        Ok(digest) => (digest, part.is_some()),
        // The local disk would not keep the bytes (full, read-only): they are read again for
        // the digest alone, which is all the plan needs.
        Err(Error::Local { op, path, source }) if part.is_some() => {
            tracing::debug!(path = %path.display(), "read-back not kept: {op}: {source}");
            (read_whole(sh, &remote_path, size, None).await?, false)
        }
        Err(e) => return Err(e),
    };
    if kept
        && let Some(r) = sh.remote.get(path)
        && let Ok(mut kept) = sh.kept_reads.lock()
    {
        kept.insert(path.clone(), r.sig());
    }
    Ok(digest)
}

/// The SHA-256 of a remote file of `size` bytes, read whole over the pool, its bytes kept in
/// the part file `keep` when given.
async fn read_whole(
    sh: &Shared,
    remote_path: &str,
    size: u64,
    keep: Option<&std::path::Path>,
) -> Result<String> {
    retrying(&sh.run, remote_path, |c| {
        Box::pin(read_back(c, remote_path, size, keep))
    })
    .await
}

/// Finds the digests the planner needs (docs/design.md, invariant 3, `reconcile::needs_digests`):
/// for a file that changed on both sides since the base (to tell an edit from a touch), or
/// that is new on both and cannot be judged by its times. The local digest is the scan's, else
/// the file is read; the server's hash is used when it offers one (compared with the same
/// digest of the local file), else the file is read back. Also the server's copy of an upload
/// whose time was never confirmed (`needs_remote_digest`), and of a file deleted locally whose
/// server time moved over the same size (`needs_touch_check`).
/// Files are taken as many at once as the pool has connections: a first sync on a LIST server
/// with no hash reads back every same-size file both sides hold, and one at a time that took
/// 333 s for 200,000 files.
/// A read-back's bytes are kept for the download that may follow (`Shared::kept_reads`): when
/// contents differ, the conflict copy or the download costs no second read.
pub(crate) async fn fill_digests(
    sh: &mut Shared,
    base: &Base,
    policy: &Policy,
    undone: &std::collections::BTreeSet<RelPath>,
    plan_only: bool,
) -> Result<Confirmed> {
    // A read-back is a download: when the plan may download the version read, its bytes are
    // kept in the path's part file (where the plan is carried out, and the folder is there).
    let keep = !plan_only && policy.direction != reconcile::Direction::Upload;
    let width = sh.config.server.connections.max(1);
    let candidates: Vec<(RelPath, u64)> = sh
        .local
        .iter()
        .filter_map(|(p, l)| {
            let r = sh.remote.get(p)?;
            // A path whose transfer a killed pass left undone, new on both sides with one
            // size: compared by content, never by size and time.
            let undone = undone.contains(p)
                && base.get(p).is_none()
                && l.kind == reconcile::Kind::File
                && r.kind == reconcile::Kind::File
                && l.size == r.size
                && (l.sha256.is_none() || r.sha256.is_none());
            (undone || reconcile::needs_digests(base.get(p), l, r, policy)).then(|| (p.clone(), r.size))
        })
        .collect();
    let found: Vec<(RelPath, String, String)> = {
        let sh = &*sh;
        stream::iter(candidates)
            .map(|(path, size)| async move {
                let (local, remote) = both_digests(sh, &path, size, keep).await?;
                Ok::<_, Error>((path, local, remote))
            })
            .buffer_unordered(width)
            .try_collect()
            .await?
    };
    for (path, local, remote) in found {
        if let Some(e) = sh.local.get_mut(&path) {
            e.sha256 = Some(local);
        }
        if let Some(e) = sh.remote.get_mut(&path) {
            e.sha256 = Some(remote);
        }
    }
    let unconfirmed: Vec<(RelPath, u64, bool)> = sh
        .remote
        .iter()
        .filter_map(|(p, r)| {
            let racy = reconcile::needs_remote_digest(base.get(p), r);
            (racy || reconcile::needs_touch_check(base.get(p), sh.local.get(p), r))
                .then(|| (p.clone(), r.size, racy && r.mtime.precision == Precision::Minutes))
        })
        .collect();
    let found: Vec<(RelPath, String, bool, Option<Mtime>)> = {
        let sh = &*sh;
        stream::iter(unconfirmed)
            .map(|(path, size, minutes)| async move {
                let remote_path = sh.remote_path(&path);
                // A LIST server's minute: the time to the second (MDTM), read before the
                // bytes, so that the row the plan records is looked at by MDTM from now on,
                // not read again (`plan::clock::look_to_the_second`). Read after them, a
                // write in between would pair a new time with the old bytes.
                let to_the_second = match minutes {
                    true => retrying(&sh.run, &remote_path, |c| Box::pin(c.modified(&remote_path)))
                        .await
                        .unwrap_or(None),
                    false => None,
                };
                let (digest, hashed) =
                    match retrying(&sh.run, &remote_path, |c| Box::pin(c.hash(&remote_path))).await? {
                        Some((HashAlgo::Sha256, theirs)) => (theirs, true),
                        _ => (read_and_keep(sh, &path, size, keep).await?, false),
                    };
                Ok::<_, Error>((path, digest, hashed, to_the_second))
            })
            .buffer_unordered(width)
            .try_collect()
            .await?
    };
    let mut confirmed = Confirmed::default();
    for (path, digest, hashed, to_the_second) in found {
        if hashed {
            confirmed.by_hash += 1;
        } else {
            confirmed.by_read_back += 1;
        }
        if let Some(e) = sh.remote.get_mut(&path) {
            e.sha256 = Some(digest);
            if let Some(t) = to_the_second.filter(|t| t.precision == Precision::Seconds) {
                e.mtime = t;
            }
        }
    }
    Ok(confirmed)
}

/// The SHA-256 of the local file at `path` and what stands for the server's copy's content
/// (see `fill_digests`).
async fn both_digests(sh: &Shared, path: &RelPath, size: u64, keep: bool) -> Result<(String, String)> {
    let local_path = path.to_local(&sh.folder.local);
    let remote_path = sh.remote_path(path);
    let scanned = sh.local.get(path).and_then(|e| e.sha256.clone());
    let server = retrying(&sh.run, &remote_path, |c| Box::pin(c.hash(&remote_path))).await?;
    Ok(match server {
        Some((HashAlgo::Sha256, theirs)) => (local_sha256(scanned, &local_path).await?, theirs),
        Some((algo, theirs)) => {
            let ours = local_digests(&local_path, Some(algo)).await?;
            let local = ours.sha256.clone();
            // The server's digest is trusted: equal, the contents are; else they differ,
            // whatever the SHA-256 of the server's copy (never read) would be.
            let same = ours.get(algo) == Some(theirs.as_str());
            let remote = if same {
                local.clone()
            } else {
                format!("{}:{theirs}", algo.name())
            };
            (local, remote)
        }
        None => (
            local_sha256(scanned, &local_path).await?,
            read_and_keep(sh, path, size, keep).await?,
        ),
    })
}
