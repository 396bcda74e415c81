//! `activate --local --acm`: host-based activation to admin control mode with a provisioning
//! certificate (rpc-go.md §5.3, provisioning.md §3), and the CCM → ACM upgrade.
//!
//! The doctor runs first and refuses a doomed activation (exit with the broken rule's code;
//! `--force` goes on). When AMT refuses AddNextCertInChain or AdminSetup, the rules run again on
//! the chain that was sent and say which certificate broke which rule, and the fix.
//!
//! On TLS-enforced firmware (AMT 19+) the [`hbased`] flow replaces AddNextCertInChain/AdminSetup.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use serde_json::json;

use super::cert::{read_machine, CertPasswordArgs};
use super::session::{self, AmtConnArgs, AmtSession};
use crate::amthi::{AmthiClient, ControlMode};
use crate::error::{AgentError, ExitCode};
use crate::heci::MeiDevice;
use crate::provisioning::rules::{self, Finding, FirmwareAnswer, Machine, Outcome, TrustedDomain};
use crate::provisioning::{self as prov, ProvisioningCert, SigningDigest};
use crate::secret::Secret;
use crate::secret_source::SecretSource;
use crate::wsman::calls::{self, Call, WsmanError};
use crate::wsman::classes::{authorization, general, host_based_setup, setup_and_configuration};
use crate::wsman::returns::{AddNextCertInChainReturn, AdminSetupReturn};

mod hbased;

/// The placeholder `activate` of this branch: only `--local --acm`. The CCM work brings the real
/// `ActivateArgs`; it then flattens [`LocalAcmArgs`] and calls [`run`] for `--acm`.
/// The flags of local ACM activation.
#[derive(Args, Debug, Clone, Default)]
pub struct LocalAcmArgs {
    /// The provisioning certificate: a .pfx/.p12 file, a PEM file (chain + key), or base64 of a PFX.
    #[arg(long, value_name = "FILE|BASE64")]
    pub provisioning_cert: Option<String>,
    #[command(flatten)]
    pub cert_password: CertPasswordArgs,
    /// The MEBx password to set after activation (prefer MEBX_PASSWORD or --mebx-password-file).
    #[arg(long)]
    pub mebx_password: Option<crate::secret::Secret>,
    /// A file holding the MEBx password (first line; must not be readable by others).
    #[arg(long)]
    pub mebx_password_file: Option<PathBuf>,
    /// Activate even when the certificate doctor predicts a failure.
    #[arg(long)]
    pub force: bool,
}

pub fn run(
    device: Arc<dyn MeiDevice>,
    args: &LocalAcmArgs,
    dns_suffix: Option<String>,
    conn: &AmtConnArgs,
    json: bool,
) -> Result<ExitCode, AgentError> {
    let source = args.provisioning_cert.as_deref().ok_or_else(|| {
        AgentError::new(
            ExitCode::IncorrectCommandLineParameters,
            "ACM activation needs --provisioning-cert FILE|BASE64",
        )
    })?;
    let cert = prov::load::load(source, &|| args.cert_password.resolve())?;
    activate(device, &cert, args, dns_suffix, conn, None, Some(json))
}

/// Secrets a caller already holds (a desired-state profile) instead of the flags, files,
/// environment or prompt of the command line.
pub struct GivenSecrets {
    /// The new admin password; in CCM (an upgrade) the one AMT has now.
    pub amt_password: Secret,
    pub mebx_password: Option<Secret>,
}

