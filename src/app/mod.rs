//! What each command does, one file per command. `main` only parses arguments and maps errors
//! to exit codes; nothing below the CLI imports this module.

mod check;
mod progress;
mod run;
mod service;
mod status;
mod sync;
mod trust;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::cli::{Cli, Command, RunOverrides};
use crate::config::{self, Config};
use crate::error::{Error, Result};
use crate::logging::{init_default_logging, init_logging};

pub use status::FolderStatus;

pub async fn run(cli: Cli) -> Result<u8> {
    let level = cli.log_level().map(str::to_owned);
    let level = level.as_deref();
    let log_file = cli.log_file.clone();
    let load_config = || load(cli.config.as_deref(), log_file.as_deref());
    match cli.command {
        Command::Sync {
            folders,
            dry_run,
            json,
            progress,
            no_progress,
            overrides,
        } => {
            let result = async {
                let mut config = load_config()?;
                apply_overrides(&mut config, &overrides)?;
                let progress = !dry_run && !no_progress && (progress || std::io::stderr().is_terminal());
                init_logging(&config, level)?;
                if dry_run {
                    sync::dry_run(&config, &folders, json).await
                } else {
                    sync::sync(&config, &folders, json, progress).await
                }
            }
            .await;
            // A script reading stdout gets the failure there too (its message also goes to
            // stderr, as always).
            if json && let Err(e) = &result {
                say!("{}", to_json(&sync::JsonError::of(e))?);
            }
            result
        }
        Command::Check { trust, yes, force } => {
            let config = load_config()?;
            init_logging(&config, level)?;
            if trust {
                trust::trust(&config, yes, force).await
            } else {
                check::check(&config).await
            }
        }
        Command::Status {
            json,
            remote,
            conflicts,
        } => {
            let config = load_config()?;
            if remote {
                // Only what goes wrong on the way is logged; the answer goes to stdout.
                init_logging(&config, level.or(Some("warn")))?;
            }
            status::status(&config, json, remote, conflicts).await
        }
        Command::Run => {
            let config = load_config()?;
            init_logging(&config, level)?;
            run::run(&config).await
        }
        Command::Service { action } => service::service(action, cli.config.as_deref()).await,
        Command::Demo => {
            init_default_logging(level, log_file.as_deref());
            demo().await
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            crate::cli::write_completions(shell, &mut script);
            // A closed stdout (`| head`) is no error, as for `say!`.
            let _ = std::io::stdout().write_all(&script);
            Ok(0)
        }
        Command::Man => {
            let page = crate::cli::man_page().map_err(|e| Error::Internal(format!("man page: {e}")))?;
            let _ = std::io::stdout().write_all(&page);
            Ok(0)
        }
    }
}

/// The config file: `-c`, else the first of the default places that exists.
fn config_path(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(path) => Ok(path.to_owned()),
        None => config::find_config(),
    }
}

/// Loads the config; `--log-file` replaces its `log.file`.
fn load(given: Option<&Path>, log_file: Option<&Path>) -> Result<Config> {
    let mut config = Config::load(&config_path(given)?)?;
    if let Some(file) = log_file {
        config.log.file = Some(file.to_owned());
    }
    Ok(config)
}

/// `sync`'s flags that change the config for this run only.
fn apply_overrides(config: &mut Config, overrides: &RunOverrides) -> Result<()> {
    // A bad pattern is the user's mistake, said before anything connects.
    crate::local::scan::Ignore::new(&overrides.exclude)?;
    for folder in &mut config.folders {
        folder.exclude.extend(overrides.exclude.iter().cloned());
        if let Some(limit) = overrides.max_delete {
            folder.max_delete = limit;
        }
    }
    if let Some(rate) = overrides.bwlimit {
        config.bandwidth_limit = Some(rate);
    }
    Ok(())
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
