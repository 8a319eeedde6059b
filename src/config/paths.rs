//! Platform defaults: where the config and the state live.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Where `-c` points when it is not given: `$FTPS_SYNC_CONFIG`, `./ftps-sync.yaml`, then the
/// platform config dir (the last, when none exists).
pub fn default_config_path() -> PathBuf {
    let candidates = config_candidates();
    let last = candidates.len() - 1;
    candidates
        .iter()
        .position(|p| p.exists())
        .map_or_else(|| candidates[last].clone(), |i| candidates[i].clone())
}

/// The config file when `-c` is not given; none there is an error naming every path tried.
pub fn find_config() -> Result<PathBuf> {
    let candidates = config_candidates();
    if let Some(found) = candidates.iter().find(|p| p.exists()) {
        return Ok(found.clone());
    }
    let from_env = std::env::var_os("FTPS_SYNC_CONFIG").is_some();
    let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    let message = if from_env {
        format!(
            "config file not found (named by $FTPS_SYNC_CONFIG: {})",
            tried.join(", ")
        )
    } else {
        format!(
            "no config file found; looked for {} (give one with -c FILE or $FTPS_SYNC_CONFIG)",
            tried.join(" and ")
        )
    };
    Err(Error::Usage(message))
}

/// `$FTPS_SYNC_CONFIG` alone when set; else `./ftps-sync.yaml` and the platform config dir.
fn config_candidates() -> Vec<PathBuf> {
    if let Some(p) = std::env::var_os("FTPS_SYNC_CONFIG") {
        return vec![PathBuf::from(p)];
    }
    vec![
        PathBuf::from("ftps-sync.yaml"),
        platform_config_dir().join("config.yaml"),
    ]
}

pub(super) fn platform_config_dir() -> PathBuf {
    platform_dir("XDG_CONFIG_HOME", ".config/ftps-sync", "/etc/ftps-sync")
}

pub fn platform_data_dir() -> PathBuf {
    platform_dir("XDG_DATA_HOME", ".local/share/ftps-sync", "/var/lib/ftps-sync")
}

/// `%ProgramData%\ftps-sync` on Windows; elsewhere `$XDG_…/ftps-sync`, `~/<home_rel>`, or the
/// system-wide `root_dir` for root.
fn platform_dir(xdg_var: &str, home_rel: &str, root_dir: &str) -> PathBuf {
    if cfg!(windows) {
        let base = std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into());
        return PathBuf::from(base).join("ftps-sync");
    }
    if let Some(x) = std::env::var_os(xdg_var) {
        return PathBuf::from(x).join("ftps-sync");
    }
    match std::env::var_os("HOME") {
        Some(h) if !is_root() => PathBuf::from(h).join(home_rel),
        _ => PathBuf::from(root_dir),
    }
}

fn is_root() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions and cannot fail. ($USER is not set under sudo
        // or systemd, so it cannot tell.)
        unsafe { libc::geteuid() == 0 }
    }
    #[cfg(not(unix))]
    {
        false
    }
}
