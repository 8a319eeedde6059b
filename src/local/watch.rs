//! The notify adapter: local file events as the paths a pass should look at.
//!
//! Reads, opens, our own part files and ignored names are dropped here. A watcher that lost
//! events (a kernel queue overflow, a full channel) or failed says so with [`Change::Rescan`]:
//! the next pass must look at the whole folder.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::is_part_name;
use super::scan::Ignore;
use crate::path::RelPath;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Something at this path (a file or a directory with all under it) may have changed.
    Path(RelPath),
    /// Changes may have been missed: look at everything. The reason is for the log.
    Rescan(String),
}

/// A running recursive watcher; it stops when dropped.
pub struct Watch {
    _watcher: notify::RecommendedWatcher,
    changes: mpsc::Receiver<Change>,
    overflowed: Arc<AtomicBool>,
}

impl Watch {
    pub fn start(root: &Path, ignore: Ignore) -> notify::Result<Watch> {
        let (tx, changes) = mpsc::channel(8192);
        let overflowed = Arc::new(AtomicBool::new(false));
        let lost = overflowed.clone();
        // Event paths start with the path watched: one without symlinks or `..` to strip.
        let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        let root_owned = root.clone();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            for change in changes_of(&root_owned, &ignore, event) {
                if tx.try_send(change).is_err() {
                    lost.store(true, Ordering::Relaxed);
                }
            }
        })?;
        watcher.watch(&root, RecursiveMode::Recursive)?;
        Ok(Watch {
            _watcher: watcher,
            changes,
            overflowed,
        })
    }

    /// The next change; waits for one.
    pub async fn next(&mut self) -> Option<Change> {
        let change = self.changes.recv().await;
        if self.overflowed.swap(false, Ordering::Relaxed) {
            return Some(Change::Rescan(
                "more changes at once than the watcher queue holds".into(),
            ));
        }
        change
    }
}

/// What one notify event means for the next pass (nothing, for reads and our own files).
pub fn changes_of(root: &Path, ignore: &Ignore, event: notify::Result<notify::Event>) -> Vec<Change> {
    use notify::event::{AccessKind, AccessMode, EventKind};
    let event = match event {
        Ok(e) => e,
        Err(e) => return vec![Change::Rescan(format!("watcher error: {e}"))],
    };
    if event.need_rescan() {
        return vec![Change::Rescan("the system's watch queue overflowed".into())];
    }
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        // A pass's own scan opens every directory: reads are not changes.
        EventKind::Access(_) => return Vec::new(),
        _ => {}
    }
    event
        .paths
        .iter()
        .filter_map(|p| change_at(root, ignore, p))
        .collect()
}

fn change_at(root: &Path, ignore: &Ignore, path: &Path) -> Option<Change> {
    let rescan = || Some(Change::Rescan(format!("a change at {}", path.display())));
    let Ok(rel) = path.strip_prefix(root) else {
        return rescan();
    };
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            std::path::Component::Normal(n) => parts.push(n.to_str()?),
            _ => return rescan(),
        }
    }
    if parts.is_empty() {
        return rescan(); // the folder itself
    }
    // A name that cannot be synced stays out, as the scan leaves it out.
    let rel = RelPath::new(&parts.join("/")).ok()?;
    let ignored = std::iter::successors(Some(rel.clone()), RelPath::parent)
        .any(|a| is_part_name(a.name()) || ignore.skips(&a));
    (!ignored).then_some(Change::Path(rel))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use notify::event::{AccessKind, CreateKind, EventKind, Flag, ModifyKind, RenameMode};

    fn event(kind: EventKind, paths: &[&str]) -> notify::Result<notify::Event> {
        let mut e = notify::Event::new(kind);
        for p in paths {
            e = e.add_path(PathBuf::from(p));
        }
        Ok(e)
    }

    fn paths(changes: Vec<Change>) -> Vec<String> {
        changes
            .into_iter()
            .map(|c| match c {
                Change::Path(p) => p.as_str().to_owned(),
                Change::Rescan(_) => "<rescan>".to_owned(),
            })
            .collect()
    }

    #[test]
    fn events_become_paths_inside_the_folder() {
        let root = Path::new("/data/sync");
        let ignore = Ignore::new(&["*.tmp".into(), "cache/**".into()]).unwrap();
        let at = |kind, p: &[&str]| paths(changes_of(root, &ignore, event(kind, p)));
        assert_eq!(
            at(EventKind::Create(CreateKind::File), &["/data/sync/a/b.txt"]),
            vec!["a/b.txt"]
        );
        let rename = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert_eq!(
            at(rename, &["/data/sync/old", "/data/sync/d/new"]),
            vec!["old", "d/new"]
        );
        // Reads, our part files and ignored names are not changes.
        assert!(
            at(
                EventKind::Access(AccessKind::Open(notify::event::AccessMode::Any)),
                &["/data/sync/a"]
            )
            .is_empty()
        );
        assert!(at(EventKind::Any, &["/data/sync/.b.txt.ftps-sync.part"]).is_empty());
        assert!(at(EventKind::Any, &["/data/sync/x.tmp", "/data/sync/cache/y"]).is_empty());
        // The folder itself, or somewhere else: look at everything.
        assert_eq!(at(EventKind::Any, &["/data/sync"]), vec!["<rescan>"]);
        assert_eq!(at(EventKind::Any, &["/elsewhere/f"]), vec!["<rescan>"]);
    }

    #[test]
    fn overflow_and_errors_ask_for_a_rescan() {
        let root = Path::new("/data/sync");
        let ignore = Ignore::new(&[]).unwrap();
        let overflow = notify::Event::new(EventKind::Other).set_flag(Flag::Rescan);
        assert_eq!(paths(changes_of(root, &ignore, Ok(overflow))), vec!["<rescan>"]);
        let error = Err(notify::Error::generic("inotify died"));
        assert_eq!(paths(changes_of(root, &ignore, error)), vec!["<rescan>"]);
    }
}
