//! Activation, deactivation and maintenance through RPS (rps-protocol.md; rpc-go.md §3): the tokio
//! driver around [`crate::rps::session::RelaySession`]. It connects the websocket (ws or wss,
//! optionally through an HTTP CONNECT proxy), sends the first message, relays every `wsman`
//! request to AMT byte for byte on a fresh connection, and reports RPS's result next to the mode
//! the firmware reports afterwards.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{self, Message};

use super::session::{self, AmtConnArgs};
use crate::amthi::{AmthiClient, ControlMode};
use crate::error::{AgentError, ExitCode};
use crate::heci::MeiDevice;
use crate::rps::message::{self, Command, Identity, IpConfiguration, Outcome, Payload};
use crate::rps::session::{Action, RelaySession, SessionError};
use crate::secret::Secret;
use crate::secret_source::SecretSource;
use crate::wsman::client::{Credentials, WsmanClient, WsmanOptions};
use crate::wsman::transport::{AmtStream, Route, RouteOptions};

/// How to reach RPS: shared by `activate -u`, `deactivate -u` and `maintenance`.
#[derive(Args, Debug, Default, Clone)]
pub struct RpsArgs {
    /// RPS websocket URL (ws:// or wss://), e.g. wss://rps.example.com/activate.
    #[arg(short = 'u', long = "url", value_name = "URL")]
    pub url: Option<String>,
    /// Do not verify RPS's TLS certificate (anyone on the path can then read the AMT password).
    #[arg(short = 'n', long)]
    pub skip_cert_check: bool,
    /// Trust this PEM CA (RPS behind a private CA), in addition to the system's roots.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// HTTP proxy for the websocket (http://host:port); else HTTPS_PROXY/HTTP_PROXY, minus NO_PROXY.
    #[arg(short = 'p', long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Tenant id sent in every message (must match the profile's tenant).
    #[arg(long)]
    pub tenant: Option<String>,
    /// JWT for a gateway in front of RPS (sent as `Authorization: Bearer` on the upgrade). Prefer
    /// AUTH_TOKEN or --token-file: the command line is visible to others.
    #[arg(long, visible_alias = "auth-token")]
    pub token: Option<crate::secret::Secret>,
    /// A file holding the JWT (first line; must not be readable by others).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Deadline for the whole operation.
    #[arg(long, default_value = "5m", value_parser = crate::cli::parse_duration)]
    pub timeout: Duration,
    /// Longest silence allowed from RPS between messages (RPS pauses 12 s after Setup).
    #[arg(long, default_value = "60s", value_parser = crate::cli::parse_duration)]
    pub message_timeout: Duration,
}

