//! `ftps-sync run` as a Windows service: registering it with the Service Control Manager, and
//! the service's main, which runs the same daemon loop as `run` and stops it on the SCM's Stop
//! or Shutdown control.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use windows_service::service::{
    ServiceAccess, ServiceControl, ServiceControlAccept, ServiceErrorControl, ServiceExitCode, ServiceInfo,
    ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult, ServiceStatusHandle};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

use crate::error::{Error, Result};

pub const SERVICE_NAME: &str = "ftps-sync";
const DISPLAY_NAME: &str = "ftps-sync";
const DESCRIPTION: &str = "Keeps local folders in sync with an FTPS server (ftps-sync run).";

fn scm_error(what: &str) -> impl FnOnce(windows_service::Error) -> Error + '_ {
    move |e| Error::System {
        call: what.to_owned(),
        message: describe(&e),
    }
}

/// The system's own words: the crate's display of a failed call is only "IO error in winapi
/// call". Access denied gets the way out.
fn describe(e: &windows_service::Error) -> String {
    match e {
        windows_service::Error::Winapi(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            format!("{io} (run it from an administrator's prompt)")
        }
        windows_service::Error::Winapi(io) => io.to_string(),
        other => other.to_string(),
    }
}

/// Registers the service: automatic start, `service run -c <config>` as its command line.
pub fn install(exe: &Path, config: &Path) -> Result<Vec<String>> {
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .map_err(scm_error("OpenSCManager"))?;
    let info = ServiceInfo {
        name: SERVICE_NAME.into(),
        display_name: DISPLAY_NAME.into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe.to_path_buf(),
        launch_arguments: vec![
            "service".into(),
            "run".into(),
            "-c".into(),
            config.as_os_str().to_owned(),
        ],
        dependencies: vec![],
        account_name: None, // LocalSystem
        account_password: None,
    };
    let service = manager
        .create_service(&info, ServiceAccess::CHANGE_CONFIG | ServiceAccess::START)
        .map_err(scm_error("CreateService"))?;
    service
        .set_description(DESCRIPTION)
        .map_err(scm_error("ChangeServiceConfig2 (description)"))?;
    let mut done = vec![format!("registered the service {SERVICE_NAME} (automatic start)")];
    match service.start::<&str>(&[]) {
        Ok(()) => done.push(format!("started it (sc query {SERVICE_NAME})")),
        Err(e) => done.push(format!(
            "it did not start yet ({}): `sc start {SERVICE_NAME}` once the config is ready",
            describe(&e)
        )),
    }
    Ok(done)
}

/// Stops and removes the service. The config, state and folders stay.
pub fn uninstall() -> Result<Vec<String>> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(scm_error("OpenSCManager"))?;
    let service = manager
        .open_service(
            SERVICE_NAME,
            ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
        )
        .map_err(scm_error("OpenService"))?;
    let mut done = Vec::new();
    if service
        .query_status()
        .is_ok_and(|s| s.current_state != ServiceState::Stopped)
    {
        let _ = service.stop();
        done.push(format!("asked {SERVICE_NAME} to stop"));
    }
    service.delete().map_err(scm_error("DeleteService"))?;
    done.push(format!("removed the service {SERVICE_NAME}"));
    Ok(done)
}

/// The registered service, as the Service Control Manager knows it.
pub fn installed() -> Result<super::Installed> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(scm_error("OpenSCManager"))?;
    let service = match manager.open_service(
        SERVICE_NAME,
        ServiceAccess::QUERY_STATUS | ServiceAccess::QUERY_CONFIG,
    ) {
        Ok(s) => s,
        // ERROR_SERVICE_DOES_NOT_EXIST
        Err(windows_service::Error::Winapi(e)) if e.raw_os_error() == Some(1060) => {
            return Ok(super::Installed::default());
        }
        Err(e) => return Err(scm_error("OpenService")(e)),
    };
    let status = service.query_status().map_err(scm_error("QueryServiceStatus"))?;
    let config = service.query_config().map_err(scm_error("QueryServiceConfig"))?;
    let command_line = config.executable_path.to_string_lossy().into_owned();
    Ok(super::Installed {
        registered: Some(format!("the Service Control Manager, as {SERVICE_NAME}")),
        state: Some(format!("{:?}", status.current_state).to_lowercase()),
        running: status.current_state == ServiceState::Running,
        enabled: Some(config.start_type == ServiceStartType::AutoStart),
        config: super::config_in_command_line(&command_line, false),
    })
}

static CONFIG: OnceLock<PathBuf> = OnceLock::new();

define_windows_service!(ffi_service_main, service_main);

/// What the SCM starts (`service run -c FILE`): hands the thread to the service dispatcher.
pub fn run_as_service(config: PathBuf) -> Result<u8> {
    let _ = CONFIG.set(config);
    service_dispatcher::start(SERVICE_NAME, ffi_service_main).map_err(|e| {
        Error::Usage(format!(
            "cannot start as a service ({e}); `service run` is for the Service Control Manager, use `ftps-sync run` in a console"
        ))
    })?;
    Ok(0)
}

fn service_main(_arguments: Vec<OsString>) {
    let stop = CancellationToken::new();
    let on_control = {
        let stop = stop.clone();
        move |control| match control {
            ServiceControl::Stop | ServiceControl::Shutdown => {
                stop.cancel();
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        }
    };
    let Ok(status) = service_control_handler::register(SERVICE_NAME, on_control) else {
        return;
    };
    report(&status, ServiceState::StartPending, 0);
    let code = match serve(&status, stop) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code() as u32
        }
    };
    report(&status, ServiceState::Stopped, code);
}

fn serve(status: &ServiceStatusHandle, stop: CancellationToken) -> Result<()> {
    let path = CONFIG
        .get()
        .cloned()
        .unwrap_or_else(crate::config::default_config_path);
    // A service has no console: its log goes beside its state, unless the config says where.
    let default_log = crate::config::platform_data_dir()
        .join("logs")
        .join("ftps-sync.log");
    let mut config = match crate::config::Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            // Said where the user will look, not only as an exit code in the SCM.
            crate::logging::init_file_logging(&default_log);
            return Err(e);
        }
    };
    if config.log.file.is_none() {
        config.log.file = Some(default_log);
    }
    crate::logging::init_logging(&config, None)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(crate::error::system("start the async runtime"))?;
    let stopping = {
        let stop = stop.clone();
        let status = *status;
        async move {
            stop.cancelled().await;
            report(&status, ServiceState::StopPending, 0);
        }
    };
    runtime.block_on(async {
        tokio::spawn(stopping);
        crate::daemon::serve(&config, stop, || report(status, ServiceState::Running, 0)).await
    })
}

fn report(status: &ServiceStatusHandle, state: ServiceState, code: u32) {
    let controls_accepted = if state == ServiceState::Running {
        ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
    } else {
        ServiceControlAccept::empty()
    };
    let wait_hint = match state {
        ServiceState::StartPending => Duration::from_secs(10),
        ServiceState::StopPending => crate::daemon::GRACE + Duration::from_secs(5),
        _ => Duration::ZERO,
    };
    let _ = status.set_service_status(ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted,
        exit_code: ServiceExitCode::Win32(code),
        checkpoint: 0,
        wait_hint,
        process_id: None,
    });
}
