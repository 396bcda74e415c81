//! Wi-Fi: `AMT_WiFiPortConfigurationService` (AddWiFiSettings, local and UEFI profile sync),
//! `CIM_WiFiEndpointSettings` (the profiles), `CIM_IEEE8021xSettings` and `CIM_CredentialContext`
//! (an 802.1X profile's settings and certificates), `CIM_WiFiPort` (RequestStateChange),
//! `CIM_WiFiEndpoint`, and `AMT_BootCapabilities` (read by RPS's Wi-Fi flow for UEFI sync).
//!
//! A platform without a wireless adapter (the profile's wireless MAC all zeros, as every built-in
//! profile) has none of the Wi-Fi classes: they answer `DestinationUnreachable` as any unknown
//! class. Shapes from the wsman-responses fixtures (`amt/wifiportconfiguration/`, `cim/wifi/`,
//! `amt/boot/capabilities/get.xml`); the rules (docs/simulator.md, UNCONFIRMED where marked):
//!
//! * AddWiFiSettings ReturnValues: 0 ok, 1 Not Supported (no wireless adapter), 3 Invalid
//!   Parameter (a field out of its range, see [`add_wifi_settings`]), 4 Invalid Reference (the
//!   endpoint or a certificate reference AMT cannot resolve or use), and PT_STATUS 2058 DUPLICATE
//!   for a profile name already held, 2067 INVALID_PRIORITY for a priority another profile holds,
//!   23 MAX_LIMIT_REACHED past [`MAX_PROFILES`] (the PT_STATUS ones UNCONFIRMED).
//! * `localProfileSynchronizationEnabled` 0 off, 1 local user profiles, 3 unrestricted;
//!   `UEFIWiFiProfileShareEnabled` only where `AMT_BootCapabilities.UEFIWiFiCoExistenceAndProfileShare`
//!   (AMT 16 and later here, UNCONFIRMED); below that the property does not exist, and a Put that
//!   carries it is refused (RPS's `PUT_WIFI_PORT_CONFIGURATION_SERVICE` failure on AMT 12/15,
//!   rps#803, reads as this).

use super::super::model::{epr, epr_parts, hidden, input_ref, inst, prop, ret, set_prop, Instance};
use super::keystore::{self, DUPLICATE, MAX_LIMIT_REACHED};
use super::network::{eap_uses_certificate, EAP_PROTOCOLS};
use super::rules::{self, ro, rw, Kind, PropRule, PutRefusal};
use super::secret_digest;
use crate::sim::profile::DeviceProfile;
use crate::sim::FirmwareCore;
use crate::wsman::envelope::{ns, Element, Param};

pub(super) const SERVICE: &str = "AMT_WiFiPortConfigurationService";
pub(super) const ENDPOINT_SETTINGS: &str = "CIM_WiFiEndpointSettings";
pub(super) const IEEE8021X: &str = "CIM_IEEE8021xSettings";
pub(super) const CONTEXT: &str = "CIM_CredentialContext";
pub(super) const PORT: &str = "CIM_WiFiPort";
pub(super) const ENDPOINT: &str = "CIM_WiFiEndpoint";
pub(super) const BOOT_CAPABILITIES: &str = "AMT_BootCapabilities";
pub(super) const ENDPOINT_NAME: &str = "WiFi Endpoint 0";

/// Profile InstanceIDs and the 802.1X settings' (the prefix rpc-go strips from
/// `ElementProvidingContext` to find the profile).
pub(super) const PROFILE_ID_PREFIX: &str = "Intel(r) AMT:WiFi Endpoint Settings ";
pub(super) const IEEE8021X_ID_PREFIX: &str = "Intel(r) AMT:IEEE 802.1x Settings ";

/// User profiles AMT holds (UNCONFIRMED).
pub const MAX_PROFILES: usize = 16;

const NOT_SUPPORTED: u32 = 1;
const INVALID_PARAMETER: u32 = 3;
const INVALID_REFERENCE: u32 = 4;
const INVALID_PRIORITY: u32 = 2067;

/// Whether the platform has a wireless adapter.
pub(super) fn has_wifi(p: &DeviceProfile) -> bool {
    p.wireless
        .mac
        .bytes()
        .any(|b| b.is_ascii_hexdigit() && b != b'0')
}

/// UEFI Wi-Fi profile sharing: AMT 16 and later (UNCONFIRMED).
fn uefi_share_supported(p: &DeviceProfile) -> bool {
    p.version_parts().0 >= 16
}