/// What to ask RPS for, before the AMT password is known.
pub enum Request {
    Activate {
        profile: String,
    },
    Deactivate {
        force: bool,
    },
    Maintenance {
        task: MaintenanceKind,
        force: bool,
        new_password: Option<Secret>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaintenanceKind {
    SyncClock,
    SyncHostname,
    SyncIp,
    ChangePassword,
    SyncDeviceInfo,
}

/// Payload overrides from the command line.
#[derive(Default, Clone, Debug)]
pub struct Overrides {
    pub dns_suffix: Option<String>,
    pub hostname: Option<String>,
    pub friendly_name: Option<String>,
    pub uuid: Option<String>,
    pub ip: Option<IpConfiguration>,
    /// `--tls-tunnel`: payload `tlsTunnel` (rpc-go.md §3.3).
    pub tls_tunnel: bool,
}

fn fail(code: ExitCode, msg: impl Into<String>) -> AgentError {
    AgentError::new(code, msg)
}

fn failure_code(req: &Request) -> ExitCode {
    match req {
        Request::Activate { .. } => ExitCode::ActivationFailed,
        Request::Deactivate { .. } => ExitCode::DeactivationFailed,
        Request::Maintenance { task, .. } => match task {
            MaintenanceKind::SyncClock => ExitCode::SyncClockFailed,
            MaintenanceKind::SyncHostname => ExitCode::SyncHostnameFailed,
            MaintenanceKind::SyncIp => ExitCode::SyncIpFailed,
            MaintenanceKind::ChangePassword => ExitCode::ChangePasswordFailed,
            MaintenanceKind::SyncDeviceInfo => ExitCode::SyncDeviceInfoFailed,
        },
    }
}

/// The components RPS's final `success` reports as failed, in RPS's order of configuration
/// (activation, wired, wireless, TLS, CIRA proxy, CIRA connection), any others after them.
fn failed_components(o: &Outcome) -> Vec<&crate::rps::message::Component> {
    const ORDER: [&str; 6] = [
        "Activation",
        "WiredNetwork",
        "WirelessNetwork",
        "TLS",
        "CIRAProxy",
        "CIRAConnection",
    ];
    let mut failed: Vec<&crate::rps::message::Component> = o
        .components
        .iter()
        .filter(|c| c.result.eq_ignore_ascii_case("Failure"))
        .collect();
    failed.sort_by_key(|c| {
        ORDER
            .iter()
            .position(|n| *n == c.name)
            .unwrap_or(ORDER.len())
    });
    failed
}

/// rpc-go's code for a component that failed (rpc-go.md §2): 102 activation, 103 wired network,
/// 106 wireless, 105 TLS, 104 CIRA (proxy or connection), 107 AMT features, else 10.
fn component_code(name: &str) -> ExitCode {
    match name {
        "Activation" => ExitCode::ActivationFailed,
        "WiredNetwork" => ExitCode::NetworkConfigurationFailed,
        "WirelessNetwork" => ExitCode::WifiConfigurationFailed,
        "TLS" => ExitCode::TlsConfigurationFailed,
        "CIRAProxy" | "CIRAConnection" => ExitCode::CiraConfigurationFailed,
        n if n.contains("Feature") => ExitCode::AmtFeaturesConfigurationFailed,
        _ => ExitCode::GenericFailure,
    }
}

/// The exit code for RPS's `error`, rpc-go's where one fits.
fn error_code(req: &Request, o: &Outcome) -> ExitCode {
    let s = o.status.as_str();
    if s.contains("does not match list of available AMT profiles") {
        return ExitCode::MissingOrIncorrectProfile;
    }
    if s.contains("DOES NOT match stored version") {
        return ExitCode::MissingOrIncorrectPassword;
    }
    if s.contains("domain suffix") {
        return ExitCode::MissingDnsSuffix;
    }
    match req {
        // Refused before any WS-MAN (a plain sentence): nothing was attempted on the device.
        Request::Activate { .. } if !o.structured => ExitCode::UnableToActivate,
        Request::Deactivate { .. } if !o.structured => ExitCode::UnableToDeactivate,
        _ => failure_code(req),
    }
}

/// Everything the first message needs, read over AMTHI and from the OS.
fn gather(
    device: &Arc<dyn MeiDevice>,
    ov: &Overrides,
) -> Result<(Payload, ControlMode, bool), AgentError> {
    let mut amthi = AmthiClient::new(device.clone());
    let cv = amthi.code_versions()?;
    let ver = cv.get("AMT").unwrap_or_default().to_string();
    let build = cv.get("Build Number").unwrap_or_default().to_string();
    let sku = cv.get("Sku").unwrap_or_default().to_string();
    let uuid = match &ov.uuid {
        Some(u) => {
            if crate::amthi::AmtUuid::parse(u).is_none() {
                return Err(fail(ExitCode::InvalidUuid, format!("'{u}' is not a UUID")));
            }
            tracing::warn!("overriding the UUID prevents the device from connecting to MPS");
            u.to_ascii_lowercase()
        }
        None => amthi.uuid()?.text(),
    };
    let mode = amthi.control_mode()?;
    // The firmware gives the local system account out only before activation; after it the
    // payload carries admin and the AMT password instead (filled in by the caller).
    let (username, password) = if mode == ControlMode::None {
        let lsa = amthi.local_system_account()?;
        (lsa.username, lsa.password)
    } else {
        ("admin".to_string(), Secret::default())
    };
    let hashes = amthi
        .cert_hashes()?
        .into_iter()
        .filter(|h| h.is_active)
        .map(|h| h.hash_hex().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    let pki = amthi
        .pki_dns_suffix()
        .unwrap_or_default()
        .trim()
        .trim_end_matches('.')
        .to_string();
    let os_suffix = crate::os::dns_suffix();
    let fqdn = ov
        .dns_suffix
        .clone()
        .or_else(|| (!pki.is_empty()).then(|| pki.clone()))
        .unwrap_or_else(|| os_suffix.clone());
    let hostname = ov.hostname.clone().unwrap_or_else(crate::os::hostname);
    let tls_enforced = crate::amthi::client::amt_enabled_flags(
        device.as_ref(),
        crate::amthi::client::DEFAULT_TIMEOUT,
    )
    .map(|f| f.new_interface() && f.tls_enforced())
    .unwrap_or(false);
    let payload = Payload {
        features: super::amtinfo::features(&ver, &sku),
        ver,
        build,
        sku,
        uuid,
        username,
        password,
        current_mode: match mode {
            ControlMode::None => 0,
            ControlMode::Ccm => 1,
            ControlMode::Acm => 2,
            ControlMode::Unknown(n) => n,
        },
        hostname: hostname.clone(),
        fqdn,
        cert_hashes: hashes,
        ip_configuration: ov.ip.clone().unwrap_or_default(),
        dns_suffix_os: os_suffix,
        hostname_os: hostname,
        friendly_name: ov.friendly_name.clone(),
        tls_enforced,
        tls_tunnel: ov.tls_tunnel,
        lms_installed: false,
    };
    Ok((payload, mode, tls_enforced))
}

fn amt_password(conn: &AmtConnArgs, why: &str) -> Result<Secret, AgentError> {
    let source = SecretSource {
        what: "AMT password",
        flag: conn.password.as_ref().map(crate::secret::Secret::expose),
        file: conn.password_file.as_deref(),
        env: &["AMT_PASSWORD"],
    };
    source.resolve(true)?.ok_or_else(|| {
        fail(
            ExitCode::MissingOrIncorrectPassword,
            format!("the AMT password is needed ({why})"),
        )
        .help("set AMT_PASSWORD, or pass --password-file FILE")
    })
}

/// Runs one RPS operation end to end.
pub fn run(
    device: Arc<dyn MeiDevice>,
    rps: &RpsArgs,
    conn: &AmtConnArgs,
    req: Request,
    ov: &Overrides,
    json_out: bool,
) -> Result<ExitCode, AgentError> {
    let url = rps.url.clone().unwrap_or_default();
    let parsed = url::Url::parse(&url).map_err(|e| {
        fail(
            ExitCode::MissingOrIncorrectUrl,
            format!("'{url}' is not a URL: {e}"),
        )
        .help("give RPS's websocket URL: -u wss://rps.example.com/activate")
    })?;
    if !matches!(parsed.scheme(), "ws" | "wss") {
        return Err(fail(
            ExitCode::MissingOrIncorrectUrl,
            format!("'{url}' is not a websocket URL (ws:// or wss://)"),
        ));
    }
    if let Request::Activate { profile } = &req {
        if profile.is_empty() {
            return Err(fail(
                ExitCode::MissingOrIncorrectProfile,
                "--profile NAME is required",
            )
            .help("name the RPS profile: --profile ccm-profile"));
        }
    }
    let (mut payload, mode, tls_enforced) = gather(&device, ov)?;
    let command = match &req {
        Request::Activate { profile } => {
            if mode != ControlMode::None {
                payload.username = "admin".into();
                payload.password = amt_password(conn, "the device is already activated")?;
            }
            Command::Activate {
                profile: profile.clone(),
            }
        }
        Request::Deactivate { force } => {
            if mode == ControlMode::None {
                tracing::warn!("the firmware reports pre-provisioning; RPS will refuse");
            }
            let pw = amt_password(conn, "RPS checks it before deactivating")?;
            payload.username = "admin".into();
            payload.password = pw.clone();
            Command::Deactivate {
                password: pw,
                force: *force,
            }
        }
        Request::Maintenance {
            task,
            force,
            new_password,
        } => {
            let pw = amt_password(conn, "maintenance runs as admin")?;
            payload.username = "admin".into();
            payload.password = pw.clone();
            let task = match task {
                MaintenanceKind::SyncClock => message::MaintenanceTask::SyncTime,
                MaintenanceKind::SyncHostname => message::MaintenanceTask::SyncHostname,
                MaintenanceKind::SyncIp => message::MaintenanceTask::SyncIp,
                MaintenanceKind::SyncDeviceInfo => message::MaintenanceTask::SyncDeviceInfo,
                MaintenanceKind::ChangePassword => {
                    message::MaintenanceTask::ChangePassword(new_password.clone())
                }
            };
            Command::Maintenance {
                task,
                password: pw,
                force: *force,
            }
        }
    };
    let identity = Identity {
        app_version: env!("CARGO_PKG_VERSION").to_string(),
        tenant_id: rps.tenant.clone().unwrap_or_default(),
    };

    // Before the route holds the LME client: what the certificate rules need, should AMT refuse
    // the chain RPS sends.
    let machine = if matches!(req, Request::Activate { .. }) {
        relay_machine(&device, conn, &payload, mode, ov)
    } else {
        crate::provisioning::Machine::default()
    };

    // The route to AMT. The relay carries RPS's own Digest, so these credentials are never used.
    let runtime = session::runtime()?;
    let opts = RouteOptions {
        lms: conn.lms,
        lms_port: conn.lms_port,
        tls: tls_enforced,
        ..RouteOptions::default()
    };
    let route = runtime.block_on(Route::choose(&opts, device.clone()))?;
    step(&format!(
        "AMT reached through {}",
        session::route_name(&route)
    ));
    let client = WsmanClient::new(
        Arc::new(route.clone()),
        Credentials::new("unused", Secret::default()),
        WsmanOptions {
            port: route.management_port(false),
            request_timeout: conn.request_timeout,
        },
    );
    let driver = Driver {
        rps: rps.clone(),
        url: parsed,
        client,
        route,
        identity,
        tls_enforced,
        machine,
    };
    let first = message::first_message(&driver.identity, &command, &payload);
    step(&format!(
        "Sending '{}' for device {} ({})",
        command.method_line_redacted(),
        payload.uuid,
        mode.text()
    ));
    let outcome = runtime.block_on(async {
        match tokio::time::timeout(rps.timeout, driver.session(first)).await {
            Ok(r) => r,
            Err(_) => Err(fail(
                failure_code(&req),
                format!(
                    "the operation did not finish within {}",
                    humantime(rps.timeout)
                ),
            )
            .help("raise --timeout, or check RPS's logs for the device")),
        }
    });
    drop(runtime);
    let outcome = match outcome {
        Ok(o) => o,
        // The session broke off: say what the firmware reports now, since RPS may have got part
        // of the way (Setup done, the final message lost).
        Err(e) => return Err(with_device_state(e, device, mode)),
    };
    let after = AmthiClient::new(device.clone()).control_mode()?;
    if after == ControlMode::None {
        super::tls_pin::forget(&device, conn);
    }
    finish(&req, outcome, after, json_out)
}

/// `e` with the control mode the firmware reports now, against `before`; a change is spelled out
/// with what a re-run does.
fn with_device_state(e: AgentError, device: Arc<dyn MeiDevice>, before: ControlMode) -> AgentError {
    let now = match AmthiClient::new(device).control_mode() {
        Ok(m) => m,
        Err(r) => {
            return e.state(format!(
                "unknown: the control mode could not be read afterwards ({r}); run `amt-agent amtinfo --mode`"
            ))
        }
    };
    if now == before {
        return e.state(format!("unchanged: {}", now.text()));
    }
    let e = e.state(format!(
        "changed by this run: {} (was {})",
        now.text(),
        before.text()
    ));
    let rerun = if now == ControlMode::None {
        "re-run the same command"
    } else {
        "re-run the same command with the AMT password the profile set (AMT_PASSWORD): RPS reconfigures an activated device; or deactivate"
    };
    let help = match &e.help {
        Some(h) => format!("{h}; {rerun}"),
        None => rerun.to_string(),
    };
    e.help(help)
}

fn humantime(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// A step line, as it happens (stderr, so stdout stays the result).
fn step(s: &str) {
    eprintln!("{s}");
}

struct SessionResult {
    outcome: Result<Outcome, Outcome>,
    seen: Seen,
    /// WS-MAN requests relayed as plain HTTP.
    exchanges: u32,
    /// RPS messages relayed into the TLS tunnel (TLS records, not WS-MAN calls).
    tunnel_messages: u32,
}

/// What the relay noticed in AMT's answers, for the summary and the exit code.
#[derive(Default)]
struct Seen {
    /// AMT's refusals, named (`Class.Method returned NAME (n)`).
    amt_failures: Vec<String>,
    /// The chain RPS sent with AddNextCertInChain, leaf first.
    sent_chain: Vec<Vec<u8>>,
    /// The user whose Digest credentials AMT refused (a 401 to an authenticated request).
    rejected_user: Option<String>,
}

fn mode_word(m: ControlMode) -> &'static str {
    match m {
        ControlMode::None => "none",
        ControlMode::Ccm => "CCM",
        ControlMode::Acm => "ACM",
        ControlMode::Unknown(_) => "unknown",
    }
}

fn finish(
    req: &Request,
    r: SessionResult,
    after: ControlMode,
    json_out: bool,
) -> Result<ExitCode, AgentError> {
    let (ok, o) = match &r.outcome {
        Ok(o) => (true, o),
        Err(o) => (false, o),
    };
    // RPS's word against the firmware's: the firmware wins.
    let mismatch = match (ok, req, o.mode()) {
        (true, Request::Activate { .. }, Some(m)) if !m.eq_ignore_ascii_case(mode_word(after)) => {
            Some(format!(
                "RPS reports {m}, but the firmware reports {}",
                after.text()
            ))
        }
        (true, Request::Activate { .. }, _) if after == ControlMode::None => {
            Some("RPS reports success, but the firmware is still in pre-provisioning".into())
        }
        (true, Request::Deactivate { .. }, _) if after != ControlMode::None => Some(format!(
            "RPS reports the device deactivated, but the firmware reports {}",
            after.text()
        )),
        _ => None,
    };
    // RPS's `success` also covers an activation whose configuration partly failed: a component
    // it reports as `Failure` fails the run (with that component's code), as it should have.
    let failed = if ok { failed_components(o) } else { Vec::new() };
    let success = ok && mismatch.is_none() && failed.is_empty();
    if json_out {
        let components: serde_json::Map<String, Value> = o
            .components
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    json!({"result": c.result, "mode": c.mode, "details": c.details}),
                )
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "status": if success { "success" } else { "failed" },
                "mode": mode_word(after),
                "controlMode": after.text(),
                "rpsStatus": o.status,
                "components": components,
                "message": o.raw,
                "failedComponents": failed.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
                "amtErrors": r.seen.amt_failures,
                "exchanges": r.exchanges,
                "tunnelMessages": r.tunnel_messages,
            }))
            .unwrap_or_default()
        );
    } else {
        println!("Status: {}", o.status);
        let width = o.components.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in o.components.iter().filter(|c| c.result != "NotApplicable") {
            let mut line = format!("  {:width$}  {}", c.name, c.result);
            if let Some(d) = &c.details {
                line.push_str(&format!(": {d}"));
            }
            if let Some(m) = &c.mode {
                line.push_str(&format!(" [{m}]"));
            }
            println!("{line}");
        }
        println!("Control mode (firmware): {}", after.text());
    }
    if success {
        return Ok(ExitCode::Success);
    }
    let code = if let Some(first) = failed.first().filter(|_| mismatch.is_none()) {
        component_code(&first.name)
    } else if ok {
        failure_code(req)
    } else if r.seen.rejected_user.is_some() && o.structured {
        // RPS's "Unable to authenticate with AMT": the password RPS used is not AMT's.
        ExitCode::AmtAuthenticationFailed
    } else {
        error_code(req, o)
    };
    let what = match (&mismatch, failed.is_empty()) {
        (Some(m), _) => m.clone(),
        (None, false) => format!(
            "RPS reports success ({}), but {} of its configuration failed: {}",
            o.status.trim_end_matches('.'),
            if failed.len() == 1 { "a part" } else { "parts" },
            failed
                .iter()
                .map(|c| match &c.details {
                    Some(d) => format!("{} ({d})", c.name),
                    None => c.name.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (None, true) => format!("RPS: {}", o.status),
    };
    let mut e = fail(code, what);
    for f in &r.seen.amt_failures {
        e = e.cause(format!("AMT: {f}"));
    }
    if let Some(user) = &r.seen.rejected_user {
        e = e.cause(format!(
            "AMT: the Digest credentials of user {user:?} were refused (HTTP 401)"
        ));
    }
    e = match code {
        ExitCode::MissingOrIncorrectProfile => {
            e.help("check the profile name in RPS (names are case-sensitive)")
        }
        ExitCode::MissingOrIncorrectPassword => {
            e.help("give the AMT password RPS stored for this device, or -f to skip RPS's check")
        }
        ExitCode::AmtAuthenticationFailed => e.help(
            "the AMT password given (AMT_PASSWORD, --password-file) is not this device's admin password; use the one set at activation",
        ),
        ExitCode::MissingDnsSuffix => {
            e.help("give the domain RPS has a provisioning certificate for: -d amt.example.com")
        }
        _ if !failed.is_empty() => e.help(format!(
            "the device is activated ({}); fix {}, then run the same activate again (RPS configures an activated device anew){}",
            after.text(),
            if r.seen.amt_failures.is_empty() {
                "what RPS names"
            } else {
                "what AMT refused (the causes above)"
            },
            if failed.iter().any(|c| c.name.starts_with("CIRA")) {
                ", or configure CIRA locally: amt-agent configure cira --help"
            } else {
                ""
            }
        )),
        _ => e.help("see RPS's message above; -vv shows every relayed exchange"),
    };
    // The summary was printed already; the error line says why the exit status is not 0.
    Err(e)
}

/// The websocket side.
/// What the certificate rules need to diagnose a chain RPS sends: the firmware's hashes, version
/// and the domains it trusts (AMTHI, then WS-MAN with the payload's credentials, before the relay
/// starts). `-d` is RPS's fqdn here, never a stand-in for the firmware's domain, nor is the OS's.
fn relay_machine(
    device: &Arc<dyn MeiDevice>,
    conn: &AmtConnArgs,
    payload: &Payload,
    mode: ControlMode,
    ov: &Overrides,
) -> crate::provisioning::Machine {
    let mut machine = match crate::provisioning::read_machine(device.clone()) {
        Ok(m) => m,
        Err(e) => {
            tracing::info!("the certificate rules will lack this machine's facts: {e}");
            return crate::provisioning::Machine::default();
        }
    };
    machine.os_dns_suffix = None;
    let admin = (mode != ControlMode::None).then_some(&payload.password);
    let wsman = super::cert::read_wsman_domains(device.clone(), conn, admin);
    if let Err(e) = &wsman {
        tracing::info!("AMT's DHCP and trusted DNS suffixes could not be read: {e}");
    }
    if let Some(d) = machine.domains.as_mut() {
        d.wsman = wsman;
    }
    if let (Some(d), crate::provisioning::TrustedDomain::Suffix { suffix, source, .. }) =
        (&ov.dns_suffix, machine.trusted_domain())
    {
        if !crate::provisioning::rules::cn_matches_suffix(d, &suffix) {
            tracing::warn!(
                "-d {d} picks RPS's domain, but AMT trusts {suffix}, {}: an ACM profile's certificate must be for a name in {suffix}, or AdminSetup answers AUTH_FAILED",
                source.text()
            );
        }
    }
    machine
}

struct Driver {
    rps: RpsArgs,
    url: url::Url,
    client: WsmanClient,
    route: Route,
    identity: Identity,
    tls_enforced: bool,
    /// What the certificate rules need to know about this machine (read over AMTHI up front), for
    /// diagnosing a chain that AMT refuses.
    machine: crate::provisioning::Machine,
}

/// Runs the certificate rules on the chain RPS sent, and prints which certificate broke which
/// rule and the fix (the firmware only says CERT_VERIFY_FAILED or AUTH_FAILED): the rules that
/// predict `answer` first, the domain leading for AdminSetup's; never a rule about the private
/// key, which RPS holds.
fn diagnose_sent_chain(
    chain: &[Vec<u8>],
    machine: &crate::provisioning::Machine,
    answer: Option<crate::provisioning::rules::FirmwareAnswer>,
) {
    use crate::provisioning::load::{order, CertFacts, ProvisioningCert};
    use crate::provisioning::rules::{self, Input, Outcome};
    let facts: Vec<CertFacts> = chain
        .iter()
        .filter_map(|d| CertFacts::from_der(d).ok())
        .collect();
    if facts.is_empty() {
        return;
    }
    let (ordered, unrelated) = order(facts, None);
    let cert = ProvisioningCert {
        chain: ordered,
        unrelated,
        key: None,
        key_held_by: Some("RPS"),
        format: "the chain RPS sent",
    };
    let findings = rules::run(&Input {
        cert: &cert,
        machine,
        now: crate::provisioning::now(),
    });
    let mut errors: Vec<_> = answer
        .map(|a| rules::explain(&findings, a, None))
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f.outcome == Outcome::Error)
        .collect();
    // Then any other broken rule: the firmware's checks are not all published.
    for f in findings.iter().filter(|f| f.outcome == Outcome::Error) {
        if !errors.iter().any(|e| std::ptr::eq(*e, f)) {
            errors.push(f);
        }
    }
    let auth = answer.is_some_and(|a| a.method() == Some("AdminSetup"));
    let unchecked = findings
        .iter()
        .find(|f| f.rule.id == rules::DOMAIN_RULE && f.outcome == Outcome::NotApplicable);
    if errors.is_empty() {
        step("The certificate rules find nothing wrong with the chain RPS sent (the firmware's reason is one the rules do not know)");
    } else {
        step("Why AMT refused the provisioning certificate RPS sent:");
        for f in errors {
            eprintln!("{}", f.render());
        }
    }
    if let (true, Some(f)) = (auth, unchecked) {
        step(&format!(
            "The leaf's domain could not be checked: {}; AUTH_FAILED also comes from a CN outside the domain AMT trusts",
            f.detail
        ));
    }
}

/// The refusal as the rules name firmware answers: AddNextCertInChain's own map, AdminSetup's
/// (UpgradeClientToAdmin shares it, provisioning.md §1.2).
fn firmware_answer(
    f: &crate::rps::AmtFailure,
) -> Option<crate::provisioning::rules::FirmwareAnswer> {
    use crate::provisioning::rules::FirmwareAnswer;
    use crate::wsman::returns::{AddNextCertInChainReturn, AdminSetupReturn};
    let crate::rps::AmtFailureKind::ReturnValue { value, .. } = &f.what else {
        return None;
    };
    match f.method.as_str() {
        "AddNextCertInChain" => Some(FirmwareAnswer::AddNextCertInChain(
            AddNextCertInChainReturn::from_u32(*value),
        )),
        "AdminSetup" | "UpgradeClientToAdmin" => Some(FirmwareAnswer::AdminSetup(
            AdminSetupReturn::from_u32(*value),
        )),
        _ => None,
    }
}

type Ws = tokio_tungstenite::WebSocketStream<Box<dyn AmtStream>>;

/// `Class.Method` of a raw WS-MAN request, for messages.
fn call_name(request: &[u8]) -> String {
    crate::rps::request_call(request)
        .map(|(c, m)| format!("{c}.{m}"))
        .unwrap_or_else(|| "WS-MAN".into())
}

/// The TLS tunnel's connection to AMT: its id in the relay session, its write half and the task
/// reading the other half.
struct Tunnel {
    id: u64,
    wr: tokio::io::WriteHalf<Box<dyn AmtStream>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// What a tunnel connection's reader reports: its id, and bytes or `None` for the close.
type TunnelEvent = (u64, Option<Vec<u8>>);

impl Driver {
    async fn session(&self, first: String) -> Result<SessionResult, AgentError> {
        let mut ws = self.connect().await?;
        step(&format!("Connected to RPS at {}", redact_url(&self.url)));
        ws.send(Message::text(first)).await.map_err(ws_error)?;
        let mut relay = RelaySession::new(self.identity.clone(), self.tls_enforced);
        let mut seen = Seen::default();
        // The TLS tunnel's connection to AMT and its reader (rpc-go.md §3.7).
        let (tun_tx, mut tun_rx) = tokio::sync::mpsc::channel::<TunnelEvent>(16);
        let mut tunnel: Option<Tunnel> = None;
        let mut tunnel_port = crate::wsman::transport::AMT_PORT_HTTPS;
        let mut silence = self.rps.message_timeout;
        loop {
            let deadline = tokio::time::sleep(silence);
            tokio::pin!(deadline);
            let text = tokio::select! {
                m = ws.next() => match m {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Binary(_))) => {
                        return Err(fail(ExitCode::UnmarshalMessageFailed, "RPS sent a binary frame; this protocol uses text frames only")
                            .help("check that the URL is RPS's websocket (…/activate) and RPS's version"));
                    }
                    Some(Ok(Message::Close(f))) => {
                        let why = f.map(|f| format!(" ({} {})", f.code, f.reason)).unwrap_or_default();
                        return Err(closed_early(&why, &relay.relayed()));
                    }
                    None => return Err(closed_early("", &relay.relayed())),
                    Some(Ok(_)) => continue,
                    Some(Err(tungstenite::Error::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake)))
                    | Some(Err(tungstenite::Error::ConnectionClosed)) => {
                        return Err(closed_early(" (reset without a closing handshake)", &relay.relayed()));
                    }
                    Some(Err(tungstenite::Error::Capacity(c))) => {
                        return Err(fail(ExitCode::UnmarshalMessageFailed, format!(
                            "RPS sent a message larger than the agent takes (4 MiB; RPS's own requests are far smaller): {c}"))
                            .help("check what sits at this URL; RPS's WS-MAN requests are a few KiB"));
                    }
                    Some(Err(e)) => return Err(ws_error(e)),
                },
                Some((id, chunk)) = tun_rx.recv() => {
                    let frame = match chunk {
                        Some(bytes) => relay.tunnel_data(id, &bytes).map_err(session_error)?,
                        None => {
                            if tunnel.as_ref().is_some_and(|t| t.id == id) {
                                tunnel = None;
                            }
                            let reset = relay.tunnel_closed(id);
                            if reset.is_some() {
                                tracing::info!("AMT closed the TLS tunnel's connection without answering: connection_reset");
                            } else {
                                tracing::debug!(connection = id, "AMT closed a TLS tunnel connection after its answer (or a replaced one)");
                            }
                            reset
                        }
                    };
                    if let Some(frame) = frame {
                        ws.send(Message::text(frame)).await.map_err(ws_error)?;
                    }
                    continue;
                }
                _ = &mut deadline => {
                    return Err(fail(ExitCode::GenericFailure, format!(
                        "RPS sent nothing for {} (after {})", humantime(silence), relay.relayed()))
                        .help("RPS may have stalled; raise --message-timeout if it is just slow"));
                }
            };
            silence = self.rps.message_timeout;
            match relay.handle_text(&text).map_err(session_error)? {
                Action::ToAmt(request) => {
                    // The round trip RPS waits for comes first; naming the call and reading AMT's
                    // answer for failures happens after the answer is on its way (make bench).
                    let raw = self.client.post_raw(&request).await.map_err(|e| {
                        let help = e.help();
                        fail(
                            ExitCode::AmtConnectionFailed,
                            format!("relaying {} to AMT failed: {e}", call_name(&request)),
                        )
                        .help(help)
                    })?;
                    let frame = relay.amt_answer(&raw).map_err(|e| match e {
                        SessionError::TooLarge { size } => fail(ExitCode::WsmanMessageError, format!(
                            "AMT's answer to {} ({} bytes) would make a {size}-byte message, over RPS's 100 KiB (102400-byte) limit; RPS would drop the connection, so the operation stops here",
                            call_name(&request), raw.len())).help("this AMT holds more data than RPS can take in one message (e.g. many certificates); remove what is not needed and retry"),
                        other => session_error(other),
                    })?;
                    ws.send(Message::text(frame)).await.map_err(ws_error)?;
                    self.observe(&request, &raw, relay.exchanges(), &mut seen);
                }
                Action::TunnelToAmt { bytes, new_session } => {
                    if new_session || tunnel.is_none() {
                        // The old connection (and its reader) goes; its late events carry an id
                        // the relay no longer knows.
                        tunnel = None;
                        match self.route.connect(tunnel_port).await {
                            Ok(s) => {
                                let id = relay.tunnel_opened();
                                tracing::debug!(
                                    connection = id,
                                    port = tunnel_port,
                                    "TLS tunnel: new connection to AMT"
                                );
                                let (mut rd, wr) = tokio::io::split(s);
                                let tx = tun_tx.clone();
                                let reader = tokio::spawn(async move {
                                    let mut buf = vec![0u8; 16 * 1024];
                                    loop {
                                        match rd.read(&mut buf).await {
                                            Ok(0) | Err(_) => {
                                                let _ = tx.send((id, None)).await;
                                                return;
                                            }
                                            Ok(n) => {
                                                if tx
                                                    .send((id, Some(buf[..n].to_vec())))
                                                    .await
                                                    .is_err()
                                                {
                                                    return;
                                                }
                                            }
                                        }
                                    }
                                });
                                tunnel = Some(Tunnel { id, wr, reader });
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, port = tunnel_port, "cannot open the TLS tunnel to AMT");
                                ws.send(Message::text(relay.tunnel_open_failed()))
                                    .await
                                    .map_err(ws_error)?;
                                continue;
                            }
                        }
                    }
                    if let Some(t) = tunnel.as_mut() {
                        relay.tunnel_wrote(t.id);
                        if t.wr.write_all(&bytes).await.is_err() {
                            let id = t.id;
                            tunnel = None;
                            if let Some(frame) = relay.tunnel_closed(id) {
                                ws.send(Message::text(frame)).await.map_err(ws_error)?;
                            }
                        }
                    }
                }
                Action::Discard { bytes } => tracing::debug!(
                    bytes,
                    "TLS tunnel: RPS's bytes for a session whose connection AMT closed; dropped"
                ),
                Action::ToRps(frame) => ws.send(Message::text(frame)).await.map_err(ws_error)?,
                Action::Progress(p) => step(&format!("RPS: {p}")),
                Action::PortSwitch { port, delay_s } => {
                    let delay = Duration::from_secs(delay_s.min(120));
                    step(&format!(
                        "RPS switches AMT to port {port}; waiting {} s",
                        delay.as_secs()
                    ));
                    tunnel = None;
                    relay.tunnel_dropped();
                    tokio::time::sleep(delay).await;
                    tunnel_port = port;
                    ws.send(Message::text(relay.port_switched()))
                        .await
                        .map_err(ws_error)?;
                    silence = self.rps.message_timeout + delay;
                }
                Action::Done(outcome) => {
                    // RPS does not close the socket after its final message (§1.1): we do.
                    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                    drop(tunnel.take());
                    return Ok(SessionResult {
                        outcome,
                        seen,
                        exchanges: relay.exchanges(),
                        tunnel_messages: relay.tunnel_messages(),
                    });
                }
            }
            // After Setup/AdminSetup RPS is silent for 12 s: the silence limit covers it (≥ 30 s).
        }
    }

    /// What the user sees of one relayed exchange: the call, its status, and AMT's refusal if
    /// any, named by method and code; a refused provisioning chain gets the certificate doctor.
    fn observe(&self, request: &[u8], raw: &[u8], exchange: u32, seen: &mut Seen) {
        let called = crate::rps::request_call(request);
        let call = called
            .as_ref()
            .map(|(c, m)| format!("{c}.{m}"))
            .unwrap_or_else(|| "WS-MAN".into());
        let method = called.map(|(_, m)| m).unwrap_or_default();
        if method == "AddNextCertInChain" {
            if let Some((der, leaf)) = crate::rps::sent_certificate(request) {
                if leaf {
                    seen.sent_chain.clear();
                }
                seen.sent_chain.push(der);
            }
        }
        let status = status_line(raw);
        if let Some(user) = crate::rps::rejected_credentials(request, raw) {
            // RPS retries with a fresh challenge; if the run fails, this is why.
            tracing::info!(
                "[{exchange}] {call}: AMT refused the Digest credentials of user {user:?}"
            );
            seen.rejected_user = Some(user);
        }
        match crate::rps::amt_failure(request, raw) {
            // Firmware answers deletes of absent instances with a fault; RPS clears what may be
            // there and tolerates it (rps-protocol.md §9 item 12).
            // (An absent remote access policy rule answers DestinationUnreachable.)
            Some(f)
                if f.method == "Delete"
                    && matches!(&f.what, crate::rps::AmtFailureKind::Fault(s) if s.contains("InvalidSelectors")
                        || (f.class == "AMT_RemoteAccessPolicyRule" && s.contains("DestinationUnreachable"))) =>
            {
                tracing::info!("[{exchange}] {call}: {status} (nothing to delete)");
            }
            Some(f) => {
                step(&format!("[{exchange}] {call}: {status}; AMT: {f}"));
                seen.amt_failures.push(f.to_string());
                if matches!(
                    method.as_str(),
                    "AddNextCertInChain" | "AdminSetup" | "UpgradeClientToAdmin"
                ) {
                    diagnose_sent_chain(&seen.sent_chain, &self.machine, firmware_answer(&f));
                }
            }
            None => tracing::info!("[{exchange}] {call}: {status}"),
        }
    }

    async fn connect(&self) -> Result<Ws, AgentError> {
        let host = self.url.host_str().unwrap_or_default().to_string();
        let port = self.url.port_or_known_default().unwrap_or(80);
        let secure = self.url.scheme() == "wss";
        let proxy = match &self.rps.proxy {
            Some(p) => Some(p.clone()),
            None => env_proxy(secure, &host),
        };
        let tcp = match &proxy {
            Some(p) => connect_via_proxy(p, &host, port).await?,
            None => tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| {
                    fail(
                        ExitCode::MissingOrIncorrectUrl,
                        format!("cannot connect to RPS at {host}:{port}: {e}"),
                    )
                    .help("check the URL, that RPS runs, and any proxy (-p URL, HTTPS_PROXY)")
                })?,
        };
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn AmtStream> = if secure {
            let config = self.tls_config()?;
            let name = rustls_pki_types::ServerName::try_from(host.clone()).map_err(|e| {
                fail(
                    ExitCode::MissingOrIncorrectUrl,
                    format!("'{host}' is not a TLS server name: {e}"),
                )
            })?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| {
                    let cert = e
                        .get_ref()
                        .and_then(|i| i.downcast_ref::<rustls::Error>())
                        .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
                    if cert {
                        fail(ExitCode::ServerCertificateVerificationFailed, format!("RPS's TLS certificate was not accepted: {e}"))
                            .help("trust RPS's CA with --ca-file PEM (or, for a lab only, -n to skip the check)")
                    } else {
                        fail(ExitCode::GenericFailure, format!("TLS to RPS failed: {e}"))
                    }
                })?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let mut request =
            tungstenite::client::IntoClientRequest::into_client_request(self.url.as_str())
                .map_err(|e| fail(ExitCode::MissingOrIncorrectUrl, format!("bad RPS URL: {e}")))?;
        let token = crate::secret_source::SecretSource {
            what: "RPS token",
            flag: self.rps.token.as_ref().map(|t| t.expose()),
            file: self.rps.token_file.as_deref(),
            env: &["AMT_AGENT_TOKEN", "AUTH_TOKEN"],
        }
        .resolve(false)?;
        if let Some(t) = &token {
            let mut v: tungstenite::http::HeaderValue =
                format!("Bearer {}", t.expose()).parse().map_err(|_| {
                    fail(
                        ExitCode::InvalidParameterCombination,
                        "the token has characters a header cannot carry",
                    )
                })?;
            v.set_sensitive(true);
            request.headers_mut().insert("Authorization", v);
        }
        let mut cfg = tungstenite::protocol::WebSocketConfig::default();
        cfg.max_message_size = Some(4 << 20);
        cfg.max_frame_size = Some(4 << 20);
        let (ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(cfg))
            .await
            .map_err(|e| match &e {
                tungstenite::Error::Http(r) if r.status() == 401 || r.status() == 403 => fail(
                    ExitCode::RpsAuthenticationFailed,
                    format!(
                        "RPS (or its gateway) refused the connection: HTTP {}",
                        r.status()
                    ),
                )
                .help("pass a valid JWT with --token"),
                _ => fail(
                    ExitCode::MissingOrIncorrectUrl,
                    format!("the websocket handshake with RPS failed: {e}"),
                ),
            })?;
        Ok(ws)
    }

    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, AgentError> {
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(crate::tls::provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| fail(ExitCode::GenericFailure, format!("TLS set-up: {e}")))?;
        if self.rps.skip_cert_check {
            tracing::warn!("-n/--skip-cert-check: RPS's certificate is NOT verified; anyone on the network path can impersonate RPS and read the AMT password");
            step("WARNING: not verifying RPS's TLS certificate (-n): the AMT password is exposed to anyone who can intercept this connection");
            return Ok(Arc::new(
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(NoVerify(crate::tls::provider())))
                    .with_no_client_auth(),
            ));
        }
        let mut roots = rustls::RootCertStore::empty();
        use rustls_pki_types::pem::PemObject;
        // The system's trust store, as every other program on the machine sees it: the
        // distribution's bundle (or SSL_CERT_FILE / SSL_CERT_DIR) on Linux, the certificate store
        // (LocalMachine and CurrentUser Root) on Windows, where enterprises deploy their CAs by GPO.
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!(error = %e, "a part of the system trust store could not be read");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(
            added,
            ignored,
            "system trust store loaded for RPS's certificate"
        );
        if let Some(f) = &self.rps.ca_file {
            let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(f)
                .map_err(|e| {
                    fail(
                        ExitCode::FailedReadingConfiguration,
                        format!("--ca-file {}: {e}", f.display()),
                    )
                })?
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    fail(
                        ExitCode::FailedReadingConfiguration,
                        format!("--ca-file {}: {e}", f.display()),
                    )
                })?;
            if certs.is_empty() {
                return Err(fail(
                    ExitCode::FailedReadingConfiguration,
                    format!("--ca-file {}: no PEM certificate in it", f.display()),
                ));
            }
            for c in certs {
                roots.add(c).map_err(|e| {
                    fail(
                        ExitCode::FailedReadingConfiguration,
                        format!("--ca-file {}: {e}", f.display()),
                    )
                })?;
            }
        }
        Ok(Arc::new(
            builder.with_root_certificates(roots).with_no_client_auth(),
        ))
    }
}

