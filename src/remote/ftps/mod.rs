//! The suppaftp adapter: one logged-in FTPS control connection.
//!
//! What it adds around suppaftp: the TLS policy (see `tls`), a timeout on every await (suppaftp
//! has none), FEAT probing, our own listing parsers, server hash commands and MFMT, raw replies
//! for codes suppaftp does not know, and errors that name the command, path and reply.
//!
//! Its parts: `connect` (TLS, login, FEAT probing), `data` (data connections: EPSV/PASV and
//! TLS session resumption), `transfer` (RETR and STOR over them), `reply` (timeouts and
//! errors), `sent` (the TLS stream under suppaftp); FEAT itself is read in `features`.

pub mod cert;
mod connect;
mod connector;
mod data;
pub mod features;
mod reply;
mod resume;
mod sent;
pub mod tls;
mod transfer;

use std::sync::Arc;
use std::sync::atomic::AtomicU8;
use std::time::Duration;

use chrono::Utc;
use suppaftp::tokio::ImplAsyncFtpStream;
use suppaftp::{FtpError, Status};
use tokio::sync::mpsc;

use super::learned::{Identity, ServerMemory};
use super::limit::RateLimiter;
use super::listing::{Listed, parse_list_line, parse_mlsd};
use super::{Capabilities, Remote};
use crate::config::Server;
use crate::digest::HashAlgo;
use crate::error::{Error, Result};
pub use connector::FtpsConnector;
use data::LinesCommand;
pub use data::Quirks;
pub use features::{Features, HashCommand, ListingMode, MtimeSupport};
use reply::{map_error, reply_code, reply_lines, within};
use tls::{SessionStore, TlsContext, TlsInfo};

type Stream = ImplAsyncFtpStream<sent::SentTls>;

const CHUNK: usize = 256 * 1024;

pub struct Ftps {
    stream: Stream,
    server: String,
    timeout: Duration,
    pub features: Features,
    pub listing: ListingMode,
    pub hash: Option<HashCommand>,
    pub mtime: MtimeSupport,
    pub tls: Option<TlsInfo>,
    pub welcome: String,
    /// Whether `LIST -a` works here.
    list_all: bool,
    limiter: Option<Arc<RateLimiter>>,
    /// Whether data commands use EPSV (else PASV); only in passive mode.
    epsv: bool,
    /// Why this connection left EPSV for PASV, until PASV has worked once.
    epsv_unconfirmed: Option<String>,
    /// Whether the control connection's peer is an IPv6 address (no PASV fallback there).
    peer_v6: bool,
    dial: Arc<AtomicU8>,
    quirks: Arc<Quirks>,
    /// What is known of the server across runs (`learned`).
    memory: Arc<ServerMemory>,
    /// Where the current data connection stands on resuming the control session.
    resume: resume::DataSession,
    /// The control connection's TLS sessions, which its data connections resume.
    sessions: Arc<SessionStore>,
    /// Whether the control connection runs TLS 1.3, whose tickets are spent one per data
    /// connection (see `SessionStore`).
    tls13: bool,
    /// The directory of the last CWD, for a renewed connection to go back to.
    cwd: Option<String>,
    /// What this connection was made from, to make a fresh one when its tickets are spent.
    config: Server,
    context: TlsContext,
    /// The buffer downloads read into, kept: zeroing 256 KiB per small file cost more CPU
    /// than the file.
    read_buf: Vec<u8>,
    /// The server ended the session, and the command that saw it succeeded all the same.
    broken: bool,
    /// A data connection's shutdown that failed (`sent::ShutdownError`).
    shutdown: sent::ShutdownError,
}

