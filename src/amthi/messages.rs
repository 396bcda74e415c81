//! Typed AMTHI requests and reply bodies (transport.md §4.3, rpc-go.md §6.4).
//!
//! Each reply type decodes the body after the status and encodes it back (the simulator answers
//! with the same layouts). Layouts are pinned by byte-exact tests below, written from the reference
//! tables rather than from this code.

use super::codec::{fixed_str, put_ansi, put_fixed, put_u32, DecodeError, Reader};
use super::{encode_request, Command};
use crate::secret::Secret;

/// A request this agent sends, framed with its header.
pub fn request(command: Command) -> Vec<u8> {
    encode_request(command, &[])
}

/// GET_CERTHASH_ENTRY for one handle (16 bytes in all).
pub fn request_cert_hash_entry(handle: u32) -> Vec<u8> {
    encode_request(Command::GetCertHashEntry, &handle.to_le_bytes())
}

/// GET_LAN_INTERFACE_SETTINGS: 0 wired, 1 wireless (16 bytes in all).
pub fn request_lan_interface(interface: LanInterface) -> Vec<u8> {
    encode_request(
        Command::GetLanInterfaceSettings,
        &(interface as u32).to_le_bytes(),
    )
}

/// GET_LOCAL_SYSTEM_ACCOUNT carries 40 zero bytes (52 bytes in all).
pub fn request_local_system_account() -> Vec<u8> {
    encode_request(Command::GetLocalSystemAccount, &[0u8; 40])
}

/// UNPROVISION with mode 0, as rpc-go and MeshAgent send it (16 bytes in all).
pub fn request_unprovision(mode: u32) -> Vec<u8> {
    encode_request(Command::Unprovision, &mode.to_le_bytes())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum LanInterface {
    Wired = 0,
    Wireless = 1,
}

/// One code-version entry: a description and a version, each `u16 length + 20 bytes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionEntry {
    pub description: String,
    pub version: String,
}

/// GET_CODE_VERSIONS: `BiosVersion[65]`, u32 count, count × 44-byte entries (variable length).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeVersions {
    pub bios_version: String,
    pub versions: Vec<VersionEntry>,
}

const VERSION_FIELD: usize = 20;
const BIOS_FIELD: usize = 65;

impl CodeVersions {
    pub fn decode(body: &[u8]) -> Result<CodeVersions, DecodeError> {
        let mut r = Reader::new(body);
        let bios_version = fixed_str(r.take(BIOS_FIELD, "BiosVersion")?);
        let count = r.u32_le("VersionsCount")? as usize;
        // Only `count` entries are sent; check the count against the length before trusting it.
        if count * 44 != r.remaining() {
            return Err(DecodeError {
                what: "GET_CODE_VERSIONS",
                detail: format!(
                    "count {count} needs {} bytes of entries, {} present",
                    count * 44,
                    r.remaining()
                ),
            });
        }
        let mut versions = Vec::with_capacity(count);
        for _ in 0..count {
            let dlen = r.u16_le("description length")? as usize;
            let dfield = r.take(VERSION_FIELD, "description")?;
            let _vlen = r.u16_le("version length")?;
            let vfield = r.take(VERSION_FIELD, "version")?;
            let description = String::from_utf8_lossy(&dfield[..dlen.min(VERSION_FIELD)])
                .trim_end_matches('\0')
                .to_string();
            // The version is NUL-terminated inside its field; rpc-go ignores its length. (This
            // once sliced the field at the length of its lossy text, which is longer than the
            // 20 bytes when they are not UTF-8: a panic fuzzing found, docs/robustness.md.)
            let version = fixed_str(vfield);
            versions.push(VersionEntry {
                description,
                version,
            });
        }
        Ok(CodeVersions {
            bios_version,
            versions,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(69 + 44 * self.versions.len());
        put_fixed(&mut v, &self.bios_version, BIOS_FIELD);
        put_u32(&mut v, self.versions.len() as u32);
        for e in &self.versions {
            let d = &e.description.as_bytes()[..e.description.len().min(VERSION_FIELD)];
            v.extend_from_slice(&(d.len() as u16).to_le_bytes());
            put_fixed(&mut v, &e.description, VERSION_FIELD);
            // Cut in bytes, not chars: slicing the str at byte 19 panicked inside a multi-byte
            // character (fuzz target `amthi_reply`, docs/robustness.md).
            let n = e.version.len().min(VERSION_FIELD - 1);
            v.extend_from_slice(&(n as u16).to_le_bytes());
            v.extend_from_slice(&e.version.as_bytes()[..n]);
            v.extend(std::iter::repeat_n(0u8, VERSION_FIELD - n));
        }
        v
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.versions
            .iter()
            .find(|e| e.description == key)
            .map(|e| e.version.as_str())
    }
}

fn single_u32(body: &[u8], what: &'static str) -> Result<u32, DecodeError> {
    let mut r = Reader::new(body);
    let v = r.u32_le(what)?;
    r.expect_end(what)?;
    Ok(v)
}

/// GET_CONTROL_MODE: 0 not activated, 1 CCM, 2 ACM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlMode {
    #[serde(rename = "pre-provisioning")]
    None,
    Ccm,
    Acm,
    #[serde(skip)]
    Unknown(u32),
}

impl ControlMode {
    pub fn from_u32(v: u32) -> ControlMode {
        match v {
            0 => ControlMode::None,
            1 => ControlMode::Ccm,
            2 => ControlMode::Acm,
            n => ControlMode::Unknown(n),
        }
    }

