//! The systemd unit for `ftps-sync run`, and installing it.
//!
//! The unit is made from the config, so the sandbox opens exactly the synced folders, the state
//! directory and the log directory for writing. `packaging/systemd/ftps-sync.service` (in the
//! Debian package) is this function's output for the packaged config; a test keeps them equal.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::checks::{self, Need};
use crate::config::Config;
use crate::error::{Error, Result};

pub const UNIT_NAME: &str = "ftps-sync.service";
/// Where an installed unit goes, under the root.
pub const UNIT_DIR: &str = "etc/systemd/system";
pub const DEFAULT_USER: &str = "ftps-sync";

/// What a unit is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSpec {
    pub exe: PathBuf,
    pub config: PathBuf,
    pub user: String,
    /// Paths the service writes: the folders, the state directory, the log directory.
    pub writable: Vec<PathBuf>,
    /// Files it only reads: the password file, certificates (the config is `config`).
    pub readable: Vec<PathBuf>,
}

impl UnitSpec {
    pub fn of(config: &Config, exe: &Path, config_path: &Path, user: &str) -> UnitSpec {
        let mut writable: Vec<PathBuf> = config.folders.iter().map(|f| f.local.clone()).collect();
        writable.push(config.state_dir.clone());
        if let Some(dir) = config.log.file.as_ref().and_then(|f| f.parent()) {
            writable.push(dir.to_path_buf());
        }
        writable.sort();
        writable.dedup();
        let s = &config.server;
        let readable = [&s.password_file, &s.ca_file, &s.client_cert, &s.client_key]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        UnitSpec {
            exe: exe.to_path_buf(),
            config: config_path.to_path_buf(),
            user: user.to_owned(),
            writable,
            readable,
        }
    }

    /// Home directories are hidden from the service unless it needs something in one; then
    /// they are read-only, but for the paths it writes.
    fn protect_home(&self) -> &'static str {
        let homes = [Path::new("/home"), Path::new("/root"), Path::new("/run/user")];
        let needs_home = self
            .writable
            .iter()
            .chain(&self.readable)
            .chain([&self.config])
            .any(|p| homes.iter().any(|h| p.starts_with(h)));
        if needs_home { "read-only" } else { "yes" }
    }
}

/// systemd quoting for one word of a command line or a path list.
fn quote(p: &Path) -> String {
    let s = p.display().to_string();
    if s.chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\\' || c == '\'')
    {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s
    }
}

pub fn unit_text(spec: &UnitSpec) -> String {
    // `-`: a folder that is missing (an unmounted disk) must not stop the unit from starting;
    // `run` then says clearly what is wrong.
    let writable: Vec<String> = spec.writable.iter().map(|p| format!("-{}", quote(p))).collect();
    format!(
        "# Made by `ftps-sync service install`; it is made again from the config on every install.
[Unit]
Description=ftps-sync: keeps local folders in sync with an FTPS server
Documentation=https://github.com/ftps-sync/ftps-sync
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart={exe} run -c {config}
Restart=on-failure
RestartSec=10s
# In-flight transfers get 10 s after SIGTERM, then stop leaving only part files.
TimeoutStopSec=30s
User={user}
Group={user}
StateDirectory=ftps-sync
LogsDirectory=ftps-sync
UMask=0027

# Sandbox: the system is read-only but for the synced folders, state and logs.
ProtectSystem=strict
ReadWritePaths={writable}
ProtectHome={home}
PrivateTmp=yes
PrivateDevices=yes
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
ProtectClock=yes
ProtectControlGroups=yes
ProtectHostname=yes
ProtectKernelLogs=yes
ProtectKernelModules=yes
ProtectKernelTunables=yes
ProtectProc=invisible
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources

[Install]
WantedBy=multi-user.target
",
        exe = quote(&spec.exe),
        config = quote(&spec.config),
        user = spec.user,
        writable = writable.join(" "),
        home = spec.protect_home(),
    )
}

/// How `install` and `uninstall` touch the machine. With a staging root other than `/`, only
/// files are written: no users, no systemctl.
pub struct Target {
    pub root: PathBuf,
}

impl Target {
    fn live(&self) -> bool {
        self.root == Path::new("/")
    }

    fn unit_path(&self) -> PathBuf {
        self.root.join(UNIT_DIR).join(UNIT_NAME)
    }

    /// systemd is running here (not a container or chroot without it).
    fn systemd_running(&self) -> bool {
        self.live() && Path::new("/run/systemd/system").is_dir()
    }
}

