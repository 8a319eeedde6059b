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

/// A directory for a service's folders outside /tmp (which the unit's sandbox replaces, so
/// `service install` refuses folders there): in the home directory.
fn service_dir() -> tempfile::TempDir {
    let home = std::env::var_os("HOME").expect("$HOME");
    tempfile::Builder::new()
        .prefix(".ftps-sync-test-")
        .tempdir_in(home)
        .expect("a directory in $HOME")
}

#[test]
fn service_install_and_uninstall_write_into_a_staging_root() {
    let dir = service_dir();
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

#[test]
fn service_install_refuses_a_folder_the_sandbox_would_hide() {
    // A folder under /tmp: the service's PrivateTmp gives it an empty /tmp of its own.
    let dir = tempfile::tempdir().expect("tmp");
    assert!(dir.path().starts_with("/tmp"), "{}", dir.path().display());
    let cfg = service_config(dir.path(), "");
    let staging = dir.path().join("staging");
    let out = install_staged(dir.path(), &cfg, &staging, &["--user", "nobody"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("nothing was installed"), "{stderr}");
    assert!(
        stderr.contains("folder f") && stderr.contains("PrivateTmp"),
        "{stderr}"
    );
    assert!(!staging.exists(), "nothing written");
}

/// Root is needed to ask as another account; in CI, not being root fails the test.
fn root_or_skip(what: &str) -> bool {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        crate::support::skip(what, "it needs root");
    }
    root
}

#[test]
fn service_install_checks_the_account_can_use_the_folders() {
    use std::os::unix::fs::PermissionsExt;
    if !root_or_skip("service_install_checks_the_account_can_use_the_folders") {
        return;
    }
    // Outside /tmp and /root, where `nobody` can reach it.
    std::fs::create_dir_all("/srv").expect("/srv");
    let dir = tempfile::Builder::new()
        .prefix("ftps-sync-test-")
        .tempdir_in("/srv")
        .expect("tmp in /srv");
    let open =
        |p: &Path, mode| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    open(dir.path(), 0o755);
    let cfg = service_config(dir.path(), "");
    let local = dir.path().join("local");
    let staging = dir.path().join("staging");
    // The config and password readable by nobody, the folder not writable by it.
    open(&dir.path().join("c.yaml"), 0o644);
    open(&dir.path().join("password"), 0o644);
    std::fs::write(dir.path().join("ca.pem"), "").expect("ca");
    open(&dir.path().join("ca.pem"), 0o644);
    open(&local, 0o755);
    let out = install_staged(dir.path(), &cfg, &staging, &["--user", "nobody"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "nobody cannot read and write folder f ({})",
            local.display()
        )),
        "{stderr}"
    );
    // The state dir is made inside `dir`, which nobody cannot write either.
    assert!(stderr.contains("nobody cannot write state_dir"), "{stderr}");
    assert!(!stderr.contains("cannot read the config"), "{stderr}");
    assert!(!staging.exists(), "nothing written");

    // Once nobody may write them, it installs, and says it checked.
    open(&local, 0o777);
    std::fs::create_dir_all(dir.path().join("state")).expect("state");
    open(&dir.path().join("state"), 0o777);
    let out = install_staged(dir.path(), &cfg, &staging, &["--user", "nobody"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("checked: nobody can read and write the folders"),
        "{stdout}"
    );

    // A password file nobody cannot read is named.
    open(&dir.path().join("password"), 0o600);
    let out = install_staged(dir.path(), &cfg, &staging, &["--user", "nobody"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("nobody cannot read server.password_file"),
        "{stderr}"
    );
}

#[test]
fn service_status_reads_the_installed_unit_and_the_state() {
    let dir = service_dir();
    let cfg = service_config(dir.path(), "");
    let staging = dir.path().join("staging");
    let root = staging.display().to_string();
    let out = run(&["service", "status", "--root", &root], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("not installed"), "{stdout}");
    let out = install_staged(dir.path(), &cfg, &staging, &["--user", "sync-test"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["service", "status", "--root", &root], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Installed in the staging root, where no systemd runs it.
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "installed in {}",
            staging.join("etc/systemd/system/ftps-sync.service").display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("config       {cfg}")), "{stdout}");
    assert!(stdout.contains("f: never synced"), "{stdout}");
}

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// What the Debian package ships beside the binary, made by the binary itself.
const GENERATED: [(&[&str], &str); 4] = [
    (&["completions", "bash"], "packaging/completions/ftps-sync.bash"),
    (&["completions", "zsh"], "packaging/completions/_ftps-sync"),
    (&["completions", "fish"], "packaging/completions/ftps-sync.fish"),
    (&["man"], "packaging/man/ftps-sync.1"),
];

/// The completions and the man page in the package are what this binary prints
/// (`FTPS_SYNC_BLESS=1 cargo test packaged_completions` writes them after a CLI change), and
/// bash and man take them.
#[test]
fn packaged_completions_and_man_page_are_what_the_binary_prints() {
    let dir = tempfile::tempdir().expect("tmp");
    for (args, file) in GENERATED {
        let out = run(args, dir.path());
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let path = Path::new(ROOT).join(file);
        if std::env::var_os("FTPS_SYNC_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
            std::fs::write(&path, &out.stdout).expect("bless");
        }
        let have = std::fs::read(&path).unwrap_or_default();
        assert!(
            have == out.stdout,
            "{file} is stale: FTPS_SYNC_BLESS=1 cargo test packaged_completions"
        );
    }
    let bash = Path::new(ROOT).join(GENERATED[0].1);
    let script = format!("source {} && complete -p ftps-sync", bash.display());
    match std::process::Command::new("bash").args(["-c", &script]).output() {
        Ok(out) => assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ftps-sync"),
            "bash does not take the completions: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("SKIPPED bash completions: cannot run bash ({e})"),
    }
    let page = Path::new(ROOT).join(GENERATED[3].1);
    match std::process::Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(&page)
        .env("MANWIDTH", "100")
        .output()
    {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "man: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            for words in [
                "FTPS-SYNC SYNC",
                "--max-delete",
                "FTPS-SYNC SERVICE INSTALL",
                "--trust",
            ] {
                assert!(text.contains(words), "the man page lacks {words:?}:\n{text}");
            }
        }
        Err(e) => crate::support::skip("man page rendering", format!("cannot run man: {e}")),
    }
}
