//! A big download split into byte ranges, fetched over several pool connections at once into
//! one part file, as rclone's multi-thread downloads and lftp's `pget` do: one TLS stream
//! rarely fills a fast link, and on a long one each stream is held back by its own window.
//!
//! The whole is checked before `transfer::place` may make it visible:
//! - every range brought exactly its bytes;
//! - the server still lists the file with the size and time the plan saw: a file rewritten
//!   during the download could otherwise be published as a mix of two versions;
//! - the part file, read back from the disk whole, gives the digests the state records and the
//!   server's hash (where it has one) checks.
//!
//! A segmented part file has holes until every range is in, so it is never resumed: a
//! download cut short starts over. It may itself resume the prefix a single-stream download
//! of the same version left.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::task::JoinSet;

use super::transfer::{
    Fetched, changed, check_server_hash, create_part, discard, local_dir_ready, open_part, resumable_prefix,
    server_algo,
};
use super::{Shared, listed_entry, retrying, same_remote};
use crate::error::{Error, Result, join_failed};
use crate::local::io;
use crate::local::stream::{hash_file, write_range};
use crate::local::write::part_path;
use crate::path::RelPath;
use crate::reconcile::Entry;
use crate::remote::Remote;

/// Whether `remote` downloads in ranges: big enough, with connections to share the work, and
/// no read-back already holding its bytes.
pub(super) fn wanted(sh: &Shared, path: &RelPath, remote: &Entry) -> bool {
    sh.config
        .server
        .segment_from
        .is_some_and(|from| remote.size >= from)
        && sh.run.pool.size() > 1
        && !sh.has_read_back(path)
}

/// `[from, size)` cut into ranges for `streams` connections: twice as many ranges as streams,
/// so that a stream that finishes early takes over work instead of idling at the end.
fn ranges(from: u64, size: u64, streams: usize, min_range: u64) -> Vec<(u64, u64)> {
    let rest = size.saturating_sub(from);
    let count = (streams as u64 * 2).max(1);
    let len = rest.div_ceil(count).max(min_range).max(1);
    let mut out = Vec::new();
    let mut at = from;
    while at < size {
        let n = len.min(size - at);
        out.push((at, n));
        at += n;
    }
    out
}

/// The first half of a segmented download (`transfer::fetch`'s counterpart): the remote file
/// in its local part file, whole and checked.
pub(super) async fn fetch(sh: &Arc<Shared>, path: &RelPath, remote: &Entry) -> Result<Fetched> {
    let source = sh.remote_path(path);
    let caps = retrying!(&sh.run, path.as_str(), |c| async {
        sh.settle_open_intent(c, path).await?;
        Ok(c.capabilities())
    })?;
    if !caps.resume_get {
        // No REST: one stream from the start is all the server allows.
        return retrying!(&sh.run, path.as_str(), |c| super::transfer::fetch(
            sh, c, path, remote
        ));
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
        // No range smaller than an eighth of the threshold (8 MiB by default): each costs a
        // data connection, and each cut short a reply and a NOOP.
        let min_range = sh.config.server.segment_from.unwrap_or(0) / 8;
        let work = ranges(prefix, remote.size, streams, min_range);
        tracing::debug!(path = %path, ranges = work.len(), streams, "segmented download");
        let ranges = fetch_ranges(sh, path, &source, &part, &file, work, remote.size).await;
        // The server must still hold the version the ranges were cut from.
        let now = retrying!(&sh.run, path.as_str(), |c| c.stat(&source))?;
        if !now.is_some_and(|n| same_remote(&listed_entry(&n), remote)) {
            return Err(changed(path, "remote"));
        }
        match ranges {
            // A range of the wrong length from a file that did not change: the server does
            // not start where REST told it (the last range, read to the end, shows that).
            Err(Error::Changed { .. }) => {
                return Err(Error::Verify {
                    path: source.clone(),
                    detail: "a range read after REST came back at another length than the file \
                             holds: the server may not honour REST; set `segment_from: off`"
                        .into(),
                });
            }
            other => other?,
        }
        let (file, size, part2) = (file.try_clone(), remote.size, part.clone());
        let file = file.map_err(Error::local("open", &part))?;
        let also = server_algo(sh, caps);
        let (digests, file) = io::blocking("file", move || {
            hash_file(&file, size, also, &part2).map(|d| (d, file))
        })
        .await??;
        retrying!(&sh.run, path.as_str(), |c| check_server_hash(
            sh, c, &source, &digests
        ))?;
        Ok((digests, file))
    }
    .await;
    let (digests, file) = fetched.map_err(|e| discard(sh, path, &part, e))?;
    Ok(Fetched {
        part,
        target,
        file,
        digests,
        got: remote.size - prefix,
    })
}

/// Runs `work`'s ranges over as many pool connections as there are streams, each taking the
/// next range when done with one; the first failure stops them all.
async fn fetch_ranges(
    sh: &Arc<Shared>,
    path: &RelPath,
    source: &str,
    part: &Path,
    file: &std::fs::File,
    work: Vec<(u64, u64)>,
    size: u64,
) -> Result<()> {
    let streams = sh.run.pool.size().min(work.len());
    let work = Arc::new(work);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..streams {
        let (sh, work, next) = (sh.clone(), work.clone(), next.clone());
        let (path, source, part) = (path.clone(), source.to_owned(), part.to_owned());
        let file = file.try_clone().map_err(Error::local("open", part.as_path()))?;
        tasks.spawn(async move {
            while let Some(&(from, len)) = work.get(next.fetch_add(1, Ordering::SeqCst)) {
                retrying!(&sh.run, path.as_str(), |c| fetch_range(
                    c,
                    &path,
                    &source,
                    &part,
                    &file,
                    (from, len),
                    from + len == size
                ))?;
            }
            Ok::<(), Error>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined.map_err(join_failed("download range"))? {
            tasks.abort_all();
            return Err(e);
        }
    }
    Ok(())
}

/// One range into its place in the part file. The last range reads to the end of the file, so
/// that a file grown since the listing shows as more bytes than expected.
async fn fetch_range(
    conn: &mut dyn Remote,
    path: &RelPath,
    source: &str,
    part: &Path,
    file: &std::fs::File,
    (from, len): (u64, u64),
    last: bool,
) -> Result<()> {
    let file = file.try_clone().map_err(Error::local("open", part))?;
    let writing = write_range(file, from, part);
    let got = if last {
        conn.get(source, from, &writing.chunks).await
    } else {
        conn.get_range(source, from, len, &writing.chunks).await
    };
    writing.finish().await?;
    if got? != len {
        // Shorter or longer than the listing said: the file changed on the server.
        return Err(changed(path, "remote"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_rest_once_in_order() {
        for (from, size, streams) in [(0, 100, 4), (0, 1, 4), (10, 100, 3), (0, 7, 1), (99, 100, 8)] {
            let r = ranges(from, size, streams, 1);
            assert_eq!(r.first().map(|x| x.0), Some(from));
            let mut at = from;
            for &(start, len) in &r {
                assert_eq!(start, at, "{r:?}");
                assert!(len > 0);
                at += len;
            }
            assert_eq!(at, size, "{r:?}");
            assert!(r.len() <= streams * 2, "{r:?}");
        }
    }

    #[test]
    fn a_range_is_never_smaller_than_the_minimum_but_the_last() {
        let min = 8 << 20;
        let r = ranges(0, 20 << 20, 4, min);
        assert_eq!(r, vec![(0, 8 << 20), (8 << 20, 8 << 20), (16 << 20, 4 << 20)]);
        assert!(ranges(5, 5, 4, min).is_empty());
    }
}
