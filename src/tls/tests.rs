//! Both ends in memory: a `ClientConnection` with the agent's verifier against a
//! `ServerConnection` with the simulator's config, bytes copied between `write_tls` and `read_tls`.

use std::io::{Read, Write};
use std::sync::Arc;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};

use super::*;
use crate::sim::tls::{self as sim, ChainSpec, ClientCertMode, ServerIdentity, SimChain};

/// Pumps bytes both ways until the handshake ends; the client's error if it failed.
fn handshake(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
) -> (
    Result<(), rustls::Error>,
    ClientConnection,
    ServerConnection,
) {
    let mut c = ClientConnection::new(client, server_name()).unwrap();
    let mut s = ServerConnection::new(server).unwrap();
    let mut server_err = None;
    for _ in 0..32 {
        let mut wire = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut wire).unwrap();
        }
        let mut rd = &wire[..];
        while !rd.is_empty() && server_err.is_none() {
            s.read_tls(&mut rd).unwrap();
            if let Err(e) = s.process_new_packets() {
                server_err = Some(e);
            }
        }
        let mut wire = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut wire).unwrap();
        }
        let mut rd = &wire[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            if let Err(e) = c.process_new_packets() {
                return (Err(e), c, s);
            }
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            break;
        }
        if let Some(e) = server_err.take() {
            return (Err(e), c, s);
        }
    }
    (Ok(()), c, s)
}

fn sim_server() -> Arc<ServerConfig> {
    sim::server_config(ServerIdentity::OdcaChain, ClientCertMode::None)
}

fn trusting_sim() -> AmtCertVerifier {
    AmtCertVerifier::provisioning()
        .with_extra_anchor(sim::odca_chain().root_der())
        .unwrap()
}

fn amt_error(e: &rustls::Error) -> AmtCertError {
    AmtCertError::from_rustls(e)
        .unwrap_or_else(|| panic!("not a certificate rule failure: {e:?}"))
        .clone()
}

fn ders<'a>(chain: &'a [CertificateDer<'static>]) -> Vec<&'a [u8]> {
    chain.iter().map(|c| c.as_ref()).collect()
}

#[test]
fn shipped_odca_root_parses_and_has_the_published_fingerprint() {
    assert_eq!(
        hex(&Sha256::digest(INTEL_ODCA_ROOT_DER)),
        "BEB40BB7507B33967226AA80E084749FBB6593893C642E818D682E9A8D07FC24"
    );
    let (_, root) = x509_parser::parse_x509_certificate(INTEL_ODCA_ROOT_DER).unwrap();
    assert_eq!(root.subject(), root.issuer());
    let ou: Vec<_> = root
        .subject()
        .iter_organizational_unit()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(ou, ["OnDie CA Root Cert Signing"]);
    assert!(root.is_ca());
    root.verify_signature(None).unwrap();
}

#[test]
fn accepts_the_sim_chain_with_the_test_root_passed_explicitly_and_the_hbased_pin() {
    let chain = sim::odca_chain();
    assert_eq!(chain.chain().len(), 4);
    for algorithm in [2u8, 3] {
        let pin = LeafPin::from_hbased_reply(&chain.hbased_reply(algorithm))
            .unwrap()
            .unwrap();
        assert_eq!(pin.algorithm().code(), algorithm);
        let client = client_config(trusting_sim().with_leaf_pin(pin), None).unwrap();
        let (res, mut c, mut s) = handshake(client, sim_server());
        res.unwrap();
        // Application data flows: the handshake really completed.
        c.writer().write_all(b"POST /wsman").unwrap();
        let mut wire = Vec::new();
        c.write_tls(&mut wire).unwrap();
        s.read_tls(&mut &wire[..]).unwrap();
        s.process_new_packets().unwrap();
        let mut got = [0u8; 11];
        s.reader().read_exact(&mut got).unwrap();
        assert_eq!(&got, b"POST /wsman");
    }
}

#[test]
fn default_anchors_refuse_the_sim_chain_as_untrusted() {
    let client = client_config(AmtCertVerifier::provisioning(), None).unwrap();
    let (res, _, _) = handshake(client, sim_server());
    match amt_error(&res.unwrap_err()) {
        AmtCertError::Untrusted {
            subject, anchors, ..
        } => {
            assert!(subject.contains("iAMT CSME IDevID RCFG"), "{subject}");
            assert!(anchors.contains("OnDie CA Root Cert Signing"), "{anchors}");
            assert!(!anchors.contains("amt-sim"), "{anchors}");
        }
        other => panic!("wrong rule: {other}"),
    }
}

#[test]
fn a_wrong_pin_is_refused_with_both_hashes() {
    let pin = LeafPin::new(PinAlgorithm::Sha256, &[0x11; 32]).unwrap();
    let client = client_config(trusting_sim().with_leaf_pin(pin), None).unwrap();
    let (res, _, _) = handshake(client, sim_server());
    match amt_error(&res.unwrap_err()) {
        AmtCertError::LeafHashMismatch {
            algorithm,
            expected,
            actual,
            ..
        } => {
            assert_eq!(algorithm, "SHA256");
            assert_eq!(expected, "11".repeat(32));
            assert_eq!(actual, hex(&sim::odca_chain().leaf_sha256()));
        }
        other => panic!("wrong rule: {other}"),
    }
}

fn verify_generated(spec: ChainSpec) -> Result<(), AmtCertError> {
    let chain = SimChain::generate(&spec);
    AmtCertVerifier::provisioning()
        .with_extra_anchor(chain.root_der())
        .unwrap()
        .verify_chain(&ders(chain.chain()), UnixTime::now())
}

#[test]
fn a_wrong_leaf_cn_is_refused() {
    let err = verify_generated(ChainSpec {
        leaf_cn: "AMT WS-MAN".into(),
        ..ChainSpec::default()
    })
    .unwrap_err();
    assert_eq!(
        err,
        AmtCertError::LeafCommonName {
            subject: "CN=AMT WS-MAN".into(),
            cn: "AMT WS-MAN".into()
        }
    );
}

#[test]
fn the_other_leaf_cn_and_a_six_certificate_chain_are_accepted() {
    verify_generated(ChainSpec {
        leaf_cn: "AMT RCFG".into(),
        length: 6,
        ..ChainSpec::default()
    })
    .unwrap();
}

#[test]
fn chain_lengths_other_than_1_4_6_are_refused() {
    for length in [2, 3, 5, 7] {
        let err = verify_generated(ChainSpec {
            length,
            ..ChainSpec::default()
        })
        .unwrap_err();
        assert_eq!(err, AmtCertError::UnexpectedChainLength { got: length });
    }
}

#[test]
fn a_wrong_chain_length_fails_the_handshake_with_a_precise_error() {
    let chain = SimChain::generate(&ChainSpec {
        length: 5,
        ..ChainSpec::default()
    });
    let server = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain.chain().to_vec(), chain.leaf_key())
        .unwrap();
    let verifier = AmtCertVerifier::provisioning()
        .with_extra_anchor(chain.root_der())
        .unwrap();
    let (res, _, _) = handshake(client_config(verifier, None).unwrap(), Arc::new(server));
    let err = amt_error(&res.unwrap_err());
    assert_eq!(err, AmtCertError::UnexpectedChainLength { got: 5 });
    assert!(err.help().contains("--skip-amt-cert-check"));
}

