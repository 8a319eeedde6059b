//! The simulated connection behind `trait Remote`: each command against the store.

use std::sync::atomic::Ordering;

use ftps_sync::digest::HashAlgo;
use ftps_sync::error::Result;
use ftps_sync::reconcile::{Mtime, Precision};
use ftps_sync::remote::listing::Listed;
use ftps_sync::remote::{Capabilities, Remote};
use sha2::Digest;
use tokio::sync::mpsc;

use super::conn::*;
use super::server::*;

#[async_trait::async_trait]
impl Remote for SimConn {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            exact_listing: !self.server.behaviour.list_only,
            hash: self.server.behaviour.hash.then_some(HashAlgo::Sha256),
            resume_get: true,
        }
    }

    async fn list(&mut self, dir: &str) -> Result<Vec<Listed>> {
        let f = self.before("LIST", dir).await?;
        let now = self.server.counts.commands.load(Ordering::SeqCst);
        self.listed.insert(dir.to_owned(), now);
        let out = {
            let s = self.server.store();
            if !s.dirs.contains(dir) {
                return Err(reply("LIST", dir, 550));
            }
            let prefix = if dir == "/" {
                "/".to_owned()
            } else {
                format!("{dir}/")
            };
            let direct = |p: &String| {
                p.strip_prefix(&prefix)
                    .filter(|r| !r.contains('/'))
                    .map(str::to_owned)
            };
            let mut out: Vec<Listed> = s
                .dirs
                .iter()
                .filter_map(|d| direct(d).map(|n| self.server.listed(&n, None)))
                .collect();
            out.extend(
                s.files
                    .iter()
                    .filter_map(|(p, file)| direct(p).map(|n| self.server.listed(&n, Some(file)))),
            );
            out
        };
        let out = if matches!(f, Some(Fault::EmptyListing)) {
            Vec::new()
        } else {
            out
        };
        self.after(f, "LIST", dir, out).await
    }

    async fn stat(&mut self, path: &str) -> Result<Option<Listed>> {
        let f = self.before("MLST", path).await?;
        let name = path.rsplit('/').next().unwrap_or(path);
        let out = {
            let s = self.server.store();
            match s.files.get(path) {
                Some(file) => Some(self.server.listed(name, Some(file))),
                None => s.dirs.contains(path).then(|| self.server.listed(name, None)),
            }
        };
        self.after(f, "MLST", path, out).await
    }

    async fn exists(&mut self, path: &str) -> Result<bool> {
        Ok(self.stat(path).await?.is_some())
    }

    /// MDTM: the file's time to the second, whatever its listing shows.
    async fn modified(&mut self, path: &str) -> Result<Option<Mtime>> {
        let f = self.before("MDTM", path).await?;
        let secs = self.server.store().files.get(path).map(|f| f.mtime);
        let Some(secs) = secs else {
            return Err(reply("MDTM", path, 550));
        };
        let out = Some(Mtime::new(secs * 1_000_000_000, Precision::Seconds));
        self.after(f, "MDTM", path, out).await
    }

    async fn size(&mut self, path: &str) -> Result<u64> {
        let f = self.before("SIZE", path).await?;
        let size = self.server.store().files.get(path).map(|f| f.data.len() as u64);
        let Some(size) = size else {
            return Err(reply("SIZE", path, 550));
        };
        let size = if matches!(f, Some(Fault::LyingSize)) {
            size + 1
        } else {
            size
        };
        self.after(f, "SIZE", path, size).await
    }

    async fn get(&mut self, path: &str, offset: u64, sink: &mpsc::Sender<Vec<u8>>) -> Result<u64> {
        self.retr(path, offset, None, sink).await
    }

    async fn get_range(
        &mut self,
        path: &str,
        offset: u64,
        len: u64,
        sink: &mpsc::Sender<Vec<u8>>,
    ) -> Result<u64> {
        self.retr(path, offset, Some(len), sink).await
    }

    async fn put(&mut self, path: &str, offset: u64, source: &mut mpsc::Receiver<Vec<u8>>) -> Result<u64> {
        let f = self.before("STOR", path).await?;
        let _lock = lock_for_write(&self.server, path).await;
        let received = self.receive("STOR", path, f.as_ref(), source).await?;
        {
            let now = self.server.now();
            let mut s = self.server.store();
            let file = s.file_for_write(path, now);
            if offset == 0 {
                file.data.clear();
            }
            file.data.extend_from_slice(&received);
        }
        self.stored("STOR", path, f.as_ref(), received.len()).await
    }

    async fn put_at(&mut self, path: &str, offset: u64, source: &mut mpsc::Receiver<Vec<u8>>) -> Result<u64> {
        let f = self.before("STOR-AT", path).await?;
        if self.server.behaviour.writes_at == WritesAt::Refuses {
            return Err(reply("STOR-AT", path, 451));
        }
        let _lock = lock_for_write(&self.server, path).await;
        let received = self.receive("STOR-AT", path, f.as_ref(), source).await?;
        if !matches!(f, Some(Fault::LostRange)) {
            let now = self.server.now();
            let cuts = self.server.behaviour.writes_at == WritesAt::Cuts;
            let mut s = self.server.store();
            let file = s.file_for_write(path, now);
            let at = offset as usize;
            if cuts {
                file.data.truncate(at);
            }
            // Past the end: the gap reads as zeros, as on a POSIX file.
            if file.data.len() < at + received.len() {
                file.data.resize(at + received.len(), 0);
            }
            file.data[at..at + received.len()].copy_from_slice(&received);
            self.server.counts.writes_at.fetch_add(1, Ordering::Relaxed);
        }
        self.stored("STOR-AT", path, f.as_ref(), received.len()).await
    }

    async fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        let f = self.before("RNFR/RNTO", from).await?;
        self.overwrites(to);
        self.server.delivered(to);
        self.renamed_onto = Some(to.to_owned());
        self.server
            .renaming
            .lock()
            .expect("renaming")
            .insert(to.to_owned());
        {
            let mut s = self.server.store();
            match s.files.remove(from) {
                Some(file) => {
                    s.files.insert(to.to_owned(), file);
                }
                // A folder, with all under it, to a name not taken (rename(2) on a server).
                None if s.dirs.contains(from) && !s.dirs.contains(to) && !s.files.contains_key(to) => {
                    // A file a user put in the folder after this connection's look at it moves
                    // with it: FTP has no rename-if-unchanged (`window_losses`, as `overwrites`).
                    if let Some(&looked) = self.listed.get(from) {
                        let under = format!("{from}/");
                        let writes = self.server.user_writes.lock().expect("writes");
                        let late: Vec<Vec<u8>> = s
                            .files
                            .iter()
                            .filter(|(p, _)| p.starts_with(&under))
                            .filter(|(p, _)| writes.get(*p).is_some_and(|w| *w >= looked))
                            .map(|(_, f)| f.data.clone())
                            .collect();
                        self.server.window_losses.lock().expect("losses").extend(late);
                    }
                    s.rename_dir(from, to);
                }
                None => return Err(reply("RNFR/RNTO", from, 550)),
            }
        }
        self.after(f, "RNFR/RNTO", from, ()).await
    }

    async fn remove(&mut self, path: &str) -> Result<()> {
        let f = self.before("DELE", path).await?;
        self.overwrites(path);
        if self.server.store().files.remove(path).is_none() {
            return Err(reply("DELE", path, 550));
        }
        self.after(f, "DELE", path, ()).await
    }

    async fn mkdir(&mut self, path: &str) -> Result<()> {
        let f = self.before("MKD", path).await?;
        {
            let mut s = self.server.store();
            if s.dirs.contains(path) || !s.dirs.contains(parent(path)) {
                return Err(reply("MKD", path, 550));
            }
            s.dirs.insert(path.to_owned());
        }
        self.after(f, "MKD", path, ()).await
    }

    async fn rmdir(&mut self, path: &str) -> Result<()> {
        let f = self.before("RMD", path).await?;
        {
            let mut s = self.server.store();
            let prefix = format!("{path}/");
            let busy = s.files.keys().any(|p| p.starts_with(&prefix))
                || s.dirs.iter().any(|d| d.starts_with(&prefix));
            if busy || !s.dirs.remove(path) {
                return Err(reply("RMD", path, 550));
            }
        }
        self.after(f, "RMD", path, ()).await
    }

    async fn set_mtime(&mut self, path: &str, unix_secs: i64) -> Result<bool> {
        let f = self.before("MFMT", path).await?;
        let done = match self.server.store().files.get_mut(path) {
            Some(file) => {
                file.mtime = unix_secs;
                true
            }
            None => false,
        };
        self.after(f, "MFMT", path, done).await
    }

    async fn hash(&mut self, path: &str) -> Result<Option<(HashAlgo, String)>> {
        if !self.server.behaviour.hash {
            return Ok(None);
        }
        let f = self.before("HASH", path).await?;
        let digest = match self.server.store().files.get(path) {
            Some(file) => hex::encode(sha2::Sha256::digest(&file.data)),
            None => return Err(reply("HASH", path, 550)),
        };
        self.after(f, "HASH", path, Some((HashAlgo::Sha256, digest)))
            .await
    }

    async fn noop(&mut self) -> Result<()> {
        if self.dead { Err(lost("NOOP", "")) } else { Ok(()) }
    }

    async fn quit(&mut self) {}
}
