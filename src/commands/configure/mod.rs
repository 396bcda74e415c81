//! `configure <sub>`: local configuration after activation (rpc-go.md §1.1–1.3), every
//! subcommand in one shape, **read → plan → apply → re-read**:
//!
//! 1. [`Needs`]: the control mode the subcommand needs is checked over AMTHI before anything else
//!    (no password asked, nothing sent): 115 DeviceNotActivated, 118 for MEBx outside ACM, ….
//!    [`Configure::precheck`] refuses what the control mode alone forbids, still before any
//!    request (user consent below "all" in CCM).
//! 2. [`Configure::read`] reads the current state (WS-MAN reads, AMTHI/watchdog reads).
//! 3. [`Configure::plan`] is pure: from the state and the desired values it computes a [`Plan`],
//!    the settings that differ ([`Change`]: setting, current value, desired value, and the
//!    [`Step`]s — typed WS-MAN calls or ME writes — that make it so), or refuses what the firmware
//!    would refuse, with rpc-go's exit code and a `help:`.
//! 4. An empty plan prints "nothing to change" and sends no write. `--dry-run` prints the plan
//!    with every call (secrets as `***`) and sends no write.
//! 5. Otherwise the steps run in order; a firmware refusal stops the run with the subcommand's
//!    exit code ([`Configure::failure`]) and says which settings were already applied.
//! 6. [`Configure::after_apply`] (e.g. the session switches to the new password), then the state
//!    is read again and planned again: a change the firmware did not keep is an error (120).
//!
//! One result object is printed per command with `--json` ([`Outcome::to_json`]). Issue 14's
//! `plan`/`apply` of a whole profile reuses the same pieces per setting: [`Plan`] is data, and
//! nothing here prints while it talks to AMT.

pub mod cira;
pub mod clock;
pub mod features;
pub mod hostname;
pub mod ieee8021x;
pub mod mebx;
pub mod opstate;
pub mod password;
pub mod proxy;
pub mod tls;
pub mod wifisync;
pub mod wired;
pub mod wireless;

use std::sync::Arc;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::session::{self, AmtConnArgs, AmtSession};
use crate::amthi::{AmthiClient, ControlMode};
use crate::error::{AgentError, ExitCode};
use crate::heci::MeiDevice;
use crate::wsman::calls::{self, Call, Instance};
use crate::wsman::client::Credentials;

#[derive(Args, Debug)]
pub struct ConfigureArgs {
    #[command(subcommand)]
    pub sub: ConfigureSub,
    /// Read the current state and print the changes and WS-MAN calls that would be made
    /// (secrets as ***), without sending any write.
    #[arg(long, global = true)]
    pub dry_run: bool,
    #[command(flatten)]
    pub conn: AmtConnArgs,
}

