//! CIRA (remote access through an MPS): `AMT_RemoteAccessService` (AddMpServer,
//! AddRemoteAccessPolicyRule), the `AMT_ManagementPresenceRemoteSAP` instances it creates with
//! their `AMT_MPSUsernamePassword` credentials, `AMT_RemoteAccessPolicyRule` and the
//! `AMT_RemoteAccessCredentialContext` associations to them,
//! `AMT_RemoteAccessPolicyAppliesToMPS` associations between rules and servers,
//! `AMT_RemoteAccessCapabilities`, `AMT_UserInitiatedConnectionService` and
//! `AMT_EnvironmentDetectionSettingData`. The MPS root certificate lives in the key store
//! ([`super::keystore`]).
//!
//! Shapes: the wsman-responses fixtures `amt/managementpresence/`, `amt/remoteaccess/…`,
//! `amt/userinitiatedconnection/`, `amt/environmentdetection/`; the property meanings and value
//! maps Intel's MOF gives (as go-wsman-messages' `remoteaccess/types.go` quotes them: ExtendedData
//! up to 32 bytes in network order, periodic type 0 an interval in seconds, type 1 an hour and a
//! minute; Username up to 16 alphanumeric characters, Password up to 16 characters; CN for an
//! address given as IP; AddRemoteAccessPolicyRule's ReturnValues {0, 1, 36, 38, 2058}); the
//! limits from the `capabilities/get.xml` fixture (2 servers per policy, 6 servers, 3 policies).
//!
//! Rules the sources leave open are the simulator's choices, UNCONFIRMED (docs/simulator.md):
//! AccessInfo must be written as InfoFormat says (3 IPv4, 4 IPv6, 201 a DNS name; rpc-go sends 3
//! for host names too, which this refuses); CN is required for an IP address and ignored for a
//! name; the same AccessInfo and Port twice is 2058 DUPLICATE; a rule names its trigger
//! (`User Initiated`, `Alert`, `Periodic`; the MOF says "%s %d" with a handle, the fixtures and
//! RPS's deletes use the bare name), one rule per trigger (2058), trigger 3 (home provisioning)
//! refused (36); a server a rule applies to cannot be deleted (`wsman:AccessDenied`); deleting a
//! rule deletes its associations, deleting a server its credential; the user-initiated connection
//! service starts with all interfaces disabled (32768); environment detection takes up to 5
//! domains of up to 192 characters.

use base64::Engine as _;

use super::super::model::{
    epr, epr_parts, epr_set, epr_set_parts, hidden, input_text, inst, prop, ret, set_prop, Instance,
};
use super::rules::{self, ro, rw, Kind, PropRule, PutRefusal};
use crate::sim::profile::DeviceProfile;
use crate::sim::FirmwareCore;
use crate::wsman::envelope::{ns, Element, Param};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub(super) const SERVICE: &str = "AMT_RemoteAccessService";
pub(super) const SAP: &str = "AMT_ManagementPresenceRemoteSAP";
pub(super) const CREDENTIAL: &str = "AMT_MPSUsernamePassword";
pub(super) const CREDENTIAL_CONTEXT: &str = "AMT_RemoteAccessCredentialContext";
pub(super) const RULE: &str = "AMT_RemoteAccessPolicyRule";
pub(super) const APPLIES: &str = "AMT_RemoteAccessPolicyAppliesToMPS";
pub(super) const CAPABILITIES: &str = "AMT_RemoteAccessCapabilities";
pub(super) const UIC: &str = "AMT_UserInitiatedConnectionService";
pub(super) const ENV: &str = "AMT_EnvironmentDetectionSettingData";

/// `AMT_RemoteAccessCapabilities` (fixture `amt/remoteaccess/capabilities/get.xml`).
pub const MAX_MPS_PER_POLICY: usize = 2;
pub const MAX_TOTAL_MPS: usize = 6;
pub const MAX_TOTAL_POLICIES: usize = 3;
/// Environment detection domains (UNCONFIRMED).
pub const MAX_DETECTION_STRINGS: usize = 5;
pub const MAX_DETECTION_STRING_LEN: usize = 192;

