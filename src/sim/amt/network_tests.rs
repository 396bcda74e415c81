//! The network, Wi-Fi and key-store classes of the simulated firmware, driven with the agent's
//! typed calls over real HTTP bytes (render → Digest → the web server → decode). The same
//! classes are also driven by Intel's wsman-messages (tests/peer) and the RPS peer, so these
//! rules are not only checked against the agent's own understanding of them.

use base64::Engine as _;

use super::tests::send as run;
use crate::secret::Secret;
use crate::sim::{profile, Firmware};
use crate::wsman::calls::{self, WsmanError};
use crate::wsman::classes::{ethernet, ieee8021x, public_key_management as pkm, wifi};
use crate::wsman::digest::DigestClient;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// An activated (CCM) firmware of `name`, with a wireless adapter when `wifi`, and admin's client.
fn firmware(name: &str, wifi: bool) -> (Firmware, DigestClient) {
    let mut p = profile::builtin(name).unwrap();
    if wifi {
        p.wireless.mac = "a4:bb:6d:12:34:57".into();
    }
    super::tests::activated_with(p, 1)
}

fn fixture_b64(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/ieee8021x/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let pem = std::fs::read(path).unwrap();
    B64.encode(x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents)
}

fn fault_subcode(r: Result<impl std::fmt::Debug, WsmanError>) -> String {
    match r {
        Err(WsmanError::Fault(f)) => f.subcode.map(|s| s.local).unwrap_or_default(),
        other => panic!("expected a fault, got {other:?}"),
    }
}

fn return_value(r: Result<impl std::fmt::Debug, WsmanError>) -> u32 {
    match r {
        Err(WsmanError::ReturnValue { value, .. }) => value,
        other => panic!("expected a ReturnValue, got {other:?}"),
    }
}

fn wired_port(f: &Firmware, c: &mut DigestClient) -> ethernet::EthernetPortSettings {
    let ctx = run(f, c, ethernet::enumerate()).unwrap();
    run(f, c, ethernet::pull(&ctx))
        .unwrap()
        .items
        .into_iter()
        .find(|p| p.is_wired())
        .unwrap()
}

#[test]
fn the_wired_port_takes_dhcp_or_a_valid_static_address_and_amthi_follows() {
    let (f, mut c) = firmware("amt16.1", false);
    let mut port = wired_port(&f, &mut c);
    port.dhcp_enabled = Some(false);
    port.ip_sync_enabled = Some(false);
    port.shared_static_ip = Some(false);
    port.ip_address = Some("192.168.7.50".into());
    port.subnet_mask = Some("255.255.255.0".into());
    port.default_gateway = Some("192.168.7.1".into());
    port.primary_dns = Some("192.168.7.2".into());
    let stored = run(&f, &mut c, ethernet::put(&port)).unwrap();
    assert_eq!(stored.dhcp_enabled, Some(false));
    assert_eq!(stored.ip_address.as_deref(), Some("192.168.7.50"));
    assert!(!f.lock().profile.wired.dhcp_enabled);
    assert_eq!(f.lock().profile.wired.ipv4, "192.168.7.50");

    // Each rule: the fault, and nothing stored.
    let refused = |edit: &dyn Fn(&mut ethernet::EthernetPortSettings)| {
        let (f, mut c) = firmware("amt16.1", false);
        let mut p = wired_port(&f, &mut c);
        edit(&mut p);
        let r = run(&f, &mut c, ethernet::put(&p));
        assert_eq!(fault_subcode(r), "InvalidRepresentation");
        assert!(f.lock().profile.wired.dhcp_enabled);
    };
    refused(&|p| p.shared_static_ip = Some(true)); // DHCP with a shared static address
    refused(&|p| {
        p.dhcp_enabled = Some(false);
        p.ip_sync_enabled = Some(false);
        p.shared_static_ip = Some(true); // shared without sync
    });
    let static_with = |ip: &'static str, mask: &'static str, gw: &'static str| {
        move |p: &mut ethernet::EthernetPortSettings| {
            p.dhcp_enabled = Some(false);
            p.ip_sync_enabled = Some(false);
            p.shared_static_ip = Some(false);
            p.ip_address = Some(ip.into());
            p.subnet_mask = Some(mask.into());
            p.default_gateway = Some(gw.into());
        }
    };
    refused(&static_with("0.0.0.0", "255.255.255.0", "0.0.0.0"));
    refused(&static_with("10.1.1.5", "255.0.255.0", "0.0.0.0"));
    refused(&static_with("10.1.1.5", "255.255.255.0", "10.1.2.1"));
    refused(&static_with("224.0.0.5", "255.255.255.0", "0.0.0.0"));

    // DHCP again: the lease comes back, in WS-MAN and over AMTHI.
    let mut back = wired_port(&f, &mut c);
    back.dhcp_enabled = Some(true);
    back.ip_sync_enabled = Some(true);
    back.ip_address = None;
    let stored = run(&f, &mut c, ethernet::put(&back)).unwrap();
    assert_eq!(stored.ip_address.as_deref(), Some("10.0.0.42"));
    assert!(f.lock().profile.wired.dhcp_enabled);
    assert_eq!(f.lock().profile.wired.ipv4, "10.0.0.42");
}

