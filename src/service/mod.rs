//! `amt-agent service`: a foreground daemon for systemd, or a Windows service under the Service
//! Control Manager, that brings the machine to the configured control mode and keeps it there,
//! retrying with exponential backoff and jitter, reporting through sd_notify (or the SCM), a status
//! file and optional Prometheus metrics, and owning the ME alone (a lock file).

pub mod config;
pub mod status;
#[cfg(windows)]
pub mod windows;

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;

use crate::amthi::{AmthiClient, ControlMode, ProvisioningState};
use crate::commands::session::AmtConnArgs;
use crate::device::DeviceSpec;
use crate::error::{AgentError, ExitCode};
use config::{Config, Drift, Method, Mode};
use status::{rfc3339, sd_notify, DriftEntry, LastError, Status};

static STOP: AtomicBool = AtomicBool::new(false);

/// Asks the loop to stop after the current step (SIGTERM, Ctrl+C, the SCM's Stop).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

#[cfg(unix)]
extern "C" fn on_signal(_: libc::c_int) {
    request_stop();
}

#[cfg(unix)]
fn install_signal_handlers() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for s in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(s, &act) };
    }
}

/// Ctrl+C, Ctrl+Break and closing the console stop a service run from a console.
#[cfg(windows)]
fn install_signal_handlers() {
    unsafe extern "system" fn on_ctrl(_: u32) -> i32 {
        request_stop();
        1
    }
    // SAFETY: registers a handler that only stores to an atomic.
    unsafe {
        windows_sys::Win32::System::Console::SetConsoleCtrlHandler(Some(on_ctrl), 1);
    }
}

#[cfg(not(any(unix, windows)))]
fn install_signal_handlers() {}

/// Sleeps until `d` passes or a stop signal arrives; true when stopping.
fn sleep_or_stop(d: Duration, watchdog: Option<Duration>) -> bool {
    let end = Instant::now() + d;
    let mut last_ping = Instant::now();
    while Instant::now() < end {
        if STOP.load(Ordering::SeqCst) {
            return true;
        }
        if let Some(w) = watchdog {
            if last_ping.elapsed() >= w / 2 {
                sd_notify("WATCHDOG=1");
                last_ping = Instant::now();
            }
        }
        std::thread::sleep(
            Duration::from_millis(50).min(end.saturating_duration_since(Instant::now())),
        );
    }
    STOP.load(Ordering::SeqCst)
}

/// The held lock: flock on Unix; on Windows the lock file opened with no sharing, so a second
/// agent's open fails with ERROR_SHARING_VIOLATION.
#[cfg(unix)]
type Lock = nix::fcntl::Flock<File>;
#[cfg(not(unix))]
type Lock = File;

/// The ME has one owner: an exclusive lock on `state_dir/lock`, held for the process's life.
fn take_lock(dir: &std::path::Path) -> Result<Lock, AgentError> {
    let busy = |path: &std::path::Path, e: String| {
        AgentError::new(
            ExitCode::AmtNotReady,
            format!("another amt-agent holds {} ({e})", path.display()),
        )
        .help(if cfg!(windows) {
            "only one agent may own the ME; stop the other one (sc query amt-agent)"
        } else {
            "only one agent may own the ME; stop the other one (systemctl status amt-agent)"
        })
    };
    std::fs::create_dir_all(dir).map_err(|e| {
        AgentError::new(
            ExitCode::FailedReadingConfiguration,
            format!("cannot create {}: {e}", dir.display()),
        )
    })?;
    let path = dir.join("lock");
    let mut options = File::options();
    options.create(true).truncate(false).write(true);
    #[cfg(windows)]
    std::os::windows::fs::OpenOptionsExt::share_mode(&mut options, 0);
    let f = options.open(&path);
    #[cfg(windows)]
    if let Err(e) = &f {
        const ERROR_SHARING_VIOLATION: i32 = 32;
        if e.raw_os_error() == Some(ERROR_SHARING_VIOLATION) {
            return Err(busy(&path, e.to_string()));
        }
    }
    let f = f.map_err(|e| {
        AgentError::new(
            ExitCode::FailedReadingConfiguration,
            format!("{}: {e}", path.display()),
        )
    })?;
    #[cfg(unix)]
    return nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| busy(&path, e.to_string()));
    #[cfg(not(unix))]
    {
        let _ = busy;
        Ok(f)
    }
}

/// Backoff for attempt `n` (1-based): initial × 2^(n-1), capped, ±20 % jitter so a fleet does not
/// retry in step.
pub fn backoff(n: u32, initial: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let base = initial
        .saturating_mul(1u32 << n.saturating_sub(1).min(20))
        .min(max);
    let jitter = rng.gen_range(0.8..1.2);
    base.mul_f64(jitter).min(max.mul_f64(1.2))
}

