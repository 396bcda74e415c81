//! `doctor`: a preflight that says what is wrong with the path to AMT and what to do about it
//! (user-pains.md, failure mode 3).

use std::net::{SocketAddr, TcpStream};
#[cfg(unix)]
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::amthi::client::amt_enabled_flags;
use crate::amthi::AmthiClient;
use crate::device::{self, DeviceSpec};
use crate::error::{AgentError, ExitCode};
use crate::heci::{self, guid, HeciError, MeiDevice, RetryPolicy};

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Info,
    Warn,
    Fail,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub status: Status,
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

fn check(id: &'static str, status: Status, summary: impl Into<String>) -> Check {
    Check {
        id,
        status,
        summary: summary.into(),
        help: None,
    }
}

impl Check {
    fn with_help(mut self, h: impl Into<String>) -> Check {
        self.help = Some(h.into());
        self
    }
}

/// Device nodes: which exist, their mode, and whether this user can open them read-write.
#[cfg(unix)]
fn device_nodes(checks: &mut Vec<Check>, paths: &[&str]) {
    let mut found = false;
    for p in paths {
        let path = Path::new(p);
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        found = true;
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode() & 0o777;
        let access = nix::unistd::access(
            path,
            nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK,
        );
        match access {
            Ok(()) => checks.push(check(
                "device-node",
                Status::Ok,
                format!("{p} exists (mode {mode:o}, uid {} gid {}) and is read-write for this user", meta.uid(), meta.gid()),
            )),
            Err(_) => checks.push(
                check(
                    "device-node",
                    Status::Fail,
                    format!("{p} exists (mode {mode:o}, uid {} gid {}) but this user cannot open it read-write", meta.uid(), meta.gid()),
                )
                .with_help("run as root (sudo amt-agent …), or grant access with a udev rule for the mei device"),
            ),
        }
    }
    if !found {
        checks.push(
            check("device-node", Status::Fail, format!("no MEI device node ({})", paths.join(", ")))
                .with_help("load the driver (modprobe mei_me), enable the ME in the BIOS; in a container pass --device /dev/mei0"),
        );
    }
}

/// The kernel driver's view from sysfs.
#[cfg(unix)]
fn sysfs(checks: &mut Vec<Check>, root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        checks.push(
            check("driver", Status::Warn, format!("{} is absent: no MEI driver is bound", root.display()))
                .with_help("modprobe mei_me; if that fails the ME may be disabled in the BIOS or hidden by the platform"),
        );
        return;
    };
    let mut any = false;
    for e in entries.flatten() {
        any = true;
        let dir = e.path();
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|_| "-".into())
        };
        let state = read("dev_state");
        let status = if state == "ENABLED" || state == "-" {
            Status::Ok
        } else {
            Status::Warn
        };
        let mut c = check(
            "driver",
            status,
            format!(
                "{}: dev_state {state}, fw_ver {}, fw_status {}, kind {}",
                e.file_name().to_string_lossy(),
                read("fw_ver"),
                read("fw_status"),
                read("kind"),
            ),
        );
        if status == Status::Warn {
            c = c.with_help(
                "the ME is not ENABLED (resetting or disabled); wait, or reboot to reset it",
            );
        }
        checks.push(c);
    }
    if !any {
        checks.push(check(
            "driver",
            Status::Warn,
            format!("{} has no devices", root.display()),
        ));
    }
}

