//! A big download split into byte ranges, fetched over several pool connections at once into
//! one part file, as rclone's multi-thread downloads and lftp's `pget` do: one TLS stream
//! rarely fills a fast link, and on a long one each stream is held back by its own window.
//!
//! The whole is checked before `download::place` may make it visible:
//! - every range brought exactly its bytes;
//! - the server still lists the file with the size and time the plan saw: a file rewritten
//!   during the download could otherwise be published as a mix of two versions;
//! - the part file, read back from the disk whole, gives the digests the state records and the
//!   server's hash (where it has one) checks.
//!
//! A segmented part file has holes until every range is in, so it is never resumed: a
//! download cut short starts over. It may itself resume the prefix a single-stream download
//! of the same version left.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Notify;

use super::download::{Fetched, create_part, discard, open_part, resumable_prefix};
use super::parallel::{in_parallel, ranges};
use super::{changed, check_server_hash, local_dir_ready, server_algo};
use crate::engine::pass::Shared;
use crate::engine::run::retrying;
use crate::error::{Error, Result, join_failed};
use crate::local::io;
use crate::local::stream::write_range;
use crate::local::write::part_path;
use crate::path::RelPath;
use crate::reconcile::{Entry, Side};
use crate::remote::Remote;
use crate::remote::listing::{listed_entry, same_remote};

/// Whether `remote` downloads in ranges: big enough, with connections to share the work, and
/// no read-back already holding its bytes.
pub(crate) fn wanted(sh: &Shared, path: &RelPath, remote: &Entry) -> bool {
    sh.config
        .server
        .segment_from
        .is_some_and(|from| remote.size >= from)
        && sh.run.pool.size() > 1
        && !sh.has_kept_read(path)
}

