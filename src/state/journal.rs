//! The intent journal (docs/design.md, invariant 2): a row per change about to become visible under
//! a real name, written before it does, closed in the transaction that records its result.

use rusqlite::params;

use rusqlite::params_from_iter;
use rusqlite::types::Value;

use super::{ENTRY_COLUMNS, EntryAt, State, Transfer, base_entry, entry_values};
use crate::digest::HashAlgo;
use crate::error::Result;
use crate::path::RelPath;
use crate::reconcile::BaseEntry;

/// What is about to become visible at an intent's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A part file renamed to its real name: the local one (a download) or the remote one.
    Transfer(Transfer),
    /// A file or folder renamed from `from` on the server (the user moved it locally).
    MoveRemote { from: RelPath },
    /// A file or folder renamed from `from` locally (the user moved it on the server).
    MoveLocal { from: RelPath },
}

impl Op {
    fn as_str(&self) -> &'static str {
        match self {
            Op::Transfer(t) => t.as_str(),
            Op::MoveRemote { .. } => "move-remote",
            Op::MoveLocal { .. } => "move-local",
        }
    }

    fn source(&self) -> Option<&RelPath> {
        match self {
            Op::Transfer(_) => None,
            Op::MoveRemote { from } | Op::MoveLocal { from } => Some(from),
        }
    }

    fn parse(op: &str, source: Option<RelPath>) -> Option<Op> {
        match (op, source) {
            ("move-remote", Some(from)) => Some(Op::MoveRemote { from }),
            ("move-local", Some(from)) => Some(Op::MoveLocal { from }),
            (other, None) => Transfer::parse(other).map(Op::Transfer),
            _ => None,
        }
    }
}

/// A change about to become visible, and the base entry to record once it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub path: RelPath,
    pub op: Op,
    /// The entry to record when the change is found done. An upload's remote time is not in
    /// it: the server sets it at the rename. A move's is its target's entry (a folder's: its
    /// own; what is under it moves with it in the base).
    pub entry: BaseEntry,
    /// The digest the server's hash command can check, when it is not SHA-256.
    pub server_digest: Option<(HashAlgo, String)>,
    /// A download's: the identity of the local folder its part file is in
    /// (`local::write::folder_identity`), to tell a rename from the folder moved away.
    pub folder: Option<String>,
}

impl State {
    /// Journals `intent` before its change becomes visible: its own transaction, which the
    /// caller makes durable before the change (docs/design.md, "Durability": the store's log is
    /// synced once for the intents of several tasks).
    pub fn intend(&self, intent: &Intent) -> Result<()> {
        let text = |s: &str| Value::Text(s.to_owned());
        let digest = intent
            .server_digest
            .as_ref()
            .map_or(Value::Null, |(algo, hex)| text(&format!("{} {hex}", algo.name())));
        let source = intent.op.source().map_or(Value::Null, |s| text(s.as_str()));
        let values = [text(intent.path.as_str()), text(intent.op.as_str())]
            .into_iter()
            .chain(entry_values(&intent.entry))
            .chain([digest, intent.folder.as_deref().map_or(Value::Null, text), source]);
        self.conn
            .prepare_cached(&format!(
                "INSERT OR REPLACE INTO intents (path, op, {ENTRY_COLUMNS}, server_digest, folder, source) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
            ))
            .and_then(|mut st| st.execute(params_from_iter(values)))
            .map_err(self.err())?;
        Ok(())
    }

    /// The intents a killed pass left open.
    pub fn intents(&self) -> Result<Vec<Intent>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT path, op, {ENTRY_COLUMNS}, server_digest, folder, source FROM intents"
            ))
            .map_err(self.err())?;
        let at = EntryAt::of(&stmt).map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>("path")?,
                    r.get::<_, String>("op")?,
                    base_entry(r, &at)?,
                    r.get::<_, Option<String>>("server_digest")?,
                    r.get::<_, Option<String>>("folder")?,
                    r.get::<_, Option<String>>("source")?,
                ))
            })
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (path, op, entry, digest, folder, source) = row.map_err(self.err())?;
            let source = match source.map(|s| RelPath::new(&s)) {
                Some(Ok(from)) => Some(from),
                Some(Err(_)) => {
                    tracing::warn!(path, "unreadable intent ignored");
                    continue;
                }
                None => None,
            };
            let op = Op::parse(&op, source);
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
                    folder,
                }),
                _ => tracing::warn!(path, "unreadable intent ignored"),
            }
        }
        Ok(out)
    }

    /// Closes the move intent for `to` in one transaction: what the base held at `from`, and
    /// under it, is now at `to`. `moved(new path, old entry)` gives each its new entry, or
    /// `None` for one the rename did not carry (gone from that side): its row goes.
    pub fn close_move_intent(
        &self,
        from: &RelPath,
        to: &RelPath,
        moved: impl Fn(&RelPath, BaseEntry) -> Option<BaseEntry>,
    ) -> Result<()> {
        let tx = self.conn.unchecked_transaction().map_err(self.err())?;
        for (old, entry) in self.subtree(from)? {
            let Some(new) = old.rebased(from, to) else {
                continue;
            };
            self.remove(&old)?;
            if let Some(entry) = moved(&new, entry) {
                self.put(&new, &entry)?;
            }
        }
        tx.prepare_cached("DELETE FROM intents WHERE path = ?1")
            .and_then(|mut st| st.execute(params![to.as_str()]))
            .map_err(self.err())?;
        tx.commit().map_err(self.err())
    }

    /// Closes the intent for `path` in one transaction: records `done` as in sync if the change
    /// was found made, or only forgets the intent.
    pub fn close_intent(&self, path: &RelPath, done: Option<&BaseEntry>) -> Result<()> {
        let tx = self.conn.unchecked_transaction().map_err(self.err())?;
        if let Some(entry) = done {
            self.put(path, entry)?;
        }
        tx.prepare_cached("DELETE FROM intents WHERE path = ?1")
            .and_then(|mut st| st.execute(params![path.as_str()]))
            .map_err(self.err())?;
        tx.commit().map_err(self.err())
    }
}
