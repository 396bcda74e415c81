//! Redirection and user consent (rps-protocol.md §3 "Fields RPS reads", §5.1 step 6):
//! `AMT_RedirectionService` (SOL, IDER, the listener), `CIM_KVMRedirectionSAP` (KVM),
//! `IPS_KVMRedirectionSettingData` (KVM's MEBx switch) and `IPS_OptInService` (user consent).

use crate::wsman::calls::{self, Arg, Call, Instance, Op, WsmanError};

pub const REDIRECTION_SERVICE: &str = "AMT_RedirectionService";
pub const KVM_SAP: &str = "CIM_KVMRedirectionSAP";
pub const KVM_SETTINGS: &str = "IPS_KVMRedirectionSettingData";
pub const OPT_IN_SERVICE: &str = "IPS_OptInService";

/// `AMT_RedirectionService.EnabledState`: 32768 + 1 (IDER) + 2 (SOL).
pub const REDIRECTION_BASE: u32 = 32768;

/// The redirection service's `EnabledState` for these features.
pub fn redirection_state(sol: bool, ider: bool) -> u32 {
    REDIRECTION_BASE + u32::from(ider) + 2 * u32::from(sol)
}

/// (SOL, IDER) of a redirection `EnabledState`; `None` outside 32768–32771.
pub fn redirection_features(state: u32) -> Option<(bool, bool)> {
    let bits = state.checked_sub(REDIRECTION_BASE).filter(|b| *b <= 3)?;
    Some((bits & 2 != 0, bits & 1 != 0))
}

/// `CIM_KVMRedirectionSAP.EnabledState`: 2 enabled, 6 enabled but offline, 3 disabled.
pub fn kvm_enabled(state: u32) -> bool {
    state == 2 || state == 6
}

/// `IPS_OptInService.OptInRequired`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserConsent {
    /// 0: no consent for any redirection.
    None,
    /// 1: consent for KVM only.
    Kvm,
    /// 4294967295: consent for every redirection.
    All,
}

impl UserConsent {
    pub fn value(self) -> u32 {
        match self {
            UserConsent::None => 0,
            UserConsent::Kvm => 1,
            UserConsent::All => u32::MAX,
        }
    }

    pub fn from_value(v: u32) -> Option<UserConsent> {
        match v {
            0 => Some(UserConsent::None),
            1 => Some(UserConsent::Kvm),
            u32::MAX => Some(UserConsent::All),
            _ => None,
        }
    }

    /// rpc-go's words: none, kvm, all.
    pub fn name(self) -> &'static str {
        match self {
            UserConsent::None => "none",
            UserConsent::Kvm => "kvm",
            UserConsent::All => "all",
        }
    }
}

/// A number property of an instance, required.
pub fn number(i: &Instance, name: &'static str) -> Result<u32, WsmanError> {
    let t = i.require(name)?;
    t.parse().map_err(|_| calls::bad_value(name, t, "a number"))
}

pub fn get(class: &str) -> Call<Instance> {
    calls::get(class, &[])
}

/// Put the instance back whole, as RPS does (`instance` with the changed properties).
pub fn put(class: &str, instance: &Instance) -> Call<Instance> {
    calls::put(class, &[], instance)
}

/// `RequestStateChange(RequestedState)` of the redirection service or the KVM access point.
pub fn request_state_change(class: &str, requested: u32) -> Call<()> {
    Call::new(
        class,
        Op::Invoke {
            method: "RequestStateChange".into(),
        },
        calls::unit_output,
    )
    .arg(Arg::text("RequestedState", requested))
}
