//! The simulation's local disk: the real temp folder, and what a power cut may take back.
//!
//! It records what the engine changes through `local::disk` that is not yet durable: the
//! names made, renamed and removed in a folder until that folder is synced (a rename across
//! folders until both are), and the bytes of the files the engine made until they are synced.
//! A power cut keeps, in each folder, a random prefix of its unsynced changes (a journaling
//! file system commits a folder's changes in order) and undoes the rest, last first, with
//! every later change to the same names; it keeps or cuts short each file whose bytes are not
//! synced (ext4's `data=ordered`: a shorter file, never foreign bytes); and it puts the state
//! store back as it was at its last synced commit.
//!
//! While the server's faults are on, one disk call in a hundred fails as a disk can (`EIO`, a
//! full disk, a refused permission), and does nothing; a failed sync syncs nothing; a failed
//! write into a part file writes some of its bytes first.
//!
//! A user's changes are durable (their programs sync them): one makes everything before it in
//! its folders durable too. A dead process changes nothing more: the tasks of a crashed pass
//! that run on to their next server point find the disk refusing them.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use ftps_sync::local::disk::Disk;

use super::{Rng, SimServer};

/// A file's bytes and time, to put back.
#[derive(Clone)]
struct Held {
    bytes: Vec<u8>,
    modified: Option<SystemTime>,
}

fn hold(path: &Path) -> Option<Held> {
    let meta = std::fs::symlink_metadata(path).ok().filter(|m| m.is_file())?;
    Some(Held {
        bytes: std::fs::read(path).ok()?,
        modified: meta.modified().ok(),
    })
}

fn put_back(path: &Path, held: &Held) -> io::Result<()> {
    std::fs::write(path, &held.bytes)?;
    if let Some(t) = held.modified {
        File::options().write(true).open(path)?.set_modified(t)?;
    }
    Ok(())
}

enum Change {
    /// `replaced`: what was at `to` before, and its durable bytes if the engine made it.
    Rename {
        from: PathBuf,
        to: PathBuf,
        replaced: Option<Held>,
        made: Vec<(PathBuf, Option<Vec<u8>>)>,
    },
    Remove {
        path: PathBuf,
        held: Option<Held>,
        made: Option<Option<Vec<u8>>>,
    },
    MkDir(PathBuf),
    RmDir(PathBuf),
}

impl Change {
    fn paths(&self) -> Vec<&Path> {
        match self {
            Change::Rename { from, to, .. } => vec![from, to],
            Change::Remove { path, .. } | Change::MkDir(path) | Change::RmDir(path) => vec![path],
        }
    }

    fn dirs(&self) -> Vec<PathBuf> {
        self.paths()
            .into_iter()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect()
    }

    fn touches(&self, other: &Change) -> bool {
        self.paths()
            .iter()
            .any(|p| other.paths().iter().any(|q| p.starts_with(q) || q.starts_with(p)))
    }
}

#[derive(Default)]
struct Unsynced {
    changes: Vec<Change>,
    /// Per folder: its changes before this index are durable.
    synced: HashMap<PathBuf, usize>,
    /// The files the engine made, by where they are now: their durable bytes (`None`: never
    /// synced).
    made: HashMap<PathBuf, Option<Vec<u8>>>,
    /// The store's files at its last synced commit (`None` for a file that was not there).
    store: Option<Vec<(PathBuf, Option<Vec<u8>>)>>,
}

/// What a power cut took back.
#[derive(Default, Debug)]
pub(super) struct Cut {
    pub undone: usize,
    pub cut_short: usize,
    pub store_torn: bool,
}

pub(super) struct SimDisk {
    unsynced: Mutex<Unsynced>,
    /// This pass's local faults (`reseed`).
    rng: Mutex<Rng>,
    /// The local faults injected, over the run.
    pub(super) faults: std::sync::atomic::AtomicU64,
    /// Whose crash is the process's death: it syncs nothing more.
    server: Arc<SimServer>,
    store: PathBuf,
}

impl SimDisk {
    pub(super) fn new(store: PathBuf, server: Arc<SimServer>) -> SimDisk {
        SimDisk {
            unsynced: Mutex::new(Unsynced::default()),
            rng: Mutex::new(Rng(1)),
            faults: Default::default(),
            server,
            store,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Unsynced) -> T) -> T {
        f(&mut self.unsynced.lock().expect("disk"))
    }

    /// Draws this pass's local faults from `seed`, apart from the server's.
    pub(super) fn reseed(&self, seed: u64) {
        *self.rng.lock().expect("rng") = Rng((seed ^ 0xD15C_FA17) | 1);
    }

