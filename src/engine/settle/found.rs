//! What a side holds at a move's target and under it, against what the rename should have put
//! there: how settlement tells the files a rename carried from ones a user made since.

use std::collections::BTreeMap;

use crate::config::Folder;
use crate::error::Result;
use crate::local::scan::entry_of;
use crate::path::RelPath;
use crate::reconcile::{Entry, Kind};
use crate::remote::Remote;
use crate::remote::listing::{listed_entry, same_remote};

/// What a move's target should hold at each path, as the renamed side showed it before the
/// rename (a rename keeps a file's size and time): settlement tells the files a rename carried
/// from ones a user made since, under either name, by these.
pub(crate) type Expected = BTreeMap<RelPath, Entry>;

/// What one side holds at a path and under it now.
pub(crate) type Found = BTreeMap<RelPath, Entry>;

/// Whether `found` holds at `path` what `expected` says: the same kind, and for a file the same
/// size and time.
pub(crate) fn holds(found: &Found, path: &RelPath, expected: &Entry) -> bool {
    found
        .get(path)
        .is_some_and(|n| n.kind == expected.kind && (n.kind == Kind::Dir || same_remote(n, expected)))
}

/// What `map` (a snapshot, a base) holds at `from` and under it, at its new name under `to`,
/// each as `as_seen` gives it.
pub(crate) fn expected_at<V>(
    map: &BTreeMap<RelPath, V>,
    from: &RelPath,
    to: &RelPath,
    as_seen: impl Fn(&V) -> Entry,
) -> Expected {
    from.subtree_of(map)
        .filter_map(|(p, v)| Some((p.rebased(from, to)?, as_seen(v))))
        .collect()
}

/// What the server holds at `to` and under it, by path relative to the folder, as listed: what
/// a rename there carried (each folder listed; names that cannot be paths, and part files, left
/// out).
/// A path of `expected` a listing left out is asked about on its own (servers under load
/// answer a listing with nothing in it): a row dropped for a file that is there would read as
/// new at the next pass, and a deletion of it would be undone.
pub(crate) async fn remote_subtree(
    conn: &mut dyn Remote,
    folder: &Folder,
    to: &RelPath,
    expected: &Expected,
) -> Result<Found> {
    let mut found = Found::new();
    let Some(top) = conn.stat(&to.to_remote(&folder.remote)).await? else {
        return Ok(found);
    };
    found.insert(to.clone(), listed_entry(&top));
    let mut dirs = Vec::new();
    if top.kind == crate::remote::listing::ListedKind::Dir {
        dirs.push(to.clone());
    }
    while let Some(dir) = dirs.pop() {
        for l in conn.list(&dir.to_remote(&folder.remote)).await? {
            let Ok(path) = dir.join(&l.name) else { continue };
            // Our part files and symlinks are no one's rows (the listing leaves them out too).
            if crate::local::is_part_name(&l.name) || l.kind == crate::remote::listing::ListedKind::Other {
                continue;
            }
            if l.kind == crate::remote::listing::ListedKind::Dir {
                dirs.push(path.clone());
            }
            found.insert(path, listed_entry(&l));
        }
    }
    let left_out: Vec<&RelPath> = expected.keys().filter(|p| !found.contains_key(*p)).collect();
    for path in left_out {
        if let Some(l) = conn.stat(&path.to_remote(&folder.remote)).await? {
            found.insert(path.clone(), listed_entry(&l));
        }
    }
    Ok(found)
}

/// What the local folder holds at `to` and under it, by path (symlinks not followed).
pub(crate) fn local_subtree(folder: &Folder, to: &RelPath) -> Found {
    let mut found = Found::new();
    let Ok(top) = std::fs::symlink_metadata(to.to_local(&folder.local)) else {
        return found;
    };
    found.insert(to.clone(), entry_of(&top));
    let mut dirs = Vec::new();
    if top.is_dir() {
        dirs.push(to.clone());
    }
    while let Some(dir) = dirs.pop() {
        let Ok(read) = std::fs::read_dir(dir.to_local(&folder.local)) else {
            continue;
        };
        for item in read.flatten() {
            let Some(name) = item.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Ok(path) = dir.join(&name) else { continue };
            // Our part files and symlinks are no one's rows (the scan leaves them out too).
            let Ok(meta) = item.metadata() else { continue };
            if crate::local::is_part_name(&name) || meta.file_type().is_symlink() {
                continue;
            }
            if meta.is_dir() {
                dirs.push(path.clone());
            }
            found.insert(path, entry_of(&meta));
        }
    }
    found
}