#[test]
fn the_wireless_port_is_dhcp_only() {
    let (f, mut c) = firmware("amt16.1", true);
    let ctx = run(&f, &mut c, ethernet::enumerate()).unwrap();
    let mut p = run(&f, &mut c, ethernet::pull(&ctx))
        .unwrap()
        .items
        .into_iter()
        .find(|p| !p.is_wired())
        .unwrap();
    p.dhcp_enabled = Some(false);
    assert_eq!(
        fault_subcode(run(&f, &mut c, ethernet::put(&p))),
        "InvalidRepresentation"
    );
}

/// Key, client certificate and CA into the store; their handles.
fn store_eap_tls(f: &Firmware, c: &mut DigestClient) -> (String, String, String) {
    let key = run(
        f,
        c,
        pkm::add_key(&Secret::new(fixture_b64("client-pkcs1.key"))),
    )
    .unwrap();
    let client = run(f, c, pkm::add_certificate(&fixture_b64("client.pem"))).unwrap();
    let ca = run(
        f,
        c,
        pkm::add_trusted_root_certificate(&fixture_b64("ca.pem")),
    )
    .unwrap();
    (key, client, ca)
}

#[test]
fn wired_eap_tls_is_enabled_without_certificates_until_they_are_bound() {
    let (f, mut c) = firmware("amt16.1", false);
    let (_, client, ca) = store_eap_tls(&f, &mut c);
    // The same key again is a duplicate; a client certificate before its key is refused.
    assert_eq!(
        return_value(run(
            &f,
            &mut c,
            pkm::add_key(&Secret::new(fixture_b64("client-pkcs1.key")))
        )),
        2058
    );
    assert_eq!(
        return_value(run(
            &f,
            &mut c,
            pkm::add_certificate(&fixture_b64("client2.pem"))
        )),
        2060
    );
    let cur = run(&f, &mut c, ieee8021x::get_wired()).unwrap();
    let on = ieee8021x::WiredRequest {
        element_name: &cur.element_name,
        instance_id: &cur.instance_id,
        method: ieee8021x::EapMethod::EapTls,
        username: "amt-client",
        password: None,
    };
    run(&f, &mut c, ieee8021x::enable_wired(&on)).unwrap();
    assert_eq!(run(&f, &mut c, ieee8021x::get_wired()).unwrap().enabled, 6);
    // Root and client swapped: refused.
    assert_eq!(
        return_value(run(
            &f,
            &mut c,
            ieee8021x::set_certificates(&client, Some(&ca))
        )),
        36
    );
    run(&f, &mut c, ieee8021x::set_certificates(&ca, Some(&client))).unwrap();
    assert_eq!(run(&f, &mut c, ieee8021x::get_wired()).unwrap().enabled, 2);
    let ctx = run(&f, &mut c, ieee8021x::enumerate(ieee8021x::IPS_CONTEXT)).unwrap();
    let bound: Vec<ieee8021x::CredentialContext> =
        run(&f, &mut c, ieee8021x::pull(ieee8021x::IPS_CONTEXT, &ctx))
            .unwrap()
            .items
            .iter()
            .filter_map(ieee8021x::CredentialContext::from_instance)
            .collect();
    assert_eq!(bound.len(), 2, "{bound:?}");
    assert!(bound.iter().all(|b| b.settings == cur.instance_id));
    // A bound certificate cannot go; once 802.1X is off it can.
    assert_eq!(
        fault_subcode(run(&f, &mut c, pkm::delete_certificate(&client))),
        "AccessDenied"
    );
    let now = run(&f, &mut c, ieee8021x::get_wired()).unwrap();
    run(&f, &mut c, ieee8021x::disable_wired(&now)).unwrap();
    run(&f, &mut c, pkm::delete_certificate(&client)).unwrap();
}

