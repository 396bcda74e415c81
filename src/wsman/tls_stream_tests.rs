//! End to end against the simulator in this process (`--device sim:profile=amt19`): the agent's APF
//! session over the simulated LME, TLS to port 16993 inside the APF channel, and the WS-MAN client
//! on top; the simulated AMTHI's START_CONFIGURATION_HBASED and the pin it yields.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::amthi::messages::StartConfigurationHBased;
use crate::amthi::{AmthiClient, AmthiError, PtStatus};
use crate::apf::{ApfError, ApfOptions, ApfSession};
use crate::error::{AgentError, ExitCode};
use crate::heci::{Guid, HeciError, MeiConnection};
use crate::secret::Secret;
use crate::sim::faults::FaultPlan;
use crate::sim::{profile, Firmware, InProcessDevice};
use crate::tls::PinAlgorithm;
use crate::wsman::classes::general;
use crate::wsman::client::{Credentials, WsmanClient, WsmanError, WsmanOptions};

fn firmware(name: &str) -> Firmware {
    Firmware::new(
        profile::builtin(name).unwrap(),
        FaultPlan::new(Vec::new()),
        None,
    )
}

/// The same simulated ME, seen as a device that is not the in-process simulator (as `sim:SOCKET`
/// or a real machine is): its test root is not offered.
struct Plain(Arc<dyn MeiDevice>);

impl MeiDevice for Plain {
    fn describe(&self) -> String {
        "simulated ME without its test root".into()
    }
    fn connect_once(&self, client: Guid) -> Result<Box<dyn MeiConnection>, HeciError> {
        self.0.connect_once(client)
    }
}

struct Setup {
    fw: Firmware,
    device: Arc<dyn MeiDevice>,
    route: Route,
}

async fn setup(profile: &str) -> Setup {
    let fw = firmware(profile);
    let device: Arc<dyn MeiDevice> = Arc::new(InProcessDevice::new(fw.clone()));
    let session = ApfSession::connect(device.clone(), ApfOptions::default())
        .await
        .unwrap();
    Setup {
        fw,
        device,
        route: Route::Apf(Arc::new(session)),
    }
}

fn lsa(fw: &Firmware) -> Credentials {
    let c = fw.lock();
    Credentials::new(
        c.profile.lsa_username.clone(),
        Secret::new(c.profile.lsa_password.clone()),
    )
}

fn control_mode(fw: &Firmware) -> ControlMode {
    ControlMode::from_u32(fw.lock().profile.control_mode)
}

async fn general_settings(
    s: &Setup,
    device: &dyn MeiDevice,
    opts: &AmtTlsOptions,
) -> Result<general::GeneralSettings, WsmanError> {
    let endpoint = wsman_endpoint(&s.route, true, device, control_mode(&s.fw), opts)?;
    assert_eq!(endpoint.port, 16993);
    assert!(endpoint.tls);
    let mut client = WsmanClient::new(
        endpoint.connector,
        lsa(&s.fw),
        WsmanOptions {
            port: endpoint.port,
            request_timeout: Duration::from_secs(20),
        },
    );
    let call = general::get();
    let response = client
        .post(&call.render("uuid:00000000-8086-8086-8086-000000000001"))
        .await?;
    Ok(call
        .decode_response(&response)
        .expect("GeneralSettings decodes"))
}

fn realm(fw: &Firmware) -> String {
    fw.lock().profile.digest_realm.clone()
}

#[tokio::test]
async fn amt19_general_settings_over_tls_with_the_in_process_simulator_root() {
    let s = setup("amt19").await;
    assert_eq!(
        s.route.management_port(false),
        16993,
        "APF advertises 16993"
    );
    let gs = general_settings(&s, s.device.as_ref(), &AmtTlsOptions::default())
        .await
        .unwrap();
    assert_eq!(gs.digest_realm, realm(&s.fw));
    let conn = s.fw.lock().web.conn.clone();
    assert!(conn.tls, "the simulated web server saw a TLS connection");
    assert!(
        conn.client_chain.is_empty(),
        "no client certificate was sent"
    );
}

#[tokio::test]
async fn amt19_without_the_test_root_fails_untrusted_with_exit_71() {
    let s = setup("amt19").await;
    let plain = Plain(s.device.clone());
    let e = general_settings(&s, &plain, &AmtTlsOptions::default())
        .await
        .unwrap_err();
    let WsmanError::Route(RouteError::TlsCertificate { port, error }) = &e else {
        panic!("expected a refused certificate, got {e:?}");
    };
    assert_eq!(*port, 16993);
    assert!(matches!(error, AmtCertError::Untrusted { .. }), "{error:?}");
    let text = e.to_string();
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(text.contains("does not verify to a trusted root"), "{text}");
    assert!(
        text.contains("iAMT CSME IDevID RCFG"),
        "names the leaf: {text}"
    );
    let agent = AgentError::from(e);
    assert_eq!(agent.exit, ExitCode::AmtConnectionFailed);
    assert_eq!(agent.exit.code(), 71);
    let help = agent.help.unwrap();
    assert!(help.contains("--amt-ca-file"), "{help}");
    assert!(help.contains("--skip-amt-cert-check"), "{help}");
}

