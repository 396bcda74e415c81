//! The UPID (Intel Unique Platform ID) ME client: a sans-IO codec (rpc-go.md §6.6, transport.md §3.4).
//!
//! Every message starts with a 4-byte header: u8 feature (0 = platform id), u8 command, u16 LE byte
//! count (the bytes after the header). A reply echoes feature and command and starts its body with a
//! u32 LE [`UpidStatus`]. Reading the id takes three exchanges, as rpc-go v3 does them:
//! `FeatureStateSet(1)` (enable), `PlatformIdGet`, `FeatureStateSet(0)` (disable).
//!
//! `PlatformIdGet`'s reply is 76 bytes: header, status, u32 OEM platform id type, the OEM platform
//! id (32 bytes) and the CSME platform id (32 bytes). SUCCESS with fewer than 76 bytes means the UPID
//! is not provisioned. Bytes 0–19 of the CSME id bind AMT's pre-activation TLS chain to this CSME
//! (rpc-go.md §5.6; [`crate::tls::AmtCertVerifier::with_upid_csme_id`]).
//!
//! Command and status names are the Intel UPID SDK's, as rpc-go carries them
//! (`rpc-go@main:pkg/upid/types.go`). The thin driver is [`client`].

pub mod client;

use std::fmt;

pub use crate::amthi::codec::DecodeError;
use crate::amthi::codec::Reader;

/// Header length: u8 feature, u8 command, u16 byte count.
pub const HEADER_LEN: usize = 4;
/// Feature code of the platform-id commands (`UPID_COMMAND_FEATURE_PLATFORM_ID`).
pub const FEATURE_PLATFORM_ID: u8 = 0;
/// Length of each of the two ids (OEM platform id, CSME platform id).
pub const ID_LEN: usize = 32;
/// The whole `PlatformIdGet` reply of a provisioned UPID: header 4 + status 4 + type 4 + 32 + 32.
pub const PLATFORM_ID_REPLY_LEN: usize = HEADER_LEN + 4 + 4 + 2 * ID_LEN;
/// How many leading bytes of the CSME id AMT's TLS chain is bound to (rpc-go.md §5.6).
pub const CSME_BINDING_LEN: usize = 20;

macro_rules! commands {
    ($($variant:ident = $value:expr => $name:literal;)*) => {
        /// Platform-id commands (rpc-go.md §6.6, transport.md §3.4). Unknown codes are kept as data.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum Command {
            $($variant,)*
            Unknown(u8),
        }

        impl Command {
            pub fn from_u8(v: u8) -> Command {
                match v {
                    $($value => Command::$variant,)*
                    other => Command::Unknown(other),
                }
            }

            pub fn code(self) -> u8 {
                match self {
                    $(Command::$variant => $value,)*
                    Command::Unknown(v) => v,
                }
            }

            /// The SDK's name, without its `_CMD` suffix (also the simulator's fault key).
            pub fn name(self) -> &'static str {
                match self {
                    $(Command::$variant => $name,)*
                    Command::Unknown(_) => "UPID_UNKNOWN_COMMAND",
                }
            }
        }
    };
}

commands! {
    FeatureSupportGet = 0 => "UPID_PLATFORM_ID_FEATURE_SUPPORT_GET";
    FeatureStateGet = 1 => "UPID_PLATFORM_ID_FEATURE_STATE_GET";
    FeatureStateSet = 2 => "UPID_PLATFORM_ID_FEATURE_STATE_SET";
    FeatureStateOsControlGet = 3 => "UPID_PLATFORM_ID_FEATURE_STATE_OS_CONTROL_GET";
    FeatureStateOsControlSet = 4 => "UPID_PLATFORM_ID_FEATURE_STATE_OS_CONTROL_SET";
    PlatformIdGet = 5 => "UPID_PLATFORM_ID_GET";
    RefurbishCounterGet = 6 => "UPID_PLATFORM_ID_REFURBISH_COUNTER_GET";
    OemPlatformIdUpdate = 7 => "UPID_OEM_PLATFORM_ID_UPDATE";
}

