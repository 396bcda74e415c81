//! `configure amt-password`: a new admin password through
//! `AMT_AuthorizationService.SetAdminAclEntryEx` (base64 of the raw MD5 of `admin:realm:new`,
//! rps-protocol.md §3). AMT only sees the digest, so its password rules are checked here first;
//! the session then authenticates with the new password, which proves the change.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::{Change, Configure, Needs, Plan, Step, Target};
use crate::amthi::ControlMode;
use crate::error::{AgentError, ExitCode};
use crate::secret::Secret;
use crate::wsman::calls::digest_password_b64;
use crate::wsman::classes::{authorization, general};
use crate::wsman::client::Credentials;

#[derive(Args, Debug, Clone, Default)]
pub struct PasswordArgs {
    /// The new AMT password (prefer AMT_NEW_PASSWORD or --new-amt-password-file: the command
    /// line is visible to other users).
    #[arg(long, alias = "newamtpassword")]
    pub new_amt_password: Option<Secret>,
    /// A file holding the new AMT password (first line; must not be readable by others).
    #[arg(long)]
    pub new_amt_password_file: Option<PathBuf>,
}

/// Environment variables of the new password: ours (as `maintenance changepassword`), then
/// rpc-go v3's default for `--newamtpassword`.
pub const NEW_PASSWORD_ENV: &[&str] = &["AMT_NEW_PASSWORD", "RPC_NEWAMTPASSWORD"];

pub struct Password {
    args: PasswordArgs,
    new: Option<Secret>,
}

impl Password {
    pub fn new(a: &PasswordArgs) -> Password {
        Password {
            args: a.clone(),
            new: None,
        }
    }

    /// The new password given by the caller (a profile), not asked for.
    pub fn with(new: Secret) -> Password {
        Password {
            args: PasswordArgs::default(),
            new: Some(new),
        }
    }
}

/// The realm and whether the session's password is already the new one.
pub struct PasswordState {
    pub realm: String,
    pub user: String,
    pub is_new: bool,
}

impl Configure for Password {
    type State = PasswordState;

    fn name(&self) -> &'static str {
        "amt-password"
    }

    fn needs(&self) -> Needs {
        Needs::Activation
    }

    fn failure(&self) -> ExitCode {
        ExitCode::ChangeAmtPasswordFailed
    }

    fn read(&mut self, t: &mut Target) -> Result<PasswordState, AgentError> {
        if self.new.is_none() {
            let new = super::new_secret(
                "new AMT password",
                self.args.new_amt_password.as_ref(),
                self.args.new_amt_password_file.as_deref(),
                NEW_PASSWORD_ENV,
                true,
            )?
            .ok_or_else(|| {
                AgentError::new(
                    ExitCode::MissingOrIncorrectPassword,
                    "a new AMT password is needed",
                )
                .help("set AMT_NEW_PASSWORD, or pass --new-amt-password-file FILE")
            })?;
            self.new = Some(new);
        }
        let gs = t.read(general::get())?;
        let creds = t.credentials.clone();
        Ok(PasswordState {
            realm: gs.digest_realm,
            user: creds.as_ref().map(|c| c.user.clone()).unwrap_or_default(),
            is_new: creds
                .map(|c| Some(&c.password) == self.new.as_ref())
                .unwrap_or(false),
        })
    }

    fn plan(&self, _mode: ControlMode, s: &PasswordState) -> Result<Plan, AgentError> {
        let mut plan = Plan::default();
        if s.is_new {
            plan.kept
                .push(super::Kept::new("admin password", "the given one"));
            return Ok(plan);
        }
        let new = self.new.as_ref().ok_or_else(|| {
            AgentError::new(
                ExitCode::MissingOrIncorrectPassword,
                "a new AMT password is needed",
            )
        })?;
        if !super::strong_password(new.expose()) {
            return Err(AgentError::new(
                ExitCode::ChangeAmtPasswordFailed,
                "the new AMT password does not meet AMT's rules",
            )
            .help("use 8–32 ASCII characters with upper and lower case, a digit and a special character (not \" , or :)"));
        }
        let digest = digest_password_b64(&s.realm, new);
        plan.changes.push(Change::new(
            "admin password",
            "***",
            "*** (new)",
            vec![Step::Wsman(authorization::set_admin_acl_entry_ex(
                &s.user, &digest,
            ))],
        ));
        Ok(plan)
    }

    fn after_apply(&mut self, t: &mut Target) -> Result<(), AgentError> {
        let user = t
            .credentials
            .as_ref()
            .map(|c| c.user.clone())
            .unwrap_or_else(|| "admin".into());
        if let Some(new) = self.new.clone() {
            t.set_credentials(Credentials::new(user, new))?;
        }
        Ok(())
    }

    fn report(&self, s: &PasswordState) -> (String, serde_json::Value) {
        (
            format!(
                "user {} authenticates with the {} password",
                s.user,
                if s.is_new { "new" } else { "current" }
            ),
            json!({"user": s.user, "newPasswordInEffect": s.is_new}),
        )
    }
}
