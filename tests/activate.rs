//! End to end: local activation and deactivation against `amt-sim`, checking the simulated
//! firmware's final state (mode, admin password digest), not only the exit code.
// The tests drive Linux processes (amt-sim, its Unix socket, signals); the Windows build is
// tested by tests/windows.rs, the .exe under Wine.
#![cfg(unix)]

mod common;

use common::*;
use serde_json::Value;

const PW: &str = "Sup3r$ecret!";

fn sim_with_state(profile: &str, extra: &[&str], edit: impl FnOnce(&mut Value)) -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let mut p = common::profile(profile);
    edit(&mut p);
    std::fs::write(&state, serde_json::to_vec(&p).unwrap()).unwrap();
    let socket = dir.path().join("sim.sock");
    let st = state.to_str().unwrap().to_string();
    let mut args = vec!["--state", st.as_str()];
    args.extend_from_slice(extra);
    Sim::start_in(dir, socket, &args)
}

fn state(sim: &Sim) -> Value {
    serde_json::from_str(&std::fs::read_to_string(sim.path("state.json")).unwrap()).unwrap()
}

fn ha1(realm: &str, pw: &str) -> String {
    amt_agent::wsman::digest::md5_hex(&format!("admin:{realm}:{pw}"))
}

#[test]
fn local_ccm_on_every_profile_without_tls_then_deactivate() {
    for name in ["amt11.8", "amt12", "amt15", "amt16.1", "amt18"] {
        let sim = sim_with_state(name, &[], |_| {});
        let dev = sim.device();
        let o = agent_env(
            &["--device", &dev, "--json", "activate", "--local", "--ccm"],
            &[("AMT_PASSWORD", PW)],
        );
        assert_eq!(code(&o), 0, "{name}: {}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["mode"], "CCM");
        let s = state(&sim);
        assert_eq!(s["control_mode"], 1, "{name}");
        assert_eq!(s["provisioning_state"], 2, "{name}");
        assert_eq!(
            s["admin_ha1"],
            ha1(s["digest_realm"].as_str().unwrap(), PW),
            "{name}: the firmware holds admin:realm:password"
        );
        // The new password works for WS-MAN as admin.
        let g = agent_env(
            &[
                "--device",
                &dev,
                "diagnostics",
                "wsman",
                "get",
                "AMT_GeneralSettings",
            ],
            &[("AMT_PASSWORD", PW)],
        );
        assert_eq!(code(&g), 0, "{name}: {}", stderr(&g));
        // Activating again is refused; deactivating (AMTHI, no password) works.
        let again = agent_env(
            &["--device", &dev, "activate", "--local", "--ccm"],
            &[("AMT_PASSWORD", PW)],
        );
        assert_eq!(code(&again), 111);
        let d = agent(&["--device", &dev, "deactivate", "--local"]);
        assert_eq!(code(&d), 0, "{name}: {}", stderr(&d));
        let s = state(&sim);
        assert_eq!(s["control_mode"], 0);
        assert_eq!(s["admin_ha1"], "");
    }
}

#[test]
fn passwords_are_required_strong_and_never_echoed() {
    let sim = sim_with_state("amt16.1", &[], |_| {});
    let dev = sim.device();
    let none = agent(&["--device", &dev, "activate", "--local", "--ccm"]);
    assert_eq!(code(&none), 23, "{}", stderr(&none));
    let weak = agent_env(
        &["--device", &dev, "activate", "--local", "--ccm"],
        &[("AMT_PASSWORD", "password")],
    );
    assert_eq!(code(&weak), 23);
    assert!(stderr(&weak).contains("AMT's rules"));
    let flag = agent(&[
        "--device",
        &dev,
        "-v",
        "activate",
        "--local",
        "--ccm",
        "--password",
        PW,
    ]);
    assert_eq!(code(&flag), 0, "{}", stderr(&flag));
    assert!(
        stderr(&flag).contains("command line"),
        "a warning about the password on the command line"
    );
    assert!(!format!("{}{}", stdout(&flag), stderr(&flag)).contains(PW));
    let bad_combo = agent(&["--device", &dev, "activate", "--local"]);
    assert_eq!(code(&bad_combo), 33);
}

#[test]
fn acm_is_deactivated_over_wsman_with_the_admin_password() {
    let sim = sim_with_state("amt16.1", &[], |p| {
        p["control_mode"] = 2.into();
        p["provisioning_state"] = 2.into();
        p["digest_realm"] = "Digest:0123456789ABCDEF0123456789ABCDEF".into();
        p["admin_ha1"] = ha1("Digest:0123456789ABCDEF0123456789ABCDEF", PW).into();
    });
    let dev = sim.device();
    let wrong = agent_env(
        &["--device", &dev, "deactivate", "--local"],
        &[("AMT_PASSWORD", "Wr0ng!pass")],
    );
    assert_eq!(code(&wrong), 100, "{}", stderr(&wrong));
    assert_eq!(state(&sim)["control_mode"], 2);
    let ok = agent_env(
        &["--device", &dev, "deactivate", "--local"],
        &[("AMT_PASSWORD", PW)],
    );
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    assert_eq!(state(&sim)["control_mode"], 0);
}

#[test]
fn a_device_stuck_in_provisioning_is_recovered_and_the_user_is_told() {
    let sim = sim_with_state("amt16.1", &[], |p| {
        p["control_mode"] = 1.into();
        p["provisioning_state"] = 1.into();
    });
    let dev = sim.device();
    let blocked = agent_env(
        &["--device", &dev, "activate", "--local", "--ccm"],
        &[("AMT_PASSWORD", PW)],
    );
    assert_eq!(code(&blocked), 111);
    let d = agent(&["--device", &dev, "deactivate", "--local"]);
    assert_eq!(code(&d), 0, "{}", stderr(&d));
    assert!(
        stderr(&d).contains("stuck in provisioning"),
        "{}",
        stderr(&d)
    );
    let s = state(&sim);
    assert_eq!(
        (s["control_mode"].clone(), s["provisioning_state"].clone()),
        (0.into(), 0.into())
    );
    // --stop-config on a device that is not in provisioning says so by the firmware's name.
    let o = agent(&["--device", &dev, "activate", "--stop-config"]);
    assert_eq!(code(&o), 10);
    assert!(
        stderr(&o).contains("INVALID_PROVISIONING_STATE (32)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_lost_setup_answer_is_no_failure_when_the_firmware_says_ccm() {
    let sim = sim_with_state("amt16.1", &["--fault", "drop-after=Setup"], |_| {});
    let o = agent_env(
        &["--device", &sim.device(), "activate", "--local", "--ccm"],
        &[("AMT_PASSWORD", PW)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(state(&sim)["control_mode"], 1);
}

#[test]
fn a_disabled_amt_is_enabled_before_activation() {
    let sim = sim_with_state("amt16.1", &[], |p| p["amt_enabled"] = false.into());
    let o = agent_env(
        &["--device", &sim.device(), "activate", "--local", "--ccm"],
        &[("AMT_PASSWORD", PW)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let s = state(&sim);
    assert_eq!(s["amt_enabled"], true);
    assert_eq!(s["control_mode"], 1);
}

#[test]
fn local_ccm_on_amt19_goes_over_tls_verified_against_the_explicit_test_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sim-root.pem");
    let root_s = root.to_str().unwrap().to_string();
    let sim = sim_with_state("amt19", &["--tls-root-out", &root_s], |_| {});
    let dev = sim.device();
    // Without the test root, AMT's chain does not verify: nothing is changed.
    let refused = agent_env(
        &["--device", &dev, "activate", "--local", "--ccm"],
        &[("AMT_PASSWORD", PW)],
    );
    assert_eq!(code(&refused), 71, "{}", stderr(&refused));
    assert!(stderr(&refused).contains("help: "), "{}", stderr(&refused));
    assert_eq!(state(&sim)["control_mode"], 0);
    let ok = agent_env(
        &[
            "--device",
            &dev,
            "activate",
            "--local",
            "--ccm",
            "--amt-ca-file",
            &root_s,
        ],
        &[("AMT_PASSWORD", PW)],
    );
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    assert!(
        stderr(&ok).contains("Committing"),
        "CommitChanges on a TLS-enforced AMT: {}",
        stderr(&ok)
    );
    let s = state(&sim);
    assert_eq!(
        (s["control_mode"].clone(), s["provisioning_state"].clone()),
        (1.into(), 2.into())
    );
}

#[test]
fn the_connection_dropped_after_commit_changes_is_no_failure_when_the_firmware_says_activated() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sim-root.pem");
    let root_s = root.to_str().unwrap().to_string();
    let sim = sim_with_state(
        "amt19",
        &["--tls-root-out", &root_s, "--fault", "drop-after-commit"],
        |_| {},
    );
    let o = agent_env(
        &[
            "--device",
            &sim.device(),
            "--json",
            "activate",
            "--local",
            "--ccm",
            "--amt-ca-file",
            &root_s,
        ],
        &[("AMT_PASSWORD", PW)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["mode"], "CCM", "the mode the firmware reports");
    let s = state(&sim);
    assert_eq!(
        (s["control_mode"].clone(), s["provisioning_state"].clone()),
        (1.into(), 2.into())
    );
}

/// AMT 19's pre-activation chain is bound to this host's CSME through the UPID (rpc-go.md §5.6):
/// checked on the way to CCM, refused before any request when the UPID names another CSME, and
/// only skipped when the UPID cannot be read.
#[test]
fn local_ccm_on_amt19_binds_amts_tls_chain_to_the_upid_csme_id() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sim-root.pem");
    let root_s = root.to_str().unwrap().to_string();
    let ccm = |sim: &Sim| {
        agent_env(
            &[
                "--device",
                &sim.device(),
                "-vv",
                "activate",
                "--local",
                "--ccm",
                "--amt-ca-file",
                &root_s,
            ],
            &[("AMT_PASSWORD", PW)],
        )
    };

    let sim = sim_with_state("amt19", &["--tls-root-out", &root_s], |_| {});
    let ok = ccm(&sim);
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    assert!(
        stderr(&ok).contains("UPID binding checked"),
        "the verifier compared the ROM CA with the UPID CSME id: {}",
        stderr(&ok)
    );
    assert_eq!(state(&sim)["control_mode"], 1);

    // Another CSME's id: the chain is refused in the TLS handshake, before any HTTP request.
    let sim = sim_with_state(
        "amt19",
        &["--tls-root-out", &root_s, "--fault", "upid-mismatch"],
        |_| {},
    );
    let refused = ccm(&sim);
    let err = stderr(&refused);
    assert_eq!(code(&refused), 71, "{err}");
    let rule = "the CSME ROM CA certificate does not match the UPID CSME id";
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains(rule) && !l.contains("DEBUG"))
        .collect();
    assert_eq!(lines.len(), 1, "one line names the rule: {err}");
    assert!(
        lines[0].starts_with("caused by: AMT's TLS certificate on port 16993 was refused"),
        "{err}"
    );
    assert!(err.contains("help: "), "{err}");
    assert!(!err.contains("UPID binding checked"), "{err}");
    let s = state(&sim);
    assert_eq!(
        (
            s["control_mode"].clone(),
            s["provisioning_state"].clone(),
            s["admin_ha1"].clone()
        ),
        (0.into(), 0.into(), "".into()),
        "the device is left as it was"
    );

    // A UPID that cannot be read (here: not provisioned) leaves the chain unbound, and says so.
    let sim = sim_with_state(
        "amt19",
        &[
            "--tls-root-out",
            &root_s,
            "--fault",
            "truncate=UPID_PLATFORM_ID_GET",
        ],
        |_| {},
    );
    let unbound = ccm(&sim);
    let err = stderr(&unbound);
    assert_eq!(code(&unbound), 0, "{err}");
    assert!(
        err.contains("UPID unreadable: AMT's TLS chain is not bound to this CSME"),
        "{err}"
    );
    assert!(!err.contains("UPID binding checked"), "{err}");
    assert_eq!(state(&sim)["control_mode"], 1);
}