/// The subcommands, under rpc-go v3's names with v3's and v2's aliases (rpc-go.md §1.2).
#[derive(Subcommand, Debug)]
pub enum ConfigureSub {
    /// KVM, SOL and IDER on or off, and user consent (none, kvm, all); as rpc-go, a feature not
    /// named is turned off.
    #[command(name = "amt-features", visible_aliases = ["amtfeatures", "setamtfeatures"])]
    AmtFeatures(features::FeaturesArgs),
    /// Change the AMT admin password (AMT_AuthorizationService.SetAdminAclEntryEx).
    #[command(name = "amt-password", visible_aliases = ["amtpassword", "changeamtpassword"])]
    AmtPassword(password::PasswordArgs),
    /// Set the MEBx password (admin control mode only).
    #[command(name = "mebx", visible_alias = "setmebx")]
    Mebx(mebx::MebxArgs),
    /// Enable AMT (SetAmtOperationalState; pre-provisioning only, ME 16.1+).
    #[command(name = "enable-amt", visible_aliases = ["enable-op-state", "enable-operational-state"])]
    EnableAmt,
    /// Disable AMT (SetAmtOperationalState; pre-provisioning only, ME 16.1+).
    #[command(name = "disable-amt", visible_aliases = ["disable-op-state", "disable-operational-state"])]
    DisableAmt,
    /// Set AMT's clock from this host's (GetLowAccuracyTimeSynch, SetHighAccuracyTimeSynch).
    #[command(name = "sync-clock", visible_aliases = ["syncclock", "synctime"])]
    SyncClock,
    /// Set AMT's host and domain name from the OS's.
    #[command(name = "hostname", visible_aliases = ["synchostname", "sethostname"])]
    Hostname(hostname::HostnameArgs),
    /// Add, list or delete AMT's HTTP proxy access points.
    #[command(name = "proxy", visible_alias = "httpproxy")]
    Proxy(proxy::ProxyArgs),
    /// Point AMT at an MPS for remote access (CIRA): MPS root certificate, server, user and
    /// password, the periodic and user-initiated policies, environment detection domains.
    #[command(name = "cira")]
    Cira(cira::CiraArgs),
    /// TLS on AMT's network and local interfaces, with a certificate for a key AMT generates;
    /// afterwards the agent talks to AMT on 16993 verifying exactly that certificate.
    #[command(name = "tls", visible_alias = "configuretls")]
    Tls(tls::TlsArgs),
    /// The wired port: DHCP, a static address or the host's (IP sync), and 802.1X (EAP-TLS,
    /// PEAP-MSCHAPv2).
    #[command(name = "wired", visible_aliases = ["ethernet", "addethernetsettings", "wiredsettings"])]
    Wired(Box<wired::WiredArgs>),
    /// Add or replace a Wi-Fi profile (WPA/WPA2/WPA3 PSK or 802.1X), or --purge them.
    #[command(name = "wireless", visible_alias = "addwifisettings")]
    Wireless(Box<wireless::WirelessArgs>),
    /// Wi-Fi profile sync with the host OS and UEFI, and AMT's Wi-Fi port on.
    #[command(name = "wi-fi-sync", visible_aliases = ["wifisync", "wifi"])]
    WifiSync(wifisync::WifiSyncArgs),
    /// rpc-go v2's enablewifiport: OS and UEFI profile sync on, AMT's Wi-Fi port on.
    #[command(name = "enablewifiport")]
    EnableWifiPort,
}

pub fn run(
    device: Arc<dyn MeiDevice>,
    args: &ConfigureArgs,
    json_out: bool,
) -> Result<ExitCode, AgentError> {
    let opts = RunOptions {
        dry_run: args.dry_run,
    };
    let outcome = match &args.sub {
        ConfigureSub::AmtFeatures(a) => {
            execute(device, &args.conn, features::Features::new(a)?, &opts)
        }
        ConfigureSub::AmtPassword(a) => {
            execute(device, &args.conn, password::Password::new(a), &opts)
        }
        ConfigureSub::Mebx(a) => execute(device, &args.conn, mebx::Mebx::new(a), &opts),
        ConfigureSub::EnableAmt => execute(
            device,
            &args.conn,
            opstate::OperationalState::new(true),
            &opts,
        ),
        ConfigureSub::DisableAmt => execute(
            device,
            &args.conn,
            opstate::OperationalState::new(false),
            &opts,
        ),
        ConfigureSub::SyncClock => execute(device, &args.conn, clock::SyncClock, &opts),
        ConfigureSub::Hostname(a) => {
            execute(device, &args.conn, hostname::Hostname::new(a)?, &opts)
        }
        ConfigureSub::Proxy(a) => execute(device, &args.conn, proxy::Proxy::new(a)?, &opts),
        ConfigureSub::Cira(a) => execute(device, &args.conn, cira::Cira::new(a)?, &opts),
        ConfigureSub::Tls(a) => execute(device, &args.conn, tls::Tls::new(a, &args.conn)?, &opts),
        ConfigureSub::Wired(a) => execute(device, &args.conn, wired::Wired::new(a)?, &opts),
        ConfigureSub::Wireless(a) => {
            execute(device, &args.conn, wireless::Wireless::new(a)?, &opts)
        }
        ConfigureSub::WifiSync(a) => execute(device, &args.conn, wifisync::WifiSync::new(a), &opts),
        ConfigureSub::EnableWifiPort => execute(
            device,
            &args.conn,
            wifisync::WifiSync::enable_wifi_port(),
            &opts,
        ),
    }?;
    outcome.print(json_out);
    Ok(ExitCode::Success)
}

