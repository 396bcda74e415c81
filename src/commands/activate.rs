//! `activate --local --ccm` (host-based setup to client control mode, rpc-go.md §5.1–5.2) and
//! `activate --stop-config` (abort an in-progress configuration, §5.7). The mode reported at the
//! end is the one the firmware reports over AMTHI, never the one intended.

use std::sync::Arc;

use clap::Args;
use serde_json::json;

use super::session::{self, AmtConnArgs};
use crate::amthi::{AmthiClient, ControlMode, ProvisioningState};
use crate::error::{AgentError, ExitCode};
use crate::heci::MeiDevice;
use crate::secret::Secret;
use crate::secret_source::{prompt_no_echo, SecretSource};
use crate::wsman::calls::network_admin_password;
use crate::wsman::classes::{general, host_based_setup, setup_and_configuration};
use crate::wsman::client::Credentials;

#[derive(Args, Debug, Default)]
pub struct ActivateArgs {
    /// Activate locally, without a provisioning server.
    #[arg(long)]
    pub local: bool,
    /// Client control mode (host-based setup with the local system account).
    #[arg(long, conflicts_with = "acm")]
    pub ccm: bool,
    /// Admin control mode (needs a provisioning certificate).
    #[arg(long)]
    pub acm: bool,
    /// Abort an in-progress configuration (AMTHI StopConfiguration) and return to pre-provisioning.
    #[arg(long, conflicts_with_all = ["ccm", "acm"])]
    pub stop_config: bool,
    /// The RPS profile to activate with (remote activation, with -u).
    #[arg(long, env = "PROFILE", hide_env_values = true)]
    pub profile: Option<String>,
    /// DNS suffix sent to RPS as the device's fqdn (default: the PKI DNS suffix, else the OS's).
    #[arg(
        short = 'd',
        long = "dns-suffix",
        visible_alias = "dns",
        env = "DNS_SUFFIX"
    )]
    pub dns_suffix: Option<String>,
    /// Host name sent to RPS (default: the OS host name).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Friendly name RPS records for the device.
    #[arg(long)]
    pub name: Option<String>,
    /// Send this UUID instead of the firmware's (prevents the device from connecting to MPS).
    #[arg(long)]
    pub uuid: Option<String>,
    /// Ask RPS for its TLS tunnel on AMT 11–18 (payload `tlsTunnel`): RPS then applies the
    /// profile's TLS and moves the relay to port 16993 (rpc-go.md §3.7).
    #[arg(long = "tls-tunnel")]
    pub tls_tunnel: bool,
    #[command(flatten)]
    pub remote: super::remote::RpsArgs,
    #[command(flatten)]
    pub acm_args: super::local_acm::LocalAcmArgs,
    #[command(flatten)]
    pub conn: AmtConnArgs,
}

fn invalid(msg: &str, help: &str) -> AgentError {
    AgentError::new(ExitCode::InvalidParameterCombination, msg).help(help)
}

/// The new AMT password: file, flag (warned), environment, or a prompt asked twice.
pub fn new_amt_password(conn: &AmtConnArgs) -> Result<Secret, AgentError> {
    let source = SecretSource {
        what: "new AMT password",
        flag: conn.password.as_ref().map(crate::secret::Secret::expose),
        file: conn.password_file.as_deref(),
        env: &["AMT_PASSWORD"],
    };
    if let Some(p) = source.resolve(false)? {
        return check_strength(p);
    }
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let a = prompt_no_echo("New AMT password: ")?;
        let b = prompt_no_echo("Confirm the new AMT password: ")?;
        if a != b {
            return Err(AgentError::new(
                ExitCode::PasswordsDoNotMatch,
                "the two passwords do not match",
            )
            .help("run the command again and type the same password twice"));
        }
        return check_strength(a);
    }
    Err(AgentError::new(
        ExitCode::MissingOrIncorrectPassword,
        "a new AMT password is needed",
    )
    .help("set AMT_PASSWORD, or pass --password-file FILE"))
}

