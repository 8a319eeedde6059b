//! A big upload split into byte ranges, written over several pool connections at once into
//! the one remote part file (REST, then STOR, per range): one TLS stream is often held back by
//! a single server process or a long link. No FTP peer does it, because servers differ, so it
//! is allowed only where
//! - the server keeps the bytes around a write at an offset (`write_at::probe`, once per
//!   folder and pass, in the directory of the first file that wants it): vsftpd does,
//!   ProFTPD with `AllowStoreRestart`, Pure-FTPd cuts the file at the offset;
//! - the whole can be checked before the rename: by the server's hash, or by a read-back
//!   (`verify: download`, and whenever the hash gives no answer). A size check alone would
//!   miss a range lost on a server that writes past the end of a file.
//!
//! The head of the file goes first, by a plain STOR that creates or empties the part file.
//! Every range after it starts past byte 0, so no range's STOR empties what another wrote,
//! and a range tried again writes the same bytes at the same place. A segmented part file has
//! holes until every range is in, so it is never resumed: an upload cut short starts over.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use super::parallel::{in_parallel, ranges};
use super::upload::{Sent, publish_upload};
use super::{changed, remote_part, server_algo, verify_err};
use crate::config::Verify;
use crate::engine::pass::Shared;
use crate::engine::report::Report;
use crate::engine::run::retrying;
use crate::error::{Error, Result, join_failed};
use crate::local::part_name;
use crate::local::stream::{compare_range, hash_file, read_range};
use crate::path::RelPath;
use crate::reconcile::{Entry, Side};
use crate::remote::Remote;
use crate::remote::write_at::{self, WriteAt};
use crate::state::Transfer;

/// The head: at most this much goes by the plain STOR before the ranges start.
const HEAD: u64 = 64 << 10;

/// Whether `local` would go in ranges where the server allows it: big enough, with
/// connections to share the work, and a check of the whole that is more than its size.
pub(crate) fn wanted(sh: &Shared, local: &Entry) -> bool {
    sh.config
        .server
        .segment_from
        .is_some_and(|from| local.size >= from)
        && sh.run.pool.size() > 1
        && sh.config.verify != Verify::Size
}

/// Uploads `path` in ranges where this server allows it, else in one stream
/// (`transfer::upload`); checks and publishes it as a single-stream upload is.
pub(crate) async fn upload(
    sh: &Arc<Shared>,
    path: &RelPath,
    local: &Entry,
    expect_remote: Option<&Entry>,
) -> Result<Report> {
    let caps = retrying(&sh.run, path.as_str(), move |c| {
        Box::pin(async move {
            sh.settle_open_intent(c, path).await?;
            Ok(c.capabilities())
        })
    })
    .await?;
    let checkable = caps.hash.is_some() || sh.config.verify == Verify::Download;
    // A part file a single stream left of this version resumes where it stopped.
    let resumable = sh.state(|s| s.partial(path, Transfer::Upload))? == Some(local.sig());
    if !checkable || resumable || !allowed(sh, path).await? {
        return retrying(&sh.run, path.as_str(), |c| {
            Box::pin(super::upload::upload(sh, c, path, local, expect_remote))
        })
        .await;
    }
    // The part file is emptied by the head: no earlier part file of another version is kept.
    sh.state(|s| s.end_partial(path))?;
    let part = remote_part(sh, path)?;
    let local_path = path.to_local(&sh.folder.local);
    let streams = sh.run.pool.size();
    let head = HEAD.min(local.size / (2 * streams as u64)).max(1);
    // No range smaller than an eighth of the threshold, as for downloads.
    let min_range = sh.config.server.segment_from.unwrap_or(0) / 8;
    let mut work = vec![(0, head)];
    work.extend(ranges(head, local.size, streams, min_range));
    tracing::debug!(path = %path, ranges = work.len(), streams, "segmented upload");
    let flying = sh.take_off(path, true, local.size);
    let counter = flying.as_ref().map(|f| f.counter());
    // The digests of the whole, read beside the ranges (from the page cache, mostly).
    let mut hashing = Some(hash_file(&local_path, server_algo(sh, caps)));
    let mut digests = None;
    // With no hash to check the whole, each range is read back and compared, in parallel too.
    let compare = sh.config.verify == Verify::Download || caps.hash.is_none();
    let ranges = Arc::new(Ranges {
        path: path.clone(),
        local: local_path,
        part: part.clone(),
        size: local.size,
        work,
        counter,
    });
    let mut attempt = 0;
    loop {
        attempt += 1;
        if let Err(e) = send_all(sh, &ranges, compare).await {
            if !matches!(e, Error::Interrupted | Error::Verify { .. }) {
                // Its holes make it useless to any later attempt.
                let _ = retrying(&sh.run, &part, |c| Box::pin(c.remove(&part))).await;
            }
            // On the way out the hashing, dropped, stops.
            retry_whole(sh, path, attempt, e).await?;
            continue;
        }
        let whole = match (digests.take(), hashing.take()) {
            (Some(d), _) => d,
            (None, Some(h)) => h.finish().await?,
            (None, None) => return Err(Error::Internal("a segmented upload lost its digests".into())),
        };
        let sent = Sent {
            part: part.clone(),
            digests: whole,
            total: local.size,
            sent: local.size,
            in_ranges: true,
            compared: compare,
        };
        // A mismatch found here (the server's hash) is not published again from the same part
        // file, which it removed: the file is sent again whole.
        let sent_ref = &sent;
        let published = retrying(&sh.run, path.as_str(), move |c| {
            Box::pin(async move {
                match publish_upload(sh, c, path, local, expect_remote, sent_ref).await {
                    Err(e @ Error::Verify { .. }) => Ok(Err(e)),
                    other => other.map(Ok),
                }
            })
        })
        .await?;
        match published {
            Ok(report) => {
                drop(flying);
                return Ok(report);
            }
            Err(e) => {
                digests = Some(sent.digests);
                retry_whole(sh, path, attempt, e).await?;
            }
        }
    }
}

