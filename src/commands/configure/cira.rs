//! `configure cira`: AMT connects out to an MPS (Client Initiated Remote Access). What RPS's
//! `ciraConfiguration.ts` and rpc-go's `configure cira` do (rps-protocol.md §5.1 step 7, §5.6),
//! planned against what AMT holds:
//!
//! 1. the MPS root certificate as a trusted root (`AddTrustedRootCertificate`), when AMT lacks it;
//! 2. the server, when AMT holds another one, more than one, or this one with another port, user
//!    or CN: the policy rules AMT reports and its servers are deleted (a server a rule applies to
//!    cannot go first), then `AddMpServer` with user name and password;
//! 3. the policies: periodic (every `--periodic-interval` seconds, RPS's and rpc-go's 25 by
//!    default), user initiated (tunnel lifetime 300 s), alert with `--alert`; each applies to the
//!    server inside and outside the enterprise (`AMT_RemoteAccessPolicyAppliesToMPS.MpsType` 2,
//!    as RPS and rpc-go Put it). Adding them needs the name AMT gave the new server, so these
//!    steps read it when they run ([`Later`]);
//! 4. user-initiated connections from BIOS and OS (`RequestStateChange(32771)`);
//! 5. environment detection: `--env-detection` domains; without it the domains AMT has stay, and
//!    with none a random `<uuid>.com` is set as rpc-go and RPS do (a domain no network has, so
//!    AMT always sees itself outside and connects).
//!
//! The MPS password cannot be read back: a configuration that is otherwise the same is left as
//! it is (`--force` writes the server again, with the password given). CIRA's tunnel is TLS to
//! the MPS, checked against the root added here; it does not need AMT's own TLS (16993): RPS and
//! the DMT console treat CIRA and TLS as alternative connection modes of a profile.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use clap::Args;
use serde_json::json;

use super::{Change, Configure, Kept, Later, Needs, Plan, Step, Target};
use crate::amthi::ControlMode;
use crate::error::{AgentError, ExitCode};
use crate::secret::Secret;
use crate::wsman::calls::{Instance, PropertyValue};
use crate::wsman::classes::cira::{
    self, AppliesToMps, InfoFormat, MpsServer, PolicyRule, Trigger, DEFAULT_MPS_PORT,
    USER_INITIATED_BIOS_AND_OS,
};
use crate::wsman::classes::public_key::{self, PublicKeyCertificate};
use crate::wsman::classes::public_key_management;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[derive(Args, Debug, Clone, Default)]
pub struct CiraArgs {
    /// The MPS's host name or IP address (no scheme, no port).
    #[arg(long, alias = "mpsaddress", env = "MPS_ADDRESS")]
    pub mps_address: String,
    /// The port the MPS listens on for CIRA.
    #[arg(long, alias = "mpsport", default_value_t = DEFAULT_MPS_PORT)]
    pub mps_port: u16,
    /// The MPS root CA certificate: a PEM or DER file, or the base64 DER itself (rpc-go's
    /// -mpscert and MPS_CERT).
    #[arg(long, alias = "mpscert", env = "MPS_CERT", hide_env_values = true)]
    pub mps_cert: String,
    /// The user AMT gives the MPS (rpc-go always sends "admin"): 1–16 letters and digits.
    #[arg(
        long,
        alias = "mpsusername",
        env = "MPS_USERNAME",
        default_value = "admin"
    )]
    pub mps_user: String,
    /// The MPS password (prefer MPS_PASSWORD or --mps-password-file: the command line is visible
    /// to other users).
    #[arg(long, alias = "mpspassword")]
    pub mps_password: Option<Secret>,
    /// A file holding the MPS password (first line; must not be readable by others).
    #[arg(long)]
    pub mps_password_file: Option<PathBuf>,
    /// Let AMT hold a random MPS password (16 characters, never shown): for an MPS that is told
    /// the password another way, as RPS's CIRA configurations do.
    #[arg(
        long,
        alias = "generateRandomPassword",
        env = "GENERATE_RANDOM_PASSWORD"
    )]
    pub generate_random_password: bool,
    /// Environment detection: the DNS domains of the enterprise network (comma-separated); inside
    /// them AMT does not connect to the MPS. Default: keep AMT's, or a random one.
    #[arg(
        long,
        alias = "envdetection",
        env = "ENVIRONMENT_DETECTION",
        value_delimiter = ','
    )]
    pub env_detection: Vec<String>,
    /// Seconds between the periodic connections.
    #[arg(long, default_value_t = DEFAULT_PERIODIC_INTERVAL, value_parser = clap::value_parser!(u32).range(1..))]
    pub periodic_interval: u32,
    /// Also connect to the MPS on an alert (a third policy).
    #[arg(long)]
    pub alert: bool,
    /// Write the server again even when AMT reports the same one (the password cannot be read
    /// back: use this to change only the password).
    #[arg(long)]
    pub force: bool,
}

