//! MEI/HECI transports: one small interface, several backends chosen like a TPM TCTI.
//!
//! * `auto` probes `/dev/mei0` … `/dev/mei3`, then `/dev/mei` (as LMS and mei-amt-check do);
//! * a path opens that MEI character device (or an `amt-sim --mei-file`);
//! * `sim:<socket>` talks to a running `amt-sim serve --socket`;
//! * `sim` (or `sim:profile=NAME`) runs the simulator's firmware model in this process.
//!
//! Reference: transport.md §1 (Linux device), §3 (client GUIDs).

pub mod guid;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod simsock;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use guid::Guid;

/// What the firmware answers to a connect: the client's MTU and protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientProperties {
    pub max_msg_length: u32,
    pub protocol_version: u8,
}

/// Errors of the transport, each tied to the errno the kernel gives (transport.md §1.11).
#[derive(Debug, Clone, thiserror::Error)]
pub enum HeciError {
    #[error("no MEI device found (tried {tried})")]
    NoDevice { tried: String },
    #[error("permission denied opening {path}")]
    PermissionDenied { path: String },
    #[error("the ME is not ready (device {path} is resetting or disabled)")]
    DeviceNotReady { path: String },
    #[error("ME client {client} is not present on this machine (ENOTTY)")]
    ClientNotFound { client: String },
    #[error("ME client {client} is busy (EBUSY) after {attempts} attempts over {waited_ms} ms")]
    Busy {
        client: String,
        attempts: u32,
        waited_ms: u64,
    },
    #[error("the ME reset during the exchange with {client} (ENODEV) and did not come back after {attempts} reconnects")]
    Reset { client: String, attempts: u32 },
    #[error("no answer from ME client {client} within {timeout_ms} ms")]
    Timeout { client: String, timeout_ms: u64 },
    #[error("message of {len} bytes exceeds {client}'s maximum of {max} (EFBIG)")]
    MessageTooBig {
        client: String,
        len: usize,
        max: u32,
    },
    #[error("{client} sent a message larger than the receive buffer (EMSGSIZE)")]
    ReplyTooBig { client: String },
    #[error("the connection to {client} was closed")]
    Closed { client: String },
    #[error("{op} on {client} failed: {errno}")]
    Os {
        client: String,
        op: &'static str,
        errno: String,
    },
    #[error("simulator socket {path}: {reason}")]
    SimSocket { path: String, reason: String },
}

impl HeciError {
    /// The fix to suggest to the user.
    pub fn help(&self) -> &'static str {
        match self {
            HeciError::NoDevice { .. } => {
                "load the MEI driver (modprobe mei_me), check that the Intel ME is enabled in the BIOS, or run with --device sim to try the simulator"
            }
            HeciError::PermissionDenied { .. } => {
                "run as root (sudo), or give this user read/write access to the MEI device node"
            }
            HeciError::DeviceNotReady { .. } | HeciError::Reset { .. } => {
                "the Management Engine is resetting or disabled; wait a few seconds and run the command again"
            }
            HeciError::ClientNotFound { .. } => {
                "this machine's ME does not offer that client: it is not an AMT (vPro) SKU, or AMT is disabled in MEBx"
            }
            HeciError::Busy { .. } => {
                "another program holds the ME client (often LMS or another agent); stop it (systemctl stop lms) or wait and retry"
            }
            HeciError::Timeout { .. } => {
                "the ME is slow or hung; retry, and if it persists reboot to reset the ME"
            }
            HeciError::MessageTooBig { .. } | HeciError::ReplyTooBig { .. } => {
                "this is a protocol mismatch between the agent and the firmware; report it with the trace log (-vvv)"
            }
            HeciError::Closed { .. } | HeciError::Os { .. } => {
                "retry; if it persists, check dmesg for MEI driver errors"
            }
            HeciError::SimSocket { .. } => {
                "start the simulator first: amt-sim serve --socket PATH, and pass --device sim:PATH"
            }
        }
    }

    /// Whether reopening and reconnecting may help (an ME reset).
    pub fn is_reset(&self) -> bool {
        matches!(
            self,
            HeciError::Reset { .. } | HeciError::DeviceNotReady { .. }
        )
    }
}

/// One open, connected handle to one ME client. Closed on drop.
///
/// Methods take `&self` so that one thread may block in [`recv`](MeiConnection::recv) while another
/// sends, as LME users do.
pub trait MeiConnection: Send + Sync {
    fn properties(&self) -> ClientProperties;
    /// Writes one whole message.
    fn send(&self, msg: &[u8]) -> Result<(), HeciError>;
    /// Reads one whole message, waiting at most until `deadline`.
    fn recv(&self, deadline: Instant) -> Result<Vec<u8>, HeciError>;
}

