//! The AMT Host Interface (AMTHI, also called PTHI): a sans-IO codec and typed commands.
//!
//! Every message starts with a 12-byte header (transport.md §4.1): version 1.1, reserved 0, a
//! command code, and the length of what follows. A reply's command is the request's with bit 23
//! (`0x00800000`) set, and its body starts with a u32 [`PtStatus`].

pub mod client;
pub mod codec;
pub mod messages;
pub mod status;

pub use client::{AmthiClient, AmthiError};
pub use codec::DecodeError;
pub use messages::*;
pub use status::PtStatus;

use codec::{put_u32, Reader};

pub const HEADER_LEN: usize = 12;
pub const RESPONSE_BIT: u32 = 0x0080_0000;

macro_rules! commands {
    ($($variant:ident = $value:expr => $name:literal;)*) => {
        /// AMTHI command codes (transport.md §4.3). Unknown codes are kept as data.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum Command {
            $($variant,)*
            Unknown(u32),
        }

        impl Command {
            pub fn from_u32(v: u32) -> Command {
                match v & !RESPONSE_BIT {
                    $($value => Command::$variant,)*
                    _ => Command::Unknown(v & !RESPONSE_BIT),
                }
            }

            /// The request code.
            pub fn code(self) -> u32 {
                match self {
                    $(Command::$variant => $value,)*
                    Command::Unknown(v) => v,
                }
            }

            pub fn name(self) -> &'static str {
                match self {
                    $(Command::$variant => $name,)*
                    Command::Unknown(_) => "UNKNOWN_COMMAND",
                }
            }
        }
    };
}

commands! {
    GetAmtState = 0x0100_0001 => "GET_AMT_STATE";
    GetProvisioningMode = 0x0400_0008 => "GET_PROVISIONING_MODE";
    Unprovision = 0x0400_0010 => "UNPROVISION";
    GetProvisioningState = 0x0400_0011 => "GET_PROVISIONING_STATE";
    GetCodeVersions = 0x0400_001A => "GET_CODE_VERSIONS";
    GetSecurityParameters = 0x0400_001B => "GET_SECURITY_PARAMETERS";
    GetMacAddresses = 0x0400_0025 => "GET_MAC_ADDRESSES";
    StartConfiguration = 0x0400_0029 => "START_CONFIGURATION";
    EnumerateHashHandles = 0x0400_002C => "ENUMERATE_HASH_HANDLES";
    GetCertHashEntry = 0x0400_002D => "GET_CERTHASH_ENTRY";
    SetDnsSuffix = 0x0400_002F => "SET_DNS_SUFFIX";
    GetZeroTouchEnabled = 0x0400_0030 => "GET_ZERO_TOUCH_ENABLED";
    GetPkiFqdnSuffix = 0x0400_0036 => "GET_PKI_FQDN_SUFFIX";
    GetRemoteAccessConnectionStatus = 0x0400_0046 => "GET_REMOTE_ACCESS_CONNECTION_STATUS";
    GetLanInterfaceSettings = 0x0400_0048 => "GET_LAN_INTERFACE_SETTINGS";
    GetFqdn = 0x0400_0056 => "GET_FQDN";
    SetHostFqdn = 0x0400_005B => "SET_HOST_FQDN";
    GetUuid = 0x0400_005C => "GET_UUID";
    StopConfiguration = 0x0400_005E => "STOP_CONFIGURATION";
    GetLocalSystemAccount = 0x0400_0067 => "GET_LOCAL_SYSTEM_ACCOUNT";
    GetControlMode = 0x0400_006B => "GET_CONTROL_MODE";
    GetEhbcState = 0x0400_0084 => "GET_EHBC_STATE";
    StartConfigurationHBased = 0x0400_008B => "START_CONFIGURATION_HBASED";
}

/// The 12-byte AMTHI header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub major: u8,
    pub minor: u8,
    pub reserved: u16,
    pub command: u32,
    pub length: u32,
}

