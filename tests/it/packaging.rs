//! `service install|uninstall` against a staging root, and the packaged unit.

use std::path::Path;

use ftps_sync::config::Config;
use ftps_sync::service::systemd::{UnitSpec, unit_text};

use crate::cli::{offline_config, run};

const PACKAGED_UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/systemd/ftps-sync.service");
const PACKAGED_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/debian/config.yaml");

/// `systemd-analyze verify` on a unit, where the tool is installed; its complaints, if any.
fn verify(unit: &Path) -> Option<String> {
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", &unit.display().to_string()])
        .output();
    match out {
        Err(e) => {
            eprintln!("SKIPPED systemd-analyze verify: cannot run systemd-analyze ({e})");
            None
        }
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            // Only what concerns our unit: the tool also reports on the host's own units.
            let ours: Vec<&str> = text.lines().filter(|l| l.contains("ftps-sync")).collect();
            Some(if out.status.success() && ours.is_empty() {
                String::new()
            } else {
                format!("exit {:?}: {}", out.status.code(), ours.join("\n"))
            })
        }
    }
}

/// A config a service can run with: its password in a file (a service gets no environment).
fn service_config(dir: &Path, server_extra: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let pw = dir.join("password");
    std::fs::write(&pw, "pw").expect("password");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    offline_config(dir)
        .password_file("password")
        .server(server_extra)
        .write(&dir.join("c.yaml"))
}

/// `service install -c cfg --root staging [extra…]`, run in `dir`.
fn install_staged(dir: &Path, cfg: &str, staging: &Path, extra: &[&str]) -> std::process::Output {
    let staging = staging.display().to_string();
    let mut args = vec!["service", "install", "-c", cfg, "--root", &staging];
    args.extend_from_slice(extra);
    run(&args, dir)
}

#[test]
fn service_install_and_uninstall_write_into_a_staging_root() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = service_config(dir.path(), "");
    let staging = dir.path().join("staging");
    let out = install_staged(dir.path(), &cfg, &staging, &["--user", "sync-test"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let unit = staging.join("etc/systemd/system/ftps-sync.service");
    assert!(stdout.contains(&format!("wrote {}", unit.display())), "{stdout}");
    let text = std::fs::read_to_string(&unit).expect("unit written");
    let exe = Path::new(env!("CARGO_BIN_EXE_ftps-sync"))
        .canonicalize()
        .expect("exe");
    assert!(
        text.contains(&format!("ExecStart={} run -c {cfg}\n", exe.display())),
        "{text}"
    );
    let local = dir.path().join("local");
    let state = dir.path().join("state");
    assert!(
        text.contains(&format!(
            "ReadWritePaths=-{} -{}\n",
            local.display(),
            state.display()
        )),
        "{text}"
    );
    assert!(text.contains("User=sync-test\n") && text.contains("ProtectSystem=strict\n"));
    if let Some(complaints) = verify(&unit) {
        assert!(complaints.is_empty(), "systemd-analyze verify: {complaints}");
    }

    let uninstall = ["service", "uninstall", "--root", &staging.display().to_string()];
    let out = run(&uninstall, dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!unit.exists());
    let again = run(&uninstall, dir.path());
    assert_eq!(again.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&again.stdout).contains("was not installed"));
}

#[test]
fn service_install_refuses_a_config_that_would_not_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = service_config(dir.path(), "  no_such_key: 1\n");
    let staging = dir.path().join("staging");
    let out = install_staged(dir.path(), &cfg, &staging, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no_such_key"), "{stderr}");
    assert!(!staging.exists(), "nothing written");
}

/// A service never gets the installing shell's environment: `password_env` would leave it
/// without a password forever, so install refuses it, at its line, with the fix. The variable
/// is set here (`run` sets it), so only the service rule can refuse.
#[test]
fn service_install_refuses_password_env() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = offline_config(dir.path()).write(&dir.path().join("c.yaml"));
    let staging = dir.path().join("staging");
    let out = install_staged(dir.path(), &cfg, &staging, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("c.yaml:5:"), "names the line: {stderr}");
    assert!(stderr.contains("server.password_env"), "{stderr}");
    assert!(stderr.contains("use `password_file` for a service"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(!staging.exists(), "nothing written");
}

/// The unit in the Debian package is the generator's for the packaged config.
#[test]
fn packaged_unit_is_what_install_makes_for_the_packaged_config() {
    let dir = tempfile::tempdir().expect("tmp");
    let password = dir.path().join("password");
    std::fs::write(&password, "pw").expect("password");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    // The packaged paths, moved into the temporary directory for loading, and back.
    let folder = "/srv/ftps-sync/documents";
    let here = dir.path().join("documents");
    std::fs::create_dir(&here).expect("folder");
    let text = std::fs::read_to_string(PACKAGED_CONFIG)
        .expect("packaged config")
        .replace("/etc/ftps-sync/password", &password.display().to_string())
        .replace(folder, &here.display().to_string());
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, text).expect("config");
    let config = Config::load(&cfg).expect("the packaged config loads");
    let spec = UnitSpec::of(
        &config,
        Path::new("/usr/bin/ftps-sync"),
        Path::new("/etc/ftps-sync/config.yaml"),
        "ftps-sync",
    );
    let want = unit_text(&spec).replace(&here.display().to_string(), folder);
    assert!(
        want.contains(&format!("ReadWritePaths=-{folder} -/var/lib/ftps-sync\n")),
        "{want}"
    );
    if std::env::var_os("FTPS_SYNC_BLESS").is_some() {
        std::fs::write(PACKAGED_UNIT, &want).expect("bless");
    }
    let have = std::fs::read_to_string(PACKAGED_UNIT).unwrap_or_default();
    assert_eq!(
        have, want,
        "packaging/systemd/ftps-sync.service is stale: FTPS_SYNC_BLESS=1 cargo test packaged_unit"
    );
}
