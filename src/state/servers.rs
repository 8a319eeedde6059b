//! What the agent learned about each server, kept between runs and shared by every folder on
//! it: one store per state dir, `<state_dir>/servers/learned.sqlite3` (a folder's store is
//! `<state_dir>/<name>.sqlite3`, so no folder name can meet it).
//!
//! One row per server and fact, with who the server was when it was learned (its
//! certificate's fingerprint and its greeting): what the rows mean is the engine's business.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};

/// One fact about a server, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedRow {
    /// What it is about (`tls`).
    pub fact: String,
    pub value: String,
    pub why: String,
    pub fingerprint: String,
    pub greeting: String,
    /// Unix seconds.
    pub learned_at: i64,
}

pub struct ServerStore {
    conn: Connection,
    path: PathBuf,
}

/// The store's migrations (`schema::migrate`): a store from a newer binary is refused, never
/// rewritten.
const MIGRATIONS: &[&str] = &["
CREATE TABLE IF NOT EXISTS learned (
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    fact TEXT NOT NULL,
    value TEXT NOT NULL,
    why TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    greeting TEXT NOT NULL,
    learned_at INTEGER NOT NULL,
    PRIMARY KEY (host, port, fact)
);
"];

impl ServerStore {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("servers").join("learned.sqlite3")
    }

    /// Opens the store, making it if `create`; `None` if it does not exist and `create` is
    /// false (reading makes nothing; only something learned makes the store).
    pub fn open(state_dir: &Path, create: bool) -> Result<Option<ServerStore>> {
        let path = Self::path(state_dir);
        if !create && !path.exists() {
            return Ok(None);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(Error::local("create state dir", dir))?;
        }
        let err = |source| Error::State {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(err)?;
        // Several processes (a service, a dry run) may share it.
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        super::schema::migrate(&mut conn, &path, MIGRATIONS)?;
        Ok(Some(ServerStore { conn, path }))
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        |source| Error::State {
            path: self.path.clone(),
            source,
        }
    }

    /// The fact `fact` about the server at `host:port`, if one was learned.
    pub fn get(&self, host: &str, port: u16, fact: &str) -> Result<Option<LearnedRow>> {
        self.conn
            .query_row(
                "SELECT value, why, fingerprint, greeting, learned_at FROM learned
                 WHERE host = ?1 AND port = ?2 AND fact = ?3",
                params![host, port, fact],
                |r| {
                    Ok(LearnedRow {
                        fact: fact.to_owned(),
                        value: r.get("value")?,
                        why: r.get("why")?,
                        fingerprint: r.get("fingerprint")?,
                        greeting: r.get("greeting")?,
                        learned_at: r.get("learned_at")?,
                    })
                },
            )
            .optional()
            .map_err(self.err())
    }

    /// Forgets what was known of `fact` about the server at `host:port`.
    pub fn delete(&self, host: &str, port: u16, fact: &str) -> Result<()> {
        self.conn
            .execute(
                "DELETE FROM learned WHERE host = ?1 AND port = ?2 AND fact = ?3",
                params![host, port, fact],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Keeps `row` for the server at `host:port`, in place of what was known of its fact.
    pub fn put(&self, host: &str, port: u16, row: &LearnedRow) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO learned
                 (host, port, fact, value, why, fingerprint, greeting, learned_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    host,
                    port,
                    row.fact,
                    row.value,
                    row.why,
                    row.fingerprint,
                    row.greeting,
                    row.learned_at
                ],
            )
            .map_err(self.err())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fact_is_kept_per_server_and_replaced() {
        let dir = tempfile::tempdir().expect("tmp");
        assert!(ServerStore::open(dir.path(), false).expect("open").is_none());
        let store = ServerStore::open(dir.path(), true).expect("open").expect("made");
        let row = |value: &str| LearnedRow {
            fact: "tls".into(),
            value: value.into(),
            why: "because".into(),
            fingerprint: "AB".into(),
            greeting: "220 hello".into(),
            learned_at: 7,
        };
        store.put("h", 21, &row("1.2")).expect("put");
        store.put("h", 2121, &row("1.3")).expect("put");
        drop(store);
        let store = ServerStore::open(dir.path(), false)
            .expect("open")
            .expect("there");
        assert_eq!(store.get("h", 21, "tls").expect("get"), Some(row("1.2")));
        store.put("h", 21, &row("1.3")).expect("put");
        assert_eq!(store.get("h", 21, "tls").expect("get"), Some(row("1.3")));
        assert_eq!(store.get("h", 22, "tls").expect("get"), None);
        store.delete("h", 21, "tls").expect("delete");
        assert_eq!(store.get("h", 21, "tls").expect("get"), None);
        assert_eq!(store.get("h", 2121, "tls").expect("get"), Some(row("1.3")));
    }
}
