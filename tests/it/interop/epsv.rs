//! A server that lists EPSV in FEAT but refuses it, or whose EPSV data connections never arrive
//! (a firewall or NAT helper that knows only PASV): the pass falls back to PASV without a
//! retry, still connecting to the control connection's peer, and remembers it for the run.

use ftps_sync::engine::Report;
use ftps_sync::remote::ftps::FtpsConnector;

use super::servers::{self, Server};
use crate::support::{assert_holds, pass_on, put};

/// Two passes of one run (one `TlsContext`, as `sync` and `run` have), each moving files both
/// ways; returns their reports.
async fn two_passes(server: &Server, timeout: &str) -> (Report, Report) {
    server.put("sync/down.txt", "down");
    let work = tempfile::tempdir().expect("tmp");
    let local = work.path().join("local");
    for i in 0..8 {
        put(&local, &format!("d{}/up{i}.txt", i % 2), format!("up {i}"));
    }
    let cfg = server.load(server.config_yaml(&local, "/sync").timeout(timeout));
    // One connector for both passes: what the first learns of the server, the second keeps.
    let connector = FtpsConnector::for_server(&cfg.server).expect("tls");
    let pass = || async { pass_on(&cfg, &connector).await.expect("the pass completes") };
    let first = pass().await;
    assert_holds(&local, "down.txt", b"down");
    assert_holds(&server.data, "sync/d1/up7.txt", b"up 7");
    put(&local, "later.txt", "later");
    server.put("sync/later-remote.txt", "later remote");
    let second = pass().await;
    assert_holds(&server.data, "sync/later.txt", b"later");
    assert_holds(&local, "later-remote.txt", b"later remote");
    (first, second)
}

fn count(commands: &str, verb: &str) -> usize {
    commands
        .lines()
        .filter(|l| l.split(' ').next() == Some(verb))
        .count()
}

/// Both passes moved their files with no retry, and after the first refusal no connection of
/// the run asked for EPSV again: each connection of the first pass may have asked once before
/// the first refusal was known (4 connections).
fn fell_back(server: &Server, first: &Report, second: &Report) {
    assert_eq!(
        (first.uploaded, first.downloaded, first.failed.len()),
        (8, 1, 0),
        "{first:?}"
    );
    assert_eq!((second.uploaded, second.downloaded), (1, 1), "{second:?}");
    assert_eq!(
        (first.retries, second.retries),
        (0, 0),
        "the fallback costs no retry: {:?} {:?}",
        first.retried,
        second.retried
    );
    let commands = server.commands();
    let epsv = count(&commands, "EPSV");
    assert!((1..=4).contains(&epsv), "{epsv} EPSV commands:\n{commands}");
    assert!(
        count(&commands, "PASV") >= 4,
        "PASV carried the data:\n{commands}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_epsv_falls_back_to_pasv_at_the_control_peer() {
    // PASV replies name 127.0.0.2, where the trap listens; the data port is on 127.0.0.1.
    let Some((trap, extra)) = super::pasv_trap(29_900) else {
        return;
    };
    let Some(server) = servers::pyftpdlib("epsv-refused", &extra) else {
        return;
    };
    let (first, second) = two_passes(&server, "20s").await;
    fell_back(&server, &first, &second);
    assert!(
        trap.accept().is_err(),
        "something connected to the address in the PASV reply"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_epsv_data_connection_that_never_arrives_falls_back_to_pasv() {
    let Some(server) = servers::pyftpdlib("epsv-blackhole", &[]) else {
        return;
    };
    let (first, second) = two_passes(&server, "2s").await;
    fell_back(&server, &first, &second);
}

/// The fallback is said once per run, however many connections met it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_epsv_fallback_is_logged_once() {
    let Some(server) = servers::pyftpdlib("epsv-refused", &[]) else {
        return;
    };
    let work = tempfile::tempdir().expect("tmp");
    let local = work.path().join("local");
    for i in 0..12 {
        put(&local, &format!("d{}/f{i}.txt", i % 3), "x");
    }
    server.mkdir("sync");
    let cfg = server
        .config_yaml(&local, "/sync")
        .write(&work.path().join("c.yaml"));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ftps-sync"))
            .args(["sync", "-c", &cfg])
            .output()
            .expect("run the binary")
    })
    .await
    .expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let said = stderr
        .lines()
        .filter(|l| l.contains("using PASV with it from now on"))
        .count();
    assert_eq!(said, 1, "{stderr}");
}
