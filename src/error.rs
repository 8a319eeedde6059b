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

    #[error("{0}")]
    Usage(String),

    #[error("cannot connect to {server}: {message}")]
    Connect { server: String, message: String },

    /// A 421 at connect: the server will not take another connection now.
    #[error("{server} refused another connection: {reply}")]
    TooManyConnections { server: String, reply: String },

    #[error("TLS with {server} failed: {message}")]
    Tls { server: String, message: String },

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

    #[error("verification of {path} failed: {detail}")]
    Verify { path: String, detail: String },

    /// A file moved under us between the scan and the action: left alone for the next pass.
    #[error("{path} changed on the {side} side during the pass; the next pass looks again")]
    Changed { path: String, side: &'static str },

    #[error("folder {folder}: pass refused: {reason}")]
    Refused { folder: String, reason: String },

    #[error("unsafe name {name:?}: {reason}")]
    UnsafeName { name: String, reason: &'static str },

    #[error("interrupted")]
    Interrupted,
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
            Error::ConnectionLost { .. } | Error::Timeout { .. } | Error::TooManyConnections { .. } => {
                Class::Transient
            }
            Error::Verify { .. } => Class::Transient,
            Error::Local { .. } | Error::UnsafeName { .. } | Error::Changed { .. } => Class::Permanent,
            Error::Config { .. }
            | Error::Usage(_)
            | Error::Connect { .. }
            | Error::Tls { .. }
            | Error::Login { .. }
            | Error::State { .. }
            | Error::Refused { .. }
            | Error::Interrupted => Class::Fatal,
        }
    }

    /// Exit codes of the CLI contract (DESIGN.md §3).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config { .. } | Error::Usage(_) => 2,
            Error::Connect { .. } | Error::Tls { .. } | Error::Login { .. } => 3,
            Error::Interrupted => 4,
            _ => 1,
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
