//! A damaged state store (docs/design.md, "Durability"): moved aside on SQLite's own verdict, and
//! the base rebuilt the safe way; a store that is only busy is an error, and stays.

use std::path::{Path, PathBuf};
use std::process::Command;

use ftps_sync::state::State;

use crate::support::{Harness, pass, put, read, tree};

fn store_of(h: &Harness) -> PathBuf {
    let config = h.config("");
    State::path(&config.state_dir, &config.folders[0].name)
}

fn set_aside(state_dir: &Path) -> Vec<String> {
    std::fs::read_dir(state_dir)
        .expect("state dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".unreadable-"))
        .collect()
}

/// `sync` run as a user runs it, after the store was damaged: its output, its stderr, and the
/// one store set aside.
fn sync_after_damage(h: &Harness, store: &Path) -> (std::process::Output, String, Vec<String>) {
    let out = Command::new(env!("CARGO_BIN_EXE_ftps-sync"))
        .args(["sync", "-c", &h.config_path().display().to_string()])
        .current_dir(h.dir.path())
        .output()
        .expect("run the binary");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let aside = set_aside(store.parent().expect("state dir"));
    assert_eq!(aside.len(), 1, "{aside:?} {stderr}");
    (out, stderr, aside)
}

/// Files in sync, then the store's first page overwritten (a torn write): the next `sync` moves
/// the store aside and says so, naming both files; it adopts what is equal, keeps both versions
/// of what differs, brings back a file deleted on one side (the base that said so is gone), and
/// deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_is_moved_aside_and_the_next_pass_deletes_nothing() {
    let h = Harness::new().await;
    for name in ["same.txt", "edited.txt", "deleted.txt"] {
        put(&h.local, name, format!("{name} as synced"));
    }
    let config = h.config("");
    pass(&config).await.expect("the first pass");
    put(&h.remote, "edited.txt", "edited on the server");
    std::fs::remove_file(h.remote.join("deleted.txt")).expect("deleted on the server");
    let store = store_of(&h);
    let mut bytes = std::fs::read(&store).expect("the store");
    bytes[..100].fill(b'x');
    std::fs::write(&store, bytes).expect("tear the store");

    let (out, stderr, aside) = sync_after_damage(&h, &store);
    assert!(
        stderr.contains(&store.display().to_string()) && stderr.contains(&aside[0]),
        "the message names both files: {stderr}"
    );
    // Both versions of the edited file kept: a conflict, which exits 1.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        read(&h.local, "deleted.txt").as_deref(),
        Some(&b"deleted.txt as synced"[..])
    );
    assert_eq!(
        read(&h.remote, "deleted.txt").as_deref(),
        Some(&b"deleted.txt as synced"[..])
    );
    // Which version keeps the name is the conflict policy's; both are kept.
    let mut kept: Vec<Vec<u8>> = tree(&h.local)
        .into_iter()
        .filter(|(k, _)| k == "edited.txt" || k.contains(".conflict-"))
        .map(|(_, v)| v)
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        vec![b"edited on the server".to_vec(), b"edited.txt as synced".to_vec()]
    );
    assert_eq!(tree(&h.local), tree(&h.remote));
    let again = pass(&config).await.expect("the pass after");
    assert_eq!(
        (
            again.uploaded,
            again.downloaded,
            again.conflicts,
            set_aside(store.parent().expect("dir")).len()
        ),
        (0, 0, 0, 1),
        "{again:?}"
    );
}

/// A store another process holds locked is busy, not damaged: the pass fails saying so, and the
/// store is neither moved nor rewritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_store_is_an_error_and_stays() {
    let h = Harness::new().await;
    put(&h.local, "a.txt", "a");
    let config = h.config("");
    pass(&config).await.expect("the first pass");
    let store = store_of(&h);
    let holder = rusqlite::Connection::open(&store).expect("open");
    // Exclusive locking mode: in WAL mode a plain exclusive transaction still lets readers in.
    holder
        .execute_batch("PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE; DELETE FROM intents;")
        .expect("lock");
    put(&h.local, "b.txt", "b");
    let err = pass(&config).await.expect_err("the store is locked");
    assert!(err.to_string().contains("locked"), "{err}");
    assert!(set_aside(store.parent().expect("dir")).is_empty());
    holder.execute_batch("ROLLBACK").expect("unlock");
    drop(holder);
    let r = pass(&config).await.expect("the pass after");
    assert_eq!((r.uploaded, r.conflicts), (1, 0), "{r:?}");
}

/// Files in sync; then a store left open (its log not empty, as after a kill or a power cut)
/// with a torn page that reading the base does not touch (the index of the paths): SQLite's
/// `quick_check` finds it, and the next `sync` moves the store aside as for any damage, rebuilds
/// the base by content, and deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_page_behind_a_log_left_open_is_found_by_quick_check() {
    let h = Harness::new().await;
    for i in 0..60 {
        put(&h.local, &format!("f{i:02}.txt"), format!("file {i}"));
    }
    let config = h.config("");
    pass(&config).await.expect("the first pass");
    let store = store_of(&h);
    let left_open = rusqlite::Connection::open(&store).expect("open");
    let (root, page): (i64, i64) = left_open
        .query_row(
            "SELECT rootpage, (SELECT page_size FROM pragma_page_size) FROM sqlite_master \
             WHERE name = 'sqlite_autoindex_entries_1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the index of the paths");
    left_open
        .execute_batch(
            "PRAGMA wal_autocheckpoint=0; CREATE TABLE left_open (x); INSERT INTO left_open VALUES (1);",
        )
        .expect("a commit in the log");
    // Not closed: a close would checkpoint the log into the store and empty it.
    std::mem::forget(left_open);
    let mut bytes = std::fs::read(&store).expect("the store");
    let at = ((root - 1) * page) as usize;
    bytes[at..at + page as usize].fill(0xA5);
    std::fs::write(&store, bytes).expect("tear a page");

    let (out, stderr, _) = sync_after_damage(&h, &store);
    assert!(stderr.contains("quick_check"), "found by quick_check: {stderr}");
    assert_eq!(out.status.code(), Some(0), "all equal, all adopted: {stderr}");
    assert_eq!(tree(&h.local).len(), 60);
    assert_eq!(tree(&h.local), tree(&h.remote));
    let again = pass(&config).await.expect("the pass after");
    assert_eq!(
        (again.uploaded, again.downloaded, again.conflicts),
        (0, 0, 0),
        "{again:?}"
    );
}
