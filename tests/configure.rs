//! End to end: `amt-agent configure <sub>` against a running `amt-sim` (socket, LME/APF), with its
//! state persisted (`--state`) and every WS-MAN request it answered logged (`--wsman-log`), so a
//! test proves what was written, that a second run writes nothing, that `--dry-run` writes
//! nothing, and that a refusal comes before any request.
// The tests drive Linux processes (amt-sim, its Unix socket, signals); the Windows build is
// tested by tests/windows.rs, the .exe under Wine.
#![cfg(unix)]

mod common;

use common::*;
use serde_json::Value;

const PW: &str = "N3w-Admin!pw";

/// A simulator with a state file and a WS-MAN log in its own directory.
struct Amt {
    sim: Sim,
    profile: String,
}

impl Amt {
    fn start(profile: &str) -> Amt {
        Amt::start_with_state(profile, None)
    }

    fn start_with_state(profile: &str, state: Option<&Value>) -> Amt {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("sim.sock");
        let st = dir.path().join("state.json");
        if let Some(s) = state {
            std::fs::write(&st, serde_json::to_vec_pretty(s).unwrap()).unwrap();
        }
        let log = dir.path().join("wsman.log");
        let (st, log) = (
            st.to_str().unwrap().to_string(),
            log.to_str().unwrap().to_string(),
        );
        let sim = Sim::start_in(
            dir,
            socket,
            &[
                "--device-profile",
                profile,
                "--state",
                &st,
                "--wsman-log",
                &log,
            ],
        );
        Amt {
            sim,
            profile: profile.into(),
        }
    }

    fn dev(&self) -> String {
        self.sim.device()
    }

    fn state(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.sim.path("state.json")).unwrap())
            .unwrap()
    }

    /// Every logged request: (user, class, operation, HTTP status).
    fn log(&self) -> Vec<(String, String, String, String)> {
        std::fs::read_to_string(self.sim.path("wsman.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[0].into(), f[1].into(), f[2].into(), f[3].into())
            })
            .collect()
    }

    /// `Class.Operation` of every request that can change AMT, from request `from` on.
    fn writes_since(&self, from: usize) -> Vec<String> {
        const READS: &[&str] = &["Get", "Enumerate", "Pull", "GetLowAccuracyTimeSynch"];
        self.log()[from..]
            .iter()
            .filter(|(_, _, op, _)| !READS.contains(&op.as_str()))
            .map(|(_, c, op, _)| format!("{c}.{op}"))
            .collect()
    }

    /// Stops the simulator, edits its state, and starts it again on the edited state.
    fn restart_with(self, edit: impl FnOnce(&mut Value)) -> Amt {
        let mut state = self.state();
        let profile = self.profile.clone();
        drop(self);
        edit(&mut state);
        Amt::start_with_state(&profile, Some(&state))
    }

    fn configure(&self, args: &[&str]) -> std::process::Output {
        self.configure_env(args, &[("AMT_PASSWORD", PW)])
    }

    fn configure_env(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let dev = self.dev();
        let mut a = vec!["--device", &dev, "configure"];
        a.extend_from_slice(args);
        agent_env(&a, env)
    }

    fn activate_ccm(&self) {
        let o = agent_env(
            &["--device", &self.dev(), "activate", "--local", "--ccm"],
            &[("AMT_PASSWORD", PW)],
        );
        assert_eq!(code(&o), 0, "activate: {}", stderr(&o));
    }
}