/// After a failed attempt at a segmented upload: `Ok` to send it all again (a mismatch, as a
/// single stream is sent again), else the error.
async fn retry_whole(sh: &Shared, path: &RelPath, attempt: u32, e: Error) -> Result<()> {
    match e {
        Error::Verify { .. } => sh.run.pause_before_retry(path.as_str(), attempt, e).await,
        e => Err(e),
    }
}

/// The ranges into the part file: the head first (its STOR empties the file), then the rest
/// at once; then, with `compare`, each read back and compared, at once too.
async fn send_all(sh: &Arc<Shared>, ranges: &Arc<Ranges>, compare: bool) -> Result<()> {
    let Some(&head) = ranges.work.first() else {
        return Ok(());
    };
    retrying(&sh.run, ranges.path.as_str(), |c| {
        Box::pin(send_range(c, ranges, head))
    })
    .await?;
    failpoint!("upload.head");
    let (sh2, all) = (sh.clone(), ranges.clone());
    in_parallel(sh, ranges.work.len() - 1, move |i| {
        let (sh, ranges) = (sh2.clone(), all.clone());
        async move {
            let Some(&range) = ranges.work.get(i + 1) else {
                return Ok(());
            };
            retrying(&sh.run, ranges.path.as_str(), |c| {
                Box::pin(send_range(c, &ranges, range))
            })
            .await
        }
    })
    .await?;
    failpoint!("upload.ranges");
    if !compare {
        return Ok(());
    }
    let (sh2, all) = (sh.clone(), ranges.clone());
    in_parallel(sh, ranges.work.len(), move |i| {
        let (sh, ranges) = (sh2.clone(), all.clone());
        async move {
            let Some(&range) = ranges.work.get(i) else {
                return Ok(());
            };
            // A mismatch is not read again: the caller sends the file again.
            let differs = retrying(&sh.run, ranges.path.as_str(), |c| {
                Box::pin(check_range(c, &ranges, range))
            })
            .await?;
            match differs {
                Some(detail) => Err(verify_err(&ranges.part, detail)),
                None => Ok(()),
            }
        }
    })
    .await
}

/// What the ranges of one upload share.
struct Ranges {
    path: RelPath,
    local: PathBuf,
    part: String,
    size: u64,
    /// The head first.
    work: Vec<(u64, u64)>,
    counter: Option<Arc<AtomicU64>>,
}

