//! An independent peer for the simulator's AMT web server: `tests/peer/wsman_peer.js` builds the
//! request for every class amt-sim models with Intel's `@device-management-toolkit/wsman-messages`
//! (the library RPS uses), speaks RPS's HTTP and Digest over the LMS-like TCP listener, and parses
//! every answer with xml2js the way RPS does (rps-protocol.md §2, §3, §5, §9).
//!
//! Needs `node` and the packages `make peer-deps` installs into `tests/peer/node_modules`. Without
//! them the test prints a `skipped: …` line and returns; CI installs both.
// The tests drive Linux processes (amt-sim, its Unix socket, signals); the Windows build is
// tested by tests/windows.rs, the .exe under Wine.
#![cfg(unix)]

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{repo_file, run_with_deadline, Sim};

const PEER_DEADLINE: Duration = Duration::from_secs(60);

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

#[test]
fn wsman_messages_peer_drives_every_class_the_simulator_models() {
    run_peer(
        "wsman_messages_peer_drives_every_class_the_simulator_models",
        None,
    );
}

/// The same run on a machine with a wireless adapter: the Wi-Fi classes too.
#[test]
fn wsman_messages_peer_drives_the_wifi_classes() {
    let mut p = common::profile("amt16.1");
    p["wireless"]["mac"] = "a4:bb:6d:12:34:57".into();
    run_peer("wsman_messages_peer_drives_the_wifi_classes", Some(p));
}

/// Runs the peer against a simulator of `profile` (the built-in amt16.1 when `None`).
fn run_peer(test: &str, profile: Option<serde_json::Value>) {
    let Some(node) = which("node") else {
        common::skip_without_node(test, "node is not installed (CI installs nodejs)");
        return;
    };
    let modules = repo_file("tests/peer/node_modules/@device-management-toolkit/wsman-messages");
    if !modules.is_dir() || !repo_file("tests/peer/node_modules/xml2js").is_dir() {
        common::skip_without_node(
            test,
            "tests/peer/node_modules is missing; run `make peer-deps`",
        );
        return;
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("sim.sock");
    let state = dir.path().join("state.json");
    let device_profile = match profile {
        None => "amt16.1".to_string(),
        Some(p) => {
            let f = dir.path().join("profile.json");
            std::fs::write(&f, serde_json::to_vec(&p).expect("profile JSON")).expect("write");
            f.display().to_string()
        }
    };
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let state_arg = state.to_str().expect("utf-8 temp path").to_string();
    let mut sim = Sim::start_in(
        dir,
        socket,
        &[
            "--device-profile",
            &device_profile,
            "--lms-listen",
            &addr,
            "--state",
            &state_arg,
        ],
    );
    assert!(state.is_file(), "amt-sim wrote no state file");

    let out = run_with_deadline(
        Command::new(node)
            .arg(repo_file("tests/peer/wsman_peer.js"))
            .arg(port.to_string())
            .arg(&state),
        PEER_DEADLINE,
    );
    sim.stop();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the wsman-messages peer failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        !stdout.contains("FAIL"),
        "a check failed despite exit 0:\n{stdout}"
    );
    assert!(
        stdout.contains(" passed, 0 failed"),
        "no summary line:\n{stdout}"
    );
}
