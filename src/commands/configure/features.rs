//! `configure amt-features`: KVM, SOL, IDER and user consent, the way RPS's
//! featuresConfiguration does it (rps-protocol.md §5.1 step 6): the redirection service's
//! RequestStateChange (32768–32771), the KVM access point's RequestStateChange (2 or 3), the
//! redirection service Put with its listener, and the opt-in service Put.

use clap::{Args, ValueEnum};
use serde_json::json;

use super::{Configure, Needs, Plan, Step, Target};
use crate::amthi::ControlMode;
use crate::error::{AgentError, ExitCode};
use crate::wsman::calls::Instance;
use crate::wsman::classes::redirection::{
    self as r, kvm_enabled, redirection_features, redirection_state, UserConsent,
};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ConsentArg {
    None,
    Kvm,
    All,
}

#[derive(Args, Debug, Clone)]
pub struct FeaturesArgs {
    /// User consent AMT asks for before a redirection session: none, kvm (KVM only) or all. In
    /// client control mode AMT only allows all.
    #[arg(long, alias = "userConsent", value_enum, default_value = "all")]
    pub user_consent: ConsentArg,
    /// KVM (remote keyboard, video, mouse); --kvm=false or leaving it out turns it off.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub kvm: bool,
    /// Serial over LAN.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub sol: bool,
    /// IDE (storage) redirection.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub ider: bool,
    /// Turn KVM, SOL and IDER off (rpc-go's hidden --disableAll).
    #[arg(long, alias = "disableAll", conflicts_with_all = ["kvm", "sol", "ider"])]
    pub disable_all: bool,
}

/// What the features subcommand wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Desired {
    pub kvm: bool,
    pub sol: bool,
    pub ider: bool,
    pub consent: UserConsent,
}

pub struct Features {
    pub want: Desired,
}

impl Features {
    pub fn new(a: &FeaturesArgs) -> Result<Features, AgentError> {
        let on = !a.disable_all;
        Ok(Features {
            want: Desired {
                kvm: on && a.kvm,
                sol: on && a.sol,
                ider: on && a.ider,
                consent: match a.user_consent {
                    ConsentArg::None => UserConsent::None,
                    ConsentArg::Kvm => UserConsent::Kvm,
                    ConsentArg::All => UserConsent::All,
                },
            },
        })
    }
}

/// The four instances, as read.
#[derive(Clone, Debug)]
pub struct FeaturesState {
    pub redirection: Instance,
    pub kvm_sap: Instance,
    /// Absent on firmware without KVM (ISM, AMT without the KVM SKU bit).
    pub kvm_settings: Option<Instance>,
    pub opt_in: Instance,
}

/// The features as AMT reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Current {
    pub redirection_state: u32,
    pub listener: bool,
    pub kvm_state: u32,
    pub kvm_enabled_by_mebx: bool,
    pub opt_in_required: u32,
}

impl FeaturesState {
    pub fn current(&self) -> Result<Current, AgentError> {
        let read = || -> Result<Current, crate::wsman::calls::WsmanError> {
            Ok(Current {
                redirection_state: r::number(&self.redirection, "EnabledState")?,
                listener: self
                    .redirection
                    .get_bool("ListenerEnabled")?
                    .unwrap_or(false),
                kvm_state: r::number(&self.kvm_sap, "EnabledState")?,
                kvm_enabled_by_mebx: match &self.kvm_settings {
                    Some(k) => k.get_bool("EnabledByMEBx")?.unwrap_or(true),
                    None => true,
                },
                opt_in_required: r::number(&self.opt_in, "OptInRequired")?,
            })
        };
        read().map_err(|e| AgentError::from(e).exit(ExitCode::AmtFeaturesConfigurationFailed))
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "enabled"
    } else {
        "disabled"
    }
}

fn consent_name(v: u32) -> String {
    UserConsent::from_value(v)
        .map(|c| c.name().to_string())
        .unwrap_or_else(|| format!("unknown ({v})"))
}

impl Configure for Features {
    type State = FeaturesState;