// ---------------------------------------------------------------------------------------------
// The plan
// ---------------------------------------------------------------------------------------------

/// One write. WS-MAN calls are held [`Call::checked`]: their answer is checked (fault,
/// ReturnValue) and their value dropped.
pub enum Step {
    Wsman(Call<()>),
    /// Watchdog-client SetAmtOperationalState (rpc-go.md §6.5): `true` enables AMT.
    SetAmtOperationalState(bool),
    /// A WS-MAN call that can only be built when its turn comes ([`Later`]).
    Later(Later),
}

/// A WS-MAN call built just before it is sent, from what earlier steps made (a handle AMT
/// assigned to a certificate it was just given), with its own exit code when AMT refuses it
/// (`wired`'s 802.1X steps exit 108, not the subcommand's 137).
pub struct Later {
    /// What `--dry-run` shows, secrets as `***`.
    pub describe: String,
    pub exit: Option<ExitCode>,
    #[allow(clippy::type_complexity)]
    pub build: Box<dyn Fn(&mut Target) -> Result<Call<()>, AgentError>>,
}

impl Later {
    /// A call known now that takes `exit` when AMT refuses it.
    pub fn call(call: Call<()>, exit: ExitCode) -> Step {
        Step::Later(Later {
            describe: call.describe(),
            exit: Some(exit),
            build: Box::new(move |_| Ok(call.clone())),
        })
    }
}

impl Step {
    /// One line, secrets as `***`.
    pub fn describe(&self) -> String {
        match self {
            Step::Wsman(c) => c.describe(),
            Step::SetAmtOperationalState(on) => {
                format!("WATCHDOG.SetAmtOperationalState({})", u8::from(*on))
            }
            Step::Later(l) => l.describe.clone(),
        }
    }
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A setting whose current value differs from the desired one, and the steps that change it.
#[derive(Debug)]
pub struct Change {
    /// What it is, in the user's words (`KVM`, `user consent`, `admin password`).
    pub setting: String,
    /// As the firmware reports it now (secrets are never shown: `***`, `unknown`).
    pub current: String,
    pub desired: String,
    /// In order; may be empty when a later change's steps carry this one too.
    pub steps: Vec<Step>,
    /// Re-reading can tell whether the firmware kept it (false for what AMT never reveals, such
    /// as the MEBx password).
    pub verifiable: bool,
}

impl Change {
    pub fn new(
        setting: impl Into<String>,
        current: impl Into<String>,
        desired: impl Into<String>,
        steps: Vec<Step>,
    ) -> Change {
        Change {
            setting: setting.into(),
            current: current.into(),
            desired: desired.into(),
            steps,
            verifiable: true,
        }
    }

    pub fn unverifiable(mut self) -> Change {
        self.verifiable = false;
        self
    }

    fn to_json(&self) -> Value {
        json!({
            "setting": self.setting,
            "current": self.current,
            "desired": self.desired,
            "calls": self.steps.iter().map(Step::describe).collect::<Vec<_>>(),
        })
    }
}

/// A setting already as desired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    pub setting: String,
    pub value: String,
}

impl Kept {
    pub fn new(setting: impl Into<String>, value: impl Into<String>) -> Kept {
        Kept {
            setting: setting.into(),
            value: value.into(),
        }
    }
}

