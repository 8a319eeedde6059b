//! The pure core: `plan(base, local, remote, policy, now) -> Plan`.
//!
//! No tokio, no filesystem, no clock, no network: data in, plan out. The time used for conflict
//! copy names comes in as `now`.

mod conflict_copy;
mod decide;
pub mod guard;
pub mod moves;
pub mod plan;
pub mod policy;
pub mod snapshot;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

pub use conflict_copy::{ConflictCopy, is_conflict_copy, parse_conflict_copy};
pub use decide::{
    Change, local_change, needs_digests, needs_remote_digest, needs_touch_check, remote_change, same_content,
};
pub use guard::{Part, Refusal};
pub use plan::{Action, Plan, Side};
pub use snapshot::{Base, BaseEntry, Entry, FileId, Kind, Mtime, Precision, Sig, Snapshot};

use crate::path::RelPath;
use decide::Ctx;
pub use policy::{ConflictPolicy, DeleteLimit, Direction, FirstSync, Policy};

/// Plans one pass. `Err` is a refusal (a guard fired): nothing is to be done.
pub fn plan(
    base: &Base,
    local: &Snapshot,
    remote: &Snapshot,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Plan, Refusal> {
    plan_part(base, local, remote, policy, now, None)
}

/// Plans a pass over the whole folder (`part` is `None`), or over some of its subtrees: then
/// the three snapshots hold those subtrees only, each complete, with their parents in sync.
pub fn plan_part(
    base: &Base,
    local: &Snapshot,
    remote: &Snapshot,
    policy: &Policy,
    now: DateTime<Utc>,
    part: Option<Part>,
) -> Result<Plan, Refusal> {
    let ctx = Ctx {
        policy,
        now,
        local,
        remote,
    };
    let paths: BTreeSet<&RelPath> = base.keys().chain(local.keys()).chain(remote.keys()).collect();

    // Left alone, with all that lies under them: a path that is a file on one side and a
    // directory on the other, and names that differ only by case where the local filesystem
    // cannot hold both (writing one would replace the other).
    let case_twins = if policy.case_insensitive {
        case_twins(&paths)
    } else {
        BTreeSet::new()
    };
    let mut left_alone: Vec<&RelPath> = Vec::new();
    let mut actions: Vec<Action> = Vec::new();
    let mut dirs: Vec<&RelPath> = Vec::new();
    for path in &paths {
        if left_alone.iter().any(|c| path.is_inside(c)) {
            continue;
        }
        if case_twins.contains(path) {
            left_alone.push(path);
            actions.push(Action::Skip {
                path: (*path).clone(),
                reason: "another name differs only by case, and this system cannot hold both".into(),
            });
            continue;
        }
        let (b, l, r) = (base.get(*path), local.get(*path), remote.get(*path));
        let is_dir = |e: Option<&Entry>| e.map(|e| e.kind == Kind::Dir);
        match (is_dir(l), is_dir(r)) {
            (Some(a), Some(b)) if a != b => {
                left_alone.push(path);
                actions.push(Action::Skip {
                    path: (*path).clone(),
                    reason: "a file on one side, a directory on the other".into(),
                });
                continue;
            }
            _ => {}
        }
        let dir_now = is_dir(l)
            .or(is_dir(r))
            .unwrap_or(b.is_some_and(|b| b.kind == Kind::Dir));
        if dir_now {
            dirs.push(path);
        } else if let Some(a) = decide::decide_file(&ctx, path, b, l, r) {
            actions.push(a);
        }
    }

    moves::pair(base, local, remote, policy, &mut actions);
    // Directories bottom-up, so each one knows what happens to everything under it.
    let mut removed = decide::Removed::default();
    actions.iter().for_each(|a| removed.note(a));
    for path in dirs.into_iter().rev() {
        if let Some(a) = decide::decide_dir(policy, path, base, local, remote, &removed) {
            removed.note(&a);
            actions.push(a);
        }
    }

    moves::collapse(base, local, remote, policy, &mut actions);
    let plan = Plan::new(actions);
    guard::check(base, local, remote, &plan, policy, part)?;
    Ok(plan)
}

/// The paths that share their lower-case form with another path.
fn case_twins<'a>(paths: &BTreeSet<&'a RelPath>) -> BTreeSet<&'a RelPath> {
    let mut by_case: std::collections::HashMap<String, Vec<&'a RelPath>> = std::collections::HashMap::new();
    for p in paths {
        by_case.entry(p.as_str().to_lowercase()).or_default().push(p);
    }
    by_case.into_values().filter(|g| g.len() > 1).flatten().collect()
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod realistic;
#[cfg(test)]
mod tests;
