//! The journal's open intents (docs/design.md, "The journal"): every visible step is announced
//! here before it happens, and closed here with its result. The only code that opens or closes
//! an intent in the state store; it also keeps the ones this pass opened and has not closed,
//! which an attempt lost around its rename leaves for the next attempt to settle.

use std::collections::HashMap;
use std::sync::Mutex;

use super::recover::Settled;
use crate::error::Result;
use crate::path::RelPath;
use crate::reconcile::BaseEntry;
use crate::state::{Intent, State};

#[derive(Debug, Default)]
pub(crate) struct Intents {
    /// Opened by this pass and not closed yet, by path.
    open: Mutex<HashMap<RelPath, Intent>>,
}

impl Intents {
    /// The intents a killed pass left open, for settlement before the next pass plans.
    pub(crate) fn left_open(store: &State) -> Result<Vec<Intent>> {
        store.intents()
    }

    /// Journals `intent` before the change it announces becomes visible.
    pub(crate) fn open(&self, store: &State, intent: &Intent) -> Result<()> {
        store.intend(intent)?;
        if let Ok(mut open) = self.open.lock() {
            open.insert(intent.path.clone(), intent.clone());
        }
        Ok(())
    }

    /// Closes the intent at `path`: `done` recorded with it, or the intent only forgotten.
    pub(crate) fn close(&self, store: &State, path: &RelPath, done: Option<&BaseEntry>) -> Result<()> {
        store.close_intent(path, done)?;
        self.forget(path);
        Ok(())
    }

    /// Closes the intent at `path` as settlement found it.
    pub(crate) fn close_settled(&self, store: &State, path: &RelPath, settled: &Settled) -> Result<()> {
        match settled {
            Settled::Record(entry) => store.close_intent(path, Some(entry))?,
            Settled::Moved { from, carried } => {
                store.close_move_intent(from, path, |new, e| carried.contains(new).then_some(e))?
            }
            Settled::NotDone => store.close_intent(path, None)?,
        }
        self.forget(path);
        Ok(())
    }

    /// Closes the intent of a move found done: the rows the base held at `from` and under it go
    /// to their new names under `to`, each as `carry` says (`None` drops it).
    pub(crate) fn close_moved(
        &self,
        store: &State,
        from: &RelPath,
        to: &RelPath,
        carry: impl Fn(&RelPath, BaseEntry) -> Option<BaseEntry>,
    ) -> Result<()> {
        store.close_move_intent(from, to, carry)?;
        self.forget(to);
        Ok(())
    }

    /// The intent this pass opened at `path` and has not closed (an attempt lost its
    /// connection around the rename).
    pub(crate) fn still_open(&self, path: &RelPath) -> Option<Intent> {
        self.open.lock().ok().and_then(|o| o.get(path).cloned())
    }

    fn forget(&self, path: &RelPath) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(path);
        }
    }
}