#[tokio::test]
async fn amt19_with_the_root_from_a_ca_file_works() {
    let s = setup("amt19").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amt-sim-root.pem");
    std::fs::write(&path, crate::sim::tls::odca_chain().root_pem()).unwrap();
    let opts = AmtTlsOptions {
        ca_files: vec![path],
        ..AmtTlsOptions::default()
    };
    let gs = general_settings(&s, &Plain(s.device.clone()), &opts)
        .await
        .unwrap();
    assert_eq!(gs.digest_realm, realm(&s.fw));
}

#[tokio::test]
async fn amt19_skip_cert_check_connects_without_any_root() {
    let s = setup("amt19").await;
    let opts = AmtTlsOptions {
        skip_cert_check: true,
        ..AmtTlsOptions::default()
    };
    let gs = general_settings(&s, &Plain(s.device.clone()), &opts)
        .await
        .unwrap();
    assert_eq!(gs.digest_realm, realm(&s.fw));
}

#[tokio::test]
async fn amt19_refuses_a_channel_to_plain_16992() {
    let s = setup("amt19").await;
    let e = match s.route.connect(16992).await {
        Ok(_) => panic!("16992 must be refused on a TLS-enforced device"),
        Err(e) => e,
    };
    assert!(
        matches!(e, RouteError::Apf(ApfError::Refused { port: 16992, .. })),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_device_without_tls_enforcement_stays_plain_http() {
    let s = setup("amt16.1").await;
    let endpoint = wsman_endpoint(
        &s.route,
        false,
        s.device.as_ref(),
        ControlMode::None,
        &AmtTlsOptions::default(),
    )
    .unwrap();
    assert_eq!(endpoint.port, 16992);
    assert!(!endpoint.tls);
}

#[tokio::test]
async fn activated_amt19_presents_its_self_signed_certificate_and_mtls_chain_reaches_the_server() {
    let s = setup("amt19").await;
    s.fw.lock().profile.control_mode = 2;
    // Provisioning rules refuse a lone self-signed certificate…
    let e = wsman_endpoint(
        &s.route,
        true,
        &Plain(s.device.clone()),
        ControlMode::None,
        &AmtTlsOptions::default(),
    )
    .unwrap()
    .connector
    .connect(16993)
    .await
    .err()
    .expect("refused");
    assert!(
        matches!(
            e,
            RouteError::TlsCertificate {
                error: AmtCertError::SelfSignedNotAllowed { .. },
                ..
            }
        ),
        "{e:?}"
    );
    // …which the activated rules accept; the client certificate reaches the web server.
    let client =
        rcgen::generate_simple_self_signed(vec!["provisioning.example.com".into()]).unwrap();
    let der = client.cert.der().clone();
    let opts = AmtTlsOptions {
        client_cert: Some(ClientCert {
            chain: vec![der.clone()],
            key: rustls_pki_types::PrivateKeyDer::Pkcs8(client.signing_key.serialize_der().into()),
        }),
        ..AmtTlsOptions::default()
    };
    let endpoint = wsman_endpoint(
        &s.route,
        true,
        &Plain(s.device.clone()),
        control_mode(&s.fw),
        &opts,
    )
    .unwrap();
    let mut stream = endpoint.connector.connect(16993).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(&crate::wsman::client::encode_wsman_request(None, b"<x/>"))
        .await
        .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 401");
    assert_eq!(s.fw.lock().web.conn.client_chain, vec![der.to_vec()]);
}

/// A 390-byte (rpc-go layout) START_CONFIGURATION_HBASED for a SHA-384 hash.
fn hbased_request() -> StartConfigurationHBased {
    let mut server_cert_hash = [0u8; 64];
    server_cert_hash[..48].copy_from_slice(&[0xA5; 48]);
    StartConfigurationHBased {
        server_hash_algorithm: 3,
        server_cert_hash,
        host_vpn_enable: false,
        dns_suffixes: Vec::new(),
    }
}

#[tokio::test]
async fn start_configuration_hbased_returns_the_leaf_hash_and_the_pin_verifies() {
    let s = setup("amt19").await;
    let reply = AmthiClient::new(s.device.clone())
        .start_configuration_hbased(&hbased_request())
        .unwrap();
    let chain = crate::sim::tls::odca_chain();
    assert_eq!(reply, chain.hbased_reply(3));
    {
        let c = s.fw.lock();
        assert_eq!(c.profile.provisioning_state, 1, "in provisioning");
        assert_eq!(c.profile.control_mode, 0);
        assert_eq!(c.profile.hbased_server_hash_algorithm, 3);
        assert_eq!(c.profile.hbased_server_cert_hash, "a5".repeat(48));
    }
    let pin = LeafPin::from_hbased_reply(&reply).unwrap().unwrap();
    assert_eq!(pin.algorithm(), PinAlgorithm::Sha384);
    assert!(pin.matches(chain.leaf_der()));

    let pinned = AmtTlsOptions {
        leaf_pin: Some(pin),
        ..AmtTlsOptions::default()
    };
    // The pinned handshake succeeds; the open configuration then wants the provisioning
    // certificate announced above as the client certificate, which this client does not present:
    // the simulated firmware answers 403 (the full flow is in tests/acm.rs).
    let endpoint = wsman_endpoint(
        &s.route,
        true,
        s.device.as_ref(),
        control_mode(&s.fw),
        &pinned,
    )
    .unwrap();
    let mut client = WsmanClient::new(
        endpoint.connector,
        lsa(&s.fw),
        WsmanOptions {
            port: endpoint.port,
            request_timeout: Duration::from_secs(20),
        },
    );
    let r = client
        .post(&general::get().render("uuid:00000000-8086-8086-8086-000000000002"))
        .await
        .unwrap();
    assert_eq!(r.status, 403);

    // Another hash is refused by the pin rule, naming the leaf.
    let wrong = AmtTlsOptions {
        leaf_pin: Some(LeafPin::new(PinAlgorithm::Sha384, &[0x11; 48]).unwrap()),
        ..AmtTlsOptions::default()
    };
    let e = general_settings(&s, s.device.as_ref(), &wrong)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            WsmanError::Route(RouteError::TlsCertificate {
                error: AmtCertError::LeafHashMismatch { .. },
                ..
            })
        ),
        "{e:?}"
    );

    // A second start while in provisioning is refused.
    let again = AmthiClient::new(s.device.clone()).start_configuration_hbased(&hbased_request());
    assert!(
        matches!(
            again,
            Err(AmthiError::Status {
                status: PtStatus::InvalidProvisioningState,
                ..
            })
        ),
        "{again:?}"
    );
}

