//! The suppaftp adapter: one logged-in FTPS control connection.
//!
//! What it adds around suppaftp: the TLS policy (see `tls`), a timeout on every await (suppaftp
//! has none), FEAT probing, our own listing parsers, server hash commands and MFMT, raw replies
//! for codes suppaftp does not know, and errors that name the command, path and reply.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use suppaftp::tokio::{AsyncRustlsStream, AsyncTlsConnector, ImplAsyncFtpStream};
use suppaftp::types::FileType;
use suppaftp::{FtpError, FtpResult, Mode, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::limit::RateLimiter;
use super::listing::{Listed, parse_list_line, parse_mlsd};
use super::tls::{SessionStore, TlsContext, TlsInfo};
use crate::config::{Server, TlsMode};
use crate::digest::HashAlgo;
use crate::error::{Error, Result};

type Stream = ImplAsyncFtpStream<AsyncRustlsStream>;

const CHUNK: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingMode {
    Mlsd,
    List,
}

/// How the server lets us set a file's modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtimeSupport {
    Mfmt,
    /// vsftpd's two-argument `MDTM YYYYMMDDhhmmss path`: tried once, dropped if refused.
    MdtmWrite,
    None,
}

/// How the server computes a hash of a stored file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashCommand {
    /// RFC draft `HASH` (after `OPTS HASH <algo>`).
    Hash(HashAlgo),
    /// `XSHA256`, `XSHA1`, `XMD5`.
    X(HashAlgo),
}

impl HashCommand {
    pub fn algo(self) -> HashAlgo {
        match self {
            HashCommand::Hash(a) | HashCommand::X(a) => a,
        }
    }
}

/// The server's FEAT reply: one feature per line, e.g. `MLST type*;size*;modify*;`.
#[derive(Debug, Clone, Default)]
pub struct Features {
    pub lines: Vec<String>,
}

impl Features {
    fn parse(reply: &str) -> Features {
        let lines = reply
            .lines()
            .filter(|l| l.starts_with(' ')) // RFC 2389: feature lines start with a space
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        Features { lines }
    }

    /// The arguments of feature `name`, if offered (`Some("")` when it has none).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.lines.iter().find_map(|l| {
            let (head, rest) = l.split_once(' ').unwrap_or((l, ""));
            head.eq_ignore_ascii_case(name).then_some(rest)
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// TLS connector that records what was negotiated on the control connection.
struct Connector {
    inner: tokio_rustls::TlsConnector,
    info: Arc<Mutex<Option<TlsInfo>>>,
    context: TlsContext,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connector")
    }
}

#[async_trait::async_trait]
impl AsyncTlsConnector for Connector {
    type Stream = AsyncRustlsStream;

    async fn connect(&self, domain: &str, stream: TcpStream) -> FtpResult<AsyncRustlsStream> {
        let name = rustls::pki_types::ServerName::try_from(domain.to_owned())
            .map_err(|e| FtpError::SecureError(format!("bad server name {domain:?}: {e}")))?;
        let tls = self.inner.connect(name, stream).await.map_err(|e| {
            let mut message = e.to_string();
            if let Some(fp) = self.context.seen_fingerprint() {
                message.push_str(&format!(" (server certificate SHA-256 {fp})"));
            }
            FtpError::SecureError(message)
        })?;
        if let Ok(mut info) = self.info.lock()
            && info.is_none()
        {
            let (_, conn) = tls.get_ref();
            *info = Some(TlsInfo {
                version: conn
                    .protocol_version()
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_default(),
                cipher: conn
                    .negotiated_cipher_suite()
                    .map(|c| format!("{:?}", c.suite()))
                    .unwrap_or_default(),
                fingerprint: self.context.seen_fingerprint().unwrap_or_default(),
            });
        }
        Ok(AsyncRustlsStream::from(tls))
    }
}

