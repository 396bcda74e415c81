//! End to end: `amt-agent diagnostics wsman` against a running `amt-sim`, over the ME's LME client
//! (APF through the simulator socket) and over the LMS-like TCP listener, with the firmware's
//! Digest authentication and state, and each WS-MAN fault.
// The tests drive Linux processes (amt-sim, its Unix socket, signals); the Windows build is
// tested by tests/windows.rs, the .exe under Wine.
#![cfg(unix)]

mod common;

use common::*;
use serde_json::Value;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn state(sim: &Sim) -> Value {
    serde_json::from_str(&std::fs::read_to_string(sim.path("state.json")).unwrap()).unwrap()
}

fn start(extra: &[&str]) -> (Sim, u16) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("sim.sock");
    let state = dir.path().join("state.json");
    let port = free_port();
    let lms = format!("127.0.0.1:{port}");
    let mut args = vec!["--state", state.to_str().unwrap(), "--lms-listen", &lms];
    args.extend_from_slice(extra);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    (Sim::start_in(dir, socket, &refs), port)
}

#[test]
fn general_settings_over_lme_and_over_lms_are_the_same_instance() {
    let (sim, port) = start(&[]);
    let dev = sim.device();
    let apf = agent(&[
        "--device",
        &dev,
        "--json",
        "diagnostics",
        "wsman",
        "get",
        "AMT_GeneralSettings",
        "--lms",
        "never",
    ]);
    assert_eq!(code(&apf), 0, "{}", stderr(&apf));
    let lms = agent(&[
        "--device",
        &dev,
        "--json",
        "diagnostics",
        "wsman",
        "get",
        "AMT_GeneralSettings",
        "--lms",
        "only",
        "--lms-port",
        &port.to_string(),
    ]);
    assert_eq!(code(&lms), 0, "{}", stderr(&lms));
    let a: Value = serde_json::from_slice(&apf.stdout).unwrap();
    let b: Value = serde_json::from_slice(&lms.stdout).unwrap();
    assert_eq!(a, b);
    assert_eq!(a["DigestRealm"], state(&sim)["digest_realm"]);
    // XML by default: the firmware's envelope.
    let xml = agent(&[
        "--device",
        &dev,
        "diagnostics",
        "wsman",
        "get",
        "AMT_GeneralSettings",
        "--lms",
        "never",
    ]);
    assert!(
        stdout(&xml).contains("<g:AMT_GeneralSettings>"),
        "{}",
        stdout(&xml)
    );
}

#[test]
fn put_enumerate_and_invoke_change_and_read_the_firmware_state() {
    let (sim, _) = start(&[]);
    let dev = sim.device();
    let put = agent(&[
        "--device",
        &dev,
        "--json",
        "diagnostics",
        "wsman",
        "put",
        "AMT_GeneralSettings",
        "--set",
        "HostName=wks-0042",
        "--lms",
        "never",
    ]);
    assert_eq!(code(&put), 0, "{}", stderr(&put));
    let v: Value = serde_json::from_slice(&put.stdout).unwrap();
    assert_eq!(v["HostName"], "wks-0042");
    let saved = state(&sim);
    let gs = &saved["instances"]["AMT_GeneralSettings"][0];
    assert!(
        gs.as_array()
            .unwrap()
            .iter()
            .any(|p| p[0] == "HostName" && p[1] == "wks-0042"),
        "persisted: {gs}"
    );

    let en = agent(&[
        "--device",
        &dev,
        "--json",
        "diagnostics",
        "wsman",
        "enumerate",
        "AMT_TLSSettingData",
        "--lms",
        "never",
    ]);
    assert_eq!(code(&en), 0, "{}", stderr(&en));
    let items: Value = serde_json::from_slice(&en.stdout).unwrap();
    assert_eq!(
        items.as_array().unwrap().len(),
        2,
        "802.3 and LMS items, in that order"
    );
    assert_eq!(items[0]["InstanceID"], "Intel(r) AMT 802.3 TLS Settings");

    let inv = agent(&[
        "--device",
        &dev,
        "--json",
        "diagnostics",
        "wsman",
        "invoke",
        "AMT_TimeSynchronizationService",
        "GetLowAccuracyTimeSynch",
        "--lms",
        "never",
    ]);
    assert_eq!(code(&inv), 0, "{}", stderr(&inv));
    let v: Value = serde_json::from_slice(&inv.stdout).unwrap();
    assert!(
        v["output"]["Ta0"].as_u64().unwrap_or(0) > 1_600_000_000 || v.to_string().contains("Ta0"),
        "{v}"
    );
}

