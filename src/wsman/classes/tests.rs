//! Requests byte-for-byte against what RPS 2.40.0 sent in the recorded traces (genuine RPS output,
//! `fixtures/rps-traces/`) and against `@device-management-toolkit/wsman-messages` output;
//! decoders against the go-wsman-messages response fixtures.

use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::*;
use crate::amthi::{ControlMode, ProvisioningState};
use crate::error::{AgentError, ExitCode};
use crate::secret::Secret;
use crate::wsman::calls::{self, Call, Instance, WsmanError};
use crate::wsman::envelope::{self, action, amt_method_response, Envelope, EnvelopeError, Param};
use crate::wsman::http::{RequestParser, ResponseParser};

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The `n`-th exchange of a trace: (request XML, its MessageID, the realm of its Digest header if
/// any, the stand-in's response body).
struct Exchange {
    request: String,
    message_id: String,
    realm: Option<String>,
    response: Vec<u8>,
}

fn trace(file: &str, n: u64) -> Exchange {
    let text = std::fs::read_to_string(shared("rps-traces").join(file)).unwrap();
    let mut request = None;
    let mut response = None;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["n"].as_u64() != Some(n) {
            continue;
        }
        let payload = v["decoded_payload"].as_str().unwrap().as_bytes().to_vec();
        match v["dir"].as_str().unwrap() {
            "rps->client" => request = Some(RequestParser::new().feed(&payload).unwrap().unwrap()),
            _ => response = Some(ResponseParser::new().feed(&payload).unwrap().unwrap()),
        }
    }
    let request = request.unwrap_or_else(|| panic!("{file} #{n}: no request"));
    let xml = String::from_utf8(request.body.clone()).unwrap();
    let message_id = between(&xml, "<a:MessageID>", "</a:MessageID>").to_string();
    let realm = request
        .header("Authorization")
        .map(|a| between(a, "realm=\"", "\"").to_string());
    Exchange {
        request: xml,
        message_id,
        realm,
        response: response.map(|r| r.body).unwrap_or_default(),
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let i = s.find(start).unwrap() + start.len();
    let j = s[i..].find(end).unwrap() + i;
    &s[i..j]
}

fn b64d(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn assert_renders_as<T>(call: &Call<T>, ex: &Exchange) {
    assert_eq!(call.render(&ex.message_id), ex.request);
}

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(shared("wsman-responses").join(rel)).unwrap()
}

fn decode_fixture<T>(call: &Call<T>, rel: &str) -> Result<T, WsmanError> {
    call.decode(200, &fixture(rel))
}

const PW: &str = "P@ssw0rd-Amt1";

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

#[test]
fn wsman_activation_requests_match_rps_byte_for_byte() {
    assert_renders_as(&general::get(), &trace("01-ccm-activate.jsonl", 1));

    let ex = trace("01-ccm-activate.jsonl", 3);
    let realm = ex.realm.clone().unwrap();
    assert_eq!(realm, "Digest:597311897A68E5376CE89AEA58868154");
    let nap = calls::network_admin_password(&realm, &Secret::new(PW));
    assert_eq!(nap.expose(), "7e1bb030701170480f85935905011cdf");
    assert_renders_as(&host_based_setup::setup(&nap), &ex);

    // ACM (trace 10): the password digest matches RPS's; nonce and signature re-encode exactly.
    let ex = trace("10-acm-activate.jsonl", 6);
    let nap = calls::network_admin_password(ex.realm.as_deref().unwrap(), &Secret::new(PW));
    assert_eq!(nap.expose(), "0818c553f84cedb81f6be7530bec4038");
    let nonce: [u8; 20] = b64d(between(&ex.request, "<h:McNonce>", "<"))
        .try_into()
        .unwrap();
    let sig = b64d(between(&ex.request, "<h:DigitalSignature>", "<"));
    let call = host_based_setup::admin_setup(
        host_based_setup::HTTP_DIGEST_MD5_A1,
        &nap,
        &nonce,
        host_based_setup::RSA_SHA2_256,
        &sig,
    );
    assert_renders_as(&call, &ex);

    // Upgrade (trace 03): Get, the leaf, UpgradeClientToAdmin, then SetMEBxPassword.
    assert_renders_as(
        &host_based_setup::get(),
        &trace("03-ccm-upgrade-to-acm.jsonl", 6),
    );
    let ex = trace("03-ccm-upgrade-to-acm.jsonl", 7);
    let der = b64d(between(&ex.request, "<h:NextCertificate>", "<"));
    assert_renders_as(
        &host_based_setup::add_next_cert_in_chain(&der, true, false),
        &ex,
    );
    let ex = trace("03-ccm-upgrade-to-acm.jsonl", 9);
    let nonce: [u8; 20] = b64d(between(&ex.request, "<h:McNonce>", "<"))
        .try_into()
        .unwrap();
    let sig = b64d(between(&ex.request, "<h:DigitalSignature>", "<"));
    assert_renders_as(
        &host_based_setup::upgrade_client_to_admin(&nonce, 2, &sig),
        &ex,
    );
    assert_renders_as(
        &setup_and_configuration::set_mebx_password(&Secret::new("P@ssw0rd-Mebx1")),
        &trace("03-ccm-upgrade-to-acm.jsonl", 11),
    );

    // Re-activation (trace 02): the admin password as base64 of the raw MD5.
    let ex = trace("02-ccm-reactivate-ccm.jsonl", 6);
    let dp = calls::digest_password_b64(ex.realm.as_deref().unwrap(), &Secret::new(PW));
    assert_eq!(dp.expose(), "fhuwMHARcEgPhZNZBQEc3w==");
    assert_eq!(
        calls::b64(&calls::digest_password_raw(
            ex.realm.as_deref().unwrap(),
            &Secret::new(PW)
        )),
        "fhuwMHARcEgPhZNZBQEc3w=="
    );
    assert_renders_as(&authorization::set_admin_acl_entry_ex("admin", &dp), &ex);
}

#[test]
fn wsman_maintenance_requests_match_rps_byte_for_byte() {
    // #1 went unauthenticated (401) and #2 repeated it with Digest.
    assert_renders_as(
        &time_sync::get_low_accuracy_time_synch(),
        &trace("04-maint-synctime.jsonl", 1),
    );
    let ex = trace("04-maint-synctime.jsonl", 2);
    assert_renders_as(&time_sync::get_low_accuracy_time_synch(), &ex);
    let ta0 = time_sync::get_low_accuracy_time_synch()
        .decode(200, &ex.response)
        .unwrap();
    assert_eq!(ta0, 1795819728);
    assert_renders_as(
        &time_sync::set_high_accuracy_time_synch(ta0, ta0, ta0),
        &trace("04-maint-synctime.jsonl", 3),
    );

    // synchostname: Get, change HostName, Put the whole instance back.
    let got = trace("05-maint-synchostname.jsonl", 2);
    let mut gs = general::get().decode(200, &got.response).unwrap();
    assert_eq!(gs.host_name.as_deref(), Some("sim-host"));
    gs.host_name = Some("sim-host-renamed".into());
    let put = trace("05-maint-synchostname.jsonl", 3);
    assert_renders_as(&general::put(&gs), &put);
    let stored = general::put(&gs).decode(200, &put.response).unwrap();
    assert_eq!(stored.host_name.as_deref(), Some("sim-host-renamed"));

    assert_renders_as(
        &setup_and_configuration::unprovision(
            setup_and_configuration::PROVISIONING_MODE_ENTERPRISE,
        ),
        &trace("09-deactivate.jsonl", 1),
    );
}

#[test]
fn wsman_network_requests_match_rps_byte_for_byte() {
    assert_renders_as(&ethernet::enumerate(), &trace("01-ccm-activate.jsonl", 4));
    let ex = trace("01-ccm-activate.jsonl", 5);
    let ctx = between(&ex.request, "<EnumerationContext>", "<");
    assert_renders_as(&ethernet::pull(ctx), &ex);

    // RPS's wired Put (DHCP profile): IpSyncEnabled on, the IP fields dropped, the rest in order.
    let pulled = trace("01-ccm-activate.jsonl", 22);
    let page = ethernet::pull("x").decode(200, &pulled.response).unwrap();
    let mut wired = page.items.into_iter().find(|p| p.is_wired()).unwrap();
    assert_eq!(wired.ip_address.as_deref(), Some("192.168.50.23"));
    wired.ip_sync_enabled = Some(true);
    wired.ip_address = None;
    wired.subnet_mask = None;
    wired.default_gateway = None;
    wired.primary_dns = None;
    let put = trace("01-ccm-activate.jsonl", 23);
    assert_renders_as(&ethernet::put(&wired), &put);
    let echoed = ethernet::put(&wired).decode(200, &put.response).unwrap();
    assert_eq!(
        (
            echoed.dhcp_enabled,
            echoed.ip_sync_enabled,
            echoed.shared_static_ip
        ),
        (Some(true), Some(true), Some(false))
    );

    assert_renders_as(&tls::enumerate(), &trace("01-ccm-activate.jsonl", 16));
    let ex = trace("01-ccm-activate.jsonl", 17);
    assert_renders_as(
        &tls::pull(between(&ex.request, "<EnumerationContext>", "<")),
        &ex,
    );
}

/// Envelope head of go-wsman-messages / the npm package up to the MessageID.
fn npm_request(action: &str, class_uri: &str, id: u32, selectors: &str, body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Envelope xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\" xmlns=\"http://www.w3.org/2003/05/soap-envelope\"><Header><a:Action>{action}</a:Action><a:To>/wsman</a:To><w:ResourceURI>{class_uri}</w:ResourceURI><a:MessageID>{id}</a:MessageID><a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><w:OperationTimeout>PT60S</w:OperationTimeout>{selectors}</Header><Body>{body}</Body></Envelope>"
    )
}

