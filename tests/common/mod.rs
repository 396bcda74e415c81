//! Shared helpers for end-to-end tests: real binaries, real sockets, and a deadline on everything.
#![allow(dead_code)]

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const AGENT: &str = env!("CARGO_BIN_EXE_amt-agent");
pub const SIM: &str = env!("CARGO_BIN_EXE_amt-sim");

/// A running `amt-sim serve`; killed (and its socket removed) when dropped.
pub struct Sim {
    child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
}

impl Sim {
    pub fn start(args: &[&str]) -> Sim {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("sim.sock");
        Sim::start_in(dir, socket, args)
    }

    pub fn start_in(dir: tempfile::TempDir, socket: PathBuf, args: &[&str]) -> Sim {
        let child = Command::new(SIM)
            .arg("serve")
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn amt-sim");
        let mut sim = Sim { child, dir, socket };
        // The Unix socket is bound before any TCP listener (`--lms-listen ADDR`): the simulator is
        // ready when every one of them accepts.
        let tcp: Vec<&str> = args
            .windows(2)
            .filter(|w| w[0] == "--lms-listen")
            .map(|w| w[1])
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if UnixStream::connect(&sim.socket).is_ok()
                && tcp.iter().all(|a| std::net::TcpStream::connect(a).is_ok())
            {
                return sim;
            }
            if let Ok(Some(status)) = sim.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = sim.child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                panic!("amt-sim exited early ({status}): {err}");
            }
            assert!(
                Instant::now() < deadline,
                "amt-sim did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn device(&self) -> String {
        format!("sim:{}", self.socket.display())
    }

    /// The simulator's stderr, to read what it prints (e.g. `amt-sim serve --tcp`'s address).
    pub fn take_stderr(&mut self) -> std::process::ChildStderr {
        self.child.stderr.take().expect("stderr is piped once")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Stops the simulator with SIGTERM and waits for it (bounded).
    pub fn stop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command to completion, killing it and failing the test if it outlives `limit`.
pub fn run_with_deadline(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Drain pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut v);
        v
    });
    let status = wait_with_deadline(&mut child, cmd, limit);
    Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

/// Waits for `child`, killing it and failing the test if it outlives `limit`.
pub fn wait_with_deadline(
    child: &mut std::process::Child,
    cmd: &Command,
    limit: Duration,
) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("command hung for more than {limit:?}: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `amt-agent ARGS` with a 30 s limit and no inherited agent configuration.
pub fn agent(args: &[&str]) -> Output {
    agent_env(args, &[])
}

pub fn agent_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(AGENT);
    c.args(args)
        .env_remove("AMT_AGENT_DEVICE")
        .env_remove("AMT_AGENT_LOG")
        .env_remove("AMT_PASSWORD");
    for (k, v) in env {
        c.env(k, v);
    }
    run_with_deadline(&mut c, Duration::from_secs(30))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A built-in simulator profile as JSON, from `amt-sim profiles NAME`.
pub fn profile(name: &str) -> serde_json::Value {
    let o = run_with_deadline(
        Command::new(SIM).args(["profiles", name]),
        Duration::from_secs(10),
    );
    assert!(
        o.status.success(),
        "amt-sim profiles {name}: {}",
        stderr(&o)
    );
    serde_json::from_slice(&o.stdout).expect("profile JSON")
}

/// The wireless MAC tests give a machine with Wi-Fi (every built-in profile is wired-only).
pub const WIFI_MAC: &str = "a4:bb:6d:12:34:57";

/// The built-in profile `name`, edited, written to `dir/profile.json`; the path for
/// `--device-profile`.
pub fn write_profile(dir: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut p = profile(name);
    edit(&mut p);
    let f = dir.join("profile.json");
    std::fs::write(&f, serde_json::to_vec(&p).expect("profile JSON")).expect("write the profile");
    f.display().to_string()
}

/// `edit` for [`write_profile`]: a wireless adapter.
pub fn with_wifi(p: &mut serde_json::Value) {
    p["wireless"]["mac"] = WIFI_MAC.into();
}

pub fn profile_names() -> Vec<String> {
    let o = run_with_deadline(Command::new(SIM).arg("profiles"), Duration::from_secs(10));
    stdout(&o)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The ways a secret could reach a log besides its plain text: hex (lower and upper) and the
/// parts of its base64 that do not depend on the bytes around it, at each of the three
/// alignments (a secret inside a base64 payload, such as RPS's first message).
pub fn secret_forms(secret: &str) -> Vec<String> {
    use base64::Engine;
    let b = secret.as_bytes();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let mut forms = vec![secret.to_string(), hex.to_uppercase(), hex];
    for k in 0..3 {
        let mut padded = vec![0u8; k];
        padded.extend_from_slice(b);
        let enc = base64::engine::general_purpose::STANDARD.encode(&padded);
        let (start, end) = (k.div_ceil(3) * 4, (k + b.len()) / 3 * 4);
        if end >= start + 8 {
            forms.push(enc[start..end].to_string());
        }
    }
    forms
}

/// Asserts `text` holds none of `secrets` in any form of [`secret_forms`].
pub fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        for f in secret_forms(s) {
            assert!(
                !text.contains(&f),
                "{what}: a secret leaked ({} chars, as {f:?})",
                s.len()
            );
        }
    }
}

/// A test that cannot run here says so on stderr and returns, unless `AMT_AGENT_REQUIRE_NODE=1`
/// (set by `.ci/run`, which installs Node) makes a missing Node peer a failure: CI cannot pass
/// by skipping the peer tests.
pub fn skip_without_node(test: &str, why: &str) {
    use std::io::Write;
    if std::env::var("AMT_AGENT_REQUIRE_NODE").is_ok_and(|v| v == "1") {
        panic!("{test}: {why} (AMT_AGENT_REQUIRE_NODE=1)");
    }
    let _ = writeln!(std::io::stderr(), "skipped: {test}: {why}");
}

/// The first instance of `class` in amt-sim's state file, as a map of its properties.
pub fn instance(
    state: &serde_json::Value,
    class: &str,
) -> serde_json::Map<String, serde_json::Value> {
    state["instances"][class][0]
        .as_array()
        .unwrap_or_else(|| panic!("no {class} in the state"))
        .iter()
        .map(|kv| (kv[0].as_str().unwrap().to_string(), kv[1].clone()))
        .collect()
}
