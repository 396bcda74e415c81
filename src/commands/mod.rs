//! One module per command, composing the layers below.

pub mod activate;
pub mod amtinfo;
pub mod cert;
pub mod configure;
pub mod deactivate;
pub mod desired;
pub mod diagnostics;
pub mod doctor;
pub mod local_acm;
pub mod maintenance;
pub mod remote;
pub mod session;
pub mod setupbin;
pub mod tls_pin;
pub mod user_certs;

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
            let device = crate::device::open(&cli.device)?;
            amtinfo::run(device, args, cli.json)
        }
        Command::Doctor(_) => doctor::run(&cli.device, cli.json),
        Command::Cert(args) => cert::run(&cli.device, args, cli.json),
        Command::Activate(args) => {
            let device = crate::device::open(&cli.device)?;
            activate::run(device, args, cli.json)
        }
        Command::Deactivate(args) => {
            let device = crate::device::open(&cli.device)?;
            deactivate::run(device, args, cli.json)
        }
        Command::Service(args) if args.action.is_some() => crate::service::manage(
            args.action == Some(crate::cli::ServiceAction::Install),
            &args.config,
        ),
        Command::Service(args) => {
            let mut config = crate::service::config::Config::load(&args.config)?;
            // --device on the command line wins over the file.
            if cli.device != crate::device::DeviceSpec::Auto {
                config.device = cli.device.to_string();
            }
            crate::service::Service::new(config).run()
        }
        Command::Status(args) => status(&args.state_dir, cli.json),
        Command::Maintenance(args) => {
            let device = crate::device::open(&cli.device)?;
            maintenance::run(device, args, cli.json)
        }
        Command::Configure(args) => {
            let device = crate::device::open(&cli.device)?;
            configure::run(device, args, cli.json)
        }
        Command::Diagnostics(args) => {
            let device = crate::device::open(&cli.device)?;
            diagnostics::run(device, args, cli.json)
        }
        Command::SetupBin(args) => setupbin::run(args, cli.json),
        Command::Profile(args) => desired::run_profile(args, cli.json),
        Command::Plan(args) => {
            let device = crate::device::open(&cli.device)?;
            desired::run_plan(device, args, cli.json)
        }
        Command::Apply(args) => {
            let device = crate::device::open(&cli.device)?;
            desired::run_apply(device, args, cli.json)
        }
    }
}

fn status(state_dir: &std::path::Path, json: bool) -> Result<ExitCode, AgentError> {
    let path = crate::service::status_path(state_dir);
    let s = crate::service::status::Status::read(&path).map_err(|e| {
        AgentError::new(
            ExitCode::GenericFailure,
            format!("cannot read {}: {e}", path.display()),
        )
        .help("is the service running? systemctl status amt-agent")
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
    } else {
        println!("state:         {}", s.state);
        println!("desired:       {}", s.desired);
        println!(
            "control mode:  {}",
            s.control_mode.as_deref().unwrap_or("unknown")
        );
        println!(
            "last attempt:  {}",
            s.last_attempt.as_deref().unwrap_or("-")
        );
        if let Some(e) = &s.last_error {
            println!("last error:    {} ({} {})", e.message, e.code, e.name);
        }
        println!(
            "next attempt:  {}",
            s.next_attempt.as_deref().unwrap_or("-")
        );
        println!("attempts:      {} ({} succeeded)", s.attempts, s.successes);
        if let Some(p) = &s.profile {
            println!("profile:       {p}");
            println!("last plan:     {}", s.last_plan.as_deref().unwrap_or("-"));
            for d in &s.drift {
                let fixed = match (&d.fixed_at, &d.fixed_by) {
                    (Some(at), Some(by)) if d.fixed => format!("fixed at {at} ({by})"),
                    _ => "not fixed".to_string(),
                };
                println!(
                    "drift:         {}: {}: {} (wanted {}) since {}, {fixed}",
                    d.area, d.setting, d.current, d.desired, d.since
                );
            }
        }
        println!("updated:       {}", s.updated);
    }
    // 0 at the desired state; 2 (as plan) when drift is reported and left as it is.
    Ok(match s.state.as_str() {
        "activated" => ExitCode::Success,
        "drifted" => ExitCode::ChangesPending,
        _ => ExitCode::GenericFailure,
    })
}
