//! The profile's `cira`: `configure cira` with the profile's MPS, root, user, password and
//! environment detection. The MPS password is the profile's (a value, `env:`, `file:`, or
//! `generate`: made once and kept in `DATA_DIR/generated/mps-password` before AMT sees it). AMT
//! never reveals it, so it is set once per value ([`Verifier`]): the same password on the same
//! machine keeps the server as AMT reports it; another one (or none recorded) writes the server
//! again, as `configure cira --force` does.

use base64::Engine as _;

use super::areas::{strip_force_hint, verifier, Area, Verifier};
use crate::commands::configure::cira::{Cira, CiraArgs, DEFAULT_PERIODIC_INTERVAL};
use crate::commands::configure::{Configure, Plan, Target};
use crate::error::{AgentError, ExitCode};
use crate::profile::secrets::DataDir;
use crate::secret::Secret;

pub struct CiraArea {
    cira: Cira,
    wanted: String,
    password: Secret,
    verifier: Verifier,
}

/// The MPS root as `configure cira --mps-cert` takes it: a file, or (PEM text in the profile)
/// the base64 of its DER.
fn mps_cert(v: &std::path::Path) -> Result<String, AgentError> {
    let text = v.to_string_lossy();
    if !text.contains("-----BEGIN") {
        return Ok(text.into_owned());
    }
    let (_, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes()).map_err(|e| {
        AgentError::new(
            ExitCode::InvalidUserInput,
            format!("cira.mpsCertificate: the PEM text is no certificate: {e}"),
        )
    })?;
    Ok(base64::engine::general_purpose::STANDARD.encode(pem.contents))
}

impl CiraArea {
    /// `password` is the profile's MPS password, resolved (or generated) by the caller.
    pub fn new(
        c: &crate::profile::Cira,
        password: Secret,
        data: &DataDir,
        uuid: &str,
    ) -> Result<CiraArea, AgentError> {
        let args = CiraArgs {
            mps_address: c.mps_address.clone(),
            mps_port: c.mps_port,
            mps_cert: mps_cert(&c.mps_certificate)?,
            mps_user: c.mps_username.clone(),
            env_detection: c.environment_detection.clone(),
            periodic_interval: DEFAULT_PERIODIC_INTERVAL,
            ..CiraArgs::default()
        };
        let cira = Cira::with(&args, password.clone()).map_err(|e| e.context("cira"))?;
        let wanted = format!(
            "MPS {}:{} (user {}), periodic and user-initiated connections; environment detection: {}",
            c.mps_address,
            c.mps_port,
            c.mps_username,
            if c.environment_detection.is_empty() {
                "AMT's, else a domain no network has".to_string()
            } else {
                c.environment_detection.join(", ")
            }
        );
        Ok(CiraArea {
            cira,
            wanted,
            password,
            verifier: verifier(data, "mps-password", uuid),
        })
    }
}

impl Area for CiraArea {
    fn name(&self) -> &'static str {
        "cira"
    }

    fn wanted(&self) -> String {
        self.wanted.clone()
    }

    fn failure(&self) -> ExitCode {
        self.cira.failure()
    }

    fn plan(&mut self, t: &mut Target) -> Result<Plan, AgentError> {
        let set_at = self.verifier.set_at(&self.password);
        self.cira.set_force(set_at.is_none());
        let mode = t.control_mode;
        self.cira.precheck(mode)?;
        let state = self.cira.read(t)?;
        let mut plan = self.cira.plan(mode, &state)?;
        for k in plan.kept.iter_mut().filter(|k| k.setting == "MPS password") {
            if let Some(at) = &set_at {
                k.value = format!(
                    "{}*** (set by amt-agent at {at}; AMT does not reveal it)",
                    strip_force_hint(&k.value)
                );
            }
        }
        if set_at.is_none() {
            for c in plan
                .changes
                .iter_mut()
                .filter(|c| c.setting == "MPS server" && c.current.contains(&c.desired))
            {
                c.desired.push_str(
                    " (sent again: AMT does not reveal the MPS password, and amt-agent has no record of setting this one)",
                );
            }
        }
        Ok(plan)
    }

    fn after_apply(&mut self, t: &mut Target) -> Result<(), AgentError> {
        self.cira.after_apply(t)?;
        // Every step succeeded: AMT holds the profile's MPS password now.
        self.verifier.remember(&self.password)
    }
}
