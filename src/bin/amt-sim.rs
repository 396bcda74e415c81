//! amt-sim: a firmware-faithful Intel AMT simulator. See `amt-sim serve --help` and docs/simulator.md.
//!
//! It runs on Linux (its Unix socket, FUSE device file and signal handling are Linux's); a Windows
//! agent reaches it over `--tcp` (`--device sim:tcp:HOST:PORT`), and `amt-agent --device sim` has
//! the same firmware inside the process on every OS. Built for Windows it only says so.

#[cfg(unix)]
use std::os::unix::net::UnixListener;
#[cfg(unix)]
use std::path::PathBuf;

use amt_agent::sim::cli::{Cli, Cmd, ServeArgs};
#[cfg(unix)]
use amt_agent::sim::faults::{Fault, FaultPlan};
use amt_agent::sim::profile;
#[cfg(unix)]
use amt_agent::sim::DeviceProfile;
#[cfg(unix)]
use amt_agent::sim::Firmware;
use clap::Parser;

#[cfg(not(unix))]
fn serve(_: ServeArgs) -> Result<(), String> {
    Err(
        "amt-sim serves on Linux only; run it there with --tcp 127.0.0.1:PORT and give this \
         machine's agent --device sim:tcp:HOST:PORT, or use --device sim (the simulator inside \
         the agent)"
            .into(),
    )
}

#[cfg(unix)]
fn serve(args: ServeArgs) -> Result<(), String> {
    let faults: Vec<Fault> = args
        .faults
        .iter()
        .map(|f| Fault::parse(f))
        .collect::<Result<_, _>>()?;
    let mut profile = match &args.state {
        Some(p) if p.exists() => {
            let t =
                std::fs::read_to_string(p).map_err(|e| format!("state {}: {e}", p.display()))?;
            serde_json::from_str(&t).map_err(|e| format!("state {}: {e}", p.display()))?
        }
        _ => profile::load(&args.device_profile)?,
    };
    if let Some(path) = &args.usb_setup {
        usb_setup(&mut profile, path)?;
    }
    let name = profile.name.clone();
    if let Some(path) = &args.tls_root_out {
        let pem = amt_agent::sim::tls::odca_chain().root_pem();
        std::fs::write(path, pem).map_err(|e| format!("--tls-root-out {}: {e}", path.display()))?;
        eprintln!(
            "amt-sim: TLS test root (not Intel's) written to {}",
            path.display()
        );
    }
    if let Some(path) = &args.tls_chain_out {
        let pem = amt_agent::sim::tls::odca_chain().chain_pem();
        std::fs::write(path, pem)
            .map_err(|e| format!("--tls-chain-out {}: {e}", path.display()))?;
    }
    let fw = Firmware::new(profile, FaultPlan::new(faults), args.state.clone());
    if let Some(path) = &args.wsman_log {
        fw.lock().web.log = Some(path.clone());
    }

    // Block the stop signals in every thread; the main thread waits for them.
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGINT);
    set.add(nix::sys::signal::Signal::SIGTERM);
    set.thread_block().map_err(|e| e.to_string())?;

    // The TCP listeners are bound before the socket and the device file: a client that waits for
    // the socket (as the tests do) then finds every front end listening.
    if let Some(addr) = args.tcp {
        if !addr.ip().is_loopback() {
            return Err(format!(
                "--tcp {addr}: only loopback addresses are allowed (127.0.0.1 or [::1])"
            ));
        }
        let tcp = std::net::TcpListener::bind(addr).map_err(|e| format!("--tcp {addr}: {e}"))?;
        let bound = tcp.local_addr().map_err(|e| format!("--tcp {addr}: {e}"))?;
        let fw2 = fw.clone();
        std::thread::spawn(move || amt_agent::sim::server::serve_tcp(tcp, fw2));
        eprintln!("amt-sim: profile {name} listening on tcp {bound}");
    }
    if let Some(addr) = args.lms_listen {
        if !addr.ip().is_loopback() {
            return Err(format!(
                "--lms-listen {addr}: only loopback addresses are allowed (LMS listens on 127.0.0.1)"
            ));
        }
        let tcp =
            std::net::TcpListener::bind(addr).map_err(|e| format!("--lms-listen {addr}: {e}"))?;
        let fw3 = fw.clone();
        std::thread::spawn(move || amt_agent::sim::server::serve_lms(tcp, fw3));
        eprintln!("amt-sim: LMS-like listener on {addr}");
    }

    // Mounted first and held until return, so the mount goes away on every way out of here.
    let _mei_file = match &args.mei_file {
        Some(path) => {
            let m = amt_agent::sim::fuse::MeiFile::mount(path, fw.clone())?;
            eprintln!(
                "amt-sim: profile {name} serving MEI device file {}",
                m.path().display()
            );
            Some(m)
        }
        None => None,
    };
    let _socket = match &args.socket {
        Some(path) => {
            if path.exists() {
                std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            let listener =
                UnixListener::bind(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let fw2 = fw.clone();
            std::thread::spawn(move || amt_agent::sim::server::serve(listener, fw2));
            eprintln!("amt-sim: profile {name} listening on {}", path.display());
            Some(RemoveOnDrop(path.clone()))
        }
        None => None,
    };
    let sig = set.wait().map_err(|e| e.to_string())?;
    tracing::info!(signal = ?sig, "stopping");
    drop(fw);
    Ok(())
}

/// Removes the socket file when serving stops.
#[cfg(unix)]
struct RemoveOnDrop(PathBuf);

#[cfg(unix)]
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("AMT_SIM_LOG").unwrap_or_else(|_| level.into()),
        ))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    let r = match cli.command {
        Cmd::Serve(a) => serve(*a),
        Cmd::Profiles { name: None } => {
            for n in profile::BUILTIN {
                let p = profile::builtin(n).expect("built-in");
                println!("{n:10} {}", p.description);
            }
            Ok(())
        }
        Cmd::Profiles { name: Some(n) } => match profile::load(&n) {
            Ok(p) => {
                println!("{}", serde_json::to_string_pretty(&p).unwrap_or_default());
                Ok(())
            }
            Err(e) => Err(e),
        },
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(unix)]
fn usb_setup(profile: &mut DeviceProfile, path: &std::path::Path) -> Result<(), String> {
    use amt_agent::provisioning::setupbin::SetupBin;
    let bytes = std::fs::read(path).map_err(|e| format!("--usb-setup {}: {e}", path.display()))?;
    let file = SetupBin::parse(&bytes)
        .map_err(|e| format!("--usb-setup {}: not a setup.bin: {e}", path.display()))?;
    let done = amt_agent::sim::usb_setup::consume(profile, &file)
        .map_err(|e| format!("--usb-setup {}: MEBx refuses the file: {e}", path.display()))?;
    for n in &done.notes {
        tracing::info!("usb-setup: {n}");
    }
    if let Some(updated) = done.updated_file {
        // The BIOS counts the consumed record on the stick; a read-only stick keeps it reusable.
        match updated.encode().map(|b| std::fs::write(path, b)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(
                "usb-setup: cannot mark record consumed in {}: {e}",
                path.display()
            ),
            Err(e) => tracing::warn!("usb-setup: {e}"),
        }
    }
    eprintln!(
        "amt-sim: consumed USB provisioning file {} (record {})",
        path.display(),
        done.record
    );
    Ok(())
}
