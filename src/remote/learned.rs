//! What the agent learns about a server and keeps between runs. `remote/` holds it for a run
//! and says when it changes; the engine loads it from the state dir and stores what changed.
//!
//! One thing so far: the TLS version for a server that cannot resume TLS 1.3 data
//! connections (docs/design.md, "TLS 1.2 for servers that cannot resume TLS 1.3"). Stock
//! ProFTPD before 1.3.10 refuses a data connection that does not resume its control
//! connection's session, gives two TLS 1.3 tickets per login and none after a transfer, and
//! rustls offers each ticket once: at TLS 1.3 every third transfer of a connection costs a new
//! login. A TLS 1.2 session resumes any number of times. The version is lowered only on the
//! proof that `suspect` and `confirm` ask for, never after a failure, and only with extended
//! master secret; a server that refuses that keeps TLS 1.3 (`fallback_refused`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{Server, TlsVersion};

/// How long something learned holds before it is learned again (a server may be upgraded
/// without changing its certificate or greeting).
pub const RELEARN_AFTER_SECS: i64 = 30 * 24 * 3600;

/// Who the server is, for what was learned about it: a new certificate, or a changed greeting
/// (another version, another product), makes it learn again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// SHA-256 of the certificate, as `AB:CD:…`.
    pub fingerprint: String,
    /// The greeting's first line: the lines after it may carry a clock or a user count
    /// (Pure-FTPd's do).
    pub greeting: String,
}

impl Identity {
    pub fn new(fingerprint: &str, welcome: &str) -> Identity {
        Identity {
            fingerprint: fingerprint.to_owned(),
            greeting: welcome.lines().next().unwrap_or_default().trim().to_owned(),
        }
    }
}

/// The TLS version learned for a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsLearned {
    /// TLS 1.2 with extended master secret: the server cannot resume TLS 1.3 data connections.
    Tls12,
    /// TLS 1.3 kept, renewing logins as tickets run out: the server proved it cannot resume
    /// TLS 1.3 data connections, but refused TLS 1.2 with extended master secret.
    Tls13,
}

impl TlsLearned {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsLearned::Tls12 => "1.2",
            TlsLearned::Tls13 => "1.3",
        }
    }

    pub fn parse(s: &str) -> Option<TlsLearned> {
        match s {
            "1.2" => Some(TlsLearned::Tls12),
            "1.3" => Some(TlsLearned::Tls13),
            _ => None,
        }
    }
}

/// One thing learned about a server, with why and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learned {
    pub identity: Identity,
    pub tls: TlsLearned,
    pub why: String,
    /// Unix seconds.
    pub at: i64,
}

impl Learned {
    /// Whether it is past `RELEARN_AFTER_SECS` at `now` (Unix seconds).
    pub fn expired(&self, now: i64) -> bool {
        now - self.at >= RELEARN_AFTER_SECS
    }
}

/// Which TLS versions a control connection offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    /// TLS 1.3, and TLS 1.2 for servers without it.
    Both,
    /// `tls_max_version: "1.2"`.
    Only12,
    /// `tls_min_version: "1.3"`.
    Only13,
    /// TLS 1.2 alone, with extended master secret required: learned (`TlsLearned::Tls12`).
    Fallback12,
}

/// Called with what was learned, to keep it; with `None` to forget what was kept.
pub type Keep = Arc<dyn Fn(Option<&Learned>) + Send + Sync>;

/// What a run knows of its server, shared by every connection of the run.
pub struct ServerMemory {
    server: String,
    max12: bool,
    min13: bool,
    learned: Mutex<Option<Learned>>,
    /// Whether what `learned` holds is in the store.
    kept: AtomicBool,
    /// A TLS 1.2 login failed this run for a reason that may pass (a reset, a timeout): TLS 1.3
    /// for the rest of the run, nothing kept.
    failed12: AtomicBool,
    /// Something learned was forgotten (`take_forgotten`).
    forgotten: AtomicBool,
    /// A TLS 1.3 data connection that could not resume was refused (`suspect`); waiting for
    /// `confirm`.
    suspected: AtomicBool,
    keep: Option<Keep>,
}

