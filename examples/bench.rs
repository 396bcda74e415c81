//! `make bench`: one report of the agent's costs against their floors, written to
//! docs/performance.md. A benchmark, not a test: it asserts nothing, it measures.
//!
//! Run with `cargo run --release --example bench` after `cargo build --release --bins`.

use std::os::unix::net::UnixStream;
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

fn measure(cmd: &Path, args: &[&str]) -> Stats {
    let run = || {
        let t = Instant::now();
        let st = Command::new(cmd)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("spawn");
        assert!(st.success(), "{} {:?} failed: {st}", cmd.display(), args);
        t.elapsed()
    };
    for _ in 0..WARMUP {
        run();
    }
    let mut v: Vec<Duration> = (0..RUNS).map(|_| run()).collect();
    v.sort();
    Stats {
        median: v[v.len() / 2],
        p90: v[v.len() * 9 / 10],
        min: v[0],
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

struct Row {
    what: String,
    stats: Stats,
    floor: Option<Duration>,
}

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
    while UnixStream::connect(&sock).is_err() {
        assert!(Instant::now() < deadline, "amt-sim did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let sock_dev = format!("sim:{}", sock.display());

    let floor = measure(&agent, &["--version"]);
    let f = floor.median;
    let mut rows = vec![
        Row {
            what: "`amt-agent --version` (process floor)".into(),
            stats: floor,
            floor: None,
        },
        Row {
            what: "`amt-agent --device sim amtinfo --all --json` (in-process simulator)".into(),
            stats: measure(&agent, &["--device", "sim", "amtinfo", "--all", "--json"]),
            floor: Some(f),
        },
        Row {
            what: "`amt-agent --device sim:SOCKET amtinfo --all --json` (amt-sim over its socket)"
                .into(),
            stats: measure(
                &agent,
                &["--device", &sock_dev, "amtinfo", "--all", "--json"],
            ),
            floor: Some(f),
        },
    ];
    rows.push(Row {
        what: "`amt-agent --device sim:SOCKET amtinfo` (default fields)".into(),
        stats: measure(&agent, &["--device", &sock_dev, "amtinfo"]),
        floor: Some(f),
    });
    // WS-MAN Get: the agent's own APF path through the ME's LME client, against the same request
    // through the simulator's LMS-like TCP listener (the floor for this pair).
    let lms_port_s = lms_port.to_string();
    let via_lms = measure(
        &agent,
        &[
            "--device",
            &sock_dev,
            "diagnostics",
            "wsman",
            "get",
            "AMT_GeneralSettings",
            "--lms",
            "only",
            "--lms-port",
            &lms_port_s,
        ],
    );
    let lms_floor = via_lms.median;
    rows.push(Row {
        what: "`diagnostics wsman get AMT_GeneralSettings --lms only` (LMS-like listener; floor of the next row)".into(),
        stats: via_lms,
        floor: Some(f),
    });
    rows.push(Row {
        what: "`diagnostics wsman get AMT_GeneralSettings --lms never` (APF over LME) — ratio against the LMS row".into(),
        stats: measure(
            &agent,
            &["--device", &sock_dev, "diagnostics", "wsman", "get", "AMT_GeneralSettings", "--lms", "never"],
        ),
        floor: Some(lms_floor),
    });
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&tmp);

    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut report = String::new();
    report.push_str("# Performance\n\n");
    report.push_str(
        "Reproduce with `make bench` (release build; `cargo run --release --example bench`). ",
    );
    report.push_str(&format!(
        "Each command runs {RUNS} times after {WARMUP} warm-up runs; wall time per process, in ms. \
         The ratio is the median against the median of the process floor.\n\n"
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
    print!("{report}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/performance.md");
    if let Err(e) = std::fs::write(&out, &report) {
        eprintln!("could not write {}: {e}", out.display());
    }
}
