//! A pass killed (SIGABRT, as `kill -9`: no cleanup, no state write) at a named point of a
//! transfer, then the next pass: the sync's own writes are never taken for the user's
//! (docs/design.md, invariant 2). Needs a binary built with `--features failpoints`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{Harness, assert_holds, put, read, tree};

/// `sync` in `dir`, killed at `failpoint` (if any) by the binary itself.
async fn sync(h: &Harness, failpoint: Option<&str>) -> Output {
    let cfg = h.config_path().display().to_string();
    let dir = h.dir.path().to_owned();
    let failpoint = failpoint.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftps-sync"));
        cmd.args(["sync", "-c", &cfg]).current_dir(&dir);
        match failpoint {
            Some(f) => cmd.env("FTPS_SYNC_FAILPOINT", f),
            None => cmd.env_remove("FTPS_SYNC_FAILPOINT"),
        };
        cmd.output().expect("run the binary")
    })
    .await
    .expect("join")
}

fn killed(out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("failpoint"),
        "the pass was not killed at its failpoint: {stderr}"
    );
}

fn exit_0(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deletes the folder `dir` and makes it again on the inode it had, as a file system often
/// does on its own; folders are made beside it until one gets the inode.
#[cfg(unix)]
fn made_again_on_its_inode(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &Path| std::fs::symlink_metadata(p).expect("stat the folder").ino();
    let old = ino(dir);
    std::fs::remove_dir_all(dir).expect("delete the folder");
    let parent = dir.parent().expect("a parent");
    let tries: Vec<std::path::PathBuf> = (0..2000).map(|i| parent.join(format!("try{i}"))).collect();
    let mut made = Vec::new();
    for t in &tries {
        std::fs::create_dir(t).expect("make a folder");
        made.push(t);
        if ino(t) == old {
            break;
        }
    }
    let last = made.last().expect("one folder made");
    assert_eq!(ino(last), old, "no folder made got the inode back");
    std::fs::rename(last, dir).expect("name the folder");
    for t in &made[..made.len() - 1] {
        std::fs::remove_dir(t).expect("remove a folder");
    }
}

fn conflict_copies(root: &Path) -> Vec<String> {
    tree(root)
        .into_keys()
        .filter(|k| k.contains(".conflict-"))
        .collect()
}

/// Killed after a download reached its real name, before it was recorded; the user then deletes
/// the file. The deletion must reach the server, not be undone by a second download.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_killed_after_its_rename_is_not_downloaded_again_over_a_deletion() {
    let h = Harness::new().await;
    // Files in sync first, so that one deletion is no mass deletion.
    for i in 0..4 {
        put(&h.local, &format!("keep{i}.txt"), "in sync");
    }
    h.config("");
    exit_0(&sync(&h, None).await);
    put(&h.remote, "news.txt", "from the server");
    killed(&sync(&h, Some("download.renamed")).await);
    assert_holds(&h.local, "news.txt", b"from the server");

    std::fs::remove_file(h.local.join("news.txt")).expect("the user deletes it");
    exit_0(&sync(&h, None).await);
    assert!(read(&h.local, "news.txt").is_none(), "the deletion was undone");
    assert!(
        read(&h.remote, "news.txt").is_none(),
        "the deletion did not reach the server"
    );
    assert_eq!(tree(&h.local), tree(&h.remote));
}

/// Killed after an upload reached its real name on the server, before it was recorded; the
/// user then edits the file. The edit is an edit, not a conflict with the sync's own upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_killed_after_its_rename_makes_no_false_conflict_with_the_next_edit() {
    let h = Harness::new().await;
    put(&h.local, "doc.txt", "first version");
    h.config("");
    killed(&sync(&h, Some("upload.renamed")).await);
    assert_holds(&h.remote, "doc.txt", b"first version");

    put(&h.local, "doc.txt", "the user's second version, longer");
    exit_0(&sync(&h, None).await);
    assert_holds(&h.remote, "doc.txt", b"the user's second version, longer");
    assert!(conflict_copies(&h.local).is_empty() && conflict_copies(&h.remote).is_empty());
    assert_eq!(tree(&h.local), tree(&h.remote));
}

