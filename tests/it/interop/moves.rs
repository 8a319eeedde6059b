//! Moves (issue 15) on real servers: ProFTPD shows a rename made on it (MLSD `unique`, and its
//! SHA-256 `HASH` for stores from before the ids were kept); vsftpd (LIST only, no hash) cannot,
//! and its refusal says so; a server that refuses renames into another folder gets transfers.

use std::path::Path;

use ftps_sync::Error;
use ftps_sync::config::Config;
use ftps_sync::engine::Report;
use ftps_sync::reconcile::Refusal;

use super::servers::{self, Server};
use crate::support::{pass, put, read, transfers, tree};

/// 30 files in `dir` (some in a subfolder), a few KiB each.
fn fill(root: &Path, dir: &str) {
    for i in 0..30u8 {
        let sub = if i % 4 == 0 { "/sub" } else { "" };
        put(
            root,
            &format!("{dir}{sub}/f{i}.bin"),
            vec![i; 2048 + i as usize * 100],
        );
    }
}

fn rename(root: &Path, from: &str, to: &str) {
    let to = root.join(to);
    std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
    std::fs::rename(root.join(from), to).expect("rename");
}

async fn ok(config: &Config) -> Report {
    pass(config).await.unwrap_or_else(|e| panic!("pass failed: {e}"))
}

/// A synced folder `name` on `server`: its local and remote roots, and its config.
async fn synced(
    server: &Server,
    work: &Path,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf, Config) {
    let local = work.join(name);
    std::fs::create_dir_all(&local).expect("mkdir");
    let remote = server.mkdir(name);
    fill(&local, "docs");
    put(&local, "keep.txt", "keep");
    let config = server.config(&local, &format!("/{name}"), "", crate::moves::MOVES);
    let first = ok(&config).await;
    assert_eq!(
        (first.uploaded, first.failed.len()),
        (31, 0),
        "{} {first:?}",
        server.name
    );
    (local, remote, config)
}