/// The bytes `[from, from + len)` of the local file to the same place in the part file: the
/// head (from 0) by a plain STOR, any other range at its offset.
async fn send_range(conn: &mut dyn Remote, ranges: &Ranges, (from, len): (u64, u64)) -> Result<()> {
    let mut reading = read_range(&ranges.local, from, len, ranges.counter.clone());
    let sent = if from == 0 {
        conn.put(&ranges.part, 0, &mut reading.chunks).await
    } else {
        conn.put_at(&ranges.part, from, &mut reading.chunks).await
    };
    let read = reading.finish().await?;
    if sent? != len || read != len {
        // The file is shorter than the plan saw: it changed.
        return Err(changed(&ranges.path, Side::Local));
    }
    Ok(())
}

/// Reads `[from, from + len)` of the part file back and compares it with the local file's
/// bytes there; the last range reads to the end, so that bytes past the file's size show too.
/// What differs, if anything does.
async fn check_range(
    conn: &mut dyn Remote,
    ranges: &Ranges,
    (from, len): (u64, u64),
) -> Result<Option<String>> {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let comparing = compare_range(&ranges.local, from, rx);
    let got = if from + len == ranges.size {
        conn.get(&ranges.part, from, &tx).await
    } else {
        conn.get_range(&ranges.part, from, len, &tx).await
    };
    drop(tx);
    let (same, came) = comparing.await.map_err(join_failed("compare a range"))??;
    got?;
    Ok((!same || came != len)
        .then(|| format!("bytes {from}..{} read back differ from what was sent", from + len)))
}

/// Whether the server keeps the bytes around writes at offsets and lets two run at once into
/// one file: probed once per pass and folder, on a reserved part-file name beside `path` (the
/// sync's part files are named so, and a later pass removes one left behind).
async fn allowed(sh: &Arc<Shared>, path: &RelPath) -> Result<bool> {
    let allowed = sh
        .writes_at
        .get_or_init(|| async {
            // The part-file name of a hidden name no user file has.
            let Ok(probe) = path.with_name(&part_name(".ftps-sync-probe")) else {
                return false;
            };
            let probe = sh.remote_path(&probe);
            let found = probe_server(sh, &probe).await;
            let _ = retrying(&sh.run, &probe, |c| Box::pin(c.remove(&probe))).await;
            match found {
                Ok(()) => true,
                Err(why) => {
                    tracing::info!("big files upload in one stream: {why}");
                    false
                }
            }
        })
        .await;
    if sh.run.cancel.is_cancelled() {
        return Err(Error::Interrupted);
    }
    Ok(*allowed)
}

/// `write_at::probe`, then `write_at::concurrent` on two pool connections; why not, if not.
async fn probe_server(sh: &Arc<Shared>, probe: &str) -> std::result::Result<(), String> {
    match retrying(&sh.run, probe, |c| Box::pin(write_at::probe(c, probe))).await {
        Ok(WriteAt::Keeps) => {}
        Ok(WriteAt::Refused(reply)) => {
            return Err(format!("the server refuses to write at an offset ({reply})"));
        }
        Ok(WriteAt::Cuts) => return Err("the server cuts a file written at an offset".into()),
        Ok(WriteAt::Garbled(n)) => {
            return Err(format!(
                "a file written at offsets read back as {n} bytes, not what was sent"
            ));
        }
        Err(e) => return Err(format!("the test of writing at an offset failed: {e}")),
    }
    let wait = sh.config.server.timeout.min(Duration::from_secs(5));
    let failed = |e: Error| format!("the test of two writes at once failed: {e}");
    let mut a = sh.run.pool.get().await.map_err(failed)?;
    // Within a time: the pool may have shrunk to this one connection (a 421).
    let mut b = match tokio::time::timeout(sh.config.server.timeout, sh.run.pool.get()).await {
        Ok(b) => b.map_err(failed)?,
        Err(_) => return Err("no second connection to test two writes at once".into()),
    };
    match write_at::concurrent(a.conn(), b.conn(), probe, wait).await {
        Ok(true) => {
            a.release();
            b.release();
            Ok(())
        }
        Ok(false) => {
            // `b` still waits for its write: it is not reused.
            a.release();
            Err(format!(
                "the server lets one upload into a file at a time (a second waited over {} s; \
                 vsftpd: `lock_upload_files=NO` allows more)",
                wait.as_secs()
            ))
        }
        Err(e) => {
            a.check_after(&e).await;
            b.check_after(&e).await;
            Err(failed(e))
        }
    }
}