#[test]
fn wired_peap_needs_a_password_and_never_shows_it() {
    let (f, mut c) = firmware("amt16.1", false);
    let cur = run(&f, &mut c, ieee8021x::get_wired()).unwrap();
    let mut on = ieee8021x::WiredRequest {
        element_name: &cur.element_name,
        instance_id: &cur.instance_id,
        method: ieee8021x::EapMethod::PeapMschapv2,
        username: "alice",
        password: None,
    };
    assert_eq!(
        fault_subcode(run(&f, &mut c, ieee8021x::enable_wired(&on))),
        "InvalidRepresentation"
    );
    let pw = Secret::new("Radius-Pa55");
    on.password = Some(&pw);
    let stored = run(&f, &mut c, ieee8021x::enable_wired(&on)).unwrap();
    assert!(!stored.contains("Password"));
    let got = run(&f, &mut c, ieee8021x::get_wired()).unwrap();
    assert_eq!((got.enabled, got.protocol), (2, Some(2)));
    assert!(!calls::get(ieee8021x::IPS_SETTINGS, &[])
        .render("1")
        .contains("Radius-Pa55"));
    let xml = format!("{:?}", got.instance);
    assert!(
        !xml.contains("Radius-Pa55") && !xml.contains("Password"),
        "{xml}"
    );
}

fn psk_profile<'a>(name: &'a str, priority: u32, psk: &'a Secret) -> wifi::NewProfile<'a> {
    wifi::NewProfile {
        name,
        ssid: "CorpNet",
        priority,
        auth: wifi::AuthMethod::Wpa2Psk,
        encryption: wifi::Encryption::Ccmp,
        passphrase: Some(psk),
    }
}

fn profiles(f: &Firmware, c: &mut DigestClient) -> Vec<wifi::Profile> {
    let ctx = run(f, c, wifi::enumerate_profiles()).unwrap();
    run(f, c, wifi::pull_profiles(&ctx))
        .unwrap()
        .items
        .iter()
        .map(wifi::Profile::from_instance)
        .collect()
}

#[test]
fn wifi_profiles_are_checked_named_once_and_prioritised_once() {
    let (f, mut c) = firmware("amt16.1", true);
    let psk = Secret::new("correct horse battery");
    run(
        &f,
        &mut c,
        wifi::add_wifi_settings(&psk_profile("office", 1, &psk), None),
    )
    .unwrap();
    let listed = profiles(&f, &mut c);
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].instance_id,
        "Intel(r) AMT:WiFi Endpoint Settings office"
    );
    assert_eq!((listed[0].priority, listed[0].auth), (1, Some(6)));
    let mut add =
        |p: wifi::NewProfile<'_>| return_value(run(&f, &mut c, wifi::add_wifi_settings(&p, None)));
    assert_eq!(add(psk_profile("office", 2, &psk)), 2058);
    assert_eq!(add(psk_profile("lab", 1, &psk)), 2067);
    let short = Secret::new("short");
    assert_eq!(add(psk_profile("lab", 2, &short)), 3);
    assert_eq!(add(psk_profile("lab-2", 2, &psk)), 3); // a dash is not a letter or digit
    let mut wpa3_tkip = psk_profile("lab", 2, &psk);
    wpa3_tkip.auth = wifi::AuthMethod::Wpa3Sae;
    wpa3_tkip.encryption = wifi::Encryption::Tkip;
    assert_eq!(add(wpa3_tkip), 3);
    // A method without a passphrase given one, and an 802.1X method without its settings.
    let mut owe = psk_profile("lab", 2, &psk);
    owe.auth = wifi::AuthMethod::Wpa3Owe;
    assert_eq!(add(owe), 3);
    let mut dot1x = psk_profile("lab", 2, &psk);
    dot1x.auth = wifi::AuthMethod::Wpa2Ieee8021x;
    dot1x.passphrase = None;
    assert_eq!(add(dot1x), 3);

    run(&f, &mut c, wifi::delete_profile(&listed[0].instance_id)).unwrap();
    assert!(profiles(&f, &mut c).is_empty());
    // The passphrase is kept, never listed.
    assert!(!format!("{:?}", f.lock().profile.instances).contains("correct horse"));
}

