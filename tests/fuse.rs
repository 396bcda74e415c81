//! End to end: `amt-sim serve --mei-file` presents the simulated ME as a MEI device file through
//! FUSE, and the agent's real Linux ioctl backend and an unmodified C client run against it.
//!
//! Every test needs FUSE (/dev/fuse, and root or fusermount3). Without it a test prints a
//! `skipped: …` line and returns; CI installs the `fuse3` package so that they run.

#![cfg(target_os = "linux")]

mod mei_clients;

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const AMT_SIM: &str = env!("CARGO_BIN_EXE_amt-sim");
const AMT_AGENT: &str = env!("CARGO_BIN_EXE_amt-agent");
const START_DEADLINE: Duration = Duration::from_secs(10);
const STOP_DEADLINE: Duration = Duration::from_secs(5);
const AGENT_DEADLINE: Duration = Duration::from_secs(30);

/// Says that a test did not run and why. Written to the stderr handle itself, which libtest does
/// not capture, so the line shows in a plain `cargo test` run.
fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {test}: {why}");
}

/// Why FUSE cannot be used here, if it cannot.
fn fuse_unavailable() -> Option<String> {
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound => "install fuse3 or modprobe fuse",
            _ => "this user may not use FUSE here",
        };
        return Some(format!("cannot open /dev/fuse ({e}); {hint}"));
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root && which("fusermount3").is_none() && which("fusermount").is_none() {
        return Some("not root and neither fusermount3 nor fusermount is installed".into());
    }
    None
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

/// How many mounts sit on `path` in this process's mount table.
fn mounts_at(path: &Path) -> usize {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = path.as_os_str().as_bytes();
    table
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|mp| mp.replace("\\040", " ").as_bytes() == want)
        })
        .count()
}

fn detach(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path without NUL");
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        for tool in ["fusermount3", "fusermount"] {
            let _ = Command::new(tool)
                .args(["-u", "-q", "-z"])
                .arg(path)
                .status();
        }
    }
}

/// A running `amt-sim serve --mei-file DIR/mei0 --socket DIR/sim.sock`; stopped and unmounted on
/// drop, whatever the test did.
struct Sim {
    child: Option<Child>,
    dir: PathBuf,
    file: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

enum Start {
    Running(Sim),
    /// FUSE is not usable here; the reason.
    Skip(String),
    /// amt-sim exited; its stderr.
    Failed(String),
}

impl Sim {
    /// Starts a simulator or says why the calling test is skipped.
    fn start(test: &str, extra: &[&str]) -> Option<Sim> {
        Sim::start_with(test, |_| extra.iter().map(|a| a.to_string()).collect())
    }

