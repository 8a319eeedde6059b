//! The crash matrix: `ftps-sync sync` (the real binary) SIGKILLed at random moments of a
//! two-way sync with vsftpd (LIST only, no hash) of about 2,000 files, a few of them tens of MiB
//! so that kills land mid-transfer, with user edits, new files and deletions on both sides
//! between kills. Then both sides are checked on disk: nothing partial under a real name, no
//! lost edit, no conflict copy (no path is edited on both sides, so any would be false), no
//! deletion undone; the next pass completes and the one after it moves nothing.
//!
//! `FTPS_SYNC_CRASH_KILLS` (default 100) sets the number of kills, `FTPS_SYNC_CRASH_SEED` replays
//! a run (every run prints its seed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::servers::{self, Server};
use crate::support::{Rng, put, tree};

/// What a path is for: who may change it, so that no path is changed on both sides.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    LocalEdits,
    RemoteEdits,
    LocalDeletes,
    RemoteDeletes,
    Untouched,
}

/// Every content a user ever wrote at each path, the last one, and what was deleted.
#[derive(Default)]
struct Model {
    versions: BTreeMap<String, Vec<Vec<u8>>>,
    last: BTreeMap<String, Vec<u8>>,
    deleted: BTreeSet<String>,
}

impl Model {
    fn wrote(&mut self, path: &str, content: Vec<u8>) {
        self.versions
            .entry(path.to_owned())
            .or_default()
            .push(content.clone());
        self.last.insert(path.to_owned(), content);
    }
}

fn content(path: &str, version: u64, size: usize) -> Vec<u8> {
    let line = format!("{path} version {version}\n");
    line.bytes().cycle().take(size.max(line.len())).collect()
}

fn sync(cfg: &str, dir: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_ftps-sync"))
        .args(["sync", "-q", "--json", "-c", cfg])
        .current_dir(dir)
        .env_remove("FTPS_SYNC_FAILPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary")
}

fn finish(cfg: &str, dir: &Path) -> Output {
    sync(cfg, dir).wait_with_output().expect("wait")
}

