//! General settings and the clock: `AMT_GeneralSettings`, `AMT_TimeSynchronizationService`.

use super::super::model::{input_text, inst, prop, ret, Instance};
use crate::sim::profile::DeviceProfile;
use crate::sim::FirmwareCore;
use crate::wsman::envelope::{Element, Param};

/// `AMT_GeneralSettings` as a factory-fresh firmware has it (the AMT 15 capture's shape).
pub(super) fn seed(p: &mut DeviceProfile) {
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
}

/// `AMT_TimeSynchronizationService`: a service instance computed at each read.
pub(super) fn computed(class: &str) -> Option<Instance> {
    (class == "AMT_TimeSynchronizationService").then(|| {
        inst(&[
            ("CreationClassName", class),
            ("ElementName", &format!("Intel(r) AMT {class}")),
            ("Name", &format!("Intel(r) AMT {class}")),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "Intel(r) AMT"),
        ])
    })
}

/// The clock; `None` when the method is not one of this area's.
pub(super) fn invoke(
    _fw: &mut FirmwareCore,
    class: &str,
    method: &str,
    input: Option<&Element>,
    _user: &str,
) -> Option<Vec<Param>> {
    let r = match (class, method) {
        ("AMT_TimeSynchronizationService", "GetLowAccuracyTimeSynch") => {
            vec![
                Param::text("Ta0", super::super::now_unix()),
                Param::text("ReturnValue", 0),
            ]
        }
        ("AMT_TimeSynchronizationService", "SetHighAccuracyTimeSynch") => {
            let ok = ["Ta0", "Tm1", "Tm2"]
                .iter()
                .all(|k| input_text(input, k).is_some_and(|v| v.parse::<u64>().is_ok()));
            ret(if ok { 0 } else { 36 })
        }
        _ => return None,
    };
    Some(r)
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
