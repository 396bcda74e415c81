//! End to end: `amt-agent configure cira` against a running `amt-sim` (socket, LME/APF) with its
//! state persisted and every WS-MAN request it answered logged (`--wsman-log`): what is written,
//! in which order, that a second run writes nothing, that `--dry-run` writes nothing, that a
//! changed server replaces the old one, and that refusals come before any request.
// The tests drive Linux processes (amt-sim, its Unix socket, signals); the Windows build is
// tested by tests/windows.rs, the .exe under Wine.
#![cfg(unix)]

mod common;

use common::*;
use serde_json::Value;

const PW: &str = "N3w-Admin!pw";
const MPS_PW: &str = "Mps-P@ss1";

struct Amt {
    sim: Sim,
}

fn root_pem() -> String {
    repo_file("tests/fixtures/cira/mps-root.pem")
        .to_str()
        .unwrap()
        .to_string()
}

impl Amt {
    fn start(extra: &[&str]) -> Amt {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("sim.sock");
        let st = dir.path().join("state.json").to_str().unwrap().to_string();
        let log = dir.path().join("wsman.log").to_str().unwrap().to_string();
        let mut args = vec!["--state", st.as_str(), "--wsman-log", log.as_str()];
        args.extend_from_slice(extra);
        Amt {
            sim: Sim::start_in(dir, socket, &args),
        }
    }

    fn activated(extra: &[&str]) -> Amt {
        let amt = Amt::start(extra);
        let o = agent_env(
            &[
                "--device",
                &amt.sim.device(),
                "activate",
                "--local",
                "--ccm",
            ],
            &[("AMT_PASSWORD", PW)],
        );
        assert_eq!(code(&o), 0, "activate: {}", stderr(&o));
        amt
    }

    fn state(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.sim.path("state.json")).unwrap())
            .unwrap()
    }

    fn log_len(&self) -> usize {
        std::fs::read_to_string(self.sim.path("wsman.log"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// `Class.Operation` of every request that can change AMT, from request `from` on.
    fn writes_since(&self, from: usize) -> Vec<String> {
        std::fs::read_to_string(self.sim.path("wsman.log"))
            .unwrap_or_default()
            .lines()
            .skip(from)
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (!["Get", "Enumerate", "Pull"].contains(&f[2]))
                    .then(|| format!("{}.{}", f[1], f[2]))
            })
            .collect()
    }

    fn cira(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let dev = self.sim.device();
        let mut a = vec!["--device", dev.as_str()];
        let (globals, rest): (Vec<&str>, Vec<&str>) =
            args.iter().partition(|a| matches!(**a, "--json" | "-vvv"));
        a.extend(globals);
        a.extend(["configure", "cira"]);
        a.extend(rest);
        let mut e = vec![("AMT_PASSWORD", PW)];
        e.extend_from_slice(env);
        agent_env(&a, &e)
    }
}

fn prop(st: &Value, class: &str, idx: usize, name: &str) -> Option<String> {
    st["instances"][class][idx]
        .as_array()?
        .iter()
        .find(|kv| kv[0] == name)
        .and_then(|kv| kv[1].as_str().map(str::to_string))
}

fn count(st: &Value, class: &str) -> usize {
    st["instances"][class].as_array().map_or(0, Vec::len)
}

const FULL: [&str; 8] = [
    "AMT_PublicKeyManagementService.AddTrustedRootCertificate",
    "AMT_RemoteAccessService.AddMpServer",
    "AMT_RemoteAccessService.AddRemoteAccessPolicyRule",
    "AMT_RemoteAccessService.AddRemoteAccessPolicyRule",
    "AMT_RemoteAccessPolicyAppliesToMPS.Put",
    "AMT_RemoteAccessPolicyAppliesToMPS.Put",
    "AMT_UserInitiatedConnectionService.RequestStateChange",
    "AMT_EnvironmentDetectionSettingData.Put",
];

