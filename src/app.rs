//! What each command does. `main` only parses arguments and maps errors to exit codes.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command, ConfigArg, ServiceAction};
use crate::config::{self, Config};
use crate::engine::{self, Options, Report};
use crate::error::{Error, Result};
use crate::logging::{init_default_logging, init_logging};
use crate::remote::ftps::{Ftps, HashCommand, ListingMode, MtimeSupport};
use crate::remote::tls::TlsContext;
use crate::state::State;

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
            sync(
                &config,
                &folders,
                Options {
                    dry_run,
                    ..Options::default()
                },
                json,
            )
            .await
        }
        Command::Check { config } => {
            let config = load(&config)?;
            init_logging(&config, level_override)?;
            check(&config).await
        }
        Command::Status { config, json, remote } => {
            let config = load(&config)?;
            if remote {
                // Only what goes wrong on the way is logged; the answer goes to stdout.
                init_logging(&config, level_override.or(Some("warn")))?;
            }
            status(&config, json, remote).await
        }
        Command::Run { config } => {
            let config = load(&config)?;
            init_logging(&config, level_override)?;
            run_service(&config).await
        }
        Command::Service { action } => service(action),
        Command::Demo => {
            init_default_logging(level_override);
            demo().await
        }
    }
}

/// `ftps-sync service install|uninstall`.
fn service(action: ServiceAction) -> Result<u8> {
    let done = match action {
        ServiceAction::Install { config, user, root } => {
            let path = config_path(&config);
            let path = std::path::absolute(&path).map_err(Error::local("resolve", &path))?;
            // Installing a service that cannot start helps no one: the config must load.
            let loaded = Config::load_for_service(&path)?;
            // Resolved on Unix (a symlinked binary); as is on Windows, where resolving gives a
            // `\\?\` path.
            let exe = std::env::current_exe()
                .and_then(|e| if cfg!(windows) { Ok(e) } else { e.canonicalize() })
                .map_err(crate::error::system("find this program's path"))?;
            crate::service::install(&loaded, &exe, &path, &user, root)?
        }
        ServiceAction::Uninstall { root } => crate::service::uninstall(root)?,
        ServiceAction::Run { config } => return crate::service::run(config_path(&config)),
    };
    for line in done {
        say!("{line}");
    }
    Ok(0)
}

fn config_path(arg: &ConfigArg) -> PathBuf {
    arg.config.clone().unwrap_or_else(config::default_config_path)
}

fn load(arg: &ConfigArg) -> Result<Config> {
    Config::load(&config_path(arg))
}

/// Cancels `token` on Ctrl-C / SIGTERM.
fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::warn!("interrupted: stopping after cleaning up");
        token.cancel();
    });
}

/// `ftps-sync run`: passes at start, on local changes and on the poll timer, until SIGTERM or
/// Ctrl-C. A second signal exits at once.
pub async fn run_service(config: &Config) -> Result<u8> {
    let _lock = crate::lock::InstanceLock::acquire(&config.state_dir)?;
    let shutdown = CancellationToken::new();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!(
                "stopping: in-flight transfers get {}s to finish",
                crate::daemon::GRACE.as_secs()
            );
            shutdown.cancel();
            wait_for_signal().await;
            tracing::warn!("second signal: exiting now");
            std::process::exit(4);
        });
    }
    tracing::info!(folders = config.folders.len(), "ftps-sync running");
    crate::daemon::run(config, shutdown).await?;
    tracing::info!("stopped");
    Ok(0)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// `ftps-sync sync`: one pass per folder. Exit 0 when everything is in sync, 1 when something
/// is left for the user (conflicts, skips, failures, a refused pass).
pub async fn sync(config: &Config, only: &[String], options: Options, json: bool) -> Result<u8> {
    for name in only {
        if !config.folders.iter().any(|f| &f.name == name) {
            return Err(Error::Usage(format!(
                "no folder named {name:?} in {}",
                config.source.display()
            )));
        }
    }
    // A dry run changes nothing, so it may look while a service works.
    let _lock = if options.dry_run {
        None
    } else {
        Some(crate::lock::InstanceLock::acquire(&config.state_dir)?)
    };
    let tls = TlsContext::new(&config.server)?;
    let cancel = CancellationToken::new();
    cancel_on_signal(cancel.clone());
    let mut reports: Vec<Report> = Vec::new();
    let mut code = 0u8;
    for folder in config
        .folders
        .iter()
        .filter(|f| only.is_empty() || only.contains(&f.name))
    {
        match engine::sync_folder(config, folder, &tls, options.clone(), &cancel).await {
            Ok(report) => {
                if !json {
                    print_report(&report);
                }
                if report.unresolved() {
                    code = code.max(1);
                }
                reports.push(report);
            }
            Err(e @ Error::Refused { .. }) => {
                eprintln!("error: {e}");
                code = code.max(1);
            }
            Err(e) => return Err(e),
        }
    }
    if json {
        let text =
            serde_json::to_string_pretty(&reports).map_err(|e| Error::Internal(format!("JSON: {e}")))?;
        say!("{text}");
    }
    Ok(code)
}

