//! The simulated FTPS server: an in-memory tree behind `trait Remote`, with seeded faults the way
//! real servers and networks produce them. What it stores survives a client crash; a fault
//! never corrupts what it stores (a lying server is in the faults, not in the store).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ftps_sync::digest::HashAlgo;
use ftps_sync::error::{Error, Result};
use ftps_sync::reconcile::{Mtime, Precision};
use ftps_sync::remote::limit::RateLimiter;
use ftps_sync::remote::listing::{Listed, ListedKind};
use ftps_sync::remote::{Capabilities, Connector, Remote};
use sha2::Digest;
use tokio::sync::mpsc;

use super::Rng;

#[derive(Debug, Clone)]
pub struct SimFile {
    pub data: Vec<u8>,
    /// Seconds since the epoch.
    pub mtime: i64,
}

/// What the server stores: files and directories by absolute path.
#[derive(Debug, Default)]
pub struct Store {
    pub files: BTreeMap<String, SimFile>,
    pub dirs: BTreeSet<String>,
}

/// How the server behaves, drawn per seed.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// LIST only: times to the minute, no MLST.
    pub list_only: bool,
    /// Offers HASH SHA-256.
    pub hash: bool,
    /// Chance per command, in thousandths, of a fault while faults are on.
    pub fault_per_mille: u64,
}

#[derive(Default, Debug)]
pub struct Counts {
    pub commands: AtomicU64,
    pub faults: AtomicU64,
    pub connections: AtomicU64,
}

pub struct SimServer {
    pub store: Mutex<Store>,
    pub behaviour: Behaviour,
    pub faults_on: AtomicBool,
    pub counts: Counts,
    rng: Mutex<Rng>,
    /// The server's clock, in seconds; the history moves it.
    pub clock: AtomicU64,
    /// Faults a test orders: the next command of that name gets the fault, in order.
    script: Mutex<std::collections::VecDeque<(&'static str, Fault)>>,
}

/// A fault the network or server produced.
pub enum Fault {
    /// The connection drops before the command takes effect.
    DropBefore,
    /// The command takes effect, then the connection drops before its reply.
    DropAfter,
    /// A transient refusal (421, 425, 426, 450).
    Transient(u16),
    /// A permanent refusal (550).
    Refused,
    /// SIZE answers one byte more than it holds.
    LyingSize,
}

fn parent(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) => "/",
        Some((d, _)) => d,
        None => "/",
    }
}

impl SimServer {
    pub fn new(behaviour: Behaviour, seed: u64, root: &str) -> Arc<SimServer> {
        let mut store = Store::default();
        store.dirs.insert("/".into());
        store.dirs.insert(root.into());
        Arc::new(SimServer {
            store: Mutex::new(store),
            behaviour,
            faults_on: AtomicBool::new(true),
            counts: Counts::default(),
            rng: Mutex::new(Rng(seed ^ 0x5151_5151)),
            clock: AtomicU64::new(1_780_000_000),
            script: Mutex::new(Default::default()),
        })
    }

    pub fn now(&self) -> i64 {
        self.clock.load(Ordering::SeqCst) as i64
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().expect("store")
    }

    /// Orders `fault` for the next `op` command (after those already ordered for it).
    pub fn order(&self, op: &'static str, fault: Fault) {
        self.script.lock().expect("script").push_back((op, fault));
    }

    fn fault(&self, op: &'static str) -> Option<Fault> {
        self.counts.commands.fetch_add(1, Ordering::Relaxed);
        {
            let mut script = self.script.lock().expect("script");
            if let Some(i) = script.iter().position(|(o, _)| *o == op) {
                return script.remove(i).map(|(_, f)| f);
            }
        }
        if !self.faults_on.load(Ordering::SeqCst) {
            return None;
        }
        let mut rng = self.rng.lock().expect("rng");
        if rng.below(1000) >= self.behaviour.fault_per_mille {
            return None;
        }
        self.counts.faults.fetch_add(1, Ordering::Relaxed);
        Some(match rng.below(if op == "SIZE" { 6 } else { 5 }) {
            0 => Fault::DropBefore,
            1 => Fault::DropAfter,
            2 => Fault::Transient([421, 425, 426, 450][rng.below(4) as usize]),
            3 if op == "STOR" || op == "RETR" => Fault::Refused,
            5 => Fault::LyingSize,
            _ => Fault::Transient(450),
        })
    }

