//! The simulated FTPS server: an in-memory tree behind `trait Remote`, with seeded faults the way
//! real servers and networks produce them. What it stores survives a client crash; a fault
//! never corrupts what it stores (a lying server is in the faults, not in the store).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ftps_sync::digest::HashAlgo;
use ftps_sync::error::{Error, Result};
use ftps_sync::reconcile::{FileId, Mtime, Precision};
use ftps_sync::remote::limit::RateLimiter;
use ftps_sync::remote::listing::{Listed, ListedKind};
use ftps_sync::remote::{Capabilities, Connector, Remote};
use sha2::Digest;
use tokio::sync::mpsc;

use super::Rng;
pub use super::history::{Behaviour, WritesAt};

#[derive(Debug, Clone)]
pub struct SimFile {
    pub data: Vec<u8>,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// What the MLSD `unique` fact shows: kept by a rename and a write in place, new for a
    /// new file (an inode).
    pub id: u64,
}

/// What the server stores: files and directories by absolute path.
#[derive(Debug, Default)]
pub struct Store {
    pub files: BTreeMap<String, SimFile>,
    pub dirs: BTreeSet<String>,
    pub last_id: u64,
}

impl Store {
    /// Renames the folder `from`, with all under it, to `to`; the new paths of its files.
    fn rename_dir(&mut self, from: &str, to: &str) -> Vec<String> {
        let under = format!("{from}/");
        let moved = |p: &String| p == from || p.starts_with(&under);
        let renamed = |p: &str| format!("{to}{}", &p[from.len()..]);
        let dirs: Vec<String> = self.dirs.iter().filter(|p| moved(p)).cloned().collect();
        for d in dirs {
            self.dirs.remove(&d);
            self.dirs.insert(renamed(&d));
        }
        let files: Vec<String> = self.files.keys().filter(|p| moved(p)).cloned().collect();
        let mut now = Vec::with_capacity(files.len());
        for f in files {
            if let Some(file) = self.files.remove(&f) {
                self.files.insert(renamed(&f), file);
                now.push(renamed(&f));
            }
        }
        now
    }

    /// The file at `path` for a write now: the one there, or a new empty one.
    fn file_for_write(&mut self, path: &str, now: i64) -> &mut SimFile {
        let id = self.id_at(path);
        let file = self.files.entry(path.to_owned()).or_insert(SimFile {
            data: Vec::new(),
            mtime: now,
            id,
        });
        file.mtime = now;
        file
    }

    /// The id of the file at `path`, or a new one.
    fn id_at(&mut self, path: &str) -> u64 {
        if let Some(f) = self.files.get(path) {
            return f.id;
        }
        self.last_id += 1;
        self.last_id
    }
}

#[derive(Default, Debug)]
pub struct Counts {
    pub commands: AtomicU64,
    pub faults: AtomicU64,
    pub connections: AtomicU64,
    /// Writes at an offset that kept their bytes (ranges of segmented uploads, and probes).
    pub writes_at: AtomicU64,
    /// Uploads that waited for another into the same file to end (`WritesAt::Serializes`).
    pub waited: AtomicU64,
    /// A running hash of every command and its path, in order: two runs of one seed must
    /// agree on it (the replay is exact).
    pub trace: AtomicU64,
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
    /// Where the pass that runs stops: see `point`.
    pub stops: Stops,
    /// When (in commands) a user last wrote each path.
    user_writes: Mutex<BTreeMap<String, u64>>,
    /// Versions a user wrote in the one round trip between the client's last look at a path and
    /// its rename over it (or deletion of it): FTP has no rename-if-unchanged, so no client can
    /// keep them. The histories count them apart.
    pub window_losses: Mutex<Vec<Vec<u8>>>,
    /// When (in commands) the client last read each path (RETR) or renamed a file onto it:
    /// the moments a version can have crossed to the other side.
    deliveries: Mutex<BTreeMap<String, u64>>,
    /// Paths a connection renamed a file onto and has sent no command since: a user's write
    /// there would land between the rename and the client's next look, which nothing can see.
    renaming: Mutex<BTreeSet<String>>,
    /// Paths an upload is writing now, where uploads into one file wait their turn
    /// (`WritesAt::Serializes`), and the signal that one ended.
    writing: Mutex<BTreeSet<String>>,
    written: tokio::sync::Notify,
}