/// What a subcommand would change, computed without I/O by [`Configure::plan`].
#[derive(Debug, Default)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub kept: Vec<Kept>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Records `setting`: kept when `current == desired`, else a change made by `steps`.
    pub fn setting(
        &mut self,
        setting: &str,
        current: impl Into<String>,
        desired: impl Into<String>,
        steps: impl FnOnce() -> Vec<Step>,
    ) {
        let (current, desired) = (current.into(), desired.into());
        if current == desired {
            self.kept.push(Kept::new(setting, current));
        } else {
            self.changes
                .push(Change::new(setting, current, desired, steps()));
        }
    }

    /// Every step, in order.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.changes.iter().flat_map(|c| c.steps.iter())
    }
}

// ---------------------------------------------------------------------------------------------
// A subcommand
// ---------------------------------------------------------------------------------------------

/// The control mode a subcommand needs, checked over AMTHI before anything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// CCM or ACM (else 115 DeviceNotActivated, rpc-go v3).
    Activation,
    /// ACM only (else the subcommand's own code, e.g. 118 for MEBx).
    AdminControlMode,
    /// Pre-provisioning only (else 120 UnableToConfigure); these talk to the ME alone.
    PreProvisioning,
}

/// One `configure` subcommand: what it reads, how it plans, how it reports.
pub trait Configure {
    /// What the subcommand reads; `plan` and `report` work on it.
    type State;

    /// rpc-go v3's name (`amt-features`), for messages and the JSON result.
    fn name(&self) -> &'static str;
    fn needs(&self) -> Needs;
    /// rpc-go's code when the firmware refuses a write or does not keep it (107, 118, 119, …).
    fn failure(&self) -> ExitCode;
    /// Whether the subcommand talks WS-MAN (and so needs the AMT password). `enable-amt` and
    /// `disable-amt` use the ME's watchdog client only.
    fn uses_wsman(&self) -> bool {
        true
    }
    /// Reads only (`proxy --list`): no plan, the report is the answer.
    fn read_only(&self) -> bool {
        false
    }
    /// Refusals that need only the control mode, made before anything is sent to AMT.
    fn precheck(&self, _mode: ControlMode) -> Result<(), AgentError> {
        Ok(())
    }
    fn read(&mut self, t: &mut Target) -> Result<Self::State, AgentError>;
    /// Pure: the settings that differ and the steps that change them, or a refusal.
    fn plan(&self, mode: ControlMode, state: &Self::State) -> Result<Plan, AgentError>;
    /// After every step succeeded, before the state is read again.
    fn after_apply(&mut self, _t: &mut Target) -> Result<(), AgentError> {
        Ok(())
    }
    /// The settings as AMT reports them: one text line and a JSON value.
    fn report(&self, state: &Self::State) -> (String, Value);
}

/// Where a subcommand reads and writes: the ME, and AMT's WS-MAN service when it uses one.
pub struct Target {
    pub device: Arc<dyn MeiDevice>,
    pub control_mode: ControlMode,
    session: Option<AmtSession>,
    /// The credentials the session authenticates with (the admin password after activation).
    pub credentials: Option<Credentials>,
    failure: ExitCode,
}

impl Target {
    /// A target without a WS-MAN session yet (the ME alone), for a caller composing several
    /// subcommands (`apply`): [`Target::attach`] gives it one.
    pub fn new(device: Arc<dyn MeiDevice>, control_mode: ControlMode) -> Target {
        Target {
            device,
            control_mode,
            session: None,
            credentials: None,
            failure: ExitCode::UnableToConfigure,
        }
    }

    /// Uses `session`, authenticated as `credentials`, from here on.
    pub fn attach(&mut self, session: AmtSession, credentials: Credentials) {
        self.session = Some(session);
        self.credentials = Some(credentials);
    }

    pub fn has_session(&self) -> bool {
        self.session.is_some()
    }

