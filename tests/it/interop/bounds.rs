//! A server that lists without end cannot take the client's memory: each bound on what a
//! listing may make it hold ends the pass by itself, with an error that names the bound, and
//! the process's peak memory stays under 256 MiB (docs/design.md, "Bounds").

use std::process::Command;
use std::time::Duration;

use super::servers;

/// Peak memory the client may reach on the way to any bound.
const PEAK: u64 = 256 << 20;

/// Runs `sync` and waits for it, killed after `limit`; its exit code, stderr and peak
/// resident memory. A small Python parent runs it and reads the peak from the kernel's account
/// of its reaped child: the peak of a child of this test process would count the pages of the
/// test process it was forked from.
fn sync_measured(cfg: &std::path::Path, limit: Duration) -> (i32, String, u64) {
    const MEASURE: &str = "import resource, subprocess, sys\n\
        try:\n    code = subprocess.run(sys.argv[2:], timeout=float(sys.argv[1])).returncode\n\
        except subprocess.TimeoutExpired:\n    code = 124\n\
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
        sys.exit(code)\n";
    let out = Command::new("python3")
        .args(["-c", MEASURE])
        .arg(limit.as_secs().to_string())
        .arg(env!("CARGO_BIN_EXE_ftps-sync"))
        .args(["sync", "-c"])
        .arg(cfg)
        .output()
        .expect("run python3");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code().unwrap_or(-1);
    assert_ne!(
        code, 124,
        "the pass did not end by itself within {limit:?}: {stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // ru_maxrss is in KiB on Linux; the last line is ours (the pass's report goes first).
    let kib: u64 = stdout
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak in {stdout:?}"));
    (code, stderr, kib * 1024)
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
