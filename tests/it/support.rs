//! A real FTPS server and a pair of folders for each test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ftps_sync::config::Config;
use ftps_sync::demo::{EmbeddedServer, ServerTls, TestPki, serve};
use ftps_sync::engine::{self, Options, Report};
use ftps_sync::remote::ftps::FtpsConnector;
use tokio_util::sync::CancellationToken;

pub const USER: &str = "tester";
pub const PASSWORD: &str = "s3cret-pw";

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

    /// The YAML of a config for this harness; `server_extra` and `folder_extra` are extra
    /// lines (already indented) for the server and the folder.
    pub fn yaml(&self, server_extra: &str, folder_extra: &str) -> String {
        format!(
            "server:\n  host: 127.0.0.1\n  port: {port}\n  user: {USER}\n  password_file: password\n  \
             timeout: 10s\n{server_extra}folders:\n  - name: test\n    local: {local}\n    remote: /remote\n\
             {folder_extra}state_dir: state\nretry: {{ attempts: 3, initial_backoff: 50ms, max_backoff: 200ms }}\n",
            port = self.server.addr.port(),
            local = self.local.display(),
        )
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("ftps-sync.yaml")
    }

    /// Writes and loads a config trusting the test CA.
    pub fn config(&self, folder_extra: &str) -> Config {
        self.config_with("  ca_file: pki/ca.pem\n", folder_extra)
    }

    pub fn config_with(&self, server_extra: &str, folder_extra: &str) -> Config {
        let path = self.config_path();
        std::fs::write(&path, self.yaml(server_extra, folder_extra)).expect("config file");
        Config::load(&path).expect("valid config")
    }

    pub async fn sync(&self, config: &Config) -> ftps_sync::Result<Report> {
        self.sync_with(config, Options::default(), &CancellationToken::new())
            .await
    }

    pub async fn sync_with(
        &self,
        config: &Config,
        options: Options,
        cancel: &CancellationToken,
    ) -> ftps_sync::Result<Report> {
        pass_with(config, options, cancel).await
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
    let connector = FtpsConnector::for_server(&config.server)?;
    engine::sync_folder(config, &config.folders[0], &connector, options, cancel).await
}

pub fn put(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, content).expect("write");
}

pub fn read(root: &Path, rel: &str) -> Option<Vec<u8>> {
    std::fs::read(root.join(rel)).ok()
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
            } else if e.file_name().to_string_lossy().ends_with(".ftps-sync.part") {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

pub fn transfers(r: &Report) -> usize {
    r.uploaded + r.downloaded
}