const HBS: &str = "http://intel.com/wbem/wscim/1/ips-schema/1/IPS_HostBasedSetupService";
const SAC: &str = "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_SetupAndConfigurationService";

#[test]
fn wsman_requests_match_the_npm_package() {
    // @device-management-toolkit/wsman-messages 5.14.1, ips.HostBasedSetupService.Setup(2, 'abc').
    assert_eq!(
        host_based_setup::setup(&Secret::new("abc")).render("1"),
        npm_request(
            &format!("{HBS}/Setup"),
            HBS,
            1,
            "",
            &format!("<h:Setup_INPUT xmlns:h=\"{HBS}\"><h:NetAdminPassEncryptionType>2</h:NetAdminPassEncryptionType><h:NetworkAdminPassword>abc</h:NetworkAdminPassword></h:Setup_INPUT>")
        )
    );
    // amt.SetupAndConfigurationService.Get / CommitChanges / GetUuid; PartialUnprovision (not in
    // the npm package) follows the same empty-input pattern as go-wsman-messages.
    assert_eq!(
        setup_and_configuration::get().render("2"),
        npm_request(action::GET, SAC, 2, "", "")
    );
    for (call, m, id) in [
        (
            setup_and_configuration::commit_changes(),
            "CommitChanges",
            4,
        ),
        (
            setup_and_configuration::partial_unprovision(),
            "PartialUnprovision",
            5,
        ),
    ] {
        assert_eq!(
            call.render(&id.to_string()),
            npm_request(
                &format!("{SAC}/{m}"),
                SAC,
                id,
                "",
                &format!("<h:{m}_INPUT xmlns:h=\"{SAC}\"></h:{m}_INPUT>")
            )
        );
    }
    assert_eq!(
        setup_and_configuration::get_uuid().render("6"),
        npm_request(
            &format!("{SAC}/GetUuid"),
            SAC,
            6,
            "",
            &format!("<h:GetUuid_INPUT xmlns:h=\"{SAC}\"></h:GetUuid_INPUT>")
        )
    );
    // Put with an InstanceID selector, an array property repeated in place.
    let eth = "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_EthernetPortSettings";
    let mut i = Instance {
        class: "AMT_EthernetPortSettings".into(),
        properties: Vec::new(),
    };
    i.set("ElementName", "Intel(r) AMT Ethernet Port Settings");
    i.set("InstanceID", "Intel(r) AMT Ethernet Port Settings 0");
    i.set("DHCPEnabled", true);
    i.set("IpSyncEnabled", true);
    i.set("SharedStaticIp", false);
    i.set_all("LinkPolicy", ["1".to_string(), "14".to_string()]);
    let port = ethernet::EthernetPortSettings::from_instance(i).unwrap();
    assert_eq!(
        ethernet::put(&port).render("12"),
        npm_request(
            action::PUT,
            eth,
            12,
            "<w:SelectorSet><w:Selector Name=\"InstanceID\">Intel(r) AMT Ethernet Port Settings 0</w:Selector></w:SelectorSet>",
            &format!("<h:AMT_EthernetPortSettings xmlns:h=\"{eth}\"><h:ElementName>Intel(r) AMT Ethernet Port Settings</h:ElementName><h:InstanceID>Intel(r) AMT Ethernet Port Settings 0</h:InstanceID><h:DHCPEnabled>true</h:DHCPEnabled><h:IpSyncEnabled>true</h:IpSyncEnabled><h:SharedStaticIp>false</h:SharedStaticIp><h:LinkPolicy>1</h:LinkPolicy><h:LinkPolicy>14</h:LinkPolicy></h:AMT_EthernetPortSettings>")
        )
    );
}

