//! Raw YAML shape -> `Config`: defaults, checks and contradictions, every error naming its key
//! with line and column and saying what to write instead.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::locate::locate_key;
use super::raw::{RawConfig, RawFolder, RawLog, RawRetry, RawServer};
use super::*;
use crate::error::{Error, Result};

/// `listing_memory_limit` unless set: about five million entries of ordinary paths.
pub const DEFAULT_LISTING_MEMORY: u64 = 1 << 30;
const MIN_LISTING_MEMORY: u64 = 1 << 20;

/// The least `server.segment_from`: smaller files gain nothing from several streams.
const MIN_SEGMENT_FROM: u64 = 1 << 20;

pub(super) struct Validator<'a> {
    pub(super) text: &'a str,
    pub(super) source: &'a Path,
    /// Whether a system service will run with this config (see `Config::load_for_service`).
    pub(super) for_service: bool,
    pub(super) warnings: std::cell::RefCell<Vec<String>>,
}

impl Validator<'_> {
    /// An error at `key` (a dotted path such as `folders[1].local`), located in the text.
    fn err(&self, key: &str, message: impl Into<String>) -> Error {
        let (line, column) = locate_key(self.text, key).map_or((None, None), |(l, c)| (Some(l), Some(c)));
        Error::Config {
            file: self.source.to_owned(),
            key: key.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.source.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    fn tls_version(&self, key: &str, value: Option<&str>) -> Result<Option<TlsVersion>> {
        match value {
            None => Ok(None),
            Some("1.2") => Ok(Some(TlsVersion::V1_2)),
            Some("1.3") => Ok(Some(TlsVersion::V1_3)),
            Some(other) => Err(self.err(
                key,
                format!("unknown TLS version {other:?}; write \"1.2\" or \"1.3\""),
            )),
        }
    }

    fn duration(&self, key: &str, value: Option<&str>, default: Duration) -> Result<Duration> {
        match value {
            None => Ok(default),
            Some(s) => parse_duration(s).map_err(|m| self.err(key, m)),
        }
    }

    pub(super) fn validate(&self, raw: RawConfig) -> Result<Config> {
        let server = self.server(raw.server)?;
        if raw.folders.is_empty() {
            return Err(self.err("folders", "at least one folder is needed"));
        }
        let mut folders = Vec::new();
        for (i, f) in raw.folders.into_iter().enumerate() {
            let folder = self.folder(i, f)?;
            if folders.iter().any(|g: &Folder| g.name == folder.name) {
                return Err(self.err(
                    &format!("folders[{i}].name"),
                    format!("duplicate folder name {:?}", folder.name),
                ));
            }
            folders.push(folder);
        }
        let retry = raw.retry.unwrap_or(RawRetry {
            attempts: None,
            initial_backoff: None,
            max_backoff: None,
        });
        let retry = Retry {
            attempts: retry.attempts.unwrap_or(5),
            initial_backoff: self.duration(
                "retry.initial_backoff",
                retry.initial_backoff.as_deref(),
                Duration::from_secs(1),
            )?,
            max_backoff: self.duration(
                "retry.max_backoff",
                retry.max_backoff.as_deref(),
                Duration::from_secs(60),
            )?,
        };
        if retry.attempts == 0 {
            return Err(self.err("retry.attempts", "must be at least 1 (1 means: no retry)"));
        }
        // A zero wait would have `run` hammer a server that is down.
        if retry.initial_backoff.is_zero() {
            return Err(self.err("retry.initial_backoff", "must be more than 0s (e.g. 1s)"));
        }
        if retry.max_backoff < retry.initial_backoff {
            return Err(self.err("retry.max_backoff", "must be at least retry.initial_backoff"));
        }
        let log = raw.log.unwrap_or(RawLog {
            level: None,
            format: None,
            file: None,
        });
        let level = log.level.unwrap_or_else(|| "info".to_owned());
        if !["error", "warn", "info", "debug", "trace"].contains(&level.as_str()) {
            return Err(self.err(
                "log.level",
                format!("unknown level {level:?}; write one of error, warn, info, debug, trace"),
            ));
        }
        let bandwidth_limit = match raw.bandwidth_limit.as_deref() {
            None | Some("null") => None,
            Some(s) => Some(parse_rate(s).map_err(|m| self.err("bandwidth_limit", m))?),
        };
        let listing_memory_limit = match raw.listing_memory_limit.as_deref() {
            None => DEFAULT_LISTING_MEMORY,
            Some(s) => match parse_size(s) {
                Ok(n) if n >= MIN_LISTING_MEMORY => n,
                Ok(_) => {
                    return Err(self.err(
                        "listing_memory_limit",
                        "must be at least 1MiB: a listing of a few folders would fail",
                    ));
                }
                Err(m) => return Err(self.err("listing_memory_limit", m)),
            },
        };
        let metrics_listen = match raw.metrics_listen.as_deref() {
            None | Some("null") => None,
            Some(s) => Some(s.parse::<std::net::SocketAddr>().map_err(|_| {
                self.err(
                    "metrics_listen",
                    format!("{s:?} is not an address and port such as 127.0.0.1:9184"),
                )
            })?),
        };
        Ok(Config {
            source: self.source.to_owned(),
            metrics_listen,
            server,
            folders,
            state_dir: raw
                .state_dir
                .map(|p| self.resolve(&p))
                .unwrap_or_else(platform_data_dir),
            poll_interval: match self.duration(
                "poll_interval",
                raw.poll_interval.as_deref(),
                Duration::from_secs(60),
            )? {
                d if d.is_zero() => {
                    return Err(self.err(
                        "poll_interval",
                        "must be more than 0s: a pass would follow a pass without pause",
                    ));
                }
                d => d,
            },
            debounce: self.duration("debounce", raw.debounce.as_deref(), Duration::from_millis(500))?,
            retry,
            verify: raw.verify.unwrap_or(Verify::Auto),
            bandwidth_limit,
            listing_memory_limit,
            log: Log {
                level,
                format: log.format.unwrap_or(LogFormat::Text),
                file: log.file.map(|p| self.resolve(&p)),
            },
            warnings: self.warnings.take(),
        })
    }

    fn server(&self, s: RawServer) -> Result<Server> {
        if s.host.trim().is_empty() {
            return Err(self.err("server.host", "must not be empty"));
        }
        let tls = s.tls.unwrap_or(TlsMode::Explicit);
        if tls == TlsMode::None && !s.insecure_plaintext {
            return Err(self.err(
                "server.tls",
                "plain FTP sends the password in clear text; to allow it anyway also write `insecure_plaintext: true`",
            ));
        }
        let port = s.port.unwrap_or(if tls == TlsMode::Implicit { 990 } else { 21 });
        if port == 0 {
            return Err(self.err("server.port", "must be 1-65535"));
        }
        let password = match (&s.password_env, &s.password_file) {
            (Some(_), Some(_)) => {
                return Err(self.err(
                    "server.password_file",
                    "give either password_env or password_file, not both",
                ));
            }
            (None, None) => {
                return Err(self.err(
                    "server",
                    "no password: add `password_env: VARIABLE` or `password_file: PATH`",
                ));
            }
            (Some(var), None) if self.for_service => {
                return Err(self.err(
                    "server.password_env",
                    format!(
                        "a service does not get the environment of the shell that installs it, \
                         so it would never see {var}; use `password_file` for a service"
                    ),
                ));
            }
            (Some(var), None) => match std::env::var(var) {
                Ok(p) => Secret(p),
                Err(_) => {
                    return Err(self.err(
                        "server.password_env",
                        format!("environment variable {var} is not set"),
                    ));
                }
            },
            (None, Some(file)) => {
                let file = self.resolve(file);
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    self.err(
                        "server.password_file",
                        format!("cannot read {}: {e}", file.display()),
                    )
                })?;
                if readable_by_others(&file) {
                    self.warnings.borrow_mut().push(format!(
                        "password file {} is readable by other users; run: chmod 600 {}",
                        file.display(),
                        file.display()
                    ));
                }
                Secret(text.trim_end_matches(['\r', '\n']).to_owned())
            }
        };
        if password.0.contains(['\r', '\n']) {
            return Err(self.err("server", "the password must be one line"));
        }
        let fingerprint_sha256 = match &s.fingerprint_sha256 {
            None => None,
            Some(f) => Some(parse_fingerprint(f).ok_or_else(|| {
                self.err(
                    "server.fingerprint_sha256",
                    "expected 32 hex bytes, e.g. \"3A:5F:...:9F\" (as `ftps-sync check` prints)",
                )
            })?),
        };
        if s.client_cert.is_some() != s.client_key.is_some() {
            return Err(self.err("server.client_cert", "client_cert and client_key go together"));
        }
        let tls_max_version = self.tls_version("server.tls_max_version", s.tls_max_version.as_deref())?;
        let tls_min_version = self.tls_version("server.tls_min_version", s.tls_min_version.as_deref())?;
        if tls_min_version == Some(TlsVersion::V1_3) && tls_max_version == Some(TlsVersion::V1_2) {
            return Err(self.err(
                "server.tls_min_version",
                "tls_min_version \"1.3\" and tls_max_version \"1.2\" leave no TLS version",
            ));
        }
        let connections = s.connections.unwrap_or(4);
        if !(1..=64).contains(&connections) {
            return Err(self.err("server.connections", "must be between 1 and 64"));
        }
        // Off unless asked for: measured here (2 cores, loopback and a 20 ms delay proxy),
        // ranges never beat one stream, and cost 14% at 20 ms (docs/benchmarks.md).
        let segment_from = match s.segment_from.as_deref().map(str::trim) {
            None | Some("off") => None,
            Some(size) => match parse_size(size) {
                Ok(n) if n >= MIN_SEGMENT_FROM => Some(n),
                Ok(_) => {
                    return Err(self.err(
                        "server.segment_from",
                        "must be at least 1MiB (smaller files gain nothing from segments), or off",
                    ));
                }
                Err(m) => return Err(self.err("server.segment_from", format!("{m}, or off"))),
            },
        };
        let timeout = self.duration("server.timeout", s.timeout.as_deref(), Duration::from_secs(30))?;
        if timeout.is_zero() {
            return Err(self.err("server.timeout", "must be more than 0"));
        }
        for (key, value) in [("server.user", &s.user), ("server.host", &s.host)] {
            if value.contains(['\r', '\n', '\0']) {
                return Err(self.err(key, "must be one line"));
            }
        }
        Ok(Server {
            host: s.host,
            port,
            tls,
            tls_max_version,
            tls_min_version,
            user: s.user,
            password,
            password_file: s.password_file.as_ref().map(|p| self.resolve(p)),
            ca_file: s.ca_file.map(|p| self.resolve(&p)),
            fingerprint_sha256,
            client_cert: s.client_cert.map(|p| self.resolve(&p)),
            client_key: s.client_key.map(|p| self.resolve(&p)),
            passive: s.passive.unwrap_or(true),
            connections,
            segment_from,
            timeout,
        })
    }

    fn folder(&self, i: usize, f: RawFolder) -> Result<Folder> {
        let key = |k: &str| format!("folders[{i}].{k}");
        if f.name.is_empty()
            || !f
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || f.name.starts_with('.')
        {
            return Err(self.err(
                &key("name"),
                "use letters, digits, '-', '_' and '.' (it names the state file)",
            ));
        }
        if !f.local.is_absolute() {
            return Err(self.err(
                &key("local"),
                format!("{} is relative: write an absolute path", f.local.display()),
            ));
        }
        if !f.local.is_dir() {
            return Err(self.err(
                &key("local"),
                format!("{} is not an existing directory", f.local.display()),
            ));
        }
        if f.remote.is_empty() || f.remote.contains(['\r', '\n', '\0']) {
            return Err(self.err(
                &key("remote"),
                "must be a non-empty one-line path such as /incoming/reports",
            ));
        }
        if f.remote.split('/').any(|c| c == "..") {
            return Err(self.err(&key("remote"), "must not contain '..'"));
        }
        for (j, pattern) in f.ignore.iter().enumerate() {
            if let Err(e) = globset::Glob::new(pattern) {
                return Err(self.err(&format!("folders[{i}].ignore[{j}]"), format!("bad pattern: {e}")));
            }
        }
        let max_delete_percent = f.max_delete_percent.unwrap_or(50);
        if max_delete_percent > 100 {
            return Err(self.err(&key("max_delete_percent"), "must be 0-100"));
        }
        Ok(Folder {
            name: f.name,
            local: f.local,
            remote: f.remote,
            direction: f.direction.unwrap_or(Direction::Both),
            delete: f.delete.unwrap_or(true),
            conflict: f.conflict.unwrap_or(ConflictPolicy::KeepBoth),
            ignore: f.ignore,
            exclude: Vec::new(),
            max_delete: DeleteLimit::Percent(max_delete_percent),
            first_sync: f.first_sync.unwrap_or_default(),
            detect_moves: f.detect_moves.unwrap_or(true),
        })
    }
}