/// Killed after a download reached its real name; the server's copy is then edited. The edit
/// comes down as an edit: no conflict copy holding the sync's own download. Also where the file
/// system keeps no creation time, so that the intent holds no folder identity: the file at the
/// real name is the download itself (its inode, size and time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_killed_after_its_rename_takes_the_next_server_edit_as_an_edit() {
    for no_creation_time in [false, true] {
        let h = Harness::new().await;
        put(&h.remote, "plan.txt", "v1");
        let config = h.config("");
        killed(&sync(&h, Some("download.renamed")).await);
        assert_holds(&h.local, "plan.txt", b"v1");
        if no_creation_time {
            let store = ftps_sync::state::State::path(&config.state_dir, &config.folders[0].name);
            let db = rusqlite::Connection::open(store).expect("the store");
            let n = db
                .execute("UPDATE intents SET folder = NULL", [])
                .expect("no folder identity");
            assert_eq!(n, 1, "the download's intent is open");
        }

        put(&h.remote, "plan.txt", "v2 from the server, longer");
        exit_0(&sync(&h, None).await);
        assert_holds(&h.local, "plan.txt", b"v2 from the server, longer");
        assert!(
            conflict_copies(&h.local).is_empty() && conflict_copies(&h.remote).is_empty(),
            "no creation time: {no_creation_time}"
        );
    }
}

/// Killed after the intent was journaled but before the rename: nothing under the real name,
/// and the next pass simply does the transfer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_killed_before_its_rename_is_done_again_by_the_next_pass() {
    for point in ["download.intended", "upload.intended"] {
        let h = Harness::new().await;
        put(&h.remote, "down.txt", "down");
        put(&h.local, "up.txt", "up");
        h.config("");
        killed(&sync(&h, Some(point)).await);
        exit_0(&sync(&h, None).await);
        assert_holds(&h.local, "down.txt", b"down");
        assert_holds(&h.remote, "up.txt", b"up");
        assert!(conflict_copies(&h.local).is_empty(), "{point}");
        assert!(crate::support::part_files(&h.local).is_empty(), "{point}");
        assert!(crate::support::part_files(&h.remote).is_empty(), "{point}");
        // And a further pass moves nothing.
        let again = sync(&h, None).await;
        exit_0(&again);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&again.stdout),
            String::from_utf8_lossy(&again.stderr)
        );
        assert!(
            said.contains(": 0 uploaded, 0 downloaded, 0 deleted (0 local, 0 remote), 0 conflicts"),
            "{point}: {said}"
        );
    }
}

/// Files in sync (so that no deletion is a mass one), then `d/doc.txt` made on one side only
/// (the server's with `from_server`) and a pass killed at `point` with its part file on the
/// other: (the side with the only copy, the side with the part file).
async fn only_copy_killed_at(h: &Harness, point: &str, from_server: bool) -> (PathBuf, PathBuf) {
    for i in 0..4 {
        put(&h.local, &format!("keep{i}.txt"), "in sync");
    }
    h.config("");
    exit_0(&sync(h, None).await);
    let (source, target) = if from_server {
        (h.remote.clone(), h.local.clone())
    } else {
        (h.local.clone(), h.remote.clone())
    };
    put(&source, "d/doc.txt", "the only copy");
    killed(&sync(h, Some(point)).await);
    (source, target)
}