fn json_out(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

fn ccm() -> Amt {
    let amt = Amt::start("amt16.1");
    amt.activate_ccm();
    amt
}

/// Activated in CCM by the agent, then switched to ACM in the state file (the admin password and
/// realm stay): local ACM activation has its own tests (tests/acm.rs).
fn acm() -> Amt {
    ccm().restart_with(|s| {
        s["control_mode"] = 2.into();
        s["provisioning_state"] = 2.into();
    })
}

#[test]
fn amt_features_dry_run_then_apply_then_a_second_run_writes_nothing() {
    let amt = ccm();
    let before = amt.log().len();
    let o = amt.configure(&["amt-features", "--kvm", "--sol", "--ider", "--dry-run"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("dry run, nothing sent"), "{text}");
    assert!(
        text.contains("AMT_RedirectionService.RequestStateChange(RequestedState=32771)"),
        "{text}"
    );
    assert!(
        text.contains("CIM_KVMRedirectionSAP.RequestStateChange(RequestedState=2)"),
        "{text}"
    );
    assert_eq!(
        amt.writes_since(before),
        Vec::<String>::new(),
        "--dry-run wrote"
    );
    assert_eq!(
        instance(&amt.state(), "AMT_RedirectionService")["EnabledState"],
        "32768"
    );

    let before = amt.log().len();
    let o = amt.configure(&["--json", "amt-features", "--kvm", "--sol", "--ider"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = json_out(&o);
    assert_eq!(j["command"], "amt-features");
    assert_eq!(j["status"], "changed");
    assert_eq!(j["settings"]["kvm"], true);
    assert_eq!(j["settings"]["userConsent"], "all");
    // RPS's order (rps-protocol.md §5.1 step 6); user consent was already "all".
    assert_eq!(
        amt.writes_since(before),
        [
            "AMT_RedirectionService.RequestStateChange",
            "CIM_KVMRedirectionSAP.RequestStateChange",
            "AMT_RedirectionService.Put"
        ]
    );
    let s = amt.state();
    assert_eq!(
        instance(&s, "AMT_RedirectionService")["EnabledState"],
        "32771"
    );
    assert_eq!(
        instance(&s, "AMT_RedirectionService")["ListenerEnabled"],
        "true"
    );
    assert_eq!(instance(&s, "CIM_KVMRedirectionSAP")["EnabledState"], "2");

    let before = amt.log().len();
    let o = amt.configure(&["--json", "amt-features", "--kvm", "--sol", "--ider"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json_out(&o)["status"], "unchanged");
    assert_eq!(amt.writes_since(before), Vec::<String>::new());
    assert!(
        amt.log().len() > before,
        "the second run did read the state"
    );

    // rpc-go's v2 spelling; a feature not named is turned off.
    let before = amt.log().len();
    let o = amt.configure(&["amtfeatures", "-sol", "-userConsent", "all"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("KVM enabled -> disabled")
            || stdout(&o).contains("KVM: enabled -> disabled"),
        "{}",
        stdout(&o)
    );
    let s = amt.state();
    assert_eq!(
        instance(&s, "AMT_RedirectionService")["EnabledState"],
        "32770"
    );
    assert_eq!(instance(&s, "CIM_KVMRedirectionSAP")["EnabledState"], "3");
    assert_eq!(
        amt.writes_since(before),
        [
            "AMT_RedirectionService.RequestStateChange",
            "CIM_KVMRedirectionSAP.RequestStateChange",
            "AMT_RedirectionService.Put"
        ]
    );
}

#[test]
fn user_consent_below_all_in_ccm_is_refused_before_any_request() {
    let amt = ccm();
    let before = amt.log().len();
    for consent in ["none", "kvm"] {
        let o = amt.configure(&["amt-features", "--kvm", "--user-consent", consent]);
        assert_eq!(code(&o), 107, "{}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains("not allowed in client control mode"), "{e}");
        assert!(e.contains("help: use --user-consent all"), "{e}");
    }
    assert_eq!(
        amt.log().len(),
        before,
        "a request was sent before the refusal"
    );
    assert_eq!(
        instance(&amt.state(), "IPS_OptInService")["OptInRequired"],
        "4294967295"
    );
}

#[test]
fn in_acm_user_consent_none_is_applied_and_kept() {
    let amt = acm();
    let before = amt.log().len();
    let o = amt.configure(&["--json", "amt-features", "--kvm", "--user-consent", "none"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = json_out(&o);
    assert_eq!(j["settings"]["userConsent"], "none");
    assert!(amt
        .writes_since(before)
        .contains(&"IPS_OptInService.Put".to_string()));
    assert_eq!(
        instance(&amt.state(), "IPS_OptInService")["OptInRequired"],
        "0"
    );
    let before = amt.log().len();
    let o = amt.configure(&["amt-features", "--kvm", "--user-consent", "none"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("nothing to change"), "{}", stdout(&o));
    assert_eq!(amt.writes_since(before), Vec::<String>::new());
}

#[test]
fn kvm_disabled_in_mebx_is_refused_with_its_fix() {
    let amt = ccm().restart_with(|s| {
        let list = s["instances"]["IPS_KVMRedirectionSettingData"][0]
            .as_array_mut()
            .unwrap();
        for kv in list.iter_mut() {
            if kv[0] == "EnabledByMEBx" {
                kv[1] = "false".into();
            }
        }
    });
    let before = amt.log().len();
    let o = amt.configure(&["amt-features", "--kvm"]);
    assert_eq!(code(&o), 107, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("help: enable KVM in MEBx"),
        "{}",
        stderr(&o)
    );
    assert_eq!(amt.writes_since(before), Vec::<String>::new());
}

#[test]
fn every_command_that_needs_activation_is_115_before_any_request_or_password() {
    let amt = Amt::start("amt16.1");
    for args in [
        &["amt-features", "--kvm"][..],
        &["amt-password"],
        &["sync-clock"],
        &["hostname"],
        &["proxy", "--list"],
    ] {
        let o = amt.configure_env(args, &[("AMT_NEW_PASSWORD", "Sec0nd!pass")]);
        assert_eq!(code(&o), 115, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("not activated"), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("help: activate it first"),
            "{}",
            stderr(&o)
        );
    }
    let o = amt.configure(&["mebx"]);
    assert_eq!(code(&o), 118, "{}", stderr(&o));
    assert!(amt.log().is_empty(), "requests were sent: {:?}", amt.log());
}

#[test]
fn amt_password_changes_then_only_the_new_one_works_and_a_rerun_writes_nothing() {
    let amt = ccm();
    let new = "Sec0nd!pass";
    // AMT's rules are checked before anything is written.
    let before = amt.log().len();
    let o = amt.configure_env(
        &["amt-password"],
        &[("AMT_PASSWORD", PW), ("AMT_NEW_PASSWORD", "weakpass")],
    );
    assert_eq!(code(&o), 119, "{}", stderr(&o));
    assert!(stderr(&o).contains("help: use 8–32"), "{}", stderr(&o));
    assert_eq!(amt.writes_since(before), Vec::<String>::new());

    let o = amt.configure_env(
        &["--json", "amt-password"],
        &[("AMT_PASSWORD", PW), ("AMT_NEW_PASSWORD", new)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json_out(&o)["settings"]["newPasswordInEffect"], true);
    assert_eq!(
        amt.writes_since(before),
        ["AMT_AuthorizationService.SetAdminAclEntryEx"]
    );
    // The old password is refused now (100), the new one works.
    let old = agent_env(
        &[
            "--device",
            &amt.dev(),
            "diagnostics",
            "wsman",
            "get",
            "AMT_GeneralSettings",
        ],
        &[("AMT_PASSWORD", PW)],
    );
    assert_eq!(code(&old), 100, "{}", stderr(&old));
    let before = amt.log().len();
    let o = amt.configure_env(
        &["amt-password"],
        &[("AMT_PASSWORD", new), ("AMT_NEW_PASSWORD", new)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("nothing to change"), "{}", stdout(&o));
    assert_eq!(amt.writes_since(before), Vec::<String>::new());
}

#[test]
fn a_new_password_comes_from_a_file_checked_like_password_files() {
    let amt = ccm();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("new");
    std::fs::write(&f, "Th1rd!pass\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let fp = f.to_str().unwrap();
    let o = amt.configure(&["amt-password", "--new-amt-password-file", fp]);
    assert_eq!(code(&o), 34, "{}", stderr(&o));
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = amt.configure(&["amt-password", "--new-amt-password-file", fp]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // A value on the command line works, with a warning.
    let o = amt.configure_env(
        &["changeamtpassword", "-newamtpassword", "F0urth!pass"],
        &[("AMT_PASSWORD", "Th1rd!pass")],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("command line"), "{}", stderr(&o));
}

#[test]
fn mebx_in_acm_is_set_and_its_rules_checked_first() {
    let amt = acm();
    let before = amt.log().len();
    let o = amt.configure_env(
        &["mebx"],
        &[("AMT_PASSWORD", PW), ("MEBX_PASSWORD", "short")],
    );
    assert_eq!(code(&o), 118, "{}", stderr(&o));
    assert_eq!(amt.writes_since(before), Vec::<String>::new());
    assert_eq!(amt.state()["mebx_password_set"], false);
    let o = amt.configure_env(
        &["setmebx", "--dry-run"],
        &[("AMT_PASSWORD", PW), ("MEBX_PASSWORD", "Mebx!Pass1")],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("SetMEBxPassword(Password=***)"),
        "{}",
        stdout(&o)
    );
    assert_eq!(amt.writes_since(before), Vec::<String>::new());
    let o = amt.configure_env(
        &["mebx"],
        &[("AMT_PASSWORD", PW), ("MEBX_PASSWORD", "Mebx!Pass1")],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        amt.writes_since(before),
        ["AMT_SetupAndConfigurationService.SetMEBxPassword"]
    );
    assert_eq!(amt.state()["mebx_password_set"], true);
}

#[test]
fn mebx_in_ccm_is_118_before_any_request() {
    let amt = ccm();
    let before = amt.log().len();
    let o = amt.configure_env(
        &["mebx"],
        &[("AMT_PASSWORD", PW), ("MEBX_PASSWORD", "Mebx!Pass1")],
    );
    assert_eq!(code(&o), 118, "{}", stderr(&o));
    assert!(stderr(&o).contains("admin control mode"), "{}", stderr(&o));
    assert_eq!(amt.log().len(), before);
}

#[test]
fn sync_clock_sets_a_drifted_clock_once() {
    let amt = ccm().restart_with(|s| s["clock_offset_secs"] = (-3600).into());
    let before = amt.log().len();
    let o = amt.configure(&["--json", "synctime"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = json_out(&o);
    assert_eq!(j["status"], "changed");
    assert_eq!(j["changes"][0]["current"], "3600 s behind");
    assert!(
        j["settings"]["offsetSeconds"].as_i64().unwrap().abs() <= 1,
        "{j}"
    );
    assert_eq!(
        amt.writes_since(before),
        ["AMT_TimeSynchronizationService.SetHighAccuracyTimeSynch"]
    );
    assert!(amt.state()["clock_offset_secs"].as_i64().unwrap().abs() <= 1);
    let before = amt.log().len();
    let o = amt.configure(&["sync-clock"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("nothing to change"), "{}", stdout(&o));
    assert_eq!(amt.writes_since(before), Vec::<String>::new());
}

#[test]
fn hostname_comes_from_the_os_and_is_idempotent() {
    let amt = ccm();
    let os_host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let os_host = os_host.split('.').next().unwrap().to_string();
    let before = amt.log().len();
    let o = amt.configure(&["--json", "hostname"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json_out(&o)["settings"]["hostName"], os_host.as_str());
    assert_eq!(amt.writes_since(before), ["AMT_GeneralSettings.Put"]);
    assert_eq!(
        instance(&amt.state(), "AMT_GeneralSettings")["HostName"],
        os_host.as_str()
    );
    let before = amt.log().len();
    let o = amt.configure(&["synchostname"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("nothing to change"), "{}", stdout(&o));
    assert_eq!(amt.writes_since(before), Vec::<String>::new());
    // Explicit names; a bad one is refused before anything is sent.
    let o = amt.configure(&[
        "hostname",
        "--hostname",
        "wks-0042",
        "--domain-name",
        "corp.example.com",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let gs = instance(&amt.state(), "AMT_GeneralSettings");
    assert_eq!(
        (gs["HostName"].as_str(), gs["DomainName"].as_str()),
        (Some("wks-0042"), Some("corp.example.com"))
    );
    let before = amt.log().len();
    let o = amt.configure(&["hostname", "--hostname", "bad_name!"]);
    assert_eq!(code(&o), 25, "{}", stderr(&o));
    assert_eq!(amt.log().len(), before);
}

#[test]
fn proxy_add_list_delete_each_once() {
    let amt = ccm();
    let before = amt.log().len();
    let o = amt.configure(&[
        "proxy",
        "--address",
        "proxy.corp.example.com",
        "--port",
        "3128",
        "--network-dns-suffix",
        "corp.example.com",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        amt.writes_since(before),
        ["IPS_HTTPProxyService.AddProxyAccessPoint"]
    );
    let before = amt.log().len();
    let o = amt.configure(&[
        "httpproxy",
        "-address",
        "proxy.corp.example.com",
        "-port",
        "3128",
        "-networkdnssuffix",
        "corp.example.com",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("nothing to change"), "{}", stdout(&o));
    assert_eq!(amt.writes_since(before), Vec::<String>::new());
    // Another port for the same address: delete, then add.
    let o = amt.configure(&[
        "proxy",
        "--address",
        "proxy.corp.example.com",
        "--port",
        "8080",
        "--network-dns-suffix",
        "corp.example.com",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        amt.writes_since(before),
        [
            "IPS_HTTPProxyAccessPoint.Delete",
            "IPS_HTTPProxyService.AddProxyAccessPoint"
        ]
    );
    let o = amt.configure(&["proxy", "--address", "10.0.0.8"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = amt.configure(&["--json", "proxy", "--list"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = json_out(&o);
    assert_eq!(j["status"], "read");
    let aps = j["settings"]["proxyAccessPoints"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(aps.len(), 2, "{j}");
    assert_eq!(aps[0]["address"], "proxy.corp.example.com");
    assert_eq!(aps[0]["port"], 8080);
    assert_eq!(aps[0]["infoFormat"], 201);
    assert_eq!(aps[1]["address"], "10.0.0.8");
    assert_eq!(aps[1]["port"], 80);
    assert_eq!(aps[1]["infoFormat"], 3);
    let before = amt.log().len();
    let o = amt.configure(&["proxy", "--delete", "--address", "10.0.0.8"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        amt.writes_since(before),
        ["IPS_HTTPProxyAccessPoint.Delete"]
    );
    let before = amt.log().len();
    let o = amt.configure(&["proxy", "--delete", "--address", "10.0.0.8"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(amt.writes_since(before), Vec::<String>::new());
    // A bad address is refused before anything is sent.
    let before = amt.log().len();
    let o = amt.configure(&["proxy", "--address", "not a host"]);
    assert_eq!(code(&o), 26, "{}", stderr(&o));
    assert_eq!(amt.log().len(), before);
}

#[test]
fn the_simulator_answers_a_duplicate_proxy_with_2058_as_the_fixture_shows() {
    let amt = ccm();
    let add = |addr: &str| {
        agent_env(
            &[
                "--device",
                &amt.dev(),
                "diagnostics",
                "wsman",
                "invoke",
                "IPS_HTTPProxyService",
                "AddProxyAccessPoint",
                "-a",
                &format!("AccessInfo={addr}"),
                "-a",
                "InfoFormat=201",
                "-a",
                "Port=3128",
                "-a",
                "NetworkDnsSuffix=example.com",
            ],
            &[("AMT_PASSWORD", PW)],
        )
    };
    let o = add("proxy.example.com");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = add("PROXY.example.com");
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("(2058)"), "{}", stderr(&o));
    let o = add("not_a_host!");
    assert!(
        stderr(&o).contains("INVALID_PARAMETER (36)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_simulator_refuses_puts_that_break_the_class_rules() {
    let amt = ccm();
    let put = |class: &str, set: &str| {
        agent_env(
            &[
                "--device",
                &amt.dev(),
                "diagnostics",
                "wsman",
                "put",
                class,
                "--set",
                set,
            ],
            &[("AMT_PASSWORD", PW)],
        )
    };
    for (class, set, fault) in [
        (
            "IPS_OptInService",
            "OptInRequired=5",
            "InvalidRepresentation",
        ),
        ("IPS_OptInService", "OptInRequired=0", "AccessDenied"),
        ("IPS_OptInService", "OptInState=1", "InvalidRepresentation"),
        (
            "IPS_KVMRedirectionSettingData",
            "EnabledByMEBx=false",
            "InvalidRepresentation",
        ),
        (
            "AMT_RedirectionService",
            "ListenerEnabled=yes",
            "InvalidRepresentation",
        ),
        (
            "AMT_RedirectionService",
            "EnabledState=32771",
            "InvalidRepresentation",
        ),
        ("AMT_RedirectionService", "Bogus=1", "InvalidRepresentation"),
        (
            "AMT_GeneralSettings",
            "HostName=bad_name",
            "InvalidRepresentation",
        ),
        (
            "AMT_GeneralSettings",
            "AMTNetworkEnabled=7",
            "InvalidRepresentation",
        ),
    ] {
        let o = put(class, set);
        assert_eq!(code(&o), 101, "{class} {set}: {}", stderr(&o));
        assert!(stderr(&o).contains(fault), "{class} {set}: {}", stderr(&o));
    }
    // Allowed values pass.
    let o = put("IPS_OptInService", "OptInRequired=4294967295");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = put("AMT_GeneralSettings", "HostName=good-name");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn enable_and_disable_amt_in_pre_provisioning_and_refusals() {
    let amt = Amt::start("amt16.1");
    let o = amt.configure(&["--json", "disable-amt"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = json_out(&o);
    assert_eq!(j["status"], "changed");
    assert_eq!(
        j["changes"][0]["calls"][0],
        "WATCHDOG.SetAmtOperationalState(0)"
    );
    assert_eq!(amt.state()["amt_enabled"], false);
    let o = amt.configure(&["--json", "disable-operational-state"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json_out(&o)["status"], "unchanged");
    let o = amt.configure(&["enable-amt", "--dry-run"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        amt.state()["amt_enabled"],
        false,
        "--dry-run changed the state"
    );
    let o = amt.configure(&["enable-op-state"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(amt.state()["amt_enabled"], true);
    assert!(amt.log().is_empty(), "no WS-MAN for the operational state");
    // Older MEs lack SetAmtOperationalState.
    let old = Amt::start("amt12");
    let o = old.configure(&["disable-amt"]);
    assert_eq!(code(&o), 120, "{}", stderr(&o));
    assert!(stderr(&o).contains("ME 16.1"), "{}", stderr(&o));
    // Activated: refused before anything is sent.
    let amt = ccm();
    let o = amt.configure(&["disable-amt"]);
    assert_eq!(code(&o), 120, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("help: deactivate first"),
        "{}",
        stderr(&o)
    );
    assert_eq!(amt.state()["amt_enabled"], true);
}

/// Two certificates in AMT's store, as the go-wsman-messages pull fixture has them.
fn with_certs(amt: Amt) -> Amt {
    amt.restart_with(|s| {
        let cert = |handle: &str, cn: &str, root: &str| {
            serde_json::json!([
                ["ElementName", "Intel(r) AMT Certificate"],
                [
                    "InstanceID",
                    format!("Intel(r) AMT Certificate: Handle: {handle}")
                ],
                ["Issuer", "C=unknown,O=unknown,CN=MPSRoot-0af1d5"],
                ["Subject", format!("C=unknown,O=unknown,CN={cn}")],
                ["TrustedRootCertficate", root],
                ["X509Certificate", "MIIBAA=="],
            ])
        };
        s["instances"]["AMT_PublicKeyCertificate"] = serde_json::json!([
            cert("0", "MPSRoot-0af1d5", "true"),
            cert("1", "wks-tls", "false")
        ]);
    })
}

#[test]
fn amtinfo_user_cert_shows_amts_certificates_as_rpc_go_v2() {
    let amt = with_certs(ccm());
    let dev = amt.dev();
    let o = agent_env(
        &["--device", &dev, "amtinfo", "-userCert"],
        &[("AMT_PASSWORD", PW)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let t = stdout(&o);
    assert!(
        t.contains("---Public Key Certs---\nMPSRoot-0af1d5  (TrustedRoot)\nwks-tls\n"),
        "{t}"
    );
    let o = agent_env(
        &["--device", &dev, "amtinfo", "--user-cert", "--json"],
        &[("AMT_PASSWORD", PW)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = json_out(&o);
    let c = &j["publicKeyCerts"];
    assert_eq!(c["MPSRoot-0af1d5"]["TrustedRootCertficate"], true);
    assert_eq!(
        c["wks-tls"]["InstanceID"],
        "Intel(r) AMT Certificate: Handle: 1"
    );
    assert_eq!(c["wks-tls"]["Subject"], "C=unknown,O=unknown,CN=wks-tls");
    // v2: -cert with a password shows them too; without one it does not.
    let o = agent_env(
        &["--device", &dev, "amtinfo", "-cert"],
        &[("AMT_PASSWORD", PW)],
    );
    assert!(
        stdout(&o).contains("---Public Key Certs---"),
        "{}",
        stdout(&o)
    );
    let o = agent(&["--device", &dev, "amtinfo", "-cert"]);
    assert!(!stdout(&o).contains("Public Key Certs"), "{}", stdout(&o));
}

#[test]
fn amtinfo_user_cert_on_a_pre_provisioned_device_warns_and_skips() {
    let amt = Amt::start("amt16.1");
    let o = agent(&["--device", &amt.dev(), "amtinfo", "--user-cert"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o)
            .contains("Device is in pre-provisioning mode. User certificates are not available"),
        "{}",
        stderr(&o)
    );
    assert!(!stdout(&o).contains("Public Key Certs"));
    // An activated device with no certificate.
    let amt = ccm();
    let o = agent_env(
        &["--device", &amt.dev(), "amtinfo", "--user-cert"],
        &[("AMT_PASSWORD", PW)],
    );
    assert!(
        stdout(&o).contains("---No Public Key Certs Found---"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_write_the_firmware_refuses_exits_with_the_commands_code_and_names_the_call() {
    // AMT holds as many proxies as it takes (8 in the simulator): the ninth is MAX_LIMIT_REACHED.
    let amt = ccm().restart_with(|s| {
        let aps: Vec<Value> = (0..8)
            .map(|n| {
                serde_json::json!([
                    ["AccessInfo", format!("p{n}.example.com")],
                    ["InfoFormat", "201"],
                    ["Name", format!("Intel(r) ME:HTTP Proxy Access Point {n}")],
                    ["NetworkDnsSuffix", ""],
                    ["Port", "80"],
                ])
            })
            .collect();
        s["instances"]["IPS_HTTPProxyAccessPoint"] = Value::Array(aps);
    });
    let o = amt.configure(&["--json", "proxy", "--address", "p9.example.com"]);
    assert_eq!(code(&o), 120, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.starts_with("error: proxy: changing proxy p9.example.com failed at IPS_HTTPProxyService.AddProxyAccessPoint("), "{e}");
    assert!(e.contains("MAX_LIMIT_REACHED (23)"), "{e}");
    assert!(e.contains("state: "), "{e}");
    assert!(e.contains("help: "), "{e}");
    let j = json_out(&o);
    assert_eq!(j["exitCode"], 120);
    assert_eq!(j["exitName"], "UnableToConfigure");
}

#[test]
fn an_answer_cut_during_a_write_keeps_the_transport_code() {
    let amt = ccm();
    let state = amt.state();
    let profile = amt.profile.clone();
    drop(amt);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("state.json");
    std::fs::write(&st, serde_json::to_vec(&state).unwrap()).unwrap();
    let socket = dir.path().join("sim.sock");
    let stp = st.to_str().unwrap().to_string();
    let sim = Sim::start_in(
        dir,
        socket,
        &[
            "--device-profile",
            &profile,
            "--state",
            &stp,
            "--fault",
            "drop-after=AddProxyAccessPoint",
        ],
    );
    let o = agent_env(
        &[
            "--device",
            &sim.device(),
            "configure",
            "proxy",
            "--address",
            "p.example.com",
            "--request-timeout",
            "5s",
        ],
        &[("AMT_PASSWORD", PW)],
    );
    let e = stderr(&o);
    // Not the command's 120: the answer was cut (the client's 101 for a broken HTTP message), and
    // the error says the change may be partly applied.
    assert_eq!(code(&o), 101, "{e}");
    assert!(e.contains("connection closed"), "{e}");
    assert!(e.contains("may be partly applied"), "{e}");
    assert!(e.contains("help:"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn configure_works_over_tls_on_firmware_that_enforces_it() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("sim.sock");
    let root = dir.path().join("root.pem");
    let log = dir.path().join("wsman.log");
    let (rootp, logp) = (
        root.to_str().unwrap().to_string(),
        log.to_str().unwrap().to_string(),
    );
    let sim = Sim::start_in(
        dir,
        socket,
        &[
            "--device-profile",
            "amt19",
            "--tls-root-out",
            &rootp,
            "--wsman-log",
            &logp,
        ],
    );
    let dev = sim.device();
    let env = [("AMT_PASSWORD", PW)];
    let o = agent_env(
        &[
            "--device",
            &dev,
            "activate",
            "--local",
            "--ccm",
            "--amt-ca-file",
            &rootp,
        ],
        &env,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for _ in 0..2 {
        let o = agent_env(
            &[
                "--device",
                &dev,
                "--json",
                "configure",
                "amt-features",
                "--kvm",
                "--amt-ca-file",
                &rootp,
            ],
            &env,
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(json_out(&o)["settings"]["kvm"], true);
    }
    let writes: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("RequestStateChange"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        writes.len(),
        1,
        "one KVM change, none on the second run: {writes:?}"
    );
}