    pub fn code(self) -> u32 {
        match self {
            ControlMode::None => 0,
            ControlMode::Ccm => 1,
            ControlMode::Acm => 2,
            ControlMode::Unknown(n) => n,
        }
    }

    pub fn decode(body: &[u8]) -> Result<ControlMode, DecodeError> {
        Ok(ControlMode::from_u32(single_u32(body, "GET_CONTROL_MODE")?))
    }

    /// The agent's own short wording, in its messages and status file (rpc-go v3's words).
    pub fn text(self) -> &'static str {
        match self {
            ControlMode::None => "not activated",
            ControlMode::Ccm => "client control mode",
            ControlMode::Acm => "admin control mode",
            ControlMode::Unknown(_) => "unknown control mode",
        }
    }

    /// What rpc-go v2 prints for it in `amtinfo`, text and JSON alike (rpc-go.md §1.4 "Value
    /// vocabularies").
    pub fn v2_text(self) -> &'static str {
        match self {
            ControlMode::None => "pre-provisioning state",
            ControlMode::Ccm => "activated in client control mode",
            ControlMode::Acm => "activated in admin control mode",
            ControlMode::Unknown(_) => "unknown state",
        }
    }
}

/// GET_PROVISIONING_STATE: 0 pre, 1 in, 2 post.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProvisioningState {
    Pre,
    In,
    Post,
    Unknown(u32),
}

impl ProvisioningState {
    pub fn from_u32(v: u32) -> ProvisioningState {
        match v {
            0 => ProvisioningState::Pre,
            1 => ProvisioningState::In,
            2 => ProvisioningState::Post,
            n => ProvisioningState::Unknown(n),
        }
    }

    pub fn code(self) -> u32 {
        match self {
            ProvisioningState::Pre => 0,
            ProvisioningState::In => 1,
            ProvisioningState::Post => 2,
            ProvisioningState::Unknown(n) => n,
        }
    }

    pub fn decode(body: &[u8]) -> Result<ProvisioningState, DecodeError> {
        Ok(ProvisioningState::from_u32(single_u32(
            body,
            "GET_PROVISIONING_STATE",
        )?))
    }

    pub fn text(self) -> &'static str {
        match self {
            ProvisioningState::Pre => "pre-provisioning",
            ProvisioningState::In => "in provisioning",
            ProvisioningState::Post => "post-provisioning",
            ProvisioningState::Unknown(_) => "unknown provisioning state",
        }
    }
}

/// GET_UUID: 16 raw bytes, shown with the first three groups byte-reversed (SMBIOS order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AmtUuid(pub [u8; 16]);

impl AmtUuid {
    pub fn decode(body: &[u8]) -> Result<AmtUuid, DecodeError> {
        let mut r = Reader::new(body);
        let a = r.array::<16>("UUID")?;
        r.expect_end("GET_UUID")?;
        Ok(AmtUuid(a))
    }

