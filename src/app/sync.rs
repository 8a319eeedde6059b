//! `ftps-sync sync`: one pass per folder; `--dry-run` only prepares them.

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::progress::Progress;
use super::to_json;
use crate::config::Config;
use crate::engine::{self, Issue, Meter, Options, Report, Totals};
use crate::error::{Error, Result};
use crate::reconcile::{Plan, Refusal};
use crate::signals::cancel_on_signal;

/// Exit 0 when everything is in sync, 1 when something is left for the user (conflicts,
/// skips, failures, a refused pass). With `progress`, a display on stderr while it runs.
pub async fn sync(config: &Config, only: &[String], json: bool, progress: bool) -> Result<u8> {
    let folders = engine::select_folders(config, only)?;
    let cancel = CancellationToken::new();
    cancel_on_signal(cancel.clone());
    let connector =
        crate::remote::ftps::FtpsConnector::remembering(&config.server, engine::learned::memory(config))?;
    let meter = progress.then(Meter::new);
    let display = meter.clone().map(Progress::start);
    let options = Options {
        meter,
        ..Options::default()
    };
    let passes = engine::sync_all(
        config,
        &folders,
        &connector,
        &cancel,
        options,
        |outcome| match outcome {
            Ok(report) if !json => say!("{report}"),
            Ok(_) => {}
            Err(e) => print_refusal(config, e),
        },
    )
    .await;
    if let Some(display) = display {
        display.finish().await;
    }
    let passes = passes?;
    if json {
        let mut out: Vec<serde_json::Value> = Vec::new();
        for report in &passes.reports {
            out.push(json_value(&Pass {
                report,
                dry_run: false,
            })?);
        }
        for e in &passes.refused {
            out.push(json_value(&Refused::of(e))?);
        }
        say!("{}", to_json(&out)?);
    }
    Ok(u8::from(passes.unresolved()))
}

fn json_value(value: &impl Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| Error::Internal(format!("JSON: {e}")))
}

/// Paths a refused mass deletion names; the rest are counted.
const REFUSED_SHOWN: usize = 20;

/// A refused pass, with the paths it is about and, for too many deletions, how to let it
/// through once: the same run (config, excludes) with `--max-delete`.
fn print_refusal(config: &Config, e: &Error) {
    crate::logging::clear_of_progress(|| print_refusal_lines(config, e));
}

fn print_refusal_lines(config: &Config, e: &Error) {
    eprintln!("error: {e}");
    if let Error::Refused {
        folder,
        refusal: Refusal::MaxDelete { deletes, .. },
    } = e
    {
        for path in deletes.iter().take(REFUSED_SHOWN) {
            eprintln!("  would delete {path}");
        }
        if deletes.len() > REFUSED_SHOWN {
            eprintln!("  ... and {} more", deletes.len() - REFUSED_SHOWN);
        }
        let excludes: String = config
            .folders
            .iter()
            .find(|f| &f.name == folder)
            .map(|f| {
                f.exclude
                    .iter()
                    .map(|p| format!(" --exclude {}", shell_word(p)))
                    .collect()
            })
            .unwrap_or_default();
        eprintln!(
            "  if these deletions are meant, let them through once with: ftps-sync -c {} sync --folder {}{excludes} --max-delete {}",
            shell_word(&config.source.display().to_string()),
            shell_word(folder),
            deletes.len()
        );
    }
}

/// `s` as one shell word.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A failure as `--json` prints it on stdout (the same message goes to stderr).
#[derive(Serialize)]
pub struct JsonError {
    error: ErrorBody,
}

#[derive(Serialize)]
struct ErrorBody {
    kind: &'static str,
    message: String,
    exit_code: i32,
}

impl JsonError {
    pub fn of(e: &Error) -> JsonError {
        JsonError {
            error: ErrorBody {
                kind: e.kind(),
                message: e.to_string(),
                exit_code: e.exit_code(),
            },
        }
    }
}

/// A refused folder in `--json`: the error, and what it is about (every path it would delete).
#[derive(Serialize)]
struct Refused<'a> {
    folder: &'a str,
    dry_run: bool,
    #[serde(flatten)]
    error: JsonError,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<&'a Refusal>,
}

impl<'a> Refused<'a> {
    fn of(e: &'a Error) -> Refused<'a> {
        let (folder, refusal) = match e {
            Error::Refused { folder, refusal } => (folder.as_str(), Some(refusal)),
            _ => ("", None),
        };
        Refused {
            folder,
            dry_run: false,
            error: JsonError::of(e),
            refusal,
        }
    }
}

/// A dry run's JSON: the plan, and the names found unsafe on the way.
#[derive(Serialize)]
struct DryRun<'a> {
    folder: &'a str,
    dry_run: bool,
    plan: &'a Plan,
    totals: &'a Totals,
    skipped: &'a [Issue],
}

/// A pass's JSON: the report, marked as no dry run (the key `--json` always had).
#[derive(Serialize)]
struct Pass<'a> {
    #[serde(flatten)]
    report: &'a Report,
    dry_run: bool,
}

/// The plan of each folder, changing nothing. It takes no lock, so it may look while a
/// service works.
pub async fn dry_run(config: &Config, only: &[String], json: bool) -> Result<u8> {
    let folders = engine::select_folders(config, only)?;
    let connector =
        crate::remote::ftps::FtpsConnector::remembering(&config.server, engine::learned::memory(config))?;
    let cancel = CancellationToken::new();
    cancel_on_signal(cancel.clone());
    let mut plans = Vec::new();
    let mut code = 0;
    let mut all = Totals::default();
    let several = folders.len() > 1;
    for folder in folders {
        let options = Options {
            plan_only: true,
            ..Options::default()
        };
        match engine::prepare(config, folder, &connector, options, &cancel).await {
            Ok(prepared) => {
                if json {
                    let plan = DryRun {
                        folder: prepared.folder(),
                        dry_run: true,
                        plan: prepared.plan(),
                        totals: prepared.totals(),
                        skipped: prepared.skipped(),
                    };
                    plans.push(json_value(&plan)?);
                } else {
                    say!("{} (dry run, nothing changed):", prepared.folder());
                    say!("{}", prepared.plan().to_string().trim_end());
                    say!("  in all: {}", prepared.totals());
                    for i in prepared.skipped() {
                        say!("  skipped {}: {}", i.path, i.reason);
                    }
                }
                all.add(prepared.totals());
                // Names that cannot be synced are for the user to look at, as in a real pass.
                if !prepared.skipped().is_empty() {
                    code = 1;
                }
                prepared.close().await;
            }
            Err(e @ Error::Refused { .. }) => {
                print_refusal(config, &e);
                if json {
                    let mut refused = Refused::of(&e);
                    refused.dry_run = true;
                    plans.push(json_value(&refused)?);
                }
                code = 1;
            }
            Err(e) => return Err(e),
        }
    }
    if json {
        say!("{}", to_json(&plans)?);
    } else if several {
        say!("all folders (dry run, nothing changed): {all}");
    }
    Ok(code)
}
