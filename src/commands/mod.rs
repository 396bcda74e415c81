//! One module per command, composing the layers below.

pub mod activate;
pub mod amtinfo;
pub mod deactivate;
pub mod diagnostics;
pub mod doctor;
pub mod maintenance;
pub mod remote;
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
        Command::Activate(args) => {
            let device = crate::heci::open(&cli.device)?;
            activate::run(device, args, cli.json)
        }
        Command::Deactivate(args) => {
            let device = crate::heci::open(&cli.device)?;
            deactivate::run(device, args, cli.json)
        }
        Command::Maintenance(args) => {
            let device = crate::heci::open(&cli.device)?;
            maintenance::run(device, args, cli.json)
        }
        Command::Diagnostics(args) => {
            let device = crate::heci::open(&cli.device)?;
            diagnostics::run(device, args, cli.json)
        }
    }
}
