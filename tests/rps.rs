/// A CA and a `localhost` server certificate signed by it, as PEM files in `dir`.
fn test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(vec![]).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "amt-agent test RPS CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let (ca_pem, cert_pem, key_pem) =
        (dir.join("ca.pem"), dir.join("rps.pem"), dir.join("rps.key"));
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    std::fs::write(&cert_pem, cert.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    (ca_pem, cert_pem, key_pem)
}

#[test]
fn ccm_activation_over_wss_with_a_private_ca() {
    if !peer_available() {
        return;
    }
    let mut sim = sim();
    let dev = sim.device();
    let (ca, cert, key) = test_ca(sim.dir.path());
    let peer = Peer::start(sim.dir.path(), config(json!({})), Some((&cert, &key)));
    let url = format!("wss://localhost:{}/activate", peer.port);
    // Not trusted without the CA: rpc-go's ServerCertificateVerificationFailed.
    let o = run(
        &[
            "--device",
            &dev,
            "activate",
            "-u",
            &url,
            "--profile",
            "ccm-peer",
        ],
        &[],
    );
    assert_eq!(code(&o), 22, "{}", stderr(&o));
    assert!(stderr(&o).contains("--ca-file"), "{}", stderr(&o));
    let ca_s = ca.to_str().unwrap();
    let o = run(
        &[
            "--device",
            &dev,
            "--json",
            "activate",
            "-u",
            &url,
            "--profile",
            "ccm-peer",
            "--ca-file",
            ca_s,
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["mode"], "CCM");
    assert_eq!(j["components"]["Activation"]["result"], "Success");
    // -n skips verification, loudly.
    let o = run(
        &[
            "--device",
            &dev,
            "maintenance",
            "syncclock",
            "-u",
            &url,
            "-n",
        ],
        &[("AMT_PASSWORD", AMT_PW)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("WARNING: not verifying RPS's TLS certificate"));
    sim.stop();
    assert_eq!(state(&sim)["control_mode"], 1);
}
