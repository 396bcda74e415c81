//! CIRA (remote access through an MPS) as RPS's `ciraConfiguration.ts` and rpc-go's
//! `configure cira` drive it (rps-protocol.md §5.1 step 7, §5.6): `AMT_RemoteAccessService`
//! (AddMpServer, AddRemoteAccessPolicyRule), `AMT_ManagementPresenceRemoteSAP` (the servers),
//! `AMT_MPSUsernamePassword` (their user names), `AMT_RemoteAccessPolicyRule`,
//! `AMT_RemoteAccessPolicyAppliesToMPS`, `AMT_UserInitiatedConnectionService` and
//! `AMT_EnvironmentDetectionSettingData`. Request bodies are go-wsman-messages' (rpc-go's), byte
//! for byte; the answers are the wsman-responses fixtures' shapes (`amt/remoteaccess/…`,
//! `amt/managementpresence/`, `amt/userinitiatedconnection/`, `amt/environmentdetection/`).

use crate::secret::Secret;
use crate::wsman::calls::{
    self, method_output, Arg, Call, Exchange, Instance, Op, PropertyValue, PullPage, WsmanError,
};
use crate::wsman::envelope::{escape, ns, resource_uri, Element, Selector};

pub const SERVICE: &str = "AMT_RemoteAccessService";
pub const SAP: &str = "AMT_ManagementPresenceRemoteSAP";
pub const CREDENTIAL: &str = "AMT_MPSUsernamePassword";
pub const RULE: &str = "AMT_RemoteAccessPolicyRule";
pub const APPLIES: &str = "AMT_RemoteAccessPolicyAppliesToMPS";
pub const USER_INITIATED: &str = "AMT_UserInitiatedConnectionService";
pub const ENVIRONMENT: &str = "AMT_EnvironmentDetectionSettingData";

/// The port an MPS listens on for CIRA (rpc-go's fixed value, RPS's default).
pub const DEFAULT_MPS_PORT: u16 = 4433;

/// `InfoFormat` of a server's `AccessInfo` (the same values as a proxy's).
pub use super::InfoFormat;

/// `AMT_RemoteAccessPolicyRule.Trigger`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Trigger {
    UserInitiated = 0,
    Alert = 1,
    Periodic = 2,
}

impl Trigger {
    pub fn from_value(v: u32) -> Option<Trigger> {
        match v {
            0 => Some(Trigger::UserInitiated),
            1 => Some(Trigger::Alert),
            2 => Some(Trigger::Periodic),
            _ => None,
        }
    }

    /// The firmware's rule name (the fixtures' `PolicyRuleName`, RPS's Delete selectors).
    pub fn rule_name(self) -> &'static str {
        match self {
            Trigger::UserInitiated => "User Initiated",
            Trigger::Alert => "Alert",
            Trigger::Periodic => "Periodic",
        }
    }
}

/// `AMT_UserInitiatedConnectionService.RequestedState` 32771: BIOS and OS interfaces enabled.
pub const USER_INITIATED_BIOS_AND_OS: u32 = 32771;

/// The words for a user-initiated connection service state.
pub fn user_initiated_text(state: u32) -> &'static str {
    match state {
        32768 => "all interfaces disabled",
        32769 => "BIOS interface enabled",
        32770 => "OS interface enabled",
        32771 => "BIOS and OS interfaces enabled",
        _ => "unknown",
    }
}

/// A periodic rule's `ExtendedData` for an interval: type 0 then the seconds, both big-endian
/// u32 (RPS and rpc-go send `AAAAAAAAABk=`, 25 s).
pub fn periodic_interval_data(seconds: u32) -> String {
    let mut b = 0u32.to_be_bytes().to_vec();
    b.extend_from_slice(&seconds.to_be_bytes());
    calls::b64(&b)
}

