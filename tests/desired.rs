//! End to end: `amt-agent profile check`, `plan` and `apply` against a running `amt-sim` with its
//! state persisted (`--state`) and every authenticated WS-MAN request logged (`--wsman-log`):
//! apply from scratch (CCM and ACM), a second apply that writes nothing, drift made with
//! `diagnostics wsman put` that plan reports exactly and apply fixes, applies interrupted at
//! every HTTP request, after a write took effect, by an ME reset and by killing the agent (each
//! finished by the next apply), rpc-go v3 plain and encrypted profiles, and bad profiles.
// The tests drive Linux processes (amt-sim, its Unix socket, signals); the Windows build is
// tested by tests/windows.rs, the .exe under Wine.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const PW: &str = "N3w-Admin!pw";

/// A simulator (state file, WS-MAN log) and an agent data directory, in one temporary folder.
struct Amt {
    sim: Option<Sim>,
    dir: PathBuf,
    data: tempfile::TempDir,
    profile: String,
}

impl Amt {
    fn start(profile: &str) -> Amt {
        Amt::start_with(profile, None, &[])
    }

    fn start_with(profile: &str, state: Option<&Value>, faults: &[&str]) -> Amt {
        let data = tempfile::tempdir().unwrap();
        let mut a = Amt {
            sim: None,
            dir: PathBuf::new(),
            data,
            profile: profile.into(),
        };
        a.boot(state, faults);
        a
    }

    /// (Re)starts the simulator on `state` (or a fresh profile) with `faults`.
    fn boot(&mut self, state: Option<&Value>, faults: &[&str]) {
        self.sim = None;
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("sim.sock");
        let st = dir.path().join("state.json");
        if let Some(s) = state {
            std::fs::write(&st, serde_json::to_vec_pretty(s).unwrap()).unwrap();
        }
        let log = dir.path().join("wsman.log");
        self.dir = dir.path().to_path_buf();
        let mut args: Vec<String> = vec![
            "--device-profile".into(),
            self.profile.clone(),
            "--state".into(),
            st.to_str().unwrap().into(),
            "--wsman-log".into(),
            log.to_str().unwrap().into(),
        ];
        for f in faults {
            args.push("--fault".into());
            args.push((*f).into());
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        self.sim = Some(Sim::start_in(dir, socket, &a));
    }

    /// The same firmware state, with other faults (none: `&[]`).
    fn reboot(&mut self, faults: &[&str]) {
        let s = self.state();
        self.boot(Some(&s), faults);
    }

    fn dev(&self) -> String {
        self.sim.as_ref().unwrap().device()
    }

    fn state(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.join("state.json")).unwrap())
            .unwrap()
    }

    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("wsman.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                format!("{}.{}", f[1], f[2])
            })
            .collect()
    }

    fn writes_since(&self, from: usize) -> Vec<String> {
        const READS: &[&str] = &[".Get", ".Enumerate", ".Pull", ".GetLowAccuracyTimeSynch"];
        self.log()[from..]
            .iter()
            .filter(|w| !READS.iter().any(|r| w.ends_with(r)))
            .cloned()
            .collect()
    }

    fn run(&self, cmd: &str, profile: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let dev = self.dev();
        let data = self.data.path().to_str().unwrap().to_string();
        let mut a: Vec<&str> = vec!["--device", &dev];
        a.extend_from_slice(extra);
        a.extend([
            cmd,
            profile.to_str().unwrap(),
            "--data-dir",
            &data,
            "--request-timeout",
            "5s",
        ]);
        // AMT's TLS pins live beside the rest, as in production (/var/lib/amt-agent).
        let mut e = vec![("AMT_AGENT_TLS_PIN_DIR", data.as_str())];
        e.extend_from_slice(env);
        agent_env(&a, &e)
    }

    /// `amt-agent --device … ARGS` with this machine's pin directory.
    fn agent(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let dev = self.dev();
        let data = self.data.path().to_str().unwrap().to_string();
        let mut a = vec!["--device", dev.as_str()];
        a.extend_from_slice(args);
        let mut e = vec![("AMT_AGENT_TLS_PIN_DIR", data.as_str())];
        e.extend_from_slice(env);
        agent_env(&a, &e)
    }

    fn plan(&self, profile: &Path) -> (i32, Value) {
        let o = self.run("plan", profile, &["--json"], &[]);
        let v = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("plan --json ({e}): {}\n{}", stdout(&o), stderr(&o)));
        (code(&o), v)
    }

    fn apply(&self, profile: &Path) -> Output {
        self.run("apply", profile, &[], &[])
    }
}

/// A profile file (mode 600) in its own folder.
struct ProfileFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn profile_file(text: &str) -> ProfileFile {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profile.yaml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    ProfileFile { _dir: dir, path }
}

fn ccm_profile() -> String {
    format!(
        "version: 1\ncontrolMode: ccm\nadminPassword: {PW}\n\
         features: {{kvm: true, sol: true, ider: false, userConsent: all}}\n\
         hostname: {{hostName: wks-0042, domainName: corp.example.com}}\n\
         clockSync: true\n\
         proxies: [{{address: proxy.corp.example.com, port: 3128, networkDnsSuffix: corp.example.com}}]\n"
    )
}

fn pending_settings(plan: &Value) -> Vec<String> {
    plan["areas"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| {
            a["changes"].as_array().unwrap().iter().map(move |c| {
                format!(
                    "{}: {}",
                    a["area"].as_str().unwrap(),
                    c["setting"].as_str().unwrap()
                )
            })
        })
        .collect()
}

/// The machine a CCM profile leaves.
fn assert_ccm_profile_holds(amt: &Amt) {
    let s = amt.state();
    assert_eq!(s["control_mode"], 1);
    assert_eq!(
        instance(&s, "AMT_RedirectionService")["EnabledState"],
        "32770"
    );
    assert_eq!(instance(&s, "CIM_KVMRedirectionSAP")["EnabledState"], "2");
    assert_eq!(instance(&s, "AMT_GeneralSettings")["HostName"], "wks-0042");
}

