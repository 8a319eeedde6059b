//! `ftps-sync service install|uninstall|run`.

use super::config_path;
use crate::cli::ServiceAction;
use crate::config::Config;
use crate::error::{Error, Result};

pub fn service(action: ServiceAction) -> Result<u8> {
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
