//! `ftps-sync check` against real servers: it tries what a sync needs (data connections in a
//! row, an upload, setting its time, the server's hash, writing at an offset), says what it
//! found, removes its test file, and fails when data connections fail.

use std::process::Command;

use super::servers::{self, Server};

/// Runs `check` on a folder at `remote`; its exit code and output.
fn check(server: &Server, remote: &str) -> (i32, String) {
    let work = tempfile::tempdir().expect("tmp");
    let local = work.path().join("local");
    std::fs::create_dir_all(&local).expect("mkdir");
    let cfg = work.path().join("ftps-sync.yaml");
    server.config_yaml(&local, remote).write(&cfg);
    let out = Command::new(env!("CARGO_BIN_EXE_ftps-sync"))
        .args(["check", "-c"])
        .arg(&cfg)
        .output()
        .expect("run check");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// The line of `out` that starts with `key`.
fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no `{key}` line in:\n{out}"))
}

fn assert_line(out: &str, key: &str, holds: &str) {
    let l = line(out, key);
    assert!(l.contains(holds), "`{key}` should say {holds:?}:\n{out}");
}

/// The `data` line says every one of at least `least` data connections opened.
fn assert_all_opened(out: &str, least: usize) {
    let l = line(out, "data ");
    let words: Vec<&str> = l.split_whitespace().collect();
    let (opened, of): (usize, usize) = (words[1].parse().expect("n"), words[3].parse().expect("n"));
    assert!(opened == of && of >= least, "{out}");
    assert!(!out.contains("failed:"), "{out}");
}

/// `check` left nothing in `dir` on the server.
fn assert_left_nothing(server: &Server, dir: &std::path::Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.is_empty(),
        "{}: check left {left:?} on the server",
        server.name
    );
}

/// Each server's answers, as measured (SERVERS.md): ProFTPD refuses REST before STOR without
/// `AllowStoreRestart`, and past the end of the file even with it, and at TLS 1.3 data
/// connections that do not resume; Pure-FTPd cuts the file at the offset.
#[test]
fn check_tries_what_a_sync_needs_on_each_server() {
    type Start = fn() -> Option<Server>;
    let cases: [(Start, &str, &str, &str); 5] = [
        (
            || servers::vsftpd(false),
            "none",
            "one upload into a file at a time",
            "resumed",
        ),
        (
            || servers::vsftpd_with(false, "lock_upload_files=NO\n"),
            "none",
            "works",
            "resumed",
        ),
        (
            servers::proftpd,
            "HASH SHA-256 (matches",
            "refused",
            "refuses those that do not resume",
        ),
        // Inside the file it writes; past the end, where a range starts, it refuses.
        (
            || servers::proftpd_with("AllowStoreRestart on\n"),
            "HASH SHA-256 (matches",
            "refused (554",
            "refuses those that do not resume",
        ),
        (
            servers::pure_ftpd,
            "none",
            "cuts the file at the offset",
            "takes the ones",
        ),
    ];
    for (start, hash, offset, session) in cases {
        let Some(server) = start() else { continue };
        let remote = server.mkdir("f");
        let (code, out) = check(&server, "/f");
        assert_eq!(code, 0, "{}:\n{out}", server.name);
        assert_line(&out, "write ", "ok (a file uploaded to /f read back equal)");
        assert_line(&out, "mtime ", "(set and listed back)");
        assert_line(&out, "hash ", hash);
        assert_line(&out, "write at an offset", offset);
        assert_all_opened(&out, 5);
        assert_line(&out, "tls session", session);
        assert_line(&out, "result ", "ok");
        assert_left_nothing(&server, &remote);
    }
}

#[test]
fn check_on_a_read_only_folder_tests_no_write_and_passes() {
    let Some(server) = servers::pyftpdlib("normal", &["--readonly-dir".into(), "ro".into()]) else {
        return;
    };
    let (code, out) = check(&server, "/ro");
    assert_eq!(code, 0, "{out}");
    assert_line(&out, "write ", "not tested: the server refused an upload to /ro");
    assert_line(&out, "write at an offset", "not tested");
    assert_all_opened(&out, 5);
}

/// Before, `check` said all was well on a server where half the data connections failed.
#[test]
fn check_fails_where_data_connections_fail() {
    let Some(server) = servers::pyftpdlib("flaky-data", &[]) else {
        return;
    };
    server.mkdir("f");
    let (code, out) = check(&server, "/f");
    assert_eq!(code, 1, "{out}");
    assert!(line(&out, "data ").contains(" of "), "{out}");
    assert_line(&out, "             failed: ", "425");
    assert_line(&out, "result ", "data connections failed");
}

/// Before the first sync the folder's root does not exist yet: `check` says so, tries no
/// write (it never writes outside the root, nor makes it), and passes. Before, the upload
/// into the missing root got `553` and `check` reported failed data connections (vsftpd).
#[test]
fn check_before_the_first_sync_tests_no_write_and_passes() {
    type Start = fn() -> Option<Server>;
    // vsftpd looks with CWD (LIST only), ProFTPD with MLST.
    let starts: [Start; 2] = [|| servers::vsftpd(false), servers::proftpd];
    for start in starts {
        let Some(server) = start() else { continue };
        let (code, out) = check(&server, "/docs/reports");
        assert_eq!(code, 0, "{}:\n{out}", server.name);
        assert_line(
            &out,
            "write ",
            "not tested: /docs/reports does not exist yet (the first sync creates it)",
        );
        assert_line(&out, "write at an offset", "not tested");
        assert_all_opened(&out, 5);
        assert_line(&out, "result ", "ok");
        assert_left_nothing(&server, &server.data);
    }
}

/// Stock ProFTPD at TLS 1.3: `check` finds that it cannot resume TLS 1.3 data connections,
/// says TLS 1.2 was learned, and keeps it: the next `check` logs in at TLS 1.2, and `status`
/// shows it too.
#[test]
fn check_shows_and_keeps_the_tls_version_learned() {
    let Some(server) = servers::proftpd() else { return };
    server.mkdir("f");
    let work = tempfile::tempdir().expect("tmp");
    let local = work.path().join("local");
    std::fs::create_dir_all(&local).expect("mkdir");
    let cfg = work.path().join("ftps-sync.yaml");
    server.config_yaml(&local, "/f").write(&cfg);
    let run = |what: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_ftps-sync"))
            .args([what, "-c"])
            .arg(&cfg)
            .output()
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), text)
    };
    let (code, first) = run("check");
    assert_eq!(code, 0, "{first}");
    assert_line(&first, "tls ", "TLSv1_3");
    assert_line(&first, "learned ", "TLS 1.2 since");
    assert!(
        first.contains("tls_min_version"),
        "says how to keep TLS 1.3:\n{first}"
    );
    let (code, second) = run("check");
    assert_eq!(code, 0, "{second}");
    assert_line(&second, "tls ", "TLSv1_2");
    assert_line(&second, "tls session", "each data connection resumes");
    assert_line(&second, "learned ", "TLS 1.2 since");
    let (code, status) = run("status");
    assert_eq!(code, 0, "{status}");
    assert_line(&status, "server ", "TLS 1.2 since");
}
