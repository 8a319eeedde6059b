//! `ftps-sync status`: what the state store knows of each folder, and with `--remote` what
//! the next pass would do.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::to_json;
use crate::config::{Config, Folder};
use crate::engine::{self, ActionCounts, Options};
use crate::error::Result;
use crate::reconcile::{Base, Change, Kind, Side, is_conflict_copy, local_change, parse_conflict_copy};
use crate::remote::Connector;
use crate::state::{PassCounts, State};

/// One folder's status: its `--json` form and its text.
#[derive(Debug, Serialize)]
pub struct FolderStatus {
    pub folder: String,
    pub synced: bool,
    /// What the agent learned about the folder's server (`check` says the same).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_learned: Option<String>,
    #[serde(flatten)]
    pub known: Option<Known>,
}

/// What the store knows of a folder that has had a pass.
#[derive(Debug, Serialize)]
pub struct Known {
    pub files: usize,
    pub directories: usize,
    pub conflict_copies: usize,
    /// With `--conflicts`: each conflict copy and what it is a version of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<Vec<ConflictEntry>>,
    /// Local changes the next pass will send; `None` if the folder cannot be read.
    pub pending_local_changes: Option<usize>,
    /// With `--remote`: what the next pass would do, or why the server could not be asked.
    pub next_pass: Option<NextPass>,
    /// RFC 3339, as recorded.
    pub last_pass_start: Option<String>,
    pub last_pass_end: Option<String>,
    /// `ok`, `unresolved` or `error: ...`.
    pub last_result: Option<String>,
    /// The error of the last passes, until one ends without an error.
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub last_report: Option<PassCounts>,
    /// The same times, for the text form: local time, and how long ago.
    #[serde(skip)]
    pub times: Times,
}

#[derive(Debug, Default)]
pub struct Times {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub error: Option<DateTime<Utc>>,
}

