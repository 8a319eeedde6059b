//! The state store: the base snapshot of one folder in SQLite, at
//! `<state_dir>/<folder>.sqlite3`. Each finished action is its own transaction, so a killed
//! pass loses at most the actions in flight.
//!
//! The schema has a version (SQLite's `user_version`) and moves forward by `MIGRATIONS`, each
//! in one transaction: a binary never misreads an older store (which would lose the base and
//! make the next pass a first sync, with conflicts everywhere), and a store written by a newer
//! binary is refused, never rewritten.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use crate::digest::HashAlgo;
use crate::error::{Error, Result};
use crate::path::RelPath;
use crate::reconcile::{Base, BaseEntry, Kind, Mtime, Precision, Sig};

pub struct State {
    conn: Connection,
    path: PathBuf,
}

/// Migration `i` takes a store from version `i` to `i + 1`; the last one reached is the version
/// this binary writes. Append only: never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the first schema. Stores of the first release (c9f62f6 and before) have these
    // tables already at version 0, hence IF NOT EXISTS.
    "
CREATE TABLE IF NOT EXISTS entries (
    path TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    local_size INTEGER NOT NULL,
    local_mtime INTEGER NOT NULL,
    local_precision TEXT NOT NULL,
    remote_size INTEGER NOT NULL,
    remote_mtime INTEGER NOT NULL,
    remote_precision TEXT NOT NULL,
    sha256 TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS partials (
    path TEXT PRIMARY KEY,
    direction TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime INTEGER NOT NULL,
    precision TEXT NOT NULL
);
",
    // 1 -> 2: the intent journal (DESIGN.md invariant 2). A row is written, durably, before a
    // transfer's result becomes visible under its real name, and removed in the transaction
    // that records the result; the next pass settles what is left.
    "
CREATE TABLE intents (
    path TEXT PRIMARY KEY,
    op TEXT NOT NULL,
    kind TEXT NOT NULL,
    local_size INTEGER NOT NULL,
    local_mtime INTEGER NOT NULL,
    local_precision TEXT NOT NULL,
    remote_size INTEGER NOT NULL,
    remote_mtime INTEGER NOT NULL,
    remote_precision TEXT NOT NULL,
    sha256 TEXT,
    server_digest TEXT
);
",
];

/// The schema version this binary reads and writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// The columns of an entry after its path, in the order `base_entry` reads them.
const ENTRY_COLUMNS: &str =
    "kind, local_size, local_mtime, local_precision, remote_size, remote_mtime, remote_precision, sha256";

/// Reads `ENTRY_COLUMNS` starting at column `at`; `None` for a precision we do not know.
fn base_entry(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Option<BaseEntry>> {
    let sig = |at: usize| -> rusqlite::Result<Option<Sig>> {
        let (size, nanos, precision): (i64, i64, String) = (r.get(at)?, r.get(at + 1)?, r.get(at + 2)?);
        Ok(Precision::parse(&precision).map(|p| Sig {
            size: size as u64,
            mtime: Mtime::new(nanos, p),
        }))
    };
    let (Some(local), Some(remote)) = (sig(at + 1)?, sig(at + 4)?) else {
        return Ok(None);
    };
    Ok(Some(BaseEntry {
        kind: if r.get::<_, String>(at)? == "dir" {
            Kind::Dir
        } else {
            Kind::File
        },
        local,
        remote,
        sha256: r.get(at + 7)?,
    }))
}

/// The keys of the `meta` table.
mod meta {
    pub const PASS_START: &str = "last_pass_start";
    pub const PASS_END: &str = "last_pass_end";
    pub const RESULT: &str = "last_result";
    pub const ERROR: &str = "last_error";
    pub const REPORT: &str = "last_report";
}

/// How a pass ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassResult {
    Ok,
    /// Finished, with something for the user (conflicts, skips, failures).
    Unresolved,
    Error(String),
}

