//! The plan/apply engine: a profile's areas in order (activation first, the admin password before
//! anything that authenticates with it, TLS last), each read, planned and applied by its
//! `configure` subcommand. Every run starts from what AMT reports, so an interrupted apply is
//! finished by the next one, and `plan` describes any state an interruption can leave.

use std::sync::Arc;

use serde_json::{json, Value};

use super::areas::{Area, MebxOnce, Proxies, Wrap};
use super::cira::CiraArea;
use super::network::{WiredArea, WirelessArea};
use crate::amthi::{AmthiClient, ControlMode, ProvisioningState};
use crate::commands::configure::{self, Change, Kept, Target};
use crate::commands::session::{self, AmtConnArgs};
use crate::error::{AgentError, ExitCode};
use crate::heci::MeiDevice;
use crate::profile::secrets::DataDir;
use crate::profile::{Profile, SecretRef, WantedMode};
use crate::secret::Secret;
use crate::wsman::client::Credentials;

/// What `plan` and `apply` work with.
pub struct Engine<'a> {
    pub device: Arc<dyn MeiDevice>,
    pub conn: &'a AmtConnArgs,
    pub data: &'a DataDir,
    pub profile: &'a Profile,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AreaState {
    /// Read and planned.
    Planned,
    /// Cannot be read before the activation the plan starts with.
    AfterActivation,
}

/// One area of a plan.
#[derive(Debug)]
pub struct AreaPlan {
    pub area: &'static str,
    pub state: AreaState,
    pub wanted: String,
    pub changes: Vec<Change>,
    pub kept: Vec<Kept>,
}

impl AreaPlan {
    fn state_word(&self) -> &'static str {
        match self.state {
            AreaState::Planned => "planned",
            AreaState::AfterActivation => "after-activation",
        }
    }

    /// Settings that will change (an area read only after activation counts as one).
    pub fn pending(&self) -> usize {
        match self.state {
            AreaState::Planned => self.changes.len(),
            AreaState::AfterActivation => 1,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "area": self.area,
            "state": self.state_word(),
            "wanted": self.wanted,
            "note": match self.state {
                AreaState::AfterActivation => Some("read and set after the activation"),
                AreaState::Planned => None,
            },
            "changes": self.changes.iter().map(change_json).collect::<Vec<_>>(),
            "unchanged": self.kept.iter().map(|k| json!({"setting": k.setting, "value": k.value})).collect::<Vec<_>>(),
        })
    }
}

pub fn change_json(c: &Change) -> Value {
    json!({
        "setting": c.setting,
        "current": c.current,
        "desired": c.desired,
        "calls": c.steps.iter().map(|s| s.describe()).collect::<Vec<_>>(),
    })
}

/// A whole profile's plan, in apply's order.
#[derive(Debug)]
pub struct ProfilePlan {
    pub control_mode: ControlMode,
    pub areas: Vec<AreaPlan>,
}

impl ProfilePlan {
    pub fn pending(&self) -> usize {
        self.areas.iter().map(AreaPlan::pending).sum()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "status": if self.pending() == 0 { "no-changes" } else { "changes-pending" },
            "controlMode": self.control_mode.text(),
            "pending": self.pending(),
            "areas": self.areas.iter().map(AreaPlan::to_json).collect::<Vec<_>>(),
        })
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        let n = self.areas.len();
        for (i, a) in self.areas.iter().enumerate() {
            let head = format!("[{}/{n}] {}", i + 1, a.area);
            match &a.state {
                AreaState::AfterActivation => {
                    s += &format!("{head}: read after the activation; wanted: {}\n", a.wanted);
                    continue;
                }
                AreaState::Planned if a.changes.is_empty() => {
                    s += &format!("{head}: as wanted\n");
                }
                AreaState::Planned => s += &format!("{head}:\n"),
            }
            for c in &a.changes {
                s += &format!("  ~ {}: {} -> {}\n", c.setting, c.current, c.desired);
                for st in &c.steps {
                    s += &format!("      {}\n", st.describe());
                }
            }
            for k in &a.kept {
                s += &format!("    {}: {}\n", k.setting, k.value);
            }
        }
        s
    }
}