#[test]
fn wsman_generic_calls_render_like_the_typed_ones() {
    let sel = [envelope::Selector::new(
        "Name",
        "Intel(r) AMT Host Based Setup Service",
    )];
    assert_eq!(
        calls::get("IPS_HostBasedSetupService", &[]).render("0"),
        host_based_setup::get().render("0")
    );
    assert!(calls::get("IPS_HostBasedSetupService", &sel)
        .render("0")
        .contains("<w:Selector Name=\"Name\">Intel(r) AMT Host Based Setup Service</w:Selector>"));
    assert_eq!(
        calls::invoke(
            "AMT_SetupAndConfigurationService",
            "Unprovision",
            &[],
            vec![calls::Arg::text("ProvisioningMode", 1)]
        )
        .render("3"),
        setup_and_configuration::unprovision(1).render("3")
    );
    let del = calls::delete(
        "AMT_PublicKeyCertificate",
        &[envelope::Selector::new(
            "InstanceID",
            "Intel(r) AMT Certificate: Handle: 1",
        )],
    );
    assert_eq!(del.action(), action::DELETE);
    assert!(del
        .render("1")
        .ends_with("</w:SelectorSet></Header><Body></Body></Envelope>"));
    // Text is escaped; the npm package would not escape it (invalid XML for such passwords).
    let r = setup_and_configuration::set_mebx_password(&Secret::new("a<b&c")).render("1");
    assert!(r.contains("<h:Password>a&lt;b&amp;c</h:Password>"));
}