    /// Refuses a change the dead process would make; fails one call in a hundred while faults
    /// are on, as a disk can.
    fn alive(&self) -> io::Result<()> {
        if self.server.stops.crashed.load(Ordering::SeqCst) {
            return Err(io::Error::other("the process is dead"));
        }
        if !self.server.faults_on.load(Ordering::SeqCst) || self.server.behaviour.fault_per_mille == 0 {
            return Ok(());
        }
        let mut rng = self.rng.lock().expect("rng");
        if rng.below(100) != 0 {
            return Ok(());
        }
        self.faults.fetch_add(1, Ordering::Relaxed);
        // EIO, ENOSPC, EACCES.
        Err(io::Error::from_raw_os_error([5, 28, 13][rng.below(3) as usize]))
    }

    /// A user changed `paths` (files or folders): durable, with all before them in their
    /// folders, and every change of the engine's at or under them.
    pub(super) fn user_changed(&self, paths: &[PathBuf]) {
        self.with(|u| {
            let n = u.changes.len();
            let mut dirs: Vec<PathBuf> = Vec::new();
            for p in paths {
                dirs.extend(p.ancestors().skip(1).map(Path::to_path_buf));
                for c in &u.changes {
                    if c.paths().iter().any(|q| q.starts_with(p) || p.starts_with(q)) {
                        dirs.extend(c.dirs());
                    }
                }
                u.made.retain(|m, _| !m.starts_with(p));
            }
            for d in dirs {
                u.synced.insert(d, n);
            }
        });
    }

