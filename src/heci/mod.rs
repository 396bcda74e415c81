//! MEI/HECI transports: one small interface ([`MeiDevice`], [`MeiConnection`]), its typed errors,
//! and the backends that talk to something real:
//!
//! * [`linux`]: the MEI character device (`/dev/mei0`, ioctl, poll), Linux only;
//! * [`windows`]: the Intel MEI driver's device interface (SetupAPI, overlapped I/O, DeviceIoControl),
//!   Windows only, with its codes and layouts in the platform-independent [`winheci`];
//! * [`simsock`]: the frame protocol of a running `amt-sim serve` over a Unix socket or loopback TCP.
//!
//! Which backend `--device` names is decided above this layer (`crate::device`), which is also
//! where the in-process simulator comes in: the transport never imports its imitation.
//!
//! Reference: transport.md §1 (Linux device), §2 (Windows driver), §3 (client GUIDs).

pub mod errno;
pub mod guid;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod simsock;
#[cfg(windows)]
pub mod windows;
pub mod winheci;

use std::time::{Duration, Instant};

pub use guid::Guid;

/// What the firmware answers to a connect: the client's MTU and protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientProperties {
    pub max_msg_length: u32,
    pub protocol_version: u8,
}

/// The OS whose words a fix is given in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostOs {
    Linux,
    Windows,
}

impl HostOs {
    #[cfg(windows)]
    pub const CURRENT: HostOs = HostOs::Windows;
    #[cfg(not(windows))]
    pub const CURRENT: HostOs = HostOs::Linux;
}

/// Errors of the transport, each tied to the errno the Linux kernel gives (transport.md §1.11);
/// the Windows driver's errors map onto the same variants ([`winheci::error_from_win32`]).
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
    /// The fix to suggest to the user on this machine's OS.
    pub fn help(&self) -> &'static str {
        self.help_on(HostOs::CURRENT)
    }

    /// The fix to suggest on `os`: the driver, the privilege and the holder of a busy client are
    /// named differently on Linux and Windows (rpc-go.md §6.3).
    pub fn help_on(&self, os: HostOs) -> &'static str {
        let windows = os == HostOs::Windows;
        match self {
            HeciError::NoDevice { .. } if windows => {
                "install the Intel Management Engine Interface (MEI) driver (Device Manager > System devices, or the PC maker's driver package), check that the Intel ME is enabled in the BIOS, or run with --device sim to try the simulator"
            }
            HeciError::NoDevice { .. } => {
                "load the MEI driver (modprobe mei_me), check that the Intel ME is enabled in the BIOS, or run with --device sim to try the simulator"
            }
            HeciError::PermissionDenied { .. } if windows => {
                "run from an elevated prompt (right-click > Run as administrator): the Intel MEI driver admits Administrators only"
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
            HeciError::Busy { .. } if windows => {
                "another program holds the ME client (often Intel LMS or another agent); stop it (net stop LMS) or wait and retry"
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
            HeciError::Closed { .. } | HeciError::Os { .. } if windows => {
                "retry; if it persists, check the Intel Management Engine Interface device in Device Manager and update its driver"
            }
            HeciError::Closed { .. } | HeciError::Os { .. } => {
                "retry; if it persists, check dmesg for MEI driver errors"
            }
            HeciError::SimSocket { .. } => {
                "start the simulator first: amt-sim serve --socket PATH (or --tcp 127.0.0.1:PORT), and pass --device sim:PATH (or sim:tcp:127.0.0.1:PORT)"
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
    /// The handle is being given up: a `recv` blocked in another thread returns at once (with
    /// [`HeciError::Closed`]), and so does every later one, so the thread lets go of the handle
    /// and the ME client is free for the next connect without waiting out a receive deadline
    /// (LME allows one connection). A backend that cannot interrupt keeps the default: the
    /// blocked `recv` then ends at its deadline.
    fn interrupt(&self) {}
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

/// Maps the (Linux) errno a real or simulated MEI device gave to a typed error.
pub fn error_from_errno(
    code: i32,
    client: &str,
    path: &str,
    connecting: bool,
    mtu: u32,
) -> HeciError {
    let client = client.to_string();
    match code {
        errno::ENOTTY => HeciError::ClientNotFound { client },
        errno::EBUSY => HeciError::Busy {
            client,
            attempts: 1,
            waited_ms: 0,
        },
        errno::ENODEV if connecting => HeciError::DeviceNotReady {
            path: path.to_string(),
        },
        errno::ENODEV => HeciError::Reset {
            client,
            attempts: 0,
        },
        errno::EFBIG => HeciError::MessageTooBig {
            client,
            len: 0,
            max: mtu,
        },
        errno::EMSGSIZE => HeciError::ReplyTooBig { client },
        errno::EACCES | errno::EPERM => HeciError::PermissionDenied {
            path: path.to_string(),
        },
        errno::ENOENT => HeciError::NoDevice {
            tried: path.to_string(),
        },
        other => HeciError::Os {
            client,
            op: "MEI",
            errno: errno::describe(other),
        },
    }
}

pub(crate) fn client_label(g: Guid) -> String {
    match g.client_name() {
        Some(n) => n.to_string(),
        None => g.to_string(),
    }
}

/// The device nodes `auto` probes on Linux, in order.
pub const AUTO_PATHS: &[&str] = &[
    "/dev/mei0",
    "/dev/mei1",
    "/dev/mei2",
    "/dev/mei3",
    "/dev/mei",
];
