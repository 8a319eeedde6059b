//! The YAML configuration contract (DESIGN.md §3): parsing, defaults, validation, secrets.
//!
//! Config rejects, never clamps: an unknown key, a bad duration or a contradiction is an error
//! naming the key with line and column, and saying what to write instead.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
pub use crate::reconcile::policy::{ConflictPolicy, Direction};

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
    pub log: Log,
    /// Things that work but should be fixed, logged once logging is set up.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub tls_max_version: Option<TlsVersion>,
    pub user: String,
    pub password: Secret,
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of the server certificate's DER, when pinned.
    pub fingerprint_sha256: Option<[u8; 32]>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub passive: bool,
    pub connections: usize,
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
    pub max_delete_percent: u8,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    folders: Vec<RawFolder>,
    state_dir: Option<PathBuf>,
    poll_interval: Option<String>,
    debounce: Option<String>,
    retry: Option<RawRetry>,
    verify: Option<Verify>,
    bandwidth_limit: Option<String>,
    log: Option<RawLog>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    host: String,
    port: Option<u16>,
    tls: Option<TlsMode>,
    #[serde(default)]
    insecure_plaintext: bool,
    tls_max_version: Option<String>,
    user: String,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    fingerprint_sha256: Option<String>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    passive: Option<bool>,
    connections: Option<usize>,
    timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFolder {
    name: String,
    local: PathBuf,
    remote: String,
    direction: Option<Direction>,
    delete: Option<bool>,
    conflict: Option<ConflictPolicy>,
    #[serde(default)]
    ignore: Vec<String>,
    max_delete_percent: Option<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    attempts: Option<u32>,
    initial_backoff: Option<String>,
    max_backoff: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    format: Option<LogFormat>,
    file: Option<PathBuf>,
}

/// Where `-c` points when it is not given: `$FTPS_SYNC_CONFIG`, `./ftps-sync.yaml`, then the
/// platform config dir.
pub fn default_config_path() -> PathBuf {
    if let Some(p) = std::env::var_os("FTPS_SYNC_CONFIG") {
        return PathBuf::from(p);
    }
    let here = PathBuf::from("ftps-sync.yaml");
    if here.exists() {
        return here;
    }
    platform_config_dir().join("config.yaml")
}

fn platform_config_dir() -> PathBuf {
    platform_dir("XDG_CONFIG_HOME", ".config/ftps-sync", "/etc/ftps-sync")
}

pub fn platform_data_dir() -> PathBuf {
    platform_dir("XDG_DATA_HOME", ".local/share/ftps-sync", "/var/lib/ftps-sync")
}

/// `%ProgramData%\ftps-sync` on Windows; elsewhere `$XDG_…/ftps-sync`, `~/<home_rel>`, or the
/// system-wide `root_dir` for root.
fn platform_dir(xdg_var: &str, home_rel: &str, root_dir: &str) -> PathBuf {
    if cfg!(windows) {
        let base = std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into());
        return PathBuf::from(base).join("ftps-sync");
    }
    if let Some(x) = std::env::var_os(xdg_var) {
        return PathBuf::from(x).join("ftps-sync");
    }
    match std::env::var_os("HOME") {
        Some(h) if !is_root() => PathBuf::from(h).join(home_rel),
        _ => PathBuf::from(root_dir),
    }
}

fn is_root() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions and cannot fail. ($USER is not set under sudo
        // or systemd, so it cannot tell.)
        unsafe { libc::geteuid() == 0 }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

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

struct Validator<'a> {
    text: &'a str,
    source: &'a Path,
    /// Whether a system service will run with this config (see `Config::load_for_service`).
    for_service: bool,
    warnings: std::cell::RefCell<Vec<String>>,
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

    fn duration(&self, key: &str, value: Option<&str>, default: Duration) -> Result<Duration> {
        match value {
            None => Ok(default),
            Some(s) => parse_duration(s).map_err(|m| self.err(key, m)),
        }
    }

    fn validate(&self, raw: RawConfig) -> Result<Config> {
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
        Ok(Config {
            source: self.source.to_owned(),
            server,
            folders,
            state_dir: raw
                .state_dir
                .map(|p| self.resolve(&p))
                .unwrap_or_else(platform_data_dir),
            poll_interval: self.duration(
                "poll_interval",
                raw.poll_interval.as_deref(),
                Duration::from_secs(60),
            )?,
            debounce: self.duration("debounce", raw.debounce.as_deref(), Duration::from_millis(500))?,
            retry,
            verify: raw.verify.unwrap_or(Verify::Auto),
            bandwidth_limit,
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
        let tls_max_version = match s.tls_max_version.as_deref() {
            None => None,
            Some("1.2") => Some(TlsVersion::V1_2),
            Some("1.3") => Some(TlsVersion::V1_3),
            Some(other) => {
                return Err(self.err(
                    "server.tls_max_version",
                    format!("unknown TLS version {other:?}; write \"1.2\" or \"1.3\""),
                ));
            }
        };
        let connections = s.connections.unwrap_or(4);
        if !(1..=64).contains(&connections) {
            return Err(self.err("server.connections", "must be between 1 and 64"));
        }
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
            user: s.user,
            password,
            ca_file: s.ca_file.map(|p| self.resolve(&p)),
            fingerprint_sha256,
            client_cert: s.client_cert.map(|p| self.resolve(&p)),
            client_key: s.client_key.map(|p| self.resolve(&p)),
            passive: s.passive.unwrap_or(true),
            connections,
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
            max_delete_percent,
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
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("bad rate {s:?}; write e.g. \"10MiB/s\""))?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "bad unit in {s:?}; use B, KB, MB, GB, KiB, MiB or GiB per second"
            ));
        }
    };
    let v = num * mult;
    if v.is_nan() || v < 1.0 {
        return Err(format!("rate {s:?} must be at least 1 byte per second"));
    }
    Ok(v as u64)
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