    pub fn text(&self) -> String {
        let b = &self.0;
        format!(
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
        )
    }

    /// Parses the text form back to raw bytes.
    pub fn parse(s: &str) -> Option<AmtUuid> {
        let g = crate::heci::Guid::parse(s)?;
        Some(AmtUuid(g.0))
    }
}

/// An `AMT_ANSI_STRING` reply (the PKI DNS suffix).
pub fn decode_ansi(body: &[u8], what: &'static str) -> Result<String, DecodeError> {
    let mut r = Reader::new(body);
    let s = r.ansi_string(what)?;
    r.expect_end(what)?;
    Ok(s)
}

pub fn encode_ansi(s: &str) -> Vec<u8> {
    let mut v = Vec::new();
    put_ansi(&mut v, s);
    v
}

/// The local system account's user name, as firmware reports it.
pub const LSA_USERNAME: &str = "$$OsAdmin";

/// GET_LOCAL_SYSTEM_ACCOUNT: username[33], password[33], 2 padding bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalSystemAccount {
    pub username: String,
    pub password: Secret,
}

/// Byte range of the password inside the reply body, for redacting hex dumps.
pub const LSA_PASSWORD_RANGE: std::ops::Range<usize> = 33..66;

impl LocalSystemAccount {
    pub fn decode(body: &[u8]) -> Result<LocalSystemAccount, DecodeError> {
        let mut r = Reader::new(body);
        let user = r.take(33, "username")?;
        let pass = r.take(33, "password")?;
        r.take(2, "padding")?;
        r.expect_end("GET_LOCAL_SYSTEM_ACCOUNT")?;
        let strip = |b: &[u8]| -> String {
            String::from_utf8_lossy(&b.iter().copied().filter(|&c| c != 0).collect::<Vec<u8>>())
                .into_owned()
        };
        Ok(LocalSystemAccount {
            username: strip(user),
            password: Secret::new(strip(pass)),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(68);
        put_fixed(&mut v, &self.username, 33);
        put_fixed(&mut v, self.password.expose(), 33);
        v.extend_from_slice(&[0, 0]);
        v
    }
}

/// GET_LAN_INTERFACE_SETTINGS body (20 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LanInterfaceSettings {
    pub enabled: bool,
    /// Numeric value 0x01020304 means 1.2.3.4.
    pub ipv4: u32,
    pub dhcp_enabled: bool,
    /// 1 active, 2 passive.
    pub dhcp_ip_mode: u8,
    /// 0 down, 1 up.
    pub link_status: u8,
    pub mac: [u8; 6],
}

impl LanInterfaceSettings {
    pub fn decode(body: &[u8]) -> Result<LanInterfaceSettings, DecodeError> {
        let mut r = Reader::new(body);
        let s = LanInterfaceSettings {
            enabled: r.u32_le("Enabled")? != 0,
            ipv4: r.u32_le("Ipv4Address")?,
            dhcp_enabled: r.u32_le("DhcpEnabled")? != 0,
            dhcp_ip_mode: r.u8("DhcpIpMode")?,
            link_status: r.u8("LinkStatus")?,
            mac: r.array::<6>("MacAddress")?,
        };
        r.expect_end("GET_LAN_INTERFACE_SETTINGS")?;
        Ok(s)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(20);
        put_u32(&mut v, self.enabled as u32);
        put_u32(&mut v, self.ipv4);
        put_u32(&mut v, self.dhcp_enabled as u32);
        v.push(self.dhcp_ip_mode);
        v.push(self.link_status);
        v.extend_from_slice(&self.mac);
        v
    }

    pub fn ip_text(&self) -> String {
        std::net::Ipv4Addr::from(self.ipv4).to_string()
    }

