//! The simulated AMT web server behind ports 16992/16993: HTTP with AMT's framing, Digest
//! authentication as the firmware does it, and a stateful model of the WS-MAN classes that RPS's
//! flows and local activation use.
//!
//! Facts: transport.md §6–7 (HTTP, Digest, envelopes), rps-protocol.md §3 and §9 (what a real RPS
//! needs from AMT), provisioning.md §1–3 (ReturnValues, certificate rules, signing).

use std::collections::HashMap;
use std::time::Instant;

use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::profile::DeviceProfile;
use super::FirmwareCore;
use crate::wsman::digest::{AuthOutcome, DigestServer, NonceBook};
use crate::wsman::envelope::{self as env, action, ns, Element, Envelope, FaultSpec, Param};
use crate::wsman::http::{self, ChunkLayout, Request};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The LSA user of host-based setup.
pub const LSA_USER: &str = "$$OsAdmin";
pub const ADMIN_USER: &str = "admin";

/// Transient state of the web server (not persisted: a restart of the firmware forgets it).
pub struct WebState {
    digest: Option<DigestServer>,
    rng: StdRng,
    message_counter: u64,
    contexts: HashMap<String, (String, Vec<String>)>,
    context_counter: u32,
    pub(crate) config_nonce: [u8; 20],
    pub(crate) chain: Vec<Vec<u8>>,
    pub(crate) chain_complete: bool,
    /// Requests handled, for fault injection.
    pub requests: u64,
    /// The connection the request being handled came on (set by [`handle_on`]; after the request it
    /// still describes the latest one, which tests read). The simulated AMT 19+ ACM flow (mutual TLS with the provisioning certificate,
    /// rpc-go.md §5.4) reads `conn.client_chain` here to check it against the hash recorded by
    /// START_CONFIGURATION_HBASED.
    pub conn: ConnInfo,
}

/// What the web server knows about the connection a request arrived on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnInfo {
    /// The request came over TLS (AMT's port 16993).
    pub tls: bool,
    /// The client's certificate chain from mutual TLS, leaf first (DER); empty when the client sent
    /// none or the connection is plain HTTP.
    pub client_chain: Vec<Vec<u8>>,
}

impl Default for WebState {
    fn default() -> Self {
        WebState {
            digest: None,
            rng: StdRng::from_entropy(),
            message_counter: 0x2E4,
            contexts: HashMap::new(),
            context_counter: 0x14,
            config_nonce: [0; 20],
            chain: Vec::new(),
            chain_complete: false,
            requests: 0,
            conn: ConnInfo::default(),
        }
    }
}

/// A CIM instance: properties in order (a repeated name is an array).
pub type Instance = Vec<(String, String)>;

fn prop<'a>(i: &'a Instance, name: &str) -> Option<&'a str> {
    i.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn set_prop(i: &mut Instance, name: &str, value: &str) {
    match i.iter_mut().find(|(k, _)| k == name) {
        Some((_, v)) => *v = value.to_string(),
        None => i.push((name.to_string(), value.to_string())),
    }
}