impl Header {
    pub fn request(command: Command, length: usize) -> Header {
        Header {
            major: 1,
            minor: 1,
            reserved: 0,
            command: command.code(),
            length: length as u32,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.major);
        out.push(self.minor);
        out.extend_from_slice(&self.reserved.to_le_bytes());
        put_u32(out, self.command);
        put_u32(out, self.length);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Header, DecodeError> {
        Ok(Header {
            major: r.u8("header version major")?,
            minor: r.u8("header version minor")?,
            reserved: r.u16_le("header reserved")?,
            command: r.u32_le("header command")?,
            length: r.u32_le("header length")?,
        })
    }

    pub fn is_response(&self) -> bool {
        self.command & RESPONSE_BIT != 0
    }
}

/// Frames a request: header + body.
pub fn encode_request(command: Command, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + body.len());
    Header::request(command, body.len()).encode(&mut v);
    v.extend_from_slice(body);
    v
}

/// Frames a reply: header (command | response bit) + status + body.
pub fn encode_reply(command: u32, status: PtStatus, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + 4 + body.len());
    Header {
        major: 1,
        minor: 1,
        reserved: 0,
        command: command | RESPONSE_BIT,
        length: (4 + body.len()) as u32,
    }
    .encode(&mut v);
    put_u32(&mut v, status.code());
    v.extend_from_slice(body);
    v
}

/// A reply split into its parts, checked the way careful clients check it (transport.md §4.1):
/// version 1.1, reserved 0, the expected command with the response bit, and a length that matches
/// the bytes read.
#[derive(Debug)]
pub struct Reply<'a> {
    pub header: Header,
    pub status: PtStatus,
    pub body: &'a [u8],
}

pub fn decode_reply(expected: Command, msg: &[u8]) -> Result<Reply<'_>, DecodeError> {
    let mut r = Reader::new(msg);
    let header = Header::decode(&mut r)?;
    let bad = |detail: String| DecodeError {
        what: "AMTHI reply header",
        detail,
    };
    if header.major != 1 || header.reserved != 0 {
        return Err(bad(format!(
            "version {}.{} reserved {:#x}, expected 1.x with reserved 0",
            header.major, header.minor, header.reserved
        )));
    }
    if header.command != expected.code() | RESPONSE_BIT {
        return Err(bad(format!(
            "command {:#010x} ({}), expected {:#010x}",
            header.command,
            Command::from_u32(header.command).name(),
            expected.code() | RESPONSE_BIT
        )));
    }
    if header.length as usize != r.remaining() {
        return Err(bad(format!(
            "length field says {} bytes follow, {} were read",
            header.length,
            r.remaining()
        )));
    }
    let status = PtStatus::from_u32(r.u32_le("status")?);
    Ok(Reply {
        header,
        status,
        body: r.rest(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_uuid_request_is_byte_exact() {
        // rpc-go.md §6.4: `01 01 00 00 5c 00 00 04 00 00 00 00`.
        assert_eq!(
            encode_request(Command::GetUuid, &[]),
            [0x01, 0x01, 0x00, 0x00, 0x5c, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00]
        );
    }

    #[test]
    fn reply_checks_command_length_and_version() {
        let ok = encode_reply(
            Command::GetControlMode.code(),
            PtStatus::Success,
            &[2, 0, 0, 0],
        );
        let r = decode_reply(Command::GetControlMode, &ok).unwrap();
        assert_eq!(r.status, PtStatus::Success);
        assert_eq!(r.body, &[2, 0, 0, 0]);
        assert!(decode_reply(Command::GetUuid, &ok).is_err());
        assert!(decode_reply(Command::GetControlMode, &ok[..ok.len() - 1]).is_err());
        let mut bad_version = ok.clone();
        bad_version[0] = 2;
        assert!(decode_reply(Command::GetControlMode, &bad_version).is_err());
        assert!(decode_reply(Command::GetControlMode, &ok[..5]).is_err());
    }

    #[test]
    fn unknown_command_codes_are_data() {
        assert_eq!(
            Command::from_u32(0x0480_0011),
            Command::GetProvisioningState
        );
        assert_eq!(
            Command::from_u32(0x0400_0099),
            Command::Unknown(0x0400_0099)
        );
    }
}
