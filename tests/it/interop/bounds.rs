//! A server that lists without end cannot take the client's memory: each bound on what a
//! listing may make it hold ends the pass by itself, with an error that names the bound, and
//! the process's peak memory stays under 256 MiB (docs/design.md, "Bounds").

use std::process::Command;
use std::time::{Duration, Instant};

use super::servers;

/// Peak memory the client may reach on the way to any bound.
const PEAK: u64 = 256 << 20;

/// Runs `sync` and waits for it, killing it after `limit`; its exit code, stderr and peak
/// resident memory (from the kernel's own account of the child).
// The child is reaped by `wait4`, which clippy does not see.
#[allow(clippy::zombie_processes)]
fn sync_measured(cfg: &std::path::Path, limit: Duration) -> (i32, String, u64) {
    let err = tempfile::NamedTempFile::new().expect("tmp");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ftps-sync"))
        .args(["sync", "-c"])
        .arg(cfg)
        .stdout(std::process::Stdio::null())
        .stderr(err.reopen().expect("reopen"))
        .spawn()
        .expect("spawn");
    let pid = child.id() as libc::pid_t;
    let started = Instant::now();
    loop {
        let mut status = 0;
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our own child, not yet reaped; both pointers are to live locals.
        let done = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if done == pid {
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                -1
            };
            let stderr = std::fs::read_to_string(err.path()).unwrap_or_default();
            // ru_maxrss is in KiB on Linux.
            return (code, stderr, usage.ru_maxrss as u64 * 1024);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the pass did not end by itself within {limit:?}: {}",
                std::fs::read_to_string(err.path()).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A sync of the root of a pyftpdlib server in `mode`: it ends by itself, fails saying
/// `bound`, downloads nothing, and stays under `PEAK`.
fn ends_at_the_bound(mode: &str, extra: &[String], top: &str, bound: &str) {
    let Some(server) = servers::pyftpdlib(mode, extra) else {
        return;
    };
    server.put("real.txt", "a real file");
    let work = tempfile::tempdir().expect("tmp");
    let local = work.path().join("local");
    std::fs::create_dir_all(&local).expect("mkdir");
    let cfg = work.path().join("ftps-sync.yaml");
    server.config_yaml(&local, "/").top(top).write(&cfg);
    let (code, stderr, peak) = sync_measured(&cfg, Duration::from_secs(240));
    assert_eq!(code, 1, "{mode}: {stderr}");
    assert!(stderr.contains(bound), "{mode}: no {bound:?} in: {stderr}");
    assert!(stderr.contains("the server sent"), "{mode}: {stderr}");
    assert!(
        peak < PEAK,
        "{mode}: peak memory {} MiB, over {} MiB",
        peak >> 20,
        PEAK >> 20
    );
    let fetched: Vec<_> = std::fs::read_dir(&local).expect("ls").flatten().collect();
    assert!(fetched.is_empty(), "{mode}: nothing may be synced: {fetched:?}");
    eprintln!("{mode} {extra:?}: ended at {bound:?}, peak {} MiB", peak >> 20);
}

#[test]
fn a_listing_without_end_stops_at_a_million_entries() {
    ends_at_the_bound("endless-listing", &[], "", "1000000 entries a folder");
}

#[test]
fn a_list_listing_without_end_stops_at_a_million_entries() {
    ends_at_the_bound(
        "endless-listing",
        &["--no-mlsd".into()],
        "",
        "1000000 entries a folder",
    );
}

#[test]
fn a_listing_line_without_end_stops_at_its_bound() {
    ends_at_the_bound("endless-line", &[], "", "65536 bytes a line");
}

#[test]
fn a_name_past_its_bound_stops_the_listing() {
    ends_at_the_bound("long-name", &[], "", "1024 bytes a name");
}

#[test]
fn long_names_without_end_stop_at_the_names_bound() {
    ends_at_the_bound("long-names", &[], "", "bytes of names a folder");
}

#[test]
fn a_tree_without_end_stops_at_listing_memory_limit() {
    ends_at_the_bound(
        "endless-tree",
        &[],
        "listing_memory_limit: 8MiB\n",
        "listing_memory_limit: 8 MiB",
    );
}