#[test]
fn cira_configures_the_mps_and_a_second_run_writes_nothing() {
    let amt = Amt::activated(&[]);
    let root = root_pem();
    let args = [
        "--mps-address",
        "mps.example.com",
        "--mps-cert",
        root.as_str(),
        "--env-detection",
        "corp.example.com,Example.NET",
    ];
    let from = amt.log_len();
    let o = amt.cira(&args, &[("MPS_PASSWORD", MPS_PW)]);
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "{out}\n{}", stderr(&o));
    assert_eq!(amt.writes_since(from), FULL);
    assert!(out.contains("cira: 5 setting(s) changed"), "{out}");
    assert!(out.contains("MPS mps.example.com:4433"), "{out}");
    let st = amt.state();
    assert_eq!(
        prop(&st, "AMT_ManagementPresenceRemoteSAP", 0, "AccessInfo").as_deref(),
        Some("mps.example.com")
    );
    assert_eq!(
        prop(&st, "AMT_ManagementPresenceRemoteSAP", 0, "InfoFormat").as_deref(),
        Some("201")
    );
    assert_eq!(
        prop(&st, "AMT_MPSUsernamePassword", 0, "RemoteID").as_deref(),
        Some("admin")
    );
    // AMT holds the given password (the simulator keeps its digest).
    assert!(st["instances"]["AMT_MPSUsernamePassword"][0]
        .as_array()
        .unwrap()
        .iter()
        .any(|kv| kv[1] == amt_agent::sim::amt::secret_digest(MPS_PW)));
    assert_eq!(count(&st, "AMT_RemoteAccessPolicyRule"), 2);
    assert_eq!(
        prop(&st, "AMT_RemoteAccessPolicyAppliesToMPS", 1, "MpsType").as_deref(),
        Some("2")
    );
    assert_eq!(
        prop(&st, "AMT_UserInitiatedConnectionService", 0, "EnabledState").as_deref(),
        Some("32771")
    );
    let domains: Vec<String> = st["instances"]["AMT_EnvironmentDetectionSettingData"][0]
        .as_array()
        .unwrap()
        .iter()
        .filter(|kv| kv[0] == "DetectionStrings")
        .map(|kv| kv[1].as_str().unwrap().to_string())
        .collect();
    assert_eq!(domains, ["corp.example.com", "example.net"]);
    // amtinfo's RAS lines (AMTHI) now name the MPS; inside the enterprise: the DHCP domain
    // (corp.example.com) is a detection domain.
    let ras = agent(&["--device", &amt.sim.device(), "amtinfo", "--ras"]);
    let ras = stdout(&ras);
    assert!(
        ras.contains("RAS MPS Hostname \t: mps.example.com"),
        "{ras}"
    );
    assert!(ras.contains("RAS Network      \t: direct"), "{ras}");

    // The same again, without a password: nothing differs, nothing is written, none is needed.
    let from = amt.log_len();
    let o = amt.cira(
        &["--json"].iter().chain(&args).copied().collect::<Vec<_>>(),
        &[],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        amt.writes_since(from).is_empty(),
        "{:?}",
        amt.writes_since(from)
    );
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["status"], "unchanged");
    assert_eq!(j["command"], "cira");
    assert_eq!(j["settings"]["mpsServers"][0]["address"], "mps.example.com");
    assert_eq!(j["settings"]["mpsServers"][0]["user"], "admin");
    assert_eq!(j["settings"]["mpsRootCertificate"]["trusted"], true);
    assert_eq!(j["settings"]["policies"][0]["periodicIntervalSeconds"], 25);
    let kept: Vec<&str> = j["unchanged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["setting"].as_str().unwrap())
        .collect();
    assert!(kept.contains(&"MPS password"), "{kept:?}");
}