fn inst(pairs: &[(&str, &str)]) -> Instance {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// AMT's FQDN as configured in `AMT_GeneralSettings`: `HostName.DomainName`, the host name alone
/// without a domain, empty when no host name is set (what the firmware sends in `tcpip-forward`;
/// the composition and the empty case are UNCONFIRMED, docs/simulator.md).
pub fn amt_fqdn(p: &DeviceProfile) -> String {
    let Some(gs) = p
        .instances
        .get("AMT_GeneralSettings")
        .and_then(|list| list.first())
    else {
        return String::new();
    };
    match (prop(gs, "HostName"), prop(gs, "DomainName")) {
        (Some(h), Some(d)) if !h.is_empty() && !d.is_empty() => format!("{h}.{d}"),
        (Some(h), _) => h.to_string(),
        _ => String::new(),
    }
}

/// A fresh `Digest:` + 32 upper-case hex realm.
pub fn new_realm(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    format!(
        "Digest:{}",
        crate::amthi::codec::hex(&b).to_ascii_uppercase()
    )
}

fn dashed_mac(mac: &str) -> String {
    mac.replace(':', "-").to_ascii_uppercase()
}

/// The classes a factory-fresh AMT answers for, with their default instances.
pub fn seed_instances(p: &mut DeviceProfile) {
    let realm = p.digest_realm.clone();
    let ins = &mut p.instances;
    ins.insert(
        "AMT_GeneralSettings".into(),
        vec![inst(&[
            ("AMTNetworkEnabled", "1"),
            ("DDNSPeriodicUpdateInterval", "1440"),
            ("DDNSTTL", "900"),
            ("DDNSUpdateByDHCPServerEnabled", "true"),
            ("DDNSUpdateEnabled", "false"),
            ("DHCPSyncRequiresHostname", "1"),
            ("DHCPv6ConfigurationTimeout", "0"),
            ("DigestRealm", &realm),
            ("DomainName", ""),
            ("ElementName", "Intel(r) AMT: General Settings"),
            ("HostName", ""),
            ("HostOSFQDN", ""),
            ("IdleWakeTimeout", "65535"),
            ("InstanceID", "Intel(r) AMT: General Settings"),
            ("NetworkInterfaceEnabled", "true"),
            ("PingResponseEnabled", "true"),
            ("PowerSource", "0"),
            ("PreferredAddressFamily", "0"),
            ("PresenceNotificationInterval", "0"),
            ("PrivacyLevel", "0"),
            ("RmcpPingResponseEnabled", "true"),
            ("SharedFQDN", "true"),
            ("ThunderboltDockEnabled", "0"),
            ("WsmanOnlyMode", "false"),
        ])],
    );
    let port = |n: u32, l: &super::profile::Lan| {
        let mut i = inst(&[
            ("DHCPEnabled", if l.dhcp_enabled { "true" } else { "false" }),
            ("DefaultGateway", "0.0.0.0"),
            ("ElementName", "Intel(r) AMT Ethernet Port Settings"),
            ("IPAddress", &l.ipv4),
            (
                "InstanceID",
                &format!("Intel(r) AMT Ethernet Port Settings {n}"),
            ),
            ("IpSyncEnabled", "true"),
            ("LinkIsUp", if l.link_up { "true" } else { "false" }),
            ("LinkPolicy", "1"),
            ("LinkPolicy", "14"),
            ("LinkPolicy", "16"),
            ("MACAddress", &dashed_mac(&l.mac)),
            ("PhysicalConnectionType", if n == 0 { "0" } else { "3" }),
            ("PrimaryDNS", "0.0.0.0"),
            ("SecondaryDNS", "0.0.0.0"),
            ("SharedDynamicIP", "true"),
            ("SharedMAC", "true"),
            ("SharedStaticIp", "false"),
            ("SubnetMask", "255.255.255.0"),
        ]);
        if n == 1 {
            i.retain(|(k, _)| k != "IpSyncEnabled" && k != "SharedStaticIp");
        }
        i
    };
    ins.insert(
        "AMT_EthernetPortSettings".into(),
        vec![port(0, &p.wired), port(1, &p.wireless)],
    );
    ins.insert(
        "AMT_TLSSettingData".into(),
        vec![
            inst(&[
                ("AcceptNonSecureConnections", "true"),
                ("ElementName", "Intel(r) AMT 802.3 TLS Settings"),
                ("Enabled", "false"),
                ("InstanceID", "Intel(r) AMT 802.3 TLS Settings"),
                ("MutualAuthentication", "false"),
            ]),
            inst(&[
                (
                    "AcceptNonSecureConnections",
                    if p.tls_enforced { "false" } else { "true" },
                ),
                ("ElementName", "Intel(r) AMT LMS TLS Settings"),
                ("Enabled", if p.tls_enforced { "true" } else { "false" }),
                ("InstanceID", "Intel(r) AMT LMS TLS Settings"),
                ("MutualAuthentication", "false"),
            ]),
        ],
    );
    ins.insert(
        "AMT_RedirectionService".into(),
        vec![inst(&[
            ("CreationClassName", "AMT_RedirectionService"),
            ("ElementName", "Intel(r) AMT Redirection Service"),
            ("EnabledState", "32768"),
            ("ListenerEnabled", "false"),
            ("Name", "Intel(r) AMT Redirection Service"),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "Intel(r) AMT"),
        ])],
    );
    ins.insert(
        "CIM_KVMRedirectionSAP".into(),
        vec![inst(&[
            ("CreationClassName", "CIM_KVMRedirectionSAP"),
            ("ElementName", "KVM Redirection Service Access Point"),
            ("EnabledState", "3"),
            // Firmware lists the protocol (4, as in go-wsman-messages' cim/kvm/get.xml fixture).
            ("KVMProtocol", "4"),
            ("Name", "KVM Redirection Service Access Point"),
            ("RequestedState", "3"),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "ManagedSystem"),
        ])],
    );
    ins.insert(
        "IPS_OptInService".into(),
        vec![inst(&[
            ("CanModifyOptInPolicy", "1"),
            ("CreationClassName", "IPS_OptInService"),
            ("ElementName", "Intel(r) AMT OptIn Service"),
            ("Name", "Intel(r) AMT OptIn Service"),
            ("OptInCodeTimeout", "120"),
            ("OptInDisplayTimeout", "300"),
            ("OptInRequired", "4294967295"),
            ("OptInState", "0"),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "Intel(r) AMT"),
        ])],
    );
    ins.insert(
        "IPS_IEEE8021xSettings".into(),
        // AvailableInS0 and PxeTimeout as in go-wsman-messages' ips/ieee8021x/settings/get.xml
        // fixture; RPS Puts the instance it read back with Enabled=3 (rps-protocol.md §5.1 step 4).
        vec![inst(&[
            ("AvailableInS0", "false"),
            ("ElementName", "Intel(r) AMT: 8021X Settings"),
            ("Enabled", "3"),
            ("InstanceID", "Intel(r) AMT: 8021X Settings"),
            ("PxeTimeout", "120"),
        ])],
    );
    ins.insert(
        "AMT_EnvironmentDetectionSettingData".into(),
        // DetectionAlgorithm as in go-wsman-messages' amt/environmentdetection/get.xml fixture
        // (0 = local domains); no DetectionStrings until CIRA configures them.
        vec![inst(&[
            ("DetectionAlgorithm", "0"),
            ("ElementName", "Intel(r) AMT Environment Detection Settings"),
            ("InstanceID", "Intel(r) AMT Environment Detection Settings"),
        ])],
    );
    for empty in [
        "CIM_WiFiEndpointSettings",
        "IPS_HTTPProxyAccessPoint",
        "AMT_ManagementPresenceRemoteSAP",
        "AMT_PublicKeyCertificate",
        "AMT_PublicPrivateKeyPair",
        "AMT_TLSCredentialContext",
        "AMT_RemoteAccessPolicyRule",
    ] {
        ins.insert(empty.into(), Vec::new());
    }
}

/// Computed classes: their instance reflects the firmware's state at each read.
/// `read`: the instance is being read (Get/Enumerate): only a read draws a new ConfigurationNonce,
/// so AddNextCertInChain and AdminSetup keep the nonce the caller read and signed.
fn computed(fw: &mut FirmwareCore, class: &str, read: bool) -> Option<Instance> {
    if class == "IPS_HostBasedSetupService" && read {
        let mut n = [0u8; 20];
        fw.web.rng.fill_bytes(&mut n);
        fw.web.config_nonce = n;
    }
    let p = &fw.profile;
    let n = fw.web.config_nonce;
    match class {
        "IPS_HostBasedSetupService" => {
            let mut i = Vec::new();
            // Once in ACM no further mode is allowed; CCM may still upgrade; pre-provisioning both.
            match p.control_mode {
                0 => {
                    i.push(("AllowedControlModes".into(), "2".into()));
                    i.push(("AllowedControlModes".into(), "1".into()));
                }
                1 => i.push(("AllowedControlModes".into(), "2".into())),
                _ => {}
            }
            let status = if fw.web.chain_complete {
                "2"
            } else if fw.web.chain.is_empty() {
                "0"
            } else {
                "1"
            };
            i.extend(inst(&[
                ("CertChainStatus", status),
                ("ConfigurationNonce", &B64.encode(n)),
                ("CreationClassName", "IPS_HostBasedSetupService"),
                ("CurrentControlMode", &p.control_mode.to_string()),
                ("ElementName", "Intel(r) AMT Host Based Setup Service"),
                ("Name", "Intel(r) AMT Host Based Setup Service"),
                ("SystemCreationClassName", "CIM_ComputerSystem"),
                ("SystemName", "Intel(r) AMT"),
            ]));
            Some(i)
        }
        "AMT_SetupAndConfigurationService" => Some(inst(&[
            ("CreationClassName", "AMT_SetupAndConfigurationService"),
            ("DhcpDNSSuffix", &p.dhcp_dns_suffix),
            (
                "ElementName",
                "Intel(r) AMT Setup and Configuration Service",
            ),
            ("EnabledState", "5"),
            ("Name", "Intel(r) AMT Setup and Configuration Service"),
            ("PasswordModel", "1"),
            (
                "ProvisioningMode",
                match p.control_mode {
                    2 => "1",
                    1 => "4",
                    _ => "1",
                },
            ),
            (
                "ProvisioningServerOTP",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
            ("ProvisioningState", &p.provisioning_state.to_string()),
            ("RequestedState", "12"),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "Intel(r) AMT"),
            ("TrustedDNSSuffix", &p.pki_dns_suffix),
            ("ZeroTouchConfigurationEnabled", "true"),
        ])),
        "AMT_TimeSynchronizationService" | "AMT_AuthorizationService" => Some(inst(&[
            ("CreationClassName", class),
            ("ElementName", &format!("Intel(r) AMT {class}")),
            ("Name", &format!("Intel(r) AMT {class}")),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "Intel(r) AMT"),
        ])),
        _ => None,
    }
}