/// The first half of a segmented download (`download::fetch`'s counterpart): the remote file
/// in its local part file, whole and checked.
pub(crate) async fn fetch(sh: &Arc<Shared>, path: &RelPath, remote: &Entry) -> Result<Fetched> {
    let source = sh.remote_path(path);
    let caps = retrying(&sh.run, path.as_str(), move |c| {
        Box::pin(async move {
            sh.settle_open_intent(c, path).await?;
            Ok(c.capabilities())
        })
    })
    .await?;
    if !caps.resume_get {
        // No REST: one stream from the start is all the server allows.
        return retrying(&sh.run, path.as_str(), |c| {
            Box::pin(super::download::fetch(sh, c, path, remote))
        })
        .await;
    }
    let target = path.to_local(&sh.folder.local);
    local_dir_ready(sh, &target)?;
    let part = part_path(&target);
    let existing = std::fs::metadata(&part).map(|m| m.len()).ok();
    let prefix = resumable_prefix(sh, path, remote, caps, existing)?;
    // From here on the part file has holes: it must never be taken for a resumable prefix.
    sh.state(|s| s.end_partial(path))?;
    let file = if prefix > 0 {
        tracing::info!(path = %path, offset = prefix, "resuming download");
        open_part(&part)?
    } else {
        create_part(sh, &target, &part)?
    };
    let fetched = async {
        file.set_len(remote.size)
            .map_err(Error::local("allocate", &part))?;
        let streams = sh.run.pool.size();
        // No range smaller than an eighth of the threshold (8 MiB at `segment_from: 64MiB`):
        // each costs a data connection, and each cut short a reply and a NOOP.
        let min_range = sh.config.server.segment_from.unwrap_or(0) / 8;
        let work = ranges(prefix, remote.size, streams, min_range);
        tracing::debug!(path = %path, ranges = work.len(), streams, "segmented download");
        let started = std::time::Instant::now();
        // The digests follow the ranges in, in the file's order, while they download.
        let flying = sh.take_off(path, false, remote.size.saturating_sub(prefix));
        let progress = Arc::new(Progress::new(&work, flying.as_ref().map(|f| f.counter())));
        // However this ends (a failure, or the pass cut), the digests stop waiting for more.
        let _stop = StopOnDrop(progress.clone());
        let hashing = {
            let file = file.try_clone().map_err(Error::local("open", &part))?;
            hash_behind(
                file,
                prefix,
                remote.size,
                server_algo(sh, caps),
                progress.clone(),
                &part,
            )
        };
        let file = file.try_clone().map_err(Error::local("open", &part))?;
        let ranges = Ranges {
            path: path.clone(),
            source: source.clone(),
            part: part.clone(),
            file,
            size: remote.size,
            work,
            progress: progress.clone(),
            disk: sh.disk.clone(),
        };
        let ranges = fetch_ranges(sh, ranges).await;
        tracing::debug!(path = %path, ms = started.elapsed().as_millis() as u64, "ranges in");
        // Any failure but a range of the wrong length ends it here; that one the listing tells.
        let wrong_length = match ranges {
            Ok(()) => false,
            Err(Error::Changed { .. }) => true,
            Err(e) => return Err(e),
        };
        // The server must still hold the version the ranges were cut from.
        let now = retrying(&sh.run, path.as_str(), |c| Box::pin(c.stat(&source))).await?;
        if !now.is_some_and(|n| same_remote(&listed_entry(&n), remote)) {
            return Err(changed(path, Side::Remote));
        }
        if wrong_length {
            // From a file that did not change: the server does not start where REST told it
            // (the last range, read to the end, shows that).
            return Err(Error::Verify {
                path: source.clone(),
                detail: "a range read after REST came back at another length than the file \
                         holds: the server may not honour REST; set `segment_from: off`"
                    .into(),
            });
        }
        let digests = hashing.await.map_err(join_failed("hash a download"))??;
        tracing::debug!(path = %path, ms = started.elapsed().as_millis() as u64, "hashed");
        retrying(&sh.run, path.as_str(), |c| {
            Box::pin(check_server_hash(sh, c, &source, &digests))
        })
        .await?;
        Ok(digests)
    }
    .await;
    let digests = fetched.map_err(|e| discard(sh, path, &part, e))?;
    Ok(Fetched {
        part,
        target,
        file,
        digests,
        got: remote.size - prefix,
    })
}

/// What the ranges of one download share.
struct Ranges {
    path: RelPath,
    source: String,
    part: PathBuf,
    file: std::fs::File,
    size: u64,
    work: Vec<(u64, u64)>,
    progress: Arc<Progress>,
    disk: crate::local::disk::DiskRef,
}

/// Runs the ranges over as many pool connections as there are streams, each taking the next
/// range when done with one; the first failure stops them all.
async fn fetch_ranges(sh: &Arc<Shared>, ranges: Ranges) -> Result<()> {
    let ranges = Arc::new(ranges);
    let count = ranges.work.len();
    let sh2 = sh.clone();
    in_parallel(sh, count, move |i| {
        let (sh, ranges) = (sh2.clone(), ranges.clone());
        async move {
            retrying(&sh.run, ranges.path.as_str(), |c| {
                Box::pin(fetch_range(c, &ranges, i))
            })
            .await
        }
    })
    .await
}

/// Range `i` into its place in the part file. The last range reads to the end of the file, so
/// that a file grown since the listing shows as more bytes than expected.
async fn fetch_range(conn: &mut dyn Remote, ranges: &Ranges, i: usize) -> Result<()> {
    let Some(&(from, len)) = ranges.work.get(i) else {
        return Ok(());
    };
    let file = ranges
        .file
        .try_clone()
        .map_err(Error::local("open", &ranges.part))?;
    let writing = write_range(
        ranges.disk.clone(),
        file,
        from,
        &ranges.part,
        ranges.progress.range(i),
    );
    let got = if from + len == ranges.size {
        conn.get(&ranges.source, from, &writing.chunks).await
    } else {
        conn.get_range(&ranges.source, from, len, &writing.chunks).await
    };
    writing.finish().await?;
    if got? != len {
        // Shorter or longer than the listing said: the file changed on the server.
        return Err(changed(&ranges.path, Side::Remote));
    }
    Ok(())
}

