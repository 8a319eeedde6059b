//! A server whose disk fills under an upload: the upload fails with the server's own reply
//! (which says why), not with the broken data connection the client sees first; the other
//! files land, and nothing partial appears under the real name.

use super::servers::{self, Server};
use crate::support::{Mounted, put, read};

async fn upload_that_does_not_fit(server: Option<Server>) {
    let Some(server) = server else { return };
    let what = format!("{}: a full disk on the server", server.name);
    let dir = server.mkdir("full");
    let Some(_mounted) = Mounted::tmpfs(&what, &dir, "1m") else {
        return;
    };
    server.own(&dir);
    let work = tempfile::tempdir().expect("tmp");
    let local = work.path().join("full");
    put(&local, "a.txt", "small a");
    put(&local, "b.txt", "small b");
    put(&local, "big.bin", vec![7u8; 4 << 20]);
    // One connection: the small files go first, before the big one fills the disk.
    let config = server.config(&local, "/full", "  connections: 1\n", "");
    let r = crate::support::pass(&config)
        .await
        .expect("the pass runs to its end");
    assert_eq!((r.uploaded, r.failed.len()), (2, 1), "{what}: {r:?}");
    let failed = &r.failed[0];
    let code = failed
        .reason
        .split([' ', '-'])
        .find(|w| w.len() == 3 && w.parse::<u16>().is_ok_and(|c| (400..600).contains(&c)));
    // Not a broken pipe, nor a refusal to resume (the data connection breaks as the server
    // closes it, before its reply is read), nor a refused append of the next attempt.
    assert!(
        failed.path == "big.bin"
            && code.is_some()
            && failed.reason.contains("STOR")
            && !failed.reason.contains("resum")
            && !failed.reason.contains("Append"),
        "{what}: the server's reply about the write is the error: {failed:?}"
    );
    assert!(
        read(&dir, "big.bin").is_none(),
        "{what}: nothing partial under the real name"
    );
    assert_eq!(read(&dir, "a.txt").as_deref(), Some(&b"small a"[..]), "{what}");
    assert_eq!(read(&dir, "b.txt").as_deref(), Some(&b"small b"[..]), "{what}");
    super::report(&format!("{what}: {}", failed.reason));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsftpd_an_upload_that_fills_the_disk_fails_with_the_servers_reply() {
    upload_that_does_not_fit(servers::vsftpd(false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proftpd_an_upload_that_fills_the_disk_fails_with_the_servers_reply() {
    upload_that_does_not_fit(servers::proftpd()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pure_ftpd_an_upload_that_fills_the_disk_fails_with_the_servers_reply() {
    upload_that_does_not_fit(servers::pure_ftpd()).await;
}
