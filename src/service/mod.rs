//! `ftps-sync service install|uninstall`: `run` as a system service — a systemd unit on
//! Linux, a service of the Service Control Manager on Windows. The functions here pick the
//! platform's; each returns what it did, as lines for the user.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::Result;

pub mod systemd;
#[cfg(windows)]
pub mod windows;

/// Installs `exe run -c config_path` as the service. `user` and `root` are systemd's (the
/// account, a staging root); a Windows service runs as LocalSystem.
pub fn install(
    config: &Config,
    exe: &Path,
    config_path: &Path,
    user: &str,
    root: PathBuf,
) -> Result<Vec<String>> {
    #[cfg(windows)]
    {
        let _ = (config, user, root);
        windows::install(exe, config_path)
    }
    #[cfg(not(windows))]
    {
        let spec = systemd::UnitSpec::of(config, exe, config_path, user);
        systemd::install(&spec, &systemd::Target { root })
    }
}

pub fn uninstall(root: PathBuf) -> Result<Vec<String>> {
    #[cfg(windows)]
    {
        let _ = root;
        windows::uninstall()
    }
    #[cfg(not(windows))]
    systemd::uninstall(&systemd::Target { root })
}

/// What the Windows Service Control Manager starts; elsewhere a usage error.
pub fn run(config_path: PathBuf) -> Result<u8> {
    #[cfg(windows)]
    {
        windows::run_as_service(config_path)
    }
    #[cfg(not(windows))]
    {
        let _ = config_path;
        Err(crate::error::Error::Usage(
            "`service run` is for the Windows Service Control Manager; use `ftps-sync run`".into(),
        ))
    }
}
