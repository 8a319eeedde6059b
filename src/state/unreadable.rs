//! A store SQLite says is damaged (docs/design.md, "Durability"): moved aside whole, never
//! repaired in place, so that the next pass rebuilds the base the safe way (a first sync that
//! compares content and deletes nothing). Only SQLite's own verdict counts: a busy or locked
//! store, an I/O error, a full disk or a refused permission are errors that say so, and the
//! store stays where it is.

use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

use super::State;
use crate::error::{Error, Result};

/// Whether `e` is SQLite's verdict that the store is damaged or no database at all.
pub fn is_damaged(e: &Error) -> bool {
    match e {
        Error::State { source, .. } => matches!(
            source.sqlite_error_code(),
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
        ),
        _ => false,
    }
}

impl State {
    /// Checks a store left open by a process that did not close it (its log is still there:
    /// killed, or the power cut), where a torn write could hide: SQLite's `quick_check`.
    pub fn check_if_left_open(&self) -> Result<()> {
        let (_, log) = self.files();
        if std::fs::metadata(&log).map_or(true, |m| m.len() == 0) {
            return Ok(());
        }
        let verdict: String = self
            .conn
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(self.err())?;
        if verdict == "ok" {
            return Ok(());
        }
        Err(Error::State {
            path: self.path.clone(),
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(format!("quick_check: {verdict}")),
            ),
        })
    }

    /// Moves the store of `folder` (and its log and index) aside, to a name with `stamp` in
    /// it; the new name of the store.
    pub fn set_aside(state_dir: &Path, folder: &str, stamp: &str) -> Result<PathBuf> {
        let store = Self::path(state_dir, folder);
        let aside = |p: &Path| suffixed(p, &format!(".unreadable-{stamp}"));
        for from in ["-wal", "-shm", ""].map(|s| suffixed(&store, s)) {
            if from.exists() {
                std::fs::rename(&from, aside(&from)).map_err(Error::local("move aside", &from))?;
            }
        }
        Ok(aside(&store))
    }
}

/// `path` with `suffix` added to its name: the store's log (`-wal`) and index (`-shm`).
pub(super) fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}