#[test]
fn dry_run_lists_the_calls_with_the_password_hidden_and_writes_nothing() {
    let amt = Amt::activated(&[]);
    let root = root_pem();
    let from = amt.log_len();
    let o = amt.cira(
        &[
            "--mps-address",
            "192.168.0.208",
            "--mps-cert",
            &root,
            "--dry-run",
            "--alert",
        ],
        &[("MPS_PASSWORD", MPS_PW)],
    );
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "{out}\n{}", stderr(&o));
    assert!(amt.writes_since(from).is_empty());
    assert!(out.contains("cira: dry run, nothing sent"), "{out}");
    assert!(
        out.contains("AddMpServer(AccessInfo=192.168.0.208, InfoFormat=3, Port=4433, AuthMethod=2, Username=admin, Password=***, CN=192.168.0.208)"),
        "{out}"
    );
    assert!(
        out.contains("Trigger=1, TunnelLifeTime=0"),
        "the --alert rule: {out}"
    );
    assert_no_secret("dry run", &format!("{out}{}", stderr(&o)), &[MPS_PW]);
    assert_eq!(count(&amt.state(), "AMT_ManagementPresenceRemoteSAP"), 0);
}

#[test]
fn another_server_replaces_the_old_one_rules_first_and_keeps_what_matches() {
    let amt = Amt::activated(&[]);
    let root = root_pem();
    let env = [("MPS_PASSWORD", MPS_PW)];
    let o = amt.cira(
        &["--mps-address", "mps.example.com", "--mps-cert", &root],
        &env,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let generated = prop(
        &amt.state(),
        "AMT_EnvironmentDetectionSettingData",
        0,
        "DetectionStrings",
    )
    .expect("a generated detection domain");
    assert!(
        generated.ends_with(".com") && generated.len() > 30,
        "{generated}"
    );
    let from = amt.log_len();
    let o = amt.cira(
        &[
            "--mps-address",
            "10.0.0.9",
            "--mps-port",
            "8443",
            "--mps-cert",
            &root,
            "--periodic-interval",
            "3600",
        ],
        &env,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        amt.writes_since(from),
        [
            "AMT_RemoteAccessPolicyRule.Delete",
            "AMT_RemoteAccessPolicyRule.Delete",
            "AMT_ManagementPresenceRemoteSAP.Delete",
            "AMT_RemoteAccessService.AddMpServer",
            "AMT_RemoteAccessService.AddRemoteAccessPolicyRule",
            "AMT_RemoteAccessService.AddRemoteAccessPolicyRule",
            "AMT_RemoteAccessPolicyAppliesToMPS.Put",
            "AMT_RemoteAccessPolicyAppliesToMPS.Put",
        ]
    );
    let st = amt.state();
    assert_eq!(count(&st, "AMT_ManagementPresenceRemoteSAP"), 1);
    assert_eq!(
        prop(&st, "AMT_ManagementPresenceRemoteSAP", 0, "CN").as_deref(),
        Some("10.0.0.9")
    );
    assert_eq!(count(&st, "AMT_MPSUsernamePassword"), 1);
    // The generated detection domain stays (no --env-detection).
    assert_eq!(
        prop(
            &st,
            "AMT_EnvironmentDetectionSettingData",
            0,
            "DetectionStrings"
        )
        .as_deref(),
        Some(generated.as_str())
    );
    // --force writes the same server again (to change only its password).
    let from = amt.log_len();
    let o = amt.cira(
        &[
            "--mps-address",
            "10.0.0.9",
            "--mps-port",
            "8443",
            "--mps-cert",
            &root,
            "--periodic-interval",
            "3600",
            "--force",
        ],
        &[("MPS_PASSWORD", "0ther-P@ss")],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(amt
        .writes_since(from)
        .contains(&"AMT_RemoteAccessService.AddMpServer".to_string()));
    assert!(amt.state()["instances"]["AMT_MPSUsernamePassword"][0]
        .as_array()
        .unwrap()
        .iter()
        .any(|kv| kv[1] == amt_agent::sim::amt::secret_digest("0ther-P@ss")));
}

#[test]
fn refusals_come_before_any_request_with_rpc_gos_codes() {
    let root = root_pem();
    // Pre-provisioning: 115, nothing asked of AMT over WS-MAN.
    let fresh = Amt::start(&[]);
    let o = fresh.cira(
        &["--mps-address", "mps.example.com", "--mps-cert", &root],
        &[("MPS_PASSWORD", MPS_PW)],
    );
    assert_eq!(code(&o), 115, "{}", stderr(&o));
    assert!(stderr(&o).contains("help:"));
    assert_eq!(fresh.log_len(), 0);

    let amt = Amt::activated(&[]);
    let from = amt.log_len();
    let server = repo_file("tests/fixtures/cira/mps-server.pem");
    for (args, needle) in [
        (
            vec![
                "--mps-address",
                "https://mps.example.com",
                "--mps-cert",
                &root,
            ],
            "scheme 'https' not allowed",
        ),
        (
            vec!["--mps-address", "mps", "--mps-cert", &root],
            "multi-label",
        ),
        (
            vec![
                "--mps-address",
                "mps.example.com",
                "--mps-cert",
                server.to_str().unwrap(),
            ],
            "not a CA certificate",
        ),
        (
            vec![
                "--mps-address",
                "mps.example.com",
                "--mps-cert",
                &root,
                "--mps-user",
                "ad min",
            ],
            "1–16 letters and digits",
        ),
        (
            vec![
                "--mps-address",
                "mps.example.com",
                "--mps-cert",
                &root,
                "--env-detection",
                "bad domain",
            ],
            "not a DNS domain",
        ),
    ] {
        let o = amt.cira(&args, &[("MPS_PASSWORD", MPS_PW)]);
        assert_eq!(code(&o), 36, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("help:"), "{}", stderr(&o));
    }
    // A password AMT cannot hold, and none at all (no terminal to ask): 36, after the reads only.
    let o = amt.cira(
        &["--mps-address", "mps.example.com", "--mps-cert", &root],
        &[("MPS_PASSWORD", "this-is-17-chars!")],
    );
    assert_eq!(code(&o), 36, "{}", stderr(&o));
    let o = amt.cira(
        &["--mps-address", "mps.example.com", "--mps-cert", &root],
        &[],
    );
    assert_eq!(code(&o), 36, "{}", stderr(&o));
    assert!(stderr(&o).contains("MPS_PASSWORD"), "{}", stderr(&o));
    assert!(
        amt.writes_since(from).is_empty(),
        "{:?}",
        amt.writes_since(from)
    );
}

#[test]
fn rpc_go_v2_spellings_and_a_random_password_work() {
    use base64::Engine;
    let amt = Amt::activated(&[]);
    let pem = std::fs::read(root_pem()).unwrap();
    let der = x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    // v2: -mpsaddress, -mpscert (base64 DER), -envdetection, -generateRandomPassword.
    let o = amt.cira(
        &[
            "-mpsaddress",
            "mps.example.com",
            "-mpscert",
            &b64,
            "-envdetection",
            "corp.example.com",
            "-generateRandomPassword",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let st = amt.state();
    assert_eq!(count(&st, "AMT_ManagementPresenceRemoteSAP"), 1);
    // MPS_CERT carries rpc-go's base64 as well.
    let o = amt.cira(&["--mps-address", "mps.example.com"], &[("MPS_CERT", &b64)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("nothing to change"), "{}", stdout(&o));
}

#[test]
fn a_refusal_by_amt_exits_104_and_says_what_was_applied() {
    // AMT answers AddMpServer with HTTP 500.
    let amt = Amt::activated(&["--fault", "http500=AMT_RemoteAccessService"]);
    let root = root_pem();
    let o = amt.cira(
        &["--mps-address", "mps.example.com", "--mps-cert", &root],
        &[("MPS_PASSWORD", MPS_PW)],
    );
    let err = stderr(&o);
    assert_eq!(code(&o), 104, "{err}");
    assert!(
        err.contains("changing MPS server failed at AMT_RemoteAccessService.AddMpServer"),
        "{err}"
    );
    assert!(
        err.contains("already changed: MPS root certificate"),
        "{err}"
    );
    assert_no_secret("refusal", &format!("{}{err}", stdout(&o)), &[MPS_PW]);
}
