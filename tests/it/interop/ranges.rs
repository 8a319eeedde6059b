//! Big files in ranges over several connections, against real servers: a download in
//! segments, and an upload written at offsets where the server keeps what is written there
//! (else one stream).

use ftps_sync::engine::Report;

use super::servers::{self, Server};
use super::suite::{assert_only_learned_retries, pass, passive_port_races, same_trees};
use crate::support::{assert_holds, part_files, put, tree};

/// A file above `segment_from` comes down in ranges over several connections at once, each
/// range cut short where the next begins: every server must take that (a 426 or 451 for the
/// cut, then NOOP in step) without a single retry, and the file arrive whole.
pub(super) async fn segmented_download(server: &Server, tls12: bool, tag: &str, big: &[u8]) {
    let work = tempfile::tempdir().expect("tmp");
    let local = work.path().join(format!("seg-{tag}"));
    std::fs::create_dir_all(&local).expect("mkdir");
    let name = format!("seg-{tag}");
    let remote = server.mkdir(&name);
    // 5 MiB and a bit: four ranges for 4 connections (an eighth of the threshold, 128 KiB,
    // is the least), the last one short.
    let bytes = &big[..(5 << 20) + 12_345];
    server.put(&format!("{name}/seg.bin"), bytes);
    let cap = if tls12 { "  tls_max_version: \"1.2\"\n" } else { "" };
    let cfg = server.config(
        &local,
        &format!("/{name}"),
        &format!("{cap}  segment_from: 1MiB\n"),
        "",
    );
    let logged = |log: String| log.lines().filter(|l| l.contains("seg.bin")).count();
    let before = logged(server.transfers());
    let r = pass(&cfg).await;
    assert_eq!(
        (r.downloaded, r.failed.len(), r.retries - passive_port_races(&r)),
        (1, 0, 0),
        "{} {tag}: segmented download {r:?}",
        server.name
    );
    assert_holds(&local, "seg.bin", bytes);
    assert!(part_files(&local).is_empty());
    same_trees(&local, &remote).unwrap_or_else(|e| panic!("{} {tag}: {e}", server.name));
    // Transfer logs are written as transfers end; give the last a moment.
    let mut reads = 0;
    for _ in 0..20 {
        reads = logged(server.transfers()) - before;
        if reads >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        reads >= 2,
        "{} {tag}: the server logged {reads} reads of seg.bin, not ranges:\n{}",
        server.name,
        server.transfers()
    );
    let again = pass(&cfg).await;
    assert_eq!(transfers_of(&again), 0, "{} {tag}: {again:?}", server.name);
}

/// Whether `server` keeps the bytes around writes at offsets past the end and inside a file,
/// and lets two run at once, as a segmented upload needs: vsftpd does with
/// `lock_upload_files=NO` (by default it locks a file for the whole of an upload). ProFTPD,
/// even with `AllowStoreRestart`, and pyftpdlib refuse an offset past the end (`554`);
/// Pure-FTPd cuts the file.
fn writes_at_offsets(server: &Server) -> bool {
    std::fs::read_to_string(server.base_path().join("vsftpd.conf"))
        .is_ok_and(|c| c.contains("lock_upload_files=NO"))
}

/// The writes of `name` the server logged: STOR in pyftpdlib's command log, PUT in
/// Pure-FTPd's CLF log, `OK UPLOAD` in vsftpd's log, direction `i` in ProFTPD's xferlog.
fn writes_of(log: &str, name: &str) -> usize {
    log.lines()
        .filter(|l| l.contains(name))
        .filter(|l| {
            l.starts_with("STOR ")
                || l.contains("\"PUT ")
                || l.contains("OK UPLOAD:")
                || l.split_whitespace().nth(11) == Some("i")
        })
        .count()
}

/// A file above `segment_from` goes up in ranges over several connections at once where the
/// server keeps the bytes around writes at offsets, lets two run at once, and the whole can be
/// checked (here by
/// `verify: download`: vsftpd has no hash command; that path is the simulation's), in one
/// stream where the server refuses (ProFTPD, pyftpdlib), locks the file (stock vsftpd) or cuts
/// it (Pure-FTPd). Either
/// way it arrives whole, without a retry but a learned one, and the probe's file is gone.
pub(super) async fn segmented_upload(server: &Server, tls12: bool, tag: &str, big: &[u8]) {
    let work = tempfile::tempdir().expect("tmp");
    let local = work.path().join(format!("segup-{tag}"));
    let name = format!("segup-{tag}");
    let remote = server.mkdir(&name);
    let bytes = &big[..(5 << 20) + 54_321];
    put(&local, "up.bin", bytes);
    let cap = if tls12 { "  tls_max_version: \"1.2\"\n" } else { "" };
    let cfg = server.load(
        server
            .config_yaml(&local, &format!("/{name}"))
            .server(&format!("{cap}  segment_from: 1MiB\n"))
            .top("verify: download\n"),
    );
    let part = ftps_sync::local::part_name("up.bin");
    let before = writes_of(&server.transfers(), &part);
    let r = pass(&cfg).await;
    assert_eq!(
        (r.uploaded, r.failed.len()),
        (1, 0),
        "{} {tag}: {r:?}",
        server.name
    );
    assert_only_learned_retries(&r, &Report::default());
    assert_holds(&remote, "up.bin", bytes);
    assert!(part_files(&remote).is_empty(), "{:?}", tree(&remote).keys());
    same_trees(&local, &remote).unwrap_or_else(|e| panic!("{} {tag}: {e}", server.name));
    let mut writes = 0;
    for _ in 0..20 {
        writes = writes_of(&server.transfers(), &part) - before;
        if writes >= 5 || (writes == 1 && !writes_at_offsets(server)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if writes_at_offsets(server) {
        // The head, then a range per connection.
        assert!(
            writes >= 3,
            "{} {tag}: the server logged {writes} writes of {part}, not ranges:\n{}",
            server.name,
            server.transfers()
        );
    } else {
        // A read-back refused for not resuming (ProFTPD at TLS 1.3) is tried again without
        // sending the whole part file again.
        assert_eq!(
            writes,
            1,
            "{} {tag}: one stream expected:\n{}",
            server.name,
            server.transfers()
        );
    }
    let again = pass(&cfg).await;
    assert_eq!(transfers_of(&again), 0, "{} {tag}: {again:?}", server.name);
}

/// ProFTPD with `AllowStoreRestart on` takes a write inside a file but refuses one past its
/// end, where a range of a segmented upload starts: the probe must see that, and the file go
/// up in one stream, without a failed range or a retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proftpd_with_store_restart_still_uploads_in_one_stream() {
    let Some(server) = servers::proftpd_with("AllowStoreRestart on\n") else {
        return;
    };
    segmented_upload_at_both_tls(&server).await;
}

/// vsftpd with `lock_upload_files=NO`: two uploads into one file run at once, so a big file
/// goes up in ranges (and stock vsftpd, in `run`, takes it in one stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsftpd_without_upload_locks_uploads_in_ranges() {
    let Some(server) = servers::vsftpd_with(false, "lock_upload_files=NO\n") else {
        return;
    };
    segmented_upload_at_both_tls(&server).await;
}

/// `segmented_upload` at TLS 1.3 and capped at 1.2.
async fn segmented_upload_at_both_tls(server: &Server) {
    let big: Vec<u8> = (0..6u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for (tls12, tag) in [(false, "tls13"), (true, "tls12")] {
        segmented_upload(server, tls12, tag, &big).await;
    }
}

fn transfers_of(r: &Report) -> usize {
    r.uploaded + r.downloaded
}
