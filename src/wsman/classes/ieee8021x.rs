//! 802.1X: the wired port's `IPS_IEEE8021xSettings` (Get, Put, SetCertificates) and its
//! certificate bindings `IPS_8021xCredentialContext`; a Wi-Fi profile's `CIM_IEEE8021xSettings`
//! and `CIM_CredentialContext` (created by AddWiFiSettings, [`super::wifi`]). Shapes:
//! wsman-messages / go-wsman-messages `ips/ieee8021x`, the fixture
//! `ips/ieee8021x/settings/get.xml`; the flows: rpc-go `configure wired` (rps-protocol.md §5.1).

use crate::secret::Secret;
use crate::wsman::calls::{
    self, body_instance, Arg, Call, Instance, Op, PropertyValue, PullPage, WsmanError,
};

pub const IPS_SETTINGS: &str = "IPS_IEEE8021xSettings";
pub const IPS_CONTEXT: &str = "IPS_8021xCredentialContext";
pub const CIM_SETTINGS: &str = "CIM_IEEE8021xSettings";
pub const CIM_CONTEXT: &str = "CIM_CredentialContext";

/// `Enabled`: 2 enabled, 3 disabled, 6 enabled without certificates.
pub const ENABLED: u32 = 2;
pub const DISABLED: u32 = 3;
pub const ENABLED_WITHOUT_CERTIFICATES: u32 = 6;

/// The EAP methods rpc-go configures (`AuthenticationProtocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EapMethod {
    /// 0: a client certificate and its key (rpc-go's default).
    #[default]
    EapTls,
    /// 2: PEAPv0 / EAP-MSCHAPv2, a user name and password.
    PeapMschapv2,
}

impl EapMethod {
    pub fn value(self) -> u32 {
        match self {
            EapMethod::EapTls => 0,
            EapMethod::PeapMschapv2 => 2,
        }
    }

    pub fn from_value(v: u32) -> Option<EapMethod> {
        match v {
            0 => Some(EapMethod::EapTls),
            2 => Some(EapMethod::PeapMschapv2),
            _ => None,
        }
    }

    /// The name users know it by.
    pub fn text(self) -> &'static str {
        match self {
            EapMethod::EapTls => "EAP-TLS",
            EapMethod::PeapMschapv2 => "PEAP-MSCHAPv2",
        }
    }
}

/// `AuthenticationProtocol` in words (CIM's ValueMap).
pub fn protocol_text(v: u32) -> String {
    match v {
        0 => "EAP-TLS".into(),
        1 => "EAP-TTLS/MSCHAPv2".into(),
        2 => "PEAP-MSCHAPv2".into(),
        3 => "PEAPv1/EAP-GTC".into(),
        4 => "EAP-FAST/MSCHAPv2".into(),
        5 => "EAP-FAST/GTC".into(),
        10 => "EAP-FAST/TLS".into(),
        n => format!("protocol {n}"),
    }
}

/// The wired port's 802.1X settings as AMT reports them (the password is never reported).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WiredSettings {
    pub enabled: u32,
    pub protocol: Option<u32>,
    pub username: Option<String>,
    pub element_name: String,
    pub instance_id: String,
    pub instance: Instance,
}

impl WiredSettings {
    pub fn from_instance(i: Instance) -> Result<WiredSettings, WsmanError> {
        Ok(WiredSettings {
            enabled: i.get_parsed("Enabled")?.unwrap_or(DISABLED),
            protocol: i.get_parsed("AuthenticationProtocol")?,
            username: i.get("Username").map(str::to_string),
            element_name: i.get("ElementName").unwrap_or_default().to_string(),
            instance_id: i.require("InstanceID")?.to_string(),
            instance: i,
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled == ENABLED || self.enabled == ENABLED_WITHOUT_CERTIFICATES
    }
}

pub fn get_wired() -> Call<WiredSettings> {
    Call::new(IPS_SETTINGS, Op::Get, |ex| {
        WiredSettings::from_instance(body_instance(ex)?)
    })
}

/// Turns wired 802.1X off (rpc-go and RPS: ElementName, InstanceID, Enabled=3).
pub fn disable_wired(current: &WiredSettings) -> Call<Instance> {
    Call::new(IPS_SETTINGS, Op::Put, body_instance).args(vec![
        Arg::text("ElementName", &current.element_name),
        Arg::text("InstanceID", &current.instance_id),
        Arg::text("Enabled", DISABLED),
    ])
}

/// What [`enable_wired`] sends: rpc-go's `IEEE8021xSettingsRequest` for `configure wired`.
pub struct WiredRequest<'a> {
    pub element_name: &'a str,
    pub instance_id: &'a str,
    pub method: EapMethod,
    pub username: &'a str,
    /// PEAP-MSCHAPv2 only.
    pub password: Option<&'a Secret>,
}

/// Turns wired 802.1X on: `Enabled=2`, `AvailableInS0`, `PxeTimeout` 120 as rpc-go sends them.
pub fn enable_wired(r: &WiredRequest<'_>) -> Call<Instance> {
    let mut args = vec![
        Arg::text("ElementName", r.element_name),
        Arg::text("InstanceID", r.instance_id),
        Arg::text("AuthenticationProtocol", r.method.value()),
        Arg::text("AvailableInS0", true),
        Arg::text("Enabled", ENABLED),
        Arg::text("PxeTimeout", 120),
        Arg::text("Username", r.username),
    ];
    if let Some(p) = r.password {
        args.push(Arg::secret("Password", p));
    }
    Call::new(IPS_SETTINGS, Op::Put, body_instance).args(args)
}

/// `SetCertificates(ServerCertificateIssuer, ClientCertificate)`: the trusted root that issued
/// the RADIUS server's certificate and the client certificate (none for PEAP-MSCHAPv2), by handle,
/// as references (the go-wsman-messages form rpc-go sends).
pub fn set_certificates(root: &str, client: Option<&str>) -> Call<()> {
    let reference = |name: &str, handle: &str| {
        Arg::reference(
            name,
            "default",
            super::public_key::CERTIFICATE,
            "InstanceID",
            handle,
        )
    };
    let mut call = Call::new(
        IPS_SETTINGS,
        Op::Invoke {
            method: "SetCertificates".into(),
        },
        calls::unit_output,
    )
    .arg(reference("ServerCertificateIssuer", root));
    if let Some(c) = client {
        call = call.arg(reference("ClientCertificate", c));
    }
    call
}

/// One certificate binding: which certificate (`ElementInContext`) serves which 802.1X settings
/// (`ElementProvidingContext`), both by their `InstanceID`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialContext {
    pub certificate: String,
    pub settings: String,
}

