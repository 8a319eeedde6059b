//! An upload: a remote part file, verified, renamed into place behind its intent, recorded.

use crate::config::Verify;
use crate::digest::Digests;
use crate::engine::pass::Shared;
use crate::engine::racy::{racy_upload, shows_time_set, unconfirmed_upload};
use crate::engine::report::Report;
use crate::error::{Class, Error, Result};
use crate::local::scan::entry_of;
use crate::local::stream::read_file;
use crate::local::stream::write_file;
use crate::path::RelPath;
use crate::reconcile::{BaseEntry, Entry, Kind, Mtime, Precision, Side};
use crate::remote::Remote;
use crate::remote::listing::{listed_entry, same_remote};
use crate::state::{Intent, Op, Transfer};
use std::path::Path;

use super::{changed, check_server_hash, remote_part, resumable, server_algo, verify_err};

/// Uploads `path` through a remote part file, resuming one this folder started from the same
/// local file, and records it as in sync. `expect_remote` is what the plan believed is at `path`:
/// if the server changed it meanwhile, nothing is overwritten. Returns its share of the report
/// (the bytes sent now).
pub(crate) async fn upload(
    sh: &Shared,
    conn: &mut dyn Remote,
    path: &RelPath,
    local: &Entry,
    expect_remote: Option<&Entry>,
) -> Result<Report> {
    sh.settle_open_intent(conn, path).await?;
    let part = remote_part(sh, path)?;
    let mut offset = 0;
    if resumable(local.size)
        && sh.state(|s| s.partial(path, Transfer::Upload))? == Some(local.sig())
        && let Ok(size) = conn.size(&part).await
        && size <= local.size
    {
        offset = size;
    }
    let sent = match send(sh, conn, path, local, &part, offset).await {
        Err(e @ Error::Reply { .. }) if offset > 0 => {
            // The server refused to go on with the file (stock ProFTPD will not append: 451):
            // the file goes again whole, now, so that an error the user sees is about the
            // file, not about the append.
            tracing::debug!(path = %path, "the server refused to resume the upload ({e}); sending it whole");
            sh.state(|s| s.end_partial(path))?;
            send(sh, conn, path, local, &part, 0).await?
        }
        other => other?,
    };
    publish_upload(sh, conn, path, local, expect_remote, &sent).await
}

/// Sends the local file into the remote part file `part` from byte `offset` on (0: whole, a
/// partial upload started).
async fn send(
    sh: &Shared,
    conn: &mut dyn Remote,
    path: &RelPath,
    local: &Entry,
    part: &str,
    offset: u64,
) -> Result<Sent> {
    if offset == 0 && resumable(local.size) {
        sh.state(|s| s.start_partial(path, Transfer::Upload, &local.sig()))?;
    }
    if offset > 0 {
        tracing::info!(path = %path, offset, "resuming upload");
    }
    let flying = sh.take_off(path, true, local.size.saturating_sub(offset));
    let mut reading = read_file(
        &path.to_local(&sh.folder.local),
        offset,
        server_algo(sh, conn.capabilities()),
        flying.as_ref().map(|f| f.counter()),
    );
    // A part file already whole (an attempt that failed after sending) needs no APPE of nothing.
    let sent = if offset < local.size || offset == 0 {
        conn.put(part, offset, &mut reading.chunks).await
    } else {
        Ok(0)
    };
    // The reader's verdict first: a read error means what was sent is not the file.
    let digests = reading.finish().await?;
    let sent = sent?;
    drop(flying);
    Ok(Sent {
        part: part.to_owned(),
        digests,
        total: offset + sent,
        sent,
        in_ranges: false,
        compared: false,
    })
}

/// An upload's bytes in the remote part file, not yet checked.
pub(crate) struct Sent {
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
    pub compared: bool,
}

/// Checks an upload's part file and renames it into place (invariants 1 and 2), unless the
/// target changed since the plan; records the path as in sync.
pub(crate) async fn publish_upload(
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
    // Journaled before the rename (invariant 2), and first: its sync runs while the part file
    // is checked. The server's time is known only after the rename, so a pass killed in
    // between checks the content (see `settle`).
    let mut base = BaseEntry {
        kind: Kind::File,
        local: sh.recorded_local(local.sig()),
        remote: Entry::file(total, Mtime::new(0, Precision::Unconfirmed)).sig(),
        sha256: Some(digests.sha256.clone()),
        local_id: local.id,
        remote_id: None,
    };
    let journaled = sh.journal(&Intent {
        path: path.clone(),
        op: Op::Transfer(Transfer::Upload),
        entry: base.clone(),
        server_digest: digests.extra.clone(),
        folder: None,
    })?;
    // From here on a failure means the part file is not what we want: start over next time.
    let result = async {
        let now = std::fs::metadata(&local_path).map_err(Error::local("stat", &local_path))?;
        if entry_of(&now).sig() != local.sig() || total != local.size {
            return Err(changed(path, Side::Local));
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
        if !sent.compared && (sh.config.verify == Verify::Download || (sent.in_ranges && !hashed)) {
            let back = write_file(sh.disk.clone(), None, 0, None, Path::new(part), None);
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
            return Err(changed(path, Side::Remote));
        }
        Ok((expect_remote.is_some(), moment))
    };
    let (durable, result) = tokio::join!(sh.durable.reached(journaled), result);
    let (target_exists, moment) = match result.and_then(|found| durable.map(|()| found)) {
        Ok(found) => found,
        Err(e) => {
            // Not renamed: the intent is closed before the part file goes (see `settle`).
            sh.finish(path, None)?;
            if e.class() != Class::Transient || matches!(e, Error::Verify { .. }) {
                let _ = conn.remove(part).await;
                let _ = sh.state(|s| s.end_partial(path));
            }
            return Err(e);
        }
    };
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
            sh.finish(path, None)?;
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
            // to the second (MDTM) until that minute is past (`plan::clock::look_to_the_second`).
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
    sh.finish(path, Some(&base))?;
    tracing::info!(path = %path, bytes = local.size, "uploaded");
    Ok(Report {
        uploaded: 1,
        bytes_up: sent.sent,
        ..Report::default()
    })
}
