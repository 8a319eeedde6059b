//! One error type for the whole crate.
//!
//! Error policy:
//! - Every error carries the context a user needs to act: which file, which folder, which server
//!   command and reply. Messages are one readable line; the cause chain is shown at `-v`.
//! - `class()` decides what the engine does with it: a *transient* error is retried (a dropped
//!   connection, a timeout, a 4xx reply), a *permanent* one is reported for that one file and
//!   the pass goes on (a 5xx reply, a local permission error), a *fatal* one stops the pass
//!   (bad config, failed login or TLS, a refused deletion plan, a broken state store).
//! - The CLI maps errors to exit codes with `exit_code()`; tests match on variants, never text.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Transient,
    Permanent,
    Fatal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}{location}: {key}: {message}", location = fmt_location(*.line, *.column))]
    Config {
        file: PathBuf,
        key: String,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },

    /// The user's own mistake (a bad argument, a second instance): exit 2.
    #[error("{0}")]
    Usage(String),

    /// A bug in ftps-sync (a task that panicked, a value that would not encode): exit 70.
    #[error("internal error: {0} (this is a bug: please report it)")]
    Internal(String),

    /// A call to the operating system failed (systemctl, getent, the Service Control
    /// Manager): exit 71, with what was called.
    #[error("{call} failed: {message}")]
    System { call: String, message: String },

    #[error("cannot connect to {server}: {message}")]
    Connect { server: String, message: String },

    /// A 421 at connect: the server will not take another connection now.
    #[error("{server} refused another connection: {reply}")]
    TooManyConnections { server: String, reply: String },

    #[error("TLS with {server} failed: {message}")]
    Tls {
        server: String,
        kind: TlsFailure,
        message: String,
    },

    #[error("login to {server} as {user} refused: {reply}")]
    Login {
        server: String,
        user: String,
        reply: String,
    },

    #[error("server refused {command} {path}: {reply}")]
    Reply {
        command: &'static str,
        path: String,
        code: Option<u16>,
        reply: String,
    },

    #[error("connection lost during {command} {path}: {message}")]
    ConnectionLost {
        command: &'static str,
        path: String,
        message: String,
    },

    /// A data connection that did not resume the control connection's TLS session was
    /// refused. The run resumes every one from now on, so the command can go again at once.
    #[error(
        "{command} {path}: the server refused a data connection that did not resume its TLS session \
         ({reply}); from now on every data connection resumes one"
    )]
    NotResumed {
        command: &'static str,
        path: String,
        reply: String,
    },

    /// The server sent more than one of the bounds on what a listing may make us hold
    /// (docs/design.md, "Bounds"). Not retried: the same server would send the same again.
    #[error("{command} {path} on {server}: the server sent {what}; the bound is {bound}")]
    TooLarge {
        server: String,
        command: &'static str,
        path: String,
        what: String,
        bound: String,
    },

    #[error("{command} {path} timed out after {seconds}s")]
    Timeout {
        command: &'static str,
        path: String,
        seconds: u64,
    },

    #[error("{op} {}: {source}", path.display())]
    Local {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("state store {}: {source}", path.display())]
    State {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    #[error(
        "state store {} was written by a newer ftps-sync (schema version {found}; this one knows up to {known}): \
         run the newer version, or move the file away to start over (the next pass is then a first sync)",
        path.display()
    )]
    StateTooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },

    #[error("verification of {path} failed: {detail}")]
    Verify { path: String, detail: String },

    /// A file moved under us between the scan and the action: left alone for the next pass.
    #[error("{path} changed on the {side} side during the pass; the next pass looks again")]
    Changed {
        path: String,
        side: crate::reconcile::Side,
    },

    #[error("folder {folder}: pass refused: {refusal}")]
    Refused {
        folder: String,
        refusal: crate::reconcile::Refusal,
    },

    #[error("unsafe name {name:?}: {reason}")]
    UnsafeName { name: String, reason: &'static str },

    #[error("interrupted")]
    Interrupted,
}

impl From<crate::path::UnsafeName> for Error {
    fn from(e: crate::path::UnsafeName) -> Error {
        Error::UnsafeName {
            name: e.name,
            reason: e.reason,
        }
    }
}

/// Why a TLS handshake failed, as far as the user can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The certificate failed verification or the pin.
    Certificate,
    /// The bytes broke off or made no sense (a reset, an early EOF, a corrupt record): a server
    /// that expects another TLS mode, or a passing glitch.
    Garbled,
    /// The server refused to start TLS (AUTH TLS, PBSZ, PROT).
    Refused,
    /// The handshake did not finish in time.
    Timeout,
    /// The server shares no TLS version, or requires or refuses what we require (extended
    /// master secret): an alert saying so, or rustls's "peer incompatible".
    Incompatible,
    /// Anything else: no shared cipher, a bad client certificate, ...
    Other,
}

