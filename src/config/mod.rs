//! The YAML configuration (config/example.yaml shows every key): parsing, defaults, validation,
//! secrets.
//!
//! Config rejects, never clamps: an unknown key, a bad duration or a contradiction is an error
//! naming the key with line and column, and saying what to write instead.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

mod locate;
mod paths;
mod pin;
mod raw;
mod validate;

pub use crate::reconcile::policy::{ConflictPolicy, DeleteLimit, Direction, FirstSync};
pub use paths::{default_config_path, find_config, platform_data_dir};
pub use pin::pin_in_file;
use raw::RawConfig;
use validate::Validator;
pub use validate::{format_fingerprint, parse_duration, parse_fingerprint, parse_rate, parse_size};

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from: relative paths inside it are resolved against its directory.
    pub source: PathBuf,
    pub server: Server,
    pub folders: Vec<Folder>,
    pub state_dir: PathBuf,
    pub poll_interval: Duration,
    pub debounce: Duration,
    pub retry: Retry,
    pub verify: Verify,
    /// Bytes per second across all transfers.
    pub bandwidth_limit: Option<u64>,
    /// What one folder's listing of the server may hold in memory, estimated per entry as its
    /// path and 160 bytes (`engine::prepare`): past it the pass fails (a server that lists
    /// without end).
    pub listing_memory_limit: u64,
    pub log: Log,
    /// Where the service serves its metrics (`/metrics`, `/healthz`); `None`: nowhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Things that work but should be fixed, logged once logging is set up.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub tls_max_version: Option<TlsVersion>,
    /// `"1.3"` keeps TLS 1.3 with a server that cannot resume its data connections (see
    /// `remote::learned`), at the cost of a login every two transfers.
    pub tls_min_version: Option<TlsVersion>,
    pub user: String,
    pub password: Secret,
    /// Where the password came from, if from a file (a service must be able to read it).
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of the server certificate's DER, when pinned.
    pub fingerprint_sha256: Option<[u8; 32]>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub passive: bool,
    pub connections: usize,
    /// Files at least this big download in segments over several connections at once (as
    /// rclone's multi-thread and lftp's `pget` do), and upload so where the server allows it
    /// (`engine::transfer::ranged_upload`); `None` (`off`, the default): never.
    pub segment_from: Option<u64>,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Folder {
    pub name: String,
    pub local: PathBuf,
    pub remote: String,
    pub direction: Direction,
    pub delete: bool,
    pub conflict: ConflictPolicy,
    pub ignore: Vec<String>,
    /// `--exclude`, for one run: skipped like `ignore`, but what it hides keeps its base rows
    /// (hiding a file for one run is no deletion of it).
    pub exclude: Vec<String>,
    /// `max_delete_percent`, unless `--max-delete` overrides it for one run.
    pub max_delete: DeleteLimit,
    pub first_sync: FirstSync,
    /// A file or folder renamed on one side is renamed on the other, not sent again.
    pub detect_moves: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    Explicit,
    Implicit,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verify {
    Auto,
    Hash,
    Size,
    Download,
}

#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Log {
    pub level: String,
    pub format: LogFormat,
    pub file: Option<PathBuf>,
}

/// A password: its Debug and Display never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

// ---- raw YAML shape ----

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        Self::load_as(path, false)
    }

    /// Loads a config for `service install`. The systemd unit and the Windows service that
    /// install makes carry no environment, least of all the installing shell's, so
    /// `password_env` is refused here, with the fix. (A service set up by hand with an
    /// environment still runs: `run` and the Windows service load with `load`.)
    pub fn load_for_service(path: &Path) -> Result<Config> {
        Self::load_as(path, true)
    }

    fn load_as(path: &Path, for_service: bool) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let message = if e.kind() == std::io::ErrorKind::NotFound {
                "config file not found (give one with -c FILE or $FTPS_SYNC_CONFIG)".to_owned()
            } else {
                format!("cannot read config file: {e}")
            };
            Error::config(path, "config", message)
        })?;
        Config::parse_as(&text, path, for_service)
    }

    /// Parses and validates `text`, which came from `source` (for messages and relative paths).
    pub fn parse(text: &str, source: &Path) -> Result<Config> {
        Self::parse_as(text, source, false)
    }

    fn parse_as(text: &str, source: &Path, for_service: bool) -> Result<Config> {
        let raw: RawConfig = serde_yaml::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (Some(l.line()), Some(l.column())))
                .unwrap_or((None, None));
            Error::Config {
                file: source.to_owned(),
                key: key_from_serde_message(&e.to_string()),
                line,
                column,
                message: strip_serde_location(&e.to_string()),
            }
        })?;
        Validator {
            text,
            source,
            for_service,
            warnings: Default::default(),
        }
        .validate(raw)
    }
}

/// serde_yaml puts the key path at the front of its message (`server.port: invalid type …`).
fn key_from_serde_message(msg: &str) -> String {
    match msg.split_once(": ") {
        Some((k, _)) if !k.contains(' ') => k.to_owned(),
        _ => "config".to_owned(),
    }
}

fn strip_serde_location(msg: &str) -> String {
    let msg = match msg.split_once(": ") {
        Some((k, rest)) if !k.contains(' ') => rest,
        _ => msg,
    };
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

#[cfg(test)]
mod tests;

/// A config for unit tests elsewhere: one folder in the temp dir (an absolute folder on every
/// system), `extra_server` lines under server, the password from `PATH` (set everywhere).
#[cfg(test)]
pub(crate) fn for_tests(extra_server: &str) -> Config {
    let yaml = format!(
        "server:\n  host: h\n  user: u\n  password_env: PATH\n{extra_server}folders:\n  - name: d\n    \
         local: {}\n    remote: /d\n",
        std::env::temp_dir().display()
    );
    Config::parse(&yaml, Path::new("/etc/ftps-sync/test.yaml")).expect("config")
}
