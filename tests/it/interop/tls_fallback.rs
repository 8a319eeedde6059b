//! Stock ProFTPD at TLS 1.3 (before 1.3.10) cannot resume TLS 1.3 data connections past the
//! two tickets of a login: the agent proves it once, learns TLS 1.2 for the server, keeps that
//! in the state dir, and the next run pays nothing. `tls_min_version: "1.3"` keeps TLS 1.3;
//! a server without TLS 1.2 keeps TLS 1.3 too.

use std::path::{Path, PathBuf};

use ftps_sync::config::Config;
use ftps_sync::engine::{Report, learned};
use ftps_sync::remote::learned::TlsLearned;
use ftps_sync::state::servers::ServerStore;

use super::report;
use super::servers::{self, Server};
use super::suite::passive_port_races;
use crate::support::put;

async fn pass(config: &Config) -> Report {
    crate::support::pass(config)
        .await
        .unwrap_or_else(|e| panic!("pass failed: {e}"))
}

/// ProFTPD's TLS log, from byte `from` on.
fn tls_log(server: &Server, from: usize) -> String {
    let log = std::fs::read_to_string(server.base_path().join("tls.log")).expect("tls.log");
    log.get(from..).unwrap_or_default().to_owned()
}

/// Data connections the server refused for not resuming: in its log, and as the retries of
/// `report` that say so.
fn refusals(log: &str, report: &Report) -> (usize, usize) {
    let in_log = log.lines().filter(|l| l.contains("did not reuse")).count();
    let retried = report
        .retried
        .iter()
        .filter(|i| i.reason.contains("did not resume"))
        .count();
    (in_log, retried)
}

/// Retries that are not the refusal learned from: ProFTPD's passive-port race, its own
/// sessions binding the same port (`425 … Address already in use`), and nothing else.
fn other_retries(report: &Report) -> usize {
    let learned = refusals("", report).1;
    let races = passive_port_races(report);
    assert_eq!(
        report.retries,
        learned + races,
        "retries other than the refusal and the passive-port race: {:?}",
        report.retried
    );
    races
}

/// A folder of `n` small files, a remote folder `name` for it, and a config with `extra`
/// under server.
fn folder(server: &Server, name: &str, n: usize, extra: &str) -> (tempfile::TempDir, PathBuf, Config) {
    let work = tempfile::tempdir().expect("tmp");
    let local = work.path().join(name);
    files(&local, 0, n);
    server.mkdir(name);
    let cfg = server.config(&local, &format!("/{name}"), extra, "");
    (work, local, cfg)
}

