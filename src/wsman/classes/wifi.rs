//! Wi-Fi: `AMT_WiFiPortConfigurationService` (AddWiFiSettings; local and UEFI profile sync),
//! `CIM_WiFiEndpointSettings` (the profiles: Enumerate, Pull, Delete), `CIM_WiFiPort`
//! (RequestStateChange) and `AMT_BootCapabilities` (whether UEFI Wi-Fi profile sharing exists).
//! Request shapes as wsman-messages builds them (RPS's `wifiNetworkConfiguration.ts`, rpc-go
//! `configure wireless`); answers as the wsman-responses fixtures `amt/wifiportconfiguration/`,
//! `cim/wifi/`.

use crate::secret::Secret;
use crate::wsman::calls::{self, body_instance, Arg, Call, Instance, Op, PullPage, WsmanError};
use crate::wsman::envelope::Selector;

pub const SERVICE: &str = "AMT_WiFiPortConfigurationService";
pub const ENDPOINT_SETTINGS: &str = "CIM_WiFiEndpointSettings";
pub const PORT: &str = "CIM_WiFiPort";
pub const ENDPOINT: &str = "CIM_WiFiEndpoint";
pub const BOOT_CAPABILITIES: &str = "AMT_BootCapabilities";
/// The one Wi-Fi endpoint AMT has; AddWiFiSettings names it.
pub const ENDPOINT_NAME: &str = "WiFi Endpoint 0";
/// How rpc-go and RPS name a profile's InstanceID.
pub const PROFILE_ID_PREFIX: &str = "Intel(r) AMT:WiFi Endpoint Settings ";

/// `CIM_WiFiPort.RequestStateChange` 32769: Wi-Fi enabled in S0 and in Sx on AC (RPS's value).
pub const PORT_ENABLED_S0_SX_AC: u32 = 32769;
pub const PORT_ENABLED_S0: u32 = 32768;

/// `localProfileSynchronizationEnabled`: 0 off, 1 local user profiles, 3 unrestricted.
pub const LOCAL_SYNC_OFF: u32 = 0;
pub const LOCAL_SYNC_UNRESTRICTED: u32 = 3;

/// `CIM_WiFiEndpointSettings.AuthenticationMethod` AMT takes (rpc-go's default WPA2-PSK).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AuthMethod {
    WpaPsk,
    WpaIeee8021x,
    #[default]
    Wpa2Psk,
    Wpa2Ieee8021x,
    Wpa3Sae,
    Wpa3Owe,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 6] = [
        AuthMethod::WpaPsk,
        AuthMethod::WpaIeee8021x,
        AuthMethod::Wpa2Psk,
        AuthMethod::Wpa2Ieee8021x,
        AuthMethod::Wpa3Sae,
        AuthMethod::Wpa3Owe,
    ];

    pub fn value(self) -> u32 {
        match self {
            AuthMethod::WpaPsk => 4,
            AuthMethod::WpaIeee8021x => 5,
            AuthMethod::Wpa2Psk => 6,
            AuthMethod::Wpa2Ieee8021x => 7,
            AuthMethod::Wpa3Sae => 32768,
            AuthMethod::Wpa3Owe => 32769,
        }
    }

    /// rpc-go v2's names (`WPA2PSK`, …).
    pub fn v2_name(self) -> &'static str {
        match self {
            AuthMethod::WpaPsk => "WPAPSK",
            AuthMethod::WpaIeee8021x => "WPAIEEE8021x",
            AuthMethod::Wpa2Psk => "WPA2PSK",
            AuthMethod::Wpa2Ieee8021x => "WPA2IEEE8021x",
            AuthMethod::Wpa3Sae => "WPA3SAE",
            AuthMethod::Wpa3Owe => "WPA3OWE",
        }
    }

    pub fn from_value(v: u32) -> Option<AuthMethod> {
        AuthMethod::ALL.into_iter().find(|m| m.value() == v)
    }

    /// A number (rpc-go v3) or a v2 name, case-insensitively.
    pub fn parse(s: &str) -> Option<AuthMethod> {
        s.parse::<u32>()
            .ok()
            .and_then(AuthMethod::from_value)
            .or_else(|| {
                AuthMethod::ALL
                    .into_iter()
                    .find(|m| m.v2_name().eq_ignore_ascii_case(s))
            })
    }

    /// PSK or SAE: a passphrase.
    pub fn uses_passphrase(self) -> bool {
        matches!(
            self,
            AuthMethod::WpaPsk | AuthMethod::Wpa2Psk | AuthMethod::Wpa3Sae
        )
    }

    pub fn uses_8021x(self) -> bool {
        matches!(self, AuthMethod::WpaIeee8021x | AuthMethod::Wpa2Ieee8021x)
    }

    pub fn is_wpa3(self) -> bool {
        matches!(self, AuthMethod::Wpa3Sae | AuthMethod::Wpa3Owe)
    }

    pub fn text(self) -> &'static str {
        match self {
            AuthMethod::WpaPsk => "WPA-PSK",
            AuthMethod::WpaIeee8021x => "WPA-802.1X",
            AuthMethod::Wpa2Psk => "WPA2-PSK",
            AuthMethod::Wpa2Ieee8021x => "WPA2-802.1X",
            AuthMethod::Wpa3Sae => "WPA3-SAE",
            AuthMethod::Wpa3Owe => "WPA3-OWE",
        }
    }
}

