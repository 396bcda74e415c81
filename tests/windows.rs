//! The Windows build as users run it: the real `amt-agent.exe` under Wine (windows.md §2), against
//! the Linux simulator over loopback TCP, the Node RPS peer, and the MSI installed into a Wine
//! prefix. Plain `cargo test` lists them as ignored (nothing is built for Windows there);
//! `make test-windows` cross-builds the .exe and the MSI once and runs them (`--include-ignored`)
//! with `AMT_AGENT_WINDOWS_EXE`, `AMT_AGENT_WINE_SHIM` and `AMT_AGENT_MSI` set. Run without those,
//! each prints `skipped:` and returns, unless `AMT_AGENT_REQUIRE_WINE=1` (set by `.ci/run`) makes
//! that a failure.
//!
//! Wine 8.0 lacks `bcryptprimitives.dll`, which Rust's standard library imports: the tests put the
//! shim built from `tests/wine/bcryptprimitives.c` beside the .exe (never in the MSI).
// Runs on the Linux host (Wine, amt-sim, the peers), like every test here.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const WINE: &str = "/usr/lib/wine/wine64";
const AMT_PW: &str = "P@ssw0rd-Amt1";

/// The .exe beside its shim, and the Wine prefix the tests share.
struct Wine {
    dir: PathBuf,
    prefix: PathBuf,
}

fn skip(test: &str, why: &str) {
    if std::env::var("AMT_AGENT_REQUIRE_WINE").is_ok_and(|v| v == "1") {
        panic!("{test}: {why} (AMT_AGENT_REQUIRE_WINE=1)");
    }
    eprintln!("skipped: {test}: {why}");
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .filter(|p| p.exists())
}

fn wine_base() -> PathBuf {
    repo_file("target/wine")
}

const WINESERVER: &str = "/usr/lib/wine/wineserver64";

/// Starts the prefix's wineserver so that it outlives each command by 10 s (it would otherwise
/// exit with the last one, and a command starting just then can find it going away); it still
/// ends by itself once the tests are done. A server already running (a previous run's, still
/// within its 10 s) makes this a no-op.
fn keep_server(prefix: &Path) {
    std::fs::create_dir_all(prefix).unwrap();
    let _ = Command::new(WINESERVER)
        .arg("-p10")
        .env("WINEPREFIX", prefix)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A Wine command in `prefix`, quiet, without the Mono/Gecko installers a new prefix would ask for.
fn wine_cmd(prefix: &Path) -> Command {
    let mut c = Command::new(WINE);
    c.env("WINEPREFIX", prefix)
        .env("WINEDEBUG", "-all")
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .env_remove("DISPLAY")
        .env_remove("AMT_AGENT_DEVICE")
        .env_remove("AMT_AGENT_LOG")
        .env_remove("AMT_PASSWORD");
    c
}

/// Set up once per test process: the .exe and shim copied side by side, the prefix created by a
/// first run (about 8 s), so the tests that follow do not race to create it.
fn wine(test: &str) -> Option<&'static Wine> {
    static WINE_SETUP: OnceLock<Option<Wine>> = OnceLock::new();
    let w = WINE_SETUP.get_or_init(|| {
        let exe = env_path("AMT_AGENT_WINDOWS_EXE")?;
        let shim = env_path("AMT_AGENT_WINE_SHIM")?;
        if !Path::new(WINE).exists() {
            return None;
        }
        let dir = wine_base().join("bin");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&exe, dir.join("amt-agent.exe")).unwrap();
        std::fs::copy(&shim, dir.join("bcryptprimitives.dll")).unwrap();
        let prefix = wine_base().join("prefix");
        keep_server(&prefix);
        let w = Wine { dir, prefix };
        let o = w.run(&["version"], &[]);
        assert_eq!(code(&o), 0, "first run under Wine: {}", stderr(&o));
        Some(w)
    });
    if w.is_none() {
        skip(
            test,
            "set AMT_AGENT_WINDOWS_EXE and AMT_AGENT_WINE_SHIM and install wine64 (make test-windows)",
        );
    }
    w.as_ref()
}

impl Wine {
    fn exe(&self) -> PathBuf {
        self.dir.join("amt-agent.exe")
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = wine_cmd(&self.prefix);
        c.arg(self.exe()).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        wine_run(&mut self.command(args, env), Duration::from_secs(90))
    }
}

/// Runs a Wine command to completion within `limit`, its output through files rather than pipes:
/// Wine's own processes (wineserver, services.exe, …), started by the first command in a prefix,
/// inherit its standard handles and outlive it, so a pipe would not see EOF until they exit.
fn wine_run(cmd: &mut Command, limit: Duration) -> Output {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .expect("spawn wine");
    let status = wait_with_deadline(&mut child, cmd, limit);
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut v = Vec::new();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    };
    Output {
        status,
        stdout: read(out),
        stderr: read(err),
    }
}