impl std::fmt::Display for PassResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PassResult::Ok => f.write_str("ok"),
            PassResult::Unresolved => f.write_str("unresolved"),
            PassResult::Error(e) => write!(f, "error: {e}"),
        }
    }
}

/// What a pass did, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassCounts {
    pub uploaded: usize,
    pub downloaded: usize,
    pub deleted: usize,
    pub conflicts: usize,
    pub skipped: usize,
    pub failed: usize,
    #[serde(default)]
    pub deferred: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassOutcome {
    pub result: PassResult,
    pub counts: PassCounts,
}

/// The last pass, as the store remembers it. `result` is as written (`ok`, `unresolved`,
/// `error: ...`); `last_error` is the last error of any pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LastPass {
    pub started: Option<DateTime<Utc>>,
    pub ended: Option<DateTime<Utc>>,
    pub result: Option<String>,
    pub last_error: Option<String>,
    pub counts: Option<PassCounts>,
}

/// What an intent is about to make visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentOp {
    /// A local part file renamed to the real name.
    Download,
    /// A remote part file renamed to the real name.
    Upload,
}

impl IntentOp {
    fn as_str(self) -> &'static str {
        match self {
            IntentOp::Download => "down",
            IntentOp::Upload => "up",
        }
    }
}

/// A change about to become visible, and the base entry to record once it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub path: RelPath,
    pub op: IntentOp,
    /// The entry to record when the change is found done. An upload's remote time is not in
    /// it: the server sets it at the rename.
    pub entry: BaseEntry,
    /// The digest the server's hash command can check, when it is not SHA-256.
    pub server_digest: Option<(HashAlgo, String)>,
}

/// Which way a part file is being filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    Upload,
    Download,
}

impl Transfer {
    fn as_str(self) -> &'static str {
        match self {
            Transfer::Upload => "up",
            Transfer::Download => "down",
        }
    }
}

impl State {
    /// The file of a folder's store.
    pub fn path(state_dir: &Path, folder: &str) -> PathBuf {
        state_dir.join(format!("{folder}.sqlite3"))
    }

    /// Whether a folder has a store yet (it has had a pass).
    pub fn exists(state_dir: &Path, folder: &str) -> bool {
        Self::path(state_dir, folder).exists()
    }

    pub fn open(state_dir: &Path, folder: &str) -> Result<State> {
        std::fs::create_dir_all(state_dir).map_err(Error::local("create state dir", state_dir))?;
        let path = Self::path(state_dir, folder);
        let err = |p: &Path| {
            let p = p.to_owned();
            move |source| Error::State { path: p, source }
        };
        let conn = Connection::open(&path).map_err(err(&path))?;
        let mut state = State { conn, path };
        // First, so that a store from a newer binary is refused before anything is written.
        state.migrate()?;
        state
            .conn
            .execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .map_err(state.err())?;
        Ok(state)
    }

    /// Brings the schema up to `SCHEMA_VERSION`, one transaction per step; refuses a store
    /// from a newer binary without touching it.
    fn migrate(&mut self) -> Result<()> {
        let path = self.path.clone();
        let err = |source| Error::State {
            path: path.clone(),
            source,
        };
        let version = |conn: &Connection| -> Result<usize> {
            let v: i64 = conn
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .map_err(err)?;
            Ok(usize::try_from(v).unwrap_or(usize::MAX))
        };
        let found = version(&self.conn)?;
        if found > SCHEMA_VERSION {
            return Err(Error::StateTooNew {
                path: self.path.clone(),
                found,
                known: SCHEMA_VERSION,
            });
        }
        while version(&self.conn)? < SCHEMA_VERSION {
            // IMMEDIATE: the write lock first, then the version read again, so two processes
            // opening an old store (a `status` beside a service) never run a step twice.
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            let from = version(&tx)?;
            if from >= SCHEMA_VERSION {
                break;
            }
            tx.execute_batch(MIGRATIONS[from]).map_err(err)?;
            tx.pragma_update(None, "user_version", (from + 1) as i64)
                .map_err(err)?;
            tx.commit().map_err(err)?;
            tracing::debug!(store = %self.path.display(), version = from + 1, "state store schema updated");
        }
        Ok(())
    }