/// What the web server answers, and whether the connection ends after it.
pub struct WebReply {
    pub bytes: Vec<u8>,
    pub close: bool,
    /// Send the answer this late (`wsman-latency` fault).
    pub delay: Option<std::time::Duration>,
    /// The connection drops after `bytes` (which may be a partial answer, or none).
    pub drop_after: bool,
}

impl WebReply {
    fn new(bytes: Vec<u8>, close: bool) -> WebReply {
        WebReply {
            bytes,
            close,
            delay: None,
            drop_after: false,
        }
    }
}

fn server_header(p: &DeviceProfile) -> String {
    let (ma, mi, hf, b) = p.version_parts();
    http::amt_server_header(&format!("{ma}.{mi}.{hf}.{b}"))
}

const LOGON_FAILED_HTML: &str = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\" >\n<html><head><link rel=stylesheet href=/styles.css>\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\n<title>Intel&reg; Active Management Technology</title></head>\n<body>\n<table class=header>\n<tr><td valign=top nowrap>\n<p class=top1>Intel<font class=r><sup>&reg;</sup></font> Active Management Technology\n<td valign=\"top\"><img src=\"logo.gif\" align=\"right\" alt=\"Intel\">\n</table>\n<br />\n<h2 class=warn>Log on failed. Incorrect user name or password, or user account temporarily locked.</h2>\n\n<p>\n<form METHOD=\"GET\" action=\"index.htm\"><h2><input type=submit value=\"Try again\">\n</h2></form>\n<p>\n\n</body>\n</html>\n";

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Handles one complete HTTP request that came on a plain connection (port 16992, LMS-like TCP).
pub fn handle(fw: &mut FirmwareCore, req: &Request, now: Instant) -> WebReply {
    handle_on(fw, req, &ConnInfo::default(), now)
}

/// Handles one complete HTTP request that came on the connection `conn` describes (TLS, client
/// certificate); `fw.web.conn` holds it from here on.
pub fn handle_on(fw: &mut FirmwareCore, req: &Request, conn: &ConnInfo, now: Instant) -> WebReply {
    fw.web.conn = conn.clone();
    handle_request(fw, req, now)
}

