//! The command line; its exit codes are in docs/design.md, "Exit codes".

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::reconcile::DeleteLimit;

#[derive(Debug, Parser)]
#[command(
    name = "ftps-sync",
    version,
    about = "Keeps local folders and folders on an FTPS server in sync"
)]
pub struct Cli {
    /// Config file [default: $FTPS_SYNC_CONFIG, ./ftps-sync.yaml, then the platform config dir]
    #[arg(short, long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// More output: -v debug, -vv trace (overrides log.level).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only warnings and errors (overrides log.level).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log level; wins over -v, -q and log.level.
    #[arg(long, value_name = "LEVEL", global = true,
          value_parser = ["error", "warn", "info", "debug", "trace"])]
    pub log_level: Option<String>,
    /// Write log lines to this file, rotated daily (overrides log.file).
    #[arg(long, value_name = "FILE", global = true)]
    pub log_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The log level asked for on the command line: `--log-level`, else `-q`/`-v`.
    pub fn log_level(&self) -> Option<&str> {
        if let Some(level) = &self.log_level {
            return Some(level);
        }
        match (self.quiet, self.verbose) {
            (true, _) => Some("warn"),
            (_, 0) => None,
            (_, 1) => Some("debug"),
            _ => Some("trace"),
        }
    }
}

/// What changes one `sync` run only, over the config.
#[derive(Debug, Args, Clone, Default)]
pub struct RunOverrides {
    /// Skip paths matching this pattern, as if added to each folder's `ignore` (repeatable).
    /// Files it hides are not deleted on the other side.
    #[arg(long = "exclude", value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Bandwidth limit across all transfers, e.g. 10MiB/s (overrides bandwidth_limit).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub bwlimit: Option<u64>,
    /// Let the pass delete up to N files or N% of the files in sync (overrides
    /// max_delete_percent).
    #[arg(long, value_name = "N|N%", value_parser = DeleteLimit::parse)]
    pub max_delete: Option<DeleteLimit>,
}

fn parse_rate(s: &str) -> Result<u64, String> {
    crate::config::parse_rate(s)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// One pass per folder, then exit.
    Sync {
        /// Only this folder (repeatable).
        #[arg(long = "folder", value_name = "NAME")]
        folders: Vec<String>,
        /// Print the plan and change nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
        /// Print the reports as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Show progress even when stderr is not a terminal.
        #[arg(short = 'P', long, overrides_with = "no_progress")]
        progress: bool,
        /// Never show progress.
        #[arg(long)]
        no_progress: bool,
        #[command(flatten)]
        overrides: RunOverrides,
    },
    /// Run as a service: a pass, then watch and poll.
    Run,
    /// Check the config, connect, and report TLS and server features.
    Check {
        /// Show the server's certificate and pin it in the config (trust on first use).
        #[arg(long)]
        trust: bool,
        /// With --trust: pin without asking (for scripts).
        #[arg(long, requires = "trust")]
        yes: bool,
        /// With --trust: pin even a certificate the system already trusts.
        #[arg(long, requires = "trust")]
        force: bool,
    },
    /// What the state store knows about each folder.
    Status {
        /// Print it as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Also connect and list the server: what the next pass would do, both ways (read-only;
        /// works while `run` is running).
        #[arg(long)]
        remote: bool,
        /// List each conflict copy beside the file it is a version of.
        #[arg(long)]
        conflicts: bool,
    },
    /// Install, remove or inspect the system service (systemd on Linux, the Service Control Manager on
    /// Windows).
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
    /// Start an embedded FTPS server on loopback and sync sample folders with it.
    Demo,
    /// Print a shell completion script, e.g. `ftps-sync completions bash > /etc/bash_completion.d/ftps-sync`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `ftps-sync man | man -l -`.
    Man,
}

