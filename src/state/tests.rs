use super::*;
use crate::digest::HashAlgo;
use chrono::TimeZone;

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let s = State::open(dir.path(), "f").unwrap();
    let e = BaseEntry {
        kind: Kind::File,
        local: Sig {
            size: 3,
            mtime: Mtime::new(123_456_789, Precision::Nanos),
        },
        remote: Sig {
            size: 3,
            mtime: Mtime::new(60_000_000_000, Precision::Minutes),
        },
        sha256: Some("ab".into()),
        local_id: FileId::new(77),
        remote_id: FileId::of_fact("fd01g123"),
    };
    let p = RelPath::new("a/b c").unwrap();
    s.put(&p, &e).unwrap();
    drop(s);
    let s = State::open(dir.path(), "f").unwrap();
    assert_eq!(s.load().unwrap().get(&p), Some(&e));
    s.remove(&p).unwrap();
    assert!(s.load().unwrap().is_empty());
}

#[test]
fn an_intent_is_journaled_read_back_and_settled_with_its_entry_in_one_go() {
    let dir = tempfile::tempdir().unwrap();
    let s = State::open(dir.path(), "f").unwrap();
    let entry = BaseEntry {
        kind: Kind::File,
        local: Sig {
            size: 5,
            mtime: Mtime::new(7, Precision::Nanos),
        },
        remote: Sig {
            size: 5,
            mtime: Mtime::new(0, Precision::Unconfirmed),
        },
        sha256: Some("ab".into()),
        local_id: None,
        remote_id: None,
    };
    let up = Intent {
        path: RelPath::new("d/up.txt").unwrap(),
        op: Op::Transfer(Transfer::Upload),
        entry: entry.clone(),
        server_digest: Some((HashAlgo::Md5, "cd".into())),
        folder: None,
    };
    let down = Intent {
        path: RelPath::new("down.txt").unwrap(),
        op: Op::Transfer(Transfer::Download),
        entry: entry.clone(),
        server_digest: None,
        folder: Some("2049:77".into()),
    };
    s.intend(&up).unwrap();
    s.intend(&down).unwrap();
    drop(s);
    let s = State::open(dir.path(), "f").unwrap();
    let mut open = s.intents().unwrap();
    open.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(open, vec![up.clone(), down.clone()]);
    s.close_intent(&up.path, Some(&entry)).unwrap();
    s.close_intent(&down.path, None).unwrap();
    assert!(s.intents().unwrap().is_empty());
    let base = s.load().unwrap();
    assert_eq!(base.get(&up.path), Some(&entry), "done: recorded");
    assert_eq!(base.get(&down.path), None, "not done: only forgotten");
}

fn user_version(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

/// A store written by the first release (`ftps-sync demo` at c9f62f6: schema version 0)
/// opens with its base and pass record intact, and is brought to the current version.
#[test]
fn a_store_of_the_first_release_is_upgraded_with_its_base() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-c9f62f6.sqlite3");
    std::fs::copy(&fixture, dir.path().join("demo.sqlite3")).unwrap();
    assert_eq!(user_version(&dir.path().join("demo.sqlite3")), 0);

    let s = State::open(dir.path(), "demo").unwrap();
    let base = s.load().unwrap();
    let names: Vec<&str> = base.keys().map(RelPath::as_str).collect();
    assert_eq!(
        names,
        [
            "docs",
            "docs/manual.txt",
            "from-the-server.txt",
            "notes.txt",
            "reports",
            "reports/2026",
            "reports/2026/q3.csv",
            "todo.conflict-20261129-183014-remote.txt",
            "todo.txt",
        ]
    );
    let todo = &base[&RelPath::new("todo.txt").unwrap()];
    assert_eq!(
        (todo.kind, todo.local.size, todo.remote.size),
        (Kind::File, 21, 21)
    );
    assert!(todo.sha256.as_ref().is_some_and(|d| d.len() == 64));
    let last = s.last_pass().unwrap();
    assert_eq!(last.result.as_deref(), Some("ok"));
    assert!(last.started.is_some() && last.ended.is_some());
    assert_eq!(last.counts, Some(PassCounts::default()));
    drop(s);
    assert_eq!(
        user_version(&dir.path().join("demo.sqlite3")),
        SCHEMA_VERSION as i64
    );
    // Opening again changes nothing more.
    let s = State::open(dir.path(), "demo").unwrap();
    assert_eq!(s.load().unwrap(), base);
}

#[test]
fn a_store_of_a_newer_binary_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let s = State::open(dir.path(), "f").unwrap();
    s.put(
        &RelPath::new("a").unwrap(),
        &BaseEntry {
            kind: Kind::File,
            local: Sig {
                size: 1,
                mtime: Mtime::new(1, Precision::Nanos),
            },
            remote: Sig {
                size: 1,
                mtime: Mtime::new(1, Precision::Seconds),
            },
            sha256: None,
            local_id: None,
            remote_id: None,
        },
    )
    .unwrap();
    s.conn
        .pragma_update(None, "user_version", SCHEMA_VERSION as i64 + 1)
        .unwrap();
    drop(s);
    let path = dir.path().join("f.sqlite3");
    let before = std::fs::read(&path).unwrap();
    match State::open(dir.path(), "f") {
        Err(e @ Error::StateTooNew { .. }) => {
            assert!(e.to_string().contains("newer ftps-sync"), "{e}");
        }
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("a newer store was opened"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), before, "the store was rewritten");
}

#[test]
fn the_last_error_keeps_its_time_until_a_pass_ends_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = State::open(dir.path(), "f").unwrap();
    let at = |h| Utc.with_ymd_and_hms(2026, 11, 30, h, 0, 0).single().unwrap();
    let ended = |result| PassOutcome {
        result,
        counts: PassCounts::default(),
    };
    s.pass_ended(at(9), &ended(PassResult::Error("cannot connect".into())))
        .unwrap();
    let last = s.last_pass().unwrap();
    assert_eq!(last.last_error.as_deref(), Some("cannot connect"));
    assert_eq!(last.last_error_at, Some(at(9)));
    // A pass with conflicts left is no failed pass: the error is over.
    s.pass_ended(at(10), &ended(PassResult::Unresolved)).unwrap();
    let last = s.last_pass().unwrap();
    assert_eq!((last.last_error, last.last_error_at), (None, None));
    assert_eq!(last.result.as_deref(), Some("unresolved"));
    s.pass_ended(at(11), &ended(PassResult::Error("login refused".into())))
        .unwrap();
    s.pass_ended(at(12), &ended(PassResult::Ok)).unwrap();
    assert_eq!(s.last_pass().unwrap().last_error, None);
}
