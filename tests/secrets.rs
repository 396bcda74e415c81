//! Secret hygiene: every flow runs at trace level with known secrets, and none of them appears in
//! stdout, stderr, the status file, the metrics file or the simulator's output — nor do digest
//! responses. No flow needs a secret on the command line.
// The tests drive Linux processes (amt-sim, its Unix socket, signals); the Windows build is
// tested by tests/windows.rs, the .exe under Wine.
#![cfg(unix)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const AMT_PW: &str = "Kn0wn-Amt!Secret";
const MEBX_PW: &str = "Kn0wn-Mebx!Secret";

fn assert_clean(what: &str, text: &str, secrets: &[&str]) {
    assert_no_secret(what, text, secrets);
    // A digest response is a credential for its nonce: never logged.
    assert!(
        !text.contains("response=\""),
        "{what}: a Digest Authorization header was logged"
    );
    assert!(!text.contains("panicked"), "{what}: a panic");
}

fn lsa(sim: &Sim) -> String {
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(sim.path("state.json")).unwrap()).unwrap();
    s["lsa_password"].as_str().unwrap().to_string()
}

fn start() -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let socket = dir.path().join("sim.sock");
    let st = state.to_str().unwrap().to_string();
    Sim::start_in(dir, socket, &["--state", &st])
}