/// A MEI device: something that opens connections to ME clients.
pub trait MeiDevice: Send + Sync {
    /// A short description for logs and `doctor`.
    fn describe(&self) -> String;
    /// The simulator profile name when the device is simulated.
    fn simulated_profile(&self) -> Option<String> {
        None
    }
    /// The root certificate (DER) of the simulated AMT's TLS chain, when this device is the
    /// simulator inside this process: the user chose a simulated device explicitly, so its test root
    /// may be trusted for port 16993. `None` for every real device and for `sim:SOCKET` (pass the
    /// file `amt-sim serve --tls-root-out` wrote with `--amt-ca-file` instead).
    fn simulator_tls_root(&self) -> Option<Vec<u8>> {
        None
    }
    /// For a device whose state ends with this process (the in-process simulator), a name unique
    /// to this instance: what the agent learns about it (a TLS pin) is kept in memory under it,
    /// never on disk. `None` for every real device.
    fn ephemeral(&self) -> Option<String> {
        None
    }
    /// Opens a new handle and connects it to `client` (one attempt, no retries).
    fn connect_once(&self, client: Guid) -> Result<Box<dyn MeiConnection>, HeciError>;
}

/// Bounded retries for connect: EBUSY backs off, an ME reset waits and reopens.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub busy_attempts: u32,
    pub busy_first_delay: Duration,
    pub reset_attempts: u32,
    pub reset_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // EBUSY: 100 ms doubling to 1.6 s, about 3 s in all before giving up (rpc-go waits longer,
        // 750 ms × attempt over 8 attempts, but a holder like LMS does not let go by itself).
        RetryPolicy {
            busy_attempts: 6,
            busy_first_delay: Duration::from_millis(100),
            reset_attempts: 5,
            reset_delay: Duration::from_millis(300),
        }
    }
}