/// ACM activation (or the CCM → ACM upgrade) with a loaded certificate. `given` replaces the
/// command line's secret sources; `out` is `Some(json)` to print the result, `None` for a caller
/// that reports itself (`apply`).
pub fn activate(
    device: Arc<dyn MeiDevice>,
    cert: &ProvisioningCert,
    args: &LocalAcmArgs,
    dns_suffix: Option<String>,
    conn: &AmtConnArgs,
    given: Option<&GivenSecrets>,
    out: Option<bool>,
) -> Result<ExitCode, AgentError> {
    let mode = AmthiClient::new(device.clone())
        .control_mode()
        .map_err(|e| AgentError::from(e).context("cannot read the control mode"))?;
    if mode == ControlMode::Acm {
        return Err(AgentError::new(
            ExitCode::UnableToActivate,
            "the device is already activated in admin control mode",
        )
        .help("deactivate it first, or leave it as it is"));
    }
    let upgrade = mode == ControlMode::Ccm;

    // The AMT password: the new one for AdminSetup; in CCM the current one, which WS-MAN needs
    // for the firmware's DHCP domain and the upgrade, so it is read before the doctor there.
    let password_source = SecretSource {
        what: "AMT password",
        flag: conn.password.as_ref().map(crate::secret::Secret::expose),
        file: conn.password_file.as_deref(),
        env: &["AMT_PASSWORD"],
    };
    let early_password = if let Some(g) = given {
        Some(g.amt_password.clone())
    } else if upgrade {
        password_source.resolve(true)?
    } else {
        None
    };

    // The doctor, on what AMT will see: the domain AMT trusts is read from the firmware (PKI DNS
    // suffix over AMTHI, TrustedDNSSuffix and DhcpDNSSuffix over WS-MAN); `-d` stands in only
    // when AMT cannot tell.
    let mut machine = read_machine(device.clone(), conn, early_password.as_ref())?;
    machine.dns_suffix_flag = dns_suffix.clone();
    note_ignored_flag(&machine, dns_suffix.as_deref());
    let findings = doctor(cert, &machine);
    let errors: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.outcome == Outcome::Error)
        .collect();
    if let Some(first) = errors.first() {
        for f in &errors {
            eprint!("{}", f.render());
        }
        if !args.force {
            let mut err = AgentError::new(
                first.rule.exit,
                format!(
                    "refusing to activate: the provisioning certificate breaks {} firmware rule(s); {} ({} on {})",
                    errors.len(),
                    first.rule.firmware.text(),
                    first.rule.id,
                    first.certificate
                ),
            );
            for f in &errors {
                err = err.cause(format!("[{}] {}", f.rule.id, f.detail));
            }
            return Err(err.help(format!("{} (or pass --force to try anyway)", first.fix())));
        }
        tracing::warn!(
            "--force: activating although the doctor predicts {}",
            first.rule.firmware.text()
        );
    }

    let password = match early_password {
        Some(p) => p,
        None => password_source.resolve(true)?.ok_or_else(|| {
            AgentError::new(
                ExitCode::MissingOrIncorrectPassword,
                if upgrade {
                    "the AMT password is needed (the device is in client control mode)"
                } else {
                    "the new AMT password is needed"
                },
            )
            .help("set AMT_PASSWORD, or pass --password-file FILE")
        })?,
    };
    let mebx = if let Some(g) = given {
        g.mebx_password.clone()
    } else {
        SecretSource {
            what: "MEBx password",
            flag: args
                .mebx_password
                .as_ref()
                .map(crate::secret::Secret::expose),
            file: args.mebx_password_file.as_deref(),
            env: &["MEBX_PASSWORD"],
        }
        .resolve(false)?
    };

    if tls_enforced(&device, &machine) {
        if upgrade {
            // rpc-go.md §5.4 describes activation from pre-provisioning only (UNCONFIRMED for CCM).
            return Err(AgentError::new(
                ExitCode::UnableToActivate,
                "this device enforces TLS on its local ports (AMT 19+): the CCM → ACM upgrade is not supported there",
            )
            .help("deactivate it (amt-agent deactivate --local), then activate in ACM"));
        }
        return hbased::run(&device, conn, cert, &machine, password, mebx, args, out);
    }

    let mut s = if upgrade {
        // An upgrade authenticates with the password AMT has now, resolved once above (resolving
        // it again would prompt again).
        session::connect_as(
            device.clone(),
            conn,
            crate::wsman::client::Credentials::new(
                conn.user.clone().unwrap_or_else(|| "admin".into()),
                password.clone(),
            ),
            mode,
        )?
    } else {
        session::connect(device.clone(), conn)?
    };
    let mut ids = 0u32;
    let realm = call(&mut s, &mut ids, general::get())
        .map_err(|e| {
            e.err
                .context("cannot read AMT_GeneralSettings (the Digest realm)")
                .exit_as(ExitCode::GeneralSettingsFailed)
        })?
        .digest_realm;
    let hbs = call(&mut s, &mut ids, host_based_setup::get()).map_err(|e| {
        e.err
            .context("cannot read IPS_HostBasedSetupService (the configuration nonce)")
            .exit_as(ExitCode::HostBasedSetupFailed)
    })?;

    // The chain, leaf first, root last (provisioning.md §2.5).
    let n = cert.chain.len();
    for (k, c) in cert.chain.iter().enumerate() {
        let r = call(
            &mut s,
            &mut ids,
            host_based_setup::add_next_cert_in_chain(&c.der, k == 0, k + 1 == n),
        );
        if let Err(e) = r {
            return Err(firmware_refused(e, cert, &machine, k));
        }
        tracing::info!(certificate = %c.name(), "AddNextCertInChain accepted");
    }

    let key = cert.usable_key("cannot sign", ExitCode::SigningFailed)?;
    let digest = signing_digest(cert, &machine);
    let mc = calls::mc_nonce(&mut rand::thread_rng());
    let sig = key
        .sign(digest, &calls::signing_input(&hbs.configuration_nonce, &mc))
        .map_err(|e| AgentError::new(ExitCode::SigningFailed, e))?;
    let (method, result) = if upgrade {
        let r = call(
            &mut s,
            &mut ids,
            host_based_setup::upgrade_client_to_admin(&mc, digest.signing_algorithm(), &sig),
        );
        ("UpgradeClientToAdmin", r)
    } else {
        let nap = calls::network_admin_password(&realm, &password);
        let r = call(
            &mut s,
            &mut ids,
            host_based_setup::admin_setup(
                host_based_setup::HTTP_DIGEST_MD5_A1,
                &nap,
                &mc,
                digest.signing_algorithm(),
                &sig,
            ),
        );
        ("AdminSetup", r)
    };
    if let Err(e) = result {
        if e.err.exit != ExitCode::AmtConnectionFailed {
            return Err(firmware_refused(e, cert, &machine, 0));
        }
        // The port stack restarts on commit: a dropped connection is judged by the control mode.
        tracing::info!("{method}: the connection dropped; reading the control mode");
    }

    // As admin from here on.
    s.client
        .set_credentials(crate::wsman::client::Credentials::new(
            "admin",
            password.clone(),
        ));
    let mut notes = Vec::new();
    if upgrade {
        let dp = calls::digest_password_b64(&realm, &password);
        if let Err(e) = call(
            &mut s,
            &mut ids,
            authorization::set_admin_acl_entry_ex("admin", &dp),
        ) {
            notes.push(format!("SetAdminAclEntryEx failed: {}", e.err.message));
        }
    }
    if let Some(m) = &mebx {
        if let Err(e) = call(
            &mut s,
            &mut ids,
            setup_and_configuration::set_mebx_password(m),
        ) {
            notes.push(format!("SetMEBxPassword failed: {}", e.err.message));
        }
    }

    let after = confirm_mode(&device)?;
    if after != ControlMode::Acm {
        return Err(AgentError::new(
            ExitCode::InvalidControlMode,
            format!("{method} was sent but AMT reports {}", after.text()),
        )
        .help(
            "run amt-agent amtinfo --mode, then retry; capture a trace with -vvv if it persists",
        ));
    }
    report(
        out,
        json!({
            "method": method,
            "upgradedFromCcm": upgrade,
            "signingAlgorithm": digest.signing_algorithm(),
        }),
        &notes,
        &format!(
            "activated in admin control mode{} ({} certificate(s) sent, SigningAlgorithm {})",
            if upgrade {
                " (upgraded from client control mode)"
            } else {
                ""
            },
            n,
            digest.signing_algorithm()
        ),
    );
    Ok(ExitCode::Success)
}

