//! The simulated web server and class model, driven with real HTTP bytes.

use super::model::{params, prop, set_prop};
use super::*;
use crate::secret::Secret;
use crate::sim::DeviceProfile;
use crate::sim::{faults::FaultPlan, profile, Firmware};
use crate::wsman::calls::{Call, WsmanError};
use crate::wsman::digest::DigestClient;
use crate::wsman::envelope::Param;
use crate::wsman::envelope::{
    get_request, instance_xml, invoke_request, put_request, resource_uri,
};
use crate::wsman::http::{encode_wsman_post, RequestParser, ResponseParser};

pub(super) fn request(auth: Option<&str>, body: &str) -> Request {
    let raw = encode_wsman_post("sim:16992", auth, body.as_bytes());
    RequestParser::new().feed(&raw).unwrap().unwrap()
}

pub(super) fn response(bytes: &[u8]) -> crate::wsman::http::Response {
    let mut p = ResponseParser::new();
    match p.feed(bytes).unwrap() {
        Some(r) => r,
        None => p.finish_eof().unwrap(),
    }
}

/// One exchange as `client`'s user, taking the challenge first when needed: AMT's HTTP answer.
fn exchange(fw: &Firmware, client: &mut DigestClient, body: &str) -> crate::wsman::http::Response {
    for _ in 0..2 {
        let auth = client.authorization("POST", "/wsman");
        let reply = handle(
            &mut fw.lock(),
            &request(auth.as_deref(), body),
            Instant::now(),
        );
        let r = response(&reply.bytes);
        if r.status == 401 {
            client
                .handle_www_authenticate(r.header("WWW-Authenticate").unwrap())
                .unwrap();
            continue;
        }
        return r;
    }
    panic!("still 401 after taking the challenge");
}

/// Sends `body` authenticated as `client`'s user, taking the challenge first when needed.
pub(super) fn call(fw: &Firmware, client: &mut DigestClient, body: &str) -> (u16, Envelope) {
    let r = exchange(fw, client, body);
    (r.status, Envelope::parse(&r.body).unwrap())
}

/// Sends a typed call of the agent's over real HTTP bytes (render, Digest, the web server) and
/// decodes AMT's answer the agent's way.
pub(super) fn send<T>(
    fw: &Firmware,
    client: &mut DigestClient,
    call: Call<T>,
) -> Result<T, WsmanError> {
    call.decode_response(&exchange(fw, client, &call.render("1")))
}

pub(super) fn fw(name: &str) -> Firmware {
    Firmware::new(
        profile::builtin(name).unwrap(),
        FaultPlan::new(vec![]),
        None,
    )
}

#[test]
fn the_401_is_the_firmware_page_and_header_layout() {
    let f = fw("amt11.8");
    let reply = handle(&mut f.lock(), &request(None, "x"), Instant::now());
    let r = response(&reply.bytes);
    assert_eq!(r.status, 401);
    let names: Vec<&str> = r.headers.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "WWW-Authenticate",
            "Content-Type",
            "Server",
            "Content-Length",
            "Connection"
        ]
    );
    assert_eq!(
        r.header("Server"),
        Some("Intel(R) Active Management Technology 11.8.50.3425")
    );
    let capture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/amt-captures/401-digest-challenge-amt11.8.http");
    let c = std::fs::read(&capture).unwrap_or_else(|e| panic!("read {}: {e}", capture.display()));
    let i = c.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert_eq!(
        &r.body[..],
        &c[i + 4..],
        "the 'Log on failed' page is byte-identical"
    );
}

/// The status of `body` sent as `client` on a connection described by `conn`.
fn status_on(fw: &Firmware, client: &mut DigestClient, body: &str, conn: &ConnInfo) -> u16 {
    for _ in 0..2 {
        let auth = client.authorization("POST", "/wsman");
        let reply = handle_on(
            &mut fw.lock(),
            &request(auth.as_deref(), body),
            conn,
            Instant::now(),
        );
        let r = response(&reply.bytes);
        if r.status == 401 {
            client
                .handle_www_authenticate(r.header("WWW-Authenticate").unwrap())
                .unwrap();
            continue;
        }
        return r.status;
    }
    panic!("still 401 after taking the challenge");
}

