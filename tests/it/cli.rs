//! The binary: config errors exit 2 naming the key; connection failures exit 3.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::ConfigYaml;

pub fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ftps-sync"))
        .args(args)
        .current_dir(dir)
        .env_remove("FTPS_SYNC_CONFIG")
        .env("FTPS_SYNC_TEST_PASSWORD", "pw")
        .output()
        .expect("run the binary")
}

/// A config at `dir/c.yaml` for a server that is never reached (port 1), its password from
/// the environment (`run` sets it).
pub fn offline_config(dir: &Path) -> ConfigYaml {
    let local = dir.join("local");
    std::fs::create_dir_all(&local).expect("mkdir");
    ConfigYaml::new(1, &local, "/r")
        .user("u")
        .password_env("FTPS_SYNC_TEST_PASSWORD")
        .ca_file("ca.pem")
        .name("f")
}

/// Runs `sync` on a config and expects exit 2 with `key` and `line` in the one-line message.
fn expect_config_error(server_extra: &str, folder_extra: &str, top_extra: &str, key: &str, line: usize) {
    let dir = tempfile::tempdir().expect("tmp");
    let path = offline_config(dir.path())
        .server(server_extra)
        .folder(folder_extra)
        .top(top_extra)
        .write(&dir.path().join("c.yaml"));
    let out = run(&["sync", "-c", &path], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(key), "{key} not named in: {stderr}");
    assert!(
        stderr.contains(&format!("c.yaml:{line}:")),
        "line {line} not in: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn unknown_key() {
    expect_config_error("  colour: blue\n", "", "", "colour", 7);
}

#[test]
fn wrong_type() {
    expect_config_error("  connections: many\n", "", "", "connections", 7);
}

#[test]
fn bad_duration() {
    expect_config_error("", "", "poll_interval: soonish\n", "poll_interval", 12);
}

#[test]
fn both_password_sources() {
    expect_config_error("  password_file: pw.txt\n", "", "", "server.password_file", 7);
}

#[test]
fn relative_local_root() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = offline_config(dir.path()).write(&dir.path().join("c.yaml"));
    let text = std::fs::read_to_string(&path).expect("read");
    let local = dir.path().join("local").display().to_string();
    std::fs::write(&path, text.replace(&local, "relative/dir")).expect("write");
    let out = run(&["sync", "-c", &path], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("folders[0].local") && stderr.contains("c.yaml:9:"),
        "{stderr}"
    );
}

#[test]
fn log_file_receives_the_log_and_rotates_by_day() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("tmp");
    let mut w = ftps_sync::logging::log_file(&dir.path().join("logs/ftps-sync.log")).expect("log file");
    w.write_all(b"a line\n").expect("write");
    w.flush().expect("flush");
    let files: Vec<String> = std::fs::read_dir(dir.path().join("logs"))
        .expect("logs dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].starts_with("ftps-sync.log.20"), "dated name: {files:?}");
}

#[test]
fn missing_config_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = run(&["sync", "-c", "nope.yaml"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.yaml"));
}

#[test]
fn unreachable_server_exits_3() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = offline_config(dir.path()).write(&dir.path().join("c.yaml"));
    std::fs::write(
        dir.path().join("ca.pem"),
        ftps_sync::demo::TestPki::new().expect("pki").ca_pem,
    )
    .expect("ca");
    let out = run(&["sync", "-c", &path], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
}

#[test]
fn example_config_documents_every_key_and_loads() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.yaml"))
        .expect("example");
    let dir = tempfile::tempdir().expect("tmp");
    let mut patched = text.clone();
    for local in ["/srv/reports", "/srv/photos"] {
        let d = dir.path().join(local.trim_start_matches('/'));
        std::fs::create_dir_all(&d).expect("mkdir");
        patched = patched.replace(local, &d.display().to_string());
    }
    // SAFETY: only this test reads this variable.
    unsafe { std::env::set_var("FTPS_SYNC_PASSWORD", "example") };
    let config =
        ftps_sync::config::Config::parse(&patched, &dir.path().join("example.yaml")).expect("example loads");
    assert_eq!(config.folders.len(), 2);
    for key in [
        "host:",
        "port:",
        "tls:",
        "tls_max_version:",
        "insecure_plaintext:",
        "user:",
        "password_env:",
        "password_file:",
        "ca_file:",
        "fingerprint_sha256:",
        "client_cert:",
        "client_key:",
        "passive:",
        "connections:",
        "segment_from:",
        "timeout:",
        "name:",
        "local:",
        "remote:",
        "direction:",
        "delete:",
        "conflict:",
        "ignore:",
        "max_delete_percent:",
        "first_sync:",
        "state_dir:",
        "poll_interval:",
        "debounce:",
        "retry:",
        "attempts:",
        "initial_backoff:",
        "max_backoff:",
        "verify:",
        "bandwidth_limit:",
        "log:",
        "level:",
        "format:",
        "file:",
        "metrics_listen:",
    ] {
        assert!(text.contains(key), "example.yaml does not mention {key}");
    }
}

