//! What `service install` checks before it installs anything (Linux): that the service
//! account can read and write what the service needs, and that the unit's sandbox hides none
//! of it. A service that starts and then cannot write its folder fails in a log nobody reads;
//! this fails at the install, with the fix.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::Config;

/// How the service uses a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Read: the config, the password file, certificates.
    Read,
    /// Read and written: a synced folder (files made, renamed and removed in it).
    ReadWrite,
    /// A directory the service makes if missing (the state directory): the nearest existing
    /// directory above it must be writable.
    Create,
}

/// A path the service needs, what for (for the message), and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub what: String,
    pub path: PathBuf,
    pub how: Use,
}

/// Directories systemd makes and hands to the service user itself (`StateDirectory=`,
/// `LogsDirectory=` in the unit): what is in them the service can make.
const MADE_BY_SYSTEMD: [&str; 2] = ["/var/lib/ftps-sync", "/var/log/ftps-sync"];

/// What the service of `config` (loaded from `config_path`) reads and writes.
pub fn needs(config: &Config, config_path: &Path) -> Vec<Need> {
    let need = |what: String, path: &Path, how| Need {
        what,
        path: path.to_owned(),
        how,
    };
    let mut out = vec![need("the config".into(), config_path, Use::Read)];
    let s = &config.server;
    for (what, file) in [
        ("server.password_file", &s.password_file),
        ("server.ca_file", &s.ca_file),
        ("server.client_cert", &s.client_cert),
        ("server.client_key", &s.client_key),
    ] {
        if let Some(file) = file {
            out.push(need(what.into(), file, Use::Read));
        }
    }
    for f in &config.folders {
        out.push(need(format!("folder {}", f.name), &f.local, Use::ReadWrite));
    }
    if !MADE_BY_SYSTEMD.iter().any(|d| config.state_dir.starts_with(d)) {
        out.push(need("state_dir".into(), &config.state_dir, Use::Create));
    }
    if let Some(dir) = config.log.file.as_ref().and_then(|f| f.parent())
        && !MADE_BY_SYSTEMD.iter().any(|d| dir.starts_with(d))
    {
        out.push(need("log.file's directory".into(), dir, Use::Create));
    }
    out
}

/// Paths the unit's sandbox replaces with an empty view of its own (`PrivateTmp=yes`): a
/// folder there is not the one the user sees.
const PRIVATE: [&str; 2] = ["/tmp", "/var/tmp"];

/// What the sandbox would hide, one line each with the fix.
pub fn hidden_by_sandbox(needs: &[Need]) -> Vec<String> {
    needs
        .iter()
        .filter(|n| PRIVATE.iter().any(|p| n.path.starts_with(p)))
        .map(|n| {
            format!(
                "{} ({}) is under /tmp or /var/tmp, which the service's sandbox (PrivateTmp) replaces \
                 with an empty directory of its own: move it elsewhere (e.g. /srv)",
                n.what,
                n.path.display()
            )
        })
        .collect()
}

/// What `user` could not do, one line each with the fix. `can(user, path, write)` says whether
/// the account may read (and write, and enter, for directories) a path.
pub fn access_problems(needs: &[Need], user: &str, can: impl Fn(&str, &Path, bool) -> bool) -> Vec<String> {
    let mut problems = Vec::new();
    for n in needs {
        match n.how {
            Use::Read if !can(user, &n.path, false) => problems.push(format!(
                "{user} cannot read {} ({}): e.g. chgrp {user} {} && chmod g+r {}",
                n.what,
                n.path.display(),
                n.path.display(),
                n.path.display()
            )),
            Use::ReadWrite if !can(user, &n.path, true) => problems.push(format!(
                "{user} cannot read and write {} ({}): e.g. chown -R {user} {}, or setfacl -R -m u:{user}:rwX {}",
                n.what,
                n.path.display(),
                n.path.display(),
                n.path.display()
            )),
            Use::Create => {
                let existing = n.path.ancestors().find(|a| a.exists()).unwrap_or(Path::new("/"));
                if !can(user, existing, true) {
                    problems.push(format!(
                        "{user} cannot write {} ({}{}): e.g. mkdir -p {} && chown {user} {}",
                        n.what,
                        n.path.display(),
                        if existing == n.path {
                            String::new()
                        } else {
                            format!(", to be made in {}", existing.display())
                        },
                        n.path.display(),
                        n.path.display()
                    ));
                }
            }
            _ => {}
        }
    }
    problems
}

pub fn is_root() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Whether `user` may read (and with `write`, write and enter) `path`, asked of the system as
/// that user (`runuser`, with the account's groups). Needs root.
pub fn can_as(user: &str, path: &Path, write: bool) -> bool {
    let mut test = Command::new("runuser");
    test.args(["-u", user, "--", "test", "-r"]).arg(path);
    if write {
        test.args(["-a", "-w"]).arg(path);
        if path.is_dir() {
            test.args(["-a", "-x"]).arg(path);
        }
    }
    test.output().is_ok_and(|o| o.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(path: &str, how: Use) -> Need {
        Need {
            what: format!("thing at {path}"),
            path: path.into(),
            how,
        }
    }

    #[test]
    fn folders_under_tmp_are_hidden_by_the_sandbox() {
        let needs = [
            need("/tmp/sync", Use::ReadWrite),
            need("/srv/sync", Use::ReadWrite),
            need("/var/tmp/x.pem", Use::Read),
            need("/tmpfiles/x", Use::ReadWrite),
        ];
        let hidden = hidden_by_sandbox(&needs);
        assert_eq!(hidden.len(), 2, "{hidden:?}");
        assert!(hidden[0].contains("/tmp/sync") && hidden[0].contains("PrivateTmp"));
        assert!(hidden[1].contains("/var/tmp/x.pem"));
    }

    #[test]
    fn each_need_is_asked_the_way_it_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("state/deeper");
        let needs = [
            need("/etc/cfg.yaml", Use::Read),
            need("/srv/sync", Use::ReadWrite),
            Need {
                what: "state_dir".into(),
                path: missing.clone(),
                how: Use::Create,
            },
        ];
        let asked = std::sync::Mutex::new(Vec::new());
        let problems = access_problems(&needs, "nobody", |user, path, write| {
            asked
                .lock()
                .unwrap()
                .push((user.to_owned(), path.to_owned(), write));
            false
        });
        assert_eq!(
            asked.into_inner().unwrap(),
            vec![
                ("nobody".to_owned(), PathBuf::from("/etc/cfg.yaml"), false),
                ("nobody".to_owned(), PathBuf::from("/srv/sync"), true),
                // The state dir is made in the nearest directory that exists.
                ("nobody".to_owned(), dir.path().to_owned(), true),
            ]
        );
        assert_eq!(problems.len(), 3);
        assert!(
            problems[1].contains("cannot read and write thing at /srv/sync"),
            "{}",
            problems[1]
        );
        assert!(problems[2].contains("to be made in"), "{}", problems[2]);
        assert!(access_problems(&needs, "nobody", |_, _, _| true).is_empty());
    }
}