fn print_report(r: &Report) {
    if let Some(plan) = &r.plan {
        say!("{} (dry run, nothing changed):", r.folder);
        say!("{}", plan.to_string().trim_end());
        return;
    }
    say!("{}", r.summary());
    for i in &r.skipped {
        say!("  skipped {}: {}", i.path, i.reason);
    }
    for i in &r.failed {
        say!("  failed  {}: {}", i.path, i.reason);
    }
}

/// `ftps-sync check`: connect and report what a user needs to trust and tune the server.
pub async fn check(config: &Config) -> Result<u8> {
    let s = &config.server;
    let tls = TlsContext::new(s)?;
    say!("server       {}:{} ({:?} TLS)", s.host, s.port, s.tls);
    let mut conn = match Ftps::connect(s, &tls).await {
        Ok(c) => c,
        Err(e) => {
            if let (Error::Tls { .. }, Some(fp)) = (&e, tls.seen_fingerprint()) {
                say!("certificate  SHA-256 {fp} (NOT trusted)");
                say!(
                    "             if you trust this server, pin it under server:  fingerprint_sha256: \"{fp}\""
                );
            }
            return Err(e);
        }
    };
    if let Some(t) = &conn.tls {
        say!("tls          {} {}", t.version, t.cipher);
        say!("certificate  SHA-256 {}", t.fingerprint);
        say!(
            "             to pin it, add under server:  fingerprint_sha256: \"{}\"",
            t.fingerprint
        );
    }
    say!("login        ok as {}", s.user);
    say!("features     {}", conn.features.lines.join(", "));
    say!(
        "listing      {}",
        match conn.listing {
            ListingMode::Mlsd => "MLSD",
            ListingMode::List => "LIST",
        }
    );
    say!(
        "mtime        {}",
        match conn.mtime {
            MtimeSupport::Mfmt => "MFMT",
            MtimeSupport::MdtmWrite => "MDTM (2-argument form, tried on first upload)",
            MtimeSupport::None => "cannot be set",
        }
    );
    say!(
        "hash         {}",
        match conn.hash {
            Some(HashCommand::Hash(a)) => format!("HASH {}", a.name()),
            Some(HashCommand::X(a)) => format!("X{}", a.name().replace('-', "")),
            None => "none (uploads verified by size)".into(),
        }
    );
    let mut code = 0;
    for f in &config.folders {
        match conn.list_dir(&f.remote).await {
            Ok(entries) => say!(
                "folder       {}: {} ({} entries)",
                f.name,
                f.remote,
                entries.len()
            ),
            Err(Error::Reply { code: Some(550), .. }) => {
                say!(
                    "folder       {}: {} does not exist yet (created on first sync)",
                    f.name,
                    f.remote
                )
            }
            Err(e) => {
                say!("folder       {}: {} cannot be listed: {e}", f.name, f.remote);
                code = 1;
            }
        }
    }
    conn.quit().await;
    Ok(code)
}

/// Local files and directories that differ from the last synced state (new, edited or
/// deleted): what the next pass will send. The server is not asked; `None` if the folder
/// cannot be read.
fn pending_local_changes(folder: &crate::config::Folder, base: &crate::reconcile::Base) -> Option<usize> {
    use crate::reconcile::{Change, local_change};
    let ignore = crate::local::scan::Ignore::new(&folder.ignore).ok()?;
    let scanned = crate::local::scan::scan(&folder.local, &ignore, base).ok()?;
    let paths: std::collections::BTreeSet<_> = base.keys().chain(scanned.snapshot.keys()).collect();
    Some(
        paths
            .into_iter()
            .filter(|p| {
                !matches!(
                    local_change(base.get(*p), scanned.snapshot.get(*p)),
                    Change::Unchanged | Change::Absent
                )
            })
            .count(),
    )
}

