//! The Intel MEI (HECI) driver for Windows as data: its device interface GUID, IOCTL codes, buffer
//! layouts, waits, and how its Win32 errors map to the transport's typed errors. No system calls
//! here, so every rule is unit-tested on any OS; [`super::windows`] makes the calls.
//!
//! Reference: transport.md §2 (metee, rpc-go, MicroLMS, MeshAgent), rpc-go.md §6.3.

use std::time::Duration;

use super::{ClientProperties, Guid, HeciError};

/// `GUID_DEVINTERFACE_HECI` {E2D1FF34-3458-49A9-88DA-8E6915CE9BE5}: the device interface class the
/// Intel MEI driver registers.
pub const GUID_DEVINTERFACE_HECI: Guid = Guid::from_fields(
    0xE2D1_FF34,
    0x3458,
    0x49A9,
    [0x88, 0xDA, 0x8E, 0x69, 0x15, 0xCE, 0x9B, 0xE5],
);

/// `FILE_DEVICE_HECI`, the driver's device type.
pub const FILE_DEVICE_HECI: u32 = 0x8000;
/// `METHOD_BUFFERED`.
pub const METHOD_BUFFERED: u32 = 0;
/// `FILE_READ_ACCESS | FILE_WRITE_ACCESS` (rpc-go passes `FILE_SHARE_READ | FILE_SHARE_WRITE`,
/// the same value 3).
pub const FILE_READ_WRITE_ACCESS: u32 = 3;

/// `CTL_CODE(device, function, method, access)` from winioctl.h.
pub const fn ctl_code(device: u32, function: u32, method: u32, access: u32) -> u32 {
    (device << 16) | (access << 14) | (function << 2) | method
}

/// `IOCTL_HECI_GET_VERSION` (`IOCTL_TEEDRIVER_GET_VERSION`), function 0x800: the driver's version.
pub const IOCTL_HECI_GET_VERSION: u32 = ctl_code(
    FILE_DEVICE_HECI,
    0x800,
    METHOD_BUFFERED,
    FILE_READ_WRITE_ACCESS,
);
/// `IOCTL_HECI_CONNECT_CLIENT` (`IOCTL_TEEDRIVER_CONNECT_CLIENT`), function 0x801: in, the client
/// GUID (16 bytes, wire order); out, the client's properties.
pub const IOCTL_HECI_CONNECT_CLIENT: u32 = ctl_code(
    FILE_DEVICE_HECI,
    0x801,
    METHOD_BUFFERED,
    FILE_READ_WRITE_ACCESS,
);

/// The CONNECT output buffer rpc-go passes (the first 8 bytes are Linux's `mei_client`).
pub const CONNECT_OUT_LEN: usize = 16;
/// The GET_VERSION output buffer: rpc-go's and MicroLMS's 5-byte packed struct. metee passes
/// 8 bytes (four u16); which one the driver fills for 5 is UNCONFIRMED, so both are read.
pub const VERSION_OUT_LEN: usize = 8;

/// How long each overlapped operation may take (rpc-go.md §6.3): a connect or version IOCTL
/// 3 s, a write 2 s. A read waits until the caller's deadline.
pub const IOCTL_TIMEOUT: Duration = Duration::from_secs(3);
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// After `CancelIoEx`, how long the driver gets to finish the cancelled operation (metee: 5 s)
/// before the connection gives up on its buffer.
pub const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// The CONNECT input: the client GUID in its wire order (same as Linux's `uuid_le`).
pub fn connect_input(client: Guid) -> [u8; 16] {
    client.0
}