    pub fn mac_text(&self) -> String {
        mac_text(&self.mac)
    }
}

pub fn mac_text(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// GET_REMOTE_ACCESS_CONNECTION_STATUS body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteAccessStatus {
    pub network_status: u32,
    pub remote_status: u32,
    pub remote_trigger: u32,
    pub mps_hostname: String,
}

impl RemoteAccessStatus {
    pub fn decode(body: &[u8]) -> Result<RemoteAccessStatus, DecodeError> {
        let mut r = Reader::new(body);
        let s = RemoteAccessStatus {
            network_status: r.u32_le("NetworkStatus")?,
            remote_status: r.u32_le("RemoteStatus")?,
            remote_trigger: r.u32_le("RemoteTrigger")?,
            mps_hostname: r.ansi_string("MpsHostname")?,
        };
        r.expect_end("GET_REMOTE_ACCESS_CONNECTION_STATUS")?;
        Ok(s)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        put_u32(&mut v, self.network_status);
        put_u32(&mut v, self.remote_status);
        put_u32(&mut v, self.remote_trigger);
        put_ansi(&mut v, &self.mps_hostname);
        v
    }

    /// rpc-go v2's vocabularies (rpc-go.md §1.4; v3 says `direct (LAN)` and `outside enterprise
    /// (CIRA)`).
    pub fn network_text(&self) -> &'static str {
        match self.network_status {
            0 => "direct",
            1 => "vpn",
            2 => "outside enterprise",
            _ => "unknown",
        }
    }

    pub fn remote_text(&self) -> &'static str {
        match self.remote_status {
            0 => "not connected",
            1 => "connecting",
            2 => "connected",
            _ => "unknown",
        }
    }

    /// rpc-go's order (0 user, 1 alert, 2 periodic, 3 provisioning); MicroLMS swaps 2 and 3.
    pub fn trigger_text(&self) -> &'static str {
        match self.remote_trigger {
            0 => "user initiated",
            1 => "alert",
            2 => "periodic",
            3 => "provisioning",
            _ => "unknown",
        }
    }
}

/// ENUMERATE_HASH_HANDLES: u32 count + count handles (variable length, no upper bound assumed).
pub fn decode_hash_handles(body: &[u8]) -> Result<Vec<u32>, DecodeError> {
    let mut r = Reader::new(body);
    let count = r.u32_le("count")? as usize;
    if count * 4 != r.remaining() {
        return Err(DecodeError {
            what: "ENUMERATE_HASH_HANDLES",
            detail: format!("count {count} but {} bytes of handles", r.remaining()),
        });
    }
    (0..count).map(|_| r.u32_le("handle")).collect()
}

pub fn encode_hash_handles(handles: &[u32]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + 4 * handles.len());
    put_u32(&mut v, handles.len() as u32);
    for h in handles {
        put_u32(&mut v, *h);
    }
    v
}

/// Hash algorithm byte (rpc-go.md §1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlgorithm {
    Md5,
    Sha1,
    Sha256,
    Sha384,
    Sha224,
    Sha512,
    Unknown(u8),
}

impl HashAlgorithm {
    pub fn from_u8(v: u8) -> HashAlgorithm {
        match v {
            0 => HashAlgorithm::Md5,
            1 => HashAlgorithm::Sha1,
            2 => HashAlgorithm::Sha256,
            3 => HashAlgorithm::Sha384,
            4 => HashAlgorithm::Sha224,
            5 => HashAlgorithm::Sha512,
            n => HashAlgorithm::Unknown(n),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            HashAlgorithm::Md5 => 0,
            HashAlgorithm::Sha1 => 1,
            HashAlgorithm::Sha256 => 2,
            HashAlgorithm::Sha384 => 3,
            HashAlgorithm::Sha224 => 4,
            HashAlgorithm::Sha512 => 5,
            HashAlgorithm::Unknown(n) => n,
        }
    }

    /// Digest length in bytes; `None` where rpc-go prints `UNKNOWN` with an empty hash.
    pub fn digest_len(self) -> Option<usize> {
        match self {
            HashAlgorithm::Md5 => Some(16),
            HashAlgorithm::Sha1 => Some(20),
            HashAlgorithm::Sha256 => Some(32),
            HashAlgorithm::Sha384 => Some(48),
            HashAlgorithm::Sha512 => Some(64),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Md5 => "MD5",
            HashAlgorithm::Sha1 => "SHA1",
            HashAlgorithm::Sha256 => "SHA256",
            HashAlgorithm::Sha384 => "SHA384",
            HashAlgorithm::Sha512 => "SHA512",
            _ => "UNKNOWN",
        }
    }

