//! `AMT_EthernetPortSettings`: `…Settings 0` is the wired port, `…Settings 1` the wireless one
//! (rps-protocol.md §3, §5.1 step 5).

use crate::wsman::calls::{
    body_instance, enumeration_context, pull_page, Call, Exchange, Instance, Op, WsmanError,
};

pub const CLASS: &str = "AMT_EthernetPortSettings";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EthernetPortSettings {
    pub instance_id: String,
    /// `00-be-43-d8-22-a4` style; all zeros when the port is absent.
    pub mac_address: Option<String>,
    pub link_is_up: Option<bool>,
    pub dhcp_enabled: Option<bool>,
    pub ip_sync_enabled: Option<bool>,
    pub shared_static_ip: Option<bool>,
    pub ip_address: Option<String>,
    pub subnet_mask: Option<String>,
    pub default_gateway: Option<String>,
    pub primary_dns: Option<String>,
    pub secondary_dns: Option<String>,
    /// Every property as AMT returned it, in order.
    pub instance: Instance,
}

impl EthernetPortSettings {
    pub fn from_instance(i: Instance) -> Result<EthernetPortSettings, WsmanError> {
        let s = |n: &str| i.get(n).map(str::to_string);
        Ok(EthernetPortSettings {
            instance_id: i.require("InstanceID")?.to_string(),
            mac_address: s("MACAddress"),
            link_is_up: i.get_bool("LinkIsUp")?,
            dhcp_enabled: i.get_bool("DHCPEnabled")?,
            ip_sync_enabled: i.get_bool("IpSyncEnabled")?,
            shared_static_ip: i.get_bool("SharedStaticIp")?,
            ip_address: s("IPAddress"),
            subnet_mask: s("SubnetMask"),
            default_gateway: s("DefaultGateway"),
            primary_dns: s("PrimaryDNS"),
            secondary_dns: s("SecondaryDNS"),
            instance: i,
        })
    }

    /// The wired port (`… Settings 0`).
    pub fn is_wired(&self) -> bool {
        self.instance_id.ends_with("Settings 0")
    }

    /// The instance with the typed fields written back in place; a `None` removes the property
    /// (RPS drops the IP fields when DHCP or IP sync is on).
    pub fn to_instance(&self) -> Instance {
        let mut i = self.instance.clone();
        let b = |v: Option<bool>| v.map(|b| b.to_string());
        i.set("InstanceID", &self.instance_id);
        i.sync("MACAddress", self.mac_address.clone());
        i.sync("LinkIsUp", b(self.link_is_up));
        i.sync("DHCPEnabled", b(self.dhcp_enabled));
        i.sync("IpSyncEnabled", b(self.ip_sync_enabled));
        i.sync("SharedStaticIp", b(self.shared_static_ip));
        i.sync("IPAddress", self.ip_address.clone());
        i.sync("SubnetMask", self.subnet_mask.clone());
        i.sync("DefaultGateway", self.default_gateway.clone());
        i.sync("PrimaryDNS", self.primary_dns.clone());
        i.sync("SecondaryDNS", self.secondary_dns.clone());
        i
    }
}

fn decode_one(ex: &Exchange<'_>) -> Result<EthernetPortSettings, WsmanError> {
    EthernetPortSettings::from_instance(body_instance(ex)?)
}

/// A page of ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EthernetPortPage {
    pub items: Vec<EthernetPortSettings>,
    pub end_of_sequence: bool,
    pub context: Option<String>,
}

pub fn enumerate() -> Call<String> {
    Call::new(CLASS, Op::Enumerate, enumeration_context)
}

pub fn pull(context: &str) -> Call<EthernetPortPage> {
    Call::new(
        CLASS,
        Op::Pull {
            context: context.to_string(),
        },
        |ex| {
            let p = pull_page(ex)?;
            Ok(EthernetPortPage {
                items: p
                    .items
                    .into_iter()
                    .map(EthernetPortSettings::from_instance)
                    .collect::<Result<_, _>>()?,
                end_of_sequence: p.end_of_sequence,
                context: p.context,
            })
        },
    )
}

/// Put one port back, selected by its InstanceID. RPS checks that the answer echoes
/// `DHCPEnabled`, `IpSyncEnabled` and `SharedStaticIp` as sent.
pub fn put(port: &EthernetPortSettings) -> Call<EthernetPortSettings> {
    Call::new(CLASS, Op::Put, decode_one)
        .selector("InstanceID", port.instance_id.clone())
        .args(port.to_instance().to_args())
}
