//! Redirection and user consent: `AMT_RedirectionService` (SOL, IDER), `CIM_KVMRedirectionSAP`,
//! `IPS_OptInService`.

use super::super::model::{input_text, inst, ret, set_prop};
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

/// RequestStateChange of the redirection service and the KVM access point; `None` when the method is not one of this area's.
pub(super) fn invoke(
    fw: &mut FirmwareCore,
    class: &str,
    method: &str,
    input: Option<&Element>,
    _user: &str,
) -> Option<Vec<Param>> {
    let r = match (class, method) {
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