    /// Starts a simulator whose extra arguments may name files in its directory.
    fn start_with(test: &str, extra: impl FnOnce(&Path) -> Vec<String>) -> Option<Sim> {
        if let Some(why) = fuse_unavailable() {
            skip(test, &why);
            return None;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().canonicalize().expect("canonical tempdir");
        let extra = extra(&dir);
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        match Sim::start_in(&dir, &extra) {
            Start::Running(mut sim) => {
                sim._tmp = Some(tmp);
                Some(sim)
            }
            Start::Skip(why) => {
                skip(test, &why);
                None
            }
            Start::Failed(log) => panic!("amt-sim did not start:\n{log}"),
        }
    }

    fn start_in(dir: &Path, extra: &[&str]) -> Start {
        let file = dir.join("mei0");
        let socket = dir.join("sim.sock");
        let log = dir.join(format!("amt-sim-{}.log", rand_suffix()));
        let child = Command::new(AMT_SIM)
            .arg("serve")
            .arg("--mei-file")
            .arg(&file)
            .arg("--socket")
            .arg(&socket)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn amt-sim");
        let mut sim = Sim {
            child: Some(child),
            dir: dir.to_path_buf(),
            file,
            socket,
            log,
            _tmp: None,
        };
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            // amt-sim says so once the file is mounted and once the socket is bound (a killed
            // predecessor may have left both a dead mount and a socket file behind).
            let log = sim.log_text();
            if log.contains("serving MEI device file") && log.contains("listening on") {
                assert!(
                    mounts_at(&sim.file) > 0,
                    "amt-sim says mounted, mountinfo disagrees"
                );
                return Start::Running(sim);
            }
            if let Ok(Some(_)) = sim.child.as_mut().expect("child").try_wait() {
                let log = sim.log_text();
                sim.child = None;
                if log.contains("not permitted") || log.contains("Permission denied") {
                    return Start::Skip(format!("amt-sim may not mount FUSE here: {}", log.trim()));
                }
                return Start::Failed(log);
            }
            if Instant::now() > deadline {
                return Start::Failed(format!(
                    "no mount at {} within {START_DEADLINE:?}\n{}",
                    sim.file.display(),
                    sim.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> libc::pid_t {
        self.child.as_ref().expect("running").id() as libc::pid_t
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_DEADLINE;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop();
        if mounts_at(&self.file) > 0 {
            detach(&self.file);
        }
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Runs a program to completion, killing it (and failing the test) at `deadline`.
fn run(cmd: &mut Command, deadline: Duration) -> Run {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        took: started.elapsed(),
    }
}

fn agent(device: &str, args: &[&str]) -> Run {
    run(
        Command::new(AMT_AGENT)
            .arg("--device")
            .arg(device)
            .args(args)
            .env_remove("AMT_AGENT_DEVICE"),
        AGENT_DEADLINE,
    )
}

/// Drops the keys that legitimately differ between the two transports.
fn comparable(mut v: serde_json::Value) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for k in ["simulated", "dnsSuffixOS", "hostnameOS", "osIpAddress"] {
                    m.remove(k);
                }
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

/// Compiles tests/c/mei_probe.c, or says why not.
fn build_probe(dir: &Path) -> Result<PathBuf, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/mei_probe.c");
    let exe = dir.join("mei_probe");
    let out = Command::new("cc")
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .map_err(|e| format!("no C compiler (cc): {e}"))?;
    if !out.status.success() {
        panic!(
            "tests/c/mei_probe.c does not compile:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(exe)
}

fn device(sim: &Sim) -> String {
    sim.file.display().to_string()
}

#[test]
fn amtinfo_over_the_device_file_matches_amtinfo_over_the_socket() {
    let Some(sim) = Sim::start("amtinfo_over_the_device_file", &[]) else {
        return;
    };
    let file = agent(&device(&sim), &["amtinfo", "--all", "--json"]);
    assert_eq!(file.code, Some(0), "device file: {}", file.stderr);
    let sock = agent(
        &format!("sim:{}", sim.socket.display()),
        &["amtinfo", "--all", "--json"],
    );
    assert_eq!(sock.code, Some(0), "socket: {}", sock.stderr);
    let a: serde_json::Value = serde_json::from_str(&file.stdout).expect("JSON from the file");
    let b: serde_json::Value = serde_json::from_str(&sock.stdout).expect("JSON from the socket");
    assert!(
        a.get("simulated").is_none(),
        "the device file must look like hardware"
    );
    assert_eq!(comparable(a), comparable(b));
}

#[test]
fn a_profile_without_amthi_exits_3() {
    let Some(sim) = Sim::start("a_profile_without_amthi", &["--device-profile", "consumer"]) else {
        return;
    };
    let r = agent(&device(&sim), &["amtinfo"]);
    assert_eq!(r.code, Some(3), "stderr: {}", r.stderr);
}

#[test]
fn a_busy_amthi_exits_4_and_says_busy() {
    let Some(sim) = Sim::start("a_busy_amthi", &["--fault", "busy=amthi"]) else {
        return;
    };
    let r = agent(&device(&sim), &["amtinfo"]);
    assert_eq!(r.code, Some(4), "stderr: {}", r.stderr);
    assert!(
        r.stderr.to_lowercase().contains("busy"),
        "stderr: {}",
        r.stderr
    );
}

#[test]
fn a_hung_command_fails_with_4_instead_of_hanging() {
    let Some(sim) = Sim::start("a_hung_command", &["--fault", "hang=GET_UUID"]) else {
        return;
    };
    let r = agent(&device(&sim), &["amtinfo", "--uuid"]);
    assert_eq!(r.code, Some(4), "stderr: {}", r.stderr);
    assert!(
        r.took < Duration::from_secs(15),
        "took {:?}: the poll timeout did not fire",
        r.took
    );
}

#[test]
fn an_unmodified_c_client_reads_the_amt_version_from_the_file() {
    let Some(sim) = Sim::start("c_client_on_the_file", &[]) else {
        return;
    };
    let probe = match build_probe(&sim.dir) {
        Ok(p) => p,
        Err(why) => {
            skip("c_client_on_the_file", &why);
            return;
        }
    };
    let r = run(Command::new(&probe).arg(&sim.file), AGENT_DEADLINE);
    assert_eq!(r.code, Some(0), "probe: {}{}", r.stdout, r.stderr);
    let info = agent(&device(&sim), &["amtinfo", "--ver", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&info.stdout).expect("JSON");
    let amt = v["amt"].as_str().expect("amt version");
    assert!(
        r.stdout.contains(&format!("AMT version: {amt}\n")),
        "probe said: {}",
        r.stdout
    );
}

#[test]
fn poll_wakes_when_a_delayed_answer_becomes_due() {
    let Some(sim) = Sim::start(
        "poll_wakes_for_a_delayed_answer",
        &["--fault", "latency=GET_CODE_VERSIONS:400"],
    ) else {
        return;
    };
    let probe = match build_probe(&sim.dir) {
        Ok(p) => p,
        Err(why) => {
            skip("poll_wakes_for_a_delayed_answer", &why);
            return;
        }
    };
    // The probe polls for up to 5 s: it must be woken when the answer is due, not time out.
    let r = run(Command::new(&probe).arg(&sim.file), AGENT_DEADLINE);
    assert_eq!(r.code, Some(0), "probe: {}{}", r.stdout, r.stderr);
    assert!(
        r.took >= Duration::from_millis(400),
        "answered before the latency: {:?}",
        r.took
    );
    assert!(
        r.took < Duration::from_secs(3),
        "poll was not notified: {:?}",
        r.took
    );
}

#[test]
fn a_client_blocked_in_read_can_be_killed() {
    let Some(sim) = Sim::start("a_client_blocked_in_read", &[]) else {
        return;
    };
    let probe = match build_probe(&sim.dir) {
        Ok(p) => p,
        Err(why) => {
            skip("a_client_blocked_in_read", &why);
            return;
        }
    };
    let mut child = Command::new(&probe)
        .arg(&sim.file)
        .arg("--wait")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn probe");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let mut b = [0u8; 256];
        while let Ok(n) = stdout.read(&mut b) {
            if n == 0 {
                break;
            }
            s.push_str(&String::from_utf8_lossy(&b[..n]));
            if s.contains("waiting in read") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(10)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the probe never reached its read");
    }
    std::thread::sleep(Duration::from_millis(200));
    let killed = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = killed + Duration::from_secs(3);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break Some(st);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Stopping the simulator releases a stuck reader too, so the test never leaves it behind.
    drop(sim);
    let _ = child.kill();
    let _ = child.wait();
    let st = status.expect("a client blocked in read() did not die within 3 s of SIGTERM");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGTERM));
}

#[test]
fn a_write_is_not_stalled_by_a_read_blocked_on_the_same_descriptor() {
    let Some(sim) = Sim::start("write_behind_a_blocked_read", &[]) else {
        return;
    };
    let path = std::ffi::CString::new(sim.file.as_os_str().as_bytes()).expect("path");
    // SAFETY: plain syscalls on a descriptor this test owns; buffers outlive the calls.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    assert!(fd >= 0, "open: {}", std::io::Error::last_os_error());
    let mut data: [u8; 16] = [
        0x28, 0x00, 0xF8, 0x12, 0xB7, 0xB4, 0x2D, 0x4B, 0xAC, 0xA8, 0x46, 0xE0, 0xFF, 0x65, 0x81,
        0x4C,
    ];
    // SAFETY: IOCTL_MEI_CONNECT_CLIENT takes a 16-byte in/out buffer.
    let r = unsafe { libc::ioctl(fd, 0xC010_4801, data.as_mut_ptr()) };
    assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
    let mtu = u32::from_le_bytes(data[..4].try_into().expect("4 bytes")) as usize;

    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; mtu];
        // SAFETY: `buf` holds `mtu` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), mtu) };
        let _ = tx.send(n);
    });
    std::thread::sleep(Duration::from_millis(300));
    // The write runs on its own thread too: if it is stalled behind the read, the test fails at
    // its deadline (stopping the simulator then releases both) instead of hanging.
    let (wtx, wrx) = mpsc::channel();
    std::thread::spawn(move || {
        let req = [0x01u8, 0x01, 0, 0, 0x1a, 0, 0, 0x04, 0, 0, 0, 0];
        // SAFETY: `req` is 12 valid bytes.
        let w = unsafe { libc::write(fd, req.as_ptr().cast(), req.len()) };
        let _ = wtx.send((w, std::io::Error::last_os_error()));
    });
    let (w, err) = wrx
        .recv_timeout(Duration::from_secs(2))
        .expect("the write is stalled behind the read blocked on the same descriptor");
    assert_eq!(w, 12, "write: {err}");
    let n = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the blocked read got the answer");
    assert!(n > 16, "read returned {n}");
    // SAFETY: closing our descriptor.
    unsafe { libc::close(fd) };
}

#[test]
fn an_unmodified_c_client_runs_against_dev_mei0_in_a_private_mount_namespace() {
    let test = "c_client_on_dev_mei0";
    if which("unshare").is_none()
        || !Command::new("unshare")
            .args(["-m", "--propagation", "private", "true"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    {
        skip(test, "unshare -m is not permitted here (needs root)");
        return;
    }
    let Some(sim) = Sim::start(test, &[]) else {
        return;
    };
    let probe = match build_probe(&sim.dir) {
        Ok(p) => p,
        Err(why) => {
            skip(test, &why);
            return;
        }
    };
    // A tmpfs over /dev inside the namespace, so the host's /dev is never touched; the probe
    // runs with no arguments, i.e. on its built-in /dev/mei0.
    let script = "mount -t tmpfs -o size=64k,mode=755 amt-sim-test /dev && : > /dev/mei0 \
                  && mount --bind \"$1\" /dev/mei0 && exec \"$2\"";
    let r = run(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
            .arg(&sim.file)
            .arg(&probe),
        AGENT_DEADLINE,
    );
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("AMT version: "), "{}", r.stdout);
    assert!(
        !Path::new("/dev/mei0").exists() || mounts_at(Path::new("/dev/mei0")) == 0,
        "the host's /dev/mei0 must not be touched"
    );
}

#[test]
fn stopping_the_simulator_removes_the_mount_and_the_file_it_created() {
    let Some(mut sim) = Sim::start("stopping_removes_the_mount", &[]) else {
        return;
    };
    assert_eq!(mounts_at(&sim.file), 1);
    let st = sim.stop().expect("amt-sim stops on SIGTERM");
    assert!(st.success(), "exit: {st:?}\n{}", sim.log_text());
    assert_eq!(mounts_at(&sim.file), 0, "a mount was left behind");
    assert!(!sim.file.exists(), "the placeholder file was left behind");
    assert!(!sim.socket.exists(), "the socket was left behind");
}

#[test]
fn a_start_that_fails_after_mounting_leaves_no_mount() {
    if let Some(why) = fuse_unavailable() {
        skip("failed_start_leaves_no_mount", &why);
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().canonicalize().expect("canonical");
    let file = dir.join("mei0");
    // The socket's directory does not exist: serving fails after the device file was mounted.
    let r = run(
        Command::new(AMT_SIM)
            .arg("serve")
            .arg("--mei-file")
            .arg(&file)
            .arg("--socket")
            .arg(dir.join("missing/sim.sock")),
        Duration::from_secs(10),
    );
    if mounts_at(&file) > 0 {
        detach(&file);
        panic!("a failed start left a mount at {}", file.display());
    }
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("sim.sock"), "{}", r.stderr);
    assert!(!file.exists(), "the placeholder file was left behind");
}

#[test]
fn a_stale_mount_from_a_killed_simulator_is_replaced() {
    let Some(mut first) = Sim::start("stale_mount_is_replaced", &[]) else {
        return;
    };
    // SIGKILL: no chance to unmount; the kernel leaves a dead mount (ENOTCONN).
    // SAFETY: signalling our own child.
    unsafe { libc::kill(first.pid(), libc::SIGKILL) };
    let mut child = first.child.take().expect("child");
    let _ = child.wait();
    assert!(mounts_at(&first.file) > 0, "expected a stale mount");
    let dir = first.dir.clone();
    let second = match Sim::start_in(&dir, &[]) {
        Start::Running(s) => s,
        Start::Skip(why) => {
            skip("stale_mount_is_replaced", &why);
            return;
        }
        Start::Failed(log) => panic!("second amt-sim did not start over the stale mount:\n{log}"),
    };
    assert_eq!(
        mounts_at(&second.file),
        1,
        "the stale mount is still stacked"
    );
    let r = agent(&device(&second), &["amtinfo", "--ver"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    drop(second);
    assert_eq!(mounts_at(&first.file), 0);
}

/// A simulator with a state file (for the local system account's password) and `profile`.
fn sim_with_state(test: &str, profile: &str) -> Option<Sim> {
    let profile = profile.to_string();
    Sim::start_with(test, move |dir| {
        vec![
            "--device-profile".into(),
            profile,
            "--state".into(),
            dir.join("state.json").display().to_string(),
        ]
    })
}

fn sim_state(sim: &Sim) -> serde_json::Value {
    let text = std::fs::read_to_string(sim.dir.join("state.json")).expect("state file");
    serde_json::from_str(&text).expect("state JSON")
}

/// Says what a test measured, on stderr's own handle (shown in a plain `cargo test` run).
fn measured(test: &str, what: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "measured: {test}: {what}");
}

#[test]
fn an_rpc_go_style_client_handshakes_once_and_its_exchanges_run_at_full_speed() {
    use mei_clients::*;
    let test = "rpc_go_style_client";
    let Some(sim) = sim_with_state(test, "amt16.1") else {
        return;
    };
    let lsa_user = sim_state(&sim)["lsa_username"]
        .as_str()
        .unwrap()
        .to_string();
    let lsa_password = sim_state(&sim)["lsa_password"]
        .as_str()
        .unwrap()
        .to_string();
    let mut rpc = RpcGoLme::connect(&sim.file);
    let started = Instant::now();
    rpc.initialize();
    let handshake = started.elapsed();
    let done = rpc.handshake_done.expect("initialized");
    // One version, one service request, the two forwards; 623 left unanswered by rpc-go.
    assert_eq!(rpc.log.count(PROTOCOLVERSION), 1);
    assert_eq!(rpc.log.count(SERVICE_REQUEST), 1);
    let forwards: Vec<(String, String, u32)> = rpc
        .log
        .received
        .iter()
        .filter(|(_, m)| m[0] == GLOBAL_REQUEST)
        .map(|(_, m)| global_request(m))
        .collect();
    assert_eq!(
        forwards,
        [
            ("tcpip-forward".into(), String::new(), 16992),
            ("tcpip-forward".into(), String::new(), 623)
        ],
        "the firmware's forwards (no AMT host name is configured: empty address)"
    );
    assert!(
        handshake < RPC_GO_READ_TIMEOUT,
        "the handshake ended on rpc-go's empty answer, not on a read timeout: {handshake:?}"
    );

    // The first request has no credentials: AMT's 401 carries realm and nonce.
    let get = |id| get_envelope("amt", "AMT_GeneralSettings", id);
    let first = rpc.exchange(16992, &wsman_post(None, &get(0)));
    let (status, head, _) = http_response(&first.response);
    assert_eq!(status, 401, "{head}");
    let realm = challenge_param(&head, "realm");
    let nonce = challenge_param(&head, "nonce");
    let mut latencies = vec![first.latency];
    let mut nc = 0;
    let mut auth = || {
        nc += 1;
        digest(&lsa_user, &lsa_password, &realm, &nonce, nc)
    };
    const GETS: u32 = 30;
    for id in 1..=GETS {
        let x = rpc.exchange(16992, &wsman_post(Some(&auth()), &get(id)));
        let (status, head, body) = http_response(&x.response);
        assert_eq!(status, 200, "exchange {id}: {head}\n{body}");
        assert_eq!(
            element_text(&body, "DigestRealm").as_deref(),
            Some(realm.as_str())
        );
        latencies.push(x.latency);
    }

    // RPS's last ACM step lowers user consent; the firmware keeps what was Put.
    let put = rpc.exchange(
        16992,
        &wsman_post(Some(&auth()), &opt_in_put_envelope(0, 90)),
    );
    let (status, head, body) = http_response(&put.response);
    assert_eq!(status, 200, "Put: {head}\n{body}");
    assert_eq!(element_text(&body, "OptInRequired").as_deref(), Some("0"));
    let read = rpc.exchange(
        16992,
        &wsman_post(Some(&auth()), &get_envelope("ips", "IPS_OptInService", 91)),
    );
    let (status, _, body) = http_response(&read.response);
    assert_eq!(status, 200);
    assert_eq!(
        element_text(&body, "OptInRequired").as_deref(),
        Some("0"),
        "OptInRequired read back after the Put"
    );
    latencies.extend([put.latency, read.latency]);

    assert_eq!(
        rpc.log.handshake_after(done),
        0,
        "the firmware repeated its handshake during the exchanges"
    );
    assert_eq!(rpc.log.count(PROTOCOLVERSION), 1);
    let n = latencies.len();
    let (median, p95, max) = spread(latencies);
    measured(
        test,
        &format!(
            "handshake {handshake:.1?}; {n} WS-MAN exchanges, firmware turnaround median {median:.1?}, p95 {p95:.1?}, max {max:.1?}"
        ),
    );
    // rpc-go's report showed ~3 s per exchange; the firmware's share must be a small fraction.
    assert!(max < Duration::from_secs(1), "an exchange took {max:?}");
    drop(rpc);
    let saved = sim_state(&sim);
    let opt_in = &saved["instances"]["IPS_OptInService"][0];
    assert!(
        opt_in
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p[0] == "OptInRequired" && p[1] == "0"),
        "persisted: {opt_in}"
    );
}

#[test]
fn an_lms_style_client_starts_its_amt_port_service_on_vpro_and_ism_only() {
    use mei_clients::*;
    let test = "lms_style_client";
    for (profile, brand, ports) in [
        ("amt16.1", 1, [16992, 623]),
        ("ism", 2, [16992, 623]),
        ("amt19", 1, [16993, 664]),
        ("consumer", 0, [0, 0]),
    ] {
        let Some(sim) = sim_with_state(test, profile) else {
            return;
        };
        let mkhi = LmsMkhi::read(&sim.file).expect("MKHI connects");
        let version = sim_state(&sim)["code_versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|kv| kv[0] == "AMT")
            .map(|kv| kv[1].as_str().unwrap().to_string())
            .unwrap();
        let (ma, mi, hf, _) = mkhi.fw_version;
        assert_eq!(
            format!("{ma}.{mi}.{hf}"),
            version,
            "{profile}: GET_FW_VERSION"
        );
        assert_eq!(mkhi.brand(), brand, "{profile}: brand");
        if profile == "consumer" {
            assert_eq!(mkhi.image_type(), 3, "consumer image");
            assert!(
                !mkhi.starts_port_forwarding(),
                "LMS starts nothing on a consumer ME"
            );
            assert_eq!(
                LmsLme::connect(&sim.file).err(),
                Some(libc::ENOTTY),
                "the consumer ME has no LME"
            );
            continue;
        }
        assert!(mkhi.starts_port_forwarding(), "{profile}: {mkhi:?}");
        assert!(mkhi.starts_manageability(), "{profile}: {mkhi:?}");

        let mut lms = LmsLme::connect(&sim.file).expect("LME connects");
        let started = Instant::now();
        lms.handshake();
        let took = started.elapsed();
        assert_eq!(
            lms.forwards,
            [(String::new(), ports[0]), (String::new(), ports[1])],
            "{profile}: forwards"
        );
        let uuid = sim_state(&sim)["uuid"].as_str().unwrap().to_string();
        let b = lms.firmware_uuid;
        let text = format!(
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{}",
            b[3],
            b[2],
            b[1],
            b[0],
            b[5],
            b[4],
            b[7],
            b[6],
            b[8],
            b[9],
            b[10..]
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect::<String>()
        );
        assert_eq!(
            text, uuid,
            "{profile}: the firmware's version carries the platform UUID"
        );
        if profile == "amt19" {
            // Port 16993 is TLS; a plain request would only test the TLS refusal.
            continue;
        }
        let x = lms.exchange(
            16992,
            &wsman_post(None, &get_envelope("amt", "AMT_GeneralSettings", 1)),
        );
        let (status, head, _) = http_response(&x.response);
        assert_eq!(status, 401, "{profile}: {head}");
        assert_eq!(lms.log.handshake_after(started + took), 0);
        measured(
            test,
            &format!("{profile}: handshake {took:.1?} (incl. LMS's 300 ms quiet wait), one exchange {:.1?}", x.latency),
        );
        drop(lms);

        if profile == "amt16.1" {
            // Once AMT has a host name, LMS gets it as the forward's address (and writes
            // "127.0.0.1  wks-0042.corp.example.com # LMS GENERATED LINE" into the hosts file).
            let put = agent(
                &format!("sim:{}", sim.socket.display()),
                &[
                    "diagnostics",
                    "wsman",
                    "put",
                    "AMT_GeneralSettings",
                    "--set",
                    "HostName=wks-0042",
                    "--set",
                    "DomainName=corp.example.com",
                    "--lms",
                    "never",
                ],
            );
            assert_eq!(put.code, Some(0), "{}", put.stderr);
            let mut lms = LmsLme::connect(&sim.file).expect("LME connects again");
            lms.handshake();
            assert!(
                lms.forwards
                    .iter()
                    .all(|(addr, _)| addr == "wks-0042.corp.example.com"),
                "{:?}",
                lms.forwards
            );
        }
    }
}