fn files(local: &Path, from: usize, to: usize) {
    for i in from..to {
        put(local, &format!("d{}/f{i:03}.txt", i % 3), format!("file {i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_proftpd_at_tls13_is_given_tls12_once_proven_and_the_next_run_pays_nothing() {
    let Some(server) = servers::proftpd() else { return };
    let (_work, local, cfg) = folder(&server, "many", 120, "");
    assert!(learned::remembered(&cfg).is_none());

    let first = pass(&cfg).await;
    assert_eq!((first.uploaded, first.failed.len()), (120, 0), "{first:?}");
    let log = tls_log(&server, 0);
    assert!(log.contains("TLSv1.3"), "the server ran TLS 1.3 first:\n{log}");
    let (in_log, retried) = refusals(&log, &first);
    assert!(
        in_log <= 1 && retried <= 1,
        "at most one refused data connection to learn from: {in_log} in the log, {retried} retried"
    );
    let races_first = other_retries(&first);
    let kept = learned::remembered(&cfg).expect("learned");
    assert_eq!(kept.tls, TlsLearned::Tls12, "{kept:?}");

    // A second run: a new connector reads what the first one learned.
    let mark = log.len();
    files(&local, 120, 240);
    let second = pass(&cfg).await;
    assert_eq!((second.uploaded, second.failed.len()), (120, 0), "{second:?}");
    let log = tls_log(&server, mark);
    assert_eq!(
        refusals(&log, &second),
        (0, 0),
        "the second run went out at TLS 1.2 from its first login:\n{log}"
    );
    let races_second = other_retries(&second);
    assert!(
        !log.contains("TLSv1.3"),
        "no TLS 1.3 session in the second run:\n{log}"
    );

    // Another certificate since (as the store would hold after a renewal): what was learned
    // no longer holds; the run goes back to TLS 1.3 and learns again.
    let store = ServerStore::open(&cfg.state_dir, false)
        .expect("open")
        .expect("store");
    let mut row = store
        .get(&cfg.server.host, cfg.server.port, "tls")
        .expect("get")
        .expect("row");
    let real = row.fingerprint.clone();
    row.fingerprint = "00:11".into();
    store.put(&cfg.server.host, cfg.server.port, &row).expect("put");
    let mark = mark + log.len();
    files(&local, 240, 300);
    let third = pass(&cfg).await;
    assert_eq!((third.uploaded, third.failed.len()), (60, 0), "{third:?}");
    let log = tls_log(&server, mark);
    assert!(log.contains("TLSv1.3"), "TLS 1.3 again:\n{log}");
    assert!(refusals(&log, &third).0 <= 1);
    let races_third = other_retries(&third);
    let kept = learned::remembered(&cfg).expect("learned again");
    assert_eq!((kept.tls, kept.identity.fingerprint), (TlsLearned::Tls12, real));

    let races = races_first + races_second + races_third;
    report(&format!(
        "proftpd TLS 1.3 fallback: {in_log} refusal in the first run, none in the second; \
         {races} passive-port races in 300 uploads"
    ));
    // 1% of the transfers: the race is the server's (its sessions bind the same port).
    assert!(races * 100 < 300, "{races} passive-port races in 300 uploads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_min_version_13_keeps_tls13_and_learns_nothing() {
    let Some(server) = servers::proftpd() else { return };
    let (_work, _, cfg) = folder(&server, "kept", 30, "  tls_min_version: \"1.3\"\n");
    let first = pass(&cfg).await;
    assert_eq!((first.uploaded, first.failed.len()), (30, 0), "{first:?}");
    let log = tls_log(&server, 0);
    assert!(!log.contains("TLSv1.2"), "only TLS 1.3:\n{log}");
    assert!(learned::remembered(&cfg).is_none());
}

/// A server that proves it cannot resume TLS 1.3 data connections but has no TLS 1.2 keeps
/// TLS 1.3 (renewing logins), and that is kept too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_tls12_keeps_tls13() {
    let Some(server) = servers::proftpd_with("TLSProtocol TLSv1.3\n") else {
        return;
    };
    let (_work, local, cfg) = folder(&server, "only13", 60, "");
    let first = pass(&cfg).await;
    assert_eq!((first.uploaded, first.failed.len()), (60, 0), "{first:?}");
    // The first login at TLS 1.2 (this run's, or the next run's) is refused, and the server
    // keeps TLS 1.3 from then on.
    files(&local, 60, 90);
    let second = pass(&cfg).await;
    assert_eq!((second.uploaded, second.failed.len()), (30, 0), "{second:?}");
    let kept = learned::remembered(&cfg).expect("learned");
    assert_eq!(kept.tls, TlsLearned::Tls13, "{kept:?}");
    let mark = tls_log(&server, 0).len();
    files(&local, 90, 120);
    let third = pass(&cfg).await;
    assert_eq!((third.uploaded, third.failed.len()), (30, 0), "{third:?}");
    let log = tls_log(&server, mark);
    assert!(
        !log.contains("unsupported protocol") && !log.contains("wrong version"),
        "no TLS 1.2 tried again:\n{log}"
    );
}

/// ProFTPD that takes data connections that do not resume (`NoSessionReuseRequired`, as
/// admins set it for rclone) proves nothing: TLS 1.3 stays, nothing is learned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_takes_unresumed_data_connections_keeps_tls13() {
    let Some(server) = servers::proftpd_with("TLSOptions NoSessionReuseRequired\n") else {
        return;
    };
    let (_work, _, cfg) = folder(&server, "taken", 60, "");
    let first = pass(&cfg).await;
    assert_eq!((first.uploaded, first.failed.len()), (60, 0), "{first:?}");
    assert_eq!(refusals(&tls_log(&server, 0), &first), (0, 0));
    assert!(learned::remembered(&cfg).is_none());
    assert!(!tls_log(&server, 0).contains("TLSv1.2"), "only TLS 1.3");
}