/// Runs the binary off the async runtime, so the in-process server keeps serving.
pub async fn run_async(args: Vec<String>, dir: std::path::PathBuf) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args, &dir)
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_json_dry_run_and_check_against_a_real_server() {
    let h = crate::support::Harness::new().await;
    crate::support::put(&h.local, "a.txt", "a");
    crate::support::put(&h.remote, "b.txt", "b");
    h.config("");
    let cfg = h.config_path().display().to_string();
    let dir = h.dir.path().to_owned();

    let out = run_async(
        vec!["sync".into(), "-c".into(), cfg.clone(), "--dry-run".into()],
        dir.clone(),
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("upload          a.txt") && stdout.contains("dry run"),
        "{stdout}"
    );
    assert!(crate::support::read(&h.remote, "a.txt").is_none());

    let out = run_async(
        vec![
            "-vv".into(),
            "sync".into(),
            "-c".into(),
            cfg.clone(),
            "--json".into(),
        ],
        dir.clone(),
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(reports[0]["uploaded"], 1);
    assert_eq!(reports[0]["downloaded"], 1);
    assert_eq!(reports[0]["dry_run"], false, "the key --json always had");
    // Trace-level logs and JSON output never carry the password.
    for text in [
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    ] {
        assert!(!text.contains(crate::support::PASSWORD), "password leaked");
    }
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("FEAT"),
        "trace logs were on"
    );

    let out = run_async(vec!["check".into(), "-c".into(), cfg.clone()], dir.clone()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("fingerprint_sha256: \"{}\"", h.pki.fingerprint)),
        "{stdout}"
    );
    assert!(stdout.contains("listing      MLSD"), "{stdout}");

    let out = run_async(vec!["status".into(), "-c".into(), cfg.clone()], dir.clone()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("test: 2 files"), "{stdout}");
    // Local changes not yet synced show up as pending.
    crate::support::put(&h.local, "new.txt", "new");
    std::fs::remove_file(h.local.join("a.txt")).expect("rm");
    let out = run_async(vec!["status".into(), "-c".into(), cfg, "--json".into()], dir).await;
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(status[0]["pending_local_changes"], 2, "{status}");
}

/// Logs that go to a file (or a pipe, or the journal) carry no colour codes, whatever `TERM`
/// says; and `bandwidth_limit` is enforced without a warning that it is not: 1 MiB at 1 MiB/s
/// cannot finish in less than the 0.75 s its last chunk has to wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_logging_to_a_file_has_no_escape_codes_and_keeps_the_bandwidth_limit() {
    let h = crate::support::Harness::new().await;
    crate::support::put(&h.local, "big.bin", vec![7u8; 1024 * 1024]);
    std::fs::write(
        h.config_path(),
        h.config_yaml()
            .ca_file("pki/ca.pem")
            .top("bandwidth_limit: 1MiB/s\n")
            .render(),
    )
    .expect("config");
    let cfg = h.config_path().display().to_string();
    let dir = h.dir.path().to_owned();
    let log = dir.join("stderr.log");
    let stderr = std::fs::File::create(&log).expect("log file");
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ftps-sync"))
            .args(["sync", "-c", &cfg])
            .current_dir(&dir)
            .env_remove("NO_COLOR")
            .env("TERM", "xterm-256color")
            .stderr(stderr)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run the binary")
    })
    .await
    .expect("join");
    let took = started.elapsed();
    let text = std::fs::read_to_string(&log).expect("log");
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(text.contains("big.bin"), "the pass logged its transfer: {text}");
    assert!(!text.contains('\x1b'), "escape codes in a log file: {text:?}");
    assert!(!text.contains("not enforced"), "{text}");
    assert!(
        took >= std::time::Duration::from_millis(750),
        "1 MiB at 1 MiB/s took only {took:?}"
    );
    assert_eq!(
        crate::support::read(&h.remote, "big.bin").map(|b| b.len()),
        Some(1024 * 1024)
    );
}

/// A dry run reports local names that cannot be synced, as a real pass does, and exits 1 for
/// them; its JSON carries them too.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reports_names_that_cannot_be_synced() {
    let h = crate::support::Harness::new().await;
    crate::support::put(&h.local, "fine.txt", "ok");
    crate::support::put(&h.local, "back\\slash.txt", "not a portable name");
    h.config("");
    let cfg = h.config_path().display().to_string();
    let dir = h.dir.path().to_owned();
    let args = |json: bool| {
        let mut a = vec!["sync".to_owned(), "-c".into(), cfg.clone(), "--dry-run".into()];
        if json {
            a.push("--json".into());
        }
        a
    };
    let out = run_async(args(false), dir.clone()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("skipped ") && stdout.contains("slash.txt"),
        "{stdout}"
    );
    assert!(stdout.contains("upload          fine.txt"), "{stdout}");

    let out = run_async(args(true), dir).await;
    assert_eq!(out.status.code(), Some(1));
    let plans: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(plans[0]["dry_run"], true, "{plans}");
    assert_eq!(plans[0]["skipped"].as_array().map(Vec::len), Some(1), "{plans}");
    assert_eq!(plans[0]["totals"]["upload"], 1, "{plans}");
    assert!(
        crate::support::read(&h.remote, "fine.txt").is_none(),
        "a dry run changed nothing"
    );
}
