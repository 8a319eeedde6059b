//! A same-size server edit in the second an upload recorded is not lost (docs/design.md,
//! "Racy times"): the upload's time proves nothing while it is not older than the upload
//! itself on the server's clock, so the next pass confirms the file by content.

use std::time::{Duration, SystemTime};

use super::servers::{self, Server};
use crate::support::{pass, put, read};

/// Sets a file's modification time.
fn touch(path: &std::path::Path, at: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(at))
        .expect("set mtime");
}

/// Each server, twice: after an upload, and after a download.
async fn a_same_second_server_edit_is_brought_down(server: Server) {
    after_an_upload(&server).await;
    after_a_download(&server).await;
}

/// An hour in the server's future, to the second: whatever the machine's speed, a time
/// recorded then is not older than the moment it was recorded on the server's clock.
fn ahead() -> SystemTime {
    let at = SystemTime::now() + Duration::from_secs(3600);
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("epoch")
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// `dir/name` rewritten on the server with the same size, in the second `at` the sync recorded
/// after `what`: the next pass brings the server's bytes down to `local`, looking at them once.
async fn rewritten_in_its_second(
    server: &Server,
    cfg: &ftps_sync::config::Config,
    (dir, name): (&str, &str),
    local: &std::path::Path,
    at: SystemTime,
    what: &str,
) {
    server.put(&format!("{dir}/{name}"), "version two!");
    touch(&server.data.join(dir).join(name), at);
    let r = pass(cfg).await.expect("second pass");
    assert_eq!(
        read(local, name).as_deref(),
        Some(&b"version two!"[..]),
        "{}: the server's edit after {what} was not brought down: {r:?}",
        server.name
    );
    assert_eq!(r.confirmed.total(), 1, "{}: looked at once: {r:?}", server.name);
}

/// Downloaded, then rewritten on the server with the same size in the same second: the pass
/// read the server's clock before the download, so the next pass looks at the bytes.
async fn after_a_download(server: &Server) {
    server.put("down/b.txt", "version one!");
    let at = ahead();
    touch(&server.data.join("down/b.txt"), at);
    let work = tempfile::tempdir().expect("tmp");
    // A state store of its own (named after the local folder).
    let local = work.path().join("downloads");
    std::fs::create_dir_all(&local).expect("mkdir");
    let cfg = server.config(&local, "/down", "", "");
    let r = pass(&cfg).await.expect("first pass");
    assert_eq!(r.downloaded, 1, "{}: {r:?}", server.name);
    rewritten_in_its_second(server, &cfg, ("down", "b.txt"), &local, at, "a download").await;
    let left: Vec<String> = std::fs::read_dir(server.data.join("down"))
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["b.txt"], "{}: the clock's file is removed", server.name);
}

async fn after_an_upload(server: &Server) {
    server.mkdir("sync");
    let work = tempfile::tempdir().expect("tmp");
    let local = work.path().join("local");
    put(&local, "a.txt", "version one!");
    let at = ahead();
    touch(&local.join("a.txt"), at);
    let cfg = server.config(&local, "/sync", "", "");
    let r = pass(&cfg).await.expect("first pass");
    assert_eq!(r.uploaded, 1, "{}: {r:?}", server.name);

    rewritten_in_its_second(server, &cfg, ("sync", "a.txt"), &local, at, "an upload").await;
    let r = pass(&cfg).await.expect("third pass");
    assert_eq!(
        (r.uploaded, r.downloaded, r.conflicts),
        (0, 0, 0),
        "{}: {r:?}",
        server.name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proftpd_a_same_second_server_edit_is_brought_down() {
    if let Some(server) = servers::proftpd() {
        a_same_second_server_edit_is_brought_down(server).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pure_ftpd_a_same_second_server_edit_is_brought_down() {
    if let Some(server) = servers::pure_ftpd() {
        a_same_second_server_edit_is_brought_down(server).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyftpdlib_a_same_second_server_edit_is_brought_down() {
    if let Some(server) = servers::pyftpdlib("normal", &[]) {
        a_same_second_server_edit_is_brought_down(server).await;
    }
}

/// A LIST server: the part file's time comes from MDTM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsftpd_a_same_second_server_edit_is_brought_down() {
    if let Some(server) = servers::vsftpd(false) {
        a_same_second_server_edit_is_brought_down(server).await;
    }
}