fn status_line(raw: &[u8]) -> String {
    let end = raw
        .iter()
        .position(|&b| b == b'\r')
        .unwrap_or(raw.len().min(64));
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

fn redact_url(u: &url::Url) -> String {
    let mut u = u.clone();
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}

/// `relayed`: what went through before, as [`RelaySession::relayed`] says it.
fn closed_early(why: &str, relayed: &str) -> AgentError {
    fail(
        ExitCode::GenericFailure,
        format!("RPS closed the connection before its final message{why}, after {relayed}"),
    )
    .help("check RPS's logs for this device; the state line says what the firmware reports now")
}

/// A failed websocket write or read: a connection RPS dropped reads as such.
fn ws_error(e: tungstenite::Error) -> AgentError {
    use std::io::ErrorKind as K;
    let dropped = match &e {
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => true,
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => true,
        tungstenite::Error::Io(io) => matches!(
            io.kind(),
            K::ConnectionReset | K::BrokenPipe | K::ConnectionAborted | K::UnexpectedEof
        ),
        _ => false,
    };
    if dropped {
        return fail(
            ExitCode::GenericFailure,
            format!("RPS closed the connection before its final message ({e})"),
        )
        .help(
            "check RPS's logs for this device; the state line says what the firmware reports now",
        );
    }
    fail(ExitCode::GenericFailure, format!("websocket: {e}"))
}

fn session_error(e: SessionError) -> AgentError {
    match e {
        SessionError::Message(_) => fail(ExitCode::UnmarshalMessageFailed, e.to_string())
            .help("RPS (or something between it and this machine) sent a broken message; check RPS's version and logs, and any proxy"),
        _ => fail(ExitCode::GenericFailure, e.to_string()),
    }
}

/// The proxy from the environment for `host`, unless NO_PROXY exempts it.
fn env_proxy(secure: bool, host: &str) -> Option<String> {
    let get = |k: &str| {
        std::env::var(k)
            .ok()
            .or_else(|| std::env::var(k.to_ascii_lowercase()).ok())
            .filter(|v| !v.is_empty())
    };
    let p = if secure {
        get("HTTPS_PROXY").or_else(|| get("ALL_PROXY"))
    } else {
        get("HTTP_PROXY").or_else(|| get("ALL_PROXY"))
    }?;
    if let Some(np) = get("NO_PROXY") {
        if no_proxy_matches(&np, host) {
            return None;
        }
    }
    Some(p)
}

/// NO_PROXY: `*`, exact hosts, and domain suffixes (`.example.com` or `example.com`).
pub fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|e| {
            let e = e.to_ascii_lowercase();
            let e = e.split(':').next().unwrap_or("").to_string();
            e == "*"
                || host == e.trim_start_matches('.')
                || host.ends_with(&format!(".{}", e.trim_start_matches('.')))
        })
}

