//! `ftps-sync service install|uninstall|status|run`.

use super::config_path;
use crate::cli::ServiceAction;
use crate::config::Config;
use crate::error::{Error, Result};

pub async fn service(action: ServiceAction, config: Option<&std::path::Path>) -> Result<u8> {
    let done = match action {
        ServiceAction::Install { user, root } => {
            let path = config_path(config)?;
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
        ServiceAction::Status { root } => return status(root).await,
        ServiceAction::Run => return crate::service::run(config_path(config)?),
    };
    for line in done {
        say!("{line}");
    }
    Ok(0)
}

/// `service status`: installed or not, running or not, with which config, and what the state
/// says of each folder. Exit 0 only when it runs.
async fn status(root: std::path::PathBuf) -> Result<u8> {
    let installed = crate::service::installed(root)?;
    let Some(registered) = &installed.registered else {
        say!("service      not installed (ftps-sync service install)");
        return Ok(1);
    };
    say!("service      installed in {registered}");
    let enabled = match installed.enabled {
        Some(true) => ", starts with the system",
        Some(false) => ", does not start with the system",
        None => "",
    };
    match &installed.state {
        Some(state) => say!("state        {state}{enabled}"),
        None => say!("state        unknown (the service manager is not running here)"),
    }
    let Some(path) = &installed.config else {
        say!("config       not found in its command line");
        return Ok(1);
    };
    say!("config       {}", path.display());
    match Config::load(path) {
        Ok(config) => {
            super::status::status(&config, false, false, false).await?;
        }
        Err(e) => say!("             cannot be loaded here: {e}"),
    }
    Ok(if installed.running { 0 } else { 1 })
}
