//! `ftps-sync sync`: one pass per folder; `--dry-run` only prepares them.

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::to_json;
use crate::config::Config;
use crate::engine::{self, Issue, Options, Report, Totals};
use crate::error::{Error, Result};
use crate::reconcile::{Plan, Refusal};
use crate::remote::ftps::FtpsConnector;
use crate::signals::cancel_on_signal;

/// Exit 0 when everything is in sync, 1 when something is left for the user (conflicts,
/// skips, failures, a refused pass).
pub async fn sync(config: &Config, only: &[String], json: bool) -> Result<u8> {
    let folders = engine::select_folders(config, only)?;
    let cancel = CancellationToken::new();
    cancel_on_signal(cancel.clone());
    let connector = FtpsConnector::for_server(&config.server)?;
    let passes = engine::sync_all(config, &folders, &connector, &cancel, |outcome| match outcome {
        Ok(report) if !json => say!("{report}"),
        Ok(_) => {}
        Err(e) => print_refusal(e),
    })
    .await?;
    if json {
        let reports: Vec<Pass> = passes
            .reports
            .iter()
            .map(|report| Pass {
                report,
                dry_run: false,
            })
            .collect();
        say!("{}", to_json(&reports)?);
    }
    Ok(u8::from(passes.unresolved()))
}

/// A refused pass, with the paths it is about.
fn print_refusal(e: &Error) {
    eprintln!("error: {e}");
    if let Error::Refused {
        refusal: Refusal::MaxDelete { deletes, .. },
        ..
    } = e
    {
        const SHOWN: usize = 10;
        for path in deletes.iter().take(SHOWN) {
            eprintln!("  would delete {path}");
        }
        if deletes.len() > SHOWN {
            eprintln!("  ... and {} more", deletes.len() - SHOWN);
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
    let connector = FtpsConnector::for_server(&config.server)?;
    let cancel = CancellationToken::new();
    cancel_on_signal(cancel.clone());
    let mut plans = Vec::new();
    let mut code = 0;
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
                    plans.push(
                        serde_json::to_value(&plan).map_err(|e| Error::Internal(format!("JSON: {e}")))?,
                    );
                } else {
                    say!("{} (dry run, nothing changed):", prepared.folder());
                    say!("{}", prepared.plan().to_string().trim_end());
                    say!("  in all: {}", prepared.totals());
                    for i in prepared.skipped() {
                        say!("  skipped {}: {}", i.path, i.reason);
                    }
                }
                // Names that cannot be synced are for the user to look at, as in a real pass.
                if !prepared.skipped().is_empty() {
                    code = 1;
                }
                prepared.close().await;
            }
            Err(e @ Error::Refused { .. }) => {
                print_refusal(&e);
                code = 1;
            }
            Err(e) => return Err(e),
        }
    }
    if json {
        say!("{}", to_json(&plans)?);
    }
    Ok(code)
}