#[test]
fn amt19_has_no_admin_setup_and_an_open_hbased_configuration_needs_the_client_certificate() {
    let f = fw("amt19");
    let lsa = f.lock().profile.lsa_password.clone();
    let mut c = DigestClient::new(LSA_USER, Secret::new(lsa));
    let admin_setup = invoke_request(
        &resource_uri("IPS_HostBasedSetupService"),
        "AdminSetup",
        "1",
        &[],
        &[],
    );
    let (st, e) = call(&f, &mut c, &admin_setup);
    assert_eq!(st, 400);
    let fault = e.fault().expect("a SOAP fault");
    assert_eq!(
        fault.subcode.map(|q| q.local),
        Some("ActionNotSupported".to_string())
    );
    // A configuration opened by START_CONFIGURATION_HBASED: without the announced client
    // certificate (plain, or TLS without one) every request is refused with 403.
    {
        let mut g = f.lock();
        g.profile.provisioning_state = 1;
        g.profile.hbased_server_cert_hash = "AB".repeat(32);
        g.profile.hbased_server_hash_algorithm = 2;
    }
    let gs = get_request(&resource_uri("AMT_GeneralSettings"), "2", &[]);
    assert_eq!(status_on(&f, &mut c, &gs, &ConnInfo::default()), 403);
    let tls = ConnInfo {
        tls: true,
        client_chain: Vec::new(),
    };
    assert_eq!(status_on(&f, &mut c, &gs, &tls), 403);
    let wrong = ConnInfo {
        tls: true,
        client_chain: vec![crate::sim::tls::odca_chain().leaf_der().to_vec()],
    };
    assert_eq!(status_on(&f, &mut c, &gs, &wrong), 403);
}

#[test]
fn ccm_setup_then_admin_then_unprovision() {
    let f = fw("amt16.1");
    let lsa = f.lock().profile.lsa_password.clone();
    let realm = f.lock().profile.digest_realm.clone();
    let mut c = DigestClient::new(LSA_USER, Secret::new(lsa));
    let gs = get_request(&resource_uri("AMT_GeneralSettings"), "0", &[]);
    let (st, e) = call(&f, &mut c, &gs);
    assert_eq!(st, 200);
    assert_eq!(
        e.body_element().unwrap().child_text("DigestRealm"),
        Some(realm.as_str())
    );
    let ha1 = crate::wsman::digest::ha1("admin", &realm, &Secret::new("P@ssw0rd-1"));
    let setup = invoke_request(
        &resource_uri("IPS_HostBasedSetupService"),
        "Setup",
        "1",
        &[],
        &[
            Param::text("NetAdminPassEncryptionType", 2),
            Param::text("NetworkAdminPassword", &ha1),
        ],
    );
    let (st, e) = call(&f, &mut c, &setup);
    assert_eq!(st, 200);
    assert_eq!(e.return_value().unwrap(), 0);
    assert_eq!(f.lock().profile.control_mode, 1);
    // The LSA no longer works; admin does, on the same nonce.
    c.set_credentials("admin", Secret::new("P@ssw0rd-1"));
    let unprov = invoke_request(
        &resource_uri("AMT_SetupAndConfigurationService"),
        "Unprovision",
        "2",
        &[],
        &[Param::text("ProvisioningMode", 1)],
    );
    let (st, e) = call(&f, &mut c, &unprov);
    assert_eq!(st, 200);
    assert_eq!(e.return_value().unwrap(), 0);
    assert_eq!(f.lock().profile.control_mode, 0);
}

/// An amt16.1 firmware in control mode `mode` with admin's password "x", and admin's client.
pub(super) fn activated(mode: u32) -> (Firmware, DigestClient) {
    activated_with(profile::builtin("amt16.1").unwrap(), mode)
}