    fn err(&self) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
        move |source| Error::State {
            path: self.path.clone(),
            source,
        }
    }

    pub fn load(&self) -> Result<Base> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT path, {ENTRY_COLUMNS} FROM entries"))
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, base_entry(r, 1)?)))
            .map_err(self.err())?;
        let mut base = Base::new();
        for row in rows {
            let (path, entry) = row.map_err(self.err())?;
            // A row we cannot read back is dropped: without a base the path is treated as new
            // on both sides, which never deletes anything.
            match (RelPath::new(&path), entry) {
                (Ok(path), Some(entry)) => {
                    base.insert(path, entry);
                }
                _ => tracing::warn!(path, "unreadable state row ignored"),
            }
        }
        Ok(base)
    }

    /// The base entry of one path.
    pub fn get(&self, path: &RelPath) -> Result<Option<BaseEntry>> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE path = ?1"),
                params![path.as_str()],
                |r| base_entry(r, 0),
            )
            .optional()
            .map_err(self.err())?;
        Ok(row.flatten())
    }

    pub fn put(&self, path: &RelPath, e: &BaseEntry) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO entries VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    path.as_str(),
                    if e.kind == Kind::Dir { "dir" } else { "file" },
                    e.local.size as i64,
                    e.local.mtime.nanos,
                    e.local.mtime.precision.as_str(),
                    e.remote.size as i64,
                    e.remote.mtime.nanos,
                    e.remote.mtime.precision.as_str(),
                    e.sha256,
                ],
            )
            .map_err(self.err())?;
        Ok(())
    }

    pub fn remove(&self, path: &RelPath) -> Result<()> {
        self.conn
            .execute("DELETE FROM entries WHERE path = ?1", params![path.as_str()])
            .map_err(self.err())?;
        Ok(())
    }

    /// Records that a part file for `path` is being filled from a source that looked like
    /// `source`: a later attempt may resume it only while the source still looks the same.
    pub fn start_partial(&self, path: &RelPath, way: Transfer, source: &Sig) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO partials VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    path.as_str(),
                    way.as_str(),
                    source.size as i64,
                    source.mtime.nanos,
                    source.mtime.precision.as_str()
                ],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// The source a part file of `path` was started from, if it was started going `way`.
    pub fn partial(&self, path: &RelPath, way: Transfer) -> Result<Option<Sig>> {
        let row = self
            .conn
            .query_row(
                "SELECT size, mtime, precision FROM partials WHERE path = ?1 AND direction = ?2",
                params![path.as_str(), way.as_str()],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)),
            )
            .optional()
            .map_err(self.err())?;
        Ok(row.and_then(|(size, nanos, p)| {
            Some(Sig {
                size: size as u64,
                mtime: Mtime::new(nanos, Precision::parse(&p)?),
            })
        }))
    }

    pub fn end_partial(&self, path: &RelPath) -> Result<()> {
        self.conn
            .execute("DELETE FROM partials WHERE path = ?1", params![path.as_str()])
            .map_err(self.err())?;
        Ok(())
    }

    /// Journals `intent` (durably: its own committed transaction) before its change becomes
    /// visible.
    pub fn intend(&self, intent: &Intent) -> Result<()> {
        let e = &intent.entry;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO intents VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    intent.path.as_str(),
                    intent.op.as_str(),
                    if e.kind == Kind::Dir { "dir" } else { "file" },
                    e.local.size as i64,
                    e.local.mtime.nanos,
                    e.local.mtime.precision.as_str(),
                    e.remote.size as i64,
                    e.remote.mtime.nanos,
                    e.remote.mtime.precision.as_str(),
                    e.sha256,
                    intent
                        .server_digest
                        .as_ref()
                        .map(|(algo, hex)| format!("{} {hex}", algo.name())),
                ],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// The intents a killed pass left open.
    pub fn intents(&self) -> Result<Vec<Intent>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT path, op, {ENTRY_COLUMNS}, server_digest FROM intents"
            ))
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    base_entry(r, 2)?,
                    r.get::<_, Option<String>>(10)?,
                ))
            })
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (path, op, entry, digest) = row.map_err(self.err())?;
            let op = match op.as_str() {
                "down" => Some(IntentOp::Download),
                "up" => Some(IntentOp::Upload),
                _ => None,
            };
            let server_digest = digest.and_then(|d| {
                let (algo, hex) = d.split_once(' ')?;
                Some((HashAlgo::parse(algo)?, hex.to_owned()))
            });
            // An intent we cannot read is left to the planner: without it the path looks new
            // (or changed) on one side, which never deletes anything.
            match (RelPath::new(&path), op, entry) {
                (Ok(path), Some(op), Some(entry)) => out.push(Intent {
                    path,
                    op,
                    entry,
                    server_digest,
                }),
                _ => tracing::warn!(path, "unreadable intent ignored"),
            }
        }
        Ok(out)
    }

    /// Closes the intent for `path` in one transaction: records `done` as in sync if the change
    /// was found made, or only forgets the intent.
    pub fn settle(&self, path: &RelPath, done: Option<&BaseEntry>) -> Result<()> {
        let tx = self.conn.unchecked_transaction().map_err(self.err())?;
        if let Some(entry) = done {
            self.put(path, entry)?;
        }
        tx.execute("DELETE FROM intents WHERE path = ?1", params![path.as_str()])
            .map_err(self.err())?;
        tx.commit().map_err(self.err())
    }

    /// Records that a pass started.
    pub fn pass_started(&self, at: DateTime<Utc>) -> Result<()> {
        self.set_meta(meta::PASS_START, &at.to_rfc3339())
    }

    /// Records how a pass ended; an error is also kept as the last error.
    pub fn pass_ended(&self, at: DateTime<Utc>, outcome: &PassOutcome) -> Result<()> {
        self.set_meta(meta::PASS_END, &at.to_rfc3339())?;
        self.set_meta(meta::RESULT, &outcome.result.to_string())?;
        let counts = serde_json::to_string(&outcome.counts)
            .map_err(|e| Error::Internal(format!("pass counts as JSON: {e}")))?;
        self.set_meta(meta::REPORT, &counts)?;
        if let PassResult::Error(e) = &outcome.result {
            self.set_meta(meta::ERROR, e)?;
        }
        Ok(())
    }

    /// What the store knows of the last pass.
    pub fn last_pass(&self) -> Result<LastPass> {
        let time = |key| -> Result<Option<DateTime<Utc>>> {
            Ok(self
                .meta(key)?
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc)))
        };
        Ok(LastPass {
            started: time(meta::PASS_START)?,
            ended: time(meta::PASS_END)?,
            result: self.meta(meta::RESULT)?,
            last_error: self.meta(meta::ERROR)?,
            counts: self
                .meta(meta::REPORT)?
                .and_then(|r| serde_json::from_str(&r).ok()),
        })
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute("INSERT OR REPLACE INTO meta VALUES (?1, ?2)", params![key, value])
            .map_err(self.err())?;
        Ok(())
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        };
        let up = Intent {
            path: RelPath::new("d/up.txt").unwrap(),
            op: IntentOp::Upload,
            entry: entry.clone(),
            server_digest: Some((HashAlgo::Md5, "cd".into())),
        };
        let down = Intent {
            path: RelPath::new("down.txt").unwrap(),
            op: IntentOp::Download,
            entry: entry.clone(),
            server_digest: None,
        };
        s.intend(&up).unwrap();
        s.intend(&down).unwrap();
        drop(s);
        let s = State::open(dir.path(), "f").unwrap();
        let mut open = s.intents().unwrap();
        open.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(open, vec![up.clone(), down.clone()]);
        s.settle(&up.path, Some(&entry)).unwrap();
        s.settle(&down.path, None).unwrap();
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
}