#[test]
fn apply_from_scratch_in_ccm_then_a_second_apply_writes_nothing() {
    let amt = Amt::start("amt16.1");
    let p = profile_file(&ccm_profile());
    let (c, plan) = amt.plan(&p.path);
    assert_eq!(c, 2, "{plan:#}");
    assert_eq!(plan["status"], "changes-pending");
    assert_eq!(plan["areas"][0]["area"], "activation");
    assert_eq!(plan["areas"][1]["state"], "after-activation");
    assert!(
        amt.log().iter().all(|w| w.ends_with(".Get")),
        "plan wrote: {:?}",
        amt.log()
    );

    let o = amt.apply(&p.path);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Progress per area on stderr, in order; the summary on stdout.
    let err = stderr(&o);
    let order: Vec<usize> = [
        "activation",
        "amt-password",
        "amt-features",
        "hostname",
        "sync-clock",
        "proxies",
    ]
    .iter()
    .map(|a| {
        err.find(&format!("] {a}"))
            .unwrap_or_else(|| panic!("{a} in {err}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{err}");
    assert!(
        stdout(&o).contains("apply: AMT matches the profile"),
        "{}",
        stdout(&o)
    );
    assert_ccm_profile_holds(&amt);
    assert_eq!(
        amt.writes_since(0),
        [
            "IPS_HostBasedSetupService.Setup",
            "AMT_RedirectionService.RequestStateChange",
            "CIM_KVMRedirectionSAP.RequestStateChange",
            "AMT_RedirectionService.Put",
            "AMT_GeneralSettings.Put",
            "IPS_HTTPProxyService.AddProxyAccessPoint"
        ]
    );

    let before = amt.log().len();
    let (c, plan) = amt.plan(&p.path);
    assert_eq!(
        (c, plan["status"].as_str()),
        (0, Some("no-changes")),
        "{plan:#}"
    );
    let o = amt.run("apply", &p.path, &["--json"], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["status"], "unchanged");
    assert_eq!(amt.writes_since(before), Vec::<String>::new());
}

#[test]
fn drift_made_with_wsman_put_is_exactly_what_plan_reports_and_apply_fixes() {
    let amt = Amt::start("amt16.1");
    let p = profile_file(&ccm_profile());
    assert_eq!(code(&amt.apply(&p.path)), 0);
    let o = amt.agent(
        &[
            "diagnostics",
            "wsman",
            "put",
            "AMT_GeneralSettings",
            "--set",
            "HostName=rogue",
        ],
        &[("AMT_PASSWORD", PW)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let (c, plan) = amt.plan(&p.path);
    assert_eq!(c, 2);
    assert_eq!(pending_settings(&plan), ["hostname: host name"]);
    let ch = &plan["areas"][3]["changes"][0];
    assert_eq!(
        (ch["current"].as_str(), ch["desired"].as_str()),
        (Some("rogue"), Some("wks-0042"))
    );
    let before = amt.log().len();
    let o = amt.apply(&p.path);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(amt.writes_since(before), ["AMT_GeneralSettings.Put"]);
    assert_eq!(amt.plan(&p.path).0, 0);
}

#[test]
fn the_admin_password_is_rotated_first_and_a_generated_one_is_stored_before_use() {
    let mut amt = Amt::start("amt16.1");
    let p = profile_file(&ccm_profile());
    assert_eq!(code(&amt.apply(&p.path)), 0);
    let g = profile_file(&ccm_profile().replace(PW, "generate"));
    // Without the password AMT has now, plan says how to give it.
    let o = amt.run("plan", &g.path, &[], &[]);
    assert_eq!(code(&o), 100, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("help: set AMT_PASSWORD"),
        "{}",
        stderr(&o)
    );
    let (c, plan) = {
        let o = amt.run("plan", &g.path, &["--json"], &[("AMT_PASSWORD", PW)]);
        (
            code(&o),
            serde_json::from_slice::<Value>(&o.stdout).unwrap(),
        )
    };
    assert_eq!(c, 2);
    assert_eq!(pending_settings(&plan), ["amt-password: admin password"]);
    assert!(
        !amt.data.path().join("generated").exists(),
        "plan stored a password"
    );
    // The password to be generated is not tried against AMT: no login fails for it.
    let o = amt.run("plan", &g.path, &["-vv"], &[("AMT_PASSWORD", PW)]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("AMT refused one admin password"),
        "{}",
        stderr(&o)
    );
    // The rotation's answer is lost after it took effect: the generated password is on disk,
    // so the next run authenticates with it and has nothing left to do.
    amt.reboot(&["drop-after=SetAdminAclEntryEx"]);
    let o = amt.run("apply", &g.path, &[], &[("AMT_PASSWORD", PW)]);
    assert_ne!(code(&o), 0, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("apply: amt-password: changing admin password failed at AMT_AuthorizationService.SetAdminAclEntryEx"), "{e}");
    assert!(e.contains("amt-agent plan"), "{e}");
    amt.reboot(&[]);
    let generated =
        std::fs::read_to_string(amt.data.path().join("generated/amt-password")).unwrap();
    let generated = generated.trim();
    let (c, _) = amt.plan(&g.path);
    assert_eq!(c, 0, "the generated password was not in effect");
    let o = amt.agent(
        &["diagnostics", "wsman", "get", "AMT_GeneralSettings"],
        &[("AMT_PASSWORD", generated)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!format!("{}{}", stdout(&o), stderr(&o)).contains(generated));
}

/// Apply once with `faults`, then on the same firmware state without them: plan must describe
/// what the interruption left (0 or 2, never an error), and apply must finish it.
fn interrupted_then_finished(amt: &mut Amt, p: &Path, faults: &[&str], what: &str) -> bool {
    amt.reboot(faults);
    let first = amt.apply(p);
    let failed = code(&first) != 0;
    if failed {
        let e = stderr(&first);
        assert!(e.contains("error: "), "{what}: {e}");
        assert!(!e.contains("panicked"), "{what}: {e}");
    }
    amt.reboot(&[]);
    let (c, plan) = amt.plan(p);
    assert!(
        c == 0 || c == 2,
        "{what}: plan after the interruption exited {c}: {plan:#}"
    );
    let o = amt.apply(p);
    assert_eq!(code(&o), 0, "{what}: the second apply: {}", stderr(&o));
    let (c, plan) = amt.plan(p);
    assert_eq!(c, 0, "{what}: still pending: {plan:#}");
    assert_ccm_profile_holds(amt);
    failed
}

#[test]
fn an_apply_dropped_at_any_http_request_is_finished_by_the_next() {
    let p = profile_file(&ccm_profile());
    for n in 1..=100 {
        let mut amt = Amt::start("amt16.1");
        // The client retries a request that got no answer once, on a new stream: dropping that
        // retry too makes request n an interruption.
        let (drop, retry) = (
            format!("drop-channel={n}"),
            format!("drop-channel={}", n + 1),
        );
        if !interrupted_then_finished(&mut amt, &p.path, &[&drop, &retry], &drop) {
            // Request n came after the last one apply makes: every request was interrupted once.
            assert!(n > 10, "only {} requests were interrupted", n - 1);
            return;
        }
    }
    panic!("apply made more than 100 HTTP requests");
}

#[test]
fn an_apply_cut_off_after_each_write_took_effect_is_finished_by_the_next() {
    let p = profile_file(&ccm_profile());
    for method in ["Setup", "RequestStateChange", "Put", "AddProxyAccessPoint"] {
        let mut amt = Amt::start("amt16.1");
        let f = format!("drop-after={method}");
        let interrupted = interrupted_then_finished(&mut amt, &p.path, &[&f], &f);
        // Setup's lost answer is judged by the control mode AMT reports over AMTHI (the CCM
        // flow's own rule), so only the writes after it interrupt the run.
        assert_eq!(interrupted, method != "Setup", "{f}");
    }
}

#[test]
fn an_me_reset_during_apply_is_survived_or_finished_by_the_next() {
    let p = profile_file(&ccm_profile());
    // The HECI layer reconnects after a reset (bounded): a run either rides it out or fails with
    // a clear error, and the next one finishes.
    for n in [10, 40, 90, 160, 260] {
        let mut amt = Amt::start("amt16.1");
        let f = format!("reset-after={n}");
        interrupted_then_finished(&mut amt, &p.path, &[&f], &f);
    }
}

#[test]
fn an_agent_killed_mid_apply_leaves_a_state_plan_describes_and_apply_finishes() {
    let p = profile_file(&ccm_profile());
    let mut killed = 0;
    for k in [2, 6, 11, 17, 22] {
        let mut amt = Amt::start("amt16.1");
        amt.reboot(&["wsman-latency=60"]);
        let data = amt.data.path().to_str().unwrap().to_string();
        let mut child = Command::new(AGENT)
            .args([
                "--device",
                &amt.dev(),
                "apply",
                p.path.to_str().unwrap(),
                "--data-dir",
                &data,
            ])
            .env_remove("AMT_PASSWORD")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while amt.log().len() < k && Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        amt.reboot(&[]);
        let (c, plan) = amt.plan(&p.path);
        assert!(
            c == 0 || c == 2,
            "killed after {k}: plan exited {c}: {plan:#}"
        );
        let o = amt.apply(&p.path);
        assert_eq!(code(&o), 0, "killed after {k}: {}", stderr(&o));
        assert_eq!(amt.plan(&p.path).0, 0);
        assert_ccm_profile_holds(&amt);
    }
    assert_eq!(killed, 5, "the agent finished before it could be killed");
}

#[test]
fn a_failed_step_names_the_step_the_firmwares_answer_and_the_fix_and_plan_shows_the_rest() {
    let mut amt = Amt::start("amt16.1");
    let p = profile_file(&ccm_profile());
    amt.reboot(&["http500=AMT_GeneralSettings"]);
    // Activation reads AMT_GeneralSettings: with it failing, the first step fails.
    let o = amt.apply(&p.path);
    assert_ne!(code(&o), 0);
    let e = stderr(&o);
    assert!(e.contains("apply: the activation failed"), "{e}");
    assert!(e.contains("help: "), "{e}");
    amt.reboot(&[]);
    let o = amt.agent(&["activate", "--local", "--ccm"], &[("AMT_PASSWORD", PW)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // user consent below all is what AMT refuses in CCM; the profile check refuses it first.
    amt.reboot(&["http500=IPS_HTTPProxyService"]);
    let o = amt.apply(&p.path);
    assert_eq!(code(&o), 120, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("apply: proxies: changing proxy proxy.corp.example.com failed at IPS_HTTPProxyService.AddProxyAccessPoint"), "{e}");
    assert!(
        e.contains("state: changed in this run: amt-features"),
        "{e}"
    );
    amt.reboot(&[]);
    let (c, plan) = amt.plan(&p.path);
    assert_eq!(c, 2);
    assert_eq!(
        pending_settings(&plan),
        ["proxies: proxy proxy.corp.example.com"]
    );
}

// ---------------------------------------------------------------------------------------------
// ACM
// ---------------------------------------------------------------------------------------------

fn openssl(args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl CLI");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A root and a leaf for `amt.example.com` (openssl), the PEM bundle (chain and key) and the
/// root's SHA-256 in AMT's words.
fn provisioning_pki(dir: &Path) -> (PathBuf, String) {
    provisioning_pki_for(dir, "amt.example.com")
}

/// As [`provisioning_pki`], the leaf for `cn`.
fn provisioning_pki_for(dir: &Path, cn: &str) -> (PathBuf, String) {
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    std::fs::write(dir.join("ca.ext"), "basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n").unwrap();
    std::fs::write(dir.join("leaf.ext"), "basicConstraints = CA:FALSE\nkeyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth, 2.16.840.1.113741.1.2.3\n").unwrap();
    for k in ["root.key", "leaf.key"] {
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &p(k),
        ]);
    }
    openssl(&[
        "req",
        "-new",
        "-x509",
        "-key",
        &p("root.key"),
        "-subj",
        "/CN=Desired Root",
        "-days",
        "30",
        "-sha256",
        "-extensions",
        "v3_ca",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        &p("root.pem"),
    ]);
    openssl(&[
        "req",
        "-new",
        "-key",
        &p("leaf.key"),
        "-subj",
        &format!("/CN={cn}"),
        "-out",
        &p("leaf.csr"),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("leaf.csr"),
        "-CA",
        &p("root.pem"),
        "-CAkey",
        &p("root.key"),
        "-CAcreateserial",
        "-days",
        "30",
        "-sha256",
        "-extfile",
        &p("leaf.ext"),
        "-out",
        &p("leaf.pem"),
    ]);
    let bundle = dir.join("prov.pem");
    let text = [
        std::fs::read_to_string(dir.join("leaf.pem")).unwrap(),
        std::fs::read_to_string(dir.join("root.pem")).unwrap(),
        std::fs::read_to_string(dir.join("leaf.key")).unwrap(),
    ]
    .concat();
    std::fs::write(&bundle, text).unwrap();
    let der = {
        let pem = std::fs::read(dir.join("root.pem")).unwrap();
        x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents
    };
    let hash = amt_agent::provisioning::load::fingerprints(&der)[1]
        .1
        .clone();
    (bundle, hash)
}

#[test]
fn apply_from_scratch_in_acm_sets_the_mebx_password_once() {
    let pki = tempfile::tempdir().unwrap();
    let (bundle, hash) = provisioning_pki(pki.path());
    let mut state = profile("amt16.1");
    state["cert_hashes"].as_array_mut().unwrap().push(serde_json::json!({
        "name": "Desired Root", "algorithm": "SHA256", "hash": hash, "is_default": false, "is_active": true,
    }));
    state["pki_dns_suffix"] = "example.com".into();
    let amt = Amt::start_with("amt16.1", Some(&state), &[]);
    let p = profile_file(&format!(
        "version: 1\ncontrolMode: acm\nprovisioningCertificate: {{file: {}}}\nadminPassword: {PW}\n\
         mebxPassword: Mebx!Pass1\nfeatures: {{kvm: true, sol: false, ider: false, userConsent: none}}\n",
        bundle.display()
    ));
    let o = agent(&["profile", "check", p.path.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let o = amt.apply(&p.path);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let s = amt.state();
    assert_eq!(s["control_mode"], 2);
    assert_eq!(s["mebx_password_set"], true);
    assert_eq!(instance(&s, "IPS_OptInService")["OptInRequired"], "0");
    let w = amt.writes_since(0);
    assert!(
        w.contains(&"IPS_HostBasedSetupService.AdminSetup".to_string()),
        "{w:?}"
    );
    assert!(
        w.contains(&"AMT_SetupAndConfigurationService.SetMEBxPassword".to_string()),
        "{w:?}"
    );
    // The MEBx password is kept by its verifier: a second apply writes nothing.
    let before = amt.log().len();
    let (c, plan) = amt.plan(&p.path);
    assert_eq!(c, 0, "{plan:#}");
    assert_eq!(amt.writes_since(before), Vec::<String>::new());
    let o = amt.apply(&p.path);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(amt.writes_since(before), Vec::<String>::new());
    let record = std::fs::read_to_string(amt.data.path().join("mebx-password.json")).unwrap();
    assert!(!record.contains("Mebx!Pass1"));
}

#[test]
fn a_ccm_machine_is_upgraded_to_acm_and_acm_is_never_lowered() {
    let pki = tempfile::tempdir().unwrap();
    let (bundle, hash) = provisioning_pki(pki.path());
    let mut state = profile("amt16.1");
    state["cert_hashes"].as_array_mut().unwrap().push(serde_json::json!({
        "name": "Desired Root", "algorithm": "SHA256", "hash": hash, "is_default": false, "is_active": true,
    }));
    state["pki_dns_suffix"] = "example.com".into();
    let amt = Amt::start_with("amt16.1", Some(&state), &[]);
    let ccm = profile_file(&format!(
        "version: 1\ncontrolMode: ccm\nadminPassword: {PW}\n"
    ));
    assert_eq!(code(&amt.apply(&ccm.path)), 0);
    let acm = profile_file(&format!(
        "version: 1\ncontrolMode: acm\nprovisioningCertificate: {{file: {}}}\nadminPassword: {PW}\n",
        bundle.display()
    ));
    let (c, plan) = amt.plan(&acm.path);
    assert_eq!(c, 2);
    assert!(
        plan["areas"][0]["changes"][0]["desired"]
            .as_str()
            .unwrap()
            .contains("UpgradeClientToAdmin"),
        "{plan:#}"
    );
    let o = amt.apply(&acm.path);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(amt.state()["control_mode"], 2);
    assert_eq!(amt.plan(&acm.path).0, 0);
    let o = amt.run("plan", &ccm.path, &[], &[]);
    assert_eq!(code(&o), 111, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("never lowers the control mode"),
        "{}",
        stderr(&o)
    );
}

// ---------------------------------------------------------------------------------------------
// rpc-go v3 profiles and bad profiles
// ---------------------------------------------------------------------------------------------

fn fixture(name: &str) -> PathBuf {
    repo_file(&format!("tests/fixtures/profiles/{name}"))
}

#[test]
fn rpc_go_v3_plain_and_encrypted_profiles_apply_alike() {
    let amt = Amt::start("amt16.1");
    // The fixtures are world-readable in git: a private copy, as an operator would keep it.
    let plain = profile_file(&std::fs::read_to_string(fixture("v3-ccm.yaml")).unwrap());
    let o = amt.apply(&plain.path);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let s = amt.state();
    assert_eq!(s["control_mode"], 1);
    assert_eq!(
        instance(&s, "AMT_RedirectionService")["EnabledState"],
        "32771"
    );
    // The same profile, encrypted by an independent implementation (Python's cryptography):
    // nothing left to do.
    let key = std::fs::read_to_string(fixture("v3-ccm.key")).unwrap();
    let enc = fixture("v3-ccm.enc");
    let o = amt.run(
        "plan",
        &enc,
        &["--json"],
        &[("CONFIG_ENCRYPTION_KEY", key.trim())],
    );
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], "rpc-go-v3-encrypted");
    // RPS's JSON envelope carries its own key.
    let o = amt.run("plan", &fixture("v3-ccm.export.json"), &[], &[]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    // Without the key, or with another one: exit 34 and the fix.
    let o = amt.run("plan", &enc, &[], &[]);
    assert_eq!(code(&o), 34, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("help: set CONFIG_ENCRYPTION_KEY"),
        "{}",
        stderr(&o)
    );
    let o = amt.run(
        "plan",
        &enc,
        &[],
        &[("CONFIG_ENCRYPTION_KEY", "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ")],
    );
    assert_eq!(code(&o), 34, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("authentication failed"),
        "{}",
        stderr(&o)
    );
}

fn check_json(file: &Path) -> (i32, Value) {
    let o = agent(&["--json", "profile", "check", file.to_str().unwrap()]);
    (
        code(&o),
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o))),
    )
}

fn error_paths(v: &Value) -> Vec<String> {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["severity"] == "error")
        .map(|p| p["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn bad_profiles_name_each_problem_with_its_path() {
    let private = |name: &str| profile_file(&std::fs::read_to_string(fixture(name)).unwrap());
    let f = private("bad-schema.yaml");
    let (c, v) = check_json(&f.path);
    assert_eq!((c, &v["valid"]), (35, &Value::Bool(false)), "{v:#}");
    let paths = error_paths(&v);
    for want in [
        "features.kvm",
        "proxies[0].port",
        "network.wired.gateway",
        "(top level)",
    ] {
        assert!(paths.iter().any(|p| p == want), "{want} not in {paths:?}");
    }
    let f = private("bad-rules.yaml");
    let (c, v) = check_json(&f.path);
    assert_eq!(c, 35, "{v:#}");
    let paths = error_paths(&v);
    for want in [
        "adminPassword",
        "mebxPassword",
        "features.userConsent",
        "hostname.hostName",
        "proxies[1].address",
        "network.wired.ipAddress",
        "network.wired.ieee8021x",
        "network.wireless.profiles[0]",
    ] {
        assert!(paths.iter().any(|p| p == want), "{want} not in {paths:?}");
    }
    // plan refuses the same file before it opens the ME, each problem a `caused by:` line.
    let o = agent(&["--device", "sim", "plan", f.path.to_str().unwrap()]);
    assert_eq!(code(&o), 35, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("caused by: features.userConsent:"), "{e}");
    assert!(e.contains("help: "), "{e}");
    // rpc-go's file: its own paths.
    let f = private("v3-bad.yaml");
    let o = agent(&["profile", "check", f.path.to_str().unwrap()]);
    assert_eq!(code(&o), 35, "{}", stderr(&o));
    let out = stdout(&o);
    for want in [
        "error: configuration.amtSpecific.controlMode:",
        "error: configuration.network.wireless.profiles[0].authenticationMethod:",
        "warning: configuration.enterpriseAssistant:",
    ] {
        assert!(out.contains(want), "{want} in {out}");
    }
    // A plain-text password in a file every user can read: 34 and the fix.
    let f = private("v3-ccm.yaml");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&f.path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = agent(&["profile", "check", f.path.to_str().unwrap()]);
    assert_eq!(code(&o), 34, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("error: configuration.amtSpecific.adminPassword: a plain-text secret"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("chmod 600"), "{}", stdout(&o));
    // An unreadable file, and YAML that is not YAML: 34 with the line.
    let o = agent(&["profile", "check", "/nonexistent/profile.yaml"]);
    assert_eq!(code(&o), 34, "{}", stderr(&o));
    let f = profile_file("version: 1\ncontrolMode: [ccm\n");
    let o = agent(&["profile", "check", f.path.to_str().unwrap()]);
    assert_eq!(code(&o), 34, "{}", stderr(&o));
    assert!(stderr(&o).contains("line 2"), "{}", stderr(&o));
}

#[test]
fn the_example_profile_is_the_schemas_and_checks_clean_but_for_its_machine_paths() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_file("docs/profile.schema.json")).unwrap(),
    )
    .unwrap();
    let compiled = jsonschema::JSONSchema::compile(&schema).unwrap();
    let example: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo_file("examples/profile.yaml")).unwrap(),
    )
    .unwrap();
    if let Err(errors) = compiled.validate(&example) {
        let msgs: Vec<String> = errors
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        panic!("examples/profile.yaml does not match the schema: {msgs:#?}");
    }
    let o = agent(&[
        "--json",
        "profile",
        "check",
        repo_file("examples/profile.yaml").to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    for p in v["problems"].as_array().unwrap() {
        let path = p["path"].as_str().unwrap();
        let msg = p["message"].as_str().unwrap();
        // The files it names live on a fleet machine, not here.
        assert!(
            p["severity"] == "warning" || msg.contains("/etc/amt-agent/"),
            "{path}: {msg}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The network: wired (static, 802.1X EAP-TLS), Wi-Fi sync, a PSK and a PEAP Wi-Fi profile
// ---------------------------------------------------------------------------------------------

const PSK: &str = "Kn0wn wifi passphrase";
const EAP_PW: &str = "Radius!pw1";

/// A machine with a wireless adapter (every built-in profile is wired-only).
fn wifi_machine() -> Value {
    let mut s = profile("amt16.1");
    with_wifi(&mut s);
    s
}

/// The 802.1X fixtures, the key copied with mode 600 (git keeps no modes).
struct NetFiles {
    dir: tempfile::TempDir,
}

impl NetFiles {
    fn new() -> NetFiles {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("client.key");
        std::fs::copy(dot1x_fixture("client.key"), &key).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        // The MPS's root, another CA than the RADIUS one (the key is thrown away).
        let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &p("mps-root.key"),
            "-subj",
            "/CN=Example MPS Root",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-out",
            &p("mps-root.pem"),
        ]);
        NetFiles { dir }
    }

    /// TLS in mutual mode with the admin's CA (EC, its key encrypted: a copy with mode 600).
    fn tls_mutual(&self) -> String {
        use std::os::unix::fs::PermissionsExt;
        let key = self.dir.path().join("tls-ca.key");
        std::fs::copy(repo_file("tests/fixtures/tls-ca/ec-ca.enc.key"), &key).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        format!(
            "tls: {{mode: mutual, delay: 0, caCertificate: {}, caKey: 'file:{}', caKeyPassword: Corp-CA-key-pw1}}\n",
            repo_file("tests/fixtures/tls-ca/ec-ca.pem").display(),
            key.display()
        )
    }

    /// CIRA to an MPS with its own root, the password generated.
    fn cira(&self) -> String {
        format!(
            "cira: {{mpsAddress: mps.corp.example.com, mpsPort: 4433, mpsPassword: generate, mpsCertificate: {}, environmentDetection: [corp.example.com]}}\n",
            self.dir.path().join("mps-root.pem").display()
        )
    }

    /// `network:` with the wired port static and EAP-TLS, Wi-Fi sync on, the PSK profile
    /// `office` (passphrase `psk`) and the PEAP profile `corp`.
    fn network(&self, psk: &str) -> String {
        format!(
            "network:\n\
             \x20 wired: {{dhcp: false, ipAddress: 192.168.7.50, subnetMask: 255.255.255.0, gateway: 192.168.7.1, primaryDns: 192.168.7.2, ieee8021x: wiredtls}}\n\
             \x20 wireless:\n\
             \x20   wifiSync: true\n\
             \x20   uefiWifiSync: true\n\
             \x20   profiles:\n\
             \x20     - {{name: office, ssid: CorpNet, priority: 1, authentication: wpa2-psk, pskPassphrase: '{psk}'}}\n\
             \x20     - {{name: corp, ssid: Corp8021X, priority: 2, authentication: wpa2-ieee8021x, ieee8021x: corp-peap}}\n\
             \x20 ieee8021x:\n\
             \x20   - {{name: wiredtls, protocol: eap-tls, username: amt-client, clientCertificate: {client}, privateKey: 'file:{key}', caCertificate: {ca}}}\n\
             \x20   - {{name: corp-peap, protocol: peap-mschapv2, username: alice, password: '{EAP_PW}', caCertificate: {ca}}}\n",
            client = dot1x_fixture("client.pem").display(),
            ca = dot1x_fixture("ca.pem").display(),
            key = self.dir.path().join("client.key").display(),
        )
    }
}

fn dot1x_fixture(name: &str) -> PathBuf {
    repo_file(&format!("tests/fixtures/ieee8021x/{name}"))
}

/// The network, CIRA and TLS (server, a throwaway CA) in client control mode.
fn net_profile(net: &NetFiles, psk: &str) -> String {
    format!(
        "version: 1\ncontrolMode: ccm\nadminPassword: {PW}\n{}{}tls: {{mode: server, delay: 0}}\n",
        net.network(psk),
        net.cira()
    )
}

/// Every instance of `class` in the state file, as maps.
fn instances(state: &Value, class: &str) -> Vec<serde_json::Map<String, Value>> {
    state["instances"][class]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|i| {
            i.as_array()
                .unwrap()
                .iter()
                .map(|kv| (kv[0].as_str().unwrap().to_string(), kv[1].clone()))
                .collect()
        })
        .collect()
}

/// What the network profile leaves on the machine.
fn assert_network_holds(amt: &Amt) {
    let s = amt.state();
    let port = instance(&s, "AMT_EthernetPortSettings");
    assert_eq!(
        (
            &port["DHCPEnabled"],
            &port["IPAddress"],
            &port["PrimaryDNS"]
        ),
        (
            &Value::from("false"),
            &Value::from("192.168.7.50"),
            &Value::from("192.168.7.2")
        )
    );
    let dot1x = instance(&s, "IPS_IEEE8021xSettings");
    assert_eq!(dot1x["Enabled"], "2", "{dot1x:?}");
    assert_eq!(dot1x["Username"], "amt-client");
    let wifi: Vec<(String, String)> = instances(&s, "CIM_WiFiEndpointSettings")
        .iter()
        .map(|p| {
            (
                p["ElementName"].as_str().unwrap().to_string(),
                p["Priority"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        wifi,
        [
            ("office".to_string(), "1".to_string()),
            ("corp".into(), "2".into())
        ]
    );
    let sync = instance(&s, "AMT_WiFiPortConfigurationService");
    assert_eq!(sync["localProfileSynchronizationEnabled"], "3");
    // CIRA: one MPS, with the password generated into the data directory (the simulator keeps
    // its SHA-256).
    let servers = instances(&s, "AMT_ManagementPresenceRemoteSAP");
    assert_eq!(servers.len(), 1, "{servers:?}");
    assert_eq!(servers[0]["AccessInfo"], "mps.corp.example.com");
    let generated =
        std::fs::read_to_string(amt.data.path().join("generated/mps-password")).unwrap();
    let digest: String = {
        use sha2::Digest;
        sha2::Sha256::digest(generated.trim().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let creds = instances(&s, "AMT_MPSUsernamePassword");
    assert_eq!(creds.len(), 1);
    assert_eq!(
        creds[0]["\u{0}Secret"].as_str().map(str::to_lowercase),
        Some(digest)
    );
    assert_eq!(instances(&s, "AMT_RemoteAccessPolicyRule").len(), 2);
    assert_eq!(
        instance(&s, "AMT_EnvironmentDetectionSettingData")["DetectionStrings"],
        "corp.example.com"
    );
    // TLS on both interfaces, plain HTTP refused: every request since went to 16993, verifying
    // the certificate pinned in the data directory.
    for side in instances(&s, "AMT_TLSSettingData") {
        assert_eq!(
            (&side["Enabled"], &side["AcceptNonSecureConnections"]),
            (&Value::from("true"), &Value::from("false")),
            "{side:?}"
        );
    }
    let pins: Vec<String> = std::fs::read_dir(amt.data.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("amt-tls-"))
        .collect();
    assert!(pins.len() == 1 && !pins[0].contains("pending"), "{pins:?}");
}

#[test]
fn a_network_profile_applies_from_scratch_and_a_second_apply_writes_nothing() {
    let amt = Amt::start_with("amt16.1", Some(&wifi_machine()), &[]);
    let net = NetFiles::new();
    let p = profile_file(&net_profile(&net, PSK));
    let o = agent(&["profile", "check", p.path.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("it manages: activation, admin-password, wired, wireless, cira, tls"),
        "{}",
        stdout(&o)
    );
    let (c, plan) = amt.plan(&p.path);
    assert_eq!(c, 2, "{plan:#}");
    let areas: Vec<&str> = plan["areas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["area"].as_str().unwrap())
        .collect();
    assert_eq!(
        areas,
        [
            "activation",
            "amt-password",
            "wired",
            "wireless",
            "cira",
            "tls"
        ]
    );
    assert_eq!(plan["areas"][2]["state"], "after-activation");

    let o = amt.apply(&p.path);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_network_holds(&amt);
    assert_eq!(
        amt.writes_since(0),
        [
            "IPS_HostBasedSetupService.Setup",
            // wired: the address, then 802.1X: the key before its certificate, the CA, the
            // settings, the bindings
            "AMT_EthernetPortSettings.Put",
            "AMT_PublicKeyManagementService.AddKey",
            "AMT_PublicKeyManagementService.AddCertificate",
            "AMT_PublicKeyManagementService.AddTrustedRootCertificate",
            "IPS_IEEE8021xSettings.Put",
            "IPS_IEEE8021xSettings.SetCertificates",
            // wireless: the sync and the port, then the profiles
            "AMT_WiFiPortConfigurationService.Put",
            "CIM_WiFiPort.RequestStateChange",
            "AMT_WiFiPortConfigurationService.AddWiFiSettings",
            "AMT_WiFiPortConfigurationService.AddWiFiSettings",
            // cira: the MPS's root and the MPS, the policies, what they apply to,
            // user-initiated connections, environment detection
            "AMT_PublicKeyManagementService.AddTrustedRootCertificate",
            "AMT_RemoteAccessService.AddMpServer",
            "AMT_RemoteAccessService.AddRemoteAccessPolicyRule",
            "AMT_RemoteAccessService.AddRemoteAccessPolicyRule",
            "AMT_RemoteAccessPolicyAppliesToMPS.Put",
            "AMT_RemoteAccessPolicyAppliesToMPS.Put",
            "AMT_UserInitiatedConnectionService.RequestStateChange",
            "AMT_EnvironmentDetectionSettingData.Put",
            // tls, last: a key AMT generates, the certificate for it, its binding, both
            // interfaces, the commit (then every request goes to 16993)
            "AMT_PublicKeyManagementService.GenerateKeyPair",
            "AMT_PublicKeyManagementService.AddCertificate",
            "AMT_TLSCredentialContext.Create",
            "AMT_TLSSettingData.Put",
            "AMT_TLSSettingData.Put",
            "AMT_SetupAndConfigurationService.CommitChanges",
        ]
    );
    // The secrets AMT never reveals are remembered by verifiers, never in plain text.
    for f in ["wifi-office.json", "wifi-corp.json", "mps-password.json"] {
        let text = std::fs::read_to_string(amt.data.path().join("verifiers").join(f)).unwrap();
        assert!(!text.contains(PSK) && !text.contains(EAP_PW), "{text}");
    }

    // A second plan and apply: everything read, nothing written.
    let before = amt.log().len();
    let (c, plan) = amt.plan(&p.path);
    assert_eq!(c, 0, "{plan:#}");
    let o = amt.run("apply", &p.path, &["--json"], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["status"], "unchanged");
    assert_eq!(amt.writes_since(before), Vec::<String>::new());

    // Another passphrase in the profile is applied (AMT never shows the old one), once.
    let changed = profile_file(&net_profile(&net, "An0ther wifi passphrase"));
    let (c, plan) = amt.plan(&changed.path);
    assert_eq!(c, 2);
    assert_eq!(pending_settings(&plan), ["wireless: Wi-Fi profile office"]);
    let before = amt.log().len();
    let o = amt.apply(&changed.path);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        amt.writes_since(before),
        [
            "CIM_WiFiEndpointSettings.Delete",
            "AMT_WiFiPortConfigurationService.AddWiFiSettings"
        ]
    );
    let before = amt.log().len();
    assert_eq!(amt.plan(&changed.path).0, 0);
    assert_eq!(code(&amt.apply(&changed.path)), 0);
    assert_eq!(amt.writes_since(before), Vec::<String>::new());
}

#[test]
fn the_wifi_list_is_complete_others_are_deleted_and_priorities_can_swap() {
    let amt = Amt::start_with("amt16.1", Some(&wifi_machine()), &[]);
    let net = NetFiles::new();
    let p = profile_file(&net_profile(&net, PSK));
    assert_eq!(code(&amt.apply(&p.path)), 0);
    // A profile someone else added is not the profile's: plan shows its deletion.
    let o = amt.agent(
        &[
            "configure",
            "wireless",
            "--profile-name",
            "rogue",
            "--ssid",
            "Rogue",
            "--priority",
            "7",
        ],
        &[("AMT_PASSWORD", PW), ("PSK_PASSPHRASE", "rogue passphrase")],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let (c, plan) = amt.plan(&p.path);
    assert_eq!(c, 2);
    assert_eq!(pending_settings(&plan), ["wireless: Wi-Fi profile rogue"]);
    // The priorities swapped: both profiles are deleted before either is added again.
    let swapped = profile_file(
        &net_profile(&net, PSK)
            .replace("priority: 1,", "priority: 9,")
            .replace("priority: 2,", "priority: 1,")
            .replace("priority: 9,", "priority: 2,"),
    );
    let before = amt.log().len();
    let o = amt.apply(&swapped.path);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        amt.writes_since(before),
        [
            "CIM_WiFiEndpointSettings.Delete",
            "CIM_WiFiEndpointSettings.Delete",
            "CIM_WiFiEndpointSettings.Delete",
            "AMT_WiFiPortConfigurationService.AddWiFiSettings",
            "AMT_WiFiPortConfigurationService.AddWiFiSettings",
        ]
    );
    assert_eq!(amt.plan(&swapped.path).0, 0);
    // `profiles: []` leaves no user profile; the wired port and the sync are left as they are.
    let none = profile_file(&format!(
        "version: 1\ncontrolMode: ccm\nadminPassword: {PW}\nnetwork:\n  wireless:\n    profiles: []\n"
    ));
    let o = amt.apply(&none.path);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(instances(&amt.state(), "CIM_WiFiEndpointSettings").is_empty());
    assert_eq!(
        instance(&amt.state(), "IPS_IEEE8021xSettings")["Enabled"],
        "2"
    );
}

#[test]
fn network_drift_made_with_wsman_is_exactly_what_plan_reports_and_apply_fixes() {
    let amt = Amt::start_with("amt16.1", Some(&wifi_machine()), &[]);
    let net = NetFiles::new();
    let p = profile_file(&net_profile(&net, PSK));
    assert_eq!(code(&amt.apply(&p.path)), 0);
    let wsman = |args: &[&str]| {
        let mut a = vec!["diagnostics", "wsman"];
        a.extend_from_slice(args);
        let o = amt.agent(&a, &[("AMT_PASSWORD", PW)]);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
    };
    // One DNS server of the wired port.
    wsman(&[
        "put",
        "AMT_EthernetPortSettings",
        "-s",
        "InstanceID=Intel(r) AMT Ethernet Port Settings 0",
        "--set",
        "PrimaryDNS=192.168.7.9",
    ]);
    let (c, plan) = amt.plan(&p.path);
    assert_eq!(c, 2, "{plan:#}");
    assert_eq!(pending_settings(&plan), ["wired: wired addressing"]);
    let ch = &plan["areas"][2]["changes"][0];
    assert!(
        ch["current"].as_str().unwrap().contains("DNS 192.168.7.9")
            && ch["desired"].as_str().unwrap().contains("DNS 192.168.7.2"),
        "{ch:#}"
    );
    let before = amt.log().len();
    assert_eq!(code(&amt.apply(&p.path)), 0);
    assert_eq!(amt.writes_since(before), ["AMT_EthernetPortSettings.Put"]);
    // The OS profile sync turned off.
    wsman(&[
        "put",
        "AMT_WiFiPortConfigurationService",
        "--set",
        "localProfileSynchronizationEnabled=0",
    ]);
    let (c, plan) = amt.plan(&p.path);
    assert_eq!(c, 2);
    assert_eq!(pending_settings(&plan), ["wireless: OS Wi-Fi profile sync"]);
    let before = amt.log().len();
    assert_eq!(code(&amt.apply(&p.path)), 0);
    assert_eq!(
        amt.writes_since(before),
        ["AMT_WiFiPortConfigurationService.Put"]
    );
    // A Wi-Fi profile deleted.
    wsman(&[
        "delete",
        "CIM_WiFiEndpointSettings",
        "-s",
        "InstanceID=Intel(r) AMT:WiFi Endpoint Settings corp",
    ]);
    let (c, plan) = amt.plan(&p.path);
    assert_eq!(c, 2);
    assert_eq!(pending_settings(&plan), ["wireless: Wi-Fi profile corp"]);
    let before = amt.log().len();
    assert_eq!(code(&amt.apply(&p.path)), 0);
    assert_eq!(
        amt.writes_since(before),
        ["AMT_WiFiPortConfigurationService.AddWiFiSettings"]
    );
    // Plain HTTP allowed again on the network interface (over 16993, pinned).
    wsman(&[
        "put",
        "AMT_TLSSettingData",
        "-s",
        "InstanceID=Intel(r) AMT 802.3 TLS Settings",
        "--set",
        "AcceptNonSecureConnections=true",
    ]);
    let (c, plan) = amt.plan(&p.path);
    assert_eq!(c, 2);
    assert_eq!(
        pending_settings(&plan),
        ["tls: TLS on the network interface (802.3)"]
    );
    let before = amt.log().len();
    assert_eq!(code(&amt.apply(&p.path)), 0);
    assert_eq!(
        amt.writes_since(before),
        [
            "AMT_TLSSettingData.Put",
            "AMT_SetupAndConfigurationService.CommitChanges"
        ]
    );
    assert_eq!(amt.plan(&p.path).0, 0);
    assert_network_holds(&amt);
}

/// The wireless machine activated in CCM, with nothing of the network set yet.
fn activated_wifi_machine() -> Value {
    let amt = Amt::start_with("amt16.1", Some(&wifi_machine()), &[]);
    let p = profile_file(&format!(
        "version: 1\ncontrolMode: ccm\nadminPassword: {PW}\n"
    ));
    let o = amt.apply(&p.path);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    amt.state()
}

/// The network profile applied from `base` with `faults`, then without them: the plan in
/// between exits 0 or 2 and lists exactly what the next apply changes, all of it in the
/// network's areas; after that apply nothing is pending and the network is as wanted. Returns
/// whether the first apply failed.
fn network_interrupted_then_finished(base: &Value, faults: &[&str], what: &str) -> bool {
    let mut amt = Amt::start_with("amt16.1", Some(base), faults);
    let net = NetFiles::new();
    let p = profile_file(&net_profile(&net, PSK));
    let first = amt.apply(&p.path);
    let failed = code(&first) != 0;
    if failed {
        let e = stderr(&first);
        assert!(e.contains("error: apply: "), "{what}: {e}");
        assert!(e.contains("amt-agent plan"), "{what}: {e}");
        assert!(!e.contains("panicked"), "{what}: {e}");
    }
    amt.reboot(&[]);
    let (c, plan) = amt.plan(&p.path);
    assert!(
        c == 0 || c == 2,
        "{what}: plan after the interruption exited {c}: {plan:#}"
    );
    let pending = pending_settings(&plan);
    assert!(
        pending
            .iter()
            .all(|s| ["wired: ", "wireless: ", "cira: ", "tls: "]
                .iter()
                .any(|a| s.starts_with(a))),
        "{what}: {pending:?}"
    );
    let o = amt.run("apply", &p.path, &["--json"], &[]);
    assert_eq!(code(&o), 0, "{what}: the second apply: {}", stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let changed: Vec<String> = j["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}: {}",
                c["area"].as_str().unwrap(),
                c["setting"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        changed, pending,
        "{what}: the plan in between was not what apply did"
    );
    let (c, plan) = amt.plan(&p.path);
    assert_eq!(c, 0, "{what}: still pending: {plan:#}");
    assert_network_holds(&amt);
    failed
}

#[test]
fn a_network_apply_cut_off_after_each_write_or_refused_is_finished_by_the_next() {
    let base = activated_wifi_machine();
    for method in [
        "Put",
        "AddKey",
        "AddCertificate",
        "AddTrustedRootCertificate",
        "SetCertificates",
        "RequestStateChange",
        "AddWiFiSettings",
        "AddMpServer",
        "AddRemoteAccessPolicyRule",
        "GenerateKeyPair",
        "Create",
        // AMT moves to 16993 with the new certificate, the answer is lost: the next run finds
        // AMT there by the pending pin.
        "CommitChanges",
    ] {
        let f = format!("drop-after={method}");
        assert!(network_interrupted_then_finished(&base, &[&f], &f), "{f}");
    }
    for class in [
        "AMT_EthernetPortSettings",
        "IPS_IEEE8021xSettings",
        "AMT_PublicKeyManagementService",
        "AMT_WiFiPortConfigurationService",
        "CIM_WiFiEndpointSettings",
        "CIM_WiFiPort",
        "AMT_RemoteAccessService",
        "AMT_RemoteAccessPolicyAppliesToMPS",
        "AMT_EnvironmentDetectionSettingData",
        "AMT_TLSSettingData",
        "AMT_TLSCredentialContext",
        "AMT_SetupAndConfigurationService",
    ] {
        let f = format!("http500={class}");
        assert!(network_interrupted_then_finished(&base, &[&f], &f), "{f}");
    }
}

#[test]
fn a_network_apply_dropped_at_its_http_requests_is_finished_by_the_next() {
    let base = activated_wifi_machine();
    // Every third request (the network's and CIRA's apply makes about 120): each of the 802.1X,
    // Wi-Fi and CIRA steps is hit, reads and writes alike.
    let mut interrupted = 0;
    for n in (1..=200).step_by(3) {
        let (drop, retry) = (
            format!("drop-channel={n}"),
            format!("drop-channel={}", n + 1),
        );
        if network_interrupted_then_finished(&base, &[&drop, &retry], &drop) {
            interrupted += 1;
        } else {
            assert!(
                interrupted > 20,
                "only {interrupted} requests were interrupted"
            );
            return;
        }
    }
    panic!("the network's apply made more than 200 HTTP requests");
}

#[test]
fn an_agent_killed_in_the_network_steps_leaves_a_state_plan_describes_and_apply_finishes() {
    let base = activated_wifi_machine();
    let mut killed = 0;
    // The network's steps, CIRA's, and TLS's (its key, certificate and commit come after about
    // 135 of the 155 requests).
    for k in [8, 25, 45, 65, 90, 138, 145] {
        let mut amt = Amt::start_with("amt16.1", Some(&base), &["wsman-latency=40"]);
        let net = NetFiles::new();
        let p = profile_file(&net_profile(&net, PSK));
        let data = amt.data.path().to_str().unwrap().to_string();
        let start = amt.log().len();
        let mut child = Command::new(AGENT)
            .args([
                "--device",
                &amt.dev(),
                "apply",
                p.path.to_str().unwrap(),
                "--data-dir",
                &data,
            ])
            .env("AMT_AGENT_TLS_PIN_DIR", &data)
            .env_remove("AMT_PASSWORD")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while amt.log().len() < start + k && Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        amt.reboot(&[]);
        let (c, plan) = amt.plan(&p.path);
        assert!(
            c == 0 || c == 2,
            "killed after {k}: plan exited {c}: {plan:#}"
        );
        let o = amt.apply(&p.path);
        assert_eq!(code(&o), 0, "killed after {k}: {}", stderr(&o));
        assert_eq!(amt.plan(&p.path).0, 0);
        assert_network_holds(&amt);
    }
    assert_eq!(killed, 7, "the agent finished before it could be killed");
}

/// The README's example profile, its `/etc/amt-agent/` files made here (a PFX with its password,
/// the MEBx password, the 802.1X certificates and key, the MPS root), applied to a machine with
/// Wi-Fi that trusts the PFX's root for `corp.example.com`: admin control mode, the network, CIRA
/// and TLS, then nothing left to do.
#[test]
fn the_example_profile_applies_with_its_network() {
    use std::os::unix::fs::PermissionsExt;
    let etc = tempfile::tempdir().unwrap();
    let e = |n: &str| etc.path().join(n);
    let (_, hash) = provisioning_pki_for(etc.path(), "amt.corp.example.com");
    let pfx_pw = "Pfx-Pa55word";
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        e("leaf.pem").to_str().unwrap(),
        "-inkey",
        e("leaf.key").to_str().unwrap(),
        "-certfile",
        e("root.pem").to_str().unwrap(),
        "-passout",
        &format!("pass:{pfx_pw}"),
        "-out",
        e("provisioning.pfx").to_str().unwrap(),
    ]);
    let private = |name: &str, text: &str| {
        std::fs::write(e(name), text).unwrap();
        std::fs::set_permissions(e(name), std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    private("provisioning-cert-password", &format!("{pfx_pw}\n"));
    private("mebx-password", "Mebx!Pass1\n");
    private(
        "8021x-client.key",
        &std::fs::read_to_string(dot1x_fixture("client.key")).unwrap(),
    );
    for (to, from) in [
        ("8021x-client.pem", "client.pem"),
        ("radius-ca.pem", "ca.pem"),
        ("mps-root.pem", "ca.pem"),
    ] {
        std::fs::copy(dot1x_fixture(from), e(to)).unwrap();
    }
    let example = std::fs::read_to_string(repo_file("examples/profile.yaml")).unwrap();
    let p =
        profile_file(&example.replace("/etc/amt-agent/", &format!("{}/", etc.path().display())));
    let mut state = wifi_machine();
    state["cert_hashes"].as_array_mut().unwrap().push(serde_json::json!({
        "name": "Desired Root", "algorithm": "SHA256", "hash": hash, "is_default": false, "is_active": true,
    }));
    state["pki_dns_suffix"] = "corp.example.com".into();
    let amt = Amt::start_with("amt16.1", Some(&state), &[]);
    let env = [
        ("BRANCH_WIFI_PSK", "branch passphrase"),
        ("EAP_PASSWORD", EAP_PW),
    ];
    let o = amt.run("apply", &p.path, &[], &env);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let s = amt.state();
    assert_eq!(s["control_mode"], 2);
    assert_eq!(s["mebx_password_set"], true);
    assert_eq!(instance(&s, "AMT_GeneralSettings")["HostName"], "wks-0042");
    assert_eq!(instance(&s, "IPS_IEEE8021xSettings")["Enabled"], "2");
    assert_eq!(
        instance(&s, "AMT_EthernetPortSettings")["DHCPEnabled"],
        "true"
    );
    let wifi: Vec<String> = instances(&s, "CIM_WiFiEndpointSettings")
        .iter()
        .map(|p| p["ElementName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(wifi, ["corpwifi", "branch"]);
    assert_eq!(
        instance(&s, "AMT_ManagementPresenceRemoteSAP")["AccessInfo"],
        "mps.corp.example.com"
    );
    // TLS last: the plan and apply below talk to 16993, pinned.
    assert!(instances(&s, "AMT_TLSSettingData")
        .iter()
        .all(|i| i["Enabled"] == "true" && i["AcceptNonSecureConnections"] == "false"));
    // The generated admin password is the one AMT has now; nothing is left to do.
    assert!(amt.data.path().join("generated/amt-password").exists());
    let o = amt.run("plan", &p.path, &["--json"], &env);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let before = amt.log().len();
    let o = amt.run("apply", &p.path, &[], &env);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(amt.writes_since(before), Vec::<String>::new());
}

#[test]
fn a_network_profile_applies_from_scratch_in_acm_and_a_second_apply_writes_nothing() {
    let pki = tempfile::tempdir().unwrap();
    let (bundle, hash) = provisioning_pki(pki.path());
    let mut state = wifi_machine();
    state["cert_hashes"].as_array_mut().unwrap().push(serde_json::json!({
        "name": "Desired Root", "algorithm": "SHA256", "hash": hash, "is_default": false, "is_active": true,
    }));
    state["pki_dns_suffix"] = "example.com".into();
    let amt = Amt::start_with("amt16.1", Some(&state), &[]);
    let net = NetFiles::new();
    let p = profile_file(&format!(
        "version: 1\ncontrolMode: acm\nprovisioningCertificate: {{file: {}}}\nadminPassword: {PW}\n{}{}{}",
        bundle.display(),
        net.network(PSK),
        net.cira(),
        net.tls_mutual()
    ));
    let o = amt.apply(&p.path);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(amt.state()["control_mode"], 2);
    assert_network_holds(&amt);
    let w = amt.writes_since(0);
    assert_eq!(
        w[0], "IPS_HostBasedSetupService.AddNextCertInChain",
        "{w:?}"
    );
    assert!(w.contains(&"IPS_HostBasedSetupService.AdminSetup".to_string()));
    // Mutual TLS: the admin's CA becomes AMT's trusted root for client certificates and signs
    // AMT's certificate; the commit is the last write.
    let remote = instances(&amt.state(), "AMT_TLSSettingData")
        .into_iter()
        .find(|i| i["InstanceID"].as_str().unwrap().contains("802.3"))
        .unwrap();
    assert_eq!(remote["MutualAuthentication"], "true");
    assert_eq!(
        w.last().unwrap(),
        "AMT_SetupAndConfigurationService.CommitChanges"
    );
    let before = amt.log().len();
    assert_eq!(amt.plan(&p.path).0, 0);
    assert_eq!(code(&amt.apply(&p.path)), 0);
    assert_eq!(amt.writes_since(before), Vec::<String>::new());
}

/// rpc-go v3's profile with a network: the wired port on DHCP with PEAP, a PSK and an 802.1X
/// Wi-Fi profile, the sync flags — converted (each 802.1X block named as rpc-go names it) and
/// applied like ours.
#[test]
fn an_rpc_go_v3_network_profile_applies_like_ours() {
    let amt = Amt::start_with("amt16.1", Some(&wifi_machine()), &[]);
    let ca = std::fs::read_to_string(dot1x_fixture("ca.pem")).unwrap();
    // RPS keeps certificates as base64 DER.
    let ca_b64: String = ca.lines().filter(|l| !l.starts_with("-----")).collect();
    let p = profile_file(&format!(
        "configuration:\n\
         \x20 amtSpecific: {{controlMode: ccmactivate, adminPassword: {PW}}}\n\
         \x20 network:\n\
         \x20   wired:\n\
         \x20     dhcpEnabled: true\n\
         \x20     ipSyncEnabled: true\n\
         \x20     ieee8021x: {{username: wks, password: '{EAP_PW}', authenticationProtocol: 2, caCert: {ca_b64}}}\n\
         \x20   wireless:\n\
         \x20     wifiSyncEnabled: true\n\
         \x20     uefiWiFiSyncEnabled: false\n\
         \x20     profiles:\n\
         \x20       - {{profileName: office, ssid: CorpNet, priority: 1, authenticationMethod: WPA2PSK, encryptionMethod: CCMP, password: '{PSK}'}}\n\
         \x20       - {{profileName: corp, ssid: Corp8021X, priority: 2, authenticationMethod: 7, encryptionMethod: 4, ieee8021x: {{username: alice, password: '{EAP_PW}', authenticationProtocol: 2, caCert: {ca_b64}}}}}\n"
    ));
    let o = agent(&["profile", "check", p.path.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let o = amt.apply(&p.path);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let s = amt.state();
    let dot1x = instance(&s, "IPS_IEEE8021xSettings");
    assert_eq!(
        (&dot1x["Enabled"], &dot1x["Username"]),
        (&"2".into(), &"wks".into())
    );
    let names: Vec<String> = instances(&s, "CIM_IEEE8021xSettings")
        .iter()
        .map(|x| x["ElementName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["corp_8021x"]);
    let sync = instance(&s, "AMT_WiFiPortConfigurationService");
    assert_eq!(sync["localProfileSynchronizationEnabled"], "3");
    let before = amt.log().len();
    assert_eq!(amt.plan(&p.path).0, 0);
    assert_eq!(code(&amt.apply(&p.path)), 0);
    assert_eq!(amt.writes_since(before), Vec::<String>::new());
}

#[test]
fn without_a_wireless_adapter_the_wifi_is_nothing_to_configure() {
    let amt = Amt::start("amt16.1");
    let p = profile_file(&format!(
        "version: 1\ncontrolMode: ccm\nadminPassword: {PW}\nnetwork:\n  wireless:\n    wifiSync: true\n    profiles:\n      - {{name: office, ssid: CorpNet, authentication: wpa2-psk, pskPassphrase: '{PSK}'}}\n"
    ));
    let o = amt.apply(&p.path);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(amt.writes_since(0), ["IPS_HostBasedSetupService.Setup"]);
    let (c, plan) = amt.plan(&p.path);
    assert_eq!(c, 0, "{plan:#}");
    let wireless = &plan["areas"][2];
    assert_eq!(wireless["area"], "wireless");
    assert!(
        wireless["unchanged"][0]["value"]
            .as_str()
            .unwrap()
            .contains("no wireless adapter"),
        "{wireless:#}"
    );
}