#[derive(Debug, Subcommand)]
pub enum ServiceAction {
    /// Install `run` with this config as a service, enable and start it.
    Install {
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
    /// Whether the service is installed and running, with which config, and its last passes.
    Status {
        /// The staging directory given to `install --root` (Linux).
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
    },
    /// What the Windows Service Control Manager starts; not for use in a console.
    #[command(hide = true)]
    Run,
}

/// The clap command, for completions and the man page.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// `ftps-sync completions SHELL`: the script on `out`.
pub fn write_completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut command(), "ftps-sync", out);
}

/// `ftps-sync man`: one page for the program, then a section per subcommand with its synopsis
/// and options.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let cmd = command();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    for (name, sub) in visible_subcommands(&cmd, "ftps-sync") {
        let sub_man = clap_mangen::Man::new(sub.clone().bin_name(name.clone()));
        let mut part = Vec::new();
        sub_man.render_synopsis_section(&mut part)?;
        part.extend_from_slice(b".PP\n");
        sub_man.render_description_section(&mut part)?;
        sub_man.render_options_section(&mut part)?;
        // Its own headings (SYNOPSIS, OPTIONS) would read as the program's: one heading per
        // subcommand instead.
        page.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
        for line in String::from_utf8_lossy(&part).split_inclusive('\n') {
            if !line.starts_with(".SH ") {
                page.extend_from_slice(line.as_bytes());
            }
        }
    }
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// Every subcommand a user may type, nested ones too (`service install`), with its full name.
fn visible_subcommands(cmd: &clap::Command, prefix: &str) -> Vec<(String, clap::Command)> {
    let mut found = Vec::new();
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = format!("{prefix} {}", sub.get_name());
        found.push((name.clone(), sub.clone()));
        found.extend(visible_subcommands(sub, &name));
    }
    found
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("ftps-sync").chain(args.iter().copied())).expect("parses")
    }

    #[test]
    fn the_command_line_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn an_explicit_log_level_wins_over_verbose_and_quiet() {
        assert_eq!(
            parse(&["-q", "--log-level", "debug", "sync"]).log_level(),
            Some("debug")
        );
        assert_eq!(
            parse(&["sync", "-vv", "--log-level", "error"]).log_level(),
            Some("error")
        );
        assert_eq!(parse(&["sync", "-vv"]).log_level(), Some("trace"));
        assert_eq!(parse(&["-q", "sync"]).log_level(), Some("warn"));
        assert_eq!(parse(&["sync"]).log_level(), None);
    }

    #[test]
    fn config_goes_before_or_after_the_subcommand_and_sync_takes_rclones_flags() {
        let cli = parse(&["-c", "a.yaml", "sync", "-n", "--max-delete", "10%"]);
        assert_eq!(cli.config, Some(PathBuf::from("a.yaml")));
        match cli.command {
            Command::Sync {
                dry_run: true,
                overrides,
                ..
            } => assert_eq!(overrides.max_delete, Some(DeleteLimit::Percent(10))),
            other => panic!("{other:?}"),
        }
        let cli = parse(&[
            "sync",
            "-c",
            "b.yaml",
            "-P",
            "--max-delete",
            "7",
            "--bwlimit",
            "1MiB/s",
            "--exclude",
            "*.tmp",
        ]);
        assert_eq!(cli.config, Some(PathBuf::from("b.yaml")));
        match cli.command {
            Command::Sync {
                progress: true,
                overrides,
                ..
            } => {
                assert_eq!(overrides.max_delete, Some(DeleteLimit::Files(7)));
                assert_eq!(overrides.bwlimit, Some(1 << 20));
                assert_eq!(overrides.exclude, vec!["*.tmp".to_owned()]);
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            &["sync", "--max-delete", "lots"][..],
            &["sync", "--max-delete", "101%"],
            &["sync", "--bwlimit", "fast"],
            &["check", "--yes"],
            &["sync", "--log-level", "loud"],
        ] {
            let args = std::iter::once("ftps-sync").chain(bad.iter().copied());
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?} parsed");
        }
    }
}
