//! The local disk failing under a pass: each fault is that file's error, the pass goes on with
//! the others, nothing half-written appears under a real name, and the base does not move for
//! what failed.

use ftps_sync::Error;
use ftps_sync::config::Config;
use ftps_sync::path::RelPath;
use ftps_sync::reconcile::BaseEntry;
use ftps_sync::state::State;

use crate::support::{Harness, Mounted, part_files, pass, put, read, tree};

/// The state store of the config's first folder.
fn store(config: &Config) -> State {
    State::open(&config.state_dir, &config.folders[0].name).expect("state")
}

/// What the base records at `path`.
fn recorded(state: &State, path: &str) -> Option<BaseEntry> {
    state.get(&RelPath::new(path).expect("path")).expect("read base")
}

/// A full disk (a real 1 MiB tmpfs as the local folder): the download that does not fit fails
/// with an error that names it and says why, the small ones land, no part file or partial file
/// is left, nothing is retried, and the base records nothing for the file that failed, so the
/// next pass tries it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_download_that_does_not_fit_and_the_pass_goes_on() {
    let h = Harness::new().await;
    let Some(_mounted) = Mounted::tmpfs("local faults: a full disk", &h.local, "1m") else {
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
    let state = store(&config);
    assert_eq!(
        recorded(&state, "big.bin"),
        None,
        "the base moved for a failed file"
    );
    assert!(
        state.intents().expect("intents").is_empty(),
        "no intent left open"
    );
}

/// A disk that is not mounted leaves an empty mount point where the files were: the local root
/// is empty while the base holds files in sync, so the pass is refused and nothing is deleted on
/// the server; mounted back, nothing moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmounted_disk_is_an_empty_root_and_deletes_nothing() {
    let h = Harness::new().await;
    for (name, text) in [("a.txt", "a"), ("d/b.txt", "b"), ("d/e/c.txt", "c")] {
        put(&h.local, name, text);
    }
    let config = h.config("");
    let first = pass(&config).await.expect("first pass");
    assert_eq!(first.uploaded, 3, "{first:?}");
    let on_server = tree(&h.remote);
    {
        // What an unmounted disk looks like: its mount point, empty.
        let Some(_empty) = Mounted::tmpfs("local faults: an unmounted disk", &h.local, "1m") else {
            return;
        };
        let refused = pass(&config).await;
        assert!(matches!(refused, Err(Error::Refused { .. })), "{refused:?}");
        assert_eq!(
            tree(&h.remote),
            on_server,
            "the server lost files to an unmounted disk"
        );
    }
    let back = pass(&config).await.expect("the disk back");
    assert_eq!(
        (back.uploaded, back.downloaded, back.deleted_remote),
        (0, 0, 0),
        "{back:?}"
    );
}

/// A file system remounted read-only under a pass (as Linux does on errors): the new download
/// fails with the cause, nothing is deleted or retried, the base does not move for it, and once
/// the disk is writable again the next pass brings it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_remount_fails_the_writes_and_moves_nothing_else() {
    let h = Harness::new().await;
    let Some(mounted) = Mounted::tmpfs("local faults: a read-only remount", &h.local, "4m") else {
        return;
    };
    put(&h.remote, "a.txt", "first");
    let config = h.config("");
    let first = pass(&config).await.expect("first pass");
    assert_eq!(first.downloaded, 1, "{first:?}");
    assert!(mounted.read_only(), "remount read-only");
    put(&h.remote, "b.txt", "second");
    let r = pass(&config).await.expect("the pass runs to its end");
    assert_eq!(
        (r.downloaded, r.deleted_local, r.deleted_remote),
        (0, 0, 0),
        "{r:?}"
    );
    assert_eq!(r.failed.len(), 1, "{r:?}");
    assert!(
        r.failed[0].path == "b.txt" && r.failed[0].reason.to_lowercase().contains("read-only"),
        "{:?}",
        r.failed[0]
    );
    assert_eq!(r.retries, 0, "a read-only disk is no transient fault: {r:?}");
    assert_eq!(read(&h.local, "a.txt").as_deref(), Some(&b"first"[..]));
    assert_eq!(read(&h.remote, "a.txt").as_deref(), Some(&b"first"[..]));
    assert_eq!(
        recorded(&store(&config), "b.txt"),
        None,
        "the base moved for a failed file"
    );
    assert!(mounted.writable(), "remount read-write");
    let after = pass(&config).await.expect("writable again");
    assert_eq!(after.downloaded, 1, "{after:?}");
    assert_eq!(read(&h.local, "b.txt").as_deref(), Some(&b"second"[..]));
}