    /// The power is cut: what was not durable is kept or lost at random, and the store goes back
    /// to its last synced commit; with `tear`, a write the cut tore leaves its first page
    /// garbage (`Cut::store_torn`), which SQLite reads as no database.
    pub(super) fn power_cut(&self, rng: &mut Rng, local: &Path, tear: bool) -> io::Result<Cut> {
        let mut u = self.unsynced.lock().expect("disk");
        let n = u.changes.len();
        // In each folder, the unsynced changes kept are a prefix.
        let mut keep_before: HashMap<PathBuf, usize> = HashMap::new();
        let mut pending: HashMap<PathBuf, Vec<usize>> = HashMap::new();
        for (i, c) in u.changes.iter().enumerate() {
            for d in c.dirs() {
                if i >= u.synced.get(&d).copied().unwrap_or(0) {
                    pending.entry(d).or_default().push(i);
                }
            }
        }
        let mut dirs: Vec<_> = pending.into_iter().collect();
        dirs.sort();
        for (d, idx) in dirs {
            let kept = rng.below(idx.len() as u64 + 1) as usize;
            keep_before.insert(d, idx.get(kept).copied().unwrap_or(n));
        }
        // What a sync made durable stays, and so does every earlier change it rests on: one in
        // its folders (a folder's changes commit in order), and one inside a folder it renamed
        // (a journal commits them in order). Without that, a folder's rename synced after a
        // part file in it was removed went with the removal (seed 12686892065835139898).
        let synced_past =
            |i: usize, c: &Change| c.dirs().iter().all(|d| i < u.synced.get(d).copied().unwrap_or(0));
        let mut kept: Vec<bool> = u
            .changes
            .iter()
            .enumerate()
            .map(|(i, c)| synced_past(i, c))
            .collect();
        for i in (0..n).rev() {
            if !kept[i] {
                continue;
            }
            let c = &u.changes[i];
            for (k, e) in kept.iter_mut().zip(&u.changes).take(i) {
                *k |= e.touches(c) || e.dirs().iter().any(|d| c.dirs().contains(d));
            }
        }
        let mut lost = vec![false; n];
        for i in 0..n {
            let c = &u.changes[i];
            lost[i] = !kept[i]
                && (c
                    .dirs()
                    .iter()
                    .any(|d| keep_before.get(d).is_some_and(|k| i >= *k))
                    || (0..i).any(|j| lost[j] && u.changes[j].touches(c)));
        }
        let mut cut = Cut::default();
        let changes = std::mem::take(&mut u.changes);
        for (c, _) in changes.into_iter().zip(lost).rev().filter(|(_, l)| *l) {
            cut.undone += 1;
            undo(&mut u, c)?;
        }
        // Bytes not synced: kept, or cut short.
        let mut files = u
            .made
            .iter()
            .map(|(p, d)| (p.clone(), d.clone()))
            .collect::<Vec<_>>();
        for p in crate::support::part_files(local).into_iter().map(PathBuf::from) {
            if !u.made.contains_key(&p) {
                files.push((p, None));
            }
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        for (p, durable) in files {
            let Some(now) = hold(&p) else { continue };
            if durable.as_ref() == Some(&now.bytes) || rng.below(2) == 0 {
                continue;
            }
            let bytes = match durable {
                Some(b) if now.bytes.starts_with(&b) => {
                    let extra = rng.below((now.bytes.len() - b.len()) as u64 + 1) as usize;
                    now.bytes[..b.len() + extra].to_vec()
                }
                Some(b) => b,
                None => now.bytes[..rng.below(now.bytes.len() as u64 + 1) as usize].to_vec(),
            };
            cut.cut_short += 1;
            put_back(
                &p,
                &Held {
                    bytes,
                    modified: now.modified,
                },
            )?;
        }
        u.synced.clear();
        u.made.clear();
        // The store as at its last synced commit; none if it never had one.
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(with_suffix(&self.store, suffix));
        }
        for (p, bytes) in u.store.iter().flatten() {
            if let Some(b) = bytes {
                std::fs::write(p, b)?;
            }
        }
        if tear && let Ok(mut page) = std::fs::read(&self.store) {
            for (i, b) in page.iter_mut().take(512).enumerate() {
                *b = (i as u8).wrapping_mul(151).wrapping_add(rng.below(256) as u8);
            }
            std::fs::write(&self.store, page)?;
            cut.store_torn = true;
        }
        Ok(cut)
    }
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn undo(u: &mut Unsynced, c: Change) -> io::Result<()> {
    match c {
        Change::Rename {
            from,
            to,
            replaced,
            made,
        } => {
            if std::fs::symlink_metadata(&to).is_ok() {
                std::fs::rename(&to, &from)?;
            }
            let moved: Vec<_> = u.made.keys().filter(|p| p.starts_with(&to)).cloned().collect();
            for p in moved {
                if let (Some(d), Ok(rest)) = (u.made.remove(&p), p.strip_prefix(&to)) {
                    u.made.insert(from.join(rest), d);
                }
            }
            if let Some(held) = replaced {
                put_back(&to, &held)?;
            }
            u.made.extend(made);
        }
        Change::Remove { path, held, made } => {
            if let Some(held) = held {
                put_back(&path, &held)?;
            }
            if let Some(d) = made {
                u.made.insert(path, d);
            }
        }
        Change::MkDir(path) => {
            let _ = std::fs::remove_dir_all(&path);
        }
        Change::RmDir(path) => {
            let _ = std::fs::create_dir(&path);
        }
    }
    Ok(())
}

impl Disk for SimDisk {
    /// A write that fails (`alive`) stops part way, as a disk that fills up under it does: some
    /// of the bytes are there, then the error.
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        if let Err(e) = self.alive() {
            if !self.server.stops.crashed.load(Ordering::SeqCst) {
                let written = self.rng.lock().expect("rng").below(buf.len() as u64 + 1) as usize;
                file.write_all_at(&buf[..written], offset)?;
            }
            return Err(e);
        }
        file.write_all_at(buf, offset)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.alive()?;
        let replaced = hold(to);
        std::fs::rename(from, to)?;
        self.with(|u| {
            let mut made: Vec<_> = u
                .made
                .keys()
                .filter(|p| p.starts_with(to))
                .cloned()
                .collect::<Vec<_>>()
                .into_iter()
                .filter_map(|p| u.made.remove(&p).map(|d| (p, d)))
                .collect();
            made.sort_by(|a, b| a.0.cmp(&b.0));
            let moving: Vec<_> = u.made.keys().filter(|p| p.starts_with(from)).cloned().collect();
            for p in moving {
                if let (Some(d), Ok(rest)) = (u.made.remove(&p), p.strip_prefix(from)) {
                    u.made.insert(to.join(rest), d);
                }
            }
            // A part file the engine wrote and never synced is all unsynced bytes.
            let part = from
                .file_name()
                .is_some_and(|n| ftps_sync::local::is_part_name(&n.to_string_lossy()));
            if part && !u.made.contains_key(to) {
                u.made.insert(to.to_owned(), None);
            }
            u.changes.push(Change::Rename {
                from: from.to_owned(),
                to: to.to_owned(),
                replaced,
                made,
            });
        });
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.alive()?;
        let held = hold(path);
        std::fs::remove_file(path)?;
        self.with(|u| {
            let made = u.made.remove(path);
            u.changes.push(Change::Remove {
                path: path.to_owned(),
                held,
                made,
            });
        });
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.alive()?;
        std::fs::remove_dir(path)?;
        self.with(|u| u.changes.push(Change::RmDir(path.to_owned())));
        Ok(())
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.alive()?;
        std::fs::create_dir(path)?;
        self.with(|u| u.changes.push(Change::MkDir(path.to_owned())));
        Ok(())
    }

    fn sync_file(&self, file: &File, path: &Path) -> io::Result<()> {
        self.alive()?;
        file.sync_all()?;
        let bytes = std::fs::read(path)?;
        self.with(|u| u.made.insert(path.to_owned(), Some(bytes)));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.alive()?;
        self.with(|u| {
            let n = u.changes.len();
            u.synced.insert(dir.to_owned(), n);
        });
        Ok(())
    }

    fn sync_store(&self, log: &File, store: &Path) -> io::Result<()> {
        self.alive()?;
        log.sync_data()?;
        self.store_synced(store);
        Ok(())
    }

    fn store_synced(&self, store: &Path) {
        if self.server.stops.crashed.load(Ordering::SeqCst) {
            return;
        }
        let files = ["", "-wal"]
            .iter()
            .map(|s| {
                let p = with_suffix(store, s);
                let bytes = std::fs::read(&p).ok();
                (p, bytes)
            })
            .collect();
        self.with(|u| u.store = Some(files));
    }
}
