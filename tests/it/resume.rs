//! Transfers cut short and taken up again: a part file resumed where its bytes are known good,
//! and started over where they may not be.

use std::time::Duration;

use ftps_sync::Error;
use ftps_sync::engine::Options;
use tokio_util::sync::CancellationToken;

use crate::engine::big;
use crate::support::{Harness, part_files, pass, pass_with, put, read};

/// Cancels `cancel` once the part file under `root` holds at least `bytes`.
async fn cancel_when_part_reaches(root: std::path::PathBuf, bytes: u64, cancel: CancellationToken) {
    for _ in 0..20_000 {
        let big_enough = part_files(&root)
            .iter()
            .any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() >= bytes));
        if big_enough {
            cancel.cancel();
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_transfers_resume_from_their_part_files() {
    let h = Harness::new().await;
    // One stream each way: a segmented download starts over (see below).
    let config = h
        .config_yaml()
        .server("  segment_from: off\n")
        .ca_file("pki/ca.pem")
        .load(&h.config_path());
    let size = 100u64 << 20;
    for (src, dst, name, seed) in [
        (&h.remote, &h.local, "down.bin", 3u8),
        (&h.local, &h.remote, "up.bin", 5u8),
    ] {
        let data = big(size as usize, seed);
        put(src, name, &data);
        // An hour old: a time in the second of the download's start proves nothing, and its
        // part file would not be resumed (see the last test here).
        std::fs::File::options()
            .write(true)
            .open(src.join(name))
            .and_then(|f| f.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600)))
            .expect("set mtime");
        let cancel = CancellationToken::new();
        let watcher = tokio::spawn(cancel_when_part_reaches(dst.clone(), size / 2, cancel.clone()));
        let err = pass_with(&config, Options::default(), &cancel)
            .await
            .expect_err("interrupted");
        watcher.await.expect("watcher");
        assert!(matches!(err, Error::Interrupted), "{err:?}");
        assert!(read(dst, name).is_none());

        let r = pass(&config).await.expect("the next pass");
        let moved = r.bytes_down + r.bytes_up;
        assert!(
            moved < size * 6 / 10,
            "{name}: resumed, but moved {moved} of {size} bytes again"
        );
        assert!(moved > 0);
        assert_eq!(
            read(dst, name).as_deref(),
            Some(data.as_slice()),
            "{name} is whole and right"
        );
        assert!(part_files(&h.local).is_empty() && part_files(&h.remote).is_empty());
    }
}

/// A download in ranges that is cut leaves a part file with holes, which is never taken for a
/// resumable prefix: the next pass fetches it whole again, and it arrives right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_segmented_download_starts_over_and_arrives_whole() {
    let h = Harness::new().await;
    let config = h
        .config_yaml()
        .server("  segment_from: 4MiB\n")
        .ca_file("pki/ca.pem")
        .load(&h.config_path());
    let size = 48usize << 20;
    let data = big(size, 9);
    put(&h.remote, "seg.bin", &data);
    let cancel = CancellationToken::new();
    // The part file is as long as the file from its start: cut once a few ranges are under way.
    let cutter = {
        let cancel = cancel.clone();
        let local = h.local.clone();
        tokio::spawn(async move {
            for _ in 0..20_000 {
                if !part_files(&local).is_empty() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    cancel.cancel();
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let cut = pass_with(&config, Options::default(), &cancel).await;
    cutter.await.expect("cutter");
    assert!(matches!(cut, Err(Error::Interrupted)), "{cut:?}");
    assert!(read(&h.local, "seg.bin").is_none(), "nothing under the real name");
    let r = pass(&config).await.expect("the next pass");
    assert_eq!(
        (r.downloaded, r.bytes_down, r.retries),
        (1, size as u64, 0),
        "{r:?}"
    );
    assert_eq!(read(&h.local, "seg.bin").as_deref(), Some(data.as_slice()));
    assert!(part_files(&h.local).is_empty());
}

/// A download cut short, then the server's file rewritten with the same size in the same
/// second (docs/design.md, "Racy times"): the part file was begun for a time that proved
/// nothing, so it is not resumed (its bytes may be of the earlier write) but read again whole.
/// Made certain by a time ahead of the server's clock, which the rewrite keeps; `verify: size`,
/// as the server's hash would catch the mix too late (after a whole transfer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_file_begun_in_the_second_of_a_write_is_not_resumed() {
    let h = Harness::new().await;
    let config = h
        .config_yaml()
        .server("  segment_from: off\n")
        .top("verify: size\n")
        .ca_file("pki/ca.pem")
        .load(&h.config_path());
    let size = 64usize << 20;
    let at = std::time::SystemTime::now() + Duration::from_secs(3600);
    let write = |data: &[u8]| {
        put(&h.remote, "racy.bin", data);
        std::fs::File::options()
            .write(true)
            .open(h.remote.join("racy.bin"))
            .and_then(|f| f.set_modified(at))
            .expect("set mtime");
    };
    write(&big(size, 1));
    let cancel = CancellationToken::new();
    let watcher = tokio::spawn(cancel_when_part_reaches(
        h.local.clone(),
        size as u64 / 2,
        cancel.clone(),
    ));
    let cut = pass_with(&config, Options::default(), &cancel).await;
    watcher.await.expect("watcher");
    assert!(matches!(cut, Err(Error::Interrupted)), "{cut:?}");
    let second = big(size, 2);
    write(&second);
    let r = pass(&config).await.expect("the next pass");
    assert_eq!(
        (r.downloaded, r.bytes_down),
        (1, size as u64),
        "read whole: {r:?}"
    );
    assert!(
        read(&h.local, "racy.bin").as_deref() == Some(second.as_slice()),
        "the second write, whole"
    );
}
