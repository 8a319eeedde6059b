//! The store's schema, as the migrations that make it, and how a store moves forward by them
//! (`migrate`, for the folder's store and for what is learned of servers).

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};

/// Migration `i` takes a store from version `i` to `i + 1`; the last one reached is the version
/// this binary writes. Append only: never edit one that has shipped.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 1 -> 2: the intent journal (docs/design.md, invariant 2). A row is written, durably, before a
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
    // 2 -> 3: which local folder a download's part file was in (settle::local_done).
    "ALTER TABLE intents ADD COLUMN folder TEXT;",
    // 3 -> 4: moves. Each side's id of a file in sync (`FileId`: the local inode, the server's
    // MLSD `unique`), to pair a vanished path with a new one; and a move's source in its intent.
    // Rows from before have no ids: their moves are recognised by content alone.
    "
ALTER TABLE entries ADD COLUMN local_id INTEGER;
ALTER TABLE entries ADD COLUMN remote_id INTEGER;
ALTER TABLE intents ADD COLUMN local_id INTEGER;
ALTER TABLE intents ADD COLUMN remote_id INTEGER;
ALTER TABLE intents ADD COLUMN source TEXT;
",
];

/// The schema version this binary reads and writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Brings the store at `path` up to `migrations.len()` (SQLite's `user_version`), one
/// transaction per step; refuses a store from a newer binary without touching it.
pub(super) fn migrate(conn: &mut Connection, path: &Path, migrations: &[&str]) -> Result<()> {
    let known = migrations.len();
    let err = |source| Error::State {
        path: path.to_owned(),
        source,
    };
    let version = |conn: &Connection| -> Result<usize> {
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        Ok(usize::try_from(v).unwrap_or(usize::MAX))
    };
    let found = version(conn)?;
    if found > known {
        return Err(Error::StateTooNew {
            path: path.to_owned(),
            found,
            known,
        });
    }
    while version(conn)? < known {
        // IMMEDIATE: the write lock first, then the version read again, so two processes
        // opening an old store (a `status` beside a service) never run a step twice.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let from = version(&tx)?;
        if from >= known {
            break;
        }
        tx.execute_batch(migrations[from]).map_err(err)?;
        tx.pragma_update(None, "user_version", (from + 1) as i64)
            .map_err(err)?;
        tx.commit().map_err(err)?;
        tracing::debug!(store = %path.display(), version = from + 1, "store schema updated");
    }
    Ok(())
}
