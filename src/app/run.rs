//! `ftps-sync run`: the service in the foreground, stopped by SIGTERM or Ctrl-C.

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::Result;
use crate::signals::wait_for_signal;

/// Passes at start, on local changes and on the poll timer, until SIGTERM or Ctrl-C. A second
/// signal exits at once.
pub async fn run(config: &Config) -> Result<u8> {
    let shutdown = CancellationToken::new();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            shutdown.cancel();
            wait_for_signal().await;
            tracing::warn!("second signal: exiting now");
            std::process::exit(4);
        });
    }
    crate::daemon::serve(config, shutdown, || {}).await?;
    Ok(0)
}
