//! One transfer: part file -> verify -> rename into place -> the base entry to record.
//!
//! A file appears under its real name only complete and verified, on either side
//! (DESIGN.md invariant 1). A part file left by an interrupted transfer is resumed only while
//! its source still looks the way it did when the part was started (the state store records
//! that); otherwise it is started again.

use std::path::{Path, PathBuf};

use super::{Report, Shared, listed_entry, same_remote, shows_time_set, unconfirmed_upload};
use crate::config::Verify;
use crate::digest::{Digests, HashAlgo};
use crate::error::{Class, Error, Result};
use crate::local::scan::entry_of;
use crate::local::stream::{read_file, write_file};
use crate::local::write::{commit, folder_identity, part_path, set_mtime};
use crate::local::{io, part_name};
use crate::path::RelPath;
use crate::reconcile::{BaseEntry, Entry, Kind, Mtime, Precision};
use crate::remote::{Capabilities, Remote};
use crate::state::{Intent, Op, Transfer};

/// Files this small are sent again whole rather than resumed: their part files get no state
/// record, which saves two state-store writes per small file.
const RESUME_FROM: u64 = 4 << 20;

pub(super) fn resumable(size: u64) -> bool {
    size >= RESUME_FROM
}

pub(super) fn verify_err(path: &str, detail: String) -> Error {
    Error::Verify {
        path: path.to_owned(),
        detail,
    }
}

pub(super) fn changed(path: &RelPath, side: &'static str) -> Error {
    Error::Changed {
        path: path.to_string(),
        side,
    }
}

