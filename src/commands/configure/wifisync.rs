//! `configure wi-fi-sync` (v3; aliases `wifisync`, `wifi`, and v2's `enablewifiport`): whether
//! AMT takes the host OS's Wi-Fi profiles (`AMT_WiFiPortConfigurationService`
//! `localProfileSynchronizationEnabled`: 3 unrestricted, 0 off) and UEFI's
//! (`UEFIWiFiProfileShareEnabled`, where `AMT_BootCapabilities.UEFIWiFiCoExistenceAndProfileShare`
//! says the platform has it), and AMT's Wi-Fi port on in S0 and Sx on AC (`CIM_WiFiPort`
//! RequestStateChange 32769) — rpc-go's `EnableWiFi` and RPS's Wi-Fi flow. rpc-go always sends
//! the RequestStateChange; here it is sent when the port reports another state.
//! `enablewifiport` is this command with both syncs on, rpc-go v2's meaning of it.

use clap::{ArgAction, Args};
use serde_json::json;

use super::{Change, Configure, Kept, Needs, Plan, Step, Target};
use crate::amthi::ControlMode;
use crate::error::{AgentError, ExitCode};
use crate::wsman::classes::wifi::{self, PortConfiguration};

#[derive(Args, Debug, Clone)]
pub struct WifiSyncArgs {
    /// Synchronise AMT's Wi-Fi profiles with the host OS's (true or false).
    #[arg(long, visible_alias = "oswifisync", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub os_wifi_sync: bool,
    /// Share Wi-Fi profiles with UEFI where the platform can (true or false).
    #[arg(long, visible_alias = "uefiwifisync", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub uefi_wifi_sync: bool,
}

impl Default for WifiSyncArgs {
    fn default() -> Self {
        WifiSyncArgs {
            os_wifi_sync: true,
            uefi_wifi_sync: true,
        }
    }
}

pub struct WifiSync {
    /// OS profile sync on or off; `None` leaves it as it is.
    os: Option<bool>,
    /// UEFI profile share on or off where the platform has it; `None` leaves it as it is.
    uefi: Option<bool>,
    name: &'static str,
}

impl WifiSync {
    pub fn new(a: &WifiSyncArgs) -> WifiSync {
        WifiSync::with(Some(a.os_wifi_sync), Some(a.uefi_wifi_sync))
    }

    /// A desired-state profile's `wifiSync` and `uefiWifiSync` (one left out is not managed);
    /// the port is turned on either way.
    pub fn with(os: Option<bool>, uefi: Option<bool>) -> WifiSync {
        WifiSync {
            os,
            uefi,
            name: "wi-fi-sync",
        }
    }

    /// rpc-go v2's `configure enablewifiport`: both syncs on, the port on.
    pub fn enable_wifi_port() -> WifiSync {
        WifiSync {
            name: "enablewifiport",
            ..WifiSync::with(Some(true), Some(true))
        }
    }
}

pub struct SyncState {
    pub has_wifi: bool,
    pub config: Option<PortConfiguration>,
    pub uefi_capable: bool,
    /// `CIM_WiFiPort.EnabledState`.
    pub port: u32,
}

fn sync_text(v: u32) -> &'static str {
    match v {
        0 => "off",
        1 => "local user profiles",
        3 => "on (unrestricted)",
        _ => "unknown",
    }
}

fn port_text(v: u32) -> String {
    match v {
        3 => "disabled".into(),
        32768 => "enabled in S0".into(),
        32769 => "enabled in S0 and Sx/AC".into(),
        n => format!("state {n}"),
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

impl Configure for WifiSync {
    type State = SyncState;

    fn name(&self) -> &'static str {
        self.name
    }

    fn needs(&self) -> Needs {
        Needs::Activation
    }

    fn failure(&self) -> ExitCode {
        ExitCode::WifiConfigurationFailed
    }

    fn read(&mut self, t: &mut Target) -> Result<SyncState, AgentError> {
        if !super::wireless::read_has_wifi(t)? {
            tracing::warn!(
                "this machine has no wireless adapter AMT can use: no Wi-Fi to synchronise"
            );
            return Ok(SyncState {
                has_wifi: false,
                config: None,
                uefi_capable: false,
                port: 3,
            });
        }
        Ok(SyncState {
            has_wifi: true,
            config: Some(t.read(wifi::get_port_configuration())?),
            uefi_capable: t.read(wifi::uefi_wifi_share_capable())?,
            port: t.read(wifi::get_port())?,
        })
    }

    fn plan(&self, _mode: ControlMode, s: &SyncState) -> Result<Plan, AgentError> {
        let mut plan = Plan::default();
        let Some(c) = &s.config else {
            return Ok(plan);
        };
        let local = match self.os {
            Some(true) => wifi::LOCAL_SYNC_UNRESTRICTED,
            Some(false) => wifi::LOCAL_SYNC_OFF,
            None => c.local_sync,
        };
        // UEFI sharing only where the platform has it; elsewhere the flag is moot, as in rpc-go.
        let uefi = match (c.uefi_share, self.uefi) {
            (Some(_), Some(want)) if s.uefi_capable => Some(want),
            _ => None,
        };
        let put_needed = c.local_sync != local || (uefi.is_some() && c.uefi_share != uefi);
        let mut put =
            put_needed.then(|| Step::Wsman(wifi::put_port_configuration(c, local, uefi).checked()));
        let mut setting = |plan: &mut Plan, name: &str, cur: String, want: String| {
            if cur == want {
                plan.kept.push(Kept::new(name, cur));
            } else {
                let steps = put.take().into_iter().collect();
                plan.changes.push(Change::new(name, cur, want, steps));
            }
        };
        if self.os.is_some() {
            setting(
                &mut plan,
                "OS Wi-Fi profile sync",
                sync_text(c.local_sync).into(),
                sync_text(local).into(),
            );
        }
        match (uefi, c.uefi_share) {
            (Some(want), Some(cur)) => setting(
                &mut plan,
                "UEFI Wi-Fi profile share",
                on_off(cur).into(),
                on_off(want).into(),
            ),
            _ if self.uefi.is_none() => {}
            _ => plan.kept.push(Kept::new(
                "UEFI Wi-Fi profile share",
                "not supported by this platform",
            )),
        }
        plan.setting(
            "Wi-Fi port",
            port_text(s.port),
            port_text(wifi::PORT_ENABLED_S0_SX_AC),
            || {
                vec![Step::Wsman(
                    wifi::request_port_state(wifi::PORT_ENABLED_S0_SX_AC).checked(),
                )]
            },
        );
        Ok(plan)
    }

    fn report(&self, s: &SyncState) -> (String, serde_json::Value) {
        let Some(c) = &s.config else {
            return (
                "no wireless adapter: nothing configured".into(),
                json!({"wirelessAdapter": false}),
            );
        };
        let uefi = c.uefi_share.map(on_off).unwrap_or("not supported");
        (
            format!(
                "OS Wi-Fi profile sync {}, UEFI Wi-Fi profile share {uefi}, Wi-Fi port {}",
                sync_text(c.local_sync),
                port_text(s.port)
            ),
            json!({
                "wirelessAdapter": true,
                "localProfileSynchronizationEnabled": c.local_sync,
                "uefiWiFiProfileShareEnabled": c.uefi_share,
                "uefiWiFiProfileShareSupported": s.uefi_capable,
                "wifiPortEnabledState": s.port,
            }),
        )
    }
}