pub(super) fn seed(p: &mut DeviceProfile) {
    let uefi = uefi_share_supported(p);
    // go-wsman-messages' amt/boot/capabilities/get.xml, plus the UEFI Wi-Fi capability.
    let mut boot = inst(&[
        ("BIOSPause", "false"),
        ("BIOSReflash", "true"),
        ("BIOSSecureBoot", "true"),
        ("BIOSSetup", "true"),
        ("ConfigurationDataReset", "false"),
        ("ElementName", "Intel(r) AMT: Boot Capabilities"),
        ("ForceCDorDVDBoot", "true"),
        ("ForceDiagnosticBoot", "false"),
        ("ForceHardDriveBoot", "true"),
        ("ForceHardDriveSafeModeBoot", "false"),
        ("ForcePXEBoot", "true"),
        ("ForcedProgressEvents", "true"),
        ("IDER", "true"),
        ("InstanceID", "Intel(r) AMT:BootCapabilities 0"),
        ("KeyboardLock", "true"),
        ("PowerButtonLock", "false"),
        ("ResetButtonLock", "false"),
        ("SOL", "true"),
        ("SecureErase", "false"),
        ("SleepButtonLock", "false"),
    ]);
    if uefi {
        boot.push(("UEFIWiFiCoExistenceAndProfileShare".into(), "true".into()));
    }
    boot.extend(inst(&[
        ("UserPasswordBypass", "true"),
        ("VerbosityQuiet", "false"),
        ("VerbosityScreenBlank", "false"),
        ("VerbosityVerbose", "false"),
    ]));
    p.instances.insert(BOOT_CAPABILITIES.into(), vec![boot]);
    if !has_wifi(p) {
        return;
    }
    let mut service = inst(&[
        ("CreationClassName", SERVICE),
        ("ElementName", "Intel(r) AMT WiFiPort Configuration Service"),
        ("EnabledState", "5"),
        ("HealthState", "5"),
        ("LastConnectedSsidUnderMeControl", ""),
        ("Name", "Intel(r) AMT WiFi Port Configuration Service"),
        ("NoHostCsmeSoftwarePolicy", "0"),
        ("RequestedState", "12"),
        ("SystemCreationClassName", "CIM_ComputerSystem"),
        ("SystemName", "Intel(r) AMT"),
    ]);
    if uefi {
        service.push(("UEFIWiFiProfileShareEnabled".into(), "false".into()));
    }
    service.push(("localProfileSynchronizationEnabled".into(), "0".into()));
    let mac = p.wireless.mac.replace([':', '-'], "").to_ascii_uppercase();
    let ins = &mut p.instances;
    ins.insert(SERVICE.into(), vec![service]);
    ins.insert(
        PORT.into(),
        vec![inst(&[
            ("CreationClassName", PORT),
            ("DeviceID", "WiFi Port 0"),
            ("ElementName", "WiFi Port 0"),
            ("EnabledState", "3"),
            ("HealthState", "5"),
            ("LinkTechnology", "11"),
            ("PermanentAddress", &mac),
            ("PortType", "0"),
            ("RequestedState", "3"),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "Intel(r) AMT"),
        ])],
    );
    ins.insert(
        ENDPOINT.into(),
        vec![inst(&[
            ("CreationClassName", ENDPOINT),
            ("ElementName", ENDPOINT_NAME),
            ("EnabledState", "3"),
            ("Name", ENDPOINT_NAME),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "Intel(r) AMT"),
        ])],
    );
    ins.insert(ENDPOINT_SETTINGS.into(), Vec::new());
    ins.insert(IEEE8021X.into(), Vec::new());
    ins.insert(CONTEXT.into(), Vec::new());
}

const SERVICE_RULES: &[PropRule] = &[
    ro("CreationClassName", Kind::Text(256)),
    ro("ElementName", Kind::Text(256)),
    ro("EnabledState", Kind::Uint(0, 65535)),
    ro("HealthState", Kind::Uint(0, 65535)),
    ro("LastConnectedSsidUnderMeControl", Kind::Text(32)),
    ro("Name", Kind::Text(256)),
    rw("NoHostCsmeSoftwarePolicy", Kind::Uint(0, 1)),
    ro("RequestedState", Kind::Uint(0, 65535)),
    ro("SystemCreationClassName", Kind::Text(256)),
    ro("SystemName", Kind::Text(256)),
    // xsd:boolean: RPS writes 1/0, rpc-go and the agent true/false.
    rw("UEFIWiFiProfileShareEnabled", Kind::Text(5)),
    rw(
        "localProfileSynchronizationEnabled",
        Kind::OneOf(&[0, 1, 3]),
    ),
];

