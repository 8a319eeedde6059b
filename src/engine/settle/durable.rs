//! Group commit (docs/design.md, "Durability"): an intent is committed on its own, then waits
//! until the store's log is synced past it. The first task to wait syncs the log for every
//! intent committed by then; those that committed meanwhile find it done, or sync once more for
//! the ones after. A lone intent syncs at once: nothing waits on a timer for company.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::local::disk::DiskRef;
use crate::state::State;

pub(crate) struct GroupSync {
    store: PathBuf,
    log: PathBuf,
    disk: DiskRef,
    /// Intents committed so far (each takes the next number once its commit is written).
    committed: AtomicU64,
    synced: tokio::sync::Mutex<Synced>,
}

#[derive(Default)]
struct Synced {
    /// The intents on disk: those numbered up to this.
    upto: u64,
    /// Why a sync failed. Every intent after it fails too: after a failed fsync the cache may
    /// have dropped the pages it could not write, and a second fsync can succeed over them.
    failed: Option<String>,
}

impl GroupSync {
    pub(crate) fn new(state: &State, disk: DiskRef) -> GroupSync {
        let (store, log) = state.files();
        GroupSync {
            store: store.to_owned(),
            log,
            disk,
            committed: AtomicU64::new(0),
            synced: Default::default(),
        }
    }

    /// The number of a commit just written that must be on disk before a later step (an
    /// intent, under the store's lock; or every commit so far).
    pub(crate) fn committed(&self) -> u64 {
        self.committed.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Returns once every commit so far is on disk: an intent closed as not done must be, before
    /// its part file goes (a settlement that found the part file gone would read the rename as
    /// made).
    pub(crate) async fn all_so_far(&self) -> Result<()> {
        self.reached(self.committed()).await
    }

    /// Returns once intent number `n` is on disk.
    pub(crate) async fn reached(&self, n: u64) -> Result<()> {
        let mut synced = self.synced.lock().await;
        if let Some(why) = &synced.failed {
            return Err(self.failed(std::io::Error::other(why.clone())));
        }
        if synced.upto >= n {
            return Ok(());
        }
        let upto = self.committed.load(Ordering::SeqCst);
        let (disk, log, store) = (self.disk.clone(), self.log.clone(), self.store.clone());
        let sync = crate::local::io::blocking("sync", move || {
            let file = std::fs::OpenOptions::new().write(true).open(&log)?;
            disk.sync_store(&file, &store)
        });
        match sync.await? {
            Ok(()) => {
                synced.upto = upto;
                Ok(())
            }
            Err(e) => {
                synced.failed = Some(e.to_string());
                Err(self.failed(e))
            }
        }
    }

    fn failed(&self, source: std::io::Error) -> Error {
        Error::Local {
            op: "sync the state store's log",
            path: self.log.clone(),
            source,
        }
    }
}
