//! A server that lies (pyftpdlib subclasses in `tests/interop/pyftpd_server.py`) cannot make
//! ftps-sync write outside the sync root, accept bad bytes, delete what it synced, connect
//! elsewhere, or send commands it did not mean to.

use std::path::Path;

use ftps_sync::Error;

use super::servers;
use crate::support::{pass, put, read, tree};

async fn names_never_escape(extra: &[String]) {
    let Some(server) = servers::pyftpdlib("hostile-names", extra) else {
        return;
    };
    server.put("good.txt", "good");
    server.put("dup.txt", "the real dup");
    let work = tempfile::tempdir().expect("tmp");
    let local = work.path().join("local");
    std::fs::create_dir_all(&local).expect("mkdir");
    let r = pass(&server.config(&local, "/", "", ""))
        .await
        .expect("the pass completes");

    let entries: Vec<String> = std::fs::read_dir(work.path())
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries,
        vec!["local".to_owned()],
        "nothing was written beside the root"
    );
    assert!(!Path::new("/etc/x").exists());
    let got: Vec<String> = tree(&local).into_keys().collect();
    assert_eq!(got, vec!["dup.txt", "good.txt"], "only the safe names arrived");
    assert_eq!(
        read(&local, "dup.txt").as_deref(),
        Some(&b"the real dup"[..]),
        "the first of two duplicates"
    );
    for bad in ["../x", "a/../../x", "back\\\\slash", "nul\\0name", "cr\\rname"] {
        assert!(
            r.skipped.iter().any(|i| i.path.contains(bad)),
            "{bad} not reported: {:?}",
            r.skipped
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_mlsd_names_never_escape_the_root() {
    names_never_escape(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_list_names_never_escape_the_root() {
    names_never_escape(&["--no-mlsd".to_owned()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_transfers_are_retried_then_reported_and_the_old_file_kept() {
    let Some(server) = servers::pyftpdlib("hostile-corrupt", &[]) else {
        return;
    };
    let v1: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    server.put("sync/corrupt.bin", &v1);
    server.put("sync/short.bin", &v1);
    server.put("sync/fine.txt", "fine");
    let work = tempfile::tempdir().expect("tmp");
    let local = work.path().join("local");
    std::fs::create_dir_all(&local).expect("mkdir");
    let cfg = server.config(&local, "/sync", "", "");
    let r = pass(&cfg).await.expect("honest first pass");
    assert_eq!(r.downloaded, 3);

    // New versions on the server, and from now on the server lies about them.
    let v2: Vec<u8> = (0..120_000u32).map(|i| (i / 3) as u8).collect();
    server.put("sync/corrupt.bin", &v2);
    server.put("sync/short.bin", &v2);
    std::fs::write(server.base_path().join("LIE"), "").expect("marker");
    let r = pass(&cfg).await.expect("the pass completes");
    let mut failed: Vec<&str> = r.failed.iter().map(|i| i.path.as_str()).collect();
    failed.sort();
    assert_eq!(failed, vec!["corrupt.bin", "short.bin"], "{r:?}");
    assert!(
        r.failed.iter().all(|i| i.reason.contains("verification")),
        "{r:?}"
    );
    let lies = server.commands().matches("LIED about corrupt.bin").count();
    assert_eq!(lies, cfg.retry.attempts as usize, "retried, then given up");
    assert_eq!(
        read(&local, "corrupt.bin").as_deref(),
        Some(v1.as_slice()),
        "old file untouched"
    );
    assert_eq!(
        read(&local, "short.bin").as_deref(),
        Some(v1.as_slice()),
        "old file untouched"
    );
    assert!(crate::support::part_files(&local).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_listing_for_a_synced_folder_deletes_nothing() {
    let Some(server) = servers::pyftpdlib("hostile-empty", &[]) else {
        return;
    };
    for i in 0..1000 {
        server.put(&format!("f{:04}.txt", i), format!("{i}"));
    }
    let work = tempfile::tempdir().expect("tmp");
    let local = work.path().join("local");
    std::fs::create_dir_all(&local).expect("mkdir");
    let cfg = server.config(&local, "/", "", "");
    let r = pass(&cfg).await.expect("first pass");
    assert_eq!(r.downloaded, 1000);
    std::fs::write(server.base_path().join("EMPTY"), "").expect("marker");
    // The files the listing left out are found still there (SIZE), so the pass stops before
    // planning; were they really gone, the empty-root guard would refuse it.
    let err = pass(&cfg).await.expect_err("refused");
    assert!(
        matches!(err, Error::Verify { .. } | Error::Refused { .. }),
        "{err:?}"
    );
    assert_eq!(tree(&local).len(), 1000, "nothing deleted locally");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pasv_reply_naming_another_address_is_ignored() {
    let Some((trap, extra)) = super::pasv_trap(29_950) else {
        return;
    };
    let Some(server) = servers::pyftpdlib("normal", &extra) else {
        return;
    };
    server.put("sync/down.txt", "down");
    let work = tempfile::tempdir().expect("tmp");
    let local = work.path().join("local");
    put(&local, "up.txt", "up");
    let r = pass(&server.config(&local, "/sync", "", "")).await.expect("pass");
    assert_eq!((r.uploaded, r.downloaded), (1, 1), "{r:?}");
    assert!(server.commands().contains("PASV"), "PASV was used");
    assert!(
        trap.accept().is_err(),
        "something connected to the address in the PASV reply"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_names_with_line_breaks_never_reach_the_control_channel() {
    let Some(server) = servers::pyftpdlib("normal", &[]) else {
        return;
    };
    let work = tempfile::tempdir().expect("tmp");
    let local = work.path().join("local");
    put(&local, "evil\r\nDELE victim.txt", "x");
    put(&local, "fine.txt", "fine");
    server.put("sync/victim.txt", "must survive");
    let r = pass(&server.config(&local, "/sync", "", "")).await.expect("pass");
    assert!(r.skipped.iter().any(|i| i.path.contains("evil")), "{r:?}");
    let commands = server.commands();
    // The pass's own DELE (of the file it reads the server's clock from) is not the injected one.
    assert!(
        !commands
            .lines()
            .any(|l| l.starts_with("DELE") && !l.contains(".ftps-sync.part")),
        "{commands}"
    );
    assert!(read(&server.data.join("sync"), "victim.txt").is_some());
    assert!(read(&server.data.join("sync"), "fine.txt").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_421_shrinks_the_pool_and_the_pass_completes() {
    let Some(server) = servers::pyftpdlib("normal", &["--max-cons-per-ip".to_owned(), "2".to_owned()]) else {
        return;
    };
    let work = tempfile::tempdir().expect("tmp");
    let local = work.path().join("local");
    for i in 0..40 {
        put(&local, &format!("f{i}.txt"), format!("{i}"));
        server.put(&format!("sync/g{i}.txt"), format!("{i}"));
    }
    let cfg = server.config(&local, "/sync", "  connections: 4\n", "");
    let r = pass(&cfg)
        .await
        .expect("the pass completes with fewer connections");
    assert_eq!((r.uploaded, r.downloaded, r.failed.len()), (40, 40, 0), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_refusal_is_reported_for_that_file_and_the_pass_goes_on() {
    let extra = ["--readonly-dir".to_owned(), "sync/locked".to_owned()];
    let Some(server) = servers::pyftpdlib("normal", &extra) else {
        return;
    };
    let work = tempfile::tempdir().expect("tmp");
    let local = work.path().join("local");
    put(&local, "fine.txt", "fine");
    put(&local, "locked/no.txt", "refused");
    let r = pass(&server.config(&local, "/sync", "", ""))
        .await
        .expect("the pass completes");
    assert_eq!(r.uploaded, 1, "{r:?}");
    let failed: Vec<&str> = r.failed.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(failed, vec!["locked/no.txt"], "{r:?}");
    assert!(r.failed[0].reason.contains("550"), "{r:?}");
    let stors = server
        .commands()
        .lines()
        .filter(|l| l.starts_with("STOR") && l.contains("no.txt"))
        .count();
    assert_eq!(stors, 1, "a permanent error is not retried");
}
