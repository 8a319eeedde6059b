//! One pass over one folder:
//!
//! ```text
//!   scan local  ──┐
//!   list remote ──┼─► reconcile::plan ─► Plan ─► execute, one action at a time ─► commit each
//!   load base   ──┘        (pure)          │          (retry transient errors)     to state
//!                                          └─► --dry-run: print it, change nothing
//! ```

mod report;
pub mod retry;
mod transfer;

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

pub use report::{Issue, Report, human_bytes};

use crate::config::{Config, Folder};
use crate::error::{Class, Error, Result};
use crate::local::is_part_name;
use crate::local::scan::{Ignore, entry_of, scan, sha256_file};
use crate::path::RelPath;
use crate::reconcile::{
    self, Action, Base, BaseEntry, Entry, Kind, Mtime, Plan, Policy, Precision, Snapshot,
};
use crate::remote::ftps::Ftps;
use crate::remote::listing::{Listed, ListedKind};
use crate::remote::tls::TlsContext;
use crate::state::State;

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub dry_run: bool,
}

/// Everything one pass works with.
struct Pass<'a> {
    config: &'a Config,
    folder: &'a Folder,
    tls: &'a TlsContext,
    state: State,
    /// The control connection; `None` after a transient error, reopened on next use.
    conn: Option<Ftps>,
    ignore: Ignore,
    local: Snapshot,
    remote: Snapshot,
    report: Report,
}

/// Runs one pass for `folder`: scan, list, plan, execute, commit.
pub async fn sync_folder(
    config: &Config,
    folder: &Folder,
    tls: &TlsContext,
    options: Options,
    cancel: &CancellationToken,
) -> Result<Report> {
    let started = Instant::now();
    let refused = |reason: String| Error::Refused {
        folder: folder.name.clone(),
        reason,
    };
    if !folder.local.is_dir() {
        return Err(refused(format!(
            "local folder {} is missing: is the disk mounted?",
            folder.local.display()
        )));
    }
    let state = State::open(&config.state_dir, &folder.name)?;
    let base = state.load()?;
    let ignore = Ignore::new(&folder.ignore)?;

    let scan_root = folder.local.clone();
    let (scan_ignore, scan_base) = (ignore.clone(), base.clone());
    let scanned = tokio::task::spawn_blocking(move || scan(&scan_root, &scan_ignore, &scan_base))
        .await
        .map_err(|e| Error::Usage(format!("scan task failed: {e}")))??;

    let mut pass = Pass {
        config,
        folder,
        tls,
        state,
        conn: None,
        ignore,
        local: scanned.snapshot,
        remote: Snapshot::new(),
        report: Report {
            folder: folder.name.clone(),
            dry_run: options.dry_run,
            ..Report::default()
        },
    };
    for (path, reason) in &scanned.unsafe_names {
        tracing::warn!(path = %path.display(), reason, "local name cannot be synced; skipped");
        pass.report.skip(path.display().to_string(), reason.clone());
    }

    let listed = pass.list_tree().await?;
    let (remote_exists, remote_parts) = match listed {
        Some((snapshot, parts)) => {
            pass.remote = snapshot;
            (true, parts)
        }
        None => {
            if !base.is_empty() {
                return Err(refused(format!(
                    "remote folder {} is missing but files were in sync: refusing to delete them locally",
                    folder.remote
                )));
            }
            (false, Vec::new())
        }
    };
    pass.fill_first_sync_digests(&base).await?;

    let policy = Policy::of(folder);
    let plan = reconcile::plan(&base, &pass.local, &pass.remote, &policy, Utc::now()).map_err(refused)?;

    if options.dry_run {
        pass.report.plan = Some(plan);
        pass.report.seconds = started.elapsed().as_secs_f64();
        pass.close().await;
        return Ok(pass.report);
    }
    pass.state.set_meta("last_pass_start", &Utc::now().to_rfc3339())?;

    for part in &scanned.part_files {
        tracing::debug!(part = %part.display(), "removing a part file left by an interrupted pass");
        let _ = std::fs::remove_file(part);
    }
    for part in &remote_parts {
        tracing::debug!(part, "removing a remote part file left by an interrupted pass");
        pass.conn().await?.remove(part).await?;
    }
    if !remote_exists && plan.changes().next().is_some() {
        pass.mkdir_remote_root().await?;
    }

    let result = pass.execute(&plan, cancel).await;
    pass.report.seconds = started.elapsed().as_secs_f64();
    let outcome = match &result {
        Ok(()) if pass.report.unresolved() => "unresolved".to_owned(),
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("error: {e}"),
    };
    pass.state.set_meta("last_pass_end", &Utc::now().to_rfc3339())?;
    pass.state.set_meta("last_result", &outcome)?;
    pass.close().await;
    result.map(|()| pass.report)
}

