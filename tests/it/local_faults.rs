//! The local disk failing under a pass: each fault is that file's error, the pass goes on with
//! the others, nothing half-written appears under a real name, and the base does not move for
//! what failed.

use std::path::{Path, PathBuf};
use std::process::Command;

use ftps_sync::path::RelPath;
use ftps_sync::state::State;

use crate::interop::is_root;
use crate::support::{Harness, part_files, pass, put, read, skip};

/// A small tmpfs mounted over a folder, unmounted when dropped.
struct Mounted(PathBuf);

impl Mounted {
    fn tmpfs(at: &Path, size: &str) -> Option<Mounted> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mounted(at.to_path_buf()))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A full disk (a real 1 MiB tmpfs as the local folder): the download that does not fit fails
/// with an error that names it and says why, the small ones land, no part file or partial file
/// is left, nothing is retried, and the base records nothing for the file that failed, so the
/// next pass tries it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_download_that_does_not_fit_and_the_pass_goes_on() {
    if !is_root() {
        skip("local faults: a full disk", "mounting a small tmpfs needs root");
        return;
    }
    let h = Harness::new().await;
    let Some(_mounted) = Mounted::tmpfs(&h.local, "1m") else {
        skip("local faults: a full disk", "mount -t tmpfs failed");
        return;
    };
    put(&h.remote, "a.txt", "small a");
    put(&h.remote, "b.txt", "small b");
    put(&h.remote, "big.bin", vec![7u8; 3 << 20]);
    // One connection: the transfers go in the plan's order (a.txt, b.txt, big.bin), so the
    // small ones never meet a disk the big one has filled for a moment (over several
    // connections they may, and fail for this pass; the next pass brings them).
    let config = h
        .config_yaml()
        .ca_file("pki/ca.pem")
        .server("  connections: 1\n")
        .load(&h.config_path());
    let r = pass(&config).await.expect("the pass runs to its end");
    assert_eq!(r.downloaded, 2, "{r:?}");
    assert_eq!(r.failed.len(), 1, "{r:?}");
    let failed = &r.failed[0];
    assert_eq!(failed.path, "big.bin", "{failed:?}");
    assert!(
        failed.reason.contains("big.bin") && failed.reason.to_lowercase().contains("no space"),
        "the error says which file and why: {failed:?}"
    );
    assert_eq!(r.retries, 0, "a full disk is no transient fault: {r:?}");
    assert_eq!(read(&h.local, "a.txt").as_deref(), Some(&b"small a"[..]));
    assert_eq!(read(&h.local, "b.txt").as_deref(), Some(&b"small b"[..]));
    assert!(
        read(&h.local, "big.bin").is_none(),
        "nothing partial under the real name"
    );
    assert!(part_files(&h.local).is_empty(), "{:?}", part_files(&h.local));
    let state = State::open(&config.state_dir, &config.folders[0].name).expect("state");
    let big = RelPath::new("big.bin").expect("path");
    assert_eq!(
        state.get(&big).expect("read base"),
        None,
        "the base moved for a failed file"
    );
    assert!(
        state.intents().expect("intents").is_empty(),
        "no intent left open"
    );
}
