//! `cert check FILE`: the provisioning-certificate doctor (rules in
//! [`crate::provisioning::rules`]), offline or against this machine's AMT over AMTHI; and
//! `cert hash FILE`: the fingerprints AMT and MEBx show.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use serde_json::json;

use super::session::AmtConnArgs;
use crate::amthi::{AmthiClient, ControlMode};
use crate::error::{AgentError, ExitCode};
use crate::heci::MeiDevice;
use crate::provisioning::rules::{self, Finding, Machine, Outcome, WsmanDomains};
use crate::provisioning::{self as prov, ProvisioningCert};
use crate::secret::Secret;
use crate::secret_source::SecretSource;
use crate::wsman::client::Credentials;

#[derive(Args, Debug)]
pub struct CertArgs {
    #[command(subcommand)]
    pub what: CertWhat,
}

#[derive(Subcommand, Debug)]
pub enum CertWhat {
    /// Check a provisioning certificate against every firmware rule for ACM activation; exit 0
    /// only when activation would pass.
    Check(Box<CertCheckArgs>),
    /// Print the SHA-1/256/384 fingerprints of each certificate, as AMT and MEBx show them.
    Hash(CertHashArgs),
}

/// Where the PFX password comes from: `--provisioning-cert-password-file`,
/// `--provisioning-cert-password` (warned), PROVISIONING_CERT_PASSWORD, a prompt.
#[derive(Args, Debug, Clone, Default)]
pub struct CertPasswordArgs {
    /// The PKCS#12 password (prefer PROVISIONING_CERT_PASSWORD or the -file flag).
    #[arg(long)]
    pub provisioning_cert_password: Option<crate::secret::Secret>,
    /// A file holding the PKCS#12 password (first line; must not be readable by others).
    #[arg(long)]
    pub provisioning_cert_password_file: Option<PathBuf>,
}

impl CertPasswordArgs {
    /// The password, or empty (a PFX exported without one) when no source has it.
    pub fn resolve(&self) -> Result<Secret, AgentError> {
        let src = SecretSource {
            what: "provisioning certificate password",
            flag: self
                .provisioning_cert_password
                .as_ref()
                .map(crate::secret::Secret::expose),
            file: self.provisioning_cert_password_file.as_deref(),
            env: &["PROVISIONING_CERT_PASSWORD"],
        };
        Ok(src.resolve(true)?.unwrap_or_default())
    }
}

#[derive(Args, Debug)]
pub struct CertCheckArgs {
    /// A .pfx/.p12 file, a PEM file (chain + private key), or base64 of a PFX.
    pub file: String,
    /// Use only the file and the flags; do not read this machine's AMT.
    #[arg(long)]
    pub offline: bool,
    /// The AMT version to check for (e.g. 16.1); default: this machine's, or the newest rules.
    #[arg(long, value_name = "V")]
    pub amt_version: Option<String>,
    /// With --offline: the DNS suffix AMT trusts (its PKI DNS suffix, else the DHCP option 15
    /// domain of its wired LAN). Online AMT's own suffixes are read and -d never overrides them; it
    /// only stands in when AMT cannot tell.
    #[arg(short = 'd', long = "dns-suffix", value_name = "DNS_SUFFIX")]
    pub dns_suffix: Option<String>,
    #[command(flatten)]
    pub password: CertPasswordArgs,
    #[command(flatten)]
    pub conn: AmtConnArgs,
}

#[derive(Args, Debug)]
pub struct CertHashArgs {
    /// A .pfx/.p12 file, a PEM or DER certificate, or base64 of a PFX.
    pub file: String,
    #[command(flatten)]
    pub password: CertPasswordArgs,
}

pub fn run(
    device: &crate::device::DeviceSpec,
    args: &CertArgs,
    json: bool,
) -> Result<ExitCode, AgentError> {
    match &args.what {
        CertWhat::Check(a) => {
            let machine = if a.offline {
                Machine::default()
            } else {
                let dev = crate::device::open(device).map_err(|e| {
                    AgentError::from(e)
                        .context("cannot read this machine's AMT (hashes, PKI DNS suffix, version)")
                        .help("run as root on the AMT machine, or check the file alone with --offline")
                })?;
                // In CCM, WS-MAN needs the AMT password: from a file or the environment, never a
                // prompt just for the check.
                let admin = SecretSource {
                    what: "AMT password",
                    flag: a.conn.password.as_ref().map(Secret::expose),
                    file: a.conn.password_file.as_deref(),
                    env: &["AMT_PASSWORD"],
                }
                .resolve(false)?;
                read_machine(dev, &a.conn, admin.as_ref())?
            };
            check(a, machine, json)
        }
        CertWhat::Hash(a) => hash(a, json),
    }
}