#[test]
fn wsman_secrets_do_not_print_from_a_call() {
    let nap = calls::network_admin_password("Digest:0123", &Secret::new(PW));
    let call = host_based_setup::setup(&nap);
    let dbg = format!("{call:?} {nap:?}");
    assert!(!dbg.contains(nap.expose()), "{dbg}");
    assert!(dbg.contains("***"));
    assert!(call.render("0").contains(nap.expose()));
    let mebx = Secret::new("P@ssw0rd-Mebx1");
    let dbg = format!("{:?}", setup_and_configuration::set_mebx_password(&mebx));
    assert!(!dbg.contains("Mebx1"));
}

// ---------------------------------------------------------------------------------------------
// Decoders
// ---------------------------------------------------------------------------------------------

#[test]
fn wsman_general_settings_decodes_and_keeps_every_property() {
    let gs = decode_fixture(&general::get(), "amt/general/get.xml").unwrap();
    assert_eq!(gs.digest_realm, "Digest:F3EB554784E729164447A89F60B641C5");
    assert_eq!(gs.host_name.as_deref(), Some("Test Host Name"));
    assert_eq!(gs.domain_name.as_deref(), Some("Test Domain Name"));
    assert_eq!(gs.shared_fqdn, Some(true));
    assert_eq!(gs.amt_network_enabled, Some(1));
    assert_eq!(gs.rmcp_ping_response_enabled, Some(true));
    assert_eq!(gs.instance_id, "Intel(r) AMT: General Settings");
    assert_eq!(gs.instance.properties.len(), 24);
    assert_eq!(gs.instance.properties[5].name, "DHCPSyncRequiresHostname");
    // Unchanged, the Put sends back exactly what came.
    assert_eq!(gs.to_instance(), gs.instance);
    // The firmware capture too (empty HostName).
    let cap = std::fs::read(shared("amt-captures/200-general-settings-get.http")).unwrap();
    let resp = ResponseParser::new().feed(&cap).unwrap().unwrap();
    let gs = general::get().decode_response(&resp).unwrap();
    assert_eq!(gs.host_name.as_deref(), Some(""));
    assert_eq!(gs.digest_realm, "Digest:62FFAC181B3F3457C5B3894ED21F3E6E");
}

#[test]
fn wsman_host_based_setup_service_decodes() {
    let h = decode_fixture(&host_based_setup::get(), "ips/hostbasedsetup/get.xml").unwrap();
    assert_eq!(h.current_control_mode, ControlMode::Acm);
    assert_eq!(
        h.allowed_control_modes,
        vec![ControlMode::Acm, ControlMode::Ccm]
    );
    assert_eq!(
        calls::b64(&h.configuration_nonce),
        "4P3sY7swlhjkhJNxDkEBIUcmpHE="
    );
    assert_eq!(
        h.cert_chain_status,
        Some(host_based_setup::CertChainStatus::NotStarted)
    );
    // The trace-10 nonce is what RPS signed with the McNonce appended.
    let got = trace("10-acm-activate.jsonl", 3);
    let h = host_based_setup::get().decode(200, &got.response).unwrap();
    let mc = b64d(between(
        &trace("10-acm-activate.jsonl", 6).request,
        "<h:McNonce>",
        "<",
    ));
    let input = calls::signing_input(&h.configuration_nonce, &mc);
    assert_eq!(input.len(), 40);
    assert_eq!(&input[..20], &h.configuration_nonce);
    assert_eq!(&input[20..], &mc[..]);
    // A nonce that is not 20 bytes is an error, not a panic.
    let bad = amt_instance(
        "IPS_HostBasedSetupService",
        &[("CurrentControlMode", "0"), ("ConfigurationNonce", "AAAA")],
    );
    assert!(matches!(
        host_based_setup::get().decode(200, bad.as_bytes()),
        Err(WsmanError::Malformed(EnvelopeError::BadValue {
            field: "ConfigurationNonce",
            ..
        }))
    ));
}