#[test]
fn a_non_zero_return_value_is_printed_by_name_and_fails() {
    let (sim, _) = start(&[]);
    // SetMEBxPassword is refused outside ACM: NOT_PERMITTED (16).
    let o = agent_env(
        &[
            "--device",
            &sim.device(),
            "diagnostics",
            "wsman",
            "invoke",
            "AMT_SetupAndConfigurationService",
            "SetMEBxPassword",
            "--arg",
            "Password=Str0ng!Pass",
            "--lms",
            "never",
        ],
        &[],
    );
    assert_eq!(code(&o), 118, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("SetMEBxPassword returned NOT_PERMITTED (16)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_activated_device_needs_the_admin_password_and_a_wrong_one_is_exit_100() {
    let (mut sim, _) = start(&[]);
    sim.stop();
    // Make the saved state an activated CCM device with a known admin password.
    let mut s = state(&sim);
    let realm = s["digest_realm"].as_str().unwrap().to_string();
    let ha1 = amt_agent::wsman::digest::md5_hex(&format!("admin:{realm}:Corr3ct-Horse"));
    s["control_mode"] = 1.into();
    s["provisioning_state"] = 2.into();
    s["admin_ha1"] = ha1.into();
    std::fs::write(sim.path("state.json"), serde_json::to_vec(&s).unwrap()).unwrap();
    let dir = std::mem::replace(&mut sim.dir, tempfile::tempdir().unwrap());
    let socket = dir.path().join("sim.sock");
    let state_path = dir.path().join("state.json");
    let sim = Sim::start_in(dir, socket, &["--state", state_path.to_str().unwrap()]);
    let dev = sim.device();
    let args = [
        "--device",
        &dev,
        "diagnostics",
        "wsman",
        "get",
        "AMT_GeneralSettings",
        "--lms",
        "never",
    ];
    let none = agent(&args);
    assert_eq!(
        code(&none),
        23,
        "no password, no terminal: {}",
        stderr(&none)
    );
    let bad = agent_env(&args, &[("AMT_PASSWORD", "wrong")]);
    assert_eq!(code(&bad), 100, "{}", stderr(&bad));
    assert!(stderr(&bad).contains("help: "));
    let good = agent_env(&args, &[("AMT_PASSWORD", "Corr3ct-Horse")]);
    assert_eq!(code(&good), 0, "{}", stderr(&good));
    // From a file too, which must not be readable by others.
    let f = sim.path("pw");
    std::fs::write(&f, "Corr3ct-Horse\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut a: Vec<&str> = args.to_vec();
    let fs = f.to_str().unwrap().to_string();
    a.extend_from_slice(&["--password-file", &fs]);
    assert_eq!(
        code(&agent(&a)),
        34,
        "a world-readable password file is refused"
    );
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(code(&agent(&a)), 0);
}

#[test]
fn wsman_faults_give_documented_codes_never_a_hang() {
    let cases: &[(&str, &[&str], i32, &str)] = &[
        (
            "http500=AMT_GeneralSettings",
            &["--lms", "never"],
            101,
            "500",
        ),
        ("wsman-latency=300", &["--lms", "never"], 0, ""),
        (
            "wsman-latency=3000",
            &["--lms", "never", "--request-timeout", "1s"],
            71,
            "",
        ),
        ("busy=lme", &["--lms", "never"], 4, "LMS"),
    ];
    for (fault, extra, exit, msg) in cases {
        let (sim, _) = start(&["--fault", fault]);
        let dev = sim.device();
        let mut args = vec![
            "--device",
            dev.as_str(),
            "diagnostics",
            "wsman",
            "get",
            "AMT_GeneralSettings",
        ];
        args.extend_from_slice(extra);
        let started = std::time::Instant::now();
        let o = agent(&args);
        assert_eq!(code(&o), *exit, "{fault}: {}", stderr(&o));
        assert!(stderr(&o).contains(msg), "{fault}: {}", stderr(&o));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{fault} took {:?}",
            started.elapsed()
        );
    }
    // LMS required but absent.
    let (sim, _) = start(&[]);
    let o = agent(&[
        "--device",
        &sim.device(),
        "diagnostics",
        "wsman",
        "get",
        "AMT_GeneralSettings",
        "--lms",
        "only",
        "--lms-port",
        &free_port().to_string(),
    ]);
    assert_eq!(code(&o), 139, "{}", stderr(&o));
}

#[test]
fn trace_logs_show_the_exchange_but_never_the_local_system_account_password() {
    let (sim, _) = start(&[]);
    let o = agent(&[
        "--device",
        &sim.device(),
        "-vvv",
        "diagnostics",
        "wsman",
        "get",
        "AMT_GeneralSettings",
        "--lms",
        "never",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let lsa = state(&sim)["lsa_password"].as_str().unwrap().to_string();
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        !all.contains(&lsa),
        "the LSA password leaked into the output"
    );
    assert!(
        stderr(&o).contains("APF_CHANNEL_OPEN") || stderr(&o).contains("CHANNEL_OPEN"),
        "APF traced"
    );
    assert!(
        stderr(&o).contains("AMT_GeneralSettings"),
        "HTTP body traced"
    );
}

/// Accepts any server certificate: the test below is about how the connection ends.
#[derive(Debug)]
struct AnyCert(rustls::crypto::CryptoProvider);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls_pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls_pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One unauthenticated request over TLS to the LMS-like listener: what came back and how the
/// connection ended (`Ok` = with close_notify, `Err(kind)` otherwise).
fn tls_request(port: u16) -> (Vec<u8>, Result<(), std::io::ErrorKind>) {
    use std::io::{Read, Write};
    use std::sync::Arc;
    let provider = rustls::crypto::ring::default_provider();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider.clone()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let body = "<Envelope/>";
    let req = format!(
        "POST /wsman HTTP/1.1\r\nHost: x:16993\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        match tls.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e.kind()),
        }
    };
    (got, end)
}

#[test]
fn a_dropped_tls_connection_ends_without_close_notify_and_a_401_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("sim.sock");
    let port = free_port();
    let lms = format!("127.0.0.1:{port}");
    let _sim = Sim::start_in(
        dir,
        socket,
        &[
            "--device-profile",
            "amt19",
            "--lms-listen",
            &lms,
            "--fault",
            "drop-channel=2",
        ],
    );
    // The 401 closes the connection as firmware does: with TLS close_notify.
    let (got, end) = tls_request(port);
    assert!(got.starts_with(b"HTTP/1.1 401"), "{got:?}");
    assert_eq!(end, Ok(()));
    // The second request is dropped: no answer, and the session is cut, not closed.
    let (got, end) = tls_request(port);
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(end, Err(std::io::ErrorKind::UnexpectedEof));
}