fn reference_id(i: &Instance, name: &str) -> Option<String> {
    i.properties.iter().find_map(|p| match &p.value {
        PropertyValue::Element(e) if p.name == name => {
            e.find("Selector").map(|s| s.text().to_string())
        }
        _ => None,
    })
}

impl CredentialContext {
    pub fn from_instance(i: &Instance) -> Option<CredentialContext> {
        Some(CredentialContext {
            certificate: reference_id(i, "ElementInContext")?,
            settings: reference_id(i, "ElementProvidingContext")?,
        })
    }
}

pub fn enumerate(class: &str) -> Call<String> {
    calls::enumerate(class)
}

pub fn pull(class: &str, context: &str) -> Call<PullPage> {
    calls::pull(class, context)
}

/// A Wi-Fi profile's 802.1X settings (`CIM_IEEE8021xSettings`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileSettings {
    pub instance_id: String,
    pub element_name: String,
    pub protocol: Option<u32>,
    pub username: String,
}

impl ProfileSettings {
    pub fn from_instance(i: &Instance) -> ProfileSettings {
        ProfileSettings {
            instance_id: i.get("InstanceID").unwrap_or_default().to_string(),
            element_name: i.get("ElementName").unwrap_or_default().to_string(),
            protocol: i.get("AuthenticationProtocol").and_then(|v| v.parse().ok()),
            username: i.get("Username").unwrap_or_default().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(call: &Call<impl Sized>) -> String {
        let xml = call.render("0");
        xml[xml.find("<Body>").unwrap() + 6..xml.find("</Body>").unwrap()].to_string()
    }

    /// go-wsman-messages' `ips/ieee8021x` test pins this request (references, Address `default`).
    #[test]
    fn set_certificates_is_go_wsman_messages_bytes() {
        assert_eq!(
            body(&set_certificates("root-handle", Some("client-handle"))),
            "<h:SetCertificates_INPUT xmlns:h=\"http://intel.com/wbem/wscim/1/ips-schema/1/IPS_IEEE8021xSettings\"><h:ServerCertificateIssuer><a:Address>default</a:Address><a:ReferenceParameters><w:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyCertificate</w:ResourceURI><w:SelectorSet><w:Selector Name=\"InstanceID\">root-handle</w:Selector></w:SelectorSet></a:ReferenceParameters></h:ServerCertificateIssuer><h:ClientCertificate><a:Address>default</a:Address><a:ReferenceParameters><w:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyCertificate</w:ResourceURI><w:SelectorSet><w:Selector Name=\"InstanceID\">client-handle</w:Selector></w:SelectorSet></a:ReferenceParameters></h:ClientCertificate></h:SetCertificates_INPUT>"
        );
    }

    #[test]
    fn enabling_peap_sends_the_password_only_in_the_xml() {
        let pw = Secret::new("Radius-Pa55");
        let call = enable_wired(&WiredRequest {
            element_name: "Intel(r) AMT: 8021X Settings",
            instance_id: "Intel(r) AMT: 8021X Settings",
            method: EapMethod::PeapMschapv2,
            username: "alice",
            password: Some(&pw),
        });
        assert_eq!(
            body(&call),
            "<h:IPS_IEEE8021xSettings xmlns:h=\"http://intel.com/wbem/wscim/1/ips-schema/1/IPS_IEEE8021xSettings\"><h:ElementName>Intel(r) AMT: 8021X Settings</h:ElementName><h:InstanceID>Intel(r) AMT: 8021X Settings</h:InstanceID><h:AuthenticationProtocol>2</h:AuthenticationProtocol><h:AvailableInS0>true</h:AvailableInS0><h:Enabled>2</h:Enabled><h:PxeTimeout>120</h:PxeTimeout><h:Username>alice</h:Username><h:Password>Radius-Pa55</h:Password></h:IPS_IEEE8021xSettings>"
        );
        assert!(!call.describe().contains("Radius"));
        assert!(!format!("{call:?}").contains("Radius"));
    }

    /// The fixture `ips/ieee8021x/settings/get.xml` decodes.
    #[test]
    fn the_fixture_get_decodes() {
        let xml = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/wsman-responses/ips/ieee8021x/settings/get.xml"
        ))
        .unwrap();
        let s = get_wired().decode(200, &xml).unwrap();
        assert_eq!((s.enabled, s.protocol), (DISABLED, None));
        assert_eq!(s.instance_id, "Intel(r) AMT: 8021X Settings");
        assert!(!s.is_enabled());
    }
}
