//! General settings and the clock: `AMT_GeneralSettings`, `AMT_TimeSynchronizationService`.

use super::super::model::{input_text, inst, prop, ret, Instance};
use super::rules::{self, ro, rw, Kind, PropRule, PutRefusal};
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

const GENERAL_SETTINGS: &[PropRule] = &[
    rw("AMTNetworkEnabled", Kind::Uint(0, 1)),
    rw("DDNSPeriodicUpdateInterval", Kind::Uint(0, 4_294_967_295)),
    rw("DDNSTTL", Kind::Uint(0, 4_294_967_295)),
    rw("DDNSUpdateByDHCPServerEnabled", Kind::Bool),
    rw("DDNSUpdateEnabled", Kind::Bool),
    rw("DHCPSyncRequiresHostname", Kind::Uint(0, 1)),
    rw("DHCPv6ConfigurationTimeout", Kind::Uint(0, 4_294_967_295)),
    ro("DigestRealm", Kind::Text(64)),
    rw("DomainName", Kind::Text(191)),
    ro("ElementName", Kind::Text(256)),
    rw("HostName", Kind::Text(63)),
    ro("HostOSFQDN", Kind::Text(256)),
    rw("IdleWakeTimeout", Kind::Uint(1, 65535)),
    ro("InstanceID", Kind::Text(256)),
    ro("NetworkInterfaceEnabled", Kind::Bool),
    rw("PingResponseEnabled", Kind::Bool),
    ro("PowerSource", Kind::Uint(0, 255)),
    rw("PreferredAddressFamily", Kind::Uint(0, 1)),
    rw("PresenceNotificationInterval", Kind::Uint(0, 65535)),
    rw("PrivacyLevel", Kind::Uint(0, 2)),
    rw("RmcpPingResponseEnabled", Kind::Bool),
    rw("SharedFQDN", Kind::Bool),
    rw("ThunderboltDockEnabled", Kind::Uint(0, 2)),
    rw("WsmanOnlyMode", Kind::Bool),
];

/// A DNS label: letters, digits and hyphens, 1–63, no hyphen at either end.
fn dns_label(l: &str) -> bool {
    (1..=63).contains(&l.len())
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

/// `AMT_GeneralSettings` Put rules: the schema (other properties pass: firmware versions add
/// some), HostName one DNS label (or empty), DomainName DNS labels (or empty). UNCONFIRMED: the
/// exact character rules firmware applies.
pub(super) fn check_put(
    class: &str,
    current: &Instance,
    body: &Element,
) -> Option<Result<(), PutRefusal>> {
    if class != "AMT_GeneralSettings" {
        return None;
    }
    let r = rules::check_put(class, GENERAL_SETTINGS, current, body, false).and_then(|()| {
        match (body.child_text("HostName"), body.child_text("DomainName")) {
            (Some(h), _) if !h.is_empty() && !dns_label(h) => Err(PutRefusal::invalid(format!(
                "AMT_GeneralSettings.HostName '{h}' is not a DNS label"
            ))),
            (_, Some(d)) if !d.is_empty() && !d.split('.').all(dns_label) => {
                Err(PutRefusal::invalid(format!(
                    "AMT_GeneralSettings.DomainName '{d}' is not a DNS name"
                )))
            }
            _ => Ok(()),
        }
    });
    Some(r)
}

/// AMT's clock: the host's plus the profile's offset.
fn amt_now(fw: &FirmwareCore) -> i64 {
    super::super::now_unix() as i64 + fw.profile.clock_offset_secs
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
    fw: &mut FirmwareCore,
    class: &str,
    method: &str,
    input: Option<&Element>,
    _user: &str,
) -> Option<Vec<Param>> {
    let r = match (class, method) {
        ("AMT_TimeSynchronizationService", "GetLowAccuracyTimeSynch") => {
            vec![
                Param::text("Ta0", amt_now(fw).max(0)),
                Param::text("ReturnValue", 0),
            ]
        }
        ("AMT_TimeSynchronizationService", "SetHighAccuracyTimeSynch") => {
            // Ta0 is the time GetLowAccuracyTimeSynch gave: no later than AMT's clock and read
            // within the last 5 minutes; Tm1 <= Tm2 (the host's clock when it sent Ta0's request
            // and this one). Else INVALID_PARAMETER (36). UNCONFIRMED: firmware's exact window.
            let num = |k| input_text(input, k).and_then(|v| v.parse::<u32>().ok());
            match (num("Ta0"), num("Tm1"), num("Tm2")) {
                (Some(ta0), Some(tm1), Some(tm2))
                    if i64::from(ta0) <= amt_now(fw)
                        && amt_now(fw) - i64::from(ta0) <= 300
                        && tm1 <= tm2 =>
                {
                    fw.profile.clock_offset_secs = i64::from(tm2) - super::super::now_unix() as i64;
                    fw.changed();
                    ret(0)
                }
                _ => ret(36),
            }
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