/// What a run learns about its server and keeps for every later connection to it. It lives in
/// the run's `TlsContext`, which every connection of the run shares.
#[derive(Debug, Default)]
pub struct Quirks {
    /// The server lists EPSV in FEAT but refuses it, or its EPSV data connections never arrive
    /// (a firewall or NAT helper that knows only PASV). rclone has `--ftp-disable-epsv` for
    /// this; lftp falls back by itself, and so do we.
    epsv_broken: AtomicBool,
    /// EPSV commands that got no answer at all within the timeout.
    epsv_stalls: AtomicUsize,
    /// The server gives TLS 1.3 data connections no session tickets (ProFTPD), so control
    /// connections are renewed as their tickets run out: said once, as it is slow.
    tickets_run_out: AtomicBool,
    /// A data connection that did not resume the control session was refused (`425`).
    resumption_required: AtomicBool,
    /// A fresh TLS 1.3 login brought no session ticket: data connections cannot resume.
    no_tickets: AtomicBool,
}

impl Quirks {
    pub fn epsv_broken(&self) -> bool {
        self.epsv_broken.load(Ordering::SeqCst)
    }

    /// Records that EPSV does not work here; true only the first time, so it is logged once.
    fn break_epsv(&self) -> bool {
        !self.epsv_broken.swap(true, Ordering::SeqCst)
    }
}

/// How far the data connection of the current data command got; set by our passive stream
/// builder, so a failure can be told apart: EPSV refused (never dialled), its connection never
/// arriving (dialling, or failed to dial), or the command itself failing (connected).
const DIAL_NONE: u8 = 0;
const DIAL_STARTED: u8 = 1;
const DIAL_FAILED: u8 = 2;
const DIAL_DONE: u8 = 3;

/// A data command that returns lines (listings).
enum LinesCommand<'a> {
    Mlsd(&'a str),
    List(Option<&'a str>),
}

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
    /// The control connection's TLS sessions, which its data connections resume.
    sessions: Arc<SessionStore>,
    /// Whether the control connection runs TLS 1.3, whose tickets are spent one per data
    /// connection (see `SessionStore`).
    tls13: bool,
    /// Whether the current data connection resumes the control session (offers a ticket).
    resuming: bool,
    /// The directory of the last CWD, for a renewed connection to go back to.
    cwd: Option<String>,
    /// What this connection was made from, to make a fresh one when its tickets are spent.
    config: Server,
    context: TlsContext,
}

fn parse_lines(lines: &[String], dir: &str, parse: impl Fn(&str) -> Option<Listed>) -> Vec<Listed> {
    let mut out = Vec::with_capacity(lines.len());
    for line in lines {
        match parse(line) {
            Some(l) => out.push(l),
            None => tracing::debug!(dir, line = %line, "listing line skipped"),
        }
    }
    out
}

/// Runs `fut` under the connection timeout and maps its error.
async fn within<T>(
    timeout: Duration,
    command: &'static str,
    path: &str,
    fut: impl std::future::Future<Output = FtpResult<T>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r.map_err(|e| map_error(e, command, path)),
        Err(_) => Err(Error::Timeout {
            command,
            path: path.to_owned(),
            seconds: timeout.as_secs(),
        }),
    }
}

/// A handshake that failed on the bytes, not on the certificate or a refusal.
fn is_handshake_glitch(e: &Error) -> bool {
    match e {
        Error::Tls { message, .. } => {
            let m = message.to_ascii_lowercase();
            !m.contains("certificate")
                && (m.contains("corrupt message") || m.contains("eof") || m.contains("reset"))
        }
        _ => false,
    }
}

fn reply_code(body: &[u8]) -> Option<u16> {
    std::str::from_utf8(body.get(..3)?).ok()?.parse().ok()
}

/// A reply's text, one line per line of the reply.
fn reply_lines(body: &[u8]) -> String {
    String::from_utf8_lossy(body).trim_end().replace("\r\n", "\n")
}

/// A reply on one line, for messages.
fn reply_text(body: &[u8]) -> String {
    reply_lines(body).replace('\n', " | ")
}

