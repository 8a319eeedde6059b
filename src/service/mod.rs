//! `ftps-sync service install|uninstall`: `run` as a system service — a systemd unit on
//! Linux, a service of the Service Control Manager on Windows. The functions here pick the
//! platform's; each returns what it did, as lines for the user.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::Result;

pub mod checks;
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
        let needs = checks::needs(config, config_path);
        systemd::install(&spec, &needs, &systemd::Target { root })
    }
}

/// What `service status` tells of the installed service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installed {
    /// Where it is registered (the unit file, the Service Control Manager); `None`: it is not.
    pub registered: Option<String>,
    /// The system's word for its state (`active`, `failed`, `running`, `stopped`…), where the
    /// system can be asked.
    pub state: Option<String>,
    pub running: bool,
    /// Whether it starts with the system.
    pub enabled: Option<bool>,
    /// The config its command line names.
    pub config: Option<PathBuf>,
}

/// The installed service, as the system knows it. `root` is systemd's staging root.
pub fn installed(root: PathBuf) -> Result<Installed> {
    #[cfg(windows)]
    {
        let _ = root;
        windows::installed()
    }
    #[cfg(not(windows))]
    systemd::installed(&systemd::Target { root })
}

/// The config path in a service's command line (`… run -c PATH`), unquoted; `unescape`: the
/// quotes escape `\\` and `\"` (systemd's), else backslashes are path separators (Windows').
pub fn config_in_command_line(line: &str, unescape: bool) -> Option<PathBuf> {
    let (_, rest) = line.split_once(" -c ")?;
    let rest = rest.trim();
    let Some(quoted) = rest.strip_prefix('"') else {
        return Some(PathBuf::from(rest.split_whitespace().next()?));
    };
    let mut path = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(PathBuf::from(path)),
            '\\' if unescape => path.push(chars.next()?),
            c => path.push(c),
        }
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_is_read_back_from_the_command_line() {
        let at = |line, unescape| config_in_command_line(line, unescape);
        assert_eq!(
            at("/usr/bin/ftps-sync run -c /etc/ftps-sync/config.yaml", true),
            Some(PathBuf::from("/etc/ftps-sync/config.yaml"))
        );
        assert_eq!(
            at(
                r#"/usr/bin/ftps-sync run -c "/home/ann/My \"sync\"/c.yaml""#,
                true
            ),
            Some(PathBuf::from(r#"/home/ann/My "sync"/c.yaml"#))
        );
        assert_eq!(
            at(
                r#""C:\Program Files\ftps-sync\ftps-sync.exe" service run -c "C:\ProgramData\ftps-sync\config.yaml""#,
                false
            ),
            Some(PathBuf::from(r"C:\ProgramData\ftps-sync\config.yaml"))
        );
        assert_eq!(at("/usr/bin/ftps-sync run", true), None);
    }
}
