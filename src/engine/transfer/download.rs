//! Downloads: a remote file into a local part file (resumed where this folder started one from
//! the same remote file), made durable, journaled and renamed into place (`place`).

use std::path::{Path, PathBuf};

use super::{changed, check_server_hash, local_dir_ready, resumable, server_algo, verify_err};
use crate::digest::Digests;
use crate::engine::pass::Shared;
use crate::engine::report::Report;
use crate::error::{Error, Result};
use crate::local::io;
use crate::local::scan::entry_of;
use crate::local::stream::write_file;
use crate::local::write::{commit, folder_identity, part_path, set_mtime};
use crate::path::RelPath;
use crate::reconcile::{BaseEntry, Entry, Kind, Precision, Side};
use crate::remote::{Capabilities, Remote};
use crate::state::{Intent, Op, Transfer};

/// Downloads `path` through a local part file, resuming one this folder started from the same
/// remote file, and records it as in sync. `expect_local` is what the plan believed is at `path`:
/// if it changed meanwhile, nothing is overwritten. Returns its share of the report (the bytes
/// received now).
pub(crate) async fn download(
    sh: &Shared,
    conn: &mut dyn Remote,
    path: &RelPath,
    remote: &Entry,
    expect_local: Option<&Entry>,
) -> Result<Report> {
    let fetched = fetch(sh, conn, path, remote).await?;
    place(sh, path, remote, fetched, expect_local).await
}

/// A remote file's bytes in its local part file, their size and the server's hash checked:
/// what `place` makes visible. The connection is free again once it exists.
pub(crate) struct Fetched {
    pub(crate) part: PathBuf,
    pub(crate) target: PathBuf,
    pub(crate) file: std::fs::File,
    pub(crate) digests: Digests,
    /// Bytes received now (the rest was a resumed part or a read-back).
    pub(crate) got: u64,
}

/// The first half of a download, the one that needs the connection: the remote file into its
/// local part file, checked.
pub(crate) async fn fetch(
    sh: &Shared,
    conn: &mut dyn Remote,
    path: &RelPath,
    remote: &Entry,
) -> Result<Fetched> {
    sh.settle_open_intent(conn, path).await?;
    let source = sh.remote_path(path);
    let target = path.to_local(&sh.folder.local);
    local_dir_ready(sh, &target)?;
    let part = part_path(&target);
    let existing = std::fs::metadata(&part).map(|m| m.len()).ok();
    // The read-back that compared contents kept this very version: nothing left to read.
    let kept = existing == Some(remote.size) && sh.take_kept_read(path) == Some(remote.sig());
    let offset = if kept {
        remote.size
    } else {
        resumable_prefix(sh, path, remote, conn.capabilities(), existing)?
    };
    let file = if offset > 0 {
        if !kept {
            tracing::info!(path = %path, offset, "resuming download");
        }
        open_part(&part)?
    } else {
        if resumable(remote.size) {
            // A racy time is recorded unconfirmed, which no later listing matches: a part file
            // begun in the second of a write is never resumed, as its bytes may be of an
            // earlier write of the same size and second (docs/design.md, "Racy times").
            let sig = sh.recorded_remote(remote, true);
            sh.state(|s| s.start_partial(path, Transfer::Download, &sig))?;
        }
        create_part(sh, &target, &part)?
    };
    let flying = (!kept)
        .then(|| sh.take_off(path, false, remote.size.saturating_sub(offset)))
        .flatten();
    let writing = write_file(
        sh.disk.clone(),
        Some(file),
        offset,
        server_algo(sh, conn.capabilities()),
        &part,
        flying.as_ref().map(|f| f.counter()),
    );
    let got = if kept {
        Ok(0)
    } else {
        conn.get(&source, offset, &writing.chunks).await
    };
    // A local write error leaves a part file of unknown content: start over next time.
    let (digests, file) = writing.finish().await.map_err(|e| discard(sh, path, &part, e))?;
    drop(flying);
    // A transient network failure keeps the part file and its record: the next attempt resumes.
    let got = got?;
    let file = file.ok_or_else(|| Error::Interrupted)?;
    let total = offset + got;
    if total != remote.size {
        return Err(discard(
            sh,
            path,
            &part,
            verify_err(
                &source,
                format!("received {total} bytes, the listing said {}", remote.size),
            ),
        ));
    }
    check_server_hash(sh, conn, &source, &digests)
        .await
        .map_err(|e| discard(sh, path, &part, e))?;
    Ok(Fetched {
        part,
        target,
        file,
        digests,
        got,
    })
}