/// `CIM_WiFiEndpointSettings.EncryptionMethod` AMT takes: TKIP (3) or CCMP (4, the default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Encryption {
    Tkip,
    #[default]
    Ccmp,
}

impl Encryption {
    pub fn value(self) -> u32 {
        match self {
            Encryption::Tkip => 3,
            Encryption::Ccmp => 4,
        }
    }

    pub fn from_value(v: u32) -> Option<Encryption> {
        match v {
            3 => Some(Encryption::Tkip),
            4 => Some(Encryption::Ccmp),
            _ => None,
        }
    }

    /// A number or a v2 name (`TKIP`, `CCMP`).
    pub fn parse(s: &str) -> Option<Encryption> {
        match s.to_ascii_uppercase().as_str() {
            "3" | "TKIP" => Some(Encryption::Tkip),
            "4" | "CCMP" => Some(Encryption::Ccmp),
            _ => None,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Encryption::Tkip => "TKIP",
            Encryption::Ccmp => "CCMP",
        }
    }
}

/// A Wi-Fi profile as AMT lists it (the passphrase is never listed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub instance_id: String,
    pub name: String,
    pub ssid: String,
    pub priority: u32,
    pub auth: Option<u32>,
    pub encryption: Option<u32>,
}

impl Profile {
    pub fn from_instance(i: &Instance) -> Profile {
        let n = |k: &str| i.get(k).and_then(|v| v.parse().ok());
        Profile {
            instance_id: i.get("InstanceID").unwrap_or_default().to_string(),
            name: i.get("ElementName").unwrap_or_default().to_string(),
            ssid: i.get("SSID").unwrap_or_default().to_string(),
            priority: n("Priority").unwrap_or(0),
            auth: n("AuthenticationMethod"),
            encryption: n("EncryptionMethod"),
        }
    }

    /// A profile the OS or UEFI synchronised (priority 0) rather than one a user added.
    pub fn is_synced(&self) -> bool {
        self.priority == 0
    }
}

/// What AddWiFiSettings sends for a profile.
pub struct NewProfile<'a> {
    pub name: &'a str,
    pub ssid: &'a str,
    pub priority: u32,
    pub auth: AuthMethod,
    pub encryption: Encryption,
    pub passphrase: Option<&'a Secret>,
}

/// The 802.1X part of an AddWiFiSettings (`IEEE8021xSettingsInput`, the certificate references).
pub struct NewProfile8021x<'a> {
    /// The 802.1X profile's name (`ElementName`).
    pub name: &'a str,
    pub protocol: u32,
    pub username: &'a str,
    pub password: Option<&'a Secret>,
    pub client_certificate: Option<&'a str>,
    pub ca_certificate: Option<&'a str>,
}

