//! The service under the Windows Service Control Manager (the `windows-service` crate): the same
//! loop, configuration, status file, backoff and exit behaviour as under systemd. The SCM's Stop and
//! Shutdown play SIGTERM's part (the current step finishes, then `state: stopped`); status reports
//! play sd_notify's.
//!
//! `amt-agent service` started by the SCM connects to it through the dispatcher; started from a
//! console (the dispatcher refuses with ERROR_FAILED_SERVICE_CONTROLLER_CONNECT; Wine's does so only
//! after its control-pipe wait times out, some seconds) it runs in the foreground until Ctrl+C.
//! Both paths are tested under Wine, the first through Wine's own service manager.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

use super::Service;
use crate::error::{AgentError, ExitCode};

/// The service's name in the SCM (`sc query amt-agent`), the same as the MSI registers.
pub const SERVICE_NAME: &str = "amt-agent";
pub const DISPLAY_NAME: &str = "Intel AMT activation agent (amt-agent)";
pub const DESCRIPTION: &str = "Brings this machine's Intel AMT to what %ProgramData%\\amt-agent\\agent.toml configures (a control mode, or a desired-state profile) and keeps it there.";

/// The service's log, in its state directory (`%ProgramData%\amt-agent\amt-agent.log`).
pub const LOG_FILE: &str = "amt-agent.log";

/// ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: not started by the SCM.
const NOT_A_SERVICE: i32 = 1063;

/// The service to run, handed to `service_main` (the dispatcher calls it on its own thread).
static PENDING: Mutex<Option<Service>> = Mutex::new(None);
/// What the service loop returned, handed back to `main`.
static OUTCOME: Mutex<Option<Result<ExitCode, AgentError>>> = Mutex::new(None);

define_windows_service!(ffi_service_main, service_main);

/// Runs the service under the SCM, or in the foreground when started from a console.
pub fn run(service: Service) -> Result<ExitCode, AgentError> {
    *PENDING.lock().unwrap_or_else(|p| p.into_inner()) = Some(service);
    match service_dispatcher::start(SERVICE_NAME, ffi_service_main) {
        Ok(()) => OUTCOME
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or(Ok(ExitCode::Success)),
        Err(windows_service::Error::Winapi(e)) if e.raw_os_error() == Some(NOT_A_SERVICE) => {
            tracing::info!("not started by the Service Control Manager: running in the foreground (Ctrl+C stops)");
            let service = PENDING
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .ok_or_else(|| {
                    AgentError::new(ExitCode::GenericFailure, "the service was already taken")
                })?;
            service.run_loop()
        }
        Err(e) => Err(AgentError::new(
            ExitCode::GenericFailure,
            format!("cannot connect to the Service Control Manager: {e}"),
        )),
    }
}

fn status(state: ServiceState, exit: ServiceExitCode, wait: Duration) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: if state == ServiceState::Running {
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
        } else {
            ServiceControlAccept::empty()
        },
        exit_code: exit,
        checkpoint: 0,
        wait_hint: wait,
        process_id: None,
    }
}

fn service_main(_args: Vec<OsString>) {
    let outcome = serve();
    *OUTCOME.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
}