/// A task that panicked or was cancelled: a bug, not the user's or the server's doing.
pub fn join_failed(what: &'static str) -> impl FnOnce(tokio::task::JoinError) -> Error {
    move |e| Error::Internal(format!("{what} task failed: {e}"))
}

/// A failed OS call, as `Error::System`.
pub fn system(call: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let call = call.into();
    move |e| Error::System {
        call,
        message: e.to_string(),
    }
}

fn fmt_location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

impl Error {
    pub fn class(&self) -> Class {
        match self {
            Error::Reply { code: Some(c), .. } if (400..500).contains(c) => Class::Transient,
            Error::Reply { .. } => Class::Permanent,
            Error::ConnectionLost { .. }
            | Error::Timeout { .. }
            | Error::TooManyConnections { .. }
            | Error::NotResumed { .. } => Class::Transient,
            Error::Verify { .. } => Class::Transient,
            Error::Local { .. } | Error::UnsafeName { .. } | Error::Changed { .. } => Class::Permanent,
            Error::Config { .. }
            | Error::Usage(_)
            | Error::Internal(_)
            | Error::System { .. }
            | Error::Connect { .. }
            | Error::Tls { .. }
            | Error::Login { .. }
            | Error::State { .. }
            | Error::StateTooNew { .. }
            | Error::Refused { .. }
            | Error::TooLarge { .. }
            | Error::Interrupted => Class::Fatal,
        }
    }

    /// Exit codes of the CLI contract (docs/design.md, "Exit codes").
    /// Every variant is named: a new one gets its code by a decision, not by default.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config { .. } | Error::Usage(_) => 2,
            Error::Connect { .. }
            | Error::TooManyConnections { .. }
            | Error::Tls { .. }
            | Error::Login { .. } => 3,
            Error::Interrupted => 4,
            Error::Internal(_) => 70,
            Error::System { .. } => 71,
            Error::Reply { .. }
            | Error::ConnectionLost { .. }
            | Error::NotResumed { .. }
            | Error::Timeout { .. }
            | Error::TooLarge { .. }
            | Error::Verify { .. }
            | Error::Local { .. }
            | Error::UnsafeName { .. }
            | Error::Changed { .. }
            | Error::State { .. }
            | Error::StateTooNew { .. }
            | Error::Refused { .. } => 1,
        }
    }

    /// A stable one-word name of what went wrong, for `--json`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config { .. } => "config",
            Error::Usage(_) => "usage",
            Error::Internal(_) => "internal",
            Error::System { .. } => "system",
            Error::Connect { .. } | Error::TooManyConnections { .. } => "connect",
            Error::Tls { .. } => "tls",
            Error::Login { .. } => "login",
            Error::Reply { .. } => "server-reply",
            Error::ConnectionLost { .. } | Error::NotResumed { .. } => "connection-lost",
            Error::Timeout { .. } => "timeout",
            Error::TooLarge { .. } => "too-large",
            Error::Local { .. } => "local",
            Error::State { .. } | Error::StateTooNew { .. } => "state",
            Error::Verify { .. } => "verify",
            Error::Changed { .. } => "changed",
            Error::Refused { .. } => "refused",
            Error::UnsafeName { .. } => "unsafe-name",
            Error::Interrupted => "interrupted",
        }
    }

    /// Why a TLS handshake failed, if this is a TLS failure.
    pub fn tls_failure(&self) -> Option<TlsFailure> {
        match self {
            Error::Tls { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    pub fn local(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Local { op, path, source }
    }

    pub fn config(file: impl Into<PathBuf>, key: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Config {
            file: file.into(),
            key: key.into(),
            line: None,
            column: None,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_tell_the_user_bug_and_system_apart() {
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::Internal("x".into()).exit_code(), 70);
        let e = Error::System {
            call: "`systemctl daemon-reload`".into(),
            message: "no bus".into(),
        };
        assert_eq!(e.exit_code(), 71);
        // A server with no room for another connection is a connection failure.
        let full = Error::TooManyConnections {
            server: "h:21".into(),
            reply: "421 too many".into(),
        };
        assert_eq!(full.exit_code(), 3);
        assert_eq!(e.to_string(), "`systemctl daemon-reload` failed: no bus");
        assert!(
            Error::Internal("x".into())
                .to_string()
                .contains("please report it")
        );
    }
}