/// What an apply changed.
#[derive(Debug, Default)]
pub struct Applied {
    pub control_mode: Option<ControlMode>,
    pub changes: Vec<(&'static str, Change)>,
}

impl Applied {
    pub fn to_json(&self) -> Value {
        json!({
            "status": if self.changes.is_empty() { "unchanged" } else { "changed" },
            "controlMode": self.control_mode.map(|m| m.text()),
            "changes": self.changes.iter().map(|(a, c)| {
                let mut v = change_json(c);
                v["area"] = (*a).into();
                v
            }).collect::<Vec<_>>(),
        })
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

fn activation_calls(from: ControlMode, to: WantedMode, stuck: bool) -> Vec<String> {
    let mut v = Vec::new();
    if stuck {
        v.push("AMTHI StopConfiguration (an unfinished configuration)".to_string());
    }
    v.push(match (from, to) {
        (ControlMode::Ccm, WantedMode::Acm) => {
            "IPS_HostBasedSetupService.AddNextCertInChain, UpgradeClientToAdmin".into()
        }
        (_, WantedMode::Acm) => {
            "IPS_HostBasedSetupService.AddNextCertInChain, AdminSetup (AMT 19+: START_CONFIGURATION_HBASED … CommitChanges)".into()
        }
        (_, WantedMode::Ccm) => "IPS_HostBasedSetupService.Setup".into(),
    });
    v
}

impl Engine<'_> {
    fn want(&self) -> WantedMode {
        self.profile.control_mode
    }

    /// The profile's admin password: its value, or the generated one (made and stored first
    /// when `create`).
    pub fn desired_admin(&self, create: bool) -> Result<Option<Secret>, AgentError> {
        match &self.profile.admin_password {
            SecretRef::Generate if create => self.data.generated_secret("amt-password").map(Some),
            SecretRef::Generate => self.data.existing_generated("amt-password"),
            r => r.resolve("adminPassword").map(Some),
        }
    }

    /// A secret of the profile; `generate` is made and stored first when `create` (apply), else
    /// (plan, which writes nothing) the one made before or a throwaway that is never stored or
    /// sent.
    fn secret(
        &self,
        r: &SecretRef,
        what: &str,
        generated: &str,
        create: bool,
    ) -> Result<Secret, AgentError> {
        match r {
            SecretRef::Generate if create => self.data.generated_secret(generated),
            SecretRef::Generate => {
                Ok(self.data.existing_generated(generated)?.unwrap_or_else(|| {
                    crate::profile::secrets::generate_password(&mut rand::rngs::OsRng)
                }))
            }
            r => r.resolve(what),
        }
    }

    /// The password AMT has now, when it is not the profile's: `--password-file`, `--password`
    /// (warned) or `AMT_PASSWORD`.
    fn current_admin(&self) -> Result<Option<Secret>, AgentError> {
        crate::secret_source::SecretSource {
            what: "AMT password",
            flag: self.conn.password.as_ref().map(Secret::expose),
            file: self.conn.password_file.as_deref(),
            env: &["AMT_PASSWORD"],
        }
        .resolve(false)
    }

    /// A session as admin: with the profile's password when AMT takes it, else with the one it
    /// has now (the admin-password area then rotates it).
    fn connect(
        &self,
        mode: ControlMode,
        desired: Option<&Secret>,
    ) -> Result<(session::AmtSession, Credentials), AgentError> {
        let current = self.current_admin()?;
        let mut candidates: Vec<&Secret> = Vec::new();
        for s in [desired, current.as_ref()].into_iter().flatten() {
            if !candidates.contains(&s) {
                candidates.push(s);
            }
        }
        for pw in &candidates {
            let creds = Credentials::new("admin", (*pw).clone());
            let mut s = session::connect_as(self.device.clone(), self.conn, creds.clone(), mode)?;
            match s.call(crate::wsman::classes::general::get()) {
                Ok(_) => return Ok((s, creds)),
                Err(e) if e.exit == ExitCode::AmtAuthenticationFailed => {
                    tracing::debug!("AMT refused one admin password; trying the next");
                }
                Err(e) => return Err(e),
            }
        }
        Err(AgentError::new(
            ExitCode::AmtAuthenticationFailed,
            if candidates.is_empty() {
                "no admin password to authenticate to AMT with".to_string()
            } else {
                format!(
                    "AMT refused the admin password{} ({} tried)",
                    if candidates.len() > 1 { "s" } else { "" },
                    candidates.len()
                )
            },
        )
        .help("set AMT_PASSWORD (or --password-file) to the password AMT has now: apply then changes it to the profile's"))
    }

    /// The profile's areas after activation, in apply's order.
    fn slots(&self, desired: &Secret, create: bool) -> Result<Vec<Box<dyn Area>>, AgentError> {
        let p = self.profile;
        let mut out = Vec::new();
        // The device's UUID keys the verifiers of secrets AMT never reveals; read once.
        let mut known: Option<String> = None;
        let mut uuid = || -> Result<String, AgentError> {
            if let Some(u) = &known {
                return Ok(u.clone());
            }
            let u = AmthiClient::new(self.device.clone())
                .uuid()
                .map(|u| u.text())
                .map_err(|e| AgentError::from(e).context("cannot read AMT's UUID"))?;
            known = Some(u.clone());
            Ok(u)
        };
        for name in p.areas() {
            let slot: Box<dyn Area> = match name {
                "activation" => continue,
                "admin-password" => Box::new(Wrap {
                    c: configure::password::Password::with(desired.clone()),
                    wanted: format!("the profile's ({})", p.admin_password.describe()),
                }),
                "mebx-password" => {
                    let r = p.mebx_password.as_ref().expect("listed because set");
                    let pw = self.secret(r, "mebxPassword", "mebx-password", create)?;
                    Box::new(MebxOnce::new(pw, self.data, uuid()?))
                }
                "amt-features" => {
                    let f = p.features.expect("listed because set");
                    use crate::profile::Consent;
                    use crate::wsman::classes::redirection::UserConsent;
                    let consent = match f.user_consent {
                        Consent::None => UserConsent::None,
                        Consent::Kvm => UserConsent::Kvm,
                        Consent::All => UserConsent::All,
                    };
                    Box::new(Wrap {
                        c: configure::features::Features {
                            want: configure::features::Desired {
                                kvm: f.kvm,
                                sol: f.sol,
                                ider: f.ider,
                                consent,
                            },
                        },
                        wanted: format!(
                            "KVM {}, SOL {}, IDER {}, user consent {}",
                            on_off(f.kvm),
                            on_off(f.sol),
                            on_off(f.ider),
                            consent.name()
                        ),
                    })
                }
                "hostname" => {
                    let h = p.hostname.clone().unwrap_or_default();
                    let c =
                        configure::hostname::Hostname::new(&configure::hostname::HostnameArgs {
                            hostname: h.host_name.clone(),
                            domain_name: h.domain_name.clone(),
                        })?;
                    Box::new(Wrap {
                        c,
                        wanted: format!(
                            "host name {}, domain name {}",
                            h.host_name.as_deref().unwrap_or("(the OS's)"),
                            h.domain_name.as_deref().unwrap_or("(the OS's)")
                        ),
                    })
                }
                "sync-clock" => Box::new(Wrap {
                    c: configure::clock::SyncClock,
                    wanted: "in sync with this host".into(),
                }),
                "proxies" => Box::new(Proxies {
                    want: p.proxies.clone().unwrap_or_default(),
                }),
                "wired" => Box::new(WiredArea::new(
                    p.network.as_ref().expect("listed because set"),
                    self.data,
                    &uuid()?,
                )?),
                "wireless" => Box::new(WirelessArea::new(
                    p.network.as_ref().expect("listed because set"),
                    self.data,
                    &uuid()?,
                )?),
                "cira" => {
                    let c = p.cira.as_ref().expect("listed because set");
                    let r = c.mps_password.as_ref().ok_or_else(|| {
                        AgentError::new(
                            ExitCode::MissingOrInvalidConfiguration,
                            "cira.mpsPassword: AMT needs the MPS password",
                        )
                        .help("give mpsPassword (a value, env:NAME, file:PATH) or generate")
                    })?;
                    let pw = self.secret(r, "cira.mpsPassword", "mps-password", create)?;
                    Box::new(CiraArea::new(c, pw, self.data, &uuid()?)?)
                }
                "tls" => Box::new(super::tls::area(
                    p.tls.as_ref().expect("listed because set"),
                    self.conn,
                )?),
                other => {
                    return Err(AgentError::new(
                        ExitCode::GenericFailure,
                        format!("internal: area {other} has no implementation"),
                    ))
                }
            };
            out.push(slot);
        }
        Ok(out)
    }

    /// The activation the profile needs from `mode`, or `None` when the mode is as wanted.
    fn activation_change(
        &self,
        mode: ControlMode,
        stuck: bool,
    ) -> Result<Option<Change>, AgentError> {
        let want = self.want();
        let wanted = want.control_mode();
        if mode == wanted && !stuck {
            return Ok(None);
        }
        if mode == ControlMode::Acm && want == WantedMode::Ccm {
            return Err(AgentError::new(
                ExitCode::UnableToActivate,
                "the device is in admin control mode; the profile wants client control mode",
            )
            .help("apply never lowers the control mode: deactivate first (amt-agent deactivate --local), or set controlMode: acm"));
        }
        if let ControlMode::Unknown(n) = mode {
            return Err(AgentError::new(
                ExitCode::ControlModeUnreadable,
                format!("AMT reports control mode {n}, which this agent does not know"),
            ));
        }
        let current = if stuck {
            "in provisioning (an unfinished configuration)".to_string()
        } else {
            mode.text().to_string()
        };
        Ok(Some(Change::new(
            "control mode",
            current,
            wanted.text(),
            Vec::new(),
        )))
    }

    /// `amt-agent plan`: reads everything, changes nothing.
    pub fn plan(&self) -> Result<ProfilePlan, AgentError> {
        let mut amthi = AmthiClient::new(self.device.clone());
        let mode = amthi.control_mode()?;
        let stuck = amthi.provisioning_state()? == ProvisioningState::In;
        drop(amthi);
        let activation = self.activation_change(mode, stuck)?;
        let known = self.desired_admin(false)?;
        // Not generated yet: planned with a throwaway value that is never stored or sent (AMT is
        // asked with the known passwords only, so no login fails for it).
        let desired = known
            .clone()
            .unwrap_or_else(|| crate::profile::secrets::generate_password(&mut rand::rngs::OsRng));
        let slots = self.slots(&desired, false)?;
        let mut areas = vec![AreaPlan {
            area: "activation",
            state: AreaState::Planned,
            wanted: self.want().control_mode().text().into(),
            kept: if activation.is_none() {
                vec![Kept::new("control mode", mode.text())]
            } else {
                vec![]
            },
            changes: activation
                .map(|mut c| {
                    c.desired = format!(
                        "{} ({})",
                        c.desired,
                        activation_calls(mode, self.want(), stuck).join("; ")
                    );
                    vec![c]
                })
                .unwrap_or_default(),
        }];
        let readable_now = !stuck && mode != ControlMode::None;
        let mut target = Target::new(self.device.clone(), mode);
        if readable_now && !slots.is_empty() {
            let (s, creds) = self.connect(mode, known.as_ref())?;
            target.attach(s, creds);
        }
        for mut a in slots {
            let name = a.name();
            let later = !readable_now
                || (name == "mebx" && self.want() == WantedMode::Acm && mode != ControlMode::Acm);
            if later {
                areas.push(AreaPlan {
                    area: name,
                    state: AreaState::AfterActivation,
                    wanted: a.wanted(),
                    changes: vec![],
                    kept: vec![],
                });
                continue;
            }
            let p = a
                .plan(&mut target)
                .map_err(|e| e.context(format!("plan: reading {name} failed")))?;
            areas.push(AreaPlan {
                area: name,
                state: AreaState::Planned,
                wanted: a.wanted(),
                changes: p.changes,
                kept: p.kept,
            });
        }
        Ok(ProfilePlan {
            control_mode: mode,
            areas,
        })
    }

    /// `amt-agent apply`: activates when needed, then makes each out-of-date setting true, area
    /// by area, reading each again afterwards. `progress` is told every step as it happens.
    pub fn apply(&self, progress: &mut dyn FnMut(&str)) -> Result<Applied, AgentError> {
        let mut applied = Applied::default();
        let mut amthi = AmthiClient::new(self.device.clone());
        let mut mode = amthi.control_mode()?;
        let stuck = amthi.provisioning_state()? == ProvisioningState::In;
        drop(amthi);
        let activation = self.activation_change(mode, stuck)?;
        // A generated password is stored before AMT ever sees it (README, "Desired state").
        let desired = self.desired_admin(true)?.ok_or_else(|| {
            AgentError::new(ExitCode::GenericFailure, "internal: no admin password")
        })?;
        let slots = self.slots(&desired, true)?;
        let n = slots.len() + 1;
        let done = |applied: &Applied| -> String {
            if applied.changes.is_empty() {
                "nothing was changed in this run".to_string()
            } else {
                format!(
                    "changed in this run: {}",
                    applied
                        .changes
                        .iter()
                        .map(|(a, c)| format!("{a}: {}", c.setting))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        };
        let fail = |e: AgentError, what: String, applied: &Applied| -> AgentError {
            let fix = e.help.clone();
            let e = e.context(what).state(format!(
                "{}; `amt-agent plan` shows what remains and `amt-agent apply` again finishes it",
                done(applied)
            ));
            if fix.is_none() {
                e.help("fix the cause above, then run amt-agent apply again: it starts from what AMT reports")
            } else {
                e
            }
        };

        // 1. Activation.
        match activation {
            None => progress(&format!("[1/{n}] activation: {} (as wanted)", mode.text())),
            Some(c) => {
                progress(&format!(
                    "[1/{n}] activation: {} -> {}",
                    c.current, c.desired
                ));
                self.activate(mode, stuck, &desired, progress)
                    .map_err(|e| fail(e, "apply: the activation failed".into(), &applied))?;
                mode = AmthiClient::new(self.device.clone()).control_mode()?;
                progress(&format!("      AMT reports {}", mode.text()));
                applied.changes.push(("activation", c));
            }
        }
        applied.control_mode = Some(mode);

        // 2. Every other area, in order, on one session.
        let mut target = Target::new(self.device.clone(), mode);
        for (i, mut a) in slots.into_iter().enumerate() {
            let k = i + 2;
            let name = a.name();
            if !target.has_session() {
                let (s, creds) = self
                    .connect(mode, Some(&desired))
                    .map_err(|e| fail(e, format!("apply: {name}: cannot reach AMT"), &applied))?;
                target.attach(s, creds);
            }
            let plan = a
                .plan(&mut target)
                .map_err(|e| fail(e, format!("apply: {name}: reading it failed"), &applied))?;
            if plan.is_empty() {
                progress(&format!("[{k}/{n}] {name}: as wanted"));
                continue;
            }
            progress(&format!("[{k}/{n}] {name}:"));
            let failure = a.failure();
            for change in &plan.changes {
                progress(&format!(
                    "      {}: {} -> {}",
                    change.setting, change.current, change.desired
                ));
                for step in &change.steps {
                    target.write_as(step, failure).map_err(|e| {
                        fail(
                            e,
                            format!(
                                "apply: {name}: changing {} failed at {}",
                                change.setting,
                                step.describe()
                            ),
                            &applied,
                        )
                    })?;
                }
            }
            a.after_apply(&mut target)
                .map_err(|e| fail(e, format!("apply: {name}: after its changes"), &applied))?;
            let again = a.plan(&mut target).map_err(|e| {
                fail(
                    e,
                    format!("apply: {name}: reading it back failed"),
                    &applied,
                )
            })?;
            let not_kept: Vec<String> = again
                .changes
                .iter()
                .filter(|c| c.verifiable)
                .map(|c| format!("{} reads {} (wanted {})", c.setting, c.current, c.desired))
                .collect();
            if !not_kept.is_empty() {
                return Err(fail(
                    AgentError::new(
                        ExitCode::UnableToConfigure,
                        format!("AMT accepted the changes but does not report them: {}", not_kept.join("; ")),
                    )
                    .help("read the state with amt-agent diagnostics wsman get CLASS; the firmware may refuse the value silently"),
                    format!("apply: {name}: not kept"),
                    &applied,
                ));
            }
            progress("      done");
            for c in plan.changes {
                applied.changes.push((name, c));
            }
        }
        Ok(applied)
    }

    /// Activates from `mode` to the profile's control mode (rolling back an unfinished
    /// configuration first).
    fn activate(
        &self,
        mode: ControlMode,
        stuck: bool,
        desired: &Secret,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), AgentError> {
        let mut mode = mode;
        if stuck {
            progress("      stopping an unfinished configuration (StopConfiguration)");
            AmthiClient::new(self.device.clone())
                .stop_configuration()
                .map_err(|e| AgentError::from(e).context("StopConfiguration failed"))?;
            mode = AmthiClient::new(self.device.clone()).control_mode()?;
        }
        match (mode, self.want()) {
            (ControlMode::None, WantedMode::Ccm) => {
                crate::commands::activate::ccm_flow(
                    self.device.clone(),
                    self.conn,
                    desired,
                    &mut |s| progress(&format!("      {s}")),
                )?;
            }
            (m, WantedMode::Acm) if m != ControlMode::Acm => {
                let pc = self
                    .profile
                    .provisioning_certificate
                    .as_ref()
                    .ok_or_else(|| {
                        AgentError::new(
                            ExitCode::MissingOrInvalidConfiguration,
                            "controlMode acm needs provisioningCertificate",
                        )
                    })?;
                let source = match (&pc.file, &pc.base64) {
                    (Some(f), _) => f.display().to_string(),
                    (None, Some(b)) => b
                        .resolve("provisioningCertificate.base64")?
                        .expose()
                        .to_string(),
                    _ => String::new(),
                };
                let cert_pw = match &pc.password {
                    Some(r) => r.resolve("provisioningCertificate.password")?,
                    None => Secret::default(),
                };
                let cert = crate::provisioning::load::load(&source, &|| Ok(cert_pw.clone()))?;
                // In CCM the upgrade authenticates with the password AMT has now.
                let amt_password = if m == ControlMode::Ccm {
                    let (s, creds) = self.connect(m, Some(desired))?;
                    drop(s);
                    creds.password
                } else {
                    desired.clone()
                };
                let mebx = match &self.profile.mebx_password {
                    Some(r) => Some(self.secret(r, "mebxPassword", "mebx-password", true)?),
                    None => None,
                };
                let args = crate::commands::local_acm::LocalAcmArgs::default();
                progress(&format!(
                    "      {} with the provisioning certificate",
                    if m == ControlMode::Ccm {
                        "upgrading to admin control mode"
                    } else {
                        "activating in admin control mode"
                    }
                ));
                crate::commands::local_acm::activate(
                    self.device.clone(),
                    &cert,
                    &args,
                    pc.dns_suffix.clone(),
                    self.conn,
                    Some(&crate::commands::local_acm::GivenSecrets {
                        amt_password,
                        mebx_password: mebx,
                    }),
                    None,
                )?;
            }
            _ => {}
        }
        Ok(())
    }
}
