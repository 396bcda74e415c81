//! The network ports and wired 802.1X: `AMT_EthernetPortSettings` (wired `Settings 0`, wireless
//! `Settings 1`), `IPS_IEEE8021xSettings` with `SetCertificates` and the
//! `IPS_8021xCredentialContext` bindings it creates. The Wi-Fi classes are in [`super::wifi`].
//!
//! The firmware's rules for the wired port, as rpc-go's table and RPS's flows use it (rpc-go
//! `configure wired`, rps-protocol.md §5.1 step 5):
//!
//! | mode | DHCPEnabled | IpSyncEnabled | SharedStaticIp | addresses |
//! |---|---|---|---|---|
//! | DHCP | true | true | false | from the lease |
//! | static, synchronised with the host OS | false | true | true | the host's |
//! | static | false | false | false | given: IPAddress and SubnetMask at least |
//!
//! Refused with `wxf:InvalidRepresentation` (UNCONFIRMED, as every Put refusal's fault): DHCP with
//! SharedStaticIp, SharedStaticIp without IpSyncEnabled, a static port without a usable unicast
//! address and contiguous mask, a gateway outside the address's subnet, a DNS server that is no
//! unicast address; on the wireless port anything but DHCP (AMT's wireless interface takes its
//! address from DHCP only) and the wired-only properties.

use super::super::model::{epr, hidden, input_ref, inst, prop, ret, set_prop, Instance};
use super::dashed_mac;
use super::keystore;
use super::rules::{self, ro, rw, Kind, PropRule, PutRefusal};
use crate::sim::profile::DeviceProfile;
use crate::sim::FirmwareCore;
use crate::wsman::envelope::{ns, Element, Param};

pub(super) const ETHERNET: &str = "AMT_EthernetPortSettings";
pub(super) const IEEE8021X: &str = "IPS_IEEE8021xSettings";
pub(super) const IEEE8021X_ID: &str = "Intel(r) AMT: 8021X Settings";
pub(super) const WIRED_CONTEXT: &str = "IPS_8021xCredentialContext";

/// The DHCP lease the wired port falls back to when DHCP is turned on again.
fn lease() -> String {
    hidden("LeaseIPAddress")
}

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
            // The wireless port's own properties (fixture amt/ethernetport/pull.xml).
            i.insert(0, ("ConsoleTcpMaxRetransmissions".into(), "5".into()));
            i.push(("LinkControl".into(), "2".into()));
            i.push(("LinkPreference".into(), "2".into()));
            i.push(("WLANLinkProtectionLevel".into(), "1".into()));
        } else {
            i.push((lease(), l.ipv4.clone()));
        }
        i
    };
    let ins = &mut p.instances;
    ins.insert(
        ETHERNET.into(),
        vec![port(0, &p.wired), port(1, &p.wireless)],
    );
    ins.insert(
        IEEE8021X.into(),
        // AvailableInS0 and PxeTimeout as in go-wsman-messages' ips/ieee8021x/settings/get.xml
        // fixture; RPS Puts the instance it read back with Enabled=3 (rps-protocol.md §5.1 step 4).
        vec![inst(&[
            ("AvailableInS0", "false"),
            ("ElementName", IEEE8021X_ID),
            ("Enabled", "3"),
            ("InstanceID", IEEE8021X_ID),
            ("PxeTimeout", "120"),
        ])],
    );
    ins.insert(WIRED_CONTEXT.into(), Vec::new());
    ins.insert("CIM_WiFiEndpointSettings".into(), Vec::new());
}

const IPV4: Kind = Kind::Text(15);

const ETHERNET_RULES: &[PropRule] = &[
    rw("ConsoleTcpMaxRetransmissions", Kind::Uint(5, 7)),
    rw("DHCPEnabled", Kind::Bool),
    rw("DefaultGateway", IPV4),
    ro("ElementName", Kind::Text(256)),
    rw("IPAddress", IPV4),
    ro("InstanceID", Kind::Text(256)),
    rw("IpSyncEnabled", Kind::Bool),
    ro("LinkControl", Kind::Uint(1, 2)),
    ro("LinkIsUp", Kind::Bool),
    rw("LinkPolicy", Kind::OneOf(&[1, 14, 16, 224])),
    ro("LinkPreference", Kind::Uint(1, 2)),
    ro("MACAddress", Kind::Text(17)),
    ro("PhysicalConnectionType", Kind::Uint(0, 3)),
    rw("PrimaryDNS", IPV4),
    rw("SecondaryDNS", IPV4),
    ro("SharedDynamicIP", Kind::Bool),
    ro("SharedMAC", Kind::Bool),
    rw("SharedStaticIp", Kind::Bool),
    rw("SubnetMask", IPV4),
    rw("WLANLinkProtectionLevel", Kind::Uint(0, 3)),
];