/// Found by the simulation (seed 1520): a transfer killed before its rename, then the user
/// moves the folder holding its part file and makes a folder of the same name again. The part
/// file is gone from its place and the real name is empty, as after a rename and a deletion;
/// taken for that, the next pass deleted the only copy on the other side. On both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_moved_with_a_part_file_in_it_and_made_again_loses_nothing() {
    // (failpoint, whether the only copy starts on the server)
    for (point, from_server) in [("download.intended", true), ("upload.intended", false)] {
        let h = Harness::new().await;
        let (source, target) = only_copy_killed_at(&h, point, from_server).await;
        let (source, target) = (source.as_path(), target.as_path());
        // The user, on the side the part file is on, moves its folder and makes `d` again.
        std::fs::rename(target.join("d"), target.join("x")).expect("move the folder");
        put(target, "d/other.txt", "new");
        exit_0(&sync(&h, None).await);
        assert_holds(source, "d/doc.txt", b"the only copy");
        assert_holds(target, "d/doc.txt", b"the only copy");
        assert_eq!(
            tree(&h.local)
                .into_keys()
                .filter(|k| !k.contains(".ftps-sync.part"))
                .collect::<Vec<_>>(),
            tree(&h.remote)
                .into_keys()
                .filter(|k| !k.contains(".ftps-sync.part"))
                .collect::<Vec<_>>(),
            "{point}"
        );
    }
}

/// Found by the simulation (service loop, seed 11074453601939223281): as above, but the user
/// writes a new file at the real name in the folder made again. That file is the user's, not
/// the transfer's rename: taken for the transferred version edited, it went over the server's
/// only copy. Both versions are kept, on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_moved_with_a_part_file_in_it_and_a_new_file_at_its_name_keeps_both() {
    for (point, from_server) in [("download.intended", true), ("upload.intended", false)] {
        let h = Harness::new().await;
        let (_, target) = only_copy_killed_at(&h, point, from_server).await;
        std::fs::rename(target.join("d"), target.join("x")).expect("move the folder");
        put(&target, "d/doc.txt", "the user's new file");
        let out = sync(&h, None).await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "{point}: a conflict is left for the user"
        );
        for side in [&h.local, &h.remote] {
            let mut versions: Vec<Vec<u8>> = tree(side)
                .into_iter()
                .filter(|(k, _)| k.starts_with("d/doc"))
                .map(|(_, v)| v)
                .collect();
            versions.sort();
            assert_eq!(
                versions,
                [b"the only copy".to_vec(), b"the user's new file".to_vec()],
                "{point}: {:?}",
                tree(side).keys().collect::<Vec<_>>()
            );
        }
    }
}

/// A download killed before its rename, then the user deletes the folder holding its part file
/// and makes it again (a file system hands the new folder the freed inode at once, so it looks
/// like the same folder). The part file is gone and the real name empty, as after a rename and
/// a deletion; taken for that, the next pass deleted the server's only copy.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_deleted_with_a_part_file_in_it_and_made_again_loses_nothing() {
    let h = Harness::new().await;
    only_copy_killed_at(&h, "download.intended", true).await;
    made_again_on_its_inode(&h.local.join("d"));
    put(&h.local, "d/other.txt", "new");
    exit_0(&sync(&h, None).await);
    assert_holds(&h.remote, "d/doc.txt", b"the only copy");
    assert_holds(&h.local, "d/doc.txt", b"the only copy");
}

/// A folder renamed locally; the pass killed after the rename's intent (before or after the
/// rename on the server); the user then edits a file in it. The next pass finishes the move
/// without sending the folder again, and the edit is an edit: no conflict, no file lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_killed_around_its_rename_is_finished_by_the_next_pass() {
    for point in ["move.intended", "move.renamed"] {
        let h = Harness::new().await;
        for i in 0..6 {
            put(&h.local, &format!("docs/f{i}.txt"), format!("file {i}"));
        }
        put(&h.local, "keep.txt", "keep");
        h.config(crate::moves::MOVES);
        exit_0(&sync(&h, None).await);
        std::fs::rename(h.local.join("docs"), h.local.join("papers")).expect("rename");
        killed(&sync(&h, Some(point)).await);
        let renamed = h.remote.join("papers").exists();
        assert_eq!(renamed, point == "move.renamed", "{point}: the server's folder");

        put(&h.local, "papers/f1.txt", "edited after the kill");
        let out = sync(&h, None).await;
        exit_0(&out);
        let said = String::from_utf8_lossy(&out.stdout);
        // Only the edit crosses; the rest moved (or had moved) with the folder.
        assert!(said.contains(" 1 uploaded, 0 downloaded"), "{point}: {said}");
        assert_holds(&h.remote, "papers/f1.txt", b"edited after the kill");
        assert!(conflict_copies(&h.local).is_empty(), "{point}: a false conflict");
        assert!(!h.remote.join("docs").exists(), "{point}: the old folder stayed");
        assert_eq!(tree(&h.local), tree(&h.remote), "{point}");
    }
}

