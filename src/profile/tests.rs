//! The profile's formats, conversions and checks, without a machine.

use super::*;

fn doc(text: &str) -> Document {
    Document::parse(text, &KeySource::default()).unwrap()
}

fn problems(text: &str) -> Vec<(Severity, String, String)> {
    check::check(&doc(text), None, &check::Context::default())
        .into_iter()
        .map(|p| (p.severity, p.path, p.message))
        .collect()
}

fn errors_at(text: &str) -> Vec<String> {
    problems(text)
        .into_iter()
        .filter(|p| p.0 == Severity::Error)
        .map(|p| p.1)
        .collect()
}

const MINIMAL: &str = "version: 1\ncontrolMode: ccm\nadminPassword: P@ssw0rd!\n";

#[test]
fn a_minimal_profile_is_clean_and_manages_only_activation_and_the_password() {
    assert_eq!(problems(MINIMAL), vec![]);
    let p = doc(MINIMAL).profile().unwrap();
    assert_eq!(p.areas(), ["activation", "admin-password"]);
}

#[test]
fn the_example_profile_is_clean_and_covers_every_area() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/profile.yaml"
    ))
    .unwrap();
    let d = doc(&text);
    let errs: Vec<_> = check::check(&d, None, &check::Context::default())
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| p.render())
        .collect();
    // The example's provisioning certificate is a path on a fleet machine, not here.
    assert!(
        errs.iter()
            .all(|e| e.contains("provisioningCertificate") || e.contains("Certificate")),
        "{errs:#?}"
    );
    assert_eq!(d.profile().unwrap().areas(), AREAS);
}

#[test]
fn schema_problems_carry_their_paths() {
    let e = errors_at("version: 1\ncontrolMode: xcm\nadminPassword: P@ssw0rd!\nfeatures: {kvm: yes please}\nproxies: [{address: p, port: 0}]\nbogus: 1\n");
    for want in [
        "controlMode",
        "features.kvm",
        "proxies[0].port",
        "(top level)",
    ] {
        assert!(e.iter().any(|p| p == want), "{want} in {e:?}");
    }
}

#[test]
fn the_firmwares_rules_are_checked_with_paths() {
    let text = "version: 1\ncontrolMode: ccm\nadminPassword: weak\nmebxPassword: Mebx!Pass1\n\
                features: {kvm: true, userConsent: none}\nhostname: {hostName: bad.name}\n\
                proxies: [{address: proxy.example.com}, {address: PROXY.example.com}]\n\
                network:\n  wired: {dhcp: false, ipAddress: 10.0.0.300, ieee8021x: nope}\n  \
                wireless:\n    profiles: [{name: w, ssid: s, authentication: wpa2-psk}]\n";
    let e = errors_at(text);
    for want in [
        "adminPassword",
        "mebxPassword",
        "features.userConsent",
        "hostname.hostName",
        "proxies[1].address",
        "network.wired.ipAddress",
        "network.wired",
        "network.wired.ieee8021x",
        "network.wireless.profiles[0]",
    ] {
        assert!(e.iter().any(|p| p == want), "{want} in {e:?}");
    }
}

#[test]
fn acm_needs_a_certificate_and_generate_is_only_for_passwords() {
    let e = errors_at("version: 1\ncontrolMode: acm\nadminPassword: generate\nnetwork:\n  wireless:\n    profiles: [{name: w, ssid: s, authentication: wpa2-psk, pskPassphrase: generate}]\n");
    assert!(e.contains(&"provisioningCertificate".to_string()), "{e:?}");
    assert!(
        e.contains(&"network.wireless.profiles[0].pskPassphrase".to_string()),
        "{e:?}"
    );
}

#[test]
fn rpc_go_v3_converts_and_reports_in_its_own_paths() {
    let v3 = "id: x\nname: office\nconfiguration:\n  amtSpecific:\n    controlMode: ccmactivate\n    adminPassword: weak\n  \
              redirection:\n    enabled: true\n    services: {kvm: true, sol: false, ider: true}\n    userConsent: All\n  \
              network:\n    proxy: [{address: proxy.example.com, port: 3128, networkDnsSuffix: example.com}]\n  \
              userAccounts: {userAccounts: [bob]}\n";
    let d = doc(v3);
    assert_eq!(d.format, Format::RpcGoV3);
    let p = d.profile().unwrap();
    assert_eq!(p.control_mode, WantedMode::Ccm);
    let f = p.features.unwrap();
    assert!(f.kvm && !f.sol && f.ider && f.user_consent == Consent::All);
    assert_eq!(p.proxies.unwrap()[0].port, 3128);
    let all = problems(v3);
    assert!(
        all.iter()
            .any(|x| x.0 == Severity::Error && x.1 == "configuration.amtSpecific.adminPassword"),
        "{all:?}"
    );
    assert!(
        all.iter()
            .any(|x| x.0 == Severity::Warning && x.1 == "configuration.userAccounts"),
        "{all:?}"
    );
}

