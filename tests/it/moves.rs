//! Moves (issue 15) against the in-process server: a folder renamed locally is one rename on
//! the server, a file's edit on the other side follows its move, the dry run and `--json` name
//! moves as moves. (The in-process server has no MLSD `unique` and no hash: a rename made on
//! it cannot be recognised, and is a download and a deletion. ProFTPD, which can, is in
//! `interop::moves`.)

use std::path::Path;

use crate::service::{eventually, spawn, terminate, wait_exit};
use crate::support::{Harness, assert_holds, pass, put, read, transfers, tree};

/// Move detection, said explicitly (it is the default).
pub const MOVES: &str = "    detect_moves: true\n";

fn rename(root: &Path, from: &str, to: &str) {
    let to = root.join(to);
    std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
    std::fs::rename(root.join(from), to).expect("rename");
}

/// 40 files of 1 KiB to 40 KiB in a folder with a subfolder.
fn fill(root: &Path, dir: &str) -> u64 {
    let mut bytes = 0;
    for i in 0..40u8 {
        let sub = if i % 3 == 0 { "/sub" } else { "" };
        let content = vec![i; 1024 * (1 + i as usize)];
        bytes += content.len() as u64;
        put(root, &format!("{dir}{sub}/f{i}.bin"), content);
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_renamed_locally_is_one_rename_on_the_server_and_sends_nothing_else() {
    let h = Harness::new().await;
    let bytes = fill(&h.local, "docs");
    put(&h.local, "other.txt", "other");
    let config = h.config(MOVES);
    let first = pass(&config).await.expect("first pass");
    assert_eq!(first.uploaded, 41, "{first:?}");

    // The only big folder renamed, and a file added to it since: without move detection the
    // guard would refuse this pass (40 of 41 files deleted on the server).
    rename(&h.local, "docs", "papers");
    put(&h.local, "papers/new.txt", "new since the rename");
    let r = pass(&config).await.expect("pass after the rename");
    assert_eq!(
        (
            r.moved_remote,
            r.uploaded,
            r.downloaded,
            r.deleted_remote,
            r.deleted_local
        ),
        (1, 1, 0, 0, 0),
        "{r:?}"
    );
    assert_eq!(r.bytes_up, "new since the rename".len() as u64, "{r:?}");
    assert_eq!((r.retries, r.failed.len()), (0, 0), "{r:?}");
    let moved = &r.paths.moved_remote;
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!((moved[0].from.as_str(), moved[0].to.as_str()), ("docs", "papers"));
    assert!(read(&h.remote, "docs/f1.bin").is_none());
    assert_eq!(tree(&h.local), tree(&h.remote));
    assert!(bytes > 500_000, "the folder holds {bytes} bytes");

    let again = pass(&config).await.expect("a further pass");
    assert_eq!(
        (transfers(&again), again.moved_remote, again.moved_local),
        (0, 0, 0),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_moved_between_folders_locally_are_renamed_one_by_one() {
    let h = Harness::new().await;
    put(&h.local, "inbox/a.txt", "alpha");
    put(&h.local, "inbox/b.txt", "bravo");
    put(&h.local, "inbox/c.txt", "charlie");
    let config = h.config(MOVES);
    pass(&config).await.expect("first pass");
    rename(&h.local, "inbox/a.txt", "2026/a.txt");
    rename(&h.local, "inbox/b.txt", "2026/q4/renamed.txt");
    let r = pass(&config).await.expect("pass");
    assert_eq!(
        (r.moved_remote, transfers(&r), r.deleted_remote),
        (2, 0, 0),
        "{r:?}"
    );
    assert_holds(&h.remote, "2026/q4/renamed.txt", b"bravo");
    assert_eq!(tree(&h.local), tree(&h.remote));
    let again = pass(&config).await.expect("a further pass");
    assert_eq!((transfers(&again), again.moved_remote), (0, 0), "{again:?}");
}

/// Moved locally while the old name changed on a server that cannot show whether that is an
/// edit of the same file or a new one (no `unique`): both are kept under their own names. (On
/// ProFTPD the edit follows the move: `interop::moves`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_change_at_a_moved_name_is_kept_beside_it_where_ids_cannot_tell() {
    let h = Harness::new().await;
    put(&h.local, "a.txt", "the first version");
    put(&h.local, "keep.txt", "keep");
    let config = h.config(MOVES);
    pass(&config).await.expect("first pass");
    rename(&h.local, "a.txt", "b.txt");
    put(&h.remote, "a.txt", "edited on the server, longer");
    let r = pass(&config).await.expect("pass");
    assert_eq!((r.moved_remote, r.downloaded, r.uploaded), (0, 1, 1), "{r:?}");
    assert_holds(&h.local, "a.txt", b"edited on the server, longer");
    assert_holds(&h.remote, "b.txt", b"the first version");
    assert_eq!(tree(&h.local), tree(&h.remote));
    let again = pass(&config).await.expect("a further pass");
    assert_eq!(transfers(&again), 0, "{again:?}");
}

/// Two new files hold the content of one vanished file: which is the move cannot be told, so
/// both are sent and the old name deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_and_a_move_of_one_file_are_two_uploads() {
    let h = Harness::new().await;
    put(&h.local, "a.txt", "twice");
    for i in 0..3 {
        put(&h.local, &format!("other{i}.txt"), format!("{i}"));
    }
    let config = h.config(MOVES);
    pass(&config).await.expect("first pass");
    std::fs::copy(h.local.join("a.txt"), h.local.join("copy.txt")).expect("copy");
    rename(&h.local, "a.txt", "moved.txt");
    let r = pass(&config).await.expect("pass");
    assert_eq!((r.moved_remote, r.uploaded, r.deleted_remote), (0, 2, 1), "{r:?}");
    assert_eq!(tree(&h.local), tree(&h.remote));
}

/// A rename made on a server that shows neither `unique` facts nor a hash cannot be told from
/// a deletion and a new file: it is one (nothing is lost either way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_on_a_server_that_cannot_show_it_is_a_download_and_a_deletion() {
    let h = Harness::new().await;
    for i in 0..4 {
        put(&h.local, &format!("f{i}.txt"), format!("file {i}"));
    }
    let config = h.config(MOVES);
    pass(&config).await.expect("first pass");
    rename(&h.remote, "f0.txt", "renamed.txt");
    let r = pass(&config).await.expect("pass");
    assert_eq!((r.moved_local, r.downloaded, r.deleted_local), (0, 1, 1), "{r:?}");
    assert_eq!(tree(&h.local), tree(&h.remote));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_and_json_name_moves_as_moves() {
    let h = Harness::new().await;
    put(&h.local, "docs/a.txt", "a");
    put(&h.local, "docs/b.txt", "b");
    let config = h.config(MOVES);
    pass(&config).await.expect("first pass");
    rename(&h.local, "docs", "papers");
    let cfg = h.config_path().display().to_string();
    let dir = h.dir.path().to_owned();
    let run =
        |args: &[&str]| crate::cli::run_async(args.iter().map(|a| (*a).to_owned()).collect(), dir.clone());

    let out = run(&["-c", &cfg, "sync", "-n"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("move    remote  docs -> papers"), "{stdout}");
    assert!(
        stdout.contains("in all: move 0 locally and 1 on the server, upload 0 (0 B)"),
        "{stdout}"
    );

    let out = run(&["-c", &cfg, "sync", "-n", "--json"]).await;
    let plans: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let actions = &plans[0]["plan"]["actions"];
    assert_eq!(
        actions,
        &serde_json::json!([{"action": "move-remote", "from": "docs", "path": "papers"}]),
        "{plans}"
    );
    assert_eq!(plans[0]["totals"]["move_remote"], 1, "{plans}");

    let out = run(&["-c", &cfg, "sync", "--json"]).await;
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(reports[0]["moved_remote"], 1, "{reports}");
    assert_eq!(
        reports[0]["paths"]["moved_remote"],
        serde_json::json!([{"from": "docs", "to": "papers"}]),
        "{reports}"
    );
    assert_eq!(tree(&h.local), tree(&h.remote));
}

/// `run`: the watcher reports a rename as the old and the new path; the pass over them sees
/// both ends and renames the folder on the server, sending nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_sees_a_rename_through_the_watcher_and_renames_on_the_server() {
    let h = Harness::new().await;
    fill(&h.local, "inbox/docs");
    put(&h.local, "other/keep.txt", "keep");
    let cfg = h
        .config_yaml()
        .ca_file("pki/ca.pem")
        .folder(MOVES)
        .top("poll_interval: 1h\ndebounce: 200ms\n")
        .write(&h.config_path());
    let mut child = spawn(&["run", "-c", &cfg], h.dir.path());
    eventually(20, "the first pass", || {
        read(&h.remote, "other/keep.txt").is_some()
    })
    .await;
    rename(&h.local, "inbox/docs", "archive/2026/docs");
    eventually(20, "the rename reaches the server", || {
        read(&h.remote, "archive/2026/docs/f1.bin").is_some() && !h.remote.join("inbox/docs").exists()
    })
    .await;
    terminate(&child);
    wait_exit(&mut child, 15).await;
    let text = std::fs::read_to_string(h.dir.path().join("run.log")).unwrap_or_default();
    assert!(text.contains("moved on the server"), "{text}");
    let sent_again = text
        .lines()
        .filter(|l| l.contains("uploaded") && l.contains("archive/2026/docs"))
        .count();
    assert_eq!(
        sent_again, 0,
        "files of the renamed folder were sent again:\n{text}"
    );
    assert_eq!(tree(&h.local), tree(&h.remote));
}
