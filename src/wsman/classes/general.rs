//! `AMT_GeneralSettings`: the realm, host and domain names, network switches (transport.md §7.3,
//! rps-protocol.md §3 "Fields RPS reads").

use crate::wsman::calls::{body_instance, Call, Exchange, Instance, Op, WsmanError};

pub const CLASS: &str = "AMT_GeneralSettings";

/// The singleton's fields this agent reads, plus the whole instance for a Put.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneralSettings {
    /// `Digest:` + 32 hex digits; the realm of every Digest exchange.
    pub digest_realm: String,
    pub host_name: Option<String>,
    pub domain_name: Option<String>,
    pub shared_fqdn: Option<bool>,
    /// 1 = enabled (a uint, not a boolean, in this class).
    pub amt_network_enabled: Option<u32>,
    pub rmcp_ping_response_enabled: Option<bool>,
    /// `Intel(r) AMT: General Settings`.
    pub instance_id: String,
    /// Every property as AMT returned it, in order.
    pub instance: Instance,
}

impl GeneralSettings {
    pub fn from_instance(i: Instance) -> Result<GeneralSettings, WsmanError> {
        Ok(GeneralSettings {
            digest_realm: i.require("DigestRealm")?.to_string(),
            host_name: i.get("HostName").map(str::to_string),
            domain_name: i.get("DomainName").map(str::to_string),
            shared_fqdn: i.get_bool("SharedFQDN")?,
            amt_network_enabled: i.get_parsed("AMTNetworkEnabled")?,
            rmcp_ping_response_enabled: i.get_bool("RmcpPingResponseEnabled")?,
            instance_id: i.require("InstanceID")?.to_string(),
            instance: i,
        })
    }

    /// The instance with the typed fields written back in place (a `None` removes the property).
    pub fn to_instance(&self) -> Instance {
        let mut i = self.instance.clone();
        i.set("DigestRealm", &self.digest_realm);
        i.sync("HostName", self.host_name.clone());
        i.sync("DomainName", self.domain_name.clone());
        i.sync("SharedFQDN", self.shared_fqdn.map(|b| b.to_string()));
        i.sync(
            "AMTNetworkEnabled",
            self.amt_network_enabled.map(|v| v.to_string()),
        );
        i.sync(
            "RmcpPingResponseEnabled",
            self.rmcp_ping_response_enabled.map(|b| b.to_string()),
        );
        i.set("InstanceID", &self.instance_id);
        i
    }
}

fn decode(ex: &Exchange<'_>) -> Result<GeneralSettings, WsmanError> {
    GeneralSettings::from_instance(body_instance(ex)?)
}

/// Get (no selectors: a singleton).
pub fn get() -> Call<GeneralSettings> {
    Call::new(CLASS, Op::Get, decode)
}

/// Put the whole instance back with the changes (RPS synchostname / network config); no
/// selectors, as RPS sends it. AMT answers with the stored instance.
pub fn put(settings: &GeneralSettings) -> Call<GeneralSettings> {
    Call::new(CLASS, Op::Put, decode).args(settings.to_instance().to_args())
}
