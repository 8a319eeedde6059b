//! Deletion needs evidence (DESIGN.md invariant 4): refuse passes that look like a mistake.

use super::Policy;
use super::plan::Plan;
use super::snapshot::{Base, Kind, Snapshot};

/// Why a whole pass is refused; nothing of it is executed.
pub fn check(
    base: &Base,
    local: &Snapshot,
    remote: &Snapshot,
    plan: &Plan,
    policy: &Policy,
) -> Result<(), String> {
    let synced_files = base.values().filter(|b| b.kind == Kind::File).count();
    if synced_files > 0 {
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
