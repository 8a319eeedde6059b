//! The remote side: what the engine needs of a server (`Remote`, one connection; `Connector`,
//! which makes them), the FTPS adapter that provides it, and the listing parsers. Nothing
//! outside this module names a suppaftp type, and the engine names no FTPS type: a simulated
//! server can stand in for a real one.

pub mod bounded;
pub mod ftps;
pub mod learned;
pub mod limit;
pub mod listing;
pub mod pool;
pub mod write_at;

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::digest::HashAlgo;
use crate::error::{Error, Result};
use limit::RateLimiter;
use listing::Listed;

/// What a connection can do beyond the commands every server has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// `stat` and listings carry exact times (MLSD/MLST), so an upload's time can be read back
    /// at once; else it is confirmed by one listing per directory after the transfers.
    pub exact_listing: bool,
    /// The digest the server's hash command gives, if it has one.
    pub hash: Option<HashAlgo>,
    /// `get` can start at an offset (REST STREAM).
    pub resume_get: bool,
}

/// One logged-in connection to a server: what the engine needs of it. Paths are the server's
/// absolute paths. Every method may fail with a transient error (a dropped connection, a
/// timeout, a 4xx reply) after which the connection is checked with `noop` or dropped.
#[async_trait::async_trait]
pub trait Remote: Send {
    fn capabilities(&self) -> Capabilities;

    /// The entries of one directory. A directory that does not exist is `Error::Reply` 550.
    async fn list(&mut self, dir: &str) -> Result<Vec<Listed>>;

    /// What a listing would say of one path, from the same source, so the two compare.
    async fn stat(&mut self, path: &str) -> Result<Option<Listed>>;

    /// A file's time to the second, where the server tells it (MLST, else MDTM): finer than a
    /// `LIST` line's minute. `None` where it cannot.
    async fn modified(&mut self, path: &str) -> Result<Option<crate::reconcile::Mtime>> {
        Ok(self
            .stat(path)
            .await?
            .and_then(|l| l.mtime)
            .filter(|m| m.precision <= crate::reconcile::Precision::Seconds))
    }

    /// Whether anything exists at `path`, as cheaply as the server allows.
    async fn exists(&mut self, path: &str) -> Result<bool>;

    /// The size the server holds for a file.
    async fn size(&mut self, path: &str) -> Result<u64>;

    /// Streams `path` from byte `offset` into `sink`; returns the bytes read.
    async fn get(&mut self, path: &str, offset: u64, sink: &mpsc::Sender<Vec<u8>>) -> Result<u64>;

    /// Streams the `len` bytes of `path` from byte `offset` into `sink`, then ends the transfer
    /// early; returns the bytes read (fewer only where the file ends sooner). After `Ok` the
    /// connection is in step again, whatever the server said of the transfer cut short.
    async fn get_range(
        &mut self,
        path: &str,
        offset: u64,
        len: u64,
        sink: &mpsc::Sender<Vec<u8>>,
    ) -> Result<u64>;

    /// Streams `source` to `path`; returns the bytes sent. With `offset` > 0 the bytes go on
    /// at that offset, which must be the file's current size (a resumed upload).
    async fn put(&mut self, path: &str, offset: u64, source: &mut mpsc::Receiver<Vec<u8>>) -> Result<u64>;

    /// Streams `source` into `path` from byte `offset` on (REST, then STOR), `offset` possibly
    /// past the file's end; returns the bytes sent. What the server keeps of the bytes before
    /// and after them varies: only where `write_at::probe` says it keeps both may a file be
    /// written in ranges (a segmented upload).
    async fn put_at(&mut self, path: &str, offset: u64, source: &mut mpsc::Receiver<Vec<u8>>) -> Result<u64>;

    async fn rename(&mut self, from: &str, to: &str) -> Result<()>;

    async fn remove(&mut self, path: &str) -> Result<()>;

    async fn mkdir(&mut self, path: &str) -> Result<()>;

    async fn rmdir(&mut self, path: &str) -> Result<()>;

    /// Sets the modification time; `Ok(false)` when the server cannot.
    async fn set_mtime(&mut self, path: &str, unix_secs: i64) -> Result<bool>;

    /// The server's digest of a stored file, when it offers one.
    async fn hash(&mut self, path: &str) -> Result<Option<(HashAlgo, String)>>;

    /// Whether the connection still answers in step.
    async fn noop(&mut self) -> Result<()>;

    /// Logs out, politely and briefly; the connection is dropped after it.
    async fn quit(&mut self);

    /// Whether the connection may serve another command: false once the server ended the
    /// session under a command that succeeded all the same (a range cut short).
    fn reusable(&self) -> bool {
        true
    }
}

/// Makes logged-in connections to one server, for a pool. `limiter`, when given, is shared by
/// every connection of a pass (`bandwidth_limit`).
#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    async fn connect(&self, limiter: Option<Arc<RateLimiter>>) -> Result<Box<dyn Remote>>;
}

/// Makes the directory `remote` unless it is there already.
pub async fn ensure_dir(conn: &mut dyn Remote, remote: &str) -> Result<()> {
    match conn.mkdir(remote).await {
        Ok(()) => Ok(()),
        Err(e @ Error::Reply { .. }) => match conn.list(remote).await {
            Ok(_) => Ok(()), // it was already there
            Err(_) => Err(e),
        },
        Err(e) => Err(e),
    }
}