fn moved(out: &Output) -> u64 {
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    reports
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            [
                "uploaded",
                "downloaded",
                "deleted_local",
                "deleted_remote",
                "conflicts",
            ]
            .iter()
            .map(|k| r[k].as_u64().unwrap_or(0))
            .sum::<u64>()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_killed_at_random_moments_loses_nothing_and_finishes() {
    let Some(server) = servers::vsftpd(false) else {
        return;
    };
    tokio::task::spawn_blocking(move || matrix(&server))
        .await
        .expect("the matrix");
}

fn matrix(server: &Server) {
    let kills: usize = std::env::var("FTPS_SYNC_CRASH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(100);
    let seed: u64 = std::env::var("FTPS_SYNC_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    super::report(&format!(
        "crash matrix: seed {seed}, {kills} kills (replay: FTPS_SYNC_CRASH_SEED={seed})"
    ));
    let mut rng = Rng(seed);
    let work = tempfile::tempdir().expect("tmp");
    let local = work.path().join("local");
    std::fs::create_dir_all(&local).expect("mkdir");
    server.mkdir("matrix");
    let remote = server.data.join("matrix");
    let cfg = server
        .config_yaml(&local, "/matrix")
        .folder("    max_delete_percent: 100\n")
        .write(&work.path().join("c.yaml"));

    let mut model = Model::default();
    let mut roles: BTreeMap<String, Role> = BTreeMap::new();
    let role_of = |i: u64| match i % 5 {
        0 => Role::LocalEdits,
        1 => Role::RemoteEdits,
        2 => Role::LocalDeletes,
        3 => Role::RemoteDeletes,
        _ => Role::Untouched,
    };
    // 1,800 files start local, 200 on the server; three of tens of MiB.
    for i in 0..2_000u64 {
        let origin_remote = i >= 1_800;
        let path = format!("d{:02}/f{i:04}.txt", i % 40);
        let size = 200 + rng.below(12_000) as usize;
        let c = content(&path, 0, size);
        if origin_remote {
            server.put(&format!("matrix/{path}"), &c);
        } else {
            put(&local, &path, &c);
        }
        model.wrote(&path, c);
        roles.insert(path, role_of(i));
    }
    for (i, mib) in [(0u64, 24usize), (1, 32), (4, 20)] {
        let path = format!("big/b{i}.bin");
        let c = content(&path, 0, mib << 20);
        put(&local, &path, &c);
        model.wrote(&path, c);
        roles.insert(path, role_of(i));
    }

    let mut version = 0u64;
    let mut new_files = 0u64;
    let mut killed_running = 0;
    let started = Instant::now();
    // How long a pass that was let finish took: kills are spread over that much time, so they
    // land in starts, listings, transfers and records alike however short passes become.
    let mut pass_took = Duration::from_secs(3);
    for k in 0..kills {
        let delay = Duration::from_millis(rng.below(pass_took.as_millis() as u64 * 11 / 10 + 1));
        let began = Instant::now();
        let mut child = sync(&cfg, work.path());
        let deadline = began + delay;
        let mut ran_out = false;
        while Instant::now() < deadline {
            if child.try_wait().expect("poll").is_some() {
                ran_out = true;
                pass_took = began.elapsed();
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if !ran_out {
            killed_running += 1;
            let _ = child.kill();
        }
        let _ = child.wait();

        // The user, between kills: edits (same size or not), new files, deletions.
        let paths: Vec<(String, Role)> = roles.iter().map(|(p, r)| (p.clone(), *r)).collect();
        for _ in 0..rng.below(4) {
            let (path, role) = &paths[rng.below(paths.len() as u64) as usize];
            if model.deleted.contains(path) || path.starts_with("big/") && k % 10 != 0 {
                continue;
            }
            version += 1;
            let old = model.last[path].len();
            // A user edits a file where it is: writing a path the sync has not brought to that
            // side yet would make a new file there, and a true conflict.
            let here = match role {
                Role::LocalEdits | Role::LocalDeletes => local.join(path),
                _ => remote.join(path),
            };
            if !here.is_file() {
                continue;
            }
            match role {
                Role::LocalEdits => {
                    // Local times have nanoseconds: even a same-size edit is seen.
                    let size = if rng.below(2) == 0 {
                        old
                    } else {
                        old + 1 + rng.below(500) as usize
                    };
                    let c = content(path, version, size);
                    put(&local, path, &c);
                    model.wrote(path, c);
                }
                Role::RemoteEdits => {
                    // A LIST server shows times to the minute: a same-size edit within the
                    // minute cannot be seen by anyone (DESIGN invariant 7), so the size moves.
                    let c = content(path, version, old + 1 + rng.below(500) as usize);
                    server.put(&format!("matrix/{path}"), &c);
                    model.wrote(path, c);
                }
                // `here` is the file on the side this path's deletions happen.
                Role::LocalDeletes | Role::RemoteDeletes
                    if rng.below(4) == 0 && std::fs::remove_file(&here).is_ok() =>
                {
                    model.deleted.insert(path.clone());
                }
                _ => {}
            }
        }
        if rng.below(3) == 0 {
            new_files += 1;
            let path = format!("new/n{new_files:03}.txt");
            let c = content(&path, 0, 100 + rng.below(3_000) as usize);
            if rng.below(2) == 0 {
                put(&local, &path, &c);
            } else {
                server.put(&format!("matrix/{path}"), &c);
            }
            model.wrote(&path, c);
            roles.insert(path, Role::Untouched);
        }
        // Nothing partial under a real name, at every step: each file holds a version a user
        // wrote at that path.
        for root in [&local, &remote] {
            for (path, bytes) in tree(root) {
                if path.ends_with('/') || path.ends_with(ftps_sync::local::PART_SUFFIX) {
                    continue;
                }
                assert!(
                    !path.contains(".conflict-"),
                    "seed {seed}, after kill {k}: a false conflict (no path is changed on both sides): {}",
                    root.join(&path).display()
                );
                let known = model.versions.get(&path).is_some_and(|v| v.contains(&bytes));
                assert!(
                    known,
                    "seed {seed}, after kill {k}: {} holds bytes no user wrote ({} bytes)",
                    root.join(&path).display(),
                    bytes.len()
                );
            }
        }
    }

    // The next pass completes; the one after moves nothing.
    let done = finish(&cfg, work.path());
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(
        done.status.code(),
        Some(0),
        "seed {seed}: the pass after the kills: {stderr}"
    );
    let again = finish(&cfg, work.path());
    assert_eq!(again.status.code(), Some(0), "seed {seed}");
    assert_eq!(
        moved(&again),
        0,
        "seed {seed}: a further pass moved something: {}",
        String::from_utf8_lossy(&again.stdout)
    );

    let (l, r) = (tree(&local), tree(&remote));
    let conflicts: Vec<&String> = l
        .keys()
        .chain(r.keys())
        .filter(|p| p.contains(".conflict-"))
        .collect();
    assert!(
        conflicts.is_empty(),
        "seed {seed}: false conflicts (no path was changed on both sides): {conflicts:?}"
    );
    assert!(
        !l.keys()
            .chain(r.keys())
            .any(|p| p.ends_with(ftps_sync::local::PART_SUFFIX)),
        "seed {seed}: part files left"
    );
    for (path, last) in &model.last {
        if model.deleted.contains(path) {
            assert!(
                !l.contains_key(path) && !r.contains_key(path),
                "seed {seed}: the deletion of {path} was undone"
            );
        } else {
            assert_eq!(
                l.get(path),
                Some(last),
                "seed {seed}: {path} locally is not the user's last version"
            );
            assert_eq!(
                r.get(path),
                Some(last),
                "seed {seed}: {path} on the server is not the user's last version"
            );
        }
    }
    super::report(&format!(
        "crash matrix: seed {seed}: {kills} kills ({killed_running} mid-pass), {version} edits, {new_files} new files, \
         {} deletions, {:.0} s; all checks passed",
        model.deleted.len(),
        started.elapsed().as_secs_f64()
    ));
}

/// Stock ProFTPD refuses APPE (`451 Append/Restart not permitted`), so an upload killed
/// mid-file cannot be resumed there: the next pass must start it over, not be refused on
/// every pass for as long as its part file stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_killed_mid_file_on_a_server_that_will_not_append_starts_over() {
    let Some(server) = servers::proftpd() else {
        return;
    };
    tokio::task::spawn_blocking(move || {
        let work = tempfile::tempdir().expect("tmp");
        let local = work.path().join("cut");
        let big = content("big.bin", 0, 48 << 20);
        put(&local, "big.bin", &big);
        server.mkdir("cut");
        let cfg = server
            .config_yaml(&local, "/cut")
            .top("bandwidth_limit: 16MiB/s\n")
            .write(&work.path().join("c.yaml"));
        let part = server
            .data
            .join("cut")
            .join(ftps_sync::local::part_name("big.bin"));
        let mut child = sync(&cfg, work.path());
        // Killed once the part file holds more than a resumable prefix (4 MiB).
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(&part).map_or(0, |m| m.len()) < 8 << 20 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        let held = std::fs::metadata(&part).map_or(0, |m| m.len());
        assert!(
            (8 << 20..48 << 20).contains(&held),
            "the kill did not land mid-file: the part file holds {held} bytes"
        );
        let out = finish(&cfg, work.path());
        assert!(
            out.status.success(),
            "the pass after the kill: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // One refused APPE, tried again from the start; no more.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.matches("retrying").count() <= 1, "{stderr}");
        assert_eq!(std::fs::read(server.data.join("cut/big.bin")).ok(), Some(big));
        assert!(!part.exists());
    })
    .await
    .expect("the test");
}