type Dialler = Box<
    dyn Fn(
            std::net::SocketAddr,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = FtpResult<TcpStream>> + Send + Sync>>
        + Send
        + Sync,
>;

/// Opens passive data connections (to the address suppaftp gives: the control connection's
/// peer, for EPSV and, with the NAT workaround, for PASV too) within `timeout`, recording in
/// `dial` how far it got.
fn dialler(dial: Arc<AtomicU8>, timeout: Duration) -> Dialler {
    Box::new(move |addr| {
        let dial = dial.clone();
        Box::pin(async move {
            dial.store(DIAL_STARTED, Ordering::SeqCst);
            let connected = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(r) => r,
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no data connection to {addr} within {}s", timeout.as_secs()),
                )),
            };
            match connected {
                Ok(tcp) => {
                    dial.store(DIAL_DONE, Ordering::SeqCst);
                    Ok(tcp)
                }
                Err(e) => {
                    dial.store(DIAL_FAILED, Ordering::SeqCst);
                    Err(FtpError::ConnectionError(e))
                }
            }
        })
    })
}

fn map_error(e: FtpError, command: &'static str, path: &str) -> Error {
    let lost = |message: String| Error::ConnectionLost {
        command,
        path: path.to_owned(),
        message,
    };
    match e {
        FtpError::UnexpectedResponse(r) => Error::Reply {
            command,
            path: path.to_owned(),
            code: reply_code(&r.body),
            reply: reply_text(&r.body),
        },
        FtpError::ConnectionError(io) => lost(io.to_string()),
        FtpError::SecureError(m) => lost(format!("TLS: {m}")),
        FtpError::BadResponse => lost("malformed reply".into()),
        FtpError::InvalidAddress(a) => lost(format!("bad address in reply: {a}")),
        FtpError::DataConnectionAlreadyOpen => lost("data connection already open".into()),
    }
}