/// Refuses a local path whose directory resolves outside the sync root (a symlinked
/// directory inside the folder), so nothing is ever written through it. `real_root` is the
/// root with its symlinks resolved (once per pass: `Shared::local_real`).
pub(super) fn check_inside(real_root: &Path, target: &Path) -> Result<()> {
    let mut dir = target.parent().map(Path::to_path_buf);
    // The nearest existing ancestor decides.
    while let Some(d) = dir {
        if d.exists() {
            return match d.canonicalize() {
                Ok(d) if d.starts_with(real_root) => Ok(()),
                _ => Err(Error::UnsafeName {
                    name: target.display().to_string(),
                    reason: "its directory resolves outside the sync folder (a symlink?)",
                }),
            };
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    Ok(())
}

/// Makes the folder `target` goes in, after checking it resolves inside the sync root; once
/// per folder and pass (`Shared::ready_dirs`): many small files share a folder.
pub(super) fn local_dir_ready(sh: &Shared, target: &Path) -> Result<()> {
    let Some(parent) = target.parent() else {
        return check_inside(&sh.local_real, target);
    };
    if sh.ready_dirs.lock().is_ok_and(|d| d.contains(parent)) {
        return Ok(());
    }
    check_inside(&sh.local_real, target)?;
    std::fs::create_dir_all(parent).map_err(Error::local("create directory", parent))?;
    if let Ok(mut d) = sh.ready_dirs.lock() {
        d.insert(parent.to_owned());
    }
    Ok(())
}

/// The extra digest to compute while streaming so the server's hash command can check it.
pub(super) fn server_algo(sh: &Shared, caps: Capabilities) -> Option<HashAlgo> {
    if sh.config.verify == Verify::Size {
        return None;
    }
    caps.hash.filter(|a| *a != HashAlgo::Sha256)
}

/// Compares the server's digest of `remote` with what we streamed, when it offers one;
/// whether it did (a digest of an algorithm we computed, and `verify` not `size`).
pub(super) async fn check_server_hash(
    sh: &Shared,
    conn: &mut dyn Remote,
    remote: &str,
    digests: &Digests,
) -> Result<bool> {
    if sh.config.verify == Verify::Size {
        return Ok(false);
    }
    match conn.hash(remote).await? {
        Some((algo, theirs)) => match digests.get(algo) {
            Some(ours) if ours == theirs => Ok(true),
            Some(ours) => Err(verify_err(
                remote,
                format!("server {} is {theirs}, ours is {ours}", algo.name()),
            )),
            None => Ok(false),
        },
        None => Ok(false),
    }
}

/// The remote part file an upload of `path` writes.
pub(super) fn remote_part(sh: &Shared, path: &RelPath) -> Result<String> {
    Ok(sh.remote_path(&path.with_name(&part_name(path.name()))?))
}

/// Uploads `path` through a remote part file, resuming one this folder started from the same
/// local file, and records it as in sync. `expect_remote` is what the plan believed is at `path`:
/// if the server changed it meanwhile, nothing is overwritten. Returns its share of the report
/// (the bytes sent now).
pub(super) async fn upload(
    sh: &Shared,
    conn: &mut dyn Remote,
    path: &RelPath,
    local: &Entry,
    expect_remote: Option<&Entry>,
) -> Result<Report> {
    sh.settle_open_intent(conn, path).await?;
    let local_path = path.to_local(&sh.folder.local);
    let part = remote_part(sh, path)?;
    let mut offset = 0;
    if resumable(local.size)
        && sh.state(|s| s.partial(path, Transfer::Upload))? == Some(local.sig())
        && let Ok(size) = conn.size(&part).await
        && size <= local.size
    {
        offset = size;
    }
    if offset == 0 && resumable(local.size) {
        sh.state(|s| s.start_partial(path, Transfer::Upload, &local.sig()))?;
    }
    if offset > 0 {
        tracing::info!(path = %path, offset, "resuming upload");
    }
    let flying = sh.take_off(path, true, local.size.saturating_sub(offset));
    let mut reading = read_file(
        &local_path,
        offset,
        server_algo(sh, conn.capabilities()),
        flying.as_ref().map(|f| f.counter()),
    );
    // A part file already whole (an attempt that failed after sending) needs no APPE of nothing.
    let sent = if offset < local.size || offset == 0 {
        conn.put(&part, offset, &mut reading.chunks).await
    } else {
        Ok(0)
    };
    // The reader's verdict first: a read error means what was sent is not the file.
    let digests = reading.finish().await?;
    let sent = match sent {
        Err(e @ Error::Reply { command: "APPE", .. }) => {
            // The server will not append (stock ProFTPD answers 451): the next attempt starts
            // over rather than be refused again.
            sh.state(|s| s.end_partial(path))?;
            return Err(e);
        }
        other => other?,
    };
    drop(flying);
    let sent = Sent {
        part,
        digests,
        total: offset + sent,
        sent,
        in_ranges: false,
        read_back: false,
    };
    publish_upload(sh, conn, path, local, expect_remote, &sent).await
}

/// An upload's bytes in the remote part file, not yet checked.
pub(super) struct Sent {
    pub part: String,
    /// Of the whole local file.
    pub digests: Digests,
    /// The bytes the part file should hold.
    pub total: u64,
    /// The bytes sent now, for the report.
    pub sent: u64,
    /// Written in ranges over several connections: a size check would miss a range lost on a
    /// server that writes past the end of a file, so the whole is checked by the server's
    /// hash or, failing that, read back.
    pub in_ranges: bool,
    /// Read back and compared already (a segmented upload does it in ranges).
    pub read_back: bool,
}

/// Whether the time an upload is recorded with (`stored`, to the second) proves nothing
/// (docs/design.md, "Racy times"): a server write after the upload, in the same second, would
/// leave size and time as they are. Safe only when the time is older than the second of
/// `moment`, the part file's own time on the server's clock at the upload's end; never
/// compared with the local clock.
fn racy_upload(stored: &Entry, moment: Option<Mtime>) -> bool {
    moment.is_none_or(|m| {
        m.precision > Precision::Seconds
            || super::server_clock::racy(stored.mtime, super::server_clock::ServerClock::Read(m))
    })
}

/// Checks an upload's part file and renames it into place (invariants 1 and 2), unless the
/// target changed since the plan; records the path as in sync.
pub(super) async fn publish_upload(
    sh: &Shared,
    conn: &mut dyn Remote,
    path: &RelPath,
    local: &Entry,
    expect_remote: Option<&Entry>,
    sent: &Sent,
) -> Result<Report> {
    // A no-op after an upload on this connection; after a failed attempt of this step (a
    // segmented upload's), the rename it may have made.
    sh.settle_open_intent(conn, path).await?;
    let local_path = path.to_local(&sh.folder.local);
    let target = sh.remote_path(path);
    let Sent {
        part, digests, total, ..
    } = sent;
    let total = *total;
    // From here on a failure means the part file is not what we want: start over next time.
    let result = async {
        let now = std::fs::metadata(&local_path).map_err(Error::local("stat", &local_path))?;
        if entry_of(&now).sig() != local.sig() || total != local.size {
            return Err(changed(path, "local"));
        }
        // Never trust a 226 alone: the server must hold every byte. Where the server lists
        // exact times, MLST (in SIZE's place) also gives the part file's time: the server's
        // clock at the upload's end, which decides whether the time recorded is racy
        // (`racy_upload`).
        let (size, moment) = if conn.capabilities().exact_listing {
            let seen = conn
                .stat(part)
                .await?
                .ok_or_else(|| verify_err(&target, "the part file is gone after its upload".into()))?;
            (seen.size, seen.mtime)
        } else {
            // A LIST server: MDTM, where it has it, tells the part file's time to the second.
            let size = conn.size(part).await?;
            (size, conn.modified(part).await.unwrap_or(None))
        };
        if size != total {
            return Err(verify_err(
                &target,
                format!("sent {total} bytes, the server holds {size}"),
            ));
        }
        let hashed = check_server_hash(sh, conn, part, digests).await?;
        if !sent.read_back && (sh.config.verify == Verify::Download || (sent.in_ranges && !hashed)) {
            let back = write_file(None, 0, None, Path::new(part), None);
            let read = conn.get(part, 0, &back.chunks).await;
            let (back, _) = back.finish().await?;
            read?;
            if back.sha256 != digests.sha256 {
                return Err(verify_err(&target, "read back differs from what was sent".into()));
            }
        }
        // The target must still be what the plan saw, or nothing is overwritten.
        let unchanged = match expect_remote {
            None => !conn.exists(&target).await?,
            Some(e) => conn
                .stat(&target)
                .await?
                .is_some_and(|c| same_remote(&listed_entry(&c), e)),
        };
        if !unchanged {
            return Err(changed(path, "remote"));
        }
        Ok((expect_remote.is_some(), moment))
    }
    .await;
    let (target_exists, moment) = match result {
        Ok(found) => found,
        Err(e) => {
            if e.class() != Class::Transient || matches!(e, Error::Verify { .. }) {
                let _ = conn.remove(part).await;
                let _ = sh.state(|s| s.end_partial(path));
            }
            return Err(e);
        }
    };
    // Journaled before the rename (invariant 2); the server's time is known only after it, so
    // a pass killed in between checks the content (see `settle`).
    let mut base = BaseEntry {
        kind: Kind::File,
        local: super::recorded_local(sh, local.sig()),
        remote: Entry::file(total, Mtime::new(0, Precision::Unconfirmed)).sig(),
        sha256: Some(digests.sha256.clone()),
        local_id: local.id,
        remote_id: None,
    };
    sh.intend(&Intent {
        path: path.clone(),
        op: Op::Transfer(Transfer::Upload),
        entry: base.clone(),
        server_digest: digests.extra.clone(),
        folder: None,
    })?;
    failpoint!("upload.intended");
    let renamed = match conn.rename(part, &target).await {
        // Some servers refuse to rename over an existing file.
        Err(Error::Reply { .. }) if target_exists => match conn.remove(&target).await {
            Ok(()) => conn.rename(part, &target).await,
            Err(e) => Err(e),
        },
        other => other,
    };
    if let Err(e) = renamed {
        // A refusal leaves the part file in place: not renamed, the intent is closed. A lost
        // connection may have renamed it: the next pass settles that.
        if matches!(e, Error::Reply { .. }) {
            sh.settle(path, None)?;
        }
        return Err(e);
    }
    failpoint!("upload.renamed");
    if resumable(local.size) {
        sh.state(|s| s.end_partial(path))?;
    }
    let set = Mtime::from_secs(local.mtime.secs());
    let mtime_set = conn.set_mtime(&target, set.secs()).await?;
    let remote = if !conn.capabilities().exact_listing && mtime_set {
        match moment.map(|m| (m.secs(), set.secs())) {
            // A LIST server shows a file only in a listing of its directory: rather than one
            // listing per file, note the time we set and confirm it with one listing per
            // directory after the transfers (see queue::confirm_uploads), which shows the
            // minute: only where the upload ended in a later minute than that time.
            Some((m, t)) if t.div_euclid(60) < m.div_euclid(60) => {
                if let Ok(mut u) = sh.unconfirmed.lock() {
                    u.push(path.clone());
                }
                unconfirmed_upload(total, set)
            }
            // In an earlier second but the same minute: recorded to the second, and looked at
            // to the second (MDTM) until that minute is past (`server_clock::look_to_the_second`).
            Some((m, t)) if t < m => Entry::file(total, Mtime::new(set.nanos, Precision::Seconds)),
            // Racy at the second too: the next pass looks at the bytes.
            _ => unconfirmed_upload(total, set),
        }
    } else {
        let stored = conn
            .stat(&target)
            .await?
            .ok_or_else(|| verify_err(&target, "not found after upload".into()))?;
        let stored = listed_entry(&stored);
        if mtime_set && !shows_time_set(&stored, set) {
            // Someone wrote the file after our rename and time: what is there may not be what
            // we sent, and the next pass checks its bytes.
            tracing::info!(path = %path, "changed on the server right after its upload; the next pass looks again");
            unconfirmed_upload(total, set)
        } else if racy_upload(&stored, moment) {
            tracing::debug!(path = %path, "its time is not older than its upload: the next pass confirms it by content");
            // The file's id stays: the same file, whatever its bytes turn out to be.
            unconfirmed_upload(total, stored.mtime).with_id(stored.id)
        } else {
            stored
        }
    };
    if remote.size != total {
        return Err(verify_err(
            &target,
            format!("sent {total} bytes, the listing says {}", remote.size),
        ));
    }
    base.remote = remote.sig();
    base.remote_id = remote.id;
    sh.settle(path, Some(&base))?;
    tracing::info!(path = %path, bytes = local.size, "uploaded");
    Ok(Report {
        uploaded: 1,
        bytes_up: sent.sent,
        ..Report::default()
    })
}

/// Downloads `path` through a local part file, resuming one this folder started from the same
/// remote file, and records it as in sync. `expect_local` is what the plan believed is at `path`:
/// if it changed meanwhile, nothing is overwritten. Returns its share of the report (the bytes
/// received now).
pub(super) async fn download(
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
pub(super) struct Fetched {
    pub(super) part: PathBuf,
    pub(super) target: PathBuf,
    pub(super) file: std::fs::File,
    pub(super) digests: Digests,
    /// Bytes received now (the rest was a resumed part or a read-back).
    pub(super) got: u64,
}

/// The first half of a download, the one that needs the connection: the remote file into its
/// local part file, checked.
pub(super) async fn fetch(
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
    let read_back = existing == Some(remote.size) && sh.take_read_back(path) == Some(remote.sig());
    let offset = if read_back {
        remote.size
    } else {
        resumable_prefix(sh, path, remote, conn.capabilities(), existing)?
    };
    let file = if offset > 0 {
        if !read_back {
            tracing::info!(path = %path, offset, "resuming download");
        }
        open_part(&part)?
    } else {
        if resumable(remote.size) {
            sh.state(|s| s.start_partial(path, Transfer::Download, &remote.sig()))?;
        }
        create_part(sh, &target, &part)?
    };
    let flying = (!read_back)
        .then(|| sh.take_off(path, false, remote.size.saturating_sub(offset)))
        .flatten();
    let writing = write_file(
        Some(file),
        offset,
        server_algo(sh, conn.capabilities()),
        &part,
        flying.as_ref().map(|f| f.counter()),
    );
    let got = if read_back {
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
pub(super) fn resumable_prefix(
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
pub(super) fn open_part(part: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(part)
        .map_err(Error::local("open", part))
}

/// Creates (or empties) `target`'s local part file `part`, to write and read back.
pub(super) fn create_part(sh: &Shared, target: &Path, part: &Path) -> Result<std::fs::File> {
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
pub(super) fn discard(sh: &Shared, path: &RelPath, part: &Path, e: Error) -> Error {
    let _ = std::fs::remove_file(part);
    let _ = sh.state(|s| s.end_partial(path));
    e
}

/// The second half of a download, with no connection: the part file made durable, journaled,
/// renamed to its real name (unless the local file changed since the plan) and recorded.
pub(super) async fn place(
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
    let (part2, mtime) = (part.clone(), remote.mtime);
    let started = std::time::Instant::now();
    let finished = io::blocking("file", move || -> Result<std::fs::Metadata> {
        file.sync_all().map_err(Error::local("sync", &part2))?;
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
        local: super::recorded_local(sh, finished.sig()),
        remote: super::recorded_remote(sh, remote, true),
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
    })?;
    failpoint!("download.intended");
    let (part2, target2, expect) = (part.clone(), target.clone(), expect_local.cloned());
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
                side: "local",
            });
        }
        commit(&part2, &target2)
    })
    .await?;
    if let Err(e) = placed {
        // Not renamed: the intent is closed before its part file goes (see `settle`).
        sh.settle(path, None)?;
        return Err(match e {
            Error::Changed { .. } => discard(sh, path, &part, changed(path, "local")),
            other => discard(sh, path, &part, other),
        });
    }
    failpoint!("download.renamed");
    if resumable(remote.size) {
        sh.state(|s| s.end_partial(path))?;
    }
    sh.settle(path, Some(&base))?;
    tracing::info!(path = %path, bytes = remote.size, "downloaded");
    Ok(Report {
        downloaded: 1,
        bytes_down: got,
        ..Report::default()
    })
}