/// A local rename killed after its intent, before the server's rename, and the user renaming
/// the file again: the next pass takes the file where the user put it last, and nothing is
/// lost. (A move made locally by the sync needs a server that shows renames: ProFTPD, in
/// `interop::moves`; the in-process server shows none.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_killed_before_its_rename_and_moved_again_loses_nothing() {
    let h = Harness::new().await;
    for i in 0..4 {
        put(&h.local, &format!("f{i}.txt"), format!("file {i}"));
    }
    h.config(crate::moves::MOVES);
    exit_0(&sync(&h, None).await);
    std::fs::rename(h.local.join("f0.txt"), h.local.join("first.txt")).expect("rename");
    killed(&sync(&h, Some("move.intended")).await);
    std::fs::rename(h.local.join("first.txt"), h.local.join("second.txt")).expect("rename again");
    exit_0(&sync(&h, None).await);
    assert_holds(&h.remote, "second.txt", b"file 0");
    assert!(read(&h.remote, "f0.txt").is_none() && read(&h.remote, "first.txt").is_none());
    assert_eq!(tree(&h.local), tree(&h.remote));
}

/// A segmented upload (vsftpd, with `lock_upload_files=NO`, takes ranges at once) killed after its head
/// and after all its ranges, before the read-back and the rename: its part file, with holes or
/// whole, never appears under the real name, and the next pass sends the file again and
/// publishes it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segmented_upload_killed_between_its_ranges_is_done_again_whole() {
    let Some(server) = crate::interop::servers::vsftpd_with(false, "lock_upload_files=NO\n") else {
        return;
    };
    let bytes: Vec<u8> = (0..(6u32 << 20) + 777)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    for point in ["upload.head", "upload.ranges"] {
        let work = tempfile::tempdir().expect("tmp");
        let name = format!("seg-{}", point.replace('.', "-"));
        // Its own state too: the server's config names the state after the local folder.
        let local = work.path().join(&name);
        put(&local, "big.bin", &bytes);
        let remote = server.mkdir(&name);
        let cfg = server
            .config_yaml(&local, &format!("/{name}"))
            .server("  segment_from: 1MiB\n")
            .top("verify: download\n")
            .write(&work.path().join("c.yaml"));
        let run = |failpoint: Option<&str>| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftps-sync"));
            cmd.args(["sync", "-c", &cfg]).current_dir(work.path());
            match failpoint {
                Some(f) => cmd.env("FTPS_SYNC_FAILPOINT", f),
                None => cmd.env_remove("FTPS_SYNC_FAILPOINT"),
            };
            cmd.output().expect("run the binary")
        };
        killed(&run(Some(point)));
        assert!(
            read(&remote, "big.bin").is_none(),
            "{point}: published before its check"
        );
        exit_0(&run(None));
        assert_holds(&remote, "big.bin", &bytes);
        assert!(crate::support::part_files(&remote).is_empty(), "{point}");
        let again = run(None);
        exit_0(&again);
        let said = String::from_utf8_lossy(&again.stdout);
        assert!(said.contains(": 0 uploaded, 0 downloaded"), "{point}: {said}");
    }
}
