//! End to end through RPS: `amt-agent` ↔ the Node RPS peer (tests/rps_peer, speaking RPS 2.40.0's
//! protocol with Intel's wsman-messages) ↔ `amt-sim --state`. Each test checks the simulated
//! firmware's final state, not only the exit code. Without node or the peer's node_modules the
//! tests print `skipped: …` and return.
// The tests drive Linux processes (amt-sim, its Unix socket, signals); the Windows build is
// tested by tests/windows.rs, the .exe under Wine.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const AMT_PW: &str = "P@ssw0rd-Amt1";
const NEW_PW: &str = "N3w-P@ssw0rd";

fn peer_dir() -> PathBuf {
    repo_file("tests/rps_peer")
}

/// Whether node and the peer's dependencies are there; prints why not.
fn peer_available() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !node {
        skip_without_node(
            "rps",
            "node is not installed (make rps-peer-deps installs the peer; .ci/run installs node)",
        );
        return false;
    }
    if !peer_dir()
        .join("node_modules/@device-management-toolkit/wsman-messages")
        .exists()
    {
        skip_without_node(
            "rps",
            "tests/rps_peer/node_modules is missing (run: make rps-peer-deps)",
        );
        return false;
    }
    true
}

/// A running RPS peer; killed when dropped.
struct Peer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Peer {
    fn start(dir: &Path, config: Value, tls: Option<(&Path, &Path)>) -> Peer {
        Peer::start_with(dir, config, tls, None)
    }

    /// Starts the peer on a given loopback port (to bring "RPS" up after a client started).
    fn start_with(
        dir: &Path,
        config: Value,
        tls: Option<(&Path, &Path)>,
        port: Option<u16>,
    ) -> Peer {
        let cfg = dir.join(format!("peer-{}.json", rand_suffix()));
        std::fs::write(&cfg, config.to_string()).unwrap();
        let log = cfg.with_extension("log");
        let mut cmd = Command::new("node");
        cmd.arg(peer_dir().join("peer.js"))
            .arg("--config")
            .arg(&cfg)
            .arg("--log")
            .arg(&log);
        if let Some((cert, key)) = tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        if let Some(p) = port {
            cmd.arg("--listen").arg(format!("127.0.0.1:{p}"));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("the RPS peer did not start within 15 s");
            }
        };
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected peer output: {line:?}"));
        Peer { child, port, log }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/activate", self.port)
    }

    fn log(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The final message the peer sent.
    fn last_final(&self) -> Value {
        self.log()
            .into_iter()
            .rev()
            .find(|e| matches!(e["json"]["method"].as_str(), Some("success" | "error")))
            .map(|e| e["json"].clone())
            .expect("a final message in the peer log")
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn profiles() -> Value {
    json!({
        "ccm-peer": {"mode": "ccm", "password": AMT_PW, "userConsent": "All"},
        "acm-peer": {"mode": "acm", "password": AMT_PW, "mebxPassword": "P@ssw0rd-Mebx1", "userConsent": "None"}
    })
}

fn config(extra: Value) -> Value {
    let mut c = json!({"delayMs": 300, "profiles": profiles()});
    if let (Value::Object(c), Value::Object(e)) = (&mut c, extra) {
        c.extend(e);
    }
    c
}

fn sim() -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("sim.sock");
    let state = dir.path().join("state.json");
    let st = state.to_str().unwrap().to_string();
    Sim::start_in(dir, socket, &["--state", &st])
}

fn state(sim: &Sim) -> Value {
    serde_json::from_str(&std::fs::read_to_string(sim.path("state.json")).unwrap()).unwrap()
}

fn ha1(realm: &str, pw: &str) -> String {
    amt_agent::wsman::digest::md5_hex(&format!("admin:{realm}:{pw}"))
}

fn instance_prop(st: &Value, class: &str, idx: usize, name: &str) -> Option<String> {
    st["instances"][class][idx]
        .as_array()?
        .iter()
        .find(|kv| kv[0] == name)
        .and_then(|kv| kv[1].as_str().map(str::to_string))
}

fn run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(AGENT);
    c.args(args)
        .env_remove("AMT_AGENT_DEVICE")
        .env_remove("AMT_AGENT_LOG")
        .env_remove("AMT_PASSWORD")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("AUTH_TOKEN")
        .env_remove("AMT_AGENT_TOKEN");
    for (k, v) in env {
        c.env(k, v);
    }
    run_with_deadline(&mut c, Duration::from_secs(60))
}

