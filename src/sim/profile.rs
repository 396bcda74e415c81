//! Device profiles: everything the simulated firmware says about itself. A profile is also the
//! simulator's persisted state (`--state FILE` holds a profile snapshot that changes as the
//! firmware's state does).
//!
//! Facts: code-version keys and layouts from transport.md §4.3; factory root hashes and their names
//! from provisioning.md §4.2–4.3; watchdog flag bits from transport.md §3.3. Versions, builds and
//! UUIDs of the ready-made profiles are realistic but constructed (see docs/simulator.md).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HashEntry {
    pub name: String,
    /// SHA1, SHA256, SHA384, SHA512 (or a number).
    pub algorithm: String,
    pub hash: String,
    pub is_default: bool,
    pub is_active: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Lan {
    pub enabled: bool,
    pub ipv4: String,
    pub dhcp_enabled: bool,
    /// 1 active, 2 passive.
    pub dhcp_mode: u8,
    pub link_up: bool,
    pub mac: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ras {
    pub network_status: u32,
    pub remote_status: u32,
    pub remote_trigger: u32,
    pub mps_hostname: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientSpec {
    /// amthi, lme, watchdog, mkhi, hotham, upid.
    pub name: String,
    pub max_msg_length: u32,
    pub protocol_version: u8,
    /// How many handles may be connected at once; one more gets EBUSY.
    pub max_connections: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceProfile {
    pub name: String,
    pub description: String,
    pub bios_version: String,
    /// Code versions in firmware order; `AMT`, `Build Number` and `Sku` are the keys clients read.
    pub code_versions: Vec<(String, String)>,
    pub uuid: String,
    /// 0 not activated, 1 CCM, 2 ACM.
    pub control_mode: u32,
    /// 0 pre, 1 in, 2 post.
    pub provisioning_state: u32,
    pub pki_dns_suffix: String,
    pub lsa_username: String,
    /// The local system account's password; generated at first start when empty.
    pub lsa_password: String,
    pub wired: Lan,
    pub wireless: Lan,
    pub ras: Ras,
    pub cert_hashes: Vec<HashEntry>,
    /// Watchdog flags: transition allowed, AMT enabled (operational state).
    pub amt_enabled: bool,
    pub transition_allowed: bool,
    /// TLS enforced on local ports (AMT 19+, or 16.1+ when configured).
    pub tls_enforced: bool,
    /// ME 16.1+ "new interface" bit.
    pub new_interface: bool,
    /// Length of the IsChangeToAMTEnabled reply (1 = the flags byte alone).
    pub watchdog_reply_len: usize,
    /// The ME clients this device enumerates; others answer ENOTTY.
    pub clients: Vec<ClientSpec>,
    /// Milliseconds after start during which AMTHI answers NOT_READY.
    #[serde(default)]
    pub not_ready_ms: u64,
    /// The OS host name LMS reported with SET_HOST_FQDN.
    #[serde(default)]
    pub host_fqdn: String,
    /// The domain the wired LAN's DHCP server hands out (option 15); trusted for ACM when no PKI
    /// DNS suffix is set.
    #[serde(default)]
    pub dhcp_dns_suffix: String,
    /// `Digest:` + 32 hex; generated at first start.
    #[serde(default)]
    pub digest_realm: String,
    /// Hex MD5 of `admin:realm:password` once activated (all AMT keeps of the admin password).
    #[serde(default)]
    pub admin_ha1: String,
    #[serde(default)]
    pub mebx_password_set: bool,
    /// START_CONFIGURATION_HBASED's ServerCertHash (hex, the algorithm's digest length): the hash
    /// of the provisioning certificate's leaf that the AMT 19+ ACM flow must present over mutual TLS.
    /// Meaningful only while `provisioning_state` is 1 (the next start overwrites it; a stop or an
    /// unprovision leaves it stale).
    #[serde(default)]
    pub hbased_server_cert_hash: String,
    /// Its ServerHashAlgorithm (2 SHA256, 3 SHA384; 0 when none is recorded).
    #[serde(default)]
    pub hbased_server_hash_algorithm: u8,
    /// The UPID's OEM platform id type (0 not set, 1 binary, 2 printable string) and the OEM
    /// platform id (hex, up to 32 bytes, zero-padded; empty = not set). The CSME platform id is not
    /// stored: it is derived from the simulated CSME's ROM CA certificate (`sim::tls::csme_platform_id`).
    #[serde(default)]
    pub upid_oem_platform_id_type: u32,
    #[serde(default)]
    pub upid_oem_platform_id: String,
    /// The MKHI FWCAPS rule 0x1D answer (platform type: image type, brand, form factor; layout in
    /// [`platform_type`]). Absent: derived from `Sku` for a desktop.
    #[serde(default)]
    pub platform_type: Option<u32>,
    /// AMT's clock minus the host's, in seconds (`AMT_TimeSynchronizationService`; a test sets it
    /// to simulate a drifted clock, SetHighAccuracyTimeSynch brings it back to about 0).
    #[serde(default)]
    pub clock_offset_secs: i64,
    /// WS-MAN class instances (seeded with factory defaults at first start).
    #[serde(default)]
    pub instances: std::collections::BTreeMap<String, Vec<Vec<(String, String)>>>,
    /// The TLS settings CommitChanges put into effect (`None`: TLS as the factory left it).
    #[serde(default)]
    pub tls_in_effect: Option<TlsInEffect>,
}

/// What the firmware's TLS servers do after the last CommitChanges: `AMT_TLSSettingData` as it
/// was committed, and the certificate `AMT_TLSCredentialContext` bound then.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsInEffect {
    /// The network (802.3) interface.
    pub remote: TlsSide,
    /// The local (LMS) interface: ports 16992/16993 over LME and through LMS.
    pub local: TlsSide,
    /// InstanceID of the `AMT_PublicKeyCertificate` the TLS servers present.
    pub certificate: String,
}

/// One `AMT_TLSSettingData` instance as committed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsSide {
    pub enabled: bool,
    pub accept_non_secure: bool,
    pub mutual: bool,
}

impl DeviceProfile {
    pub fn version(&self, key: &str) -> Option<&str> {
        self.code_versions
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn amt_version(&self) -> &str {
        self.version("AMT").unwrap_or("0.0.0")
    }

    /// (major, minor, hotfix, build) of the AMT version.
    pub fn version_parts(&self) -> (u16, u16, u16, u16) {
        let mut it = self
            .amt_version()
            .split('.')
            .map(|x| x.parse::<u16>().unwrap_or(0));
        let build = self
            .version("Build Number")
            .and_then(|b| b.parse().ok())
            .unwrap_or(0);
        (
            it.next().unwrap_or(0),
            it.next().unwrap_or(0),
            it.next().unwrap_or(0),
            build,
        )
    }

    pub fn client(&self, name: &str) -> Option<&ClientSpec> {
        self.clients
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The AMTHI code-version `Sku` (rpc-go's features bits: 0x08 AMT Pro, 0x10 Intel Standard
    /// Manageability).
    pub fn sku(&self) -> u32 {
        self.version("Sku")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// MKHI FWCAPS rule 0x1D, the platform type LMS reads before it starts any AMT service.
    pub fn mkhi_platform_type(&self) -> u32 {
        self.platform_type
            .unwrap_or_else(|| platform_type(self.sku(), false))
    }

    /// MKHI FWCAPS feature bitmaps: rule 0 (capable) with `enabled_only` false; rules 0x20
    /// (enabled) and 0x27 (available) with it true, where AMT disabled in MEBx clears the AMT bit.
    /// Layout: LMS `MEFWCAPS_SKU_MKHI` (`intel/lms` `MEIClient/MKHIClient/Include/GetFWCapsCommand.h`):
    /// bit 0 full manageability, 1 standard manageability, 2 AMT, 18 KVM, 21 TLS. Which further
    /// bits real firmware sets is UNCONFIRMED; these are the ones LMS reads.
    pub fn mkhi_features(&self, enabled_only: bool) -> u32 {
        let sku = self.sku();
        let mut bits = if sku & SKU_AMT_PRO != 0 {
            FEAT_MNG_FULL | FEAT_AMT | FEAT_KVM | FEAT_TLS
        } else if sku & SKU_ISM != 0 {
            FEAT_MNG_STD | FEAT_AMT | FEAT_TLS
        } else {
            0
        };
        if enabled_only && !self.amt_enabled {
            bits &= !FEAT_AMT;
        }
        bits
    }

    pub fn watchdog_flags(&self) -> u8 {
        let mut f = 0u8;
        if self.transition_allowed {
            f |= 0x01;
        }
        if self.amt_enabled {
            f |= 0x02;
        }
        if self.tls_enforced {
            f |= 0x40;
        }
        if self.new_interface {
            f |= 0x80;
        }
        f
    }
}

const SKU_AMT_PRO: u32 = 0x08;
const SKU_ISM: u32 = 0x10;
const FEAT_MNG_FULL: u32 = 1 << 0;
const FEAT_MNG_STD: u32 = 1 << 1;
const FEAT_AMT: u32 = 1 << 2;
const FEAT_KVM: u32 = 1 << 18;
const FEAT_TLS: u32 = 1 << 21;

/// MKHI platform type image types and brands (LMS `GetPlatformTypeCommand.h`).
pub const IMAGE_TYPE_CONSUMER: u32 = 3;
pub const IMAGE_TYPE_CORPORATE: u32 = 4;
pub const BRAND_NONE: u32 = 0;
pub const BRAND_AMT: u32 = 1;
pub const BRAND_STANDARD_MANAGEABILITY: u32 = 2;

/// The FWCAPS rule 0x1D value for a firmware with this AMTHI `Sku`. Layout (LMS
/// `MKHI_PLATFORM_TYPE`, `intel/lms` `MEIClient/MKHIClient/Include/GetPlatformTypeCommand.h`):
/// bit 0 mobile, 1 desktop, 2 server, 3 workstation, 7 production-signed, bits 8–11 image type
/// (4 full/corporate, 3 small/consumer), bits 12–15 brand (1 AMT, 2 Standard Manageability, 0 none),
/// then CPU type, chipset, CPU brand class and PCH fuses, left 0 here (UNCONFIRMED values). LMS
/// starts its port-forwarding service only for image type 4 and, for its manageability services,
/// brand 1–3 with AMT enabled (`UNS/Configurator/Configurator.cpp`, `ScanConfiguration`).
pub fn platform_type(sku: u32, mobile: bool) -> u32 {
    let (image, brand) = if sku & SKU_AMT_PRO != 0 {
        (IMAGE_TYPE_CORPORATE, BRAND_AMT)
    } else if sku & SKU_ISM != 0 {
        (IMAGE_TYPE_CORPORATE, BRAND_STANDARD_MANAGEABILITY)
    } else {
        (IMAGE_TYPE_CONSUMER, BRAND_NONE)
    };
    let form = if mobile { 1 << 0 } else { 1 << 1 };
    let production_signed = 1 << 7;
    form | production_signed | (image << 8) | (brand << 12)
}

fn h(name: &str, sha256: &str) -> HashEntry {
    HashEntry {
        name: name.into(),
        algorithm: "SHA256".into(),
        hash: sha256.into(),
        is_default: true,
        is_active: true,
    }
}

/// The AMT 11.x factory list, in the order an AMT 11.8.50 device returns it (provisioning.md §4.2).
fn hashes_amt11() -> Vec<HashEntry> {
    vec![
        h(
            "VeriSign Class 3 Primary CA-G1",
            "e7685634efacf69ace939a6b255b7b4fabef42935b50a265acb5cb6027e44e70",
        ),
        h(
            "VeriSign Class 3 Primary CA-G3",
            "eb04cf5eb1f39afa762f2bb120f296cba520c1b97db1589565b81cb9a17b7244",
        ),
        h(
            "Go Daddy Class 2 CA",
            "c3846bf24b9e93ca64274c0ec67c1ecc5e024ffcacd2d74019350e81fe546ae4",
        ),
        h(
            "Comodo AAA CA",
            "d7a7a0fb5d7e2731d771e9484ebcdef71d5f0c3e0a2948782bc83ee0ea699ef4",
        ),
        h(
            "Starfield Class 2 CA",
            "1465fa205397b876faa6f0a9958e5590e40fcc7faa4fb7c2c8677521fb5fb658",
        ),
        h(
            "VeriSign Class 3 Primary CA-G2",
            "83ce3c1229688a593d485f81973c0f9195431eda37cc5e36430e79c7a888638b",
        ),
        h(
            "VeriSign Class 3 Primary CA-G1.5",
            "a4b6b3996fc2f306b3fd8681bd63413d8c5009cc4fa329c2ccf0e2fa1b140305",
        ),
        h(
            "VeriSign Class 3 Primary CA-G5",
            "9acfab7e43c8d880d06b262a94deeee4b4659989c3d0caf19baf6405e41ab7df",
        ),
        h(
            "GTE CyberTrust Global Root",
            "a53125188d2110aa964b02c7b7c6da3203170894e5fb71fffb6667d5e6810a36",
        ),
        h(
            "Baltimore CyberTrust Root",
            "16af57a9f676b0ab126095aa5ebadef22ab31119d644ac95cd4b93dbf3f26aeb",
        ),
        h(
            "Cybertrust Global Root",
            "960adf0063e96356750c2965dd0a0867da0b9cbd6e77714aeafb2349ab393da3",
        ),
        h(
            "Verizon Global Root",
            "68ad50909b04363c605ef13581a939ff2c96372e3f12325b0a6861e1d59f6603",
        ),
        h(
            "Entrust.net CA (2048)",
            "6dc47172e01cbcb0bf62580d895fe2b8ac9ad4f873801e0c10b9c837d21eb177",
        ),
        h(
            "Entrust Root CA",
            "73c176434f1bc6d5adf45b0e76e727287c8de57616c1e6e6141a2b2cbc7d8e4c",
        ),
        h(
            "VeriSign Universal Root CA",
            "2399561127a57125de8cefea610ddf2fa078b5c8067f4e828290bfb860e84b3c",
        ),
        h(
            "Go Daddy Root CA - G2",
            "45140b3247eb9cc8c5b4f0d7b53091f73292089e6e5a63e2749dd3aca9198eda",
        ),
        h(
            "Entrust Root CA - G2",
            "43df5774b03e7fef5fe40d931a7bedf1bb2e6b42738c4e6d3841103d3aa7f339",
        ),
        h(
            "Starfield Root CA - G2",
            "2ce1cb0bf9d2f9e102993fbe215152c3b2dd0cabde1c68e5319b839154dbb7f5",
        ),
        h(
            "AffirmTrust Premium",
            "70a73f7f376b60074248904534b11482d5bf0e698ecc498df52577ebf2e93b9a",
        ),
    ]
}

/// From 11.8.65 / 12.0.32 on, "VeriSign Class 3 Primary CA-G1" is gone (provisioning.md §4.1).
fn hashes_amt12() -> Vec<HashEntry> {
    hashes_amt11().into_iter().skip(1).collect()
}

/// AMT 15/16-era devices add the DigiCert and GlobalSign roots seen in the field (§4.3).
fn hashes_amt15() -> Vec<HashEntry> {
    let mut v = hashes_amt12();
    v.extend([
        h(
            "DigiCert Global Root G2",
            "cb3ccbb76031e5e0138f8dd39a23f9de47ffc35e43c1144cea27d46a5ab1cb5f",
        ),
        h(
            "DigiCert Global Root G3",
            "31ad6648f8104138c738f39ea4320133393e3a18cc02296ef97c2ac9ef6731d0",
        ),
        h(
            "DigiCert Trusted Root G4",
            "552f7bdcf1a7af9e6ce672017f4f12abf77240c78e761ac203d1d9d20ac89988",
        ),
        h(
            "GlobalSign NP RSA CA 2018",
            "67540a47aa5b9f34570a99723cfefa96a96ee3f0d9b8bf4def9440b8065d665d",
        ),
        h(
            "GlobalSign NP ECC CA 2018",
            "7224395222cd588c4f2683716922addb41e39b581ac34fa87b39efa896fbb39e",
        ),
        h(
            "GlobalSign Root CA - R3",
            "cbb522d7b7f127ad6a0113865bdf1cd4102e7d0759af635a7cf4720dc963c53b",
        ),
        h(
            "GlobalSign ECC Root CA - R5",
            "179fbc148a3dd00fd24ea13458cc43bfa7f59c8182d783a513f6ebec100c8924",
        ),
    ]);
    v
}

fn client(name: &str, mtu: u32, version: u8, max: u32) -> ClientSpec {
    ClientSpec {
        name: name.into(),
        max_msg_length: mtu,
        protocol_version: version,
        max_connections: max,
    }
}

fn vpro_clients() -> Vec<ClientSpec> {
    // MTUs are platform-specific and unconfirmed (transport.md §4.5); 4160 is a realistic value.
    vec![
        client("amthi", 4160, 1, 1),
        client("lme", 4160, 4, 1),
        client("watchdog", 4160, 1, 1),
        client("mkhi", 2048, 1, 1),
    ]
}

/// The UPID client, which ME 16.1+ profiles enumerate. UNCONFIRMED: the reference says neither from
/// which CSME version real firmware offers it nor its MTU; rpc-go v3 simply tries it on every
/// platform. The older profiles (11.8, 12, 15) leave it out, so the agent's "absent" path is
/// exercised too.
fn upid_client() -> ClientSpec {
    client("upid", 4160, 1, 1)
}

fn versions(amt: &str, build: &str, sku: &str) -> Vec<(String, String)> {
    // Key set as firmware reports it to MeshCommander/meshcmd; only AMT, Build Number and Sku are
    // read by rpc-go (the full list is UNCONFIRMED in transport.md §4.3).
    [
        ("Flash", amt),
        ("Netstack", amt),
        ("AMTApps", amt),
        ("AMT", amt),
        ("Sku", sku),
        ("VendorID", "8086"),
        ("Build Number", build),
        ("Recovery Version", amt),
        ("Recovery Build Num", build),
        ("Legacy Mode", "False"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

struct Base<'a> {
    name: &'a str,
    description: &'a str,
    amt: &'a str,
    build: &'a str,
    sku: &'a str,
    uuid: &'a str,
    mac: &'a str,
    hashes: Vec<HashEntry>,
    tls_enforced: bool,
    new_interface: bool,
    /// A laptop (MKHI platform type: mobile) rather than a desktop.
    mobile: bool,
}

fn make(b: Base<'_>) -> DeviceProfile {
    let mut clients = vpro_clients();
    // ME 16.1+ (the watchdog's new interface) also enumerates UPID; see `upid_client`.
    if b.new_interface {
        clients.push(upid_client());
    }
    DeviceProfile {
        name: b.name.into(),
        description: b.description.into(),
        bios_version: format!("SIM.{}.BIOS", b.amt.replace('.', "")),
        code_versions: versions(b.amt, b.build, b.sku),
        uuid: b.uuid.into(),
        control_mode: 0,
        provisioning_state: 0,
        pki_dns_suffix: String::new(),
        lsa_username: "$$OsAdmin".into(),
        lsa_password: String::new(),
        wired: Lan {
            enabled: true,
            ipv4: "10.0.0.42".into(),
            dhcp_enabled: true,
            dhcp_mode: 2,
            link_up: true,
            mac: b.mac.into(),
        },
        wireless: Lan {
            enabled: false,
            ipv4: "0.0.0.0".into(),
            dhcp_enabled: true,
            dhcp_mode: 2,
            link_up: false,
            mac: "00:00:00:00:00:00".into(),
        },
        ras: Ras {
            network_status: 0,
            remote_status: 0,
            remote_trigger: 0,
            mps_hostname: String::new(),
        },
        cert_hashes: b.hashes,
        amt_enabled: true,
        transition_allowed: true,
        tls_enforced: b.tls_enforced,
        new_interface: b.new_interface,
        watchdog_reply_len: 1,
        clients,
        not_ready_ms: 0,
        host_fqdn: String::new(),
        dhcp_dns_suffix: "corp.example.com".into(),
        digest_realm: String::new(),
        admin_ha1: String::new(),
        mebx_password_set: false,
        hbased_server_cert_hash: String::new(),
        hbased_server_hash_algorithm: 0,
        upid_oem_platform_id_type: 0,
        upid_oem_platform_id: String::new(),
        platform_type: Some(platform_type(b.sku.parse().unwrap_or(0), b.mobile)),
        clock_offset_secs: 0,
        instances: Default::default(),
        tls_in_effect: None,
    }
}

/// Names of the ready-made profiles, the default first.
pub const BUILTIN: &[&str] = &[
    "amt16.1", "amt11.8", "amt12", "amt15", "amt18", "amt19", "ism", "consumer",
];
pub const DEFAULT_PROFILE: &str = "amt16.1";

/// A built-in profile by name, or else a profile file (JSON, as `amt-sim profiles NAME` writes).
pub fn load(spec: &str) -> Result<DeviceProfile, String> {
    if let Some(p) = builtin(spec) {
        return Ok(p);
    }
    let text = std::fs::read_to_string(spec).map_err(|e| {
        format!(
            "'{spec}' is neither a built-in profile ({}) nor a readable file: {e}",
            BUILTIN.join(", ")
        )
    })?;
    serde_json::from_str(&text).map_err(|e| format!("profile {spec}: {e}"))
}

pub fn builtin(name: &str) -> Option<DeviceProfile> {
    let p = match name {
        "amt11.8" => make(Base {
            name: "amt11.8",
            description: "vPro desktop, AMT 11.8 (Skylake/Kaby Lake era), pre-provisioned",
            amt: "11.8.50",
            build: "3425",
            sku: "16392",
            uuid: "8f3c1a20-5b7d-11e6-9c2a-54ee75a1b2c3",
            mac: "54:ee:75:a1:b2:c3",
            hashes: hashes_amt11(),
            tls_enforced: false,
            new_interface: false,
            mobile: false,
        }),
        "amt12" => make(Base {
            name: "amt12",
            description: "vPro desktop, AMT 12.0 (Coffee Lake era), pre-provisioned",
            amt: "12.0.45",
            build: "1509",
            sku: "16392",
            uuid: "4c4c4544-0031-3410-8052-b2c04f4e3132",
            mac: "d8:9e:f3:10:22:33",
            hashes: hashes_amt12(),
            tls_enforced: false,
            new_interface: false,
            mobile: false,
        }),
        "amt15" => make(Base {
            name: "amt15",
            description: "vPro laptop, AMT 15.0 (Tiger Lake era), pre-provisioned",
            amt: "15.0.23",
            build: "1706",
            sku: "16392",
            uuid: "03a1b2c4-d5e6-4f70-8192-a3b4c5d6e7f8",
            mac: "a0:36:9f:5e:44:01",
            hashes: hashes_amt15(),
            tls_enforced: false,
            new_interface: false,
            mobile: true,
        }),
        "amt16.1" => make(Base {
            name: "amt16.1",
            description: "vPro desktop, AMT 16.1 (Alder Lake era), pre-provisioned",
            amt: "16.1.27",
            build: "2225",
            sku: "16392",
            uuid: "4c4c4544-0042-3510-8047-b4c04f564433",
            mac: "a4:bb:6d:12:34:56",
            hashes: hashes_amt15(),
            tls_enforced: false,
            new_interface: true,
            mobile: false,
        }),
        "amt18" => make(Base {
            name: "amt18",
            description: "vPro laptop, AMT 18.0 (Meteor Lake era), pre-provisioned",
            amt: "18.0.5",
            build: "2073",
            sku: "16392",
            uuid: "9b2e7f10-3c4d-4e5f-a607-1829304a5b6c",
            mac: "6c:24:08:aa:bb:cc",
            hashes: hashes_amt15(),
            tls_enforced: false,
            new_interface: true,
            mobile: true,
        }),
        "amt19" => make(Base {
            name: "amt19",
            description: "vPro laptop, AMT 19.0 (Lunar Lake era): TLS enforced on local ports, pre-provisioned",
            amt: "19.0.5",
            build: "2345",
            sku: "16392",
            uuid: "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f",
            mac: "3c:18:a0:0b:1c:2d",
            hashes: hashes_amt15(),
            tls_enforced: true,
            new_interface: true,
            mobile: true,
        }),
        "ism" => make(Base {
            name: "ism",
            description: "Intel Standard Manageability (not vPro), AMT 16.1, pre-provisioned",
            amt: "16.1.27",
            build: "2225",
            sku: "16400",
            uuid: "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9",
            mac: "10:7b:44:9a:8b:7c",
            hashes: hashes_amt15(),
            tls_enforced: false,
            new_interface: true,
            mobile: false,
        }),
        "consumer" => {
            let mut p = make(Base {
                name: "consumer",
                description: "consumer SKU: an ME with no AMT (AMTHI, LME and watchdog absent)",
                amt: "16.1.27",
                build: "2225",
                sku: "0",
                uuid: "00112233-4455-4677-8899-aabbccddeeff",
                mac: "00:00:00:00:00:00",
                hashes: Vec::new(),
                tls_enforced: false,
                new_interface: true,
                mobile: false,
            });
            p.clients.retain(|c| c.name == "mkhi");
            p.amt_enabled = false;
            p
        }
        _ => return None,
    };
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_types_and_feature_bitmaps_have_the_documented_values() {
        let v = |name: &str| {
            let p = builtin(name).unwrap();
            (p.mkhi_platform_type(), p.mkhi_features(false))
        };
        // docs/simulator.md, "MKHI: what LMS decides from".
        assert_eq!(v("amt16.1"), (0x1482, 0x24_0005));
        assert_eq!(v("amt19"), (0x1481, 0x24_0005));
        assert_eq!(v("ism"), (0x2482, 0x20_0006));
        assert_eq!(v("consumer"), (0x0382, 0));
    }

    #[test]
    fn every_builtin_profile_builds_and_round_trips_as_json() {
        for name in BUILTIN {
            let p = builtin(name).unwrap();
            assert_eq!(&p.name, name);
            let j = serde_json::to_string(&p).unwrap();
            let back: DeviceProfile = serde_json::from_str(&j).unwrap();
            assert_eq!(back, p);
            for e in &p.cert_hashes {
                assert_eq!(e.hash.len(), 64, "{}", e.name);
            }
        }
    }

    #[test]
    fn me_16_1_and_later_enumerate_upid_and_older_profiles_do_not() {
        for (name, upid) in [
            ("amt11.8", false),
            ("amt12", false),
            ("amt15", false),
            ("amt16.1", true),
            ("amt18", true),
            ("amt19", true),
            ("ism", true),
            ("consumer", false),
        ] {
            assert_eq!(
                builtin(name).unwrap().client("upid").is_some(),
                upid,
                "{name}"
            );
        }
    }

    #[test]
    fn the_amt11_list_has_19_factory_roots_and_12_drops_verisign_g1() {
        assert_eq!(builtin("amt11.8").unwrap().cert_hashes.len(), 19);
        let p12 = builtin("amt12").unwrap();
        assert_eq!(p12.cert_hashes.len(), 18);
        assert!(!p12
            .cert_hashes
            .iter()
            .any(|e| e.name == "VeriSign Class 3 Primary CA-G1"));
        // more than 23 entries: clients must not stop at 23 (rpc-go#42)
        assert!(builtin("amt16.1").unwrap().cert_hashes.len() > 23);
    }
}