    /// One write step of the subcommand whose refusal code is `failure` (as [`execute`] runs
    /// them).
    pub fn write_as(&mut self, step: &Step, failure: ExitCode) -> Result<(), AgentError> {
        self.failure = failure;
        self.write(step)
    }

    /// The WS-MAN session (connected by [`execute`] for subcommands that use WS-MAN).
    pub fn session(&mut self) -> Result<&mut AmtSession, AgentError> {
        self.session.as_mut().ok_or_else(|| {
            AgentError::new(
                ExitCode::GenericFailure,
                "internal: this configure subcommand has no WS-MAN session",
            )
        })
    }

    /// One WS-MAN read; a firmware refusal keeps the codes of [`AgentError::from`] (101, …).
    pub fn read<T>(&mut self, call: Call<T>) -> Result<T, AgentError> {
        self.session()?.call(call)
    }

    /// One write step. A firmware refusal (fault, ReturnValue) exits with the subcommand's
    /// code; rejected credentials (100) and an unreachable AMT (71, 4) keep theirs.
    fn write(&mut self, step: &Step) -> Result<(), AgentError> {
        let failure = self.failure;
        match step {
            Step::Later(l) => {
                let call = (l.build)(self)?;
                let saved = self.failure;
                self.failure = l.exit.unwrap_or(saved);
                let r = self.write(&Step::Wsman(call));
                self.failure = saved;
                r
            }
            Step::Wsman(call) => match self.session()?.try_call(call.clone())? {
                Ok(()) => Ok(()),
                Err(e @ crate::wsman::calls::WsmanError::Unauthorized) => Err(e.into()),
                Err(e) => Err(AgentError::from(e).exit(failure)),
            },
            Step::SetAmtOperationalState(on) => crate::amthi::client::set_amt_operational_state(
                self.device.as_ref(),
                *on,
                crate::amthi::client::DEFAULT_TIMEOUT,
            )
            .map_err(|e| {
                let heci = matches!(e, crate::amthi::AmthiError::Heci(_));
                let err = AgentError::from(e);
                if heci {
                    err
                } else {
                    err.exit(failure)
                }
            }),
        }
    }

    /// One write whose answer the caller needs (calls a [`Later`] makes before its own): a firmware refusal
    /// exits with the subcommand's code, as [`Step::Wsman`] writes do.
    pub fn write_call<T>(&mut self, call: Call<T>) -> Result<T, AgentError> {
        let failure = self.failure;
        match self.session()?.try_call(call)? {
            Ok(v) => Ok(v),
            Err(e @ crate::wsman::calls::WsmanError::Unauthorized) => Err(e.into()),
            Err(e) => Err(AgentError::from(e).exit(failure)),
        }
    }

    /// A new WS-MAN client with the same credentials on the same route, the port and TLS chosen
    /// again (after `configure tls`, TLS to port 16993 verifying the certificate it installed).
    pub fn reconnect(&mut self, conn: &AmtConnArgs) -> Result<(), AgentError> {
        let creds = self.credentials.clone().ok_or_else(|| {
            AgentError::new(
                ExitCode::GenericFailure,
                "internal: reconnecting a configure subcommand that has no WS-MAN session",
            )
        })?;
        let old = self.session.take().ok_or_else(|| {
            AgentError::new(
                ExitCode::GenericFailure,
                "internal: reconnecting a configure subcommand that has no WS-MAN session",
            )
        })?;
        self.session = Some(session::reconnect(old, self.device.clone(), conn, creds)?);
        Ok(())
    }

    /// Switches the session to new credentials (after a password change), keeping the nonce.
    pub fn set_credentials(&mut self, c: Credentials) -> Result<(), AgentError> {
        self.session()?.set_credentials(c.clone());
        self.credentials = Some(c);
        Ok(())
    }
}

pub struct RunOptions {
    /// Plan only: print the changes and calls, send no write.
    pub dry_run: bool,
}