#[test]
fn rpc_go_v3_generate_flags_and_wifi_numbers() {
    let v3 = "configuration:\n  amtSpecific:\n    controlMode: acmactivate\n    generateRandomPassword: true\n    \
              generateRandomMEBXPassword: true\n  network:\n    wireless:\n      profiles:\n        \
              - {profileName: corp, ssid: CORP, authenticationMethod: 6, encryptionMethod: 4, priority: 2, password: Wifi-passphrase-1}\n";
    let p = doc(v3).profile().unwrap();
    assert_eq!(p.admin_password, SecretRef::Generate);
    assert_eq!(p.mebx_password, Some(SecretRef::Generate));
    let w = &p.network.unwrap().wireless.unwrap().profiles.unwrap()[0];
    assert_eq!(
        (w.authentication.as_str(), w.encryption.as_str(), w.priority),
        ("wpa2-psk", "ccmp", 2)
    );
}

#[cfg(unix)]
#[test]
fn a_world_readable_file_with_a_plain_secret_is_refused_but_references_are_fine() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("p.yaml");
    std::fs::write(&f, MINIMAL).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ps = check::check(
        &Document::read(&f, &KeySource::default()).unwrap(),
        Some(&f),
        &check::Context::default(),
    );
    let e: Vec<_> = ps
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .collect();
    assert_eq!(e.len(), 1, "{ps:?}");
    assert_eq!(e[0].path, "adminPassword");
    assert!(e[0].help.as_ref().unwrap().contains("chmod 600"));
    std::fs::write(
        &f,
        "version: 1\ncontrolMode: ccm\nadminPassword: env:SOME_UNSET_VARIABLE_X\n",
    )
    .unwrap();
    let ps = check::check(
        &Document::read(&f, &KeySource::default()).unwrap(),
        Some(&f),
        &check::Context::default(),
    );
    assert!(ps.iter().all(|p| p.severity == Severity::Warning), "{ps:?}");
}

#[test]
fn an_encrypted_export_needs_its_key_and_decrypts_to_v3() {
    let key = crate::secret::Secret::new("0123456789abcdefghijklmnopqrstuv");
    let blob = crypto::encrypt(
        "configuration:\n  amtSpecific: {controlMode: ccmactivate, adminPassword: P@ssw0rd!}\n",
        &key,
        [1; 12],
    )
    .unwrap();
    let e = Document::parse(&blob, &KeySource::default()).unwrap_err();
    assert!(e.help.unwrap().contains("CONFIG_ENCRYPTION_KEY"));
    let d = Document::parse(
        &blob,
        &KeySource {
            flag: Some(key),
            file: None,
        },
    )
    .unwrap();
    assert_eq!(d.format, Format::RpcGoV3Encrypted);
    assert_eq!(d.profile().unwrap().control_mode, WantedMode::Ccm);
}

#[test]
fn the_network_is_checked_by_configure_wireds_and_wirelesss_rules() {
    let net = |n: &str| format!("{MINIMAL}network:\n{n}");
    let all = |text: &str| problems(text);
    // A static address needs its mask, gateway (in its subnet) and DNS; the host's does not.
    let e = errors_at(&net(
        "  wired: {dhcp: false, ipAddress: 10.0.0.5, subnetMask: 255.255.255.0}\n",
    ));
    assert_eq!(e, ["network.wired"]);
    let e = errors_at(&net("  wired: {dhcp: false, ipAddress: 10.0.0.5, subnetMask: 255.255.255.0, gateway: 10.0.1.1, primaryDns: 10.0.0.2}\n"));
    assert_eq!(e, ["network.wired.gateway"]);
    assert_eq!(all(&net("  wired: {dhcp: false}\n")), vec![]);
    assert_eq!(all(&net("  wired: {dhcp: false, ipSync: true}\n")), vec![]);
    let w = all(&net("  wired: {dhcp: true, ipAddress: 10.0.0.5}\n"));
    assert_eq!(
        w,
        vec![(
            Severity::Warning,
            "network.wired.ipAddress".to_string(),
            "ignored: dhcp is true".to_string()
        )]
    );
    // Wi-Fi: AMT's names, one profile per priority, 802.1X only where the method has it.
    let e = errors_at(&net(
        "  wireless:\n    profiles:\n      - {name: my-net, ssid: s, authentication: wpa2-psk, pskPassphrase: env:P}\n",
    ));
    assert_eq!(e, ["network.wireless.profiles[0].name"]);
    let e = errors_at(&net(
        "  wireless:\n    profiles:\n      - {name: a, ssid: s, authentication: wpa2-psk, pskPassphrase: env:P}\n      - {name: b, ssid: t, authentication: wpa2-psk, pskPassphrase: env:P}\n",
    ));
    assert_eq!(e, ["network.wireless.profiles[1].priority"]);
    // 802.1X: EAP-TLS with all three, PEAP with a password only; an entry nothing names.
    let ca = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ieee8021x/ca.pem"
    );
    let e = errors_at(&net(&format!(
        "  wired: {{ieee8021x: x}}\n  ieee8021x:\n    - {{name: x, protocol: eap-tls, username: u, clientCertificate: {ca}, privateKey: env:K}}\n    - {{name: y, protocol: peap-mschapv2, username: u, password: env:P, privateKey: env:K}}\n"
    )));
    assert_eq!(e, ["network.ieee8021x[0]", "network.ieee8021x[1]"]);
    let p = all(&net(&format!(
        "  ieee8021x:\n    - {{name: y, protocol: peap-mschapv2, username: u, password: env:P, caCertificate: {ca}}}\n"
    )));
    assert!(
        p.iter().any(|(s, path, m)| *s == Severity::Warning
            && path == "network.ieee8021x[0].name"
            && m.contains("not used")),
        "{p:?}"
    );
}