macro_rules! statuses {
    ($($variant:ident = $value:expr => $name:literal, $meaning:literal;)*) => {
        /// A UPID status (rpc-go.md §6.6). Unknown numbers are data, never a panic. 8 is not in the
        /// reference's list (rpc-go names it reserved), so it prints as unknown.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum UpidStatus {
            $($variant,)*
            Unknown(u32),
        }

        impl UpidStatus {
            pub fn from_u32(v: u32) -> UpidStatus {
                match v {
                    $($value => UpidStatus::$variant,)*
                    other => UpidStatus::Unknown(other),
                }
            }

            pub fn code(self) -> u32 {
                match self {
                    $(UpidStatus::$variant => $value,)*
                    UpidStatus::Unknown(v) => v,
                }
            }

            /// The SDK's spelling, without the `UPID_STATUS_` prefix.
            pub fn name(self) -> &'static str {
                match self {
                    $(UpidStatus::$variant => $name,)*
                    UpidStatus::Unknown(_) => "UNKNOWN",
                }
            }

            /// What the status means, in a few words.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(UpidStatus::$variant => $meaning,)*
                    UpidStatus::Unknown(_) => "a status this agent does not know",
                }
            }
        }
    };
}

statuses! {
    Success = 0 => "SUCCESS", "the request succeeded";
    FeatureNotSupported = 1 => "FEATURE_NOT_SUPPORTED", "this platform does not support the UPID feature";
    InvalidInputParameter = 2 => "INVALID_INPUT_PARAMETER", "the firmware refused the request's parameters";
    InternalError = 3 => "INTERNAL_ERROR", "the firmware hit an internal error";
    NotAllowedAfterEop = 4 => "NOT_ALLOWED_AFTER_EOP", "not allowed after end of POST";
    NotAllowedAfterManufLock = 5 => "NOT_ALLOWED_AFTER_MANUF_LOCK", "not allowed after the manufacturing lock";
    MaxCountersExceeded = 6 => "MAX_COUNTERS_EXCEEDED", "a counter reached its maximum";
    InvalidState = 7 => "INVALID_STATE", "the UPID feature is disabled or in a state that does not allow this";
    NotAllowedAfterCbd = 9 => "NOT_ALLOWED_AFTER_CBD", "not allowed after core BIOS done";
}

impl fmt::Display for UpidStatus {
    /// `NAME (number)`, as the agent prints every firmware status.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// The 4-byte header of every request and reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub feature: u8,
    pub command: Command,
    /// The bytes after the header.
    pub byte_count: u16,
}

impl Header {
    pub fn new(command: Command, byte_count: usize) -> Header {
        Header {
            feature: FEATURE_PLATFORM_ID,
            command,
            byte_count: byte_count.min(u16::MAX as usize) as u16,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.feature);
        out.push(self.command.code());
        out.extend_from_slice(&self.byte_count.to_le_bytes());
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Header, DecodeError> {
        Ok(Header {
            feature: r.u8("UPID header feature")?,
            command: Command::from_u8(r.u8("UPID header command")?),
            byte_count: r.u16_le("UPID header byte count")?,
        })
    }
}

fn frame(command: Command, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + body.len());
    Header::new(command, body.len()).encode(&mut v);
    v.extend_from_slice(body);
    v
}

/// FeatureStateSet: byte count 1, then 1 (enable) or 0 (disable): `00 02 01 00 01`.
pub fn feature_state_set(enabled: bool) -> Vec<u8> {
    frame(Command::FeatureStateSet, &[enabled as u8])
}

/// PlatformIdGet: the header alone, byte count 0: `00 05 00 00`.
pub fn platform_id_get() -> Vec<u8> {
    frame(Command::PlatformIdGet, &[])
}

/// A request as the firmware reads it.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub header: Header,
    pub payload: &'a [u8],
}

/// Splits a request (the simulator's side). The byte count must match the bytes that follow.
pub fn decode_request(msg: &[u8]) -> Result<Request<'_>, DecodeError> {
    let mut r = Reader::new(msg);
    let header = Header::decode(&mut r)?;
    if header.byte_count as usize != r.remaining() {
        return Err(DecodeError {
            what: "UPID request header",
            detail: format!(
                "byte count says {} bytes follow, {} were sent",
                header.byte_count,
                r.remaining()
            ),
        });
    }
    Ok(Request {
        header,
        payload: r.rest(),
    })
}

/// Frames a reply: the header (byte count = status + body) echoing `command`, the status, the body.
pub fn encode_reply(command: Command, status: UpidStatus, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + body.len());
    b.extend_from_slice(&status.code().to_le_bytes());
    b.extend_from_slice(body);
    frame(command, &b)
}

/// A reply split into its parts.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    pub header: Header,
    pub status: UpidStatus,
    pub body: &'a [u8],
}

