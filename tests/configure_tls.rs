//! End to end: `amt-agent configure tls` against a running `amt-sim` over LME/APF and over its
//! LMS-like listener, then every kind of command afterwards over TLS on port 16993 pinned to the
//! certificate the agent installed: amtinfo (its WS-MAN part), diagnostics wsman, another
//! configure subcommand, deactivation. The simulator logs every WS-MAN request (`--wsman-log`),
//! so a test proves what was written, that a second run writes nothing and that `--dry-run`
//! writes nothing; its state file shows what the firmware holds.
// The tests drive Linux processes (amt-sim, its Unix socket, signals); the Windows build is
// tested by tests/windows.rs, the .exe under Wine.
#![cfg(unix)]

mod common;

use common::*;
use serde_json::Value;

const PW: &str = "N3w-Admin!pw";
const CA_KEY_PW: &str = "Corp-CA-key-pw1";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A simulator (state file, WS-MAN log, an LMS-like listener) and the agent's pin directory.
struct Amt {
    sim: Sim,
    lms_port: u16,
    pins: tempfile::TempDir,
    /// `--lms never` (LME/APF) or `--lms only` on the listener.
    via_lms: bool,
}

impl Amt {
    fn start(profile: &str, via_lms: bool) -> Amt {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("sim.sock");
        let st = dir.path().join("state.json").display().to_string();
        let log = dir.path().join("wsman.log").display().to_string();
        let lms_port = free_port();
        let lms = format!("127.0.0.1:{lms_port}");
        let root = dir.path().join("root.pem").display().to_string();
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
                "--lms-listen",
                &lms,
                "--tls-root-out",
                &root,
            ],
        );
        Amt {
            sim,
            lms_port,
            pins: tempfile::tempdir().unwrap(),
            via_lms,
        }
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
        const READS: &[&str] = &["Get", "Enumerate", "Pull"];
        std::fs::read_to_string(self.sim.path("wsman.log"))
            .unwrap_or_default()
            .lines()
            .skip(from)
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (!READS.contains(&f[2])).then(|| format!("{}.{}", f[1], f[2]))
            })
            .collect()
    }

    /// The route, and the simulator's test root for its factory TLS chain (AMT 19).
    fn route_args(&self) -> Vec<String> {
        let root = vec![
            "--amt-ca-file".to_string(),
            self.sim.path("root.pem").display().to_string(),
        ];
        let route = if self.via_lms {
            vec![
                "--lms".into(),
                "only".into(),
                "--lms-port".into(),
                self.lms_port.to_string(),
            ]
        } else {
            vec!["--lms".into(), "never".into()]
        };
        [route, root].concat()
    }

    /// `amt-agent --device … ARGS ROUTE` with the AMT password and this test's pin directory.
    fn agent(&self, args: &[&str]) -> std::process::Output {
        self.agent_env(args, &[])
    }

    fn agent_env(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let dev = self.sim.device();
        let route = self.route_args();
        let mut a: Vec<&str> = vec!["--device", &dev];
        a.extend_from_slice(args);
        a.extend(route.iter().map(String::as_str));
        let pins = self.pins.path().display().to_string();
        let mut e: Vec<(&str, &str)> = vec![("AMT_PASSWORD", PW), ("AMT_AGENT_TLS_PIN_DIR", &pins)];
        e.extend_from_slice(env);
        agent_env(&a, &e)
    }

    fn ok(&self, args: &[&str]) -> std::process::Output {
        let o = self.agent(args);
        assert_eq!(code(&o), 0, "{args:?}: {}\n{}", stdout(&o), stderr(&o));
        o
    }

    fn activate_ccm(&self) {
        self.ok(&["activate", "--local", "--ccm"]);
    }

    /// Stops the simulator, edits its state file, and starts it again on it (same route and pin
    /// directory; a new LMS port).
    fn restart_with(self, edit: impl FnOnce(&mut Value)) -> Amt {
        self.restart_with_faults(edit, &[])
    }

    /// As [`Amt::restart_with`], the simulator started with `faults` (`--fault`).
    fn restart_with_faults(self, edit: impl FnOnce(&mut Value), faults: &[&str]) -> Amt {
        let mut st = self.state();
        edit(&mut st);
        let (pins, via_lms) = (self.pins, self.via_lms);
        drop(self.sim);
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        std::fs::write(&state, st.to_string()).unwrap();
        let lms_port = free_port();
        let lms = format!("127.0.0.1:{lms_port}");
        let socket = dir.path().join("sim.sock");
        let st_arg = state.display().to_string();
        let log = dir.path().join("wsman.log").display().to_string();
        let mut args = vec![
            "--state",
            st_arg.as_str(),
            "--lms-listen",
            lms.as_str(),
            "--wsman-log",
            log.as_str(),
        ];
        for f in faults {
            args.extend(["--fault", f]);
        }
        let sim = Sim::start_in(dir, socket, &args);
        Amt {
            sim,
            lms_port,
            pins,
            via_lms,
        }
    }

    fn pin_files(&self) -> Vec<String> {
        std::fs::read_dir(self.pins.path())
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// stderr without the terminal colours of the text log format.
fn log_text(o: &std::process::Output) -> String {
    let e = stderr(o);
    let mut out = String::with_capacity(e.len());
    let mut chars = e.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn json_out(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

/// An instance of `class` in the state file whose InstanceID is `id`, as a map.
fn instance(state: &Value, class: &str, id: &str) -> serde_json::Map<String, Value> {
    state["instances"][class]
        .as_array()
        .unwrap_or_else(|| panic!("no {class} in the state"))
        .iter()
        .map(|i| {
            i.as_array()
                .unwrap()
                .iter()
                .map(|kv| (kv[0].as_str().unwrap().to_string(), kv[1].clone()))
                .collect::<serde_json::Map<_, _>>()
        })
        .find(|m| m["InstanceID"] == id)
        .unwrap_or_else(|| panic!("no {class} {id}"))
}

/// The full story on one route: configure tls, a second run that writes nothing, then every
/// command over TLS pinned to the installed certificate, a plain connection refused, and a
/// deactivation that forgets the pin.
fn tls_then_everything_works(via_lms: bool) {
    let amt = Amt::start("amt16.1", via_lms);
    amt.activate_ccm();
    let before = amt.log_len();
    let o = amt.ok(&["--json", "configure", "tls", "--delay", "0"]);
    let j = json_out(&o);
    assert_eq!(j["status"], "changed", "{j}");
    assert_eq!(j["settings"]["mode"], "Server");
    assert_eq!(j["settings"]["local"]["acceptNonSecureConnections"], false);
    assert_eq!(j["settings"]["certificate"]["pinned"], true);
    let writes = amt.writes_since(before);
    assert_eq!(
        writes,
        [
            "AMT_PublicKeyManagementService.GenerateKeyPair",
            "AMT_PublicKeyManagementService.AddCertificate",
            "AMT_TLSCredentialContext.Create",
            "AMT_TLSSettingData.Put",
            "AMT_TLSSettingData.Put",
            "AMT_SetupAndConfigurationService.CommitChanges",
        ],
        "the calls of configure tls"
    );
    // The firmware holds the certificate the pin names, bound and in effect.
    let st = amt.state();
    let sha = j["settings"]["certificate"]["sha256"].as_str().unwrap();
    assert_eq!(st["tls_in_effect"]["local"]["enabled"], true);
    assert_eq!(st["tls_in_effect"]["local"]["accept_non_secure"], false);
    let cert_id = st["tls_in_effect"]["certificate"].as_str().unwrap();
    let cert = instance(&st, "AMT_PublicKeyCertificate", cert_id);
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(cert["X509Certificate"].as_str().unwrap())
        .unwrap();
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(hex, sha);
    assert_eq!(amt.pin_files().len(), 1, "{:?}", amt.pin_files());

    // Idempotence: a second run changes nothing and writes nothing.
    let before = amt.log_len();
    let o = amt.ok(&["--json", "configure", "tls", "--delay", "0"]);
    assert_eq!(json_out(&o)["status"], "unchanged");
    assert_eq!(amt.writes_since(before), Vec::<String>::new());

    // Every command now talks TLS to 16993, verifying the pinned certificate.
    let o = amt.ok(&["-vv", "diagnostics", "wsman", "get", "AMT_GeneralSettings"]);
    assert!(stdout(&o).contains("DigestRealm"), "{}", stdout(&o));
    let log = log_text(&o);
    assert!(
        log.contains("port=16993 tls=true"),
        "diagnostics over 16993: {log}"
    );
    assert!(log.contains("pinned to its certificate"), "{log}");
    let o = amt.ok(&["--json", "amtinfo", "--user-cert"]);
    let certs = json_out(&o)["publicKeyCerts"].to_string();
    assert!(
        certs.contains(cert_id),
        "amtinfo --userCert over TLS: {certs}"
    );
    let o = amt.ok(&["--json", "configure", "amt-features", "--kvm", "--sol"]);
    assert_eq!(json_out(&o)["command"], "amt-features");
    let o = amt.ok(&["configure", "sync-clock"]);
    assert!(stdout(&o).contains("sync-clock"), "{}", stdout(&o));

    // Plain 16992 is refused now (mode Server closes it on the local interface too).
    let dev = amt.sim.device();
    let route = amt.route_args();
    let mut a: Vec<&str> = vec![
        "--device",
        &dev,
        "diagnostics",
        "wsman",
        "get",
        "AMT_GeneralSettings",
    ];
    a.extend(route.iter().map(String::as_str));
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().display().to_string();
    let o = agent_env(&a, &[("AMT_PASSWORD", PW), ("AMT_AGENT_TLS_PIN_DIR", &dir)]);
    assert_ne!(code(&o), 0, "plain HTTP must be refused: {}", stdout(&o));

    // Deactivation (CCM over AMTHI) forgets the pin; plain HTTP works again after activation.
    amt.ok(&["deactivate", "--local"]);
    assert!(amt.pin_files().is_empty(), "{:?}", amt.pin_files());
    amt.activate_ccm();
    amt.ok(&["diagnostics", "wsman", "get", "AMT_GeneralSettings"]);
}

#[test]
fn tls_over_lme_then_every_command_over_16993() {
    tls_then_everything_works(false);
}

#[test]
fn tls_over_lms_then_every_command_over_16993() {
    tls_then_everything_works(true);
}

/// An ACM deactivation is WS-MAN (`Unprovision` as admin): after configure tls it goes over
/// TLS to 16993, pinned, and the pin goes with the activation.
#[test]
fn acm_deactivation_after_tls_goes_over_16993_and_forgets_the_pin() {
    let amt = Amt::start("amt16.1", true);
    amt.activate_ccm();
    amt.ok(&["configure", "tls", "--delay", "0"]);
    // The same firmware in ACM: local ACM activation has its own tests (tests/acm.rs).
    let amt = amt.restart_with(|st| st["control_mode"] = 2.into());
    let o = amt.ok(&["-vv", "deactivate", "--local"]);
    let log = log_text(&o);
    assert!(log.contains("port=16993 tls=true"), "{log}");
    assert!(log.contains("its TLS pin is removed"), "{log}");
    assert!(amt.pin_files().is_empty(), "{:?}", amt.pin_files());
    assert_eq!(amt.state()["control_mode"], 0);
}

#[test]
fn dry_run_writes_nothing_and_names_every_call() {
    let amt = Amt::start("amt16.1", false);
    amt.activate_ccm();
    let before = amt.log_len();
    let o = amt.ok(&["configure", "tls", "--mode", "ServerAndNonTLS", "--dry-run"]);
    let out = stdout(&o);
    for call in [
        "AMT_PublicKeyManagementService.GenerateKeyPair(KeyAlgorithm=0, KeyLength=2048)",
        "AddCertificate(CertificateBlob=<a certificate for the new key",
        "AMT_TLSCredentialContext.Create(ElementInContext=<the new certificate>)",
        "AMT_TLSSettingData.Put(InstanceID=Intel(r) AMT 802.3 TLS Settings",
        "AMT_SetupAndConfigurationService.CommitChanges()",
    ] {
        assert!(out.contains(call), "missing {call}: {out}");
    }
    assert_eq!(amt.writes_since(before), Vec::<String>::new());
    assert!(amt.pin_files().is_empty());
}

#[test]
fn refusals_come_before_any_write_with_105() {
    let amt = Amt::start("amt16.1", false);
    // Not activated: 115 before a password is asked or anything is sent.
    let o = amt.agent(&["configure", "tls"]);
    assert_eq!(code(&o), 115, "{}", stderr(&o));
    amt.activate_ccm();
    let before = amt.log_len();
    let o = amt.agent(&["configure", "tls", "--mode", "Mutual"]);
    assert_eq!(code(&o), 105, "{}", stderr(&o));
    assert!(stderr(&o).contains("trusted root"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("help: pass --ca-cert"),
        "{}",
        stderr(&o)
    );
    let ca = repo_file("tests/fixtures/tls-ca");
    let f = |n: &str| ca.join(n).display().to_string();
    let o = amt.agent(&[
        "configure",
        "tls",
        "--ca-cert",
        &f("ec-ca.pem"),
        "--ca-key",
        &f("ec-ca.enc.key"),
    ]);
    assert_eq!(code(&o), 105, "{}", stderr(&o));
    assert!(stderr(&o).contains("TLS_CA_KEY_PASSWORD"), "{}", stderr(&o));
    let o = amt.agent_env(
        &[
            "configure",
            "tls",
            "--ca-cert",
            &f("ec-ca.pem"),
            "--ca-key",
            &f("ec-ca.enc.key"),
        ],
        &[("TLS_CA_KEY_PASSWORD", "not-it")],
    );
    assert_eq!(code(&o), 105, "{}", stderr(&o));
    let o = amt.agent(&[
        "configure",
        "tls",
        "--ca-cert",
        &f("not-a-ca.pem"),
        "--ca-key",
        &f("rsa-ca.key"),
    ]);
    assert_eq!(code(&o), 105, "{}", stderr(&o));
    assert!(stderr(&o).contains("not a CA"), "{}", stderr(&o));
    let o = amt.agent(&[
        "configure",
        "tls",
        "--ca-cert",
        &f("ec-ca.pem"),
        "--ca-key",
        &f("rsa-ca.key"),
    ]);
    assert_eq!(code(&o), 105, "{}", stderr(&o));
    assert!(stderr(&o).contains("does not belong"), "{}", stderr(&o));
    assert_eq!(amt.writes_since(before), Vec::<String>::new());
}

#[test]
fn mutual_with_the_admins_ca_then_server_then_none() {
    let amt = Amt::start("amt16.1", false);
    amt.activate_ccm();
    let ca = repo_file("tests/fixtures/tls-ca");
    let f = |n: &str| ca.join(n).display().to_string();
    let (cert, key) = (f("ec-ca.pem"), f("ec-ca.enc.key"));
    let mutual_with_ec_ca = || {
        amt.agent_env(
            &[
                "--json",
                "configure",
                "tls",
                "--mode",
                "MutualAndNonTLS",
                "--delay",
                "0",
                "--ca-cert",
                &cert,
                "--ca-key",
                &key,
            ],
            &[("TLS_CA_KEY_PASSWORD", CA_KEY_PW)],
        )
    };
    let before = amt.log_len();
    let o = mutual_with_ec_ca();
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let j = json_out(&o);
    assert_eq!(j["settings"]["mode"], "MutualAndNonTLS", "{j}");
    assert_eq!(j["settings"]["remote"]["mutualAuthentication"], true);
    assert_eq!(j["settings"]["local"]["mutualAuthentication"], false);
    assert!(amt.writes_since(before)[0].ends_with("AddTrustedRootCertificate"));
    // The certificate AMT serves is signed by the admin's CA.
    let st = amt.state();
    let id = st["tls_in_effect"]["certificate"].as_str().unwrap();
    let cert = instance(&st, "AMT_PublicKeyCertificate", id);
    assert!(
        cert["Issuer"]
            .as_str()
            .unwrap()
            .contains("Test TLS CA (EC)"),
        "{cert:?}"
    );
    // The same CA again: nothing to change (the bound certificate is pinned and issued by it).
    let o = mutual_with_ec_ca();
    assert_eq!(json_out(&o)["status"], "unchanged", "{}", stderr(&o));
    // Another CA (RSA, PKCS#1 key): a new certificate replaces the old one, which is deleted.
    let o = amt.ok(&[
        "--json",
        "configure",
        "tls",
        "--mode",
        "Server",
        "--delay",
        "0",
        "--ca-cert",
        &f("rsa-ca.pem"),
        "--ca-key",
        &f("rsa-ca.key"),
    ]);
    assert_eq!(json_out(&o)["settings"]["mode"], "Server");
    let st = amt.state();
    let leaves: Vec<String> = st["instances"]["AMT_PublicKeyCertificate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .filter(|c| c.contains(r#"["TrustedRootCertficate","false"]"#))
        .collect();
    assert_eq!(
        leaves.len(),
        1,
        "the replaced certificate is deleted: {leaves:?}"
    );
    assert!(!leaves[0].contains(&format!(r#""{id}""#)), "{leaves:?}");
    assert_eq!(
        st["instances"]["AMT_PublicPrivateKeyPair"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "and its key pair"
    );
    // None: TLS off on both interfaces, the pin forgotten, plain HTTP again.
    let o = amt.ok(&[
        "--json",
        "configure",
        "tls",
        "--mode",
        "None",
        "--delay",
        "0",
    ]);
    let j = json_out(&o);
    assert_eq!(j["settings"]["mode"], "None", "{j}");
    assert_eq!(j["settings"]["local"]["enabled"], false);
    assert!(amt.pin_files().is_empty());
    let o = amt.ok(&["-vv", "diagnostics", "wsman", "get", "AMT_GeneralSettings"]);
    assert!(
        log_text(&o).contains("port=16992 tls=false"),
        "{}",
        log_text(&o)
    );
}

#[test]
fn a_different_certificate_on_16993_is_refused() {
    let amt = Amt::start("amt16.1", true);
    amt.activate_ccm();
    amt.ok(&["configure", "tls", "--delay", "0"]);
    // Someone else's certificate in the pin's place: the agent refuses AMT's (exit 71).
    let file = amt.pins.path().join(&amt.pin_files()[0]);
    let mut pin: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    pin["sha256"] = "00".repeat(32).into();
    std::fs::write(&file, pin.to_string()).unwrap();
    let o = amt.agent(&["diagnostics", "wsman", "get", "AMT_GeneralSettings"]);
    assert_eq!(code(&o), 71, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("another certificate than the one configure tls installed"),
        "{}",
        stderr(&o)
    );
}

/// TLS turned off behind the agent's back (here: the firmware's state edited): the pinned session
/// cannot reach 16993 and the error says how to recover, over LME and over LMS.
#[test]
fn a_stale_pin_is_a_clear_error_with_the_way_out() {
    for via_lms in [false, true] {
        let amt = Amt::start("amt16.1", via_lms);
        amt.activate_ccm();
        amt.ok(&["configure", "tls", "--delay", "0"]);
        let amt = amt.restart_with(|st| st["tls_in_effect"] = Value::Null);
        let o = amt.agent(&["diagnostics", "wsman", "get", "AMT_GeneralSettings"]);
        assert_eq!(code(&o), 71, "lms {via_lms}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("remove the pin file amt-tls-"),
            "lms {via_lms}: {}",
            stderr(&o)
        );
        // The way out works: without the pin, plain 16992 again.
        for f in amt.pin_files() {
            std::fs::remove_file(amt.pins.path().join(f)).unwrap();
        }
        amt.ok(&["diagnostics", "wsman", "get", "AMT_GeneralSettings"]);
    }
}

/// CommitChanges took effect but its answer was lost: AMT serves only 16993 with the new
/// certificate, which was recorded as a pending pin first. The next command finds AMT there,
/// verifies it by that pin and keeps it as the pin; configure tls then has nothing to change.
#[test]
fn a_commit_whose_answer_was_lost_is_found_by_its_pending_pin() {
    let amt = Amt::start("amt16.1", false);
    amt.activate_ccm();
    let amt = amt.restart_with_faults(|_| {}, &["drop-after=CommitChanges"]);
    let o = amt.agent(&["configure", "tls", "--delay", "0"]);
    assert_ne!(code(&o), 0, "{}", stderr(&o));
    let pending: Vec<String> = amt.pin_files();
    assert!(
        pending.len() == 1 && pending[0].ends_with(".pending.json"),
        "{pending:?}"
    );
    let amt = amt.restart_with(|_| {});
    amt.ok(&["diagnostics", "wsman", "get", "AMT_GeneralSettings"]);
    let pins = amt.pin_files();
    assert!(pins.len() == 1 && !pins[0].contains("pending"), "{pins:?}");
    let n = amt.log_len();
    assert!(n > 0, "the restarted simulator logs its requests");
    let o = amt.ok(&["--json", "configure", "tls", "--delay", "0"]);
    assert_eq!(json_out(&o)["status"], "unchanged", "{}", stdout(&o));
    assert!(amt.log_len() > n);
    assert_eq!(amt.writes_since(n), Vec::<String>::new());
}

#[test]
fn amt19_keeps_tls_on_locally_and_refuses_none() {
    let amt = Amt::start("amt19", false);
    amt.activate_ccm();
    let o = amt.agent(&["configure", "tls", "--mode", "None"]);
    assert_eq!(code(&o), 105, "{}", stderr(&o));
    assert!(stderr(&o).contains("enforces TLS"), "{}", stderr(&o));
    let o = amt.ok(&[
        "--json",
        "configure",
        "tls",
        "--mode",
        "ServerAndNonTLS",
        "--delay",
        "0",
    ]);
    let j = json_out(&o);
    assert_eq!(
        j["settings"]["remote"]["acceptNonSecureConnections"], true,
        "{j}"
    );
    assert_eq!(
        j["settings"]["local"]["acceptNonSecureConnections"], false,
        "{j}"
    );
    // AMT 19 now presents the installed certificate instead of its self-signed one.
    let o = amt.ok(&["-vv", "diagnostics", "wsman", "get", "AMT_GeneralSettings"]);
    assert!(
        stderr(&o).contains("pinned to its certificate"),
        "{}",
        stderr(&o)
    );
    amt.ok(&["configure", "sync-clock"]);
}
