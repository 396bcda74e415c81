//! Activation and its undoing: `IPS_HostBasedSetupService` (Setup, AdminSetup, AddNextCertInChain,
//! UpgradeClientToAdmin), `AMT_SetupAndConfigurationService` (Unprovision, CommitChanges,
//! SetMEBxPassword, GetUuid) and `AMT_AuthorizationService` (SetAdminAclEntryEx).

use base64::Engine as _;
use rand::RngCore;

use super::super::model::{input_text, inst, ret, Instance};
use super::super::{ADMIN_USER, LSA_USER};
use crate::sim::FirmwareCore;
use crate::wsman::envelope::{Element, Param};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Computed classes: their instance reflects the firmware's state at each read.
/// `read`: the instance is being read (Get/Enumerate): only a read draws a new ConfigurationNonce,
/// so AddNextCertInChain and AdminSetup keep the nonce the caller read and signed.
pub(super) fn computed(fw: &mut FirmwareCore, class: &str, read: bool) -> Option<Instance> {
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
        "AMT_AuthorizationService" => Some(inst(&[
            ("CreationClassName", class),
            ("ElementName", &format!("Intel(r) AMT {class}")),
            ("Name", &format!("Intel(r) AMT {class}")),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "Intel(r) AMT"),
        ])),
        _ => None,
    }
}

/// Activation, unprovisioning, the admin ACL entry; `None` when the method is not one of this area's.
pub(super) fn invoke(
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
            ret(crate::sim::certs::add_next_cert(fw, cert, leaf, root))
        }
        ("IPS_HostBasedSetupService", "AdminSetup") if fw.profile.version_parts().0 >= 19 => {
            // Removed from CSME 19+ (rpc-go issue #355): ActionNotSupported.
            return None;
        }
        ("IPS_HostBasedSetupService", "AdminSetup") => {
            let pw = input_text(input, "NetworkAdminPassword")
                .unwrap_or("")
                .to_string();
            let v = crate::sim::certs::admin_setup(fw, input, user, false);
            if v == 0 {
                fw.profile.admin_ha1 = pw.to_ascii_lowercase();
            }
            ret(v)
        }
        ("IPS_HostBasedSetupService", "UpgradeClientToAdmin") => {
            ret(crate::sim::certs::admin_setup(fw, input, user, true))
        }
        ("AMT_SetupAndConfigurationService", "Unprovision") => {
            if user != ADMIN_USER {
                ret(16)
            } else {
                super::unprovision(&mut fw.profile);
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
        ("AMT_SetupAndConfigurationService", "CommitChanges")
            if crate::sim::certs::hbased_open(fw) =>
        {
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
                super::tls::commit(&mut fw.profile);
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
                }
                // The TLS settings written since the last commit take effect now.
                super::tls::commit(&mut fw.profile);
                fw.changed();
                ret(0)
            }
        }
        ("AMT_SetupAndConfigurationService", "SetMEBxPassword") => {
            let pw = input_text(input, "Password").unwrap_or("");
            let hbased_admin = crate::sim::certs::hbased_open(fw)
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
                            || (crate::sim::certs::hbased_open(fw) && user == LSA_USER)) =>
                {
                    fw.profile.admin_ha1 = crate::amthi::codec::hex(&raw);
                    fw.changed();
                    ret(0)
                }
                Ok(_) | Err(_) => ret(36), // INVALID_PARAMETER
            }
        }
        _ => return None,
    };
    Some(r)
}
