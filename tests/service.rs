//! End to end: `amt-agent service` against `amt-sim` with faults. Each scenario ends activated, and
//! the status file tells the truth at every step.
// The tests drive Linux processes (amt-sim, its Unix socket, signals); the Windows build is
// tested by tests/windows.rs, the .exe under Wine.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const PW: &str = "Sup3r$ecret!";

struct Service {
    child: Child,
    state_dir: PathBuf,
}

impl Service {
    fn start(dir: &Path, device: &str, extra_env: &[(&str, &str)]) -> Service {
        let state_dir = dir.join("run");
        let pw = dir.join("amt-password");
        if !pw.exists() {
            std::fs::write(&pw, format!("{PW}\n")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let mut c = Command::new(AGENT);
        c.args(["--device", device, "-v", "service", "--config"])
            .arg(dir.join("agent.toml"))
            .env_remove("AMT_PASSWORD")
            .env("AMT_AGENT_STATE_DIR", &state_dir)
            .env("AMT_AGENT_PASSWORD_FILE", &pw)
            .env("AMT_AGENT_RETRY_INITIAL", "200ms")
            .env("AMT_AGENT_RETRY_MAX", "1s")
            .env("AMT_AGENT_CHECK_INTERVAL", "500ms")
            .env("AMT_AGENT_LMS", "never")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in extra_env {
            c.env(k, v);
        }
        Service {
            child: c.spawn().unwrap(),
            state_dir,
        }
    }

    fn status(&self) -> Option<Value> {
        let t = std::fs::read_to_string(self.state_dir.join("status.json")).ok()?;
        serde_json::from_str(&t).ok()
    }

    /// Waits (bounded) until the status satisfies `f`; returns it.
    fn wait_for(&self, what: &str, limit: Duration, f: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + limit;
        loop {
            if let Some(s) = self.status() {
                if f(&s) {
                    return s;
                }
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}; status: {:?}",
                self.status()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn terminate(&mut self) -> i32 {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code().unwrap_or(-1);
            }
            assert!(Instant::now() < end, "the service did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sim_state(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).unwrap()).unwrap()
}

fn start_sim(dir: &Path, extra: &[&str]) -> Sim {
    let state = dir.join("state.json");
    let mut args = vec!["--state".to_string(), state.to_str().unwrap().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    // The simulator's socket lives in `dir` so the service can be started before it.
    Sim::start_in(tempfile::tempdir().unwrap(), dir.join("sim.sock"), &refs)
}

#[test]
fn the_simulated_me_missing_for_a_while_then_up_ends_activated() {
    let dir = tempfile::tempdir().unwrap();
    let device = format!("sim:{}", dir.path().join("sim.sock").display());
    let mut svc = Service::start(dir.path(), &device, &[]);
    let s = svc.wait_for(
        "a retry with the no-device error",
        Duration::from_secs(10),
        |s| s["state"] == "retrying" && s["lastError"]["code"] == 2,
    );
    assert!(s["nextAttempt"].is_string());
    let _sim = start_sim(dir.path(), &[]);
    let s = svc.wait_for("activated", Duration::from_secs(20), |s| {
        s["state"] == "activated"
    });
    assert_eq!(s["controlMode"], "client control mode");
    assert_eq!(sim_state(dir.path())["control_mode"], 1);
    assert!(s["failuresByCode"]["2"].as_u64().unwrap() >= 1);
    // `amt-agent status` reads the same file.
    let o = agent_env(
        &["status", "--json"],
        &[("AMT_AGENT_STATE_DIR", svc.state_dir.to_str().unwrap())],
    );
    assert_eq!(code(&o), 0);
    assert_eq!(svc.terminate(), 0);
    assert_eq!(svc.status().unwrap()["state"], "stopped");
}

#[test]
fn amt_not_ready_for_seconds_then_activated() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = profile("amt16.1");
    p["not_ready_ms"] = 1500.into();
    std::fs::write(
        dir.path().join("state.json"),
        serde_json::to_vec(&p).unwrap(),
    )
    .unwrap();
    let sim = start_sim(dir.path(), &[]);
    let mut svc = Service::start(dir.path(), &sim.device(), &[]);
    let s = svc.wait_for("activated", Duration::from_secs(25), |s| {
        s["state"] == "activated"
    });
    assert!(
        s["failuresByCode"]["4"].as_u64().unwrap_or(0) >= 1,
        "NOT_READY was reported: {s}"
    );
    assert_eq!(sim_state(dir.path())["control_mode"], 1);
    assert_eq!(svc.terminate(), 0);
}

#[test]
fn an_me_reset_in_the_middle_of_activation_ends_activated() {
    let dir = tempfile::tempdir().unwrap();
    // The reset lands in the WS-MAN phase (after the AMTHI reads, among the LME messages).
    let sim = start_sim(dir.path(), &["--fault", "reset-after=12"]);
    let mut svc = Service::start(dir.path(), &sim.device(), &[]);
    svc.wait_for("activated", Duration::from_secs(30), |s| {
        s["state"] == "activated"
    });
    assert_eq!(sim_state(dir.path())["control_mode"], 1);
    assert_eq!(svc.terminate(), 0);
}

#[test]
fn sigterm_mid_flow_then_a_restart_ends_activated_and_one_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path(), &["--fault", "wsman-latency=700"]);
    let mut svc = Service::start(dir.path(), &sim.device(), &[]);
    svc.wait_for("activating", Duration::from_secs(15), |s| {
        s["state"] == "activating"
    });
    assert_eq!(
        svc.terminate(),
        0,
        "SIGTERM during a step: the step finishes, then a clean exit"
    );
    let s = svc.status().unwrap();
    assert_eq!(s["state"], "stopped");
    let mut again = Service::start(dir.path(), &sim.device(), &[]);
    again.wait_for("activated", Duration::from_secs(30), |s| {
        s["state"] == "activated"
    });
    // A second service on the same state directory refuses to run: one owner of the ME.
    let second = agent_env(
        &[
            "--device",
            &sim.device(),
            "service",
            "--config",
            "/nonexistent/agent.toml",
        ],
        &[("AMT_AGENT_STATE_DIR", again.state_dir.to_str().unwrap())],
    );
    assert_eq!(code(&second), 4, "{}", stderr(&second));
    assert!(stderr(&second).contains("another amt-agent"));
    assert_eq!(again.terminate(), 0);
    assert_eq!(sim_state(dir.path())["control_mode"], 1);
}

#[test]
fn a_reboot_mid_activation_leaves_in_provisioning_and_the_service_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = profile("amt16.1");
    p["control_mode"] = 1.into();
    p["provisioning_state"] = 1.into();
    std::fs::write(
        dir.path().join("state.json"),
        serde_json::to_vec(&p).unwrap(),
    )
    .unwrap();
    let sim = start_sim(dir.path(), &[]);
    let mut svc = Service::start(dir.path(), &sim.device(), &[]);
    svc.wait_for("activated", Duration::from_secs(20), |s| {
        s["state"] == "activated"
    });
    let st = sim_state(dir.path());
    assert_eq!(
        (st["control_mode"].clone(), st["provisioning_state"].clone()),
        (1.into(), 2.into())
    );
    assert_eq!(svc.terminate(), 0);
}

#[test]
fn the_configuration_file_is_documented_and_strict() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, "mode = \"ccm\"\nretry_max = \"frequently\"\n").unwrap();
    let o = agent(&[
        "--device",
        "sim",
        "service",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 34, "{}", stderr(&o));
    let shipped = repo_file("packaging/agent.toml");
    let text = std::fs::read_to_string(&shipped).unwrap();
    let _: toml::Value = toml::from_str(&text).unwrap();
}

#[test]
fn the_systemd_units_verify_clean() {
    let Ok(v) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    assert!(v.status.success());
    let dir = tempfile::tempdir().unwrap();
    for unit in [
        "amt-agent.service",
        "amt-agent-oneshot.service",
        "amt-agent-oneshot.timer",
    ] {
        // Point ExecStart at the binary under test: verify checks that it exists.
        let text = std::fs::read_to_string(repo_file(&format!("systemd/{unit}")))
            .unwrap()
            .replace("/usr/bin/amt-agent", AGENT);
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    let o = run_with_deadline(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg("--man=no")
            .arg(dir.path().join("amt-agent.service"))
            .arg(dir.path().join("amt-agent-oneshot.service"))
            .arg(dir.path().join("amt-agent-oneshot.timer")),
        Duration::from_secs(60),
    );
    let err = stderr(&o);
    // Outside a booted systemd (containers, CI) verify may note that it cannot talk to the
    // manager; anything about our units is a failure.
    let ours: Vec<&str> = err.lines().filter(|l| l.contains("amt-agent")).collect();
    assert!(ours.is_empty(), "systemd-analyze verify:\n{err}");
}

#[test]
fn the_service_tells_systemd_ready_status_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path(), &[]);
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut svc = Service::start(
        dir.path(),
        &sim.device(),
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut seen: Vec<String> = Vec::new();
    let end = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 512];
    while !seen.iter().any(|m| m.starts_with("STATUS=activated"))
        || !seen.iter().any(|m| m == "WATCHDOG=1")
    {
        assert!(Instant::now() < end, "messages so far: {seen:?}");
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert!(seen.iter().any(|m| m == "READY=1"), "{seen:?}");
    assert_eq!(svc.terminate(), 0);
    while let Ok(n) = sock.recv(&mut buf) {
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(seen.iter().any(|m| m == "STOPPING=1"), "{seen:?}");
}

/// Runs `diagnostics wsman put` as admin, retrying (bounded) while the service holds the ME.
fn wsman_put(device: &str, set: &str) {
    for _ in 0..50 {
        let o = agent_env(
            &[
                "--device",
                device,
                "diagnostics",
                "wsman",
                "put",
                "AMT_GeneralSettings",
                "--set",
                set,
            ],
            &[("AMT_PASSWORD", PW)],
        );
        if code(&o) == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("diagnostics wsman put {set} never went through");
}

#[test]
fn with_a_profile_the_service_applies_it_then_reports_drift_then_fixes_it() {
    let dir = tempfile::tempdir().unwrap();
    let _sim = start_sim(dir.path(), &[]);
    let device = format!("sim:{}", dir.path().join("sim.sock").display());
    let profile = dir.path().join("profile.yaml");
    std::fs::write(
        &profile,
        format!("version: 1\ncontrolMode: ccm\nadminPassword: {PW}\nhostname: {{hostName: wks-0042, domainName: corp.example.com}}\nfeatures: {{kvm: true, sol: false, ider: false, userConsent: all}}\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&profile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let metrics = dir.path().join("amt.prom");
    let env = |drift: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("AMT_AGENT_PROFILE", profile.display().to_string()),
            (
                "AMT_AGENT_DATA_DIR",
                dir.path().join("data").display().to_string(),
            ),
            ("AMT_AGENT_PLAN_INTERVAL", "300ms".into()),
            ("AMT_AGENT_METRICS_FILE", metrics.display().to_string()),
            ("AMT_AGENT_DRIFT", drift.into()),
        ]
    };
    let as_refs = |v: &Vec<(&'static str, String)>| -> Vec<(&'static str, String)> { v.clone() };
    let report = as_refs(&env("report"));
    let refs: Vec<(&str, &str)> = report.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut svc = Service::start(dir.path(), &device, &refs);
    let s = svc.wait_for("the profile applied", Duration::from_secs(30), |s| {
        s["state"] == "activated" && s["controlModeCode"] == 1
    });
    assert_eq!(s["desired"], format!("profile {}", profile.display()));
    assert!(s["lastPlan"].is_string());
    let gs = |d: &Path| {
        sim_state(d)["instances"]["AMT_GeneralSettings"][0]
            .as_array()
            .unwrap()
            .iter()
            .find(|kv| kv[0] == "HostName")
            .map(|kv| kv[1].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(gs(dir.path()), "wks-0042");

    // Someone renames AMT: the next plan reports exactly that, and nothing is changed.
    wsman_put(&device, "HostName=rogue");
    let s = svc.wait_for("the drift reported", Duration::from_secs(20), |s| {
        s["state"] == "drifted"
    });
    let d = s["drift"].as_array().unwrap();
    assert_eq!(d.len(), 1, "{s:#}");
    assert_eq!(
        (d[0]["area"].as_str(), d[0]["setting"].as_str()),
        (Some("hostname"), Some("host name"))
    );
    assert_eq!(
        (
            d[0]["current"].as_str(),
            d[0]["desired"].as_str(),
            d[0]["fixed"].as_bool()
        ),
        (Some("rogue"), Some("wks-0042"), Some(false))
    );
    assert!(d[0]["since"].is_string());
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(gs(dir.path()), "rogue", "drift = report changed AMT");
    let m = std::fs::read_to_string(&metrics).unwrap();
    assert!(m.contains("amt_agent_drift_settings 1\n"), "{m}");
    assert!(
        m.contains("amt_agent_drift{area=\"hostname\",setting=\"host name\"} 1\n"),
        "{m}"
    );
    let st = agent_env(
        &["status", "--json"],
        &[("AMT_AGENT_STATE_DIR", svc.state_dir.to_str().unwrap())],
    );
    assert_eq!(code(&st), 2, "{}", stdout(&st));
    let st = agent_env(
        &["status"],
        &[("AMT_AGENT_STATE_DIR", svc.state_dir.to_str().unwrap())],
    );
    assert!(
        stdout(&st).contains("drift:         hostname: host name: rogue (wanted wks-0042) since"),
        "{}",
        stdout(&st)
    );
    assert_eq!(svc.terminate(), 0);

    // drift = "fix": the service applies the profile again and says so.
    let fix = as_refs(&env("fix"));
    let refs: Vec<(&str, &str)> = fix.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let svc = Service::start(dir.path(), &device, &refs);
    let s = svc.wait_for("the drift fixed", Duration::from_secs(30), |s| {
        s["state"] == "activated" && s["driftFixed"] == 1
    });
    assert_eq!(gs(dir.path()), "wks-0042");
    let d = &s["drift"][0];
    assert_eq!(d["fixed"], true, "{s:#}");
    assert!(d["fixedAt"].is_string());
    let m = std::fs::read_to_string(&metrics).unwrap();
    assert!(m.contains("amt_agent_drift_settings 0\n"), "{m}");
    assert!(m.contains("amt_agent_drift_fixed_total 1\n"), "{m}");
}
