//! `amt-sim`'s command line, in the library so that the man-page and completion generator
//! (`examples/gen-assets.rs`) sees the same definition as the binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use super::profile;

#[derive(Parser, Debug)]
#[command(
    name = "amt-sim",
    version,
    about = "A firmware-faithful Intel AMT simulator (MEI/AMTHI, watchdog, MKHI, LME)"
)]
pub struct Cli {
    /// More logging on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Serve the simulated ME on a Unix socket (for `amt-agent --device sim:PATH`), on loopback TCP
    /// (`--device sim:tcp:HOST:PORT`) and/or as a MEI device file through FUSE (for
    /// `amt-agent --device PATH` and unmodified MEI programs).
    Serve(Box<ServeArgs>),
    /// List the built-in device profiles, or print one as JSON (a starting point for your own).
    Profiles {
        /// Print this profile as JSON.
        name: Option<String>,
    },
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("front").required(true).multiple(true).args(["socket", "tcp", "mei_file", "lms_listen"])))]
pub struct ServeArgs {
    /// Unix socket to listen on (one connection = one MEI file handle).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Also (or instead) serve the same frames on TCP, loopback only, for agents without Unix
    /// sockets (the Windows build: `--device sim:tcp:127.0.0.1:PORT`). Port 0 picks a free port;
    /// the address is printed on stderr (`listening on tcp 127.0.0.1:PORT`).
    #[arg(long, value_name = "ADDR")]
    pub tcp: Option<std::net::SocketAddr>,
    /// Also (or instead) present the ME as a MEI character-device file at this path, served through
    /// FUSE (needs /dev/fuse, and root or fusermount3). The file is created when absent and removed
    /// again on exit; bind-mount it over /dev/mei0 for programs that hard-code that path.
    #[arg(long, value_name = "PATH")]
    pub mei_file: Option<PathBuf>,
    /// A built-in profile name (see `amt-sim profiles`) or a profile JSON file.
    #[arg(long, default_value = profile::DEFAULT_PROFILE)]
    pub device_profile: String,
    /// Keep the firmware's state in this file across restarts (created from the profile when absent).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Inject a fault, e.g. busy=amthi*3, reset-after=5, latency=GET_UUID:300, hang=GET_UUID,
    /// truncate=GET_UUID, oversize=GET_UUID, status=GET_CONTROL_MODE:2, random=SEED:PERCENT,
    /// upid-mismatch (the UPID client reports another CSME's id).
    #[arg(long = "fault")]
    pub faults: Vec<String>,
    /// Also serve AMT's web port over TCP, as LMS relays it (loopback only), e.g. 127.0.0.1:16992.
    #[arg(long)]
    pub lms_listen: Option<std::net::SocketAddr>,
    /// Write the test root of the simulated AMT's TLS chain (PEM) to this file, for
    /// `amt-agent --amt-ca-file FILE` on TLS-enforced profiles (amt19). The root is NOT Intel's and
    /// is generated anew at every start.
    #[arg(long, value_name = "FILE")]
    pub tls_root_out: Option<PathBuf>,
    /// Write the chain the simulated AMT presents on port 16993 before activation (PEM, leaf first)
    /// to this file. Its certificate at index 3 is the CSME ROM CA the UPID CSME id is bound to.
    #[arg(long, value_name = "FILE")]
    pub tls_chain_out: Option<PathBuf>,
    /// Append one line per authenticated WS-MAN request to this file: user, class, operation
    /// (Get, Put, Enumerate, Pull, Create, Delete or the method) and the HTTP status answered,
    /// tab-separated. Tests read it to prove what a command sent (a second run sends no write).
    #[arg(long, value_name = "FILE")]
    pub wsman_log: Option<PathBuf>,
    /// Boot with this setup.bin "on a USB stick": before serving, consume it as MEBx does (MEBx
    /// password, PKI DNS suffix, root hashes; see docs/simulator.md). A malformed file is an error.
    #[arg(long, value_name = "FILE")]
    pub usb_setup: Option<PathBuf>,
}
