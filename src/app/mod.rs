//! What each command does, one file per command. `main` only parses arguments and maps errors
//! to exit codes; nothing below the CLI imports this module.

mod check;
mod run;
mod service;
mod status;
mod sync;

use std::path::PathBuf;

use crate::cli::{Cli, Command, ConfigArg};
use crate::config::{self, Config};
use crate::error::Result;
use crate::logging::{init_default_logging, init_logging};

pub use status::FolderStatus;

pub async fn run(cli: Cli) -> Result<u8> {
    let level_override = match (cli.quiet, cli.verbose) {
        (true, _) => Some("warn"),
        (_, 0) => None,
        (_, 1) => Some("debug"),
        _ => Some("trace"),
    };
    match cli.command {
        Command::Sync {
            config,
            folders,
            dry_run,
            json,
        } => {
            let config = load(&config)?;
            init_logging(&config, level_override)?;
            if dry_run {
                sync::dry_run(&config, &folders, json).await
            } else {
                sync::sync(&config, &folders, json).await
            }
        }
        Command::Check { config } => {
            let config = load(&config)?;
            init_logging(&config, level_override)?;
            check::check(&config).await
        }
        Command::Status { config, json, remote } => {
            let config = load(&config)?;
            if remote {
                // Only what goes wrong on the way is logged; the answer goes to stdout.
                init_logging(&config, level_override.or(Some("warn")))?;
            }
            status::status(&config, json, remote).await
        }
        Command::Run { config } => {
            let config = load(&config)?;
            init_logging(&config, level_override)?;
            run::run(&config).await
        }
        Command::Service { action } => service::service(action),
        Command::Demo => {
            init_default_logging(level_override);
            demo().await
        }
    }
}

fn config_path(arg: &ConfigArg) -> PathBuf {
    arg.config.clone().unwrap_or_else(config::default_config_path)
}

fn load(arg: &ConfigArg) -> Result<Config> {
    Config::load(&config_path(arg))
}

/// JSON for stdout; a value that will not encode is a bug.
fn to_json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| crate::Error::Internal(format!("JSON: {e}")))
}

#[cfg(feature = "demo")]
async fn demo() -> Result<u8> {
    crate::demo::run_demo().await
}

#[cfg(not(feature = "demo"))]
async fn demo() -> Result<u8> {
    Err(crate::Error::Usage(
        "this build has no embedded demo server (built without the `demo` feature)".into(),
    ))
}
