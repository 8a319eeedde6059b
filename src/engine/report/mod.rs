//! What one pass did, for the summary line, `--json` and the exit code.

pub(crate) mod meter;

use std::fmt;

use serde::Serialize;

use crate::reconcile::{Action, Plan, Snapshot};

#[derive(Debug, Clone, Serialize)]
pub struct Issue {
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub folder: String,
    pub uploaded: usize,
    pub downloaded: usize,
    pub deleted_local: usize,
    pub deleted_remote: usize,
    /// Files and folders the user moved locally, moved the same way on the server.
    pub moved_remote: usize,
    /// Files and folders the user moved on the server, moved the same way locally.
    pub moved_local: usize,
    pub dirs_created: usize,
    pub dirs_removed: usize,
    pub conflicts: usize,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub skipped: Vec<Issue>,
    /// Local files left for a later pass because they were still changing.
    pub deferred: usize,
    pub failed: Vec<Issue>,
    /// Failed attempts that were tried again (a dropped connection, a 4xx reply).
    pub retries: usize,
    /// What the first few retries were for (`path` names the attempt), and why.
    pub retried: Vec<Issue>,
    /// Retries by the server's reply code (`425`) or what broke (`connection-lost`).
    pub retries_by_reason: std::collections::BTreeMap<String, usize>,
    pub seconds: f64,
    /// Files whose time proved nothing (docs/design.md, "Racy times"), looked at before
    /// planning, by how.
    pub confirmed: Confirmed,
    /// The paths behind the counts (for `--json`; failed and skipped ones are in those lists).
    pub paths: Paths,
}

/// Racy times looked at, by how: the time to the second (MDTM), the server's SHA-256, or the
/// file read back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Confirmed {
    pub by_mdtm: usize,
    pub by_hash: usize,
    pub by_read_back: usize,
}

impl Confirmed {
    pub fn total(&self) -> usize {
        self.by_mdtm + self.by_hash + self.by_read_back
    }
}

/// Which files a pass moved, deleted or found in conflict.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Paths {
    pub uploaded: Vec<String>,
    pub downloaded: Vec<String>,
    pub deleted_local: Vec<String>,
    pub deleted_remote: Vec<String>,
    /// Files both sides changed; both versions were kept (or the policy picked one).
    pub conflicts: Vec<String>,
    pub moved_remote: Vec<MovedPath>,
    pub moved_local: Vec<MovedPath>,
}

/// A move, by its old and new name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct MovedPath {
    pub from: String,
    pub to: String,
}

impl Paths {
    /// In path order (they are collected in the order transfers end).
    pub fn sort(&mut self) {
        for list in [
            &mut self.uploaded,
            &mut self.downloaded,
            &mut self.deleted_local,
            &mut self.deleted_remote,
            &mut self.conflicts,
        ] {
            list.sort();
        }
        self.moved_remote.sort();
        self.moved_local.sort();
    }
}

impl Report {
    /// Whether the pass left something for the user to look at (exit code 1).
    pub fn unresolved(&self) -> bool {
        !self.skipped.is_empty() || !self.failed.is_empty() || self.conflicts > 0
    }

    /// Adds what the action on `path` did, and names it in `paths`.
    pub fn absorb_action(&mut self, path: &str, d: Report) {
        let named = [
            (d.uploaded, &mut self.paths.uploaded),
            (d.downloaded, &mut self.paths.downloaded),
            (d.deleted_local, &mut self.paths.deleted_local),
            (d.deleted_remote, &mut self.paths.deleted_remote),
        ];
        // A conflict's transfers are its own (the copy moves too): it is named once, there.
        if d.conflicts > 0 {
            self.paths.conflicts.push(path.to_owned());
        } else {
            for (count, list) in named {
                if count > 0 {
                    list.push(path.to_owned());
                }
            }
        }
        self.absorb(d);
    }

    /// Adds what one action did.
    pub fn absorb(&mut self, d: Report) {
        self.uploaded += d.uploaded;
        self.downloaded += d.downloaded;
        self.deleted_local += d.deleted_local;
        self.deleted_remote += d.deleted_remote;
        self.moved_remote += d.moved_remote;
        self.moved_local += d.moved_local;
        self.paths.moved_remote.extend(d.paths.moved_remote);
        self.paths.moved_local.extend(d.paths.moved_local);
        self.dirs_created += d.dirs_created;
        self.dirs_removed += d.dirs_removed;
        self.conflicts += d.conflicts;
        self.bytes_up += d.bytes_up;
        self.bytes_down += d.bytes_down;
        self.deferred += d.deferred;
        self.skipped.extend(d.skipped);
        self.failed.extend(d.failed);
    }