fn handle_request(fw: &mut FirmwareCore, req: &Request, now: Instant) -> WebReply {
    fw.web.requests += 1;
    let server = server_header(&fw.profile);
    if fw.faults.drop_request(fw.web.requests) {
        tracing::debug!(
            request = fw.web.requests,
            "fault: dropping the request unanswered"
        );
        return WebReply {
            bytes: Vec::new(),
            close: true,
            delay: None,
            drop_after: true,
        };
    }
    if fw.profile.digest_realm.is_empty() {
        let r = new_realm(&mut fw.web.rng);
        fw.profile.digest_realm = r;
        fw.changed();
    }
    let realm = fw.profile.digest_realm.clone();
    if fw
        .web
        .digest
        .as_ref()
        .map(|d| d.realm != realm)
        .unwrap_or(true)
    {
        fw.web.digest = Some(DigestServer {
            realm: realm.clone(),
            book: NonceBook::new(None),
        });
    }
    if req.method != "POST" || !req.target.starts_with("/wsman") {
        return WebReply::new(
            http::encode_amt_400_html(&server, b"<html><body>Bad Request</body></html>"),
            true,
        );
    }
    let lsa_ha1 = (fw.profile.control_mode == 0).then(|| {
        crate::wsman::digest::md5_hex(&format!("{LSA_USER}:{realm}:{}", fw.profile.lsa_password))
    });
    let admin_ha1 = (!fw.profile.admin_ha1.is_empty()).then(|| fw.profile.admin_ha1.clone());
    let digest = fw.web.digest.as_mut().expect("set above");
    let outcome = digest.authenticate_ha1(
        req.header("Authorization"),
        "POST",
        |user| match user {
            LSA_USER => lsa_ha1.clone(),
            ADMIN_USER => admin_ha1.clone(),
            _ => None,
        },
        now,
    );
    let user = match outcome {
        AuthOutcome::Accepted { username } => username,
        AuthOutcome::Stale | AuthOutcome::Rejected(_) => {
            let stale = matches!(outcome, AuthOutcome::Stale);
            tracing::debug!(?outcome, "WS-MAN: 401");
            let nonce = digest.book.issue(now, &mut fw.web.rng);
            return WebReply::new(
                http::encode_amt_401(&realm, &nonce, stale, &server, LOGON_FAILED_HTML.as_bytes()),
                true,
            );
        }
    };
    if super::certs::hbased_open(fw) {
        // AMT 19+ secure host-based configuration: every request of the open configuration comes
        // over mutual TLS with the provisioning certificate START_CONFIGURATION_HBASED announced.
        // What firmware answers otherwise is unpublished; the simulator answers HTTP 403 and
        // closes the connection (UNCONFIRMED).
        let chain = if fw.web.conn.tls {
            fw.web.conn.client_chain.clone()
        } else {
            Vec::new()
        };
        if let Err(why) = super::certs::hbased_client_ok(fw, &chain) {
            tracing::debug!(reason = why, "WS-MAN during HBASED configuration: 403");
            return WebReply::new(html_error(403, &server, "Forbidden"), true);
        }
    }
    let date = http::http_date(now_unix());
    let delay = Some(fw.faults.wsman_latency()).filter(|d| !d.is_zero());
    let parsed = Envelope::parse(&req.body);
    if let Ok(e) = &parsed {
        let class = class_of(e.resource_uri().unwrap_or_default()).to_string();
        if fw.faults.http500(&class) {
            let mut r = WebReply::new(html_error(500, &server, "Internal Server Error"), true);
            r.delay = delay;
            return r;
        }
    }
    let method = parsed
        .as_ref()
        .ok()
        .and_then(|e| e.action())
        .and_then(|a| a.rsplit('/').next())
        .unwrap_or_default()
        .to_string();
    let (status, body) = match parsed {
        Ok(e) => match dispatch(fw, &e, &user) {
            Ok(xml) => (200, xml),
            Err(f) => (400, f),
        },
        Err(e) => {
            tracing::debug!(error = %e, "WS-MAN: unparsable envelope");
            let fault = FaultSpec {
                action: action::ADDRESSING_FAULT,
                code: "Sender",
                subcode: Some((ns::WSMAN, "SchemaValidationError")),
                reason: "The supplied SOAP violates the corresponding XML Schema definition.",
                detail: "",
            };
            (400, env::amt_fault_envelope("", next_id(fw), &fault))
        }
    };
    let close = status == 400 || req.wants_close();
    let layout = if status == 200 {
        let head = http::encode_amt_soap_response(
            status,
            &date,
            &server,
            b"",
            &ChunkLayout::Single,
            false,
        );
        let header_len = head
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(0, |i| i + 4);
        segment_layout(header_len, body.len())
    } else {
        // The captured fault is one chunk (amt-captures/400-fault-already-exists.http).
        ChunkLayout::Single
    };
    let mut bytes = http::encode_amt_soap_response(
        status,
        &date,
        &server,
        body.as_bytes(),
        &layout,
        status == 400,
    );
    let mut drop_after = false;
    if fw.faults.drop_after(&method) {
        // The firmware restarts its network stack after committing (user-pains.md, failure mode 6).
        bytes.truncate(bytes.len() / 2);
        drop_after = true;
    }
    WebReply {
        bytes,
        close,
        delay,
        drop_after,
    }
}

/// AMT's 200s are written in 770-byte pieces: the headers and the first chunk fill the first piece,
/// then each chunk is 0x2FA data bytes plus its 8 framing bytes (the AMT 15 GeneralSettings capture:
/// 218 header bytes + `0220` chunk = 770, then `02FA` chunks of 770, then the rest).
pub fn segment_layout(header_len: usize, body_len: usize) -> ChunkLayout {
    const PIECE: usize = 770;
    const FRAMING: usize = 8; // "XXXX\r\n" + "\r\n"
    let mut sizes = Vec::new();
    let mut left = body_len;
    let first = PIECE.saturating_sub(header_len + FRAMING);
    if first > 0 && left > 0 {
        let n = first.min(left);
        sizes.push(n);
        left -= n;
    }
    while left > 0 {
        let n = (PIECE - FRAMING).min(left);
        sizes.push(n);
        left -= n;
    }
    ChunkLayout::Exact(sizes)
}

/// A short HTML error page with `Connection: close`.
fn html_error(status: u16, server: &str, text: &str) -> Vec<u8> {
    http::encode_response(
        status,
        http::reason_phrase(status),
        &[
            http::Header::new("Server", server),
            http::Header::new("Content-Type", "text/html"),
            http::Header::new("Connection", "close"),
        ],
        format!("<html><body>{text}</body></html>").as_bytes(),
        &http::BodyEncoding::ContentLength,
    )
}

fn next_id(fw: &mut FirmwareCore) -> u64 {
    fw.web.message_counter += 1;
    fw.web.message_counter
}

fn class_of(uri: &str) -> &str {
    uri.rsplit('/').next().unwrap_or(uri)
}

