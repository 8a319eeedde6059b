//! How finely the local file system keeps a file's modification time, for the racy-time rule
//! (docs/design.md, "Racy times"): a time recorded within this of the moment it was recorded
//! proves nothing about a same-size write after it.

use std::path::Path;
use std::time::Duration;

/// FAT and exFAT keep times to two seconds.
const FAT: Duration = Duration::from_secs(2);
/// Elsewhere a time is the kernel's coarse clock at the write: a tick of 1 to 10 ms (Linux's
/// `HZ`), coarser than the nanoseconds it is shown in.
const TICK: Duration = Duration::from_millis(10);

/// The precision of the file system `root` is on.
pub fn of(root: &Path) -> Duration {
    if on_fat(root) { FAT } else { TICK }
}

#[cfg(target_os = "linux")]
fn on_fat(root: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    const MSDOS_SUPER_MAGIC: i64 = 0x4d44;
    const EXFAT_SUPER_MAGIC: i64 = 0x2011_bab0;
    let Ok(path) = std::ffi::CString::new(root.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `path` is a valid C string and `stat` a local the call fills.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut stat) } != 0 {
        return false;
    }
    matches!(stat.f_type as i64, MSDOS_SUPER_MAGIC | EXFAT_SUPER_MAGIC)
}

// Elsewhere the file system's type is not looked at, so it may be FAT: the coarser precision
// costs a re-read of the files written in the two seconds before a pass, where the finer one
// could miss a same-size edit.
#[cfg(not(target_os = "linux"))]
fn on_fat(_: &Path) -> bool {
    true
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn a_temp_folder_is_no_fat() {
        let dir = tempfile::tempdir().expect("tmp");
        assert_eq!(super::of(dir.path()), super::TICK);
    }
}