    fn name(&self) -> &'static str {
        "amt-features"
    }

    fn needs(&self) -> Needs {
        Needs::Activation
    }

    fn failure(&self) -> ExitCode {
        ExitCode::AmtFeaturesConfigurationFailed
    }

    fn read(&mut self, t: &mut Target) -> Result<FeaturesState, AgentError> {
        let redirection = t.read(r::get(r::REDIRECTION_SERVICE))?;
        let opt_in = t.read(r::get(r::OPT_IN_SERVICE))?;
        let kvm_sap = t.read(r::get(r::KVM_SAP))?;
        let kvm_settings = match t.session()?.try_call(r::get(r::KVM_SETTINGS))? {
            Ok(i) => Some(i),
            Err(crate::wsman::calls::WsmanError::Fault(_)) => None,
            Err(e) => return Err(e.into()),
        };
        Ok(FeaturesState {
            redirection,
            kvm_sap,
            kvm_settings,
            opt_in,
        })
    }

    fn precheck(&self, mode: ControlMode) -> Result<(), AgentError> {
        if mode == ControlMode::Ccm && self.want.consent != UserConsent::All {
            return Err(AgentError::new(
                ExitCode::AmtFeaturesConfigurationFailed,
                format!("user consent {} is not allowed in client control mode: AMT requires consent for every redirection there", self.want.consent.name()),
            )
            .help("use --user-consent all, or activate in admin control mode (ACM) to lower it"));
        }
        Ok(())
    }

    fn plan(&self, mode: ControlMode, s: &FeaturesState) -> Result<Plan, AgentError> {
        let w = self.want;
        let refuse = |msg: String, help: &str| {
            Err(AgentError::new(ExitCode::AmtFeaturesConfigurationFailed, msg).help(help))
        };
        self.precheck(mode)?;
        let c = s.current()?;
        let Some((sol, ider)) = redirection_features(c.redirection_state) else {
            return refuse(
                format!("AMT_RedirectionService.EnabledState is {}, not one of 32768–32771", c.redirection_state),
                "the firmware's redirection service is in a state this agent does not know; check it with: amt-agent diagnostics wsman get AMT_RedirectionService",
            );
        };
        let kvm = kvm_enabled(c.kvm_state);
        if w.kvm && !kvm && !c.kvm_enabled_by_mebx {
            return refuse(
                "KVM is disabled in MEBx (IPS_KVMRedirectionSettingData.EnabledByMEBx is false); AMT refuses to enable it remotely".into(),
                "enable KVM in MEBx (Intel AMT Configuration → User Consent / KVM), or leave --kvm out",
            );
        }
        let mut plan = Plan::default();
        let desired_state = redirection_state(w.sol, w.ider);
        let listener = w.kvm || w.sol || w.ider;
        let redirection_differs = (sol, ider) != (w.sol, w.ider);
        plan.setting("SOL", on_off(sol), on_off(w.sol), Vec::new);
        plan.setting("IDER", on_off(ider), on_off(w.ider), Vec::new);
        if redirection_differs {
            // The SOL/IDER changes share one RequestStateChange: it goes with the last of them.
            let last = plan
                .changes
                .last_mut()
                .expect("a redirection change was recorded");
            last.steps.push(Step::Wsman(r::request_state_change(
                r::REDIRECTION_SERVICE,
                desired_state,
            )));
        }
        plan.setting("KVM", on_off(kvm), on_off(w.kvm), || {
            vec![Step::Wsman(r::request_state_change(
                r::KVM_SAP,
                if w.kvm { 2 } else { 3 },
            ))]
        });
        if redirection_differs || c.listener != listener {
            let mut put = s.redirection.clone();
            put.set("EnabledState", desired_state);
            put.set("ListenerEnabled", listener);
            plan.changes.push(super::Change::new(
                "redirection listener",
                on_off(c.listener),
                on_off(listener),
                vec![Step::Wsman(r::put(r::REDIRECTION_SERVICE, &put).checked())],
            ));
        } else {
            plan.kept
                .push(super::Kept::new("redirection listener", on_off(c.listener)));
        }
        plan.setting(
            "user consent",
            consent_name(c.opt_in_required),
            w.consent.name(),
            || {
                let mut put = s.opt_in.clone();
                put.set("OptInRequired", w.consent.value());
                vec![Step::Wsman(r::put(r::OPT_IN_SERVICE, &put).checked())]
            },
        );
        Ok(plan)
    }

    fn report(&self, s: &FeaturesState) -> (String, serde_json::Value) {
        let Ok(c) = s.current() else {
            return ("unreadable".into(), serde_json::Value::Null);
        };
        let (sol, ider) = redirection_features(c.redirection_state).unwrap_or((false, false));
        let kvm = kvm_enabled(c.kvm_state);
        let consent = consent_name(c.opt_in_required);
        (
            format!(
                "KVM {}, SOL {}, IDER {}, redirection listener {}, user consent {consent}",
                on_off(kvm),
                on_off(sol),
                on_off(ider),
                on_off(c.listener)
            ),
            json!({
                "kvm": kvm,
                "sol": sol,
                "ider": ider,
                "redirectionListener": c.listener,
                "userConsent": consent,
                "redirectionEnabledState": c.redirection_state,
                "kvmEnabledState": c.kvm_state,
                "optInRequired": c.opt_in_required,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(class: &str, props: &[(&str, &str)]) -> Instance {
        let mut i = Instance {
            class: class.into(),
            properties: vec![],
        };
        for (k, v) in props {
            i.set(k, v);
        }
        i
    }

    fn state(redir: &str, listener: &str, kvm: &str, optin: &str) -> FeaturesState {
        FeaturesState {
            redirection: inst(
                r::REDIRECTION_SERVICE,
                &[("EnabledState", redir), ("ListenerEnabled", listener)],
            ),
            kvm_sap: inst(r::KVM_SAP, &[("EnabledState", kvm)]),
            kvm_settings: Some(inst(r::KVM_SETTINGS, &[("EnabledByMEBx", "true")])),
            opt_in: inst(r::OPT_IN_SERVICE, &[("OptInRequired", optin)]),
        }
    }

    fn all_on(consent: UserConsent) -> Features {
        Features {
            want: Desired {
                kvm: true,
                sol: true,
                ider: true,
                consent,
            },
        }
    }

    #[test]
    fn from_factory_state_the_plan_is_rps_order() {
        let s = state("32768", "false", "3", "4294967295");
        let p = all_on(UserConsent::None)
            .plan(ControlMode::Acm, &s)
            .unwrap();
        let calls: Vec<String> = p.steps().map(|x| x.describe()).collect();
        assert_eq!(calls.len(), 4, "{calls:?}");
        assert_eq!(
            calls[0],
            "AMT_RedirectionService.RequestStateChange(RequestedState=32771)"
        );
        assert_eq!(
            calls[1],
            "CIM_KVMRedirectionSAP.RequestStateChange(RequestedState=2)"
        );
        assert!(
            calls[2].starts_with("AMT_RedirectionService.Put(")
                && calls[2].contains("EnabledState=32771")
                && calls[2].contains("ListenerEnabled=true"),
            "{}",
            calls[2]
        );
        assert!(
            calls[3].starts_with("IPS_OptInService.Put(") && calls[3].contains("OptInRequired=0"),
            "{}",
            calls[3]
        );
    }

    #[test]
    fn when_amt_already_matches_nothing_is_planned() {
        let s = state("32771", "true", "2", "4294967295");
        let p = all_on(UserConsent::All).plan(ControlMode::Ccm, &s).unwrap();
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(p.kept.len(), 5);
        // Enabled-but-offline (6) counts as enabled.
        let s = state("32771", "true", "6", "4294967295");
        assert!(all_on(UserConsent::All)
            .plan(ControlMode::Ccm, &s)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn consent_below_all_is_refused_in_ccm_before_anything_is_planned() {
        let s = state("32768", "false", "3", "4294967295");
        for c in [UserConsent::None, UserConsent::Kvm] {
            let e = all_on(c).plan(ControlMode::Ccm, &s).unwrap_err();
            assert_eq!(e.exit, ExitCode::AmtFeaturesConfigurationFailed);
            assert!(e.help.unwrap().contains("--user-consent all"));
        }
    }

    #[test]
    fn kvm_disabled_in_mebx_is_refused() {
        let mut s = state("32768", "false", "3", "4294967295");
        s.kvm_settings
            .as_mut()
            .unwrap()
            .set("EnabledByMEBx", "false");
        let e = all_on(UserConsent::All)
            .plan(ControlMode::Acm, &s)
            .unwrap_err();
        assert!(e.message.contains("MEBx"), "{}", e.message);
    }

    #[test]
    fn only_the_listener_and_kvm_change_when_sol_and_ider_already_match() {
        let s = state("32770", "true", "2", "4294967295");
        let f = Features {
            want: Desired {
                kvm: false,
                sol: true,
                ider: false,
                consent: UserConsent::All,
            },
        };
        let p = f.plan(ControlMode::Acm, &s).unwrap();
        let calls: Vec<String> = p.steps().map(|x| x.describe()).collect();
        assert_eq!(
            calls,
            ["CIM_KVMRedirectionSAP.RequestStateChange(RequestedState=3)"]
        );
    }
}