/// `IPS_IEEE8021xSettings.AuthenticationProtocol` values AMT's wired supplicant takes: EAP-TLS,
/// EAP-TTLS/MSCHAPv2, PEAPv0/EAP-MSCHAPv2, PEAPv1/EAP-GTC, EAP-FAST/MSCHAPv2, EAP-FAST/GTC,
/// EAP-FAST/TLS (CIM's ValueMap minus MD5, PSK, SIM, AKA).
pub(super) const EAP_PROTOCOLS: &[u64] = &[0, 1, 2, 3, 4, 5, 10];

/// The protocols that authenticate with a client certificate instead of a password.
pub(super) fn eap_uses_certificate(protocol: &str) -> bool {
    matches!(protocol, "0" | "10")
}

const IEEE8021X_RULES: &[PropRule] = &[
    rw("AuthenticationProtocol", Kind::OneOf(EAP_PROTOCOLS)),
    rw("AvailableInS0", Kind::Bool),
    rw("Domain", Kind::Text(255)),
    ro("ElementName", Kind::Text(256)),
    rw("Enabled", Kind::OneOf(&[2, 3, 6])),
    ro("InstanceID", Kind::Text(256)),
    // UNCONFIRMED: the firmware's length limits on the credentials.
    rw("Password", Kind::Secret(32)),
    rw("PxeTimeout", Kind::Uint(0, 86400)),
    rw("RoamingIdentity", Kind::Text(80)),
    rw("ServerCertificateName", Kind::Text(80)),
    // rpc-go sends 0 ("no comparison") besides CIM's 1 Other, 2 FullName, 3 DomainSuffix.
    rw("ServerCertificateNameComparison", Kind::Uint(0, 3)),
    rw("Username", Kind::Text(128)),
];

/// A unicast IPv4 address a host may hold (not 0.0.0.0, broadcast, loopback or multicast).
pub(super) fn unicast(s: &str) -> Option<std::net::Ipv4Addr> {
    let a: std::net::Ipv4Addr = s.parse().ok()?;
    (!a.is_unspecified() && !a.is_broadcast() && !a.is_loopback() && !a.is_multicast()).then_some(a)
}

/// A contiguous netmask from /1 to /31.
pub(super) fn netmask(s: &str) -> Option<u32> {
    let m = u32::from(s.parse::<std::net::Ipv4Addr>().ok()?);
    (m != 0 && m != u32::MAX && m.leading_ones() + m.trailing_zeros() == 32).then_some(m)
}

/// Whether a Put's address fields may be empty or 0.0.0.0 (unset).
fn unset(v: Option<&str>) -> bool {
    matches!(v, None | Some("") | Some("0.0.0.0"))
}

fn check_ethernet(current: &Instance, body: &Element) -> Result<(), PutRefusal> {
    rules::check_put(ETHERNET, ETHERNET_RULES, current, body, true)?;
    let after = |n: &str| rules::after_put(current, body, n);
    let wired = prop(current, "InstanceID").is_some_and(|i| i.ends_with("Settings 0"));
    if !wired {
        for n in ["IpSyncEnabled", "SharedStaticIp"] {
            if body.child(n).is_some() {
                return Err(PutRefusal::invalid(format!(
                    "the wireless port has no {n} (it shares the host's address through DHCP)"
                )));
            }
        }
        if after("DHCPEnabled") != Some("true") {
            return Err(PutRefusal::invalid(
                "the wireless port supports DHCP only: DHCPEnabled must be true",
            ));
        }
        return Ok(());
    }
    let dhcp = after("DHCPEnabled") == Some("true");
    let sync = after("IpSyncEnabled") == Some("true");
    let shared = after("SharedStaticIp") == Some("true");
    if dhcp && shared {
        return Err(PutRefusal::invalid(
            "SharedStaticIp must be false while DHCPEnabled is true",
        ));
    }
    if shared && !sync {
        return Err(PutRefusal::invalid(
            "SharedStaticIp needs IpSyncEnabled (the static address is the host's)",
        ));
    }
    // DHCP, or a static address synchronised from the host: the address fields are the firmware's.
    if dhcp || sync {
        return Ok(());
    }
    let given = |n: &str| body.child_text(n);
    let ip = given("IPAddress").and_then(unicast).ok_or_else(|| {
        PutRefusal::invalid(format!(
            "INVALID_IP_ADDRESS (27): a static port needs IPAddress, a unicast IPv4 address (got {:?})",
            given("IPAddress").unwrap_or("")
        ))
    })?;
    let mask = given("SubnetMask").and_then(netmask).ok_or_else(|| {
        PutRefusal::invalid(format!(
            "INVALID_NETMASK (37): a static port needs SubnetMask, a contiguous netmask (got {:?})",
            given("SubnetMask").unwrap_or("")
        ))
    })?;
    if !unset(given("DefaultGateway")) {
        let gw = given("DefaultGateway").and_then(unicast).ok_or_else(|| {
            PutRefusal::invalid("INVALID_IP_ADDRESS (27): DefaultGateway is no unicast address")
        })?;
        if u32::from(gw) & mask != u32::from(ip) & mask || gw == ip {
            return Err(PutRefusal::invalid(format!(
                "INVALID_IP_ADDRESS (27): the gateway {gw} is not another host of {ip}'s subnet"
            )));
        }
    }
    for n in ["PrimaryDNS", "SecondaryDNS"] {
        if !unset(given(n)) && given(n).and_then(unicast).is_none() {
            return Err(PutRefusal::invalid(format!(
                "INVALID_IP_ADDRESS (27): {n} is no unicast address"
            )));
        }
    }
    Ok(())
}

