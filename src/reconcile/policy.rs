//! The parts of a folder's config that decide the plan. The config reads them (as YAML); the
//! planner owns them.

use serde::{Deserialize, Serialize};

/// Which way files move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Upload,
    Download,
    Both,
}

/// What to do when both sides changed since the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictPolicy {
    KeepBoth,
    Newer,
    Local,
    Remote,
}

/// When a file is on both sides and in no base (a first sync), what makes the two the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FirstSync {
    /// Equal size and the same time to the second, where both sides give the time to the
    /// second or better; else their contents are compared.
    #[default]
    SizeAndTime,
    /// Their contents, always.
    CompareContent,
}

/// The most deletions a pass may make (docs/design.md, invariant 4): a share of the files in sync
/// (`max_delete_percent`), or a number of files (`--max-delete N`, for one run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeleteLimit {
    Percent(u8),
    Files(usize),
}

impl DeleteLimit {
    /// Whether deleting `deletes` of `synced_files` files stays within the limit.
    pub fn allows(self, deletes: usize, synced_files: usize) -> bool {
        match self {
            DeleteLimit::Percent(p) => deletes * 100 <= synced_files * p as usize,
            DeleteLimit::Files(n) => deletes <= n,
        }
    }

    /// `--max-delete`: `N` files or `N%` of the files in sync.
    pub fn parse(s: &str) -> Result<DeleteLimit, String> {
        let bad = || format!("{s:?} is not a number of files (e.g. 100) or a share (e.g. 20%)");
        match s.trim().strip_suffix('%') {
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= 100 => Ok(DeleteLimit::Percent(p)),
                _ => Err(format!("{s:?}: a share must be 0% to 100%")),
            },
            None => s.trim().parse().map(DeleteLimit::Files).map_err(|_| bad()),
        }
    }
}

impl std::fmt::Display for DeleteLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeleteLimit::Percent(p) => write!(f, "{p}% of the files in sync"),
            DeleteLimit::Files(n) => write!(f, "{n} files"),
        }
    }
}

/// Everything of a folder's config that the planner looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub direction: Direction,
    pub delete: bool,
    pub conflict: ConflictPolicy,
    /// How many deletions a pass may make before it is refused as a likely mistake.
    pub max_delete: DeleteLimit,
    pub first_sync: FirstSync,
    /// The local filesystem cannot hold two names that differ only by case (Windows, macOS).
    pub case_insensitive: bool,
    /// Pair a path gone from one side with a new one holding the same file into one rename on
    /// the other side (`moves`). Off only to compare plans with and without it.
    pub detect_moves: bool,
    /// Whether the server shows what recognises a move made on it (MLSD `unique`, or a hash
    /// command): without, a folder renamed there reads as deleted, and a refusal says so.
    pub remote_moves_recognised: bool,
    /// The server's clock (seconds since the epoch) before the pass read any file's content,
    /// when it was read: a remote time in that second or later proves nothing about a write
    /// after it (racy), so size and time alone never make two files the same.
    pub server_clock: Option<i64>,
}
