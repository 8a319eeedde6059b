//! One instance per state directory: `run` and `sync` hold an OS file lock on
//! `<state_dir>/ftps-sync.lock` while they work. The OS drops it when the process dies, so a
//! crash never leaves a stale lock behind.

use std::fs::{File, TryLockError};
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Held for as long as this value lives.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

impl InstanceLock {
    pub fn acquire(state_dir: &Path) -> Result<InstanceLock> {
        std::fs::create_dir_all(state_dir).map_err(Error::local("create state dir", state_dir))?;
        let path = state_dir.join("ftps-sync.lock");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(Error::local("open", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(Error::Usage(format!(
                    "another ftps-sync ({}) is already working on {}; stop it first",
                    if holder.trim().is_empty() {
                        "unknown pid".to_owned()
                    } else {
                        format!("pid {}", holder.trim())
                    },
                    state_dir.display()
                )));
            }
            Err(TryLockError::Error(e)) => return Err(Error::local("lock", &path)(e)),
        }
        let _ = file.set_len(0);
        let _ = write!(file, "{}", std::process::id());
        Ok(InstanceLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = InstanceLock::acquire(dir.path()).unwrap();
        let err = InstanceLock::acquire(dir.path()).unwrap_err();
        assert!(err.to_string().contains(&std::process::id().to_string()), "{err}");
        drop(first);
        InstanceLock::acquire(dir.path()).unwrap();
    }
}
