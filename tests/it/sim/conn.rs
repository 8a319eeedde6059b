//! A connection to the simulated server (`SimConnector` makes them): the faults of each
//! command, and the uploads that wait for one another.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ftps_sync::error::{Error, Result};
use ftps_sync::remote::limit::RateLimiter;
use ftps_sync::remote::{Connector, Remote};
use tokio::sync::mpsc;

use super::server::*;

pub struct SimConnector(pub Arc<SimServer>);

#[async_trait::async_trait]
impl Connector for SimConnector {
    async fn connect(&self, _: Option<Arc<RateLimiter>>) -> Result<Box<dyn Remote>> {
        let s = &self.0;
        s.counts.connections.fetch_add(1, Ordering::Relaxed);
        match s.fault("CONNECT", "") {
            Some(Fault::Transient(421)) => Err(Error::TooManyConnections {
                server: "sim".into(),
                reply: "421 Too many connections".into(),
            }),
            Some(Fault::DropBefore | Fault::DropAfter) => Err(Error::ConnectionLost {
                command: "connect",
                path: "sim".into(),
                message: "connection reset".into(),
            }),
            _ => Ok(Box::new(SimConn {
                server: s.clone(),
                dead: false,
                recent: Default::default(),
                renamed_onto: None,
                listed: Default::default(),
            })),
        }
    }
}

pub(super) struct SimConn {
    pub(super) server: Arc<SimServer>,
    pub(super) dead: bool,
    /// The path this connection last renamed a file onto, until its next command.
    pub(super) renamed_onto: Option<String>,
    /// The last commands on this connection: (command, path, when).
    pub(super) recent: std::collections::VecDeque<(&'static str, String, u64)>,
    /// When this connection last listed each directory.
    pub(super) listed: BTreeMap<String, u64>,
}

/// An upload's hold on its file, on a server that lets one upload into a file at a time
/// (vsftpd's `lock_upload_files`); let go when dropped, as when the connection dies.
pub(super) struct WriteLock {
    pub(super) server: Arc<SimServer>,
    pub(super) path: String,
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        self.server.writing.lock().expect("writing").remove(&self.path);
        self.server.written.notify_waiters();
    }
}

/// Waits for `path` to be free of other uploads where the server serializes them.
pub(super) async fn lock_for_write(server: &Arc<SimServer>, path: &str) -> Option<WriteLock> {
    if server.behaviour.writes_at != WritesAt::Serializes {
        return None;
    }
    let mut waited = false;
    loop {
        // Made before the look, so that a release between the two still wakes it.
        let released = server.written.notified();
        if server.writing.lock().expect("writing").insert(path.to_owned()) {
            return Some(WriteLock {
                server: server.clone(),
                path: path.to_owned(),
            });
        }
        if !waited {
            waited = true;
            server.counts.waited.fetch_add(1, Ordering::Relaxed);
        }
        released.await;
    }
}

pub(super) fn lost(command: &'static str, path: &str) -> Error {
    Error::ConnectionLost {
        command,
        path: path.to_owned(),
        message: "connection reset by the simulation".into(),
    }
}

pub(super) fn reply(command: &'static str, path: &str, code: u16) -> Error {
    Error::Reply {
        command,
        path: path.to_owned(),
        code: Some(code),
        reply: format!("{code} simulated"),
    }
}

impl SimConn {
    /// The fault for `command`, if any; `Err` for one that ends it before it takes effect.
    pub(super) async fn before(&mut self, command: &'static str, path: &str) -> Result<Option<Fault>> {
        self.server.point().await;
        if let Some(p) = self.renamed_onto.take() {
            self.server.renaming.lock().expect("renaming").remove(&p);
        }
        if self.dead {
            return Err(lost(command, path));
        }
        let fault = self.server.fault(command, path);
        if self.recent.len() == 3 {
            self.recent.pop_front();
        }
        let now = self.server.counts.commands.load(Ordering::SeqCst);
        self.recent.push_back((command, path.to_owned(), now));
        match fault {
            Some(Fault::DropBefore) => {
                self.dead = true;
                Err(lost(command, path))
            }
            Some(Fault::Stall) => {
                tokio::time::sleep(TIMEOUT).await;
                self.dead = true;
                Err(Error::Timeout {
                    command,
                    path: path.to_owned(),
                    seconds: TIMEOUT.as_secs(),
                })
            }
            Some(Fault::Transient(code)) => Err(reply(command, path, code)),
            Some(Fault::Refused) => Err(reply(command, path, 550)),
            other => Ok(other),
        }
    }

