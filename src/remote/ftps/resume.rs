//! TLS session resumption for data connections (see `tls::SessionStore`): renewing a TLS 1.3
//! login whose tickets are spent where the server requires resumption, finding out whether
//! it does, and the proof that makes a server that cannot resume TLS 1.3 data connections
//! get TLS 1.2 (`learned::ServerMemory`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use super::Ftps;
use super::data::{DIAL_DONE, HANDSHAKE_FULL, HANDSHAKE_RESUMED};
use super::reply::within;
use crate::error::{Error, Result};

/// Whether the server refuses a data connection that does not resume its control session.
/// Not assumed: once a TLS 1.3 connection's tickets are spent, one data connection of the run
/// at a time goes out with a full handshake, until one is taken or refused. ProFTPD with
/// `NoSessionReuseRequired`, and Pure-FTPd unless built to check, take them; renewing the
/// control connection after every two transfers instead costs a login each time.
#[derive(Debug, Default)]
pub(crate) struct Resumption {
    state: AtomicU8,
    /// The server gives TLS 1.3 data connections no session tickets (ProFTPD), so control
    /// connections are renewed as their tickets run out: said once, as it is slow.
    tickets_run_out: AtomicBool,
    /// A fresh TLS 1.3 login brought no session ticket: data connections cannot resume.
    no_tickets: AtomicBool,
    /// A wait for another connection's proof ran out (`Ftps::wait_for_the_proof`): no
    /// connection of the run waits again.
    waited_in_vain: AtomicBool,
}

/// The longest a connection waits for another's proof (`wait_for_the_proof`): a login and an
/// upload, on a slow server.
const PROOF_WAIT: Duration = Duration::from_secs(5);

const UNKNOWN: u8 = 0;
/// A data connection is out with a full handshake, to find out.
const PROBING: u8 = 1;
const NOT_REQUIRED: u8 = 2;
const REQUIRED: u8 = 3;

impl Resumption {
    pub(crate) fn required(&self) -> bool {
        self.state.load(Ordering::SeqCst) == REQUIRED
    }

    pub(crate) fn not_required(&self) -> bool {
        self.state.load(Ordering::SeqCst) == NOT_REQUIRED
    }

    fn probing(&self) -> bool {
        self.state.load(Ordering::SeqCst) == PROBING
    }

    /// Whether a data connection may go out without resuming; true for at most one at a time
    /// while it is not known whether the server takes it (the probe), so that a run's
    /// connections, spending their tickets together, risk one refusal, not one each.
    fn may_go_unresumed(&self) -> Option<bool> {
        match self
            .state
            .compare_exchange(UNKNOWN, PROBING, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => Some(true),
            Err(NOT_REQUIRED) => Some(false),
            Err(_) => None,
        }
    }

