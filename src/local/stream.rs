//! File reading and writing beside the transfer (on their own threads in production, see
//! `io`), so disk and hashing overlap with the network: the transfer loop only moves chunks
//! between a channel and the TLS stream.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::digest::{Digests, HashAlgo, Hashers};
use crate::error::{Error, Result};

const CHUNK: usize = 256 * 1024;
const DEPTH: usize = 8;

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
/// from `skip` on.
pub fn read_file(path: &Path, skip: u64, also: Option<HashAlgo>) -> Reading {
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
                if tx.send(chunk).await.is_err() {
                    break; // the transfer stopped
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
/// the async workers (`io::spawn`). With no file, only hashes.
pub fn write_file(file: Option<File>, prefix: u64, also: Option<HashAlgo>, path: &Path) -> Writing {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(DEPTH);
    let p = path.to_owned();
    let done = super::io::spawn(async move {
        let mut hashers = Hashers::new(also);
        let mut file = file;
        if let Some(f) = file.as_mut() {
            f.seek(SeekFrom::Start(0)).map_err(Error::local("seek", &p))?;
            let mut left = prefix;
            let mut buf = vec![0u8; CHUNK];
            while left > 0 {
                let want = buf.len().min(left as usize);
                let n = f.read(&mut buf[..want]).map_err(Error::local("read", &p))?;
                if n == 0 {
                    return Err(Error::Local {
                        op: "read",
                        path: p.clone(),
                        source: std::io::ErrorKind::UnexpectedEof.into(),
                    });
                }
                hashers.update(&buf[..n]);
                left -= n as u64;
            }
            f.seek(SeekFrom::Start(prefix))
                .map_err(Error::local("seek", &p))?;
            f.set_len(prefix).map_err(Error::local("truncate", &p))?;
        }
        while let Some(chunk) = rx.recv().await {
            hashers.update(&chunk);
            if let Some(f) = file.as_mut() {
                f.write_all(&chunk).map_err(Error::local("write", &p))?;
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
