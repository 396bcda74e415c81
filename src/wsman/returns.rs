//! Method `ReturnValue`s (provisioning.md §1.2, §1.4). `IPS_HostBasedSetupService` methods use their
//! own small enumerations, which are **not** PT_STATUS: decoding `AddNextCertInChain` 4 with the
//! generic table would print `INVALID_MESSAGE_LENGTH` instead of `CERT_VERIFY_FAILED`. Generic AMT
//! methods use [`PtStatus`]. [`describe`] picks the right decoder from class and method.
//!
//! The Intel-style upper-case names are the MOF `Values{}` spellings where quoted by users and
//! derived by analogy otherwise (provisioning.md §1.2: exact MOF strings UNCONFIRMED).

use crate::amthi::PtStatus;
use crate::code_enum::code_enum;

/// A method's ReturnValue map: [`code_enum!`] with meanings, and `is_success` (0).
macro_rules! return_map {
    ($(#[$doc:meta])* $ty:ident { $($map:tt)* }) => {
        code_enum! {
            $(#[$doc])*
            $ty, unknown = "a value outside this method's documented map" { $($map)* }
        }

        impl $ty {
            pub fn is_success(self) -> bool {
                self.code() == 0
            }
        }
    };
}

return_map! {
    /// `IPS_HostBasedSetupService.Setup` (CCM activation), go-wsman `SetupReturnValue`.
    SetupReturn {
        Success = 0 => "SUCCESS", "client control mode activation succeeded";
        InternalError = 1 => "INTERNAL_ERROR", "the firmware hit an internal error";
        InvalidState = 2 => "INVALID_STATE", "AMT is not in a state that allows Setup (already provisioned, or provisioning in progress)";
        InvalidParam = 3 => "INVALID_PARAM", "a parameter is invalid (password hash format or encryption type)";
        MethodDisabled = 4 => "METHOD_DISABLED", "host-based client control mode setup is disabled on this device";
        AuthFailed = 5 => "AUTH_FAILED", "the caller is not authorised for Setup";
        FlashWriteLimitExceeded = 6 => "FLASH_WRITE_LIMIT_EXCEEDED", "flash wear-out protection: too many writes, wait and retry";
    }
}

return_map! {
    /// `IPS_HostBasedSetupService.AdminSetup` (ACM activation), go-wsman `AdminSetupReturnValue`:
    /// the Setup map with value 4 undefined.
    AdminSetupReturn {
        Success = 0 => "SUCCESS", "admin control mode activation succeeded";
        InternalError = 1 => "INTERNAL_ERROR", "the firmware hit an internal error";
        InvalidState = 2 => "INVALID_STATE", "AMT is not in a state that allows AdminSetup (already provisioned, or the certificate chain is incomplete)";
        InvalidParam = 3 => "INVALID_PARAM", "a parameter is invalid (signing algorithm, nonce or password hash)";
        AuthFailed = 5 => "AUTH_FAILED", "the signature over ConfigurationNonce||McNonce did not verify with the provisioning certificate";
        FlashWriteLimitExceeded = 6 => "FLASH_WRITE_LIMIT_EXCEEDED", "flash wear-out protection: too many writes, wait and retry";
    }
}

/// `IPS_HostBasedSetupService.UpgradeClientToAdmin` (CCM → ACM). No dedicated map exists in any
/// examined source; it is read with the AdminSetup map, the consistent reading of the field
/// reports (provisioning.md §1.2, §3.5). **UNCONFIRMED.**
pub type UpgradeClientToAdminReturn = AdminSetupReturn;

return_map! {
    /// `IPS_HostBasedSetupService.AddNextCertInChain`, go-wsman `AddNextCertInChainReturnValue`.
    /// Note the order of 1/2/3 differs from Setup.
    AddNextCertInChainReturn {
        Success = 0 => "SUCCESS", "the certificate was added to the chain";
        InvalidParam = 1 => "INVALID_PARAM", "the certificate or its leaf/root flags are invalid (bad base64 or DER)";
        InternalError = 2 => "INTERNAL_ERROR", "the firmware hit an internal error";
        InvalidState = 3 => "INVALID_STATE", "AMT is not expecting a certificate now (already provisioned, or chain sent out of order)";
        CertVerifyFailed = 4 => "CERT_VERIFY_FAILED", "the chain did not verify: root hash not trusted, wrong order, missing AMT provisioning OID/OU, or wrong domain suffix";
        CertChainLengthExceeded = 5 => "CERT_CHAIN_LENGTH_EXCEEDED", "too many certificates in the chain";
    }
}

return_map! {
    /// `AMT_WiFiPortConfigurationService.AddWiFiSettings`'s own values 0–4 (go-wsman-messages
    /// `wifiportconfiguration.ReturnValue`); the firmware answers PT_STATUS values above 2048
    /// (duplicate, priority) as well, read with [`PtStatus`] by [`describe`].
    AddWiFiSettingsReturn {
        CompletedNoError = 0 => "COMPLETED_NO_ERROR", "the profile was added";
        NotSupported = 1 => "NOT_SUPPORTED", "this platform has no Wi-Fi AMT can use";
        Failed = 2 => "FAILED", "the firmware could not add the profile";
        InvalidParameter = 3 => "INVALID_PARAMETER", "a profile field is out of range (name, SSID, priority, method, passphrase, 802.1X settings)";
        InvalidReference = 4 => "INVALID_REFERENCE", "a referenced endpoint or certificate is not there or not usable (client certificate without its key, CA not a trusted root)";
    }
}

/// `IPS_HostBasedSetupService` ResourceURI class name.
pub const HOST_BASED_SETUP_SERVICE: &str = "IPS_HostBasedSetupService";

/// Name and meaning of `value` returned by `class.method` (class by name, e.g.
/// `IPS_HostBasedSetupService`, or a full ResourceURI). HostBasedSetup methods use their own maps;
/// other AMT_/IPS_ methods the generic PT_STATUS table; CIM_ methods have CIM ValueMaps that this
/// agent does not decode (the name is then `UNDECODED`).
pub fn describe(class: &str, method: &str, value: u32) -> (&'static str, &'static str) {
    let class = class.rsplit('/').next().unwrap_or(class);
    if class == HOST_BASED_SETUP_SERVICE {
        match method {
            "Setup" => {
                let r = SetupReturn::from_u32(value);
                return (r.name(), r.meaning());
            }
            "AdminSetup" | "UpgradeClientToAdmin" => {
                let r = AdminSetupReturn::from_u32(value);
                return (r.name(), r.meaning());
            }
            "AddNextCertInChain" => {
                let r = AddNextCertInChainReturn::from_u32(value);
                return (r.name(), r.meaning());
            }
            _ => {}
        }
    }
    if class == "AMT_WiFiPortConfigurationService" && method == "AddWiFiSettings" && value < 2048 {
        let r = AddWiFiSettingsReturn::from_u32(value);
        return (r.name(), r.meaning());
    }
    if class.starts_with("CIM_") {
        return if value == 0 {
            ("SUCCESS", "the method completed")
        } else {
            (
                "UNDECODED",
                "a CIM method status (CIM ValueMap, not PT_STATUS)",
            )
        };
    }
    let s = PtStatus::from_u32(value);
    (s.name(), s.meaning())
}

/// `Method returned NAME (n)`, the agent's one-line rendering of a non-zero ReturnValue.
pub fn render(class: &str, method: &str, value: u32) -> String {
    format!(
        "{method} returned {} ({value})",
        describe(class, method, value).0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wsman_setup_map() {
        let names: Vec<String> = (0..8)
            .map(|v| SetupReturn::from_u32(v).to_string())
            .collect();
        assert_eq!(
            names,
            [
                "SUCCESS (0)",
                "INTERNAL_ERROR (1)",
                "INVALID_STATE (2)",
                "INVALID_PARAM (3)",
                "METHOD_DISABLED (4)",
                "AUTH_FAILED (5)",
                "FLASH_WRITE_LIMIT_EXCEEDED (6)",
                "UNKNOWN (7)"
            ]
        );
        assert!(SetupReturn::Success.is_success());
    }

    #[test]
    fn wsman_admin_setup_map_has_no_value_4() {
        assert_eq!(AdminSetupReturn::from_u32(4), AdminSetupReturn::Unknown(4));
        assert_eq!(AdminSetupReturn::from_u32(4).to_string(), "UNKNOWN (4)");
        assert_eq!(AdminSetupReturn::from_u32(5), AdminSetupReturn::AuthFailed);
        assert_eq!(
            AdminSetupReturn::from_u32(6).name(),
            "FLASH_WRITE_LIMIT_EXCEEDED"
        );
        for v in 0..100 {
            assert_eq!(AdminSetupReturn::from_u32(v).code(), v);
        }
    }

    #[test]
    fn wsman_add_next_cert_in_chain_map_has_its_own_order() {
        let names: Vec<&str> = (0..6)
            .map(|v| AddNextCertInChainReturn::from_u32(v).name())
            .collect();
        assert_eq!(
            names,
            [
                "SUCCESS",
                "INVALID_PARAM",
                "INTERNAL_ERROR",
                "INVALID_STATE",
                "CERT_VERIFY_FAILED",
                "CERT_CHAIN_LENGTH_EXCEEDED"
            ]
        );
        assert_eq!(
            AddNextCertInChainReturn::CertVerifyFailed.to_string(),
            "CERT_VERIFY_FAILED (4)"
        );
    }

    #[test]
    fn wsman_upgrade_client_to_admin_reads_as_admin_setup() {
        assert_eq!(
            UpgradeClientToAdminReturn::from_u32(3).name(),
            "INVALID_PARAM"
        );
        assert_eq!(
            describe(HOST_BASED_SETUP_SERVICE, "UpgradeClientToAdmin", 4).0,
            "UNKNOWN"
        );
    }

    #[test]
    fn wsman_describe_picks_the_right_decoder() {
        let hbs = "http://intel.com/wbem/wscim/1/ips-schema/1/IPS_HostBasedSetupService";
        assert_eq!(
            describe(hbs, "AddNextCertInChain", 4).0,
            "CERT_VERIFY_FAILED"
        );
        assert_eq!(
            describe(HOST_BASED_SETUP_SERVICE, "AdminSetup", 5).0,
            "AUTH_FAILED"
        );
        assert_eq!(
            describe(HOST_BASED_SETUP_SERVICE, "Setup", 4).0,
            "METHOD_DISABLED"
        );
        // Generic methods: PT_STATUS.
        assert_eq!(
            describe("AMT_SetupAndConfigurationService", "CommitChanges", 2057).0,
            "DATA_MISSING"
        );
        assert_eq!(
            describe("AMT_SetupAndConfigurationService", "Unprovision", 2076).0,
            "BLOCKING_COMPONENT"
        );
        assert_eq!(
            describe("IPS_HTTPProxyService", "AddProxyAccessPoint", 2058).0,
            "DUPLICATE"
        );
        assert_eq!(
            describe("AMT_AuthorizationService", "SetAdminAclEntryEx", 0).0,
            "SUCCESS"
        );
        assert_eq!(
            describe("CIM_BootService", "SetBootConfigRole", 1).0,
            "UNDECODED"
        );
        assert_eq!(
            render(HOST_BASED_SETUP_SERVICE, "AddNextCertInChain", 4),
            "AddNextCertInChain returned CERT_VERIFY_FAILED (4)"
        );
    }
}