    pub fn parse(s: &str) -> Option<HashAlgorithm> {
        match s.to_ascii_uppercase().replace('-', "").as_str() {
            "MD5" => Some(HashAlgorithm::Md5),
            "SHA1" => Some(HashAlgorithm::Sha1),
            "SHA256" => Some(HashAlgorithm::Sha256),
            "SHA384" => Some(HashAlgorithm::Sha384),
            "SHA512" => Some(HashAlgorithm::Sha512),
            _ => None,
        }
    }
}

/// GET_CERTHASH_ENTRY body: IsDefault u32, IsActive u32, Hash[64], algorithm u8, name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertHashEntry {
    pub is_default: bool,
    pub is_active: bool,
    pub hash: [u8; 64],
    pub algorithm: HashAlgorithm,
    pub name: String,
}

impl CertHashEntry {
    pub fn decode(body: &[u8]) -> Result<CertHashEntry, DecodeError> {
        let mut r = Reader::new(body);
        let e = CertHashEntry {
            is_default: r.u32_le("IsDefault")? != 0,
            is_active: r.u32_le("IsActive")? != 0,
            hash: r.array::<64>("CertificateHash")?,
            algorithm: HashAlgorithm::from_u8(r.u8("HashAlgorithm")?),
            name: r.ansi_string("Name")?,
        };
        r.expect_end("GET_CERTHASH_ENTRY")?;
        Ok(e)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(75 + self.name.len());
        put_u32(&mut v, self.is_default as u32);
        put_u32(&mut v, self.is_active as u32);
        v.extend_from_slice(&self.hash);
        v.push(self.algorithm.code());
        put_ansi(&mut v, &self.name);
        v
    }

    /// The digest as lower-case hex, only the algorithm's length (empty when unknown).
    pub fn hash_hex(&self) -> String {
        match self.algorithm.digest_len() {
            Some(n) => super::codec::hex(&self.hash[..n]),
            None => String::new(),
        }
    }
}

/// START_CONFIGURATION_HBASED request. Two layouts exist in the wild (transport.md §4.3): rpc-go's
/// packed u8/u8 form (390-byte body) and MeshAgent's u32 form (396-byte body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartConfigurationHBased {
    pub server_hash_algorithm: u8,
    pub server_cert_hash: [u8; 64],
    pub host_vpn_enable: bool,
    pub dns_suffixes: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HBasedLayout {
    RpcGo,
    MeshAgent,
}

impl StartConfigurationHBased {
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(390);
        body.push(self.server_hash_algorithm);
        body.extend_from_slice(&self.server_cert_hash);
        body.push(self.host_vpn_enable as u8);
        put_u32(&mut body, self.dns_suffixes.len() as u32);
        body.extend_from_slice(&suffix_list(&self.dns_suffixes));
        encode_request(Command::StartConfigurationHBased, &body)
    }

    pub fn decode(body: &[u8]) -> Result<(StartConfigurationHBased, HBasedLayout), DecodeError> {
        let mut r = Reader::new(body);
        let layout = match body.len() {
            390 => HBasedLayout::RpcGo,
            396 => HBasedLayout::MeshAgent,
            n => {
                return Err(DecodeError {
                    what: "START_CONFIGURATION_HBASED",
                    detail: format!("body of {n} bytes, expected 390 or 396"),
                })
            }
        };
        let wide = layout == HBasedLayout::MeshAgent;
        let alg = if wide {
            r.u32_le("ServerHashAlgorithm")? as u8
        } else {
            r.u8("ServerHashAlgorithm")?
        };
        let hash = r.array::<64>("ServerCertHash")?;
        let vpn = if wide {
            r.u32_le("HostVPNEnable")? != 0
        } else {
            r.u8("HostVPNEnable")? != 0
        };
        let _count = r.u32_le("SuffixListLen")?;
        let list = r.take(320, "NetworkDnsSuffixList")?;
        let dns_suffixes = list
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        Ok((
            StartConfigurationHBased {
                server_hash_algorithm: alg,
                server_cert_hash: hash,
                host_vpn_enable: vpn,
                dns_suffixes,
            },
            layout,
        ))
    }
}

