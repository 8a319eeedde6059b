//! ftps-sync keeps local folders and folders on an FTPS server in sync.
//!
//! # Layout
//! - `config`: the YAML contract, validated.
//! - `path`: `RelPath`, the only form a path from a listing or scan takes.
//! - `reconcile`: the pure core: (base, local, remote, policy) -> `Plan`.
//! - `remote`: FTPS adapter (suppaftp), listing parsers.
//! - `local`: scan, atomic writes.
//! - `state`: SQLite store of the last-synced snapshot.
//! - `engine`: one pass (over the folder, or the paths the watcher saw change): scan + list +
//!   plan + execute + commit.
//! - `daemon`: `run`: passes on watcher changes and the poll timer, graceful shutdown.
//! - `service`: `run` as a systemd unit or a Windows service.
//! - `logging`: where log lines go (stderr, JSON, a daily file) and their colour.
//! - `demo`: embedded loopback FTPS server for `ftps-sync demo` and the tests.

/// `println!` that ignores a closed stdout (`ftps-sync check | head`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod app;
pub mod cli;
pub mod config;
pub mod daemon;
#[cfg(feature = "demo")]
pub mod demo;
pub mod digest;
pub mod engine;
pub mod error;
pub mod local;
pub mod lock;
pub mod logging;
pub mod path;
pub mod reconcile;
pub mod remote;
pub mod service;
pub mod state;

pub use error::{Error, Result};
