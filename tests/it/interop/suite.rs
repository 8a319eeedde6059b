//! The same scenarios against every real server, at TLS 1.3 and capped at TLS 1.2.

use std::collections::BTreeMap;
use std::path::Path;

use ftps_sync::config::Config;
use ftps_sync::engine::Report;
use ftps_sync::remote::ftps::{Ftps, HashCommand, ListingMode, MtimeSupport};
use ftps_sync::remote::tls::TlsContext;

use super::report;
use super::servers::{self, Server};
use crate::support::{assert_holds, part_files, put, read, tree};

async fn pass(config: &Config) -> Report {
    crate::support::pass(config)
        .await
        .unwrap_or_else(|e| panic!("pass failed: {e}"))
}

fn config(server: &Server, local: &Path, remote: &str, tls12: bool, folder_extra: &str) -> Config {
    let cap = if tls12 { "  tls_max_version: \"1.2\"\n" } else { "" };
    server.config(local, remote, cap, folder_extra)
}

fn same_trees(local: &Path, remote: &Path) -> Result<(), String> {
    let (l, r): (BTreeMap<_, _>, BTreeMap<_, _>) = (tree(local), tree(remote));
    if l == r {
        return Ok(());
    }
    let only_l: Vec<_> = l.keys().filter(|k| r.get(*k) != l.get(*k)).collect();
    let only_r: Vec<_> = r.keys().filter(|k| l.get(*k) != r.get(*k)).collect();
    Err(format!(
        "trees differ: local-side {only_l:?}, remote-side {only_r:?}"
    ))
}

fn mtime_secs(p: &Path) -> i64 {
    let m = std::fs::metadata(p).expect("stat").modified().expect("mtime");
    m.duration_since(std::time::UNIX_EPOCH)
        .expect("after epoch")
        .as_secs() as i64
}

/// Every scenario, once at the server's best TLS and once capped at 1.2.
pub async fn run(server: &Server) {
    for tls12 in [false, true] {
        scenarios(server, tls12).await;
    }
}

