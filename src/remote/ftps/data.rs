//! Data connections: EPSV, or PASV where EPSV fails, always to the control connection's peer;
//! and a TLS session that resumes the control connection's own (see `tls::SessionStore`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use suppaftp::{FtpError, FtpResult, Mode, Status};
use tokio::net::TcpStream;

use super::Ftps;
use super::reply::within;
use super::resume::Resumption;
use crate::error::{Error, Result};
use crate::remote::bounded::{BoundedLines, Bounds, ListingError};
use crate::remote::listing::Listed;

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
    /// Whether data connections must resume their control connection's TLS session.
    pub(super) resumption: Resumption,
}

impl Quirks {
    pub fn epsv_broken(&self) -> bool {
        self.epsv_broken.load(Ordering::SeqCst)
    }

    /// A data connection that did not resume was refused: the run renews its logins.
    pub fn resumption_required(&self) -> bool {
        self.resumption.required()
    }

    /// A TLS 1.3 data connection went out with no ticket left to resume with, and the server
    /// took it.
    pub fn went_unresumed(&self) -> bool {
        self.resumption.not_required()
    }

    /// Records that EPSV does not work here; true only the first time, so it is logged once.
    fn break_epsv(&self) -> bool {
        !self.epsv_broken.swap(true, Ordering::SeqCst)
    }
}

/// How far the data connection of the current data command got; set by our passive stream
/// builder, so a failure can be told apart: EPSV refused (never dialled), its connection never
/// arriving (dialling, or failed to dial), or the command itself failing (connected).
pub(super) const DIAL_NONE: u8 = 0;
const DIAL_STARTED: u8 = 1;
const DIAL_FAILED: u8 = 2;
pub(super) const DIAL_DONE: u8 = 3;

/// How the TLS handshake of the current data connection went.
pub(super) const HANDSHAKE_NONE: u8 = 0;
pub(super) const HANDSHAKE_FULL: u8 = 1;
pub(super) const HANDSHAKE_RESUMED: u8 = 2;

/// A data command that returns lines (listings).
pub(super) enum LinesCommand<'a> {
    Mlsd(&'a str),
    List(Option<&'a str>),
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
pub(super) fn dialler(dial: Arc<AtomicU8>, timeout: Duration) -> Dialler {
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

impl Ftps {
    /// Before each try of a data command: nothing dialled yet, no handshake.
    pub(super) fn start_data_command(&self) {
        self.dial.store(DIAL_NONE, Ordering::SeqCst);
        if let Ok(mut held) = self.shutdown.lock() {
            *held = None;
        }
        self.resume.handshake.store(HANDSHAKE_NONE, Ordering::SeqCst);
    }

    /// A listing command, sent again over PASV if it failed on EPSV; each line parsed as it
    /// arrives, within the bounds of `listing::Bounds` (docs/design.md, "Bounds"). `t` is the
    /// time the whole listing may take. Past a bound the connection is dropped: the server may
    /// still be sending, and nothing more it says is read.
    pub(super) async fn data_listing(
        &mut self,
        t: Duration,
        command: &'static str,
        path: &str,
        what: LinesCommand<'_>,
        parse: &(dyn Fn(&str) -> Option<Listed> + Sync),
    ) -> Result<Vec<Listed>> {
        // Whatever way it ends, the data command is done (`data_done`).
        let r = async {
            let line = match what {
                LinesCommand::Mlsd(dir) => format!("MLSD {dir}"),
                LinesCommand::List(Some(arg)) => format!("LIST {arg}"),
                LinesCommand::List(None) => "LIST".to_owned(),
            };
            if line.contains(['\r', '\n']) {
                return Err(Error::UnsafeName {
                    name: path.to_owned(),
                    reason: "line break in a command",
                });
            }
            let deadline = tokio::time::Instant::now() + t;
            self.ensure_resumable().await?;
            let mut renewed = false;
            let data = loop {
                self.start_data_command();
                let opened = self
                    .stream
                    .custom_data_command(&line, &[Status::AboutToSend, Status::AlreadyOpen]);
                match within(t, command, path, opened).await {
                    Ok((_, data)) => break data,
                    Err(e) => self.go_again_after(e, &mut renewed).await?,
                }
            };
            self.data_opened();
            let mut reader = BoundedLines::new(
                tokio::io::BufReader::with_capacity(64 * 1024, data),
                Bounds::default(),
            );
            let mut out = Vec::new();
            match reader.read_all(deadline, &mut out, parse).await {
                Ok(()) => {
                    let data = reader.into_inner().into_inner();
                    within(t, command, path, data.finish()).await?;
                    Ok(out)
                }
                // A data connection cut short: the reply on the control channel says why (libunftp
                // answers a missing folder with `150`, a cut, then `550`).
                Err(ListingError::Io(io)) => {
                    let data = reader.into_inner().into_inner();
                    within(t, command, path, data.finish()).await?;
                    Err(self.listing_error(ListingError::Io(io), command, path, t))
                }
                Err(e) => {
                    // Dropped unread: the pool must not take this connection back.
                    self.broken = true;
                    Err(self.listing_error(e, command, path, t))
                }
            }
        }
        .await;
        self.data_done(r.is_ok(), false);
        r
    }

    fn listing_error(&self, e: ListingError, command: &'static str, path: &str, t: Duration) -> Error {
        match e {
            ListingError::Io(io) => super::reply::map_error(FtpError::ConnectionError(io), command, path),
            ListingError::Deadline => Error::Timeout {
                command,
                path: path.to_owned(),
                seconds: t.as_secs(),
            },
            ListingError::Bound { what, bound } => Error::TooLarge {
                server: self.server.clone(),
                command,
                path: path.to_owned(),
                what,
                bound,
            },
        }
    }

    /// After a data command failed to open: `Ok` to send it again at once, else its error.
    /// It goes again when EPSV gave way to PASV (`fall_back_from_epsv`), or, once per command,
    /// when a data connection that did not resume was refused and the login is renewed
    /// (`refused_unresumed`).
    pub(super) async fn go_again_after(&mut self, e: Error, renewed: &mut bool) -> Result<()> {
        if self.fall_back_from_epsv(&e) {
            return Ok(());
        }
        if !*renewed && self.refused_unresumed(&e) {
            *renewed = true;
            return self.ensure_resumable().await;
        }
        Err(e)
    }

    /// After a data command failed: whether it failed on EPSV, in which case this connection
    /// (and every later one of the run) now uses PASV, and the command can go again at once:
    /// nothing of it reached the server. A server that refused EPSV (`500`/`502`/`522`) is in
    /// step; so is one whose EPSV data connection never arrived (the command was not sent yet).
    /// A server that never answered EPSV is not: that is remembered, and the error stands, so
    /// the retry gets a fresh connection.
    pub(super) fn fall_back_from_epsv(&mut self, e: &Error) -> bool {
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
    pub(super) fn data_opened(&mut self) {
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
}
