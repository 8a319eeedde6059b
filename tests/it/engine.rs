//! The real engine against a real FTPS server.

use std::time::Duration;

use ftps_sync::Error;
use ftps_sync::engine::{Options, Scope};
use ftps_sync::path::RelPath;
use tokio_util::sync::CancellationToken;

use crate::support::{
    Harness, assert_holds, part_files, pass, pass_with, prepare_on, put, read, transfers, tree,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_way_nested_sync_then_a_rerun_transfers_nothing() {
    let h = Harness::new().await;
    put(&h.local, "a.txt", "local a");
    put(&h.local, "d1/d2/d3/deep.txt", "deep local");
    put(&h.local, "space dir/ü ñ.txt", "utf-8 name");
    put(&h.local, "empty.bin", "");
    put(&h.remote, "r.txt", "remote r");
    put(&h.remote, "rd/x/y.txt", "remote nested");
    let config = h.config("");
    let first = pass(&config).await.expect("first pass");
    assert_eq!((first.uploaded, first.downloaded), (4, 2), "{first:?}");
    assert_eq!(tree(&h.local), tree(&h.remote));
    assert_holds(&h.remote, "space dir/ü ñ.txt", b"utf-8 name");
    assert_holds(&h.local, "rd/x/y.txt", b"remote nested");

    let second = pass(&config).await.expect("second pass");
    assert_eq!(transfers(&second), 0, "{second:?}");
    assert!(!second.unresolved());
}

/// A server may hold a file named like our part-file suffix alone: it is nobody's part file,
/// and is synced as a file (it made the listing panic once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_named_like_the_part_suffix_alone_is_an_ordinary_file() {
    let h = Harness::new().await;
    put(&h.remote, ftps_sync::local::PART_SUFFIX, "not a part file");
    let config = h.config("");
    let r = pass(&config).await.expect("pass");
    assert_eq!(r.downloaded, 1, "{r:?}");
    assert_holds(&h.local, ftps_sync::local::PART_SUFFIX, b"not a part file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_only_never_touches_local_or_remote_only_files() {
    let h = Harness::new().await;
    put(&h.local, "up.txt", "1");
    put(&h.remote, "theirs.txt", "kept on the server");
    let config = h.config("    direction: upload\n");
    let r = pass(&config).await.expect("pass");
    assert_eq!((r.uploaded, r.downloaded), (1, 0));
    assert_holds(&h.remote, "up.txt", b"1");
    assert!(read(&h.local, "theirs.txt").is_none());
    assert!(read(&h.remote, "theirs.txt").is_some());
    // A local edit goes up; a local delete is propagated.
    put(&h.local, "up.txt", "22");
    put(&h.local, "second.txt", "2");
    let r = pass(&config).await.expect("pass");
    assert_eq!(r.uploaded, 2);
    assert_holds(&h.remote, "up.txt", b"22");
    std::fs::remove_file(h.local.join("second.txt")).expect("rm");
    let r = pass(&config).await.expect("pass");
    assert_eq!(r.deleted_remote, 1);
    assert!(read(&h.remote, "second.txt").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_only_mirrors_the_server() {
    let h = Harness::new().await;
    put(&h.remote, "a/b.txt", "from server");
    put(&h.local, "mine.txt", "local only");
    let config = h.config("    direction: download\n");
    let r = pass(&config).await.expect("pass");
    assert_eq!((r.uploaded, r.downloaded), (0, 1));
    assert_holds(&h.local, "a/b.txt", b"from server");
    assert!(read(&h.remote, "mine.txt").is_none());
    put(&h.remote, "a/b.txt", "changed on the server");
    let r = pass(&config).await.expect("pass");
    assert_eq!(r.downloaded, 1);
    assert_holds(&h.local, "a/b.txt", b"changed on the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_on_both_sides_keep_both_contents() {
    let h = Harness::new().await;
    put(&h.local, "doc.txt", "original");
    let config = h.config("");
    pass(&config).await.expect("first pass");
    put(&h.local, "doc.txt", "local edit, longer");
    put(&h.remote, "doc.txt", "remote edit");
    let r = pass(&config).await.expect("conflict pass");
    assert_eq!(r.conflicts, 1, "{r:?}");
    assert!(r.unresolved(), "a conflict is reported");
    let local = tree(&h.local);
    assert_eq!(local, tree(&h.remote), "both sides hold both versions");
    let contents: Vec<&[u8]> = local.values().map(|v| v.as_slice()).collect();
    assert!(contents.contains(&&b"local edit, longer"[..]));
    assert!(contents.contains(&&b"remote edit"[..]));
    let copy = local
        .keys()
        .find(|k| k.contains(".conflict-"))
        .expect("a conflict copy");
    assert!(
        copy.starts_with("doc.conflict-") && copy.ends_with(".txt"),
        "{copy}"
    );
    let again = pass(&config).await.expect("settled");
    assert_eq!(transfers(&again), 0);
    assert_eq!(again.conflicts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_propagate_both_ways() {
    let h = Harness::new().await;
    for name in ["a", "b", "c", "d", "dir/e"] {
        put(&h.local, name, name);
    }
    let config = h.config("");
    pass(&config).await.expect("first pass");
    std::fs::remove_file(h.local.join("a")).expect("rm");
    std::fs::remove_file(h.remote.join("b")).expect("rm");
    let r = pass(&config).await.expect("delete pass");
    assert_eq!((r.deleted_local, r.deleted_remote), (1, 1), "{r:?}");
    assert!(read(&h.remote, "a").is_none() && read(&h.local, "b").is_none());
    // A whole directory deleted on the server goes away locally too.
    std::fs::remove_dir_all(h.remote.join("dir")).expect("rm dir");
    let r = pass(&config).await.expect("dir pass");
    assert_eq!((r.deleted_local, r.dirs_removed), (1, 1), "{r:?}");
    assert!(!h.local.join("dir").exists());
    assert_eq!(tree(&h.local), tree(&h.remote));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mass_deletion_and_empty_root_are_refused() {
    let h = Harness::new().await;
    for i in 0..10 {
        put(&h.local, &format!("f{i}"), format!("{i}"));
    }
    let config = h.config("");
    pass(&config).await.expect("first pass");
    for i in 0..8 {
        std::fs::remove_file(h.local.join(format!("f{i}"))).expect("rm");
    }
    let err = pass(&config).await.expect_err("refused");
    assert!(matches!(err, Error::Refused { .. }), "{err:?}");
    assert_eq!(tree(&h.remote).len(), 10, "nothing deleted on the server");
    // The server folder emptied (an unmounted share, a wrong path): nothing deleted locally.
    for i in 0..10 {
        let _ = std::fs::remove_file(h.remote.join(format!("f{i}")));
    }
    put(&h.local, "f0", "0");
    let err = pass(&config).await.expect_err("refused");
    assert!(matches!(err, Error::Refused { .. }), "{err:?}");
    assert!(read(&h.local, "f9").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing() {
    let h = Harness::new().await;
    put(&h.local, "up.txt", "1");
    put(&h.remote, "down.txt", "2");
    let config = h.config("");
    let (local, remote) = (tree(&h.local), tree(&h.remote));
    let connector = ftps_sync::remote::ftps::FtpsConnector::for_server(&config.server).expect("tls");
    let prepared = prepare_on(&config, &connector).await.expect("dry run");
    let text = prepared.plan().to_string();
    assert!(
        text.contains("upload          up.txt") && text.contains("download        down.txt"),
        "{text}"
    );
    let totals = prepared.totals();
    assert_eq!(
        (totals.actions.upload, totals.actions.download),
        (1, 1),
        "{totals:?}"
    );
    assert_eq!((totals.bytes_up, totals.bytes_down), (1, 1), "{totals:?}");
    prepared.close().await;
    assert_eq!((tree(&h.local), tree(&h.remote)), (local, remote));
    // Nothing was recorded either: the real pass still does all the work.
    let r = pass(&config).await.expect("real pass");
    assert_eq!(transfers(&r), 2);
}

/// Cancels `cancel` once a part file shows up under `root`.
async fn cancel_when_part_appears(root: std::path::PathBuf, cancel: CancellationToken) {
    for _ in 0..20_000 {
        if !part_files(&root).is_empty() {
            cancel.cancel();
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

pub(crate) fn big(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_pass_leaves_no_partial_file_and_the_next_pass_completes() {
    let h = Harness::new().await;
    let config = h.config("");
    let up = big(24 << 20, 1);
    let down = big(24 << 20, 7);
    // First an upload cut short, then a download: each cancelled once its part file exists.
    for (src, dst, name, data) in [
        (&h.local, &h.remote, "big-up.bin", &up),
        (&h.remote, &h.local, "big-down.bin", &down),
    ] {
        put(src, name, data);
        let cancel = CancellationToken::new();
        let watcher = tokio::spawn(cancel_when_part_appears(dst.clone(), cancel.clone()));
        let err = pass_with(&config, Options::default(), &cancel)
            .await
            .expect_err("interrupted");
        watcher.await.expect("watcher");
        assert!(matches!(err, Error::Interrupted), "{err:?}");
        assert_eq!(err.exit_code(), 4);
        assert!(
            read(dst, name).is_none(),
            "{name} is not under its real name while incomplete"
        );
        assert_eq!(part_files(dst).len(), 1, "the transfer was cut in the middle");

        let r = pass(&config).await.expect("the next pass");
        assert!(!r.unresolved(), "{r:?}");
        assert_holds(dst, name, data);
        assert!(part_files(&h.local).is_empty() && part_files(&h.remote).is_empty());
    }
    let again = pass(&config).await.expect("settled");
    assert_eq!(transfers(&again), 0, "verified files are not sent again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_folder_is_created_on_first_sync() {
    let h = Harness::new().await;
    std::fs::remove_dir(&h.remote).expect("rmdir");
    put(&h.local, "x/y.txt", "y");
    let config = h.config("");
    let r = pass(&config).await.expect("pass");
    assert_eq!(r.uploaded, 1);
    assert_holds(&h.remote, "x/y.txt", b"y");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_remote_names_are_skipped_and_the_pass_goes_on() {
    let h = Harness::new().await;
    put(&h.remote, "back\\slash.txt", "x");
    put(&h.remote, "fine.txt", "ok");
    let config = h.config("");
    let r = pass(&config).await.expect("pass");
    assert_eq!(r.downloaded, 1);
    assert!(r.skipped.iter().any(|i| i.path.contains("slash")), "{r:?}");
    assert!(read(&h.local, "fine.txt").is_some());
    assert_eq!(tree(&h.local).len(), 1, "nothing else was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_login_error() {
    let h = Harness::new().await;
    std::fs::write(h.dir.path().join("password"), "wrong").expect("write");
    let config = h.config("");
    let err = pass(&config).await.expect_err("refused");
    assert!(matches!(err, Error::Login { .. }), "{err:?}");
    assert_eq!(err.exit_code(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_still_being_written_are_left_for_a_later_pass() {
    let h = Harness::new().await;
    put(&h.local, "fresh.txt", "just written");
    let config = h.config("");
    let settle = Options {
        quiet_period: Some(Duration::from_secs(3600)),
        ..Options::default()
    };
    let r = pass_with(&config, settle, &CancellationToken::new())
        .await
        .expect("pass");
    assert_eq!((r.uploaded, r.deferred), (0, 1), "{r:?}");
    assert!(read(&h.remote, "fresh.txt").is_none());
    assert!(!r.unresolved(), "deferring is not a problem to report");
    let r = pass(&config).await.expect("pass");
    assert_eq!(r.uploaded, 1);
}

/// A pass narrowed to the paths a watcher reported.
fn over(paths: &[&str]) -> Options {
    Options {
        scope: Scope::Paths(paths.iter().map(|p| RelPath::new(p).expect("path")).collect()),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_over_changed_paths_looks_at_nothing_else() {
    let h = Harness::new().await;
    put(&h.local, "a/1.txt", "one");
    put(&h.local, "b/2.txt", "two");
    let config = h.config("");
    pass(&config).await.expect("first pass");
    put(&h.local, "a/1.txt", "one, edited");
    put(&h.remote, "b/2.txt", "two, edited on the server");
    put(&h.local, "new/deep/3.txt", "three");
    let cancel = CancellationToken::new();
    let r = pass_with(&config, over(&["a/1.txt", "new/deep/3.txt"]), &cancel)
        .await
        .expect("narrow pass");
    assert_eq!((r.uploaded, r.downloaded), (2, 0), "{r:?}");
    assert_holds(&h.remote, "a/1.txt", b"one, edited");
    // `new/deep` was not in sync yet: the pass grew to `new`, directories made on the way.
    assert_holds(&h.remote, "new/deep/3.txt", b"three");
    assert_holds(&h.local, "b/2.txt", b"two");
    // The poll timer's full pass picks up the server's change.
    let r = pass(&config).await.expect("full pass");
    assert_eq!((r.uploaded, r.downloaded), (0, 1), "{r:?}");
    assert_eq!(tree(&h.local), tree(&h.remote));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrow_pass_deletes_a_removed_directory_whole_and_still_guards() {
    let h = Harness::new().await;
    for i in 0..6 {
        put(&h.local, &format!("gone/f{i}.txt"), "x");
        put(&h.local, &format!("kept/f{i}.txt"), "x");
    }
    let config = h.config("    max_delete_percent: 50\n");
    pass(&config).await.expect("first pass");
    std::fs::remove_dir_all(h.local.join("gone")).expect("rm");
    let cancel = CancellationToken::new();
    // The watcher reported one file of the directory; the pass looks at all of `gone`.
    let r = pass_with(&config, over(&["gone/f3.txt"]), &cancel)
        .await
        .expect("narrow pass");
    assert_eq!(r.deleted_remote, 6, "{r:?}");
    assert!(!h.remote.join("gone").exists());
    assert_eq!(tree(&h.local), tree(&h.remote));
    // Deleting all six files left is more than 50% of the folder: refused, as in a full pass.
    std::fs::remove_dir_all(h.local.join("kept")).expect("rm");
    put(&h.local, "other.txt", "keeps the folder from looking empty");
    let refused = pass_with(&config, over(&["kept"]), &cancel).await;
    assert!(matches!(refused, Err(Error::Refused { .. })), "{refused:?}");
    assert!((0..6).all(|i| h.remote.join(format!("kept/f{i}.txt")).exists()));
    assert!(
        !h.remote.join("other.txt").exists(),
        "a refused pass does nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrow_pass_under_a_directory_gone_on_the_server_becomes_a_full_pass() {
    let h = Harness::new().await;
    put(&h.local, "a/1.txt", "one");
    put(&h.local, "top.txt", "top");
    let config = h.config("");
    pass(&config).await.expect("first pass");
    std::fs::remove_dir_all(h.remote.join("a")).expect("rm on the server");
    put(&h.local, "a/new.txt", "new");
    let cancel = CancellationToken::new();
    let r = pass_with(&config, over(&["a/new.txt"]), &cancel)
        .await
        .expect("pass");
    // As a full pass: the server's deletion of a/1.txt applies, the new file goes up.
    assert_eq!((r.uploaded, r.deleted_local), (1, 1), "{r:?}");
    assert_holds(&h.remote, "a/new.txt", b"new");
    assert!(!h.local.join("a/1.txt").exists());
}

/// Edited on both sides since the last sync to the same size within the same second: not the
/// same change unless the bytes are (docs/design.md, invariant 3). Both versions are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_edited_to_the_same_size_in_the_same_second_keep_both_versions() {
    let h = Harness::new().await;
    put(&h.local, "a.txt", "base");
    put(&h.local, "b.txt", "b");
    let config = h.config("");
    pass(&config).await.expect("first pass");
    put(&h.local, "a.txt", "mine");
    put(&h.remote, "a.txt", "them");
    let second = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    for root in [&h.local, &h.remote] {
        let f = std::fs::File::options()
            .write(true)
            .open(root.join("a.txt"))
            .expect("open");
        f.set_modified(second).expect("set the time");
    }
    let r = pass(&config).await.expect("pass");
    assert_eq!(r.conflicts, 1, "{r:?}");
    assert_eq!(tree(&h.local), tree(&h.remote));
    let mut versions: Vec<Vec<u8>> = tree(&h.local)
        .into_iter()
        .filter(|(k, _)| k.starts_with("a."))
        .map(|(_, v)| v)
        .collect();
    versions.sort();
    assert_eq!(
        versions,
        vec![b"mine".to_vec(), b"them".to_vec()],
        "both versions kept"
    );
}

/// A server that accepts and then says nothing holds a connect for the whole timeout; a stop
/// request (a service's Stop, after its grace period) does not wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_pass_does_not_wait_for_a_connect_to_time_out() {
    let h = Harness::new().await;
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let config = h
        .config_yaml()
        .port(silent.local_addr().expect("addr").port())
        .timeout("60s")
        .ca_file("pki/ca.pem")
        .load(&h.config_path());
    let cancel = CancellationToken::new();
    let started = std::time::Instant::now();
    let pass = tokio::spawn({
        let cancel = cancel.clone();
        async move { pass_with(&config, Options::default(), &cancel).await }
    });
    // Time for the pass to be inside its connect (the server never sends its greeting).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !pass.is_finished(),
        "the pass ended before the cut: {:?}",
        pass.await
    );
    cancel.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(10), pass)
        .await
        .expect("the cut pass still waits for its connect")
        .expect("join");
    assert!(matches!(ended, Err(Error::Interrupted)), "{ended:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

/// A local edit of the same size in the tick the sync recorded the file's time (docs/design.md,
/// "Racy times"): the recorded time proved nothing, so the next pass reads the bytes and sends
/// the edit. Made certain here by a time ahead of the local clock, which the edit keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_size_local_edit_in_the_recorded_tick_is_sent() {
    let h = Harness::new().await;
    let at = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    let touch = |at| {
        std::fs::File::options()
            .write(true)
            .open(h.local.join("a.txt"))
            .and_then(|f| f.set_modified(at))
            .expect("set mtime");
    };
    put(&h.local, "a.txt", "version one!");
    touch(at);
    let config = h.config("");
    let r = pass(&config).await.expect("first pass");
    assert_eq!(r.uploaded, 1, "{r:?}");
    put(&h.local, "a.txt", "version two!");
    touch(at);
    let r = pass(&config).await.expect("second pass");
    assert_eq!(r.uploaded, 1, "the edit was not sent: {r:?}");
    assert_holds(&h.remote, "a.txt", b"version two!");
}
