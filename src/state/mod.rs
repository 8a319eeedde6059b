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
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::path::RelPath;
use crate::reconcile::{Base, BaseEntry, FileId, Kind, Mtime, Precision, Sig};

mod journal;
mod schema;
pub mod servers;
mod unreadable;

pub use journal::{Intent, Op};
use schema::MIGRATIONS;
pub use schema::SCHEMA_VERSION;
pub use unreadable::is_damaged;
use unreadable::suffixed;

pub struct State {
    conn: Connection,
    path: PathBuf,
    /// Last, so that it drops after the connection (`Closed`).
    closed: Closed,
}

/// Told that the store's file is durable as it stands (the simulation keeps a copy for a
/// power cut to go back to).
pub type Synced = std::sync::Arc<dyn Fn(&Path) + Send + Sync>;

/// Says the store is durable once its connection has closed: the last connection's close
/// checkpoints the store, which syncs it.
struct Closed {
    path: PathBuf,
    synced: Option<Synced>,
}

impl Drop for Closed {
    fn drop(&mut self) {
        if let Some(synced) = &self.synced {
            synced(&self.path);
        }
    }
}

/// The columns of an entry after its path (`base_entry` reads them by name). Always named
/// in statements: columns added by a migration come last in a table, after the intents' own.
const ENTRY_COLUMNS: &str = "kind, local_size, local_mtime, local_precision, remote_size, remote_mtime, \
                             remote_precision, sha256, local_id, remote_id";

/// An entry as the values of `ENTRY_COLUMNS`, in their order: what `base_entry` reads back.
fn entry_values(e: &BaseEntry) -> [Value; 10] {
    let text = |s: &str| Value::Text(s.to_owned());
    let id = |id: Option<crate::reconcile::FileId>| id.map_or(Value::Null, |i| Value::Integer(i.to_sql()));
    [
        text(if e.kind == Kind::Dir { "dir" } else { "file" }),
        Value::Integer(e.local.size as i64),
        Value::Integer(e.local.mtime.nanos),
        text(e.local.mtime.precision.as_str()),
        Value::Integer(e.remote.size as i64),
        Value::Integer(e.remote.mtime.nanos),
        text(e.remote.mtime.precision.as_str()),
        e.sha256.clone().map_or(Value::Null, Value::Text),
        id(e.local_id),
        id(e.remote_id),
    ]
}

/// Where a statement holds the `ENTRY_COLUMNS`, found by their names once per statement rather
/// than for every row (a lookup by name walks the statement's columns).
struct EntryAt {
    kind: usize,
    local: [usize; 3],
    remote: [usize; 3],
    sha256: usize,
    local_id: usize,
    remote_id: usize,
}

impl EntryAt {
    fn of(stmt: &rusqlite::Statement<'_>) -> rusqlite::Result<EntryAt> {
        let at = |name: &str| stmt.column_index(name);
        let sig = |side: &str| -> rusqlite::Result<[usize; 3]> {
            Ok([
                at(&format!("{side}_size"))?,
                at(&format!("{side}_mtime"))?,
                at(&format!("{side}_precision"))?,
            ])
        };
        Ok(EntryAt {
            kind: at("kind")?,
            local: sig("local")?,
            remote: sig("remote")?,
            sha256: at("sha256")?,
            local_id: at("local_id")?,
            remote_id: at("remote_id")?,
        })
    }
}