/// Reads the machine: version, hashes and PKI DNS suffix over AMTHI (exit 127 when the hash list
/// cannot be read), then the firmware's TrustedDNSSuffix and DhcpDNSSuffix over WS-MAN.
pub fn read_machine(
    dev: Arc<dyn MeiDevice>,
    conn: &AmtConnArgs,
    admin_password: Option<&Secret>,
) -> Result<Machine, AgentError> {
    let mut m = prov::read_machine(dev.clone()).map_err(|e| {
        let mut err = AgentError::from(e)
            .context("cannot read AMT's trusted hashes, PKI DNS suffix or version over AMTHI");
        if err.exit == ExitCode::GenericFailure {
            err.exit = ExitCode::CertHashesUnreadable;
        }
        err.help("check the file alone with --offline (and --amt-version, -d)")
    })?;
    let wsman = read_wsman_domains(dev, conn, admin_password);
    match &wsman {
        Ok(w) => tracing::debug!(
            trusted_dns_suffix = %w.trusted_dns_suffix,
            dhcp_dns_suffix = %w.dhcp_dns_suffix,
            "AMT_SetupAndConfigurationService: the domains AMT trusts"
        ),
        Err(e) => tracing::info!("AMT's DHCP and trusted DNS suffixes could not be read: {e}"),
    }
    if let Some(d) = m.domains.as_mut() {
        d.wsman = wsman;
    }
    Ok(m)
}

/// The domains AMT itself reports over WS-MAN (`AMT_SetupAndConfigurationService`:
/// `TrustedDNSSuffix`, the PKI DNS suffix; `DhcpDNSSuffix`, option 15 of AMT's own DHCP lease),
/// read as the local system account before activation, as `admin` with `admin_password` in CCM.
/// `Err` says why not (the caller decides what stands in).
pub fn read_wsman_domains(
    dev: Arc<dyn MeiDevice>,
    conn: &AmtConnArgs,
    admin_password: Option<&Secret>,
) -> Result<WsmanDomains, String> {
    let mut amthi = AmthiClient::new(dev.clone());
    let mode = amthi
        .control_mode()
        .map_err(|e| format!("the control mode is unreadable: {e}"))?;
    let creds = match (mode, admin_password) {
        (ControlMode::None, _) => {
            let lsa = amthi
                .local_system_account()
                .map_err(|e| format!("the local system account is unreadable: {e}"))?;
            Credentials::new(lsa.username, lsa.password)
        }
        (_, Some(p)) => Credentials::new("admin", p.clone()),
        (m, None) => {
            return Err(format!(
                "AMT is in {} and WS-MAN needs the AMT password (AMT_PASSWORD or --password-file)",
                m.text()
            ))
        }
    };
    drop(amthi);
    let mut s = super::session::connect_as(dev, conn, creds, mode).map_err(|e| e.to_string())?;
    let sc = s
        .call(crate::wsman::classes::setup_and_configuration::get())
        .map_err(|e| format!("AMT_SetupAndConfigurationService Get failed: {e}"))?;
    // Firmware leaves an unset property out of the instance: absent is empty.
    Ok(WsmanDomains {
        trusted_dns_suffix: sc.trusted_dns_suffix.unwrap_or_default(),
        dhcp_dns_suffix: sc.dhcp_dns_suffix.unwrap_or_default(),
    })
}

fn load(file: &str, pw: &CertPasswordArgs) -> Result<ProvisioningCert, AgentError> {
    prov::load::load(file, &|| pw.resolve())
}

fn apply_flags(
    machine: &mut Machine,
    amt_version: Option<&str>,
    suffix: Option<&str>,
) -> Result<(), AgentError> {
    if let Some(v) = amt_version {
        machine.amt_version = Some(prov::parse_amt_version(v).ok_or_else(|| {
            AgentError::new(
                ExitCode::IncorrectCommandLineParameters,
                format!("--amt-version '{v}' is not a version such as 16.1"),
            )
        })?);
    }
    if let Some(d) = suffix {
        machine.dns_suffix_flag = Some(d.to_string());
    }
    Ok(())
}

fn check(a: &CertCheckArgs, mut machine: Machine, json: bool) -> Result<ExitCode, AgentError> {
    apply_flags(
        &mut machine,
        a.amt_version.as_deref(),
        a.dns_suffix.as_deref(),
    )?;
    let cert = load(&a.file, &a.password)?;
    let findings = rules::run(&rules::Input {
        cert: &cert,
        machine: &machine,
        now: prov::now(),
    });
    let exit = verdict_exit(&findings);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report_json(&cert, &machine, &findings, exit))
                .unwrap_or_default()
        );
    } else {
        print!("{}", report_text(&a.file, &cert, &machine, &findings));
    }
    Ok(exit)
}