/// Checks what the service needs (`needs`), then writes the unit and, on a live systemd
/// machine, enables and starts it. Nothing is written if a check fails. What it did is
/// returned as lines for the user.
pub fn install(spec: &UnitSpec, needs: &[Need], target: &Target) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let exists = user_exists(&spec.user)?;
    let make_user = target.live() && !exists;
    if make_user && spec.user != DEFAULT_USER {
        return Err(Error::Usage(format!(
            "user {:?} does not exist: create it, or leave out --user to use {DEFAULT_USER:?}",
            spec.user
        )));
    }
    refuse_if_any(checks::hidden_by_sandbox(needs))?;
    if make_user {
        make_default_user()?;
        done.push(format!("created the system user {DEFAULT_USER}"));
    }
    if !(exists || make_user) {
        done.push(format!(
            "not checked whether {} can read and write the folders: the account does not exist here",
            spec.user
        ));
    } else if !checks::is_root() {
        done.push(format!(
            "not checked whether {} can read and write the folders: that needs root",
            spec.user
        ));
    } else {
        refuse_if_any(checks::access_problems(needs, &spec.user, checks::can_as))?;
        done.push(format!(
            "checked: {} can read and write the folders and read the config and its files",
            spec.user
        ));
    }
    let path = target.unit_path();
    let dir = path.parent().unwrap_or(&target.root);
    let written = std::fs::create_dir_all(dir)
        .map_err(Error::local("create", dir))
        .and_then(|()| crate::local::write::write_atomically(&path, unit_text(spec).as_bytes()));
    if let Err(e) = written {
        return Err(match e {
            Error::Local { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                Error::Usage(format!(
                    "cannot write {}: permission denied; run it as root (sudo)",
                    path.display()
                ))
            }
            other => other,
        });
    }
    done.push(format!("wrote {}", path.display()));
    if target.systemd_running() {
        run_tool("systemctl", &["daemon-reload"])?;
        run_tool("systemctl", &["enable", "--now", UNIT_NAME])?;
        done.push(format!(
            "enabled and started {UNIT_NAME} (systemctl status {UNIT_NAME})"
        ));
    } else if target.live() {
        done.push(format!(
            "systemd is not running here: start it later with `systemctl enable --now {UNIT_NAME}`"
        ));
    }
    Ok(done)
}

/// Stops, disables and removes the unit. The user, the config, the state and the synced
/// folders stay.
pub fn uninstall(target: &Target) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let path = target.unit_path();
    if target.systemd_running() && path.exists() {
        run_tool("systemctl", &["disable", "--now", UNIT_NAME])?;
        done.push(format!("stopped and disabled {UNIT_NAME}"));
    }
    match std::fs::remove_file(&path) {
        Ok(()) => done.push(format!("removed {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            done.push(format!("{} was not installed", path.display()));
        }
        Err(e) => return Err(Error::local("remove", &path)(e)),
    }
    if target.systemd_running() {
        run_tool("systemctl", &["daemon-reload"])?;
    }
    Ok(done)
}

/// The installed unit: its file, what systemd says of it, the config it runs with.
pub fn installed(target: &Target) -> Result<super::Installed> {
    let path = target.unit_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(super::Installed::default()),
        Err(e) => return Err(Error::local("read", &path)(e)),
    };
    let config = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .and_then(|l| super::config_in_command_line(l, true));
    let (state, enabled) = if target.systemd_running() {
        // Both answer on stdout, with a non-zero exit for "inactive" or "disabled".
        let ask = |verb: &str| {
            Command::new("systemctl")
                .args([verb, UNIT_NAME])
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        (ask("is-active"), ask("is-enabled").map(|e| e == "enabled"))
    } else {
        (None, None)
    };
    Ok(super::Installed {
        registered: Some(path.display().to_string()),
        running: state.as_deref() == Some("active"),
        state,
        enabled,
        config,
    })
}

/// The problems found, as one error that lists them all; nothing is installed.
fn refuse_if_any(problems: Vec<String>) -> Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "the service would not work, so nothing was installed:\n  - {}",
        problems.join("\n  - ")
    )))
}

fn make_default_user() -> Result<()> {
    run_tool(
        "useradd",
        &[
            "--system",
            "--user-group",
            "--home-dir",
            "/var/lib/ftps-sync",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            DEFAULT_USER,
        ],
    )
}

fn user_exists(user: &str) -> Result<bool> {
    let out = Command::new("getent")
        .args(["passwd", user])
        .output()
        .map_err(crate::error::system("getent passwd"))?;
    Ok(out.status.success())
}

/// Runs a system tool; its own message on failure.
fn run_tool(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(crate::error::system(program))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::System {
        call: format!("`{program} {}`", args.join(" ")),
        message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(writable: &[&str], config: &str) -> UnitSpec {
        UnitSpec {
            exe: "/usr/bin/ftps-sync".into(),
            config: config.into(),
            user: "ftps-sync".into(),
            writable: writable.iter().map(PathBuf::from).collect(),
            readable: Vec::new(),
        }
    }

    #[test]
    fn the_sandbox_opens_the_folders_and_hides_homes_when_it_can() {
        let text = unit_text(&spec(
            &["/srv/sync", "/var/lib/ftps-sync"],
            "/etc/ftps-sync/config.yaml",
        ));
        assert!(text.contains("ExecStart=/usr/bin/ftps-sync run -c /etc/ftps-sync/config.yaml\n"));
        assert!(text.contains("ReadWritePaths=-/srv/sync -/var/lib/ftps-sync\n"));
        assert!(text.contains("ProtectHome=yes\n"));
        let home = unit_text(&spec(
            &["/home/ann/My Files"],
            "/home/ann/.config/ftps-sync/config.yaml",
        ));
        assert!(home.contains("ReadWritePaths=-\"/home/ann/My Files\"\n"));
        assert!(home.contains("ProtectHome=read-only\n"));
    }
}
