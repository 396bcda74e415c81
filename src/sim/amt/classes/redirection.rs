//! Redirection and user consent: `AMT_RedirectionService` (SOL, IDER), `CIM_KVMRedirectionSAP`,
//! `IPS_KVMRedirectionSettingData`, `IPS_OptInService`; their Put rules ([`check_put`]) and
//! RequestStateChange rules (rps-protocol.md §3, §5.1 step 6).

use super::super::model::{input_text, inst, prop, ret, set_prop, Instance};
use super::rules::{self, ro, rw, Kind, PropRule, PutRefusal};
use crate::sim::profile::DeviceProfile;
use crate::sim::FirmwareCore;
use crate::wsman::envelope::{Element, Param};

/// Factory state: redirection and KVM off, user consent required for everything.
pub(super) fn seed(p: &mut DeviceProfile) {
    let ins = &mut p.instances;
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
        "IPS_KVMRedirectionSettingData".into(),
        // go-wsman-messages' ips/kvmredirection/settings/get.xml, with RFBPassword empty.
        vec![inst(&[
            ("BackToBackFbMode", "false"),
            ("DefaultScreen", "0"),
            ("ElementName", "Intel(r) KVM Redirection Settings"),
            ("EnabledByMEBx", "true"),
            ("InstanceID", "Intel(r) KVM Redirection Settings"),
            ("Is5900PortEnabled", "false"),
            ("OptInPolicy", "true"),
            ("OptInPolicyTimeout", "300"),
            ("RFBPassword", ""),
            ("SessionTimeout", "3"),
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
}

const REDIRECTION: &[PropRule] = &[
    ro("CreationClassName", Kind::Text(256)),
    ro("ElementName", Kind::Text(256)),
    // Changed by RequestStateChange; a Put may only repeat it (RPS Puts it after the change).
    ro("EnabledState", Kind::Uint(32768, 32771)),
    rw("ListenerEnabled", Kind::Bool),
    // Written by RPS's Put from what it read; the firmware's value stands.
    ro("AccessLog", Kind::Text(256)),
    ro("Name", Kind::Text(256)),
    ro("SystemCreationClassName", Kind::Text(256)),
    ro("SystemName", Kind::Text(256)),
];

const KVM_SETTINGS: &[PropRule] = &[
    rw("BackToBackFbMode", Kind::Bool),
    rw("DefaultScreen", Kind::Uint(0, 255)),
    ro("ElementName", Kind::Text(256)),
    // Only MEBx (the user at the machine) turns KVM on or off for remote use.
    ro("EnabledByMEBx", Kind::Bool),
    ro("InstanceID", Kind::Text(256)),
    rw("Is5900PortEnabled", Kind::Bool),
    rw("OptInPolicy", Kind::Bool),
    rw("OptInPolicyTimeout", Kind::Uint(0, 65535)),
    rw("RFBPassword", Kind::Secret(8)),
    rw("SessionTimeout", Kind::Uint(0, 65535)),
    rw("InitialDecimationModeForLowRes", Kind::Uint(0, 255)),
    rw("GreyscalePixelFormatSupported", Kind::Bool),
    rw("ZlibControlSupported", Kind::Bool),
    rw("DoubleBufferMode", Kind::Bool),
    rw("DoubleBufferState", Kind::Bool),
];

/// `OptInRequired`: 0 none, 1 KVM, 4294967295 all.
const OPT_IN_VALUES: &[u64] = &[0, 1, 4_294_967_295];

const OPT_IN: &[PropRule] = &[
    ro("CanModifyOptInPolicy", Kind::Uint(0, 1)),
    ro("CreationClassName", Kind::Text(256)),
    ro("ElementName", Kind::Text(256)),
    ro("Name", Kind::Text(256)),
    rw("OptInCodeTimeout", Kind::Uint(60, 900)),
    rw("OptInDisplayTimeout", Kind::Uint(0, 65535)),
    rw("OptInRequired", Kind::OneOf(OPT_IN_VALUES)),
    ro("OptInState", Kind::Uint(0, 4)),
    ro("SystemCreationClassName", Kind::Text(256)),
    ro("SystemName", Kind::Text(256)),
];

/// The Put rules of this area's classes; `None` for a class of another area.
pub(super) fn check_put(
    fw: &FirmwareCore,
    class: &str,
    current: &Instance,
    body: &Element,
) -> Option<Result<(), PutRefusal>> {
    let r = match class {
        "AMT_RedirectionService" => rules::check_put(class, REDIRECTION, current, body, true),
        "IPS_KVMRedirectionSettingData" => {
            rules::check_put(class, KVM_SETTINGS, current, body, true)
        }
        "IPS_OptInService" => rules::check_put(class, OPT_IN, current, body, true).and_then(|()| {
            // In client control mode the user at the machine must consent to every redirection:
            // firmware keeps OptInRequired at "all" there (RPS only allows "All" in CCM profiles).
            let v = rules::after_put(current, body, "OptInRequired");
            if fw.profile.control_mode == 1 && v != Some("4294967295") {
                Err(PutRefusal::denied(
                    "OptInRequired must stay 4294967295 (all) in client control mode",
                ))
            } else if prop(current, "CanModifyOptInPolicy") == Some("0")
                && v != prop(current, "OptInRequired")
            {
                Err(PutRefusal::denied(
                    "the opt-in policy cannot be modified on this platform",
                ))
            } else {
                Ok(())
            }
        }),
        _ => return None,
    };
    Some(r)
}

/// RequestStateChange of the redirection service and the KVM access point; `None` when the method
/// is not one of this area's. The redirection service takes 32768–32771 (else INVALID_PARAMETER,
/// PT_STATUS 36); the KVM access point 2 (enabled) or 3 (disabled), else CIM's Invalid Parameter
/// (5), and enabling KVM that MEBx disabled is CIM's Invalid State Transition (4097, UNCONFIRMED).
pub(super) fn invoke(
    fw: &mut FirmwareCore,
    class: &str,
    method: &str,
    input: Option<&Element>,
    _user: &str,
) -> Option<Vec<Param>> {
    let r = match (class, method) {
        ("AMT_RedirectionService", "RequestStateChange") => {
            match input_text(input, "RequestedState").and_then(|s| s.parse::<u32>().ok()) {
                Some(state @ 32768..=32771) => {
                    set_state(fw, class, &state.to_string());
                    ret(0)
                }
                _ => ret(36),
            }
        }
        ("CIM_KVMRedirectionSAP", "RequestStateChange") => {
            let by_mebx = fw
                .profile
                .instances
                .get("IPS_KVMRedirectionSettingData")
                .and_then(|l| l.first())
                .and_then(|i| prop(i, "EnabledByMEBx"))
                != Some("false");
            match input_text(input, "RequestedState") {
                Some("2") if !by_mebx => ret(4097),
                Some(state @ ("2" | "3")) => {
                    let state = state.to_string();
                    set_state(fw, class, &state);
                    ret(0)
                }
                _ => ret(5),
            }
        }
        _ => return None,
    };
    Some(r)
}

fn set_state(fw: &mut FirmwareCore, class: &str, state: &str) {
    if let Some(i) = fw
        .profile
        .instances
        .get_mut(class)
        .and_then(|l| l.first_mut())
    {
        set_prop(i, "EnabledState", state);
        if class == "CIM_KVMRedirectionSAP" {
            set_prop(i, "RequestedState", state);
        }
        fw.changed();
    }
}