/// How far each range has been written, for the digests to follow: they may read a range up
/// to there. A range tried again starts at 0 again; what it writes again is the same bytes
/// (the server's size and time are checked once more at the end).
pub(crate) struct Progress {
    ranges: Vec<(u64, Arc<AtomicU64>)>,
    /// Every byte written, for a progress display (a range written again counts again).
    meter: Option<Arc<AtomicU64>>,
    more: Notify,
    stopped: AtomicBool,
}

impl Progress {
    fn new(work: &[(u64, u64)], meter: Option<Arc<AtomicU64>>) -> Progress {
        Progress {
            meter,
            ranges: work
                .iter()
                .map(|&(from, _)| (from, Arc::new(AtomicU64::new(0))))
                .collect(),
            more: Notify::new(),
            stopped: AtomicBool::new(false),
        }
    }

    /// Range `i`'s counter of bytes written, which the writer raises and then calls `wake`.
    fn range(self: &Arc<Self>, i: usize) -> Written {
        Written {
            progress: self.clone(),
            i,
        }
    }

    /// The end of the bytes written from `at` on without a gap (at least `at`).
    fn written_from(&self, at: u64) -> u64 {
        let i = self.ranges.partition_point(|(from, _)| *from <= at);
        match i.checked_sub(1).and_then(|i| self.ranges.get(i)) {
            Some((from, n)) => at.max(from + n.load(Ordering::Acquire)),
            None => at,
        }
    }

    /// The download failed: the digests stop waiting.
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.more.notify_one();
    }
}

struct StopOnDrop(Arc<Progress>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// One range's share of a `Progress`.
pub struct Written {
    progress: Arc<Progress>,
    i: usize,
}

impl crate::local::stream::Progress for Written {
    fn restart(&self) {
        if let Some((_, n)) = self.progress.ranges.get(self.i) {
            n.store(0, Ordering::Release);
        }
    }
    fn advance(&self, bytes: u64) {
        if let Some((_, n)) = self.progress.ranges.get(self.i) {
            n.fetch_add(bytes, Ordering::AcqRel);
        }
        if let Some(m) = &self.progress.meter {
            m.fetch_add(bytes, Ordering::Relaxed);
        }
        self.progress.more.notify_one();
    }
}

/// Hashes `[0, size)` of the part file as the ranges fill it, in order; the digests of the
/// whole once it is all written (`[0, prefix)` was there already).
fn hash_behind(
    file: std::fs::File,
    prefix: u64,
    size: u64,
    also: Option<crate::digest::HashAlgo>,
    progress: Arc<Progress>,
    part: &Path,
) -> tokio::task::JoinHandle<Result<crate::digest::Digests>> {
    let part = part.to_owned();
    io::spawn(async move {
        let mut hashers = crate::digest::Hashers::new(also);
        let mut buf = vec![0u8; 1 << 20];
        let mut at = 0u64;
        while at < size {
            let end = if at < prefix {
                prefix
            } else {
                progress.written_from(at)
            };
            if end == at {
                if progress.stopped.load(Ordering::SeqCst) {
                    return Err(Error::Interrupted);
                }
                progress.more.notified().await;
                continue;
            }
            let n = usize::try_from(end - at).unwrap_or(usize::MAX).min(buf.len());
            read_exact_at(&file, &mut buf[..n], at).map_err(Error::local("read", &part))?;
            hashers.update(&buf[..n]);
            at += n as u64;
        }
        Ok(hashers.finish())
    })
}

#[cfg(unix)]
fn read_exact_at(file: &std::fs::File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, at)
}

#[cfg(windows)]
fn read_exact_at(file: &std::fs::File, mut buf: &mut [u8], mut at: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, at) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                at += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
