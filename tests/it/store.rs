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

    let out = Command::new(env!("CARGO_BIN_EXE_ftps-sync"))
        .args(["sync", "-c", &h.config_path().display().to_string()])
        .current_dir(h.dir.path())
        .output()
        .expect("run the binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let aside = set_aside(store.parent().expect("state dir"));
    assert_eq!(aside.len(), 1, "{aside:?} {stderr}");
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