const INTERNAL_ERROR: u32 = 1;
const INVALID_PARAMETER: u32 = 36;
const MAX_LIMIT_REACHED: u32 = 23;
const DUPLICATE: u32 = 2058;

/// The rule name firmware gives each trigger (0 user initiated, 1 alert, 2 periodic).
pub fn trigger_name(trigger: u32) -> Option<&'static str> {
    match trigger {
        0 => Some("User Initiated"),
        1 => Some("Alert"),
        2 => Some("Periodic"),
        _ => None,
    }
}

/// No MPS, no policies; user-initiated connections off; environment detection with no domains.
pub(super) fn seed(p: &mut DeviceProfile) {
    let ins = &mut p.instances;
    ins.insert(
        ENV.into(),
        // DetectionAlgorithm as in go-wsman-messages' amt/environmentdetection/get.xml fixture
        // (0 = local domains); no DetectionStrings until CIRA configures them.
        vec![inst(&[
            ("DetectionAlgorithm", "0"),
            ("ElementName", "Intel(r) AMT Environment Detection Settings"),
            ("InstanceID", "Intel(r) AMT Environment Detection Settings"),
        ])],
    );
    ins.insert(
        UIC.into(),
        vec![inst(&[
            ("CreationClassName", UIC),
            (
                "ElementName",
                "Intel(r) AMT User Initiated Connection Service",
            ),
            ("EnabledState", "32768"),
            ("Name", "Intel(r) AMT User Initiated Connection Service"),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "Intel(r) AMT"),
        ])],
    );
    for empty in [SAP, CREDENTIAL, CREDENTIAL_CONTEXT, RULE, APPLIES] {
        ins.insert(empty.into(), Vec::new());
    }
}

/// The service and the capabilities: instances computed at each read.
pub(super) fn computed(fw: &FirmwareCore, class: &str) -> Option<Instance> {
    match class {
        SERVICE => {
            let mut i = inst(&[
                ("CreationClassName", SERVICE),
                ("ElementName", "Intel(r) AMT Remote Access Service"),
                ("Name", "Intel(r) AMT Remote Access Service"),
                ("SystemCreationClassName", "CIM_ComputerSystem"),
                ("SystemName", "Intel(r) AMT"),
            ]);
            // "Supported starting from Intel CSME 17" (the MOF, via go-wsman-messages); the
            // simulator never opens a tunnel.
            if fw.profile.version_parts().0 >= 17 {
                i.push(("IsRemoteTunnelConnected".into(), "false".into()));
            }
            Some(i)
        }
        CAPABILITIES => Some(inst(&[
            ("ElementName", "Intel(r) AMT:Remote Access Capabilities"),
            ("InstanceID", "Intel(r) AMT:Remote Access Capabilities"),
            ("MaxMpsPerPolicy", &MAX_MPS_PER_POLICY.to_string()),
            ("MaxTotalMpServers", &MAX_TOTAL_MPS.to_string()),
            ("MaxTotalPolicies", &MAX_TOTAL_POLICIES.to_string()),
            ("MaxTotalProxyEntryPoints", "15"),
        ])),
        _ => None,
    }
}

fn list<'a>(p: &'a DeviceProfile, class: &str) -> &'a [Instance] {
    p.instances.get(class).map(Vec::as_slice).unwrap_or(&[])
}

fn sap_selectors(name: &str) -> [(&str, &str); 4] {
    [
        ("CreationClassName", SAP),
        ("Name", name),
        ("SystemCreationClassName", "CIM_ComputerSystem"),
        ("SystemName", "Intel(r) AMT"),
    ]
}

fn rule_selectors(name: &str) -> [(&str, &str); 4] {
    [
        ("CreationClassName", RULE),
        ("PolicyRuleName", name),
        ("SystemCreationClassName", "CIM_ComputerSystem"),
        ("SystemName", "Intel(r) AMT"),
    ]
}

