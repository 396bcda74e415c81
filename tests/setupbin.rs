//! End to end: `amt-agent setup-bin create` → `amt-sim serve --usb-setup` → `amtinfo --cert`, and
//! `setup-bin show` on the files Intel's ACU and MeshCommander wrote.
// The tests drive Linux processes (amt-sim, its Unix socket, signals); the Windows build is
// tested by tests/windows.rs, the .exe under Wine.
#![cfg(unix)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn fixture(name: &str) -> String {
    repo_file(&format!("tests/fixtures/setup-bin/{name}"))
        .display()
        .to_string()
}

/// A self-signed CA written as PEM; returns (path, SHA-256 of its DER).
fn make_root(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    use sha2::Digest;
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Setup Bin Test Root");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let path = dir.join("root.pem");
    std::fs::write(&path, cert.pem()).unwrap();
    let hash = sha2::Sha256::digest(cert.der().as_ref());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    (path, hex)
}

#[test]
fn a_created_file_enrols_the_root_in_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let (root, hash) = make_root(dir.path());
    let bin = dir.path().join("setup.bin");
    let o = agent_env(
        &[
            "setup-bin",
            "create",
            "--root-cert",
            root.to_str().unwrap(),
            "--name",
            "Test Root",
            "--pki-dns-suffix",
            "corp.example.com",
            "--deactivate-default-hashes",
            "-o",
            bin.to_str().unwrap(),
        ],
        &[("MEBX_PASSWORD", "Str0ng-MEBx!")],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains(&hash), "{}", stdout(&o));
    assert!(!stdout(&o).contains("Str0ng-MEBx!"));

    let shown = agent(&["setup-bin", "show", bin.to_str().unwrap(), "--json"]);
    assert_eq!(code(&shown), 0, "{}", stderr(&shown));
    let text = stdout(&shown);
    assert!(
        !text.contains("Str0ng-MEBx!") && !text.contains("admin"),
        "{text}"
    );
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    let vars = &j["records"][0]["variables"];
    let hv = vars
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == 8)
        .unwrap();
    assert_eq!(hv["value"]["hash"], hash.as_str());
    assert_eq!(hv["value"]["name"], "Test Root");
    assert_eq!(hv["value"]["algorithm"], "SHA256");

    let state = dir.path().join("state.json");
    let sim = Sim::start(&[
        "--usb-setup",
        bin.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ]);
    let o = agent(&["--device", &sim.device(), "amtinfo", "--cert", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let hashes = j["certificateHashes"].as_object().unwrap();
    let e = &hashes["Test Root"];
    assert_eq!(e["Hash"], hash.as_str());
    assert_eq!(e["Algorithm"], "SHA256");
    assert_eq!(e["IsActive"], true);
    assert_eq!(e["IsDefault"], false);
    assert!(
        hashes
            .values()
            .filter(|h| h["IsDefault"] == true)
            .all(|h| h["IsActive"] == false),
        "--deactivate-default-hashes switched the factory hashes off"
    );
    let o = agent(&["--device", &sim.device(), "amtinfo", "--dns", "--json"]);
    assert!(stdout(&o).contains("corp.example.com"), "{}", stdout(&o));

    // Persisted with --state.
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["pki_dns_suffix"], "corp.example.com");
    assert!(saved["cert_hashes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["hash"] == hash.as_str() && h["is_default"] == false));
}

#[test]
fn show_decodes_the_acu_and_meshcommander_files() {
    let o = agent(&["setup-bin", "show", &fixture("acu-setup-default.bin")]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let t = stdout(&o);
    for want in [
        "v4 (5234A9AA-29E1-44A9-8D4D-081C07B96353)",
        "1.1 Current MEBx Password",
        "1.6 Power Package",
        "46732273-DC23-2F43-A98A-13D37982D855",
        "2.13 DHCP",
        "2 (Enabled)",
        "2.29 Manual Setup and Configuration",
    ] {
        assert!(t.contains(want), "missing {want:?} in\n{t}");
    }
    assert!(!t.contains("admin") && !t.contains("HeyH0Password!"), "{t}");

    let o = agent(&[
        "setup-bin",
        "show",
        &fixture("meshcommander-setup.bin"),
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let t = stdout(&o);
    assert!(!t.contains("HeyH0Password!"), "{t}");
    let j: serde_json::Value = serde_json::from_str(&t).unwrap();
    let vars = j["records"][0]["variables"].as_array().unwrap();
    let get = |m: u64, i: u64| {
        vars.iter()
            .find(|v| v["module"] == m && v["id"] == i)
            .unwrap()
            .clone()
    };
    assert_eq!(get(1, 3)["meaning"], "Intel AMT");
    assert_eq!(get(2, 10)["meaning"], "SOL+IDER - User/Pass Enabled");
    assert_eq!(get(1, 1)["value"], "***");
}

#[test]
fn a_corrupted_file_is_refused_by_both() {
    let dir = tempfile::tempdir().unwrap();
    // A truncated file.
    let bytes = std::fs::read(fixture("acu-setup-default.bin")).unwrap();
    let short = dir.path().join("short.bin");
    std::fs::write(&short, &bytes[..700]).unwrap();
    // A record whose first entry claims more bytes than the record holds.
    let mut bad = bytes.clone();
    bad[512 + 24 + 4] = 0xf0u8.wrapping_add(0x11);
    bad[512 + 24 + 5] = 0x01u8.wrapping_add(0x11);
    let overrun = dir.path().join("overrun.bin");
    std::fs::write(&overrun, &bad).unwrap();

    for (file, why) in [
        (&short, "not a whole number of 512-byte chunks"),
        (&overrun, "variable 1.1 at body offset 0 declares 496 bytes"),
    ] {
        let o = agent(&["setup-bin", "show", file.to_str().unwrap()]);
        assert_eq!(code(&o), 34, "{}", stderr(&o));
        assert!(stderr(&o).contains(why), "{}", stderr(&o));

        let o = run_with_deadline(
            Command::new(SIM).args([
                "serve",
                "--socket",
                dir.path().join("sim.sock").to_str().unwrap(),
                "--usb-setup",
                file.to_str().unwrap(),
            ]),
            Duration::from_secs(10),
        );
        assert!(!o.status.success());
        let e = stderr(&o);
        assert!(e.contains("--usb-setup") && e.contains(why), "{e}");
    }
}