/// Reads the `ENTRY_COLUMNS` of a row, where `at` found them; `None` for a precision we do not
/// know.
fn base_entry(r: &rusqlite::Row<'_>, at: &EntryAt) -> rusqlite::Result<Option<BaseEntry>> {
    let sig = |[size, mtime, precision]: [usize; 3]| -> rusqlite::Result<Option<Sig>> {
        let (size, nanos, precision): (i64, i64, String) = (r.get(size)?, r.get(mtime)?, r.get(precision)?);
        Ok(Precision::parse(&precision).map(|p| Sig {
            size: size as u64,
            mtime: Mtime::new(nanos, p),
        }))
    };
    let (Some(local), Some(remote)) = (sig(at.local)?, sig(at.remote)?) else {
        return Ok(None);
    };
    Ok(Some(BaseEntry {
        kind: if r.get::<_, String>(at.kind)? == "dir" {
            Kind::Dir
        } else {
            Kind::File
        },
        local,
        remote,
        sha256: r.get(at.sha256)?,
        local_id: r.get::<_, Option<i64>>(at.local_id)?.and_then(FileId::from_sql),
        remote_id: r.get::<_, Option<i64>>(at.remote_id)?.and_then(FileId::from_sql),
    }))
}

/// The keys of the `meta` table.
mod meta {
    pub const PASS_START: &str = "last_pass_start";
    pub const PASS_END: &str = "last_pass_end";
    pub const RESULT: &str = "last_result";
    pub const ERROR: &str = "last_error";
    pub const ERROR_AT: &str = "last_error_at";
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
/// `error: ...`); `last_error` is the error of the last passes, until one ends without.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LastPass {
    pub started: Option<DateTime<Utc>>,
    pub ended: Option<DateTime<Utc>>,
    pub result: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub counts: Option<PassCounts>,
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

    fn parse(text: &str) -> Option<Transfer> {
        [Transfer::Upload, Transfer::Download]
            .into_iter()
            .find(|t| t.as_str() == text)
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
        let closed = Closed {
            path: path.clone(),
            synced: None,
        };
        let mut state = State { conn, path, closed };
        // First, so that a store from a newer binary is refused before anything is written.
        state.migrate()?;
        state
            .conn
            .execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .map_err(state.err())?;
        Ok(state)
    }

    /// The store's file, and its write-ahead log: the commits not yet checkpointed, in order
    /// (syncing it makes every commit so far durable).
    pub fn files(&self) -> (&Path, PathBuf) {
        (&self.path, suffixed(&self.path, "-wal"))
    }

    /// Calls `synced` whenever the store is durable as it stands.
    pub fn when_synced(&mut self, synced: Synced) {
        self.closed.synced = Some(synced);
    }