    /// Before this connection replaces or deletes `path`: a version a user wrote there after
    /// this connection's look at it, a command or two before, is lost to FTP's missing
    /// rename-if-unchanged, not to the client (`window_losses`).
    pub(super) fn overwrites(&self, path: &str) {
        let looked = self
            .recent
            .iter()
            .rev()
            .skip(1)
            .find(|(c, p, _)| p == path && matches!(*c, "MLST" | "SIZE"))
            .map(|(_, _, when)| *when);
        let wrote = self.server.user_writes.lock().expect("writes").get(path).copied();
        if let (Some(looked), Some(wrote)) = (looked, wrote)
            && wrote >= looked
            && let Some(file) = self.server.store().files.get(path)
        {
            self.server
                .window_losses
                .lock()
                .expect("losses")
                .push(file.data.clone());
        }
    }

    /// After the command took effect: a drop loses the reply.
    pub(super) async fn after<T>(
        &mut self,
        fault: Option<Fault>,
        command: &'static str,
        path: &str,
        value: T,
    ) -> Result<T> {
        self.server.point().await;
        match fault {
            Some(Fault::DropAfter) => {
                self.dead = true;
                Err(lost(command, path))
            }
            _ => Ok(value),
        }
    }

    /// The bytes of an upload into a folder that exists; with a drop in the middle, what
    /// arrived before it (the server keeps that, as FTP servers do).
    pub(super) async fn receive(
        &mut self,
        command: &'static str,
        path: &str,
        f: Option<&Fault>,
        source: &mut mpsc::Receiver<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        if !self.server.store().dirs.contains(parent(path)) {
            return Err(reply(command, path, 553));
        }
        let mut received = Vec::new();
        while let Some(chunk) = source.recv().await {
            received.extend_from_slice(&chunk);
        }
        if matches!(f, Some(Fault::DropAfter)) {
            received.truncate(received.len() / 2);
        }
        Ok(received)
    }

    /// After an upload's bytes are stored: the drop, or the reply.
    pub(super) async fn stored(
        &mut self,
        command: &'static str,
        path: &str,
        f: Option<&Fault>,
        n: usize,
    ) -> Result<u64> {
        if matches!(f, Some(Fault::DropAfter)) {
            self.dead = true;
            return Err(lost(command, path));
        }
        self.server.point().await;
        Ok(n as u64)
    }

    /// RETR from `offset`, to the end or `len` bytes (a range read cut short).
    pub(super) async fn retr(
        &mut self,
        path: &str,
        offset: u64,
        len: Option<u64>,
        sink: &mpsc::Sender<Vec<u8>>,
    ) -> Result<u64> {
        let f = self.before("RETR", path).await?;
        self.server.delivered(path);
        // A read to the end shows the lie by its length. (Wrong bytes in the right number, as
        // a range read from the start would bring, no client can tell without a server hash.)
        let lies = matches!(f, Some(Fault::ExtraByte)) && len.is_none();
        let from = if lies { 0 } else { offset as usize };
        let data = match self.server.store().files.get(path) {
            Some(file) => file.data.get(from..).unwrap_or_default().to_vec(),
            None => return Err(reply("RETR", path, 550)),
        };
        // A drop in the middle: half the bytes arrive.
        let mut data = data;
        if lies && offset == 0 {
            data.push(b'!');
        }
        if let Some(len) = len {
            data.truncate(len as usize);
        }
        let cut = matches!(f, Some(Fault::DropAfter));
        let end = if cut { data.len() / 2 } else { data.len() };
        for chunk in data[..end].chunks(4096) {
            if sink.send(chunk.to_vec()).await.is_err() {
                return Err(Error::Local {
                    op: "write",
                    path: path.into(),
                    source: std::io::Error::other("the local writer stopped"),
                });
            }
        }
        if cut {
            self.dead = true;
            return Err(lost("RETR", path));
        }
        self.server.point().await;
        Ok(end as u64)
    }
}
