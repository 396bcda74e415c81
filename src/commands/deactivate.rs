//! `deactivate --local`: CCM through AMTHI Unprovision (no password), ACM through WS-MAN
//! Unprovision as admin, and a device stuck "in provisioning" recovered with StopConfiguration
//! (rpc-go.md §5.8, user-pains.md failure mode 6).

use std::sync::Arc;

use clap::Args;
use serde_json::json;

use super::session::{self, AmtConnArgs};
use crate::amthi::{AmthiClient, ControlMode, ProvisioningState};
use crate::error::{AgentError, ExitCode};
use crate::heci::MeiDevice;
use crate::wsman::classes::setup_and_configuration;

#[derive(Args, Debug, Default)]
pub struct DeactivateArgs {
    /// Deactivate locally, without a provisioning server.
    #[arg(long)]
    pub local: bool,
    /// Partial unprovision (ACM only): keep the network settings.
    #[arg(long)]
    pub partial: bool,
    /// Force: RPS skips its check of the stored AMT password.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Ask RPS for its TLS tunnel (payload `tlsTunnel`, as rpc-go v3's deactivate does).
    #[arg(long = "tls-tunnel")]
    pub tls_tunnel: bool,
    #[command(flatten)]
    pub remote: super::remote::RpsArgs,
    #[command(flatten)]
    pub conn: AmtConnArgs,
}

fn done(json_out: bool, message: &str, mode: ControlMode) {
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"status": "success", "message": message, "controlMode": mode.text()})
            )
            .unwrap_or_default()
        );
    } else {
        println!("Status: {message}");
    }
}

pub fn run(
    device: Arc<dyn MeiDevice>,
    args: &DeactivateArgs,
    json_out: bool,
) -> Result<ExitCode, AgentError> {
    if args.remote.url.is_some() {
        if args.local || args.partial {
            return Err(AgentError::new(
                ExitCode::InvalidParameterCombination,
                "provide either a 'url' or a 'local', but not both",
            )
            .help("drop --local/--partial to deactivate through RPS"));
        }
        let req = super::remote::Request::Deactivate { force: args.force };
        return super::remote::run(
            device,
            &args.remote,
            &args.conn,
            req,
            &super::remote::Overrides {
                tls_tunnel: args.tls_tunnel,
                ..Default::default()
            },
            json_out,
        );
    }
    if !args.local {
        return Err(AgentError::new(
            ExitCode::MissingOrIncorrectUrl,
            "-u flag is required when not using local mode",
        )
        .help("amt-agent deactivate -u wss://rps.example.com/activate, or amt-agent deactivate --local"));
    }
    let mut amthi = AmthiClient::new(device.clone());
    let mode = amthi.control_mode()?;
    let state = amthi.provisioning_state()?;
    if state == ProvisioningState::In {
        // A half-finished configuration: abort it over AMTHI, then unprovision what is left.
        eprintln!("The device is stuck in provisioning; aborting the unfinished configuration (StopConfiguration)");
        amthi.stop_configuration().map_err(|e| {
            AgentError::from(e)
                .context("StopConfiguration failed")
                .exit(ExitCode::DeactivationFailed)
        })?;
        if amthi.control_mode()? == ControlMode::Ccm {
            amthi
                .unprovision()
                .map_err(|e| AgentError::from(e).exit(ExitCode::DeactivationFailed))?;
        }
        let now = amthi.control_mode()?;
        done(
            json_out,
            "Recovered from an unfinished configuration: device deactivated",
            now,
        );
        return Ok(ExitCode::Success);
    }
    match mode {
        ControlMode::None | ControlMode::Unknown(_) => Err(AgentError::new(
            ExitCode::UnableToDeactivate,
            format!("the device is not activated ({})", mode.text()),
        )
        .help("nothing to do; amt-agent amtinfo --mode shows the state")),
        ControlMode::Ccm => {
            if args.partial {
                return Err(AgentError::new(
                    ExitCode::InvalidParameterCombination,
                    "--partial applies to ACM only",
                )
                .help("drop --partial to deactivate a CCM device"));
            }
            if args.conn.password.is_some() || args.conn.password_file.is_some() {
                tracing::warn!(
                    "a CCM device is deactivated over AMTHI; the password is not needed"
                );
            }
            amthi.unprovision().map_err(|e| {
                AgentError::from(e)
                    .context("AMTHI Unprovision failed")
                    .exit(ExitCode::DeactivationFailed)
            })?;
            let now = amthi.control_mode()?;
            if now != ControlMode::None {
                return Err(AgentError::new(
                    ExitCode::DeactivationFailed,
                    format!("after Unprovision the firmware reports {}", now.text()),
                ));
            }
            drop(amthi);
            super::tls_pin::forget(&device, &args.conn);
            done(json_out, "Device deactivated", now);
            Ok(ExitCode::Success)
        }
        ControlMode::Acm => {
            drop(amthi);
            let mut s = session::connect(device.clone(), &args.conn)?;
            let call = if args.partial {
                setup_and_configuration::partial_unprovision()
            } else {
                setup_and_configuration::unprovision(1)
            };
            let r = s.call(call);
            drop(s);
            let now = AmthiClient::new(device.clone()).control_mode()?;
            match (r, now) {
                (_, ControlMode::None) => {
                    super::tls_pin::forget(&device, &args.conn);
                    done(json_out, "Device deactivated", now);
                    Ok(ExitCode::Success)
                }
                (Ok(()), _) if args.partial => {
                    done(json_out, "Device partially deactivated", now);
                    Ok(ExitCode::Success)
                }
                (Err(e), _) => {
                    Err(e.context("AMT_SetupAndConfigurationService.Unprovision failed"))
                }
                (Ok(()), m) => Err(AgentError::new(
                    ExitCode::DeactivationFailed,
                    format!("after Unprovision the firmware reports {}", m.text()),
                )),
            }
        }
    }
}