/// The success of either ACM flow: the warnings, then with `--json` the status, `fields` and the
/// warnings as JSON, else `line`.
fn report(out: Option<bool>, fields: serde_json::Value, notes: &[String], line: &str) {
    for n in notes {
        tracing::warn!("{n}");
    }
    let Some(json) = out else {
        tracing::info!("{line}");
        return;
    };
    if json {
        let mut out = json!({"status": "success", "controlMode": "ACM"});
        if let (Some(o), serde_json::Value::Object(f)) = (out.as_object_mut(), fields) {
            o.extend(f);
            o.insert("warnings".into(), json!(notes));
        }
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        println!("{line}");
    }
}

/// AMT 19+ (or any firmware whose watchdog flags say so) enforces TLS on its local ports and has
/// no AdminSetup: ACM goes through secure host-based configuration (rpc-go.md §5.4).
fn tls_enforced(device: &Arc<dyn MeiDevice>, machine: &Machine) -> bool {
    let flags = crate::amthi::client::amt_enabled_flags(
        device.as_ref(),
        crate::amthi::client::DEFAULT_TIMEOUT,
    )
    .map(|f| f.new_interface() && f.tls_enforced())
    .unwrap_or(false);
    flags || machine.amt_version.is_some_and(|(major, _)| major >= 19)
}

