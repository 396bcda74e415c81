//! `make bench`: one report of the agent's costs against their floors, written to
//! docs/performance.md. A benchmark, not a test: it asserts nothing, it measures.
//!
//! Run with `cargo run --release --example bench` after `cargo build --release --bins`. It runs on
//! Linux (amt-sim and the process floors are measured there; the Windows build under Wine); built
//! for Windows, its main says so and the rest is unused.
#![cfg_attr(not(unix), allow(dead_code))]
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 300;
const WARMUP: usize = 20;

fn bin_dir() -> PathBuf {
    // target/release/examples/bench → target/release
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

struct Stats {
    median: Duration,
    p90: Duration,
    min: Duration,
}

/// One command to time: its arguments and environment.
struct Spec {
    what: String,
    args: Vec<String>,
    env: Vec<(&'static str, &'static str)>,
    /// Index of the spec whose median is this one's floor (None: the process floor itself).
    floor: Option<usize>,
}

fn spec(what: &str, args: &[&str], floor: Option<usize>) -> Spec {
    Spec {
        what: what.to_string(),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: Vec::new(),
        floor,
    }
}

/// Times every spec RUNS times, round-robin (one run of each per round), so that a change in the
/// machine's load during the benchmark falls on every command alike and the ratios hold.
fn measure_all(cmd: &Path, specs: &[Spec]) -> Vec<Stats> {
    measure_with(|| Command::new(cmd), specs, RUNS, WARMUP)
}

/// As [`measure_all`], each run's command made by `base` (a program, or Wine and an .exe).
fn measure_with(
    base: impl Fn() -> Command,
    specs: &[Spec],
    runs: usize,
    warmup: usize,
) -> Vec<Stats> {
    let run = |s: &Spec| {
        let t = Instant::now();
        let mut c = base();
        let st = c
            .args(&s.args)
            .envs(s.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("spawn");
        assert!(st.success(), "{:?} {:?} failed: {st}", base(), s.args);
        t.elapsed()
    };
    let mut times: Vec<Vec<Duration>> = specs.iter().map(|_| Vec::with_capacity(runs)).collect();
    for round in 0..warmup + runs {
        for (i, s) in specs.iter().enumerate() {
            let d = run(s);
            if round >= warmup {
                times[i].push(d);
            }
        }
    }
    times
        .into_iter()
        .map(|mut v| {
            v.sort();
            Stats {
                median: v[v.len() / 2],
                p90: v[v.len() * 9 / 10],
                min: v[0],
            }
        })
        .collect()
}

/// Whether amt-sim's Unix socket accepts connections.
#[cfg(unix)]
fn socket_ready(p: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(p).is_ok()
}

#[cfg(not(unix))]
fn socket_ready(_: &Path) -> bool {
    false
}

/// Mode 600, as the agent wants a file holding a secret.
fn private(p: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    #[cfg(not(unix))]
    let _ = p;
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

struct Row {
    what: String,
    stats: Stats,
    floor: Option<Duration>,
}

#[cfg(not(unix))]
fn main() {
    eprintln!(
        "make bench runs on Linux (it measures amt-sim and the Windows build under Wine there)"
    );
    std::process::exit(2);
}

#[cfg(unix)]
fn main() {
    let dir = bin_dir();
    let agent = dir.join("amt-agent");
    let sim = dir.join("amt-sim");
    assert!(
        agent.exists() && sim.exists(),
        "build first: cargo build --release --bins"
    );

    let tmp = std::env::temp_dir().join(format!("amt-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("tmp");
    let sock = tmp.join("sim.sock");
    let lms_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut server = Command::new(&sim)
        .args(["serve", "--socket"])
        .arg(&sock)
        .args(["--lms-listen", &format!("127.0.0.1:{lms_port}")])
        .stderr(Stdio::null())
        .spawn()
        .expect("amt-sim");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket_ready(&sock) {
        assert!(Instant::now() < deadline, "amt-sim did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let sock_dev = format!("sim:{}", sock.display());

    let lms_port_s = lms_port.to_string();
    let mut ccm = spec(
        "`amt-agent --device sim activate --local --ccm` (full local CCM activation, fresh in-process simulator)",
        &["--device", "sim", "activate", "--local", "--ccm", "--lms", "never"],
        Some(0),
    );
    ccm.env.push(("AMT_PASSWORD", "Bench-Pa55!word"));
    let specs = vec![
        spec("`amt-agent --version` (process floor)", &["--version"], None),
        spec(
            "`amt-agent --device sim amtinfo --all --json` (in-process simulator)",
            &["--device", "sim", "amtinfo", "--all", "--json"],
            Some(0),
        ),
        spec(
            "`amt-agent --device sim:SOCKET amtinfo --all --json` (amt-sim over its socket)",
            &["--device", &sock_dev, "amtinfo", "--all", "--json"],
            Some(0),
        ),
        spec(
            "`amt-agent --device sim:SOCKET amtinfo` (default fields)",
            &["--device", &sock_dev, "amtinfo"],
            Some(0),
        ),
        // A full local CCM activation (AMTHI, APF, Digest, Setup, the final AMTHI read) against
        // a fresh in-process simulator each run: its wall time.
        ccm,
        // WS-MAN Get: the agent's own APF path through the ME's LME client, against the same
        // request through the simulator's LMS-like TCP listener (the floor for this pair).
        spec(
            "`diagnostics wsman get AMT_GeneralSettings --lms only` (LMS-like listener; floor of the next row)",
            &["--device", &sock_dev, "diagnostics", "wsman", "get", "AMT_GeneralSettings", "--lms", "only", "--lms-port", &lms_port_s],
            Some(0),
        ),
        spec(
            "`diagnostics wsman get AMT_GeneralSettings --lms never` (APF over LME) — ratio against the LMS row",
            &["--device", &sock_dev, "diagnostics", "wsman", "get", "AMT_GeneralSettings", "--lms", "never"],
            Some(5),
        ),
    ];
    let stats = measure_all(&agent, &specs);
    let medians: Vec<Duration> = stats.iter().map(|s| s.median).collect();
    let rows: Vec<Row> = specs
        .iter()
        .zip(stats)
        .map(|(s, st)| Row {
            what: s.what.clone(),
            stats: st,
            floor: s.floor.map(|i| medians[i]),
        })
        .collect();
    let _ = server.kill();
    let _ = server.wait();
    let rps = rps_bench(&agent, &sim, &tmp);
    let conf = configure_bench(&agent, &sim, &tmp);
    let tls = tls_bench();
    let net = network_bench(&agent, &sim, &tmp);
    let desired = desired_bench(&agent, &sim, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);

    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut report = String::new();
    report.push_str("# Performance\n\n");
    report.push_str(
        "Reproduce with `make bench` (release build; `cargo run --release --example bench`). ",
    );
    report.push_str(&format!(
        "Each command runs {RUNS} times after {WARMUP} warm-up runs, round-robin (one run of each \
         per round, so load changes fall on all alike); wall time per process, in ms. The ratio is \
         the median against the median of its floor.\n\n"
    ));
    report.push_str("| what | median | p90 | min | ratio to floor |\n|---|---:|---:|---:|---:|\n");
    for r in &rows {
        let ratio = r
            .floor
            .map(|fl| format!("{:.2}×", r.stats.median.as_secs_f64() / fl.as_secs_f64()))
            .unwrap_or_else(|| "1.00× (floor)".into());
        report.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.what,
            ms(r.stats.median),
            ms(r.stats.p90),
            ms(r.stats.min),
            ratio
        ));
    }
    report.push_str(&format!(
        "\nBinary sizes (release, stripped): amt-agent {} KiB, amt-sim {} KiB.\n",
        size(&agent) / 1024,
        size(&sim) / 1024
    ));
    report.push_str("\nGoals: amtinfo costs at most 1.5× the process floor; a WS-MAN Get over the agent's APF path costs at most 1.3× the same Get through LMS.\n");
    report.push_str("\n## RPS relay\n\n");
    match rps {
        Some(r) => report.push_str(&format!(
            "One `AMT_GeneralSettings` Get, {} times each, alternately: relayed by RPS (the Node test \
             peer) through the agent to amt-sim's LMS-like listener and back, against the same raw \
             request sent by the peer straight to that listener. Median {} µs relayed, {} µs direct: \
             **{:.2}×**. Agent peak RSS (VmHWM) during a full CCM activation: **{:.1} MB**.\n\n\
             Goal (issue 4): relay ≤ 1.3× direct, peak RSS ≤ 10 MB.\n",
            r.count, r.relay_us as u64, r.direct_us as u64, r.relay_us / r.direct_us, r.rss_kb as f64 / 1024.0
        )),
        None => report.push_str("Skipped: node or tests/rps_peer/node_modules missing (make rps-peer-deps).\n"),
    }
    report.push_str("\n## Configuration (`configure`)\n\n");
    report.push_str(&format!(
        "amt-sim over its socket, activated in CCM once; {} rounds, alternately: `configure \
         amt-features --kvm --sol --ider` applying 3 changes (5 reads, RequestStateChange ×2, Put, \
         then 5 reads back), `--disable-all` applying them back, and `--disable-all` again with \
         nothing to change (5 reads, no write). Median wall time per process: apply **{}**, undo \
         **{}**, nothing to change **{}** ms. The full configuration (features, wired, wireless, TLS and \
         CIRA in one run) is under \"Desired state\" below.\n",
        conf.rounds,
        ms(conf.apply),
        ms(conf.undo),
        ms(conf.unchanged)
    ));
    report.push_str(&format!(
        "\n`configure tls` on the simulator inside the process (no process start, no socket: the \
         agent's code path alone, LME/APF to the in-process firmware), {} rounds on a freshly \
         activated AMT 16.1 each: the full run — 10 reads, GenerateKeyPair, the key pair read back, \
         a certificate made and signed by a throwaway P-256 CA, AddCertificate, \
         the certificates read back for its handle, AMT_TLSCredentialContext Create, 2 Puts, CommitChanges, then the reconnect to 16993 and \
         the same reads over TLS pinned to the new certificate — median **{}** ms; the same \
         command again with nothing to change (its reads over TLS) median **{}** ms.\n",
        tls.rounds,
        ms(tls.apply),
        ms(tls.unchanged)
    ));
    report.push_str(&format!(
        "\nNetworks: amt-sim with a wireless adapter, activated in CCM once; {} rounds, alternately \
         (median wall time per process): `configure wired` to a static address **{}** and back to \
         DHCP **{}**, `--dhcp` with nothing to change **{}**; wired 802.1X EAP-TLS on (key, client \
         certificate and CA added, Put, SetCertificates) **{}** and off (Put, three deletes) **{}**; \
         `configure wireless` adding a WPA2-PSK profile **{}**, the same profile unchanged **{}**, \
         `--purge` **{}** ms.\n",
        net.rounds,
        ms(net.wired_static),
        ms(net.wired_dhcp),
        ms(net.wired_unchanged),
        ms(net.dot1x_on),
        ms(net.dot1x_off),
        ms(net.wifi_add),
        ms(net.wifi_unchanged),
        ms(net.wifi_purge)
    ));
    report.push_str("\n## Desired state (`plan`, `apply`)\n\n");
    report.push_str(&format!(
        "A full CCM profile — amt-features, hostname, clock sync, one proxy, the wired port \
         static with 802.1X EAP-TLS, Wi-Fi sync with a PSK and a PEAP profile, CIRA, TLS (server, \
         `delay: 0`) — {} rounds, each on a fresh amt-sim with a wireless adapter over its socket. \
         The full configuration, `apply` from a pre-provisioned machine (it activates, then makes \
         all {} changes area by area, reading each area back, TLS last and read back over 16993): \
         median **{}** ms. `plan` before it (pre-provisioned: the control mode is read, the areas \
         wait for activation): **{}** ms; after it (every area read over TLS, nothing to change): \
         **{}** ms. The same on the simulator inside the agent's process (`--device \
         sim:profile=FILE`, the same device profile; a fresh machine every run, no socket): the \
         full `apply` **{}** ms, `plan` **{}** ms. Most of the `apply` and of the second `plan` \
         is by design: the data directory keeps a PBKDF2-HMAC-SHA256 verifier (100 000 \
         iterations, about 18 ms each here) for every secret AMT never reveals (the Wi-Fi \
         passphrase, the PEAP password, the MPS password), derived once when AMT takes it (the \
         read-back right after reuses it) and checked by every later `plan`, so a copied data directory does not give them away cheaply.\n",
        desired.rounds,
        desired.changes,
        ms(desired.apply),
        ms(desired.plan_fresh),
        ms(desired.plan_applied),
        ms(desired.apply_in_process),
        ms(desired.plan_in_process)
    ));
    report.push_str(&format!(
        "\n`configure cira` (each on a fresh simulator activated in CCM, then alternating two \
         MPSs): the first configuration (the state in 14 requests, AddTrustedRootCertificate, AddMpServer, \
         AddRemoteAccessPolicyRule ×2, AppliesToMPS Put ×2, RequestStateChange, environment Put, \
         the reads again) **{}**, a change of server (the 2 rules and the server deleted, added \
         again) **{}**, nothing to change **{}** ms (median wall time per process).\n",
        ms(conf.cira_first),
        ms(conf.cira_switch),
        ms(conf.cira_unchanged)
    ));
    report.push_str("\n## Windows build under Wine\n\n");
    match windows_bench(&agent, medians[1], medians[0]) {
        Some(w) => report.push_str(&w),
        None => report.push_str(
            "Skipped: set AMT_AGENT_WINDOWS_EXE and AMT_AGENT_WINE_SHIM and install wine64 \
             (`make bench` does, after `make windows wine-shim`).\n",
        ),
    }
    print!("{report}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/performance.md");
    if let Err(e) = std::fs::write(&out, &report) {
        eprintln!("could not write {}: {e}", out.display());
    }
}

struct ConfBench {
    rounds: usize,
    apply: Duration,
    undo: Duration,
    unchanged: Duration,
    /// `configure cira`: a new configuration (root, server, 2 policies and their associations,
    /// user-initiated connections, detection domains) on a fresh machine, a change of server
    /// (rules and server deleted, added again), and a run with nothing to change.
    cira_first: Duration,
    cira_switch: Duration,
    cira_unchanged: Duration,
}

/// `configure amt-features` applied, undone and re-run unchanged against amt-sim over its socket.
fn configure_bench(agent: &Path, sim: &Path, dir: &Path) -> ConfBench {
    const ROUNDS: usize = 50;
    const PW: &str = "Bench-Pa55!word";
    let dir = dir.join("configure");
    std::fs::create_dir_all(&dir).expect("configure bench dir");
    let (mut child, dev) = start_sim(sim, &dir, &[]);
    let run = |args: &[&str]| {
        let t = Instant::now();
        let st = Command::new(agent)
            .arg("--device")
            .arg(&dev)
            .args(args)
            .env("AMT_PASSWORD", PW)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("spawn");
        assert!(st.success(), "{args:?} failed: {st}");
        t.elapsed()
    };
    run(&["activate", "--local", "--ccm"]);
    let (mut apply, mut undo, mut unchanged) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        apply.push(run(&[
            "configure",
            "amt-features",
            "--kvm",
            "--sol",
            "--ider",
        ]));
        undo.push(run(&["configure", "amt-features", "--disable-all"]));
        unchanged.push(run(&["configure", "amt-features", "--disable-all"]));
    }
    let _ = child.kill();
    let _ = child.wait();
    let med = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cira/mps-root.pem");
    let root = root.to_str().expect("utf-8 path").to_string();
    let cira = |dev: &str, address: &str| {
        let t = Instant::now();
        let st = Command::new(agent)
            .args([
                "--device",
                dev,
                "configure",
                "cira",
                "--mps-address",
                address,
            ])
            .args(["--mps-cert", &root, "--env-detection", "corp.example.com"])
            .env("AMT_PASSWORD", PW)
            .env("MPS_PASSWORD", "Bench-Mps1!")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("spawn");
        assert!(st.success(), "configure cira {address} failed: {st}");
        t.elapsed()
    };
    let (mut first, mut switch, mut same) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS / 5 {
        let d = dir.join(format!("cira-{round}"));
        std::fs::create_dir_all(&d).expect("cira bench dir");
        let (mut child, dev) = start_sim(sim, &d, &[]);
        run_on(agent, &dev, PW, &["activate", "--local", "--ccm"]);
        first.push(cira(&dev, "mps-a.example.com"));
        for _ in 0..4 {
            switch.push(cira(&dev, "mps-b.example.com"));
            same.push(cira(&dev, "mps-b.example.com"));
            switch.push(cira(&dev, "mps-a.example.com"));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    ConfBench {
        rounds: ROUNDS,
        apply: med(apply),
        undo: med(undo),
        unchanged: med(unchanged),
        cira_first: med(first),
        cira_switch: med(switch),
        cira_unchanged: med(same),
    }
}

struct TlsBench {
    rounds: usize,
    apply: Duration,
    unchanged: Duration,
}

/// `configure tls` against the in-process simulator, through the library (no process spawn).
fn tls_bench() -> TlsBench {
    use amt_agent::commands::configure::{execute, tls, RunOptions};
    use amt_agent::commands::session::AmtConnArgs;
    use amt_agent::secret::Secret;
    use std::sync::Arc;
    const ROUNDS: usize = 20;
    const PW: &str = "Bench-Pa55!word";
    let conn = AmtConnArgs {
        lms: amt_agent::wsman::transport::LmsMode::Never,
        lms_port: None,
        user: None,
        password: Some(Secret::new(PW)),
        password_file: None,
        skip_amt_cert_check: false,
        amt_ca_file: Vec::new(),
        request_timeout: Duration::from_secs(30),
        tls_pin_dir: PathBuf::from("/nonexistent: in memory for the in-process simulator"),
    };
    let args = tls::TlsArgs {
        mode: tls::TlsMode::Server,
        delay: 0,
        ca_cert: None,
        ca_key: None,
        ca_key_password_file: None,
    };
    let (mut apply, mut unchanged) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let mut profile = amt_agent::sim::profile::builtin("amt16.1").expect("amt16.1");
        profile.control_mode = 1;
        profile.provisioning_state = 2;
        profile.digest_realm = "Digest:0123456789ABCDEF0123456789ABCDEF".into();
        profile.admin_ha1 =
            amt_agent::wsman::digest::ha1("admin", &profile.digest_realm.clone(), &Secret::new(PW));
        let fw = amt_agent::sim::Firmware::new(
            profile,
            amt_agent::sim::faults::FaultPlan::new(vec![]),
            None,
        );
        let device: Arc<dyn amt_agent::heci::MeiDevice> =
            Arc::new(amt_agent::sim::InProcessDevice::new(fw));
        let opts = RunOptions { dry_run: false };
        for times in [&mut apply, &mut unchanged] {
            // The previous run's APF session lets go of the ME's LME client after the driver's
            // next receive deadline: wait for that outside the timed part, as a new process would
            // find it free.
            std::thread::sleep(Duration::from_millis(400));
            let t = Instant::now();
            let c = tls::Tls::new(&args, &conn).expect("tls arguments");
            execute(device.clone(), &conn, c, &opts).expect("configure tls");
            times.push(t.elapsed());
        }
    }
    let med = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    TlsBench {
        rounds: ROUNDS,
        apply: med(apply),
        unchanged: med(unchanged),
    }
}

fn run_on(agent: &Path, dev: &str, pw: &str, args: &[&str]) {
    let st = Command::new(agent)
        .arg("--device")
        .arg(dev)
        .args(args)
        .env("AMT_PASSWORD", pw)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn");
    assert!(st.success(), "{args:?} failed: {st}");
}

struct NetBench {
    rounds: usize,
    wired_static: Duration,
    wired_dhcp: Duration,
    wired_unchanged: Duration,
    dot1x_on: Duration,
    dot1x_off: Duration,
    wifi_add: Duration,
    wifi_unchanged: Duration,
    wifi_purge: Duration,
}

/// `configure wired` (addressing, 802.1X) and `configure wireless` applied, undone and re-run
/// unchanged against amt-sim with a wireless adapter.
fn network_bench(agent: &Path, sim: &Path, dir: &Path) -> NetBench {
    const ROUNDS: usize = 20;
    const PW: &str = "Bench-Pa55!word";
    let dir = dir.join("network");
    std::fs::create_dir_all(&dir).expect("network bench dir");
    let profile = wifi_device_profile(sim, &dir);
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ieee8021x");
    let key = dir.join("client.key");
    std::fs::copy(fx.join("client.key"), &key).expect("copy the key");
    private(&key);
    let (cert, ca) = (fx.join("client.pem"), fx.join("ca.pem"));
    let (mut child, dev) = start_sim(sim, &dir, &["--device-profile", &profile]);
    let run = |args: &[&str]| {
        let t = Instant::now();
        let st = Command::new(agent)
            .arg("--device")
            .arg(&dev)
            .args(args)
            .env("AMT_PASSWORD", PW)
            .env("PSK_PASSPHRASE", "Bench wifi passphrase")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("spawn");
        assert!(st.success(), "{args:?} failed: {st}");
        t.elapsed()
    };
    run(&["activate", "--local", "--ccm"]);
    let statik = [
        "configure",
        "wired",
        "--ip-address",
        "192.168.7.50",
        "--subnet-mask",
        "255.255.255.0",
        "--gateway",
        "192.168.7.1",
        "--primary-dns",
        "192.168.7.2",
    ];
    let (cert, ca, key) = (
        cert.display().to_string(),
        ca.display().to_string(),
        key.display().to_string(),
    );
    let dot1x = [
        "configure",
        "wired",
        "--dhcp",
        "--ieee8021x-profile-name",
        "bench",
        "--ieee8021x-username",
        "amt-bench",
        "--ieee8021x-client-cert",
        &cert,
        "--ieee8021x-private-key",
        &key,
        "--ieee8021x-ca-cert",
        &ca,
    ];
    let wifi = [
        "configure",
        "wireless",
        "--profile-name",
        "bench",
        "--ssid",
        "BenchNet",
    ];
    let mut t: [Vec<Duration>; 8] = Default::default();
    for _ in 0..ROUNDS {
        t[0].push(run(&statik));
        t[1].push(run(&["configure", "wired", "--dhcp"]));
        t[2].push(run(&["configure", "wired", "--dhcp"]));
        t[3].push(run(&dot1x));
        t[4].push(run(&["configure", "wired", "--dhcp"]));
        t[5].push(run(&wifi));
        t[6].push(run(&wifi));
        t[7].push(run(&["configure", "wireless", "--purge"]));
    }
    let _ = child.kill();
    let _ = child.wait();
    let [a, b, c, d, e, f, g, h] = t.map(|mut v| {
        v.sort();
        v[v.len() / 2]
    });
    NetBench {
        rounds: ROUNDS,
        wired_static: a,
        wired_dhcp: b,
        wired_unchanged: c,
        dot1x_on: d,
        dot1x_off: e,
        wifi_add: f,
        wifi_unchanged: g,
        wifi_purge: h,
    }
}

struct DesiredBench {
    rounds: usize,
    changes: usize,
    apply: Duration,
    plan_fresh: Duration,
    plan_applied: Duration,
    /// The same profile on `--device sim:profile=FILE` (no socket, a fresh machine each run).
    apply_in_process: Duration,
    plan_in_process: Duration,
}

/// A full profile's `plan` (pre-provisioned), `apply` (from scratch) and `plan` again (applied),
/// each round on a fresh amt-sim with a wireless adapter over its socket.
fn desired_bench(agent: &Path, sim: &Path, dir: &Path) -> DesiredBench {
    const ROUNDS: usize = 20;
    let dir = dir.join("desired");
    std::fs::create_dir_all(&dir).expect("desired bench dir");
    let wifi = wifi_device_profile(sim, &dir);
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ieee8021x");
    let key = dir.join("client.key");
    std::fs::copy(fx.join("client.key"), &key).expect("copy the key");
    private(&key);
    let (cert, ca) = (fx.join("client.pem"), fx.join("ca.pem"));
    let profile = dir.join("profile.yaml");
    std::fs::write(
        &profile,
        format!(
            "version: 1\ncontrolMode: ccm\nadminPassword: Bench-Pa55!word\n\
             features: {{kvm: true, sol: true, ider: false, userConsent: all}}\n\
             hostname: {{hostName: bench-1, domainName: bench.example.com}}\nclockSync: true\n\
             proxies: [{{address: proxy.bench.example.com, port: 3128}}]\n\
             network:\n\
             \x20 wired: {{dhcp: false, ipAddress: 192.168.7.50, subnetMask: 255.255.255.0, gateway: 192.168.7.1, primaryDns: 192.168.7.2, ieee8021x: wiredtls}}\n\
             \x20 wireless:\n\
             \x20   wifiSync: true\n\
             \x20   uefiWifiSync: true\n\
             \x20   profiles:\n\
             \x20     - {{name: office, ssid: CorpNet, priority: 1, authentication: wpa2-psk, pskPassphrase: 'Bench wifi passphrase'}}\n\
             \x20     - {{name: corp, ssid: Corp8021X, priority: 2, authentication: wpa2-ieee8021x, ieee8021x: peap}}\n\
             \x20 ieee8021x:\n\
             \x20   - {{name: wiredtls, protocol: eap-tls, username: bench, clientCertificate: {cert}, privateKey: 'file:{key}', caCertificate: {ca}}}\n\
             \x20   - {{name: peap, protocol: peap-mschapv2, username: bench, password: 'Bench!peap1', caCertificate: {ca}}}\n\
             cira: {{mpsAddress: mps.bench.example.com, mpsPassword: 'Bench!Mps1', mpsCertificate: {ca}, environmentDetection: [bench.example.com]}}\n\
             tls: {{mode: server, delay: 0}}\n",
            cert = cert.display(),
            ca = ca.display(),
            key = key.display(),
        ),
    )
    .expect("profile");
    private(&profile);
    let data = dir.join("data");
    let run = |dev: &str, args: &[&str], ok: &[i32]| {
        let t = Instant::now();
        let out = Command::new(agent)
            .args(["--device", dev])
            .args(args)
            .arg(&profile)
            .arg("--data-dir")
            .arg(&data)
            .env("AMT_AGENT_TLS_PIN_DIR", &data)
            .env_remove("AMT_PASSWORD")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .expect("spawn");
        let elapsed = t.elapsed();
        assert!(
            ok.contains(&out.status.code().unwrap_or(-1)),
            "{args:?} on {dev}: {}",
            out.status
        );
        (elapsed, out.stdout)
    };
    let (mut apply, mut fresh, mut applied) = (Vec::new(), Vec::new(), Vec::new());
    let (mut apply_in, mut plan_in) = (Vec::new(), Vec::new());
    let in_process = format!("sim:profile={wifi}");
    let mut changes = 0;
    for _ in 0..ROUNDS {
        // The simulator inside the agent's process: no socket, a fresh machine every run.
        let _ = std::fs::remove_dir_all(&data);
        plan_in.push(run(&in_process, &["plan"], &[2]).0);
        apply_in.push(run(&in_process, &["apply"], &[0]).0);
        let _ = std::fs::remove_dir_all(&data);
        let (mut child, dev) = start_sim(sim, &dir, &["--device-profile", &wifi]);
        fresh.push(run(&dev, &["plan"], &[2]).0);
        let (t, out) = run(&dev, &["--json", "apply"], &[0]);
        apply.push(t);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("apply --json");
        changes = v["changes"].as_array().map_or(0, Vec::len);
        applied.push(run(&dev, &["plan"], &[0]).0);
        let _ = child.kill();
        let _ = child.wait();
    }
    let med = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    DesiredBench {
        rounds: ROUNDS,
        changes,
        apply: med(apply),
        plan_fresh: med(fresh),
        plan_applied: med(applied),
        apply_in_process: med(apply_in),
        plan_in_process: med(plan_in),
    }
}

/// The built-in `amt16.1` with a wireless adapter (every built-in profile is wired-only), written
/// to `dir/wifi.json`; its path for `--device-profile`.
fn wifi_device_profile(sim: &Path, dir: &Path) -> String {
    let out = Command::new(sim)
        .args(["profiles", "amt16.1"])
        .output()
        .expect("amt-sim profiles");
    let mut p: serde_json::Value = serde_json::from_slice(&out.stdout).expect("profile JSON");
    p["wireless"]["mac"] = "a4:bb:6d:12:34:57".into();
    let profile = dir.join("wifi.json");
    std::fs::write(&profile, p.to_string()).expect("write the profile");
    profile.display().to_string()
}

struct RpsBench {
    count: usize,
    relay_us: f64,
    direct_us: f64,
    rss_kb: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts the RPS peer with `config`; returns it and its port.
fn start_peer(
    dir: &Path,
    config: &serde_json::Value,
    name: &str,
) -> Option<(std::process::Child, u16)> {
    use std::io::BufRead;
    let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rps_peer");
    if !peer
        .join("node_modules/@device-management-toolkit/wsman-messages")
        .exists()
    {
        return None;
    }
    let cfg = dir.join(format!("{name}.json"));
    std::fs::write(&cfg, config.to_string()).ok()?;
    let mut child = Command::new("node")
        .arg(peer.join("peer.js"))
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take()?)
        .read_line(&mut line)
        .ok()?;
    let port = line.trim().strip_prefix("listening ")?.parse().ok()?;
    Some((child, port))
}

fn start_sim(sim: &Path, dir: &Path, extra: &[&str]) -> (std::process::Child, String) {
    let sock = dir.join(format!("rps-{}.sock", extra.len()));
    let state = dir.join(format!("rps-{}.json", extra.len()));
    let _ = std::fs::remove_file(&state);
    let child = Command::new(sim)
        .args(["serve", "--socket"])
        .arg(&sock)
        .arg("--state")
        .arg(&state)
        .args(extra)
        .stderr(Stdio::null())
        .spawn()
        .expect("amt-sim");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket_ready(&sock) {
        assert!(Instant::now() < deadline, "amt-sim did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    (child, format!("sim:{}", sock.display()))
}

/// The relay round trip against the direct one, and the agent's peak RSS in a CCM activation.
fn rps_bench(agent: &Path, sim: &Path, dir: &Path) -> Option<RpsBench> {
    let count = 200;
    let lms = free_port();
    let lms_addr = format!("127.0.0.1:{lms}");
    let (mut s, dev) = start_sim(sim, dir, &["--lms-listen", &lms_addr]);
    let out = dir.join("rps-bench.json");
    let cfg = serde_json::json!({"delayMs": 0, "responseTimeoutMs": 30000, "profiles": {
        "bench": {"mode": "bench", "count": count, "lmsPort": lms, "out": out}}});
    let (mut peer, port) = start_peer(dir, &cfg, "bench")?;
    let url = format!("ws://127.0.0.1:{port}/");
    let lms_port = lms.to_string();
    let _ = Command::new(agent)
        .args([
            "--device",
            &dev,
            "activate",
            "--lms",
            "only",
            "--lms-port",
            &lms_port,
            "-u",
            &url,
            "--profile",
            "bench",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = peer.kill();
    let _ = peer.wait();
    let _ = s.kill();
    let _ = s.wait();
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).ok()?).ok()?;
    let nums = |k: &str| -> Vec<f64> {
        v[k].as_array()
            .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default()
    };
    let (relay_us, direct_us) = (median(nums("relay")), median(nums("direct")));

    // Peak RSS of a full CCM activation (no pause after Setup).
    let (mut s, dev) = start_sim(sim, dir, &[]);
    let cfg = serde_json::json!({"delayMs": 0, "profiles": {"ccm": {"mode": "ccm", "password": "P@ssw0rd-Amt1", "userConsent": "All"}}});
    let (mut peer, port) = start_peer(dir, &cfg, "ccm")?;
    let url = format!("ws://127.0.0.1:{port}/");
    let mut child = Command::new(agent)
        .args(["--device", &dev, "activate", "-u", &url, "--profile", "ccm"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let status = format!("/proc/{}/status", child.id());
    let mut rss_kb = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(t) = std::fs::read_to_string(&status) {
            if let Some(kb) = t
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                rss_kb = rss_kb.max(kb);
            }
        }
        if matches!(child.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = peer.kill();
    let _ = peer.wait();
    let _ = s.kill();
    let _ = s.wait();
    Some(RpsBench {
        count,
        relay_us,
        direct_us,
        rss_kb,
    })
}

/// Runs under Wine (a Wine process start costs tens of ms; the prefix's wineserver stays up).
const WINE_RUNS: usize = 300;
const WINE_WARMUP: usize = 20;

/// The .exe's size and its amtinfo under Wine against Wine's own process floor and against the
/// Linux build's amtinfo (`amtinfo_linux` and the Linux floor, the medians measured above).
fn windows_bench(agent: &Path, amtinfo_linux: Duration, floor_linux: Duration) -> Option<String> {
    let exe = std::env::var_os("AMT_AGENT_WINDOWS_EXE").map(PathBuf::from)?;
    let shim = std::env::var_os("AMT_AGENT_WINE_SHIM").map(PathBuf::from)?;
    let wine = Path::new("/usr/lib/wine/wine64");
    if !exe.exists() || !shim.exists() || !wine.exists() {
        return None;
    }
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wine");
    let dir = base.join("bench-bin");
    std::fs::create_dir_all(&dir).ok()?;
    std::fs::copy(&exe, dir.join("amt-agent.exe")).ok()?;
    std::fs::copy(&shim, dir.join("bcryptprimitives.dll")).ok()?;
    let prefix = base.join("bench-prefix");
    let exe_in = dir.join("amt-agent.exe");
    let cmd = || {
        let mut c = Command::new(wine);
        c.env("WINEPREFIX", &prefix)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env_remove("DISPLAY")
            .arg(&exe_in);
        c
    };
    let specs = vec![
        spec(
            "`amt-agent.exe version` under Wine (Wine's process floor)",
            &["version"],
            None,
        ),
        spec(
            "`amt-agent.exe --device sim amtinfo --all --json` under Wine",
            &["--device", "sim", "amtinfo", "--all", "--json"],
            Some(0),
        ),
    ];
    let stats = measure_with(cmd, &specs, WINE_RUNS, WINE_WARMUP);
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) / 1024;
    let msi = std::env::var_os("AMT_AGENT_MSI")
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .map(|p| format!(", the MSI {} KiB", size(&p)))
        .unwrap_or_default();
    let mut r = format!(
        "`make windows` (release, `x86_64-pc-windows-gnu`, stripped): amt-agent.exe {} KiB \
         against the Linux amt-agent's {} KiB{msi}. Each command runs {WINE_RUNS} times after \
         {WINE_WARMUP} warm-up runs under Wine 8.0, round-robin; a Wine process start is most \
         of every figure, so the ratio to Wine's floor is the agent's own cost.\n\n\
         | what | median | p90 | min | ratio |\n|---|---:|---:|---:|---:|\n",
        size(&exe),
        size(agent)
    );
    let floor = stats[0].median;
    for (s, st) in specs.iter().zip(&stats) {
        let ratio = match s.floor {
            None => "1.00× (floor)".to_string(),
            Some(_) => format!("{:.2}×", st.median.as_secs_f64() / floor.as_secs_f64()),
        };
        r.push_str(&format!(
            "| {} | {} | {} | {} | {ratio} |\n",
            s.what,
            ms(st.median),
            ms(st.p90),
            ms(st.min)
        ));
    }
    let wine_amtinfo = stats[1].median;
    r.push_str(&format!(
        "\nIn the same run the Linux build's floor was {} ms and its amtinfo {} ms: under Wine the \
         same amtinfo takes {:.0}× as long, nearly all of it Wine starting a process. Over its \
         floor the agent's amtinfo costs {} ms on Linux and {:+.1} ms under Wine, where the floor \
         itself spreads from {} ms (min) to {} ms (p90).\n",
        ms(floor_linux),
        ms(amtinfo_linux),
        wine_amtinfo.as_secs_f64() / amtinfo_linux.as_secs_f64(),
        ms(amtinfo_linux.saturating_sub(floor_linux)),
        (wine_amtinfo.as_secs_f64() - floor.as_secs_f64()) * 1000.0,
        ms(stats[0].min),
        ms(stats[0].p90),
    ));
    Some(r)
}