/// AMT's rule for admin passwords: 8–32 characters with a lower-case and an upper-case letter, a
/// digit and a special character. Setup only sees the digest, so the firmware cannot check it:
/// a weak one would be accepted and then refused by every later password change.
fn check_strength(p: Secret) -> Result<Secret, AgentError> {
    let ok = crate::secret::meets_amt_rules(p.expose());
    if ok {
        Ok(p)
    } else {
        Err(AgentError::new(ExitCode::MissingOrIncorrectPassword, "the new AMT password does not meet AMT's rules")
            .help("use 8–32 characters with upper and lower case, a digit and a special character (not \" , or :)"))
    }
}

pub fn run(
    device: Arc<dyn MeiDevice>,
    args: &ActivateArgs,
    json_out: bool,
) -> Result<ExitCode, AgentError> {
    if args.stop_config {
        return stop_config(device, json_out);
    }
    // A pre-provisioned AMT has no TLS configuration: a pin left from before an unprovisioning
    // the agent did not see (MEBx, another tool) would send the new session to port 16993.
    if AmthiClient::new(device.clone()).control_mode()? == ControlMode::None {
        super::tls_pin::forget(&device, &args.conn);
    }
    if args.remote.url.is_some() {
        if args.local || args.ccm || args.acm {
            return Err(invalid(
                "provide either a 'url' or a 'local', but not both",
                "drop --local/--ccm/--acm to activate through RPS",
            ));
        }
        let req = super::remote::Request::Activate {
            profile: args.profile.clone().unwrap_or_default(),
        };
        let ov = super::remote::Overrides {
            dns_suffix: args.dns_suffix.clone(),
            hostname: args.hostname.clone(),
            friendly_name: args.name.clone(),
            uuid: args.uuid.clone(),
            ip: None,
            tls_tunnel: args.tls_tunnel,
        };
        return super::remote::run(device, &args.remote, &args.conn, req, &ov, json_out);
    }
    if !args.local {
        if args.profile.is_some() {
            return Err(AgentError::new(
                ExitCode::MissingOrIncorrectUrl,
                "-u flag is required and cannot be empty",
            )
            .help("give RPS's websocket URL: amt-agent activate -u wss://rps.example.com/activate --profile NAME"));
        }
        return Err(invalid(
            "specify either -u URL for activation through RPS, or --local --ccm",
            "amt-agent activate -u wss://rps.example.com/activate --profile NAME, or amt-agent activate --local --ccm",
        ));
    }
    match (args.ccm, args.acm) {
        (true, false) => ccm(device, args, json_out),
        (false, true) => super::local_acm::run(
            device,
            &args.acm_args,
            args.dns_suffix.clone(),
            &args.conn,
            json_out,
        ),
        _ => Err(invalid(
            "must specify --ccm or --acm, but not both",
            "add --ccm (or --acm)",
        )),
    }
}

/// Enables AMT when the firmware reports it disabled (ME 16.1+ operational state, rpc-go §5.1).
fn ensure_enabled(device: &dyn MeiDevice) -> Result<(), AgentError> {
    let t = crate::amthi::client::DEFAULT_TIMEOUT;
    let flags = match crate::amthi::client::amt_enabled_flags(device, t) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the AMT operational state; continuing");
            return Ok(());
        }
    };
    if flags.new_interface() && !flags.amt_enabled() {
        tracing::info!("AMT is disabled; enabling it (SetAmtOperationalState)");
        crate::amthi::client::set_amt_operational_state(device, true, t)
            .map_err(|e| AgentError::from(e).context("could not enable AMT"))?;
    }
    Ok(())
}

fn report(json_out: bool, status: &str, mode: ControlMode, message: &str) {
    if json_out {
        let m = match mode {
            ControlMode::Ccm => "CCM",
            ControlMode::Acm => "ACM",
            _ => "none",
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "status": status,
                "mode": m,
                "controlMode": mode.text(),
                "message": message,
            }))
            .unwrap_or_default()
        );
    } else {
        println!("Status: {message}");
    }
}

fn ccm(
    device: Arc<dyn MeiDevice>,
    args: &ActivateArgs,
    json_out: bool,
) -> Result<ExitCode, AgentError> {
    // Refuse early, before asking for a password, when there is nothing to do.
    check_ready_for_ccm(&mut AmthiClient::new(device.clone()))?;
    let password = new_amt_password(&args.conn)?;
    let mode = ccm_flow(device, &args.conn, &password, &mut |step| {
        eprintln!("{step}")
    })?;
    report(
        json_out,
        "success",
        mode,
        "Device activated in Client Control Mode",
    );
    Ok(ExitCode::Success)
}

