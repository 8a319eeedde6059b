//! Golden reconcile scenarios: `tests/scenarios/*.yaml`, each base / local / remote -> the
//! expected plan, read like a table.
//!
//! Entry notation: `dir`, or `SIZE@SECONDS` with optional `#SHA256`, `%ID` (the side's id of
//! the file: an inode, an MLSD `unique`) and `~minutes`/`~days` for the listing's precision.
//! Parent directories are added automatically.

use std::collections::BTreeMap;

use chrono::TimeZone;
use ftps_sync::config::{ConflictPolicy, Direction, FirstSync};
use ftps_sync::path::RelPath;
use ftps_sync::reconcile::{
    self, Base, BaseEntry, DeleteLimit, Entry, FileId, Mtime, Policy, Precision, Snapshot,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    #[serde(default)]
    policy: PolicySpec,
    #[serde(default)]
    base: BTreeMap<String, String>,
    #[serde(default)]
    local: BTreeMap<String, String>,
    #[serde(default)]
    remote: BTreeMap<String, String>,
    #[serde(default)]
    expect: Vec<String>,
    #[serde(default)]
    refused: bool,
    /// Words the refusal's message must hold.
    #[serde(default)]
    refusal_says: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySpec {
    #[serde(default = "both")]
    direction: Direction,
    #[serde(default = "yes")]
    delete: bool,
    #[serde(default = "keep_both")]
    conflict: ConflictPolicy,
    #[serde(default)]
    first_sync: FirstSync,
    #[serde(default = "fifty")]
    max_delete_percent: u8,
    #[serde(default = "yes")]
    detect_moves: bool,
    /// Whether the server shows moves made on it (MLSD `unique`, or a hash command).
    #[serde(default = "yes")]
    server_shows_moves: bool,
}

impl Default for PolicySpec {
    fn default() -> Self {
        PolicySpec {
            direction: both(),
            delete: true,
            conflict: keep_both(),
            max_delete_percent: 50,
            first_sync: FirstSync::default(),
            detect_moves: true,
            server_shows_moves: true,
        }
    }
}

fn both() -> Direction {
    Direction::Both
}
fn yes() -> bool {
    true
}
fn keep_both() -> ConflictPolicy {
    ConflictPolicy::KeepBoth
}
fn fifty() -> u8 {
    50
}

fn entry(spec: &str) -> Entry {
    if spec == "dir" {
        return Entry::dir(Mtime::from_secs(0));
    }
    let (spec, precision) = match spec.split_once('~') {
        Some((s, "minutes")) => (s, Precision::Minutes),
        Some((s, "days")) => (s, Precision::Days),
        Some((s, "unconfirmed")) => (s, Precision::Unconfirmed),
        Some((_, p)) => panic!("unknown precision {p}"),
        None => (spec, Precision::Seconds),
    };
    let (spec, id) = match spec.split_once('%') {
        Some((s, id)) => (s, FileId::new(id.parse().expect("id"))),
        None => (spec, None),
    };
    let (spec, sha) = match spec.split_once('#') {
        Some((s, h)) => (s, Some(h.to_owned())),
        None => (spec, None),
    };
    let (size, secs) = spec.split_once('@').expect("SIZE@SECONDS");
    let mut e = Entry::file(
        size.parse().expect("size"),
        Mtime::new(secs.parse::<i64>().expect("seconds") * 1_000_000_000, precision),
    );
    e.sha256 = sha;
    e.id = id;
    e
}

fn snapshot(specs: &BTreeMap<String, String>) -> Snapshot {
    let mut s = Snapshot::new();
    for (path, spec) in specs {
        let p = RelPath::new(path).expect("path");
        let mut parent = p.parent();
        while let Some(d) = parent {
            parent = d.parent();
            s.entry(d).or_insert_with(|| Entry::dir(Mtime::from_secs(0)));
        }
        s.insert(p, entry(spec));
    }
    s
}

/// The scenario files in `tests/scenarios`.
const SCENARIOS: usize = 38;

#[test]
fn golden_scenarios() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios");
    let now = chrono::Utc
        .with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .expect("time");
    let mut count = 0;
    let mut failures = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("scenarios dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        let s: Scenario = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let policy = Policy {
            direction: s.policy.direction,
            delete: s.policy.delete,
            conflict: s.policy.conflict,
            max_delete: DeleteLimit::Percent(s.policy.max_delete_percent),
            first_sync: s.policy.first_sync,
            case_insensitive: false,
            detect_moves: s.policy.detect_moves,
            remote_moves_recognised: s.policy.server_shows_moves,
            server_clock: None,
        };
        let base: Base = snapshot(&s.base)
            .into_iter()
            .map(|(p, e)| (p, BaseEntry::of(&e, &e)))
            .collect();
        let got = reconcile::plan(&base, &snapshot(&s.local), &snapshot(&s.remote), &policy, now);
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match (got, s.refused) {
            (Err(reason), true) => {
                if let Some(words) = &s.refusal_says
                    && !reason.to_string().contains(words.as_str())
                {
                    failures.push(format!("{name}: the refusal does not say {words:?}: {reason}"));
                }
            }
            (Err(reason), false) => failures.push(format!("{name}: refused: {reason}")),
            (Ok(plan), true) => failures.push(format!("{name}: expected a refusal, got:\n{plan}")),
            (Ok(plan), false) => {
                let got: Vec<String> = plan
                    .actions
                    .iter()
                    .map(|a| a.to_string().split_whitespace().collect::<Vec<_>>().join(" "))
                    .collect();
                if got != s.expect {
                    failures.push(format!("{name}:\n  expected {:#?}\n  got {:#?}", s.expect, got));
                }
            }
        }
        count += 1;
    }
    // Exactly: a scenario file lost (or added without a word here) is seen.
    assert_eq!(count, SCENARIOS, "scenario files in tests/scenarios");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