/// 0 when activation would pass, else the first error's exit code.
pub fn verdict_exit(findings: &[Finding]) -> ExitCode {
    rules::first_error(findings)
        .map(|f| f.rule.exit)
        .unwrap_or(ExitCode::Success)
}

pub fn describe_machine(m: &Machine) -> String {
    let v = m
        .amt_version
        .map(|(a, b)| format!("AMT {a}.{b}"))
        .unwrap_or_else(|| "AMT version unknown (rules for AMT 15+ apply)".into());
    let hashes = match &m.hashes {
        Some(h) => format!(
            "{} trusted hashes ({} active)",
            h.len(),
            h.iter().filter(|x| x.is_active).count()
        ),
        None => "hash list not read (offline)".into(),
    };
    format!(
        "{v}; {hashes}; trusted domain: {}",
        m.trusted_domain().text()
    )
}

pub fn report_text(
    file: &str,
    cert: &ProvisioningCert,
    m: &Machine,
    findings: &[Finding],
) -> String {
    let mut s = format!(
        "checking {file} ({}, {} certificate(s) on the chain)\n",
        cert.format,
        cert.chain.len()
    );
    for (k, c) in cert.chain.iter().enumerate() {
        let role = if k == 0 {
            "leaf"
        } else if k + 1 == cert.chain.len() && c.is_self_issued() {
            "root"
        } else {
            "issuer"
        };
        s += &format!("  {role:>6}: {}\n", c.name());
    }
    for c in &cert.unrelated {
        s += &format!("  unused: {} (not on the leaf's path)\n", c.name());
    }
    s += &format!("machine: {}\n\n", describe_machine(m));
    for f in findings.iter().filter(|f| f.is_failure()) {
        s += &f.render();
        s += "\n";
    }
    let count = |o: Outcome| findings.iter().filter(|f| f.outcome == o).count();
    let (e, w) = (count(Outcome::Error), count(Outcome::Warn));
    s += &format!(
        "{} error(s), {} warning(s), {} check(s) passed, {} not applicable\n",
        e,
        w,
        count(Outcome::Pass),
        count(Outcome::NotApplicable)
    );
    match rules::first_error(findings) {
        Some(f) => {
            s += &format!(
                "result: activation would fail: {} ({} on {})\n",
                f.rule.firmware.text(),
                f.rule.id,
                f.certificate
            )
        }
        None => s += "result: activation would pass\n",
    }
    s
}

pub fn report_json(
    cert: &ProvisioningCert,
    m: &Machine,
    findings: &[Finding],
    exit: ExitCode,
) -> serde_json::Value {
    let certs: Vec<_> = cert
        .chain
        .iter()
        .map(
            |c| json!({"subject": c.subject, "issuer": c.issuer, "selfSigned": c.is_self_issued()}),
        )
        .collect();
    let unused: Vec<_> = cert.unrelated.iter().map(|c| c.subject.clone()).collect();
    json!({
        "format": cert.format,
        "chain": certs,
        "unused": unused,
        "machine": describe_machine(m),
        "trustedDomain": m.trusted_domain().to_json(),
        "results": findings.iter().map(Finding::to_json).collect::<Vec<_>>(),
        "wouldPass": rules::first_error(findings).is_none(),
        "exitCode": exit.code(),
    })
}

fn hash(a: &CertHashArgs, json: bool) -> Result<ExitCode, AgentError> {
    let cert = load(&a.file, &a.password)?;
    let all: Vec<_> = cert.chain.iter().chain(cert.unrelated.iter()).collect();
    let mut out = Vec::new();
    let mut text = String::new();
    for c in all {
        let role = if c.is_self_issued() {
            " (self-signed root)"
        } else {
            ""
        };
        text += &format!("{}{role}\n", c.name());
        let mut entry = serde_json::Map::new();
        entry.insert("subject".into(), json!(c.subject));
        entry.insert("selfSigned".into(), json!(c.is_self_issued()));
        for (name, plain, colons) in prov::load::fingerprints(&c.der) {
            text += &format!("  {name:<8} {plain}\n  {:<8} {colons}\n", "");
            entry.insert(name.to_string(), json!(plain));
        }
        out.push(serde_json::Value::Object(entry));
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!(out)).unwrap_or_default()
        );
    } else {
        print!("{text}");
    }
    Ok(ExitCode::Success)
}
