//! The certificate store and TLS classes driven with the agent's own typed calls over real HTTP
//! bytes: what firmware accepts and refuses, the AlreadyExists fault byte for byte, and what
//! CommitChanges puts into effect.

use super::classes::tls::{local_ports, LocalPorts};
use super::tests::{activated, request, send};
use super::*;
use crate::tls::issue::{self, AmtPublicKey, Ca, LeafSpec};
use crate::wsman::calls::{b64, WsmanError};
use crate::wsman::classes::public_key::PublicKeyCertificate;
use crate::wsman::classes::{public_key_management as ks, setup_and_configuration as sc, tls};
use crate::wsman::digest::DigestClient;

fn return_value<T: std::fmt::Debug>(r: Result<T, WsmanError>) -> u32 {
    match r {
        Err(WsmanError::ReturnValue { value, .. }) => value,
        other => panic!("expected a ReturnValue, got {other:?}"),
    }
}

fn fault_subcode<T: std::fmt::Debug>(r: Result<T, WsmanError>) -> String {
    match r {
        Err(WsmanError::Fault(f)) => f.subcode.map(|s| s.local).unwrap_or_default(),
        other => panic!("expected a fault, got {other:?}"),
    }
}

fn spec() -> LeafSpec {
    LeafSpec {
        common_name: "amt.example.test".into(),
        dns_names: vec![],
        validity_days: 365,
    }
}

/// A key pair generated in AMT and a certificate for it, added: (key handle, certificate handle,
/// certificate DER).
fn key_and_certificate(
    f: &crate::sim::Firmware,
    c: &mut DigestClient,
) -> (String, String, Vec<u8>) {
    let key = send(f, c, ks::generate_key_pair(2048)).unwrap();
    let ctx = send(f, c, ks::enumerate_keys()).unwrap();
    let page = send(f, c, ks::pull_keys(&ctx)).unwrap();
    let pair = page
        .items
        .iter()
        .map(ks::KeyPair::from_instance)
        .find(|k| k.instance_id == key)
        .expect("the new key pair is listed");
    let der_key = crate::wsman::calls::unb64("DERKey", &pair.der_key, "base64").unwrap();
    let public = AmtPublicKey::from_der_key(&der_key).unwrap();
    assert_eq!(public.bits(), 2048);
    let ca = Ca::throwaway("test").unwrap();
    let der = issue::issue(&public, &ca, &spec()).unwrap();
    let cert = send(f, c, ks::add_certificate(&b64(&der))).unwrap();
    (key, cert, der)
}

#[test]
fn the_store_checks_keys_certificates_and_roots_as_firmware_does() {
    let (f, mut c) = activated(1);
    assert_eq!(
        return_value(send(&f, &mut c, ks::generate_key_pair(4096))),
        2062
    );
    let (_key, cert, der) = key_and_certificate(&f, &mut c);
    assert_eq!(cert, "Intel(r) AMT Certificate: Handle: 0");
    // The same certificate again is a duplicate; one for a key AMT does not hold is refused.
    assert_eq!(
        return_value(send(&f, &mut c, ks::add_certificate(&b64(&der)))),
        2058
    );
    let other_key = {
        let k = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = rcgen::CertificateParams::default();
        p.is_ca = rcgen::IsCa::ExplicitNoCa;
        p.self_signed(&k).unwrap().der().to_vec()
    };
    assert_eq!(
        return_value(send(&f, &mut c, ks::add_certificate(&b64(&other_key)))),
        2060
    );
    // A trusted root must be a CA.
    assert_eq!(
        return_value(send(
            &f,
            &mut c,
            ks::add_trusted_root_certificate(&b64(&other_key))
        )),
        2063
    );
    let ca = Ca::throwaway("root").unwrap();
    let root = send(
        &f,
        &mut c,
        ks::add_trusted_root_certificate(&b64(ca.certificate_der())),
    )
    .unwrap();
    assert_eq!(root, "Intel(r) AMT Certificate: Handle: 1");
    let ctx = send(&f, &mut c, crate::wsman::classes::public_key::enumerate()).unwrap();
    let certs: Vec<PublicKeyCertificate> =
        send(&f, &mut c, crate::wsman::classes::public_key::pull(&ctx))
            .unwrap()
            .items
            .iter()
            .map(PublicKeyCertificate::from_instance)
            .collect();
    assert_eq!(certs.len(), 2);
    assert!(!certs[0].trusted_root && certs[1].trusted_root);
    assert_eq!(certs[0].subject, "CN=amt.example.test");
    // Written last RDN first (the keystore's DN rule).
    assert_eq!(certs[1].subject, "CN=root,O=amt-agent");
}