#[test]
fn cira_needs_its_password_and_an_mps_configure_cira_takes() {
    let ca = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ieee8021x/ca.pem"
    );
    let cira = |c: &str| format!("{MINIMAL}cira: {{mpsCertificate: {ca}, {c}}}\n");
    assert_eq!(
        problems(&cira("mpsAddress: mps.example.com, mpsPassword: generate")),
        vec![]
    );
    assert_eq!(errors_at(&cira("mpsAddress: mps.example.com")), ["cira"]);
    assert_eq!(
        errors_at(&cira("mpsAddress: mps, mpsPassword: generate")),
        ["cira.mpsAddress"]
    );
    assert_eq!(
        errors_at(&cira(
            "mpsAddress: 10.0.0.1, mpsPassword: generate, mpsUsername: not-alnum"
        )),
        ["cira.mpsUsername"]
    );
}

#[test]
fn tls_takes_the_admins_ca_as_a_pair_and_says_what_it_does_not_apply() {
    let ca = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tls-ca/ec-ca.pem"
    );
    let tls = |t: &str| format!("{MINIMAL}tls: {{{t}}}\n");
    assert_eq!(
        problems(&tls(&format!(
            "mode: mutual, caCertificate: {ca}, caKey: 'file:/x', delay: 0"
        )))
        .into_iter()
        .filter(|p| p.0 == Severity::Error)
        .count(),
        0
    );
    // caKey without caCertificate (and the other way round): the schema's pair.
    assert_eq!(errors_at(&tls("mode: server, caKey: env:K")), ["tls"]);
    assert_eq!(
        errors_at(&tls(&format!("mode: server, caCertificate: {ca}"))),
        ["tls"]
    );
    let p = problems(&tls("mode: mutual, trustedCn: [client.example.com]"));
    let warned: Vec<&str> = p
        .iter()
        .filter(|x| x.0 == Severity::Warning)
        .map(|x| x.1.as_str())
        .collect();
    assert_eq!(warned, ["tls.trustedCn", "tls.mode"], "{p:?}");
}

/// The schema's complaints name the rule, never the value: a profile's values are its secrets.
#[test]
fn schema_errors_never_repeat_the_value() {
    let text = "version: 1\ncontrolMode: acm\nadminPassword: P@ssw0rd!\n\
        provisioningCertificate: {password: 'Pfx!Pass1-secret'}\n\
        network:\n  wireless:\n    profiles: [{name: w, ssid: s, authentication: wpa2-psk, pskPassphrase: 87654321}]\n";
    let all = problems(text);
    let at = |path: &str| {
        all.iter()
            .filter(|p| p.0 == Severity::Error && p.1 == path)
            .map(|p| p.2.clone())
            .collect::<Vec<_>>()
    };
    assert!(
        at("provisioningCertificate").contains(&"give exactly one of file and base64".to_string()),
        "{all:?}"
    );
    assert!(
        at("network.wireless.profiles[0].pskPassphrase")
            .contains(&"must be of type string".to_string()),
        "{all:?}"
    );
    for (_, path, message) in &all {
        assert!(
            !message.contains("Pfx!Pass1-secret") && !message.contains("87654321"),
            "{path}: {message}"
        );
    }
}