/// Which ME clients answer a connect.
fn clients(checks: &mut Vec<Check>, device: &dyn MeiDevice) -> bool {
    let policy = RetryPolicy {
        busy_attempts: 1,
        reset_attempts: 1,
        ..RetryPolicy::default()
    };
    let mut amthi_ok = false;
    for (g, what, needed) in [
        (guid::AMTHI, "AMTHI (AMT host interface)", true),
        (guid::LME, "LME (local WS-MAN path)", false),
        (
            guid::WATCHDOG,
            "watchdog (operational state, TLS enforcement)",
            false,
        ),
        (guid::MKHI, "MKHI (firmware version; LMS needs it)", false),
    ] {
        match heci::connect(device, g, &policy) {
            Ok(c) => {
                let p = c.properties();
                if g == guid::AMTHI {
                    amthi_ok = true;
                }
                checks.push(check(
                    "me-client",
                    Status::Ok,
                    format!("{what} answers (max message {} bytes, protocol {})", p.max_msg_length, p.protocol_version),
                ));
            }
            Err(HeciError::Busy { .. }) => checks.push(
                check("me-client", if needed { Status::Fail } else { Status::Warn }, format!("{what} is busy: another program holds it"))
                    .with_help(if g == guid::LME {
                        "LMS holds LME; that is fine when LMS is running (the agent then goes through LMS)"
                    } else {
                        "stop the other ME tool (LMS, rpc, another agent) or wait for it to finish"
                    }),
            ),
            Err(HeciError::ClientNotFound { .. }) => checks.push(
                check("me-client", if needed { Status::Fail } else { Status::Warn }, format!("{what} is absent (ENOTTY)"))
                    .with_help("this ME does not offer it: not an AMT SKU, or AMT is disabled in MEBx"),
            ),
            Err(e) => {
                let help = e.help();
                checks.push(check("me-client", if needed { Status::Fail } else { Status::Warn }, format!("{what}: {e}")).with_help(help));
            }
        }
    }
    amthi_ok
}

fn lms(checks: &mut Vec<Check>) {
    let mut open = Vec::new();
    for port in [16992u16, 16993] {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok() {
            open.push(port);
        }
    }
    if open.is_empty() {
        checks.push(check(
            "lms",
            Status::Info,
            "LMS is not listening on 127.0.0.1:16992/16993: WS-MAN goes straight through the ME's LME client",
        ));
    } else {
        checks.push(check(
            "lms",
            Status::Info,
            format!("LMS listens on 127.0.0.1 port(s) {open:?}: WS-MAN goes through LMS (it holds the LME client)"),
        ));
    }
}

/// The device nodes and the kernel driver's view (Linux).
#[cfg(unix)]
fn driver_checks(checks: &mut Vec<Check>, path: Option<&std::path::PathBuf>) {
    match path {
        None => device_nodes(checks, heci::AUTO_PATHS),
        Some(p) => {
            let s = p.display().to_string();
            device_nodes(checks, &[s.as_str()]);
        }
    }
    sysfs(checks, Path::new("/sys/class/mei"));
}

/// The Intel MEI driver's device interface and version (Windows).
#[cfg(windows)]
fn driver_checks(checks: &mut Vec<Check>, path: Option<&std::path::PathBuf>) {
    use crate::heci::windows::{interface_paths, WindowsMeiDevice};
    use crate::heci::winheci::GUID_DEVINTERFACE_HECI;
    let paths = match path {
        Some(p) => vec![p.display().to_string()],
        None => match interface_paths() {
            Ok(p) => p,
            Err(e) => {
                checks.push(check(
                    "driver",
                    Status::Warn,
                    format!(
                        "SetupAPI could not list device interfaces: {}",
                        heci::winheci::win32::describe(e)
                    ),
                ));
                Vec::new()
            }
        },
    };
    if paths.is_empty() {
        checks.push(
            check(
                "driver",
                Status::Fail,
                format!("no Intel MEI device interface {{{GUID_DEVINTERFACE_HECI}}} is present: the Intel Management Engine Interface driver is not installed, or the ME is disabled"),
            )
            .with_help(
                HeciError::NoDevice { tried: String::new() }.help_on(heci::HostOs::Windows),
            ),
        );
        return;
    }
    for p in paths {
        let dev = WindowsMeiDevice::at_path(p.clone());
        match dev.driver_version() {
            Ok(v) => checks.push(check(
                "driver",
                Status::Ok,
                format!("Intel MEI driver {v} at {p}"),
            )),
            Err(e) => {
                checks.push(check("driver", Status::Fail, format!("{p}: {e}")).with_help(e.help()))
            }
        }
    }
}

#[cfg(not(any(unix, windows)))]
fn driver_checks(_: &mut Vec<Check>, _: Option<&std::path::PathBuf>) {}