/// A firmware of profile `p` in control mode `mode` whose admin password is `x`, and admin's client.
pub(super) fn activated_with(p: DeviceProfile, mode: u32) -> (Firmware, DigestClient) {
    let f = Firmware::new(p, FaultPlan::new(vec![]), None);
    {
        let mut core = f.lock();
        core.profile.control_mode = mode;
        let realm = core.profile.digest_realm.clone();
        core.profile.admin_ha1 = crate::wsman::digest::ha1("admin", &realm, &Secret::new("x"));
    }
    (f, DigestClient::new("admin", Secret::new("x")))
}

#[test]
fn a_second_setup_answers_invalid_state_and_unknown_classes_fault() {
    let (f, mut c) = activated(1);
    let setup = invoke_request(
        &resource_uri("IPS_HostBasedSetupService"),
        "Setup",
        "1",
        &[],
        &[
            Param::text("NetAdminPassEncryptionType", 2),
            Param::text("NetworkAdminPassword", "00"),
        ],
    );
    let (_, e) = call(&f, &mut c, &setup);
    assert_eq!(e.return_value().unwrap(), 2);
    let (st, e) = call(
        &f,
        &mut c,
        &get_request(&resource_uri("AMT_NoSuchClass"), "3", &[]),
    );
    assert_eq!(st, 400);
    assert_eq!(
        e.fault().unwrap().subcode.unwrap().local,
        "DestinationUnreachable"
    );
}

/// Write-only secrets (the KVM RFB password, an MPS credential's Secret): a Put keeps only their
/// digest, a Get never returns them, and a refused one is not repeated in the fault.
#[test]
fn a_put_secret_is_kept_as_its_digest_and_never_read_back_or_repeated() {
    let (f, mut c) = activated(2);
    let kvm = "IPS_KVMRedirectionSettingData";
    let uri = resource_uri(kvm);
    let mut props = f.lock().profile.instances[kvm][0].clone();
    set_prop(&mut props, "RFBPassword", "Kvm!1234");
    let body = instance_xml(kvm, &uri, &params(&props));
    let (st, e) = call(&f, &mut c, &put_request(&uri, "1", &[], &body));
    assert_eq!(st, 200);
    assert_eq!(
        e.body_element().unwrap().child_text("RFBPassword"),
        Some("")
    );
    let held = f.lock().profile.instances[kvm][0].clone();
    assert!(
        held.iter().all(|(_, v)| !v.contains("Kvm!1234")),
        "{held:?}"
    );
    assert!(held.iter().any(|(_, v)| *v == secret_digest("Kvm!1234")));

    // Longer than AMT takes: refused, and the fault says how long, not what.
    set_prop(&mut props, "RFBPassword", "Kvm!12345-too-long");
    let body = instance_xml(kvm, &uri, &params(&props));
    let (st, e) = call(&f, &mut c, &put_request(&uri, "2", &[], &body));
    assert_eq!(st, 400);
    let reason = e.fault().unwrap().reason;
    assert!(
        reason.contains("RFBPassword") && reason.contains("18 bytes"),
        "{reason}"
    );
    assert!(!reason.contains("Kvm!12345"), "{reason}");

    // An MPS credential's Secret, as wsman-messages' MPSUsernamePassword Put sends it.
    let cred = "AMT_MPSUsernamePassword";
    let id = "Intel(r) AMT:MPS Username Password 0";
    f.lock().profile.instances.insert(
        cred.into(),
        vec![vec![
            ("InstanceID".into(), id.into()),
            ("RemoteID".into(), "mpsuser".into()),
        ]],
    );
    let uri = resource_uri(cred);
    let body = instance_xml(
        cred,
        &uri,
        &[
            Param::text("InstanceID", id),
            Param::text("RemoteID", "mpsuser"),
            Param::text("Secret", "Mps!Secret1"),
        ],
    );
    let (st, e) = call(&f, &mut c, &put_request(&uri, "3", &[], &body));
    assert_eq!(st, 200);
    assert_eq!(e.body_element().unwrap().child_text("Secret"), None);
    let (st, e) = call(&f, &mut c, &get_request(&uri, "4", &[]));
    assert_eq!(st, 200);
    assert_eq!(e.body_element().unwrap().child_text("Secret"), None);
    let held = f.lock().profile.instances[cred][0].clone();
    assert!(
        held.iter().all(|(_, v)| !v.contains("Mps!Secret1")),
        "{held:?}"
    );
    assert!(held.iter().any(|(_, v)| *v == secret_digest("Mps!Secret1")));
}