fn xsd_bool(v: &str) -> Option<bool> {
    match v {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

fn check_service(fw: &FirmwareCore, current: &Instance, body: &Element) -> Result<(), PutRefusal> {
    rules::check_put(SERVICE, SERVICE_RULES, current, body, true)?;
    if let Some(v) = body.child_text("UEFIWiFiProfileShareEnabled") {
        if prop(current, "UEFIWiFiProfileShareEnabled").is_none()
            || !uefi_share_supported(&fw.profile)
        {
            return Err(PutRefusal::invalid(
                "AMT_WiFiPortConfigurationService has no UEFIWiFiProfileShareEnabled on this platform (AMT_BootCapabilities.UEFIWiFiCoExistenceAndProfileShare is absent)",
            ));
        }
        if xsd_bool(v).is_none() {
            return Err(PutRefusal::invalid(format!(
                "UEFIWiFiProfileShareEnabled must be a boolean, not '{v}'"
            )));
        }
    }
    Ok(())
}

/// This area's Put rules. Profiles change through AddWiFiSettings (and are removed with Delete),
/// never by Put (UNCONFIRMED: firmware's answer to such a Put).
pub(super) fn check_put(
    fw: &FirmwareCore,
    class: &str,
    current: &Instance,
    body: &Element,
) -> Option<Result<(), PutRefusal>> {
    match class {
        SERVICE => Some(check_service(fw, current, body)),
        ENDPOINT_SETTINGS | IEEE8021X => Some(Err(PutRefusal::invalid(format!(
            "{class} is changed with AMT_WiFiPortConfigurationService.AddWiFiSettings, not Put"
        )))),
        _ => None,
    }
}

/// The boolean as firmware stores it after RPS wrote `1`/`0`.
pub(super) fn after_put(fw: &mut FirmwareCore, class: &str, at: usize) {
    if class != SERVICE {
        return;
    }
    let i = &mut fw.profile.instances.get_mut(SERVICE).expect("put")[at];
    if let Some(b) = prop(i, "UEFIWiFiProfileShareEnabled").and_then(xsd_bool) {
        set_prop(
            i,
            "UEFIWiFiProfileShareEnabled",
            if b { "true" } else { "false" },
        );
    }
}

/// What AddWiFiSettings found wrong: the ReturnValue and why (logged at debug).
type Refusal = (u32, String);

fn bad(status: u32, why: impl Into<String>) -> Refusal {
    (status, why.into())
}

/// Checks the embedded `CIM_WiFiEndpointSettings` of AddWiFiSettings.
fn check_profile(e: &Element) -> Result<(), Refusal> {
    let t = |n: &str| e.child_text(n).unwrap_or("");
    let name = t("ElementName");
    // UNCONFIRMED: 1–32 letters and digits (RPS and rpc-go allow nothing else either).
    if name.is_empty() || name.len() > 32 || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad(
            INVALID_PARAMETER,
            format!("ElementName {name:?}: 1–32 letters and digits"),
        ));
    }
    let ssid = t("SSID");
    if ssid.is_empty() || ssid.len() > 32 {
        return Err(bad(INVALID_PARAMETER, "SSID must be 1–32 bytes"));
    }
    match t("Priority").parse::<u32>() {
        Ok(1..=255) => {}
        _ => return Err(bad(INVALID_PARAMETER, "Priority must be 1–255")),
    }
    let auth: u32 = t("AuthenticationMethod").parse().unwrap_or(0);
    let enc: u32 = t("EncryptionMethod").parse().unwrap_or(0);
    let psk = e.child("PSKPassPhrase").map(Element::text);
    let (needs_psk, wpa3) = match auth {
        4 | 6 => (true, false),
        5 | 7 => (false, false),
        32768 => (true, true),
        32769 => (false, true),
        _ => {
            return Err(bad(
                INVALID_PARAMETER,
                format!("AuthenticationMethod {auth}: AMT takes 4, 5, 6, 7, 32768 (WPA3 SAE), 32769 (WPA3 OWE)"),
            ))
        }
    };
    if !(enc == 4 || (enc == 3 && !wpa3)) {
        return Err(bad(
            INVALID_PARAMETER,
            format!("EncryptionMethod {enc}: TKIP (3) or CCMP (4); WPA3 needs CCMP"),
        ));
    }
    match (needs_psk, psk) {
        (true, Some(p)) => {
            // 8–63 printable ASCII characters (a 64-hex-digit raw key is not taken, UNCONFIRMED).
            if !(8..=63).contains(&p.len()) || !p.bytes().all(|b| (0x20..0x7F).contains(&b)) {
                return Err(bad(
                    INVALID_PARAMETER,
                    "PSKPassPhrase must be 8–63 printable ASCII characters",
                ));
            }
        }
        (true, None) => return Err(bad(INVALID_PARAMETER, "this method needs PSKPassPhrase")),
        (false, Some(_)) => {
            return Err(bad(
                INVALID_PARAMETER,
                "PSKPassPhrase is for PSK/SAE methods only",
            ))
        }
        (false, None) => {}
    }
    Ok(())
}