/// RPS's and rpc-go's periodic rule: every 25 s (`AAAAAAAAABk=`).
pub const DEFAULT_PERIODIC_INTERVAL: u32 = 25;
/// RPS's and rpc-go's tunnel lifetime for user-initiated connections.
pub const USER_INITIATED_LIFETIME: u32 = 300;
/// The environment variables of the MPS password (rpc-go's).
pub const MPS_PASSWORD_ENV: &[&str] = &["MPS_PASSWORD"];
/// AMT keeps at most this many detection domains (the simulator's rule, UNCONFIRMED).
pub const MAX_DETECTION_DOMAINS: usize = 5;

/// One policy as wanted.
#[derive(Clone, Debug, PartialEq, Eq)]
struct WantRule {
    trigger: Trigger,
    lifetime: u32,
    data: String,
}

impl WantRule {
    fn text(&self) -> String {
        match self.trigger {
            Trigger::Periodic => match cira::periodic_interval(&self.data) {
                Some(s) => format!("periodic every {s} s"),
                None => format!("periodic ({})", self.data),
            },
            Trigger::UserInitiated => "user initiated".into(),
            Trigger::Alert => "alert".into(),
        }
    }
}

pub struct Cira {
    address: String,
    format: InfoFormat,
    port: u16,
    user: String,
    root_der: Vec<u8>,
    root_subject: String,
    rules: Vec<WantRule>,
    domains: Option<Vec<String>>,
    force: bool,
    random: bool,
    password_flag: Option<Secret>,
    password_file: Option<PathBuf>,
    /// Resolved at the first read; `None` when no source has it (then only a plan that keeps
    /// the server can run).
    password: Option<Secret>,
    password_resolved: bool,
    applied: bool,
    /// The domain set when neither the user nor AMT names one: `<random uuid>.com`, as rpc-go.
    fallback_domain: String,
}

fn input_error(msg: impl Into<String>, help: &str) -> AgentError {
    AgentError::new(ExitCode::InvalidUserInput, msg).help(help.to_string())
}

/// rpc-go's address rule: an IP address, or a name of at least two DNS labels; no scheme, no port.
fn check_address(a: &str) -> Result<InfoFormat, AgentError> {
    let help =
        "give the MPS as a host name (mps.example.com) or an IP address, the port with --mps-port";
    if let Some((scheme, _)) = a.split_once("://") {
        return Err(input_error(
            format!("--mps-address '{a}': scheme '{scheme}' not allowed; provide host or IP only"),
            help,
        ));
    }
    if a.parse::<std::net::IpAddr>().is_ok() {
        return Ok(InfoFormat::of(a));
    }
    if a.rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        return Err(input_error(
            format!("--mps-address '{a}' carries a port"),
            help,
        ));
    }
    let labels: Vec<&str> = a.split('.').collect();
    let ok = labels.len() >= 2
        && a.len() <= 253
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if !ok {
        return Err(input_error(
            format!("--mps-address '{a}' must be an IP address or a multi-label DNS name"),
            help,
        ));
    }
    Ok(InfoFormat::Fqdn)
}

/// The MPS root as DER: from a PEM or DER file, or the base64 DER itself.
fn load_root(v: &str) -> Result<Vec<u8>, AgentError> {
    let help =
        "give the MPS's root CA certificate as a PEM or DER file, or its base64 DER (MPS_CERT)";
    let path = std::path::Path::new(v);
    let bytes = if path.is_file() {
        let raw = std::fs::read(path).map_err(|e| {
            input_error(
                format!("cannot read --mps-cert {}: {e}", path.display()),
                help,
            )
        })?;
        match x509_parser::pem::parse_x509_pem(&raw) {
            Ok((_, pem)) => pem.contents,
            Err(_) => raw,
        }
    } else {
        let text: String = v.chars().filter(|c| !c.is_whitespace()).collect();
        B64.decode(text.as_bytes()).map_err(|_| {
            input_error(
                "--mps-cert is neither a file nor base64 DER".to_string(),
                help,
            )
        })?
    };
    Ok(bytes)
}