impl std::fmt::Debug for ServerMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerMemory")
            .field("server", &self.server)
            .field("learned", &self.learned())
            .finish_non_exhaustive()
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl ServerMemory {
    /// What is known of `server`: `remembered` from earlier runs (checked against the server
    /// when it answers, see `still_holds`); `keep` stores what this run learns.
    pub fn new(server: &Server, remembered: Option<Learned>, keep: Option<Keep>) -> ServerMemory {
        ServerMemory {
            server: format!("{}:{}", server.host, server.port),
            max12: server.tls_max_version == Some(TlsVersion::V1_2),
            min13: server.tls_min_version == Some(TlsVersion::V1_3),
            kept: AtomicBool::new(remembered.is_some()),
            learned: Mutex::new(remembered),
            failed12: AtomicBool::new(false),
            forgotten: AtomicBool::new(false),
            suspected: AtomicBool::new(false),
            keep,
        }
    }

    /// What is known now, if anything (for `check` and `status`). Past 30 days it is
    /// forgotten.
    pub fn learned(&self) -> Option<Learned> {
        let mut learned = self.learned.lock().ok()?;
        if learned.as_ref().is_some_and(|l| l.expired(now())) {
            self.forget(&mut learned);
        }
        learned.clone()
    }

    /// The versions the config sets, whatever was learned.
    pub fn configured(&self) -> Versions {
        match (self.max12, self.min13) {
            (true, _) => Versions::Only12,
            (false, true) => Versions::Only13,
            (false, false) => Versions::Both,
        }
    }

    /// The versions the next control connection offers.
    pub fn versions(&self) -> Versions {
        let configured = self.configured();
        let tls12 = self.learned().is_some_and(|l| l.tls == TlsLearned::Tls12);
        if configured == Versions::Both && tls12 && !self.failed12.load(Ordering::SeqCst) {
            Versions::Fallback12
        } else {
            configured
        }
    }

    /// Whether the config decides the TLS versions, so that nothing learned is used.
    pub fn configured_only(&self) -> bool {
        self.max12 || self.min13
    }

    /// Whether the server may still be given TLS 1.2 if it proves it cannot resume TLS 1.3
    /// data connections: not capped by the config either way, nothing learned yet.
    pub fn may_fall_back(&self) -> bool {
        !self.max12 && !self.min13 && self.learned().is_none()
    }

    /// Condition 1: a TLS 1.3 control connection had no ticket left, its data connection's
    /// handshake completed in full, and the server refused the connection with `425` before
    /// any data. The caller has checked all of that.
    pub fn suspect(&self) {
        if self.may_fall_back() && !self.suspected.swap(true, Ordering::SeqCst) {
            tracing::debug!(server = %self.server, "a TLS 1.3 data connection that could not resume was refused");
        }
    }

    pub fn suspected(&self) -> bool {
        self.suspected.load(Ordering::SeqCst)
    }

    /// The server sent a ticket after a transfer: it can resume TLS 1.3 data connections.
    pub fn clear_suspicion(&self) {
        self.suspected.store(false, Ordering::SeqCst);
    }

    /// Condition 2, after `suspect`: on a control connection logged in since, a data
    /// connection resumed and completed its transfer, and the server sent no new ticket. The
    /// server gets TLS 1.2 from the next login on.
    pub fn confirm(&self, identity: Identity) {
        if !self.suspected.swap(false, Ordering::SeqCst) || !self.may_fall_back() {
            return;
        }
        let learned = Learned {
            identity,
            tls: TlsLearned::Tls12,
            why: "it refused a TLS 1.3 data connection that could not resume its control \
                  connection's session, and gives no new session ticket after a transfer"
                .into(),
            at: now(),
        };
        tracing::warn!(
            server = %self.server,
            "the server cannot resume TLS 1.3 data connections ({}; ProFTPD before 1.3.10 does \
             this), so every third upload of a connection would cost a new login. ftps-sync \
             uses TLS 1.2 with it from now on, with extended master secret, whose sessions \
             resume without that limit; it learns again in 30 days, or when the server's \
             certificate or greeting changes. To keep TLS 1.3, set `tls_min_version: \"1.3\"` \
             under server",
            learned.why
        );
        if let Some(keep) = &self.keep {
            keep(Some(&learned));
        }
        if let Ok(mut held) = self.learned.lock() {
            self.kept.store(true, Ordering::SeqCst);
            *held = Some(learned);
        }
    }

    /// A login at `Versions::Fallback12` failed its handshake (`why`). Where the server said
    /// it takes no TLS 1.2 or no extended master secret (`incompatible`), it keeps TLS 1.3,
    /// renewing logins as before, and that is kept. Any other failure (a reset, a timeout)
    /// proves nothing: TLS 1.3 for the rest of this run, and nothing kept.
    pub fn fallback_refused(&self, why: &str, incompatible: bool) {
        let Ok(mut held) = self.learned.lock() else {
            return;
        };
        let Some(identity) = held
            .as_ref()
            .filter(|l| l.tls == TlsLearned::Tls12)
            .map(|l| l.identity.clone())
        else {
            return;
        };
        if !incompatible {
            if !self.failed12.swap(true, Ordering::SeqCst) {
                tracing::warn!(
                    server = %self.server,
                    "a login at TLS 1.2 failed ({why}): TLS 1.3 for the rest of this run"
                );
            }
            return;
        }
        tracing::warn!(
            server = %self.server,
            "the server cannot resume TLS 1.3 data connections, and refused TLS 1.2 with extended \
             master secret ({why}): ftps-sync keeps TLS 1.3 with it and logs in again after \
             every two uploads, which is slow"
        );
        let learned = Learned {
            identity,
            tls: TlsLearned::Tls13,
            why: format!(
                "it cannot resume TLS 1.3 data connections, and refused TLS 1.2 with extended master \
                 secret: {why}"
            ),
            at: now(),
        };
        if let Some(keep) = &self.keep {
            keep(Some(&learned));
        }
        self.kept.store(true, Ordering::SeqCst);
        *held = Some(learned);
    }

    /// Whether something was forgotten since the last call: what the run found out about
    /// resuming data connections is to be found out again.
    pub fn take_forgotten(&self) -> bool {
        self.forgotten.swap(false, Ordering::SeqCst)
    }

    /// Whether what is known still holds for the server as it answered now (`identity`). If it
    /// does not (a new certificate, a changed greeting), it is forgotten, to be learned again.
    pub fn still_holds(&self, identity: &Identity) -> bool {
        let Ok(mut learned) = self.learned.lock() else {
            return true;
        };
        match learned.as_ref() {
            Some(l) if l.identity != *identity => {
                let what = if l.identity.fingerprint != identity.fingerprint {
                    "its certificate"
                } else {
                    "its greeting"
                };
                tracing::info!(
                    server = %self.server,
                    "{what} changed since TLS {} was learned for it: learning again",
                    l.tls.as_str()
                );
                self.forget(&mut learned);
                false
            }
            _ => true,
        }
    }

    fn forget(&self, held: &mut Option<Learned>) {
        *held = None;
        self.failed12.store(false, Ordering::SeqCst);
        self.forgotten.store(true, Ordering::SeqCst);
        if self.kept.swap(false, Ordering::SeqCst)
            && let Some(keep) = &self.keep
        {
            keep(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(extra: &str) -> Server {
        crate::config::for_tests(extra).server
    }

    fn id(fp: &str) -> Identity {
        Identity::new(fp, "220 ProFTPD Server\r\n220 more")
    }

    #[test]
    fn only_a_suspicion_then_a_confirmation_lowers_the_version() {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let k = kept.clone();
        let keep: Keep = Arc::new(move |l: Option<&Learned>| k.lock().expect("lock").push(l.cloned()));
        let m = ServerMemory::new(&server(""), None, Some(keep));
        assert_eq!(m.versions(), Versions::Both);
        // A confirmation alone (no refusal seen) changes nothing.
        m.confirm(id("A"));
        assert_eq!(m.versions(), Versions::Both);
        // A refusal cleared by a ticket after a transfer changes nothing.
        m.suspect();
        m.clear_suspicion();
        m.confirm(id("A"));
        assert_eq!(m.versions(), Versions::Both);
        assert!(kept.lock().expect("lock").is_empty());
        m.suspect();
        m.confirm(id("A"));
        assert_eq!(m.versions(), Versions::Fallback12);
        let tls = |k: &Option<Learned>| k.as_ref().map(|l| l.tls);
        assert_eq!(
            kept.lock().expect("lock").iter().map(tls).collect::<Vec<_>>(),
            [Some(TlsLearned::Tls12)]
        );
        // The greeting's later lines do not count; a new certificate does, and is forgotten
        // in the store too.
        assert!(m.still_holds(&Identity::new("A", "220 ProFTPD Server\n220 other")));
        assert!(!m.still_holds(&id("B")));
        assert_eq!(m.versions(), Versions::Both);
        assert!(m.take_forgotten() && !m.take_forgotten());
        assert_eq!(kept.lock().expect("lock").last(), Some(&None));
    }

    #[test]
    fn a_refused_fallback_keeps_tls13_and_is_kept() {
        let m = ServerMemory::new(&server(""), None, None);
        m.suspect();
        m.confirm(id("A"));
        // A reset proves nothing: TLS 1.3 for the run, TLS 1.2 still learned.
        m.fallback_refused("connection reset", false);
        assert_eq!(m.versions(), Versions::Both);
        assert_eq!(m.learned().map(|l| l.tls), Some(TlsLearned::Tls12));
        m.fallback_refused("no extended master secret", true);
        assert_eq!(m.versions(), Versions::Both);
        assert_eq!(m.learned().map(|l| l.tls), Some(TlsLearned::Tls13));
        // Nothing brings the fallback back for this server.
        m.suspect();
        m.confirm(id("A"));
        assert_eq!(m.versions(), Versions::Both);
    }

    #[test]
    fn the_config_overrides_what_is_learned_and_old_facts_expire() {
        let learned = |at| Learned {
            identity: id("A"),
            tls: TlsLearned::Tls12,
            why: String::new(),
            at,
        };
        let m = ServerMemory::new(
            &server("  tls_min_version: \"1.3\"\n"),
            Some(learned(now())),
            None,
        );
        assert_eq!(m.versions(), Versions::Only13);
        m.suspect();
        assert!(!m.suspected());
        let m = ServerMemory::new(&server("  tls_max_version: \"1.2\"\n"), None, None);
        assert_eq!(m.versions(), Versions::Only12);
        let m = ServerMemory::new(&server(""), Some(learned(now())), None);
        assert_eq!(m.versions(), Versions::Fallback12);
        let m = ServerMemory::new(&server(""), Some(learned(now() - RELEARN_AFTER_SECS)), None);
        assert_eq!(m.versions(), Versions::Both);
    }
}