fn readable_by_others(file: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(file).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        false
    }
}

/// `30s`, `500ms`, `5m`, `1h 30m`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("bad duration {s:?} ({e}); write e.g. \"30s\", \"500ms\", \"5m\""))
}

/// `10MiB/s`, `500KB/s`, `1048576` (bytes per second).
pub fn parse_rate(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t).trim();
    let v = bytes(t).map_err(|bad| match bad {
        BadBytes::Number => format!("bad rate {s:?}; write e.g. \"10MiB/s\""),
        BadBytes::Unit => format!("bad unit in {s:?}; use B, KB, MB, GB, KiB, MiB or GiB per second"),
    })?;
    if v.is_nan() || v < 1.0 {
        return Err(format!("rate {s:?} must be at least 1 byte per second"));
    }
    Ok(v as u64)
}

/// A size such as `64MiB` or `1.5GB`.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let v = bytes(s.trim()).map_err(|bad| match bad {
        BadBytes::Number => format!("bad size {s:?}; write e.g. \"64MiB\""),
        BadBytes::Unit => format!("bad unit in {s:?}; use B, KB, MB, GB, KiB, MiB or GiB"),
    })?;
    if v.is_nan() || v < 0.0 {
        return Err(format!("bad size {s:?}; write e.g. \"64MiB\""));
    }
    Ok(v as u64)
}

enum BadBytes {
    Number,
    Unit,
}

/// A number of bytes with an optional unit, as a float (the callers bound it).
fn bytes(t: &str) -> std::result::Result<f64, BadBytes> {
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().map_err(|_| BadBytes::Number)?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(BadBytes::Unit),
    };
    Ok(num * mult)
}

pub fn parse_fingerprint(s: &str) -> Option<[u8; 32]> {
    let hex: String = s.chars().filter(|c| *c != ':' && !c.is_whitespace()).collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

pub fn format_fingerprint(fp: &[u8]) -> String {
    fp.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
