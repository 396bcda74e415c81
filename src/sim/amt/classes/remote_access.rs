//! Remote access (CIRA) and proxies: `AMT_EnvironmentDetectionSettingData`,
//! `AMT_ManagementPresenceRemoteSAP`, `AMT_RemoteAccessPolicyRule`, `IPS_HTTPProxyAccessPoint`.

use super::super::model::inst;
use crate::sim::profile::DeviceProfile;

/// No MPS, no policies, no proxies; environment detection with no domains.
pub(super) fn seed(p: &mut DeviceProfile) {
    let ins = &mut p.instances;
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
        "AMT_ManagementPresenceRemoteSAP",
        "AMT_RemoteAccessPolicyRule",
        "IPS_HTTPProxyAccessPoint",
    ] {
        ins.insert(empty.into(), Vec::new());
    }
}