#[test]
fn start_configuration_hbased_is_unsupported_without_tls_enforcement() {
    let fw = firmware("amt16.1");
    let device: Arc<dyn MeiDevice> = Arc::new(InProcessDevice::new(fw.clone()));
    let r = AmthiClient::new(device).start_configuration_hbased(&hbased_request());
    assert!(
        matches!(
            r,
            Err(AmthiError::Status {
                status: PtStatus::Unsupported,
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(fw.lock().profile.provisioning_state, 0);
}

#[test]
fn ca_file_accepts_pem_or_der_and_rejects_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let root = crate::sim::tls::odca_chain().root_der().to_vec();
    let pem = dir.path().join("root.pem");
    std::fs::write(&pem, crate::sim::tls::odca_chain().root_pem()).unwrap();
    assert_eq!(read_ca_file(&pem).unwrap(), vec![root.clone()]);
    let der = dir.path().join("root.der");
    std::fs::write(&der, &root).unwrap();
    assert_eq!(read_ca_file(&der).unwrap(), vec![root]);
    let bad = dir.path().join("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = read_ca_file(&bad).unwrap_err();
    assert!(matches!(e, RouteError::TlsSetup { .. }), "{e:?}");
    assert_eq!(
        AgentError::from(e).exit,
        ExitCode::FailedReadingConfiguration
    );
    let missing = read_ca_file(&dir.path().join("absent.pem")).unwrap_err();
    assert!(missing.to_string().contains("absent.pem"), "{missing}");
    // A DER file that is not a certificate is refused when it is used as an anchor.
    std::fs::write(&der, b"not a certificate").unwrap();
    let opts = AmtTlsOptions {
        ca_files: vec![der],
        ..AmtTlsOptions::default()
    };
    let fw = firmware("amt19");
    let device = Plain(Arc::new(InProcessDevice::new(fw)));
    assert!(matches!(
        amt_verifier(&device, ControlMode::None, &opts),
        Err(RouteError::TlsSetup { .. })
    ));
}

#[tokio::test]
async fn amt19_over_an_lms_like_listener_runs_tls_too() {
    let fw = firmware("amt19");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fw2 = fw.clone();
    std::thread::spawn(move || crate::sim::server::serve_lms(listener, fw2));
    let device: Arc<dyn MeiDevice> = Arc::new(InProcessDevice::new(fw.clone()));
    let s = Setup {
        fw,
        device,
        route: Route::Lms {
            addr,
            tls_addr: addr,
        },
    };
    assert_eq!(s.route.management_port(true), 16993);
    let gs = general_settings(&s, s.device.as_ref(), &AmtTlsOptions::default())
        .await
        .unwrap();
    assert_eq!(gs.digest_realm, realm(&s.fw));
    let e = general_settings(&s, &Plain(s.device.clone()), &AmtTlsOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            WsmanError::Route(RouteError::TlsCertificate {
                error: AmtCertError::Untrusted { .. },
                ..
            })
        ),
        "{e:?}"
    );
}
