//! HTTP proxies AMT uses to reach an MPS: `IPS_HTTPProxyService.AddProxyAccessPoint` and the
//! `IPS_HTTPProxyAccessPoint` instances it creates (rps-protocol.md §5.1 steps 4–5; the
//! wsman-responses fixtures `ips/http/addproxyaccesspoint*.xml`).

use crate::wsman::calls::{self, Arg, Call, Instance, Op, PullPage};
use crate::wsman::envelope::Selector;

pub const SERVICE: &str = "IPS_HTTPProxyService";
pub const ACCESS_POINT: &str = "IPS_HTTPProxyAccessPoint";

/// `InfoFormat` of an access point (the same values as an MPS's).
pub use super::InfoFormat;

/// `AddProxyAccessPoint(AccessInfo, InfoFormat, Port, NetworkDnsSuffix)`; 2058 = duplicate.
pub fn add_proxy_access_point(
    address: &str,
    format: InfoFormat,
    port: u16,
    network_dns_suffix: &str,
) -> Call<()> {
    Call::new(
        SERVICE,
        Op::Invoke {
            method: "AddProxyAccessPoint".into(),
        },
        calls::unit_output,
    )
    .arg(Arg::text("AccessInfo", address))
    .arg(Arg::text("InfoFormat", format as u32))
    .arg(Arg::text("Port", port))
    .arg(Arg::text("NetworkDnsSuffix", network_dns_suffix))
}

pub fn enumerate() -> Call<String> {
    calls::enumerate(ACCESS_POINT)
}

pub fn pull(context: &str) -> Call<PullPage> {
    calls::pull(ACCESS_POINT, context)
}

/// Delete by `Name`, as RPS does.
pub fn delete(name: &str) -> Call<()> {
    calls::delete(ACCESS_POINT, &[Selector::new("Name", name)])
}

/// One access point as the agent shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessPoint {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub info_format: u32,
    pub network_dns_suffix: String,
}

impl AccessPoint {
    pub fn from_instance(i: &Instance) -> AccessPoint {
        AccessPoint {
            name: i.get("Name").unwrap_or_default().to_string(),
            address: i.get("AccessInfo").unwrap_or_default().to_string(),
            port: i.get("Port").and_then(|p| p.parse().ok()).unwrap_or(0),
            info_format: i
                .get("InfoFormat")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0),
            network_dns_suffix: i.get("NetworkDnsSuffix").unwrap_or_default().to_string(),
        }
    }

    /// rpc-go v3's `proxyAccessPoints` entry keys.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "address": self.address,
            "port": self.port,
            "networkDnsSuffix": self.network_dns_suffix,
            "infoFormat": self.info_format,
        })
    }
}
