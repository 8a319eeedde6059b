//! The command line (DESIGN.md §3).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "ftps-sync",
    version,
    about = "Keeps local folders and folders on an FTPS server in sync"
)]
pub struct Cli {
    /// More output: -v debug, -vv trace (overrides log.level).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct ConfigArg {
    /// Config file [default: $FTPS_SYNC_CONFIG, ./ftps-sync.yaml, then the platform config dir]
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// One pass per folder, then exit.
    Sync {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this folder (repeatable).
        #[arg(long = "folder", value_name = "NAME")]
        folders: Vec<String>,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the reports as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Run as a service: a pass, then watch and poll.
    Run {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Check the config, connect, and report TLS and server features.
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// What the state store knows about each folder.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        json: bool,
        /// Also connect and list the server: what the next pass would do, both ways (read-only;
        /// works while `run` is running).
        #[arg(long)]
        remote: bool,
    },
    /// Install or remove the system service (systemd on Linux, the Service Control Manager on
    /// Windows).
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
    /// Start an embedded FTPS server on loopback and sync sample folders with it.
    Demo,
}

#[derive(Debug, Subcommand)]
pub enum ServiceAction {
    /// Install `run` with this config as a service, enable and start it.
    Install {
        #[command(flatten)]
        config: ConfigArg,
        /// The account the service runs as (Linux; created if it is the default and missing).
        #[arg(long, value_name = "NAME", default_value = "ftps-sync")]
        user: String,
        /// Write the files under this directory instead of `/`, and start nothing (Linux;
        /// for packaging and tests).
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
    },
    /// Stop and remove the service; the config, state and folders stay.
    Uninstall {
        /// The staging directory given to `install --root` (Linux).
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
    },
    /// What the Windows Service Control Manager starts; not for use in a console.
    #[command(hide = true)]
    Run {
        #[command(flatten)]
        config: ConfigArg,
    },
}