fn amt_instance(class: &str, props: &[(&str, &str)]) -> String {
    let params: Vec<Param> = props.iter().map(|(k, v)| Param::text(*k, *v)).collect();
    envelope::amt_instance_response(
        action::GET_RESPONSE,
        "0",
        1,
        &envelope::resource_uri(class),
        class,
        &params,
    )
}

#[test]
fn wsman_setup_and_configuration_service_decodes() {
    let s = decode_fixture(
        &setup_and_configuration::get(),
        "amt/setupandconfiguration/get.xml",
    )
    .unwrap();
    assert_eq!(s.provisioning_mode, Some(1));
    assert_eq!(s.provisioning_state, Some(ProvisioningState::Post));
    assert_eq!(s.password_model, Some(1));
    assert_eq!(s.zero_touch_configuration_enabled, Some(true));
    assert_eq!(s.dhcp_dns_suffix, None);
    let u = decode_fixture(
        &setup_and_configuration::get_uuid(),
        "amt/setupandconfiguration/getuuid.xml",
    )
    .unwrap();
    assert_eq!(calls::b64(&u.0), "E67jVdK/u2EXoIiu3XA36g==");
    assert!(matches!(
        decode_fixture(
            &setup_and_configuration::get_uuid(),
            "amt/setupandconfiguration/getuuid-bad.xml"
        ),
        Err(WsmanError::Malformed(EnvelopeError::BadValue {
            field: "UUID",
            ..
        }))
    ));
}

#[test]
fn wsman_method_fixtures_decode_to_success() {
    let pw = Secret::new("x");
    let n = [0u8; 20];
    let cases: Vec<(Call<()>, &str)> = vec![
        (host_based_setup::setup(&pw), "ips/hostbasedsetup/setup.xml"),
        (
            host_based_setup::admin_setup(2, &pw, &n, 2, b"s"),
            "ips/hostbasedsetup/adminsetup.xml",
        ),
        (
            host_based_setup::add_next_cert_in_chain(b"c", true, false),
            "ips/hostbasedsetup/addnextcertinchain.xml",
        ),
        (
            host_based_setup::upgrade_client_to_admin(&n, 2, b"s"),
            "ips/hostbasedsetup/upgradeclienttoadmin.xml",
        ),
        (
            setup_and_configuration::unprovision(1),
            "amt/setupandconfiguration/unprovision.xml",
        ),
        (
            setup_and_configuration::partial_unprovision(),
            "amt/setupandconfiguration/partialunprovision.xml",
        ),
        (
            setup_and_configuration::commit_changes(),
            "amt/setupandconfiguration/commitchanges.xml",
        ),
        (
            setup_and_configuration::set_mebx_password(&pw),
            "amt/setupandconfiguration/setmebxpassword.xml",
        ),
        (
            authorization::set_admin_acl_entry_ex("admin", &pw),
            "amt/authorization/setadminaclentryex.xml",
        ),
        (
            time_sync::set_high_accuracy_time_synch(1, 2, 3),
            "amt/timesynchronization/sethighaccuracytimesynch.xml",
        ),
    ];
    for (call, f) in cases {
        assert_eq!(decode_fixture(&call, f), Ok(()), "{f}");
    }
    assert_eq!(
        decode_fixture(
            &time_sync::get_low_accuracy_time_synch(),
            "amt/timesynchronization/getlowaccuracytimesynch.xml"
        ),
        Ok(1704586865)
    );
    // Another method's output is not this method's.
    assert_eq!(
        decode_fixture(
            &host_based_setup::setup(&pw),
            "ips/hostbasedsetup/adminsetup.xml"
        ),
        Err(WsmanError::Missing("Setup_OUTPUT".into()))
    );
}