    /// Brings the schema up to `SCHEMA_VERSION`, one transaction per step; refuses a store
    /// from a newer binary without touching it.
    fn migrate(&mut self) -> Result<()> {
        schema::migrate(&mut self.conn, &self.path, MIGRATIONS)
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
        let (at, path) = (
            EntryAt::of(&stmt).map_err(self.err())?,
            stmt.column_index("path").map_err(self.err())?,
        );
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(path)?, base_entry(r, &at)?)))
            .map_err(self.err())?;
        // Collected first, so that the tree is built packed (see `reconcile::Snapshot`).
        let mut base = Vec::new();
        for row in rows {
            let (path, entry) = row.map_err(self.err())?;
            // A row we cannot read back is dropped: without a base the path is treated as new
            // on both sides, which never deletes anything.
            match (RelPath::new(&path), entry) {
                (Ok(path), Some(entry)) => {
                    base.push((path, entry));
                }
                _ => tracing::warn!(path, "unreadable state row ignored"),
            }
        }
        Ok(base.into_iter().collect())
    }

    /// The base entry of one path.
    pub fn get(&self, path: &RelPath) -> Result<Option<BaseEntry>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE path = ?1"))
            .map_err(self.err())?;
        let at = EntryAt::of(&stmt).map_err(self.err())?;
        let row = stmt
            .query_row(params![path.as_str()], |r| base_entry(r, &at))
            .optional()
            .map_err(self.err())?;
        Ok(row.flatten())
    }

    /// The base entries of `path` and of everything under it (what sorts from `path/` to just
    /// before `path0`: '0' follows '/').
    pub fn subtree(&self, path: &RelPath) -> Result<Vec<(RelPath, BaseEntry)>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT path, {ENTRY_COLUMNS} FROM entries WHERE path = ?1 OR (path >= ?2 AND path < ?3)"
            ))
            .map_err(self.err())?;
        let (at, at_path) = (
            EntryAt::of(&stmt).map_err(self.err())?,
            stmt.column_index("path").map_err(self.err())?,
        );
        let (below, after) = path.under_bounds();
        let rows = stmt
            .query_map(params![path.as_str(), below, after], |r| {
                Ok((r.get::<_, String>(at_path)?, base_entry(r, &at)?))
            })
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            if let (Ok(p), Some(e)) = row.map(|(p, e)| (RelPath::new(&p), e)).map_err(self.err())? {
                out.push((p, e));
            }
        }
        Ok(out)
    }

    pub fn put(&self, path: &RelPath, e: &BaseEntry) -> Result<()> {
        self.conn
            .prepare_cached(&format!(
                "INSERT OR REPLACE INTO entries (path, {ENTRY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))
            .and_then(|mut st| {
                st.execute(params_from_iter(
                    std::iter::once(Value::Text(path.as_str().to_owned())).chain(entry_values(e)),
                ))
            })
            .map_err(self.err())?;
        Ok(())
    }

    pub fn remove(&self, path: &RelPath) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM entries WHERE path = ?1")
            .and_then(|mut st| st.execute(params![path.as_str()]))
            .map_err(self.err())?;
        Ok(())
    }

    /// Records that a part file for `path` is being filled from a source that looked like
    /// `source`: a later attempt may resume it only while the source still looks the same.
    pub fn start_partial(&self, path: &RelPath, way: Transfer, source: &Sig) -> Result<()> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO partials VALUES (?1, ?2, ?3, ?4, ?5)")
            .and_then(|mut st| {
                st.execute(params![
                    path.as_str(),
                    way.as_str(),
                    source.size as i64,
                    source.mtime.nanos,
                    source.mtime.precision.as_str()
                ])
            })
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
                |r| {
                    Ok((
                        r.get::<_, i64>("size")?,
                        r.get::<_, i64>("mtime")?,
                        r.get::<_, String>("precision")?,
                    ))
                },
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
            .prepare_cached("DELETE FROM partials WHERE path = ?1")
            .and_then(|mut st| st.execute(params![path.as_str()]))
            .map_err(self.err())?;
        Ok(())
    }

    /// Records that a pass started.
    pub fn pass_started(&self, at: DateTime<Utc>) -> Result<()> {
        self.set_meta(meta::PASS_START, &at.to_rfc3339())
    }

    /// Records how a pass ended. An error is kept as the last error, with its time, until a
    /// pass ends without one.
    pub fn pass_ended(&self, at: DateTime<Utc>, outcome: &PassOutcome) -> Result<()> {
        self.set_meta(meta::PASS_END, &at.to_rfc3339())?;
        self.set_meta(meta::RESULT, &outcome.result.to_string())?;
        let counts = serde_json::to_string(&outcome.counts)
            .map_err(|e| Error::Internal(format!("pass counts as JSON: {e}")))?;
        self.set_meta(meta::REPORT, &counts)?;
        match &outcome.result {
            PassResult::Error(e) => {
                self.set_meta(meta::ERROR, e)?;
                self.set_meta(meta::ERROR_AT, &at.to_rfc3339())?;
            }
            PassResult::Ok | PassResult::Unresolved => {
                self.delete_meta(meta::ERROR)?;
                self.delete_meta(meta::ERROR_AT)?;
            }
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
            last_error_at: time(meta::ERROR_AT)?,
            counts: self
                .meta(meta::REPORT)?
                .and_then(|r| serde_json::from_str(&r).ok()),
        })
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO meta VALUES (?1, ?2)")
            .and_then(|mut st| st.execute(params![key, value]))
            .map_err(self.err())?;
        Ok(())
    }

    fn delete_meta(&self, key: &str) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM meta WHERE key = ?1")
            .and_then(|mut st| st.execute(params![key]))
            .map_err(self.err())?;
        Ok(())
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get("value")
            })
            .optional()
            .map_err(self.err())
    }
}

#[cfg(test)]
mod tests;