#[test]
fn a_put_changes_the_instance_and_an_empty_put_is_refused() {
    let (f, mut c) = activated(2);
    let uri = resource_uri("IPS_OptInService");
    let opt_in = |f: &Firmware| {
        prop(
            &f.lock().profile.instances["IPS_OptInService"][0],
            "OptInRequired",
        )
        .map(str::to_string)
    };
    // The instance RPS read back, OptInRequired lowered to none (trace 10 #34).
    let mut props = f.lock().profile.instances["IPS_OptInService"][0].clone();
    set_prop(&mut props, "OptInRequired", "0");
    let body = instance_xml("IPS_OptInService", &uri, &params(&props));
    let (st, e) = call(&f, &mut c, &put_request(&uri, "1", &[], &body));
    assert_eq!(st, 200);
    assert_eq!(
        e.body_element().unwrap().child_text("OptInRequired"),
        Some("0")
    );
    assert_eq!(opt_in(&f).as_deref(), Some("0"));
    // An instance element with no properties changes nothing and is not a success.
    let empty = instance_xml("IPS_OptInService", &uri, &[]);
    let (st, e) = call(&f, &mut c, &put_request(&uri, "2", &[], &empty));
    assert_eq!(st, 400);
    assert_eq!(
        e.fault().unwrap().subcode.unwrap().local,
        "SchemaValidationError"
    );
    assert_eq!(opt_in(&f).as_deref(), Some("0"));
}

#[test]
fn the_chunk_layout_reproduces_the_amt15_capture() {
    // 218 header bytes and a 1928-byte body give 0x220, 0x2FA, 0x2FA, 0x3C.
    assert_eq!(
        segment_layout(218, 0x220 + 0x2FA * 2 + 0x3C),
        ChunkLayout::Exact(vec![0x220, 0x2FA, 0x2FA, 0x3C])
    );
    let capture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/amt-captures/200-general-settings-get.http");
    let c = std::fs::read(&capture).unwrap_or_else(|e| panic!("read {}: {e}", capture.display()));
    let i = c.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let r = response(&c);
    let again = http::encode_amt_soap_response(
        200,
        r.header("Date").unwrap(),
        r.header("Server").unwrap(),
        &r.body,
        &segment_layout(i, r.body.len()),
        false,
    );
    assert_eq!(
        again, c,
        "header set, order and chunk layout are the firmware's"
    );
}

#[test]
fn chunked_200_uses_the_firmware_header_set_and_padded_sizes() {
    let f = fw("amt16.1");
    let lsa = f.lock().profile.lsa_password.clone();
    let mut c = DigestClient::new(LSA_USER, Secret::new(lsa));
    let gs = get_request(&resource_uri("AMT_GeneralSettings"), "0", &[]);
    let _ = call(&f, &mut c, &gs);
    let auth = c.authorization("POST", "/wsman");
    let reply = handle(
        &mut f.lock(),
        &request(auth.as_deref(), &gs),
        Instant::now(),
    );
    let text = String::from_utf8_lossy(&reply.bytes);
    let head: Vec<&str> = text.split("\r\n").take(7).collect();
    assert_eq!(head[0], "HTTP/1.1 200 OK");
    assert!(head[1].starts_with("Date: "));
    assert!(head[2].starts_with("Server: Intel(R) Active Management Technology "));
    assert_eq!(head[3], "X-Frame-Options: DENY");
    assert_eq!(head[4], "Content-Type: application/soap+xml; charset=UTF-8");
    assert_eq!(head[5], "Transfer-Encoding: chunked");
    assert_eq!(head[6], "");
    let size_line = text.split("\r\n").nth(7).unwrap();
    assert_eq!(size_line.len(), 4, "4-digit chunk size: {size_line}");
}