impl Ftps {
    /// Connects, secures, logs in and probes the server. Every failure here is fatal for the
    /// pass: wrong address, TLS refused or untrusted, wrong password.
    ///
    /// A TLS handshake that breaks on garbage (not on a certificate) is tried again on a new
    /// connection, five times at most, waiting 20 ms and doubling: libunftp 0.24 can read the
    /// ClientHello as a command when it arrives before its own switch to TLS, and answers in
    /// clear text. On a loaded machine that happened three times in a row (one engine-suite run
    /// in 40 here). Nothing is ever sent unprotected, so trying again is safe.
    pub async fn connect(server: &Server, tls: &TlsContext) -> Result<Ftps> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match Self::connect_once(server, tls).await {
                Err(e) if attempt < 6 && is_handshake_glitch(&e) => {
                    tracing::debug!("TLS handshake broke ({e}); connecting again");
                    tokio::time::sleep(Duration::from_millis(20 << (attempt - 1))).await;
                }
                other => return other,
            }
        }
    }

    async fn connect_once(server: &Server, tls: &TlsContext) -> Result<Ftps> {
        let addr = format!("{}:{}", server.host, server.port);
        let t = server.timeout;
        let connect_err = |message: String| Error::Connect {
            server: addr.clone(),
            message,
        };
        let tls_err = |message: String| Error::Tls {
            server: addr.clone(),
            message,
        };
        let info = Arc::new(Mutex::new(None));
        let sessions = Arc::new(SessionStore::default());
        let connector = || -> Result<Connector> {
            Ok(Connector {
                inner: tokio_rustls::TlsConnector::from(tls.client_config(sessions.clone())?),
                info: info.clone(),
                context: tls.clone(),
            })
        };
        // Explicit mode learns it from the socket below; implicit mode from an address literal.
        let mut peer_v6 = server.host.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_ipv6());
        let stream = match server.tls {
            TlsMode::Implicit => {
                let fut = Stream::connect_secure_implicit(addr.as_str(), connector()?, &server.host);
                let mut stream = match tokio::time::timeout(t, fut).await {
                    Err(_) => return Err(connect_err(format!("no TLS greeting within {}s", t.as_secs()))),
                    Ok(Err(FtpError::ConnectionError(e))) => return Err(connect_err(e.to_string())),
                    Ok(Err(FtpError::SecureError(m))) => return Err(tls_err(m)),
                    Ok(Err(e)) => return Err(connect_err(e.to_string())),
                    Ok(Ok(s)) => s,
                };
                // suppaftp's implicit connect does not protect the data channel by itself.
                for cmd in ["PBSZ 0", "PROT P"] {
                    within(
                        t,
                        "TLS setup",
                        "",
                        stream.custom_command(cmd, &[Status::CommandOk]),
                    )
                    .await
                    .map_err(|e| tls_err(format!("{cmd} refused: {e}")))?;
                }
                stream
            }
            TlsMode::Explicit | TlsMode::None => {
                let tcp = match tokio::time::timeout(t, TcpStream::connect(addr.as_str())).await {
                    Err(_) => return Err(connect_err(format!("no answer within {}s", t.as_secs()))),
                    Ok(Err(e)) => return Err(connect_err(e.to_string())),
                    Ok(Ok(s)) => s,
                };
                let _ = tcp.set_nodelay(true);
                peer_v6 = tcp.peer_addr().is_ok_and(|a| a.is_ipv6());
                let stream = match tokio::time::timeout(t, Stream::connect_with_stream(tcp)).await {
                    Err(_) => return Err(connect_err(format!("no greeting within {}s", t.as_secs()))),
                    // A greeting other than 220 (a 230 "already logged in" before TLS, a 421):
                    // we never go on to send anything, let alone USER.
                    Ok(Err(FtpError::UnexpectedResponse(r))) if reply_code(&r.body) == Some(421) => {
                        return Err(Error::TooManyConnections {
                            server: addr.clone(),
                            reply: reply_text(&r.body),
                        });
                    }
                    Ok(Err(FtpError::UnexpectedResponse(r))) => {
                        return Err(connect_err(format!(
                            "unexpected greeting: {}",
                            reply_text(&r.body)
                        )));
                    }
                    Ok(Err(e)) => return Err(connect_err(e.to_string())),
                    Ok(Ok(s)) => s,
                };
                if server.tls == TlsMode::Explicit {
                    match tokio::time::timeout(t, stream.into_secure(connector()?, &server.host)).await {
                        Err(_) => return Err(tls_err(format!("no TLS handshake within {}s", t.as_secs()))),
                        Ok(Err(FtpError::UnexpectedResponse(r))) => {
                            return Err(tls_err(format!(
                                "the server refused TLS ({}); ftps-sync never falls back to plain FTP",
                                reply_text(&r.body)
                            )));
                        }
                        Ok(Err(FtpError::SecureError(m))) => return Err(tls_err(m)),
                        Ok(Err(e)) => return Err(tls_err(e.to_string())),
                        Ok(Ok(s)) => s,
                    }
                } else {
                    stream
                }
            }
        };
        let mut stream = stream;
        let welcome = stream.get_welcome_msg().unwrap_or_default().to_owned();
        match tokio::time::timeout(t, stream.login(server.user.as_str(), server.password.expose())).await {
            Err(_) => return Err(connect_err(format!("no answer to login within {}s", t.as_secs()))),
            Ok(Err(FtpError::UnexpectedResponse(r))) if reply_code(&r.body) == Some(421) => {
                return Err(Error::TooManyConnections {
                    server: addr.clone(),
                    reply: reply_text(&r.body),
                });
            }
            Ok(Err(FtpError::UnexpectedResponse(r))) => {
                return Err(Error::Login {
                    server: addr.clone(),
                    user: server.user.clone(),
                    reply: reply_text(&r.body),
                });
            }
            Ok(Err(e)) => return Err(connect_err(format!("login: {e}"))),
            Ok(Ok(())) => {}
        }
        // The stream starts in ASCII mode, where LF becomes CRLF.
        within(t, "TYPE I", "", stream.transfer_type(FileType::Binary)).await?;
        let dial = Arc::new(AtomicU8::new(DIAL_NONE));
        if server.passive {
            stream.set_passive_nat_workaround(true);
            stream = stream.passive_stream_builder(dialler(dial.clone(), t));
        } else {
            stream = stream.active_mode(t);
        }
        let tls_info = info.lock().ok().and_then(|i| i.clone());
        let tls13 = tls_info.as_ref().is_some_and(|i| i.version == "TLSv1_3");
        let mut ftps = Ftps {
            stream,
            server: addr,
            timeout: t,
            features: Features::default(),
            listing: ListingMode::List,
            hash: None,
            mtime: MtimeSupport::None,
            tls: tls_info,
            welcome,
            list_all: true,
            limiter: None,
            epsv: false,
            epsv_unconfirmed: None,
            peer_v6,
            dial,
            quirks: tls.quirks(),
            sessions,
            tls13,
            resuming: true,
            cwd: None,
            config: server.clone(),
            context: tls.clone(),
        };
        ftps.probe(server.passive).await?;
        Ok(ftps)
    }

    async fn probe(&mut self, passive: bool) -> Result<()> {
        let (code, text) = self.raw("FEAT", "FEAT", "").await?;
        if code == Some(211) {
            self.features = Features::parse(&text);
        }
        tracing::debug!(server = %self.server, features = ?self.features.lines, "FEAT");
        let f = &self.features;
        if passive {
            // EPSV uses the control connection's address by design; PASV's address is
            // ignored for the same reason (NAT, bounce attacks).
            self.epsv = f.has("EPSV") && !self.quirks.epsv_broken();
            self.stream.set_mode(if self.epsv {
                Mode::ExtendedPassive
            } else {
                Mode::Passive
            });
        }
        self.listing = if f.has("MLST") {
            ListingMode::Mlsd
        } else {
            ListingMode::List
        };
        self.mtime = if f.has("MFMT") {
            MtimeSupport::Mfmt
        } else if f.has("MDTM") {
            MtimeSupport::MdtmWrite
        } else {
            MtimeSupport::None
        };
        let hash_args = f.get("HASH").map(|a| a.to_ascii_uppercase());
        let x = |name: &str| f.has(name);
        self.hash = match hash_args {
            Some(a) if a.contains("SHA-256") => Some(HashCommand::Hash(HashAlgo::Sha256)),
            _ if x("XSHA256") => Some(HashCommand::X(HashAlgo::Sha256)),
            Some(a) if a.contains("SHA-1") => Some(HashCommand::Hash(HashAlgo::Sha1)),
            _ if x("XSHA1") => Some(HashCommand::X(HashAlgo::Sha1)),
            Some(a) if a.contains("MD5") => Some(HashCommand::Hash(HashAlgo::Md5)),
            _ if x("XMD5") => Some(HashCommand::X(HashAlgo::Md5)),
            _ => None,
        };
        // Only send OPTS for what FEAT advertised (libunftp drops the connection otherwise).
        if let Some(HashCommand::Hash(algo)) = self.hash {
            let (code, _) = self
                .raw(&format!("OPTS HASH {}", algo.name()), "OPTS HASH", "")
                .await?;
            if code != Some(200) {
                self.hash = None;
            }
        }
        if self.features.has("UTF8") {
            // Pure-FTPd answers 504 although it lists UTF8: harmless, names are UTF-8 anyway.
            let _ = self.raw("OPTS UTF8 ON", "OPTS UTF8", "").await?;
        }
        Ok(())
    }

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
        let now = Utc::now();
        let lines = match self.listing {
            ListingMode::Mlsd => {
                let lines = self.data_lines(t, "MLSD", path, LinesCommand::Mlsd(path)).await?;
                return Ok(parse_lines(&lines, path, parse_mlsd));
            }
            ListingMode::List => {
                // CWD first: some servers treat a LIST argument as a glob pattern.
                within(self.timeout, "CWD", path, self.stream.cwd(path)).await?;
                self.cwd = Some(path.to_owned());
                self.list_here(path).await?
            }
        };
        Ok(parse_lines(&lines, path, |l| parse_list_line(l, now)))
    }

    /// `LIST -a` in the current directory (vsftpd hides dot files from a bare LIST), falling
    /// back to a bare `LIST` for servers that take `-a` as a file name.
    async fn list_here(&mut self, path: &str) -> Result<Vec<String>> {
        let t = self.timeout * 4;
        if self.list_all {
            match self
                .data_lines(t, "LIST", path, LinesCommand::List(Some("-a")))
                .await
            {
                Err(Error::Reply { code: Some(c), .. }) if c >= 500 => self.list_all = false,
                other => return other,
            }
        }
        self.data_lines(t, "LIST", path, LinesCommand::List(None)).await
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
                    let listed = self
                        .data_lines(self.timeout, "LIST", path, LinesCommand::List(Some(&arg)))
                        .await;
                    if let Ok(lines) = listed {
                        let now = Utc::now();
                        let found = parse_lines(&lines, path, |l| parse_list_line(l, now))
                            .into_iter()
                            .find(|e| e.name == name || e.name.ends_with(&format!("/{name}")));
                        if found.is_some() {
                            return Ok(found);
                        }
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

    /// Streams `path` from byte `offset` into `sink`, a chunk at a time. Returns the bytes read.
    pub async fn download(&mut self, path: &str, offset: u64, sink: &mpsc::Sender<Vec<u8>>) -> Result<u64> {
        let r = self.retrieve(path, offset, sink).await;
        if let Err(e) = &r {
            self.learn_resumption(e);
        }
        r
    }

    async fn retrieve(&mut self, path: &str, offset: u64, sink: &mpsc::Sender<Vec<u8>>) -> Result<u64> {
        let t = self.timeout;
        self.ensure_resumable().await?;
        let mut data = loop {
            self.dial.store(DIAL_NONE, Ordering::SeqCst);
            // The offset is spent by every data command, even one that failed on EPSV.
            if offset > 0 {
                within(t, "REST", path, self.stream.resume_transfer(offset as usize)).await?;
            }
            match within(t, "RETR", path, self.stream.retr_as_stream(path)).await {
                Err(e) if self.fall_back_from_epsv(&e) => continue,
                other => break other?,
            }
        };
        self.data_opened();
        let mut total = 0u64;
        // One buffer for the reads; each chunk sent on is a copy of what was read, so a small
        // file does not cost a zeroed 256 KiB allocation per read. TLS hands out one record
        // (16 KiB) per read: gather a full buffer before waking the writer thread.
        let mut buf = vec![0u8; CHUNK];
        let mut eof = false;
        while !eof {
            let mut n = 0;
            while n < buf.len() {
                match tokio::time::timeout(t, data.read(&mut buf[n..])).await {
                    Err(_) => {
                        return Err(Error::Timeout {
                            command: "RETR",
                            path: path.to_owned(),
                            seconds: t.as_secs(),
                        });
                    }
                    Ok(Err(e)) => return Err(map_error(FtpError::ConnectionError(e), "RETR", path)),
                    Ok(Ok(0)) => {
                        eof = true;
                        break;
                    }
                    Ok(Ok(k)) => n += k,
                }
            }
            if n == 0 {
                break;
            }
            if let Some(l) = &self.limiter {
                l.take(n).await;
            }
            if sink.send(buf[..n].to_vec()).await.is_err() {
                return Err(Error::Local {
                    op: "write",
                    path: path.into(),
                    source: std::io::Error::other("the local writer stopped"),
                });
            }
            total += n as u64;
        }
        within(t, "RETR", path, data.finish()).await?;
        Ok(total)
    }

    /// Streams the chunks of `source` to `path`. Returns the bytes sent. With `append`, the
    /// bytes go to the end of the existing file (APPE), to resume an upload.
    pub async fn upload(
        &mut self,
        path: &str,
        source: &mut mpsc::Receiver<Vec<u8>>,
        append: bool,
    ) -> Result<u64> {
        let r = self.store(path, source, append).await;
        if let Err(e) = &r {
            self.learn_resumption(e);
        }
        r
    }

    async fn store(&mut self, path: &str, source: &mut mpsc::Receiver<Vec<u8>>, append: bool) -> Result<u64> {
        let t = self.timeout;
        self.ensure_resumable().await?;
        let mut data = loop {
            self.dial.store(DIAL_NONE, Ordering::SeqCst);
            let opened = if append {
                within(t, "APPE", path, self.stream.append_with_stream(path)).await
            } else {
                within(t, "STOR", path, self.stream.put_with_stream(path)).await
            };
            match opened {
                Err(e) if self.fall_back_from_epsv(&e) => continue,
                other => break other?,
            }
        };
        self.data_opened();
        let mut total = 0u64;
        while let Some(chunk) = source.recv().await {
            if let Some(l) = &self.limiter {
                l.take(chunk.len()).await;
            }
            match tokio::time::timeout(t, data.write_all(&chunk)).await {
                Err(_) => {
                    return Err(Error::Timeout {
                        command: "STOR",
                        path: path.to_owned(),
                        seconds: t.as_secs(),
                    });
                }
                Ok(Err(e)) => return Err(map_error(FtpError::ConnectionError(e), "STOR", path)),
                Ok(Ok(())) => {}
            }
            total += chunk.len() as u64;
        }
        // finish() sends close_notify, drains to EOF and reads the 226 (vsftpd TLS 1.3 trap).
        within(t, "STOR", path, data.finish()).await?;
        Ok(total)
    }

    /// Before a data command: when a TLS 1.3 control connection has no ticket left for its data
    /// connection to resume with, it is replaced by a fresh one (logged in, in the same mode),
    /// so that no data connection goes out without resuming its own control session; servers
    /// that give no tickets on data connections (ProFTPD) would refuse it.
    async fn ensure_resumable(&mut self) -> Result<()> {
        self.resuming = !self.tls13 || self.sessions.tls13_tickets() > 0;
        let hopeless = self.quirks.no_tickets.load(Ordering::SeqCst);
        if self.resuming || hopeless || !self.data_needs_resumption() {
            return Ok(());
        }
        if !self.quirks.tickets_run_out.swap(true, Ordering::SeqCst) {
            // rustls offers a TLS 1.3 ticket once and cannot copy it (0.23), and such a
            // server sends two per login and none on data connections.
            tracing::warn!(
                server = %self.server,
                "the server gives TLS 1.3 data connections no new session tickets, so ftps-sync \
                 logs in again after every two transfers, which is slow; with \
                 `tls_max_version: \"1.2\"` the session resumes without that limit"
            );
        }
        tracing::debug!(server = %self.server, "TLS 1.3 tickets spent; a fresh control connection");
        // Logged out first, so the pool never holds more logins than `connections` (servers
        // cap them per address). If the new login fails, the error (transient) makes the pool
        // drop this connection, which no longer answers.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.quit()).await;
        let mut fresh =
            Self::connect(&self.config, &self.context)
                .await
                .map_err(|e| Error::ConnectionLost {
                    command: "connect",
                    path: self.server.clone(),
                    message: e.to_string(),
                })?;
        fresh.limiter = self.limiter.clone();
        fresh.list_all = self.list_all;
        if let Some(dir) = self.cwd.take() {
            within(fresh.timeout, "CWD", &dir, fresh.stream.cwd(&dir)).await?;
            fresh.cwd = Some(dir);
        }
        if fresh.sessions.tls13_tickets() == 0 {
            // A login that brings no ticket at all: renewing cannot help.
            self.quirks.no_tickets.store(true, Ordering::SeqCst);
        }
        fresh.resuming = fresh.sessions.tls13_tickets() > 0;
        *self = fresh;
        Ok(())
    }

    /// Whether the server refuses a data connection that does not resume the control session.
    /// Pure-FTPd checks only when built with `ONLY_ACCEPT_REUSED_SSL_SESSIONS` (off by
    /// default, and it sends no tickets on data connections either): it is let through with
    /// a full handshake until one fails (`learn_resumption`); every other server is assumed
    /// to check.
    fn data_needs_resumption(&self) -> bool {
        !self.welcome.contains("Pure-FTPd") || self.quirks.resumption_required.load(Ordering::SeqCst)
    }

    /// After a data command failed: if its connection did not resume and was refused (ProFTPD
    /// answers `425`; Pure-FTPd built to check drops the connection), from now on every one
    /// resumes.
    fn learn_resumption(&self, e: &Error) {
        let refused = matches!(
            e,
            Error::Reply { code: Some(425), .. } | Error::ConnectionLost { .. }
        );
        if !self.resuming && refused {
            self.quirks.resumption_required.store(true, Ordering::SeqCst);
        }
    }

    /// A listing command, sent again over PASV if it failed on EPSV.
    async fn data_lines(
        &mut self,
        t: Duration,
        command: &'static str,
        path: &str,
        what: LinesCommand<'_>,
    ) -> Result<Vec<String>> {
        self.ensure_resumable().await?;
        loop {
            self.dial.store(DIAL_NONE, Ordering::SeqCst);
            let r = match what {
                LinesCommand::Mlsd(dir) => within(t, command, path, self.stream.mlsd(Some(dir))).await,
                LinesCommand::List(arg) => within(t, command, path, self.stream.list(arg)).await,
            };
            match r {
                Err(e) if self.fall_back_from_epsv(&e) => continue,
                Ok(lines) => {
                    self.data_opened();
                    return Ok(lines);
                }
                Err(e) => {
                    self.learn_resumption(&e);
                    return Err(e);
                }
            }
        }
    }

    /// After a data command failed: whether it failed on EPSV, in which case this connection
    /// (and every later one of the run) now uses PASV, and the command can go again at once:
    /// nothing of it reached the server. A server that refused EPSV (`500`/`502`/`522`) is in
    /// step; so is one whose EPSV data connection never arrived (the command was not sent yet).
    /// A server that never answered EPSV is not: that is remembered, and the error stands, so
    /// the retry gets a fresh connection.
    fn fall_back_from_epsv(&mut self, e: &Error) -> bool {
        // PASV carries no IPv6 address; many servers refuse it over IPv6.
        if !self.epsv || self.peer_v6 {
            return false;
        }
        let dial = self.dial.load(Ordering::SeqCst);
        match (dial, e) {
            (
                DIAL_NONE,
                Error::Reply {
                    code: Some(c), reply, ..
                },
            ) if (500..600).contains(c) => {
                self.use_pasv();
                self.epsv_broken(&format!("it refused EPSV ({reply})"));
                true
            }
            // No answer at all: the connection is out of step and is dropped. One such stall
            // can be a passing fault; a second one in the run is the firewall.
            (DIAL_NONE, Error::Timeout { seconds, .. }) => {
                if self.quirks.epsv_stalls.fetch_add(1, Ordering::SeqCst) >= 1 {
                    self.epsv_broken(&format!("it did not answer EPSV within {seconds}s, twice"));
                }
                false
            }
            // Sticks for the run only once PASV has worked where EPSV did not (a passing
            // fault must not switch a long-running service for good).
            (DIAL_STARTED | DIAL_FAILED, Error::Timeout { .. } | Error::ConnectionLost { .. }) => {
                self.use_pasv();
                self.epsv_unconfirmed = Some(format!("its EPSV data connection did not come through ({e})"));
                true
            }
            _ => false,
        }
    }

    fn use_pasv(&mut self) {
        self.epsv = false;
        self.stream.set_mode(Mode::Passive);
    }

    /// After a data command opened its connection: a PASV fallback that worked sticks.
    fn data_opened(&mut self) {
        if let Some(why) = self.epsv_unconfirmed.take() {
            self.epsv_broken(&why);
        }
    }

    fn epsv_broken(&self, why: &str) {
        if self.quirks.break_epsv() {
            tracing::warn!(
                server = %self.server,
                "the server lists EPSV but {why}; using PASV with it from now on"
            );
        }
    }

    pub async fn noop(&mut self) -> Result<()> {
        within(self.timeout, "NOOP", "", self.stream.noop()).await
    }

    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.quit()).await;
    }
}
