//! Local ACM on TLS-enforced firmware (AMT 19+): secure host-based configuration
//! (rpc-go.md §5.4, provisioning.md §3.6, transport.md §4.3).
//!
//! START_CONFIGURATION_HBASED announces the provisioning certificate's leaf hash and answers the
//! hash of AMT's own TLS leaf; WS-MAN then runs over mutual TLS (AMT's leaf pinned to that hash,
//! the provisioning chain as the client certificate): the LSA user reads the realm and sets the
//! admin password (SetAdminAclEntryEx), `admin` sets the MEBx password and commits. Anything that
//! fails after START_CONFIGURATION_HBASED is rolled back with STOP_CONFIGURATION (exit 102).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{call, ExitAs, LocalAcmArgs};
use crate::amthi::messages::StartConfigurationHBased;
use crate::amthi::{AmthiClient, ControlMode, ProvisioningState};
use crate::commands::session::{self, AmtConnArgs, AmtSession, ExtraTls};
use crate::error::{AgentError, ExitCode};
use crate::heci::MeiDevice;
use crate::provisioning::rules::{self, Finding, Machine, Outcome};
use crate::provisioning::ProvisioningCert;
use crate::secret::Secret;
use crate::secret_source::SecretSource;
use crate::tls::{ClientCert, LeafPin, PinAlgorithm};
use crate::wsman::calls;
use crate::wsman::classes::{authorization, general, setup_and_configuration};
use crate::wsman::client::Credentials;

/// PT_STATUS_DATA_MISSING: CommitChanges without a MEBx password.
const DATA_MISSING: u32 = 2057;

