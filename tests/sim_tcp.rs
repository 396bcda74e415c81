//! `amt-sim serve --tcp` and `--device sim:tcp:HOST:PORT`: the same frames as the Unix socket, on
//! loopback TCP (the route a Windows agent takes to a simulator in another process). The firmware
//! behind both is one, and the kernel's errnos cross the wire with Linux's numbers.
// The tests drive Linux processes (amt-sim, its Unix socket, signals); the Windows build is
// tested by tests/windows.rs, the .exe under Wine.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// `amt-sim serve --socket … --tcp 127.0.0.1:0 ARGS`: both front ends on one firmware.
struct Both {
    sim: Sim,
    tcp: String,
    _log: std::thread::JoinHandle<()>,
}

fn start(args: &[&str]) -> Both {
    let mut all = vec!["--tcp", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let mut sim = Sim::start(&all);
    // The bound address is printed on stderr before the socket is created.
    let err = sim.take_stderr();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if let Some(a) = line.split("listening on tcp ").nth(1) {
                let _ = tx.send(a.trim().to_string());
            }
        }
    });
    let tcp = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("amt-sim printed its TCP address");
    Both {
        sim,
        tcp,
        _log: log,
    }
}

impl Both {
    fn tcp_device(&self) -> String {
        format!("sim:tcp:{}", self.tcp)
    }
}

#[test]
fn amtinfo_over_tcp_equals_amtinfo_over_the_socket() {
    let b = start(&[]);
    let json = |dev: &str| -> Value {
        let o = agent(&["--device", dev, "amtinfo", "--all", "--json"]);
        assert_eq!(code(&o), 0, "{dev}: {}", stderr(&o));
        serde_json::from_str(&stdout(&o)).unwrap()
    };
    let mut over_tcp = json(&b.tcp_device());
    let mut over_socket = json(&b.sim.device());
    // `simulated` names the route (tcp ADDR, socket PATH); everything else is the firmware's.
    assert!(
        over_tcp["simulated"]["profile"]
            .as_str()
            .is_some_and(|s| s.starts_with("tcp 127.0.0.1:")),
        "{over_tcp}"
    );
    over_tcp["simulated"] = Value::Null;
    over_socket["simulated"] = Value::Null;
    assert_eq!(over_tcp, over_socket);
}

#[test]
fn state_written_over_tcp_is_seen_over_the_socket() {
    let b = start(&[]);
    let o = agent_env(
        &["--device", &b.tcp_device(), "activate", "--local", "--ccm"],
        &[("AMT_PASSWORD", "P@ssw0rd-Amt1")],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = agent(&["--device", &b.sim.device(), "amtinfo", "--mode", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    // rpc-go v2's words for control mode 1.
    assert_eq!(v["controlMode"], "activated in client control mode", "{v}");
}

#[test]
fn errnos_cross_tcp_as_on_the_socket() {
    // EBUSY from a held client, as the kernel gives it: exit 4 after the bounded retries.
    let b = start(&["--fault", "busy=amthi"]);
    let o = agent(&["--device", &b.tcp_device(), "amtinfo", "--ver"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(stderr(&o).contains("busy (EBUSY)"), "{}", stderr(&o));
    // ENOTTY: a client the profile lacks (the consumer ME has no AMTHI): exit 3.
    let c = start(&["--device-profile", "consumer"]);
    let o = agent(&["--device", &c.tcp_device(), "amtinfo", "--ver"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
}

#[test]
fn tcp_is_loopback_only_on_both_ends() {
    let o = agent(&["--device", "sim:tcp:192.0.2.1:16990", "amtinfo"]);
    assert_eq!(code(&o), 28, "{}", stderr(&o));
    assert!(stderr(&o).contains("loopback"), "{}", stderr(&o));
    let mut c: Child = Command::new(SIM)
        .args(["serve", "--tcp", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_with_deadline(&mut c, &Command::new(SIM), Duration::from_secs(10));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut c.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("only loopback addresses"), "{err}");
    // Nothing listens: a clear error and the fix, exit 2, no hang.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = agent(&["--device", &format!("sim:tcp:127.0.0.1:{port}"), "amtinfo"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("help: start the simulator first"),
        "{}",
        stderr(&o)
    );
}