/// `AddWiFiSettings`: the profile (`WiFiEndpointSettingsInput`), and for 802.1X its settings and
/// certificate references, in the order wsman-messages writes them.
pub fn add_wifi_settings(p: &NewProfile<'_>, x: Option<&NewProfile8021x<'_>>) -> Call<()> {
    let mut settings = vec![
        Arg::text("ElementName", p.name),
        Arg::text("InstanceID", format!("{PROFILE_ID_PREFIX}{}", p.name)),
        Arg::text("AuthenticationMethod", p.auth.value()),
        Arg::text("EncryptionMethod", p.encryption.value()),
        Arg::text("SSID", p.ssid),
        Arg::text("Priority", p.priority),
    ];
    if let Some(k) = p.passphrase {
        settings.push(Arg::secret("PSKPassPhrase", k));
    }
    let mut call = Call::new(
        SERVICE,
        Op::Invoke {
            method: "AddWiFiSettings".into(),
        },
        calls::unit_output,
    )
    .arg(Arg::reference(
        "WiFiEndpoint",
        "/wsman",
        ENDPOINT,
        "Name",
        ENDPOINT_NAME,
    ))
    .arg(Arg::instance(
        "WiFiEndpointSettingsInput",
        ENDPOINT_SETTINGS,
        settings,
    ));
    if let Some(x) = x {
        let mut s = vec![
            Arg::text("ElementName", x.name),
            Arg::text(
                "InstanceID",
                format!("Intel(r) AMT: 8021X Settings {}", x.name),
            ),
            Arg::text("AuthenticationProtocol", x.protocol),
            Arg::text("Username", x.username),
        ];
        if let Some(pw) = x.password {
            s.push(Arg::secret("Password", pw));
        }
        call = call.arg(Arg::instance(
            "IEEE8021xSettingsInput",
            super::ieee8021x::CIM_SETTINGS,
            s,
        ));
        for (name, handle) in [
            ("ClientCredential", x.client_certificate),
            ("CACredential", x.ca_certificate),
        ] {
            if let Some(h) = handle {
                call = call.arg(Arg::reference(
                    name,
                    "default",
                    super::public_key::CERTIFICATE,
                    "InstanceID",
                    h,
                ));
            }
        }
    }
    call
}

pub fn enumerate_profiles() -> Call<String> {
    calls::enumerate(ENDPOINT_SETTINGS)
}

pub fn pull_profiles(context: &str) -> Call<PullPage> {
    calls::pull(ENDPOINT_SETTINGS, context)
}

/// Delete a profile by InstanceID (its 802.1X settings go with it).
pub fn delete_profile(instance_id: &str) -> Call<()> {
    calls::delete(
        ENDPOINT_SETTINGS,
        &[Selector::new("InstanceID", instance_id)],
    )
}

/// The port configuration service's sync settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfiguration {
    /// `localProfileSynchronizationEnabled`.
    pub local_sync: u32,
    /// `UEFIWiFiProfileShareEnabled`; `None` where the firmware has no such property.
    pub uefi_share: Option<bool>,
    pub instance: Instance,
}

impl PortConfiguration {
    pub fn from_instance(i: Instance) -> Result<PortConfiguration, WsmanError> {
        Ok(PortConfiguration {
            local_sync: i
                .get_parsed("localProfileSynchronizationEnabled")?
                .unwrap_or(LOCAL_SYNC_OFF),
            uefi_share: match i.get("UEFIWiFiProfileShareEnabled") {
                None => None,
                Some("true") | Some("1") => Some(true),
                Some(_) => Some(false),
            },
            instance: i,
        })
    }
}

pub fn get_port_configuration() -> Call<PortConfiguration> {
    Call::new(SERVICE, Op::Get, |ex| {
        PortConfiguration::from_instance(body_instance(ex)?)
    })
}

