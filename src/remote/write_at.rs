//! Whether a server keeps the bytes around a write at an offset (REST, then STOR), and lets
//! two such writes into one file run at once: what a segmented upload needs, since its ranges
//! land in one file in any order, at the same time. Servers differ: vsftpd keeps them, but by
//! default (`lock_upload_files=YES`) locks a file for the whole of an upload, so a second
//! writer waits its turn; ProFTPD refuses a write past the end, even with `AllowStoreRestart`,
//! as pyftpdlib does; Pure-FTPd cuts the file at the offset, which would destroy the ranges
//! already written. So it is probed, never assumed, on a small file (`check`, and a pass
//! before its first segmented upload).

use std::time::Duration;

use tokio::sync::mpsc;

use super::Remote;
use crate::error::{Error, Result};

/// What a server did with writes at offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteAt {
    /// A write past the end and one inside the file both landed where sent, all else kept.
    Keeps,
    /// REST before STOR was refused (the reply).
    Refused(String),
    /// A write inside the file cut it at the offset.
    Cuts,
    /// The file read back as this many bytes, not what was written.
    Garbled(usize),
}

const PROBE: &[u8] = b"ftps-sync: a write at an offset\n";
/// The probe's file is written as a segmented upload writes one: its head by a plain STOR,
/// then a range past the end, then the range between, inside the file.
const HEAD: usize = 8;
const TAIL: usize = 20;

/// Writes the probe file at `path` (a reserved part-file name: a later pass removes one left
/// behind) and reads it back; the caller removes it. `Err` for a failure that tells nothing
/// of the server's way with offsets (a refused plain upload, a lost connection).
pub async fn probe(conn: &mut dyn Remote, path: &str) -> Result<WriteAt> {
    send(conn, path, &PROBE[..HEAD], None).await?;
    for (from, to) in [(TAIL, PROBE.len()), (HEAD, TAIL)] {
        match send(conn, path, &PROBE[from..to], Some(from as u64)).await {
            Ok(_) => {}
            Err(Error::Reply { reply, .. }) => return Ok(WriteAt::Refused(reply)),
            Err(e) => return Err(e),
        }
    }
    let back = fetch(conn, path).await?;
    Ok(if back == PROBE {
        WriteAt::Keeps
    } else if back == PROBE[..TAIL] {
        WriteAt::Cuts
    } else {
        WriteAt::Garbled(back.len())
    })
}

/// Whether a write into `path` (the probe's file, whole) on `b` ends within `wait` while one
/// on `a` holds the same file open: a server that locks a file for the whole of an upload
/// (vsftpd's default) makes it wait, and would run a segmented upload's ranges one at a time,
/// each waiting its turn past any timeout. After `Ok(false)`, `b` is out of step: drop it.
pub async fn concurrent(a: &mut dyn Remote, b: &mut dyn Remote, path: &str, wait: Duration) -> Result<bool> {
    let (tx, rx) = mpsc::channel(1);
    let mid = (HEAD + TAIL) / 2;
    let holding = async {
        // Dropped when the write ends, so that a write refused before it took a chunk
        // leaves no one waiting to hand it the second.
        let mut rx = rx;
        a.put_at(path, HEAD as u64, &mut rx).await
    };
    let other = async {
        // The first chunk waits in the channel; the second goes in once the transfer on `a`
        // took the first, which it does only with its data connection open, the file opened
        // (and locked, where the server locks) before its 150 reply.
        let _ = tx.send(PROBE[HEAD..mid].to_vec()).await;
        let _ = tx.send(PROBE[mid..TAIL].to_vec()).await;
        let (otx, mut orx) = mpsc::channel(1);
        let _ = otx.send(PROBE[TAIL..].to_vec()).await;
        drop(otx);
        let done = tokio::time::timeout(wait, b.put_at(path, TAIL as u64, &mut orx)).await;
        drop(tx);
        done
    };
    let (held, other) = tokio::join!(holding, other);
    held?;
    match other {
        Ok(written) => {
            written?;
            Ok(fetch(a, path).await? == PROBE)
        }
        Err(_) => Ok(false),
    }
}

/// Uploads `bytes` to `path` (at `offset`: REST, then STOR; else a plain STOR). Sent again once
/// when the server refused a data connection that did not resume: the connection has learned
/// to (as a sync's retry does).
pub async fn send(conn: &mut dyn Remote, path: &str, bytes: &[u8], offset: Option<u64>) -> Result<u64> {
    match send_once(conn, path, bytes, offset).await {
        Err(Error::NotResumed { .. }) => send_once(conn, path, bytes, offset).await,
        other => other,
    }
}

async fn send_once(conn: &mut dyn Remote, path: &str, bytes: &[u8], offset: Option<u64>) -> Result<u64> {
    let (tx, mut rx) = mpsc::channel(1);
    // The channel holds the one chunk: sent before the transfer reads it.
    let _ = tx.send(bytes.to_vec()).await;
    drop(tx);
    match offset {
        Some(at) => conn.put_at(path, at, &mut rx).await,
        None => conn.put(path, 0, &mut rx).await,
    }
}

/// The whole of a small file `path`; read again once, as `send` sends again.
pub async fn fetch(conn: &mut dyn Remote, path: &str) -> Result<Vec<u8>> {
    match fetch_once(conn, path).await {
        Err(Error::NotResumed { .. }) => fetch_once(conn, path).await,
        other => other,
    }
}

async fn fetch_once(conn: &mut dyn Remote, path: &str) -> Result<Vec<u8>> {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let reading = async {
        let mut all = Vec::new();
        while let Some(chunk) = rx.recv().await {
            all.extend_from_slice(&chunk);
        }
        all
    };
    let (got, all) = tokio::join!(
        async {
            let r = conn.get(path, 0, &tx).await;
            drop(tx);
            r
        },
        reading
    );
    got.map(|_| all)
}