async fn connect_via_proxy(
    proxy: &str,
    host: &str,
    port: u16,
) -> Result<tokio::net::TcpStream, AgentError> {
    let with_scheme = if proxy.contains("://") {
        proxy.to_string()
    } else {
        format!("http://{proxy}")
    };
    let p = url::Url::parse(&with_scheme).map_err(|e| {
        fail(
            ExitCode::MissingProxyAddressAndPort,
            // A proxy URL may carry user:password; never echo it.
            format!(
                "the proxy address '{}' is not a URL: {e}",
                if proxy.contains('@') {
                    "<redacted>"
                } else {
                    proxy
                }
            ),
        )
    })?;
    let phost = p.host_str().unwrap_or_default().to_string();
    let pport = p.port_or_known_default().unwrap_or(80);
    let mut s = tokio::net::TcpStream::connect((phost.as_str(), pport))
        .await
        .map_err(|e| {
            fail(
                ExitCode::MissingProxyAddressAndPort,
                format!("cannot connect to the proxy {phost}:{pport}: {e}"),
            )
        })?;
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if !p.username().is_empty() {
        use base64::Engine;
        let cred = format!("{}:{}", p.username(), p.password().unwrap_or(""));
        req.push_str(&format!(
            "Proxy-Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(cred)
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.map_err(|e| {
        fail(
            ExitCode::MissingProxyAddressAndPort,
            format!("proxy {phost}:{pport}: {e}"),
        )
    })?;
    // Read the proxy's answer byte by byte up to the blank line, so no tunnel byte is consumed.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192
            || s.read(&mut b)
                .await
                .map_err(|e| fail(ExitCode::MissingProxyAddressAndPort, format!("proxy: {e}")))?
                == 0
        {
            return Err(fail(
                ExitCode::MissingProxyAddressAndPort,
                "the proxy closed the connection during CONNECT",
            ));
        }
        head.push(b[0]);
    }
    let line = status_line(&head);
    if line.split_whitespace().nth(1) != Some("200") {
        return Err(fail(
            ExitCode::MissingProxyAddressAndPort,
            format!("the proxy refused CONNECT {target}: {line}"),
        ));
    }
    Ok(s)
}

/// `-n`: accepts any certificate (the signature checks still run, so the handshake is sound).
#[derive(Debug)]
struct NoVerify(rustls::crypto::CryptoProvider);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls_pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls_pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_components_come_in_rpss_order_with_their_codes() {
        // Re-activation order (trace 02): WiredNetwork first, Activation last.
        let o = Outcome::parse(
            r#"{"Status":"already enabled in client mode.","Components":{"WiredNetwork":{"Result":"Success"},"TLS":{"Result":"NotApplicable"},"CIRAConnection":{"Result":"Failure","Details":"Failed to add mps"},"WirelessNetwork":{"Result":"Failure","Details":"Failed to add home"},"Activation":{"Result":"Success","Mode":"CCM"}}}"#,
        );
        let f = failed_components(&o);
        let names: Vec<&str> = f.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["WirelessNetwork", "CIRAConnection"]);
        assert_eq!(component_code(names[0]), ExitCode::WifiConfigurationFailed);
        assert_eq!(
            component_code("CIRAConnection"),
            ExitCode::CiraConfigurationFailed
        );
        assert_eq!(
            component_code("CIRAProxy"),
            ExitCode::CiraConfigurationFailed
        );
        assert_eq!(component_code("TLS"), ExitCode::TlsConfigurationFailed);
        assert_eq!(
            component_code("WiredNetwork"),
            ExitCode::NetworkConfigurationFailed
        );
        assert_eq!(
            component_code("AMTFeatures"),
            ExitCode::AmtFeaturesConfigurationFailed
        );
        assert_eq!(component_code("Something"), ExitCode::GenericFailure);
        // Nothing failed: nothing to report.
        let ok = Outcome::parse(
            r#"{"Status":"Client control mode.","Components":{"Activation":{"Result":"Success"},"CIRAConnection":{"Result":"NotApplicable"}}}"#,
        );
        assert!(failed_components(&ok).is_empty());
    }

    #[test]
    fn no_proxy_lists_match_hosts_and_suffixes() {
        assert!(no_proxy_matches(
            "localhost,.example.com",
            "rps.example.com"
        ));
        assert!(no_proxy_matches("example.com", "example.com"));
        assert!(no_proxy_matches("*", "anything"));
        assert!(no_proxy_matches("127.0.0.1:8080", "127.0.0.1"));
        assert!(!no_proxy_matches("example.com", "badexample.com"));
        assert!(!no_proxy_matches("", "x"));
    }

    #[test]
    fn rps_errors_map_to_rpc_go_codes() {
        let act = Request::Activate {
            profile: "p".into(),
        };
        let plain = Outcome::parse(
            "Device u activation failed. x does not match list of available AMT profiles.",
        );
        assert_eq!(
            error_code(&act, &plain),
            ExitCode::MissingOrIncorrectProfile
        );
        let flow = Outcome::parse(r#"{"Status":"Unable to authenticate with AMT"}"#);
        assert_eq!(error_code(&act, &flow), ExitCode::ActivationFailed);
        let early = Outcome::parse("Device u already enabled in admin control mode.");
        assert_eq!(error_code(&act, &early), ExitCode::UnableToActivate);
        let m = Request::Maintenance {
            task: MaintenanceKind::SyncIp,
            force: false,
            new_password: None,
        };
        let f = Outcome::parse(
            r#"{"Status":"syncip failed at PUT_ETHERNET_PORT_SETTINGS IPAddress already synchronized"}"#,
        );
        assert_eq!(error_code(&m, &f), ExitCode::SyncIpFailed);
    }
}
