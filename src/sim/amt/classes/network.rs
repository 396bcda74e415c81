//! The network ports: `AMT_EthernetPortSettings` (wired 0, wireless 1), `IPS_IEEE8021xSettings`,
//! `CIM_WiFiEndpointSettings`.

use super::super::model::inst;
use super::dashed_mac;
use crate::sim::profile::DeviceProfile;

/// The two ports from the profile's LAN facts, 802.1X off, no Wi-Fi profiles.
pub(super) fn seed(p: &mut DeviceProfile) {
    let port = |n: u32, l: &crate::sim::profile::Lan| {
        let mut i = inst(&[
            ("DHCPEnabled", if l.dhcp_enabled { "true" } else { "false" }),
            ("DefaultGateway", "0.0.0.0"),
            ("ElementName", "Intel(r) AMT Ethernet Port Settings"),
            ("IPAddress", &l.ipv4),
            (
                "InstanceID",
                &format!("Intel(r) AMT Ethernet Port Settings {n}"),
            ),
            ("IpSyncEnabled", "true"),
            ("LinkIsUp", if l.link_up { "true" } else { "false" }),
            ("LinkPolicy", "1"),
            ("LinkPolicy", "14"),
            ("LinkPolicy", "16"),
            ("MACAddress", &dashed_mac(&l.mac)),
            ("PhysicalConnectionType", if n == 0 { "0" } else { "3" }),
            ("PrimaryDNS", "0.0.0.0"),
            ("SecondaryDNS", "0.0.0.0"),
            ("SharedDynamicIP", "true"),
            ("SharedMAC", "true"),
            ("SharedStaticIp", "false"),
            ("SubnetMask", "255.255.255.0"),
        ]);
        if n == 1 {
            i.retain(|(k, _)| k != "IpSyncEnabled" && k != "SharedStaticIp");
        }
        i
    };
    let ins = &mut p.instances;
    ins.insert(
        "AMT_EthernetPortSettings".into(),
        vec![port(0, &p.wired), port(1, &p.wireless)],
    );
    ins.insert(
        "IPS_IEEE8021xSettings".into(),
        // AvailableInS0 and PxeTimeout as in go-wsman-messages' ips/ieee8021x/settings/get.xml
        // fixture; RPS Puts the instance it read back with Enabled=3 (rps-protocol.md §5.1 step 4).
        vec![inst(&[
            ("AvailableInS0", "false"),
            ("ElementName", "Intel(r) AMT: 8021X Settings"),
            ("Enabled", "3"),
            ("InstanceID", "Intel(r) AMT: 8021X Settings"),
            ("PxeTimeout", "120"),
        ])],
    );
    ins.insert("CIM_WiFiEndpointSettings".into(), Vec::new());
}