/// Checks a reply's header (feature 0, the request's command) and reads its status. The byte count
/// is kept but not enforced: rpc-go does not check it either, and whether firmware counts the
/// status in it is UNCONFIRMED.
pub fn decode_reply(expected: Command, msg: &[u8]) -> Result<Reply<'_>, DecodeError> {
    let mut r = Reader::new(msg);
    let header = Header::decode(&mut r)?;
    let bad = |detail: String| DecodeError {
        what: "UPID reply header",
        detail,
    };
    if header.feature != FEATURE_PLATFORM_ID {
        return Err(bad(format!(
            "feature {}, expected {FEATURE_PLATFORM_ID} (platform id)",
            header.feature
        )));
    }
    if header.command != expected {
        return Err(bad(format!(
            "command {} ({}), expected {} ({})",
            header.command.code(),
            header.command.name(),
            expected.code(),
            expected.name()
        )));
    }
    let status = UpidStatus::from_u32(r.u32_le("UPID reply status")?);
    Ok(Reply {
        header,
        status,
        body: r.rest(),
    })
}

/// `UPID_OEM_PLATFORM_ID_TYPE`. Unknown values are data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OemPlatformIdType {
    NotSet,
    Binary,
    PrintableString,
    Unknown(u32),
}

impl OemPlatformIdType {
    pub fn from_u32(v: u32) -> OemPlatformIdType {
        match v {
            0 => OemPlatformIdType::NotSet,
            1 => OemPlatformIdType::Binary,
            2 => OemPlatformIdType::PrintableString,
            other => OemPlatformIdType::Unknown(other),
        }
    }

    pub fn code(self) -> u32 {
        match self {
            OemPlatformIdType::NotSet => 0,
            OemPlatformIdType::Binary => 1,
            OemPlatformIdType::PrintableString => 2,
            OemPlatformIdType::Unknown(v) => v,
        }
    }

    /// rpc-go v3's text: `Not Set (0)`, `Binary (1)`, `Printable String (2)`, `Unknown (N)`.
    pub fn text(self) -> String {
        match self {
            OemPlatformIdType::NotSet => "Not Set (0)".into(),
            OemPlatformIdType::Binary => "Binary (1)".into(),
            OemPlatformIdType::PrintableString => "Printable String (2)".into(),
            OemPlatformIdType::Unknown(v) => format!("Unknown ({v})"),
        }
    }
}

/// The platform id `PlatformIdGet` reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformId {
    pub oem_platform_id_type: OemPlatformIdType,
    /// Set by the OEM (all zero when not set).
    pub oem_platform_id: [u8; ID_LEN],
    /// Set by Intel: identifies this CSME.
    pub csme_platform_id: [u8; ID_LEN],
}

impl PlatformId {
    /// The body after the status: u32 type, OEM id, CSME id (68 bytes).
    pub fn encode_body(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(4 + 2 * ID_LEN);
        v.extend_from_slice(&self.oem_platform_id_type.code().to_le_bytes());
        v.extend_from_slice(&self.oem_platform_id);
        v.extend_from_slice(&self.csme_platform_id);
        v
    }

    /// Reads the first 68 bytes of a body; bytes beyond are ignored, as rpc-go ignores them.
    pub fn decode_body(body: &[u8]) -> Result<PlatformId, DecodeError> {
        let mut r = Reader::new(body);
        Ok(PlatformId {
            oem_platform_id_type: OemPlatformIdType::from_u32(r.u32_le("OEM platform id type")?),
            oem_platform_id: r.array("OEM platform id")?,
            csme_platform_id: r.array("CSME platform id")?,
        })
    }

    /// rpc-go's `oemId`: upper-case hex, or "" when all 32 bytes are zero.
    pub fn oem_id_text(&self) -> String {
        if self.oem_platform_id.iter().all(|&b| b == 0) {
            String::new()
        } else {
            upper_hex(&self.oem_platform_id)
        }
    }

    /// rpc-go's `csmeId`: upper-case hex of all 32 bytes.
    pub fn csme_id_text(&self) -> String {
        upper_hex(&self.csme_platform_id)
    }

    /// Bytes 0–19 of the CSME id: what AMT's TLS chain is bound to.
    pub fn csme_binding(&self) -> [u8; CSME_BINDING_LEN] {
        let mut b = [0u8; CSME_BINDING_LEN];
        b.copy_from_slice(&self.csme_platform_id[..CSME_BINDING_LEN]);
        b
    }
}