fn lsa_password(sim: &Sim) -> String {
    state(sim)["lsa_password"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn ccm_activation_end_to_end_reaches_ccm_with_the_profile_password() {
    if !peer_available() {
        return;
    }
    let mut sim = sim();
    let peer = Peer::start(sim.dir.path(), config(json!({})), None);
    let dev = sim.device();
    let started = Instant::now();
    let o = run(
        &[
            "--device",
            &dev,
            "-vvv",
            "activate",
            "-u",
            &peer.url(),
            "--profile",
            "ccm-peer",
            "--hostname",
            "sim-host",
        ],
        &[],
    );
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(code(&o), 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("Status: Client control mode."), "{out}");
    assert!(
        out.contains("Control mode (firmware): client control mode"),
        "{out}"
    );
    assert!(err.contains("RPS: Activation completed"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
    sim.stop();
    let st = state(&sim);
    assert_eq!(st["control_mode"], 1);
    let realm = st["digest_realm"].as_str().unwrap();
    assert_eq!(st["admin_ha1"], ha1(realm, AMT_PW));
    assert_eq!(
        instance_prop(&st, "AMT_RedirectionService", 0, "EnabledState").as_deref(),
        Some("32771")
    );
    assert_eq!(
        instance_prop(&st, "CIM_KVMRedirectionSAP", 0, "EnabledState").as_deref(),
        Some("2")
    );
    // User consent "All": OptInRequired stays 4294967295 (all; rps-protocol.md §5.1 step 6, §8).
    assert_eq!(
        instance_prop(&st, "IPS_OptInService", 0, "OptInRequired").as_deref(),
        Some("4294967295")
    );
    // The LSA password travels in the first message only: never in any log line, even at -vvv.
    let lsa = lsa_password(&sim);
    assert!(!lsa.is_empty());
    assert!(!err.contains(&lsa), "the LSA password leaked into the log");
    // The peer saw RPS's framing from us: one response per wsman, protocol 4.0.0.
    let log = peer.log();
    let wsman = log
        .iter()
        .filter(|e| e["json"]["method"] == "wsman")
        .count();
    let responses = log
        .iter()
        .filter(|e| e["json"]["method"] == "response")
        .count();
    assert!(wsman >= 29, "{wsman} wsman requests");
    assert_eq!(wsman, responses);
    let fin = peer.last_final();
    assert_eq!(fin["method"], "success");
    let m: Value = serde_json::from_str(fin["message"].as_str().unwrap()).unwrap();
    assert_eq!(m["Components"]["Activation"]["Mode"], "CCM");
}

#[test]
fn reactivation_maintenance_and_deactivation_through_one_rps() {
    if !peer_available() {
        return;
    }
    let mut sim = sim();
    let peer = Peer::start(sim.dir.path(), config(json!({})), None);
    let dev = sim.device();
    let url = peer.url();
    let pw = [("AMT_PASSWORD", AMT_PW)];
    let o = run(
        &[
            "--device",
            &dev,
            "activate",
            "-u",
            &url,
            "--profile",
            "ccm-peer",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // Re-activation of a CCM device with the same profile (trace 02).
    let o = run(
        &[
            "--device", &dev, "--json", "activate", "-u", &url, "-profile", "ccm-peer",
        ],
        &pw,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["status"], "success");
    assert_eq!(j["mode"], "CCM");
    assert_eq!(j["rpsStatus"], "already enabled in client mode.");
    assert_eq!(j["components"]["Activation"]["mode"], "CCM");

    // A wrong password is refused by RPS before any WS-MAN.
    let o = run(
        &["--device", &dev, "maintenance", "syncclock", "-u", &url],
        &[("AMT_PASSWORD", "Wr0ng-P@ss")],
    );
    assert_eq!(code(&o), 23, "{}", stderr(&o));
    assert!(stdout(&o).contains("DOES NOT match stored version"));

    let o = run(
        &["--device", &dev, "maintenance", "syncclock", "-u", &url],
        &pw,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("synctime completed succesfully"));

    let o = run(
        &[
            "--device",
            &dev,
            "maintenance",
            "synchostname",
            "-u",
            &url,
            "--hostname",
            "sim-host-renamed",
        ],
        &pw,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    let o = run(
        &[
            "--device",
            &dev,
            "maintenance",
            "syncip",
            "-u",
            &url,
            "-staticip",
            "192.168.50.77",
            "--netmask",
            "255.255.255.0",
            "--gateway",
            "192.168.50.1",
        ],
        &pw,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // The same address again: RPS's own failure, with rpc-go's SyncIpFailed.
    let o = run(
        &[
            "--device",
            &dev,
            "maintenance",
            "syncip",
            "-u",
            &url,
            "--static-ip",
            "192.168.50.77",
        ],
        &pw,
    );
    assert_eq!(code(&o), 152, "{}", stderr(&o));
    assert!(stdout(&o).contains("IPAddress already synchronized"));

    let o = run(
        &[
            "--device",
            &dev,
            "maintenance",
            "syncdeviceinfo",
            "-u",
            &url,
        ],
        &pw,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    let o = run(
        &[
            "--device",
            &dev,
            "maintenance",
            "changepassword",
            "-u",
            &url,
        ],
        &[("AMT_PASSWORD", AMT_PW), ("AMT_NEW_PASSWORD", NEW_PW)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!stderr(&o).contains(NEW_PW) && !stdout(&o).contains(NEW_PW));
    {
        let st = state(&sim);
        let realm = st["digest_realm"].as_str().unwrap();
        assert_eq!(st["admin_ha1"], ha1(realm, NEW_PW));
        assert_eq!(
            instance_prop(&st, "AMT_GeneralSettings", 0, "HostName").as_deref(),
            Some("sim-host-renamed")
        );
        assert_eq!(
            instance_prop(&st, "AMT_EthernetPortSettings", 0, "IPAddress").as_deref(),
            Some("192.168.50.77")
        );
    }

    let o = run(
        &["--device", &dev, "--json", "deactivate", "-u", &url],
        &[("AMT_PASSWORD", NEW_PW)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["rpsStatus"], "Deactivated");
    assert_eq!(j["mode"], "none");
    sim.stop();
    let st = state(&sim);
    assert_eq!(st["control_mode"], 0);
    assert_eq!(st["admin_ha1"], "");
}

#[test]
fn rps_refusals_exit_with_rpc_go_codes() {
    if !peer_available() {
        return;
    }
    let sim = sim();
    let dev = sim.device();
    let peer = Peer::start(
        sim.dir.path(),
        config(json!({"domains": [{"suffix": "amt.example.test"}]})),
        None,
    );
    let url = peer.url();
    // Unknown profile (plain sentence, before any WS-MAN).
    let o = run(
        &[
            "--device",
            &dev,
            "activate",
            "-u",
            &url,
            "--profile",
            "nope",
        ],
        &[],
    );
    assert_eq!(code(&o), 21, "{}", stderr(&o));
    assert!(stdout(&o).contains("nope does not match list of available AMT profiles."));
    // ACM with a domain suffix RPS has no certificate for.
    let o = run(
        &[
            "--device",
            &dev,
            "activate",
            "-u",
            &url,
            "--profile",
            "acm-peer",
            "-d",
            "other.example.org",
        ],
        &[],
    );
    assert_eq!(code(&o), 24, "{}", stderr(&o));
    assert!(stdout(&o).contains("Specified AMT domain suffix: other.example.org does not match"));
    // Deactivating a device that is not activated.
    let o = run(
        &["--device", &dev, "deactivate", "-u", &url],
        &[("AMT_PASSWORD", AMT_PW)],
    );
    assert_eq!(code(&o), 109, "{}", stderr(&o));
    assert!(stdout(&o).contains("is in pre-provisioning mode."));
    // No URL, no profile.
    let o = run(
        &["--device", &dev, "activate", "--profile", "ccm-peer"],
        &[],
    );
    assert_eq!(code(&o), 20, "{}", stderr(&o));
    let o = run(&["--device", &dev, "activate", "-u", &url], &[]);
    assert_eq!(code(&o), 21, "{}", stderr(&o));
    assert_eq!(state(&sim)["control_mode"], 0);
}

#[test]
fn untrusted_provisioning_root_is_reported() {
    if !peer_available() {
        return;
    }
    let sim = sim();
    let dev = sim.device();
    // A root that is not among the simulator's active hashes.
    let key = rcgen::KeyPair::generate().unwrap();
    let root = rcgen::CertificateParams::new(vec![])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let root_pem = sim.path("root.pem");
    std::fs::write(&root_pem, root.pem()).unwrap();
    let peer = Peer::start(
        sim.dir.path(),
        config(
            json!({"domains": [{"suffix": "amt.example.test", "rootCert": root_pem,
            "leafCert": root_pem, "leafKey": root_pem}]}),
        ),
        None,
    );
    let o = run(
        &[
            "--device",
            &dev,
            "activate",
            "-u",
            &peer.url(),
            "--profile",
            "acm-peer",
            "-d",
            "amt.example.test",
        ],
        &[],
    );
    assert_eq!(code(&o), 102, "{}", stderr(&o));
    assert!(stdout(&o).contains("hash does not exists in list of trusted root certificates"));
    assert_eq!(state(&sim)["control_mode"], 0);
}

#[test]
fn protocol_version_rejection_and_peer_closing_mid_flow_fail_cleanly() {
    if !peer_available() {
        return;
    }
    let sim = sim();
    let dev = sim.device();
    // An RPS on protocol 3.x refuses our 4.0.0 (its VersionChecker).
    let old = Peer::start(
        sim.dir.path(),
        config(json!({"rpsProtocol": "3.0.0"})),
        None,
    );
    let o = run(
        &[
            "--device",
            &dev,
            "activate",
            "-u",
            &old.url(),
            "--profile",
            "ccm-peer",
        ],
        &[],
    );
    assert_ne!(code(&o), 0);
    assert!(
        stdout(&o).contains("protocol version NOT supported: 4.0.0"),
        "{}",
        stdout(&o)
    );
    // RPS drops the socket after five exchanges.
    let closing = Peer::start(sim.dir.path(), config(json!({"closeAfter": 5})), None);
    let o = run(
        &[
            "--device",
            &dev,
            "activate",
            "-u",
            &closing.url(),
            "--profile",
            "ccm-peer",
        ],
        &[],
    );
    assert_eq!(code(&o), 10, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("RPS closed the connection before its final message"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_answer_over_rps_message_limit_stops_the_flow_and_says_why() {
    if !peer_available() {
        return;
    }
    // Seed the firmware with enough certificates that one Pull answer exceeds 100 KiB.
    let dir = tempfile::tempdir().unwrap();
    let state_path = dir.path().join("state.json");
    let mut p = common::profile("amt16.1");
    let blob = "A".repeat(3000);
    let certs: Vec<Value> = (0..40)
        .map(|i| {
            json!([
                ["ElementName", format!("cert {i}")],
                [
                    "InstanceID",
                    format!("Intel(r) AMT Certificate: Handle: {i}")
                ],
                ["X509Certificate", blob]
            ])
        })
        .collect();
    let seeded = {
        let s = Sim::start_in(
            tempfile::tempdir().unwrap(),
            dir.path().join("seed.sock"),
            &["--state", state_path.to_str().unwrap()],
        );
        // Make the simulator write its factory instances, then add the certificates.
        let _ = run(&["--device", &s.device(), "amtinfo", "--mode"], &[]);
        drop(s);
        std::fs::read_to_string(&state_path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    };
    if let Some(s) = seeded {
        p = s;
    }
    p["instances"]["AMT_PublicKeyCertificate"] = Value::Array(certs);
    std::fs::write(&state_path, p.to_string()).unwrap();
    let socket = dir.path().join("sim.sock");
    let st = state_path.to_str().unwrap().to_string();
    let sim = Sim::start_in(dir, socket, &["--state", &st]);
    let peer = Peer::start(sim.dir.path(), config(json!({})), None);
    let o = run(
        &[
            "--device",
            &sim.device(),
            "activate",
            "-u",
            &peer.url(),
            "--profile",
            "ccm-peer",
        ],
        &[],
    );
    assert_eq!(code(&o), 101, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("over RPS's 100 KiB (102400-byte) limit"),
        "{}",
        stderr(&o)
    );
}

/// A CA and a `localhost` server certificate signed by it, as PEM files in `dir`.
fn test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(vec![]).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "amt-agent test RPS CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let (ca_pem, cert_pem, key_pem) =
        (dir.join("ca.pem"), dir.join("rps.pem"), dir.join("rps.key"));
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    std::fs::write(&cert_pem, cert.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    (ca_pem, cert_pem, key_pem)
}

#[test]
fn ccm_activation_over_wss_with_a_private_ca() {
    if !peer_available() {
        return;
    }
    let mut sim = sim();
    let dev = sim.device();
    let (ca, cert, key) = test_ca(sim.dir.path());
    let peer = Peer::start(sim.dir.path(), config(json!({})), Some((&cert, &key)));
    let url = format!("wss://localhost:{}/activate", peer.port);
    // Not trusted without the CA: rpc-go's ServerCertificateVerificationFailed.
    let o = run(
        &[
            "--device",
            &dev,
            "activate",
            "-u",
            &url,
            "--profile",
            "ccm-peer",
        ],
        &[],
    );
    assert_eq!(code(&o), 22, "{}", stderr(&o));
    assert!(stderr(&o).contains("--ca-file"), "{}", stderr(&o));
    let ca_s = ca.to_str().unwrap();
    let o = run(
        &[
            "--device",
            &dev,
            "--json",
            "activate",
            "-u",
            &url,
            "--profile",
            "ccm-peer",
            "--ca-file",
            ca_s,
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["mode"], "CCM");
    assert_eq!(j["components"]["Activation"]["result"], "Success");
    // The system's trust store counts too (a CA the distribution or, on Windows, GPO deployed):
    // here through SSL_CERT_FILE, which the system store loader honours, with no --ca-file.
    let o = run(
        &["--device", &dev, "maintenance", "syncclock", "-u", &url],
        &[("AMT_PASSWORD", AMT_PW), ("SSL_CERT_FILE", ca_s)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!stderr(&o).contains("WARNING"), "{}", stderr(&o));
    // -n skips verification, loudly.
    let o = run(
        &[
            "--device",
            &dev,
            "maintenance",
            "syncclock",
            "-u",
            &url,
            "-n",
        ],
        &[("AMT_PASSWORD", AMT_PW)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("WARNING: not verifying RPS's TLS certificate"));
    sim.stop();
    assert_eq!(state(&sim)["control_mode"], 1);
}

/// A provisioning chain made with the openssl CLI: an RSA root and a leaf for `amt.example.test`
/// with the AMT activation EKU and the setup OU. `None` (test skipped) without openssl.
fn provisioning_chain(dir: &Path) -> Option<(PathBuf, PathBuf, PathBuf, String)> {
    provisioning_chain_with(dir, "keyUsage=critical,keyCertSign,cRLSign")
}

/// The same, with the root's keyUsage line given (to make a root AMT refuses as an issuer).
fn provisioning_chain_with(
    dir: &Path,
    root_ku: &str,
) -> Option<(PathBuf, PathBuf, PathBuf, String)> {
    let ok = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    std::fs::write(
        dir.join("leaf.ext"),
        "extendedKeyUsage=serverAuth,2.16.840.1.113741.1.2.3\n",
    )
    .ok()?;
    let made = ok(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "root.key",
        "-out",
        "root.pem",
        "-days",
        "30",
        "-subj",
        "/CN=amt-agent test provisioning root",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        root_ku,
    ]) && ok(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/OU=Intel(R) Client Setup Certificate/CN=amt.example.test",
    ]) && ok(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "root.pem",
        "-CAkey",
        "root.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "30",
        "-sha256",
        "-extfile",
        "leaf.ext",
    ]) && ok(&[
        "x509", "-in", "root.pem", "-outform", "der", "-out", "root.der",
    ]);
    if !made {
        eprintln!("skipped: openssl could not make a provisioning chain");
        return None;
    }
    use sha2::Digest;
    let der = std::fs::read(dir.join("root.der")).ok()?;
    let hash = hex_lower(&sha2::Sha256::digest(&der));
    Some((
        dir.join("leaf.pem"),
        dir.join("leaf.key"),
        dir.join("root.pem"),
        hash,
    ))
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A simulator whose firmware trusts `root_hash` and whose PKI DNS suffix is amt.example.test.
fn acm_sim(root_hash: &str) -> Sim {
    acm_sim_with(root_hash, "amt.example.test", "corp.example.com")
}

/// The same with the PKI DNS suffix `pki` and the DHCP option 15 domain `dhcp` given.
fn acm_sim_with(root_hash: &str, pki: &str, dhcp: &str) -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let mut p = common::profile("amt16.1");
    p["pki_dns_suffix"] = json!(pki);
    p["dhcp_dns_suffix"] = json!(dhcp);
    p["cert_hashes"].as_array_mut().unwrap().push(json!({
        "name": "amt-agent test provisioning root", "algorithm": "SHA256", "hash": root_hash,
        "is_default": false, "is_active": true}));
    std::fs::write(&state, p.to_string()).unwrap();
    let socket = dir.path().join("sim.sock");
    let st = state.to_str().unwrap().to_string();
    Sim::start_in(dir, socket, &["--state", &st])
}

#[test]
fn acm_activation_and_ccm_to_acm_upgrade() {
    if !peer_available() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let Some((leaf, key, root, hash)) = provisioning_chain(keys.path()) else {
        return;
    };
    let domains = json!({"domains": [{"suffix": "amt.example.test", "leafCert": leaf,
        "leafKey": key, "rootCert": root}]});

    // Fresh device, ACM profile (trace 10).
    let mut sim = acm_sim(&hash);
    let peer = Peer::start(sim.dir.path(), config(domains.clone()), None);
    let o = run(
        &[
            "--device",
            &sim.device(),
            "--json",
            "activate",
            "-u",
            &peer.url(),
            "--profile",
            "acm-peer",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["rpsStatus"], "Activated to admin control mode.");
    assert_eq!(j["mode"], "ACM");
    sim.stop();
    let st = state(&sim);
    assert_eq!(st["control_mode"], 2);
    assert_eq!(st["mebx_password_set"], true);
    assert_eq!(
        st["admin_ha1"],
        ha1(st["digest_realm"].as_str().unwrap(), AMT_PW)
    );
    // User consent "None": RPS Puts OptInRequired=0 last (trace 10 #34).
    assert_eq!(
        instance_prop(&st, "IPS_OptInService", 0, "OptInRequired").as_deref(),
        Some("0")
    );

    // CCM first, then the ACM profile: UpgradeClientToAdmin (trace 03).
    let mut sim = acm_sim(&hash);
    let peer = Peer::start(sim.dir.path(), config(domains), None);
    let dev = sim.device();
    let o = run(
        &[
            "--device",
            &dev,
            "activate",
            "-u",
            &peer.url(),
            "--profile",
            "ccm-peer",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(
        &[
            "--device",
            &dev,
            "activate",
            "-u",
            &peer.url(),
            "--profile",
            "acm-peer",
        ],
        &[("AMT_PASSWORD", AMT_PW)],
    );
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("Upgraded to admin control mode."));
    sim.stop();
    let st = state(&sim);
    assert_eq!(st["control_mode"], 2);
    // The CCM run left consent at all; the upgrade lowers it to none (trace 03 #35).
    assert_eq!(
        instance_prop(&st, "IPS_OptInService", 0, "OptInRequired").as_deref(),
        Some("0")
    );
}

#[test]
fn the_service_rides_out_rps_being_down_then_activates_through_it() {
    if !peer_available() {
        return;
    }
    let sim = sim();
    // RPS is down when the service starts: nothing listens on its port yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/activate");
    let run_dir = tempfile::tempdir().unwrap();
    // The AMT password the profile sets; maintenance runs as admin with it.
    let pw_file = run_dir.path().join("amt-password");
    std::fs::write(&pw_file, format!("{AMT_PW}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let state_dir = run_dir.path().join("run");
    let mut child = Command::new(AGENT)
        .args([
            "--device",
            &sim.device(),
            "service",
            "--config",
            "/nonexistent/agent.toml",
        ])
        .env_remove("AMT_PASSWORD")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env("AMT_AGENT_STATE_DIR", &state_dir)
        .env("AMT_AGENT_METHOD", "rps")
        .env("AMT_AGENT_RPS_URL", &url)
        .env("AMT_AGENT_RPS_PROFILE", "ccm-peer")
        .env("AMT_AGENT_MAINTENANCE", "syncclock")
        .env("AMT_AGENT_PASSWORD_FILE", &pw_file)
        .env("AMT_AGENT_RETRY_INITIAL", "200ms")
        .env("AMT_AGENT_RETRY_MAX", "1s")
        .env("AMT_AGENT_CHECK_INTERVAL", "500ms")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let read_status = || -> Option<Value> {
        std::fs::read_to_string(state_dir.join("status.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
    };
    let end = Instant::now() + Duration::from_secs(30);
    while !read_status().is_some_and(|s| s["state"] == "retrying") {
        assert!(
            Instant::now() < end,
            "no retry while RPS was down: {:?}",
            read_status()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let down = read_status().unwrap();
    assert!(down["lastError"]["message"].is_string(), "{down}");
    assert!(down["nextAttempt"].is_string(), "{down}");
    // RPS comes up; the next attempt succeeds.
    let peer = Peer::start_with(sim.dir.path(), config(json!({})), None, Some(port));
    let end = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let s: Option<Value> = std::fs::read_to_string(state_dir.join("status.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        if let Some(s) = s.filter(|s| s["state"] == "activated") {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("the service did not activate through RPS");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["controlMode"], "client control mode");
    // Then the configured periodic maintenance runs through RPS.
    let end = Instant::now() + Duration::from_secs(30);
    // Two sessions end in `success`: the activation, then the maintenance (syncclock).
    while peer
        .log()
        .iter()
        .filter(|e| e["json"]["method"] == "success")
        .count()
        < 2
    {
        assert!(
            Instant::now() < end,
            "no maintenance reached RPS: {:?} {:?}",
            read_status(),
            peer.log()
                .iter()
                .map(|e| e["json"]["method"].clone())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        peer.last_final()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("synctime completed"),
        "{}",
        peer.last_final()
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    assert_eq!(state(&sim)["control_mode"], 1);
}

#[test]
fn when_amt_refuses_the_chain_rps_sent_the_agent_says_which_certificate_breaks_which_rule() {
    if !peer_available() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    // A root whose keyUsage lacks keyCertSign: RPS accepts it (its hash is trusted), AMT does not.
    let Some((leaf, key, root, hash)) =
        provisioning_chain_with(keys.path(), "keyUsage=critical,digitalSignature")
    else {
        return;
    };
    let domains = json!({"domains": [{"suffix": "amt.example.test", "leafCert": leaf,
        "leafKey": key, "rootCert": root}]});
    let mut sim = acm_sim(&hash);
    let peer = Peer::start(sim.dir.path(), config(domains), None);
    let o = run(
        &[
            "--device",
            &sim.device(),
            "activate",
            "-u",
            &peer.url(),
            "--profile",
            "acm-peer",
        ],
        &[],
    );
    assert_ne!(code(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("CERT_VERIFY_FAILED (4)"),
        "the firmware's answer by name: {err}"
    );
    assert!(err.contains("AMT-ISSUER-KEYCERTSIGN"), "the rule: {err}");
    assert!(
        err.contains("CN=amt-agent test provisioning root"),
        "the certificate: {err}"
    );
    assert!(err.contains("keyCertSign"), "the fix: {err}");
    sim.stop();
    assert_eq!(state(&sim)["control_mode"], 0, "nothing was activated");
}

/// Issue 11 through RPS: `-d` picks RPS's domain (amt.example.test), but the firmware has no PKI
/// DNS suffix and trusts its DHCP lease's domain, so AdminSetup answers AUTH_FAILED. The diagnosis
/// blames the domain with the firmware's suffix and where it comes from, never `-d`, and says
/// nothing about the private key RPS holds.
#[test]
fn when_amt_refuses_adminsetup_for_the_domain_the_diagnosis_names_the_firmwares_suffix() {
    if !peer_available() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let Some((leaf, key, root, hash)) = provisioning_chain(keys.path()) else {
        return;
    };
    let domains = json!({"domains": [{"suffix": "amt.example.test", "leafCert": leaf,
        "leafKey": key, "rootCert": root}]});
    let mut sim = acm_sim_with(&hash, "", "corp.example.com");
    let peer = Peer::start(sim.dir.path(), config(domains), None);
    let o = run(
        &[
            "--device",
            &sim.device(),
            "activate",
            "-u",
            &peer.url(),
            "--profile",
            "acm-peer",
            "-d",
            "amt.example.test",
        ],
        &[],
    );
    let err = stderr(&o);
    assert_ne!(code(&o), 0, "{err}");
    assert!(
        err.contains("-d amt.example.test picks RPS's domain, but AMT trusts corp.example.com"),
        "warned before RPS is asked: {err}"
    );
    assert!(err.contains("AdminSetup returned AUTH_FAILED (5)"), "{err}");
    let why = err
        .split("Why AMT refused the provisioning certificate RPS sent:")
        .nth(1)
        .unwrap_or_else(|| panic!("no diagnosis: {err}"));
    let first = why.lines().find(|l| l.starts_with("error[")).unwrap_or("");
    assert!(first.starts_with("error[AMT-LEAF-DOMAIN]"), "{why}");
    assert!(
        why.contains(
            "CN amt.example.test does not match corp.example.com, the DHCP option 15 domain AMT received"
        ),
        "{why}"
    );
    assert!(why.contains("--pki-dns-suffix amt.example.test"), "{why}");
    assert!(
        !err.contains("AMT-KEY-MATCH") && !err.contains("holds no private key"),
        "no rule about a key the agent never had: {err}"
    );
    sim.stop();
    assert_eq!(state(&sim)["control_mode"], 0, "nothing was activated");
}

/// A minimal HTTP CONNECT proxy on loopback: records each CONNECT target, answers 200 and copies
/// bytes both ways; `refuse` answers 403 instead. Stops with the test process.
struct ConnectProxy {
    port: u16,
    targets: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ConnectProxy {
    fn start(refuse: bool) -> ConnectProxy {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let targets = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = targets.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut client) = conn else { return };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if client.read(&mut b).unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(b[0]);
                    }
                    let line = String::from_utf8_lossy(&head)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string();
                    let target = line.split(' ').nth(1).unwrap_or("").to_string();
                    seen.lock().unwrap().push(line.clone());
                    if refuse || !line.starts_with("CONNECT ") {
                        let _ = client
                            .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
                        return;
                    }
                    let Ok(upstream) = std::net::TcpStream::connect(&target) else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                        return;
                    };
                    let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                    let (mut c2, mut u2) =
                        (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                    let (mut c1, mut u1) = (client, upstream);
                    let t = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c2, &mut u2);
                        let _ = u2.shutdown(std::net::Shutdown::Write);
                    });
                    let _ = std::io::copy(&mut u1, &mut c1);
                    let _ = c1.shutdown(std::net::Shutdown::Write);
                    let _ = t.join();
                });
            }
        });
        ConnectProxy { port, targets }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

#[test]
fn the_websocket_goes_through_an_http_connect_proxy_and_no_proxy_bypasses_it() {
    if !peer_available() {
        return;
    }
    let mut sim = sim();
    let dev = sim.device();
    let peer = Peer::start(sim.dir.path(), config(json!({"delayMs": 0})), None);
    let url = peer.url();
    let connect = format!("CONNECT 127.0.0.1:{} HTTP/1.1", peer.port);
    let proxy = ConnectProxy::start(false);
    // -p: CCM activation end to end through the proxy.
    let o = run(
        &[
            "--device",
            &dev,
            "activate",
            "-u",
            &url,
            "--profile",
            "ccm-peer",
            "-p",
            &proxy.url(),
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    assert_eq!(proxy.seen(), std::slice::from_ref(&connect));
    // HTTP_PROXY (ws://) is honoured: a re-activation through it.
    let o = run(
        &[
            "--device",
            &dev,
            "activate",
            "-u",
            &url,
            "--profile",
            "ccm-peer",
        ],
        &[("HTTP_PROXY", &proxy.url()), ("AMT_PASSWORD", AMT_PW)],
    );
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("already enabled in client mode."),
        "{}",
        stdout(&o)
    );
    assert_eq!(proxy.seen().len(), 2);
    // NO_PROXY naming the host: straight to RPS, the proxy sees nothing.
    let o = run(
        &[
            "--device",
            &dev,
            "activate",
            "-u",
            &url,
            "--profile",
            "ccm-peer",
        ],
        &[
            ("HTTP_PROXY", &proxy.url()),
            ("NO_PROXY", "localhost,127.0.0.1"),
            ("AMT_PASSWORD", AMT_PW),
        ],
    );
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    assert_eq!(proxy.seen().len(), 2);
    // A proxy that refuses the tunnel: a one-line error with the proxy's answer, nothing sent.
    let refusing = ConnectProxy::start(true);
    let o = run(
        &[
            "--device",
            &dev,
            "activate",
            "-u",
            &url,
            "--profile",
            "ccm-peer",
            "-p",
            &refusing.url(),
        ],
        &[("AMT_PASSWORD", AMT_PW)],
    );
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("403"), "{}", stderr(&o));
    assert_eq!(refusing.seen(), [connect]);
    // Nothing listening at the proxy's address.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = run(
        &[
            "--device",
            &dev,
            "activate",
            "-u",
            &url,
            "--profile",
            "ccm-peer",
            "-p",
            &format!("127.0.0.1:{dead}"),
        ],
        &[("AMT_PASSWORD", AMT_PW)],
    );
    assert_eq!(code(&o), 26, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot connect to the proxy"),
        "{}",
        stderr(&o)
    );
    sim.stop();
    assert_eq!(state(&sim)["control_mode"], 1);
}

#[test]
fn heartbeats_are_echoed_and_a_gateway_token_comes_from_the_environment() {
    if !peer_available() {
        return;
    }
    const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.test-token.sig";
    let mut sim = sim();
    let dev = sim.device();
    let peer = Peer::start(
        sim.dir.path(),
        config(json!({"delayMs": 0, "heartbeat": true, "requireToken": TOKEN})),
        None,
    );
    let url = peer.url();
    // No token: the gateway's 401, named, with the fix.
    let o = run(
        &[
            "--device",
            &dev,
            "activate",
            "-u",
            &url,
            "--profile",
            "ccm-peer",
        ],
        &[],
    );
    assert_eq!(code(&o), 70, "{}", stderr(&o));
    assert!(stderr(&o).contains("HTTP 401"), "{}", stderr(&o));
    assert!(stderr(&o).contains("--token"), "{}", stderr(&o));
    // The token from AUTH_TOKEN (rpc-go v3's name): activated, at trace level without a trace of it.
    let o = run(
        &[
            "--device",
            &dev,
            "-vvv",
            "activate",
            "-u",
            &url,
            "--profile",
            "ccm-peer",
        ],
        &[("AUTH_TOKEN", TOKEN)],
    );
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    assert!(!stdout(&o).contains("test-token") && !stderr(&o).contains("test-token"));
    // The heartbeat was answered by echoing RPS's envelope with status success (rpc-go.md §3.8).
    let hb: Vec<Value> = peer
        .log()
        .into_iter()
        .filter(|e| e["json"]["method"] == "heartbeat_response")
        .map(|e| e["json"].clone())
        .collect();
    assert_eq!(hb.len(), 1, "{hb:?}");
    assert_eq!(hb[0]["status"], "success");
    assert_eq!(hb[0]["appVersion"], "2.40.0", "echoes RPS's envelope");
    assert_eq!(hb[0]["protocolVersion"], "4.0.0");
    assert_eq!(hb[0]["payload"], "");
    // --token-file works too, and refuses a file others can read.
    let tf = sim.dir.path().join("token");
    std::fs::write(&tf, format!("{TOKEN}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let tfs = tf.to_str().unwrap();
    let o = run(
        &[
            "--device",
            &dev,
            "activate",
            "-u",
            &url,
            "--profile",
            "ccm-peer",
            "--token-file",
            tfs,
        ],
        &[("AMT_PASSWORD", AMT_PW)],
    );
    assert_eq!(code(&o), 34, "{}", stderr(&o));
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
    std::fs::set_permissions(&tf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = run(
        &[
            "--device",
            &dev,
            "activate",
            "-u",
            &url,
            "--profile",
            "ccm-peer",
            "--token-file",
            tfs,
        ],
        &[("AMT_PASSWORD", AMT_PW)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    sim.stop();
    assert_eq!(state(&sim)["control_mode"], 1);
}

#[test]
fn rps_flows_leak_no_secret_at_trace_level() {
    if !peer_available() {
        return;
    }
    const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.secret-token-body.c2ln";
    let mut sim = sim();
    let dev = sim.device();
    let lsa = lsa_password(&sim);
    let peer = Peer::start(
        sim.dir.path(),
        config(json!({"delayMs": 0, "heartbeat": true, "requireToken": TOKEN})),
        None,
    );
    let url = peer.url();
    let secrets = [AMT_PW, NEW_PW, TOKEN, lsa.as_str()];
    let token = ("AUTH_TOKEN", TOKEN);
    type Flow<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>);
    let flows: [Flow; 4] = [
        (
            "activate",
            vec![
                "--device",
                &dev,
                "-vvv",
                "activate",
                "-u",
                &url,
                "--profile",
                "ccm-peer",
            ],
            vec![token],
        ),
        (
            "maintenance changepassword",
            vec![
                "--device",
                &dev,
                "-vvv",
                "maintenance",
                "changepassword",
                "-u",
                &url,
            ],
            vec![
                token,
                ("AMT_PASSWORD", AMT_PW),
                ("AMT_NEW_PASSWORD", NEW_PW),
            ],
        ),
        (
            "maintenance syncclock, JSON logs",
            vec![
                "--device",
                &dev,
                "-vvv",
                "--log-format",
                "json",
                "maintenance",
                "syncclock",
                "-u",
                &url,
            ],
            vec![token, ("AMT_PASSWORD", NEW_PW)],
        ),
        (
            "deactivate",
            vec!["--device", &dev, "-vvv", "deactivate", "-u", &url],
            vec![token, ("AMT_PASSWORD", NEW_PW)],
        ),
    ];
    for (what, args, env) in &flows {
        let o = run(args, env);
        assert_eq!(code(&o), 0, "{what}: {}", stderr(&o));
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(all.contains("TRACE"), "{what} ran at trace level");
        assert_no_secret(what, &all, &secrets);
        assert!(
            !all.contains("response=\""),
            "{what}: a Digest response was logged"
        );
        assert!(!all.contains("panicked"), "{what}");
    }
    sim.stop();
    assert_eq!(state(&sim)["control_mode"], 0);
}

/// One row of the RPS part of docs/robustness.md's fault matrix: a peer with `fault`, the exit
/// code and message the agent must give, and the `state:` line it must print.
fn fault_row(sim: &Sim, fault: Value, env: &[(&str, &str)]) -> std::process::Output {
    let peer = Peer::start(sim.dir.path(), config(fault), None);
    let dev = sim.device();
    let o = run(
        &[
            "--device",
            &dev,
            "activate",
            "-u",
            &peer.url(),
            "--profile",
            "ccm-peer",
        ],
        env,
    );
    drop(peer);
    o
}

#[test]
fn rps_faults_in_each_phase_end_in_a_documented_code_and_report_the_device() {
    if !peer_available() {
        return;
    }
    let mut sim = sim();
    let dev = sim.device();
    let unchanged = "state: unchanged: not activated";
    // RPS unreachable.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = run(
        &[
            "--device",
            &dev,
            "activate",
            "-u",
            &format!("ws://127.0.0.1:{dead}/activate"),
            "--profile",
            "ccm-peer",
        ],
        &[],
    );
    assert_eq!(code(&o), 20, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot connect to RPS at 127.0.0.1:"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains(unchanged), "{}", stderr(&o));
    // RPS closing in each phase: at the upgrade, after our first message, in the middle.
    for fault in [
        json!({"closeOn": "connect"}),
        json!({"closeOn": "first"}),
        json!({"closeAfter": 2}),
    ] {
        let o = fault_row(&sim, fault.clone(), &[]);
        assert_eq!(code(&o), 10, "{fault}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("RPS closed the connection before its final message"),
            "{fault}: {}",
            stderr(&o)
        );
        assert!(stderr(&o).contains(unchanged), "{fault}: {}", stderr(&o));
    }
    // Malformed or oversized messages from RPS: 113 (rpc-go's UnmarshalMessageFailed).
    for (kind, says) in [
        ("json", "not a JSON object"),
        ("binary", "binary frame"),
        ("base64", "not valid base64"),
        ("huge", "larger than the agent takes"),
    ] {
        let o = fault_row(&sim, json!({"malformed": kind}), &[]);
        assert_eq!(code(&o), 113, "{kind}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{kind}: {}", stderr(&o));
        assert!(stderr(&o).contains(unchanged), "{kind}: {}", stderr(&o));
        assert_eq!(
            stderr(&o).matches("error:").count(),
            1,
            "{kind}: one error line"
        );
    }
    assert_eq!(state(&sim)["control_mode"], 0);
    // RPS closing right after Setup: the firmware is activated, and the agent says so and how to
    // go on. A re-run with the profile's password ends configured.
    let o = fault_row(
        &sim,
        json!({"closeAfterCall": "IPS_HostBasedSetupService/Setup<"}),
        &[],
    );
    assert_eq!(code(&o), 10, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("state: changed by this run: client control mode (was not activated)"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("AMT_PASSWORD"), "{}", stderr(&o));
    let o = fault_row(&sim, json!({}), &[("AMT_PASSWORD", AMT_PW)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("Control mode (firmware): client control mode"));
    // Wrong AMT password on the re-run: RPS cannot authenticate; nothing changes.
    let o = fault_row(&sim, json!({}), &[("AMT_PASSWORD", "Wr0ng-P@ssword")]);
    assert_eq!(code(&o), 100, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the Digest credentials of user \"admin\" were refused (HTTP 401)"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("not this device's admin password"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("Control mode (firmware): client control mode"));
    let o = fault_row(&sim, json!({}), &[("AMT_PASSWORD", AMT_PW)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    sim.stop();
    assert_eq!(state(&sim)["control_mode"], 1);
}

// ---------------------------------------------------------------------------------------------
// TLS-tunnel mode (RPS protocol 4.0.0; rpc-go.md §3.7, rps-protocol.md §5.6). The amt19 profile
// enforces TLS on AMT's local ports: the agent reports `tlsEnforced`, the peer runs its TLS client
// through `tls_data` messages, and the agent shuttles the bytes to port 16993 (an APF channel over
// LME, or the simulator's LMS-like listener), which the simulator serves with its ODCA-shaped test
// chain. The peer trusts the simulator's test root (`--tls-root-out`) as RPS trusts Intel's.

/// How the agent reaches AMT in a tunnel test.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// Its own APF session over the ME's LME client.
    Lme,
    /// The simulator's LMS-like TCP listener (`--lms only`).
    Lms,
}

/// An AMT 19 simulator whose state is in a file and whose TLS test root is written for the peer.
struct Sim19 {
    sim: Sim,
    root: PathBuf,
    lms_port: u16,
}

impl Sim19 {
    fn start(via: Via, extra: &[&str], tweak: impl FnOnce(&mut Value)) -> Sim19 {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        let root = dir.path().join("sim-root.pem");
        let mut p = common::profile("amt19");
        tweak(&mut p);
        std::fs::write(&state, p.to_string()).unwrap();
        let lms_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let lms = format!("127.0.0.1:{lms_port}");
        let mut args: Vec<String> = vec![
            "--device-profile".into(),
            "amt19".into(),
            "--state".into(),
            state.to_str().unwrap().into(),
            "--tls-root-out".into(),
            root.to_str().unwrap().into(),
        ];
        if let Via::Lms = via {
            args.extend(["--lms-listen".to_string(), lms]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let socket = dir.path().join("sim.sock");
        let sim = Sim::start_in(dir, socket, &refs);
        Sim19 {
            sim,
            root,
            lms_port,
        }
    }

    /// The agent's global arguments for `via`.
    fn route(&self, via: Via) -> Vec<String> {
        match via {
            Via::Lme => vec!["--lms".into(), "never".into()],
            Via::Lms => vec![
                "--lms".into(),
                "only".into(),
                "--lms-port".into(),
                self.lms_port.to_string(),
            ],
        }
    }

    /// The peer's tunnel settings: trust `ca`, short waits after a reset.
    fn tunnel(ca: &Path) -> Value {
        json!({"tunnel": {"ca": ca, "resetDelayMs": 200, "responseTimeoutMs": 5000}})
    }
}

/// `amt-agent --device SIM <route…> activate -u URL --profile P <extra…>`.
fn activate_via(s: &Sim19, via: Via, url: &str, profile: &str, extra: &[&str]) -> Output {
    let dev = s.sim.device();
    let route = s.route(via);
    let mut args: Vec<&str> = vec!["--device", &dev, "-v", "activate"];
    args.extend(route.iter().map(String::as_str));
    args.extend(["-u", url, "--profile", profile]);
    args.extend_from_slice(extra);
    run(&args, &[])
}

/// What the peer's log says about one tunnelled session.
struct TunnelLog {
    entries: Vec<Value>,
}

impl TunnelLog {
    fn of(peer: &Peer) -> TunnelLog {
        TunnelLog {
            entries: peer.log(),
        }
    }
    fn count(&self, f: impl Fn(&Value) -> bool) -> usize {
        self.entries.iter().filter(|e| f(e)).count()
    }
    fn sent_by_agent(&self, method: &str) -> Vec<&Value> {
        self.entries
            .iter()
            .filter(|e| e["dir"] == "client->rps" && e["json"]["method"] == method)
            .collect()
    }
    fn events(&self, name: &str) -> Vec<&Value> {
        self.entries.iter().filter(|e| e["event"] == name).collect()
    }
    /// The plaintext WS-MAN requests RPS sent inside the tunnel.
    fn requests(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e["dir"] == "rps->amt")
            .map(|e| {
                e["decoded_payload"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }
    /// The status lines of AMT's answers inside the tunnel.
    fn answers(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e["dir"] == "amt->rps")
            .map(|e| {
                let t = e["decoded_payload"].as_str().unwrap_or_default();
                t.split("\r\n").next().unwrap_or_default().to_string()
            })
            .collect()
    }
    fn requested(&self, class_and_method: &str) -> usize {
        let (class, method) = class_and_method.split_once('.').unwrap();
        self.requests()
            .iter()
            .filter(|r| {
                r.contains(&format!("/{class}</w:ResourceURI>"))
                    && r.contains(&format!("/{method}</a:Action>"))
            })
            .count()
    }
}

/// The firmware's word after an RPS flow: the mode amtinfo reports, and WS-MAN as admin with
/// `password` (over the same TLS-enforced port, through the agent's own client).
fn firmware_after(s: &Sim19, password: &str) -> (Value, Output) {
    let dev = s.sim.device();
    let info = run(&["--device", &dev, "--json", "amtinfo"], &[]);
    assert_eq!(code(&info), 0, "{}", stderr(&info));
    let info: Value = serde_json::from_slice(&info.stdout).unwrap();
    let get = run(
        &[
            "--device",
            &dev,
            "--json",
            "diagnostics",
            "wsman",
            "get",
            "AMT_GeneralSettings",
        ],
        &[("AMT_PASSWORD", password)],
    );
    (info, get)
}

/// The checks every successful tunnelled flow shares: WS-MAN only as tls_data (no `wsman`,
/// no `response`), requests to :16993 on persistent connections, more requests than TLS
/// sessions, and every AMT answer relayed.
fn assert_tunnelled(log: &TunnelLog) {
    assert_eq!(log.count(|e| e["json"]["method"] == "wsman"), 0);
    assert_eq!(log.sent_by_agent("response").len(), 0);
    assert!(!log.sent_by_agent("tls_data").is_empty());
    let requests = log.requests();
    assert!(requests.len() >= 20, "{} requests", requests.len());
    for r in &requests {
        assert!(r.contains(":16993\r\n"), "{r}");
        assert!(
            !r.contains("Connection: close"),
            "persistent in the tunnel: {r}"
        );
    }
    // Each request was answered, but those a reset cut off (and then sent again).
    assert_eq!(
        log.answers().len() + log.events("tunnel failure").len(),
        requests.len(),
        "{:?}",
        log.events("tunnel failure")
    );
    let sessions = log.events("tls session up").len();
    assert!(
        sessions >= 2 && sessions * 3 < requests.len(),
        "{sessions} TLS sessions for {} requests",
        requests.len()
    );
}

#[test]
fn tls_tunnel_ccm_activation_on_amt19_over_lme() {
    if !peer_available() {
        return;
    }
    let via = Via::Lme;
    let mut s = Sim19::start(via, &[], |_| {});
    let peer = Peer::start(s.sim.dir.path(), config(Sim19::tunnel(&s.root)), None);
    let started = Instant::now();
    let o = activate_via(&s, via, &peer.url(), "ccm-peer", &[]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(code(&o), 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("Status: Client control mode."), "{out}");
    assert!(out.contains("Control mode (firmware): client control mode"));
    assert!(started.elapsed() < Duration::from_secs(30));
    let log = TunnelLog::of(&peer);
    assert_tunnelled(&log);
    // AMT 19's CCM: Setup as the local system account, then CommitChanges as admin.
    assert_eq!(log.requested("IPS_HostBasedSetupService.Setup"), 1);
    assert_eq!(
        log.requested("AMT_SetupAndConfigurationService.CommitChanges"),
        1
    );
    // Before activation RPS verified AMT's ODCA-shaped chain against the test root.
    let up = log.events("tls session up");
    assert!(
        up[0]["verified"].as_str().unwrap().contains("trusted root"),
        "{}",
        up[0]
    );
    // AMT's 401s and 400s close their connection with close_notify: RPS sees that itself and
    // opens its next session. No connection_reset, and no session was cut short.
    assert_eq!(log.sent_by_agent("connection_reset").len(), 0);
    assert_eq!(log.events("tunnel failure").len(), 0);
    assert_eq!(
        log.events("tls handshake").len(),
        up.len(),
        "every TLS session completed its handshake"
    );
    assert!(log.answers().iter().any(|a| a.contains("401")));

    let (info, get) = firmware_after(&s, AMT_PW);
    assert_eq!(info["controlMode"], "activated in client control mode");
    assert_eq!(code(&get), 0, "{}", stderr(&get));
    let gs: Value = serde_json::from_slice(&get.stdout).unwrap();
    s.sim.stop();
    let st = state(&s.sim);
    assert_eq!(
        (st["control_mode"].clone(), st["provisioning_state"].clone()),
        (1.into(), 2.into())
    );
    let realm = st["digest_realm"].as_str().unwrap();
    assert_eq!(gs["DigestRealm"], realm);
    assert_eq!(st["admin_ha1"], ha1(realm, AMT_PW));
    assert_eq!(
        instance_prop(&st, "AMT_RedirectionService", 0, "EnabledState").as_deref(),
        Some("32771")
    );
}

#[test]
fn tls_tunnel_ccm_activation_over_wss_and_the_lms_listener_with_a_port_switch() {
    if !peer_available() {
        return;
    }
    let via = Via::Lms;
    let mut s = Sim19::start(via, &[], |_| {});
    let (ca, cert, key) = test_ca(s.sim.dir.path());
    let mut cfg = config(Sim19::tunnel(&s.root));
    // RPS sends port_switch (delay 0) once activation is committed; the LMS route retargets to
    // 16993, which is the listener itself on this TLS-enforced profile.
    cfg["profiles"]["ccm-switch"] = json!({"mode": "ccm", "password": AMT_PW,
        "userConsent": "All", "portSwitch": {"port": 16993, "delay": 0}});
    let peer = Peer::start(s.sim.dir.path(), cfg, Some((&cert, &key)));
    let url = format!("wss://localhost:{}/activate", peer.port);
    let o = activate_via(
        &s,
        via,
        &url,
        "ccm-switch",
        &["--ca-file", ca.to_str().unwrap()],
    );
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(code(&o), 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("AMT reached through LMS"), "{err}");
    assert!(err.contains("RPS switches AMT to port 16993"), "{err}");
    assert!(out.contains("Status: Client control mode."), "{out}");
    let log = TunnelLog::of(&peer);
    assert_tunnelled(&log);
    assert_eq!(log.sent_by_agent("connection_reset").len(), 0);
    let acks = log.sent_by_agent("port_switch_ack");
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0]["decoded_payload"], "ok");
    // The flow went on in a new TLS session after the switch.
    let switched = log
        .entries
        .iter()
        .position(|e| e["event"] == "port switched")
        .expect("port switched");
    assert!(log.entries[switched..]
        .iter()
        .any(|e| e["event"] == "tls session up"));
    let (info, get) = firmware_after(&s, AMT_PW);
    assert_eq!(info["controlMode"], "activated in client control mode");
    assert_eq!(code(&get), 0, "{}", stderr(&get));
    s.sim.stop();
    let st = state(&s.sim);
    assert_eq!(
        (st["control_mode"].clone(), st["provisioning_state"].clone()),
        (1.into(), 2.into())
    );
    assert_eq!(
        st["admin_ha1"],
        ha1(st["digest_realm"].as_str().unwrap(), AMT_PW)
    );
}

#[test]
fn tls_tunnel_acm_on_amt19_is_ccm_then_an_upgrade_after_a_port_switch() {
    if !peer_available() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let Some((leaf, key, root, hash)) = provisioning_chain(keys.path()) else {
        return;
    };
    let via = Via::Lme;
    let mut s = Sim19::start(via, &[], |p| {
        p["pki_dns_suffix"] = json!("amt.example.test");
        p["cert_hashes"].as_array_mut().unwrap().push(json!({
            "name": "amt-agent test provisioning root", "algorithm": "SHA256", "hash": hash,
            "is_default": false, "is_active": true}));
    });
    let mut cfg = config(Sim19::tunnel(&s.root));
    cfg["domains"] = json!([{"suffix": "amt.example.test", "leafCert": leaf, "leafKey": key,
        "rootCert": root}]);
    // RPS's AMT 19 flow (§5.6): CCM (Setup, CommitChanges), port_switch, then the upgrade over
    // TLS; its TLS client presents the provisioning certificate (mutual TLS).
    cfg["profiles"]["acm19"] = json!({"mode": "acm", "password": AMT_PW,
        "mebxPassword": "P@ssw0rd-Mebx1", "userConsent": "None",
        "portSwitch": {"port": 16993, "delay": 1}, "mutualTls": true});
    let peer = Peer::start(s.sim.dir.path(), cfg, None);
    let started = Instant::now();
    let o = activate_via(&s, via, &peer.url(), "acm19", &[]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(code(&o), 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("Status: Upgraded to admin control mode."),
        "{out}"
    );
    assert!(
        out.contains("Control mode (firmware): admin control mode"),
        "{out}"
    );
    assert!(
        err.contains("RPS switches AMT to port 16993; waiting 1 s"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let log = TunnelLog::of(&peer);
    assert_tunnelled(&log);
    assert_eq!(log.sent_by_agent("connection_reset").len(), 0);
    assert_eq!(log.requested("IPS_HostBasedSetupService.Setup"), 1);
    assert_eq!(log.requested("IPS_HostBasedSetupService.AdminSetup"), 0);
    assert_eq!(
        log.requested("IPS_HostBasedSetupService.UpgradeClientToAdmin"),
        1
    );
    // The agent waited the delay before acknowledging.
    let switched = log.events("port switched");
    assert_eq!(switched.len(), 1);
    assert_eq!(switched[0]["ack"], "ok");
    assert!(
        switched[0]["waitedMs"].as_u64().unwrap() >= 1000,
        "{}",
        switched[0]
    );
    // Every TLS session carried RPS's client certificate.
    assert!(log
        .events("tls handshake")
        .iter()
        .all(|e| e["clientCertificate"] == true));
    let (info, get) = firmware_after(&s, AMT_PW);
    assert_eq!(info["controlMode"], "activated in admin control mode");
    assert_eq!(code(&get), 0, "{}", stderr(&get));
    s.sim.stop();
    let st = state(&s.sim);
    assert_eq!(
        (st["control_mode"].clone(), st["provisioning_state"].clone()),
        (2.into(), 2.into())
    );
    assert_eq!(st["mebx_password_set"], true);
    assert_eq!(
        st["admin_ha1"],
        ha1(st["digest_realm"].as_str().unwrap(), AMT_PW)
    );
}

#[test]
fn tls_tunnel_connection_reset_when_amt_drops_the_connection_and_rps_reconnects() {
    if !peer_available() {
        return;
    }
    for via in [Via::Lme, Via::Lms] {
        // The third HTTP request (Setup, on the second TLS session) gets no answer: AMT closes
        // the connection without a byte and without close_notify.
        let mut s = Sim19::start(via, &["--fault", "drop-channel=3"], |_| {});
        let peer = Peer::start(s.sim.dir.path(), config(Sim19::tunnel(&s.root)), None);
        let started = Instant::now();
        let o = activate_via(&s, via, &peer.url(), "ccm-peer", &[]);
        let (out, err) = (stdout(&o), stderr(&o));
        assert_eq!(code(&o), 0, "{via:?}\nstdout:\n{out}\nstderr:\n{err}");
        assert!(started.elapsed() < Duration::from_secs(30));
        let log = TunnelLog::of(&peer);
        let resets = log.sent_by_agent("connection_reset");
        assert_eq!(resets.len(), 1, "{via:?}");
        assert_eq!(resets[0]["decoded_payload"], "connection_closed");
        let failures = log.events("tunnel failure");
        assert_eq!(failures.len(), 1, "{via:?}");
        assert_eq!(failures[0]["kind"], "reset");
        // RPS waited, opened a new TLS session and sent Setup again; the flow completed.
        assert_eq!(
            log.requested("IPS_HostBasedSetupService.Setup"),
            2,
            "{via:?}"
        );
        let reset_at = log
            .entries
            .iter()
            .position(|e| e["json"]["method"] == "connection_reset")
            .unwrap();
        assert!(log.entries[reset_at..]
            .iter()
            .any(|e| e["event"] == "tls session up"));
        assert_tunnelled(&log);
        assert!(out.contains("Status: Client control mode."), "{out}");
        let (info, get) = firmware_after(&s, AMT_PW);
        assert_eq!(info["controlMode"], "activated in client control mode");
        assert_eq!(code(&get), 0, "{}", stderr(&get));
        s.sim.stop();
        let st = state(&s.sim);
        assert_eq!(
            (st["control_mode"].clone(), st["provisioning_state"].clone()),
            (1.into(), 2.into())
        );
    }
}

#[test]
fn tls_tunnel_with_an_amt_chain_rps_does_not_trust_fails_cleanly() {
    if !peer_available() {
        return;
    }
    let via = Via::Lme;
    let mut s = Sim19::start(via, &[], |_| {});
    // RPS trusts another root than the one AMT's chain ends at.
    let (other_ca, _, _) = test_ca(s.sim.dir.path());
    let peer = Peer::start(s.sim.dir.path(), config(Sim19::tunnel(&other_ca)), None);
    let started = Instant::now();
    let o = activate_via(&s, via, &peer.url(), "ccm-peer", &[]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(code(&o), 102, "stdout:\n{out}\nstderr:\n{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        out.contains("TLS tunnel to AMT failed: AMT's TLS certificate was not accepted"),
        "{out}"
    );
    assert!(
        err.contains("error: RPS: TLS tunnel to AMT failed"),
        "{err}"
    );
    assert!(
        out.contains("Control mode (firmware): not activated"),
        "{out}"
    );
    let log = TunnelLog::of(&peer);
    // Three handshakes (RPS's three attempts), none trusted, and no WS-MAN reached AMT.
    assert_eq!(log.events("tls handshake").len(), 3);
    assert_eq!(log.events("tls session up").len(), 0);
    assert!(log.requests().is_empty());
    assert_eq!(peer.last_final()["method"], "error");
    s.sim.stop();
    assert_eq!(state(&s.sim)["control_mode"], 0);
}

#[test]
fn a_port_switch_to_a_port_amt_does_not_serve_ends_in_rps_error_not_a_hang() {
    if !peer_available() {
        return;
    }
    // AMT 16.1 without TLS configured serves no 16993: its APF session refuses a channel there.
    // (The simulator's AMT 18 and older profiles have no TLS on the local ports at all, so this is
    // what a port_switch meets on them.)
    let mut sim = sim();
    let mut cfg = config(json!({"tunnel": {"resetDelayMs": 200, "responseTimeoutMs": 5000}}));
    cfg["profiles"]["ccm-switch"] = json!({"mode": "ccm", "password": AMT_PW,
        "userConsent": "All", "portSwitch": {"port": 16993, "delay": 0}});
    let peer = Peer::start(sim.dir.path(), cfg, None);
    let started = Instant::now();
    let o = run(
        &[
            "--device",
            &sim.device(),
            "activate",
            "--lms",
            "never",
            "-u",
            &peer.url(),
            "--profile",
            "ccm-switch",
        ],
        &[],
    );
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(code(&o), 102, "stdout:\n{out}\nstderr:\n{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let log = TunnelLog::of(&peer);
    assert_eq!(log.sent_by_agent("port_switch_ack").len(), 1);
    // Each ClientHello found no connection to open: connection_reset with lms_error, three times.
    let resets = log.sent_by_agent("connection_reset");
    assert_eq!(resets.len(), 3, "{resets:?}");
    assert!(resets.iter().all(|r| r["decoded_payload"] == "lms_error"));
    assert!(
        out.contains("TLS tunnel to AMT failed: connection_reset (lms_error)"),
        "{out}"
    );
    // Setup had taken effect before the switch: the firmware's word is reported.
    assert!(
        out.contains("Control mode (firmware): client control mode"),
        "{out}"
    );
    sim.stop();
    assert_eq!(state(&sim)["control_mode"], 1);
}

// RPS TLS profiles (issue 13; rps-protocol.md §5.6, RPS's tls.ts): RPS provisions a profile's TLS
// only when the client asks for the tunnel (`--tls-tunnel`, payload `tlsTunnel`) or AMT enforces
// TLS. The peer then runs RPS's TLS flow through the relay: its trusted root, a key pair AMT
// generates, a certificate for it signed by the root's key, the credential context, time sync,
// both TLS settings, CommitChanges; on AMT 11–18 a `port_switch` moves the relay to 16993, where
// AMT must present exactly that certificate.

/// Peer profiles with TLS (`mode` is RPS's tlsMode: 1 Server, 2 ServerAndNonTLS, 3 Mutual, 4
/// MutualAndNonTLS), signed by the RSA test CA of tests/fixtures/tls-ca.
fn tls_profiles(cfg: &mut Value, mode: u32) {
    let ca = repo_file("tests/fixtures/tls-ca");
    cfg["profiles"]["ccm-tls"] = json!({"mode": "ccm", "password": AMT_PW, "userConsent": "All",
        "tls": {"mode": mode, "rootCert": ca.join("rsa-ca.pem"), "rootKey": ca.join("rsa-ca.key")}});
}

/// The certificate the simulated firmware's TLS serves, from its state file.
fn tls_in_effect(st: &Value) -> Option<(Value, String)> {
    let t = st.get("tls_in_effect").filter(|t| !t.is_null())?.clone();
    let id = t["certificate"].as_str()?.to_string();
    let cert = st["instances"]["AMT_PublicKeyCertificate"]
        .as_array()?
        .iter()
        .find(|c| c.to_string().contains(&format!(r#"["InstanceID","{id}"]"#)))?
        .to_string();
    Some((t, cert))
}

fn rps_tls_profile_on_amt16(via: Via) {
    if !peer_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let lms_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let lms = format!("127.0.0.1:{lms_port}");
    let mut args = vec![
        "--device-profile",
        "amt16.1",
        "--state",
        state.to_str().unwrap(),
    ];
    if let Via::Lms = via {
        args.extend(["--lms-listen", &lms]);
    }
    let socket = dir.path().join("sim.sock");
    let mut sim = Sim::start_in(dir, socket, &args);
    let mut cfg = config(json!({"tunnel": {"resetDelayMs": 200, "responseTimeoutMs": 5000}}));
    tls_profiles(&mut cfg, 2);
    let peer = Peer::start(sim.dir.path(), cfg, None);
    let dev = sim.device();
    let url = peer.url();
    let port = lms_port.to_string();
    let route: Vec<&str> = match via {
        Via::Lme => vec!["--lms", "never"],
        Via::Lms => vec!["--lms", "only", "--lms-port", &port],
    };
    // Without --tls-tunnel RPS leaves TLS alone: the profile's TLS is not applied (the issue's
    // "TLS never happens", now said by the component).
    let mut a = vec!["--device", &dev, "--json", "activate", "-u", &url];
    a.extend(["--profile", "ccm-tls"]);
    a.extend(route.iter());
    let o = run(&a, &[]);
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["components"]["TLS"]["result"], "NotApplicable", "{j}");
    assert!(tls_in_effect(&state_of(&sim)).is_none());
    let o = run(
        &["--device", &dev, "deactivate", "--local"],
        &[("AMT_PASSWORD", AMT_PW)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // -tls-tunnel (v2 spelling): the TLS flow runs, then the relay moves to 16993.
    let mut a = vec!["--device", &dev, "-v", "-json", "activate", "-u", &url];
    a.extend(["-profile", "ccm-tls", "-tls-tunnel"]);
    a.extend(route.iter());
    let o = run(&a, &[]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(code(&o), 0, "stdout:\n{out}\nstderr:\n{err}");
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["components"]["TLS"]["result"], "Success", "{j}");
    assert_eq!(j["controlMode"], "client control mode", "{j}");
    assert!(j["tunnelMessages"].as_u64().unwrap() > 0, "{j}");
    let log = TunnelLog::of(&peer);
    let first = log
        .entries
        .iter()
        .rev()
        .find(|e| e["first"] == true)
        .expect("the first message");
    assert!(
        first["payload_keys"].to_string().contains("tlsTunnel"),
        "{first}"
    );
    assert_eq!(log.events("tls configured").len(), 1);
    assert_eq!(log.events("port switched").len(), 1);
    let up = log.events("tls session up");
    assert!(
        up.last().unwrap()["verified"]
            .as_str()
            .unwrap()
            .contains("the certificate this RPS installed"),
        "{up:?}"
    );
    assert!(!log.sent_by_agent("tls_data").is_empty());
    let st = state_of(&sim);
    let (t, cert) = tls_in_effect(&st).expect("TLS in effect");
    assert_eq!(t["remote"]["enabled"], true);
    assert_eq!(
        t["remote"]["accept_non_secure"], true,
        "mode 2: ServerAndNonTLS"
    );
    assert_eq!(t["local"]["enabled"], true);
    assert!(cert.contains("CN=AMT"), "{cert}");
    assert!(
        cert.contains("Test TLS CA (RSA)"),
        "issued by the profile's root: {cert}"
    );

    // deactivate -u --tls-tunnel (rpc-go v3): the payload asks for the tunnel; RPS unprovisions.
    let mut a = vec!["--device", &dev, "deactivate", "-u", &url, "--tls-tunnel"];
    a.extend(route.iter());
    let o = run(&a, &[("AMT_PASSWORD", AMT_PW)]);
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let log = TunnelLog::of(&peer);
    let first = log
        .entries
        .iter()
        .rev()
        .find(|e| e["first"] == true)
        .unwrap();
    assert!(first["method_redacted"]
        .as_str()
        .unwrap()
        .starts_with("deactivate"));
    assert!(
        first["payload_keys"].to_string().contains("tlsTunnel"),
        "{first}"
    );
    sim.stop();
    let st = state_of(&sim);
    assert_eq!(st["control_mode"], 0);
    assert!(tls_in_effect(&st).is_none(), "unprovisioning forgets TLS");
}

fn state_of(sim: &Sim) -> Value {
    serde_json::from_str(&std::fs::read_to_string(sim.path("state.json")).unwrap()).unwrap()
}

#[test]
fn rps_tls_profile_with_tls_tunnel_on_amt16_over_lme() {
    rps_tls_profile_on_amt16(Via::Lme);
}

#[test]
fn rps_tls_profile_with_tls_tunnel_on_amt16_over_lms() {
    rps_tls_profile_on_amt16(Via::Lms);
}

#[test]
fn rps_tls_profile_on_amt19_configures_tls_inside_the_tunnel() {
    if !peer_available() {
        return;
    }
    let via = Via::Lme;
    let mut s = Sim19::start(via, &[], |_| {});
    let mut cfg = config(Sim19::tunnel(&s.root));
    tls_profiles(&mut cfg, 1);
    let peer = Peer::start(s.sim.dir.path(), cfg, None);
    let o = activate_via(&s, via, &peer.url(), "ccm-tls", &[]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(code(&o), 0, "stdout:\n{out}\nstderr:\n{err}");
    let log = TunnelLog::of(&peer);
    assert_tunnelled(&log);
    assert_eq!(log.events("tls configured").len(), 1);
    assert_eq!(
        log.events("port switched").len(),
        0,
        "AMT 19 is in the tunnel already"
    );
    for call in [
        "AMT_PublicKeyManagementService.AddTrustedRootCertificate",
        "AMT_PublicKeyManagementService.GenerateKeyPair",
        "AMT_PublicKeyManagementService.AddCertificate",
        "AMT_TLSCredentialContext.Create",
    ] {
        assert_eq!(log.requested(call), 1, "{call}");
    }
    let up = log.events("tls session up");
    assert!(
        up.last().unwrap()["verified"]
            .as_str()
            .unwrap()
            .contains("the certificate this RPS installed"),
        "{up:?}"
    );
    s.sim.stop();
    let st = state(&s.sim);
    let (t, cert) = tls_in_effect(&st).expect("TLS in effect");
    assert_eq!(t["remote"]["accept_non_secure"], false, "mode 1: Server");
    assert!(cert.contains("Test TLS CA (RSA)"), "{cert}");
}

/// A profile with Wi-Fi (RPS's wifiConfigs, local and UEFI sync): activation through the relay
/// configures the simulated machine's Wi-Fi — the wireless port, the sync settings, the port
/// state, a WPA2-PSK profile and a WPA2-802.1X (PEAP-MSCHAPv2) profile whose RADIUS root RPS adds
/// — and the final message's WirelessNetwork says so. `configure wireless` then finds the PSK
/// profile as wanted and writes nothing: the agent reads what RPS wrote as its own. A second
/// activation clears the profiles (RPS's unconfiguration) and adds them again; a profile AMT
/// refuses is reported as the component's failure.
#[test]
fn a_profile_with_wifi_configures_the_machines_wifi_through_the_relay() {
    if !peer_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pfile = write_profile(dir.path(), "amt16.1", with_wifi);
    let socket = dir.path().join("sim.sock");
    let st = dir.path().join("state.json").display().to_string();
    let log = dir.path().join("wsman.log").display().to_string();
    let mut sim = Sim::start_in(
        dir,
        socket,
        &[
            "--device-profile",
            &pfile,
            "--state",
            &st,
            "--wsman-log",
            &log,
        ],
    );
    let ca = repo_file("tests/fixtures/ieee8021x/ca.pem");
    let wifi = |extra: Value| {
        let mut w = json!([
            {"profileName": "home", "ssid": "HomeNet", "priority": 1, "authenticationMethod": 6,
             "encryptionMethod": 4, "pskPassphrase": "Kn0wn wifi passphrase"},
            {"profileName": "corp", "ssid": "Corp8021X", "priority": 2, "authenticationMethod": 7,
             "encryptionMethod": 4, "ieee8021x": {"profileName": "corpPeap", "username": "alice",
             "password": "Kn0wn-Radius!Secret", "rootCert": ca}}
        ]);
        if let Value::Array(e) = extra {
            w.as_array_mut().unwrap().extend(e);
        }
        w
    };
    let mut profiles = profiles();
    profiles["wifi-peer"] = json!({"mode": "ccm", "password": AMT_PW, "userConsent": "All",
        "wifiConfigs": wifi(json!([])), "localWifiSyncEnabled": true, "uefiWifiSyncEnabled": true});
    profiles["wifi-bad"] = json!({"mode": "ccm", "password": AMT_PW, "userConsent": "All",
        "wifiConfigs": wifi(json!([{"profileName": "guest", "ssid": "Guest", "priority": 1,
            "authenticationMethod": 6, "encryptionMethod": 4, "pskPassphrase": "Kn0wn wifi passphrase"}])),
        "localWifiSyncEnabled": true, "uefiWifiSyncEnabled": true});
    let peer = Peer::start(
        sim.dir.path(),
        json!({"delayMs": 300, "profiles": profiles}),
        None,
    );
    let dev = sim.device();
    let o = run(
        &[
            "--device",
            &dev,
            "--json",
            "activate",
            "-u",
            &peer.url(),
            "--profile",
            "wifi-peer",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        j["components"]["WirelessNetwork"]["result"], "Success",
        "{j}"
    );
    let st = state(&sim);
    let names: Vec<String> = (0..2)
        .filter_map(|i| instance_prop(&st, "CIM_WiFiEndpointSettings", i, "ElementName"))
        .collect();
    assert_eq!(names, ["home", "corp"]);
    assert_eq!(
        instance_prop(&st, "CIM_IEEE8021xSettings", 0, "Username").as_deref(),
        Some("alice")
    );
    assert_eq!(
        instance_prop(&st, "AMT_PublicKeyCertificate", 0, "TrustedRootCertficate").as_deref(),
        Some("true")
    );
    assert_eq!(
        instance_prop(
            &st,
            "AMT_WiFiPortConfigurationService",
            0,
            "localProfileSynchronizationEnabled"
        )
        .as_deref(),
        Some("3")
    );
    assert_eq!(
        instance_prop(
            &st,
            "AMT_WiFiPortConfigurationService",
            0,
            "UEFIWiFiProfileShareEnabled"
        )
        .as_deref(),
        Some("true")
    );
    assert_eq!(
        instance_prop(&st, "CIM_WiFiPort", 0, "EnabledState").as_deref(),
        Some("32769")
    );
    // The agent reads RPS's profile as its own: nothing to write.
    let writes = || {
        std::fs::read_to_string(sim.path("wsman.log"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let before = writes();
    let o = run(
        &[
            "--device",
            &dev,
            "configure",
            "wireless",
            "--profile-name",
            "home",
            "--ssid",
            "HomeNet",
            "--priority",
            "1",
        ],
        &[
            ("AMT_PASSWORD", AMT_PW),
            ("PSK_PASSPHRASE", "Kn0wn wifi passphrase"),
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("nothing to change"), "{}", stdout(&o));
    let log = std::fs::read_to_string(sim.path("wsman.log")).unwrap();
    assert!(
        log.lines()
            .skip(before)
            .all(|l| ["Get", "Enumerate", "Pull"].contains(&l.split('\t').nth(2).unwrap_or(""))),
        "configure wrote after RPS: {log}"
    );
    // Re-activation with a profile whose third Wi-Fi profile takes a priority already used: RPS's
    // clearing deletes the old profiles, the first two are added again, the third is refused.
    let o = run(
        &[
            "--device",
            &dev,
            "--json",
            "activate",
            "-u",
            &peer.url(),
            "--profile",
            "wifi-bad",
        ],
        &[("AMT_PASSWORD", AMT_PW)],
    );
    // A component RPS reports as failed fails the run with its code (106 for Wi-Fi); the result
    // comes first on stdout, the error object after it.
    assert_eq!(code(&o), 106, "{}", stderr(&o));
    let j: Value = serde_json::Deserializer::from_slice(&o.stdout)
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("{}\n{}", stdout(&o), stderr(&o)));
    assert_eq!(
        j["failedComponents"],
        serde_json::json!(["WirelessNetwork"])
    );
    assert_eq!(
        j["components"]["WirelessNetwork"]["result"], "Failure",
        "{j}"
    );
    assert!(
        j["components"]["WirelessNetwork"]["details"]
            .as_str()
            .unwrap_or("")
            .contains("guest"),
        "{j}"
    );
    sim.stop();
    let st = state(&sim);
    assert!(instance_prop(&st, "CIM_WiFiEndpointSettings", 2, "ElementName").is_none());
    assert_eq!(
        instance_prop(&st, "CIM_WiFiEndpointSettings", 1, "ElementName").as_deref(),
        Some("corp")
    );
}

// ---------------------------------------------------------------------------------------------
// CIRA through RPS (rps-protocol.md §5.1 step 7, §5.6) and a component RPS reports as failed

const MPS_PW: &str = "Mps-P@ss1";

/// A CCM profile with RPS's CIRA configuration for mps.example.com (the test MPS root).
fn cira_config(extra: Value) -> Value {
    let mut c = config(json!({}));
    c["profiles"]["ccm-cira"] = json!({
        "mode": "ccm", "password": AMT_PW, "userConsent": "All",
        "cira": {
            "mpsAddress": "mps.example.com", "mpsPort": 4433, "username": "admin",
            "password": MPS_PW,
            "rootCert": repo_file("tests/fixtures/cira/mps-root.pem").to_str().unwrap()
        }
    });
    if let (Value::Object(c), Value::Object(e)) = (&mut c, extra) {
        c.extend(e);
    }
    c
}

fn sim_with(args: &[&str]) -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("sim.sock");
    let st = dir.path().join("state.json").to_str().unwrap().to_string();
    let mut all = vec!["--state", st.as_str()];
    all.extend_from_slice(args);
    Sim::start_in(dir, socket, &all)
}

fn activate_cira(sim: &Sim, peer: &Peer, json_out: bool) -> Output {
    activate_cira_env(sim, peer, json_out, &[])
}

fn activate_cira_env(sim: &Sim, peer: &Peer, json_out: bool, env: &[(&str, &str)]) -> Output {
    let dev = sim.device();
    let mut args = vec!["--device", &dev, "-vvv"];
    if json_out {
        args.push("--json");
    }
    let url = peer.url();
    args.extend(["activate", "-u", &url, "--profile", "ccm-cira"]);
    run(&args, env)
}

/// The WS-MAN calls the peer sent, as `Class.Method` (from the decoded requests it logged).
fn peer_calls(peer: &Peer) -> Vec<String> {
    peer.log()
        .iter()
        .filter(|e| e["json"]["method"] == "wsman")
        .filter_map(|e| e["decoded_payload"].as_str().map(str::to_string))
        .filter_map(|raw| {
            let action = raw
                .split("<a:Action>")
                .nth(1)?
                .split('<')
                .next()?
                .to_string();
            let uri = raw
                .split("<w:ResourceURI>")
                .nth(1)?
                .split('<')
                .next()?
                .to_string();
            let class = uri.rsplit('/').next()?.to_string();
            let op = action.rsplit('/').next()?.to_string();
            Some(format!("{class}.{op}"))
        })
        .collect()
}

#[test]
fn an_rps_profile_with_cira_configures_the_mps_through_the_relay() {
    if !peer_available() {
        return;
    }
    let mut sim = sim();
    let peer = Peer::start(sim.dir.path(), cira_config(json!({})), None);
    let o = activate_cira(&sim, &peer, true);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(code(&o), 0, "stdout:\n{out}\nstderr:\n{err}");
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["status"], "success");
    assert_eq!(
        j["components"]["CIRAConnection"]["result"], "Success",
        "{out}"
    );
    assert_eq!(j["failedComponents"], json!([]));
    assert_eq!(j["amtErrors"], json!([]), "{out}");
    // RPS's CIRA sequence reached AMT through the relay, in order.
    let calls = peer_calls(&peer);
    let cira: Vec<&str> = calls
        .iter()
        .map(String::as_str)
        .skip_while(|c| *c != "AMT_PublicKeyManagementService.AddTrustedRootCertificate")
        .collect();
    assert_eq!(
        cira,
        [
            "AMT_PublicKeyManagementService.AddTrustedRootCertificate",
            "AMT_RemoteAccessService.AddMpServer",
            "AMT_ManagementPresenceRemoteSAP.Enumerate",
            "AMT_ManagementPresenceRemoteSAP.Pull",
            "AMT_RemoteAccessService.AddRemoteAccessPolicyRule",
            "AMT_RemoteAccessService.AddRemoteAccessPolicyRule",
            "AMT_RemoteAccessPolicyAppliesToMPS.Enumerate",
            "AMT_RemoteAccessPolicyAppliesToMPS.Pull",
            "AMT_RemoteAccessPolicyAppliesToMPS.Put",
            "AMT_RemoteAccessPolicyAppliesToMPS.Put",
            "AMT_UserInitiatedConnectionService.RequestStateChange",
            "AMT_EnvironmentDetectionSettingData.Get",
            "AMT_EnvironmentDetectionSettingData.Put",
        ],
        "{calls:?}"
    );
    // The MPS password went through the relay but never into the agent's trace log.
    assert_no_secret("activate -vvv stderr", &err, &[MPS_PW]);
    // `amtinfo --ras` (AMTHI) names the configured MPS.
    let dev = sim.device();
    let ras = run(&["--device", &dev, "amtinfo", "--ras"], &[]);
    assert!(stdout(&ras).contains("mps.example.com"), "{}", stdout(&ras));
    sim.stop();
    let st = state(&sim);
    assert_eq!(st["control_mode"], 1);
    assert_eq!(
        instance_prop(&st, "AMT_ManagementPresenceRemoteSAP", 0, "AccessInfo").as_deref(),
        Some("mps.example.com")
    );
    assert_eq!(
        st["instances"]["AMT_RemoteAccessPolicyRule"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    for i in 0..2 {
        assert_eq!(
            instance_prop(&st, "AMT_RemoteAccessPolicyAppliesToMPS", i, "MpsType").as_deref(),
            Some("2")
        );
    }
    assert_eq!(
        instance_prop(&st, "AMT_UserInitiatedConnectionService", 0, "EnabledState").as_deref(),
        Some("32771")
    );
    assert!(instance_prop(
        &st,
        "AMT_EnvironmentDetectionSettingData",
        0,
        "DetectionStrings"
    )
    .is_some_and(|d| d.ends_with(".com")));
    // AMT holds the password RPS chose (the simulator keeps its digest).
    let held = st["instances"]["AMT_MPSUsernamePassword"][0]
        .as_array()
        .unwrap()
        .iter()
        .any(|kv| kv[1] == amt_agent::sim::amt::secret_digest(MPS_PW));
    assert!(held, "{}", st["instances"]["AMT_MPSUsernamePassword"]);
}

#[test]
fn a_component_rps_reports_failed_fails_the_activation_with_its_code() {
    if !peer_available() {
        return;
    }
    // AMT answers AddMpServer with HTTP 500: RPS's CIRA flow stops at ADD_MPS, and RPS still
    // ends with `success`, CIRAConnection `Failure` among the components (the issue's case).
    let mut sim = sim_with(&["--fault", "http500=AMT_RemoteAccessService"]);
    let peer = Peer::start(sim.dir.path(), cira_config(json!({})), None);
    let o = activate_cira(&sim, &peer, false);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(code(&o), 104, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(peer.last_final()["method"], "success");
    assert!(
        out.contains("CIRAConnection") && out.contains("Failure: Failed to add mps"),
        "{out}"
    );
    let line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        line.contains("CIRAConnection (Failed to add mps)") && line.contains("Client control mode"),
        "{err}"
    );
    assert!(
        err.contains("help:") && err.contains("configure cira"),
        "{err}"
    );
    // Activated again (RPS re-runs the configuration): the JSON result carries the components
    // as before, and names the failed one.
    let peer2 = Peer::start(sim.dir.path(), cira_config(json!({})), None);
    let o = activate_cira_env(&sim, &peer2, true, &[("AMT_PASSWORD", AMT_PW)]);
    assert_eq!(code(&o), 104, "{}", stderr(&o));
    // The result, then (as for every error with --json) the error object.
    let out = stdout(&o);
    let mut docs = serde_json::Deserializer::from_str(&out).into_iter::<Value>();
    let j = docs.next().unwrap().unwrap();
    let e = docs.next().unwrap().unwrap();
    assert_eq!(e["exitCode"], 104, "{e}");
    assert_eq!(e["exitName"], "CIRAConfigurationFailed", "{e}");
    assert_eq!(j["status"], "failed");
    assert_eq!(j["failedComponents"], json!(["CIRAConnection"]));
    assert_eq!(j["components"]["CIRAConnection"]["result"], "Failure");
    assert_eq!(j["components"]["Activation"]["result"], "Success");
    assert_eq!(j["mode"], "CCM");
    sim.stop();
    let st = state(&sim);
    assert_eq!(
        st["control_mode"], 1,
        "the device is activated all the same"
    );
    assert_eq!(
        st["instances"]["AMT_ManagementPresenceRemoteSAP"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
}

#[test]
fn a_failure_rps_alone_sees_is_reported_too() {
    if !peer_available() {
        return;
    }
    // RPS cannot register the device with its MPS: AMT refused nothing, RPS's word is the only
    // evidence, and it is enough.
    let sim = sim();
    let peer = Peer::start(
        sim.dir.path(),
        cira_config(json!({"mpsUnavailable": true})),
        None,
    );
    let o = activate_cira(&sim, &peer, false);
    assert_eq!(code(&o), 104, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("CIRAConnection (Failed to save device to mps)"),
        "{}",
        stderr(&o)
    );
}