/// What a run did, printed once at the end.
#[derive(Debug)]
pub struct Outcome {
    pub command: &'static str,
    pub status: Status,
    pub control_mode: ControlMode,
    pub changes: Vec<Change>,
    pub kept: Vec<Kept>,
    /// The settings as AMT reports them at the end: one line and JSON.
    pub summary: String,
    pub settings: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Changes were applied and read back.
    Changed,
    /// Nothing differed; no write was sent.
    Unchanged,
    /// `--dry-run`: the plan, nothing sent.
    DryRun,
    /// A read-only request (`proxy --list`).
    Read,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Changed => "changed",
            Status::Unchanged => "unchanged",
            Status::DryRun => "dry-run",
            Status::Read => "read",
        }
    }
}

impl Outcome {
    pub fn to_json(&self) -> Value {
        json!({
            "command": self.command,
            "status": self.status.as_str(),
            "controlMode": self.control_mode.text(),
            "changes": self.changes.iter().map(Change::to_json).collect::<Vec<_>>(),
            "unchanged": self.kept.iter().map(|k| json!({"setting": k.setting, "value": k.value})).collect::<Vec<_>>(),
            "settings": self.settings,
        })
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        let line = |c: &Change| format!("  {}: {} -> {}\n", c.setting, c.current, c.desired);
        match self.status {
            Status::Read => s.push_str(&self.summary),
            Status::Unchanged => s.push_str(&format!(
                "{}: nothing to change ({})",
                self.command, self.summary
            )),
            Status::DryRun => {
                s.push_str(&format!(
                    "{}: dry run, nothing sent; {} change(s) would be made:\n",
                    self.command,
                    self.changes.len()
                ));
                for c in &self.changes {
                    s.push_str(&line(c));
                    for step in &c.steps {
                        s.push_str(&format!("      {}\n", step.describe()));
                    }
                }
                for k in &self.kept {
                    s.push_str(&format!("  {}: {} (unchanged)\n", k.setting, k.value));
                }
                s.pop();
            }
            Status::Changed => {
                for c in &self.changes {
                    s.push_str(&line(c));
                }
                s.push_str(&format!(
                    "{}: {} setting(s) changed; AMT now reports: {}",
                    self.command,
                    self.changes.len(),
                    self.summary
                ));
            }
        }
        s
    }

    pub fn print(&self, json_out: bool) {
        if json_out {
            println!(
                "{}",
                serde_json::to_string_pretty(&self.to_json()).unwrap_or_default()
            );
        } else {
            println!("{}", self.text());
        }
    }
}

/// Checks what the subcommand needs of the control mode, before any password is asked.
fn check_needs<C: Configure>(c: &C, mode: ControlMode) -> Result<(), AgentError> {
    match (c.needs(), mode) {
        (Needs::Activation, ControlMode::None) => Err(AgentError::new(
            ExitCode::DeviceNotActivated,
            format!("{}: the device is not activated (pre-provisioning)", c.name()),
        )
        .help("activate it first (amt-agent activate --local --ccm, or through RPS), then configure it")),
        (Needs::AdminControlMode, m) if m != ControlMode::Acm => Err(AgentError::new(
            c.failure(),
            format!("{}: needs admin control mode; the device is in {}", c.name(), m.text()),
        )
        .help("AMT accepts this only in admin control mode: activate with --acm (or upgrade CCM to ACM) first")),
        (Needs::PreProvisioning, m) if m != ControlMode::None => Err(AgentError::new(
            ExitCode::UnableToConfigure,
            format!("{}: allowed only in pre-provisioning; the device is in {}", c.name(), m.text()),
        )
        .help("deactivate first (amt-agent deactivate --local), then change the operational state")),
        _ => Ok(()),
    }
}