/// `-d` names a domain, but AMT reports the one it trusts: say that the flag is not used.
fn note_ignored_flag(machine: &Machine, flag: Option<&str>) {
    let Some(d) = flag else { return };
    if let TrustedDomain::Suffix {
        suffix,
        source,
        stand_in_because: None,
    } = machine.trusted_domain()
    {
        if !d.trim().trim_end_matches('.').eq_ignore_ascii_case(&suffix) {
            tracing::warn!(
                "-d {d} is not used: AMT trusts {suffix}, {}, and the certificate's CN is checked against that",
                source.text()
            );
        }
    }
}

pub(crate) fn doctor(cert: &ProvisioningCert, machine: &Machine) -> Vec<Finding> {
    rules::run(&rules::Input {
        cert,
        machine,
        now: prov::now(),
    })
}

/// SHA-384 (SigningAlgorithm 3) only for a SHA-384 leaf on AMT 21+, where field reports say the
/// firmware takes it; SHA-256 otherwise (provisioning.md §3.2, §3.5).
fn signing_digest(cert: &ProvisioningCert, m: &Machine) -> SigningDigest {
    let sha384_leaf = cert
        .chain
        .first()
        .is_some_and(|c| c.signature_digest == "SHA-384");
    match m.amt_version {
        Some((major, _)) if major >= 21 && sha384_leaf => SigningDigest::Sha384,
        _ => SigningDigest::Sha256,
    }
}

trait ExitAs {
    fn exit_as(self, code: ExitCode) -> Self;
}

impl ExitAs for AgentError {
    /// Keeps connection and credential codes; a WS-MAN failure gets rpc-go's step code.
    fn exit_as(mut self, code: ExitCode) -> AgentError {
        if self.exit == ExitCode::WsmanMessageError {
            self.exit = code;
        }
        self
    }
}

/// A failed call: the error, and the method's non-zero ReturnValue when that is what failed.
struct Failure {
    err: Box<AgentError>,
    return_value: Option<(String, u32)>,
}

impl From<AgentError> for Failure {
    fn from(err: AgentError) -> Failure {
        Failure {
            err: Box::new(err),
            return_value: None,
        }
    }
}

impl From<Failure> for AgentError {
    fn from(f: Failure) -> AgentError {
        *f.err
    }
}

