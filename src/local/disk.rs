//! The seam for what the engine changes in the local folder's names, and for what makes a
//! change durable (docs/design.md, "Durability"): renames, deletions, folders made, and the
//! fsyncs of files, folders and the state store. Every binary uses the real disk; the
//! simulation records what is not yet synced, to lose some of it at a power cut.
//!
//! The bytes of part files come through here too (`write_at`), so that the simulation can fail
//! a write part way, as a full disk does.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

pub trait Disk: Send + Sync {
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Makes one folder, in a parent that exists.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// fsync of `file` (at `path`): its bytes and size survive a power cut.
    fn sync_file(&self, file: &File, path: &Path) -> io::Result<()>;
    /// fsync of a folder: the names made, renamed or removed in it survive a power cut.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Writes all of `buf` into a part file at `offset`, without moving a cursor other writers
    /// of the file share; an error (a full disk) may come after some of it is written.
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        write_all_at(file, buf, offset)
    }
    /// The store at `store` is durable as it stands (the simulation keeps a copy of it).
    fn store_synced(&self, _store: &Path) {}

    /// fsync of the store's log (`log`, open for writing): every commit so far is durable.
    fn sync_store(&self, log: &File, store: &Path) -> io::Result<()> {
        log.sync_data()?;
        self.store_synced(store);
        Ok(())
    }

    /// Removes a file (`dir`: an empty folder) and syncs its folder: a deletion is recorded as
    /// in sync only once it is durable, or a power cut could bring back a file the base forgot.
    fn delete(&self, path: &Path, dir: bool) -> io::Result<()> {
        match dir {
            true => self.remove_dir(path)?,
            false => self.remove_file(path)?,
        }
        match path.parent() {
            Some(parent) => self.sync_dir(parent),
            None => Ok(()),
        }
    }

    /// Makes `path` and the parents it lacks, and syncs each folder from `path` up to `root`
    /// into its parent: a file renamed into a folder is durable only once the folder is, and a
    /// folder made by an earlier pass whose sync failed is there but maybe not durable.
    fn make_dirs(&self, path: &Path, root: &Path) -> io::Result<()> {
        let missing: Vec<&Path> = path
            .ancestors()
            .take_while(|a| std::fs::symlink_metadata(a).is_err())
            .collect();
        for dir in missing.into_iter().rev() {
            match self.create_dir(dir) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
        for dir in path.ancestors().take_while(|d| *d != root && d.starts_with(root)) {
            if let Some(parent) = dir.parent() {
                self.sync_dir(parent)?;
            }
        }
        Ok(())
    }
}

/// A shared disk: the real one unless the simulation gives its own.
#[derive(Clone)]
pub struct DiskRef(Arc<dyn Disk>);

impl DiskRef {
    pub fn new(disk: Arc<dyn Disk>) -> DiskRef {
        DiskRef(disk)
    }
}

impl Default for DiskRef {
    fn default() -> DiskRef {
        DiskRef(Arc::new(RealDisk))
    }
}

impl std::fmt::Debug for DiskRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DiskRef")
    }
}

impl std::ops::Deref for DiskRef {
    type Target = dyn Disk;

    fn deref(&self) -> &(dyn Disk + 'static) {
        &*self.0
    }
}

/// The operating system's file system.
pub struct RealDisk;

impl Disk for RealDisk {
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    fn sync_file(&self, file: &File, _path: &Path) -> io::Result<()> {
        file.sync_all()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        sync_dir(dir)
    }
}

/// fsync of a folder. Windows has none: there a rename is flushed with the file system's own
/// journal, and the rule rests on NTFS ordering its metadata (docs/design.md, "Durability").
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(windows)]
fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_write(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