impl Ftps {
    /// Sends one command line and returns whatever the server replied: its code, and its text
    /// with one line per reply line.
    async fn raw(&mut self, line: &str, command: &'static str, path: &str) -> Result<(Option<u16>, String)> {
        if line.contains(['\r', '\n']) {
            return Err(Error::UnsafeName {
                name: path.to_owned(),
                reason: "line break in a command",
            });
        }
        let fut = self.stream.custom_command(line, &[Status::Unknown]);
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(Error::Timeout {
                command,
                path: path.to_owned(),
                seconds: self.timeout.as_secs(),
            }),
            Ok(Ok(r)) | Ok(Err(FtpError::UnexpectedResponse(r))) => {
                Ok((reply_code(&r.body), reply_lines(&r.body)))
            }
            Ok(Err(e)) => Err(map_error(e, command, path)),
        }
    }

    fn reply_err(command: &'static str, path: &str, code: Option<u16>, reply: String) -> Error {
        Error::Reply {
            command,
            path: path.to_owned(),
            code,
            reply: reply.replace('\n', " | "),
        }
    }

    /// Shares `bandwidth_limit` with the other connections of a pool.
    pub fn set_limiter(&mut self, limiter: Option<Arc<RateLimiter>>) {
        self.limiter = limiter;
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// The entries of one directory. A 550 (no such directory) comes back as `Error::Reply`.
    pub async fn list_dir(&mut self, path: &str) -> Result<Vec<Listed>> {
        let t = self.timeout * 4;
        match self.listing {
            ListingMode::Mlsd => {
                self.data_listing(t, "MLSD", path, LinesCommand::Mlsd(path), &parse_mlsd)
                    .await
            }
            ListingMode::List => {
                // CWD first: some servers treat a LIST argument as a glob pattern.
                within(self.timeout, "CWD", path, self.stream.cwd(path)).await?;
                self.cwd = Some(path.to_owned());
                self.list_here(path).await
            }
        }
    }

    /// `LIST -a` in the current directory (vsftpd hides dot files from a bare LIST), falling
    /// back to a bare `LIST` for servers that take `-a` as a file name.
    async fn list_here(&mut self, path: &str) -> Result<Vec<Listed>> {
        let t = self.timeout * 4;
        let now = Utc::now();
        let parse = |l: &str| parse_list_line(l, now);
        if self.list_all {
            match self
                .data_listing(t, "LIST", path, LinesCommand::List(Some("-a")), &parse)
                .await
            {
                Err(Error::Reply { code: Some(c), .. }) if c >= 500 => self.list_all = false,
                other => return other,
            }
        }
        self.data_listing(t, "LIST", path, LinesCommand::List(None), &parse)
            .await
    }

    /// What the listing would say about one file, from the same source as `list_dir` so the
    /// two can be compared: MLST when the server lists with MLSD, else the LIST line.
    pub async fn stat(&mut self, path: &str) -> Result<Option<Listed>> {
        match self.listing {
            ListingMode::Mlsd => {
                let (code, text) = self.raw(&format!("MLST {path}"), "MLST", path).await?;
                match code {
                    Some(250) => Ok(text.lines().nth(1).and_then(parse_mlsd)),
                    Some(550) => Ok(None),
                    _ => Err(Self::reply_err("MLST", path, code, text)),
                }
            }
            ListingMode::List => {
                let (dir, name) = match path.rsplit_once('/') {
                    Some(("", n)) => ("/", n),
                    Some((d, n)) => (d, n),
                    None => (".", path),
                };
                // One line for one file (`LIST -a <path>`) when nothing in the name could be read
                // as a pattern; otherwise, or if that finds nothing, the whole directory.
                if self.list_all && !path.contains(['*', '?', '[', ']', '{', '}', '~']) {
                    let arg = format!("-a {path}");
                    let now = Utc::now();
                    let parse = |l: &str| parse_list_line(l, now);
                    let listed = self
                        .data_listing(self.timeout, "LIST", path, LinesCommand::List(Some(&arg)), &parse)
                        .await;
                    match listed {
                        Ok(entries) => {
                            let found = entries
                                .into_iter()
                                .find(|e| e.name == name || e.name.ends_with(&format!("/{name}")));
                            if found.is_some() {
                                return Ok(found);
                            }
                        }
                        Err(e @ Error::TooLarge { .. }) => return Err(e),
                        Err(_) => {}
                    }
                }
                match self.list_dir(dir).await {
                    Ok(entries) => Ok(entries.into_iter().find(|e| e.name == name)),
                    Err(Error::Reply { code: Some(550), .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// A file's time to the second: MLST's where the server lists with MLSD, else MDTM's
    /// where FEAT lists it.
    pub async fn modified(&mut self, path: &str) -> Result<Option<crate::reconcile::Mtime>> {
        if self.listing == ListingMode::Mlsd {
            return match self.stat(path).await? {
                Some(l) => Ok(l.mtime),
                None => Err(Self::reply_err("MLST", path, Some(550), "no such file".into())),
            };
        }
        if !self.features.has("MDTM") {
            return Ok(None);
        }
        let (code, text) = self.raw(&format!("MDTM {path}"), "MDTM", path).await?;
        match code {
            Some(213) => Ok(text
                .get(4..)
                .and_then(|t| super::listing::parse_mlsd_time(t.trim()))),
            _ => Err(Self::reply_err("MDTM", path, code, text)),
        }
    }

    /// Whether `path` is a folder that exists, with no data connection: MLST where the server
    /// lists with MLSD, else CWD (which stays the current directory).
    pub async fn dir_exists(&mut self, path: &str) -> Result<bool> {
        if self.listing == ListingMode::Mlsd {
            let (code, text) = self.raw(&format!("MLST {path}"), "MLST", path).await?;
            return match code {
                // Some servers call the folder itself `cdir` in MLST.
                Some(250) => Ok(text.lines().nth(1).is_some_and(|line| {
                    let facts = line.trim_start().split(' ').next().unwrap_or("");
                    facts
                        .split(';')
                        .any(|f| f.eq_ignore_ascii_case("type=dir") || f.eq_ignore_ascii_case("type=cdir"))
                })),
                Some(550) => Ok(false),
                _ => Err(Self::reply_err("MLST", path, code, text)),
            };
        }
        let (code, text) = self.raw(&format!("CWD {path}"), "CWD", path).await?;
        match code {
            Some(250) => {
                self.cwd = Some(path.to_owned());
                Ok(true)
            }
            Some(550) => Ok(false),
            _ => Err(Self::reply_err("CWD", path, code, text)),
        }
    }

    /// Whether anything exists at `path`, as cheaply as the server allows (no data connection).
    pub async fn exists(&mut self, path: &str) -> Result<bool> {
        if self.listing == ListingMode::Mlsd {
            return Ok(self.stat(path).await?.is_some());
        }
        let (code, text) = self.raw(&format!("SIZE {path}"), "SIZE", path).await?;
        match code {
            Some(213) => Ok(true),
            Some(550) => Ok(false),
            _ => Err(Self::reply_err("SIZE", path, code, text)),
        }
    }

    pub async fn size(&mut self, path: &str) -> Result<u64> {
        let (code, text) = self.raw(&format!("SIZE {path}"), "SIZE", path).await?;
        match code {
            Some(213) => text
                .get(4..)
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| Self::reply_err("SIZE", path, code, text.clone())),
            _ => Err(Self::reply_err("SIZE", path, code, text)),
        }
    }

    /// Sets the remote modification time. `Ok(false)` when the server cannot.
    pub async fn set_mtime(&mut self, path: &str, unix_secs: i64) -> Result<bool> {
        let Some(t) = chrono::DateTime::from_timestamp(unix_secs, 0) else {
            return Ok(false);
        };
        let stamp = t.format("%Y%m%d%H%M%S");
        let (line, command) = match self.mtime {
            MtimeSupport::Mfmt => (format!("MFMT {stamp} {path}"), "MFMT"),
            MtimeSupport::MdtmWrite => (format!("MDTM {stamp} {path}"), "MDTM"),
            MtimeSupport::None => return Ok(false),
        };
        let (code, text) = self.raw(&line, command, path).await?;
        match code {
            Some(213) | Some(200) | Some(250) => Ok(true),
            _ => {
                tracing::debug!(path, reply = %text, "cannot set remote mtime");
                if self.mtime == MtimeSupport::MdtmWrite {
                    self.mtime = MtimeSupport::None;
                }
                Ok(false)
            }
        }
    }

    /// The server's digest of a stored file, when it offers a hash command.
    pub async fn hash(&mut self, path: &str) -> Result<Option<(HashAlgo, String)>> {
        let Some(cmd) = self.hash else { return Ok(None) };
        let line = match cmd {
            HashCommand::Hash(_) => format!("HASH {path}"),
            HashCommand::X(HashAlgo::Sha256) => format!("XSHA256 {path}"),
            HashCommand::X(HashAlgo::Sha1) => format!("XSHA1 {path}"),
            HashCommand::X(HashAlgo::Md5) => format!("XMD5 {path}"),
        };
        let (code, text) = self.raw(&line, "HASH", path).await?;
        if !matches!(code, Some(213) | Some(250)) {
            return Err(Self::reply_err("HASH", path, code, text));
        }
        // "213 SHA-256 0-1234 <hex> <name>" or "213 <hex>" / "250 <hex>".
        let hex = text
            .get(4..)
            .unwrap_or("")
            .split_whitespace()
            .find(|w| w.len() >= 32 && w.chars().all(|c| c.is_ascii_hexdigit()))
            .map(|w| w.to_ascii_lowercase());
        match hex {
            Some(h) => Ok(Some((cmd.algo(), h))),
            None => Err(Self::reply_err("HASH", path, code, text)),
        }
    }

    pub async fn mkdir(&mut self, path: &str) -> Result<()> {
        within(self.timeout, "MKD", path, self.stream.mkdir(path)).await
    }

    pub async fn rmdir(&mut self, path: &str) -> Result<()> {
        within(self.timeout, "RMD", path, self.stream.rmdir(path)).await
    }

    pub async fn remove(&mut self, path: &str) -> Result<()> {
        within(self.timeout, "DELE", path, self.stream.rm(path)).await
    }

    pub async fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        within(self.timeout, "RNFR/RNTO", from, self.stream.rename(from, to)).await
    }

    pub async fn noop(&mut self) -> Result<()> {
        within(self.timeout, "NOOP", "", self.stream.noop()).await
    }

    /// Logs out, waiting two seconds at most for the server's goodbye.
    pub async fn quit(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.quit()).await;
    }
}

impl Ftps {
    /// How data connections are opened now: `EPSV`, `PASV` or `active`.
    pub fn data_mode(&self) -> &'static str {
        match (self.config.passive, self.epsv) {
            (false, _) => "active",
            (true, true) => "EPSV",
            (true, false) => "PASV",
        }
    }

    /// What the run learned of the server's data connections so far.
    pub fn quirks(&self) -> &Quirks {
        &self.quirks
    }

    /// Who the server is, for what is learned of it.
    pub fn identity(&self) -> Identity {
        let fingerprint = self.tls.as_ref().map_or("", |t| t.fingerprint.as_str());
        Identity::new(fingerprint, &self.welcome)
    }

    /// What the engine may count on (see `Remote`).
    pub fn capabilities(&self) -> Capabilities {
        Capabilities {
            exact_listing: self.listing == ListingMode::Mlsd,
            hash: self.hash.map(HashCommand::algo),
            resume_get: self.features.has("REST"),
        }
    }
}

#[async_trait::async_trait]
impl Remote for Ftps {
    fn capabilities(&self) -> Capabilities {
        Ftps::capabilities(self)
    }
    async fn list(&mut self, dir: &str) -> Result<Vec<Listed>> {
        self.list_dir(dir).await
    }
    async fn stat(&mut self, path: &str) -> Result<Option<Listed>> {
        Ftps::stat(self, path).await
    }
    async fn exists(&mut self, path: &str) -> Result<bool> {
        Ftps::exists(self, path).await
    }
    async fn modified(&mut self, path: &str) -> Result<Option<crate::reconcile::Mtime>> {
        Ftps::modified(self, path).await
    }
    async fn size(&mut self, path: &str) -> Result<u64> {
        Ftps::size(self, path).await
    }
    async fn get(&mut self, path: &str, offset: u64, sink: &mpsc::Sender<Vec<u8>>) -> Result<u64> {
        self.download(path, offset, sink).await
    }
    async fn get_range(
        &mut self,
        path: &str,
        offset: u64,
        len: u64,
        sink: &mpsc::Sender<Vec<u8>>,
    ) -> Result<u64> {
        self.download_range(path, offset, len, sink).await
    }
    async fn put(&mut self, path: &str, offset: u64, source: &mut mpsc::Receiver<Vec<u8>>) -> Result<u64> {
        // FTP resumes an upload by appending (APPE) to what the server holds.
        self.upload(path, source, offset > 0).await
    }
    async fn put_at(&mut self, path: &str, offset: u64, source: &mut mpsc::Receiver<Vec<u8>>) -> Result<u64> {
        self.upload_at(path, offset, source).await
    }
    async fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        Ftps::rename(self, from, to).await
    }
    async fn remove(&mut self, path: &str) -> Result<()> {
        Ftps::remove(self, path).await
    }
    async fn mkdir(&mut self, path: &str) -> Result<()> {
        Ftps::mkdir(self, path).await
    }
    async fn rmdir(&mut self, path: &str) -> Result<()> {
        Ftps::rmdir(self, path).await
    }
    async fn set_mtime(&mut self, path: &str, unix_secs: i64) -> Result<bool> {
        Ftps::set_mtime(self, path, unix_secs).await
    }
    async fn hash(&mut self, path: &str) -> Result<Option<(HashAlgo, String)>> {
        Ftps::hash(self, path).await
    }
    async fn noop(&mut self) -> Result<()> {
        Ftps::noop(self).await
    }
    async fn quit(&mut self) {
        Ftps::quit(self).await
    }
    fn reusable(&self) -> bool {
        !self.broken
    }
}