/// What happens at a numbered point of a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The process dies: nothing of the pass moves again.
    Crash,
    /// The pass waits while the users act (`Stops::paused`), until released.
    Pause,
}

/// The points of the pass that runs: one before every command takes effect and one after (its
/// reply not yet sent), counted from 0, and what happens at some of them.
#[derive(Default)]
pub struct Stops {
    next: AtomicU64,
    at: Mutex<BTreeMap<u64, Stop>>,
    pub crashed: AtomicBool,
    /// The points the pass waits at (tasks run on, so there may be several), while the users act.
    pub paused: Mutex<Vec<u64>>,
    release: tokio::sync::Notify,
    /// The one who drives the pass, woken when it crashes or pauses.
    driver: Mutex<Option<std::task::Waker>>,
}

impl Stops {
    /// A new pass, stopping at these points.
    pub fn plan(&self, at: BTreeMap<u64, Stop>) {
        self.next.store(0, Ordering::SeqCst);
        *self.at.lock().expect("stops") = at;
        self.crashed.store(false, Ordering::SeqCst);
    }

    /// How many points the pass has passed.
    pub fn passed(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    pub fn watch(&self, waker: &std::task::Waker) {
        *self.driver.lock().expect("driver") = Some(waker.clone());
    }

    /// Lets the paused pass go on.
    pub fn release(&self) {
        self.paused.lock().expect("paused").clear();
        self.release.notify_waiters();
    }

    fn wake_driver(&self) {
        if let Some(w) = self.driver.lock().expect("driver").take() {
            w.wake();
        }
    }
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
    /// The connection stops answering: the client's timeout ends it.
    Stall,
    /// LIST answers 226 with nothing in it (servers do, under load).
    EmptyListing,
    /// RETR to the end sends one byte more than the file holds; after a REST, it ignores the
    /// offset and sends from the start (a server that lies about REST STREAM).
    ExtraByte,
    /// STOR after REST answers 226 and keeps nothing (a server that lies about a range).
    LostRange,
}

/// How long the client waits on a silent server (the FTPS adapter's default timeout).
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

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
            stops: Stops::default(),
            user_writes: Mutex::new(BTreeMap::new()),
            window_losses: Mutex::new(Vec::new()),
            deliveries: Mutex::new(BTreeMap::new()),
            renaming: Mutex::new(BTreeSet::new()),
            writing: Mutex::new(BTreeSet::new()),
            written: tokio::sync::Notify::new(),
        })
    }

    /// A point of the pass: every task yields here (so tasks interleave at every command, as
    /// they do over a network), and the pass crashes or pauses here if planned. After a crash,
    /// every task stops at its next point: a crash at the same instant as far as anyone can tell.
    async fn point(&self) {
        tokio::task::yield_now().await;
        let stops = &self.stops;
        if stops.crashed.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let n = stops.next.fetch_add(1, Ordering::SeqCst);
        let stop = stops.at.lock().expect("stops").remove(&n);
        match stop {
            Some(Stop::Crash) => {
                stops.crashed.store(true, Ordering::SeqCst);
                stops.wake_driver();
                std::future::pending::<()>().await;
            }
            Some(Stop::Pause) => {
                // Registered before anyone can release it: nothing else runs on this thread
                // until the await.
                let released = stops.release.notified();
                stops.paused.lock().expect("paused").push(n);
                stops.wake_driver();
                released.await;
            }
            None => {}
        }
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

    /// Draws the next faults from `seed` (each pass its own, so that a shrunk history keeps
    /// the faults of the passes it keeps).
    pub fn reseed(&self, seed: u64) {
        *self.rng.lock().expect("rng") = Rng(seed | 1);
    }

    fn fault(&self, op: &'static str, path: &str) -> Option<Fault> {
        self.counts.commands.fetch_add(1, Ordering::Relaxed);
        let mut h = self.counts.trace.load(Ordering::Relaxed);
        for b in op.bytes().chain([b' ']).chain(path.bytes()).chain([b'\n']) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.counts.trace.store(h, Ordering::Relaxed);
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
        Some(match rng.below(7) {
            0 => Fault::DropBefore,
            1 => Fault::DropAfter,
            2 => Fault::Transient([421, 425, 426, 450][rng.below(4) as usize]),
            3 if op == "STOR" || op == "RETR" => Fault::Refused,
            4 => Fault::Stall,
            5 if op == "SIZE" => Fault::LyingSize,
            5 if op == "LIST" => Fault::EmptyListing,
            5 if op == "RETR" => Fault::ExtraByte,
            5 if op == "STOR-AT" => Fault::LostRange,
            _ => Fault::Transient(450),
        })
    }

    /// Whether the client read `path` or renamed a file onto it after command number `since`.
    pub fn delivered_since(&self, path: &str, since: u64) -> bool {
        self.deliveries
            .lock()
            .expect("deliveries")
            .get(path)
            .is_some_and(|at| *at > since)
    }

    /// Notes in `when` that `path` was touched now (in commands).
    fn stamp(&self, when: &Mutex<BTreeMap<String, u64>>, path: &str) {
        let now = self.counts.commands.load(Ordering::SeqCst);
        when.lock().expect("stamps").insert(path.to_owned(), now);
    }

    fn delivered(&self, path: &str) {
        self.stamp(&self.deliveries, path);
    }

    fn user_wrote(&self, path: &str) {
        self.stamp(&self.user_writes, path);
    }

    /// Whether a user's write to `path` now would fall between a rename onto it and the
    /// client's next command (the histories leave such writes out).
    pub fn in_rename_round_trip(&self, path: &str) -> bool {
        self.renaming.lock().expect("renaming").contains(path)
    }

    /// A user's write on the server side (not through a connection).
    pub fn user_write(&self, path: &str, data: Vec<u8>, mtime: i64) {
        self.user_wrote(path);
        let mut s = self.store();
        let mut d = parent(path).to_owned();
        while d != "/" {
            s.dirs.insert(d.clone());
            d = parent(&d).to_owned();
        }
        let id = s.id_at(path);
        s.files.insert(path.to_owned(), SimFile { data, mtime, id });
    }

    pub fn user_delete(&self, path: &str) -> bool {
        self.store().files.remove(path).is_some()
    }

    /// A user's rename on the server side: a file (over one already there), or a directory
    /// with everything under it (only to a name not taken).
    pub fn user_rename(&self, from: &str, to: &str) -> bool {
        let mut s = self.store();
        if let Some(file) = s.files.remove(from) {
            self.user_wrote(to);
            let mut d = parent(to).to_owned();
            while d != "/" {
                s.dirs.insert(d.clone());
                d = parent(&d).to_owned();
            }
            s.files.insert(to.to_owned(), file);
            return true;
        }
        if !s.dirs.contains(from) || s.dirs.contains(to) || s.files.contains_key(to) {
            return false;
        }
        for f in s.rename_dir(from, to) {
            self.user_wrote(&f);
        }
        true
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
                unique: if self.behaviour.list_only {
                    None
                } else {
                    FileId::of_fact(&format!("sim{}", f.id))
                },
            },
            None => Listed {
                name: name.to_owned(),
                kind: ListedKind::Dir,
                size: 0,
                mtime: Some(mtime(0)),
                unique: None,
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

struct SimConn {
    server: Arc<SimServer>,
    dead: bool,
    /// The path this connection last renamed a file onto, until its next command.
    renamed_onto: Option<String>,
    /// The last commands on this connection: (command, path, when).
    recent: std::collections::VecDeque<(&'static str, String, u64)>,
    /// When this connection last listed each directory.
    listed: BTreeMap<String, u64>,
}

/// An upload's hold on its file, on a server that lets one upload into a file at a time
/// (vsftpd's `lock_upload_files`); let go when dropped, as when the connection dies.
struct WriteLock {
    server: Arc<SimServer>,
    path: String,
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        self.server.writing.lock().expect("writing").remove(&self.path);
        self.server.written.notify_waiters();
    }
}

/// Waits for `path` to be free of other uploads where the server serializes them.
async fn lock_for_write(server: &Arc<SimServer>, path: &str) -> Option<WriteLock> {
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
    async fn before(&mut self, command: &'static str, path: &str) -> Result<Option<Fault>> {
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
    fn overwrites(&self, path: &str) {
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
    async fn after<T>(
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
    async fn receive(
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
    async fn stored(
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
    async fn retr(
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
