//! Walks a local folder into a `Snapshot`.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::is_part_name;
use crate::digest::Hashers;
use crate::error::{Error, Result};
use crate::path::RelPath;
use crate::reconcile::{Base, Entry, Mtime, Precision, Snapshot};

/// The folder's `ignore` patterns. A pattern without `/` matches a name at any depth
/// (`*.tmp`); one with `/` matches the path from the folder root (`build/**`).
#[derive(Debug, Clone)]
pub struct Ignore {
    names: GlobSet,
    paths: GlobSet,
}

impl Ignore {
    pub fn new(patterns: &[String]) -> Result<Ignore> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        for p in patterns {
            let glob = GlobBuilder::new(p.trim_start_matches('/'))
                .literal_separator(true)
                .build()
                .map_err(|e| Error::Usage(format!("bad ignore pattern {p:?}: {e}")))?;
            if p.contains('/') {
                paths.add(glob);
            } else {
                names.add(glob);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| Error::Usage(format!("ignore patterns: {e}")))
        };
        Ok(Ignore {
            names: build(names)?,
            paths: build(paths)?,
        })
    }

    /// Whether `path` or a folder above it matches a pattern (what a scan or a listing leaves
    /// out).
    pub fn hides(&self, path: &RelPath) -> bool {
        let s = path.as_str();
        s.match_indices('/').map(|(i, _)| &s[..i]).chain([s]).any(|p| {
            let name = p.rsplit('/').next().unwrap_or(p);
            self.names.is_match(name) || self.paths.is_match(p)
        })
    }

    /// Whether `path` is ours (a part file) or ignored by the user.
    pub fn skips(&self, path: &RelPath) -> bool {
        is_part_name(path.name()) || self.names.is_match(path.name()) || self.paths.is_match(path.as_str())
    }
}

pub fn mtime_of(meta: &fs::Metadata) -> Mtime {
    let nanos = meta
        .modified()
        .ok()
        .and_then(|t| match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).ok(),
            Err(e) => i64::try_from(e.duration().as_nanos()).ok().map(|n| -n),
        })
        .unwrap_or(0);
    Mtime::new(nanos, Precision::Nanos)
}

pub fn entry_of(meta: &fs::Metadata) -> Entry {
    if meta.is_dir() {
        Entry::dir(mtime_of(meta))
    } else {
        Entry::file(meta.len(), mtime_of(meta)).with_id(inode_of(meta))
    }
}

/// A local file's inode, the hint that pairs a vanished path with a renamed one.
#[cfg(unix)]
fn inode_of(meta: &fs::Metadata) -> Option<crate::reconcile::FileId> {
    use std::os::unix::fs::MetadataExt;
    crate::reconcile::FileId::new(meta.ino())
}

/// Windows gives a file index only through an open handle: no hint, content alone decides.
#[cfg(not(unix))]
fn inode_of(_meta: &fs::Metadata) -> Option<crate::reconcile::FileId> {
    None
}

/// SHA-256 of a local file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    Ok(digest_file(path, None)?.sha256)
}

/// The SHA-256 of a local file, and `also` (a server's hash algorithm) alongside.
pub fn digest_file(path: &Path, also: Option<crate::digest::HashAlgo>) -> Result<crate::digest::Digests> {
    let mut f = fs::File::open(path).map_err(Error::local("read", path))?;
    let mut h = Hashers::new(also);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(Error::local("read", path))?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

/// What a scan found besides the snapshot.
#[derive(Debug, Default)]
pub struct ScanReport {
    pub snapshot: Snapshot,
    /// Our own leftover part files from an interrupted pass.
    pub part_files: Vec<PathBuf>,
    /// Names that cannot be synced (line breaks, backslashes, not UTF-8), with why.
    pub unsafe_names: Vec<(PathBuf, String)>,
    /// The snapshot's entries as found, made into the snapshot at the end: a tree built at
    /// once is packed (see `reconcile::Snapshot`), one grown by inserts half empty.
    found: Vec<(RelPath, crate::reconcile::Entry)>,
}

impl ScanReport {
    fn finish(mut self) -> ScanReport {
        self.snapshot = std::mem::take(&mut self.found).into_iter().collect();
        self
    }
}

/// Walks `root`. A file's SHA-256 is computed only when its size or mtime moved since `base`,
/// to tell an edit from a touch. Symlinks are not followed and not synced.
pub fn scan(root: &Path, ignore: &Ignore, base: &Base) -> Result<ScanReport> {
    let mut report = ScanReport::default();
    walk(&mut report, vec![(root.to_owned(), None)], ignore, base)?;
    Ok(report.finish())
}

/// Like [`scan`], but only `subtrees` of `root`: each path (a file, a directory with all under
/// it, or nothing if it is gone). Paths whose name or an ancestor's is ignored are left out.
pub fn scan_subtrees(root: &Path, subtrees: &[RelPath], ignore: &Ignore, base: &Base) -> Result<ScanReport> {
    let mut report = ScanReport::default();
    for path in subtrees {
        let mut ancestors = std::iter::successors(Some(path.clone()), RelPath::parent);
        if ancestors.any(|a| ignore.skips(&a)) {
            continue;
        }
        let full = path.to_local(root);
        let meta = match fs::symlink_metadata(&full) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::local("stat", &full)(e)),
        };
        add(&mut report, &full, path, &meta, base)?;
        if meta.is_dir() {
            walk(&mut report, vec![(full, Some(path.clone()))], ignore, base)?;
        }
    }
    Ok(report.finish())
}