/// Connects with the bounded retry policy.
pub fn connect(
    device: &dyn MeiDevice,
    client: Guid,
    policy: &RetryPolicy,
) -> Result<Box<dyn MeiConnection>, HeciError> {
    let started = Instant::now();
    let mut busy = 0u32;
    let mut resets = 0u32;
    let mut delay = policy.busy_first_delay;
    loop {
        match device.connect_once(client) {
            Ok(c) => return Ok(c),
            Err(HeciError::Busy { client: name, .. }) => {
                busy += 1;
                if busy >= policy.busy_attempts {
                    return Err(HeciError::Busy {
                        client: name,
                        attempts: busy,
                        waited_ms: started.elapsed().as_millis() as u64,
                    });
                }
                tracing::debug!(client = %name, attempt = busy, delay_ms = delay.as_millis() as u64, "client busy (EBUSY); backing off");
                std::thread::sleep(delay);
                delay = delay.saturating_mul(2);
            }
            Err(e) if e.is_reset() => {
                resets += 1;
                if resets > policy.reset_attempts {
                    return Err(HeciError::Reset {
                        client: client_label(client),
                        attempts: resets - 1,
                    });
                }
                tracing::debug!(client = %client_label(client), attempt = resets, "ME not ready (ENODEV); waiting before reopening");
                std::thread::sleep(policy.reset_delay);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Maps the errno a (real or simulated) MEI device gave to a typed error.
pub fn error_from_errno(
    errno: i32,
    client: &str,
    path: &str,
    connecting: bool,
    mtu: u32,
) -> HeciError {
    let client = client.to_string();
    match errno {
        libc::ENOTTY => HeciError::ClientNotFound { client },
        libc::EBUSY => HeciError::Busy {
            client,
            attempts: 1,
            waited_ms: 0,
        },
        libc::ENODEV if connecting => HeciError::DeviceNotReady {
            path: path.to_string(),
        },
        libc::ENODEV => HeciError::Reset {
            client,
            attempts: 0,
        },
        libc::EFBIG => HeciError::MessageTooBig {
            client,
            len: 0,
            max: mtu,
        },
        libc::EMSGSIZE => HeciError::ReplyTooBig { client },
        libc::EACCES | libc::EPERM => HeciError::PermissionDenied {
            path: path.to_string(),
        },
        libc::ENOENT => HeciError::NoDevice {
            tried: path.to_string(),
        },
        other => HeciError::Os {
            client,
            op: "MEI",
            errno: format!("{} ({other})", nix::errno::Errno::from_raw(other).desc()),
        },
    }
}

pub(crate) fn client_label(g: Guid) -> String {
    match g.client_name() {
        Some(n) => n.to_string(),
        None => g.to_string(),
    }
}

/// Where `--device` points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// Probe the usual device nodes.
    Auto,
    /// A MEI character device, or a file that behaves like one.
    Path(PathBuf),
    /// A running `amt-sim serve --socket PATH`.
    SimSocket(PathBuf),
    /// The simulator in this process, with the named profile (None = the default profile).
    InProcess { profile: Option<String> },
}

impl DeviceSpec {
    pub fn parse(s: &str) -> Result<DeviceSpec, String> {
        let s = s.trim();
        if s.is_empty() || s == "auto" {
            return Ok(DeviceSpec::Auto);
        }
        if s == "sim" {
            return Ok(DeviceSpec::InProcess { profile: None });
        }
        if let Some(rest) = s.strip_prefix("sim:") {
            if let Some(p) = rest.strip_prefix("profile=") {
                if p.is_empty() {
                    return Err("sim:profile= needs a profile name".into());
                }
                return Ok(DeviceSpec::InProcess {
                    profile: Some(p.to_string()),
                });
            }
            if rest.is_empty() {
                return Err(
                    "sim: needs a socket path (sim:/run/amt-sim.sock) or use plain 'sim'".into(),
                );
            }
            return Ok(DeviceSpec::SimSocket(PathBuf::from(rest)));
        }
        Ok(DeviceSpec::Path(PathBuf::from(s)))
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => write!(f, "auto"),
            DeviceSpec::Path(p) => write!(f, "{}", p.display()),
            DeviceSpec::SimSocket(p) => write!(f, "sim:{}", p.display()),
            DeviceSpec::InProcess { profile: None } => write!(f, "sim"),
            DeviceSpec::InProcess { profile: Some(p) } => write!(f, "sim:profile={p}"),
        }
    }
}

/// The device nodes `auto` probes, in order.
pub const AUTO_PATHS: &[&str] = &[
    "/dev/mei0",
    "/dev/mei1",
    "/dev/mei2",
    "/dev/mei3",
    "/dev/mei",
];

/// Opens the device a spec names.
pub fn open(spec: &DeviceSpec) -> Result<Arc<dyn MeiDevice>, HeciError> {
    match spec {
        DeviceSpec::Auto => open_auto(),
        DeviceSpec::Path(p) => open_path(p.clone()),
        DeviceSpec::SimSocket(p) => Ok(Arc::new(simsock::SimSocketDevice::new(p.clone()))),
        DeviceSpec::InProcess { profile } => {
            let fw = crate::sim::Firmware::from_profile_name(profile.as_deref()).map_err(|e| {
                HeciError::SimSocket {
                    path: "in-process".into(),
                    reason: e,
                }
            })?;
            Ok(Arc::new(crate::sim::InProcessDevice::new(fw)))
        }
    }
}

#[cfg(target_os = "linux")]
fn open_path(p: PathBuf) -> Result<Arc<dyn MeiDevice>, HeciError> {
    if !p.exists() {
        return Err(HeciError::NoDevice {
            tried: p.display().to_string(),
        });
    }
    Ok(Arc::new(linux::LinuxMeiDevice::new(p)))
}

#[cfg(not(target_os = "linux"))]
fn open_path(p: PathBuf) -> Result<Arc<dyn MeiDevice>, HeciError> {
    Err(HeciError::NoDevice {
        tried: format!("{} (no MEI backend for this OS yet)", p.display()),
    })
}

#[cfg(target_os = "linux")]
fn open_auto() -> Result<Arc<dyn MeiDevice>, HeciError> {
    let present: Vec<PathBuf> = AUTO_PATHS
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect();
    if present.is_empty() {
        return Err(HeciError::NoDevice {
            tried: AUTO_PATHS.join(", "),
        });
    }
    Ok(Arc::new(linux::LinuxMeiDevice::probing(present)))
}

#[cfg(not(target_os = "linux"))]
fn open_auto() -> Result<Arc<dyn MeiDevice>, HeciError> {
    Err(HeciError::NoDevice {
        tried: "no MEI backend for this OS yet".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_spec_parses_every_form() {
        assert_eq!(DeviceSpec::parse("auto").unwrap(), DeviceSpec::Auto);
        assert_eq!(
            DeviceSpec::parse("sim").unwrap(),
            DeviceSpec::InProcess { profile: None }
        );
        assert_eq!(
            DeviceSpec::parse("sim:profile=amt19").unwrap(),
            DeviceSpec::InProcess {
                profile: Some("amt19".into())
            }
        );
        assert_eq!(
            DeviceSpec::parse("sim:/tmp/a.sock").unwrap(),
            DeviceSpec::SimSocket("/tmp/a.sock".into())
        );
        assert_eq!(
            DeviceSpec::parse("/dev/mei0").unwrap(),
            DeviceSpec::Path("/dev/mei0".into())
        );
        assert!(DeviceSpec::parse("sim:").is_err());
    }
}