/// Checks the embedded `CIM_IEEE8021xSettings` and the certificate references; returns the
/// handles to bind (client, CA).
fn check_8021x(
    fw: &FirmwareCore,
    x: &Element,
    input: Option<&Element>,
) -> Result<(Option<String>, Option<String>), Refusal> {
    let t = |n: &str| x.child_text(n).unwrap_or("");
    let protocol = t("AuthenticationProtocol");
    if !protocol
        .parse::<u64>()
        .is_ok_and(|p| EAP_PROTOCOLS.contains(&p))
    {
        return Err(bad(
            INVALID_PARAMETER,
            format!("AuthenticationProtocol {protocol:?} is not one AMT supports"),
        ));
    }
    if t("Username").is_empty() || t("Username").len() > 128 {
        return Err(bad(INVALID_PARAMETER, "Username must be 1–128 characters"));
    }
    let password = t("Password");
    if eap_uses_certificate(protocol) != password.is_empty() || password.len() > 32 {
        return Err(bad(
            INVALID_PARAMETER,
            "Password (1–32 characters) goes with the password protocols only",
        ));
    }
    let client = input_ref(input, "ClientCredential");
    let ca = input_ref(input, "CACredential");
    if let Some(h) = &client {
        match keystore::certificate(fw, h) {
            Some(c) if !keystore::is_trusted_root(c) && keystore::has_private_key(fw, c) => {}
            _ => {
                return Err(bad(
                    INVALID_REFERENCE,
                    format!("ClientCredential {h}: no client certificate with its key"),
                ))
            }
        }
    } else if eap_uses_certificate(protocol) {
        return Err(bad(INVALID_REFERENCE, "EAP-TLS needs ClientCredential"));
    }
    if let Some(h) = &ca {
        if !keystore::certificate(fw, h).is_some_and(keystore::is_trusted_root) {
            return Err(bad(
                INVALID_REFERENCE,
                format!("CACredential {h}: no trusted root with this handle"),
            ));
        }
    }
    Ok((client, ca))
}

