//! `configure enable-amt` / `disable-amt`: AMT's operational state through the ME's watchdog
//! client (IsChangeToAMTEnabled to read, SetAmtOperationalState to write; rpc-go.md §6.5,
//! transport.md §3.3). Only ME 16.1+ firmware (the "new interface" bit) supports it, only in
//! pre-provisioning, and only when the firmware allows the transition. No WS-MAN, no password.

use serde_json::json;

use super::{Configure, Needs, Plan, Step, Target};
use crate::amthi::messages::watchdog::AmtEnabledFlags;
use crate::amthi::ControlMode;
use crate::error::{AgentError, ExitCode};

pub struct OperationalState {
    enable: bool,
}

impl OperationalState {
    pub fn new(enable: bool) -> OperationalState {
        OperationalState { enable }
    }
}

fn word(on: bool) -> &'static str {
    if on {
        "enabled"
    } else {
        "disabled"
    }
}

impl Configure for OperationalState {
    type State = AmtEnabledFlags;

    fn name(&self) -> &'static str {
        if self.enable {
            "enable-amt"
        } else {
            "disable-amt"
        }
    }

    fn needs(&self) -> Needs {
        Needs::PreProvisioning
    }

    fn failure(&self) -> ExitCode {
        ExitCode::UnableToConfigure
    }

    fn uses_wsman(&self) -> bool {
        false
    }

    fn read(&mut self, t: &mut Target) -> Result<AmtEnabledFlags, AgentError> {
        Ok(crate::amthi::client::amt_enabled_flags(
            t.device.as_ref(),
            crate::amthi::client::DEFAULT_TIMEOUT,
        )?)
    }

    fn plan(&self, _mode: ControlMode, f: &AmtEnabledFlags) -> Result<Plan, AgentError> {
        if !f.new_interface() {
            return Err(AgentError::new(
                ExitCode::UnableToConfigure,
                format!("{}: this ME does not support SetAmtOperationalState (it needs ME 16.1 or later)", self.name()),
            )
            .help("change AMT's state in MEBx or the BIOS setup on this machine"));
        }
        let mut plan = Plan::default();
        if f.amt_enabled() != self.enable && !f.transition_allowed() {
            return Err(AgentError::new(
                ExitCode::UnableToConfigure,
                format!("{}: the firmware does not allow changing AMT's operational state now", self.name()),
            )
            .help("the platform (BIOS/MEBx policy) locks AMT's state; change it in MEBx or the BIOS setup"));
        }
        let on = self.enable;
        plan.setting(
            "AMT operational state",
            word(f.amt_enabled()),
            word(on),
            || vec![Step::SetAmtOperationalState(on)],
        );
        Ok(plan)
    }

    fn report(&self, f: &AmtEnabledFlags) -> (String, serde_json::Value) {
        (
            format!("AMT {}", word(f.amt_enabled())),
            json!({"operationalState": word(f.amt_enabled()), "transitionAllowed": f.transition_allowed()}),
        )
    }
}