fn serve() -> Result<ExitCode, AgentError> {
    let service = PENDING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .ok_or_else(|| AgentError::new(ExitCode::GenericFailure, "no service to run"))?;
    // Under the SCM nobody reads stderr: the log goes beside status.json.
    let dir = &service.config.state_dir;
    let log = dir.join(LOG_FILE);
    if let Err(e) =
        std::fs::create_dir_all(dir).and_then(|()| crate::cli::logging::log_to_file(&log))
    {
        tracing::warn!(path = %log.display(), error = %e, "cannot open the log file");
    }
    let handle = service_control_handler::register(SERVICE_NAME, |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            super::request_stop();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    })
    .map_err(|e| {
        AgentError::new(
            ExitCode::GenericFailure,
            format!("cannot register with the Service Control Manager: {e}"),
        )
    })?;
    let report = |st: ServiceStatus| {
        if let Err(e) = handle.set_service_status(st) {
            tracing::warn!(error = %e, "cannot report the service status");
        }
    };
    report(status(
        ServiceState::Running,
        ServiceExitCode::Win32(0),
        Duration::ZERO,
    ));
    let outcome = service.run_loop();
    // A failure exits with rpc-go's code as the service-specific code, so `sc query` shows it and
    // the recovery actions (restart after 30 s, as systemd's Restart=on-failure) apply.
    let exit = match &outcome {
        Ok(ExitCode::Success) => ServiceExitCode::Win32(0),
        Ok(code) => ServiceExitCode::ServiceSpecific(code.code().into()),
        Err(e) => ServiceExitCode::ServiceSpecific(e.exit.code().into()),
    };
    report(status(ServiceState::Stopped, exit, Duration::ZERO));
    outcome
}

fn scm_error(what: &str, e: windows_service::Error) -> AgentError {
    let denied = matches!(&e, windows_service::Error::Winapi(io) if io.raw_os_error() == Some(5));
    let err = AgentError::new(
        if denied {
            ExitCode::IncorrectPermissions
        } else {
            ExitCode::GenericFailure
        },
        format!("{what}: {e}"),
    );
    if denied {
        err.help("run from an elevated prompt (Run as administrator)")
    } else {
        err.help("check the service with: sc query amt-agent")
    }
}

/// Registers the service: manual start (fleet tooling decides when it runs), LocalSystem, this
/// executable with `service --config CONFIG`, restart on failure after 30 s.
pub fn install(config: &Path) -> Result<ExitCode, AgentError> {
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .map_err(|e| scm_error("cannot open the Service Control Manager", e))?;
    let exe = std::env::current_exe().map_err(|e| {
        AgentError::new(
            ExitCode::GenericFailure,
            format!("cannot find this program's path: {e}"),
        )
    })?;
    let info = ServiceInfo {
        name: SERVICE_NAME.into(),
        display_name: DISPLAY_NAME.into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::OnDemand,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe,
        launch_arguments: vec!["service".into(), "--config".into(), config.into()],
        dependencies: Vec::new(),
        account_name: None,
        account_password: None,
    };
    let service = manager
        .create_service(&info, ServiceAccess::CHANGE_CONFIG | ServiceAccess::START)
        .map_err(|e| scm_error("cannot create the service", e))?;
    let _ = service.set_description(DESCRIPTION);
    let restart = ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(30),
    };
    let _ = service.update_failure_actions(ServiceFailureActions {
        reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(24 * 3600)),
        reboot_msg: None,
        command: None,
        actions: Some(vec![restart.clone(), restart.clone(), restart]),
    });
    let _ = service.set_failure_actions_on_non_crash_failures(true);
    println!(
        "Service {SERVICE_NAME} registered (manual start) with --config {}. Start it: sc start {SERVICE_NAME}",
        config.display()
    );
    Ok(ExitCode::Success)
}

/// Stops (when running) and removes the service.
pub fn uninstall() -> Result<ExitCode, AgentError> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(|e| scm_error("cannot open the Service Control Manager", e))?;
    let service = manager
        .open_service(
            SERVICE_NAME,
            ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
        )
        .map_err(|e| scm_error("cannot open the service", e))?;
    if let Ok(st) = service.query_status() {
        if st.current_state != ServiceState::Stopped {
            let _ = service.stop();
            // The loop finishes its current step; wait for it, bounded.
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while std::time::Instant::now() < deadline {
                match service.query_status() {
                    Ok(s) if s.current_state == ServiceState::Stopped => break,
                    Ok(_) => std::thread::sleep(Duration::from_millis(250)),
                    Err(_) => break,
                }
            }
        }
    }
    service
        .delete()
        .map_err(|e| scm_error("cannot delete the service", e))?;
    println!("Service {SERVICE_NAME} removed.");
    Ok(ExitCode::Success)
}