    /// A user's write on the server side (not through a connection).
    pub fn user_write(&self, path: &str, data: Vec<u8>, mtime: i64) {
        let mut s = self.store();
        let mut d = parent(path).to_owned();
        while d != "/" {
            s.dirs.insert(d.clone());
            d = parent(&d).to_owned();
        }
        s.files.insert(path.to_owned(), SimFile { data, mtime });
    }

    pub fn user_delete(&self, path: &str) -> bool {
        self.store().files.remove(path).is_some()
    }

    /// The files under `root`, by path relative to it.
    pub fn tree(&self, root: &str) -> BTreeMap<String, Vec<u8>> {
        let prefix = format!("{root}/");
        self.store()
            .files
            .iter()
            .filter_map(|(p, f)| p.strip_prefix(&prefix).map(|r| (r.to_owned(), f.data.clone())))
            .collect()
    }

    fn listed(&self, name: &str, file: Option<&SimFile>) -> Listed {
        let mtime = |secs: i64| {
            if self.behaviour.list_only {
                Mtime::new(secs.div_euclid(60) * 60 * 1_000_000_000, Precision::Minutes)
            } else {
                Mtime::new(secs * 1_000_000_000, Precision::Seconds)
            }
        };
        match file {
            Some(f) => Listed {
                name: name.to_owned(),
                kind: ListedKind::File,
                size: f.data.len() as u64,
                mtime: Some(mtime(f.mtime)),
            },
            None => Listed {
                name: name.to_owned(),
                kind: ListedKind::Dir,
                size: 0,
                mtime: Some(mtime(0)),
            },
        }
    }
}

pub struct SimConnector(pub Arc<SimServer>);

#[async_trait::async_trait]
impl Connector for SimConnector {
    async fn connect(&self, _: Option<Arc<RateLimiter>>) -> Result<Box<dyn Remote>> {
        let s = &self.0;
        s.counts.connections.fetch_add(1, Ordering::Relaxed);
        match s.fault("CONNECT") {
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
            })),
        }
    }
}

struct SimConn {
    server: Arc<SimServer>,
    dead: bool,
}

fn lost(command: &'static str, path: &str) -> Error {
    Error::ConnectionLost {
        command,
        path: path.to_owned(),
        message: "connection reset by the simulation".into(),
    }
}

fn reply(command: &'static str, path: &str, code: u16) -> Error {
    Error::Reply {
        command,
        path: path.to_owned(),
        code: Some(code),
        reply: format!("{code} simulated"),
    }
}

impl SimConn {
    /// The fault for `command`, if any; `Err` for one that ends it before it takes effect.
    fn before(&mut self, command: &'static str, path: &str) -> Result<Option<Fault>> {
        if self.dead {
            return Err(lost(command, path));
        }
        match self.server.fault(command) {
            Some(Fault::DropBefore) => {
                self.dead = true;
                Err(lost(command, path))
            }
            Some(Fault::Transient(code)) => Err(reply(command, path, code)),
            Some(Fault::Refused) => Err(reply(command, path, 550)),
            other => Ok(other),
        }
    }

