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

/// Everything of a folder's config that the planner looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub direction: Direction,
    pub delete: bool,
    pub conflict: ConflictPolicy,
    pub max_delete_percent: u8,
    /// The local filesystem cannot hold two names that differ only by case (Windows, macOS).
    pub case_insensitive: bool,
}
