//! File reading and writing beside the transfer (on their own threads in production, see
//! `io`), so disk and hashing overlap with the network: the transfer loop only moves chunks
//! between a channel and the TLS stream.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::digest::{Digests, HashAlgo, Hashers};
use crate::error::{Error, Result};
use crate::local::disk::DiskRef;

const CHUNK: usize = 256 * 1024;
const DEPTH: usize = 8;
/// How much a writer leaves dirty before it starts writing it back (`Writeback`).
const WRITEBACK_STEP: u64 = 16 << 20;

fn joined<T>(r: std::result::Result<Result<T>, tokio::task::JoinError>, path: &Path) -> Result<T> {
    r.map_err(|e| Error::Internal(format!("file task for {} failed: {e}", path.display())))?
}

/// A file being read: chunks from `skip` on, and the digests of the whole file.
pub struct Reading {
    pub chunks: mpsc::Receiver<Vec<u8>>,
    done: JoinHandle<Result<Digests>>,
    path: PathBuf,
}

/// Reads `path` off the async workers (`io::spawn`), hashing every byte and sending those
/// from `skip` on; `counted` (for a progress display) is raised by the bytes sent.
pub fn read_file(path: &Path, skip: u64, also: Option<HashAlgo>, counted: Option<Arc<AtomicU64>>) -> Reading {
    let (tx, rx) = mpsc::channel(DEPTH);
    let p = path.to_owned();
    let done = super::io::spawn(async move {
        let mut f = File::open(&p).map_err(Error::local("open", &p))?;
        let mut hashers = Hashers::new(also);
        let mut offset = 0u64;
        // Size the buffer to the file: a 4 KiB file needs no 256 KiB one.
        let len = f.metadata().map(|m| m.len()).unwrap_or(CHUNK as u64);
        let mut buf = vec![0u8; (len as usize).clamp(1, CHUNK)];
        loop {
            let n = f.read(&mut buf).map_err(Error::local("read", &p))?;
            if n == 0 {
                break;
            }
            hashers.update(&buf[..n]);
            let end = offset + n as u64;
            if end > skip {
                let from = skip.saturating_sub(offset) as usize;
                let chunk = buf[from..n].to_vec();
                let len = chunk.len() as u64;
                if tx.send(chunk).await.is_err() {
                    break; // the transfer stopped
                }
                if let Some(c) = &counted {
                    c.fetch_add(len, Ordering::Relaxed);
                }
            }
            offset = end;
        }
        Ok(hashers.finish())
    });
    Reading {
        chunks: rx,
        done,
        path: path.to_owned(),
    }
}

/// A file being hashed whole beside its transfer (a segmented upload's ranges go in any
/// order); dropped before `finish`, it stops reading.
pub struct Hashing {
    done: Option<JoinHandle<Result<Digests>>>,
    stop: Arc<AtomicBool>,
    path: PathBuf,
}

/// Hashes `path` whole off the async workers (`io::spawn`).
pub fn hash_file(path: &Path, also: Option<HashAlgo>) -> Hashing {
    let stop = Arc::new(AtomicBool::new(false));
    let (p, stopped) = (path.to_owned(), stop.clone());
    let done = super::io::spawn(async move {
        let mut f = File::open(&p).map_err(Error::local("open", &p))?;
        let mut hashers = Hashers::new(also);
        let mut buf = vec![0u8; CHUNK];
        loop {
            if stopped.load(Ordering::Relaxed) {
                return Err(Error::Interrupted);
            }
            let n = f.read(&mut buf).map_err(Error::local("read", &p))?;
            if n == 0 {
                break;
            }
            hashers.update(&buf[..n]);
        }
        Ok(hashers.finish())
    });
    Hashing {
        done: Some(done),
        stop,
        path: path.to_owned(),
    }
}

impl Hashing {
    /// The digests of the whole file.
    pub async fn finish(mut self) -> Result<Digests> {
        match self.done.take() {
            Some(done) => joined(done.await, &self.path),
            None => Err(Error::Interrupted),
        }
    }
}