/// The interval of a periodic rule's `ExtendedData` (type 0), if it is one.
pub fn periodic_interval(extended_data: &str) -> Option<u32> {
    use base64::Engine as _;
    let b = base64::engine::general_purpose::STANDARD
        .decode(extended_data.trim())
        .ok()?;
    match b.as_slice() {
        [0, 0, 0, 0, a, b2, c, d] => Some(u32::from_be_bytes([*a, *b2, *c, *d])),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Endpoint references
// ---------------------------------------------------------------------------------------------

/// The selectors of a reference property (`ManagedElement`, `PolicySet`, a method's output).
pub fn reference_selectors(e: &Element) -> Vec<(String, String)> {
    e.find("SelectorSet")
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

/// A reference with every key of the instance, written with the request's prefixes.
fn reference_xml(class: &str, selectors: &[(&str, &str)]) -> String {
    let mut s = format!(
        "<a:Address>{}</a:Address><a:ReferenceParameters><w:ResourceURI>{}</w:ResourceURI><w:SelectorSet>",
        ns::ANONYMOUS,
        escape(&resource_uri(class))
    );
    for (n, v) in selectors {
        s.push_str(&format!(
            "<w:Selector Name=\"{}\">{}</w:Selector>",
            escape(n),
            escape(v)
        ));
    }
    s.push_str("</w:SelectorSet></a:ReferenceParameters>");
    s
}

/// The value of the selector `key` of the reference a method returned in `output`.
fn created_key(ex: &Exchange<'_>, output: &str, key: &str) -> Result<String, WsmanError> {
    let out = method_output(ex, true)?;
    let reference = out
        .properties
        .iter()
        .find(|p| p.name == output)
        .ok_or_else(|| WsmanError::Missing(format!("{}_OUTPUT.{output}", ex.op.name())))?;
    match &reference.value {
        PropertyValue::Element(e) => reference_selectors(e)
            .into_iter()
            .find(|(n, v)| n == key && !v.is_empty())
            .map(|(_, v)| v)
            .ok_or_else(|| WsmanError::Missing(format!("{output}'s {key}"))),
        PropertyValue::Text(_) => Err(WsmanError::Missing(format!("{output}'s reference"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------------

/// `AddMpServer` with user name and password authentication (AuthMethod 2), as rpc-go sends it
/// (go-wsman-messages' order; `CN` is the address for an IP address, empty for a host name).
/// Answers the new server's `Name`.
pub fn add_mp_server(address: &str, port: u16, username: &str, password: &Secret) -> Call<String> {
    let format = InfoFormat::of(address);
    Call::new(
        SERVICE,
        Op::Invoke {
            method: "AddMpServer".into(),
        },
        |ex| created_key(ex, "MpServer", "Name"),
    )
    .arg(Arg::text("AccessInfo", address))
    .arg(Arg::text("InfoFormat", format as u32))
    .arg(Arg::text("Port", port))
    .arg(Arg::text("AuthMethod", 2))
    .arg(Arg::text("Username", username))
    .arg(Arg::secret("Password", password))
    .arg(Arg::text("CN", if format.is_ip() { address } else { "" }))
}

/// `AddRemoteAccessPolicyRule` for the server named `server` (its `Name`), with the MpServer
/// reference written as go-wsman-messages writes it. Answers the new rule's `PolicyRuleName`.
pub fn add_remote_access_policy_rule(
    trigger: Trigger,
    tunnel_lifetime: u32,
    extended_data: &str,
    server: &str,
) -> Call<String> {
    let reference = format!(
        "<Address xmlns=\"{a}\">{anon}</Address><ReferenceParameters xmlns=\"{a}\"><ResourceURI xmlns=\"{w}\">{uri}</ResourceURI><SelectorSet xmlns=\"{w}\"><Selector Name=\"Name\">{name}</Selector></SelectorSet></ReferenceParameters>",
        a = ns::ADDRESSING,
        w = ns::WSMAN,
        anon = ns::ANONYMOUS,
        uri = escape(&resource_uri(SAP)),
        name = escape(server)
    );
    Call::new(
        SERVICE,
        Op::Invoke {
            method: "AddRemoteAccessPolicyRule".into(),
        },
        |ex| created_key(ex, "PolicyRule", "PolicyRuleName"),
    )
    .arg(Arg::text("Trigger", trigger as u32))
    .arg(Arg::text("TunnelLifeTime", tunnel_lifetime))
    .arg(Arg::text("ExtendedData", extended_data))
    .arg(Arg::raw("MpServer", reference))
}

pub fn enumerate(class: &str) -> Call<String> {
    calls::enumerate(class)
}

pub fn pull(class: &str, context: &str) -> Call<PullPage> {
    calls::pull(class, context)
}

/// Delete a server by `Name`, as RPS and rpc-go do.
pub fn delete_server(name: &str) -> Call<()> {
    calls::delete(SAP, &[Selector::new("Name", name)])
}

/// Delete a policy rule by `PolicyRuleName`, as RPS and rpc-go do.
pub fn delete_rule(name: &str) -> Call<()> {
    calls::delete(RULE, &[Selector::new("PolicyRuleName", name)])
}

/// Put of an association with a new `MpsType` (0 outside, 1 inside the enterprise, 2 both) and
/// `OrderOfAccess`; the body names the server and the rule by all their keys. AMT answers an
/// empty PutResponse (the `policyappliestomps/put.xml` fixture), so only a fault is an error.
pub fn put_applies_to_mps(a: &AppliesToMps, mps_type: u32, order: u32) -> Call<()> {
    Call::new(APPLIES, Op::Put, |_| Ok(()))
        .arg(Arg::raw(
            "ManagedElement",
            reference_xml(
                SAP,
                &[
                    ("CreationClassName", SAP),
                    ("Name", &a.server),
                    ("SystemCreationClassName", "CIM_ComputerSystem"),
                    ("SystemName", "Intel(r) AMT"),
                ],
            ),
        ))
        .arg(Arg::text("MpsType", mps_type))
        .arg(Arg::text("OrderOfAccess", order))
        .arg(Arg::raw(
            "PolicySet",
            reference_xml(
                RULE,
                &[
                    ("CreationClassName", RULE),
                    ("PolicyRuleName", &a.rule),
                    ("SystemCreationClassName", "CIM_ComputerSystem"),
                    ("SystemName", "Intel(r) AMT"),
                ],
            ),
        ))
}

pub fn get_user_initiated() -> Call<Instance> {
    calls::get(USER_INITIATED, &[])
}

/// `RequestStateChange(32768–32771)`: which interfaces may ask for a user-initiated connection.
pub fn user_initiated_request_state_change(state: u32) -> Call<()> {
    Call::new(
        USER_INITIATED,
        Op::Invoke {
            method: "RequestStateChange".into(),
        },
        calls::unit_output,
    )
    .arg(Arg::text("RequestedState", state))
}

pub fn get_environment_detection() -> Call<Instance> {
    calls::get(ENVIRONMENT, &[])
}

/// Put of the environment detection settings with these domains (the rest as read).
pub fn put_environment_detection(current: &Instance, domains: &[String]) -> Call<Instance> {
    let mut i = current.clone();
    if domains.is_empty() {
        i.remove("DetectionStrings");
    } else {
        // DetectionStrings goes where AMT lists it: after DetectionAlgorithm.
        if !i.contains("DetectionStrings") {
            let at = i
                .properties
                .iter()
                .position(|p| p.name == "DetectionAlgorithm")
                .map_or(0, |x| x + 1);
            i.properties.insert(
                at,
                calls::Property {
                    name: "DetectionStrings".into(),
                    value: PropertyValue::Text(String::new()),
                },
            );
        }
        i.set_all("DetectionStrings", domains.iter().cloned());
    }
    calls::put(ENVIRONMENT, &[], &i)
}

// ---------------------------------------------------------------------------------------------
// What AMT holds
// ---------------------------------------------------------------------------------------------

/// A server (`AMT_ManagementPresenceRemoteSAP`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpsServer {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub info_format: u32,
    pub cn: String,
}

impl MpsServer {
    pub fn from_instance(i: &Instance) -> MpsServer {
        MpsServer {
            name: i.get("Name").unwrap_or_default().to_string(),
            address: i.get("AccessInfo").unwrap_or_default().to_string(),
            port: i.get("Port").and_then(|p| p.parse().ok()).unwrap_or(0),
            info_format: i
                .get("InfoFormat")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0),
            cn: i.get("CN").unwrap_or_default().to_string(),
        }
    }
}

/// A user name AMT holds for a server (`AMT_MPSUsernamePassword.RemoteID`; the password is
/// never returned).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpsCredential {
    pub instance_id: String,
    pub username: String,
}

impl MpsCredential {
    pub fn from_instance(i: &Instance) -> MpsCredential {
        MpsCredential {
            instance_id: i.get("InstanceID").unwrap_or_default().to_string(),
            username: i.get("RemoteID").unwrap_or_default().to_string(),
        }
    }
}

/// A remote access policy (`AMT_RemoteAccessPolicyRule`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRule {
    pub name: String,
    pub trigger: Option<Trigger>,
    pub tunnel_lifetime: u32,
    pub extended_data: String,
}

impl PolicyRule {
    pub fn from_instance(i: &Instance) -> PolicyRule {
        PolicyRule {
            name: i.get("PolicyRuleName").unwrap_or_default().to_string(),
            trigger: i
                .get("Trigger")
                .and_then(|t| t.parse().ok())
                .and_then(Trigger::from_value),
            tunnel_lifetime: i
                .get("TunnelLifeTime")
                .and_then(|t| t.parse().ok())
                .unwrap_or(0),
            extended_data: i.get("ExtendedData").unwrap_or_default().to_string(),
        }
    }
}

/// A rule applied to a server (`AMT_RemoteAccessPolicyAppliesToMPS`), by their names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliesToMps {
    pub server: String,
    pub rule: String,
    pub mps_type: u32,
    pub order: u32,
}

impl AppliesToMps {
    pub fn from_instance(i: &Instance) -> AppliesToMps {
        let key = |prop: &str, key: &str| {
            i.properties
                .iter()
                .find(|p| p.name == prop)
                .and_then(|p| match &p.value {
                    PropertyValue::Element(e) => reference_selectors(e)
                        .into_iter()
                        .find(|(n, _)| n == key)
                        .map(|(_, v)| v),
                    PropertyValue::Text(_) => None,
                })
                .unwrap_or_default()
        };
        AppliesToMps {
            server: key("ManagedElement", "Name"),
            rule: key("PolicySet", "PolicyRuleName"),
            mps_type: i.get("MpsType").and_then(|t| t.parse().ok()).unwrap_or(0),
            order: i
                .get("OrderOfAccess")
                .and_then(|t| t.parse().ok())
                .unwrap_or(0),
        }
    }
}

/// `MpsType`'s words.
pub fn mps_type_text(t: u32) -> &'static str {
    match t {
        0 => "outside the enterprise",
        1 => "inside the enterprise",
        2 => "inside and outside",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/wsman-responses/amt/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn body(xml: &str) -> &str {
        let start = xml.find("<Body>").unwrap() + 6;
        &xml[start..xml.rfind("</Body>").unwrap()]
    }

    #[test]
    fn add_mp_server_is_go_wsman_messages_bytes_and_never_describes_the_password() {
        // go-wsman-messages' remoteaccess/service_test.go: AccessInfo, InfoFormat, Port,
        // AuthMethod, Username, Password, CN.
        let call = add_mp_server("192.168.0.208", 4433, "admin", &Secret::new("Pa$$w0rd1"));
        assert_eq!(
            body(&call.render("0")),
            "<h:AddMpServer_INPUT xmlns:h=\"http://intel.com/wbem/wscim/1/amt-schema/1/AMT_RemoteAccessService\"><h:AccessInfo>192.168.0.208</h:AccessInfo><h:InfoFormat>3</h:InfoFormat><h:Port>4433</h:Port><h:AuthMethod>2</h:AuthMethod><h:Username>admin</h:Username><h:Password>Pa$$w0rd1</h:Password><h:CN>192.168.0.208</h:CN></h:AddMpServer_INPUT>"
        );
        let d = call.describe();
        assert!(d.contains("Password=***") && !d.contains("Pa$$"), "{d}");
        let named = add_mp_server("mps.example.com", 4433, "admin", &Secret::new("x"));
        assert!(named
            .render("0")
            .contains("<h:InfoFormat>201</h:InfoFormat><h:Port>4433</h:Port>"));
        assert!(named.render("0").contains("<h:CN></h:CN>"));
    }

    #[test]
    fn add_policy_rule_is_go_wsman_messages_bytes() {
        let call = add_remote_access_policy_rule(
            Trigger::Periodic,
            0,
            "AAAAAAAAABk=",
            "Intel(r) AMT:Management Presence Server 0",
        );
        assert_eq!(
            body(&call.render("0")),
            "<h:AddRemoteAccessPolicyRule_INPUT xmlns:h=\"http://intel.com/wbem/wscim/1/amt-schema/1/AMT_RemoteAccessService\"><h:Trigger>2</h:Trigger><h:TunnelLifeTime>0</h:TunnelLifeTime><h:ExtendedData>AAAAAAAAABk=</h:ExtendedData><h:MpServer><Address xmlns=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</Address><ReferenceParameters xmlns=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\"><ResourceURI xmlns=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\">http://intel.com/wbem/wscim/1/amt-schema/1/AMT_ManagementPresenceRemoteSAP</ResourceURI><SelectorSet xmlns=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\"><Selector Name=\"Name\">Intel(r) AMT:Management Presence Server 0</Selector></SelectorSet></ReferenceParameters></h:MpServer></h:AddRemoteAccessPolicyRule_INPUT>"
        );
    }

    #[test]
    fn the_created_names_decode_from_the_fixtures() {
        assert_eq!(
            add_mp_server("192.168.0.208", 4433, "admin", &Secret::new("x"))
                .decode(200, &fixture("remoteaccess/service/addmpsserver.xml"))
                .unwrap(),
            "Intel(r) AMT:Management Presence Server 0"
        );
        assert_eq!(
            add_remote_access_policy_rule(Trigger::Periodic, 0, "", "x")
                .decode(
                    200,
                    &fixture("remoteaccess/service/addremoteaccessservice.xml")
                )
                .unwrap(),
            "Periodic"
        );
    }

    #[test]
    fn pulled_instances_read_as_the_fixtures_say() {
        let page = pull(APPLIES, "c")
            .decode(200, &fixture("remoteaccess/policyappliestomps/pull.xml"))
            .unwrap();
        assert_eq!(
            AppliesToMps::from_instance(&page.items[0]),
            AppliesToMps {
                server: "Intel(r) AMT:Management Presence Server 0".into(),
                rule: "Periodic".into(),
                mps_type: 0,
                order: 0
            }
        );
        let saps = pull(SAP, "c")
            .decode(200, &fixture("managementpresence/pull.xml"))
            .unwrap();
        let s = MpsServer::from_instance(&saps.items[0]);
        assert_eq!(
            (s.address.as_str(), s.port, s.info_format, s.cn.as_str()),
            ("192.168.10.196", 4433, 3, "192.168.10.196")
        );
        let rules = pull(RULE, "c")
            .decode(200, &fixture("remoteaccess/policyrule/pull.xml"))
            .unwrap();
        let r = PolicyRule::from_instance(&rules.items[0]);
        assert_eq!(r.trigger, Some(Trigger::Periodic));
        assert_eq!(periodic_interval(&r.extended_data), Some(25));
        // The empty PutResponse of an association is a success.
        put_applies_to_mps(&AppliesToMps::from_instance(&page.items[0]), 2, 0)
            .decode(200, &fixture("remoteaccess/policyappliestomps/put.xml"))
            .unwrap();
        user_initiated_request_state_change(32771)
            .decode(200, &fixture("userinitiatedconnection/request.xml"))
            .unwrap();
    }

    #[test]
    fn the_periodic_interval_is_big_endian_type_then_seconds() {
        assert_eq!(periodic_interval_data(25), "AAAAAAAAABk=");
        assert_eq!(periodic_interval(&periodic_interval_data(3600)), Some(3600));
        assert_eq!(periodic_interval(""), None);
    }

    #[test]
    fn environment_detection_put_replaces_the_domains_in_place() {
        let i = get_environment_detection()
            .decode(200, &fixture("environmentdetection/get.xml"))
            .unwrap();
        let xml = put_environment_detection(&i, &["corp.example.com".into()]).render("0");
        assert!(xml.contains("<h:DetectionAlgorithm>0</h:DetectionAlgorithm><h:DetectionStrings>corp.example.com</h:DetectionStrings><h:ElementName>"), "{xml}");
        assert!(!xml.contains("test.com"));
        let none = put_environment_detection(&i, &[]).render("0");
        assert!(!none.contains("DetectionStrings"));
    }
}
