//! The second half of a pass: carry out a prepared plan and record the outcome.

use std::sync::Arc;

use chrono::{DateTime, Utc};

mod conflict;
mod moves;
mod queue;

use crate::engine::pass::Shared;
use crate::engine::plan::Prepared;
use crate::engine::report::Report;
use crate::engine::run::retrying;
use crate::error::{Error, Result};
use crate::path::RelPath;
use crate::remote::ensure_dir;
use crate::state::{PassCounts, PassOutcome, PassResult, State, Transfer};

impl Prepared {
    /// Carries out the plan: stale part files first, then the actions in phases (see
    /// `queue`), each committed to the state store as it finishes.
    pub async fn execute(self) -> Result<Report> {
        let Prepared {
            shared,
            plan,
            mut report,
            pool,
            retries,
            started,
            local_parts,
            remote_parts,
            remote_exists,
            ..
        } = self;
        let sh = Arc::new(shared);
        let result = async {
            sh.state(|s| s.pass_started(sh.run.clock.now()))?;
            remove_stale_parts(&sh, &local_parts, &remote_parts).await?;
            if !remote_exists && plan.changes().next().is_some() {
                mkdir_remote_root(&sh).await?;
            }
            queue::execute(&sh, plan, &mut report).await
        }
        .await;
        sh.drop_kept_reads();
        report.paths.sort();
        report.seconds = started.elapsed().as_secs_f64();
        (report.retries, report.retried, report.retries_by_reason) = retries.taken();
        let outcome = outcome_of(&report, result.as_ref().err());
        let _ = sh.state(|s| s.pass_ended(sh.run.clock.now(), &outcome));
        pool.close().await;
        result.map(|()| report)
    }
}

/// What the state records of a pass that failed before it could start (for `status`).
pub(crate) fn record_failure(state: &State, e: &crate::Error, now: DateTime<Utc>) -> Result<()> {
    state.pass_ended(now, &outcome_of(&Report::default(), Some(e)))
}

/// What `status` shows of a pass.
fn outcome_of(report: &Report, error: Option<&crate::Error>) -> PassOutcome {
    let result = match error {
        Some(e) => PassResult::Error(e.to_string()),
        None if report.unresolved() => PassResult::Unresolved,
        None => PassResult::Ok,
    };
    PassOutcome {
        result,
        counts: PassCounts {
            uploaded: report.uploaded,
            downloaded: report.downloaded,
            deleted: report.deleted_local + report.deleted_remote,
            conflicts: report.conflicts,
            skipped: report.skipped.len(),
            failed: report.failed.len(),
            deferred: report.deferred,
        },
    }
}

/// Part files left by an interrupted pass are removed, unless the state says which source
/// they were started from: those may be resumed.
async fn remove_stale_parts(
    sh: &Shared,
    local_parts: &[std::path::PathBuf],
    remote_parts: &[(String, RelPath)],
) -> Result<()> {
    for part in local_parts {
        let target = part
            .strip_prefix(&sh.folder.local)
            .ok()
            .and_then(|rel| rel.to_str())
            .map(|rel| rel.replace('\\', "/"))
            .and_then(|rel| {
                let (dir, name) = rel.rsplit_once('/').map_or(("", rel.as_str()), |(d, n)| (d, n));
                let name = crate::local::part_target(name)?;
                RelPath::new(&if dir.is_empty() {
                    name.to_owned()
                } else {
                    format!("{dir}/{name}")
                })
                .ok()
            });
        // A read-back of this pass (`Shared::kept_reads`) may sit where an old part file was.
        let resumable = match &target {
            Some(t) => sh.state(|s| s.partial(t, Transfer::Download))?.is_some() || sh.has_kept_read(t),
            None => false,
        };
        if !resumable {
            tracing::debug!(part = %part.display(), "removing a part file left by an interrupted pass");
            let _ = sh.disk.remove_file(part);
        }
    }
    for (part, target) in remote_parts {
        if sh.state(|s| s.partial(target, Transfer::Upload))?.is_none() {
            tracing::debug!(part, "removing a remote part file left by an interrupted pass");
            match retrying(&sh.run, part, |c| Box::pin(c.remove(part))).await {
                // Gone already (the server clock's file is removed by the pass that reads it).
                Ok(()) | Err(Error::Reply { code: Some(550), .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

async fn mkdir_remote_root(sh: &Shared) -> Result<()> {
    let root = sh.folder.remote.clone();
    let mut prefix = if root.starts_with('/') {
        "/".to_owned()
    } else {
        String::new()
    };
    for part in root.split('/').filter(|p| !p.is_empty()) {
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        prefix.push_str(part);
        let dir = prefix.clone();
        retrying(&sh.run, &dir, |c| Box::pin(ensure_dir(c, &dir))).await?;
    }
    Ok(())
}