    /// The probe ended: taken (`ok`), or failed for another reason than a refusal (which
    /// `Ftps::refused_unresumed` records), so that another may try.
    fn probe_ended(&self, ok: bool) {
        let to = if ok { NOT_REQUIRED } else { UNKNOWN };
        let _ = self
            .state
            .compare_exchange(PROBING, to, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Records a refusal; the state before it.
    fn refused(&self) -> u8 {
        self.state.swap(REQUIRED, Ordering::SeqCst)
    }

    /// Everything found out again, as after a new certificate (`learned::ServerMemory`).
    pub(crate) fn reset(&self) {
        self.state.store(UNKNOWN, Ordering::SeqCst);
        for flag in [&self.tickets_run_out, &self.no_tickets, &self.waited_in_vain] {
            flag.store(false, Ordering::SeqCst);
        }
    }
}

/// Where a connection's current data connection stands on resuming its control session.
#[derive(Debug)]
pub(super) struct DataSession {
    /// Whether it resumes the control session (offers a ticket).
    resuming: bool,
    /// How its handshake went (`data::HANDSHAKE_*`), set by the TLS connector.
    pub(super) handshake: Arc<AtomicU8>,
    /// Tickets received before it (`SessionStore::tickets_received`).
    tickets_before: usize,
    /// Whether it is the run's one try of a full handshake where no ticket is left
    /// (`Resumption`).
    probe: bool,
    /// Whether this connection's own refused data connection made the run suspect that the
    /// server cannot resume TLS 1.3 data connections: it goes on to prove it, and waits for
    /// no one.
    proving: bool,
    /// Whether the connection logged in after that suspicion (`ServerMemory::suspect`).
    after_suspicion: bool,
}

impl DataSession {
    pub(super) fn new(handshake: Arc<AtomicU8>, after_suspicion: bool) -> DataSession {
        DataSession {
            resuming: true,
            handshake,
            tickets_before: 0,
            probe: false,
            proving: false,
            after_suspicion,
        }
    }
}

impl Ftps {
    /// Before a data command: when a TLS 1.3 control connection has no ticket left for its data
    /// connection to resume with, it is replaced by a fresh one (logged in, in the same mode),
    /// so that no data connection goes out without resuming its own control session where the
    /// server refuses that; servers that give no tickets on data connections (ProFTPD) would.
    pub(super) async fn ensure_resumable(&mut self) -> Result<()> {
        self.resume.tickets_before = self.sessions.tickets_received();
        self.resume.resuming = !self.tls13 || self.sessions.tls13_tickets() > 0;
        if self.resume.resuming || self.quirks.resumption.no_tickets.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.wait_for_the_proof().await;
        let q = &self.quirks.resumption;
        if let Some(probe) = q.may_go_unresumed() {
            self.resume.probe = probe;
            return Ok(());
        }
        if !self.memory.may_fall_back() && !q.tickets_run_out.swap(true, Ordering::SeqCst) {
            // rustls offers a TLS 1.3 ticket once and cannot copy it (0.23), and such a
            // server sends two per login and none on data connections.
            tracing::warn!(
                server = %self.server,
                "the server gives TLS 1.3 data connections no new session tickets, so ftps-sync \
                 logs in again after every two transfers, which is slow"
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
        if fresh.tls13 && fresh.sessions.tls13_tickets() == 0 {
            // A login that brings no ticket at all: renewing cannot help.
            self.quirks.resumption.no_tickets.store(true, Ordering::SeqCst);
        }
        fresh.resume.resuming = !fresh.tls13 || fresh.sessions.tls13_tickets() > 0;
        fresh.resume.tickets_before = fresh.sessions.tickets_received();
        // Still the connection that proves it, if it was.
        fresh.resume.proving = self.resume.proving;
        *self = fresh;
        Ok(())
    }

    /// While another connection of the run finds out whether the server takes a data
    /// connection that does not resume, or proves that it cannot resume TLS 1.3 ones: waits
    /// for the outcome (bounded), so that this login is renewed once, at the TLS version the
    /// run goes on with, rather than at TLS 1.3 first and at TLS 1.2 again soon after.
    async fn wait_for_the_proof(&self) {
        let q = &self.quirks.resumption;
        let pending = || !self.resume.proving && (q.probing() || (q.required() && self.memory.suspected()));
        let deadline = tokio::time::Instant::now() + self.timeout.min(PROOF_WAIT);
        while pending() && !q.waited_in_vain.load(Ordering::SeqCst) {
            if tokio::time::Instant::now() >= deadline {
                q.waited_in_vain.store(true, Ordering::SeqCst);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// After a data command failed: whether its connection, a full handshake (no ticket was
    /// left), was refused for not resuming: ProFTPD answers `425`, vsftpd `522`, Pure-FTPd
    /// built to check drops it. Then every data connection of the run resumes from now on
    /// (`ensure_resumable` renews this control connection first), and the command can go again
    /// at once: it moved no byte.
    ///
    /// A `425` after a completed full TLS 1.3 handshake is also the first half of the proof
    /// that the server cannot resume TLS 1.3 data connections (`ServerMemory::suspect`).
    pub(super) fn refused_unresumed(&mut self, e: &Error) -> bool {
        let refused = matches!(
            e,
            Error::Reply {
                code: Some(425 | 522),
                ..
            } | Error::ConnectionLost { .. }
        );
        if self.resume.resuming || !refused || self.dial.load(Ordering::SeqCst) != DIAL_DONE {
            return false;
        }
        let before = self.quirks.resumption.refused();
        if before != REQUIRED {
            tracing::debug!(server = %self.server, "a data connection that did not resume was refused: {e}");
        }
        // Where the server took one that did not resume before, a refusal is something else.
        let full_handshake = self.resume.handshake.load(Ordering::SeqCst) == HANDSHAKE_FULL;
        let a_425 = matches!(e, Error::Reply { code: Some(425), .. }) && before != NOT_REQUIRED;
        if self.tls13 && full_handshake && a_425 {
            self.memory.suspect();
            self.resume.proving = true;
        }
        true
    }

    /// A transfer's error, as `Error::NotResumed` when it is a refused data connection that
    /// did not resume (`refused_unresumed`): the engine sends the transfer again at once.
    pub(super) fn not_resumed(&mut self, e: Error, command: &'static str, path: &str) -> Error {
        if !self.refused_unresumed(&e) {
            return e;
        }
        Error::NotResumed {
            command,
            path: path.to_owned(),
            reply: e.to_string(),
        }
    }

    /// After a data command, read to its end (`ok`) or failed; an `upload` or not.
    ///
    /// The second half of the proof (`ServerMemory::confirm`): after the suspicion, on a
    /// control connection logged in since, a data connection resumed and completed an upload,
    /// and the server sent no new ticket during it. Only an upload tells: ProFTPD sends a
    /// ticket on a data connection it writes to (a listing, a download), none on one it only
    /// reads, so a run of uploads spends the login's tickets. A ticket after an upload means
    /// the server can resume TLS 1.3 data connections after all.
    pub(super) fn data_done(&mut self, ok: bool, upload: bool) {
        if std::mem::take(&mut self.resume.probe) {
            self.quirks.resumption.probe_ended(ok);
        }
        let resumed = self.resume.handshake.load(Ordering::SeqCst) == HANDSHAKE_RESUMED;
        let proves = ok && upload && self.tls13 && resumed && self.resume.after_suspicion;
        if !proves || !self.memory.suspected() {
            return;
        }
        if self.sessions.tickets_received() == self.resume.tickets_before {
            self.memory.confirm(self.identity());
        } else {
            self.memory.clear_suspicion();
        }
    }
}