/// Runs one subcommand through read → plan → apply → re-read.
pub fn execute<C: Configure>(
    device: Arc<dyn MeiDevice>,
    conn: &AmtConnArgs,
    mut c: C,
    opts: &RunOptions,
) -> Result<Outcome, AgentError> {
    let mode = AmthiClient::new(device.clone()).control_mode()?;
    check_needs(&c, mode)?;
    c.precheck(mode)?;
    let mut target = Target {
        device: device.clone(),
        control_mode: mode,
        session: None,
        credentials: None,
        failure: c.failure(),
    };
    if c.uses_wsman() {
        let (creds, mode) = session::credentials(&device, conn)?;
        target.session = Some(session::connect_as(device, conn, creds.clone(), mode)?);
        target.credentials = Some(creds);
        tracing::info!(command = c.name(), mode = mode.text(), "connected to AMT");
    }
    let state = c.read(&mut target)?;
    let outcome = |c: &C, status, plan: Plan, state: &C::State| {
        let (summary, settings) = c.report(state);
        Outcome {
            command: c.name(),
            status,
            control_mode: mode,
            changes: plan.changes,
            kept: plan.kept,
            summary,
            settings,
        }
    };
    if c.read_only() {
        return Ok(outcome(&c, Status::Read, Plan::default(), &state));
    }
    let plan = c.plan(mode, &state)?;
    if plan.is_empty() {
        return Ok(outcome(&c, Status::Unchanged, plan, &state));
    }
    if opts.dry_run {
        return Ok(outcome(&c, Status::DryRun, plan, &state));
    }
    for (i, change) in plan.changes.iter().enumerate() {
        tracing::info!(setting = %change.setting, from = %change.current, to = %change.desired, "changing");
        for step in &change.steps {
            tracing::debug!(call = %step.describe(), "→");
            if let Err(e) = target.write(step) {
                let done: Vec<&str> = plan.changes[..i]
                    .iter()
                    .map(|c| c.setting.as_str())
                    .collect();
                let mut e = e.context(format!(
                    "{}: changing {} failed at {}",
                    c.name(),
                    change.setting,
                    step.describe()
                ));
                e = e.state(if done.is_empty() {
                    format!(
                        "no other setting was changed; {} may be partly applied",
                        change.setting
                    )
                } else {
                    format!(
                        "already changed: {}; {} may be partly applied",
                        done.join(", "),
                        change.setting
                    )
                });
                return Err(e);
            }
        }
    }
    c.after_apply(&mut target)?;
    let after = c.read(&mut target)?;
    let again = c.plan(mode, &after)?;
    let not_kept: Vec<String> = again
        .changes
        .iter()
        .filter(|x| x.verifiable)
        .map(|x| format!("{} reads {} (wanted {})", x.setting, x.current, x.desired))
        .collect();
    if !not_kept.is_empty() {
        return Err(AgentError::new(
            ExitCode::UnableToConfigure,
            format!("{}: AMT accepted the changes but does not report them: {}", c.name(), not_kept.join("; ")),
        )
        .help("read the state with: amt-agent diagnostics wsman get CLASS; the firmware may need a restart or refuse the value silently"));
    }
    Ok(outcome(&c, Status::Changed, plan, &after))
}

/// Secrets a subcommand takes: the value from `--NAME-file`, `--NAME` (warned), the environment,
/// or a prompt (twice, when `confirm`); `None` when none of them has it.
pub fn new_secret(
    what: &str,
    flag: Option<&crate::secret::Secret>,
    file: Option<&std::path::Path>,
    env: &[&str],
    confirm: bool,
) -> Result<Option<crate::secret::Secret>, AgentError> {
    let source = crate::secret_source::SecretSource {
        what,
        flag: flag.map(crate::secret::Secret::expose),
        file,
        env,
    };
    if let Some(s) = source.resolve(false)? {
        return Ok(Some(s));
    }
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let a = crate::secret_source::prompt_no_echo(&format!("{what}: "))?;
    if confirm {
        let b = crate::secret_source::prompt_no_echo(&format!("Confirm the {what}: "))?;
        if a != b {
            return Err(AgentError::new(
                ExitCode::PasswordsDoNotMatch,
                format!("the two {what}s do not match"),
            )
            .help("run the command again and type the same value twice"));
        }
    }
    Ok(Some(a))
}