fn check_ieee8021x(current: &Instance, body: &Element) -> Result<(), PutRefusal> {
    rules::check_put(IEEE8021X, IEEE8021X_RULES, current, body, true)?;
    let after = |n: &str| rules::after_put(current, body, n);
    if after("Enabled") == Some("3") {
        return Ok(());
    }
    let Some(protocol) = after("AuthenticationProtocol") else {
        return Err(PutRefusal::invalid(
            "enabling 802.1X needs AuthenticationProtocol",
        ));
    };
    if after("Username").unwrap_or("").is_empty() {
        return Err(PutRefusal::invalid("enabling 802.1X needs a Username"));
    }
    let has_password = body.child("Password").is_some_and(|p| !p.text().is_empty())
        || (prop(current, &hidden("PasswordHash")).is_some() && body.child("Password").is_none());
    if !eap_uses_certificate(protocol) && !has_password {
        return Err(PutRefusal::invalid(format!(
            "AuthenticationProtocol {protocol} authenticates with a password: Password is required"
        )));
    }
    Ok(())
}

/// This area's Put rules; `None` for another area's class.
pub(super) fn check_put(
    class: &str,
    current: &Instance,
    body: &Element,
) -> Option<Result<(), PutRefusal>> {
    match class {
        ETHERNET => Some(check_ethernet(current, body)),
        IEEE8021X => Some(check_ieee8021x(current, body)),
        _ => None,
    }
}

/// A password as the firmware keeps it for the simulator: a digest, never the text.
/// Whether the wired 802.1X settings have what their protocol needs bound.
fn wired_certificates_bound(fw: &FirmwareCore, protocol: &str) -> bool {
    let bound = bound_certificates(fw, WIRED_CONTEXT, IEEE8021X_ID);
    let has = |root: bool| {
        bound.iter().any(|h| {
            keystore::certificate(fw, h).is_some_and(|c| keystore::is_trusted_root(c) == root)
        })
    };
    !eap_uses_certificate(protocol) || (has(true) && has(false))
}

/// The certificate handles bound to `settings` (an InstanceID) by `context_class`.
pub(super) fn bound_certificates(
    fw: &FirmwareCore,
    context_class: &str,
    settings: &str,
) -> Vec<String> {
    fw.profile
        .instances
        .get(context_class)
        .into_iter()
        .flatten()
        .filter(|c| {
            prop(c, "ElementProvidingContext")
                .and_then(super::super::model::epr_parts)
                .is_some_and(|(_, _, id)| id == settings)
        })
        .filter_map(|c| prop(c, "ElementInContext").and_then(super::super::model::epr_parts))
        .map(|(_, _, h)| h.to_string())
        .collect()
}

