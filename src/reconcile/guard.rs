//! Deletion needs evidence (docs/design.md, invariant 4): refuse passes that look like a mistake.

use std::fmt;

use serde::Serialize;

use super::Policy;
use super::plan::{Plan, Side};
use super::policy::DeleteLimit;
use super::snapshot::{Base, Kind, Snapshot};
use crate::path::RelPath;

/// A pass over part of a folder (the subtrees a watcher saw change): its snapshots hold only
/// those, so the share of deletions is measured against the whole folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// Files in sync in the whole folder.
    pub synced_files: usize,
}

/// Why a whole pass is refused; nothing of it is executed. It carries what it is about, for
/// the CLI to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "refusal", rename_all = "kebab-case")]
pub enum Refusal {
    /// The pass would delete more than its limit (`max_delete_percent`, or `--max-delete`).
    MaxDelete {
        /// The files it would delete, on either side.
        deletes: Vec<RelPath>,
        synced_files: usize,
        limit: DeleteLimit,
        /// The server cannot show a move made on it (LIST only, no hash command), and some of
        /// the deletions are local: a folder renamed on the server looks like this.
        moves_unrecognised: bool,
    },
    /// One side's root holds nothing while files were in sync: an unmounted disk, a wrong
    /// remote path.
    EmptyRoot { side: Side, synced_files: usize },
    /// One side's root does not exist at all (`root` as configured).
    MissingRoot { side: Side, root: String },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::MaxDelete {
                deletes,
                synced_files,
                limit,
                moves_unrecognised,
            } => {
                let set_by = match limit {
                    DeleteLimit::Percent(_) => "max_delete_percent",
                    DeleteLimit::Files(_) => "--max-delete",
                };
                write!(
                    f,
                    "the pass would delete {} of {synced_files} synced files, more than {limit} ({set_by})",
                    deletes.len()
                )?;
                if *moves_unrecognised {
                    write!(
                        f,
                        "; if you renamed or moved them on the server, this server cannot show it (no MLSD \
                         unique facts, no hash command), so the new names are downloaded and the old ones \
                         deleted here: run once with --max-delete {} to let that through",
                        deletes.len()
                    )?;
                }
                Ok(())
            }
            Refusal::EmptyRoot {
                side: Side::Local,
                synced_files,
            } => write!(
                f,
                "the local folder is empty but {synced_files} files were in sync: is the disk mounted? \
                 Delete the state file to start over if this is intended"
            ),
            Refusal::EmptyRoot {
                side: Side::Remote,
                synced_files,
            } => write!(
                f,
                "the remote folder is empty or missing but {synced_files} files were in sync: \
                 refusing to delete them locally"
            ),
            Refusal::MissingRoot {
                side: Side::Local,
                root,
            } => write!(f, "local folder {root} is missing: is the disk mounted?"),
            Refusal::MissingRoot {
                side: Side::Remote,
                root,
            } => write!(
                f,
                "remote folder {root} is missing but files were in sync: refusing to delete them locally"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// Whether a whole pass must be refused.
pub fn check(
    base: &Base,
    local: &Snapshot,
    remote: &Snapshot,
    plan: &Plan,
    policy: &Policy,
    part: Option<Part>,
) -> Result<(), Refusal> {
    let synced_files = match part {
        Some(p) => p.synced_files,
        None => base.values().filter(|b| b.kind == Kind::File).count(),
    };
    // In a pass over part of the folder, an empty side is normal: only the share holds.
    if synced_files > 0 && part.is_none() {
        for (side, snapshot) in [(Side::Local, local), (Side::Remote, remote)] {
            if snapshot.is_empty() {
                return Err(Refusal::EmptyRoot { side, synced_files });
            }
        }
    }
    let deletes: Vec<RelPath> = plan
        .actions
        .iter()
        .filter(|a| a.is_delete())
        .map(|a| a.path().clone())
        .collect();
    if !deletes.is_empty() && synced_files > 0 && !policy.max_delete.allows(deletes.len(), synced_files) {
        let local_deletes = plan
            .actions
            .iter()
            .any(|a| matches!(a, super::Action::DeleteLocal { .. }));
        return Err(Refusal::MaxDelete {
            deletes,
            synced_files,
            limit: policy.max_delete,
            moves_unrecognised: local_deletes && !policy.remote_moves_recognised,
        });
    }
    Ok(())
}
