//! Command-line definitions, rpc-go v2 flag compatibility, logging set-up and the run loop.

pub mod compat;
pub mod logging;

use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::device::DeviceSpec;
use crate::error::{AgentError, ExitCode};

#[derive(Parser, Debug)]
#[command(
    name = "amt-agent",
    version,
    about = "Bring an Intel AMT machine from pre-provisioned to managed, and say exactly why when it cannot",
    long_about = "amt-agent talks to the Intel Management Engine over MEI/HECI.\n\n\
Try it without AMT hardware:  amt-agent --device sim amtinfo\n\
On a real machine (as root):  amt-agent amtinfo --all\n\n\
rpc-go v2 spellings work too: -json, -cert, -all, -profile …",
    after_help = "Exit codes follow rpc-go's table: 0 success, 1 permissions, 2 no MEI device/driver, \
3 AMT not present, 4 AMT not ready/busy, 10 other failure, 28 bad command line. See README.md."
)]
pub struct Cli {
    /// The ME to talk to: auto (probe /dev/mei0…3, /dev/mei), a device path, sim (built-in
    /// simulator), sim:profile=NAME, or sim:SOCKET (a running amt-sim).
    #[arg(long, global = true, env = "AMT_AGENT_DEVICE", default_value = "auto", value_parser = DeviceSpec::parse)]
    pub device: DeviceSpec,

    /// More logging on stderr: -v info, -vv debug, -vvv trace (every HECI exchange).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Log level (overrides -v and AMT_AGENT_LOG).
    #[arg(long, global = true, value_enum)]
    pub log_level: Option<LogLevel>,

    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "AMT_AGENT_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Print results as JSON on stdout.
    #[arg(long, short = 'j', global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show AMT versions, SKU, UUID, control mode, DNS suffixes, network, remote access and hashes.
    Amtinfo(AmtinfoArgs),
    /// Check the MEI device, driver, ME clients, AMT SKU, LMS and TLS enforcement, with fixes.
    Doctor(DoctorArgs),
    /// Print the agent's version and the RPS protocol version it speaks.
    Version,
    /// Check a provisioning certificate against AMT's ACM rules, or print its hashes.
    Cert(crate::commands::cert::CertArgs),
    /// Activate AMT through RPS (-u URL --profile NAME), locally in client control mode, or stop an
    /// unfinished configuration.
    Activate(Box<crate::commands::activate::ActivateArgs>),
    /// Deactivate AMT through RPS (-u URL), or locally (CCM over AMTHI, ACM over WS-MAN),
    /// recovering a stuck configuration.
    Deactivate(crate::commands::deactivate::DeactivateArgs),
    /// Run as a service (systemd, or the Windows Service Control Manager): bring the machine to the
    /// configured mode and keep it there. On Windows, `service install|uninstall` registers it.
    Service(ServiceArgs),
    /// Show the service's status (its status file).
    Status(StatusArgs),
    /// Maintenance through RPS: syncclock, synchostname, syncip, changepassword, syncdeviceinfo.
    Maintenance(crate::commands::maintenance::MaintenanceArgs),
    /// Configure AMT locally: amt-features, amt-password, mebx, enable-amt, disable-amt,
    /// sync-clock, hostname, proxy, wired, wireless, wi-fi-sync (each reads first, changes only
    /// what differs; --dry-run).
    Configure(crate::commands::configure::ConfigureArgs),
    /// Tools for support staff: raw WS-MAN to the local AMT.
    Diagnostics(crate::commands::diagnostics::DiagnosticsArgs),
    /// Write or decode setup.bin, the USB provisioning file MEBx reads (root hash, MEBx password).
    SetupBin(crate::commands::setupbin::SetupBinArgs),
    /// Desired-state profiles: `profile check FILE` validates one offline.
    Profile(crate::commands::desired::ProfileArgs),
    /// Read the machine and print, per setting, what is and what the profile wants, in apply's
    /// order, changing nothing. Exit 0: no change; 2: changes pending (see --json's status).
    Plan(crate::commands::desired::DesiredArgs),
    /// Activate when needed, then make each out-of-date setting of the profile true, in a safe
    /// order; a second run changes nothing, an interrupted one is finished by running it again.
    Apply(crate::commands::desired::DesiredArgs),
}