#[test]
fn wsman_ethernet_and_tls_pulls_decode() {
    assert_eq!(
        decode_fixture(&ethernet::enumerate(), "amt/ethernetport/enumerate.xml").unwrap(),
        Envelope::parse(&fixture("amt/ethernetport/enumerate.xml"))
            .unwrap()
            .enumeration_context()
            .unwrap()
    );
    let page = decode_fixture(&ethernet::pull("c"), "amt/ethernetport/pull.xml").unwrap();
    assert!(page.end_of_sequence);
    let [wired, wireless] = &page.items[..] else {
        panic!("two ports expected")
    };
    assert!(wired.is_wired() && !wireless.is_wired());
    assert_eq!(wired.mac_address.as_deref(), Some("00-be-43-d8-22-a4"));
    assert_eq!(
        (
            wired.link_is_up,
            wired.dhcp_enabled,
            wired.ip_sync_enabled,
            wired.shared_static_ip
        ),
        (Some(true), Some(true), Some(true), Some(false))
    );
    assert_eq!(wired.ip_address, None);
    assert_eq!(wired.subnet_mask.as_deref(), Some("255.255.255.0"));
    assert_eq!(wired.default_gateway.as_deref(), Some("192.168.6.1"));
    assert_eq!(wired.primary_dns.as_deref(), Some("192.168.6.1"));
    assert_eq!(
        wired.instance.get_all("LinkPolicy").collect::<Vec<_>>(),
        ["1", "14"]
    );
    assert_eq!(wireless.ip_sync_enabled, None);
    assert_eq!(wired.to_instance(), wired.instance);
    let put = decode_fixture(&ethernet::put(wired), "amt/ethernetport/put.xml").unwrap();
    assert_eq!(put.ip_address.as_deref(), Some("192.168.0.24"));
    assert_eq!(put.secondary_dns.as_deref(), Some("68.105.29.11"));

    let tls = decode_fixture(&tls::pull("c"), "amt/tls/settingdata/pull.xml").unwrap();
    let names: Vec<_> = tls
        .items
        .iter()
        .map(|i| i.get("ElementName").unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Intel(r) AMT 802.3 TLS Settings",
            "Intel(r) AMT LMS TLS Settings"
        ]
    );
    assert!(!tls.items.iter().any(tls::is_enabled));
}

#[test]
fn wsman_instance_edits_keep_the_firmware_order() {
    let mut gs = decode_fixture(&general::get(), "amt/general/get.xml").unwrap();
    gs.shared_fqdn = Some(false);
    gs.host_name = None;
    let i = gs.to_instance();
    assert!(!i.contains("HostName"));
    assert_eq!(i.get("SharedFQDN"), Some("false"));
    let before: Vec<_> = gs.instance.properties.iter().map(|p| &p.name).collect();
    let after: Vec<_> = i.properties.iter().map(|p| &p.name).collect();
    let mut expected = before.clone();
    expected.retain(|n| *n != "HostName");
    assert_eq!(after, expected);
    let mut i = i;
    i.set_all("HostName", ["a".to_string(), "b".to_string()]);
    assert_eq!(i.properties.last().unwrap().name, "HostName");
    i.set("AMTNetworkEnabled", 0);
    assert_eq!(i.properties[0].name, "AMTNetworkEnabled");
}

// ---------------------------------------------------------------------------------------------
// JSON for diagnostics
// ---------------------------------------------------------------------------------------------