fn selectors(e: &Envelope) -> Vec<(String, String)> {
    e.header()
        .and_then(|h| h.child("SelectorSet"))
        .map(|s| {
            s.children_named("Selector")
                .map(|x| {
                    (
                        x.attr("Name").unwrap_or_default().to_string(),
                        x.text().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn matches(i: &Instance, sel: &[(String, String)]) -> bool {
    sel.iter()
        .all(|(k, v)| prop(i, k).map(|x| x == v).unwrap_or(true))
}

fn params(i: &Instance) -> Vec<Param> {
    i.iter().map(|(k, v)| Param::text(k, v)).collect()
}

fn fault(fw: &mut FirmwareCore, relates: &str, subcode: (&str, &str), reason: &str) -> String {
    let id = next_id(fw);
    env::amt_fault_envelope(
        relates,
        id,
        &FaultSpec {
            action: if subcode.0 == ns::ADDRESSING {
                action::ADDRESSING_FAULT
            } else {
                action::WSMAN_FAULT
            },
            code: "Sender",
            subcode: Some(subcode),
            reason,
            detail: "",
        },
    )
}

fn unreachable_fault(fw: &mut FirmwareCore, relates: &str) -> String {
    fault(
        fw,
        relates,
        (ns::ADDRESSING, "DestinationUnreachable"),
        "No route can be determined to reach the destination role defined by the WS-Addressing To.",
    )
}

fn dispatch(fw: &mut FirmwareCore, e: &Envelope, user: &str) -> Result<String, String> {
    let relates = e.message_id().unwrap_or("0").to_string();
    let uri = e.resource_uri().unwrap_or_default().to_string();
    let class = class_of(&uri).to_string();
    let act = e.action().unwrap_or_default().to_string();
    let sel = selectors(e);
    let known = fw.profile.instances.contains_key(&class);
    let comp = computed(
        fw,
        &class,
        matches!(act.as_str(), action::GET | action::ENUMERATE),
    );
    if !known && comp.is_none() {
        tracing::debug!(%class, "WS-MAN: unknown class");
        return Err(unreachable_fault(fw, &relates));
    }
    match act.as_str() {
        action::GET => {
            let i = match comp {
                Some(i) => Some(i),
                None => fw.profile.instances[&class]
                    .iter()
                    .find(|i| matches(i, &sel))
                    .cloned(),
            };
            match i {
                Some(mut i) => {
                    if class == "AMT_GeneralSettings" {
                        set_prop(&mut i, "DigestRealm", &fw.profile.digest_realm.clone());
                    }
                    let id = next_id(fw);
                    Ok(env::amt_instance_response(
                        action::GET_RESPONSE,
                        &relates,
                        id,
                        &uri,
                        &class,
                        &params(&i),
                    ))
                }
                None => Err(fault(
                    fw,
                    &relates,
                    (ns::WSMAN, "InvalidSelectors"),
                    "The Selectors for the resource were not valid.",
                )),
            }
        }
        action::PUT => {
            // An instance element without properties is no instance either: answering it with the
            // unchanged instance let a client whose Put lost its properties pass as a success.
            // Which fault firmware sends for it is UNCONFIRMED; the sim gives the missing-body one.
            let Some(body) = e.body_element().filter(|b| !b.children.is_empty()) else {
                return Err(fault(
                    fw,
                    &relates,
                    (ns::WSMAN, "SchemaValidationError"),
                    "Missing instance.",
                ));
            };
            let Some(list) = fw.profile.instances.get_mut(&class) else {
                return Err(unreachable_fault(fw, &relates));
            };
            let key = body
                .child_text("InstanceID")
                .map(|v| ("InstanceID".to_string(), v.to_string()));
            let sel_all: Vec<(String, String)> = sel.iter().cloned().chain(key).collect();
            let Some(target) = list.iter_mut().find(|i| matches(i, &sel_all)) else {
                return Err(fault(
                    fw,
                    &relates,
                    (ns::WSMAN, "InvalidSelectors"),
                    "The Selectors for the resource were not valid.",
                ));
            };
            apply_put(target, body, &class);
            let mut out = target.clone();
            fw.changed();
            if class == "AMT_GeneralSettings" {
                set_prop(&mut out, "DigestRealm", &fw.profile.digest_realm.clone());
            }
            let id = next_id(fw);
            Ok(env::amt_instance_response(
                action::PUT_RESPONSE,
                &relates,
                id,
                &uri,
                &class,
                &params(&out),
            ))
        }
        action::ENUMERATE => {
            let items: Vec<Instance> = match comp {
                Some(i) => vec![i],
                None => fw.profile.instances[&class].clone(),
            };
            let xml: Vec<String> = items
                .iter()
                .map(|i| env::amt_instance_xml("h", &class, &params(i)))
                .collect();
            fw.web.context_counter += 1;
            let ctx = format!("{:08X}-0000-0000-0000-000000000000", fw.web.context_counter);
            fw.web.contexts.insert(ctx.clone(), (class.clone(), xml));
            let id = next_id(fw);
            Ok(env::amt_enumerate_response(&relates, id, &uri, &ctx))
        }
        action::PULL => {
            let ctx = e
                .body()
                .find("EnumerationContext")
                .map(|c| c.text().to_string())
                .unwrap_or_default();
            match fw.web.contexts.remove(&ctx) {
                Some((_, items)) => {
                    let id = next_id(fw);
                    Ok(env::amt_pull_response(
                        &relates, id, &uri, &items, true, &ctx,
                    ))
                }
                None => Err(fault(
                    fw,
                    &relates,
                    (ns::ENUMERATION, "InvalidEnumerationContext"),
                    "The supplied enumeration context is invalid.",
                )),
            }
        }
        action::DELETE => {
            let list = fw.profile.instances.get_mut(&class).expect("known class");
            let before = list.len();
            list.retain(|i| sel.is_empty() || !sel.iter().all(|(k, v)| prop(i, k) == Some(v)));
            if list.len() == before {
                // Firmware answers the delete of an absent instance with a fault (rps-protocol.md §9).
                return Err(fault(
                    fw,
                    &relates,
                    (ns::WSMAN, "InvalidSelectors"),
                    "The Selectors for the resource were not valid.",
                ));
            }
            fw.changed();
            let id = next_id(fw);
            Ok(env::amt_delete_response(&relates, id, &uri))
        }
        other if other.starts_with(&uri) && other.len() > uri.len() + 1 => {
            let method = other[uri.len() + 1..].to_string();
            let input = e.body_element().cloned();
            match invoke(fw, &class, &method, input.as_ref(), user) {
                Some(outputs) => {
                    let id = next_id(fw);
                    Ok(env::amt_method_response(
                        &relates, id, &uri, &method, &outputs,
                    ))
                }
                None => Err(fault(
                    fw,
                    &relates,
                    (ns::ADDRESSING, "ActionNotSupported"),
                    "The action is not supported by the service.",
                )),
            }
        }
        _ => Err(fault(
            fw,
            &relates,
            (ns::ADDRESSING, "ActionNotSupported"),
            "The action is not supported by the service.",
        )),
    }
}

fn apply_put(target: &mut Instance, body: &Element, class: &str) {
    // Array properties arrive as repeated elements: replace the whole array.
    let mut seen: Vec<String> = Vec::new();
    for c in &body.children {
        let name = c.name.clone();
        if class == "AMT_GeneralSettings" && name == "DigestRealm" {
            continue; // read-only
        }
        if !seen.contains(&name) {
            target.retain(|(k, _)| *k != name);
            seen.push(name.clone());
        }
        target.push((name, c.text().to_string()));
    }
}

fn input_text<'a>(input: Option<&'a Element>, name: &str) -> Option<&'a str> {
    input.and_then(|i| i.child_text(name))
}

fn ret(v: u32) -> Vec<Param> {
    vec![Param::text("ReturnValue", v)]
}

/// Method invocation; `None` when the class has no such method.
fn invoke(
    fw: &mut FirmwareCore,
    class: &str,
    method: &str,
    input: Option<&Element>,
    user: &str,
) -> Option<Vec<Param>> {
    let r = match (class, method) {
        ("IPS_HostBasedSetupService", "Setup") => {
            let p = &fw.profile;
            let enc = input_text(input, "NetAdminPassEncryptionType").unwrap_or("");
            let pw = input_text(input, "NetworkAdminPassword").unwrap_or("");
            if p.control_mode != 0 || p.provisioning_state != 0 || user != LSA_USER {
                ret(2) // INVALID_STATE
            } else if enc != "2" || pw.len() != 32 || !pw.bytes().all(|b| b.is_ascii_hexdigit()) {
                ret(3) // INVALID_PARAM
            } else {
                fw.profile.admin_ha1 = pw.to_ascii_lowercase();
                fw.profile.control_mode = 1;
                // On TLS-enforced firmware the configuration stays open until CommitChanges.
                fw.profile.provisioning_state = if fw.profile.tls_enforced { 1 } else { 2 };
                fw.changed();
                ret(0)
            }
        }
        ("IPS_HostBasedSetupService", "AddNextCertInChain") => {
            let cert = input_text(input, "NextCertificate").unwrap_or("");
            let leaf = input_text(input, "IsLeafCertificate") == Some("true");
            let root = input_text(input, "IsRootCertificate") == Some("true");
            ret(super::certs::add_next_cert(fw, cert, leaf, root))
        }
        ("IPS_HostBasedSetupService", "AdminSetup") if fw.profile.version_parts().0 >= 19 => {
            // Removed from CSME 19+ (rpc-go issue #355): ActionNotSupported.
            return None;
        }
        ("IPS_HostBasedSetupService", "AdminSetup") => {
            let pw = input_text(input, "NetworkAdminPassword")
                .unwrap_or("")
                .to_string();
            let v = super::certs::admin_setup(fw, input, user, false);
            if v == 0 {
                fw.profile.admin_ha1 = pw.to_ascii_lowercase();
            }
            ret(v)
        }
        ("IPS_HostBasedSetupService", "UpgradeClientToAdmin") => {
            ret(super::certs::admin_setup(fw, input, user, true))
        }
        ("AMT_SetupAndConfigurationService", "Unprovision") => {
            if user != ADMIN_USER {
                ret(16)
            } else {
                unprovision(&mut fw.profile);
                fw.changed();
                ret(0)
            }
        }
        ("AMT_SetupAndConfigurationService", "PartialUnprovision") => {
            if fw.profile.control_mode != 2 {
                ret(16)
            } else {
                ret(0)
            }
        }
        ("AMT_SetupAndConfigurationService", "CommitChanges") if super::certs::hbased_open(fw) => {
            // Closes the secure host-based configuration (rpc-go.md §5.4 step 7): as admin, with
            // the admin password and the MEBx password set.
            if user != ADMIN_USER || fw.profile.admin_ha1.is_empty() {
                ret(16) // NOT_PERMITTED
            } else if !fw.profile.mebx_password_set {
                ret(2057) // DATA_MISSING: the MEBx password
            } else {
                fw.profile.control_mode = 2;
                fw.profile.provisioning_state = 2;
                fw.profile.hbased_server_cert_hash.clear();
                fw.profile.hbased_server_hash_algorithm = 0;
                fw.changed();
                ret(0)
            }
        }
        ("AMT_SetupAndConfigurationService", "CommitChanges") => {
            if fw.profile.tls_enforced
                && fw.profile.control_mode == 2
                && !fw.profile.mebx_password_set
            {
                ret(2057) // DATA_MISSING: the MEBx password
            } else {
                if fw.profile.provisioning_state == 1 && fw.profile.control_mode != 0 {
                    fw.profile.provisioning_state = 2;
                    fw.changed();
                }
                ret(0)
            }
        }
        ("AMT_SetupAndConfigurationService", "SetMEBxPassword") => {
            let pw = input_text(input, "Password").unwrap_or("");
            let hbased_admin = super::certs::hbased_open(fw)
                && user == ADMIN_USER
                && !fw.profile.admin_ha1.is_empty();
            if fw.profile.control_mode != 2 && !hbased_admin {
                ret(16) // NOT_PERMITTED: blocked in CCM
            } else if !(8..=32).contains(&pw.len()) {
                ret(2054) // INVALID_PASSWORD
            } else {
                fw.profile.mebx_password_set = true;
                fw.changed();
                ret(0)
            }
        }
        ("AMT_SetupAndConfigurationService", "GetUuid") => {
            let raw = crate::amthi::AmtUuid::parse(&fw.profile.uuid)
                .map(|u| u.0)
                .unwrap_or([0; 16]);
            vec![
                Param::text("UUID", B64.encode(raw)),
                Param::text("ReturnValue", 0),
            ]
        }
        ("AMT_AuthorizationService", "SetAdminAclEntryEx") => {
            let user_in = input_text(input, "Username").unwrap_or("");
            let digest = input_text(input, "DigestPassword").unwrap_or("");
            match B64.decode(digest) {
                Ok(raw)
                    if raw.len() == 16
                        && user_in == ADMIN_USER
                        && (fw.profile.control_mode != 0
                            || (super::certs::hbased_open(fw) && user == LSA_USER)) =>
                {
                    fw.profile.admin_ha1 = crate::amthi::codec::hex(&raw);
                    fw.changed();
                    ret(0)
                }
                Ok(_) | Err(_) => ret(36), // INVALID_PARAMETER
            }
        }
        ("AMT_TimeSynchronizationService", "GetLowAccuracyTimeSynch") => {
            vec![
                Param::text("Ta0", now_unix()),
                Param::text("ReturnValue", 0),
            ]
        }
        ("AMT_TimeSynchronizationService", "SetHighAccuracyTimeSynch") => {
            let ok = ["Ta0", "Tm1", "Tm2"]
                .iter()
                .all(|k| input_text(input, k).is_some_and(|v| v.parse::<u64>().is_ok()));
            ret(if ok { 0 } else { 36 })
        }
        ("AMT_RedirectionService", "RequestStateChange")
        | ("CIM_KVMRedirectionSAP", "RequestStateChange") => {
            let state = input_text(input, "RequestedState")
                .unwrap_or("")
                .to_string();
            if let Some(i) = fw
                .profile
                .instances
                .get_mut(class)
                .and_then(|l| l.first_mut())
            {
                set_prop(i, "EnabledState", &state);
                if class == "CIM_KVMRedirectionSAP" {
                    set_prop(i, "RequestedState", &state);
                }
                fw.changed();
            }
            ret(0)
        }
        _ => return None,
    };
    Some(r)
}

/// Full unprovision: back to factory settings, user hashes gone (provisioning.md §2.7).
pub fn unprovision(p: &mut DeviceProfile) {
    p.control_mode = 0;
    p.provisioning_state = 0;
    p.admin_ha1.clear();
    p.mebx_password_set = false;
    p.hbased_server_cert_hash.clear();
    p.hbased_server_hash_algorithm = 0;
    p.cert_hashes.retain(|h| h.is_default);
    p.instances.clear();
    seed_instances(p);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::sim::{faults::FaultPlan, profile, Firmware};
    use crate::wsman::digest::DigestClient;
    use crate::wsman::envelope::{
        get_request, instance_xml, invoke_request, put_request, resource_uri,
    };
    use crate::wsman::http::{encode_wsman_post, RequestParser, ResponseParser};

    fn request(auth: Option<&str>, body: &str) -> Request {
        let raw = encode_wsman_post("sim:16992", auth, body.as_bytes());
        RequestParser::new().feed(&raw).unwrap().unwrap()
    }

    fn response(bytes: &[u8]) -> crate::wsman::http::Response {
        let mut p = ResponseParser::new();
        match p.feed(bytes).unwrap() {
            Some(r) => r,
            None => p.finish_eof().unwrap(),
        }
    }

    /// Sends `body` authenticated as `client`'s user, taking the challenge first when needed.
    fn call(fw: &Firmware, client: &mut DigestClient, body: &str) -> (u16, Envelope) {
        for _ in 0..2 {
            let auth = client.authorization("POST", "/wsman");
            let reply = handle(
                &mut fw.lock(),
                &request(auth.as_deref(), body),
                Instant::now(),
            );
            let r = response(&reply.bytes);
            if r.status == 401 {
                client
                    .handle_www_authenticate(r.header("WWW-Authenticate").unwrap())
                    .unwrap();
                continue;
            }
            return (r.status, Envelope::parse(&r.body).unwrap());
        }
        panic!("still 401 after taking the challenge");
    }

    fn fw(name: &str) -> Firmware {
        Firmware::new(
            profile::builtin(name).unwrap(),
            FaultPlan::new(vec![]),
            None,
        )
    }

    #[test]
    fn the_401_is_the_firmware_page_and_header_layout() {
        let f = fw("amt11.8");
        let reply = handle(&mut f.lock(), &request(None, "x"), Instant::now());
        let r = response(&reply.bytes);
        assert_eq!(r.status, 401);
        let names: Vec<&str> = r.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "WWW-Authenticate",
                "Content-Type",
                "Server",
                "Content-Length",
                "Connection"
            ]
        );
        assert_eq!(
            r.header("Server"),
            Some("Intel(R) Active Management Technology 11.8.50.3425")
        );
        let capture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/amt-captures/401-digest-challenge-amt11.8.http");
        let c =
            std::fs::read(&capture).unwrap_or_else(|e| panic!("read {}: {e}", capture.display()));
        let i = c.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        assert_eq!(
            &r.body[..],
            &c[i + 4..],
            "the 'Log on failed' page is byte-identical"
        );
    }

    /// The status of `body` sent as `client` on a connection described by `conn`.
    fn status_on(fw: &Firmware, client: &mut DigestClient, body: &str, conn: &ConnInfo) -> u16 {
        for _ in 0..2 {
            let auth = client.authorization("POST", "/wsman");
            let reply = handle_on(
                &mut fw.lock(),
                &request(auth.as_deref(), body),
                conn,
                Instant::now(),
            );
            let r = response(&reply.bytes);
            if r.status == 401 {
                client
                    .handle_www_authenticate(r.header("WWW-Authenticate").unwrap())
                    .unwrap();
                continue;
            }
            return r.status;
        }
        panic!("still 401 after taking the challenge");
    }

    #[test]
    fn amt19_has_no_admin_setup_and_an_open_hbased_configuration_needs_the_client_certificate() {
        let f = fw("amt19");
        let lsa = f.lock().profile.lsa_password.clone();
        let mut c = DigestClient::new(LSA_USER, Secret::new(lsa));
        let admin_setup = invoke_request(
            &resource_uri("IPS_HostBasedSetupService"),
            "AdminSetup",
            "1",
            &[],
            &[],
        );
        let (st, e) = call(&f, &mut c, &admin_setup);
        assert_eq!(st, 400);
        let fault = e.fault().expect("a SOAP fault");
        assert_eq!(
            fault.subcode.map(|q| q.local),
            Some("ActionNotSupported".to_string())
        );
        // A configuration opened by START_CONFIGURATION_HBASED: without the announced client
        // certificate (plain, or TLS without one) every request is refused with 403.
        {
            let mut g = f.lock();
            g.profile.provisioning_state = 1;
            g.profile.hbased_server_cert_hash = "AB".repeat(32);
            g.profile.hbased_server_hash_algorithm = 2;
        }
        let gs = get_request(&resource_uri("AMT_GeneralSettings"), "2", &[]);
        assert_eq!(status_on(&f, &mut c, &gs, &ConnInfo::default()), 403);
        let tls = ConnInfo {
            tls: true,
            client_chain: Vec::new(),
        };
        assert_eq!(status_on(&f, &mut c, &gs, &tls), 403);
        let wrong = ConnInfo {
            tls: true,
            client_chain: vec![crate::sim::tls::odca_chain().leaf_der().to_vec()],
        };
        assert_eq!(status_on(&f, &mut c, &gs, &wrong), 403);
    }

    #[test]
    fn ccm_setup_then_admin_then_unprovision() {
        let f = fw("amt16.1");
        let lsa = f.lock().profile.lsa_password.clone();
        let realm = f.lock().profile.digest_realm.clone();
        let mut c = DigestClient::new(LSA_USER, Secret::new(lsa));
        let gs = get_request(&resource_uri("AMT_GeneralSettings"), "0", &[]);
        let (st, e) = call(&f, &mut c, &gs);
        assert_eq!(st, 200);
        assert_eq!(
            e.body_element().unwrap().child_text("DigestRealm"),
            Some(realm.as_str())
        );
        let ha1 = crate::wsman::digest::ha1("admin", &realm, &Secret::new("P@ssw0rd-1"));
        let setup = invoke_request(
            &resource_uri("IPS_HostBasedSetupService"),
            "Setup",
            "1",
            &[],
            &[
                Param::text("NetAdminPassEncryptionType", 2),
                Param::text("NetworkAdminPassword", &ha1),
            ],
        );
        let (st, e) = call(&f, &mut c, &setup);
        assert_eq!(st, 200);
        assert_eq!(e.return_value().unwrap(), 0);
        assert_eq!(f.lock().profile.control_mode, 1);
        // The LSA no longer works; admin does, on the same nonce.
        c.set_credentials("admin", Secret::new("P@ssw0rd-1"));
        let unprov = invoke_request(
            &resource_uri("AMT_SetupAndConfigurationService"),
            "Unprovision",
            "2",
            &[],
            &[Param::text("ProvisioningMode", 1)],
        );
        let (st, e) = call(&f, &mut c, &unprov);
        assert_eq!(st, 200);
        assert_eq!(e.return_value().unwrap(), 0);
        assert_eq!(f.lock().profile.control_mode, 0);
    }

    /// An amt16.1 firmware in control mode `mode` with admin's password "x", and admin's client.
    fn activated(mode: u32) -> (Firmware, DigestClient) {
        let f = fw("amt16.1");
        {
            let mut core = f.lock();
            core.profile.control_mode = mode;
            let realm = core.profile.digest_realm.clone();
            core.profile.admin_ha1 = crate::wsman::digest::ha1("admin", &realm, &Secret::new("x"));
        }
        (f, DigestClient::new("admin", Secret::new("x")))
    }

    #[test]
    fn a_second_setup_answers_invalid_state_and_unknown_classes_fault() {
        let (f, mut c) = activated(1);
        let setup = invoke_request(
            &resource_uri("IPS_HostBasedSetupService"),
            "Setup",
            "1",
            &[],
            &[
                Param::text("NetAdminPassEncryptionType", 2),
                Param::text("NetworkAdminPassword", "00"),
            ],
        );
        let (_, e) = call(&f, &mut c, &setup);
        assert_eq!(e.return_value().unwrap(), 2);
        let (st, e) = call(
            &f,
            &mut c,
            &get_request(&resource_uri("AMT_NoSuchClass"), "3", &[]),
        );
        assert_eq!(st, 400);
        assert_eq!(
            e.fault().unwrap().subcode.unwrap().local,
            "DestinationUnreachable"
        );
    }

    #[test]
    fn a_put_changes_the_instance_and_an_empty_put_is_refused() {
        let (f, mut c) = activated(2);
        let uri = resource_uri("IPS_OptInService");
        let opt_in = |f: &Firmware| {
            prop(
                &f.lock().profile.instances["IPS_OptInService"][0],
                "OptInRequired",
            )
            .map(str::to_string)
        };
        // The instance RPS read back, OptInRequired lowered to none (trace 10 #34).
        let mut props = f.lock().profile.instances["IPS_OptInService"][0].clone();
        set_prop(&mut props, "OptInRequired", "0");
        let body = instance_xml("IPS_OptInService", &uri, &params(&props));
        let (st, e) = call(&f, &mut c, &put_request(&uri, "1", &[], &body));
        assert_eq!(st, 200);
        assert_eq!(
            e.body_element().unwrap().child_text("OptInRequired"),
            Some("0")
        );
        assert_eq!(opt_in(&f).as_deref(), Some("0"));
        // An instance element with no properties changes nothing and is not a success.
        let empty = instance_xml("IPS_OptInService", &uri, &[]);
        let (st, e) = call(&f, &mut c, &put_request(&uri, "2", &[], &empty));
        assert_eq!(st, 400);
        assert_eq!(
            e.fault().unwrap().subcode.unwrap().local,
            "SchemaValidationError"
        );
        assert_eq!(opt_in(&f).as_deref(), Some("0"));
    }

    #[test]
    fn the_chunk_layout_reproduces_the_amt15_capture() {
        // 218 header bytes and a 1928-byte body give 0x220, 0x2FA, 0x2FA, 0x3C.
        assert_eq!(
            segment_layout(218, 0x220 + 0x2FA * 2 + 0x3C),
            ChunkLayout::Exact(vec![0x220, 0x2FA, 0x2FA, 0x3C])
        );
        let capture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/amt-captures/200-general-settings-get.http");
        let c =
            std::fs::read(&capture).unwrap_or_else(|e| panic!("read {}: {e}", capture.display()));
        let i = c.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let r = response(&c);
        let again = http::encode_amt_soap_response(
            200,
            r.header("Date").unwrap(),
            r.header("Server").unwrap(),
            &r.body,
            &segment_layout(i, r.body.len()),
            false,
        );
        assert_eq!(
            again, c,
            "header set, order and chunk layout are the firmware's"
        );
    }

    #[test]
    fn chunked_200_uses_the_firmware_header_set_and_padded_sizes() {
        let f = fw("amt16.1");
        let lsa = f.lock().profile.lsa_password.clone();
        let mut c = DigestClient::new(LSA_USER, Secret::new(lsa));
        let gs = get_request(&resource_uri("AMT_GeneralSettings"), "0", &[]);
        let _ = call(&f, &mut c, &gs);
        let auth = c.authorization("POST", "/wsman");
        let reply = handle(
            &mut f.lock(),
            &request(auth.as_deref(), &gs),
            Instant::now(),
        );
        let text = String::from_utf8_lossy(&reply.bytes);
        let head: Vec<&str> = text.split("\r\n").take(7).collect();
        assert_eq!(head[0], "HTTP/1.1 200 OK");
        assert!(head[1].starts_with("Date: "));
        assert!(head[2].starts_with("Server: Intel(R) Active Management Technology "));
        assert_eq!(head[3], "X-Frame-Options: DENY");
        assert_eq!(head[4], "Content-Type: application/soap+xml; charset=UTF-8");
        assert_eq!(head[5], "Transfer-Encoding: chunked");
        assert_eq!(head[6], "");
        let size_line = text.split("\r\n").nth(7).unwrap();
        assert_eq!(size_line.len(), 4, "4-digit chunk size: {size_line}");
    }
}