/// How much of a download's part file (`existing` bytes long) a download may keep: all of it
/// when this folder started it from this very version of the remote file, else none.
pub(crate) fn resumable_prefix(
    sh: &Shared,
    path: &RelPath,
    remote: &Entry,
    caps: Capabilities,
    existing: Option<u64>,
) -> Result<u64> {
    match existing {
        Some(len)
            if resumable(remote.size)
                && len <= remote.size
                && caps.resume_get
                && sh.state(|s| s.partial(path, Transfer::Download))? == Some(remote.sig()) =>
        {
            Ok(len)
        }
        _ => Ok(0),
    }
}

/// Opens an existing part file to go on writing it.
pub(crate) fn open_part(part: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(part)
        .map_err(Error::local("open", part))
}

/// Creates (or empties) `target`'s local part file `part`, to write and read back.
pub(crate) fn create_part(sh: &Shared, target: &Path, part: &Path) -> Result<std::fs::File> {
    let create = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(part)
    };
    match create() {
        // The folder went since this pass made it: made again, and checked again.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let (Ok(mut d), Some(parent)) = (sh.ready_dirs.lock(), target.parent()) {
                d.remove(parent);
            }
            local_dir_ready(sh, target)?;
            create()
        }
        other => other,
    }
    .map_err(Error::local("create", part))
}

/// Removes a part file whose content is not known good, and its resume record.
pub(crate) fn discard(sh: &Shared, path: &RelPath, part: &Path, e: Error) -> Error {
    let _ = sh.disk.remove_file(part);
    let _ = sh.state(|s| s.end_partial(path));
    e
}

/// The second half of a download, with no connection: the part file made durable, journaled,
/// renamed to its real name (unless the local file changed since the plan) and recorded.
pub(crate) async fn place(
    sh: &Shared,
    path: &RelPath,
    remote: &Entry,
    fetched: Fetched,
    expect_local: Option<&Entry>,
) -> Result<Report> {
    let Fetched {
        part,
        target,
        file,
        digests,
        got,
    } = fetched;
    // fsync and mtime block: keep them off the async workers.
    let (part2, mtime, disk) = (part.clone(), remote.mtime, sh.disk.clone());
    let started = std::time::Instant::now();
    let finished = io::blocking("file", move || -> Result<std::fs::Metadata> {
        disk.sync_file(&file, &part2)
            .map_err(Error::local("sync", &part2))?;
        if mtime.precision <= Precision::Minutes && mtime.nanos != 0 {
            let _ = set_mtime(&file, mtime);
        }
        file.metadata().map_err(Error::local("stat", &part2))
    })
    .await?
    .map_err(|e| discard(sh, path, &part, e))?;
    if remote.size >= 1 << 20 {
        tracing::debug!(path = %path, ms = started.elapsed().as_millis() as u64, "made durable");
    }
    // What the real name will hold, journaled before it does (invariant 2): a pass killed
    // after the rename finds it done, not a local edit.
    let finished = entry_of(&finished);
    let finished_id = finished.id;
    let base = BaseEntry {
        kind: Kind::File,
        local: sh.recorded_local(finished.sig()),
        remote: sh.recorded_remote(remote, true),
        sha256: Some(digests.sha256),
        local_id: finished_id,
        remote_id: remote.id,
    };
    sh.intend(&Intent {
        path: path.clone(),
        op: Op::Transfer(Transfer::Download),
        entry: base.clone(),
        server_digest: None,
        folder: target.parent().and_then(folder_identity),
    })
    .await?;
    failpoint!("download.intended");
    let (part2, target2, expect, disk) = (
        part.clone(),
        target.clone(),
        expect_local.cloned(),
        sh.disk.clone(),
    );
    let placed = io::blocking("file", move || -> Result<()> {
        let current = std::fs::symlink_metadata(&target2).ok().map(|m| entry_of(&m));
        let unchanged = match (&expect, &current) {
            (None, None) => true,
            (Some(e), Some(c)) => c.kind == Kind::File && c.sig() == e.sig(),
            _ => false,
        };
        if !unchanged {
            return Err(Error::Changed {
                path: target2.display().to_string(),
                side: Side::Local,
            });
        }
        commit(&*disk, &part2, &target2)
    })
    .await?;
    if let Err(e) = placed {
        if crate::local::write::renamed_not_durable(&e) {
            // Renamed, but not known durable: the intent stays open, for the next pass.
            return Err(e);
        }
        // Not renamed: the intent is closed, on disk, before its part file goes (see `settle`).
        sh.finish(path, None)?;
        sh.durable.all_so_far().await?;
        return Err(match e {
            Error::Changed { .. } => discard(sh, path, &part, changed(path, Side::Local)),
            other => discard(sh, path, &part, other),
        });
    }
    failpoint!("download.renamed");
    if resumable(remote.size) {
        sh.state(|s| s.end_partial(path))?;
    }
    sh.finish(path, Some(&base))?;
    tracing::info!(path = %path, bytes = remote.size, "downloaded");
    Ok(Report {
        downloaded: 1,
        bytes_down: got,
        ..Report::default()
    })
}