/// `AddWiFiSettings(WiFiEndpoint, WiFiEndpointSettingsInput, [IEEE8021xSettingsInput,
/// ClientCredential, CACredential])`: the profile, and for 802.1X methods its settings and
/// certificate bindings, created atomically. The firmware assigns the InstanceIDs.
fn add_wifi_settings(fw: &mut FirmwareCore, input: Option<&Element>) -> Result<(), Refusal> {
    if !has_wifi(&fw.profile) {
        return Err(bad(NOT_SUPPORTED, "no wireless adapter"));
    }
    if input_ref(input, "WiFiEndpoint").as_deref() != Some(ENDPOINT_NAME) {
        return Err(bad(
            INVALID_REFERENCE,
            format!("WiFiEndpoint must name {ENDPOINT_NAME}"),
        ));
    }
    let Some(s) = input.and_then(|i| i.child("WiFiEndpointSettingsInput")) else {
        return Err(bad(
            INVALID_PARAMETER,
            "WiFiEndpointSettingsInput is missing",
        ));
    };
    check_profile(s)?;
    let t = |n: &str| s.child_text(n).unwrap_or("").to_string();
    let (name, priority, auth) = (t("ElementName"), t("Priority"), t("AuthenticationMethod"));
    let dot1x_method = matches!(auth.as_str(), "5" | "7");
    let x = input.and_then(|i| i.child("IEEE8021xSettingsInput"));
    let certs = match (dot1x_method, x) {
        (true, Some(x)) => Some(check_8021x(fw, x, input)?),
        (true, None) => {
            return Err(bad(
                INVALID_PARAMETER,
                "802.1X methods need IEEE8021xSettingsInput",
            ))
        }
        (false, Some(_)) => {
            return Err(bad(
                INVALID_PARAMETER,
                "IEEE8021xSettingsInput goes with the 802.1X methods (5, 7) only",
            ))
        }
        (false, None) => None,
    };
    let profiles = fw
        .profile
        .instances
        .get(ENDPOINT_SETTINGS)
        .cloned()
        .unwrap_or_default();
    if profiles
        .iter()
        .any(|p| prop(p, "ElementName") == Some(name.as_str()))
    {
        return Err(bad(DUPLICATE, format!("a profile named {name} exists")));
    }
    if profiles
        .iter()
        .any(|p| prop(p, "Priority") == Some(priority.as_str()))
    {
        return Err(bad(
            INVALID_PRIORITY,
            format!("priority {priority} is taken"),
        ));
    }
    if profiles.len() >= MAX_PROFILES {
        return Err(bad(MAX_LIMIT_REACHED, "the profile table is full"));
    }
    let id = format!("{PROFILE_ID_PREFIX}{name}");
    let mut profile = inst(&[
        ("AuthenticationMethod", &auth),
        ("BSSType", "3"),
        ("ElementName", &name),
        ("EncryptionMethod", &t("EncryptionMethod")),
        ("InstanceID", &id),
        ("Priority", &priority),
        ("SSID", &t("SSID")),
    ]);
    if let Some(psk) = s.child("PSKPassPhrase") {
        profile.push((hidden("PSKHash"), secret_digest(psk.text())));
    }
    if let (Some(x), Some((client, ca))) = (x, certs) {
        let xt = |n: &str| x.child_text(n).unwrap_or("").to_string();
        let x_id = format!("{IEEE8021X_ID_PREFIX}{name}");
        let mut settings = inst(&[
            ("AuthenticationProtocol", &xt("AuthenticationProtocol")),
            ("ElementName", &xt("ElementName")),
            ("InstanceID", &x_id),
            ("Username", &xt("Username")),
        ]);
        if !xt("Password").is_empty() {
            settings.push((hidden("PasswordHash"), secret_digest(&xt("Password"))));
        }
        profile.push((hidden("IEEE8021xSettings"), x_id.clone()));
        fw.profile
            .instances
            .entry(IEEE8021X.into())
            .or_default()
            .push(settings);
        let providing = epr(
            &format!("{}{IEEE8021X}", ns::CIM_SCHEMA),
            "InstanceID",
            &x_id,
        );
        let list = fw.profile.instances.entry(CONTEXT.into()).or_default();
        for h in [client, ca].into_iter().flatten() {
            list.push(keystore::credential_context(&h, &providing));
        }
    }
    fw.profile
        .instances
        .entry(ENDPOINT_SETTINGS.into())
        .or_default()
        .push(profile);
    Ok(())
}

/// AddWiFiSettings and `CIM_WiFiPort.RequestStateChange`; `None` for another area's method.
/// The port takes 3 (disabled), 32768 (enabled in S0) and 32769 (enabled in S0 and Sx/AC),
/// else CIM's Invalid Parameter (5).
pub(super) fn invoke(
    fw: &mut FirmwareCore,
    class: &str,
    method: &str,
    input: Option<&Element>,
    _user: &str,
) -> Option<Vec<Param>> {
    match (class, method) {
        (SERVICE, "AddWiFiSettings") => Some(match add_wifi_settings(fw, input) {
            Ok(()) => {
                fw.changed();
                ret(0)
            }
            Err((status, why)) => {
                tracing::debug!(status, why, "AddWiFiSettings refused");
                ret(status)
            }
        }),
        (PORT, "RequestStateChange") => {
            let state = super::super::model::input_text(input, "RequestedState").unwrap_or("");
            Some(match state {
                "3" | "32768" | "32769" => {
                    let state = state.to_string();
                    if let Some(p) = fw
                        .profile
                        .instances
                        .get_mut(PORT)
                        .and_then(|l| l.first_mut())
                    {
                        set_prop(p, "EnabledState", &state);
                        set_prop(p, "RequestedState", &state);
                    }
                    fw.changed();
                    ret(0)
                }
                _ => ret(5),
            })
        }
        _ => None,
    }
}

/// A deleted profile takes its 802.1X settings and their certificate bindings with it.
pub(super) fn after_delete(fw: &mut FirmwareCore, class: &str, removed: &[Instance]) {
    if class != ENDPOINT_SETTINGS {
        return;
    }
    for p in removed {
        let Some(x_id) = prop(p, &hidden("IEEE8021xSettings")).map(str::to_string) else {
            continue;
        };
        if let Some(l) = fw.profile.instances.get_mut(IEEE8021X) {
            l.retain(|i| prop(i, "InstanceID") != Some(x_id.as_str()));
        }
        if let Some(l) = fw.profile.instances.get_mut(CONTEXT) {
            l.retain(|c| {
                prop(c, "ElementProvidingContext")
                    .and_then(epr_parts)
                    .is_none_or(|(_, _, id)| id != x_id)
            });
        }
    }
}
