//! The simulated FTPS server: an in-memory tree behind `trait Remote`, with seeded faults the way
//! real servers and networks produce them. What it stores survives a client crash; a fault
//! never corrupts what it stores (a lying server is in the faults, not in the store).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ftps_sync::reconcile::{FileId, Mtime, Precision};
use ftps_sync::remote::listing::{Listed, ListedKind};

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
    pub(super) fn rename_dir(&mut self, from: &str, to: &str) -> Vec<String> {
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
    pub(super) fn file_for_write(&mut self, path: &str, now: i64) -> &mut SimFile {
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
    pub(super) fn id_at(&mut self, path: &str) -> u64 {
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
    pub(super) rng: Mutex<Rng>,
    /// The server's clock, in seconds; the history moves it.
    pub clock: AtomicU64,
    /// Faults a test orders: the next command of that name gets the fault, in order.
    pub(super) script: Mutex<std::collections::VecDeque<(&'static str, Fault)>>,
    /// Where the pass that runs stops: see `point`.
    pub stops: Stops,
    /// When (in commands) a user last wrote each path.
    pub(super) user_writes: Mutex<BTreeMap<String, u64>>,
    /// Versions a user wrote in the one round trip between the client's last look at a path and
    /// its rename over it (or deletion of it): FTP has no rename-if-unchanged, so no client can
    /// keep them. The histories count them apart.
    pub window_losses: Mutex<Vec<Vec<u8>>>,
    /// When (in commands) the client last read each path (RETR) or renamed a file onto it:
    /// the moments a version can have crossed to the other side.
    pub(super) deliveries: Mutex<BTreeMap<String, u64>>,
    /// Paths a connection renamed a file onto and has sent no command since: a user's write
    /// there would land between the rename and the client's next look, which nothing can see.
    pub(super) renaming: Mutex<BTreeSet<String>>,
    /// Paths an upload is writing now, where uploads into one file wait their turn
    /// (`WritesAt::Serializes`), and the signal that one ended.
    pub(super) writing: Mutex<BTreeSet<String>>,
    pub(super) written: tokio::sync::Notify,
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
    pub(super) next: AtomicU64,
    pub(super) at: Mutex<BTreeMap<u64, Stop>>,
    pub crashed: AtomicBool,
    /// The points the pass waits at (tasks run on, so there may be several), while the users act.
    pub paused: Mutex<Vec<u64>>,
    pub(super) release: tokio::sync::Notify,
    /// The one who drives the pass, woken when it crashes or pauses.
    pub(super) driver: Mutex<Option<std::task::Waker>>,
}

impl Stops {
    /// A new pass, stopping at these points.
    pub fn plan(&self, at: BTreeMap<u64, Stop>) {
        self.next.store(0, Ordering::SeqCst);
        *self.at.lock().expect("stops") = at;
        self.crashed.store(false, Ordering::SeqCst);
    }

    /// Stops no more (the points not reached are not left for the next pass); a crash stays a
    /// crash until `revive`, so nothing of the dead pass moves again while it is taken away.
    pub fn unplan(&self) {
        self.at.lock().expect("stops").clear();
    }

    /// After a crash, once the dead pass is gone: the next one may run.
    pub fn revive(&self) {
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

    pub(super) fn wake_driver(&self) {
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
pub(super) const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub(super) fn parent(path: &str) -> &str {
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
    pub(super) async fn point(&self) {
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

    pub(super) fn store(&self) -> std::sync::MutexGuard<'_, Store> {
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

    pub(super) fn fault(&self, op: &'static str, path: &str) -> Option<Fault> {
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
    pub(super) fn stamp(&self, when: &Mutex<BTreeMap<String, u64>>, path: &str) {
        let now = self.counts.commands.load(Ordering::SeqCst);
        when.lock().expect("stamps").insert(path.to_owned(), now);
    }

    pub(super) fn delivered(&self, path: &str) {
        self.stamp(&self.deliveries, path);
    }

    pub(super) fn user_wrote(&self, path: &str) {
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

    pub(super) fn listed(&self, name: &str, file: Option<&SimFile>) -> Listed {
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
