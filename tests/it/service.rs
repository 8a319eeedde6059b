//! `ftps-sync run` as a process: it follows local and remote changes, refuses a second
//! instance, and stops cleanly on SIGTERM.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Harness, assert_holds, put, read};

/// Starts the binary in `dir`, its log (stderr) in `dir/run.log`.
pub(crate) fn spawn(args: &[&str], dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ftps-sync"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("run.log")).expect("log"))
        .spawn()
        .expect("start the binary")
}

/// Runs the binary to completion off the async workers (the server runs on them).
async fn output(args: &[&str], dir: &Path) -> std::process::Output {
    let (args, dir): (Vec<String>, std::path::PathBuf) =
        (args.iter().map(|a| a.to_string()).collect(), dir.to_owned());
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_ftps-sync"))
            .args(&args)
            .current_dir(&dir)
            .output()
            .expect("run the binary")
    })
    .await
    .expect("join")
}

/// Polls `cond` every 50 ms for up to `secs`.
pub(crate) async fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

pub(crate) fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .args(["-s", "TERM", "--", &child.id().to_string()])
        .status();
}

pub(crate) async fn wait_exit(child: &mut Child, secs: u64) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    None
}

fn config(h: &Harness) -> String {
    config_polling(h, "1s")
}

fn config_polling(h: &Harness, poll_interval: &str) -> String {
    h.config_yaml()
        .ca_file("pki/ca.pem")
        .top(&format!("poll_interval: {poll_interval}\ndebounce: 200ms\n"))
        .write(&h.config_path())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_follows_changes_on_both_sides_and_stops_on_sigterm() {
    let h = Harness::new().await;
    let cfg = config(&h);
    let mut child = spawn(&["run", "-c", &cfg], h.dir.path());

    put(&h.local, "a.txt", "first");
    eventually(15, "a local file reaches the server", || {
        read(&h.remote, "a.txt").as_deref() == Some(&b"first"[..])
    })
    .await;
    put(&h.local, "a.txt", "second, longer");
    eventually(15, "a local edit reaches the server", || {
        read(&h.remote, "a.txt").as_deref() == Some(&b"second, longer"[..])
    })
    .await;
    put(&h.remote, "r.txt", "from the server");
    eventually(15, "a remote file arrives after a poll", || {
        read(&h.local, "r.txt").is_some()
    })
    .await;
    std::fs::remove_file(h.local.join("a.txt")).expect("rm");
    eventually(15, "a local delete reaches the server", || {
        read(&h.remote, "a.txt").is_none()
    })
    .await;

    // A second instance on the same state dir is refused.
    let out = output(&["sync", "-c", &cfg], h.dir.path()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("already working"), "{stderr}");

    terminate(&child);
    let code = wait_exit(&mut child, 20).await;
    let log = std::fs::read_to_string(h.dir.path().join("run.log")).unwrap_or_default();
    assert_eq!(code, Some(0), "run did not stop cleanly:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_large_upload_leaves_no_partial_file_and_the_next_run_finishes() {
    let h = Harness::new().await;
    let cfg = config(&h);
    let data: Vec<u8> = (0..(96u32 << 20)).map(|i| (i >> 9) as u8).collect();
    put(&h.local, "big.bin", &data);
    let mut child = spawn(&["run", "-c", &cfg], h.dir.path());
    eventually(20, "the upload starts", || {
        !crate::support::part_files(&h.remote).is_empty()
    })
    .await;
    terminate(&child);
    let code = wait_exit(&mut child, 30).await;
    assert_eq!(code, Some(0));
    if let Some(got) = read(&h.remote, "big.bin") {
        assert!(got == data, "a file under its real name is complete");
    }
    let out = output(&["sync", "-c", &cfg], h.dir.path()).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_holds(&h.remote, "big.bin", &data);
    assert!(crate::support::part_files(&h.remote).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_a_conflict_that_run_produced() {
    let h = Harness::new().await;
    let cfg = config(&h);
    put(&h.local, "doc.txt", "base");
    assert!(output(&["sync", "-c", &cfg], h.dir.path()).await.status.success());
    put(&h.local, "doc.txt", "local edit");
    put(&h.remote, "doc.txt", "remote edit, longer");
    let mut child = spawn(&["-v", "run", "-c", &cfg], h.dir.path());
    let copies = |root: &Path| {
        std::fs::read_dir(root)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().contains(".conflict-"))
                    .count()
            })
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(copies(&h.local) == 1 && copies(&h.remote) == 1) {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(h.dir.path().join("run.log")).unwrap_or_default();
            panic!("no conflict copy on both sides; run.log:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The state store commits each action as it finishes: poll status while run works.
    let mut status = serde_json::Value::Null;
    for _ in 0..100 {
        let out = output(&["status", "-c", &cfg, "--json"], h.dir.path()).await;
        status = serde_json::from_slice(&out.stdout).expect("status JSON");
        if status[0]["conflict_copies"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status[0]["conflict_copies"], 1, "{status}");
    terminate(&child);
    assert_eq!(wait_exit(&mut child, 20).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_passes_look_only_at_what_changed() {
    let h = Harness::new().await;
    put(&h.local, "docs/old.txt", "old");
    put(&h.local, "keep/k.txt", "k");
    // No poll during the test: only the watcher starts passes after the first.
    let cfg = config_polling(&h, "1h");
    let mut child = spawn(&["run", "-c", &cfg], h.dir.path());
    eventually(15, "the first pass", || read(&h.remote, "keep/k.txt").is_some()).await;

    // A change on the server is left for the poll timer's full pass...
    put(&h.remote, "keep/server.txt", "from the server");
    put(&h.local, "new/deep/er/n.txt", "new");
    eventually(15, "a new nested file reaches the server", || {
        read(&h.remote, "new/deep/er/n.txt").is_some()
    })
    .await;
    std::fs::rename(h.local.join("docs"), h.local.join("papers")).expect("rename a directory");
    eventually(15, "a renamed directory reaches the server", || {
        read(&h.remote, "papers/old.txt").is_some() && !h.remote.join("docs").exists()
    })
    .await;
    std::fs::remove_dir_all(h.local.join("new")).expect("rm -r");
    eventually(15, "a deleted directory is deleted on the server", || {
        !h.remote.join("new").exists()
    })
    .await;
    // ...so watcher-driven passes did not bring it down.
    assert!(read(&h.local, "keep/server.txt").is_none());

    terminate(&child);
    let code = wait_exit(&mut child, 20).await;
    let log = std::fs::read_to_string(h.dir.path().join("run.log")).unwrap_or_default();
    assert_eq!(code, Some(0), "run did not stop cleanly:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_remote_says_what_the_next_pass_would_do_and_changes_nothing() {
    let h = Harness::new().await;
    let cfg = config(&h);
    put(&h.local, "a.txt", "a");
    put(&h.local, "gone.txt", "g");
    assert!(output(&["sync", "-c", &cfg], h.dir.path()).await.status.success());
    put(&h.remote, "new-on-server.txt", "n");
    put(&h.local, "a.txt", "edited locally");
    std::fs::remove_file(h.remote.join("gone.txt")).expect("rm on the server");

    let out = output(&["status", "-c", &cfg, "--json", "--remote"], h.dir.path()).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(
        status[0]["next_pass"],
        serde_json::json!({"upload": 1, "download": 1, "delete_local": 1, "delete_remote": 0, "move_local": 0, "move_remote": 0, "conflicts": 0, "skipped": 0}),
        "{status}"
    );
    let text = output(&["status", "-c", &cfg, "--remote"], h.dir.path()).await;
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("the next pass would: upload 1, download 1, delete 1 locally and 0 on the server"),
        "{text}"
    );
    // Looking changed nothing.
    assert!(read(&h.local, "new-on-server.txt").is_none());
    assert!(read(&h.local, "gone.txt").is_some());
    assert_holds(&h.remote, "a.txt", b"a");
}

/// `curl` on `url`: (HTTP status, body). `None` when curl cannot run here.
fn curl(url: &str) -> Option<(u16, String)> {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", url])
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            crate::support::skip("the metrics scrape", format!("cannot run curl: {e}"));
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n')?;
    Some((code.trim().parse().unwrap_or(0), body.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_metrics_that_a_scrape_reads_while_it_works() {
    let h = Harness::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let cfg = h
        .config_yaml()
        .ca_file("pki/ca.pem")
        .top(&format!(
            "poll_interval: 1s\ndebounce: 200ms\nmetrics_listen: 127.0.0.1:{port}\n"
        ))
        .write(&h.config_path());
    put(&h.local, "a.txt", "hello");
    let mut child = spawn(&["run", "-c", &cfg], h.dir.path());
    let base = format!("http://127.0.0.1:{port}");
    let mut scraped = String::new();
    let mut curl_missing = false;
    eventually(20, "a scrape shows the first pass's upload", || {
        match curl(&format!("{base}/metrics")) {
            Some((200, body)) => scraped = body,
            Some(_) => {}
            None => curl_missing = true,
        }
        curl_missing || scraped.contains("ftps_sync_files_total{folder=\"test\",direction=\"up\"} 1")
    })
    .await;
    if curl_missing {
        terminate(&child);
        wait_exit(&mut child, 20).await;
        return;
    }
    for line in [
        "ftps_sync_passes_total{folder=\"test\",result=\"ok\"}",
        "ftps_sync_bytes_total{folder=\"test\",direction=\"up\"} 5",
        "ftps_sync_pool_connections 4",
        "ftps_sync_last_success_timestamp_seconds{folder=\"test\"}",
        "# EOF",
    ] {
        assert!(scraped.contains(line), "no {line:?} in\n{scraped}");
    }
    // A server-side change comes down, and the next scrape counts it.
    put(&h.remote, "b.txt", "from the server");
    eventually(20, "the download is counted", || {
        curl(&format!("{base}/metrics")).is_some_and(|(_, body)| {
            body.contains("ftps_sync_files_total{folder=\"test\",direction=\"down\"} 1")
        })
    })
    .await;
    assert_eq!(curl(&format!("{base}/healthz")), Some((200, "ok\n".to_owned())));
    assert_eq!(curl(&format!("{base}/nothing")).map(|(code, _)| code), Some(404));
    terminate(&child);
    assert_eq!(wait_exit(&mut child, 20).await, Some(0));
    assert_eq!(read(&h.local, "b.txt").as_deref(), Some(&b"from the server"[..]));
}

/// The service loop driven from outside, as the simulation drives a pass: its connector and its
/// local changes are the caller's. A change sent for a file starts a pass that uploads it, with
/// the poll timer an hour away (so it was the change, not a poll); a change for nothing new
/// moves nothing; shutdown ends the loop cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_loop_runs_on_the_changes_it_is_sent() {
    use ftps_sync::daemon::{Drive, Events, run};
    use ftps_sync::local::watch::Change;
    use ftps_sync::path::RelPath;

    let h = Harness::new().await;
    let mut config = h.config("");
    config.poll_interval = Duration::from_secs(3600);
    config.debounce = Duration::from_millis(50);
    let connector = ftps_sync::remote::ftps::FtpsConnector::for_server(&config.server).expect("connector");
    let (send, changes) = tokio::sync::mpsc::unbounded_channel();
    let events = Events::Sent([(config.folders[0].name.clone(), changes)].into());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let service = tokio::spawn({
        let (config, shutdown) = (config.clone(), shutdown.clone());
        let drive = Drive {
            connector,
            events,
            clock: Default::default(),
            disk: Default::default(),
            turns: None,
        };
        async move { run(&config, drive, shutdown).await }
    });
    // The pass at start finds nothing; then a file appears, and only a change says so.
    tokio::time::sleep(Duration::from_millis(500)).await;
    put(&h.local, "new.txt", "sent");
    // Older than the quiet period (the debounce) by the time the pass looks.
    tokio::time::sleep(Duration::from_millis(200)).await;
    send.send(Change::Path(RelPath::new("new.txt").expect("path")))
        .expect("send");
    let deadline = Instant::now() + Duration::from_secs(20);
    while read(&h.remote, "new.txt").is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_holds(&h.remote, "new.txt", b"sent");
    shutdown.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(30), service).await;
    ended
        .expect("the loop ends on shutdown")
        .expect("join")
        .expect("run");
}