/// `ftps-sync status`: what the state store knows.
pub async fn status(config: &Config, json: bool, remote: bool) -> Result<u8> {
    let mut out = Vec::new();
    let mut code = 0u8;
    let tls = if remote {
        Some(TlsContext::new(&config.server)?)
    } else {
        None
    };
    for f in &config.folders {
        let path: PathBuf = config.state_dir.join(format!("{}.sqlite3", f.name));
        if !path.exists() {
            out.push(serde_json::json!({"folder": f.name, "synced": false}));
            continue;
        }
        let state = State::open(&config.state_dir, &f.name)?;
        let base = state.load()?;
        let files = base
            .values()
            .filter(|b| b.kind == crate::reconcile::Kind::File)
            .count();
        let conflict_copies = base
            .keys()
            .filter(|p| crate::reconcile::is_conflict_copy(p.name()))
            .count();
        let pending_local = pending_local_changes(f, &base);
        let next_pass = match &tls {
            Some(tls) => {
                let options = Options {
                    dry_run: true,
                    ..Options::default()
                };
                match engine::sync_folder(config, f, tls, options, &CancellationToken::new()).await {
                    Ok(report) => report.plan.as_ref().map(next_pass_counts),
                    Err(e) => {
                        code = code.max(e.exit_code() as u8);
                        Some(serde_json::json!({ "error": e.to_string() }))
                    }
                }
            }
            None => None,
        };
        out.push(serde_json::json!({
            "folder": f.name,
            "synced": true,
            "files": files,
            "conflict_copies": conflict_copies,
            "pending_local_changes": pending_local,
            "next_pass": next_pass,
            "directories": base.len() - files,
            "last_pass_start": state.meta("last_pass_start")?,
            "last_pass_end": state.meta("last_pass_end")?,
            "last_result": state.meta("last_result")?,
            "last_error": state.meta("last_error")?,
            "last_report": state
                .meta("last_report")?
                .and_then(|r| serde_json::from_str::<serde_json::Value>(&r).ok()),
        }));
    }
    if json {
        say!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| Error::Internal(format!("JSON: {e}")))?
        );
    } else {
        for v in &out {
            let name = v["folder"].as_str().unwrap_or("?");
            if v["synced"] == serde_json::Value::Bool(false) {
                say!("{name}: never synced");
                continue;
            }
            let field = |k: &str| v[k].as_str().unwrap_or("-").to_owned();
            say!(
                "{name}: {} files and {} directories in sync ({} conflict copies to look at); last pass {} .. {}: {}",
                v["files"],
                v["directories"],
                v["conflict_copies"],
                field("last_pass_start"),
                field("last_pass_end"),
                field("last_result")
            );
            if let Some(n) = v["pending_local_changes"].as_u64() {
                say!("  {n} local changes waiting for the next pass");
            }
            let next = &v["next_pass"];
            if let Some(e) = next["error"].as_str() {
                say!("  the server could not be checked: {e}");
            } else if next.is_object() {
                say!(
                    "  the next pass would: upload {}, download {}, delete {} locally and {} on the server, keep both versions of {} conflicts",
                    next["upload"],
                    next["download"],
                    next["delete_local"],
                    next["delete_remote"],
                    next["conflicts"]
                );
            }
            let r = &v["last_report"];
            if r.is_object() {
                say!(
                    "  last pass: {} uploaded, {} downloaded, {} deleted, {} conflicts, {} skipped, {} failed",
                    r["uploaded"],
                    r["downloaded"],
                    r["deleted"],
                    r["conflicts"],
                    r["skipped"],
                    r["failed"]
                );
            }
            if let Some(e) = v["last_error"].as_str() {
                say!("  last error: {e}");
            }
        }
    }
    Ok(code)
}

/// What a dry-run plan would change, by kind, for `status --remote`.
fn next_pass_counts(plan: &crate::reconcile::Plan) -> serde_json::Value {
    use crate::reconcile::Action;
    let count = |f: fn(&Action) -> bool| plan.actions.iter().filter(|a| f(a)).count();
    serde_json::json!({
        "upload": count(|a| matches!(a, Action::Upload { .. })),
        "download": count(|a| matches!(a, Action::Download { .. })),
        "delete_local": count(|a| matches!(a, Action::DeleteLocal { .. })),
        "delete_remote": count(|a| matches!(a, Action::DeleteRemote { .. })),
        "conflicts": count(|a| matches!(a, Action::KeepBoth { .. })),
        "skipped": count(|a| matches!(a, Action::Skip { .. })),
    })
}

#[cfg(feature = "demo")]
async fn demo() -> Result<u8> {
    crate::demo::run_demo().await
}

#[cfg(not(feature = "demo"))]
async fn demo() -> Result<u8> {
    Err(Error::Usage(
        "this build has no embedded demo server (built without the `demo` feature)".into(),
    ))
}