/// One typed call over the session.
fn call<T>(s: &mut AmtSession, ids: &mut u32, c: Call<T>) -> Result<T, Failure> {
    *ids += 1;
    let env = c.render(&ids.to_string());
    let r = s
        .runtime
        .block_on(s.client.post(&env))
        .map_err(AgentError::from)?;
    c.decode_response(&r).map_err(|e| {
        let return_value = match &e {
            WsmanError::ReturnValue { method, value, .. } => Some((method.clone(), *value)),
            _ => None,
        };
        Failure {
            err: Box::new(AgentError::from(e)),
            return_value,
        }
    })
}

/// The firmware refused a chain call (certificate `k`) or AdminSetup: say which rule explains it.
fn firmware_refused(
    f: Failure,
    cert: &ProvisioningCert,
    machine: &Machine,
    k: usize,
) -> AgentError {
    let Some((method, value)) = f.return_value else {
        return *f.err;
    };
    let e = f.err;
    let answer = match method.as_str() {
        "AddNextCertInChain" => {
            FirmwareAnswer::AddNextCertInChain(AddNextCertInChainReturn::from_u32(value))
        }
        _ => FirmwareAnswer::AdminSetup(AdminSetupReturn::from_u32(value)),
    };
    // The rules, run again on the chain that was sent; for AUTH_FAILED the domain first.
    let all = doctor(cert, machine);
    let subject = if method == "AddNextCertInChain" {
        cert.chain.get(k).map(|c| c.name().to_string())
    } else {
        cert.chain.first().map(|c| c.name().to_string())
    };
    let explain = rules::explain(&all, answer, subject.as_deref());
    let returned = format!(
        "{method} returned {}",
        answer.text().split(" returns ").nth(1).unwrap_or("")
    );
    let which = subject.clone().unwrap_or_default();
    let mut err = AgentError::new(
        if method == "AddNextCertInChain" {
            ExitCode::AddCertificateFailed
        } else {
            ExitCode::InvalidControlMode
        },
        format!(
            "{returned} for certificate {which}{}",
            if method == "AddNextCertInChain" {
                format!(" ({} of {})", k + 1, cert.chain.len())
            } else {
                String::new()
            }
        ),
    );
    if answer.method() == Some("AdminSetup") {
        if let Some(why) = domain_unchecked(&all) {
            err = err.cause(format!(
                "the leaf's domain could not be checked: {why}; AdminSetup also answers AUTH_FAILED when the CN is outside the domain AMT trusts"
            ));
        }
    }
    if explain.is_empty() {
        err = err.cause(
            "no certificate rule predicts this answer; the firmware's checks are not all published",
        );
        err = err.cause(e.message.clone());
        for c in &e.causes {
            err = err.cause(c.clone());
        }
        return match e.help {
            Some(h) => err.help(h),
            None => err,
        };
    }
    for f in &explain {
        eprint!("{}", f.render());
        err = err.cause(format!(
            "[{}] {}: {} (rule: {})",
            f.rule.id, f.certificate, f.detail, f.rule.description
        ));
    }
    err.help(explain[0].fix().to_string())
}

/// Why the domain rule did not run, when it did not.
pub(crate) fn domain_unchecked(findings: &[Finding]) -> Option<&str> {
    findings
        .iter()
        .find(|f| f.rule.id == rules::DOMAIN_RULE && f.outcome == Outcome::NotApplicable)
        .map(|f| f.detail.as_str())
}

/// Reads the control mode over AMTHI, a few times: the ME may be busy right after commit.
fn confirm_mode(device: &Arc<dyn MeiDevice>) -> Result<ControlMode, AgentError> {
    let mut last = None;
    for _ in 0..3 {
        match AmthiClient::new(device.clone()).control_mode() {
            Ok(m) => return Ok(m),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    let mut e = AgentError::from(last.expect("three tries"))
        .context("cannot read the control mode after activation");
    if e.exit == ExitCode::GenericFailure {
        e.exit = ExitCode::ControlModeUnreadable;
    }
    Err(e)
}
