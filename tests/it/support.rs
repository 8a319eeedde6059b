//! A real FTPS server and a pair of folders for each test.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ftps_sync::config::Config;
use ftps_sync::demo::{EmbeddedServer, ServerTls, TestPki, serve};
use ftps_sync::engine::{self, Options, Report};
use ftps_sync::remote::Connector;
use tokio_util::sync::CancellationToken;

pub const USER: &str = "tester";
pub const PASSWORD: &str = "s3cret-pw";

/// The one way tests write a config: one server, one folder, and the lines a test adds. Lines
/// come out in a fixed order (the config-error tests count on their line numbers):
///
/// ```text
/// server: host, port, [tls], user, password, [ca_file], [timeout], <server lines>
/// folders: - name, local, remote, <folder lines>
/// state_dir, [retry], <top-level lines>
/// ```
#[derive(Debug, Clone)]
pub struct ConfigYaml {
    host: String,
    port: u16,
    tls: Option<String>,
    user: String,
    /// The whole password line, e.g. `password_file: password`.
    password: String,
    ca_file: Option<String>,
    timeout: Option<String>,
    server_lines: String,
    name: String,
    local: PathBuf,
    remote: String,
    folder_lines: String,
    state_dir: String,
    retry: Option<String>,
    top_lines: String,
}

impl ConfigYaml {
    pub fn new(port: u16, local: &Path, remote: &str) -> ConfigYaml {
        ConfigYaml {
            host: "127.0.0.1".into(),
            port,
            tls: None,
            user: USER.into(),
            password: "password_file: password".into(),
            ca_file: None,
            timeout: None,
            server_lines: String::new(),
            name: "test".into(),
            local: local.to_owned(),
            remote: remote.into(),
            folder_lines: String::new(),
            state_dir: "state".into(),
            retry: None,
            top_lines: String::new(),
        }
    }

    pub fn host(mut self, host: &str) -> Self {
        self.host = host.into();
        self
    }
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    pub fn tls(mut self, mode: &str) -> Self {
        self.tls = Some(mode.into());
        self
    }
    pub fn user(mut self, user: &str) -> Self {
        self.user = user.into();
        self
    }
    pub fn password_file(mut self, path: &str) -> Self {
        self.password = format!("password_file: {path}");
        self
    }
    pub fn password_env(mut self, var: &str) -> Self {
        self.password = format!("password_env: {var}");
        self
    }
    pub fn ca_file(mut self, path: &str) -> Self {
        self.ca_file = Some(path.into());
        self
    }
    pub fn timeout(mut self, timeout: &str) -> Self {
        self.timeout = Some(timeout.into());
        self
    }
    /// Lines under `server:`, already indented by two spaces.
    pub fn server(mut self, lines: &str) -> Self {
        self.server_lines.push_str(lines);
        self
    }
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }
    /// Lines of the folder, already indented by four spaces.
    pub fn folder(mut self, lines: &str) -> Self {
        self.folder_lines.push_str(lines);
        self
    }
    pub fn state_dir(mut self, dir: &str) -> Self {
        self.state_dir = dir.into();
        self
    }
    pub fn retry(mut self, retry: &str) -> Self {
        self.retry = Some(retry.into());
        self
    }
    /// Top-level lines, after `state_dir`.
    pub fn top(mut self, lines: &str) -> Self {
        self.top_lines.push_str(lines);
        self
    }

    pub fn render(&self) -> String {
        let mut y = format!("server:\n  host: {}\n  port: {}\n", self.host, self.port);
        if let Some(tls) = &self.tls {
            y += &format!("  tls: {tls}\n");
        }
        y += &format!("  user: {}\n  {}\n", self.user, self.password);
        if let Some(ca) = &self.ca_file {
            y += &format!("  ca_file: {ca}\n");
        }
        if let Some(t) = &self.timeout {
            y += &format!("  timeout: {t}\n");
        }
        y += &self.server_lines;
        y += &format!(
            "folders:\n  - name: {}\n    local: {}\n    remote: {}\n",
            self.name,
            self.local.display(),
            self.remote
        );
        y += &self.folder_lines;
        y += &format!("state_dir: {}\n", self.state_dir);
        if let Some(r) = &self.retry {
            y += &format!("retry: {r}\n");
        }
        y += &self.top_lines;
        y
    }

    /// Writes the YAML to `path`; its path back, as a string for `-c`.
    pub fn write(&self, path: &Path) -> String {
        std::fs::write(path, self.render()).expect("config file");
        path.display().to_string()
    }

    /// Writes the YAML to `path` and loads it.
    pub fn load(&self, path: &Path) -> Config {
        self.write(path);
        Config::load(path).unwrap_or_else(|e| panic!("config: {e}\n{}", self.render()))
    }
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub local: PathBuf,
    /// The server's directory behind the remote folder `/remote`.
    pub remote: PathBuf,
    pub pki: TestPki,
    pub server: EmbeddedServer,
}

impl Harness {
    pub async fn new() -> Harness {
        Harness::with_tls(ServerTls::default()).await
    }

