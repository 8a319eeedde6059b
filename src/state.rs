//! The state store: the base snapshot of one folder in SQLite, at
//! `<state_dir>/<folder>.sqlite3`. Each finished action is its own transaction, so a killed
//! pass loses at most the actions in flight.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};
use crate::path::RelPath;
use crate::reconcile::{Base, BaseEntry, Kind, Mtime, Precision, Sig};

pub struct State {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
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
";

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
    pub fn open(state_dir: &Path, folder: &str) -> Result<State> {
        std::fs::create_dir_all(state_dir).map_err(Error::local("create state dir", state_dir))?;
        let path = state_dir.join(format!("{folder}.sqlite3"));
        let err = |p: &Path| {
            let p = p.to_owned();
            move |source| Error::State { path: p, source }
        };
        let conn = Connection::open(&path).map_err(err(&path))?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .map_err(err(&path))?;
        conn.execute_batch(SCHEMA).map_err(err(&path))?;
        Ok(State { conn, path })
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

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute("INSERT OR REPLACE INTO meta VALUES (?1, ?2)", params![key, value])
            .map_err(self.err())?;
        Ok(())
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
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
}
