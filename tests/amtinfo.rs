//! End to end: the `amt-agent` binary against a running `amt-sim` over its socket, for every
//! device profile and every injected fault. Expected values come from the simulator's own profile
//! JSON (`amt-sim profiles NAME`), never from constants in the test.
// The tests drive Linux processes (amt-sim, its Unix socket, signals); the Windows build is
// tested by tests/windows.rs, the .exe under Wine.
#![cfg(unix)]

mod common;

use common::*;
use serde_json::Value;

fn check_schema(v: &Value) {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_file("docs/amtinfo.schema.json")).expect("schema"),
    )
    .expect("schema JSON");
    let compiled = jsonschema::JSONSchema::compile(&schema).expect("schema compiles");
    let msgs: Vec<String> = match compiled.validate(v) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect(),
    };
    assert!(
        msgs.is_empty(),
        "amtinfo JSON does not match docs/amtinfo.schema.json: {msgs:#?}\n{v:#}"
    );
}

fn version(p: &Value, key: &str) -> String {
    p["code_versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e[0] == key)
        .map(|e| e[1].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn every_profile_gives_its_own_values_in_json_matching_the_schema() {
    for name in profile_names() {
        let p = profile(&name);
        let sim = Sim::start(&["--device-profile", &name]);
        let o = agent(&["--device", &sim.device(), "amtinfo", "--all", "--json"]);
        if name == "consumer" {
            assert_eq!(code(&o), 3, "{name}: {}", stderr(&o));
            assert!(stderr(&o).contains("not present"), "{}", stderr(&o));
            continue;
        }
        assert_eq!(code(&o), 0, "{name}: {}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).expect("JSON");
        check_schema(&v);
        assert_eq!(v["amt"], version(&p, "AMT"), "{name}");
        assert_eq!(v["buildNumber"], version(&p, "Build Number"));
        assert_eq!(v["sku"], version(&p, "Sku"));
        assert_eq!(v["uuid"], p["uuid"]);
        assert_eq!(v["controlMode"], "pre-provisioning state");
        assert_eq!(v["provisioningState"], "pre-provisioning");
        assert_eq!(v["wiredAdapter"]["macAddress"], p["wired"]["mac"]);
        assert_eq!(v["wiredAdapter"]["ipAddress"], p["wired"]["ipv4"]);
        let hashes = v["certificateHashes"].as_object().unwrap();
        let expected = p["cert_hashes"].as_array().unwrap();
        assert_eq!(
            hashes.len(),
            expected.len(),
            "{name}: every hash entry, not only 23"
        );
        for e in expected {
            let got = &hashes[e["name"].as_str().unwrap()];
            assert_eq!(got["Hash"], e["hash"]);
            assert_eq!(got["IsActive"], e["is_active"]);
        }
        // Operational state only where the firmware reports it (AMT > 11 with the new interface).
        let major: u32 = version(&p, "AMT")
            .split('.')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let reported = major > 11 && p["new_interface"] == true;
        assert_eq!(v.get("operationalState").is_some(), reported, "{name}");
        // TLS enforcement comes from the same watchdog read, which v2 makes on AMT > 11 only.
        if major > 11 {
            assert_eq!(v["tlsEnforced"], p["tls_enforced"], "{name}");
        } else {
            assert!(v.get("tlsEnforced").is_none(), "{name}");
        }
        assert!(v["simulated"]["profile"]
            .as_str()
            .unwrap()
            .contains("socket"));
        // v2 has no UPID: --all neither reads nor shows it.
        assert!(v.get("upid").is_none(), "{name}");
        // Asked for by name, it is there where the profile enumerates its client.
        let has_upid = p["clients"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "upid");
        if has_upid {
            let o = agent(&[
                "--device",
                &sim.device(),
                "amtinfo",
                "--all",
                "--upid",
                "--json",
            ]);
            assert_eq!(code(&o), 0, "{name}: {}", stderr(&o));
            let v: Value = serde_json::from_slice(&o.stdout).expect("JSON");
            check_schema(&v);
            assert_eq!(v["upid"]["oemPlatformIdType"], "Not Set (0)", "{name}");
            assert_eq!(v["upid"]["oemId"], "", "{name}");
        }
    }
}

/// The chain `amt-sim serve --tls-chain-out` wrote (leaf first), as DER.
fn chain_ders(file: &std::path::Path) -> Vec<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_file_iter(file)
        .expect("chain file")
        .map(|c| c.expect("PEM certificate").to_vec())
        .collect()
}

#[test]
fn upid_on_amt19_is_the_csme_id_amts_tls_chain_is_bound_to() {
    use sha2::Digest as _;
    let dir = tempfile::tempdir().unwrap();
    let chain_file = dir.path().join("chain.pem");
    let chain_s = chain_file.to_str().unwrap().to_string();
    let sim = Sim::start(&["--device-profile", "amt19", "--tls-chain-out", &chain_s]);
    let o = agent(&["--device", &sim.device(), "amtinfo", "--upid", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    check_schema(&v);
    assert_eq!(
        v.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["heciAvailable", "simulated", "upid"],
        "--upid selects the UPID alone"
    );
    let chain = chain_ders(&chain_file);
    assert_eq!(chain.len(), 4);
    let bound: String = sha2::Sha256::digest(&chain[3])[..20]
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let csme = v["upid"]["csmeId"].as_str().unwrap();
    assert_eq!(csme.len(), 64);
    assert!(
        csme.starts_with(&bound),
        "CSME id bytes 0–19 are the first 20 bytes of SHA-256 of the ROM CA (index 3): {csme} vs {bound}"
    );
    let text = stdout(&agent(&["--device", &sim.device(), "amtinfo", "--upid"]));
    assert_eq!(
        text,
        format!("---Intel UPID---\nPlatform ID Type\t: Not Set (0)\nOEM ID\t\t\t: \nCSME ID\t\t\t: {csme}\n")
    );

    // With the mismatch fault the firmware reports another CSME.
    let other = Sim::start(&[
        "--device-profile",
        "amt19",
        "--fault",
        "upid-mismatch",
        "--tls-chain-out",
        &chain_s,
    ]);
    let o = agent(&["--device", &other.device(), "amtinfo", "--upid", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let bound: String = sha2::Sha256::digest(&chain_ders(&chain_file)[3])[..20]
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert!(!v["upid"]["csmeId"].as_str().unwrap().starts_with(&bound));

    // Asked for by name on a platform without the client: an error, not AMT's exit 3.
    let old = Sim::start(&["--device-profile", "amt15"]);
    let o = agent(&["--device", &old.device(), "amtinfo", "--upid"]);
    assert_eq!(code(&o), 10, "{}", stderr(&o));
    assert!(stderr(&o).contains("UPID is not present"), "{}", stderr(&o));
    assert!(stderr(&o).contains("help: "), "{}", stderr(&o));
}

#[test]
fn text_output_keeps_rpc_go_labels_and_order() {
    let sim = Sim::start(&[]);
    let p = profile("amt16.1");
    let o = agent(&["--device", &sim.device(), "amtinfo"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    let labels: Vec<&str> = text.lines().map(|l| l.split(':').next().unwrap()).collect();
    let want = [
        "Version\t\t\t",
        "Build Number\t\t",
        "SKU\t\t\t",
        "Features\t\t",
        "UUID\t\t\t",
        "Control Mode\t\t",
        "Operational State\t",
        "DNS Suffix\t\t",
        "DNS Suffix (OS)\t\t",
        "Hostname (OS)\t\t",
        "RAS Network      \t",
        "RAS Remote Status\t",
        "RAS Trigger      \t",
        "RAS MPS Hostname \t",
        "---Wired Adapter---",
        "DHCP Enabled \t\t",
        "DHCP Mode    \t\t",
        "Link Status  \t\t",
        "AMT IP Address\t\t",
        "OS  IP Address\t\t",
        "MAC Address  \t\t",
        "---Wireless Adapter---",
    ];
    assert_eq!(&labels[..want.len()], &want[..], "{text}");
    assert!(text.contains(&format!("Version\t\t\t: {}\n", version(&p, "AMT"))));
    // v2 leaves the trailing space of its features string in the text.
    assert!(text.contains("Features\t\t: AMT Pro Corporate \n"));
    assert!(text.contains(&format!("UUID\t\t\t: {}\n", p["uuid"].as_str().unwrap())));
    assert!(
        !text.contains("---Certificate Hashes---"),
        "no certificates without --cert"
    );
    assert!(
        stderr(&o).contains("simulated"),
        "the output says the device is simulated"
    );
}

#[test]
fn each_selection_flag_shows_only_its_fields_and_v2_spellings_work() {
    let sim = Sim::start(&[]);
    let dev = sim.device();
    let cases: &[(&str, &[&str])] = &[
        ("--ver", &["Version"]),
        ("--bld", &["Build Number"]),
        ("--sku", &["SKU"]),
        ("--uuid", &["UUID"]),
        ("--mode", &["Control Mode"]),
        ("--provisioning-state", &["Provisioning State"]),
        ("--operational-state", &["Operational State"]),
        ("--tls-enforced", &["TLS Enforced"]),
        ("--dns", &["DNS Suffix", "DNS Suffix (OS)"]),
        ("--hostname", &["Hostname (OS)"]),
        (
            "--upid",
            &["---Intel UPID---", "Platform ID Type", "OEM ID", "CSME ID"],
        ),
        (
            "--ras",
            &[
                "RAS Network",
                "RAS Remote Status",
                "RAS Trigger",
                "RAS MPS Hostname",
            ],
        ),
    ];
    for (flag, labels) in cases {
        let o = agent(&["--device", &dev, "amtinfo", flag]);
        assert_eq!(code(&o), 0, "{flag}: {}", stderr(&o));
        let got: Vec<String> = stdout(&o)
            .lines()
            .map(|l| l.split(':').next().unwrap().trim().to_string())
            .collect();
        assert_eq!(
            got,
            labels.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "{flag}"
        );
    }
    let lan = stdout(&agent(&["--device", &dev, "amtinfo", "--lan"]));
    assert!(lan.starts_with("---Wired Adapter---\n") && lan.contains("---Wireless Adapter---\n"));
    let cert = stdout(&agent(&["--device", &dev, "amtinfo", "--cert"]));
    assert!(cert.starts_with("---Certificate Hashes---\n"));
    assert!(cert.contains("Baltimore CyberTrust Root  (Default, Active)\n   SHA256: 16af57a9f676b0ab126095aa5ebadef22ab31119d644ac95cd4b93dbf3f26aeb\n"));
    // rpc-go v2 spellings
    let v2 = agent(&["amtinfo", "-cert", "-json", "-device", &dev]);
    let v3 = agent(&["amtinfo", "--cert", "--json", "--device", &dev]);
    assert_eq!(code(&v2), 0, "{}", stderr(&v2));
    assert_eq!(v2.stdout, v3.stdout);
    // the device can come from the environment
    let env = agent_env(&["amtinfo", "--uuid"], &[("AMT_AGENT_DEVICE", &dev)]);
    assert_eq!(code(&env), 0);
}

#[test]
fn the_in_process_simulator_is_the_built_in_default_for_demos() {
    let o = agent(&["--device", "sim", "amtinfo", "--all", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    check_schema(&v);
    assert_eq!(v["simulated"]["profile"], "amt16.1");
    let o = agent(&["--device", "sim:profile=amt19", "amtinfo", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["tlsEnforced"], true);
    let o = agent(&["--device", "sim:profile=nope", "amtinfo"]);
    assert_ne!(code(&o), 0);
    assert!(
        stderr(&o).contains("'nope' is neither a built-in profile"),
        "{}",
        stderr(&o)
    );
}

/// `sim:profile=FILE`: the in-process simulator with a profile file (as `amt-sim profiles NAME`
/// writes it), here amt19 with another UUID.
#[test]
fn the_in_process_simulator_takes_a_profile_file() {
    let o = std::process::Command::new(SIM)
        .args(["profiles", "amt19"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mut p: Value = serde_json::from_slice(&o.stdout).unwrap();
    p["uuid"] = "12345678-9abc-def0-1234-56789abcdef0".into();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mine.json");
    std::fs::write(&file, serde_json::to_vec(&p).unwrap()).unwrap();
    let dev = format!("sim:profile={}", file.display());
    let o = agent(&["--device", &dev, "amtinfo", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["uuid"], "12345678-9abc-def0-1234-56789abcdef0");
    assert_eq!(v["tlsEnforced"], true);
}

struct FaultCase {
    fault: &'static str,
    args: &'static [&'static str],
    exit: i32,
    message: &'static str,
}

#[test]
fn each_fault_gives_its_documented_exit_code_and_message_never_a_hang() {
    let cases = [
        FaultCase {
            fault: "busy=amthi",
            args: &["amtinfo", "--ver"],
            exit: 4,
            message: "busy (EBUSY)",
        },
        FaultCase {
            fault: "busy=amthi*2",
            args: &["amtinfo", "--ver"],
            exit: 0,
            message: "",
        },
        FaultCase {
            fault: "reset-after=2",
            args: &["amtinfo", "--ver", "--uuid", "--mode"],
            exit: 0,
            message: "",
        },
        FaultCase {
            fault: "hang=GET_UUID",
            args: &["amtinfo", "--uuid"],
            exit: 4,
            message: "no answer from ME client AMTHI",
        },
        FaultCase {
            fault: "truncate=GET_UUID",
            args: &["amtinfo", "--uuid"],
            exit: 10,
            message: "malformed GET_UUID reply",
        },
        FaultCase {
            fault: "oversize=GET_UUID",
            args: &["amtinfo", "--uuid"],
            exit: 10,
            message: "larger than the receive buffer",
        },
        FaultCase {
            fault: "status=GET_CONTROL_MODE:2",
            args: &["amtinfo", "--mode", "-t", "1s"],
            exit: 4,
            message: "NOT_READY (2)",
        },
        FaultCase {
            fault: "status=GET_UUID:1",
            args: &["amtinfo", "--uuid"],
            exit: 10,
            message: "GET_UUID returned INTERNAL_ERROR (1)",
        },
        FaultCase {
            fault: "truncate=UPID_PLATFORM_ID_GET",
            args: &["amtinfo", "--upid"],
            exit: 10,
            message: "the UPID is not provisioned",
        },
        FaultCase {
            fault: "status=UPID_PLATFORM_ID_GET:4",
            args: &["amtinfo", "--upid"],
            exit: 10,
            message: "UPID_PLATFORM_ID_GET returned NOT_ALLOWED_AFTER_EOP (4)",
        },
        FaultCase {
            fault: "hang=UPID_PLATFORM_ID_GET",
            args: &["amtinfo", "--upid"],
            exit: 4,
            message: "no answer from ME client UPID",
        },
        FaultCase {
            fault: "latency=*:50",
            args: &["amtinfo", "--all"],
            exit: 0,
            message: "",
        },
    ];
    for c in &cases {
        let sim = Sim::start(&["--fault", c.fault]);
        let mut args = vec!["--device", sim.device().leak() as &str];
        args.extend_from_slice(c.args);
        let started = std::time::Instant::now();
        let o = agent(&args);
        assert_eq!(code(&o), c.exit, "{}: stderr {}", c.fault, stderr(&o));
        assert!(
            stderr(&o).contains(c.message),
            "{}: {}",
            c.fault,
            stderr(&o)
        );
        if c.exit != 0 {
            assert!(
                stderr(&o).contains("help: "),
                "{}: every error has a fix: {}",
                c.fault,
                stderr(&o)
            );
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "{} took {:?}",
            c.fault,
            started.elapsed()
        );
    }
}

#[test]
fn random_faults_from_a_seed_end_in_a_documented_code() {
    for seed in 1..=6 {
        let spec = format!("random={seed}:40");
        let sim = Sim::start(&["--fault", &spec]);
        let o = agent(&["--device", &sim.device(), "amtinfo", "--all", "-t", "1s"]);
        assert!(
            [0, 4, 10].contains(&code(&o)),
            "{spec}: exit {} {}",
            code(&o),
            stderr(&o)
        );
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
}

#[test]
fn missing_devices_and_bad_command_lines_have_their_codes() {
    let o = agent(&["--device", "sim:/nonexistent/amt.sock", "amtinfo"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("help: start the simulator"));
    let o = agent(&["--device", "/nonexistent/mei0", "amtinfo"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("modprobe mei_me"));
    let o = agent(&["amtinfo", "--bogus"]);
    assert_eq!(code(&o), 28);
    let o = agent(&["--help"]);
    assert_eq!(code(&o), 0);
}

#[test]
fn trace_logging_shows_every_heci_exchange_on_stderr_only() {
    let sim = Sim::start(&[]);
    let o = agent(&[
        "--device",
        &sim.device(),
        "-vvv",
        "amtinfo",
        "--uuid",
        "--json",
    ]);
    assert_eq!(code(&o), 0);
    let err = stderr(&o);
    assert!(err.contains("GET_UUID"), "{err}");
    assert!(
        err.contains("010100005c000004"),
        "request bytes in hex: {err}"
    );
    assert!(err.contains("TRACE"), "{err}");
    // stdout stays pure JSON
    let _: Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON only");
    let o = agent(&[
        "--device",
        &sim.device(),
        "--log-format",
        "json",
        "-vv",
        "amtinfo",
        "--uuid",
    ]);
    let first = stderr(&o).lines().next().unwrap_or_default().to_string();
    let _: Value = serde_json::from_str(&first).expect("JSON log lines");
}

#[test]
fn simulator_state_persists_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let state_s = state.to_str().unwrap().to_string();
    {
        let mut sim = Sim::start(&["--device-profile", "amt12", "--state", &state_s]);
        sim.stop();
    }
    let mut saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["name"], "amt12");
    assert_eq!(saved["lsa_password"].as_str().unwrap().len(), 32);
    // Edit the state as firmware would have changed it, restart, and read it back.
    saved["control_mode"] = 1.into();
    saved["provisioning_state"] = 2.into();
    std::fs::write(&state, serde_json::to_vec(&saved).unwrap()).unwrap();
    let sim = Sim::start(&["--device-profile", "amt19", "--state", &state_s]);
    let o = agent(&[
        "--device",
        &sim.device(),
        "amtinfo",
        "--mode",
        "--ver",
        "--json",
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["controlMode"], "activated in client control mode");
    assert_eq!(
        v["amt"], "12.0.45",
        "the state file wins over --device-profile"
    );
}

#[test]
fn doctor_reports_usable_amt_on_vpro_and_says_why_not_elsewhere() {
    let sim = Sim::start(&[]);
    let o = agent(&["--device", &sim.device(), "doctor", "--json"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["amtUsable"], true);
    let ids: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for id in ["me-client", "amt-sku", "operational-state", "tls-enforced"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let consumer = Sim::start(&["--device-profile", "consumer"]);
    let o = agent(&["--device", &consumer.device(), "doctor"]);
    assert_eq!(code(&o), 3);
    assert!(
        stdout(&o).contains("AMTHI (AMT host interface) is absent"),
        "{}",
        stdout(&o)
    );
    let busy = Sim::start(&["--fault", "busy=lme"]);
    let o = agent(&["--device", &busy.device(), "doctor"]);
    assert_eq!(
        code(&o),
        0,
        "a busy LME (held by LMS) does not make AMT unusable"
    );
    assert!(stdout(&o).contains("LME (local WS-MAN path) is busy"));
    let o = agent(&["--device", "/nonexistent/mei9", "doctor", "--json"]);
    assert_eq!(code(&o), 2);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["amtUsable"], false);
}

#[test]
fn a_device_this_user_cannot_open_is_exit_1_with_the_fix() {
    if std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_err()
        || !nix::unistd::geteuid().is_root()
    {
        eprintln!("skipped: needs root and setpriv to run the agent as an unprivileged user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("mei0");
    std::fs::write(&node, b"").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = run_with_deadline(
        std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                AGENT,
                "--device",
            ])
            .arg(&node)
            .arg("amtinfo"),
        std::time::Duration::from_secs(20),
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("permission denied"), "{}", stderr(&o));
    assert!(stderr(&o).contains("help: run as root"), "{}", stderr(&o));
}

/// Text output shows no provisioning state unless asked for, so plain `amtinfo` does not read it;
/// the JSON carries it beside the control mode, so `--json` does.
#[test]
fn the_provisioning_state_is_read_only_where_it_is_shown() {
    let commands = |args: &[&str]| {
        let o = agent(args);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        stderr(&o)
    };
    let text = commands(&["--device", "sim", "-vv", "amtinfo"]);
    assert!(text.contains("GET_CONTROL_MODE"), "{text}");
    assert!(!text.contains("GET_PROVISIONING_STATE"), "{text}");
    let shown = commands(&["--device", "sim", "-vv", "amtinfo", "--provisioning-state"]);
    assert!(shown.contains("GET_PROVISIONING_STATE"), "{shown}");
    let json = commands(&["--device", "sim", "-vv", "--json", "amtinfo"]);
    assert!(json.contains("GET_PROVISIONING_STATE"), "{json}");
}
