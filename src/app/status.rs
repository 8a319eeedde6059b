//! `ftps-sync status`: what the state store knows of each folder, and with `--remote` what
//! the next pass would do.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::to_json;
use crate::config::{Config, Folder};
use crate::engine::{self, ActionCounts, Options};
use crate::error::Result;
use crate::reconcile::{Base, Change, Kind, is_conflict_copy, local_change};
use crate::remote::Connector;
use crate::remote::ftps::FtpsConnector;
use crate::state::{PassCounts, State};

/// One folder's status: its `--json` form and its text.
#[derive(Debug, Serialize)]
pub struct FolderStatus {
    pub folder: String,
    pub synced: bool,
    #[serde(flatten)]
    pub known: Option<Known>,
}

/// What the store knows of a folder that has had a pass.
#[derive(Debug, Serialize)]
pub struct Known {
    pub files: usize,
    pub directories: usize,
    pub conflict_copies: usize,
    /// Local changes the next pass will send; `None` if the folder cannot be read.
    pub pending_local_changes: Option<usize>,
    /// With `--remote`: what the next pass would do, or why the server could not be asked.
    pub next_pass: Option<NextPass>,
    /// RFC 3339, as recorded.
    pub last_pass_start: Option<String>,
    pub last_pass_end: Option<String>,
    /// `ok`, `unresolved` or `error: ...`.
    pub last_result: Option<String>,
    pub last_error: Option<String>,
    pub last_report: Option<PassCounts>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum NextPass {
    Plan(ActionCounts),
    Unknown { error: String },
}

impl fmt::Display for FolderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.folder;
        let Some(k) = &self.known else {
            return write!(f, "{name}: never synced");
        };
        let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        write!(
            f,
            "{name}: {} files and {} directories in sync ({} conflict copies to look at); last pass {} .. {}: {}",
            k.files,
            k.directories,
            k.conflict_copies,
            or_dash(&k.last_pass_start),
            or_dash(&k.last_pass_end),
            or_dash(&k.last_result)
        )?;
        if let Some(n) = k.pending_local_changes {
            write!(f, "\n  {n} local changes waiting for the next pass")?;
        }
        match &k.next_pass {
            Some(NextPass::Unknown { error }) => write!(f, "\n  the server could not be checked: {error}")?,
            Some(NextPass::Plan(t)) => write!(
                f,
                "\n  the next pass would: upload {}, download {}, delete {} locally and {} on the server, keep both versions of {} conflicts",
                t.upload, t.download, t.delete_local, t.delete_remote, t.conflicts
            )?,
            None => {}
        }
        if let Some(r) = &k.last_report {
            write!(
                f,
                "\n  last pass: {} uploaded, {} downloaded, {} deleted, {} conflicts, {} skipped, {} failed",
                r.uploaded, r.downloaded, r.deleted, r.conflicts, r.skipped, r.failed
            )?;
        }
        if let Some(e) = &k.last_error {
            write!(f, "\n  last error: {e}")?;
        }
        Ok(())
    }
}

/// Local files and directories that differ from the last synced state (new, edited or
/// deleted): what the next pass will send. The server is not asked; `None` if the folder
/// cannot be read.
fn pending_local_changes(folder: &Folder, base: &Base) -> Option<usize> {
    let ignore = crate::local::scan::Ignore::new(&folder.ignore).ok()?;
    let scanned = crate::local::scan::scan(&folder.local, &ignore, base).ok()?;
    let paths: std::collections::BTreeSet<_> = base.keys().chain(scanned.snapshot.keys()).collect();
    Some(
        paths
            .into_iter()
            .filter(|p| {
                !matches!(
                    local_change(base.get(*p), scanned.snapshot.get(*p)),
                    Change::Unchanged | Change::Absent
                )
            })
            .count(),
    )
}

/// The status of one folder; with `tls`, also what the next pass would do (read-only: only
/// `prepare`, so it works while `run` is running). The exit code of a failed look at the
/// server comes back too.
async fn folder_status(
    config: &Config,
    f: &Folder,
    remote: Option<&Arc<dyn Connector>>,
) -> Result<(FolderStatus, u8)> {
    if !State::exists(&config.state_dir, &f.name) {
        let status = FolderStatus {
            folder: f.name.clone(),
            synced: false,
            known: None,
        };
        return Ok((status, 0));
    }
    let state = State::open(&config.state_dir, &f.name)?;
    let base = state.load()?;
    let files = base.values().filter(|b| b.kind == Kind::File).count();
    let mut code = 0;
    let next_pass = match remote {
        Some(connector) => {
            match engine::prepare(
                config,
                f,
                connector,
                Options {
                    plan_only: true,
                    ..Options::default()
                },
                &CancellationToken::new(),
            )
            .await
            {
                Ok(prepared) => {
                    let counts = prepared.totals().actions.clone();
                    prepared.close().await;
                    Some(NextPass::Plan(counts))
                }
                Err(e) => {
                    code = e.exit_code() as u8;
                    Some(NextPass::Unknown { error: e.to_string() })
                }
            }
        }
        None => None,
    };
    let last = state.last_pass()?;
    let known = Known {
        files,
        directories: base.len() - files,
        conflict_copies: base.keys().filter(|p| is_conflict_copy(p.name())).count(),
        pending_local_changes: pending_local_changes(f, &base),
        next_pass,
        last_pass_start: last.started.map(|t| t.to_rfc3339()),
        last_pass_end: last.ended.map(|t| t.to_rfc3339()),
        last_result: last.result,
        last_error: last.last_error,
        last_report: last.counts,
    };
    let status = FolderStatus {
        folder: f.name.clone(),
        synced: true,
        known: Some(known),
    };
    Ok((status, code))
}

pub async fn status(config: &Config, json: bool, remote: bool) -> Result<u8> {
    let connector = if remote {
        Some(FtpsConnector::for_server(&config.server)?)
    } else {
        None
    };
    let mut all = Vec::new();
    let mut code = 0u8;
    for f in &config.folders {
        let (status, c) = folder_status(config, f, connector.as_ref()).await?;
        code = code.max(c);
        all.push(status);
    }
    if json {
        say!("{}", to_json(&all)?);
    } else {
        for s in &all {
            say!("{s}");
        }
    }
    Ok(code)
}
