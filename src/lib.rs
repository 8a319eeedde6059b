//! ftps-sync keeps local folders and folders on an FTPS server in sync.
//!
//! # Layout
//! Dependencies point one way: `main` -> `app` -> (`daemon`, `service`, `demo`) -> `engine` ->
//! (`reconcile`, `remote`, `local`, `state`) -> (`path`, `config`, `error`). Nothing imports
//! `app`; `reconcile` imports only `path`; the engine names no FTPS type (`remote::ftps` is
//! named by `app`, `daemon` and `demo`, which make the connector).
//!
//! The map: each module, and the modules it may use (`tests/it/layout.rs` holds every
//! `crate::` and `super::` path of the code to it; `remote::ftps` is apart from the seam in
//! `remote`). The engine's rooms (indented) may also use what the engine may outside itself;
//! outside the engine, a room is the engine.
//! ```text
//! lib          -> failpoints logging
//! app          -> cli config daemon demo digest engine error local logging path reconcile remote remote::ftps service signals state
//! service      -> config daemon error local logging
//! daemon       -> clock config engine error local lock metrics remote remote::ftps
//! demo         -> config engine error remote::ftps signals
//! metrics      -> engine error
//! engine       -> clock config digest error local lock path reconcile remote state
//!   engine::execute  -> engine::plan engine::transfer engine::pass engine::settle engine::run engine::racy engine::report
//!   engine::transfer -> engine::pass engine::run engine::racy engine::report
//!   engine::plan     -> engine::pass engine::settle engine::content engine::run engine::racy engine::report engine::scope
//!   engine::pass     -> engine::settle engine::run engine::racy engine::report
//!   engine::settle   -> engine::content engine::run
//!   engine::run      -> engine::report engine::retry
//!   engine::content, engine::racy, engine::report, engine::retry, engine::scope, engine::learned -> nothing
//! remote::ftps -> config digest error reconcile remote
//! remote       -> config digest error reconcile
//! state        -> digest error path reconcile
//! local        -> digest error path reconcile
//! cli          -> config reconcile
//! logging      -> config error
//! lock         -> error
//! config       -> error path reconcile
//! error        -> path reconcile
//! reconcile    -> path
//! path, digest, clock, signals, failpoints -> nothing
//! ```
//! - `app`: one file per command (`sync`, `run`, `check`, `status`, `service`); prints.
//! - `logging`: where log lines go (stderr, JSON, a daily file) and their colour.
//! - `daemon`: `serve` (lock, run, drain, stop: `run` and both services) and the per-folder
//!   loop of passes on watcher changes and the poll timer.
//! - `service`: `run` as a systemd unit or a Windows service.
//! - `demo`: embedded loopback FTPS server for `ftps-sync demo` and the tests.
//! - `engine`: one pass = `prepare` (scan, list, plan: a value, all a dry run needs) +
//!   `Prepared::execute` (the queue over the pool, each action committed); `sync_all` runs one
//!   pass per folder. It names no FTPS type: it works through `remote::Remote`.
//! - `reconcile`: the pure core: (base, local, remote, policy) -> `Plan` or a typed `Refusal`.
//! - `remote`: `trait Remote` / `Connector`, the pool, the FTPS adapter (suppaftp), listing
//!   parsers, FEAT reading, TLS policy.
//! - `local`: scan, atomic writes, the watcher.
//! - `state`: SQLite store of the last-synced snapshot and pass records, schema versioned.
//! - `config`: the YAML contract, validated; `path`: `RelPath`; `error`: the error type and
//!   exit codes.

/// A named point where the crash tests kill the process (`abort`, as `kill -9` would: no
/// destructor, no flush, no state write) when `FTPS_SYNC_FAILPOINT` is `name` or `name:N` (the
/// N-th time it is reached). Without the `failpoints` feature it is nothing, name included.
macro_rules! failpoint {
    ($name:literal) => {{
        #[cfg(feature = "failpoints")]
        $crate::failpoints::hit($name);
    }};
}

/// `println!` that ignores a closed stdout (`ftps-sync check | head`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let text = format!($($arg)*);
        $crate::logging::clear_of_progress(|| {
            let _ = writeln!(std::io::stdout(), "{text}");
        });
    }};
}

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
#[cfg(feature = "demo")]
pub mod demo;
pub mod digest;
pub mod engine;
pub mod error;
#[cfg(feature = "failpoints")]
pub mod failpoints;
pub mod local;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod path;
pub mod reconcile;
pub mod remote;
pub mod service;
pub mod signals;
pub mod state;

pub use error::{Error, Result};