/// The subject of a root AMT would take: a CA (basic constraints, or a self-issued v1).
fn check_root(der: &[u8]) -> Result<String, AgentError> {
    use x509_parser::prelude::*;
    let help = "give the root CA that issued the MPS's server certificate (not the server certificate itself)";
    let (rest, c) = X509Certificate::from_der(der)
        .map_err(|e| input_error(format!("--mps-cert is no X.509 certificate: {e}"), help))?;
    if !rest.is_empty() {
        return Err(input_error(
            "--mps-cert has bytes after the certificate",
            help,
        ));
    }
    let ca = match c.basic_constraints() {
        Ok(Some(bc)) => bc.value.ca,
        Ok(None) => c.subject().as_raw() == c.issuer().as_raw(),
        Err(_) => false,
    };
    if !ca {
        return Err(input_error(
            format!(
                "--mps-cert ({}) is not a CA certificate: AMT takes only CAs as trusted roots",
                c.subject()
            ),
            help,
        ));
    }
    Ok(c.subject().to_string())
}

/// 16 characters from RPS's alphabet (A–Z a–z 0–9 !@#$%^*()), one of each kind: MPS's rules and
/// the 16 characters AMT keeps.
fn random_password() -> Secret {
    use rand::seq::SliceRandom;
    use rand::Rng;
    const SETS: [&str; 4] = [
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "abcdefghijklmnopqrstuvwxyz",
        "0123456789",
        "!@#$%^*()",
    ];
    let mut rng = rand::thread_rng();
    let all: Vec<u8> = SETS.concat().into_bytes();
    let mut chars: Vec<u8> = SETS
        .iter()
        .map(|s| s.as_bytes()[rng.gen_range(0..s.len())])
        .collect();
    while chars.len() < 16 {
        chars.push(all[rng.gen_range(0..all.len())]);
    }
    chars.shuffle(&mut rng);
    Secret::new(String::from_utf8(chars).unwrap_or_default())
}

/// AMT's limits for the MPS password (16 characters, the MOF) and a printable one.
fn check_password(p: &Secret) -> Result<(), AgentError> {
    let n = p.expose().chars().count();
    if !(1..=16).contains(&n) || !p.expose().chars().all(|c| c.is_ascii_graphic()) {
        return Err(input_error(
            format!("the MPS password has {n} characters; AMT takes 1–16 printable ASCII characters without spaces"),
            "give a password of at most 16 characters (MPS itself wants 8–16 with upper, lower, digit and symbol), or --generate-random-password",
        ));
    }
    Ok(())
}

