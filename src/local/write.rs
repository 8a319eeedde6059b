//! Atomic local writes: a file appears under its real name only complete (part file, fsync,
//! rename, fsync of the directory).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use super::disk::{Disk, RealDisk};
use super::part_name;
use crate::error::{Error, Result};
use crate::reconcile::Mtime;

/// The part file that stands in for `target` while it is being written.
pub fn part_path(target: &Path) -> PathBuf {
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    target.with_file_name(part_name(name))
}

/// What failing to sync a folder after a rename is called: the rename happened, but may not
/// survive a power cut (its intent stays open for the next pass to settle).
pub const SYNC_FOLDER: &str = "sync the folder of";

/// Whether `e` says a rename was made but its folder's sync failed: its intent stays open.
pub fn renamed_not_durable(e: &Error) -> bool {
    matches!(e, Error::Local { op: SYNC_FOLDER, .. })
}

/// Makes a fully written, synced part file visible under its real name, durably.
pub fn commit(disk: &dyn Disk, part: &Path, target: &Path) -> Result<()> {
    disk.rename(part, target)
        .map_err(Error::local("rename", target))?;
    disk.sync_dir(target.parent().unwrap_or(Path::new(".")))
        .map_err(Error::local(SYNC_FOLDER, target))
}

/// What tells a folder from another made later under the same name (device, inode and
/// creation time; the creation time alone where there are no inodes), or `None` where the file
/// system cannot tell: it hands a folder made again the inode the deleted one freed, often at
/// once, and only a creation time tells them apart.
pub fn folder_identity(dir: &Path) -> Option<String> {
    let meta = fs::symlink_metadata(dir).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let born = meta.created().ok()?.duration_since(UNIX_EPOCH).ok()?;
        Some(format!("{}:{}:{}", meta.dev(), meta.ino(), born.as_nanos()))
    }
    #[cfg(not(unix))]
    {
        let born = meta.created().ok()?.duration_since(UNIX_EPOCH).ok()?;
        Some(format!("created:{}", born.as_nanos()))
    }
}

pub fn set_mtime(file: &fs::File, mtime: Mtime) -> std::io::Result<()> {
    let t = if mtime.nanos >= 0 {
        UNIX_EPOCH + Duration::from_nanos(mtime.nanos as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(mtime.nanos.unsigned_abs())
    };
    file.set_modified(t)
}

/// Writes a small file (a unit, a config) whole: part file, fsync, rename.
pub fn write_atomically(target: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let part = part_path(target);
    let mut f = fs::File::create(&part).map_err(Error::local("create", &part))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(Error::local("write", &part))?;
    commit(&RealDisk, &part, target)
}

/// Refuses a local path whose directory resolves outside the sync root (a symlinked
/// directory inside the folder), so nothing is ever written through it. `real_root` is the
/// root with its symlinks resolved (once per pass: `Shared::local_real`).
pub fn check_inside(real_root: &Path, target: &Path) -> Result<()> {
    let mut dir = target.parent().map(Path::to_path_buf);
    // The nearest existing ancestor decides.
    while let Some(d) = dir {
        if d.exists() {
            return match d.canonicalize() {
                Ok(d) if d.starts_with(real_root) => Ok(()),
                _ => Err(Error::UnsafeName {
                    name: target.display().to_string(),
                    reason: "its directory resolves outside the sync folder (a symlink?)",
                }),
            };
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    Ok(())
}