fn settled(server: &Server, local: &Path, remote: &Path) {
    assert_eq!(tree(local), tree(remote), "{}: trees differ", server.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proftpd_renames_made_on_either_side_are_renames_on_the_other() {
    let Some(server) = servers::proftpd() else { return };
    let work = tempfile::tempdir().expect("tmp");
    let (local, remote, config) = synced(&server, work.path(), "both").await;

    // Renamed on the server: the MLSD unique facts show it, one local rename.
    rename(&remote, "docs", "papers");
    let r = ok(&config).await;
    assert_eq!(
        (
            r.moved_local,
            r.moved_remote,
            transfers(&r),
            r.deleted_local,
            r.retries
        ),
        (1, 0, 0, 0, 0),
        "{r:?}"
    );
    assert_eq!(r.bytes_down, 0);
    settled(&server, &local, &remote);

    // Renamed locally, a file moved out of it into a new folder too.
    rename(&local, "papers", "archive");
    rename(&local, "archive/sub/f0.bin", "loose/f0.bin");
    let r = ok(&config).await;
    assert_eq!(
        (r.moved_remote, transfers(&r), r.deleted_remote, r.retries),
        (2, 0, 0, 0),
        "{r:?}"
    );
    assert_eq!(r.bytes_up, 0);
    settled(&server, &local, &remote);
    let again = ok(&config).await;
    assert_eq!(
        (transfers(&again), again.moved_local + again.moved_remote),
        (0, 0),
        "{again:?}"
    );
}

/// Moved on one side, edited in place on the other (the same inode, the same `unique`): the
/// file is renamed and the edit follows it to the new name, both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proftpd_an_edit_follows_a_move_made_on_the_other_side() {
    let Some(server) = servers::proftpd() else { return };
    let work = tempfile::tempdir().expect("tmp");
    let (local, remote, config) = synced(&server, work.path(), "follow").await;

    rename(&local, "docs/f1.bin", "renamed-here.bin");
    std::fs::write(remote.join("docs/f1.bin"), "edited in place on the server").expect("edit");
    rename(&remote, "docs/f2.bin", "renamed-there.bin");
    std::fs::write(local.join("docs/f2.bin"), "edited in place locally").expect("edit");
    let r = ok(&config).await;
    assert_eq!(
        (
            r.moved_remote,
            r.moved_local,
            r.downloaded,
            r.uploaded,
            r.conflicts,
            r.retries
        ),
        (1, 1, 1, 1, 0, 0),
        "{r:?}"
    );
    assert_eq!(
        read(&local, "renamed-here.bin").as_deref(),
        Some(&b"edited in place on the server"[..])
    );
    assert_eq!(
        read(&remote, "renamed-there.bin").as_deref(),
        Some(&b"edited in place locally"[..])
    );
    assert!(read(&local, "docs/f1.bin").is_none() && read(&local, "docs/f2.bin").is_none());
    settled(&server, &local, &remote);
    let again = ok(&config).await;
    assert_eq!(transfers(&again), 0, "{again:?}");
}

/// A store from before ids were kept (schema 3) has no `unique` of its files: a rename on the
/// server is then recognised by size, time and the server's SHA-256.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proftpd_recognises_a_rename_by_its_hash_where_the_base_has_no_ids() {
    let Some(server) = servers::proftpd() else { return };
    let work = tempfile::tempdir().expect("tmp");
    let (local, remote, config) = synced(&server, work.path(), "hash").await;
    let store = config.state_dir.join("f.sqlite3");
    let db = rusqlite::Connection::open(&store).expect("state store");
    let cleared = db
        .execute("UPDATE entries SET remote_id = NULL", [])
        .expect("clear ids");
    assert!(cleared >= 31, "{cleared} rows");
    drop(db);

    rename(&remote, "docs/f1.bin", "f1-renamed.bin");
    rename(&remote, "docs/sub", "sub-moved");
    let r = ok(&config).await;
    assert_eq!(
        (r.moved_local, transfers(&r), r.deleted_local, r.retries),
        (2, 0, 0, 0),
        "{r:?}"
    );
    settled(&server, &local, &remote);
    let hashes = std::fs::read_to_string(server.base.path().join("xfer.log")).unwrap_or_default();
    assert!(
        !hashes.contains("f1-renamed.bin"),
        "nothing was transferred: {hashes}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsftpd_a_local_rename_is_one_rename_and_a_server_rename_is_refused_with_the_reason() {
    let Some(server) = servers::vsftpd(false) else {
        return;
    };
    let work = tempfile::tempdir().expect("tmp");
    let (local, remote, config) = synced(&server, work.path(), "list").await;

    rename(&local, "docs", "papers");
    let r = ok(&config).await;
    assert_eq!(
        (r.moved_remote, transfers(&r), r.deleted_remote, r.retries),
        (1, 0, 0, 0),
        "{r:?}"
    );
    settled(&server, &local, &remote);

    // LIST only, no hash: a rename on the server reads as 30 of 31 files deleted.
    rename(&remote, "papers", "renamed-on-server");
    match pass(&config).await {
        Err(Error::Refused {
            refusal: refusal @ Refusal::MaxDelete { .. },
            ..
        }) => {
            let said = refusal.to_string();
            assert!(
                said.contains("this server cannot show it") && said.contains("--max-delete 30"),
                "{said}"
            );
        }
        other => panic!("expected the refusal, got {other:?}"),
    }
    assert!(read(&local, "papers/f1.bin").is_some(), "nothing deleted");
}

/// A server that refuses renames into another folder: the file is sent under its new name and
/// the old one deleted; a folder moved into another one, file by file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_rename_falls_back_to_transfers() {
    let Some(server) = servers::pyftpdlib("rename-in-place", &[]) else {
        return;
    };
    let work = tempfile::tempdir().expect("tmp");
    let (local, remote, config) = synced(&server, work.path(), "refusing").await;

    // Within its folder: allowed.
    rename(&local, "keep.txt", "kept.txt");
    // Into another folder: refused by the server.
    rename(&local, "docs/f1.bin", "elsewhere/f1.bin");
    rename(&local, "docs/sub", "archive/sub");
    let r = ok(&config).await;
    assert_eq!(r.moved_remote, 1, "only the rename in place: {r:?}");
    assert_eq!((r.uploaded, r.deleted_remote, r.failed.len()), (9, 9, 0), "{r:?}");
    settled(&server, &local, &remote);
    assert!(server.commands().contains("RNTO"), "renames were asked for");
    let again = ok(&config).await;
    assert_eq!(
        (transfers(&again), again.moved_remote, again.dirs_removed),
        (0, 0, 0),
        "{again:?}"
    );
}
