//! Data connections resuming their control connection's TLS session, on ProFTPD: stock (it
//! requires it, and gives TLS 1.3 tickets only at login) and with `NoSessionReuseRequired`.

use ftps_sync::engine::Report;

use super::servers::{self, Server};
use super::suite::{assert_only_learned_retries, config, pass, passive_port_races, same_trees};
use crate::support::put;

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