    pub fn skip(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.skipped.push(Issue {
            path: path.into(),
            reason: reason.into(),
        });
    }

    pub fn summary(&self) -> String {
        // Retries are worth a look (a flaky link, a server that refuses data connections).
        let retries = match self.retries {
            0 => String::new(),
            1 => " (1 retry)".to_owned(),
            n => format!(" ({n} retries)"),
        };
        let c = self.confirmed;
        let confirmed = match c.total() {
            0 => String::new(),
            n => format!(
                "; {n} racy times looked at ({} by MDTM, {} by hash, {} read back)",
                c.by_mdtm, c.by_hash, c.by_read_back
            ),
        };
        let moves = match self.moved_local + self.moved_remote {
            0 => String::new(),
            _ => format!(
                "{} moved ({} local, {} remote), ",
                self.moved_local + self.moved_remote,
                self.moved_local,
                self.moved_remote
            ),
        };
        format!(
            "{}: {} uploaded, {} downloaded, {moves}{} deleted ({} local, {} remote), {} conflicts, {} skipped, {} failed; \
             {} up, {} down in {:.1}s{retries}{confirmed}",
            self.folder,
            self.uploaded,
            self.downloaded,
            self.deleted_local + self.deleted_remote,
            self.deleted_local,
            self.deleted_remote,
            self.conflicts,
            self.skipped.len(),
            self.failed.len(),
            human_bytes(self.bytes_up),
            human_bytes(self.bytes_down),
            self.seconds
        )
    }
}

/// The summary line, then one line per skipped or failed file.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())?;
        for i in &self.skipped {
            write!(f, "\n  skipped {}: {}", i.path, i.reason)?;
        }
        for i in &self.failed {
            write!(f, "\n  failed  {}: {}", i.path, i.reason)?;
        }
        Ok(())
    }
}

/// What a plan would do, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ActionCounts {
    pub upload: usize,
    pub download: usize,
    pub delete_local: usize,
    pub delete_remote: usize,
    /// Moves made locally to be made on the server, and the other way.
    pub move_remote: usize,
    pub move_local: usize,
    pub conflicts: usize,
    pub skipped: usize,
}

/// What a plan would do, and the bytes it would move (for a dry run, `status --remote` and
/// progress).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    #[serde(flatten)]
    pub actions: ActionCounts,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

impl Totals {
    /// Adds another folder's totals.
    pub fn add(&mut self, other: &Totals) {
        let (a, b) = (&mut self.actions, &other.actions);
        a.upload += b.upload;
        a.download += b.download;
        a.delete_local += b.delete_local;
        a.delete_remote += b.delete_remote;
        a.move_remote += b.move_remote;
        a.move_local += b.move_local;
        a.conflicts += b.conflicts;
        a.skipped += b.skipped;
        self.bytes_up += other.bytes_up;
        self.bytes_down += other.bytes_down;
    }

    pub fn of(plan: &Plan, local: &Snapshot, remote: &Snapshot) -> Totals {
        let size = |s: &Snapshot, p| s.get(p).map_or(0, |e| e.size);
        let mut t = Totals::default();
        let n = &mut t.actions;
        for a in &plan.actions {
            match a {
                Action::Upload { path } => {
                    n.upload += 1;
                    t.bytes_up += size(local, path);
                }
                Action::Download { path } => {
                    n.download += 1;
                    t.bytes_down += size(remote, path);
                }
                // Both versions end up on both sides (one-way: at least the winner's moves).
                Action::KeepBoth { path, .. } => {
                    n.conflicts += 1;
                    t.bytes_up += size(local, path);
                    t.bytes_down += size(remote, path);
                }
                Action::DeleteLocal { .. } => n.delete_local += 1,
                Action::DeleteRemote { .. } => n.delete_remote += 1,
                Action::MoveRemote { .. } => n.move_remote += 1,
                Action::MoveLocal { .. } => n.move_local += 1,
                Action::Skip { .. } => n.skipped += 1,
                _ => {}
            }
        }
        t
    }
}

impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.actions;
        if a.move_local + a.move_remote > 0 {
            write!(
                f,
                "move {} locally and {} on the server, ",
                a.move_local, a.move_remote
            )?;
        }
        write!(
            f,
            "upload {} ({}), download {} ({}), delete {} locally and {} on the server, keep both versions of {} conflicts",
            self.actions.upload,
            human_bytes(self.bytes_up),
            self.actions.download,
            human_bytes(self.bytes_down),
            self.actions.delete_local,
            self.actions.delete_remote,
            self.actions.conflicts
        )
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}