    pub async fn with_tls(tls: ServerTls) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let local = dir.path().join("local");
        let served = dir.path().join("served");
        let remote = served.join("remote");
        let pki_dir = dir.path().join("pki");
        for d in [&local, &remote, &pki_dir] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(dir.path().join("password"), PASSWORD).expect("password file");
        let pki = TestPki::new().expect("pki");
        pki.write_to(&pki_dir).expect("pki files");
        let server = serve(&served, &pki_dir, USER, PASSWORD, tls)
            .await
            .expect("server");
        Harness {
            dir,
            local,
            remote,
            pki,
            server,
        }
    }

    /// A config for this harness, not yet trusting the test CA (see `config`).
    pub fn config_yaml(&self) -> ConfigYaml {
        ConfigYaml::new(self.server.addr.port(), &self.local, "/remote")
            .timeout("10s")
            .retry("{ attempts: 3, initial_backoff: 50ms, max_backoff: 200ms }")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("ftps-sync.yaml")
    }

    /// Writes and loads a config trusting the test CA, with `folder_extra` lines.
    pub fn config(&self, folder_extra: &str) -> Config {
        self.config_yaml()
            .ca_file("pki/ca.pem")
            .folder(folder_extra)
            .load(&self.config_path())
    }
}

/// One pass over the config's first folder.
pub async fn pass(config: &Config) -> ftps_sync::Result<Report> {
    pass_with(config, Options::default(), &CancellationToken::new()).await
}

pub async fn pass_with(
    config: &Config,
    options: Options,
    cancel: &CancellationToken,
) -> ftps_sync::Result<Report> {
    // As `sync` makes it: with what earlier passes learned of the server.
    let connector =
        ftps_sync::remote::ftps::FtpsConnector::remembering(&config.server, engine::learned::memory(config))?;
    engine::sync_folder(config, &config.folders[0], &connector, options, cancel).await
}

/// One whole pass over the config's first folder through `connector` (one kept across passes,
/// as a run keeps it; or a simulated server).
pub async fn pass_on(config: &Config, connector: &Arc<dyn Connector>) -> ftps_sync::Result<Report> {
    let never = CancellationToken::new();
    engine::sync_folder(config, &config.folders[0], connector, Options::default(), &never).await
}

/// What a pass over the config's first folder would do (scan, list, plan; nothing changes).
pub async fn prepare_on(
    config: &Config,
    connector: &Arc<dyn Connector>,
) -> ftps_sync::Result<engine::Prepared> {
    let never = CancellationToken::new();
    engine::prepare(config, &config.folders[0], connector, Options::default(), &never).await
}

/// xorshift64*: seeded randomness for the crash matrix and the simulation, replayable.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

pub fn put(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, content).expect("write");
}

pub fn read(root: &Path, rel: &str) -> Option<Vec<u8>> {
    std::fs::read(root.join(rel)).ok()
}

/// Asserts that `rel` under `root` is a file holding exactly `expected`.
#[track_caller]
pub fn assert_holds(root: &Path, rel: &str, expected: &[u8]) {
    match read(root, rel) {
        Some(got) => assert!(
            got == expected,
            "{rel} under {} holds {:?}, expected {:?}",
            root.display(),
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected)
        ),
        None => panic!("{rel} is missing under {}", root.display()),
    }
}

/// Every file under `root` with its content; directories end with `/`.
pub fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            if p.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                stack.push(p);
            } else {
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

/// Names under `root` that are part files (names only: this is polled).
pub fn part_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if e
                .file_name()
                .to_string_lossy()
                .ends_with(ftps_sync::local::PART_SUFFIX)
            {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

pub fn transfers(r: &Report) -> usize {
    r.uploaded + r.downloaded
}

/// A test, or a part of one, that cannot run here (`what`, and `why`): one line,
/// `SKIPPED <what>: <why>`, on the real stderr past the harness's capture, so it is seen. Where
/// nothing may skip (`CI=true`, or `FTPS_SYNC_INTEROP=require` as `.ci/run` sets it) it fails
/// the test instead.
pub fn skip(what: &str, why: impl std::fmt::Display) {
    for (var, value) in [("CI", "true"), ("FTPS_SYNC_INTEROP", "require")] {
        if std::env::var(var).as_deref() == Ok(value) {
            panic!("{what} cannot run here ({why}), and {var}={value}: nothing may skip");
        }
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {what}: {why}");
}

/// A small tmpfs mounted over a folder, unmounted when dropped.
pub struct Mounted(PathBuf);

impl Mounted {
    /// A tmpfs of `size` over `at`; `None` (and SKIPPED, or a failure where nothing may skip)
    /// where it cannot be mounted: it needs root.
    pub fn tmpfs(what: &str, at: &Path, size: &str) -> Option<Mounted> {
        if !crate::interop::is_root() {
            skip(what, "mounting a tmpfs needs root");
            return None;
        }
        let mounted = Mounted(at.to_path_buf());
        if !mounted.mount(&["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]) {
            std::mem::forget(mounted); // nothing to unmount
            skip(what, "mount -t tmpfs failed");
            return None;
        }
        Some(mounted)
    }

    /// Mounts it again read-only, as a kernel does with a file system it found errors in.
    pub fn read_only(&self) -> bool {
        self.mount(&["-o", "remount,ro"])
    }

    pub fn writable(&self) -> bool {
        self.mount(&["-o", "remount,rw"])
    }

    fn mount(&self, args: &[&str]) -> bool {
        Command::new("mount")
            .args(args)
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
