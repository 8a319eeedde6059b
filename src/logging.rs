//! Where log lines go and how they look: stderr (coloured only for a person at a terminal),
//! JSON, or a daily log file. Every command and both services set up logging here.

use std::io::Write;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};
use crate::error::{Error, Result};

/// Colour only for a person at a terminal: never into a pipe, a file or the journal, and
/// never when `NO_COLOR` is set to anything (no-color.org). tracing-subscriber's default
/// colours every line wherever it goes.
fn stderr_colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The progress bars on screen (`sync -P`), if any: what is written to the terminal while
/// they show goes above them, never through them.
static PROGRESS: Mutex<Option<indicatif::MultiProgress>> = Mutex::new(None);

/// Bars now on screen (`Some`), or none any more.
pub fn set_progress(bars: Option<indicatif::MultiProgress>) {
    *PROGRESS.lock().unwrap_or_else(|p| p.into_inner()) = bars;
}

/// Runs `f` (which writes to the terminal) with the progress bars, if any, out of its way.
pub fn clear_of_progress<T>(f: impl FnOnce() -> T) -> T {
    let bars = PROGRESS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match bars {
        Some(bars) => bars.suspend(f),
        None => f(),
    }
}

/// stderr for log lines, each written clear of the progress bars.
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        clear_of_progress(|| std::io::stderr().write(buf))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn stderr() -> Stderr {
    Stderr
}

/// Logging for a command without a config (`demo`): stderr, or `file` (`--log-file`).
pub fn init_default_logging(level: Option<&str>, file: Option<&std::path::Path>) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("ftps_sync={}", level.unwrap_or("info"))));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match file.map(log_file) {
        Some(Ok(writer)) => {
            let _ = builder.with_ansi(false).with_writer(writer).try_init();
        }
        Some(Err(e)) => {
            eprintln!("warning: --log-file: {e}; logging to stderr");
            let _ = builder.with_ansi(stderr_colour()).with_writer(stderr).try_init();
        }
        None => {
            let _ = builder.with_ansi(stderr_colour()).with_writer(stderr).try_init();
        }
    }
}

/// Plain lines into `file` (daily rotated), before any config is known: where a service with
/// no console says why its config would not load. Does nothing if the file cannot be opened.
pub fn init_file_logging(file: &std::path::Path) {
    if let Ok(writer) = log_file(file) {
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_target(false)
            .with_writer(writer)
            .try_init();
    }
}

pub fn init_logging(config: &Config, level: Option<&str>) -> Result<()> {
    init_subscriber(config, level)?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    Ok(())
}

fn init_subscriber(config: &Config, level: Option<&str>) -> Result<()> {
    let level = level.unwrap_or(&config.log.level);
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("ftps_sync={level}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = match (&config.log.file, config.log.format) {
        (Some(file), format) => {
            let writer = log_file(file).map_err(|e| Error::config(&config.source, "log.file", e))?;
            match format {
                LogFormat::Json => builder.json().with_writer(writer).try_init(),
                LogFormat::Text => builder.with_ansi(false).with_writer(writer).try_init(),
            }
        }
        (None, LogFormat::Json) => builder.json().with_ansi(false).with_writer(stderr).try_init(),
        (None, LogFormat::Text) => builder.with_ansi(stderr_colour()).with_writer(stderr).try_init(),
    };
    // Already initialised (a test calling twice): keep the first.
    let _ = result;
    Ok(())
}

/// `log.file`: a file that rotates daily (`<name>.YYYY-MM-DD`), keeping the last 14 days.
pub fn log_file(
    file: &std::path::Path,
) -> std::result::Result<tracing_appender::rolling::RollingFileAppender, String> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{} is not a file name", file.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(name)
        .max_log_files(14)
        .build(dir)
        .map_err(|e| format!("{}: {e}", file.display()))
}