async fn scenarios(server: &Server, tls12: bool) {
    let tag = if tls12 { "tls12" } else { "tls13" };
    let work = tempfile::tempdir().expect("tmp");
    let local = work.path().join(format!("both-{tag}"));
    std::fs::create_dir_all(&local).expect("mkdir");
    let remote_name = format!("both-{tag}");
    let remote = server.mkdir(&remote_name);
    let cfg = config(server, &local, &format!("/{remote_name}"), tls12, "");

    // What the server offers, as the engine sees it.
    let tls = TlsContext::new(&cfg.server).expect("tls");
    let mut probe = Ftps::connect(&cfg.server, &tls)
        .await
        .unwrap_or_else(|e| panic!("{}: connect: {e}", server.name));
    let version = probe.tls.as_ref().map(|t| t.version.clone()).unwrap_or_default();
    let listing = if probe.listing == ListingMode::Mlsd {
        "MLSD"
    } else {
        "LIST"
    };
    let sets_mtime = probe.mtime != MtimeSupport::None;
    let hash = match probe.hash {
        Some(HashCommand::Hash(a)) => format!("HASH {}", a.name()),
        Some(HashCommand::X(a)) => format!("X{}", a.name().replace('-', "")),
        None => "none".into(),
    };
    let rest = if probe.features.has("REST") {
        "REST STREAM"
    } else {
        "no REST"
    };
    probe.quit().await;
    if tls12 {
        assert_eq!(version, "TLSv1_2", "{}: the cap holds", server.name);
    }

    let big: Vec<u8> = (0..50u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    put(&local, "plain.txt", "plain");
    put(&local, "with space/file name.txt", "spaces");
    put(&local, "ünï cødé/日本語 ✓.txt", "utf-8");
    put(&local, "empty.txt", "");
    put(&local, "deep/a/b/c.txt", "deep");
    put(&local, "conflict.txt", "base");
    put(&local, "big.bin", &big);
    server.put(&format!("{remote_name}/remote only.txt"), "from the server");
    server.put(&format!("{remote_name}/rdir/sub/r.txt"), "nested on the server");
    server.put(&format!("{remote_name}/empty-remote.txt"), "");

    let r = pass(&cfg).await;
    assert_eq!(
        (r.uploaded, r.downloaded, r.failed.len()),
        (7, 3, 0),
        "{}: first pass {r:?}",
        server.name
    );
    same_trees(&local, &remote).unwrap_or_else(|e| panic!("{} {tag}: {e}", server.name));
    let mtime_kept = mtime_secs(&remote.join("plain.txt")) == mtime_secs(&local.join("plain.txt"));
    if sets_mtime {
        assert!(
            mtime_kept,
            "{}: the server can set mtimes but did not keep it",
            server.name
        );
    }
    let again = pass(&cfg).await;
    assert_eq!(
        again.uploaded + again.downloaded,
        0,
        "{} {tag}: a re-run moved files: {again:?}",
        server.name
    );

    // Edits on one side each (sizes change, so minute-precision listings see them too).
    put(&local, "plain.txt", "plain, edited locally");
    server.put(
        &format!("{remote_name}/remote only.txt"),
        "from the server, edited there",
    );
    let r = pass(&cfg).await;
    assert_eq!(
        (r.uploaded, r.downloaded),
        (1, 1),
        "{} {tag}: edits {r:?}",
        server.name
    );
    assert_holds(&remote, "plain.txt", b"plain, edited locally");
    assert_holds(&local, "remote only.txt", b"from the server, edited there");

    // Deletions both ways.
    std::fs::remove_file(local.join("deep/a/b/c.txt")).expect("rm");
    std::fs::remove_file(remote.join("rdir/sub/r.txt")).expect("rm");
    let r = pass(&cfg).await;
    assert_eq!(
        (r.deleted_local, r.deleted_remote),
        (1, 1),
        "{} {tag}: deletes {r:?}",
        server.name
    );

    // Both sides edited: both kept.
    put(&local, "conflict.txt", "local version");
    server.put(&format!("{remote_name}/conflict.txt"), "remote version!!");
    let r = pass(&cfg).await;
    assert_eq!(r.conflicts, 1, "{} {tag}: conflict {r:?}", server.name);
    let contents: Vec<Vec<u8>> = tree(&local).into_values().collect();
    assert!(
        contents.contains(&b"local version".to_vec()) && contents.contains(&b"remote version!!".to_vec())
    );

    let last = pass(&cfg).await;
    assert_eq!(
        last.uploaded + last.downloaded,
        0,
        "{} {tag}: settled {last:?}",
        server.name
    );
    same_trees(&local, &remote).unwrap_or_else(|e| panic!("{} {tag}: {e}", server.name));
    assert!(part_files(&local).is_empty() && part_files(&remote).is_empty());

    segmented_download(server, tls12, tag, &big).await;
    segmented_upload(server, tls12, tag, &big).await;

    // One-way folders.
    let up_local = work.path().join("up");
    put(&up_local, "u.txt", "up");
    let up_remote = server.mkdir(&format!("up-{tag}"));
    server.put(&format!("up-{tag}/theirs.txt"), "stays there");
    let r = pass(&config(
        server,
        &up_local,
        &format!("/up-{tag}"),
        tls12,
        "    direction: upload\n",
    ))
    .await;
    assert_eq!(
        (r.uploaded, r.downloaded),
        (1, 0),
        "{} {tag}: upload-only {r:?}",
        server.name
    );
    assert!(read(&up_remote, "u.txt").is_some() && read(&up_local, "theirs.txt").is_none());
    let down_local = work.path().join("down");
    std::fs::create_dir_all(&down_local).expect("mkdir");
    put(&down_local, "mine.txt", "stays here");
    server.put(&format!("down-{tag}/d.txt"), "down");
    let r = pass(&config(
        server,
        &down_local,
        &format!("/down-{tag}"),
        tls12,
        "    direction: download\n",
    ))
    .await;
    assert_eq!(
        (r.uploaded, r.downloaded),
        (0, 1),
        "{} {tag}: download-only {r:?}",
        server.name
    );
    assert!(read(&server.data.join(format!("down-{tag}")), "mine.txt").is_none());

    report(&format!(
        "{} | {} | {version} | listing {listing} | mtime {} | hash {hash} | {rest} | all scenarios passed",
        server.name,
        server.tls,
        if mtime_kept {
            "preserved"
        } else {
            "not settable (change detection by size+listing time)"
        },
    ));
}

/// A file above `segment_from` comes down in ranges over several connections at once, each
/// range cut short where the next begins: every server must take that (a 426 or 451 for the
/// cut, then NOOP in step) without a single retry, and the file arrive whole.
async fn segmented_download(server: &Server, tls12: bool, tag: &str, big: &[u8]) {
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
async fn segmented_upload(server: &Server, tls12: bool, tag: &str, big: &[u8]) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsftpd_explicit() {
    if let Some(s) = servers::vsftpd(false) {
        run(&s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsftpd_implicit() {
    if let Some(s) = servers::vsftpd(true) {
        run(&s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proftpd() {
    if let Some(s) = servers::proftpd() {
        run(&s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pure_ftpd() {
    if let Some(s) = servers::pure_ftpd() {
        run(&s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyftpdlib_mlsd() {
    if let Some(s) = servers::pyftpdlib("normal", &[]) {
        run(&s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyftpdlib_unix_list_only() {
    if let Some(s) = servers::pyftpdlib("list-only", &[]) {
        run(&s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyftpdlib_dos_list() {
    if let Some(s) = servers::pyftpdlib("dos", &[]) {
        run(&s).await;
    }
}

/// Stock ProFTPD at TLS 1.3 requires every data connection to resume its own control
/// connection's session, and issues only two tickets per control connection (none on data
/// connections). Once a connection's tickets are spent, ftps-sync tries one data connection
/// of the run with a full handshake (servers that do not check take it); ProFTPD refuses it
/// (`425`, a "did not reuse" line in its TLS log), and from then on the run renews control
/// connections, at TLS 1.2 once it has proven that the server cannot resume TLS 1.3 data
/// connections (`tls_fallback.rs`). The two passes here have state dirs of their own, so each
/// sees one refusal, sent again at once as one retry; any other refusal or retry is a bug
/// that retries would hide from an end-state check: this counts them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proftpd_tls13_data_connections_resume_their_control_session() {
    let Some(server) = servers::proftpd() else { return };
    let (up, down) = up_and_down(&server).await;
    let log = std::fs::read_to_string(server.base.path().join("tls.log")).expect("tls.log");
    let refused = log.lines().filter(|l| l.contains("did not reuse")).count();
    let resumed = log
        .lines()
        .filter(|l| l.contains("client reused TLS session for data connection"))
        .count();
    assert!(log.contains("TLSv1.3"), "the server ran TLS 1.3:\n{log}");
    let learned = |r: &Report| {
        r.retried
            .iter()
            .filter(|i| i.reason.contains("did not resume"))
            .count()
    };
    assert!(
        (1..=2).contains(&refused),
        "{refused} data connections refused for not resuming ({resumed} resumed); at most one \
         per run: {:?} {:?}",
        up.retried,
        down.retried
    );
    assert!(learned(&up) <= 1 && learned(&down) <= 1);
    assert_only_learned_retries(&up, &down);
}

/// The same, with `TLSOptions NoSessionReuseRequired` (as admins set it so that rclone works):
/// data connections past the two tickets go with a full handshake, and no control connection
/// is renewed: one control handshake per connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proftpd_tls13_without_reuse_required_logs_in_once_per_connection() {
    let Some(server) = servers::proftpd_with("TLSOptions NoSessionReuseRequired\n") else {
        return;
    };
    let (up, down) = up_and_down(&server).await;
    assert_eq!(
        (
            up.retries - passive_port_races(&up),
            down.retries - passive_port_races(&down)
        ),
        (0, 0),
        "{:?} {:?}",
        up.retried,
        down.retried
    );
    let log = std::fs::read_to_string(server.base.path().join("tls.log")).expect("tls.log");
    let logins = log.lines().filter(|l| l.contains("TLS/TLS-C requested")).count();
    assert!(
        logins <= 2 * CONNECTIONS,
        "{logins} control connections for two passes of {CONNECTIONS}: some were renewed"
    );
}

const CONNECTIONS: usize = 4;

/// 120 small files up into an empty folder, then down into another: many STOR, RETR and MLSD
/// data connections per control connection.
async fn up_and_down(server: &Server) -> (Report, Report) {
    let work = tempfile::tempdir().expect("tmp");
    let local = work.path().join("many");
    for i in 0..120 {
        put(&local, &format!("d{}/f{i:03}.txt", i % 3), format!("file {i}"));
    }
    server.mkdir("many");
    let cfg = config(server, &local, "/many", false, "");
    assert_eq!(cfg.server.connections, CONNECTIONS);
    let up = pass(&cfg).await;
    assert_eq!((up.uploaded, up.failed.len()), (120, 0), "{up:?}");
    let down_local = work.path().join("back");
    std::fs::create_dir_all(&down_local).expect("mkdir");
    let down = pass(&config(
        server,
        &down_local,
        "/many",
        false,
        "    direction: download\n",
    ))
    .await;
    assert_eq!((down.downloaded, down.failed.len()), (120, 0), "{down:?}");
    same_trees(&local, &down_local).expect("same files back");
    (up, down)
}

/// No retry but the learned refusals and ProFTPD's passive-port races: its own sessions race
/// for a passive port, two bind the same one and the second one's listen fails, `425 EPSV:
/// Address already in use` (seen once in about 60 runs with the CPU busy). That refusal is
/// the server's, and a retry is its remedy.
fn assert_only_learned_retries(up: &Report, down: &Report) {
    let expected = |r: &Report| {
        let resumes = r.retried.iter().filter(|i| i.reason.contains("did not resume"));
        resumes.count() + passive_port_races(r)
    };
    // Only the first ten retries keep their reasons: more than that fails here too.
    assert_eq!(
        (up.retries - expected(up), down.retries - expected(down)),
        (0, 0),
        "retries hide refused data connections: {:?} {:?}",
        up.retried,
        down.retried
    );
}

/// The retries owed to ProFTPD's passive-port race (see above), each named by its reply.
/// Only the first ten retries keep their reasons, so a run with more fails its assertion.
fn passive_port_races(r: &Report) -> usize {
    r.retried
        .iter()
        .filter(|i| i.reason.contains("425") && i.reason.contains("Address already in use"))
        .count()
}

/// A server with no hash command: a file changed on both sides to the same size is read back
/// whole to compare contents (docs/design.md, invariant 3). When the contents differ, that read is
/// the conflict copy's download: the file crosses the network once. When they are equal,
/// nothing is transferred and the read leaves no part file behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_back_that_finds_a_conflict_is_its_download() {
    let Some(server) = servers::pyftpdlib("normal", &[]) else {
        return;
    };
    let work = tempfile::tempdir().expect("tmp");
    let local = work.path().join("rb");
    put(&local, "differ.txt", "base one");
    put(&local, "equal.txt", "base two");
    // An hour old when synced: an edit now shows a new time even at one-second precision.
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for name in ["differ.txt", "equal.txt"] {
        let f = std::fs::File::options()
            .write(true)
            .open(local.join(name))
            .expect("open");
        f.set_modified(hour_ago).expect("set the time");
    }
    let remote = server.mkdir("rb");
    let cfg = config(&server, &local, "/rb", false, "");
    let first = pass(&cfg).await;
    assert_eq!(first.uploaded, 2, "{first:?}");
    put(&local, "differ.txt", "mine: v2");
    server.put("rb/differ.txt", "them: v2");
    put(&local, "equal.txt", "both: v2");
    server.put("rb/equal.txt", "both: v2");
    let before = server.commands().lines().count();

    let r = pass(&cfg).await;
    assert_eq!((r.conflicts, r.failed.len(), r.retries), (1, 0, 0), "{r:?}");
    let commands: Vec<String> = server
        .commands()
        .lines()
        .skip(before)
        .map(str::to_owned)
        .collect();
    // By the name's start: the conflict copy's download reads `differ.conflict-….txt`.
    let reads = |stem: &str| {
        commands
            .iter()
            .filter(|l| l.starts_with(&format!("RETR /rb/{stem}")))
            .count()
    };
    assert_eq!(
        (reads("differ."), reads("equal.")),
        (1, 1),
        "each file read once:\n{}",
        commands.join("\n")
    );
    same_trees(&local, &remote).expect("both sides equal");
    let mut versions: Vec<Vec<u8>> = tree(&local)
        .into_iter()
        .filter(|(k, _)| k.starts_with("differ."))
        .map(|(_, v)| v)
        .collect();
    versions.sort();
    assert_eq!(versions, vec![b"mine: v2".to_vec(), b"them: v2".to_vec()]);
    assert_holds(&local, "equal.txt", b"both: v2");
    assert!(part_files(&local).is_empty() && part_files(&remote).is_empty());
    let again = pass(&cfg).await;
    assert_eq!(
        again.uploaded + again.downloaded + again.conflicts,
        0,
        "{again:?}"
    );
}
