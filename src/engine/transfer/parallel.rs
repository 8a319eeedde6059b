//! What a file moved in ranges needs either way: the ranges, and running them over the pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::task::JoinSet;

use crate::engine::pass::Shared;
use crate::error::{Error, Result, join_failed};

/// `[from, size)` cut into one range per stream, as lftp's `pget` and rclone do: each range
/// costs a data connection that starts slow (TCP's slow start over a long link) and, but the
/// last, a cut and a NOOP; twice as many ranges halved the speed at a 20 ms round trip.
pub(crate) fn ranges(from: u64, size: u64, streams: usize, min_range: u64) -> Vec<(u64, u64)> {
    let rest = size.saturating_sub(from);
    let count = (streams as u64).max(1);
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

/// Runs `range(0)` to `range(count - 1)` on at most as many tasks as the pool has
/// connections, each task taking the next range when done with one (`range` leases its own
/// connection); the first failure stops them all.
pub(crate) async fn in_parallel<F, Fut>(sh: &Arc<Shared>, count: usize, range: F) -> Result<()>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let tasks_wanted = sh.run.pool.size().min(count);
    let range = Arc::new(range);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..tasks_wanted {
        let (range, next) = (range.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= count {
                    break;
                }
                range(i).await?;
            }
            Ok::<(), Error>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined.map_err(join_failed("transfer range"))? {
            tasks.abort_all();
            return Err(e);
        }
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
            assert!(r.len() <= streams, "{r:?}");
        }
    }

    #[test]
    fn a_range_is_never_smaller_than_the_minimum_but_the_last() {
        let min = 8 << 20;
        let r = ranges(0, 20 << 20, 4, min);
        assert_eq!(r, vec![(0, 8 << 20), (8 << 20, 8 << 20), (16 << 20, 4 << 20)]);
        let r = ranges(0, 100 << 20, 4, min);
        assert_eq!(
            r,
            vec![
                (0, 25 << 20),
                (25 << 20, 25 << 20),
                (50 << 20, 25 << 20),
                (75 << 20, 25 << 20)
            ]
        );
        assert!(ranges(5, 5, 4, min).is_empty());
    }
}