/// Reads CONNECT's output: u32 LE MaxMessageLength, u8 ProtocolVersion (MicroLMS requires the
/// driver to return at least these 5 bytes).
pub fn decode_connect_output(out: &[u8], returned: usize) -> Result<ClientProperties, String> {
    if returned < 5 || out.len() < 5 {
        return Err(format!(
            "the driver returned {returned} bytes for CONNECT_CLIENT, expected at least 5"
        ));
    }
    let max_msg_length = u32::from_le_bytes([out[0], out[1], out[2], out[3]]);
    if max_msg_length == 0 {
        return Err("the driver reported a maximum message length of 0".into());
    }
    Ok(ClientProperties {
        max_msg_length,
        protocol_version: out[4],
    })
}

/// The driver's version, as `doctor` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverVersion {
    pub major: u16,
    pub minor: u16,
    pub hotfix: u16,
    pub build: u16,
}

impl std::fmt::Display for DriverVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}",
            self.major, self.minor, self.hotfix, self.build
        )
    }
}

/// Reads GET_VERSION's output: 8 bytes are metee's four u16 LE, 5 bytes the packed
/// {u8 major, u8 minor, u8 hotfix, u16 LE build} of rpc-go and MicroLMS.
pub fn decode_version(out: &[u8], returned: usize) -> Option<DriverVersion> {
    let u16_at = |i: usize| u16::from_le_bytes([out[i], out[i + 1]]);
    match returned.min(out.len()) {
        8.. => Some(DriverVersion {
            major: u16_at(0),
            minor: u16_at(2),
            hotfix: u16_at(4),
            build: u16_at(6),
        }),
        5..=7 => Some(DriverVersion {
            major: out[0].into(),
            minor: out[1].into(),
            hotfix: out[2].into(),
            build: u16_at(3),
        }),
        _ => None,
    }
}

/// The Win32 error codes the driver and the I/O manager give (winerror.h).
pub mod win32 {
    pub const ERROR_FILE_NOT_FOUND: u32 = 2;
    pub const ERROR_PATH_NOT_FOUND: u32 = 3;
    pub const ERROR_ACCESS_DENIED: u32 = 5;
    pub const ERROR_INVALID_HANDLE: u32 = 6;
    pub const ERROR_NOT_READY: u32 = 21;
    pub const ERROR_GEN_FAILURE: u32 = 31;
    pub const ERROR_SHARING_VIOLATION: u32 = 32;
    pub const ERROR_INVALID_PARAMETER: u32 = 87;
    pub const ERROR_INSUFFICIENT_BUFFER: u32 = 122;
    pub const ERROR_BUSY: u32 = 170;
    pub const ERROR_MORE_DATA: u32 = 234;
    pub const ERROR_NO_MORE_ITEMS: u32 = 259;
    pub const ERROR_NO_SUCH_DEVICE: u32 = 433;
    pub const ERROR_OPERATION_ABORTED: u32 = 995;
    pub const ERROR_IO_PENDING: u32 = 997;
    pub const ERROR_DEVICE_NOT_CONNECTED: u32 = 1167;
    pub const ERROR_NOT_FOUND: u32 = 1168;
    pub const ERROR_DEVICE_REMOVED: u32 = 1617;

    /// The winerror.h name of a code, for messages.
    pub fn name(code: u32) -> Option<&'static str> {
        Some(match code {
            ERROR_FILE_NOT_FOUND => "ERROR_FILE_NOT_FOUND",
            ERROR_PATH_NOT_FOUND => "ERROR_PATH_NOT_FOUND",
            ERROR_ACCESS_DENIED => "ERROR_ACCESS_DENIED",
            ERROR_INVALID_HANDLE => "ERROR_INVALID_HANDLE",
            ERROR_NOT_READY => "ERROR_NOT_READY",
            ERROR_GEN_FAILURE => "ERROR_GEN_FAILURE",
            ERROR_SHARING_VIOLATION => "ERROR_SHARING_VIOLATION",
            ERROR_INVALID_PARAMETER => "ERROR_INVALID_PARAMETER",
            ERROR_INSUFFICIENT_BUFFER => "ERROR_INSUFFICIENT_BUFFER",
            ERROR_BUSY => "ERROR_BUSY",
            ERROR_MORE_DATA => "ERROR_MORE_DATA",
            ERROR_NO_MORE_ITEMS => "ERROR_NO_MORE_ITEMS",
            ERROR_NO_SUCH_DEVICE => "ERROR_NO_SUCH_DEVICE",
            ERROR_OPERATION_ABORTED => "ERROR_OPERATION_ABORTED",
            ERROR_IO_PENDING => "ERROR_IO_PENDING",
            ERROR_DEVICE_NOT_CONNECTED => "ERROR_DEVICE_NOT_CONNECTED",
            ERROR_NOT_FOUND => "ERROR_NOT_FOUND",
            ERROR_DEVICE_REMOVED => "ERROR_DEVICE_REMOVED",
            _ => return None,
        })
    }

    /// `NAME (N)`, or `Windows error N`.
    pub fn describe(code: u32) -> String {
        match name(code) {
            Some(n) => format!("{n} ({code})"),
            None => format!("Windows error {code}"),
        }
    }
}