pub fn run(spec: &DeviceSpec, json_out: bool) -> Result<ExitCode, AgentError> {
    let mut checks = Vec::new();
    let mut exit = ExitCode::Success;
    let simulated = matches!(
        spec,
        DeviceSpec::InProcess { .. } | DeviceSpec::SimSocket(_) | DeviceSpec::SimTcp(_)
    );
    match spec {
        DeviceSpec::Auto => driver_checks(&mut checks, None),
        DeviceSpec::Path(p) => driver_checks(&mut checks, Some(p)),
        _ => checks.push(check(
            "device-node",
            Status::Info,
            format!("simulated device ({spec}): device nodes and driver not applicable"),
        )),
    }
    let device = match device::open(spec) {
        Ok(d) => Some(d),
        Err(e) => {
            exit = AgentError::from(e.clone()).exit;
            checks.push(check("open", Status::Fail, e.to_string()).with_help(e.help()));
            None
        }
    };
    if let Some(device) = device {
        let amthi_ok = clients(&mut checks, device.as_ref());
        if !amthi_ok {
            exit = ExitCode::AmtNotDetected;
        } else {
            let mut c = AmthiClient::new(device.clone());
            match c.code_versions() {
                Ok(cv) => {
                    let ver = cv.get("AMT").unwrap_or("?").to_string();
                    let sku = cv.get("Sku").unwrap_or("0").to_string();
                    let f = super::amtinfo::features(&ver, &sku);
                    let kind = if f.contains("AMT Pro") {
                        "vPro (AMT Pro): full AMT"
                    } else if f.contains("Intel Standard Manageability") {
                        "Intel Standard Manageability (ISM): AMT without KVM/ACM-only features"
                    } else {
                        "no AMT in this SKU"
                    };
                    let st = if f.contains("AMT Pro") || f.contains("Intel Standard Manageability")
                    {
                        Status::Ok
                    } else {
                        exit = ExitCode::AmtNotDetected;
                        Status::Fail
                    };
                    checks.push(check(
                        "amt-sku",
                        st,
                        format!("AMT {ver}, SKU {sku} ({f}): {kind}"),
                    ));
                }
                Err(e) => {
                    let ae = AgentError::from(e);
                    exit = ae.exit;
                    checks.push(
                        check("amt-sku", Status::Fail, ae.message.clone())
                            .with_help(ae.help.unwrap_or_default()),
                    );
                }
            }
            match c.control_mode() {
                Ok(m) => checks.push(check(
                    "control-mode",
                    Status::Info,
                    format!("control mode: {}", m.text()),
                )),
                Err(e) => checks.push(check("control-mode", Status::Warn, e.to_string())),
            }
            drop(c);
            match amt_enabled_flags(device.as_ref(), crate::amthi::client::DEFAULT_TIMEOUT) {
                Ok(f) => {
                    if f.new_interface() && !f.amt_enabled() {
                        checks.push(
                            check(
                                "operational-state",
                                Status::Fail,
                                "AMT is disabled (operational state off)",
                            )
                            .with_help("enable AMT in the BIOS/MEBx"),
                        );
                        exit = ExitCode::AmtNotReady;
                    } else {
                        checks.push(check("operational-state", Status::Ok, "AMT is enabled"));
                    }
                    checks.push(check(
                        "tls-enforced",
                        Status::Info,
                        if f.new_interface() && f.tls_enforced() {
                            "TLS is enforced on local ports: WS-MAN must use 16993 with TLS (AMT 19+ behaviour)"
                        } else {
                            "TLS is not enforced on local ports: WS-MAN on 16992 works"
                        },
                    ));
                }
                Err(e) => checks.push(
                    check(
                        "operational-state",
                        Status::Warn,
                        format!("watchdog client: {e}"),
                    )
                    .with_help(e.help()),
                ),
            }
        }
    }
    if !simulated {
        lms(&mut checks);
    }
    if json_out {
        let v = serde_json::json!({
            "device": spec.to_string(),
            "simulated": simulated,
            "amtUsable": exit == ExitCode::Success,
            "exitCode": exit.code(),
            "checks": checks,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        for c in &checks {
            let tag = match c.status {
                Status::Ok => "[ok]  ",
                Status::Info => "[info]",
                Status::Warn => "[warn]",
                Status::Fail => "[FAIL]",
            };
            println!("{tag} {}: {}", c.id, c.summary);
            if let Some(h) = &c.help {
                println!("       help: {h}");
            }
        }
        if exit == ExitCode::Success {
            println!("AMT is usable.");
        } else {
            println!("AMT is not usable (exit {} {}).", exit.code(), exit.name());
        }
    }
    Ok(exit)
}