/// The leaf hash algorithm from the leaf's signature algorithm (rpc-go.md §5.4 step 1).
pub fn leaf_hash_algorithm(signature_digest: &str) -> Option<PinAlgorithm> {
    match signature_digest {
        "SHA-224" | "SHA-256" => Some(PinAlgorithm::Sha256),
        "SHA-384" => Some(PinAlgorithm::Sha384),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
pub fn run(
    device: &Arc<dyn MeiDevice>,
    conn: &AmtConnArgs,
    cert: &ProvisioningCert,
    machine: &Machine,
    password: Secret,
    mebx: Option<Secret>,
    args: &LocalAcmArgs,
    out: Option<bool>,
) -> Result<ExitCode, AgentError> {
    let leaf = cert.chain.first().ok_or_else(|| {
        AgentError::new(
            ExitCode::ProvisioningCertNoCertificates,
            "the provisioning certificate file holds no leaf certificate",
        )
    })?;
    let alg = leaf_hash_algorithm(leaf.signature_digest).ok_or_else(|| {
        AgentError::new(
            ExitCode::LeafHashUnsupported,
            format!(
                "the leaf {} is signed with {}; AMT 19+ takes a SHA-256 or SHA-384 leaf hash only",
                leaf.name(),
                leaf.signature_digest
            ),
        )
        .help("reissue the leaf with -sha256 (or -sha384)")
    })?;
    let key = cert.usable_key(
        "the provisioning certificate's key cannot be used for mutual TLS",
        ExitCode::ProvisioningCertNoKey,
    )?;
    let client_cert = ClientCert {
        chain: cert.chain.iter().map(|c| c.der.clone().into()).collect(),
        key: key.tls_key(),
    };

    // START_CONFIGURATION_HBASED, with the leaf DER hash zero-padded to 64 bytes.
    let digest = alg.digest(&leaf.der);
    let mut server_cert_hash = [0u8; 64];
    server_cert_hash[..digest.len()].copy_from_slice(&digest);
    let req = StartConfigurationHBased {
        server_hash_algorithm: alg.code(),
        server_cert_hash,
        host_vpn_enable: false,
        dns_suffixes: Vec::new(),
    };
    let reply = start(device, &req)?;
    tracing::info!(
        algorithm = alg.name(),
        "START_CONFIGURATION_HBASED accepted: the configuration is open"
    );

    // From here on a failure rolls the device back.
    match configure(device, conn, &reply, client_cert, &password, mebx, args) {
        Ok(notes) => {
            let fields = json!({
                "method": "StartConfigurationHBased+CommitChanges",
                "upgradedFromCcm": false,
                "leafHashAlgorithm": alg.code(),
            });
            let line = format!(
                "activated in admin control mode (AMT 19+ secure host-based configuration, {} leaf hash)",
                alg.name()
            );
            super::report(out, fields, &notes, &line);
            Ok(ExitCode::Success)
        }
        Err(e) => Err(roll_back(device, e, cert, machine)),
    }
}

/// v3 retries up to 3 times 2 s apart (rpc-go.md §5.4 step 2); a state or parameter refusal is
/// final at once.
fn start(
    device: &Arc<dyn MeiDevice>,
    req: &StartConfigurationHBased,
) -> Result<crate::amthi::messages::HBasedReply, AgentError> {
    use crate::amthi::PtStatus;
    let mut tries = 0;
    loop {
        tries += 1;
        match AmthiClient::new(device.clone()).start_configuration_hbased(req) {
            Ok(r) => return Ok(r),
            Err(e) => {
                let fatal = matches!(
                    e.status(),
                    Some(PtStatus::InvalidProvisioningState)
                        | Some(PtStatus::InvalidParameter)
                        | Some(PtStatus::Unsupported)
                );
                if fatal || tries >= 3 {
                    let mut err = AgentError::from(e)
                        .context("START_CONFIGURATION_HBASED failed; nothing was changed");
                    err.exit = ExitCode::UnableToActivate;
                    return Err(err.help(
                        "a configuration left open by an earlier run is closed with amt-agent deactivate --local (STOP_CONFIGURATION); then retry",
                    ));
                }
                tracing::info!(error = %e, "START_CONFIGURATION_HBASED: retrying in 2 s");
                std::thread::sleep(Duration::from_secs(2));
            }
        }
    }
}

/// The mutual-TLS part; returns warnings to show on success.
fn configure(
    device: &Arc<dyn MeiDevice>,
    conn: &AmtConnArgs,
    reply: &crate::amthi::messages::HBasedReply,
    client_cert: ClientCert,
    password: &Secret,
    mebx: Option<Secret>,
    args: &LocalAcmArgs,
) -> Result<Vec<String>, AgentError> {
    let leaf_pin = LeafPin::from_hbased_reply(reply).map_err(|e| {
        AgentError::new(
            ExitCode::ServerCertificateVerificationFailed,
            format!("START_CONFIGURATION_HBASED answered an unusable AMT certificate hash: {e}"),
        )
    })?;
    if leaf_pin.is_none() {
        tracing::warn!("START_CONFIGURATION_HBASED answered no AMT certificate hash: AMT's TLS leaf is not pinned");
    }
    let lsa = AmthiClient::new(device.clone())
        .local_system_account()
        .map_err(|e| AgentError::from(e).context("cannot read the local system account"))?;
    let extra = ExtraTls {
        leaf_pin,
        client_cert: Some(client_cert),
    };
    let mut s = session::connect_with(
        device.clone(),
        conn,
        Credentials::new(lsa.username, lsa.password),
        ControlMode::None,
        &extra,
    )?;
    let mut ids = 0u32;

    // The realm; v2 retries once after 1 s when the connection drops.
    let realm = match call(&mut s, &mut ids, general::get()) {
        Ok(g) => g,
        Err(f) if f.err.exit == ExitCode::AmtConnectionFailed => {
            std::thread::sleep(Duration::from_secs(1));
            call(&mut s, &mut ids, general::get())?
        }
        Err(f) => return Err(f.into()),
    }
    .digest_realm;
    let dp = calls::digest_password_b64(&realm, password);
    call(
        &mut s,
        &mut ids,
        authorization::set_admin_acl_entry_ex("admin", &dp),
    )
    .map_err(|f| {
        AgentError::from(f)
            .context("SetAdminAclEntryEx (setting the admin password) failed")
            .exit_as(ExitCode::ChangeAmtPasswordFailed)
    })?;
    tracing::info!("SetAdminAclEntryEx accepted");

    s.client
        .set_credentials(Credentials::new("admin", password.clone()));
    if let Some(m) = &mebx {
        set_mebx(&mut s, &mut ids, m)?;
    }
    match commit(&mut s, &mut ids, device)? {
        Committed::Done => {}
        Committed::MebxMissing => {
            // DATA_MISSING: the MEBx password must be set first; ask for it once.
            if mebx.is_some() {
                return Err(AgentError::new(
                    ExitCode::SetMebxPasswordFailed,
                    "CommitChanges returned 2057 (DATA_MISSING) although SetMEBxPassword was accepted",
                ));
            }
            let m = {
                SecretSource {
                    what: "MEBx password",
                    flag: None,
                    file: args.mebx_password_file.as_deref(),
                    env: &["MEBX_PASSWORD"],
                }
                .resolve(true)?
            };
            let Some(m) = m else {
                return Err(AgentError::new(
                    ExitCode::SetMebxPasswordFailed,
                    "CommitChanges returned 2057 (DATA_MISSING): AMT 19+ needs a MEBx password before it commits",
                )
                .help("set MEBX_PASSWORD or pass --mebx-password-file FILE (8–32 characters), then retry"));
            };
            set_mebx(&mut s, &mut ids, &m)?;
            if let Committed::MebxMissing = commit(&mut s, &mut ids, device)? {
                return Err(AgentError::new(
                    ExitCode::SetMebxPasswordFailed,
                    "CommitChanges returned 2057 (DATA_MISSING) again after SetMEBxPassword",
                ));
            }
        }
    }
    // CommitChanges answered (or its lost answer was judged): the firmware's mode decides.
    let after = super::confirm_mode(device)?;
    if after != ControlMode::Acm {
        return Err(AgentError::new(
            ExitCode::InvalidControlMode,
            format!(
                "CommitChanges was accepted but AMT reports {}",
                after.text()
            ),
        ));
    }
    Ok(Vec::new())
}

fn set_mebx(s: &mut AmtSession, ids: &mut u32, m: &Secret) -> Result<(), AgentError> {
    call(s, ids, setup_and_configuration::set_mebx_password(m)).map_err(|f| {
        AgentError::from(f)
            .context("SetMEBxPassword failed")
            .exit_as(ExitCode::SetMebxPasswordFailed)
            .help("the MEBx password must be 8–32 characters with upper and lower case, a digit and a symbol")
    })?;
    tracing::info!("SetMEBxPassword accepted");
    Ok(())
}

enum Committed {
    Done,
    MebxMissing,
}

/// CommitChanges; a lost answer (the firmware restarts its port stack) is judged by the
/// control mode over AMTHI: up to 3 reads, 1 s apart (rpc-go.md §5.4 step 8).
fn commit(
    s: &mut AmtSession,
    ids: &mut u32,
    device: &Arc<dyn MeiDevice>,
) -> Result<Committed, AgentError> {
    match call(s, ids, setup_and_configuration::commit_changes()) {
        Ok(()) => Ok(Committed::Done),
        Err(f)
            if f.return_value
                .as_ref()
                .is_some_and(|(_, v)| *v == DATA_MISSING) =>
        {
            tracing::info!("CommitChanges: 2057 DATA_MISSING (no MEBx password yet)");
            Ok(Committed::MebxMissing)
        }
        // No ReturnValue: the answer was lost (EOF, reset, a message cut off — the firmware
        // restarts its port stack on commit); the firmware's state decides.
        Err(f) if f.return_value.is_none() => {
            tracing::info!(error = %f.err.message, "CommitChanges: no answer; reading the control mode");
            for _ in 0..3 {
                std::thread::sleep(Duration::from_secs(1));
                let mut a = AmthiClient::new(device.clone());
                if let Ok(ControlMode::Acm) = a.control_mode() {
                    match a.provisioning_state() {
                        Ok(ProvisioningState::Post) | Err(_) => return Ok(Committed::Done),
                        Ok(_) => {}
                    }
                }
            }
            Err(f.err.context(
                "CommitChanges lost its connection and the device did not reach admin control mode",
            ))
        }
        Err(f) => Err(AgentError::from(f).context("CommitChanges failed")),
    }
}

/// STOP_CONFIGURATION after an irrecoverable failure: exit 102, saying whether the rollback worked
/// and, when AMT refused the provisioning certificate, which rule explains it (the domain first).
fn roll_back(
    device: &Arc<dyn MeiDevice>,
    e: AgentError,
    cert: &ProvisioningCert,
    machine: &Machine,
) -> AgentError {
    let stopped = AmthiClient::new(device.clone()).stop_configuration();
    let mut out = AgentError::new(
        ExitCode::ActivationFailed,
        match &stopped {
            Ok(()) => format!(
                "ACM activation failed and the device was rolled back to pre-provisioning (STOP_CONFIGURATION): {}",
                e.message
            ),
            Err(se) => format!(
                "ACM activation failed: {}; rolling back with STOP_CONFIGURATION failed too ({se})",
                e.message
            ),
        },
    );
    for c in &e.causes {
        out = out.cause(c.clone());
    }
    if e.message.contains("HTTP 403") || e.causes.iter().any(|c| c.contains("HTTP 403")) {
        // The simulator's answer to a client certificate it does not accept (UNCONFIRMED for
        // real firmware): the doctor's rules say why, the domain first.
        out = out.cause(
            "AMT refused the provisioning certificate presented as the TLS client certificate",
        );
        let findings = super::doctor(cert, machine);
        let mut broken: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.outcome == Outcome::Error)
            .collect();
        broken.sort_by_key(|f| f.rule.id != rules::DOMAIN_RULE);
        if let Some(why) = super::domain_unchecked(&findings) {
            out = out.cause(format!("the leaf's domain could not be checked: {why}"));
        }
        if let Some(first) = broken.first() {
            for f in &broken {
                eprint!("{}", f.render());
                out = out.cause(format!("[{}] {}: {}", f.rule.id, f.certificate, f.detail));
            }
            return out.help(first.fix().to_string());
        }
        return out.help("AMT 19+ accepts it only when its leaf is the one announced to START_CONFIGURATION_HBASED, its root's hash is active in AMT's trusted list and the leaf has the AMT activation usage and the trusted domain: run amt-agent cert check FILE");
    }
    let help = e.help.clone().unwrap_or_else(|| {
        "check the provisioning certificate with amt-agent cert check, then retry; -vvv shows the exchange".into()
    });
    out.help(help)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leaf_hash_algorithm_follows_the_leaf_signature() {
        assert_eq!(leaf_hash_algorithm("SHA-256"), Some(PinAlgorithm::Sha256));
        assert_eq!(leaf_hash_algorithm("SHA-384"), Some(PinAlgorithm::Sha384));
        assert_eq!(leaf_hash_algorithm("SHA-1"), None);
        assert_eq!(leaf_hash_algorithm("RSASSA-PSS"), None);
    }
}