/// Which call failed: the same code means different things when opening, connecting or moving
/// a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Open,
    Connect,
    Write,
    Read,
}

impl Stage {
    fn op(self) -> &'static str {
        match self {
            Stage::Open => "CreateFile",
            Stage::Connect => "DeviceIoControl(CONNECT_CLIENT)",
            Stage::Write => "WriteFile",
            Stage::Read => "ReadFile",
        }
    }
}

/// Maps a Win32 error from the driver to the same typed error the Linux errno gives, so the
/// advice and exit codes are the same on both (transport.md §2, metee's mapping):
///
/// | code | open | connect | read / write |
/// |---|---|---|---|
/// | FILE/PATH_NOT_FOUND, NO_SUCH_DEVICE | no device (exit 2) | no device | reset |
/// | ACCESS_DENIED | not elevated (exit 1) | not elevated | not elevated |
/// | INVALID_HANDLE, NOT_FOUND | — | client absent (exit 3) | reset |
/// | BUSY, SHARING_VIOLATION | busy (exit 4) | busy | busy |
/// | DEVICE_NOT_CONNECTED, NOT_READY, DEVICE_REMOVED | ME not ready (exit 4) | ME not ready | reset |
/// | INSUFFICIENT_BUFFER, MORE_DATA | — | — | reply too big (read) |
///
/// What the driver answers when another program holds a single-connection client is not in the
/// sources (UNCONFIRMED); BUSY and SHARING_VIOLATION are read as Linux's EBUSY.
pub fn error_from_win32(code: u32, stage: Stage, client: &str, path: &str, mtu: u32) -> HeciError {
    use win32::*;
    let client = client.to_string();
    let path = path.to_string();
    let moving = matches!(stage, Stage::Read | Stage::Write);
    match code {
        ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND | ERROR_NO_SUCH_DEVICE if !moving => {
            HeciError::NoDevice { tried: path }
        }
        ERROR_ACCESS_DENIED => HeciError::PermissionDenied { path },
        ERROR_INVALID_HANDLE | ERROR_NOT_FOUND if stage == Stage::Connect => {
            HeciError::ClientNotFound { client }
        }
        ERROR_BUSY | ERROR_SHARING_VIOLATION => HeciError::Busy {
            client,
            attempts: 1,
            waited_ms: 0,
        },
        ERROR_DEVICE_NOT_CONNECTED | ERROR_NOT_READY | ERROR_DEVICE_REMOVED if !moving => {
            HeciError::DeviceNotReady { path }
        }
        ERROR_INSUFFICIENT_BUFFER | ERROR_MORE_DATA if stage == Stage::Read => {
            HeciError::ReplyTooBig { client }
        }
        ERROR_INVALID_PARAMETER | ERROR_INSUFFICIENT_BUFFER if stage == Stage::Write => {
            HeciError::MessageTooBig {
                client,
                len: 0,
                max: mtu,
            }
        }
        ERROR_DEVICE_NOT_CONNECTED
        | ERROR_NOT_READY
        | ERROR_DEVICE_REMOVED
        | ERROR_FILE_NOT_FOUND
        | ERROR_PATH_NOT_FOUND
        | ERROR_NO_SUCH_DEVICE
        | ERROR_INVALID_HANDLE
        | ERROR_NOT_FOUND
            if moving =>
        {
            HeciError::Reset {
                client,
                attempts: 0,
            }
        }
        other => HeciError::Os {
            client,
            op: stage.op(),
            errno: win32::describe(other),
        },
    }
}