/// Finds the 1-based (line, column) of a dotted key such as `server.port` or
/// `folders[1].local` in YAML text written in block style. Used to point validation errors (which
/// serde does not locate) at the right line.
fn locate_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0usize; // first line of the current block
    let mut min_indent = 0usize; // the block's keys are at least this indented
    let mut found = None;
    for segment in key.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let (line, indent) = find_key_line(&lines, start, min_indent, name)?;
        found = Some((line + 1, indent + 1));
        start = line + 1;
        min_indent = indent + 1;
        if let Some(n) = index {
            // The n-th "- " item below the key.
            let mut seen = 0;
            let mut item = None;
            for (j, l) in lines.iter().enumerate().skip(start) {
                let ind = l.len() - l.trim_start().len();
                if l.trim().is_empty() || l.trim_start().starts_with('#') {
                    continue;
                }
                if ind < min_indent.saturating_sub(1) && !l.trim_start().starts_with('-') {
                    break;
                }
                if l.trim_start().starts_with("- ") || l.trim() == "-" {
                    if seen == n {
                        item = Some((j, ind));
                        break;
                    }
                    seen += 1;
                }
            }
            let (j, ind) = item?;
            found = Some((j + 1, ind + 1));
            start = j;
            min_indent = ind;
        }
    }
    found
}

fn find_key_line(lines: &[&str], start: usize, min_indent: usize, name: &str) -> Option<(usize, usize)> {
    for (j, l) in lines.iter().enumerate().skip(start) {
        let body = l.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let mut ind = l.len() - body.len();
        let body = match body.strip_prefix("- ") {
            Some(b) => {
                ind += 2;
                b.trim_start()
            }
            None => body,
        };
        if ind < min_indent && j > start {
            return None;
        }
        if body.starts_with(&format!("{name}:")) {
            return Some((j, ind));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/etc/ftps-sync/test.yaml"))
    }

    fn base(extra_server: &str, extra_folder: &str) -> String {
        // SAFETY of env: tests set a variable only they read.
        // An existing absolute folder on every system (`/tmp` is not absolute on Windows).
        let local = std::env::temp_dir();
        format!(
            "server:\n  host: h\n  user: u\n  password_env: FTPS_SYNC_TEST_PW\n{extra_server}folders:\n  - name: f\n    local: {}\n    remote: /r\n{extra_folder}",
            local.display()
        )
    }

    fn set_pw() {
        // Tests read one variable, always set to the same value.
        unsafe { std::env::set_var("FTPS_SYNC_TEST_PW", "pw") };
    }

    fn config_err(r: Result<Config>) -> (String, Option<usize>) {
        match r {
            Err(Error::Config { key, line, .. }) => (key, line),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        set_pw();
        let c = parse(&base("", "")).unwrap();
        assert_eq!(c.server.port, 21);
        assert_eq!(c.server.password.expose(), "pw");
        assert_eq!(c.folders[0].direction, Direction::Both);
        assert_eq!(c.folders[0].conflict, ConflictPolicy::KeepBoth);
        assert_eq!(c.poll_interval, Duration::from_secs(60));
        assert!(!format!("{c:?}").contains("\"pw\""));
    }

    #[test]
    fn unknown_key_is_located() {
        set_pw();
        let (key, line) = config_err(parse(&base("  colour: blue\n", "")));
        assert_eq!(line, Some(5));
        assert!(key.contains("server"), "{key}");
    }

    #[test]
    fn both_passwords_refused_at_their_line() {
        set_pw();
        let (key, line) = config_err(parse(&base("  password_file: /x\n", "")));
        assert_eq!(key, "server.password_file");
        assert_eq!(line, Some(5));
    }

    #[test]
    fn bad_duration_and_relative_root() {
        set_pw();
        let (key, line) = config_err(parse(&format!("{}poll_interval: soon\n", base("", ""))));
        assert_eq!((key.as_str(), line), ("poll_interval", Some(9)));
        let text = base("", "").replace(
            &format!("local: {}", std::env::temp_dir().display()),
            "local: tmp",
        );
        let (key, line) = config_err(parse(&text));
        assert_eq!((key.as_str(), line), ("folders[0].local", Some(7)));
    }

    #[test]
    fn plaintext_needs_opt_in() {
        set_pw();
        let (key, _) = config_err(parse(&base("  tls: none\n", "")));
        assert_eq!(key, "server.tls");
        assert!(parse(&base("  tls: none\n  insecure_plaintext: true\n", "")).is_ok());
    }

    #[test]
    #[cfg(unix)]
    fn a_password_file_readable_by_others_is_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "secret\n").unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = base("", "").replace(
            "password_env: FTPS_SYNC_TEST_PW",
            &format!("password_file: {}", pw.display()),
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.server.password.expose(), "secret");
        assert!(
            c.warnings.iter().any(|w| w.contains("chmod 600")),
            "{:?}",
            c.warnings
        );
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(parse(&text).unwrap().warnings.is_empty());
    }

    #[test]
    fn rates_and_fingerprints() {
        assert_eq!(parse_rate("10MiB/s").unwrap(), 10 * 1024 * 1024);
        assert_eq!(parse_rate("500 KB/s").unwrap(), 500_000);
        assert!(parse_rate("fast").is_err());
        let fp = [0xABu8; 32];
        assert_eq!(parse_fingerprint(&format_fingerprint(&fp)), Some(fp));
        assert_eq!(parse_fingerprint("AB:CD"), None);
    }
}