/// `amt-sim serve --tcp 127.0.0.1:0` on Linux, with its state file and WS-MAN log (in a directory
/// only this user may enter); killed when dropped.
struct TcpSim {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl TcpSim {
    fn start(args: &[&str]) -> TcpSim {
        let dir = tempfile::tempdir().unwrap();
        // Wine 8 derives a folder's DACL from its mode and, unlike Windows, merges the parent's
        // inheritable entries into a protected DACL: the private folders and files the agent
        // makes here would inherit Everyone's read from a 755 parent.
        chmod(dir.path(), 0o700);
        let state = dir.path().join("state.json");
        let mut child = Command::new(SIM)
            .args(["serve", "--tcp", "127.0.0.1:0", "--state"])
            .arg(&state)
            .arg("--wsman-log")
            .arg(dir.path().join("wsman.log"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn amt-sim");
        let err = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(a) = line.split("listening on tcp ").nth(1) {
                    let _ = tx.send(a.trim().to_string());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("amt-sim did not listen on TCP within 10 s");
            }
        };
        TcpSim { child, addr, dir }
    }

    fn device(&self) -> String {
        format!("sim:tcp:{}", self.addr)
    }

    fn state(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.path().join("state.json")).unwrap())
            .unwrap()
    }
}

impl Drop for TcpSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The amtinfo object without what the OS reports (host name, DNS suffix, the OS IP of AMT's MAC).
fn without_os_fields(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    o.remove("dnsSuffixOS");
    o.remove("hostnameOS");
    for adapter in ["wiredAdapter", "wirelessAdapter"] {
        if let Some(a) = o.get_mut(adapter).and_then(Value::as_object_mut) {
            a.remove("osIpAddress");
        }
    }
    v
}

#[test]
#[ignore = "needs the Windows build and Wine: make test-windows"]
fn version_is_the_linux_builds() {
    let Some(w) = wine("version_is_the_linux_builds") else {
        return;
    };
    let o = w.run(&["version"], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), stdout(&agent(&["version"])));
    let o = w.run(&["--json", "version"], &[]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
#[ignore = "needs the Windows build and Wine: make test-windows"]
fn amtinfo_on_the_in_process_simulator_equals_linux_but_the_os_fields() {
    let Some(w) = wine("amtinfo_on_the_in_process_simulator_equals_linux_but_the_os_fields") else {
        return;
    };
    for device in ["sim", "sim:profile=amt19", "sim:profile=amt11.8"] {
        let args = ["--device", device, "amtinfo", "--all", "--json"];
        let win = w.run(&args, &[]);
        assert_eq!(code(&win), 0, "{device}: {}", stderr(&win));
        let linux = agent(&args);
        assert_eq!(code(&linux), 0, "{}", stderr(&linux));
        let win: Value = serde_json::from_str(&stdout(&win)).unwrap();
        let linux: Value = serde_json::from_str(&stdout(&linux)).unwrap();
        // The OS fields are there, answered by the Windows calls (Wine's host name).
        assert!(
            win["hostnameOS"].as_str().is_some_and(|h| !h.is_empty()),
            "{win}"
        );
        assert_eq!(without_os_fields(win), without_os_fields(linux), "{device}");
    }
    // Text output too, line for line but the OS lines.
    let text = |o: Output| -> Vec<String> {
        stdout(&o)
            .lines()
            .filter(|l| !l.starts_with("DNS Suffix (OS)") && !l.starts_with("Hostname (OS)"))
            .filter(|l| !(l.starts_with("OS ") && l.contains("IP Address")))
            .map(str::to_string)
            .collect()
    };
    let args = ["--device", "sim", "amtinfo"];
    assert_eq!(text(w.run(&args, &[])), text(agent(&args)));
}

#[test]
#[ignore = "needs the Windows build and Wine: make test-windows"]
fn without_the_mei_driver_the_advice_is_windows_and_the_exit_is_2() {
    let Some(w) = wine("without_the_mei_driver_the_advice_is_windows_and_the_exit_is_2") else {
        return;
    };
    // Wine has no HECI driver: SetupAPI lists no device interface, as on a PC without the driver.
    let o = w.run(&["doctor"], &[]);
    let out = stdout(&o);
    assert_eq!(code(&o), 2, "{out}{}", stderr(&o));
    assert!(
        out.contains("E2D1FF34-3458-49A9-88DA-8E6915CE9BE5"),
        "{out}"
    );
    assert!(out.contains("Intel Management Engine Interface"), "{out}");
    assert!(!out.contains("modprobe"), "{out}");
    let o = w.run(&["--json", "doctor"], &[]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["exitCode"], 2);
    let o = w.run(&["amtinfo"], &[]);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(err.contains("error: no MEI device found"), "{err}");
    assert!(
        err.contains("help: install the Intel Management Engine Interface (MEI) driver"),
        "{err}"
    );
    // A Unix socket is no route on Windows: the error says which one is.
    let o = w.run(&["--device", "sim:/tmp/x.sock", "amtinfo"], &[]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("sim:tcp:127.0.0.1:PORT"),
        "{}",
        stderr(&o)
    );
}

#[test]
#[ignore = "needs the Windows build and Wine: make test-windows"]
fn local_ccm_activation_and_deactivation_through_the_linux_simulator() {
    let Some(w) = wine("local_ccm_activation_and_deactivation_through_the_linux_simulator") else {
        return;
    };
    let sim = TcpSim::start(&[]);
    let dev = sim.device();
    let o = w.run(&["--device", &dev, "amtinfo", "--json"], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let info: Value = serde_json::from_str(&stdout(&o)).unwrap();
    // rpc-go v2's word for control mode 0.
    assert_eq!(info["controlMode"], "pre-provisioning state");
    let o = w.run(
        &["--device", &dev, "-vvv", "activate", "--local", "--ccm"],
        &[("AMT_PASSWORD", AMT_PW)],
    );
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{}{err}", stdout(&o));
    assert!(!err.contains(AMT_PW), "the password leaked into the log");
    assert_eq!(sim.state()["control_mode"], 1);
    let o = w.run(&["--device", &dev, "deactivate", "--local"], &[]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert_eq!(sim.state()["control_mode"], 0);
}

#[test]
#[ignore = "needs the Windows build and Wine: make test-windows"]
fn local_ccm_activation_on_the_in_process_simulator() {
    let Some(w) = wine("local_ccm_activation_on_the_in_process_simulator") else {
        return;
    };
    let o = w.run(
        &["--device", "sim", "--json", "activate", "--local", "--ccm"],
        &[("AMT_PASSWORD", AMT_PW)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["status"], "success", "{v}");
    assert_eq!(v["controlMode"], "client control mode", "{v}");
    // A weak password is refused before anything is sent, with the rule named.
    let o = w.run(
        &["--device", "sim", "activate", "--local", "--ccm"],
        &[("AMT_PASSWORD", "short")],
    );
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("help:"), "{}", stderr(&o));
}

/// The Node RPS peer (tests/rps_peer), as tests/rps.rs runs it.
struct Peer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Peer {
    fn start(dir: &Path) -> Option<Peer> {
        let peer_dir = repo_file("tests/rps_peer");
        let node = Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !node
            || !peer_dir
                .join("node_modules/@device-management-toolkit/wsman-messages")
                .exists()
        {
            skip_without_node(
                "windows rps",
                "node or tests/rps_peer/node_modules is missing (make rps-peer-deps)",
            );
            return None;
        }
        let cfg = dir.join("peer.json");
        let config = json!({"delayMs": 300, "profiles": {
            "ccm-peer": {"mode": "ccm", "password": AMT_PW, "userConsent": "All"}
        }});
        std::fs::write(&cfg, config.to_string()).unwrap();
        let log = dir.join("peer.log");
        let mut child = Command::new("node")
            .arg(peer_dir.join("peer.js"))
            .arg("--config")
            .arg(&cfg)
            .arg("--log")
            .arg(&log)
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
        let Ok(line) = rx.recv_timeout(Duration::from_secs(15)) else {
            let _ = child.kill();
            panic!("the RPS peer did not start within 15 s");
        };
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected peer output: {line:?}"));
        Some(Peer { child, port, log })
    }

    fn finals(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|e| e["json"].clone())
            .filter(|j| matches!(j["method"].as_str(), Some("success" | "error")))
            .collect()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs the Windows build and Wine: make test-windows"]
fn rps_activation_from_wine_through_the_peer_with_the_linux_simulator_as_the_me() {
    let Some(w) =
        wine("rps_activation_from_wine_through_the_peer_with_the_linux_simulator_as_the_me")
    else {
        return;
    };
    let sim = TcpSim::start(&[]);
    let Some(peer) = Peer::start(sim.dir.path()) else {
        return;
    };
    let url = format!("ws://127.0.0.1:{}/activate", peer.port);
    let dev = sim.device();
    let o = w.run(
        &[
            "--device",
            &dev,
            "-vvv",
            "activate",
            "-u",
            &url,
            "--profile",
            "ccm-peer",
            "--hostname",
            "wine-host",
        ],
        &[],
    );
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(code(&o), 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("Control mode (firmware): client control mode"),
        "{out}"
    );
    assert_eq!(sim.state()["control_mode"], 1);
    let lsa = sim.state()["lsa_password"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        !lsa.is_empty() && !err.contains(&lsa),
        "the LSA password leaked"
    );
    let finals = peer.finals();
    assert_eq!(finals.len(), 1, "{finals:?}");
    assert_eq!(finals[0]["method"], "success");
}

#[test]
#[ignore = "needs the Windows build and Wine: make test-windows"]
fn the_service_runs_in_the_foreground_from_a_console_and_writes_its_status() {
    let Some(w) = wine("the_service_runs_in_the_foreground_from_a_console_and_writes_its_status")
    else {
        return;
    };
    let sim = TcpSim::start(&[]);
    let dir = sim.dir.path();
    std::fs::write(dir.join("amt-password"), format!("{AMT_PW}\n")).unwrap();
    // Wine derives the file's DACL from its mode: 600 leaves SYSTEM and the owner only.
    chmod(&dir.join("amt-password"), 0o600);
    let win = windows_path;
    let cfg = format!(
        "device = '{}'\nmode = 'ccm'\npassword_file = '{}'\nstate_dir = '{}'\nretry_initial = '1s'\n",
        sim.device(),
        win(&dir.join("amt-password")),
        win(dir)
    );
    let service = ForegroundService::start(w, dir, &cfg);
    let last = wait_status(&dir.join("status.json"), |v| v["state"] == "activated");
    drop(service);
    assert_eq!(last["controlMode"], "client control mode", "{last}");
    assert_eq!(sim.state()["control_mode"], 1);
    // `status` reads the same file.
    let o = w.run(&["status", "--state-dir", &win(dir)], &[]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A Linux path as the .exe sees it under Wine (the Z: drive is the Linux root).
fn windows_path(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

/// `amt-agent.exe service` run from a console (the foreground), with `toml` as `DIR\agent.toml`;
/// killed when dropped.
struct ForegroundService(Child);

impl ForegroundService {
    fn start(w: &Wine, dir: &Path, toml: &str) -> ForegroundService {
        let config = dir.join("agent.toml");
        std::fs::write(&config, toml).unwrap();
        let child = w
            .command(&["service", "--config", &windows_path(&config)], &[])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        ForegroundService(child)
    }
}

impl Drop for ForegroundService {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "needs the Windows build and Wine: make test-windows"]
fn a_password_file_others_can_read_is_refused_by_its_acl() {
    let Some(w) = wine("a_password_file_others_can_read_is_refused_by_its_acl") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("amt-password");
    std::fs::write(&file, format!("{AMT_PW}\n")).unwrap();
    // Mode 644: Wine's DACL for it lets Everyone read, as a careless ACL would on Windows.
    chmod(&file, 0o644);
    let args = [
        "--device",
        "sim",
        "activate",
        "--local",
        "--ccm",
        "--password-file",
        &windows_path(&file),
    ];
    let o = w.run(&args, &[]);
    let err = stderr(&o);
    assert_eq!(code(&o), 34, "{err}");
    assert!(err.contains("is readable by Everyone"), "{err}");
    assert!(err.contains("help: icacls"), "{err}");
    assert!(!err.contains(AMT_PW));
    chmod(&file, 0o600);
    let o = w.run(&args, &[]);
    assert_eq!(code(&o), 0, "{}: {}", o.status, stderr(&o));
}

/// `msiinfo export MSI TABLE` as text.
fn msi_table(msi: &Path, table: &str) -> String {
    let o = run_with_deadline(
        Command::new("msiinfo").arg("export").arg(msi).arg(table),
        Duration::from_secs(30),
    );
    assert!(o.status.success(), "msiinfo export {table}: {}", stderr(&o));
    stdout(&o)
}

fn msi() -> Option<PathBuf> {
    let m = env_path("AMT_AGENT_MSI");
    if m.is_none() {
        skip(
            "msi",
            "set AMT_AGENT_MSI (make test-windows builds it with make msi)",
        );
    }
    m
}

#[test]
#[ignore = "needs the Windows build and Wine: make test-windows"]
fn the_msi_carries_the_exe_the_config_the_service_and_a_stable_upgrade_code() {
    let Some(msi) = msi() else {
        return;
    };
    let files = msi_table(&msi, "File");
    assert!(files.contains("amt-agent.exe"), "{files}");
    assert!(files.contains("agent.toml"), "{files}");
    assert!(
        !files.to_lowercase().contains("bcryptprimitives"),
        "the Wine shim must never ship: {files}"
    );
    let service = msi_table(&msi, "ServiceInstall");
    let row = service
        .lines()
        .find(|l| l.contains("AmtAgentService"))
        .unwrap_or_else(|| panic!("no ServiceInstall row: {service}"));
    // Columns: ServiceInstall Name DisplayName ServiceType StartType ErrorControl …
    let cols: Vec<&str> = row.split('\t').collect();
    assert_eq!(cols[1], "amt-agent");
    assert_eq!(cols[3], "16", "own process");
    assert_eq!(
        cols[4], "3",
        "demand start: fleet tooling decides when it runs"
    );
    assert!(
        row.contains("service --config \"[CONFIGDIR]agent.toml\""),
        "{row}"
    );
    let control = msi_table(&msi, "ServiceControl");
    assert!(control.contains("amt-agent"), "{control}");
    let props = msi_table(&msi, "Property");
    assert!(
        props.contains("UpgradeCode\t{56351F07-FDB5-49A3-9CD9-0125D3412B0D}"),
        "{props}"
    );
    let wxs = std::fs::read_to_string(repo_file("packaging/windows/amt-agent.wxs")).unwrap();
    assert!(wxs.contains("UpgradeCode=\"56351F07-FDB5-49A3-9CD9-0125D3412B0D\""));
    // The config component is never overwritten and never removed.
    let comps = msi_table(&msi, "Component");
    let cfg = comps
        .lines()
        .find(|l| l.starts_with("AgentConfig\t"))
        .unwrap_or_else(|| panic!("{comps}"));
    let attrs: u32 = cfg.split('\t').nth(3).unwrap().parse().unwrap();
    const PERMANENT: u32 = 0x10;
    const NEVER_OVERWRITE: u32 = 0x80;
    assert_eq!(
        attrs & (PERMANENT | NEVER_OVERWRITE),
        PERMANENT | NEVER_OVERWRITE
    );
}

/// A fresh prefix for installing, removed (and its wineserver stopped) when dropped.
struct InstallPrefix(tempfile::TempDir);

impl InstallPrefix {
    fn new() -> InstallPrefix {
        std::fs::create_dir_all(wine_base()).unwrap();
        let p = InstallPrefix(tempfile::tempdir_in(wine_base()).unwrap());
        keep_server(p.path());
        p
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = wine_cmd(self.path());
        c.args(args);
        wine_run(&mut c, Duration::from_secs(120))
    }

    fn c(&self, rel: &str) -> PathBuf {
        self.path().join("drive_c").join(rel)
    }
}

impl Drop for InstallPrefix {
    fn drop(&mut self) {
        let server = Path::new(WINESERVER);
        if server.exists() {
            let _ = Command::new(server)
                .arg("-k")
                .env("WINEPREFIX", self.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// An MSI of the same source with another version, built as `make msi` builds it.
fn msi_version(version: &str, out: &Path) -> PathBuf {
    let exe = std::env::var("AMT_AGENT_WINDOWS_EXE").unwrap();
    let path = out.join(format!("amt-agent-{version}.msi"));
    let o = run_with_deadline(
        Command::new(repo_file("packaging/windows/build-msi"))
            .arg(version)
            .arg(exe)
            .arg(&path),
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "build-msi: {}", stderr(&o));
    path
}

/// A Wine process that keeps the prefix's user session alive: Wine ends its services when the
/// last ordinary process exits, which a real SCM does not. Killed when dropped.
struct KeepAlive(Child);

impl KeepAlive {
    fn start(p: &InstallPrefix) -> KeepAlive {
        let child = wine_cmd(p.path())
            .arg("cmd")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        KeepAlive(child)
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for the installed service's status.json to satisfy `done`.
fn wait_status(path: &Path, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Some(v) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            if done(&v) {
                return v;
            }
            last = v;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{}: not reached within 60 s; last {last}", path.display());
}

#[test]
#[ignore = "needs the Windows build and Wine: make test-windows"]
fn msiexec_installs_upgrades_and_uninstalls_under_wine_keeping_agent_toml() {
    let Some(msi) = msi() else {
        return;
    };
    let Some(w) = wine("msiexec_installs_upgrades_and_uninstalls_under_wine_keeping_agent_toml")
    else {
        return;
    };
    let p = InstallPrefix::new();
    let o = p.run(&["msiexec", "/i", &msi.display().to_string(), "/qn"]);
    assert_eq!(code(&o), 0, "msiexec /i: {}", stderr(&o));
    let exe = p.c("Program Files/amt-agent/amt-agent.exe");
    let toml = p.c("ProgramData/amt-agent/agent.toml");
    assert!(exe.exists(), "{} missing", exe.display());
    assert!(p.c("Program Files/amt-agent/LICENSE.txt").exists());
    assert_eq!(
        std::fs::read(&toml).unwrap(),
        std::fs::read(repo_file("packaging/windows/agent.toml")).unwrap()
    );
    assert!(!p.c("Program Files/amt-agent/bcryptprimitives.dll").exists());
    // The service is registered, demand start, running the installed exe with the config.
    let o = p.run(&[
        "reg",
        "query",
        r"HKLM\System\CurrentControlSet\Services\amt-agent",
    ]);
    let reg = stdout(&o);
    assert_eq!(code(&o), 0, "{reg}{}", stderr(&o));
    assert!(reg.contains("amt-agent.exe"), "{reg}");
    assert!(
        reg.contains(r#"service --config "C:\ProgramData\amt-agent\agent.toml""#),
        "{reg}"
    );
    let start = reg
        .lines()
        .find(|l| l.trim_start().starts_with("Start"))
        .unwrap_or_else(|| panic!("{reg}"));
    assert!(start.trim_end().ends_with("0x3"), "demand start: {start}");
    // The installed exe runs (with the test shim placed beside it for Wine only).
    std::fs::copy(
        w.dir.join("bcryptprimitives.dll"),
        p.c("Program Files/amt-agent/bcryptprimitives.dll"),
    )
    .unwrap();
    let o = p.run(&[r"C:\Program Files\amt-agent\amt-agent.exe", "version"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // Wine's service manager runs it as the SCM would: the shipped agent.toml (device auto) finds
    // no driver, so the service retries with exit code 2 in its status file, and Stop ends it.
    let status = p.c("ProgramData/amt-agent/status.json");
    {
        let _session = KeepAlive::start(&p);
        let o = p.run(&["sc", "start", "amt-agent"]);
        assert_eq!(code(&o), 0, "sc start: {}{}", stdout(&o), stderr(&o));
        let v = wait_status(&status, |v| v["state"] == "retrying");
        assert_eq!(v["lastError"]["code"], 2, "{v}");
        assert_eq!(v["lastError"]["name"], "HECIDriverNotDetected", "{v}");
        // Nobody reads a service's stderr: its log is a file beside status.json, without colour.
        let log = std::fs::read_to_string(p.c("ProgramData/amt-agent/amt-agent.log")).unwrap();
        assert!(log.contains("no MEI device found"), "{log}");
        assert!(
            !log.contains('\u{1b}'),
            "ANSI escapes in the log file: {log}"
        );
        let o = p.run(&["sc", "query", "amt-agent"]);
        assert!(stdout(&o).contains("RUNNING"), "{}", stdout(&o));
        let o = p.run(&["sc", "stop", "amt-agent"]);
        assert_eq!(code(&o), 0, "sc stop: {}{}", stdout(&o), stderr(&o));
        let v = wait_status(&status, |v| v["state"] == "stopped");
        assert!(v["nextAttempt"].is_null(), "{v}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let q = stdout(&p.run(&["sc", "query", "amt-agent"]));
            if q.contains("STOPPED") {
                assert!(q.contains("WIN32_EXIT_CODE    : 0"), "{q}");
                break;
            }
            assert!(Instant::now() < deadline, "the service did not stop: {q}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    std::fs::remove_file(p.c("Program Files/amt-agent/bcryptprimitives.dll")).unwrap();

    // The administrator edits agent.toml; a newer MSI upgrades in place and keeps it.
    let edited = "# edited by the administrator\nmode = 'acm'\n";
    std::fs::write(&toml, edited).unwrap();
    let out = tempfile::tempdir().unwrap();
    let newer = msi_version("99.0.0", out.path());
    let o = p.run(&["msiexec", "/i", &newer.display().to_string(), "/qn"]);
    assert_eq!(code(&o), 0, "upgrade: {}", stderr(&o));
    assert!(exe.exists());
    assert_eq!(std::fs::read_to_string(&toml).unwrap(), edited);
    // The older product was removed by the upgrade: uninstalling it again says it is unknown.
    let product = |m: &Path| {
        msi_table(m, "Property")
            .lines()
            .find_map(|l| l.strip_prefix("ProductCode\t").map(str::to_string))
            .unwrap()
    };
    let old = product(&msi);
    let uninstall_key =
        |code: &str| format!(r"HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall\{code}");
    let o = p.run(&["reg", "query", &uninstall_key(&old)]);
    assert_ne!(
        code(&o),
        0,
        "the old product is still registered: {}",
        stdout(&o)
    );
    let o = p.run(&["reg", "query", &uninstall_key(&product(&newer))]);
    assert_eq!(
        code(&o),
        0,
        "the new product is not registered: {}",
        stderr(&o)
    );
    let o = p.run(&["msiexec", "/x", &old, "/qn"]);
    // ERROR_UNKNOWN_PRODUCT (1605); a Unix exit status keeps its low byte, 0x45.
    assert_eq!(
        code(&o),
        1605 & 0xff,
        "the old product should be gone: {}",
        stderr(&o)
    );
    // Uninstalling the newer one removes the program and the service, not the configuration.
    let o = p.run(&["msiexec", "/x", &product(&newer), "/qn"]);
    assert_eq!(code(&o), 0, "uninstall: {}", stderr(&o));
    assert!(!exe.exists());
    assert_eq!(std::fs::read_to_string(&toml).unwrap(), edited);
    let o = p.run(&[
        "reg",
        "query",
        r"HKLM\System\CurrentControlSet\Services\amt-agent",
    ]);
    assert_ne!(code(&o), 0, "the service should be removed: {}", stdout(&o));
}

#[test]
#[ignore = "needs the Windows build and Wine: make test-windows"]
fn service_install_and_uninstall_register_and_remove_the_windows_service() {
    let Some(w) = wine("service_install_and_uninstall_register_and_remove_the_windows_service")
    else {
        return;
    };
    let p = InstallPrefix::new();
    let dir = p.c("tools");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(w.exe(), dir.join("amt-agent.exe")).unwrap();
    std::fs::copy(
        w.dir.join("bcryptprimitives.dll"),
        dir.join("bcryptprimitives.dll"),
    )
    .unwrap();
    let exe = r"C:\tools\amt-agent.exe";
    let o = p.run(&[
        exe,
        "service",
        "install",
        "--config",
        r"C:\tools\agent.toml",
    ]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("sc start amt-agent"), "{}", stdout(&o));
    let o = p.run(&[
        "reg",
        "query",
        r"HKLM\System\CurrentControlSet\Services\amt-agent",
    ]);
    let reg = stdout(&o);
    assert_eq!(code(&o), 0, "{reg}");
    assert!(
        reg.contains(r#"C:\tools\amt-agent.exe" service --config "C:\tools\agent.toml""#)
            || reg.contains(r#"C:\tools\amt-agent.exe service --config C:\tools\agent.toml"#),
        "{reg}"
    );
    let start = reg
        .lines()
        .find(|l| l.trim_start().starts_with("Start"))
        .unwrap_or_else(|| panic!("{reg}"));
    assert!(start.trim_end().ends_with("0x3"), "manual start: {start}");
    // A second install is refused with the SCM's reason, not a panic.
    let o = p.run(&[exe, "service", "install"]);
    assert_ne!(code(&o), 0);
    assert!(
        stderr(&o).contains("error: cannot create the service"),
        "{}",
        stderr(&o)
    );
    let o = p.run(&[exe, "service", "uninstall"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let o = p.run(&[
        "reg",
        "query",
        r"HKLM\System\CurrentControlSet\Services\amt-agent",
    ]);
    assert_ne!(code(&o), 0, "the service should be gone: {}", stdout(&o));
    // On Linux the same subcommand says to use systemd.
    let o = agent(&["service", "install"]);
    assert_eq!(code(&o), 28, "{}", stderr(&o));
    assert!(stderr(&o).contains("systemctl enable"), "{}", stderr(&o));
}

/// The simulator's WS-MAN log: `Class.Operation` of every request that can change AMT, from
/// request `from` on, and how many requests there were.
fn sim_writes(sim: &TcpSim, from: usize) -> (Vec<String>, usize) {
    const READS: &[&str] = &["Get", "Enumerate", "Pull", "GetLowAccuracyTimeSynch"];
    let log = std::fs::read_to_string(sim.dir.path().join("wsman.log")).unwrap_or_default();
    let lines: Vec<Vec<&str>> = log.lines().map(|l| l.split('\t').collect()).collect();
    let writes = lines[from.min(lines.len())..]
        .iter()
        .filter(|f| !READS.contains(&f[2]))
        .map(|f| format!("{}.{}", f[1], f[2]))
        .collect();
    (writes, lines.len())
}

/// amt-sim over TCP with its WS-MAN log, activated in CCM by the Linux agent (the Windows one's
/// activation is tested above; this keeps Wine's time for what the test is about).
fn activated_tcp_sim() -> TcpSim {
    let sim = TcpSim::start(&[]);
    let o = agent_env(
        &["--device", &sim.device(), "activate", "--local", "--ccm"],
        &[("AMT_PASSWORD", AMT_PW)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    sim
}
#[test]
#[ignore = "needs the Windows build and Wine: make test-windows"]
fn configure_from_wine_applies_once_then_has_nothing_to_change_and_pins_amts_tls() {
    let Some(w) =
        wine("configure_from_wine_applies_once_then_has_nothing_to_change_and_pins_amts_tls")
    else {
        return;
    };
    let sim = activated_tcp_sim();
    let dev = sim.device();
    let pw = [("AMT_PASSWORD", AMT_PW)];
    let features = [
        "--device",
        &dev,
        "--json",
        "configure",
        "amt-features",
        "--kvm",
        "--sol",
        "--ider",
    ];
    let (_, from) = sim_writes(&sim, 0);
    let o = w.run(&features, &pw);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["status"], "changed", "{j}");
    let (writes, from) = sim_writes(&sim, from);
    assert_eq!(
        writes,
        [
            "AMT_RedirectionService.RequestStateChange",
            "CIM_KVMRedirectionSAP.RequestStateChange",
            "AMT_RedirectionService.Put"
        ]
    );
    let s = sim.state();
    assert_eq!(
        instance(&s, "AMT_RedirectionService")["EnabledState"],
        "32771"
    );
    assert_eq!(instance(&s, "CIM_KVMRedirectionSAP")["EnabledState"], "2");
    let o = w.run(&features, &pw);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["status"], "unchanged", "{j}");
    let (writes, from) = sim_writes(&sim, from);
    assert_eq!(writes, Vec::<String>::new(), "the second run wrote");

    // configure tls: AMT's new certificate is pinned in a file only SYSTEM, Administrators and
    // this user may change (Wine shows the DACL the agent gave it as the file's mode); the
    // second run talks TLS to AMT verifying that pin, and finds nothing to change.
    let pins = sim.dir.path().join("pins");
    let pin_dir = windows_path(&pins);
    let tls = [
        "--device",
        &dev,
        "configure",
        "--tls-pin-dir",
        &pin_dir,
        "tls",
        "--mode",
        "Server",
    ];
    let o = w.run(&tls, &pw);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("pinned in"), "{}", stdout(&o));
    let pin = std::fs::read_dir(&pins)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a pin file");
    let mode = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).unwrap().mode() & 0o777
    };
    assert_eq!(
        mode(&pin) & 0o007,
        0,
        "others may use the pin: {:o}",
        mode(&pin)
    );
    assert_eq!(mode(&pins) & 0o007, 0, "others may enter the pin folder");
    let o = w.run(&tls, &pw);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("tls: nothing to change"),
        "{}",
        stdout(&o)
    );
    let (writes, _) = sim_writes(&sim, from);
    assert_eq!(
        writes
            .iter()
            .filter(|w| w.contains("AddCertificate"))
            .count(),
        1,
        "{writes:?}"
    );
    // A pin that others may change is not trusted (Wine's DACL for mode 666 lets Everyone write).
    chmod(&pin, 0o666);
    let o = w.run(&tls, &pw);
    let err = stderr(&o);
    assert_eq!(code(&o), 10, "{err}");
    assert!(err.contains("may be written by Everyone"), "{err}");
    assert!(
        err.contains("help: check who changed it, then: icacls"),
        "{err}"
    );
}

#[test]
#[ignore = "needs the Windows build and Wine: make test-windows"]
fn plan_and_apply_from_wine_with_a_generated_password_kept_private() {
    let Some(w) = wine("plan_and_apply_from_wine_with_a_generated_password_kept_private") else {
        return;
    };
    let sim = TcpSim::start(&[]);
    let dev = sim.device();
    let dir = sim.dir.path();
    let profile = dir.join("profile.yaml");
    std::fs::write(
        &profile,
        "version: 1\ncontrolMode: ccm\nadminPassword: generate\n\
         features: {kvm: true, sol: true, ider: false, userConsent: all}\n\
         hostname: {hostName: wks-0042, domainName: corp.example.com}\n",
    )
    .unwrap();
    let data = dir.join("data");
    let (p, d) = (windows_path(&profile), windows_path(&data));
    let plan = |w: &Wine| {
        let o = w.run(
            &["--device", &dev, "--json", "plan", &p, "--data-dir", &d],
            &[],
        );
        let v: Value = serde_json::from_str(&stdout(&o))
            .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&o), stderr(&o)));
        (code(&o), v)
    };
    let (c, v) = plan(w);
    assert_eq!(
        (c, v["status"].as_str()),
        (2, Some("changes-pending")),
        "{v:#}"
    );
    assert_eq!(sim_writes(&sim, 0).0, Vec::<String>::new(), "plan wrote");
    assert!(!data.exists(), "plan stored something");

    let o = w.run(&["--device", &dev, "apply", &p, "--data-dir", &d], &[]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(code(&o), 0, "{out}{err}");
    assert!(out.contains("apply: AMT matches the profile"), "{out}");
    let s = sim.state();
    assert_eq!(s["control_mode"], 1);
    assert_eq!(instance(&s, "AMT_GeneralSettings")["HostName"], "wks-0042");
    // SOL on, IDE-R off; KVM on in its own class.
    assert_eq!(
        instance(&s, "AMT_RedirectionService")["EnabledState"],
        "32770"
    );
    assert_eq!(instance(&s, "CIM_KVMRedirectionSAP")["EnabledState"], "2");
    // The generated password: stored before use, private (the DACL the agent gave the file and
    // its folders, as Wine shows it in their modes), never printed, and the one AMT now has.
    let generated = data.join("generated/amt-password");
    let secret = std::fs::read_to_string(&generated).unwrap();
    let secret = secret.trim();
    assert_eq!(secret.len(), 16);
    for p in [&generated, &data.join("generated"), &data] {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(p).unwrap().mode();
        assert_eq!(
            m & 0o007,
            0,
            "{} is open to others: {:o}",
            p.display(),
            m & 0o777
        );
    }
    assert!(!out.contains(secret) && !err.contains(secret));
    let o = linux_wsman(&dev, secret, &["get", "AMT_GeneralSettings"]);
    assert_eq!(
        code(&o),
        0,
        "AMT does not take the generated password: {}",
        stderr(&o)
    );

    // Plan reads the generated password back through the ACL check: nothing left to do.
    let (_, from) = sim_writes(&sim, 0);
    let (c, v) = plan(w);
    assert_eq!((c, v["status"].as_str()), (0, Some("no-changes")), "{v:#}");
    let o = w.run(
        &["--device", &dev, "--json", "apply", &p, "--data-dir", &d],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["status"], "unchanged", "{j}");
    assert_eq!(sim_writes(&sim, from).0, Vec::<String>::new());

    // A plain-text secret in a profile every user can read is refused, with the Windows fix.
    std::fs::write(
        &profile,
        format!("version: 1\ncontrolMode: ccm\nadminPassword: {AMT_PW}\n"),
    )
    .unwrap();
    chmod(&profile, 0o644);
    let o = w.run(&["profile", "check", &p], &[]);
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert_eq!(code(&o), 34, "{out}");
    assert!(out.contains("which Everyone can read"), "{out}");
    assert!(out.contains("icacls"), "{out}");
    assert!(!out.contains(AMT_PW), "{out}");
}

/// The Linux agent's `diagnostics wsman ARGS` as AMT's admin, retried (bounded, 10 s) while the
/// ME's LME client is busy: with the Windows service running, or for the moment a Wine process
/// that just exited may still hold its connection to the simulator.
fn linux_wsman(device: &str, password: &str, args: &[&str]) -> Output {
    let mut all = vec!["--device", device, "diagnostics", "wsman"];
    all.extend_from_slice(args);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = agent_env(&all, &[("AMT_PASSWORD", password)]);
        if code(&o) != 4 || Instant::now() > deadline {
            return o;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs the Windows build and Wine: make test-windows"]
fn the_service_with_a_profile_applies_it_then_reports_drift() {
    let Some(w) = wine("the_service_with_a_profile_applies_it_then_reports_drift") else {
        return;
    };
    let sim = TcpSim::start(&[]);
    let dir = sim.dir.path();
    let profile = dir.join("profile.yaml");
    std::fs::write(
        &profile,
        format!(
            "version: 1\ncontrolMode: ccm\nadminPassword: {AMT_PW}\n\
             hostname: {{hostName: wks-0042, domainName: corp.example.com}}\n"
        ),
    )
    .unwrap();
    // Wine derives the file's DACL from its mode: 600 leaves SYSTEM and the owner only.
    chmod(&profile, 0o600);
    let win = windows_path;
    let cfg = format!(
        "device = '{}'\nprofile = '{}'\ndrift = 'report'\nplan_interval = '1s'\n\
         data_dir = '{}'\nstate_dir = '{}'\nretry_initial = '1s'\n",
        sim.device(),
        win(&profile),
        win(&dir.join("data")),
        win(dir)
    );
    let _service = ForegroundService::start(w, dir, &cfg);
    let status = dir.join("status.json");
    let s = wait_status(&status, |v| {
        v["state"] == "activated" && v["controlModeCode"] == 1
    });
    assert_eq!(s["desired"], format!("profile {}", win(&profile)), "{s}");
    assert!(s["lastPlan"].is_string(), "{s}");
    let host = |sim: &TcpSim| {
        instance(&sim.state(), "AMT_GeneralSettings")["HostName"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(host(&sim), "wks-0042");
    assert!(dir.join("data/profile-applied.json").exists());

    // Someone renames AMT: the next plan reports exactly that, and the service changes nothing.
    let o = linux_wsman(
        &sim.device(),
        AMT_PW,
        &["put", "AMT_GeneralSettings", "--set", "HostName=rogue"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let s = wait_status(&status, |v| v["state"] == "drifted");
    let d = s["drift"].as_array().unwrap();
    assert_eq!(d.len(), 1, "{s:#}");
    assert_eq!(
        (
            d[0]["area"].as_str(),
            d[0]["setting"].as_str(),
            d[0]["current"].as_str(),
            d[0]["desired"].as_str(),
            d[0]["fixed"].as_bool()
        ),
        (
            Some("hostname"),
            Some("host name"),
            Some("rogue"),
            Some("wks-0042"),
            Some(false)
        ),
        "{s:#}"
    );
    // `status` says so with its exit code 2, as on Linux.
    let o = w.run(&["status", "--state-dir", &win(dir)], &[]);
    assert_eq!(code(&o), 2, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("hostname: host name: rogue (wanted wks-0042)"),
        "{}",
        stdout(&o)
    );
    assert_eq!(host(&sim), "rogue", "drift = report changed AMT");
}