/// A wait in milliseconds for `WaitForSingleObject`, never `INFINITE` (0xFFFFFFFF): every wait
/// has a deadline.
pub fn wait_ms(left: Duration) -> u32 {
    u32::try_from(left.as_millis())
        .unwrap_or(u32::MAX - 1)
        .min(u32::MAX - 1)
}

/// A device interface path from `SetupDiGetDeviceInterfaceDetailW`'s UTF-16 `DevicePath`, up to
/// its terminating NUL.
pub fn path_from_wide(wide: &[u16]) -> String {
    let end = wide.iter().position(|&c| c == 0).unwrap_or(wide.len());
    String::from_utf16_lossy(&wide[..end])
}

/// A NUL-terminated UTF-16 string for the W functions.
pub fn to_wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heci::{guid, HostOs};

    #[test]
    fn ioctl_codes_are_the_drivers() {
        // transport.md §2 and rpc-go.md §6.3: (0x8000 << 16) | (3 << 14) | (fn << 2) | 0.
        assert_eq!(IOCTL_HECI_GET_VERSION, 0x8000_E000);
        assert_eq!(IOCTL_HECI_CONNECT_CLIENT, 0x8000_E004);
        assert_eq!(
            ctl_code(FILE_DEVICE_HECI, 0x803, METHOD_BUFFERED, 3),
            0x8000_E00C
        );
        assert_eq!(
            ctl_code(FILE_DEVICE_HECI, 0x813, METHOD_BUFFERED, 3),
            0x8000_E04C
        );
    }

    #[test]
    fn the_interface_guid_has_windows_memory_order() {
        assert_eq!(
            GUID_DEVINTERFACE_HECI.0,
            [
                0x34, 0xFF, 0xD1, 0xE2, 0x58, 0x34, 0xA9, 0x49, 0x88, 0xDA, 0x8E, 0x69, 0x15, 0xCE,
                0x9B, 0xE5
            ]
        );
        assert_eq!(
            GUID_DEVINTERFACE_HECI.to_string(),
            "E2D1FF34-3458-49A9-88DA-8E6915CE9BE5"
        );
        // The CONNECT input is the client GUID as Linux's uuid_le (AMTHI, transport.md §3.1).
        assert_eq!(
            connect_input(guid::AMTHI),
            [
                0x28, 0x00, 0xf8, 0x12, 0xb7, 0xb4, 0x2d, 0x4b, 0xac, 0xa8, 0x46, 0xe0, 0xff, 0x65,
                0x81, 0x4c
            ]
        );
    }

    #[test]
    fn connect_output_is_mtu_then_protocol_version() {
        let mut out = [0u8; CONNECT_OUT_LEN];
        out[..5].copy_from_slice(&[0x00, 0x10, 0x00, 0x00, 0x01]);
        assert_eq!(
            decode_connect_output(&out, 5).unwrap(),
            ClientProperties {
                max_msg_length: 4096,
                protocol_version: 1
            }
        );
        assert!(decode_connect_output(&out, 4).is_err());
        assert!(decode_connect_output(&[0u8; 16], 16).is_err());
    }

    #[test]
    fn driver_version_reads_both_layouts() {
        // metee: four u16 LE.
        let v = decode_version(&[2, 0, 5, 0, 0, 0, 0x4F, 0x10], 8).unwrap();
        assert_eq!(v.to_string(), "2.5.0.4175");
        // rpc-go / MicroLMS: u8, u8, u8, u16 LE.
        let v = decode_version(&[11, 8, 50, 0x4F, 0x10, 0, 0, 0], 5).unwrap();
        assert_eq!(v.to_string(), "11.8.50.4175");
        assert_eq!(decode_version(&[1, 2, 3, 4], 4), None);
    }

    #[test]
    fn win32_errors_map_to_the_linux_variants_and_exit_codes() {
        use win32::*;
        let map = |code, stage| error_from_win32(code, stage, "AMTHI", r"\\?\pci#heci", 4096);
        assert!(matches!(
            map(ERROR_FILE_NOT_FOUND, Stage::Open),
            HeciError::NoDevice { .. }
        ));
        assert!(matches!(
            map(ERROR_ACCESS_DENIED, Stage::Open),
            HeciError::PermissionDenied { .. }
        ));
        assert!(matches!(
            map(ERROR_INVALID_HANDLE, Stage::Connect),
            HeciError::ClientNotFound { .. }
        ));
        assert!(matches!(
            map(ERROR_NOT_FOUND, Stage::Connect),
            HeciError::ClientNotFound { .. }
        ));
        assert!(matches!(
            map(ERROR_BUSY, Stage::Connect),
            HeciError::Busy { .. }
        ));
        assert!(matches!(
            map(ERROR_DEVICE_NOT_CONNECTED, Stage::Connect),
            HeciError::DeviceNotReady { .. }
        ));
        assert!(matches!(
            map(ERROR_DEVICE_NOT_CONNECTED, Stage::Read),
            HeciError::Reset { .. }
        ));
        assert!(matches!(
            map(ERROR_MORE_DATA, Stage::Read),
            HeciError::ReplyTooBig { .. }
        ));
        assert!(matches!(
            map(ERROR_INVALID_PARAMETER, Stage::Write),
            HeciError::MessageTooBig { max: 4096, .. }
        ));
        let other = map(ERROR_GEN_FAILURE, Stage::Write);
        assert_eq!(
            other.to_string(),
            "WriteFile on AMTHI failed: ERROR_GEN_FAILURE (31)"
        );
        // The exit codes are rpc-go's, as on Linux.
        let exit = |e: HeciError| crate::error::AgentError::from(e).exit.code();
        assert_eq!(exit(map(ERROR_FILE_NOT_FOUND, Stage::Open)), 2);
        assert_eq!(exit(map(ERROR_ACCESS_DENIED, Stage::Open)), 1);
        assert_eq!(exit(map(ERROR_INVALID_HANDLE, Stage::Connect)), 3);
        assert_eq!(exit(map(ERROR_DEVICE_NOT_CONNECTED, Stage::Connect)), 4);
    }

    #[test]
    fn windows_advice_names_the_windows_fix() {
        let no_driver = HeciError::NoDevice {
            tried: "HECI".into(),
        };
        assert!(no_driver
            .help_on(HostOs::Windows)
            .contains("Intel Management Engine Interface"));
        assert!(no_driver.help_on(HostOs::Linux).contains("modprobe mei_me"));
        let denied = HeciError::PermissionDenied { path: "x".into() };
        assert!(denied
            .help_on(HostOs::Windows)
            .contains("Run as administrator"));
        assert!(denied.help_on(HostOs::Linux).contains("sudo"));
    }

    #[test]
    fn waits_are_never_infinite() {
        assert_eq!(wait_ms(Duration::from_millis(1500)), 1500);
        assert_eq!(wait_ms(Duration::from_secs(u64::MAX / 2)), u32::MAX - 1);
    }

    #[test]
    fn wide_strings_round_trip() {
        let w = to_wide(r"\\?\pci#ven_8086");
        assert_eq!(*w.last().unwrap(), 0);
        assert_eq!(path_from_wide(&w), r"\\?\pci#ven_8086");
    }
}
