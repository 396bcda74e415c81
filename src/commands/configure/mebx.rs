//! `configure mebx`: the MEBx password through `AMT_SetupAndConfigurationService.SetMEBxPassword`
//! (admin control mode only; in CCM the firmware answers NOT_PERMITTED). AMT never reveals the
//! MEBx password, so every run sets it and nothing can be read back to verify it.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::{Change, Configure, Needs, Plan, Step, Target};
use crate::amthi::ControlMode;
use crate::error::{AgentError, ExitCode};
use crate::secret::Secret;
use crate::wsman::classes::setup_and_configuration;

#[derive(Args, Debug, Clone, Default)]
pub struct MebxArgs {
    /// The new MEBx password (prefer MEBX_PASSWORD or --mebx-password-file).
    #[arg(long, alias = "mebxpassword")]
    pub mebx_password: Option<Secret>,
    /// A file holding the MEBx password (first line; must not be readable by others).
    #[arg(long)]
    pub mebx_password_file: Option<PathBuf>,
}

pub struct Mebx {
    args: MebxArgs,
    new: Option<Secret>,
}

impl Mebx {
    pub fn new(a: &MebxArgs) -> Mebx {
        Mebx {
            args: a.clone(),
            new: None,
        }
    }

    /// The password given by the caller (a profile), not asked for.
    pub fn with(new: Secret) -> Mebx {
        Mebx {
            args: MebxArgs::default(),
            new: Some(new),
        }
    }
}

impl Configure for Mebx {
    type State = ();

    fn name(&self) -> &'static str {
        "mebx"
    }

    fn needs(&self) -> Needs {
        Needs::AdminControlMode
    }

    fn failure(&self) -> ExitCode {
        ExitCode::SetMebxPasswordFailed
    }

    fn read(&mut self, _t: &mut Target) -> Result<(), AgentError> {
        if self.new.is_none() {
            let p = super::new_secret(
                "MEBx password",
                self.args.mebx_password.as_ref(),
                self.args.mebx_password_file.as_deref(),
                &["MEBX_PASSWORD"],
                true,
            )?
            .ok_or_else(|| {
                AgentError::new(ExitCode::SetMebxPasswordFailed, "a MEBx password is needed")
                    .help("set MEBX_PASSWORD, or pass --mebx-password-file FILE")
            })?;
            self.new = Some(p);
        }
        Ok(())
    }

    fn plan(&self, _mode: ControlMode, _s: &()) -> Result<Plan, AgentError> {
        let Some(new) = &self.new else {
            // Only after the writes: AMT does not reveal the MEBx password, nothing to verify.
            return Ok(Plan::default());
        };
        if !super::strong_password(new.expose()) {
            return Err(AgentError::new(
                ExitCode::SetMebxPasswordFailed,
                "the MEBx password does not meet AMT's rules",
            )
            .help("use 8–32 ASCII characters with upper and lower case, a digit and a special character (not \" , or :)"));
        }
        Ok(Plan {
            changes: vec![Change::new(
                "MEBx password",
                "unknown (AMT does not reveal it)",
                "***",
                vec![Step::Wsman(setup_and_configuration::set_mebx_password(new))],
            )
            .unverifiable()],
            kept: vec![],
        })
    }

    fn after_apply(&mut self, _t: &mut Target) -> Result<(), AgentError> {
        // The re-read plans nothing: there is no way to read the MEBx password back.
        self.new = None;
        Ok(())
    }

    fn report(&self, _s: &()) -> (String, serde_json::Value) {
        (
            "AMT does not reveal the MEBx password".into(),
            json!({"mebxPasswordReadable": false}),
        )
    }
}