#[derive(Args, Debug, Default, Clone)]
pub struct AmtinfoArgs {
    /// AMT version.
    #[arg(long)]
    pub ver: bool,
    /// Build number.
    #[arg(long)]
    pub bld: bool,
    /// SKU (and its decoded features, with --ver).
    #[arg(long)]
    pub sku: bool,
    /// UUID.
    #[arg(long)]
    pub uuid: bool,
    /// Control mode.
    #[arg(long)]
    pub mode: bool,
    /// Provisioning state (not in rpc-go v2: shown only when asked for, with or without --all).
    #[arg(long)]
    pub provisioning_state: bool,
    /// Operational state (AMT enabled in BIOS/MEBx), where the firmware reports it (AMT 12+ with
    /// ME 16.1's new interface).
    #[arg(long)]
    pub operational_state: bool,
    /// Whether TLS is enforced on AMT's local ports (not in rpc-go v2: shown only when asked for).
    #[arg(long)]
    pub tls_enforced: bool,
    /// DNS suffix (PKI/MEBx) and the OS's DNS suffix.
    #[arg(long)]
    pub dns: bool,
    /// The OS host name.
    #[arg(long)]
    pub hostname: bool,
    /// Remote access (CIRA) status.
    #[arg(long)]
    pub ras: bool,
    /// Wired and wireless adapters.
    #[arg(long)]
    pub lan: bool,
    /// Intel UPID (Unique Platform ID): the OEM and CSME platform ids (not in rpc-go v2: read and
    /// shown only when asked for).
    #[arg(long)]
    pub upid: bool,
    /// Trusted root-certificate hashes.
    #[arg(long)]
    pub cert: bool,
    /// Everything rpc-go v2 shows, certificate hashes included (and the public-key certificates
    /// when an AMT password is given, as rpc-go v2 does).
    #[arg(long)]
    pub all: bool,
    /// The public-key certificates AMT holds (needs the AMT password on an activated device).
    #[arg(long, alias = "userCert")]
    pub user_cert: bool,
    /// How long to wait for an ME that answers NOT_READY (e.g. 30s, 2m).
    #[arg(long, short = 't', default_value = "30s", value_parser = parse_duration)]
    pub amt_timeout: Duration,
    /// How to reach AMT's WS-MAN service for --user-cert.
    #[command(flatten)]
    pub conn: crate::commands::session::AmtConnArgs,
}

#[derive(Args, Debug, Default, Clone)]
pub struct DoctorArgs {}

#[derive(Args, Debug, Clone)]
pub struct ServiceArgs {
    /// The configuration file (absent = defaults; AMT_AGENT_* variables override it).
    #[arg(long, global = true, default_value = crate::service::config::DEFAULT_PATH)]
    pub config: std::path::PathBuf,
    /// Without one, run the service.
    #[command(subcommand)]
    pub action: Option<ServiceAction>,
}

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceAction {
    /// Windows: register the service with the Service Control Manager (manual start, restart on
    /// failure), running this executable with `service --config CONFIG`. Needs an elevated prompt.
    Install,
    /// Windows: stop and remove the service.
    Uninstall,
}

#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    /// The service's state directory.
    #[arg(long, env = "AMT_AGENT_STATE_DIR", default_value = crate::service::config::DEFAULT_STATE_DIR)]
    pub state_dir: std::path::PathBuf,
}

/// Parses `500ms`, `30s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (examples: 500ms, 30s, 2m)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (ms, s, m, h)")),
    };
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses, sets up logging, runs, and maps the outcome to an exit code.
pub fn run(args: Vec<OsString>) -> std::process::ExitCode {
    let args = compat::translate_v2(args);
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
                _ => ExitCode::IncorrectCommandLineParameters.code(),
            };
            let _ = e.print();
            return std::process::ExitCode::from(code);
        }
    };
    logging::init(&cli);
    let json = cli.json;
    match crate::commands::dispatch(cli) {
        Ok(code) => std::process::ExitCode::from(code.code()),
        Err(e) => report(&e, json),
    }
}

/// Prints an error (text on stderr; with --json also an object on stdout) and returns its code.
pub fn report(e: &AgentError, json: bool) -> std::process::ExitCode {
    tracing::debug!(exit = e.exit.code(), "failed");
    eprintln!("{e}");
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&e.to_json()).unwrap_or_default()
        );
    }
    std::process::ExitCode::from(e.exit.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
    }

    #[test]
    fn a_password_on_the_command_line_is_not_printable_from_the_parsed_cli() {
        let cli = Cli::try_parse_from([
            "amt-agent",
            "activate",
            "--local",
            "--acm",
            "--password",
            "Sekr3t-Amt!",
            "--mebx-password",
            "Sekr3t-Mebx!",
            "--provisioning-cert-password",
            "Sekr3t-Pfx!",
        ])
        .unwrap();
        assert!(!format!("{cli:?}").contains("Sekr3t"), "{cli:?}");
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