/// A conflict copy beside its original.
#[derive(Debug, Serialize)]
pub struct ConflictEntry {
    pub copy: String,
    pub original: String,
    /// Whose version the copy holds (`local` or `remote` in JSON).
    pub side: Side,
    /// When the conflict was found (UTC, RFC 3339).
    pub found: String,
    /// Whether the original is still in sync under its name.
    pub original_exists: bool,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum NextPass {
    Plan(ActionCounts),
    Unknown { error: String },
}

/// `2026-11-30 10:16:29 (3 minutes ago)`, in the machine's time zone.
fn when(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let local = t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S");
    format!("{local} ({})", ago(now - t))
}

fn ago(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds();
    let (n, unit) = match s {
        i64::MIN..0 => return "in the future: is the clock right?".into(),
        0..60 => (s, "second"),
        60..3600 => (s / 60, "minute"),
        3600..86400 => (s / 3600, "hour"),
        _ => (s / 86400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

impl FolderStatus {
    /// The text form, with times relative to `now`.
    pub fn text(&self, now: DateTime<Utc>) -> String {
        let name = &self.folder;
        let Some(k) = &self.known else {
            return format!("{name}: never synced");
        };
        let mut out = format!(
            "{name}: {} files and {} directories in sync",
            k.files, k.directories
        );
        if k.conflict_copies > 0 {
            let s = if k.conflict_copies == 1 { "copy" } else { "copies" };
            out += &format!(", {} conflict {s} to look at", k.conflict_copies);
            if k.conflicts.is_none() {
                out += " (status --conflicts lists them)";
            }
        }
        // A failed pass did nothing; its error is the `last error` line.
        let failed = k.last_result.as_deref().is_some_and(|r| r.starts_with("error"));
        match (k.times.start, k.times.end) {
            (Some(start), Some(end)) if end >= start => {
                let took = (end - start).to_std().unwrap_or_default();
                let result = if failed {
                    "failed"
                } else {
                    k.last_result.as_deref().unwrap_or("-")
                };
                out += &format!(
                    "\n  last pass: {}, took {:.1}s: {result}",
                    when(end, now),
                    took.as_secs_f64(),
                );
            }
            // Started and not (yet) ended: a pass under way, or one that was killed.
            (Some(start), _) => out += &format!("\n  last pass started {}, not ended", when(start, now)),
            _ => {}
        }
        if let Some(r) = k.last_report.as_ref().filter(|_| !failed) {
            out += &format!(
                "\n  it did: {} uploaded, {} downloaded, {} deleted, {} conflicts, {} skipped, {} failed",
                r.uploaded, r.downloaded, r.deleted, r.conflicts, r.skipped, r.failed
            );
        }
        if let Some(n) = k.pending_local_changes {
            out += &format!("\n  {n} local changes waiting for the next pass");
        }
        match &k.next_pass {
            Some(NextPass::Unknown { error }) => {
                out += &format!("\n  the server could not be checked: {error}")
            }
            Some(NextPass::Plan(t)) => {
                out += &format!(
                    "\n  the next pass would: upload {}, download {}, delete {} locally and {} on the server, keep both versions of {} conflicts",
                    t.upload, t.download, t.delete_local, t.delete_remote, t.conflicts
                )
            }
            None => {}
        }
        if let Some(e) = &k.last_error {
            match k.times.error {
                Some(at) => out += &format!("\n  last error, {}: {e}", when(at, now)),
                None => out += &format!("\n  last error: {e}"),
            }
        }
        for c in k.conflicts.iter().flatten() {
            let whose = if c.side == Side::Local {
                "this machine's"
            } else {
                "the server's"
            };
            let gone = if c.original_exists {
                ""
            } else {
                "; the original is gone"
            };
            out += &format!("\n  {}  <-  {} ({whose} version{gone})", c.original, c.copy);
        }
        out
    }
}

/// The conflict copies in the base, each beside its original.
fn conflicts_of(base: &Base) -> Vec<ConflictEntry> {
    base.keys()
        .filter_map(|path| {
            let copy = parse_conflict_copy(path.name())?;
            let original = path.with_name(&copy.original).ok()?;
            Some(ConflictEntry {
                copy: path.to_string(),
                original_exists: base.contains_key(&original),
                original: original.to_string(),
                side: copy.side,
                found: copy.found.and_utc().to_rfc3339(),
            })
        })
        .collect()
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
    list_conflicts: bool,
) -> Result<(FolderStatus, u8)> {
    if !State::exists(&config.state_dir, &f.name) {
        let status = FolderStatus {
            folder: f.name.clone(),
            synced: false,
            server_learned: None,
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
    let rfc3339 = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let known = Known {
        files,
        directories: base.len() - files,
        conflict_copies: base.keys().filter(|p| is_conflict_copy(p.name())).count(),
        conflicts: list_conflicts.then(|| conflicts_of(&base)),
        pending_local_changes: pending_local_changes(f, &base),
        next_pass,
        last_pass_start: rfc3339(last.started),
        last_pass_end: rfc3339(last.ended),
        last_result: last.result,
        last_error: last.last_error,
        last_error_at: rfc3339(last.last_error_at),
        last_report: last.counts,
        times: Times {
            start: last.started,
            end: last.ended,
            error: last.last_error_at,
        },
    };
    let status = FolderStatus {
        folder: f.name.clone(),
        synced: true,
        server_learned: None,
        known: Some(known),
    };
    Ok((status, code))
}

pub async fn status(config: &Config, json: bool, remote: bool, conflicts: bool) -> Result<u8> {
    let connector = if remote {
        Some(crate::remote::ftps::FtpsConnector::remembering(
            &config.server,
            engine::learned::memory(config),
        )?)
    } else {
        None
    };
    let now_secs = Utc::now().timestamp();
    let learned = engine::learned::remembered(config)
        .filter(|l| !l.expired(now_secs))
        .map(|l| super::check::shown(Some(&l), &config.server));
    let mut all = Vec::new();
    let mut code = 0u8;
    for f in &config.folders {
        let (mut status, c) = folder_status(config, f, connector.as_ref(), conflicts).await?;
        status.server_learned = learned.clone();
        code = code.max(c);
        all.push(status);
    }
    if json {
        say!("{}", to_json(&all)?);
    } else {
        let now = Utc::now();
        if let Some(learned) = &learned {
            say!("server {}:{}: {learned}", config.server.host, config.server.port);
        }
        for s in &all {
            say!("{}", s.text(now));
        }
    }
    Ok(code)
}
