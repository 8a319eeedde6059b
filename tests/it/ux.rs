//! What a user sees and types (issue 14), through the binary against the in-process server:
//! `-c` before the subcommand, `--json` paths and errors, `--exclude`, `--max-delete`, the dry
//! run's totals, `status` (times, the last error, `--conflicts`), a missing config, `--log-file`.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{Harness, put, read};

/// Runs the binary with `args` in `dir`, off the runtime (the server is in this process).
async fn ftps_sync(args: &[&str], dir: &Path) -> Output {
    let args = args.iter().map(|a| (*a).to_owned()).collect();
    crate::cli::run_async(args, dir.to_owned()).await
}

fn shown(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("JSON on stdout ({e}): {}", shown(out)))
}

/// A harness with its config written; the config's path.
async fn harness() -> (Harness, String, PathBuf) {
    let h = Harness::new().await;
    h.config("");
    let cfg = h.config_path().display().to_string();
    let dir = h.dir.path().to_owned();
    (h, cfg, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_names_its_paths_in_json_and_the_dry_run_ends_with_totals() {
    let (h, cfg, dir) = harness().await;
    put(&h.local, "up/a.txt", "a");
    put(&h.remote, "b.txt", "bb");
    // `-c` before the subcommand, and `-n` for the dry run.
    let out = ftps_sync(&["-c", &cfg, "sync", "-n"], &dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("in all: upload 1 (1 B), download 1 (2 B), delete 0 locally and 0 on the server"),
        "{stdout}"
    );
    assert!(read(&h.remote, "up/a.txt").is_none(), "a dry run changed nothing");

    let out = ftps_sync(&["-c", &cfg, "sync", "--json"], &dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let reports = json(&out);
    let paths = &reports[0]["paths"];
    assert_eq!(paths["uploaded"], serde_json::json!(["up/a.txt"]), "{reports}");
    assert_eq!(paths["downloaded"], serde_json::json!(["b.txt"]), "{reports}");
    assert_eq!(paths["deleted_remote"], serde_json::json!([]), "{reports}");

    // A failure is a JSON object too, with the exit code a script branches on.
    let unreachable = h
        .config_yaml()
        .ca_file("pki/ca.pem")
        .port(1)
        .write(&dir.join("unreachable.yaml"));
    let out = ftps_sync(&["sync", "-c", &unreachable, "--json"], &dir).await;
    assert_eq!(out.status.code(), Some(3), "{}", shown(&out));
    let error = json(&out);
    assert_eq!(error["error"]["kind"], "connect", "{error}");
    assert_eq!(error["error"]["exit_code"], 3, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("127.0.0.1:1")),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclude_hides_files_for_one_run_without_deleting_them_anywhere() {
    let (h, cfg, dir) = harness().await;
    put(&h.local, "keep.txt", "k");
    put(&h.local, "logs/a.log", "a");
    put(&h.local, "b.log", "b");
    let out = ftps_sync(&["sync", "-c", &cfg], &dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    // Gone locally; the run that excludes them does not propagate that.
    std::fs::remove_file(h.local.join("b.log")).expect("rm");
    std::fs::remove_dir_all(h.local.join("logs")).expect("rm");
    let out = ftps_sync(
        &["sync", "-c", &cfg, "--exclude", "*.log", "--exclude", "logs"],
        &dir,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 deleted"),
        "{}",
        shown(&out)
    );
    assert_eq!(read(&h.remote, "b.log").as_deref(), Some(&b"b"[..]));
    assert_eq!(read(&h.remote, "logs/a.log").as_deref(), Some(&b"a"[..]));
    // Their rows stayed: without the exclude, the deletions are deletions.
    let out = ftps_sync(&["status", "-c", &cfg, "--json"], &dir).await;
    assert_eq!(json(&out)[0]["files"], 3, "{}", shown(&out));
    // (Two of three files is more than max_delete_percent lets through unasked.)
    let out = ftps_sync(&["sync", "-c", &cfg, "--json", "--max-delete", "2"], &dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let deleted = &json(&out)[0]["paths"]["deleted_remote"];
    assert_eq!(
        deleted,
        &serde_json::json!(["b.log", "logs/a.log"]),
        "{}",
        shown(&out)
    );
    assert!(read(&h.remote, "b.log").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_mass_deletion_names_twenty_paths_and_the_flag_that_lets_it_through() {
    let (h, cfg, dir) = harness().await;
    for i in 0..30 {
        put(&h.local, &format!("f{i:02}.txt"), "x");
    }
    let out = ftps_sync(&["sync", "-c", &cfg], &dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    for i in 0..25 {
        std::fs::remove_file(h.local.join(format!("f{i:02}.txt"))).expect("rm");
    }
    let out = ftps_sync(&["sync", "-c", &cfg], &dir).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    assert!(stderr.contains("would delete 25 of 30 synced files"), "{stderr}");
    assert_eq!(stderr.matches("  would delete f").count(), 20, "{stderr}");
    assert!(stderr.contains("... and 5 more"), "{stderr}");
    assert!(
        stderr.contains(&format!("ftps-sync -c {cfg} sync --folder test --max-delete 25")),
        "{stderr}"
    );
    assert_eq!(
        read(&h.remote, "f00.txt").as_deref(),
        Some(&b"x"[..]),
        "refused: nothing deleted"
    );
    // One fewer than asked is still refused; the count it named goes through.
    let out = ftps_sync(&["sync", "-c", &cfg, "--max-delete", "24"], &dir).await;
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    let out = ftps_sync(&["sync", "-c", &cfg, "--max-delete", "25"], &dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert!(read(&h.remote, "f00.txt").is_none());
    assert!(read(&h.remote, "f29.txt").is_some());
    // A share works as well: 4 of the 5 left is 80%.
    for i in 25..29 {
        std::fs::remove_file(h.local.join(format!("f{i:02}.txt"))).expect("rm");
    }
    let out = ftps_sync(&["sync", "-c", &cfg, "--max-delete", "79%"], &dir).await;
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    let out = ftps_sync(&["sync", "-c", &cfg, "--max-delete", "80%"], &dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert!(read(&h.remote, "f28.txt").is_none());
    let out = ftps_sync(&["sync", "-c", &cfg, "--max-delete", "120%"], &dir).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "a share over 100% is a usage error: {}",
        shown(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_gives_readable_times_clears_an_old_error_and_lists_conflict_copies() {
    let (h, cfg, dir) = harness().await;
    put(&h.local, "notes.txt", "base");
    let out = ftps_sync(&["sync", "-c", &cfg], &dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    // Both sides change: a conflict, both versions kept.
    put(&h.local, "notes.txt", "local edit");
    put(&h.remote, "notes.txt", "remote edit!");
    let out = ftps_sync(&["sync", "-c", &cfg], &dir).await;
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    let out = ftps_sync(&["status", "-c", &cfg, "--conflicts"], &dir).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 conflict copy to look at"), "{stdout}");
    let copy_line = stdout
        .lines()
        .find(|l| l.contains("<-"))
        .unwrap_or_else(|| panic!("no conflict listed: {stdout}"));
    assert!(
        copy_line
            .trim_start()
            .starts_with("notes.txt  <-  notes.conflict-")
            && copy_line.contains("version"),
        "{copy_line}"
    );
    // Readable times: no nanoseconds, no `T`, and how long ago.
    let last = stdout
        .lines()
        .find(|l| l.contains("last pass:"))
        .expect("last pass line");
    assert!(
        last.contains("seconds ago") || last.contains("second ago"),
        "{last}"
    );
    assert!(!last.contains('T') && !last.contains("+00:00"), "{last}");

    // A failed pass shows its error with its time, until a good pass clears it.
    let unreachable = h
        .config_yaml()
        .ca_file("pki/ca.pem")
        .port(1)
        .write(&dir.join("unreachable.yaml"));
    let out = ftps_sync(&["sync", "-c", &unreachable], &dir).await;
    assert_eq!(out.status.code(), Some(3), "{}", shown(&out));
    let out = ftps_sync(&["status", "-c", &cfg], &dir).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let error = stdout
        .lines()
        .find(|l| l.contains("last error"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(error.contains("ago): cannot connect to 127.0.0.1:1"), "{error}");
    let out = ftps_sync(&["sync", "-c", &cfg], &dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let out = ftps_sync(&["status", "-c", &cfg, "--json"], &dir).await;
    let status = json(&out);
    assert_eq!(status[0]["last_error"], serde_json::Value::Null, "{status}");
    assert_eq!(status[0]["last_result"], "ok", "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_config_names_every_place_looked_at() {
    let dir = tempfile::tempdir().expect("tmp");
    let xdg = dir.path().join("xdg");
    let out = tokio::task::spawn_blocking({
        let (dir, xdg) = (dir.path().to_owned(), xdg.clone());
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_ftps-sync"))
                .arg("status")
                .current_dir(&dir)
                .env_remove("FTPS_SYNC_CONFIG")
                .env("XDG_CONFIG_HOME", &xdg)
                .output()
                .expect("run")
        }
    })
    .await
    .expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let want = format!(
        "no config file found; looked for ftps-sync.yaml and {}",
        xdg.join("ftps-sync/config.yaml").display()
    );
    assert!(stderr.contains(&want), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_file_takes_the_log_lines_and_an_explicit_level_wins_over_quiet() {
    let (h, cfg, dir) = harness().await;
    put(&h.local, "a.txt", "a");
    let log = dir.join("logs/run.log");
    let log_arg = log.display().to_string();
    let out = ftps_sync(
        &[
            "sync",
            "-c",
            &cfg,
            "-q",
            "--log-level",
            "debug",
            "--log-file",
            &log_arg,
        ],
        &dir,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert!(out.stderr.is_empty(), "the log went to the file: {}", shown(&out));
    // Rotated daily: `run.log.YYYY-MM-DD`.
    let written: Vec<PathBuf> = std::fs::read_dir(dir.join("logs"))
        .expect("log dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    let lines = std::fs::read_to_string(&written[0]).expect("log");
    assert!(lines.contains("uploaded"), "{lines}");
    assert!(lines.contains("DEBUG"), "--log-level debug won over -q: {lines}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_trust_shows_the_certificate_and_pins_it_keeping_the_config_as_written() {
    let h = Harness::new().await;
    let dir = h.dir.path().to_owned();
    // No ca_file: the test CA is unknown here, as a self-signed server's would be.
    let written = format!(
        "# written by hand\n{}",
        h.config_yaml().server("  # the box in the basement\n").render()
    );
    let path = h.config_path();
    std::fs::write(&path, &written).expect("config");
    let cfg = path.display().to_string();
    let out = ftps_sync(&["sync", "-c", &cfg], &dir).await;
    assert_eq!(out.status.code(), Some(3), "untrusted at first: {}", shown(&out));

    // Without a terminal to ask on, it asks for --yes and changes nothing.
    let out = ftps_sync(&["check", "-c", &cfg, "--trust"], &dir).await;
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--yes"),
        "{}",
        shown(&out)
    );
    assert_eq!(std::fs::read_to_string(&path).expect("config"), written);

    let out = ftps_sync(&["check", "-c", &cfg, "--trust", "--yes"], &dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "subject      ".to_owned(),
        "issuer       CN=ftps-sync throwaway CA".to_owned(),
        "valid        ".to_owned(),
        format!("fingerprint  SHA-256 {}", h.pki.fingerprint),
        "pinned: ".to_owned(),
    ] {
        assert!(stdout.contains(&line), "no {line:?} in {stdout}");
    }
    let pinned = std::fs::read_to_string(&path).expect("config");
    assert!(pinned.starts_with("# written by hand\nserver:\n"), "{pinned}");
    assert!(pinned.contains("# the box in the basement"), "{pinned}");
    assert!(
        pinned.contains(&format!("  fingerprint_sha256: \"{}\"\n", h.pki.fingerprint)),
        "{pinned}"
    );
    put(&h.local, "a.txt", "a");
    let out = ftps_sync(&["sync", "-c", &cfg], &dir).await;
    assert_eq!(out.status.code(), Some(0), "the pin is trusted: {}", shown(&out));
    // Once pinned, `check` says where, and no longer asks for it.
    let out = ftps_sync(&["check", "-c", &cfg], &dir).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("pinned (fingerprint_sha256 in {cfg})")) && !stdout.contains("to pin it"),
        "{}",
        shown(&out)
    );
    let out = ftps_sync(&["check", "-c", &cfg, "--trust", "--yes"], &dir).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("already pinned"),
        "{}",
        shown(&out)
    );

    // A pin that no longer matches: the change is said, and the new one pinned over it.
    let wrong = format!("  fingerprint_sha256: \"{}\"\n", ["00"; 32].join(":"));
    let stale = pinned.replace(
        &format!("  fingerprint_sha256: \"{}\"\n", h.pki.fingerprint),
        &wrong,
    );
    std::fs::write(&path, &stale).expect("config");
    let out = ftps_sync(&["check", "-c", &cfg, "--trust", "--yes"], &dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("the server's certificate changed"),
        "{}",
        shown(&out)
    );
    assert_eq!(std::fs::read_to_string(&path).expect("config"), pinned);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_trust_does_not_pin_a_certificate_already_trusted_unless_forced() {
    let (h, cfg, dir) = harness().await;
    let before = std::fs::read_to_string(h.config_path()).expect("config");
    let out = ftps_sync(&["check", "-c", &cfg, "--trust", "--yes"], &dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("trusted already") && stdout.contains("--force"),
        "{stdout}"
    );
    assert_eq!(std::fs::read_to_string(h.config_path()).expect("config"), before);
    let out = ftps_sync(&["check", "-c", &cfg, "--trust", "--yes", "--force"], &dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let after = std::fs::read_to_string(h.config_path()).expect("config");
    assert!(after.contains(&h.pki.fingerprint), "{after}");
    // A pin that no longer matches is replaced, trusted certificate or not: it would refuse
    // every connection.
    let stale = after.replace(&h.pki.fingerprint, &["00"; 32].join(":"));
    std::fs::write(h.config_path(), &stale).expect("config");
    let out = ftps_sync(&["check", "-c", &cfg, "--trust", "--yes"], &dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert_eq!(std::fs::read_to_string(h.config_path()).expect("config"), after);
}

/// `sync -P` in a real terminal (a pty, through `script`): the progress shows while a limited
/// transfer runs, and the screen it leaves holds the report and no bar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_progress_in_a_terminal_shows_and_leaves_the_screen_clean() {
    let (h, cfg, dir) = harness().await;
    put(&h.local, "big.bin", vec![1u8; 3 << 20]);
    let command = format!(
        "stty cols 120 rows 40; exec {} sync -c {cfg} -P --bwlimit 1MiB/s",
        env!("CARGO_BIN_EXE_ftps-sync")
    );
    let out = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || {
            std::process::Command::new("script")
                .args(["-q", "-e", "-c", &command, "/dev/null"])
                .current_dir(&dir)
                .env("TERM", "xterm-256color")
                .env_remove("NO_COLOR")
                .output()
        }
    })
    .await
    .expect("join");
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            crate::support::skip("the terminal test", format!("cannot run script: {e}"));
            return;
        }
    };
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let raw = String::from_utf8_lossy(&out.stdout);
    // Drawn while it ran: the bar's rate and time left, and the transfer in flight.
    assert!(raw.contains("ETA"), "no progress drawn: {raw:?}");
    assert!(raw.contains("up   big.bin"), "no transfer line: {raw:?}");
    let size = |n| std::num::NonZeroU16::new(n).expect("non-zero");
    let mut screen = vt100::Parser::new(size(40), size(120), 0);
    screen.process(&out.stdout);
    let shown = screen.screen().contents();
    assert!(
        shown.contains("test: 1 uploaded"),
        "the report is on screen: {shown}"
    );
    assert!(
        !shown.contains("ETA") && !shown.contains("% of 3.0 MiB"),
        "a bar was left: {shown}"
    );
    assert_eq!(read(&h.remote, "big.bin").map(|b| b.len()), Some(3 << 20));
}

/// `-P` without a terminal (stderr into a pipe): a summary line every 2 seconds instead of bars.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_progress_without_a_terminal_prints_summary_lines() {
    let (h, cfg, dir) = harness().await;
    put(&h.local, "slow.bin", vec![2u8; 5 << 20]);
    let out = ftps_sync(&["sync", "-c", &cfg, "-P", "--bwlimit", "1MiB/s"], &dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(" of 1 files, ")).collect();
    assert!(!lines.is_empty(), "no progress line: {stderr}");
    assert!(lines[0].starts_with("test: 0 of 1 files, "), "{}", lines[0]);
    assert!(
        lines[0].contains("MiB of 5.0 MiB") && lines[0].contains("1 in flight"),
        "{}",
        lines[0]
    );
    assert!(
        !stderr.contains('\x1b'),
        "no escape codes without a terminal: {stderr:?}"
    );
    // Without -P and without a terminal: nothing of the kind.
    put(&h.local, "quick.txt", "q");
    let out = ftps_sync(&["sync", "-c", &cfg], &dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 uploaded"),
        "{}",
        shown(&out)
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(" in flight"),
        "{}",
        shown(&out)
    );
}