#[test]
fn no_flow_leaks_a_secret_at_trace_level() {
    let sim = start();
    let dev = sim.device();
    let lsa = lsa(&sim);
    let secrets = [AMT_PW, MEBX_PW, lsa.as_str()];
    let env = [("AMT_PASSWORD", AMT_PW), ("MEBX_PASSWORD", MEBX_PW)];
    let mut runs: Vec<(&str, Vec<&str>)> = vec![
        (
            "amtinfo",
            vec!["--device", &dev, "-vvv", "amtinfo", "--all"],
        ),
        (
            "amtinfo json logs",
            vec![
                "--device",
                &dev,
                "-vvv",
                "--log-format",
                "json",
                "amtinfo",
                "--all",
                "--json",
            ],
        ),
        (
            "wsman as the LSA",
            vec![
                "--device",
                &dev,
                "-vvv",
                "diagnostics",
                "wsman",
                "get",
                "AMT_GeneralSettings",
                "--lms",
                "never",
            ],
        ),
        (
            "activate ccm",
            vec![
                "--device", &dev, "-vvv", "activate", "--local", "--ccm", "--lms", "never",
            ],
        ),
        (
            "wsman as admin",
            vec![
                "--device",
                &dev,
                "-vvv",
                "diagnostics",
                "wsman",
                "invoke",
                "AMT_AuthorizationService",
                "SetAdminAclEntryEx",
                "--arg",
                "Username=admin",
                "--arg",
                "DigestPassword=AAAAAAAAAAAAAAAAAAAAAA==",
                "--lms",
                "never",
            ],
        ),
    ];
    runs.push(("doctor", vec!["--device", &dev, "-vvv", "doctor"]));
    for (what, args) in &runs {
        let o = agent_env(args, &env);
        assert_eq!(code(&o), 0, "{what}: {}", stderr(&o));
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(all.contains("TRACE"), "{what}: ran at trace level");
        assert_clean(what, &all, &secrets);
    }
    // The admin password was just changed through WS-MAN to an all-zero digest; deactivate over
    // AMTHI (CCM: no password needed).
    let o = agent_env(&["--device", &dev, "-vvv", "deactivate", "--local"], &env);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_clean(
        "deactivate",
        &format!("{}{}", stdout(&o), stderr(&o)),
        &secrets,
    );
    // setup.bin with a MEBx password from the environment.
    let dir = tempfile::tempdir().unwrap();
    let root = rcgen_root(dir.path());
    let out = dir.path().join("setup.bin");
    let o = agent_env(
        &[
            "-vvv",
            "setup-bin",
            "create",
            "--root-cert",
            root.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_clean(
        "setup-bin create",
        &format!("{}{}", stdout(&o), stderr(&o)),
        &secrets,
    );
    let o = agent_env(
        &["-vvv", "setup-bin", "show", out.to_str().unwrap(), "--json"],
        &env,
    );
    assert_clean(
        "setup-bin show",
        &format!("{}{}", stdout(&o), stderr(&o)),
        &secrets,
    );
}

fn rcgen_root(dir: &std::path::Path) -> std::path::PathBuf {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "Secrets Test Root");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    let path = dir.join("root.pem");
    std::fs::write(&path, cert.pem()).unwrap();
    path
}

#[test]
fn the_service_status_and_metrics_files_hold_no_secret() {
    let sim = start();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{AMT_PW}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let state_dir = dir.path().join("run");
    let metrics = dir.path().join("amt.prom");
    let child = Command::new(AGENT)
        .args([
            "--device",
            &sim.device(),
            "-vvv",
            "service",
            "--config",
            "/nonexistent/agent.toml",
        ])
        .env("AMT_AGENT_STATE_DIR", &state_dir)
        .env("AMT_AGENT_PASSWORD_FILE", &pw)
        .env("AMT_AGENT_METRICS_FILE", &metrics)
        .env("AMT_AGENT_LMS", "never")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = std::fs::read_to_string(state_dir.join("status.json")).unwrap_or_default();
        if s.contains("\"activated\"") {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "service did not activate: {s}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let out = child.wait_with_output().unwrap();
    let lsa = lsa(&sim);
    let secrets = [AMT_PW, lsa.as_str()];
    assert_clean(
        "service output",
        &format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        &secrets,
    );
    assert_clean(
        "status file",
        &std::fs::read_to_string(state_dir.join("status.json")).unwrap(),
        &secrets,
    );
    assert_clean(
        "metrics file",
        &std::fs::read_to_string(&metrics).unwrap(),
        &secrets,
    );
}

/// `configure amt-password` and `configure mebx` at trace level, planned (`--dry-run`, text and
/// JSON) and applied: neither the current nor the new AMT password nor the MEBx password appears,
/// in any form, nor the digest of the new password that SetAdminAclEntryEx carries.
#[test]
fn configure_flows_leak_no_secret_at_trace_level() {
    const NEW_PW: &str = "Kn0wn-New!Secret";
    let sim = start();
    let dev = sim.device();
    let lsa = lsa(&sim);
    let o = agent_env(
        &["--device", &dev, "activate", "--local", "--ccm"],
        &[("AMT_PASSWORD", AMT_PW)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(sim.path("state.json")).unwrap()).unwrap();
    let realm = state["digest_realm"].as_str().unwrap().to_string();
    // SetAdminAclEntryEx's DigestPassword: as good as the password for Digest authentication.
    let digest = {
        use base64::Engine;
        use md5::Digest;
        let raw = md5::Md5::digest(format!("admin:{realm}:{NEW_PW}").as_bytes());
        base64::engine::general_purpose::STANDARD.encode(raw)
    };
    let secrets = [AMT_PW, NEW_PW, MEBX_PW, lsa.as_str(), digest.as_str()];
    let env = [
        ("AMT_PASSWORD", AMT_PW),
        ("AMT_NEW_PASSWORD", NEW_PW),
        ("MEBX_PASSWORD", MEBX_PW),
    ];
    for (what, args) in [
        (
            "amt-password --dry-run",
            vec![
                "--device",
                &dev,
                "-vvv",
                "configure",
                "amt-password",
                "--dry-run",
            ],
        ),
        (
            "amt-password --dry-run --json",
            vec![
                "--device",
                &dev,
                "-vvv",
                "--json",
                "configure",
                "amt-password",
                "--dry-run",
            ],
        ),
        (
            "amt-password",
            vec![
                "--device",
                &dev,
                "-vvv",
                "--json",
                "configure",
                "amt-password",
            ],
        ),
    ] {
        let o = agent_env(&args, &env);
        assert_eq!(code(&o), 0, "{what}: {}", stderr(&o));
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(all.contains("TRACE"), "{what}: ran at trace level");
        assert!(
            all.contains("SetAdminAclEntryEx"),
            "{what}: the call is shown"
        );
        assert_clean(what, &all, &secrets);
    }
    // MEBx needs admin control mode: the same device, switched to ACM in its state file.
    drop(sim);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("state.json");
    let mut state: Value = state;
    state["control_mode"] = 2.into();
    state["admin_ha1"] = Value::String({
        use md5::Digest;
        md5::Md5::digest(format!("admin:{realm}:{NEW_PW}").as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    });
    std::fs::write(&st, serde_json::to_vec(&state).unwrap()).unwrap();
    let socket = dir.path().join("sim.sock");
    let stp = st.to_str().unwrap().to_string();
    let sim = Sim::start_in(dir, socket, &["--state", &stp]);
    let dev = sim.device();
    let env = [("AMT_PASSWORD", NEW_PW), ("MEBX_PASSWORD", MEBX_PW)];
    for (what, args) in [
        (
            "mebx --dry-run",
            vec!["--device", &dev, "-vvv", "configure", "mebx", "--dry-run"],
        ),
        (
            "mebx",
            vec!["--device", &dev, "-vvv", "--json", "configure", "mebx"],
        ),
    ] {
        let o = agent_env(&args, &env);
        assert_eq!(code(&o), 0, "{what}: {}", stderr(&o));
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(all.contains("SetMEBxPassword"), "{what}: the call is shown");
        assert_clean(what, &all, &secrets);
    }
}

/// `configure tls` with the admin's encrypted CA key at trace level, planned and applied: neither
/// the key's password nor the key (its PEM body, its private scalar in hex) appears, nor the AMT
/// or LSA password; no PEM private key of any kind (the throwaway CA's included) is written.
#[test]
fn configure_tls_leaks_no_ca_key_at_trace_level() {
    const CA_PW: &str = "Corp-CA-key-pw1";
    let sim = start();
    let dev = sim.device();
    let lsa = lsa(&sim);
    let pins = tempfile::tempdir().unwrap();
    let pin_dir = pins.path().display().to_string();
    let o = agent_env(
        &["--device", &dev, "activate", "--local", "--ccm"],
        &[
            ("AMT_PASSWORD", AMT_PW),
            ("AMT_AGENT_TLS_PIN_DIR", &pin_dir),
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let ca = repo_file("tests/fixtures/tls-ca");
    let (cert, key) = (
        ca.join("ec-ca.pem").display().to_string(),
        ca.join("ec-ca.enc.key").display().to_string(),
    );
    // The same key unencrypted (SEC1): its PEM body and its private scalar (bytes 7..39 of the DER).
    let plain = std::fs::read_to_string(ca.join("ec-ca.key")).unwrap();
    let body: String = plain.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(&body)
            .unwrap()
    };
    let scalar: String = der[7..39].iter().map(|b| format!("{b:02x}")).collect();
    let secrets = [AMT_PW, lsa.as_str(), CA_PW, body.as_str(), scalar.as_str()];
    let env = [
        ("AMT_PASSWORD", AMT_PW),
        ("TLS_CA_KEY_PASSWORD", CA_PW),
        ("AMT_AGENT_TLS_PIN_DIR", pin_dir.as_str()),
    ];
    for (what, extra) in [
        ("tls --dry-run", vec!["--dry-run"]),
        ("tls", vec!["--delay", "0"]),
        ("tls (again)", vec!["--delay", "0"]),
    ] {
        let mut args = vec![
            "--device",
            &dev,
            "-vvv",
            "--json",
            "configure",
            "tls",
            "--mode",
            "MutualAndNonTLS",
            "--ca-cert",
            &cert,
            "--ca-key",
            &key,
        ];
        args.extend(extra);
        let o = agent_env(&args, &env);
        assert_eq!(code(&o), 0, "{what}: {}", stderr(&o));
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(all.contains("TRACE"), "{what}: ran at trace level");
        if what == "tls (again)" {
            assert!(all.contains("\"unchanged\""), "{what}: nothing to change");
        } else {
            assert!(all.contains("GenerateKeyPair"), "{what}: the call is shown");
        }
        assert!(
            !all.contains("PRIVATE KEY"),
            "{what}: a PEM private key was written"
        );
        assert_clean(what, &all, &secrets);
    }
}

/// `configure wired` and `configure wireless` at trace level, planned (`--dry-run`, text and
/// JSON) and applied: no 802.1X password, Wi-Fi passphrase or private key appears in any form —
/// neither the key file's PEM lines nor the PKCS#1 blob AddKey carries — whether the key comes
/// from a file (mode 600) or from IEEE8021X_PRIVATE_KEY.
#[test]
fn network_configure_flows_leak_no_secret_at_trace_level() {
    use base64::Engine;
    use std::os::unix::fs::PermissionsExt;
    const DOT1X_PW: &str = "Kn0wn-Radius!Secret";
    const PSK: &str = "Kn0wn wifi passphrase";
    let dir = tempfile::tempdir().unwrap();
    let pfile = write_profile(dir.path(), "amt16.1", with_wifi);
    let socket = dir.path().join("sim.sock");
    let st = dir.path().join("state.json").display().to_string();
    let sim = Sim::start_in(dir, socket, &["--device-profile", &pfile, "--state", &st]);
    let dev = sim.device();
    let lsa = lsa(&sim);
    let o = agent_env(
        &["--device", &dev, "activate", "--local", "--ccm"],
        &[("AMT_PASSWORD", AMT_PW)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let fx = |n: &str| repo_file(&format!("tests/fixtures/ieee8021x/{n}"));
    let key_pem = std::fs::read_to_string(fx("client.key")).unwrap();
    let key_file = tempfile::tempdir().unwrap();
    let key_path = key_file.path().join("client.key");
    std::fs::write(&key_path, &key_pem).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let pkcs1_pem = std::fs::read_to_string(fx("client-pkcs1.key")).unwrap();
    // What AddKey sends: base64 of the PKCS#1 DER, one line.
    let blob: String = pkcs1_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(&blob)
        .expect("the PKCS#1 body is base64");
    let mut secrets: Vec<String> = vec![
        AMT_PW.into(),
        DOT1X_PW.into(),
        PSK.into(),
        lsa.clone(),
        blob.clone(),
    ];
    // Every PEM line of both encodings of the key, but those that are public: a private key
    // file holds the modulus too, which the certificate (logged, rightly) carries as well.
    let public: String = std::fs::read_to_string(fx("client.pem"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    secrets.extend(
        key_pem
            .lines()
            .chain(pkcs1_pem.lines())
            .filter(|l| !l.starts_with("-----") && l.len() >= 16 && !public.contains(*l))
            .map(str::to_string),
    );
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let (client, ca, key) = (
        fx("client.pem").display().to_string(),
        fx("ca.pem").display().to_string(),
        key_path.display().to_string(),
    );
    // `amt-agent --device D -vvv configure ARGS… EXTRA…`
    let cmd = |args: &[&str], extra: &[&str]| -> Vec<String> {
        ["--device", dev.as_str(), "-vvv", "configure"]
            .iter()
            .chain(args)
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let eap_tls = |extra: &[&str], key: Option<&str>| {
        let mut a = vec![
            "wired",
            "--dhcp",
            "--ieee8021x-profile-name",
            "wiredTls",
            "--ieee8021x-username",
            "amt-client",
            "--ieee8021x-client-cert",
            &client,
            "--ieee8021x-ca-cert",
            &ca,
        ];
        if let Some(k) = key {
            a.extend(["--ieee8021x-private-key", k]);
        }
        cmd(&a, extra)
    };
    const PEAP: &[&str] = &[
        "wired",
        "--ieee8021x-profile-name",
        "wiredPeap",
        "--ieee8021x-authentication-protocol",
        "2",
        "--ieee8021x-username",
        "alice",
    ];
    const WIFI: &[&str] = &[
        "wireless",
        "--profile-name",
        "office",
        "--ssid",
        "CorpNet",
        "--priority",
        "1",
    ];
    const WIFI_PEAP: &[&str] = &[
        "wireless",
        "--profile-name",
        "corp",
        "--ssid",
        "Corp8021X",
        "--priority",
        "2",
        "--authentication-method",
        "7",
        "--ieee8021x-profile-name",
        "corpPeap",
        "--ieee8021x-authentication-protocol",
        "2",
        "--ieee8021x-username",
        "alice",
    ];
    let peap = |extra: &[&str]| cmd(PEAP, extra);
    let wifi = |extra: &[&str]| cmd(WIFI, extra);
    let wifi_peap = |extra: &[&str]| cmd(WIFI_PEAP, extra);
    let env = [
        ("AMT_PASSWORD", AMT_PW),
        ("IEEE8021X_PASSWORD", DOT1X_PW),
        ("PSK_PASSPHRASE", PSK),
    ];
    let key_env = [
        ("AMT_PASSWORD", AMT_PW),
        ("IEEE8021X_PRIVATE_KEY", key_pem.as_str()),
    ];
    type Env<'a> = &'a [(&'a str, &'a str)];
    let runs: Vec<(&str, Vec<String>, Env, &str)> = vec![
        (
            "eap-tls --dry-run",
            eap_tls(&["--dry-run"], Some(&key)),
            &env,
            "AddKey(KeyBlob=***)",
        ),
        (
            "eap-tls --json --dry-run",
            [
                vec!["--json".to_string()],
                eap_tls(&["--dry-run"], Some(&key)),
            ]
            .concat(),
            &env,
            "KeyBlob=***",
        ),
        ("eap-tls", eap_tls(&[], Some(&key)), &env, "AddKey"),
        (
            "eap-tls, key from the environment",
            eap_tls(&["--force"], None),
            &key_env,
            "SetCertificates",
        ),
        ("peap --dry-run", peap(&["--dry-run"]), &env, "Password=***"),
        ("peap", peap(&[]), &env, "IPS_IEEE8021xSettings"),
        (
            "peap --force",
            peap(&["--force"]),
            &env,
            "IPS_IEEE8021xSettings",
        ),
        (
            "wireless --dry-run",
            wifi(&["--dry-run"]),
            &env,
            "PSKPassPhrase=***",
        ),
        ("wireless", wifi(&[]), &env, "AddWiFiSettings"),
        (
            "wireless --force",
            wifi(&["--force"]),
            &env,
            "AddWiFiSettings",
        ),
        (
            "wireless 802.1X --dry-run",
            wifi_peap(&["--dry-run"]),
            &env,
            "Password=***",
        ),
        ("wireless 802.1X", wifi_peap(&[]), &env, "AddWiFiSettings"),
    ];
    for (what, args, env, shown) in runs {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = agent_env(&a, env);
        assert_eq!(code(&o), 0, "{what}: {}", stderr(&o));
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(all.contains("TRACE"), "{what}: ran at trace level");
        assert!(all.contains(shown), "{what}: {shown} is shown");
        assert_clean(what, &all, &secrets);
    }
    // The simulator keeps digests of the passwords and passphrases, never the text.
    assert_no_secret(
        "the simulator's state",
        &std::fs::read_to_string(sim.path("state.json")).unwrap(),
        &[DOT1X_PW, PSK],
    );
}

#[test]
fn profile_plan_and_apply_leak_no_secret_at_trace_level() {
    use std::os::unix::fs::PermissionsExt;
    let sim = start();
    let dev = sim.device();
    let lsa = lsa(&sim);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p.to_str().unwrap().to_string()
    };
    let literal = write(
        "literal.yaml",
        &format!("version: 1\ncontrolMode: ccm\nadminPassword: {AMT_PW}\nfeatures: {{kvm: true, userConsent: all}}\nhostname: {{hostName: wks-1}}\n"),
    );
    let generated = write(
        "generated.yaml",
        "version: 1\ncontrolMode: ccm\nadminPassword: generate\nfeatures: {kvm: true, userConsent: all}\n",
    );
    // The same profile as rpc-go v3's encrypted export, its key in the environment.
    let key = "Kn0wnExportKey-0123456789abcdefg";
    let v3 = format!(
        "configuration:\n  amtSpecific: {{controlMode: ccmactivate, adminPassword: {AMT_PW}}}\n"
    );
    let blob =
        amt_agent::profile::crypto::encrypt(&v3, &amt_agent::secret::Secret::new(key), [9; 12])
            .unwrap();
    let enc = write("export.enc", &blob);
    let mut outputs = Vec::new();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut a = vec!["--device", dev.as_str(), "-vvv"];
        a.extend_from_slice(args);
        a.extend(["--lms", "never", "--data-dir", data]);
        agent_env(&a, env)
    };
    for (what, args, env, want) in [
        (
            "plan before activation",
            vec!["plan", literal.as_str()],
            vec![],
            2,
        ),
        ("apply", vec!["apply", literal.as_str()], vec![], 0),
        (
            "plan json",
            vec!["--json", "plan", literal.as_str()],
            vec![],
            0,
        ),
        (
            "encrypted plan",
            vec!["plan", enc.as_str()],
            vec![("CONFIG_ENCRYPTION_KEY", key)],
            0,
        ),
        (
            "rotation to a generated password",
            vec!["apply", generated.as_str()],
            vec![("AMT_PASSWORD", AMT_PW)],
            0,
        ),
        (
            "plan after rotation",
            vec!["--json", "plan", generated.as_str()],
            vec![],
            0,
        ),
    ] {
        let o = run(&args, &env);
        assert_eq!(code(&o), want, "{what}: {}", stderr(&o));
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(all.contains("TRACE"), "{what}: ran at trace level");
        outputs.push((what, all));
    }
    let gen = std::fs::read_to_string(dir.path().join("data/generated/amt-password")).unwrap();
    let gen = gen.trim();
    for (what, all) in &outputs {
        assert_clean(what, all, &[AMT_PW, lsa.as_str(), gen, key]);
    }
}

/// A profile's network secrets — a Wi-Fi passphrase (from the environment, then changed), a
/// PEAP-MSCHAPv2 password (from a file), the EAP-TLS private key (a file, then inline PEM in the
/// environment), the MPS password (from the environment) — through `profile check`, `plan` (text and JSON), `apply` and the apply that
/// sends a changed passphrase again, all at trace level: none appears in any form, nor the
/// PKCS#1 blob AddKey carries; the verifiers apply keeps hold none of them.
#[test]
fn network_secrets_in_a_profile_leak_nowhere_at_trace_level() {
    use std::os::unix::fs::PermissionsExt;
    const PSK: &str = "Kn0wn profile passphrase";
    const PSK2: &str = "Kn0wn second passphrase";
    const PEAP_PW: &str = "Kn0wn-Peap!Secret";
    const MPS_PW: &str = "Kn0wn-Mps!Pw1";
    // The password of tests/fixtures/tls-ca/ec-ca.enc.key.
    const TLS_CA_PW: &str = "Corp-CA-key-pw1";
    let dir = tempfile::tempdir().unwrap();
    let pfile = write_profile(dir.path(), "amt16.1", with_wifi);
    let socket = dir.path().join("sim.sock");
    let st = dir.path().join("state.json").display().to_string();
    let sim = Sim::start_in(dir, socket, &["--device-profile", &pfile, "--state", &st]);
    let dev = sim.device();
    let lsa = lsa(&sim);
    let files = tempfile::tempdir().unwrap();
    let private = |name: &str, text: &str| {
        let p = files.path().join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p.display().to_string()
    };
    let fx = |n: &str| repo_file(&format!("tests/fixtures/ieee8021x/{n}"));
    let key_pem = std::fs::read_to_string(fx("client.key")).unwrap();
    let key = private("client.key", &key_pem);
    let peap = private("peap-password", &format!("{PEAP_PW}\n"));
    // The admin's TLS CA, its key encrypted (the password comes from the environment).
    let tls_key_pem =
        std::fs::read_to_string(repo_file("tests/fixtures/tls-ca/ec-ca.enc.key")).unwrap();
    let tls_key = private("tls-ca.key", &tls_key_pem);
    let profile = |key_ref: &str| {
        format!(
            "version: 1\ncontrolMode: ccm\nadminPassword: {AMT_PW}\nnetwork:\n\
             \x20 wired: {{dhcp: true, ieee8021x: wiredtls}}\n\
             \x20 wireless:\n    profiles:\n\
             \x20     - {{name: office, ssid: CorpNet, priority: 1, authentication: wpa2-psk, pskPassphrase: 'env:OFFICE_PSK'}}\n\
             \x20     - {{name: corp, ssid: Corp8021X, priority: 2, authentication: wpa2-ieee8021x, ieee8021x: peap}}\n\
             \x20 ieee8021x:\n\
             \x20   - {{name: wiredtls, protocol: eap-tls, username: amt-client, clientCertificate: {client}, privateKey: '{key_ref}', caCertificate: {ca}}}\n\
             \x20   - {{name: peap, protocol: peap-mschapv2, username: alice, password: 'file:{peap}', caCertificate: {ca}}}\n\
             cira: {{mpsAddress: mps.corp.example.com, mpsPassword: 'env:MPS_PW', mpsCertificate: {ca}}}\n\
             tls: {{mode: mutual, delay: 0, caCertificate: {tls_ca}, caKey: 'file:{tls_key}', caKeyPassword: 'env:TLS_CA_PW'}}\n",
            client = fx("client.pem").display(),
            ca = fx("ca.pem").display(),
            tls_ca = repo_file("tests/fixtures/tls-ca/ec-ca.pem").display(),
        )
    };
    let from_file = private("from-file.yaml", &profile(&format!("file:{key}")));
    let from_env = private("from-env.yaml", &profile("env:WIRED_KEY"));
    let pkcs1_pem = std::fs::read_to_string(fx("client-pkcs1.key")).unwrap();
    let blob: String = pkcs1_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let public: String = std::fs::read_to_string(fx("client.pem"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let mut secrets: Vec<String> = vec![
        AMT_PW.into(),
        PSK.into(),
        PSK2.into(),
        PEAP_PW.into(),
        MPS_PW.into(),
        TLS_CA_PW.into(),
        lsa.clone(),
        blob,
    ];
    secrets.extend(
        key_pem
            .lines()
            .chain(pkcs1_pem.lines())
            .filter(|l| !l.starts_with("-----") && l.len() >= 16 && !public.contains(*l))
            .map(str::to_string),
    );
    secrets.extend(
        tls_key_pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 16)
            .map(str::to_string),
    );
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let data = files.path().join("data");
    let data = data.to_str().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut a = vec!["--device", dev.as_str(), "-vvv"];
        a.extend_from_slice(args);
        if args.contains(&"plan") || args.contains(&"apply") {
            a.extend(["--data-dir", data]);
        }
        agent_env(&a, env)
    };
    let pins = files.path().join("pins").display().to_string();
    let env1 = [
        ("OFFICE_PSK", PSK),
        ("MPS_PW", MPS_PW),
        ("TLS_CA_PW", TLS_CA_PW),
        ("AMT_AGENT_TLS_PIN_DIR", pins.as_str()),
    ];
    let env2 = [
        ("OFFICE_PSK", PSK2),
        ("WIRED_KEY", key_pem.as_str()),
        ("MPS_PW", MPS_PW),
        ("TLS_CA_PW", TLS_CA_PW),
        ("AMT_AGENT_TLS_PIN_DIR", pins.as_str()),
    ];
    for (what, args, env, want, shown) in [
        (
            "profile check",
            vec!["profile", "check", from_file.as_str()],
            &env1[..],
            0,
            "valid",
        ),
        (
            "plan before activation",
            vec!["plan", from_file.as_str()],
            &env1[..],
            2,
            "wired",
        ),
        (
            "apply",
            vec!["apply", from_file.as_str()],
            &env1[..],
            0,
            "AddWiFiSettings",
        ),
        (
            "plan json, a changed passphrase",
            vec!["--json", "plan", from_env.as_str()],
            &env2[..],
            2,
            "PSKPassPhrase=***",
        ),
        (
            "apply of the changed passphrase, the key inline",
            vec!["apply", from_env.as_str()],
            &env2[..],
            0,
            "AddWiFiSettings",
        ),
        (
            "plan after",
            vec!["plan", from_env.as_str()],
            &env2[..],
            0,
            "as wanted",
        ),
    ] {
        let o = run(&args, env);
        assert_eq!(code(&o), want, "{what}: {}{}", stdout(&o), stderr(&o));
        let all = format!("{}{}", stdout(&o), stderr(&o));
        // `profile check` talks to no device: it has nothing to trace.
        if what != "profile check" {
            assert!(all.contains("TRACE"), "{what}: ran at trace level");
        }
        assert!(all.contains(shown), "{what}: {shown} is shown");
        assert_clean(what, &all, &secrets);
    }
    for f in std::fs::read_dir(files.path().join("data/verifiers")).unwrap() {
        let path = f.unwrap().path();
        assert_no_secret(
            &path.display().to_string(),
            &std::fs::read_to_string(&path).unwrap(),
            &secrets,
        );
    }
    assert_no_secret(
        "the simulator's state",
        &std::fs::read_to_string(sim.path("state.json")).unwrap(),
        &[PSK, PSK2, PEAP_PW, MPS_PW],
    );
}

/// `configure cira` at trace level, planned and applied, with the MPS password from the
/// environment and with a random one: neither password appears in any output. The random one is
/// unknown to the test, so every 16-character window of the output is checked against the digest
/// of the password the simulated AMT holds.
#[test]
fn configure_cira_leaks_no_mps_password_at_trace_level() {
    const MPS_PW: &str = "Kn0wn-Mps!Sec";
    let sim = start();
    let dev = sim.device();
    let lsa = lsa(&sim);
    let o = agent_env(
        &["--device", &dev, "activate", "--local", "--ccm"],
        &[("AMT_PASSWORD", AMT_PW)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let root = repo_file("tests/fixtures/cira/mps-root.pem");
    let root = root.to_str().unwrap();
    let secrets = [AMT_PW, MPS_PW, lsa.as_str()];
    let env = [("AMT_PASSWORD", AMT_PW), ("MPS_PASSWORD", MPS_PW)];
    let base = ["--device", dev.as_str(), "-vvv"];
    let cira = [
        "configure",
        "cira",
        "--mps-address",
        "mps.example.com",
        "--mps-cert",
        root,
    ];
    for (what, extra, json) in [
        ("cira --dry-run", vec!["--dry-run"], false),
        ("cira --dry-run --json", vec!["--dry-run"], true),
        ("cira", vec![], true),
    ] {
        let mut args: Vec<&str> = base.to_vec();
        if json {
            args.push("--json");
        }
        args.extend(cira);
        args.extend(extra);
        let o = agent_env(&args, &env);
        assert_eq!(code(&o), 0, "{what}: {}", stderr(&o));
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(
            all.contains("TRACE") && all.contains("AddMpServer"),
            "{what}"
        );
        assert_clean(what, &all, &secrets);
    }
    let held = |sim: &Sim| -> String {
        let s: Value =
            serde_json::from_str(&std::fs::read_to_string(sim.path("state.json")).unwrap())
                .unwrap();
        s["instances"]["AMT_MPSUsernamePassword"][0]
            .as_array()
            .unwrap()
            .iter()
            .find(|kv| kv[0].as_str().is_some_and(|k| k.ends_with("Secret")))
            .and_then(|kv| kv[1].as_str())
            .unwrap()
            .to_string()
    };
    assert_eq!(held(&sim), amt_agent::sim::amt::secret_digest(MPS_PW));
    // A random password, written again with --force.
    let mut args: Vec<&str> = base.to_vec();
    args.push("--json");
    args.extend(cira);
    args.extend(["--generate-random-password", "--force"]);
    let o = agent_env(&args, &[("AMT_PASSWORD", AMT_PW)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let digest = held(&sim);
    assert_ne!(digest, amt_agent::sim::amt::secret_digest(MPS_PW));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert_clean("cira --generate-random-password", &all, &secrets);
    let b = all.as_bytes();
    for w in b.windows(16) {
        if let Ok(s) = std::str::from_utf8(w) {
            assert_ne!(
                amt_agent::sim::amt::secret_digest(s),
                digest,
                "the random MPS password appears in the output"
            );
        }
    }
}