#[test]
fn wsman_generic_responses_become_json() {
    let gs = decode_fixture(
        &calls::get("AMT_GeneralSettings", &[]),
        "amt/general/get.xml",
    )
    .unwrap()
    .to_json();
    assert_eq!(gs["AMTNetworkEnabled"], serde_json::json!(1));
    assert_eq!(gs["SharedFQDN"], serde_json::json!(true));
    assert_eq!(gs["HostName"], serde_json::json!("Test Host Name"));
    assert_eq!(
        gs.as_object().unwrap().keys().next().unwrap(),
        "AMTNetworkEnabled"
    );

    let page = decode_fixture(
        &calls::pull("AMT_EthernetPortSettings", "c"),
        "amt/ethernetport/pull.xml",
    )
    .unwrap()
    .to_json();
    assert_eq!(page[0]["LinkPolicy"], serde_json::json!([1, 14]));
    assert_eq!(
        page[0]["MACAddress"],
        serde_json::json!("00-be-43-d8-22-a4")
    );
    assert_eq!(page[1]["LinkPolicy"], serde_json::Value::Null);

    let hbs = Envelope::parse(&fixture("ips/hostbasedsetup/get.xml")).unwrap();
    let v = calls::body_json(&hbs).unwrap();
    assert_eq!(v["AllowedControlModes"], serde_json::json!([2, 1]));
    assert_eq!(
        v["ConfigurationNonce"],
        serde_json::json!("4P3sY7swlhjkhJNxDkEBIUcmpHE=")
    );

    let out = decode_fixture(
        &calls::invoke(
            "AMT_TimeSynchronizationService",
            "GetLowAccuracyTimeSynch",
            &[],
            vec![],
        ),
        "amt/timesynchronization/getlowaccuracytimesynch.xml",
    )
    .unwrap();
    assert_eq!(out.return_value, Some(0));
    assert_eq!(
        out.to_json(),
        serde_json::json!({"Ta0": 1704586865, "ReturnValue": 0})
    );
    let proxy = decode_fixture(
        &calls::invoke("IPS_HTTPProxyService", "AddProxyAccessPoint", &[], vec![]),
        "ips/http/addproxyaccesspoint_2058.xml",
    )
    .unwrap();
    assert_eq!(proxy.return_value, Some(2058));
    assert_eq!(
        proxy
            .check("IPS_HTTPProxyService", "AddProxyAccessPoint")
            .unwrap_err()
            .to_string()
            .split(':')
            .next()
            .unwrap(),
        "AddProxyAccessPoint returned DUPLICATE (2058)"
    );

    for (t, j) in [
        ("007", serde_json::json!("007")),
        ("0", serde_json::json!(0)),
        ("-5", serde_json::json!(-5)),
        ("-0", serde_json::json!("-0")),
        ("1.5", serde_json::json!("1.5")),
        ("", serde_json::json!("")),
        ("TRUE", serde_json::json!("TRUE")),
        ("4294967295", serde_json::json!(4294967295u64)),
        (
            "99999999999999999999",
            serde_json::json!("99999999999999999999"),
        ),
    ] {
        assert_eq!(calls::text_to_json(t), j, "{t:?}");
    }
    // Endpoint references stay structured, and re-serialise with go-wsman's prefixes.
    let epr = "<a:Envelope xmlns:a=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:b=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" xmlns:c=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\" xmlns:g=\"urn:x\"><a:Body><g:X><g:Ref><b:Address>/wsman</b:Address><b:ReferenceParameters><c:ResourceURI>u</c:ResourceURI><c:SelectorSet><c:Selector Name=\"N\">v</c:Selector></c:SelectorSet></b:ReferenceParameters></g:Ref></g:X></a:Body></a:Envelope>";
    let env = Envelope::parse(epr.as_bytes()).unwrap();
    let i = Instance::from_element(env.body_element().unwrap());
    assert_eq!(
        calls::body_json(&env).unwrap()["Ref"]["ReferenceParameters"]["SelectorSet"]["Selector"],
        serde_json::json!({"@Name": "N", "#text": "v"})
    );
    match &i.to_args()[0].value {
        calls::ArgValue::Raw(x) => assert_eq!(
            x,
            "<a:Address>/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>u</w:ResourceURI><w:SelectorSet><w:Selector Name=\"N\">v</w:Selector></w:SelectorSet></a:ReferenceParameters>"
        ),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

fn method_reply(class: &str, method: &str, rv: u32) -> String {
    amt_method_response(
        "0",
        1,
        &envelope::resource_uri(class),
        method,
        &[Param::text("ReturnValue", rv)],
    )
}

#[test]
fn wsman_non_zero_return_values_print_firmware_names() {
    let e = host_based_setup::add_next_cert_in_chain(b"c", false, true)
        .decode(
            200,
            method_reply("IPS_HostBasedSetupService", "AddNextCertInChain", 4).as_bytes(),
        )
        .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "AddNextCertInChain returned CERT_VERIFY_FAILED (4): the chain did not verify"
        ),
        "{e}"
    );
    assert!(e.help().contains("amt-agent doctor"));
    let a = AgentError::from(e);
    assert_eq!(a.exit, ExitCode::ActivationFailed);
    assert!(a.to_string().contains("\nhelp: "));

    let n = [0u8; 20];
    let e = host_based_setup::admin_setup(2, &Secret::new("x"), &n, 2, b"s")
        .decode(
            200,
            method_reply("IPS_HostBasedSetupService", "AdminSetup", 5).as_bytes(),
        )
        .unwrap_err();
    assert!(e
        .to_string()
        .starts_with("AdminSetup returned AUTH_FAILED (5)"));
    let e = host_based_setup::setup(&Secret::new("x"))
        .decode(
            200,
            method_reply("IPS_HostBasedSetupService", "Setup", 4).as_bytes(),
        )
        .unwrap_err();
    assert!(e
        .to_string()
        .starts_with("Setup returned METHOD_DISABLED (4)"));
    let e = setup_and_configuration::commit_changes()
        .decode(
            200,
            method_reply("AMT_SetupAndConfigurationService", "CommitChanges", 2057).as_bytes(),
        )
        .unwrap_err();
    assert!(e
        .to_string()
        .starts_with("CommitChanges returned DATA_MISSING (2057)"));
    assert!(e.help().contains("--mebxpassword"));
    assert_eq!(AgentError::from(e).exit, ExitCode::WsmanMessageError);
    let e = setup_and_configuration::unprovision(1)
        .decode(
            200,
            method_reply("AMT_SetupAndConfigurationService", "Unprovision", 2076).as_bytes(),
        )
        .unwrap_err();
    assert!(e
        .to_string()
        .starts_with("Unprovision returned BLOCKING_COMPONENT (2076)"));
    assert_eq!(AgentError::from(e).exit, ExitCode::UnableToDeactivate);
    let e = setup_and_configuration::set_mebx_password(&Secret::new("x"))
        .decode(
            200,
            method_reply("AMT_SetupAndConfigurationService", "SetMEBxPassword", 16).as_bytes(),
        )
        .unwrap_err();
    assert_eq!(AgentError::from(e).exit, ExitCode::SetMebxPasswordFailed);
    let e = authorization::set_admin_acl_entry_ex("admin", &Secret::new("x"))
        .decode(
            200,
            method_reply("AMT_AuthorizationService", "SetAdminAclEntryEx", 1).as_bytes(),
        )
        .unwrap_err();
    assert_eq!(AgentError::from(e).exit, ExitCode::ChangeAmtPasswordFailed);
}