/// Put the service back with new sync settings (the whole instance, as RPS does).
pub fn put_port_configuration(
    current: &PortConfiguration,
    local_sync: u32,
    uefi_share: Option<bool>,
) -> Call<PortConfiguration> {
    let mut i = current.instance.clone();
    i.set("localProfileSynchronizationEnabled", local_sync);
    if let Some(u) = uefi_share {
        i.set("UEFIWiFiProfileShareEnabled", u);
    }
    Call::new(SERVICE, Op::Put, |ex| {
        PortConfiguration::from_instance(body_instance(ex)?)
    })
    .args(i.to_args())
}

/// `CIM_WiFiPort.EnabledState` (3 disabled, 32768 S0, 32769 S0 + Sx/AC).
pub fn get_port() -> Call<u32> {
    Call::new(PORT, Op::Get, |ex| {
        Ok(body_instance(ex)?.get_parsed("EnabledState")?.unwrap_or(3))
    })
}

pub fn request_port_state(state: u32) -> Call<()> {
    Call::new(
        PORT,
        Op::Invoke {
            method: "RequestStateChange".into(),
        },
        calls::unit_output,
    )
    .arg(Arg::text("RequestedState", state))
}

/// `AMT_BootCapabilities.UEFIWiFiCoExistenceAndProfileShare`.
pub fn uefi_wifi_share_capable() -> Call<bool> {
    Call::new(BOOT_CAPABILITIES, Op::Get, |ex| {
        Ok(body_instance(ex)?
            .get_bool("UEFIWiFiCoExistenceAndProfileShare")?
            .unwrap_or(false))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(call: &Call<impl Sized>) -> String {
        let xml = call.render("0");
        let start = xml.find("<Body>").unwrap() + "<Body>".len();
        let end = xml.find("</Body>").unwrap();
        xml[start..end].to_string()
    }

    /// Byte for byte what Intel's wsman-messages 5.14 (`AMT.Messages().WiFiPortConfigurationService
    /// .AddWiFiSettings`) writes for the same profile.
    #[test]
    fn add_wifi_settings_psk_is_wsman_messages_bytes_with_the_passphrase_escaped() {
        let psk = Secret::new("P&ssw<rd");
        let call = add_wifi_settings(
            &NewProfile {
                name: "home",
                ssid: "HomeNet",
                priority: 1,
                auth: AuthMethod::Wpa2Psk,
                encryption: Encryption::Ccmp,
                passphrase: Some(&psk),
            },
            None,
        );
        assert_eq!(
            body(&call),
            "<h:AddWiFiSettings_INPUT xmlns:h=\"http://intel.com/wbem/wscim/1/amt-schema/1/AMT_WiFiPortConfigurationService\"><h:WiFiEndpoint><a:Address>/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_WiFiEndpoint</w:ResourceURI><w:SelectorSet><w:Selector Name=\"Name\">WiFi Endpoint 0</w:Selector></w:SelectorSet></a:ReferenceParameters></h:WiFiEndpoint><h:WiFiEndpointSettingsInput xmlns:q=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_WiFiEndpointSettings\"><q:ElementName>home</q:ElementName><q:InstanceID>Intel(r) AMT:WiFi Endpoint Settings home</q:InstanceID><q:AuthenticationMethod>6</q:AuthenticationMethod><q:EncryptionMethod>4</q:EncryptionMethod><q:SSID>HomeNet</q:SSID><q:Priority>1</q:Priority><q:PSKPassPhrase>P&amp;ssw&lt;rd</q:PSKPassPhrase></h:WiFiEndpointSettingsInput></h:AddWiFiSettings_INPUT>"
        );
        let d = call.describe();
        assert!(d.contains("PSKPassPhrase=***") && !d.contains("ssw"), "{d}");
        assert!(d.contains("WiFiEndpoint=<WiFi Endpoint 0>"), "{d}");
    }

    #[test]
    fn add_wifi_settings_8021x_is_wsman_messages_bytes() {
        let pw = Secret::new("pw");
        let call = add_wifi_settings(
            &NewProfile {
                name: "corp",
                ssid: "Corp",
                priority: 2,
                auth: AuthMethod::Wpa2Ieee8021x,
                encryption: Encryption::Ccmp,
                passphrase: None,
            },
            Some(&NewProfile8021x {
                name: "corp",
                protocol: 0,
                username: "u",
                password: Some(&pw),
                client_certificate: Some("Intel(r) AMT Certificate: Handle: 1"),
                ca_certificate: Some("Intel(r) AMT Certificate: Handle: 2"),
            }),
        );
        assert_eq!(
            body(&call),
            "<h:AddWiFiSettings_INPUT xmlns:h=\"http://intel.com/wbem/wscim/1/amt-schema/1/AMT_WiFiPortConfigurationService\"><h:WiFiEndpoint><a:Address>/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_WiFiEndpoint</w:ResourceURI><w:SelectorSet><w:Selector Name=\"Name\">WiFi Endpoint 0</w:Selector></w:SelectorSet></a:ReferenceParameters></h:WiFiEndpoint><h:WiFiEndpointSettingsInput xmlns:q=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_WiFiEndpointSettings\"><q:ElementName>corp</q:ElementName><q:InstanceID>Intel(r) AMT:WiFi Endpoint Settings corp</q:InstanceID><q:AuthenticationMethod>7</q:AuthenticationMethod><q:EncryptionMethod>4</q:EncryptionMethod><q:SSID>Corp</q:SSID><q:Priority>2</q:Priority></h:WiFiEndpointSettingsInput><h:IEEE8021xSettingsInput xmlns:q=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_IEEE8021xSettings\"><q:ElementName>corp</q:ElementName><q:InstanceID>Intel(r) AMT: 8021X Settings corp</q:InstanceID><q:AuthenticationProtocol>0</q:AuthenticationProtocol><q:Username>u</q:Username><q:Password>pw</q:Password></h:IEEE8021xSettingsInput><h:ClientCredential><a:Address>default</a:Address><a:ReferenceParameters><w:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyCertificate</w:ResourceURI><w:SelectorSet><w:Selector Name=\"InstanceID\">Intel(r) AMT Certificate: Handle: 1</w:Selector></w:SelectorSet></a:ReferenceParameters></h:ClientCredential><h:CACredential><a:Address>default</a:Address><a:ReferenceParameters><w:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyCertificate</w:ResourceURI><w:SelectorSet><w:Selector Name=\"InstanceID\">Intel(r) AMT Certificate: Handle: 2</w:Selector></w:SelectorSet></a:ReferenceParameters></h:CACredential></h:AddWiFiSettings_INPUT>"
        );
        assert!(!call.describe().contains("pw}"), "{}", call.describe());
    }

    #[test]
    fn request_state_change_and_delete_are_wsman_messages_bytes() {
        assert_eq!(
            body(&request_port_state(PORT_ENABLED_S0_SX_AC)),
            "<h:RequestStateChange_INPUT xmlns:h=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_WiFiPort\"><h:RequestedState>32769</h:RequestedState></h:RequestStateChange_INPUT>"
        );
        let d = delete_profile("Intel(r) AMT:WiFi Endpoint Settings home").render("0");
        assert!(d.contains("<w:SelectorSet><w:Selector Name=\"InstanceID\">Intel(r) AMT:WiFi Endpoint Settings home</w:Selector></w:SelectorSet>"), "{d}");
    }

    #[test]
    fn methods_parse_as_numbers_and_v2_names() {
        assert_eq!(AuthMethod::parse("6"), Some(AuthMethod::Wpa2Psk));
        assert_eq!(AuthMethod::parse("wpa3sae"), Some(AuthMethod::Wpa3Sae));
        assert_eq!(AuthMethod::parse("32769"), Some(AuthMethod::Wpa3Owe));
        assert_eq!(AuthMethod::parse("2"), None);
        assert_eq!(Encryption::parse("ccmp"), Some(Encryption::Ccmp));
        assert_eq!(Encryption::parse("5"), None);
    }
}