    /// After the command took effect: a drop loses the reply.
    fn after<T>(&mut self, fault: Option<Fault>, command: &'static str, path: &str, value: T) -> Result<T> {
        match fault {
            Some(Fault::DropAfter) => {
                self.dead = true;
                Err(lost(command, path))
            }
            _ => Ok(value),
        }
    }
}

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
        let f = self.before("LIST", dir)?;
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
        self.after(f, "LIST", dir, out)
    }

    async fn stat(&mut self, path: &str) -> Result<Option<Listed>> {
        let f = self.before("MLST", path)?;
        let name = path.rsplit('/').next().unwrap_or(path);
        let out = {
            let s = self.server.store();
            match s.files.get(path) {
                Some(file) => Some(self.server.listed(name, Some(file))),
                None => s.dirs.contains(path).then(|| self.server.listed(name, None)),
            }
        };
        self.after(f, "MLST", path, out)
    }

    async fn exists(&mut self, path: &str) -> Result<bool> {
        Ok(self.stat(path).await?.is_some())
    }

    async fn size(&mut self, path: &str) -> Result<u64> {
        let f = self.before("SIZE", path)?;
        let size = self.server.store().files.get(path).map(|f| f.data.len() as u64);
        let Some(size) = size else {
            return Err(reply("SIZE", path, 550));
        };
        let size = if matches!(f, Some(Fault::LyingSize)) {
            size + 1
        } else {
            size
        };
        self.after(f, "SIZE", path, size)
    }

    async fn get(&mut self, path: &str, offset: u64, sink: &mpsc::Sender<Vec<u8>>) -> Result<u64> {
        let f = self.before("RETR", path)?;
        let data = match self.server.store().files.get(path) {
            Some(file) => file.data.get(offset as usize..).unwrap_or_default().to_vec(),
            None => return Err(reply("RETR", path, 550)),
        };
        // A drop in the middle: half the bytes arrive.
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
        Ok(end as u64)
    }

    async fn put(&mut self, path: &str, offset: u64, source: &mut mpsc::Receiver<Vec<u8>>) -> Result<u64> {
        let f = self.before("STOR", path)?;
        if !self.server.store().dirs.contains(parent(path)) {
            return Err(reply("STOR", path, 553));
        }
        let mut received = Vec::new();
        while let Some(chunk) = source.recv().await {
            received.extend_from_slice(&chunk);
        }
        // A drop in the middle: the server keeps what arrived (as FTP servers do).
        let cut = matches!(f, Some(Fault::DropAfter));
        if cut {
            received.truncate(received.len() / 2);
        }
        let n = received.len() as u64;
        {
            let now = self.server.now();
            let mut s = self.server.store();
            let file = s.files.entry(path.to_owned()).or_insert(SimFile {
                data: Vec::new(),
                mtime: now,
            });
            if offset == 0 {
                file.data.clear();
            }
            file.data.extend_from_slice(&received);
            file.mtime = now;
        }
        if cut {
            self.dead = true;
            return Err(lost("STOR", path));
        }
        Ok(n)
    }

    async fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        let f = self.before("RNFR/RNTO", from)?;
        {
            let mut s = self.server.store();
            let Some(file) = s.files.remove(from) else {
                return Err(reply("RNFR/RNTO", from, 550));
            };
            s.files.insert(to.to_owned(), file);
        }
        self.after(f, "RNFR/RNTO", from, ())
    }

    async fn remove(&mut self, path: &str) -> Result<()> {
        let f = self.before("DELE", path)?;
        if self.server.store().files.remove(path).is_none() {
            return Err(reply("DELE", path, 550));
        }
        self.after(f, "DELE", path, ())
    }

    async fn mkdir(&mut self, path: &str) -> Result<()> {
        let f = self.before("MKD", path)?;
        {
            let mut s = self.server.store();
            if s.dirs.contains(path) || !s.dirs.contains(parent(path)) {
                return Err(reply("MKD", path, 550));
            }
            s.dirs.insert(path.to_owned());
        }
        self.after(f, "MKD", path, ())
    }

    async fn rmdir(&mut self, path: &str) -> Result<()> {
        let f = self.before("RMD", path)?;
        {
            let mut s = self.server.store();
            let prefix = format!("{path}/");
            let busy = s.files.keys().any(|p| p.starts_with(&prefix))
                || s.dirs.iter().any(|d| d.starts_with(&prefix));
            if busy || !s.dirs.remove(path) {
                return Err(reply("RMD", path, 550));
            }
        }
        self.after(f, "RMD", path, ())
    }

    async fn set_mtime(&mut self, path: &str, unix_secs: i64) -> Result<bool> {
        let f = self.before("MFMT", path)?;
        let done = match self.server.store().files.get_mut(path) {
            Some(file) => {
                file.mtime = unix_secs;
                true
            }
            None => false,
        };
        self.after(f, "MFMT", path, done)
    }

    async fn hash(&mut self, path: &str) -> Result<Option<(HashAlgo, String)>> {
        if !self.server.behaviour.hash {
            return Ok(None);
        }
        let f = self.before("HASH", path)?;
        let digest = match self.server.store().files.get(path) {
            Some(file) => hex::encode(sha2::Sha256::digest(&file.data)),
            None => return Err(reply("HASH", path, 550)),
        };
        self.after(f, "HASH", path, Some((HashAlgo::Sha256, digest)))
    }

    async fn noop(&mut self) -> Result<()> {
        if self.dead { Err(lost("NOOP", "")) } else { Ok(()) }
    }

    async fn quit(&mut self) {}
}
