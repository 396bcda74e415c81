//! TLS and certificates: `AMT_TLSSettingData` (802.3 and LMS), `AMT_PublicKeyCertificate`,
//! `AMT_PublicPrivateKeyPair`, `AMT_TLSCredentialContext`.

use super::super::model::inst;
use crate::sim::profile::DeviceProfile;

/// Two TLS setting instances (802.3 first, LMS second: RPS indexes them); no certificates or keys.
pub(super) fn seed(p: &mut DeviceProfile) {
    let ins = &mut p.instances;
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
    for empty in [
        "AMT_PublicKeyCertificate",
        "AMT_PublicPrivateKeyPair",
        "AMT_TLSCredentialContext",
    ] {
        ins.insert(empty.into(), Vec::new());
    }
}