fn check_ready_for_ccm(amthi: &mut AmthiClient) -> Result<ControlMode, AgentError> {
    let mode = amthi.control_mode()?;
    if mode != ControlMode::None {
        return Err(AgentError::new(
            ExitCode::UnableToActivate,
            format!("the device is already activated ({})", mode.text()),
        )
        .help("deactivate first (amt-agent deactivate --local), or leave it as it is"));
    }
    if amthi.provisioning_state()? == ProvisioningState::In {
        return Err(AgentError::new(
            ExitCode::UnableToActivate,
            "the device is stuck in provisioning (an earlier configuration did not finish)",
        )
        .help("abort it with: amt-agent activate --stop-config, then activate again"));
    }
    Ok(mode)
}

/// Host-based setup to CCM with `password`; returns the mode the firmware reports afterwards.
/// `progress` is told each step as it happens.
pub fn ccm_flow(
    device: Arc<dyn MeiDevice>,
    conn: &AmtConnArgs,
    password: &Secret,
    progress: &mut dyn FnMut(&str),
) -> Result<ControlMode, AgentError> {
    let mut amthi = AmthiClient::new(device.clone());
    let mode = check_ready_for_ccm(&mut amthi)?;
    ensure_enabled(device.as_ref())?;
    let lsa = amthi.local_system_account()?;
    drop(amthi);
    let mut s = session::connect_as(
        device.clone(),
        conn,
        Credentials::new(lsa.username, lsa.password),
        mode,
    )?;
    progress(&format!(
        "Connected to AMT ({})",
        session::route_name(&s.route)
    ));
    let gs = s
        .call(general::get())
        .map_err(|e| e.context("could not read AMT_GeneralSettings (the digest realm)"))?;
    let realm = gs.digest_realm.clone();
    let digest = network_admin_password(&realm, password);
    let setup = s.call(host_based_setup::setup(&digest));
    if let Err(e) = setup {
        // The answer may be lost while the firmware switches modes: believe the firmware.
        let now = AmthiClient::new(device.clone()).control_mode();
        if !matches!(now, Ok(ControlMode::Ccm)) {
            return Err(e.context("IPS_HostBasedSetupService.Setup failed"));
        }
        tracing::warn!(error = %e.message, "Setup's answer was lost, but the firmware reports CCM");
    }
    progress("Setup accepted: client control mode");
    let tls = crate::amthi::client::amt_enabled_flags(
        device.as_ref(),
        crate::amthi::client::DEFAULT_TIMEOUT,
    )
    .map(|f| f.new_interface() && f.tls_enforced())
    .unwrap_or(false);
    drop(s);
    if tls {
        // AMT now presents its post-activation certificate: a new session, as admin, whose TLS
        // rules are those of an activated device.
        let mut s = session::connect_as(
            device.clone(),
            conn,
            Credentials::new("admin", password.clone()),
            ControlMode::Ccm,
        )?;
        progress("Committing the configuration (TLS is enforced on this AMT)");
        if let Err(e) = s.call(setup_and_configuration::commit_changes()) {
            let after = AmthiClient::new(device.clone()).provisioning_state();
            if !matches!(after, Ok(ProvisioningState::Post)) {
                let _ = s.call(setup_and_configuration::unprovision(1));
                return Err(e
                    .context("CommitChanges failed; the activation was rolled back")
                    .exit(ExitCode::ActivationFailed));
            }
        }
    }
    let mode = AmthiClient::new(device).control_mode()?;
    if mode != ControlMode::Ccm {
        return Err(AgentError::new(
            ExitCode::ActivationFailed,
            format!("after Setup the firmware reports {}", mode.text()),
        )
        .help("run amt-agent amtinfo to see the state; capture a trace (-vvv) and report it"));
    }
    Ok(mode)
}

fn stop_config(device: Arc<dyn MeiDevice>, json_out: bool) -> Result<ExitCode, AgentError> {
    let mut amthi = AmthiClient::new(device);
    amthi
        .stop_configuration()
        .map_err(|e| AgentError::from(e).context("StopConfiguration failed"))?;
    let mode = amthi.control_mode()?;
    report(json_out, "success", mode, "AMT configuration stopped");
    Ok(ExitCode::Success)
}