#[test]
fn tls_needs_a_bound_certificate_and_mutual_a_trusted_root_then_commit_serves_it() {
    let (f, mut c) = activated(1);
    let ctx = send(&f, &mut c, tls::enumerate()).unwrap();
    let s = tls::Settings::from_items(&send(&f, &mut c, tls::pull(&ctx)).unwrap().items).unwrap();
    let mut local = s.local.instance.clone();
    local.set("Enabled", "true");
    assert_eq!(
        fault_subcode(send(&f, &mut c, tls::put(&local))),
        "InvalidParameter"
    );

    let (_key, cert, der) = key_and_certificate(&f, &mut c);
    send(&f, &mut c, tls::create_context(&cert)).unwrap();
    // The bound certificate (and its key) cannot be deleted.
    assert_eq!(
        fault_subcode(send(&f, &mut c, ks::delete_certificate(&cert))),
        "AccessDenied"
    );
    let mut remote = s.remote.instance.clone();
    remote.set("Enabled", "true");
    remote.set("MutualAuthentication", "true");
    let refused = send(&f, &mut c, tls::put(&remote));
    assert_eq!(fault_subcode(refused), "InvalidParameter");
    remote.set("MutualAuthentication", "false");
    remote.set("AcceptNonSecureConnections", "false");
    send(&f, &mut c, tls::put(&remote)).unwrap();
    local.set("AcceptNonSecureConnections", "false");
    send(&f, &mut c, tls::put(&local)).unwrap();
    // Nothing changes until CommitChanges.
    assert!(!local_ports(&f.lock().profile).tls);
    send(&f, &mut c, sc::commit_changes()).unwrap();
    let ports = local_ports(&f.lock().profile);
    let (served, key) = ports.certificate.clone().expect("the bound certificate");
    assert_eq!(served, der);
    assert!(ring::signature::RsaKeyPair::from_pkcs8(&key).is_ok());
    assert_eq!(
        LocalPorts {
            certificate: None,
            ..ports
        },
        LocalPorts {
            plain: false,
            tls: true,
            certificate: None
        }
    );
}

/// The second Create of a credential context answers the captured AlreadyExists fault: the same
/// headers in the same order and the same chunk, byte for byte, but for the Date and Server
/// values and the MessageID AMT counts.
#[test]
fn a_second_credential_context_is_the_captured_already_exists_fault() {
    let (f, mut c) = activated(1);
    let (_key, cert, _) = key_and_certificate(&f, &mut c);
    send(&f, &mut c, tls::create_context(&cert)).unwrap();
    let body = tls::create_context(&cert).render("31");
    let auth = c.authorization("POST", "/wsman");
    let reply = handle(
        &mut f.lock(),
        &request(auth.as_deref(), &body),
        std::time::Instant::now(),
    );
    let capture = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/amt-captures/400-fault-already-exists.http"),
    )
    .unwrap();
    let normalise = |b: &[u8]| -> String {
        let t = String::from_utf8(b.to_vec()).unwrap();
        t.lines()
            .map(|l| {
                if l.starts_with("Date: ") {
                    "Date: *".to_string()
                } else if l.starts_with("Server: ") {
                    "Server: *".to_string()
                } else if let Some(i) = l.find("<b:MessageID>") {
                    let j = l.find("</b:MessageID>").unwrap();
                    format!("{}<b:MessageID>*{}", &l[..i], &l[j..])
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(normalise(&reply.bytes), normalise(&capture));
    assert!(reply.close, "a fault closes the connection");
}

/// GeneratePKCS10RequestEx (RPS's Enterprise Assistant path): AMT signs the request's
/// CertificationRequestInfo with the named key pair; a request for another key is refused.
#[test]
fn amt_signs_a_certificate_request_with_its_own_key() {
    use base64::Engine;
    use x509_parser::prelude::FromDer;
    let (f, mut c) = activated(1);
    let key = send(&f, &mut c, ks::generate_key_pair(2048)).unwrap();
    let pkcs8 = super::classes::keystore::private_key(&f.lock().profile, &key).unwrap();
    // A request for AMT's key: made here with the same key, its signature is replaced by AMT's.
    let kp = rcgen::KeyPair::try_from(pkcs8.as_slice()).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["amt.example.test".into()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "amt.example.test");
    let csr = params.serialize_request(&kp).unwrap();
    let reference = format!(
        "<a:Address>/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>{}</w:ResourceURI><w:SelectorSet><w:Selector Name=\"InstanceID\">{key}</w:Selector></w:SelectorSet></a:ReferenceParameters>",
        crate::wsman::envelope::resource_uri(ks::KEY_PAIR)
    );
    let call_ = |blob: &[u8], alg: u32| {
        crate::wsman::calls::invoke(
            ks::SERVICE,
            "GeneratePKCS10RequestEx",
            &[],
            vec![
                crate::wsman::calls::Arg::raw("KeyPair", reference.clone()),
                crate::wsman::calls::Arg::text("SigningAlgorithm", alg),
                crate::wsman::calls::Arg::text(
                    "NullSignedCertificateRequest",
                    base64::engine::general_purpose::STANDARD.encode(blob),
                ),
            ],
        )
    };
    let out = send(&f, &mut c, call_(csr.der(), 1)).unwrap();
    assert_eq!(out.return_value, Some(0));
    let signed = base64::engine::general_purpose::STANDARD
        .decode(out.output.get("SignedCertificateRequest").unwrap())
        .unwrap();
    let (_, req) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&signed).unwrap();
    req.verify_signature()
        .expect("AMT's signature verifies with AMT's key");
    assert_eq!(
        send(&f, &mut c, call_(csr.der(), 0)).unwrap().return_value,
        Some(2066),
        "SHA1-RSA is not signed"
    );
    // A request for another key.
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let foreign = params.serialize_request(&other).unwrap();
    assert_eq!(
        send(&f, &mut c, call_(foreign.der(), 1))
            .unwrap()
            .return_value,
        Some(36)
    );
}
