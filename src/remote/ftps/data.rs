//! Data connections: EPSV, or PASV where EPSV fails, always to the control connection's peer;
//! and a TLS session that resumes the control connection's own (see `tls::SessionStore`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use suppaftp::{FtpError, FtpResult, Mode, Status};
use tokio::net::TcpStream;

use super::Ftps;
use super::reply::within;
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
    /// The server gives TLS 1.3 data connections no session tickets (ProFTPD), so control
    /// connections are renewed as their tickets run out: said once, as it is slow.
    tickets_run_out: AtomicBool,
    /// A data connection that did not resume the control session was refused (`425`).
    resumption_required: AtomicBool,
    /// A fresh TLS 1.3 login brought no session ticket: data connections cannot resume.
    no_tickets: AtomicBool,
    /// A TLS 1.3 data connection went out without a ticket (see `went_unresumed`).
    went_unresumed: AtomicBool,
}

impl Quirks {
    pub fn epsv_broken(&self) -> bool {
        self.epsv_broken.load(Ordering::SeqCst)
    }

    /// A data connection that did not resume was refused: the run renews its logins.
    pub fn resumption_required(&self) -> bool {
        self.resumption_required.load(Ordering::SeqCst)
    }

    /// A TLS 1.3 data connection went out with no ticket left to resume with: the server
    /// gives none on data connections.
    pub fn went_unresumed(&self) -> bool {
        self.went_unresumed.load(Ordering::SeqCst)
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
const DIAL_DONE: u8 = 3;

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
    /// Before each try of a data command: nothing dialled yet.
    pub(super) fn start_data_command(&self) {
        self.dial.store(DIAL_NONE, Ordering::SeqCst);
    }

    /// Before a data command: when a TLS 1.3 control connection has no ticket left for its data
    /// connection to resume with, it is replaced by a fresh one (logged in, in the same mode),
    /// so that no data connection goes out without resuming its own control session; servers
    /// that give no tickets on data connections (ProFTPD) would refuse it.
    pub(super) async fn ensure_resumable(&mut self) -> Result<()> {
        self.resuming = !self.tls13 || self.sessions.tls13_tickets() > 0;
        let hopeless = self.quirks.no_tickets.load(Ordering::SeqCst);
        if self.resuming || hopeless || !self.data_needs_resumption() {
            if !self.resuming {
                self.quirks.went_unresumed.store(true, Ordering::SeqCst);
            }
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
    /// Not assumed: once a TLS 1.3 connection's tickets are spent, its data connections go
    /// out with a full handshake until one is refused (`refused_unresumed`). ProFTPD with
    /// `NoSessionReuseRequired`, and Pure-FTPd unless built to check, take them; renewing the
    /// control connection after every two transfers instead costs a login each time.
    fn data_needs_resumption(&self) -> bool {
        self.quirks.resumption_required.load(Ordering::SeqCst)
    }

    /// After a data command failed to open: whether its connection, a full handshake (no
    /// ticket was left), was refused for not resuming: ProFTPD answers `425`, vsftpd `522`,
    /// Pure-FTPd built to check drops it. Then every data connection of the run resumes from
    /// now on (`ensure_resumable` renews this control connection first), and the command can
    /// go again at once: it moved no byte.
    pub(super) fn refused_unresumed(&self, e: &Error) -> bool {
        let refused = matches!(
            e,
            Error::Reply {
                code: Some(425 | 522),
                ..
            } | Error::ConnectionLost { .. }
        );
        if self.resuming || !refused || self.dial.load(Ordering::SeqCst) != DIAL_DONE {
            return false;
        }
        if !self.quirks.resumption_required.swap(true, Ordering::SeqCst) {
            tracing::debug!(server = %self.server, "a data connection that did not resume was refused: {e}");
        }
        true
    }

    /// A transfer's error, as `Error::NotResumed` when it is a refused data connection that
    /// did not resume (`refused_unresumed`): the engine sends the transfer again at once.
    pub(super) fn not_resumed(&self, e: Error, command: &'static str, path: &str) -> Error {
        if !self.refused_unresumed(&e) {
            return e;
        }
        Error::NotResumed {
            command,
            path: path.to_owned(),
            reply: e.to_string(),
        }
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