/// A method's reference output: the created instance, or an empty reference on failure.
fn created(
    output: &str,
    class: &str,
    selectors: Option<&[(&str, &str)]>,
    status: u32,
) -> Vec<Param> {
    let xml = match selectors {
        Some(s) => super::super::model::epr_set_xml(&format!("{}{class}", ns::AMT_SCHEMA), s),
        None => format!(
            "<b:Address>{}</b:Address><b:ReferenceParameters><c:ResourceURI></c:ResourceURI><c:SelectorSet></c:SelectorSet></b:ReferenceParameters>",
            ns::ANONYMOUS
        ),
    };
    vec![Param::raw(output, xml), Param::text("ReturnValue", status)]
}

/// Whether `access` is written as `format` says: 3 IPv4, 4 IPv6, 201 a name of DNS labels.
fn access_info_ok(access: &str, format: &str) -> bool {
    match format {
        "3" => access.parse::<std::net::Ipv4Addr>().is_ok(),
        "4" => access.parse::<std::net::Ipv6Addr>().is_ok(),
        "201" => dns_name_ok(access, 256),
        _ => false,
    }
}

fn dns_name_ok(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// `AddMpServer(AccessInfo, InfoFormat, Port, AuthMethod, Certificate, Username, Password, CN)`.
fn add_mp_server(fw: &mut FirmwareCore, input: Option<&Element>) -> Result<String, u32> {
    let text = |n: &str| input_text(input, n).unwrap_or("").trim().to_string();
    let (access, format, auth) = (text("AccessInfo"), text("InfoFormat"), text("AuthMethod"));
    let port = text("Port").parse::<u16>().ok().filter(|p| *p > 0);
    let (user, password, cn) = (
        input_text(input, "Username").unwrap_or(""),
        input_text(input, "Password").unwrap_or(""),
        text("CN"),
    );
    if !access_info_ok(&access, &format) {
        return Err(INVALID_PARAMETER);
    }
    let Some(port) = port else {
        return Err(INVALID_PARAMETER);
    };
    let ip = format != "201";
    if ip && (cn.is_empty() || cn.len() > 256) {
        return Err(INVALID_PARAMETER);
    }
    match auth.as_str() {
        "2" => {
            let user_ok =
                (1..=16).contains(&user.len()) && user.bytes().all(|b| b.is_ascii_alphanumeric());
            let password_ok = (1..=16).contains(&password.chars().count())
                && password.chars().all(|c| c.is_ascii_graphic());
            if !user_ok || !password_ok {
                return Err(INVALID_PARAMETER);
            }
        }
        // Mutual authentication needs a client certificate (whose key AMT holds) in the store.
        "1" => {
            let cert = super::super::model::input_ref(input, "Certificate").unwrap_or_default();
            let usable = super::keystore::certificate(fw, &cert).is_some_and(|c| {
                !super::keystore::is_trusted_root(c) && super::keystore::has_private_key(fw, c)
            });
            if !usable {
                return Err(INVALID_PARAMETER);
            }
        }
        _ => return Err(INVALID_PARAMETER),
    }
    let saps = list(&fw.profile, SAP);
    if saps.iter().any(|s| {
        prop(s, "AccessInfo").is_some_and(|a| a.eq_ignore_ascii_case(&access))
            && prop(s, "Port") == Some(port.to_string().as_str())
    }) {
        return Err(DUPLICATE);
    }
    if saps.len() >= MAX_TOTAL_MPS {
        return Err(MAX_LIMIT_REACHED);
    }
    let n = (0..)
        .find(|n| {
            let name = format!("Intel(r) AMT:Management Presence Server {n}");
            !saps.iter().any(|s| prop(s, "Name") == Some(name.as_str()))
        })
        .ok_or(INTERNAL_ERROR)?;
    let name = format!("Intel(r) AMT:Management Presence Server {n}");
    let mut sap = vec![("AccessInfo".to_string(), access.clone())];
    if ip {
        sap.push(("CN".into(), cn));
    }
    sap.extend(inst(&[
        ("CreationClassName", SAP),
        ("ElementName", "Intel(r) AMT:Management Presence Server"),
        ("InfoFormat", &format),
        ("Name", &name),
        ("Port", &port.to_string()),
        ("SystemCreationClassName", "CIM_ComputerSystem"),
        ("SystemName", "Intel(r) AMT"),
    ]));
    // The server's credential, and the association naming it (the MOF: "an
    // AMT_RemoteAccessCredentialContext association to a credential").
    let credential = if auth == "2" {
        let id = format!("Intel(r) AMT:MPS Username Password {n}");
        fw.profile
            .instances
            .entry(CREDENTIAL.into())
            .or_default()
            .push(vec![
                ("InstanceID".into(), id.clone()),
                ("RemoteID".into(), user.to_string()),
                (hidden("Secret"), super::secret_digest(password)),
            ]);
        epr(
            &format!("{}{CREDENTIAL}", ns::AMT_SCHEMA),
            "InstanceID",
            &id,
        )
    } else {
        let cert = super::super::model::input_ref(input, "Certificate").unwrap_or_default();
        epr(
            &format!("{}{}", ns::AMT_SCHEMA, super::keystore::CERTIFICATE),
            "InstanceID",
            &cert,
        )
    };
    let ins = &mut fw.profile.instances;
    ins.entry(SAP.into()).or_default().push(sap);
    ins.entry(CREDENTIAL_CONTEXT.into()).or_default().push(vec![
        ("ElementInContext".into(), credential),
        (
            "ElementProvidingContext".into(),
            epr(&format!("{}{SAP}", ns::AMT_SCHEMA), "Name", &name),
        ),
    ]);
    Ok(name)
}

/// Checks a rule's ExtendedData for its trigger: empty for user-initiated and alert rules; for a
/// periodic rule the type (0 interval, 1 daily) and its values, big-endian.
fn extended_data_ok(trigger: u32, data: &[u8]) -> bool {
    if data.len() > 32 {
        return false;
    }
    if trigger != 2 {
        return data.is_empty();
    }
    let word = |i: usize| {
        data.get(i * 4..i * 4 + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    match (word(0), word(1), word(2)) {
        (Some(0), Some(seconds), _) => seconds > 0 && data.len() == 8,
        (Some(1), Some(hour), Some(minute)) => hour < 24 && minute < 60 && data.len() == 12,
        _ => false,
    }
}

/// The servers a rule's `MpServer` references name (by their `Name` selector).
fn referenced_servers(input: Option<&Element>) -> Vec<String> {
    input
        .map(|i| {
            i.children_named("MpServer")
                .map(|m| {
                    m.find("SelectorSet")
                        .map(|s| {
                            s.children_named("Selector")
                                .find(|x| x.attr("Name") == Some("Name"))
                                .map(|x| x.text().to_string())
                                .unwrap_or_default()
                        })
                        .unwrap_or_else(|| m.text().to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `AddRemoteAccessPolicyRule(Trigger, TunnelLifeTime, ExtendedData, MpServer[])`.
fn add_policy_rule(fw: &mut FirmwareCore, input: Option<&Element>) -> Result<String, u32> {
    let trigger = input_text(input, "Trigger")
        .and_then(|t| t.trim().parse::<u32>().ok())
        .ok_or(INVALID_PARAMETER)?;
    let name = trigger_name(trigger).ok_or(INVALID_PARAMETER)?;
    let lifetime = input_text(input, "TunnelLifeTime")
        .and_then(|t| t.trim().parse::<u32>().ok())
        .ok_or(INVALID_PARAMETER)?;
    let extended = input_text(input, "ExtendedData").unwrap_or("").trim();
    let data = B64.decode(extended).map_err(|_| INVALID_PARAMETER)?;
    if !extended_data_ok(trigger, &data) {
        return Err(INVALID_PARAMETER);
    }
    let servers = referenced_servers(input);
    if servers.is_empty()
        || servers.len() > MAX_MPS_PER_POLICY
        || !servers.iter().all(|s| {
            list(&fw.profile, SAP)
                .iter()
                .any(|i| prop(i, "Name") == Some(s.as_str()))
        })
    {
        return Err(INVALID_PARAMETER);
    }
    let rules = list(&fw.profile, RULE);
    if rules
        .iter()
        .any(|r| prop(r, "PolicyRuleName") == Some(name))
    {
        return Err(DUPLICATE);
    }
    if rules.len() >= MAX_TOTAL_POLICIES {
        return Err(MAX_LIMIT_REACHED);
    }
    let ins = &mut fw.profile.instances;
    ins.entry(RULE.into()).or_default().push(inst(&[
        ("CreationClassName", RULE),
        // The fixtures' spelling (amt/remoteaccess/policyrule/get.xml).
        ("ElementName", "Inte(r) AMT:Remote Access Policy"),
        ("ExtendedData", &B64.encode(&data)),
        ("PolicyRuleName", name),
        ("SystemCreationClassName", "CIM_ComputerSystem"),
        ("SystemName", "Intel(r) AMT"),
        ("Trigger", &trigger.to_string()),
        ("TunnelLifeTime", &lifetime.to_string()),
    ]));
    let sap_uri = format!("{}{SAP}", ns::AMT_SCHEMA);
    let rule_uri = format!("{}{RULE}", ns::AMT_SCHEMA);
    for (order, server) in servers.iter().enumerate() {
        ins.entry(APPLIES.into()).or_default().push(vec![
            (
                "ManagedElement".into(),
                epr_set(&sap_uri, &sap_selectors(server)),
            ),
            // 0: the server is used outside the enterprise (the MOF's default).
            ("MpsType".into(), "0".into()),
            ("OrderOfAccess".into(), order.to_string()),
            (
                "PolicySet".into(),
                epr_set(&rule_uri, &rule_selectors(name)),
            ),
        ]);
    }
    Ok(name.to_string())
}

/// The methods of this area; `None` for another area's.
pub(super) fn invoke(
    fw: &mut FirmwareCore,
    class: &str,
    method: &str,
    input: Option<&Element>,
    _user: &str,
) -> Option<Vec<Param>> {
    let r = match (class, method) {
        (SERVICE, "AddMpServer") => match add_mp_server(fw, input) {
            Ok(name) => {
                fw.changed();
                created("MpServer", SAP, Some(&sap_selectors(&name)), 0)
            }
            Err(status) => {
                tracing::debug!(status, "AddMpServer refused");
                created("MpServer", SAP, None, status)
            }
        },
        (SERVICE, "AddRemoteAccessPolicyRule") => match add_policy_rule(fw, input) {
            Ok(name) => {
                fw.changed();
                created("PolicyRule", RULE, Some(&rule_selectors(&name)), 0)
            }
            Err(status) => {
                tracing::debug!(status, "AddRemoteAccessPolicyRule refused");
                created("PolicyRule", RULE, None, status)
            }
        },
        (UIC, "RequestStateChange") => {
            match input_text(input, "RequestedState").and_then(|s| s.trim().parse::<u32>().ok()) {
                Some(state @ 32768..=32771) => {
                    if let Some(i) = fw
                        .profile
                        .instances
                        .get_mut(UIC)
                        .and_then(|l| l.first_mut())
                    {
                        set_prop(i, "EnabledState", &state.to_string());
                        fw.changed();
                    }
                    ret(0)
                }
                _ => ret(INVALID_PARAMETER),
            }
        }
        _ => return None,
    };
    Some(r)
}

const ENV_RULES: &[PropRule] = &[
    rw("DetectionAlgorithm", Kind::OneOf(&[0, 1])),
    rw("DetectionStrings", Kind::Text(MAX_DETECTION_STRING_LEN)),
    rw("DetectionIPv6LocalPrefixes", Kind::Text(64)),
    ro("ElementName", Kind::Text(256)),
    ro("InstanceID", Kind::Text(256)),
];

const RULE_RULES: &[PropRule] = &[
    ro("CreationClassName", Kind::Text(256)),
    ro("ElementName", Kind::Text(256)),
    rw("ExtendedData", Kind::Text(48)),
    ro("PolicyRuleName", Kind::Text(256)),
    ro("SystemCreationClassName", Kind::Text(256)),
    ro("SystemName", Kind::Text(256)),
    ro("Trigger", Kind::Uint(0, 3)),
    rw("TunnelLifeTime", Kind::Uint(0, u32::MAX as u64)),
];

/// Everything of a server is set by AddMpServer; a Put may only repeat it (UNCONFIRMED).
const SAP_RULES: &[PropRule] = &[
    ro("AccessInfo", Kind::Text(256)),
    ro("CN", Kind::Text(256)),
    ro("CreationClassName", Kind::Text(256)),
    ro("ElementName", Kind::Text(256)),
    ro("InfoFormat", Kind::OneOf(&[3, 4, 201])),
    ro("Name", Kind::Text(256)),
    ro("Port", Kind::Uint(1, 65535)),
    ro("SystemCreationClassName", Kind::Text(256)),
    ro("SystemName", Kind::Text(256)),
];

const UIC_RULES: &[PropRule] = &[
    ro("CreationClassName", Kind::Text(256)),
    ro("ElementName", Kind::Text(256)),
    // Changed by RequestStateChange only.
    ro("EnabledState", Kind::Uint(32768, 32771)),
    ro("Name", Kind::Text(256)),
    ro("SystemCreationClassName", Kind::Text(256)),
    ro("SystemName", Kind::Text(256)),
];

/// The Put rules of this area's classes; `None` for another area's.
pub(super) fn check_put(
    class: &str,
    current: &Instance,
    body: &Element,
) -> Option<Result<(), PutRefusal>> {
    let r = match class {
        ENV => rules::check_put(class, ENV_RULES, current, body, true).and_then(|()| {
            let strings: Vec<&str> = body
                .children_named("DetectionStrings")
                .map(Element::text)
                .collect();
            if strings.len() > MAX_DETECTION_STRINGS {
                Err(PutRefusal::invalid(format!(
                    "at most {MAX_DETECTION_STRINGS} DetectionStrings, not {}",
                    strings.len()
                )))
            } else if let Some(bad) = strings
                .iter()
                .find(|s| !dns_name_ok(s, MAX_DETECTION_STRING_LEN))
            {
                Err(PutRefusal::invalid(format!(
                    "DetectionStrings '{bad}' is not a DNS domain"
                )))
            } else {
                Ok(())
            }
        }),
        RULE => rules::check_put(class, RULE_RULES, current, body, true).and_then(|()| {
            let trigger = prop(current, "Trigger")
                .and_then(|t| t.parse().ok())
                .unwrap_or(u32::MAX);
            let data = rules::after_put(current, body, "ExtendedData").unwrap_or("");
            match B64.decode(data.trim()) {
                Ok(d) if extended_data_ok(trigger, &d) => Ok(()),
                _ => Err(PutRefusal::invalid(format!(
                    "ExtendedData '{data}' does not fit trigger {trigger}"
                ))),
            }
        }),
        SAP => rules::check_put(class, SAP_RULES, current, body, true),
        UIC => rules::check_put(class, UIC_RULES, current, body, true),
        _ => return None,
    };
    Some(r)
}

/// The key `key` of the reference `property` in a Put body: its selector of that name, or else a
/// selector without a name whose value is one of `known` (RPS parses AMT's answers with xml2js
/// `ignoreAttrs`, so the references it Puts back have lost their selector names).
fn reference_key<'a>(
    body: &'a Element,
    property: &str,
    key: &str,
    known: &[&str],
) -> Option<&'a str> {
    let set = body.child(property)?.find("SelectorSet")?;
    set.children_named("Selector")
        .find(|s| s.attr("Name") == Some(key))
        .or_else(|| {
            set.children_named("Selector")
                .find(|s| s.attr("Name").is_none() && known.contains(&s.text()))
        })
        .map(Element::text)
}

fn stored_reference_key<'a>(i: &'a Instance, property: &str, key: &str) -> Option<&'a str> {
    let (_, set) = epr_set_parts(prop(i, property)?)?;
    set.into_iter().find(|(n, _)| *n == key).map(|(_, v)| v)
}

const APPLIES_RULES: &[PropRule] = &[
    rw("MpsType", Kind::OneOf(&[0, 1, 2])),
    rw(
        "OrderOfAccess",
        Kind::Uint(0, MAX_MPS_PER_POLICY as u64 - 1),
    ),
];

/// A Put of an association: the instance is the one whose server and rule the body's
/// `ManagedElement` and `PolicySet` name (RPS adds them as selectors too, go-wsman-messages
/// sends none); only `MpsType` and `OrderOfAccess` change. `None` for another class.
pub(super) fn put_by_body(
    fw: &mut FirmwareCore,
    class: &str,
    body: &Element,
) -> Option<Result<(), PutRefusal>> {
    if class != APPLIES {
        return None;
    }
    // rpc-go's ManagedElement carries the ResourceURI only: the rule then decides, and a rule
    // applied to two servers is ambiguous. RPS's header selectors are not used: it writes a fixed
    // server 0 and, having lost the names, "undefined" for the rule (ciraConfiguration.ts).
    let servers: Vec<&str> = list(&fw.profile, SAP)
        .iter()
        .filter_map(|i| prop(i, "Name"))
        .collect();
    let rules: Vec<&str> = list(&fw.profile, RULE)
        .iter()
        .filter_map(|i| prop(i, "PolicyRuleName"))
        .collect();
    let server = reference_key(body, "ManagedElement", "Name", &servers);
    let Some(rule) = reference_key(body, "PolicySet", "PolicyRuleName", &rules) else {
        return Some(Err(PutRefusal::invalid(
            "PolicySet must reference a remote access policy rule (PolicyRuleName)",
        )));
    };
    let hits: Vec<usize> = list(&fw.profile, APPLIES)
        .iter()
        .enumerate()
        .filter(|(_, i)| {
            stored_reference_key(i, "PolicySet", "PolicyRuleName") == Some(rule)
                && server
                    .is_none_or(|s| stored_reference_key(i, "ManagedElement", "Name") == Some(s))
        })
        .map(|(n, _)| n)
        .collect();
    let [at] = hits[..] else {
        return Some(Err(PutRefusal::invalid(format!(
            "the rule '{rule}' applies to {} server(s) matching ManagedElement, not one",
            hits.len()
        ))));
    };
    let mut values = Vec::new();
    for c in &body.children {
        if matches!(c.name.as_str(), "ManagedElement" | "PolicySet") {
            continue;
        }
        let Some(rule) = APPLIES_RULES.iter().find(|r| r.name == c.name) else {
            return Some(Err(PutRefusal::invalid(format!(
                "{APPLIES} has no property {} a Put may set",
                c.name
            ))));
        };
        let ok = match rule.kind {
            Kind::OneOf(set) => c.text().parse::<u64>().is_ok_and(|n| set.contains(&n)),
            Kind::Uint(lo, hi) => c
                .text()
                .parse::<u64>()
                .is_ok_and(|n| (lo..=hi).contains(&n)),
            _ => false,
        };
        if !ok {
            return Some(Err(PutRefusal::invalid(format!(
                "{APPLIES}.{} cannot be '{}'",
                c.name,
                c.text()
            ))));
        }
        values.push((c.name.clone(), c.text().to_string()));
    }
    let target = &mut fw.profile.instances.get_mut(APPLIES).expect("found above")[at];
    for (k, v) in values {
        set_prop(target, &k, &v);
    }
    Some(Ok(()))
}

/// A server a rule applies to cannot be deleted; `None` for another class.
pub(super) fn check_delete(
    fw: &FirmwareCore,
    class: &str,
    doomed: &Instance,
) -> Option<Result<(), PutRefusal>> {
    if class != SAP {
        return None;
    }
    let name = prop(doomed, "Name").unwrap_or_default();
    let rule = list(&fw.profile, APPLIES)
        .iter()
        .find(|a| stored_reference_key(a, "ManagedElement", "Name") == Some(name))
        .and_then(|a| stored_reference_key(a, "PolicySet", "PolicyRuleName"));
    Some(match rule {
        Some(r) => Err(PutRefusal::denied(format!(
            "the remote access policy '{r}' applies to {name}: delete the policy first"
        ))),
        None => Ok(()),
    })
}

/// What goes with deleted instances: a rule's associations, a server's credential.
pub(super) fn after_delete(fw: &mut FirmwareCore, class: &str, removed: &[Instance]) {
    let names: Vec<String> = removed
        .iter()
        .filter_map(|i| {
            prop(
                i,
                match class {
                    SAP => "Name",
                    _ => "PolicyRuleName",
                },
            )
        })
        .map(str::to_string)
        .collect();
    let ins = &mut fw.profile.instances;
    match class {
        RULE => {
            if let Some(l) = ins.get_mut(APPLIES) {
                l.retain(|a| {
                    !stored_reference_key(a, "PolicySet", "PolicyRuleName")
                        .is_some_and(|r| names.iter().any(|n| n == r))
                });
            }
        }
        SAP => {
            let (contexts, kept): (Vec<Instance>, Vec<Instance>) = ins
                .remove(CREDENTIAL_CONTEXT)
                .unwrap_or_default()
                .into_iter()
                .partition(|c| {
                    prop(c, "ElementProvidingContext")
                        .and_then(epr_parts)
                        .is_some_and(|(_, _, sap)| names.iter().any(|n| n == sap))
                });
            ins.insert(CREDENTIAL_CONTEXT.into(), kept);
            let gone: Vec<String> = contexts
                .iter()
                .filter_map(|c| prop(c, "ElementInContext").and_then(epr_parts))
                .filter(|(uri, _, _)| uri.ends_with(CREDENTIAL))
                .map(|(_, _, id)| id.to_string())
                .collect();
            if let Some(l) = ins.get_mut(CREDENTIAL) {
                l.retain(|c| !prop(c, "InstanceID").is_some_and(|i| gone.iter().any(|g| g == i)));
            }
        }
        _ => {}
    }
}

/// What GET_REMOTE_ACCESS_CONNECTION_STATUS reports once an MPS is configured: the network
/// status from environment detection (0 inside the enterprise when the DHCP domain is one of the
/// detection domains or none is set, 2 outside otherwise) and the first server a policy applies
/// to, by its AccessInfo, while a LAN link is up (rpc-go issue #1140: the hostname is not
/// reported with the link down). `None` without a configured server: the profile's own values
/// stand. UNCONFIRMED: firmware's choice among several servers, and its answer before a first
/// connection attempt.
pub fn remote_access_status(p: &DeviceProfile) -> Option<(u32, String)> {
    let server = list(p, APPLIES)
        .iter()
        .filter_map(|a| stored_reference_key(a, "ManagedElement", "Name"))
        .find_map(|n| {
            list(p, SAP)
                .iter()
                .find(|s| prop(s, "Name") == Some(n))
                .and_then(|s| prop(s, "AccessInfo"))
        })?;
    let domains: Vec<&str> = list(p, ENV)
        .first()
        .map(|e| {
            e.iter()
                .filter(|(k, _)| k == "DetectionStrings")
                .map(|(_, v)| v.as_str())
                .collect()
        })
        .unwrap_or_default();
    let suffix = p.dhcp_dns_suffix.to_ascii_lowercase();
    let inside = domains.is_empty()
        || domains.iter().any(|d| {
            let d = d.to_ascii_lowercase();
            suffix == d || suffix.ends_with(&format!(".{d}"))
        });
    let link = p.wired.link_up || p.wireless.link_up;
    Some((
        if inside { 0 } else { 2 },
        if link {
            server.to_string()
        } else {
            String::new()
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn extended_data_follows_the_trigger() {
        // RPS's and rpc-go's periodic rule: AAAAAAAAABk= = interval type, 25 s.
        assert!(extended_data_ok(2, &B64.decode("AAAAAAAAABk=").unwrap()));
        assert!(extended_data_ok(2, &be(&[1, 23, 59])));
        assert!(!extended_data_ok(2, &be(&[1, 24, 0])));
        assert!(!extended_data_ok(2, &be(&[0, 0])));
        assert!(!extended_data_ok(2, &be(&[2, 5])));
        assert!(!extended_data_ok(2, &[]));
        assert!(extended_data_ok(0, &[]));
        assert!(!extended_data_ok(0, &be(&[0, 25])));
    }

    #[test]
    fn access_info_must_be_written_as_its_format_says() {
        assert!(access_info_ok("192.168.0.208", "3"));
        assert!(!access_info_ok("mps.example.com", "3"));
        assert!(access_info_ok("fd00::1", "4"));
        assert!(access_info_ok("mps.example.com", "201"));
        assert!(!access_info_ok("mps_example.com", "201"));
        assert!(!access_info_ok("-mps.example.com", "201"));
        assert!(!access_info_ok("mps.example.com", "5"));
    }
}
