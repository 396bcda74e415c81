//! One module per command, composing the layers below.

pub mod amtinfo;
pub mod cert;
pub mod diagnostics;
pub mod doctor;
pub mod local_acm;
pub mod session;

use crate::cli::{Cli, Command};
use crate::error::{AgentError, ExitCode};

/// The RPS websocket protocol version this agent speaks.
pub const RPS_PROTOCOL_VERSION: &str = "4.0.0";

pub fn dispatch(cli: Cli) -> Result<ExitCode, AgentError> {
    match &cli.command {
        Command::Version => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "app": "amt-agent",
                        "version": env!("CARGO_PKG_VERSION"),
                        "protocol": RPS_PROTOCOL_VERSION,
                    }))
                    .unwrap_or_default()
                );
            } else {
                println!(
                    "amt-agent\nVersion {}\nProtocol {RPS_PROTOCOL_VERSION}",
                    env!("CARGO_PKG_VERSION")
                );
            }
            Ok(ExitCode::Success)
        }
        Command::Amtinfo(args) => {
            let device = crate::heci::open(&cli.device)?;
            amtinfo::run(device, args, cli.json)
        }
        Command::Doctor(_) => doctor::run(&cli.device, cli.json),
        Command::Cert(args) => cert::run(&cli.device, args, cli.json),
        Command::Activate(args) => {
            if !(args.local && args.acm) {
                return Err(AgentError::new(
                    ExitCode::IncorrectCommandLineParameters,
                    "this build activates only with --local --acm",
                )
                .help("amt-agent activate --local --acm --provisioning-cert FILE"));
            }
            let device = crate::heci::open(&cli.device)?;
            local_acm::run(device, &args.acm_args, cli.json)
        }
        Command::Diagnostics(args) => {
            let device = crate::heci::open(&cli.device)?;
            diagnostics::run(device, args, cli.json)
        }
    }
}
