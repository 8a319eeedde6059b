//! `ftps-sync service install|uninstall`: `run` as a system service — a systemd unit on
//! Linux, a service of the Service Control Manager on Windows.

pub mod systemd;
#[cfg(windows)]
pub mod windows;
