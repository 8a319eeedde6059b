//! The YAML shape as serde reads it: every key optional where the contract has a default,
//! unknown keys refused.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConflictPolicy, Direction, FirstSync, LogFormat, TlsMode, Verify};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) server: RawServer,
    pub(super) folders: Vec<RawFolder>,
    pub(super) state_dir: Option<PathBuf>,
    pub(super) poll_interval: Option<String>,
    pub(super) debounce: Option<String>,
    pub(super) retry: Option<RawRetry>,
    pub(super) verify: Option<Verify>,
    pub(super) bandwidth_limit: Option<String>,
    pub(super) listing_memory_limit: Option<String>,
    pub(super) log: Option<RawLog>,
    pub(super) metrics_listen: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) host: String,
    pub(super) port: Option<u16>,
    pub(super) tls: Option<TlsMode>,
    #[serde(default)]
    pub(super) insecure_plaintext: bool,
    pub(super) tls_max_version: Option<String>,
    pub(super) tls_min_version: Option<String>,
    pub(super) user: String,
    pub(super) password_env: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) fingerprint_sha256: Option<String>,
    pub(super) client_cert: Option<PathBuf>,
    pub(super) client_key: Option<PathBuf>,
    pub(super) passive: Option<bool>,
    pub(super) connections: Option<usize>,
    pub(super) segment_from: Option<String>,
    pub(super) timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFolder {
    pub(super) name: String,
    pub(super) local: PathBuf,
    pub(super) remote: String,
    pub(super) direction: Option<Direction>,
    pub(super) delete: Option<bool>,
    pub(super) conflict: Option<ConflictPolicy>,
    #[serde(default)]
    pub(super) ignore: Vec<String>,
    pub(super) max_delete_percent: Option<u8>,
    pub(super) first_sync: Option<FirstSync>,
    pub(super) detect_moves: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    pub(super) attempts: Option<u32>,
    pub(super) initial_backoff: Option<String>,
    pub(super) max_backoff: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) level: Option<String>,
    pub(super) format: Option<LogFormat>,
    pub(super) file: Option<PathBuf>,
}