#[test]
fn index_3_must_be_a_rom_ca_under_an_on_die_csme_issuer() {
    let err = verify_generated(ChainSpec {
        rom_ca_cn: "CSME SIM Kernel CA".into(),
        ..ChainSpec::default()
    })
    .unwrap_err();
    assert!(matches!(err, AmtCertError::NotRomCa { ref cn, .. } if cn == "CSME SIM Kernel CA"));

    verify_generated(ChainSpec {
        rom_ca_cn: "CSME SIM ROM DE".into(),
        rom_issuer_ou: "On Die CSME P_SIM".into(),
        ..ChainSpec::default()
    })
    .unwrap();

    let err = verify_generated(ChainSpec {
        rom_issuer_ou: "Some Other CA".into(),
        ..ChainSpec::default()
    })
    .unwrap_err();
    match err {
        AmtCertError::RomCaIssuerOu { subject, issuer } => {
            assert_eq!(subject, "CN=CSME SIM ROM CA");
            assert!(issuer.contains("OU=Some Other CA"), "{issuer}");
        }
        other => panic!("wrong rule: {other}"),
    }
}

#[test]
fn upid_binds_the_chain_to_this_csme() {
    let chain = sim::odca_chain();
    let mut id = [0u8; 20];
    id.copy_from_slice(&Sha256::digest(&chain.chain()[ROM_CA_INDEX])[..20]);
    let now = UnixTime::now();
    trusting_sim()
        .with_upid_csme_id(id)
        .verify_chain(&ders(chain.chain()), now)
        .unwrap();
    id[0] ^= 1;
    let err = trusting_sim()
        .with_upid_csme_id(id)
        .verify_chain(&ders(chain.chain()), now)
        .unwrap_err();
    assert!(matches!(err, AmtCertError::UpidMismatch { .. }));
}

#[test]
fn skip_mode_accepts_the_sim_chain_without_any_anchor() {
    let client = client_config(AmtCertVerifier::skip(), None).unwrap();
    let (res, _, _) = handshake(client, sim_server());
    res.unwrap();
    let client = client_config(AmtCertVerifier::skip(), None).unwrap();
    let server = sim::server_config(ServerIdentity::SelfSigned, ClientCertMode::None);
    handshake(client, server).0.unwrap();
}

