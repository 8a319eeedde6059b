//! Deletion needs evidence (DESIGN.md invariant 4): refuse passes that look like a mistake.

use super::Policy;
use super::plan::Plan;
use super::snapshot::{Base, Kind, Snapshot};

/// A pass over part of a folder (the subtrees a watcher saw change): its snapshots hold only
/// those, so the share of deletions is measured against the whole folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// Files in sync in the whole folder.
    pub synced_files: usize,
}

/// Why a whole pass is refused; nothing of it is executed.
pub fn check(
    base: &Base,
    local: &Snapshot,
    remote: &Snapshot,
    plan: &Plan,
    policy: &Policy,
    part: Option<Part>,
) -> Result<(), String> {
    let synced_files = match part {
        Some(p) => p.synced_files,
        None => base.values().filter(|b| b.kind == Kind::File).count(),
    };
    // In a pass over part of the folder, an empty side is normal: only the share holds.
    if synced_files > 0 && part.is_none() {
        if local.is_empty() {
            return Err(format!(
                "the local folder is empty but {synced_files} files were in sync: is the disk mounted? \
                 Delete the state file to start over if this is intended"
            ));
        }
        if remote.is_empty() {
            return Err(format!(
                "the remote folder is empty or missing but {synced_files} files were in sync: \
                 refusing to delete them locally"
            ));
        }
    }
    let deletes = plan.actions.iter().filter(|a| a.is_delete()).count();
    if deletes > 0 && synced_files > 0 && deletes * 100 > synced_files * policy.max_delete_percent as usize {
        return Err(format!(
            "the pass would delete {deletes} of {synced_files} synced files, more than max_delete_percent ({}%)",
            policy.max_delete_percent
        ));
    }
    Ok(())
}