/// After a stored Put: the wired port's addresses follow its mode (the lease under DHCP, and the
/// AMTHI view `amtinfo --lan` reads); the 802.1X password is kept as a digest only, and the state
/// says whether the certificates EAP-TLS needs are bound (`6`, enabled without certificates).
pub(super) fn after_put(fw: &mut FirmwareCore, class: &str, at: usize) {
    match class {
        ETHERNET => {
            let i = &mut fw.profile.instances.get_mut(ETHERNET).expect("put")[at];
            if prop(i, "InstanceID").is_some_and(|v| v.ends_with("Settings 0")) {
                let dhcp = prop(i, "DHCPEnabled") == Some("true");
                if dhcp {
                    let lease = prop(i, &lease()).unwrap_or("0.0.0.0").to_string();
                    set_prop(i, "IPAddress", &lease);
                }
                let ip = prop(i, "IPAddress").unwrap_or("0.0.0.0").to_string();
                fw.profile.wired.dhcp_enabled = dhcp;
                fw.profile.wired.ipv4 = ip;
            }
        }
        IEEE8021X => {
            let given = prop(&fw.profile.instances[IEEE8021X][at], "Enabled").map(str::to_string);
            let protocol = prop(
                &fw.profile.instances[IEEE8021X][at],
                "AuthenticationProtocol",
            )
            .unwrap_or("0")
            .to_string();
            match given.as_deref() {
                // Disabled: the bindings go, so the certificates may be deleted (RPS deletes the
                // key pairs right after turning 802.1X off, rps-protocol.md §5.1 step 4).
                Some("3") => {
                    if let Some(l) = fw.profile.instances.get_mut(WIRED_CONTEXT) {
                        l.clear();
                    }
                }
                Some("2") | Some("6") => {
                    let state = if wired_certificates_bound(fw, &protocol) {
                        "2"
                    } else {
                        "6"
                    };
                    let i = &mut fw.profile.instances.get_mut(IEEE8021X).expect("put")[at];
                    set_prop(i, "Enabled", state);
                }
                _ => {}
            }
        }
        _ => {}
    }
}

/// `IPS_IEEE8021xSettings.SetCertificates(ServerCertificateIssuer, ClientCertificate)`: binds a
/// trusted root (the RADIUS server's issuer) and a client certificate whose key AMT holds.
/// ReturnValues (PT_STATUS, UNCONFIRMED): 2068 NOT_FOUND for a handle AMT does not hold, 36
/// INVALID_PARAMETER for a root that is not trusted / a client certificate that is, or nothing
/// given, 2060 PKI_MISSING_KEYS for a client certificate without its key.
pub(super) fn invoke(
    fw: &mut FirmwareCore,
    class: &str,
    method: &str,
    input: Option<&Element>,
    _user: &str,
) -> Option<Vec<Param>> {
    if (class, method) != (IEEE8021X, "SetCertificates") {
        return None;
    }
    let root = input_ref(input, "ServerCertificateIssuer");
    let client = input_ref(input, "ClientCertificate");
    if root.is_none() && client.is_none() {
        return Some(ret(36));
    }
    for (handle, want_root) in [(&root, true), (&client, false)] {
        let Some(h) = handle else { continue };
        let Some(c) = keystore::certificate(fw, h) else {
            return Some(ret(2068));
        };
        if keystore::is_trusted_root(c) != want_root {
            return Some(ret(36));
        }
        if !want_root && !keystore::has_private_key(fw, c) {
            return Some(ret(2060));
        }
    }
    let settings = epr(
        &format!("{}{IEEE8021X}", ns::IPS_SCHEMA),
        "InstanceID",
        IEEE8021X_ID,
    );
    let contexts: Vec<Instance> = [root, client]
        .into_iter()
        .flatten()
        .map(|h| keystore::credential_context(&h, &settings))
        .collect();
    fw.profile.instances.insert(WIRED_CONTEXT.into(), contexts);
    // EAP-TLS waiting for its certificates is now fully enabled.
    let protocol = fw.profile.instances[IEEE8021X]
        .first()
        .and_then(|i| prop(i, "AuthenticationProtocol"))
        .unwrap_or("0")
        .to_string();
    let bound = wired_certificates_bound(fw, &protocol);
    if let Some(i) = fw
        .profile
        .instances
        .get_mut(IEEE8021X)
        .and_then(|l| l.first_mut())
    {
        if prop(i, "Enabled") == Some("6") && bound {
            set_prop(i, "Enabled", "2");
        }
    }
    fw.changed();
    Some(ret(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_masks_are_checked_as_the_firmware_would() {
        assert!(unicast("192.168.1.50").is_some());
        for bad in [
            "0.0.0.0",
            "255.255.255.255",
            "127.0.0.1",
            "224.0.0.1",
            "300.1.1.1",
            "",
        ] {
            assert!(unicast(bad).is_none(), "{bad}");
        }
        assert_eq!(netmask("255.255.255.0"), Some(0xFFFF_FF00));
        for bad in ["255.0.255.0", "0.0.0.0", "255.255.255.255", "x"] {
            assert!(netmask(bad).is_none(), "{bad}");
        }
    }
}