#[test]
fn a_single_self_signed_certificate_follows_the_policy() {
    let server = || sim::server_config(ServerIdentity::SelfSigned, ClientCertMode::None);
    let ss = sim::self_signed();

    let (res, _, _) = handshake(client_config(trusting_sim(), None).unwrap(), server());
    assert!(matches!(
        amt_error(&res.unwrap_err()),
        AmtCertError::SelfSignedNotAllowed { .. }
    ));

    let pinned =
        SelfSignedPolicy::Pinned(LeafPin::new(PinAlgorithm::Sha256, &ss.sha256()).unwrap());
    let (res, _, _) = handshake(
        client_config(AmtCertVerifier::activated(pinned), None).unwrap(),
        server(),
    );
    res.unwrap();

    let wrong = SelfSignedPolicy::Pinned(LeafPin::new(PinAlgorithm::Sha256, &[0; 32]).unwrap());
    let (res, _, _) = handshake(
        client_config(AmtCertVerifier::activated(wrong), None).unwrap(),
        server(),
    );
    assert!(matches!(
        amt_error(&res.unwrap_err()),
        AmtCertError::SelfSignedPinMismatch { .. }
    ));

    let (res, _, _) = handshake(
        client_config(
            AmtCertVerifier::activated(SelfSignedPolicy::AcceptActivated),
            None,
        )
        .unwrap(),
        server(),
    );
    res.unwrap();

    // The On-Die CA chain is still accepted once activated.
    let v = AmtCertVerifier::activated(SelfSignedPolicy::AcceptActivated)
        .with_extra_anchor(sim::odca_chain().root_der())
        .unwrap();
    handshake(client_config(v, None).unwrap(), sim_server())
        .0
        .unwrap();
}

#[test]
fn accept_activated_still_requires_a_self_signed_certificate() {
    // A leaf alone (issued by the ROM chain) is not self-signed.
    let leaf = sim::odca_chain().leaf_der().as_ref();
    let err = AmtCertVerifier::activated(SelfSignedPolicy::AcceptActivated)
        .verify_chain(&[leaf], UnixTime::now())
        .unwrap_err();
    assert!(matches!(err, AmtCertError::SelfSignedWrongIssuer { .. }));
}

/// A provisioning-certificate-like client chain (leaf + its root), P-256.
fn provisioning_cert() -> ClientCert {
    let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut rp = CertificateParams::default();
    rp.distinguished_name = DistinguishedName::new();
    rp.distinguished_name
        .push(DnType::CommonName, "test provisioning root");
    rp.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let root = rcgen::CertifiedIssuer::self_signed(rp, root_key).unwrap();
    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut lp = CertificateParams::default();
    lp.distinguished_name = DistinguishedName::new();
    lp.distinguished_name
        .push(DnType::CommonName, "test provisioning certificate");
    let leaf = lp.signed_by(&leaf_key, &*root).unwrap();
    ClientCert {
        chain: vec![leaf.der().clone(), root.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    }
}

#[test]
fn mutual_tls_hands_the_client_chain_to_the_simulator() {
    let cert = provisioning_cert();
    let expected = cert.chain.clone();
    let client = client_config(trusting_sim(), Some(cert)).unwrap();
    let server = sim::server_config(ServerIdentity::OdcaChain, ClientCertMode::Required);
    let (res, _, s) = handshake(client, server);
    res.unwrap();
    assert_eq!(sim::client_chain(&s).unwrap(), &expected[..]);
}

#[test]
fn a_required_client_certificate_refuses_a_client_without_one() {
    let client = client_config(trusting_sim(), None).unwrap();
    let server = sim::server_config(ServerIdentity::OdcaChain, ClientCertMode::Required);
    let (res, _, s) = handshake(client, server);
    assert!(res.is_err());
    assert!(sim::client_chain(&s).is_none());

    let client = client_config(trusting_sim(), None).unwrap();
    let server = sim::server_config(ServerIdentity::OdcaChain, ClientCertMode::Optional);
    let (res, _, s) = handshake(client, server);
    res.unwrap();
    assert!(sim::client_chain(&s).is_none());
}

#[test]
fn the_hbased_hash_field_becomes_a_pin() {
    let leaf = sim::odca_chain().leaf_der();
    let mut field = [0u8; 64];
    field[..32].copy_from_slice(&sim::odca_chain().leaf_sha256());
    let raw = LeafPin::from_hbased(2, &field).unwrap().unwrap();
    assert!(raw.matches(leaf));
    // rpc-go also accepts the digest as ASCII hex.
    let text = hex(&sim::odca_chain().leaf_sha256()).to_ascii_lowercase();
    let from_text = LeafPin::from_hbased(2, text.as_bytes()).unwrap().unwrap();
    assert_eq!(from_text, raw);
    assert_eq!(LeafPin::from_hbased(3, &[0; 64]).unwrap(), None);
    assert_eq!(
        LeafPin::from_hbased(1, &field).unwrap_err(),
        AmtCertError::UnsupportedPinAlgorithm { code: 1 }
    );
    assert!(LeafPin::new(PinAlgorithm::Sha384, &[1; 32]).is_err());
}