fn suffix_list(s: &[String]) -> [u8; 320] {
    let mut out = [0u8; 320];
    let mut pos = 0;
    for (i, x) in s.iter().take(5).enumerate() {
        let b = &x.as_bytes()[..x.len().min(63)];
        pos = i * 64;
        out[pos..pos + b.len()].copy_from_slice(b);
    }
    let _ = pos;
    out
}

/// START_CONFIGURATION_HBASED reply: AMT's certificate hash algorithm and hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HBasedReply {
    pub hash_algorithm: u8,
    pub amt_cert_hash: [u8; 64],
}

impl HBasedReply {
    pub fn decode(body: &[u8]) -> Result<HBasedReply, DecodeError> {
        let mut r = Reader::new(body);
        let h = HBasedReply {
            hash_algorithm: r.u8("HashAlgorithm")?,
            amt_cert_hash: r.array::<64>("AMTCertHash")?,
        };
        r.expect_end("START_CONFIGURATION_HBASED")?;
        Ok(h)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.hash_algorithm];
        v.extend_from_slice(&self.amt_cert_hash);
        v
    }
}

/// Watchdog-client "state independence" messages (transport.md §3.3, rpc-go.md §6.5).
pub mod watchdog {
    /// IsChangeToAMTEnabled: command 0x05, byte count 2, sub-command 0x51, version 0x10.
    pub const IS_CHANGE_TO_AMT_ENABLED: [u8; 4] = [0x05, 0x02, 0x51, 0x10];

    /// The flags byte that starts the reply.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct AmtEnabledFlags(pub u8);

    impl AmtEnabledFlags {
        pub fn transition_allowed(self) -> bool {
            self.0 & 0x01 != 0
        }
        pub fn amt_enabled(self) -> bool {
            self.0 & 0x02 != 0
        }
        pub fn restricted(self) -> bool {
            self.0 & 0x20 != 0
        }
        pub fn tls_enforced(self) -> bool {
            self.0 & 0x40 != 0
        }
        /// ME 16.1+: bits 1, 5 and 6 are meaningful only with this set.
        pub fn new_interface(self) -> bool {
            self.0 & 0x80 != 0
        }
    }

    /// SetAmtOperationalState: `05 03 53 10 <0|1>`.
    pub fn set_operational_state(enabled: bool) -> [u8; 5] {
        [0x05, 0x03, 0x53, 0x10, enabled as u8]
    }
}

#[cfg(test)]
mod tests {
    use super::super::{decode_reply, encode_reply, PtStatus};
    use super::*;

    fn reply(cmd: Command, body: &[u8]) -> Vec<u8> {
        encode_reply(cmd.code(), PtStatus::Success, body)
    }

    /// Fuzzing regression (fuzz target `amthi_reply`, docs/robustness.md): a version field of 20
    /// non-UTF-8 bytes panicked with a slice past the field's end.
    #[test]
    fn code_versions_with_non_utf8_version_field_decode() {
        let mut body = vec![0u8; 65];
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&3u16.to_le_bytes());
        body.extend_from_slice(b"AMT\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
        body.extend_from_slice(&20u16.to_le_bytes());
        body.extend_from_slice(&[0xff; 20]);
        let v = CodeVersions::decode(&body).unwrap();
        assert_eq!(v.get("AMT"), Some("\u{fffd}".repeat(20).as_str()));
        let msg = reply(Command::GetCodeVersions, &body);
        assert_eq!(
            decode_reply(Command::GetCodeVersions, &msg).unwrap().body,
            body
        );
    }

    /// Fuzzing regression (fuzz target `amthi_reply`): encoding a version whose 19th byte falls
    /// inside a multi-byte character panicked.
    #[test]
    fn code_versions_encode_cuts_non_ascii_versions_in_bytes() {
        let v = CodeVersions {
            bios_version: String::new(),
            versions: vec![VersionEntry {
                description: "AMT".into(),
                version: format!("27{}", "\u{fffd}".repeat(6)),
            }],
        };
        let body = v.encode();
        assert_eq!(body.len(), 65 + 4 + 44);
        assert_eq!(&body[69 + 22..69 + 24], &19u16.to_le_bytes());
        assert!(CodeVersions::decode(&body).is_ok());
    }