/// What `PlatformIdGet` answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlatformIdAnswer {
    Id(PlatformId),
    /// SUCCESS with fewer than 76 bytes: the platform has no UPID provisioned (rpc-go.md §6.6).
    NotProvisioned,
    /// A status other than SUCCESS.
    Refused(UpidStatus),
}

/// Decodes `PlatformIdGet`'s reply.
pub fn decode_platform_id_reply(msg: &[u8]) -> Result<PlatformIdAnswer, DecodeError> {
    let reply = decode_reply(Command::PlatformIdGet, msg)?;
    if reply.status != UpidStatus::Success {
        return Ok(PlatformIdAnswer::Refused(reply.status));
    }
    if msg.len() < PLATFORM_ID_REPLY_LEN {
        return Ok(PlatformIdAnswer::NotProvisioned);
    }
    PlatformId::decode_body(reply.body).map(PlatformIdAnswer::Id)
}

/// Decodes `FeatureStateSet`'s reply (header + status, 8 bytes) to its status.
pub fn decode_feature_state_set_reply(msg: &[u8]) -> Result<UpidStatus, DecodeError> {
    decode_reply(Command::FeatureStateSet, msg).map(|r| r.status)
}

/// Upper-case hex without separators (rpc-go's form for UPID ids).
pub fn upper_hex(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02X}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layouts below are written from rpc-go.md §6.6 byte by byte, not from this code.
    #[test]
    fn feature_state_set_requests_are_byte_exact() {
        assert_eq!(feature_state_set(true), [0x00, 0x02, 0x01, 0x00, 0x01]);
        assert_eq!(feature_state_set(false), [0x00, 0x02, 0x01, 0x00, 0x00]);
    }

    #[test]
    fn platform_id_get_request_is_byte_exact() {
        assert_eq!(platform_id_get(), [0x00, 0x05, 0x00, 0x00]);
    }

    #[test]
    fn feature_state_set_reply_is_header_and_status() {
        let msg = [0x00, 0x02, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00];
        assert_eq!(
            decode_feature_state_set_reply(&msg).unwrap(),
            UpidStatus::Success
        );
        assert_eq!(
            encode_reply(Command::FeatureStateSet, UpidStatus::Success, &[]),
            msg
        );
        let refused = [0x00, 0x02, 0x04, 0x00, 0x07, 0x00, 0x00, 0x00];
        assert_eq!(
            decode_feature_state_set_reply(&refused).unwrap(),
            UpidStatus::InvalidState
        );
    }

    fn reply76() -> Vec<u8> {
        let mut m = vec![0x00, 0x05, 0x48, 0x00]; // byte count 72 = 4 + 4 + 32 + 32
        m.extend_from_slice(&[0, 0, 0, 0]); // status SUCCESS
        m.extend_from_slice(&[2, 0, 0, 0]); // type: printable string
        m.extend((0..32).map(|i| b'A' + (i % 26) as u8)); // OEM platform id
        m.extend((0..32).map(|i| 0xC0 + i as u8)); // CSME platform id
        m
    }

    #[test]
    fn platform_id_reply_layout_is_byte_exact() {
        let m = reply76();
        assert_eq!(m.len(), PLATFORM_ID_REPLY_LEN);
        let PlatformIdAnswer::Id(id) = decode_platform_id_reply(&m).unwrap() else {
            panic!("a 76-byte SUCCESS reply is an id")
        };
        assert_eq!(id.oem_platform_id_type, OemPlatformIdType::PrintableString);
        assert_eq!(&id.oem_platform_id[..3], b"ABC");
        assert_eq!(id.csme_platform_id[0], 0xC0);
        assert_eq!(id.csme_platform_id[31], 0xDF);
        assert_eq!(
            id.csme_binding(),
            std::array::from_fn::<u8, 20, _>(|i| 0xC0 + i as u8)
        );
        assert_eq!(
            encode_reply(
                Command::PlatformIdGet,
                UpidStatus::Success,
                &id.encode_body()
            ),
            m,
            "the simulator's encoding is the same 76 bytes"
        );
    }

    #[test]
    fn ids_print_as_rpc_go_prints_them() {
        let mut id = PlatformId {
            oem_platform_id_type: OemPlatformIdType::NotSet,
            oem_platform_id: [0; 32],
            csme_platform_id: [0; 32],
        };
        id.csme_platform_id[0] = 0xab;
        id.csme_platform_id[31] = 0x01;
        assert_eq!(id.oem_id_text(), "", "all-zero OEM id is empty");
        assert_eq!(id.csme_id_text(), format!("AB{}01", "00".repeat(30)));
        id.oem_platform_id[31] = 0x0f;
        assert_eq!(id.oem_id_text(), format!("{}0F", "00".repeat(31)));
        assert_eq!(OemPlatformIdType::NotSet.text(), "Not Set (0)");
        assert_eq!(OemPlatformIdType::Binary.text(), "Binary (1)");
        assert_eq!(
            OemPlatformIdType::PrintableString.text(),
            "Printable String (2)"
        );
        assert_eq!(OemPlatformIdType::from_u32(7).text(), "Unknown (7)");
    }

    #[test]
    fn success_with_fewer_than_76_bytes_is_not_provisioned() {
        let short = encode_reply(Command::PlatformIdGet, UpidStatus::Success, &[]);
        assert_eq!(short, [0x00, 0x05, 0x04, 0x00, 0, 0, 0, 0]);
        assert_eq!(
            decode_platform_id_reply(&short).unwrap(),
            PlatformIdAnswer::NotProvisioned
        );
        let m = reply76();
        assert_eq!(
            decode_platform_id_reply(&m[..75]).unwrap(),
            PlatformIdAnswer::NotProvisioned
        );
    }

    #[test]
    fn every_status_has_its_name_and_unknown_ones_are_data() {
        let names: Vec<String> = (0..=10)
            .map(|n| UpidStatus::from_u32(n).to_string())
            .collect();
        assert_eq!(
            names,
            [
                "SUCCESS (0)",
                "FEATURE_NOT_SUPPORTED (1)",
                "INVALID_INPUT_PARAMETER (2)",
                "INTERNAL_ERROR (3)",
                "NOT_ALLOWED_AFTER_EOP (4)",
                "NOT_ALLOWED_AFTER_MANUF_LOCK (5)",
                "MAX_COUNTERS_EXCEEDED (6)",
                "INVALID_STATE (7)",
                "UNKNOWN (8)",
                "NOT_ALLOWED_AFTER_CBD (9)",
                "UNKNOWN (10)",
            ]
        );
        let m = encode_reply(Command::PlatformIdGet, UpidStatus::from_u32(9), &[]);
        assert_eq!(
            decode_platform_id_reply(&m).unwrap(),
            PlatformIdAnswer::Refused(UpidStatus::NotAllowedAfterCbd)
        );
        assert_eq!(
            Command::from_u8(0x42),
            Command::Unknown(0x42),
            "unknown commands are data"
        );
    }

    #[test]
    fn truncated_and_garbage_replies_are_errors_never_panics() {
        let m = reply76();
        // Shorter than header + status: no status to read.
        for n in 0..8 {
            assert!(decode_platform_id_reply(&m[..n]).is_err(), "{n} bytes");
            assert!(
                decode_feature_state_set_reply(&m[..n]).is_err(),
                "{n} bytes"
            );
        }
        // Another command's reply, another feature.
        assert!(decode_feature_state_set_reply(&m).is_err());
        let mut other_feature = m.clone();
        other_feature[0] = 1;
        assert!(decode_platform_id_reply(&other_feature).is_err());
        // Every prefix and a few corruptions of every length decode or fail, never panic.
        for n in 0..=m.len() {
            let _ = decode_platform_id_reply(&m[..n]);
            let _ = decode_request(&m[..n]);
            let mut g = m[..n].to_vec();
            for b in g.iter_mut() {
                *b = b.wrapping_mul(31).wrapping_add(7);
            }
            let _ = decode_platform_id_reply(&g);
            let _ = decode_feature_state_set_reply(&g);
            let _ = decode_request(&g);
        }
        assert!(PlatformId::decode_body(&[0u8; 67]).is_err());
    }

    #[test]
    fn requests_decode_as_the_firmware_reads_them() {
        let enable = feature_state_set(true);
        let r = decode_request(&enable).unwrap();
        assert_eq!(r.header.command, Command::FeatureStateSet);
        assert_eq!(r.payload, [1]);
        let get = platform_id_get();
        let r = decode_request(&get).unwrap();
        assert_eq!(r.header, Header::new(Command::PlatformIdGet, 0));
        assert!(r.payload.is_empty());
        // A byte count that disagrees with what follows.
        assert!(decode_request(&[0x00, 0x02, 0x02, 0x00, 0x01]).is_err());
        assert!(decode_request(&[0x00, 0x05]).is_err());
    }
}
