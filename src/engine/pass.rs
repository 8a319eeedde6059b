//! What every task of a pass shares: the folder, both snapshots, the state store, the runner,
//! and what the pass learns as it goes (read-backs kept, folders made, the server's clock).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::racy::{self, ServerClock};
use super::report::human_bytes;
use super::report::meter::{self, Flying, Meter};
use super::run::Runner;
use super::settle::{self, Expected, GroupSync, Intents, Settled, expected_at};
use crate::config::{Config, Folder};
use crate::error::{Error, Result};
use crate::local::scan::Ignore;
use crate::path::RelPath;
use crate::reconcile::{BaseEntry, Entry, Mtime, Precision, Side, Sig, Snapshot};
use crate::remote::Remote;
use crate::remote::listing::same_remote;
use crate::state::{Intent, Op, State, Transfer};

/// What every task of a pass reads (and the state store they commit to).
pub(crate) struct Shared {
    pub config: Config,
    pub folder: Folder,
    pub local: Snapshot,
    pub remote: Snapshot,
    pub state: Mutex<State>,
    pub run: Runner,
    /// Uploads whose remote time we set but have not seen listed (LIST servers): confirmed
    /// with one listing per directory after the transfers.
    pub unconfirmed: Mutex<Vec<RelPath>>,
    /// The journal's intents: the only way to open or close one.
    pub intents: Intents,
    /// Makes intents durable before their steps, several with one sync.
    pub durable: GroupSync,
    /// The local root with its symlinks resolved, to check writes stay inside it.
    pub local_real: std::path::PathBuf,
    /// Local files with an mtime after this (nanoseconds) are left for a later pass.
    pub quiet_before: Option<i64>,
    /// Remote files read back whole to compare their content (no server hash), the bytes kept
    /// in the local part file of the path, with the remote signature they were read at: a
    /// download of that version uses them rather than reading the file again.
    pub kept_reads: Mutex<HashMap<RelPath, Sig>>,
    /// Local folders made and found inside the sync root this pass (`transfer::local_dir_ready`).
    pub ready_dirs: Mutex<HashSet<PathBuf>>,
    /// Local folders synced this pass for the rows it forgot (`Action::Forget`): an unlink of
    /// an earlier pass is durable once its folder is synced, and once is enough.
    pub forgotten_in: Mutex<HashSet<PathBuf>>,
    /// Whether the server keeps the bytes around a write at an offset, probed before the
    /// pass's first segmented upload (`ranged_upload::allowed`).
    pub writes_at: tokio::sync::OnceCell<bool>,
    /// What the scan and the listing leave out (the folder's `ignore` and the run's `--exclude`).
    pub ignore: Ignore,
    pub meter: Option<Arc<Meter>>,
    /// The local disk the pass renames, removes and syncs through.
    pub disk: crate::local::disk::DiskRef,
    /// The server's clock before this pass read any file's content (`plan::clock::read`), when it
    /// was read: a time recorded from the listing is racy unless it is older.
    pub server_clock: ServerClock,
    /// How finely the local file system keeps times (`local::precision`): a local time within
    /// this of the moment it is recorded is racy.
    pub local_precision: std::time::Duration,
    /// When the pass began on the local clock (nanoseconds), before it read any local file: a
    /// local time within `local_precision` of it, or later, is racy.
    pub local_moment: i64,
}

impl Shared {
    pub fn remote_path(&self, p: &RelPath) -> String {
        p.to_remote(&self.folder.remote)
    }

    /// The remote signature at which `path`'s part file holds a whole read-back, once: a
    /// download uses it or starts over.
    pub fn take_kept_read(&self, path: &RelPath) -> Option<Sig> {
        self.kept_reads.lock().ok()?.remove(path)
    }

    /// Whether `path`'s part file holds a read-back for its download to use.
    pub fn has_kept_read(&self, path: &RelPath) -> bool {
        self.kept_reads.lock().is_ok_and(|r| r.contains_key(path))
    }

    /// A conflict renamed the server's version of `path` to `copy`: its read-back (if the
    /// rename moved the very version read) becomes the part file of the copy's download.
    pub fn carry_kept_read(&self, path: &RelPath, copy: &RelPath, read: &Entry, moved: &Entry) {
        if self.take_kept_read(path) != Some(read.sig()) || !same_remote(moved, read) {
            return;
        }
        let from = crate::local::write::part_path(&path.to_local(&self.folder.local));
        let to = crate::local::write::part_path(&copy.to_local(&self.folder.local));
        if self.disk.rename(&from, &to).is_ok()
            && let Ok(mut kept) = self.kept_reads.lock()
        {
            kept.insert(copy.clone(), moved.sig());
        }
    }