impl Cira {
    pub fn new(a: &CiraArgs) -> Result<Cira, AgentError> {
        let address = a.mps_address.trim().to_string();
        let format = check_address(&address)?;
        if a.mps_port == 0 {
            return Err(input_error(
                "--mps-port 0 is not a port",
                "give the MPS's CIRA port (4433 by default)",
            ));
        }
        let user_ok = (1..=16).contains(&a.mps_user.len())
            && a.mps_user.bytes().all(|b| b.is_ascii_alphanumeric());
        if !user_ok {
            return Err(input_error(
                format!(
                    "--mps-user '{}': AMT takes 1–16 letters and digits",
                    a.mps_user
                ),
                "use the MPS user name without spaces or symbols (rpc-go and RPS use admin)",
            ));
        }
        let root_der = load_root(&a.mps_cert)?;
        let root_subject = check_root(&root_der)?;
        if a.generate_random_password && (a.mps_password.is_some() || a.mps_password_file.is_some())
        {
            return Err(AgentError::new(
                ExitCode::InvalidParameterCombination,
                "--generate-random-password and an MPS password exclude each other",
            )
            .help("give either the password (MPS_PASSWORD, --mps-password-file) or --generate-random-password"));
        }
        let mut domains: Vec<String> = Vec::new();
        for d in &a.env_detection {
            let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
            if d.is_empty() || domains.contains(&d) {
                continue;
            }
            let ok = d.len() <= 192
                && d.split('.').all(|l| {
                    (1..=63).contains(&l.len())
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !ok {
                return Err(input_error(
                    format!("--env-detection '{d}' is not a DNS domain"),
                    "give the enterprise network's DNS domains, comma-separated (corp.example.com,example.net)",
                ));
            }
            domains.push(d);
        }
        if domains.len() > MAX_DETECTION_DOMAINS {
            return Err(input_error(
                format!(
                    "--env-detection names {} domains; AMT keeps {MAX_DETECTION_DOMAINS}",
                    domains.len()
                ),
                "give at most five domains",
            ));
        }
        let mut rules = vec![
            WantRule {
                trigger: Trigger::Periodic,
                lifetime: 0,
                data: cira::periodic_interval_data(a.periodic_interval),
            },
            WantRule {
                trigger: Trigger::UserInitiated,
                lifetime: USER_INITIATED_LIFETIME,
                data: String::new(),
            },
        ];
        if a.alert {
            // The tunnel lifetime of an alert policy is the agent's choice (no source gives one).
            rules.push(WantRule {
                trigger: Trigger::Alert,
                lifetime: 0,
                data: String::new(),
            });
        }
        Ok(Cira {
            address,
            format,
            port: a.mps_port,
            user: a.mps_user.clone(),
            root_der,
            root_subject,
            rules,
            domains: (!domains.is_empty()).then_some(domains),
            force: a.force,
            random: a.generate_random_password,
            password_flag: a.mps_password.clone(),
            password_file: a.mps_password_file.clone(),
            password: None,
            password_resolved: false,
            applied: false,
            fallback_domain: format!(
                "{}.com",
                crate::wsman::envelope::uuid_message_id(&mut rand::thread_rng())
                    .trim_start_matches("uuid:")
            ),
        })
    }

    /// CIRA as a desired-state profile wants it: the flags' checks, and the MPS password given
    /// (resolved or generated already: nothing is read from the environment or asked for).
    pub fn with(a: &CiraArgs, password: Secret) -> Result<Cira, AgentError> {
        check_password(&password)?;
        let mut c = Cira::new(&CiraArgs {
            mps_password: None,
            mps_password_file: None,
            generate_random_password: false,
            ..a.clone()
        })?;
        c.password = Some(password);
        c.password_resolved = true;
        Ok(c)
    }

    /// Writes the server again even when AMT reports the same one (`--force`): the password is
    /// not readable.
    pub fn set_force(&mut self, force: bool) {
        self.force = force;
    }

    fn want_server(&self) -> String {
        format!("{}:{} (user {})", self.address, self.port, self.user)
    }
}

/// What AMT holds for CIRA.
pub struct CiraState {
    servers: Vec<MpsServer>,
    /// The user name AMT holds per server `Name`; `None` when AMT does not list its credentials.
    users: Option<BTreeMap<String, String>>,
    rules: Vec<PolicyRule>,
    applies: Vec<AppliesToMps>,
    user_initiated: u32,
    environment: Instance,
    domains: Vec<String>,
    roots: Vec<PublicKeyCertificate>,
}

/// The selector `key` of the reference property `prop` of an association instance.
fn reference_value(i: &Instance, prop: &str, key: &str) -> Option<String> {
    i.properties
        .iter()
        .find(|p| p.name == prop)
        .and_then(|p| match &p.value {
            PropertyValue::Element(e) => cira::reference_selectors(e)
                .into_iter()
                .find(|(n, _)| n == key)
                .map(|(_, v)| v),
            PropertyValue::Text(_) => None,
        })
}

/// User names per server, from the credentials and the contexts that tie them to servers.
fn read_users(t: &mut Target) -> Result<BTreeMap<String, String>, AgentError> {
    let creds: BTreeMap<String, String> = super::enumerate_all(t, cira::CREDENTIAL)?
        .iter()
        .map(cira::MpsCredential::from_instance)
        .map(|c| (c.instance_id, c.username))
        .collect();
    let mut users = BTreeMap::new();
    for ctx in super::enumerate_all(t, "AMT_RemoteAccessCredentialContext")? {
        if let (Some(cred), Some(server)) = (
            reference_value(&ctx, "ElementInContext", "InstanceID"),
            reference_value(&ctx, "ElementProvidingContext", "Name"),
        ) {
            if let Some(u) = creds.get(&cred) {
                users.insert(server, u.clone());
            }
        }
    }
    Ok(users)
}

impl Configure for Cira {
    type State = CiraState;

    fn name(&self) -> &'static str {
        "cira"
    }

    fn needs(&self) -> Needs {
        Needs::Activation
    }

    fn failure(&self) -> ExitCode {
        ExitCode::CiraConfigurationFailed
    }

    fn read(&mut self, t: &mut Target) -> Result<CiraState, AgentError> {
        if !self.password_resolved {
            self.password_resolved = true;
            self.password = if self.random {
                Some(random_password())
            } else {
                super::new_secret(
                    "MPS password",
                    self.password_flag.as_ref(),
                    self.password_file.as_deref(),
                    MPS_PASSWORD_ENV,
                    false,
                )?
            };
            if let Some(p) = &self.password {
                check_password(p)?;
            }
        }
        let servers: Vec<MpsServer> = super::enumerate_all(t, cira::SAP)?
            .iter()
            .map(MpsServer::from_instance)
            .collect();
        // Firmware that lists no credentials leaves the user name unknown, not the run failed.
        let users = match read_users(t) {
            Ok(u) => Some(u),
            Err(e) => {
                tracing::info!("AMT does not list the MPS user names ({e}); they are not compared");
                None
            }
        };
        let rules = super::enumerate_all(t, cira::RULE)?
            .iter()
            .map(PolicyRule::from_instance)
            .collect();
        let applies = super::enumerate_all(t, cira::APPLIES)?
            .iter()
            .map(AppliesToMps::from_instance)
            .collect();
        let uic = t.read(cira::get_user_initiated())?;
        let user_initiated = uic
            .get("EnabledState")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let environment = t.read(cira::get_environment_detection())?;
        let domains = environment
            .get_all("DetectionStrings")
            .map(|d| d.to_ascii_lowercase())
            .collect();
        let roots = super::enumerate_all(t, public_key::CERTIFICATE)?
            .iter()
            .map(PublicKeyCertificate::from_instance)
            .filter(|c| c.trusted_root)
            .collect();
        Ok(CiraState {
            servers,
            users,
            rules,
            applies,
            user_initiated,
            environment,
            domains,
            roots,
        })
    }

    fn plan(&self, _mode: ControlMode, s: &CiraState) -> Result<Plan, AgentError> {
        let mut plan = Plan::default();
        // 1. The MPS root.
        let has_root = s.roots.iter().any(|r| {
            B64.decode(r.x509_certificate.trim()).ok().as_deref() == Some(&self.root_der[..])
        });
        let root_b64 = B64.encode(&self.root_der);
        plan.setting(
            "MPS root certificate",
            if has_root {
                self.root_subject.clone()
            } else {
                "absent".into()
            },
            self.root_subject.clone(),
            || {
                vec![Step::Wsman(
                    public_key_management::add_trusted_root_certificate(&root_b64).checked(),
                )]
            },
        );
        // 2. The server.
        let server_text = |m: &MpsServer| {
            let user = s
                .users
                .as_ref()
                .and_then(|u| u.get(&m.name).cloned())
                .unwrap_or_else(|| "?".into());
            format!("{}:{} (user {user})", m.address, m.port)
        };
        let same_server = s.servers.len() == 1 && {
            let m = &s.servers[0];
            m.address.eq_ignore_ascii_case(&self.address)
                && m.port == self.port
                && m.info_format == self.format as u32
                && (!self.format.is_ip() || m.cn == self.address)
                && s.users
                    .as_ref()
                    .is_none_or(|u| u.get(&m.name).is_some_and(|n| *n == self.user))
        };
        let rewrite = !same_server || (self.force && !self.applied);
        let current_servers = if s.servers.is_empty() {
            "none".to_string()
        } else {
            s.servers
                .iter()
                .map(server_text)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if rewrite {
            let Some(password) = self.password.clone() else {
                return Err(input_error(
                    "AMT needs the MPS password to add the MPS, and none was given",
                    "set MPS_PASSWORD, or give --mps-password-file or --generate-random-password",
                ));
            };
            let mut steps: Vec<Step> = s
                .rules
                .iter()
                .map(|r| Step::Wsman(cira::delete_rule(&r.name)))
                .collect();
            steps.extend(
                s.servers
                    .iter()
                    .map(|m| Step::Wsman(cira::delete_server(&m.name))),
            );
            steps.push(Step::Wsman(
                cira::add_mp_server(&self.address, self.port, &self.user, &password).checked(),
            ));
            let desired = self.want_server();
            plan.changes
                .push(Change::new("MPS server", current_servers, desired, steps));
        } else {
            plan.kept.push(Kept::new("MPS server", current_servers));
            plan.kept.push(Kept::new(
                "MPS password",
                "kept (AMT never shows it; --force writes it again)",
            ));
        }
        // 3. The policies, applied to the server inside and outside the enterprise.
        let server_name = s
            .servers
            .first()
            .map(|m| m.name.clone())
            .filter(|_| !rewrite);
        let rule_ok = |w: &WantRule| {
            s.rules.iter().any(|r| {
                r.trigger == Some(w.trigger)
                    && r.tunnel_lifetime == w.lifetime
                    && r.extended_data.trim() == w.data
                    && {
                        let a: Vec<&AppliesToMps> =
                            s.applies.iter().filter(|a| a.rule == r.name).collect();
                        a.len() == 1
                            && Some(&a[0].server) == server_name.as_ref()
                            && a[0].mps_type == 2
                    }
            })
        };
        let policies_ok =
            !rewrite && s.rules.len() == self.rules.len() && self.rules.iter().all(rule_ok);
        let current_rules = if s.rules.is_empty() {
            "none".to_string()
        } else {
            s.rules
                .iter()
                .map(|r| {
                    let w = WantRule {
                        trigger: r.trigger.unwrap_or(Trigger::Alert),
                        lifetime: r.tunnel_lifetime,
                        data: r.extended_data.trim().to_string(),
                    };
                    let types: Vec<&str> = s
                        .applies
                        .iter()
                        .filter(|a| a.rule == r.name)
                        .map(|a| cira::mps_type_text(a.mps_type))
                        .collect();
                    format!("{} [{}]", w.text(), types.join(", "))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let desired_rules = format!(
            "{} [{}]",
            self.rules
                .iter()
                .map(WantRule::text)
                .collect::<Vec<_>>()
                .join(", "),
            cira::mps_type_text(2)
        );
        if policies_ok {
            plan.kept
                .push(Kept::new("remote access policies", desired_rules));
        } else {
            let mut steps: Vec<Step> = Vec::new();
            if !rewrite {
                // The server stays: its rules go (AMT refuses a second rule per trigger).
                steps.extend(
                    s.rules
                        .iter()
                        .map(|r| Step::Wsman(cira::delete_rule(&r.name))),
                );
            }
            // The rules name the server by the `Name` AMT gave it, read when each step runs.
            for w in &self.rules {
                let (address, port, w2) = (self.address.clone(), self.port, w.clone());
                steps.push(Step::Later(Later {
                    describe: format!(
                        "{}.AddRemoteAccessPolicyRule(Trigger={}, TunnelLifeTime={}, ExtendedData={}, MpServer=<{address}:{port}>)",
                        cira::SERVICE,
                        w.trigger as u32,
                        w.lifetime,
                        w.data
                    ),
                    exit: None,
                    build: Box::new(move |t: &mut Target| {
                        let name = server_named(t, &address, port)?;
                        Ok(cira::add_remote_access_policy_rule(
                            w2.trigger,
                            w2.lifetime,
                            &w2.data,
                            &name,
                        )
                        .checked())
                    }),
                }));
            }
            // One association per rule: the i-th of the server's is Put inside and outside.
            for i in 0..self.rules.len() {
                let (address, port) = (self.address.clone(), self.port);
                steps.push(Step::Later(Later {
                    describe: format!(
                        "{}.Put(ManagedElement=<{address}:{port}>, PolicySet=<policy {}>, MpsType=2, OrderOfAccess=0)",
                        cira::APPLIES,
                        i + 1
                    ),
                    exit: None,
                    build: Box::new(move |t: &mut Target| {
                        let name = server_named(t, &address, port)?;
                        let mut applies: Vec<AppliesToMps> = super::enumerate_all(t, cira::APPLIES)?
                            .iter()
                            .map(AppliesToMps::from_instance)
                            .filter(|a| a.server == name)
                            .collect();
                        applies.sort_by(|a, b| a.rule.cmp(&b.rule));
                        let a = applies.get(i).ok_or_else(|| {
                            AgentError::new(
                                ExitCode::CiraConfigurationFailed,
                                format!("AMT lists {} policies for {address}:{port}, not {}", applies.len(), i + 1),
                            )
                            .help("read what AMT holds with: amt-agent diagnostics wsman enumerate AMT_RemoteAccessPolicyAppliesToMPS")
                        })?;
                        Ok(cira::put_applies_to_mps(a, 2, 0))
                    }),
                }));
            }
            plan.changes.push(Change::new(
                "remote access policies",
                current_rules,
                desired_rules,
                steps,
            ));
        }
        // 4. User-initiated connections.
        plan.setting(
            "user-initiated connections",
            cira::user_initiated_text(s.user_initiated),
            cira::user_initiated_text(USER_INITIATED_BIOS_AND_OS),
            || {
                vec![Step::Wsman(cira::user_initiated_request_state_change(
                    USER_INITIATED_BIOS_AND_OS,
                ))]
            },
        );
        // 5. Environment detection.
        let want_domains: Vec<String> = match &self.domains {
            Some(d) => d.clone(),
            None if !s.domains.is_empty() => s.domains.clone(),
            None => vec![self.fallback_domain.clone()],
        };
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v.join(", ")
        };
        let env_current = if s.domains.is_empty() {
            "none".to_string()
        } else {
            sorted(&s.domains)
        };
        let env = s.environment.clone();
        plan.setting(
            "environment detection domains",
            env_current,
            sorted(&want_domains),
            || {
                vec![Step::Wsman(
                    cira::put_environment_detection(&env, &want_domains).checked(),
                )]
            },
        );
        Ok(plan)
    }

    fn after_apply(&mut self, _t: &mut Target) -> Result<(), AgentError> {
        self.applied = true;
        Ok(())
    }

    fn report(&self, s: &CiraState) -> (String, serde_json::Value) {
        let servers: Vec<serde_json::Value> = s
            .servers
            .iter()
            .map(|m| {
                json!({
                    "name": m.name,
                    "address": m.address,
                    "port": m.port,
                    "infoFormat": m.info_format,
                    "cn": m.cn,
                    "user": s.users.as_ref().and_then(|u| u.get(&m.name)),
                })
            })
            .collect();
        let policies: Vec<serde_json::Value> = s
            .rules
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "trigger": r.trigger.map(|t| t as u32),
                    "tunnelLifetime": r.tunnel_lifetime,
                    "periodicIntervalSeconds": cira::periodic_interval(&r.extended_data),
                    "servers": s.applies.iter().filter(|a| a.rule == r.name).map(|a| json!({"server": a.server, "mpsType": a.mps_type, "orderOfAccess": a.order})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let root = s.roots.iter().find(|r| {
            B64.decode(r.x509_certificate.trim()).ok().as_deref() == Some(&self.root_der[..])
        });
        let text = format!(
            "MPS {}; policies: {}; user-initiated connections: {}; environment detection: {}; MPS root {}",
            if s.servers.is_empty() {
                "none".to_string()
            } else {
                s.servers
                    .iter()
                    .map(|m| format!("{}:{}", m.address, m.port))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            if s.rules.is_empty() {
                "none".to_string()
            } else {
                s.rules.iter().map(|r| r.name.clone()).collect::<Vec<_>>().join(", ")
            },
            cira::user_initiated_text(s.user_initiated),
            if s.domains.is_empty() { "none".to_string() } else { s.domains.join(", ") },
            if root.is_some() { "trusted" } else { "not trusted" }
        );
        (
            text,
            json!({
                "mpsServers": servers,
                "policies": policies,
                "userInitiatedConnection": {"state": s.user_initiated, "text": cira::user_initiated_text(s.user_initiated)},
                "environmentDetection": s.domains,
                "mpsRootCertificate": {"subject": self.root_subject, "trusted": root.is_some(), "handle": root.map(|r| r.instance_id.clone())},
            }),
        )
    }
}

/// The `Name` AMT gave the server at `address:port` (read when the steps that need it run).
fn server_named(t: &mut Target, address: &str, port: u16) -> Result<String, AgentError> {
    super::enumerate_all(t, cira::SAP)?
        .iter()
        .map(MpsServer::from_instance)
        .find(|m| m.address.eq_ignore_ascii_case(address) && m.port == port)
        .map(|m| m.name)
        .ok_or_else(|| {
            AgentError::new(
                ExitCode::CiraConfigurationFailed,
                format!("AMT lists no MPS {address}:{port} after AddMpServer"),
            )
            .help("read what AMT holds with: amt-agent diagnostics wsman enumerate AMT_ManagementPresenceRemoteSAP")
        })
}

/// A call that is only planned, never sent: for tests of the plan.
#[cfg(test)]
fn describe_all(plan: &Plan) -> Vec<String> {
    plan.steps().map(Step::describe).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_pem() -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/cira/mps-root.pem",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn the_mps_address_follows_rpc_gos_rule() {
        assert_eq!(check_address("mps.example.com").unwrap(), InfoFormat::Fqdn);
        assert_eq!(check_address("192.168.0.208").unwrap(), InfoFormat::Ipv4);
        assert_eq!(check_address("fd00::5").unwrap(), InfoFormat::Ipv6);
        for bad in [
            "https://mps.example.com",
            "mps",
            "mps.example.com:4433",
            "-mps.example.com",
            "mps..com",
        ] {
            let e = check_address(bad).unwrap_err();
            assert_eq!(e.exit, ExitCode::InvalidUserInput, "{bad}");
        }
    }

    #[test]
    fn the_root_must_be_a_ca_and_may_come_as_base64() {
        let der = x509_parser::pem::parse_x509_pem(root_pem().as_bytes())
            .unwrap()
            .1
            .contents;
        assert_eq!(load_root(&B64.encode(&der)).unwrap(), der);
        assert!(check_root(&der).unwrap().contains("Test MPS Root CA"));
        let server = std::fs::read(format!(
            "{}/tests/fixtures/cira/mps-server.pem",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let leaf = x509_parser::pem::parse_x509_pem(&server)
            .unwrap()
            .1
            .contents;
        assert!(check_root(&leaf)
            .unwrap_err()
            .to_string()
            .contains("not a CA"));
        assert!(load_root("not base64 !").is_err());
    }

    #[test]
    fn a_random_password_meets_mps_and_amt_rules() {
        for _ in 0..50 {
            let p = random_password();
            let s = p.expose();
            assert_eq!(s.chars().count(), 16);
            assert!(s.chars().any(|c| c.is_ascii_uppercase()));
            assert!(s.chars().any(|c| c.is_ascii_lowercase()));
            assert!(s.chars().any(|c| c.is_ascii_digit()));
            assert!(s.chars().any(|c| "!@#$%^*()".contains(c)));
            check_password(&p).unwrap();
        }
        assert!(check_password(&Secret::new("12345678901234567")).is_err());
    }

    fn cira(extra: &[&str]) -> Cira {
        use clap::Parser;
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            a: CiraArgs,
        }
        let pem_path = format!(
            "{}/tests/fixtures/cira/mps-root.pem",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut argv = vec![
            "x",
            "--mps-address",
            "mps.example.com",
            "--mps-cert",
            &pem_path,
        ];
        argv.extend_from_slice(extra);
        let mut c = Cira::new(&P::parse_from(argv).a).unwrap();
        c.password = Some(Secret::new("Mps-P@ss1"));
        c
    }

    fn empty() -> CiraState {
        CiraState {
            servers: vec![],
            users: Some(BTreeMap::new()),
            rules: vec![],
            applies: vec![],
            user_initiated: 32768,
            environment: Instance::default(),
            domains: vec![],
            roots: vec![],
        }
    }

    #[test]
    fn a_fresh_machine_gets_rpss_sequence_with_the_password_redacted() {
        let p = cira(&["--env-detection", "corp.example.com"])
            .plan(ControlMode::Ccm, &empty())
            .unwrap();
        let calls = describe_all(&p);
        assert!(calls[0].starts_with("AMT_PublicKeyManagementService.AddTrustedRootCertificate("));
        assert_eq!(
            calls[1],
            "AMT_RemoteAccessService.AddMpServer(AccessInfo=mps.example.com, InfoFormat=201, Port=4433, AuthMethod=2, Username=admin, Password=***, CN=)"
        );
        assert_eq!(
            calls[2],
            "AMT_RemoteAccessService.AddRemoteAccessPolicyRule(Trigger=2, TunnelLifeTime=0, ExtendedData=AAAAAAAAABk=, MpServer=<mps.example.com:4433>)"
        );
        assert!(
            calls[3].contains("Trigger=0, TunnelLifeTime=300"),
            "{}",
            calls[3]
        );
        assert!(calls[4].starts_with("AMT_RemoteAccessPolicyAppliesToMPS.Put("));
        assert!(calls[5].starts_with("AMT_RemoteAccessPolicyAppliesToMPS.Put("));
        assert_eq!(
            calls[6],
            "AMT_UserInitiatedConnectionService.RequestStateChange(RequestedState=32771)"
        );
        assert!(calls[7].starts_with("AMT_EnvironmentDetectionSettingData.Put("));
        assert_eq!(calls.len(), 8);
        assert!(!calls.join(" ").contains("Mps-P@ss1"));
    }

    #[test]
    fn without_a_password_only_a_plan_that_keeps_the_server_runs() {
        let mut c = cira(&[]);
        c.password = None;
        let e = c.plan(ControlMode::Ccm, &empty()).unwrap_err();
        assert_eq!(e.exit, ExitCode::InvalidUserInput);
        assert!(e.to_string().contains("MPS password"));
    }
}
