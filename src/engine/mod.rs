//! One pass over one folder, in the order it runs; each room is one phase, and a room uses only
//! the rooms above it in this list (`tests/it/layout.rs` holds the code to it):
//!
//! ```text
//!   report/    what a pass did (Report, Totals) and the progress meter
//!   run        remote work on the pool, retried with backoff (Runner, retrying)
//!   racy       the racy-time rule (docs/design.md, "Racy times")
//!   content    a file's SHA-256 on either side: the scan's, the server's hash, or read back
//!   settle/    crash recovery: the open intents (Intents) and settling them (docs/design.md,
//!              "The journal")
//!   pass       what every task of a pass shares (Shared)
//!   plan/      prepare: scan local, list remote, load base, settle, digests -> reconcile::plan
//!   transfer/  one file moved: upload, download, each also in ranges over several connections
//!   execute/   the plan carried out: the queue of actions, moves, conflicts
//!   mod        sync_folder (plan, then execute), sync_all
//! ```
//! `scope`, `retry` and `learned` stand apart: what a pass looks at, the backoff, and what is
//! learned about a server; the service and the commands use them too.

mod content;
mod execute;
pub mod learned;
mod pass;
mod plan;
mod racy;
mod report;
pub mod retry;
mod run;
pub mod scope;
mod settle;
mod transfer;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use plan::{Options, Prepared, prepare};
pub use report::meter::{InFlight, Meter, Reading};
pub use report::{ActionCounts, Issue, Report, Totals, human_bytes};
pub use scope::{Dirty, Scope};

use crate::config::{Config, Folder};
use crate::error::{Error, Result};
use crate::remote::Connector;
use crate::state::State;

/// Runs one pass for `folder`: prepare, then execute. A pass that fails or is refused before
/// it starts is recorded for `status` too (once the folder has a state store).
pub async fn sync_folder(
    config: &Config,
    folder: &Folder,
    connector: &Arc<dyn Connector>,
    options: Options,
    cancel: &CancellationToken,
) -> Result<Report> {
    let clock = options.clock.clone();
    let began = clock.now();
    match prepare(config, folder, connector, options, cancel).await {
        Ok(prepared) => prepared.execute().await,
        Err(e) => {
            if State::exists(&config.state_dir, &folder.name)
                && let Ok(state) = State::open(&config.state_dir, &folder.name)
            {
                let _ = state.pass_started(began);
                let _ = execute::record_failure(&state, &e, clock.now());
            }
            Err(e)
        }
    }
}

/// The folders `only` names (all of them when it is empty); an unknown name is the user's
/// mistake.
pub fn select_folders<'a>(config: &'a Config, only: &[String]) -> Result<Vec<&'a Folder>> {
    for name in only {
        if !config.folders.iter().any(|f| &f.name == name) {
            return Err(Error::Usage(format!(
                "no folder named {name:?} in {}",
                config.source.display()
            )));
        }
    }
    Ok(config
        .folders
        .iter()
        .filter(|f| only.is_empty() || only.contains(&f.name))
        .collect())
}

/// What one pass per folder did.
#[derive(Debug, Default)]
pub struct Passes {
    pub reports: Vec<Report>,
    /// Folders whose pass was refused (a guard fired); the others went on.
    pub refused: Vec<Error>,
}

impl Passes {
    /// Whether something is left for the user (exit code 1).
    pub fn unresolved(&self) -> bool {
        !self.refused.is_empty() || self.reports.iter().any(Report::unresolved)
    }
}

/// One pass over each of `folders`, in order, with `options`, holding the instance lock of the
/// state dir.
/// A refused folder does not stop the others; any other error stops them. `each` sees every
/// folder's outcome as it ends.
pub async fn sync_all(
    config: &Config,
    folders: &[&Folder],
    connector: &Arc<dyn Connector>,
    cancel: &CancellationToken,
    options: Options,
    mut each: impl FnMut(std::result::Result<&Report, &Error>),
) -> Result<Passes> {
    let _lock = crate::lock::InstanceLock::acquire(&config.state_dir)?;
    let mut passes = Passes::default();
    for folder in folders {
        match sync_folder(config, folder, connector, options.clone(), cancel).await {
            Ok(report) => {
                each(Ok(&report));
                passes.reports.push(report);
            }
            Err(e @ Error::Refused { .. }) => {
                each(Err(&e));
                passes.refused.push(e);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(passes)
}