#[test]
fn an_8021x_wifi_profile_binds_its_certificates_and_takes_them_along_when_deleted() {
    let (f, mut c) = firmware("amt16.1", true);
    let (_, client, ca) = store_eap_tls(&f, &mut c);
    let p = wifi::NewProfile {
        name: "corp",
        ssid: "Corp-8021X",
        priority: 3,
        auth: wifi::AuthMethod::Wpa2Ieee8021x,
        encryption: wifi::Encryption::Ccmp,
        passphrase: None,
    };
    let x = wifi::NewProfile8021x {
        name: "corpTls",
        protocol: 0,
        username: "amt-client",
        password: None,
        client_certificate: Some(&ca), // a root where a client certificate belongs
        ca_certificate: Some(&ca),
    };
    assert_eq!(
        return_value(run(&f, &mut c, wifi::add_wifi_settings(&p, Some(&x)))),
        4
    );
    let x = wifi::NewProfile8021x {
        client_certificate: Some(&client),
        ..x
    };
    run(&f, &mut c, wifi::add_wifi_settings(&p, Some(&x))).unwrap();
    let ctx = run(&f, &mut c, ieee8021x::enumerate(ieee8021x::CIM_CONTEXT)).unwrap();
    let bound: Vec<_> = run(&f, &mut c, ieee8021x::pull(ieee8021x::CIM_CONTEXT, &ctx))
        .unwrap()
        .items
        .iter()
        .filter_map(ieee8021x::CredentialContext::from_instance)
        .collect();
    assert_eq!(bound.len(), 2);
    assert_eq!(bound[0].settings, "Intel(r) AMT:IEEE 802.1x Settings corp");
    assert_eq!(
        fault_subcode(run(&f, &mut c, pkm::delete_certificate(&ca))),
        "AccessDenied"
    );
    run(
        &f,
        &mut c,
        wifi::delete_profile("Intel(r) AMT:WiFi Endpoint Settings corp"),
    )
    .unwrap();
    let ctx = run(&f, &mut c, ieee8021x::enumerate(ieee8021x::CIM_SETTINGS)).unwrap();
    assert!(
        run(&f, &mut c, ieee8021x::pull(ieee8021x::CIM_SETTINGS, &ctx))
            .unwrap()
            .items
            .is_empty()
    );
    run(&f, &mut c, pkm::delete_certificate(&ca)).unwrap();
}

#[test]
fn sync_settings_and_the_port_state() {
    let (f, mut c) = firmware("amt16.1", true);
    let cur = run(&f, &mut c, wifi::get_port_configuration()).unwrap();
    assert_eq!((cur.local_sync, cur.uefi_share), (0, Some(false)));
    assert!(run(&f, &mut c, wifi::uefi_wifi_share_capable()).unwrap());
    let now = run(
        &f,
        &mut c,
        wifi::put_port_configuration(&cur, 3, Some(true)),
    )
    .unwrap();
    assert_eq!((now.local_sync, now.uefi_share), (3, Some(true)));
    assert_eq!(
        fault_subcode(run(&f, &mut c, wifi::put_port_configuration(&now, 2, None))),
        "InvalidRepresentation"
    );
    run(&f, &mut c, wifi::request_port_state(32769)).unwrap();
    assert_eq!(run(&f, &mut c, wifi::get_port()).unwrap(), 32769);
    assert_eq!(
        return_value(run(&f, &mut c, wifi::request_port_state(7))),
        5
    );

    // AMT 15: no UEFI profile sharing, so a Put that carries it is refused.
    let (f, mut c) = firmware("amt15", true);
    let cur = run(&f, &mut c, wifi::get_port_configuration()).unwrap();
    assert_eq!(cur.uefi_share, None);
    assert!(!run(&f, &mut c, wifi::uefi_wifi_share_capable()).unwrap());
    assert_eq!(
        fault_subcode(run(
            &f,
            &mut c,
            wifi::put_port_configuration(&cur, 3, Some(false))
        )),
        "InvalidRepresentation"
    );
}

#[test]
fn without_a_wireless_adapter_there_is_no_wifi() {
    let (f, mut c) = firmware("amt16.1", false);
    assert_eq!(
        fault_subcode(run(&f, &mut c, wifi::get_port_configuration())),
        "DestinationUnreachable"
    );
    assert_eq!(
        fault_subcode(run(&f, &mut c, wifi::get_port())),
        "DestinationUnreachable"
    );
}