/// A listed entry as a snapshot entry. A listing without a time compares by size alone.
fn listed_entry(l: &Listed) -> Entry {
    let mtime = l.mtime.unwrap_or(Mtime::new(0, Precision::Days));
    match l.kind {
        ListedKind::Dir => Entry::dir(mtime),
        _ => Entry::file(l.size, mtime),
    }
}

impl Pass<'_> {
    async fn conn(&mut self) -> Result<&mut Ftps> {
        if self.conn.is_none() {
            let c = Ftps::connect(&self.config.server, self.tls).await?;
            tracing::debug!(server = c.server(), "connected");
            self.conn = Some(c);
        }
        self.conn.as_mut().ok_or(Error::Interrupted)
    }

    async fn close(&mut self) {
        if let Some(c) = self.conn.take() {
            c.quit().await;
        }
    }

    fn remote_path(&self, p: &RelPath) -> String {
        p.to_remote(&self.folder.remote)
    }

    /// Lists the remote folder breadth-first. `None` when the folder itself does not exist.
    /// Each name is validated as a path component before it goes any further.
    async fn list_tree(&mut self) -> Result<Option<(Snapshot, Vec<String>)>> {
        let mut snapshot = Snapshot::new();
        let mut parts = Vec::new();
        let mut queue: VecDeque<Option<RelPath>> = VecDeque::from([None]);
        while let Some(dir) = queue.pop_front() {
            let remote_dir = match &dir {
                Some(d) => self.remote_path(d),
                None => self.folder.remote.clone(),
            };
            let entries = match self.conn().await?.list_dir(&remote_dir).await {
                Err(Error::Reply { code: Some(550), .. }) if dir.is_none() => return Ok(None),
                other => other?,
            };
            let mut seen = HashSet::new();
            for l in entries {
                let path = match RelPath::child(dir.as_ref(), &l.name) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(dir = remote_dir, name = ?l.name, "unsafe remote name skipped: {e}");
                        self.report
                            .skip(format!("{remote_dir}/{:?}", l.name), e.to_string());
                        continue;
                    }
                };
                if !seen.insert(l.name.clone()) {
                    tracing::warn!(path = %path, "duplicate name in a remote listing skipped");
                    continue;
                }
                if is_part_name(path.name()) {
                    parts.push(self.remote_path(&path));
                    continue;
                }
                if self.ignore.skips(&path) {
                    continue;
                }
                match l.kind {
                    ListedKind::Dir => {
                        queue.push_back(Some(path.clone()));
                        snapshot.insert(path, listed_entry(&l));
                    }
                    ListedKind::File => {
                        snapshot.insert(path, listed_entry(&l));
                    }
                    ListedKind::Other => {
                        tracing::debug!(path = %path, "remote symlink or special file not synced")
                    }
                }
            }
        }
        Ok(Some((snapshot, parts)))
    }

    /// On a first sync, a file on both sides with the same size but different times may still
    /// be the same file: compare digests rather than make a needless conflict copy.
    async fn fill_first_sync_digests(&mut self, base: &Base) -> Result<()> {
        let candidates: Vec<RelPath> = self
            .local
            .iter()
            .filter(|(p, l)| {
                l.kind == Kind::File
                    && !base.contains_key(*p)
                    && self.remote.get(*p).is_some_and(|r| {
                        r.kind == Kind::File && r.size == l.size && !r.mtime.same_as(&l.mtime)
                    })
            })
            .map(|(p, _)| p.clone())
            .collect();
        for path in candidates {
            let local = sha256_file(&path.to_local(&self.folder.local))?;
            let remote_path = self.remote_path(&path);
            let remote = self.remote_sha256(&remote_path).await?;
            if let Some(e) = self.local.get_mut(&path) {
                e.sha256 = Some(local);
            }
            if let Some(e) = self.remote.get_mut(&path) {
                e.sha256 = Some(remote);
            }
        }
        Ok(())
    }

    /// The SHA-256 of a remote file: the server's when it offers one, else by reading it.
    async fn remote_sha256(&mut self, remote_path: &str) -> Result<String> {
        let conn = self.conn().await?;
        if let Some((crate::digest::HashAlgo::Sha256, hex)) = conn.hash(remote_path).await? {
            return Ok(hex);
        }
        let mut hashers = crate::digest::Hashers::new(None);
        conn.download(remote_path, 0, &mut tokio::io::sink(), &mut hashers)
            .await?;
        Ok(hashers.finish().sha256)
    }

    async fn mkdir_remote_root(&mut self) -> Result<()> {
        let root = self.folder.remote.clone();
        let mut prefix = String::new();
        for part in root.split('/') {
            if part.is_empty() {
                if prefix.is_empty() && root.starts_with('/') {
                    prefix.push('/');
                }
                continue;
            }
            if !prefix.is_empty() && !prefix.ends_with('/') {
                prefix.push('/');
            }
            prefix.push_str(part);
            self.ensure_remote_dir(&prefix.clone()).await?;
        }
        Ok(())
    }

    async fn ensure_remote_dir(&mut self, remote: &str) -> Result<()> {
        let conn = self.conn().await?;
        match conn.mkdir(remote).await {
            Ok(()) => Ok(()),
            Err(e @ Error::Reply { .. }) => match conn.list_dir(remote).await {
                Ok(_) => Ok(()), // it was already there
                Err(_) => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    async fn execute(&mut self, plan: &Plan, cancel: &CancellationToken) -> Result<()> {
        for action in &plan.actions {
            let mut attempt = 0;
            loop {
                if cancel.is_cancelled() {
                    return Err(Error::Interrupted);
                }
                attempt += 1;
                let result = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return Err(Error::Interrupted),
                    r = self.apply(action) => r,
                };
                let Err(e) = result else { break };
                match e.class() {
                    Class::Fatal => return Err(e),
                    _ if matches!(e, Error::Changed { .. }) => {
                        tracing::info!(path = %action.path(), "{e}");
                        self.report.skip(action.path().to_string(), e.to_string());
                        break;
                    }
                    Class::Transient if attempt < self.config.retry.attempts => {
                        let wait = retry::backoff(&self.config.retry, attempt, retry::jitter());
                        tracing::warn!(path = %action.path(), attempt, "{e}; retrying in {wait:?}");
                        // The connection may be out of step after an error: start afresh.
                        self.conn = None;
                        tokio::select! {
                            _ = cancel.cancelled() => return Err(Error::Interrupted),
                            _ = tokio::time::sleep(wait) => {}
                        }
                    }
                    _ => {
                        tracing::error!(path = %action.path(), "{e}");
                        self.report.failed.push(Issue {
                            path: action.path().to_string(),
                            reason: e.to_string(),
                        });
                        if e.class() == Class::Transient {
                            self.conn = None;
                        }
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    async fn apply(&mut self, action: &Action) -> Result<()> {
        match action {
            Action::MkdirLocal { path } => {
                let full = path.to_local(&self.folder.local);
                std::fs::create_dir_all(&full).map_err(Error::local("create directory", &full))?;
                self.record_dir(path)?;
                self.report.dirs_created += 1;
            }
            Action::MkdirRemote { path } => {
                let remote = self.remote_path(path);
                self.ensure_remote_dir(&remote).await?;
                self.record_dir(path)?;
                self.report.dirs_created += 1;
            }
            Action::Upload { path } => {
                let local = self.local_entry(path)?;
                let expect = self.remote.get(path).cloned();
                let b = self.upload(path, path, &local, expect.as_ref()).await?;
                self.state.put(path, &b)?;
                tracing::info!(path = %path, bytes = local.size, "uploaded");
                self.report.uploaded += 1;
            }
            Action::Download { path } => {
                let remote = self.remote_entry(path)?;
                let expect = self.local.get(path).cloned();
                let b = self.download(path, path, &remote, expect.as_ref()).await?;
                self.state.put(path, &b)?;
                tracing::info!(path = %path, bytes = remote.size, "downloaded");
                self.report.downloaded += 1;
            }
            Action::KeepBoth { path, loser, copy } => {
                self.keep_both(path, *loser, copy).await?;
                self.report.conflicts += 1;
            }
            Action::Adopt { path } => {
                if let (Some(l), Some(r)) = (self.local.get(path), self.remote.get(path)) {
                    let b = BaseEntry::of(l, r);
                    self.state.put(path, &b)?;
                }
            }
            Action::Forget { path } => self.state.remove(path)?,
            Action::DeleteLocal { path } => {
                let full = path.to_local(&self.folder.local);
                let expect = self.local_entry(path)?;
                match std::fs::symlink_metadata(&full) {
                    Ok(m) if entry_of(&m).sig() == expect.sig() => {}
                    _ => return Err(self.changed(path, "local")),
                }
                std::fs::remove_file(&full).map_err(Error::local("delete", &full))?;
                self.state.remove(path)?;
                tracing::info!(path = %path, "deleted locally");
                self.report.deleted_local += 1;
            }
            Action::DeleteRemote { path } => {
                let remote = self.remote_path(path);
                let expect = self.remote_entry(path)?;
                let now = self.conn().await?.stat(&remote).await?;
                if !now.is_some_and(|n| same_remote(&listed_entry(&n), &expect)) {
                    return Err(self.changed(path, "remote"));
                }
                self.conn().await?.remove(&remote).await?;
                self.state.remove(path)?;
                tracing::info!(path = %path, "deleted on the server");
                self.report.deleted_remote += 1;
            }
            Action::RmdirLocal { path } => {
                let full = path.to_local(&self.folder.local);
                match std::fs::remove_dir(&full) {
                    Ok(()) => self.report.dirs_removed += 1,
                    Err(e) => self
                        .report
                        .skip(path.to_string(), format!("local directory not removed: {e}")),
                }
                self.state.remove(path)?;
            }
            Action::RmdirRemote { path } => {
                let remote = self.remote_path(path);
                match self.conn().await?.rmdir(&remote).await {
                    Ok(()) => self.report.dirs_removed += 1,
                    Err(Error::Reply { reply, .. }) => self
                        .report
                        .skip(path.to_string(), format!("remote directory not removed: {reply}")),
                    Err(e) => return Err(e),
                }
                self.state.remove(path)?;
            }
            Action::Skip { path, reason } => {
                tracing::warn!(path = %path, "skipped: {reason}");
                self.report.skip(path.to_string(), reason.clone());
            }
        }
        Ok(())
    }

    fn changed(&self, path: &RelPath, side: &'static str) -> Error {
        Error::Changed {
            path: path.to_string(),
            side,
        }
    }

    fn local_entry(&self, path: &RelPath) -> Result<Entry> {
        self.local
            .get(path)
            .cloned()
            .ok_or_else(|| self.changed(path, "local"))
    }

    fn remote_entry(&self, path: &RelPath) -> Result<Entry> {
        self.remote
            .get(path)
            .cloned()
            .ok_or_else(|| self.changed(path, "remote"))
    }

    fn record_dir(&self, path: &RelPath) -> Result<()> {
        let dir = Entry::dir(Mtime::new(0, Precision::Days));
        self.state.put(path, &BaseEntry::of(&dir, &dir))
    }
}

/// Whether a remote file still looks the way the snapshot saw it.
fn same_remote(now: &Entry, then: &Entry) -> bool {
    now.kind == then.kind && now.size == then.size && now.mtime.same_as(&then.mtime)
}