/// Walks the directories on `stack` (local path, relative path) and everything under them.
fn walk(
    report: &mut ScanReport,
    mut stack: Vec<(PathBuf, Option<RelPath>)>,
    ignore: &Ignore,
    base: &Base,
) -> Result<()> {
    while let Some((dir, rel)) = stack.pop() {
        let read = fs::read_dir(&dir).map_err(Error::local("list", &dir))?;
        for item in read {
            let item = item.map_err(Error::local("list", &dir))?;
            let full = item.path();
            let name = item.file_name();
            let Some(name) = name.to_str() else {
                report.unsafe_names.push((full, "name is not UTF-8".into()));
                continue;
            };
            let path = match RelPath::child(rel.as_ref(), name) {
                Ok(p) => p,
                Err(e) => {
                    report.unsafe_names.push((full, e.to_string()));
                    continue;
                }
            };
            if super::is_part_name(name) {
                report.part_files.push(full);
                continue;
            }
            if ignore.skips(&path) {
                continue;
            }
            let meta = fs::symlink_metadata(&full).map_err(Error::local("stat", &full))?;
            if add(report, &full, &path, &meta, base)? {
                stack.push((full, Some(path)));
            }
        }
    }
    Ok(())
}

/// Puts one file or directory into the snapshot; `true` for a directory to walk into.
fn add(
    report: &mut ScanReport,
    full: &Path,
    path: &RelPath,
    meta: &fs::Metadata,
    base: &Base,
) -> Result<bool> {
    if meta.file_type().is_symlink() {
        tracing::debug!(path = %full.display(), "symlink not synced");
        return Ok(false);
    }
    if meta.is_dir() {
        report.found.push((path.clone(), entry_of(meta)));
        return Ok(true);
    }
    if meta.is_file() {
        let mut entry = entry_of(meta);
        if let Some(b) = base.get(path)
            && b.local.size == entry.size
            && b.local.mtime != entry.mtime
        {
            entry.sha256 = Some(sha256_file(full)?);
        }
        report.found.push((path.clone(), entry));
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_skips_parts_ignored_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/f.txt"), b"hello").unwrap();
        fs::write(root.join("x.tmp"), b"tmp").unwrap();
        fs::write(root.join(".f.txt.ftps-sync.part"), b"part").unwrap();
        fs::create_dir_all(root.join("build/out")).unwrap();
        fs::write(root.join("build/out/o"), b"o").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
        let ignore = Ignore::new(&["*.tmp".into(), "build/**".into()]).unwrap();
        let r = scan(root, &ignore, &Base::new()).unwrap();
        let keys: Vec<&str> = r.snapshot.keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, vec!["a", "a/b", "a/b/f.txt", "build"]);
        assert_eq!(r.part_files.len(), 1);
        assert_eq!(r.snapshot[&RelPath::new("a/b/f.txt").unwrap()].size, 5);
    }

    #[test]
    fn scan_subtrees_takes_only_the_paths_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::create_dir_all(root.join("c")).unwrap();
        fs::write(root.join("a/b/f.txt"), b"hello").unwrap();
        fs::write(root.join("c/g.txt"), b"g").unwrap();
        fs::write(root.join("c/h.tmp"), b"h").unwrap();
        fs::write(root.join("top.txt"), b"t").unwrap();
        let ignore = Ignore::new(&["*.tmp".into()]).unwrap();
        let asked: Vec<RelPath> = ["a", "c/g.txt", "c/h.tmp", "gone.txt"]
            .iter()
            .map(|p| RelPath::new(p).unwrap())
            .collect();
        let r = scan_subtrees(root, &asked, &ignore, &Base::new()).unwrap();
        let keys: Vec<&str> = r.snapshot.keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, vec!["a", "a/b", "a/b/f.txt", "c/g.txt"]);
    }
}