    #[test]
    fn request_sizes_match_the_reference() {
        assert_eq!(request(Command::GetCodeVersions).len(), 12);
        assert_eq!(request_cert_hash_entry(7).len(), 16);
        assert_eq!(
            request_cert_hash_entry(7),
            [1, 1, 0, 0, 0x2d, 0, 0, 4, 4, 0, 0, 0, 7, 0, 0, 0]
        );
        assert_eq!(
            request_lan_interface(LanInterface::Wireless),
            [1, 1, 0, 0, 0x48, 0, 0, 4, 4, 0, 0, 0, 1, 0, 0, 0]
        );
        let lsa = request_local_system_account();
        assert_eq!(lsa.len(), 52);
        assert_eq!(&lsa[..12], &[1, 1, 0, 0, 0x67, 0, 0, 4, 40, 0, 0, 0]);
        assert!(lsa[12..].iter().all(|&b| b == 0));
        assert_eq!(
            request_unprovision(0),
            [1, 1, 0, 0, 0x10, 0, 0, 4, 4, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn code_versions_reply_is_variable_length_73_plus_44_per_entry() {
        let cv = CodeVersions {
            bios_version: "EDK2.1".into(),
            versions: vec![
                VersionEntry {
                    description: "AMT".into(),
                    version: "16.1.27".into(),
                },
                VersionEntry {
                    description: "Build Number".into(),
                    version: "2225".into(),
                },
            ],
        };
        let msg = reply(Command::GetCodeVersions, &cv.encode());
        // header.length = 73 + 44·count
        assert_eq!(
            u32::from_le_bytes(msg[8..12].try_into().unwrap()),
            73 + 44 * 2
        );
        assert_eq!(msg.len(), 12 + 73 + 88);
        // first entry: u16 3, "AMT" + 17 NULs, u16 7, "16.1.27" + 13 NULs at offset 16+65+4
        let e = &msg[16 + 65 + 4..];
        assert_eq!(&e[..2], &[3, 0]);
        assert_eq!(&e[2..5], b"AMT");
        assert_eq!(&e[22..24], &[7, 0]);
        assert_eq!(&e[24..31], b"16.1.27");
        let r = decode_reply(Command::GetCodeVersions, &msg).unwrap();
        assert_eq!(CodeVersions::decode(r.body).unwrap(), cv);
        // a count that disagrees with the length is refused
        let mut bad = cv.encode();
        bad[65] = 3;
        assert!(CodeVersions::decode(&bad).is_err());
    }

    #[test]
    fn cert_hash_entry_has_four_byte_booleans_and_is_79_plus_name() {
        let mut hash = [0u8; 64];
        hash[..4].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let e = CertHashEntry {
            is_default: true,
            is_active: false,
            hash,
            algorithm: HashAlgorithm::Sha256,
            name: "Root".into(),
        };
        let msg = reply(Command::GetCertHashEntry, &e.encode());
        assert_eq!(u32::from_le_bytes(msg[8..12].try_into().unwrap()), 79 + 4);
        assert_eq!(&msg[16..24], &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(msg[24 + 64], 2);
        assert_eq!(&msg[24 + 65..24 + 67], &[4, 0]);
        assert_eq!(&msg[24 + 67..], b"Root");
        let d = CertHashEntry::decode(&msg[16..]).unwrap();
        assert_eq!(d, e);
        assert_eq!(&d.hash_hex()[..8], "deadbeef");
        assert_eq!(d.hash_hex().len(), 64);
    }

    #[test]
    fn lan_settings_are_24_bytes_after_header_with_big_end_first_ip() {
        let s = LanInterfaceSettings {
            enabled: true,
            ipv4: 0x0A00_002A,
            dhcp_enabled: true,
            dhcp_ip_mode: 2,
            link_status: 1,
            mac: [0xa4, 0xbb, 0x6d, 0x12, 0x34, 0x56],
        };
        let msg = reply(Command::GetLanInterfaceSettings, &s.encode());
        assert_eq!(u32::from_le_bytes(msg[8..12].try_into().unwrap()), 24);
        assert_eq!(&msg[20..24], &[0x2a, 0, 0, 0x0a]);
        let d = LanInterfaceSettings::decode(&msg[16..]).unwrap();
        assert_eq!(d.ip_text(), "10.0.0.42");
        assert_eq!(d.mac_text(), "a4:bb:6d:12:34:56");
    }

    #[test]
    fn local_system_account_is_68_bytes_and_redacted_in_debug() {
        let lsa = LocalSystemAccount {
            username: "$$OsAdmin".into(),
            password: Secret::new("Zx8vQ2mN4pL6rT9wY1bC3dF5gH7jK0sA"),
        };
        let b = lsa.encode();
        assert_eq!(b.len(), 68);
        assert_eq!(&b[..9], b"$$OsAdmin");
        assert_eq!(b[9], 0);
        assert_eq!(&b[33..37], b"Zx8v");
        let d = LocalSystemAccount::decode(&b).unwrap();
        assert_eq!(d, lsa);
        assert!(!format!("{d:?}").contains("Zx8v"));
    }

    #[test]
    fn uuid_text_reverses_the_first_three_groups() {
        let u = AmtUuid([
            0x44, 0x45, 0x4c, 0x4c, 0x42, 0x00, 0x10, 0x35, 0x80, 0x47, 0xb4, 0xc0, 0x4f, 0x56,
            0x44, 0x33,
        ]);
        assert_eq!(u.text(), "4c4c4544-0042-3510-8047-b4c04f564433");
        assert_eq!(AmtUuid::parse(&u.text()), Some(u));
    }

    #[test]
    fn ras_and_hash_handles_and_pki_suffix_layouts() {
        let ras = RemoteAccessStatus {
            network_status: 0,
            remote_status: 2,
            remote_trigger: 3,
            mps_hostname: "mps.example.com".into(),
        };
        let b = ras.encode();
        assert_eq!(b.len(), 14 + 15);
        assert_eq!(&b[12..14], &[15, 0]);
        assert_eq!(RemoteAccessStatus::decode(&b).unwrap(), ras);
        // 33 handles: no cap at 23 (rpc-go#42)
        let handles: Vec<u32> = (0..33).collect();
        let hb = encode_hash_handles(&handles);
        assert_eq!(hb.len(), 4 + 4 * 33);
        assert_eq!(decode_hash_handles(&hb).unwrap(), handles);
        assert!(decode_hash_handles(&hb[..hb.len() - 1]).is_err());
        assert_eq!(encode_ansi("corp.example.com")[..2], [16, 0]);
        assert_eq!(decode_ansi(&encode_ansi("x.y"), "dns").unwrap(), "x.y");
    }

    #[test]
    fn start_configuration_hbased_accepts_both_layouts() {
        let req = StartConfigurationHBased {
            server_hash_algorithm: 2,
            server_cert_hash: [7u8; 64],
            host_vpn_enable: false,
            dns_suffixes: vec!["corp.example.com".into()],
        };
        let msg = req.encode();
        assert_eq!(msg.len(), 402);
        let (d, layout) = StartConfigurationHBased::decode(&msg[12..]).unwrap();
        assert_eq!(layout, HBasedLayout::RpcGo);
        assert_eq!(d, req);
        let mut wide = Vec::new();
        put_u32(&mut wide, 3);
        wide.extend_from_slice(&[9u8; 64]);
        put_u32(&mut wide, 1);
        put_u32(&mut wide, 0);
        wide.extend_from_slice(&[0u8; 320]);
        let (d, layout) = StartConfigurationHBased::decode(&wide).unwrap();
        assert_eq!(layout, HBasedLayout::MeshAgent);
        assert_eq!(d.server_hash_algorithm, 3);
        assert!(d.host_vpn_enable);
    }

    #[test]
    fn amtinfo_vocabularies_are_rpc_go_v2s() {
        let modes: Vec<&str> = [0, 1, 2, 7]
            .map(|n| ControlMode::from_u32(n).v2_text())
            .to_vec();
        assert_eq!(
            modes,
            [
                "pre-provisioning state",
                "activated in client control mode",
                "activated in admin control mode",
                "unknown state"
            ]
        );
        let network = |n| {
            RemoteAccessStatus {
                network_status: n,
                remote_status: 0,
                remote_trigger: 0,
                mps_hostname: String::new(),
            }
            .network_text()
        };
        assert_eq!(
            [0, 1, 2, 3].map(network),
            ["direct", "vpn", "outside enterprise", "unknown"]
        );
    }
}