impl Drop for Hashing {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A range of a file being read, for one range of a segmented upload: its bytes are not
/// hashed here (the whole file's digests come from a `read_file` of their own).
pub struct RangeReading {
    pub chunks: mpsc::Receiver<Vec<u8>>,
    done: JoinHandle<Result<u64>>,
    path: PathBuf,
}

/// Reads the `len` bytes of `path` from `from` on off the async workers (`io::spawn`), fewer
/// where the file ends sooner; `counted` is raised by the bytes sent.
pub fn read_range(path: &Path, from: u64, len: u64, counted: Option<Arc<AtomicU64>>) -> RangeReading {
    let (tx, rx) = mpsc::channel(DEPTH);
    let p = path.to_owned();
    let done = super::io::spawn(async move {
        let mut f = File::open(&p).map_err(Error::local("open", &p))?;
        f.seek(SeekFrom::Start(from)).map_err(Error::local("seek", &p))?;
        let mut left = len;
        let mut buf = vec![0u8; (len as usize).clamp(1, CHUNK)];
        while left > 0 {
            let want = (left as usize).min(buf.len());
            let n = f.read(&mut buf[..want]).map_err(Error::local("read", &p))?;
            if n == 0 {
                break;
            }
            if tx.send(buf[..n].to_vec()).await.is_err() {
                break; // the transfer stopped
            }
            if let Some(c) = &counted {
                c.fetch_add(n as u64, Ordering::Relaxed);
            }
            left -= n as u64;
        }
        Ok(len - left)
    });
    RangeReading {
        chunks: rx,
        done,
        path: path.to_owned(),
    }
}

impl RangeReading {
    /// The bytes read, once the range has been read.
    pub async fn finish(self) -> Result<u64> {
        drop(self.chunks);
        joined(self.done.await, &self.path)
    }
}

/// Compares the chunks that come in with the bytes of `path` from `from` on, off the async
/// workers (`io::spawn`): a range read back from the server. Whether every chunk matched, and
/// how many bytes came.
pub fn compare_range(
    path: &Path,
    from: u64,
    mut chunks: mpsc::Receiver<Vec<u8>>,
) -> JoinHandle<Result<(bool, u64)>> {
    let p = path.to_owned();
    super::io::spawn(async move {
        let mut f = File::open(&p).map_err(Error::local("open", &p))?;
        f.seek(SeekFrom::Start(from)).map_err(Error::local("seek", &p))?;
        let mut ours = Vec::new();
        let (mut same, mut got) = (true, 0u64);
        while let Some(chunk) = chunks.recv().await {
            got += chunk.len() as u64;
            if !same {
                continue; // drained, so the transfer is not stopped midway
            }
            ours.resize(chunk.len(), 0);
            let mut n = 0;
            while n < ours.len() {
                match f.read(&mut ours[n..]).map_err(Error::local("read", &p))? {
                    0 => break,
                    k => n += k,
                }
            }
            same = n == chunk.len() && ours[..n] == chunk[..];
        }
        Ok((same, got))
    })
}

impl Reading {
    /// The digests of the whole file, once it has been read to the end.
    pub async fn finish(self) -> Result<Digests> {
        drop(self.chunks);
        joined(self.done.await, &self.path)
    }
}

/// A file being written from chunks; its digests include a resumed prefix.
pub struct Writing {
    pub chunks: mpsc::Sender<Vec<u8>>,
    done: JoinHandle<Result<(Digests, Option<File>)>>,
    path: PathBuf,
}

/// Writes chunks to `file` (at `prefix`, after hashing the `prefix` bytes already there) off
/// the async workers (`io::spawn`). With no file, only hashes. `counted` (for a progress
/// display) is raised by the bytes written.
pub fn write_file(
    disk: DiskRef,
    file: Option<File>,
    prefix: u64,
    also: Option<HashAlgo>,
    path: &Path,
    counted: Option<Arc<AtomicU64>>,
) -> Writing {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(DEPTH);
    let p = path.to_owned();
    let done = super::io::spawn(async move {
        let mut hashers = Hashers::new(also);
        let mut file = file;
        if let Some(f) = file.as_mut() {
            hash_start(&mut *f, prefix, &mut hashers, &p)?;
            f.seek(SeekFrom::Start(prefix))
                .map_err(Error::local("seek", &p))?;
            f.set_len(prefix).map_err(Error::local("truncate", &p))?;
        }
        let mut writeback = Writeback::from(prefix);
        let mut at = prefix;
        while let Some(chunk) = rx.recv().await {
            hashers.update(&chunk);
            if let Some(f) = file.as_mut() {
                disk.write_at(f, &chunk, at).map_err(Error::local("write", &p))?;
                at += chunk.len() as u64;
                writeback.wrote(f, chunk.len() as u64);
            }
            if let Some(c) = &counted {
                c.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        }
        Ok((hashers.finish(), file))
    });
    Writing {
        chunks: tx,
        done,
        path: path.to_owned(),
    }
}

impl Writing {
    /// Waits for every chunk to be written; the digests and the file back.
    pub async fn finish(self) -> Result<(Digests, Option<File>)> {
        drop(self.chunks);
        joined(self.done.await, &self.path)
    }
}

/// One range of a file being written from chunks, at its own offsets: several ranges of one
/// file are written at once, each from its own connection.
pub struct RangeWriting {
    pub chunks: mpsc::Sender<Vec<u8>>,
    done: JoinHandle<Result<u64>>,
    path: PathBuf,
}

/// Told how far a range writer got, for a reader that follows it.
pub trait Progress: Send + 'static {
    /// The range is written again from its start.
    fn restart(&self);
    /// `bytes` more are written, right after the last.
    fn advance(&self, bytes: u64);
}

/// Writes chunks to `file` from byte `offset` on, off the async workers (`io::spawn`), telling
/// `progress` after each write.
pub fn write_range(
    disk: DiskRef,
    file: File,
    offset: u64,
    path: &Path,
    progress: impl Progress,
) -> RangeWriting {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(DEPTH);
    let p = path.to_owned();
    progress.restart();
    let done = super::io::spawn(async move {
        let mut at = offset;
        let mut writeback = Writeback::from(offset);
        while let Some(chunk) = rx.recv().await {
            disk.write_at(&file, &chunk, at)
                .map_err(Error::local("write", &p))?;
            at += chunk.len() as u64;
            writeback.wrote(&file, chunk.len() as u64);
            progress.advance(chunk.len() as u64);
        }
        Ok(at - offset)
    });
    RangeWriting {
        chunks: tx,
        done,
        path: path.to_owned(),
    }
}

impl RangeWriting {
    /// Waits for every chunk to be written; the bytes written.
    pub async fn finish(self) -> Result<u64> {
        drop(self.chunks);
        joined(self.done.await, &self.path)
    }
}

/// Starts the disk writes of a big download while it runs. With plenty of memory the kernel
/// holds a whole file dirty until the fsync before its rename, which then wrote 1 GiB at once
/// (0.3-0.4 s here, with nothing else going on). Asking for the writeback of every
/// `WRITEBACK_STEP` as it is written, without waiting for it, leaves the fsync little more
/// than the tail. Linux only (`sync_file_range`); elsewhere the fsync does it all.
struct Writeback {
    /// Where the part not yet handed to writeback starts, and where writing got to.
    from: u64,
    at: u64,
}

impl Writeback {
    fn from(offset: u64) -> Writeback {
        Writeback {
            from: offset,
            at: offset,
        }
    }

    fn wrote(&mut self, file: &File, bytes: u64) {
        self.at += bytes;
        if self.at - self.from < WRITEBACK_STEP {
            return;
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: `file` is an open descriptor for the whole call; the call only queues
            // writes of its dirty pages, and a failure changes nothing (the fsync still runs).
            unsafe {
                libc::sync_file_range(
                    file.as_raw_fd(),
                    self.from as libc::off64_t,
                    (self.at - self.from) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = file;
        self.from = self.at;
    }
}

/// Feeds the first `len` bytes of `file` to `hashers`, reading from its start; the file must
/// hold them.
fn hash_start(mut file: impl Read + Seek, len: u64, hashers: &mut Hashers, path: &Path) -> Result<()> {
    file.seek(SeekFrom::Start(0))
        .map_err(Error::local("seek", path))?;
    let mut buf = vec![0u8; CHUNK];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file.read(&mut buf[..want]).map_err(Error::local("read", path))?;
        if n == 0 {
            return Err(Error::Local {
                op: "read",
                path: path.to_owned(),
                source: std::io::ErrorKind::UnexpectedEof.into(),
            });
        }
        hashers.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}
