//! One transfer: part file -> verify -> rename into place -> the base entry to record.
//!
//! A file appears under its real name only complete and verified, on either side
//! (DESIGN.md invariant 1); a part file left by a killed pass is removed by the next one.

use super::{Pass, listed_entry, same_remote};
use crate::config::Verify;
use crate::digest::{Digests, HashAlgo, Hashers};
use crate::error::{Error, Result};
use crate::local::part_name;
use crate::local::scan::entry_of;
use crate::local::write::{commit, part_path, set_mtime};
use crate::path::RelPath;
use crate::reconcile::{BaseEntry, Entry, Kind, Precision, Side};

impl Pass<'_> {
    fn verify_err(path: &str, detail: String) -> Error {
        Error::Verify {
            path: path.to_owned(),
            detail,
        }
    }

    /// The extra digest to compute while streaming so the server's hash command can check it.
    async fn server_algo(&mut self) -> Result<Option<HashAlgo>> {
        if self.config.verify == Verify::Size {
            return Ok(None);
        }
        Ok(self
            .conn()
            .await?
            .hash
            .map(|h| h.algo())
            .filter(|a| *a != HashAlgo::Sha256))
    }

    /// Compares the server's digest of `remote` with what we streamed, when it offers one.
    async fn check_server_hash(&mut self, remote: &str, digests: &Digests) -> Result<()> {
        if self.config.verify == Verify::Size {
            return Ok(());
        }
        match self.conn().await?.hash(remote).await? {
            Some((algo, theirs)) => match digests.get(algo) {
                Some(ours) if ours == theirs => Ok(()),
                Some(ours) => Err(Self::verify_err(
                    remote,
                    format!("server {} is {theirs}, ours is {ours}", algo.name()),
                )),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// Uploads local `src` to remote `dst` through a remote part file. `expect_remote` is what
    /// the plan believed is at `dst` now: if the server changed it meanwhile, nothing is
    /// overwritten.
    pub(super) async fn upload(
        &mut self,
        src: &RelPath,
        dst: &RelPath,
        local: &Entry,
        expect_remote: Option<&Entry>,
    ) -> Result<BaseEntry> {
        let local_path = src.to_local(&self.folder.local);
        let target = self.remote_path(dst);
        let part = self.remote_path(&dst.with_name(&part_name(dst.name()))?);
        let mut file = tokio::fs::File::open(&local_path)
            .await
            .map_err(Error::local("open", &local_path))?;
        let mut hashers = Hashers::new(self.server_algo().await?);
        let sent = self.conn().await?.upload(&part, &mut file, &mut hashers).await?;
        let digests = hashers.finish();
        drop(file);

        // The local file must not have moved while we read it.
        let now = std::fs::metadata(&local_path).map_err(Error::local("stat", &local_path))?;
        if entry_of(&now).sig() != local.sig() || sent != local.size {
            let _ = self.conn().await?.remove(&part).await;
            return Err(self.changed(src, "local"));
        }
        // Never trust a 226 alone: the server must hold every byte.
        let size = self.conn().await?.size(&part).await?;
        if size != sent {
            let _ = self.conn().await?.remove(&part).await;
            return Err(Self::verify_err(
                &target,
                format!("sent {sent} bytes, the server holds {size}"),
            ));
        }
        if let Err(e) = self.check_server_hash(&part, &digests).await {
            let _ = self.conn().await?.remove(&part).await;
            return Err(e);
        }
        if self.config.verify == Verify::Download {
            let mut back = Hashers::new(None);
            self.conn()
                .await?
                .download(&part, 0, &mut tokio::io::sink(), &mut back)
                .await?;
            let back = back.finish();
            if back.sha256 != digests.sha256 {
                let _ = self.conn().await?.remove(&part).await;
                return Err(Self::verify_err(
                    &target,
                    "read back differs from what was sent".into(),
                ));
            }
        }

        // The target must still be what the plan saw, or nothing is overwritten.
        let current = self.conn().await?.stat(&target).await?;
        let unchanged = match (expect_remote, &current) {
            (None, None) => true,
            (Some(e), Some(c)) => same_remote(&listed_entry(c), e),
            _ => false,
        };
        if !unchanged {
            let _ = self.conn().await?.remove(&part).await;
            return Err(self.changed(dst, "remote"));
        }
        let conn = self.conn().await?;
        if let Err(e) = conn.rename(&part, &target).await {
            // Some servers refuse to rename over an existing file.
            if current.is_some() && matches!(e, Error::Reply { .. }) {
                conn.remove(&target).await?;
                conn.rename(&part, &target).await?;
            } else {
                return Err(e);
            }
        }
        conn.set_mtime(&target, local.mtime.secs()).await?;
        let stored = conn
            .stat(&target)
            .await?
            .ok_or_else(|| Self::verify_err(&target, "not found after upload".into()))?;
        let remote = listed_entry(&stored);
        if remote.size != sent {
            return Err(Self::verify_err(
                &target,
                format!("sent {sent} bytes, the listing says {}", remote.size),
            ));
        }
        self.report.bytes_up += sent;
        Ok(BaseEntry {
            kind: Kind::File,
            local: local.sig(),
            remote: remote.sig(),
            sha256: Some(digests.sha256),
        })
    }

    /// Downloads remote `src` to local `dst` through a local part file. `expect_local` is what
    /// the plan believed is at `dst` now: if it changed meanwhile, nothing is overwritten.
    pub(super) async fn download(
        &mut self,
        src: &RelPath,
        dst: &RelPath,
        remote: &Entry,
        expect_local: Option<&Entry>,
    ) -> Result<BaseEntry> {
        let source = self.remote_path(src);
        let target = dst.to_local(&self.folder.local);
        let part = part_path(&target);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(Error::local("create directory", parent))?;
        }
        let mut file = tokio::fs::File::create(&part)
            .await
            .map_err(Error::local("create", &part))?;
        let mut hashers = Hashers::new(self.server_algo().await?);
        let result = self
            .conn()
            .await?
            .download(&source, 0, &mut file, &mut hashers)
            .await;
        let got = match result {
            Ok(n) => n,
            Err(e) => {
                drop(file);
                let _ = std::fs::remove_file(&part);
                return Err(e);
            }
        };
        let digests = hashers.finish();
        let discard = |e: Error| {
            let _ = std::fs::remove_file(&part);
            e
        };
        let file = file.into_std().await;
        if got != remote.size {
            return Err(discard(Self::verify_err(
                &source,
                format!("received {got} bytes, the listing said {}", remote.size),
            )));
        }
        self.check_server_hash(&source, &digests).await.map_err(discard)?;
        file.sync_all()
            .map_err(Error::local("sync", &part))
            .map_err(discard)?;
        if remote.mtime.precision <= Precision::Minutes && remote.mtime.nanos != 0 {
            let _ = set_mtime(&file, remote.mtime);
        }
        drop(file);

        let current = std::fs::symlink_metadata(&target).ok().map(|m| entry_of(&m));
        let unchanged = match (expect_local, &current) {
            (None, None) => true,
            (Some(e), Some(c)) => c.kind == Kind::File && c.sig() == e.sig(),
            _ => false,
        };
        if !unchanged {
            return Err(discard(self.changed(dst, "local")));
        }
        commit(&part, &target).map_err(discard)?;
        let stored = std::fs::metadata(&target).map_err(Error::local("stat", &target))?;
        self.report.bytes_down += got;
        Ok(BaseEntry {
            kind: Kind::File,
            local: entry_of(&stored).sig(),
            remote: remote.sig(),
            sha256: Some(digests.sha256),
        })
    }

    /// Both sides changed: the loser's version moves to `copy`, the winner's takes the real
    /// name, and (two-way) both sides end up with both. Nothing is overwritten.
    pub(super) async fn keep_both(&mut self, path: &RelPath, loser: Side, copy: &RelPath) -> Result<()> {
        let local = self.local_entry(path)?;
        let remote = self.remote_entry(path)?;
        let uploads = self.folder.direction != crate::config::Direction::Download;
        let downloads = self.folder.direction != crate::config::Direction::Upload;
        match loser {
            Side::Remote => {
                let (from, to) = (self.remote_path(path), self.remote_path(copy));
                let conn = self.conn().await?;
                if !conn
                    .stat(&from)
                    .await?
                    .is_some_and(|n| same_remote(&listed_entry(&n), &remote))
                {
                    return Err(self.changed(path, "remote"));
                }
                if conn.stat(&to).await?.is_some() {
                    return Err(self.changed(copy, "remote"));
                }
                conn.rename(&from, &to).await?;
                tracing::info!(path = %path, copy = %copy, "conflict: the server's version is kept as the copy");
                let moved = conn.stat(&to).await?.map(|l| listed_entry(&l)).unwrap_or(remote);
                if downloads {
                    let b = self.download(copy, copy, &moved, None).await?;
                    self.state.put(copy, &b)?;
                    self.report.downloaded += 1;
                }
                let b = self.upload(path, path, &local, None).await?;
                self.state.put(path, &b)?;
                self.report.uploaded += 1;
            }
            Side::Local => {
                let (from, to) = (
                    path.to_local(&self.folder.local),
                    copy.to_local(&self.folder.local),
                );
                let now = std::fs::symlink_metadata(&from).map_err(Error::local("stat", &from))?;
                if entry_of(&now).sig() != local.sig() {
                    return Err(self.changed(path, "local"));
                }
                if to.exists() {
                    return Err(self.changed(copy, "local"));
                }
                std::fs::rename(&from, &to).map_err(Error::local("rename", &from))?;
                tracing::info!(path = %path, copy = %copy, "conflict: the local version is kept as the copy");
                let moved = entry_of(&std::fs::metadata(&to).map_err(Error::local("stat", &to))?);
                if uploads {
                    let b = self.upload(copy, copy, &moved, None).await?;
                    self.state.put(copy, &b)?;
                    self.report.uploaded += 1;
                }
                let b = self.download(path, path, &remote, None).await?;
                self.state.put(path, &b)?;
                self.report.downloaded += 1;
            }
        }
        Ok(())
    }
}
