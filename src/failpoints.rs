//! The crash tests' named kill points (see `failpoint!`); built only with `failpoints`.

use std::sync::atomic::{AtomicUsize, Ordering};

static HITS: AtomicUsize = AtomicUsize::new(0);

/// Aborts the process if `FTPS_SYNC_FAILPOINT` names `name` (every time) or `name:N` (the N-th
/// time, counting from 1).
pub fn hit(name: &str) {
    let Ok(wanted) = std::env::var("FTPS_SYNC_FAILPOINT") else {
        return;
    };
    let (point, nth) = match wanted.split_once(':') {
        Some((p, n)) => (p, n.parse().unwrap_or(1)),
        None => (wanted.as_str(), 1),
    };
    if point != name {
        return;
    }
    if HITS.fetch_add(1, Ordering::SeqCst) + 1 >= nth {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}