pub struct Service {
    config: Config,
    /// When the periodic maintenance last ran.
    last_maintenance: Option<Instant>,
    status_path: PathBuf,
    status: Status,
    watchdog: Option<Duration>,
    /// Profile mode: drift was found and left as it is (`drift = "report"`).
    drifted: bool,
}

impl Service {
    pub fn new(config: Config) -> Service {
        let status_path = config.state_dir.join("status.json");
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_micros);
        let status = Status {
            state: "starting".into(),
            desired: match (&config.profile, config.mode) {
                (Some(p), _) => format!("profile {}", p.display()),
                (None, Mode::Ccm) => "client control mode".into(),
                (None, Mode::Acm) => "admin control mode".into(),
            },
            profile: config.profile.as_ref().map(|p| p.display().to_string()),
            pid: std::process::id(),
            ..Status::default()
        };
        Service {
            config,
            last_maintenance: None,
            status_path,
            status,
            watchdog,
            drifted: false,
        }
    }

    fn publish(&mut self, state: &str) {
        self.status.state = state.into();
        self.status.updated = rfc3339(SystemTime::now());
        if let Err(e) = self.status.write(&self.status_path) {
            tracing::warn!(path = %self.status_path.display(), error = %e, "cannot write the status file");
        }
        if let Some(m) = &self.config.metrics_file {
            if let Err(e) = status::write_atomic(m, self.status.metrics().as_bytes()) {
                tracing::warn!(path = %m.display(), error = %e, "cannot write the metrics file");
            }
        }
        let summary = match (&self.status.control_mode, &self.status.last_error) {
            (_, Some(e)) if state == "retrying" => format!("{state}: {} ({})", e.message, e.code),
            (Some(m), _) => format!("{state}: {m}"),
            _ => state.to_string(),
        };
        sd_notify(&format!("STATUS={summary}"));
    }

    fn conn_args(&self) -> Result<AmtConnArgs, AgentError> {
        Ok(AmtConnArgs {
            lms: self.config.lms.parse().map_err(|e: String| {
                AgentError::new(
                    ExitCode::FailedReadingConfiguration,
                    format!("lms = {}: {e}", self.config.lms),
                )
            })?,
            lms_port: self.config.lms_port,
            user: None,
            password: None,
            password_file: self.config.password_file.clone(),
            request_timeout: self.config.request_timeout,
            skip_amt_cert_check: false,
            amt_ca_file: Vec::new(),
            tls_pin_dir: crate::commands::tls_pin::DEFAULT_DIR.into(),
        })
    }

    /// One pass: read the mode; act when it is not the desired one. Ok(true) = desired state.
    fn pass(&mut self) -> Result<bool, AgentError> {
        if let Some(p) = self.config.profile.clone() {
            return self.profile_pass(&p);
        }
        let spec = DeviceSpec::parse(&self.config.device).map_err(|e| {
            AgentError::new(
                ExitCode::FailedReadingConfiguration,
                format!("device = {}: {e}", self.config.device),
            )
        })?;
        let device = crate::device::open(&spec)?;
        let mut amthi = AmthiClient::new(device.clone());
        let mode = amthi.control_mode()?;
        let state = amthi.provisioning_state()?;
        drop(amthi);
        self.status.set_control_mode(mode);
        let want = match self.config.mode {
            Mode::Ccm => ControlMode::Ccm,
            Mode::Acm => ControlMode::Acm,
        };
        if mode == want && state == ProvisioningState::Post {
            return Ok(true);
        }
        if state == ProvisioningState::In {
            // A reboot or crash in the middle of an activation: roll the half-done one back.
            tracing::warn!(
                "the ME is stuck in provisioning; stopping the unfinished configuration"
            );
            AmthiClient::new(device.clone()).stop_configuration()?;
            return Ok(false);
        }
        // CCM → ACM is an upgrade both local ACM and RPS perform; anything else is a conflict.
        let upgrade = mode == ControlMode::Ccm && want == ControlMode::Acm;
        if mode != ControlMode::None && !upgrade {
            return Err(AgentError::new(
                ExitCode::UnableToActivate,
                format!("the device is in {}, the configuration wants {}", mode.text(), self.status.desired),
            )
            .help("deactivate it (amt-agent deactivate --local), or change `mode` in the configuration"));
        }
        let conn = self.conn_args()?;
        self.publish("activating");
        match (self.config.method, self.config.mode) {
            (Method::Local, Mode::Ccm) => {
                let file = conn.password_file.clone().ok_or_else(|| {
                    AgentError::new(ExitCode::MissingOrIncorrectPassword, "password_file is not set")
                        .help("set password_file in agent.toml to a file holding the AMT password (mode 600)")
                })?;
                let password = crate::secret_source::read_secret_file(&file, "AMT password")?;
                crate::commands::activate::ccm_flow(
                    device.clone(),
                    &conn,
                    &password,
                    &mut |step| tracing::info!("{step}"),
                )?;
            }
            (Method::Local, Mode::Acm) => {
                let cert = self.config.provisioning_cert.clone().ok_or_else(|| {
                    AgentError::new(ExitCode::FailedReadingConfiguration, "provisioning_cert is not set")
                        .help("set provisioning_cert (a .pfx or PEM file) in agent.toml for mode = \"acm\"")
                })?;
                let args = crate::commands::local_acm::LocalAcmArgs {
                    provisioning_cert: Some(cert.display().to_string()),
                    cert_password: crate::commands::cert::CertPasswordArgs {
                        provisioning_cert_password: None,
                        provisioning_cert_password_file: self
                            .config
                            .provisioning_cert_password_file
                            .clone(),
                    },
                    mebx_password: None,
                    mebx_password_file: self.config.mebx_password_file.clone(),
                    force: false,
                };
                crate::commands::local_acm::run(
                    device.clone(),
                    &args,
                    self.config.dns_suffix.clone(),
                    &conn,
                    false,
                )?;
            }
            (Method::Rps, _) => {
                let (Some(url), Some(profile)) =
                    (self.config.rps_url.clone(), self.config.rps_profile.clone())
                else {
                    return Err(AgentError::new(ExitCode::MissingOrIncorrectUrl, "rps_url and rps_profile must be set for method = \"rps\"")
                        .help("set rps_url = \"wss://rps.example.com/activate\" and rps_profile in agent.toml"));
                };
                let rps = crate::commands::remote::RpsArgs {
                    url: Some(url),
                    ca_file: self.config.rps_ca_file.clone(),
                    timeout: Duration::from_secs(300),
                    message_timeout: Duration::from_secs(60),
                    ..Default::default()
                };
                let ov = crate::commands::remote::Overrides {
                    dns_suffix: self.config.dns_suffix.clone(),
                    ..Default::default()
                };
                crate::commands::remote::run(
                    device.clone(),
                    &rps,
                    &conn,
                    crate::commands::remote::Request::Activate { profile },
                    &ov,
                    false,
                )?;
            }
        }
        // The firmware's word, not the flow's.
        let now = AmthiClient::new(device).control_mode()?;
        self.status.set_control_mode(now);
        Ok(now == want)
    }

    /// Profile mode: plan; apply until the machine first matches the profile (or after the profile
    /// changed); afterwards a difference is drift, reported or fixed as `drift` says.
    fn profile_pass(&mut self, path: &std::path::Path) -> Result<bool, AgentError> {
        let data = crate::profile::secrets::DataDir(self.config.data_dir.clone());
        let key = crate::profile::KeySource {
            flag: None,
            file: self.config.profile_key_file.clone(),
        };
        let ctx = crate::profile::check::Context {
            data_dir: Some(data.clone()),
        };
        let loaded = crate::profile::load(path, &key, &ctx)?;
        let spec = DeviceSpec::parse(&self.config.device).map_err(|e| {
            AgentError::new(
                ExitCode::FailedReadingConfiguration,
                format!("device = {}: {e}", self.config.device),
            )
        })?;
        let device = crate::device::open(&spec)?;
        let conn = self.conn_args()?;
        let engine = crate::commands::desired::engine::Engine {
            device: device.clone(),
            conn: &conn,
            data: &data,
            profile: &loaded.profile,
        };
        let plan = engine.plan()?;
        let now = rfc3339(SystemTime::now());
        self.status.last_plan = Some(now.clone());
        self.status.set_control_mode(plan.control_mode);
        let record = data.0.join("profile-applied.json");
        let reached = std::fs::read_to_string(&record)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v["fingerprint"] == loaded.fingerprint.as_str());
        let pending: Vec<(String, String, String, String)> = plan
            .areas
            .iter()
            .flat_map(|a| {
                a.changes.iter().map(move |c| {
                    (
                        a.area.to_string(),
                        c.setting.clone(),
                        c.current.clone(),
                        c.desired.clone(),
                    )
                })
            })
            .collect();
        let mark_reached = || {
            let v = serde_json::json!({"fingerprint": loaded.fingerprint, "reachedAt": rfc3339(SystemTime::now())});
            crate::profile::secrets::write_private(&record, v.to_string().as_bytes())
        };
        // Drift that is no longer there was put back by someone else.
        let still = |d: &DriftEntry| pending.iter().any(|p| p.0 == d.area && p.1 == d.setting);
        for d in self.status.drift.iter_mut().filter(|d| !d.fixed) {
            if !still(d) {
                d.fixed = true;
                d.fixed_at = Some(now.clone());
                d.fixed_by = Some("found back in place".into());
            }
        }
        if pending.is_empty() && plan.pending() == 0 {
            self.drifted = false;
            if !reached {
                mark_reached()?;
            }
            return Ok(true);
        }
        if !reached {
            // Not yet where the profile wants it (first run, or a changed profile): apply.
            self.publish("activating");
            engine.apply(&mut |line| tracing::info!("{line}"))?;
            mark_reached()?;
            self.drifted = false;
            let after = engine.plan()?;
            self.status.set_control_mode(after.control_mode);
            return Ok(after.pending() == 0);
        }
        for (area, setting, current, desired) in &pending {
            let known = self
                .status
                .drift
                .iter_mut()
                .find(|d| !d.fixed && &d.area == area && &d.setting == setting);
            match known {
                Some(d) => {
                    d.current = current.clone();
                    d.desired = desired.clone();
                }
                None => {
                    tracing::warn!(area = %area, setting = %setting, "drift: {current} (the profile wants {desired})");
                    self.status.drift.push(DriftEntry {
                        area: area.clone(),
                        setting: setting.clone(),
                        current: current.clone(),
                        desired: desired.clone(),
                        since: now.clone(),
                        fixed: false,
                        fixed_at: None,
                        fixed_by: None,
                    });
                }
            }
        }
        // Keep the history short: the open entries and the latest fixed ones.
        while self.status.drift.len() > 32 {
            match self.status.drift.iter().position(|d| d.fixed) {
                Some(i) => {
                    self.status.drift.remove(i);
                }
                None => break,
            }
        }
        match self.config.drift {
            Drift::Report => {
                self.drifted = true;
                Ok(true)
            }
            Drift::Fix => {
                self.publish("fixing drift");
                engine.apply(&mut |line| tracing::info!("{line}"))?;
                let fixed_at = rfc3339(SystemTime::now());
                for d in self.status.drift.iter_mut().filter(|d| !d.fixed) {
                    d.fixed = true;
                    d.fixed_at = Some(fixed_at.clone());
                    d.fixed_by = Some("amt-agent service (drift = \"fix\")".into());
                    self.status.drift_fixed += 1;
                }
                self.drifted = false;
                Ok(true)
            }
        }
    }

    /// The configured maintenance tasks through RPS, when due. Failures are logged and counted; they
    /// do not undo the activation.
    fn maintenance(&mut self) {
        if self.config.maintenance.is_empty() || self.config.method != Method::Rps {
            return;
        }
        if self
            .last_maintenance
            .is_some_and(|t| t.elapsed() < self.config.maintenance_interval)
        {
            return;
        }
        self.last_maintenance = Some(Instant::now());
        let result = (|| -> Result<(), AgentError> {
            let spec = DeviceSpec::parse(&self.config.device)
                .map_err(|e| AgentError::new(ExitCode::FailedReadingConfiguration, e))?;
            let device = crate::device::open(&spec)?;
            let conn = self.conn_args()?;
            let rps = crate::commands::remote::RpsArgs {
                url: self.config.rps_url.clone(),
                ca_file: self.config.rps_ca_file.clone(),
                timeout: Duration::from_secs(300),
                message_timeout: Duration::from_secs(60),
                ..Default::default()
            };
            for task in self.config.maintenance.clone() {
                use crate::commands::remote::MaintenanceKind as K;
                let kind = match task.as_str() {
                    "syncclock" => K::SyncClock,
                    "synchostname" => K::SyncHostname,
                    "syncip" => K::SyncIp,
                    "syncdeviceinfo" => K::SyncDeviceInfo,
                    other => {
                        return Err(AgentError::new(
                            ExitCode::FailedReadingConfiguration,
                            format!("maintenance task {other:?} is not one of syncclock, synchostname, syncip, syncdeviceinfo"),
                        ))
                    }
                };
                self.publish(&format!("maintenance: {task}"));
                crate::commands::remote::run(
                    device.clone(),
                    &rps,
                    &conn,
                    crate::commands::remote::Request::Maintenance {
                        task: kind,
                        force: false,
                        new_password: None,
                    },
                    &crate::commands::remote::Overrides::default(),
                    false,
                )?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(exit = e.exit.code(), "maintenance failed: {}", e.message);
            *self
                .status
                .failures_by_code
                .entry(e.exit.code().to_string())
                .or_insert(0) += 1;
            self.status.last_error = Some(LastError {
                code: e.exit.code(),
                name: e.exit.name().into(),
                message: format!("maintenance: {}", e.message),
            });
        }
    }

    /// Runs until SIGTERM/SIGINT (Unix), or until the Service Control Manager stops it; run from
    /// a console on Windows, until Ctrl+C.
    pub fn run(self) -> Result<ExitCode, AgentError> {
        #[cfg(windows)]
        return windows::run(self);
        #[cfg(not(windows))]
        self.run_loop()
    }

    /// The service loop itself, the same on every OS.
    pub(crate) fn run_loop(mut self) -> Result<ExitCode, AgentError> {
        install_signal_handlers();
        let _lock = take_lock(&self.config.state_dir)?;
        self.publish("starting");
        sd_notify("READY=1");
        let mut rng = rand::thread_rng();
        let mut failures = 0u32;
        loop {
            if STOP.load(Ordering::SeqCst) {
                break;
            }
            self.publish("checking");
            self.status.last_attempt = Some(rfc3339(SystemTime::now()));
            let outcome = self.pass();
            let wait = match outcome {
                Ok(true) => {
                    if failures > 0 || self.status.state == "activating" {
                        self.status.successes += 1;
                    }
                    failures = 0;
                    self.status.last_error = None;
                    self.maintenance();
                    let every = if self.config.profile.is_some() {
                        self.config.plan_interval
                    } else {
                        self.config.check_interval
                    };
                    self.status.next_attempt = Some(rfc3339(SystemTime::now() + every));
                    self.publish(if self.drifted { "drifted" } else { "activated" });
                    every
                }
                Ok(false) => {
                    self.status.attempts += 1;
                    // Made progress (e.g. rolled back a stuck configuration): go again soon.
                    self.config.retry_initial
                }
                Err(e) => {
                    self.status.attempts += 1;
                    failures += 1;
                    tracing::warn!(exit = e.exit.code(), "{}", e.message);
                    *self
                        .status
                        .failures_by_code
                        .entry(e.exit.code().to_string())
                        .or_insert(0) += 1;
                    self.status.last_error = Some(LastError {
                        code: e.exit.code(),
                        name: e.exit.name().into(),
                        message: e.message.clone(),
                    });
                    let d = backoff(
                        failures,
                        self.config.retry_initial,
                        self.config.retry_max,
                        &mut rng,
                    );
                    self.status.next_attempt = Some(rfc3339(SystemTime::now() + d));
                    self.publish("retrying");
                    d
                }
            };
            if sleep_or_stop(wait, self.watchdog) {
                break;
            }
        }
        sd_notify("STOPPING=1");
        self.status.next_attempt = None;
        self.publish("stopped");
        Ok(ExitCode::Success)
    }
}

/// Used by the service's tests and by `amt-agent status`.
pub fn status_path(state_dir: &std::path::Path) -> PathBuf {
    config::expand_path(state_dir).join("status.json")
}

/// `amt-agent service install|uninstall`: registers or removes the Windows service (for admins who
/// do not use the MSI). On Linux the systemd units do this.
pub fn manage(install: bool, config: &std::path::Path) -> Result<ExitCode, AgentError> {
    #[cfg(windows)]
    return if install {
        windows::install(config)
    } else {
        windows::uninstall()
    };
    #[cfg(not(windows))]
    {
        let _ = config;
        Err(AgentError::new(
            ExitCode::IncorrectCommandLineParameters,
            format!(
                "service {} registers a Windows service; this is not Windows",
                if install { "install" } else { "uninstall" }
            ),
        )
        .help("on Linux enable the systemd unit instead: systemctl enable --now amt-agent"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let i = Duration::from_secs(10);
        let m = Duration::from_secs(900);
        let b1 = backoff(1, i, m, &mut rng);
        assert!(
            b1 >= Duration::from_secs(8) && b1 <= Duration::from_secs(12),
            "{b1:?}"
        );
        let b3 = backoff(3, i, m, &mut rng);
        assert!(
            b3 >= Duration::from_secs(32) && b3 <= Duration::from_secs(48),
            "{b3:?}"
        );
        let b20 = backoff(20, i, m, &mut rng);
        assert!(b20 <= m.mul_f64(1.2) && b20 >= m.mul_f64(0.8), "{b20:?}");
        let a: Vec<Duration> = (0..5).map(|_| backoff(2, i, m, &mut rng)).collect();
        assert!(a.windows(2).any(|w| w[0] != w[1]), "jitter varies");
    }
}