    /// Removes the part files of read-backs no download used.
    pub fn drop_kept_reads(&self) {
        let unused = self
            .kept_reads
            .lock()
            .map(|mut k| std::mem::take(&mut *k))
            .unwrap_or_default();
        for path in unused.keys() {
            let _ = self.disk.remove_file(&crate::local::write::part_path(
                &path.to_local(&self.folder.local),
            ));
        }
    }

    /// Journals an intent (see `state::Intent`) before its change becomes visible, and returns
    /// once it is on disk (`GroupSync`).
    pub async fn intend(&self, intent: &Intent) -> Result<()> {
        let n = self.journal(intent)?;
        self.durable.reached(n).await
    }

    /// Journals an intent, not yet on disk: its number, for `self.durable.reached` before the
    /// change it announces.
    pub fn journal(&self, intent: &Intent) -> Result<u64> {
        self.state(|s| {
            self.intents.open(s, intent)?;
            Ok(self.durable.committed())
        })
    }

    /// Finishes the action at `path`: `done` recorded and its intent closed, or the intent
    /// only forgotten.
    pub fn finish(&self, path: &RelPath, done: Option<&BaseEntry>) -> Result<()> {
        self.state(|s| self.intents.close(s, path, done))
    }

    /// Closes the intent for `path` as `settled` found it.
    pub fn close_intent(&self, path: &RelPath, settled: &Settled) -> Result<()> {
        self.state(|s| self.intents.close_settled(s, path, settled))
    }

    /// Settles the intent an earlier attempt of this pass left open at `path` (its connection
    /// lost around the rename), as the next pass would; `None` when there is none. The intent
    /// stays open: the caller closes it as it goes on.
    pub async fn settle_left_open(
        &self,
        conn: &mut dyn Remote,
        path: &RelPath,
    ) -> Result<Option<(Intent, Settled)>> {
        let Some(intent) = self.intents.still_open(path) else {
            return Ok(None);
        };
        let settled =
            settle::settle_one(conn, &self.folder, &intent, &self.expected_by_plan(&intent)).await?;
        Ok(Some((intent, settled)))
    }

    /// Before a transfer makes, replaces or removes a part file: an intent a failed attempt of
    /// this pass left open is settled first (`settle_left_open`), since settlement tells a
    /// rename by its part file being gone. If it was renamed, the plan's view of the target is
    /// out of date and the attempt stops with `Changed`; the next pass plans from the recorded
    /// entry.
    pub async fn settle_open_intent(&self, conn: &mut dyn Remote, path: &RelPath) -> Result<()> {
        let Some((intent, settled)) = self.settle_left_open(conn, path).await? else {
            return Ok(());
        };
        self.close_intent(path, &settled)?;
        if settled.done() {
            return Err(Error::Changed {
                path: path.to_string(),
                side: match intent.op {
                    Op::Transfer(Transfer::Download) | Op::MoveLocal { .. } => Side::Local,
                    _ => Side::Remote,
                },
            });
        }
        Ok(())
    }

    /// What an open move's target should hold, by the snapshots this pass planned from.
    fn expected_by_plan(&self, intent: &Intent) -> Expected {
        match &intent.op {
            Op::MoveRemote { from } => expected_at(&self.remote, from, &intent.path, Entry::clone),
            Op::MoveLocal { from } => expected_at(&self.local, from, &intent.path, Entry::clone),
            Op::Transfer(_) => Expected::new(),
        }
    }

    /// Records a folder as in sync (a folder's row holds no time).
    pub fn record_dir(&self, path: &RelPath) -> Result<()> {
        let dir = Entry::dir(Mtime::new(0, Precision::Days));
        self.state(|s| s.put(path, &BaseEntry::of(&dir, &dir)))
    }

    /// What the base records of a remote file as listed (`racy::recorded_remote`).
    pub fn recorded_remote(&self, listed: &Entry, digest_known: bool) -> Sig {
        racy::recorded_remote(self.server_clock, listed, digest_known)
    }

    /// What the base records of a local file as seen (`racy::recorded_local`).
    pub fn recorded_local(&self, seen: Sig) -> Sig {
        racy::recorded_local(self.local_precision, self.local_moment, seen)
    }

    /// A transfer of `size` bytes starts, on the meter if there is one.
    pub(crate) fn take_off(&self, path: &RelPath, upload: bool, size: u64) -> Option<Flying> {
        if size >= meter::LARGE {
            let way = if upload { "uploading" } else { "downloading" };
            tracing::info!(path = %path, bytes = size, "{way} {}", human_bytes(size));
        }
        self.meter.as_ref().map(|m| m.take_off(path, upload, size))
    }

    /// Runs `f` on the state store (one short transaction, no await inside).
    pub fn state<T>(&self, f: impl FnOnce(&State) -> Result<T>) -> Result<T> {
        let guard = self.state.lock().map_err(|_| Error::Interrupted)?;
        f(&guard)
    }
}