#[test]
fn wsman_http_and_soap_failures_map_to_errors() {
    let cap = std::fs::read(shared("amt-captures/400-fault-already-exists.http")).unwrap();
    let resp = ResponseParser::new().feed(&cap).unwrap().unwrap();
    assert_eq!(resp.status, 400);
    let e = general::get().decode_response(&resp).unwrap_err();
    let WsmanError::Fault(f) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(f.subcode.as_ref().unwrap().local, "AlreadyExists");
    assert!(e.help().contains("already exists"));
    assert_eq!(AgentError::from(e).exit, ExitCode::WsmanMessageError);

    let e = general::get().decode(401, b"<html/>").unwrap_err();
    assert_eq!(e, WsmanError::Unauthorized);
    assert_eq!(AgentError::from(e).exit, ExitCode::AmtAuthenticationFailed);
    assert_eq!(
        general::get().decode(400, b"<html>Bad</html>"),
        Err(WsmanError::Http { status: 400 })
    );
    let e = general::get().decode(500, b"").unwrap_err();
    assert_eq!(e.to_string(), "AMT answered HTTP 500");
    assert_eq!(AgentError::from(e).exit, ExitCode::WsmanMessageError);
    assert!(matches!(
        general::get().decode(200, b"<not xml"),
        Err(WsmanError::Malformed(_))
    ));
    // A body for another class, or one lacking a required field.
    assert_eq!(
        decode_fixture(&general::get(), "ips/hostbasedsetup/get.xml"),
        Err(WsmanError::Missing("AMT_GeneralSettings".into()))
    );
    let no_realm = amt_instance("AMT_GeneralSettings", &[("InstanceID", "x")]);
    let e = general::get().decode(200, no_realm.as_bytes()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "WS-MAN response lacks AMT_GeneralSettings.DigestRealm"
    );
    let bad_bool = amt_instance(
        "AMT_GeneralSettings",
        &[
            ("DigestRealm", "Digest:0"),
            ("InstanceID", "x"),
            ("SharedFQDN", "yes"),
        ],
    );
    assert!(general::get()
        .decode(200, bad_bool.as_bytes())
        .unwrap_err()
        .to_string()
        .contains("SharedFQDN is not true or false"));
}

#[test]
fn wsman_mc_nonce_is_20_fresh_bytes() {
    let mut rng = rand::thread_rng();
    let (a, b) = (calls::mc_nonce(&mut rng), calls::mc_nonce(&mut rng));
    assert_ne!(a, b);
    assert_eq!(calls::b64(&a).len(), 28);
    assert_eq!(calls::signing_input(b"fw", b"mc"), b"fwmc");
}
