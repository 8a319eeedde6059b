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
    fn expired(&self, now: i64) -> bool {
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

/// Called with what was learned, to keep it.
pub type Keep = Arc<dyn Fn(&Learned) + Send + Sync>;

/// What a run knows of its server, shared by every connection of the run.
pub struct ServerMemory {
    server: String,
    max12: bool,
    min13: bool,
    learned: Mutex<Option<Learned>>,
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
            learned: Mutex::new(remembered.filter(|l| !l.expired(now()))),
            suspected: AtomicBool::new(false),
            keep,
        }
    }

    /// What is known now, if anything (for `check` and `status`).
    pub fn learned(&self) -> Option<Learned> {
        let mut learned = self.learned.lock().ok()?;
        if learned.as_ref().is_some_and(|l| l.expired(now())) {
            *learned = None;
        }
        learned.clone()
    }

    /// The versions the next control connection offers.
    pub fn versions(&self) -> Versions {
        if self.max12 {
            return Versions::Only12;
        }
        if self.min13 {
            return Versions::Only13;
        }
        match self.learned().map(|l| l.tls) {
            Some(TlsLearned::Tls12) => Versions::Fallback12,
            _ => Versions::Both,
        }
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
             this), so every third transfer of a connection would cost a new login. ftps-sync \
             uses TLS 1.2 with it from now on, with extended master secret, whose sessions \
             resume without that limit; it learns again in 30 days, or when the server's \
             certificate or greeting changes. To keep TLS 1.3, set `tls_min_version: \"1.3\"` \
             under server",
            learned.why
        );
        self.set(learned);
    }

    /// A login at `Versions::Fallback12` failed its handshake (`why`): the server refuses TLS
    /// 1.2 or extended master secret. It keeps TLS 1.3, renewing logins as now.
    pub fn fallback_refused(&self, why: &str) {
        let Some(identity) = self.learned().map(|l| l.identity) else {
            return;
        };
        tracing::warn!(
            server = %self.server,
            "the server cannot resume TLS 1.3 data connections, and refused TLS 1.2 with extended \
             master secret ({why}): ftps-sync keeps TLS 1.3 with it and logs in again after \
             every two transfers, which is slow"
        );
        self.set(Learned {
            identity,
            tls: TlsLearned::Tls13,
            why: format!("it cannot resume TLS 1.3 data connections, and refused TLS 1.2 with extended master secret: {why}"),
            at: now(),
        });
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
                *learned = None;
                false
            }
            _ => true,
        }
    }

    fn set(&self, learned: Learned) {
        if let Some(keep) = &self.keep {
            keep(&learned);
        }
        if let Ok(mut held) = self.learned.lock() {
            *held = Some(learned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(extra: &str) -> Server {
        let yaml = format!(
            "server:\n  host: h\n  user: u\n  password_env: PATH\n{extra}folders:\n  - name: d\n    \
             local: /tmp\n    remote: /d\n"
        );
        crate::config::Config::parse(&yaml, std::path::Path::new("/tmp/c.yaml"))
            .expect("config")
            .server
    }

    fn id(fp: &str) -> Identity {
        Identity::new(fp, "220 ProFTPD Server\r\n220 more")
    }

    #[test]
    fn only_a_suspicion_then_a_confirmation_lowers_the_version() {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let k = kept.clone();
        let keep: Keep = Arc::new(move |l: &Learned| k.lock().expect("lock").push(l.clone()));
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
        assert_eq!(kept.lock().expect("lock")[0].tls, TlsLearned::Tls12);
        // The greeting's later lines do not count; a new certificate does.
        assert!(m.still_holds(&Identity::new("A", "220 ProFTPD Server\n220 other")));
        assert!(!m.still_holds(&id("B")));
        assert_eq!(m.versions(), Versions::Both);
    }

    #[test]
    fn a_refused_fallback_keeps_tls13_and_is_kept() {
        let m = ServerMemory::new(&server(""), None, None);
        m.suspect();
        m.confirm(id("A"));
        m.fallback_refused("no extended master secret");
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
