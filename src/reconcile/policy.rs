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

/// Everything of a folder's config that the planner looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub direction: Direction,
    pub delete: bool,
    pub conflict: ConflictPolicy,
    pub max_delete_percent: u8,
    pub first_sync: FirstSync,
    /// The local filesystem cannot hold two names that differ only by case (Windows, macOS).
    pub case_insensitive: bool,
}