/// AMT's rule for the admin and MEBx passwords ([`crate::secret::meets_amt_rules`]).
pub fn strong_password(s: &str) -> bool {
    crate::secret::meets_amt_rules(s)
}

/// Every instance of `class` (Enumerate, then Pull until the end; bounded).
pub fn enumerate_all(t: &mut Target, class: &str) -> Result<Vec<Instance>, AgentError> {
    let ctx = t.read(calls::enumerate(class))?;
    pull_all(t, class, ctx)
}

/// As [`enumerate_all`], or `None` when AMT answers the Enumerate with a SOAP fault: a class this
/// platform does not have (`CIM_CredentialContext` without Wi-Fi). A lost or refused answer is
/// an error, never taken for an absent class.
pub fn enumerate_if_present(
    t: &mut Target,
    class: &str,
) -> Result<Option<Vec<Instance>>, AgentError> {
    match t.session()?.try_call(calls::enumerate(class))? {
        Ok(ctx) => pull_all(t, class, ctx).map(Some),
        Err(calls::WsmanError::Fault(f)) => {
            tracing::debug!(class, fault = %f, "AMT has no such class here");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn pull_all(t: &mut Target, class: &str, ctx: String) -> Result<Vec<Instance>, AgentError> {
    let mut ctx = ctx;
    let mut out = Vec::new();
    // AMT ends its sequences long before this.
    for _ in 0..100 {
        let page = t.read(calls::pull(class, &ctx))?;
        out.extend(page.items);
        match (page.end_of_sequence, page.context) {
            (false, Some(c)) => ctx = c,
            _ => break,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_keeps_equal_settings_and_changes_the_others() {
        let mut p = Plan::default();
        p.setting("KVM", "enabled", "enabled", Vec::new);
        p.setting("SOL", "disabled", "enabled", || {
            vec![Step::SetAmtOperationalState(true)]
        });
        assert_eq!(p.kept, vec![Kept::new("KVM", "enabled")]);
        assert_eq!(p.changes.len(), 1);
        assert_eq!(p.changes[0].setting, "SOL");
        assert_eq!(p.steps().count(), 1);
        assert!(!p.is_empty());
    }

    #[test]
    fn password_rules_are_amts() {
        assert!(strong_password("P@ssw0rd"));
        assert!(!strong_password("P@ssw0r")); // 7
        assert!(!strong_password("p@ssw0rd")); // no upper case
        assert!(!strong_password("Passw0rd")); // no special
        assert!(!strong_password("P@ss:w0rd")); // ':' is not allowed
        assert!(!strong_password(&format!("P@ssw0rd{}", "x".repeat(25)))); // 33
    }

    #[test]
    fn the_text_of_a_dry_run_shows_calls_with_secrets_redacted() {
        use crate::secret::Secret;
        let call = crate::wsman::classes::authorization::set_admin_acl_entry_ex(
            "admin",
            &Secret::new("c2VjcmV0LWRpZ2VzdA=="),
        )
        .checked();
        let o = Outcome {
            command: "amt-password",
            status: Status::DryRun,
            control_mode: ControlMode::Ccm,
            changes: vec![Change::new(
                "admin password",
                "***",
                "***",
                vec![Step::Wsman(call)],
            )],
            kept: vec![],
            summary: String::new(),
            settings: Value::Null,
        };
        let t = o.text();
        assert!(
            t.contains(
                "AMT_AuthorizationService.SetAdminAclEntryEx(Username=admin, DigestPassword=***)"
            ),
            "{t}"
        );
        assert!(!t.contains("c2VjcmV0"), "{t}");
        assert!(!o.to_json().to_string().contains("c2VjcmV0"));
    }
}
