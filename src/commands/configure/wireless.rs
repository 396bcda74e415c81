//! `configure wireless`: a Wi-Fi profile through `AMT_WiFiPortConfigurationService.AddWiFiSettings`
//! (rpc-go's `configure wireless`, RPS's `wifiNetworkConfiguration.ts`), and `--purge`.
//!
//! A profile is named (1–32 letters and digits; 116 otherwise) and holds an SSID, a priority
//! (1–255, unique among the profiles), an authentication method (rpc-go's numbers or v2's names:
//! 4 WPA-PSK, 5 WPA-802.1X, 6 WPA2-PSK, 7 WPA2-802.1X, 32768 WPA3-SAE, 32769 WPA3-OWE) and an
//! encryption method (3 TKIP, 4 CCMP; WPA3 needs CCMP). PSK and SAE take a passphrase of 8–63
//! printable characters from `--psk-passphrase-file`, `PSK_PASSPHRASE`, `--psk-passphrase`
//! (warned) or a prompt; 802.1X methods take the flags of [`super::ieee8021x`].
//!
//! Unlike rpc-go, which deletes every profile before adding one, a profile is added or replaced
//! by its name and the others stay; `--purge` deletes every user profile (priority ≠ 0; profiles
//! the OS or UEFI synchronised keep theirs), and with a profile makes it the only one. A profile
//! AMT already holds as wanted is left alone: AMT never reveals a passphrase or 802.1X password,
//! so changing only that needs `--force`. A platform without a wireless adapter has nothing to
//! configure: it is said and the exit is 0, as rpc-go does.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::enumerate_all;
use super::ieee8021x::{self, handle_now, Ieee8021xArgs, Store, Wanted};
use super::{Change, Configure, Kept, Later, Needs, Plan, Step, Target};
use crate::amthi::ControlMode;
use crate::error::{AgentError, ExitCode};
use crate::secret::Secret;
use crate::wsman::classes::ethernet::{self, EthernetPortSettings};
use crate::wsman::classes::ieee8021x::{self as dot1x, CredentialContext, ProfileSettings};
use crate::wsman::classes::wifi::{
    self, AuthMethod, Encryption, NewProfile, NewProfile8021x, Profile,
};

#[derive(Args, Debug, Clone, Default)]
pub struct WirelessArgs {
    /// The profile's name (1–32 letters and digits).
    #[arg(long, visible_alias = "profileName")]
    pub profile_name: Option<String>,
    /// The network's SSID (1–32 bytes).
    #[arg(long)]
    pub ssid: Option<String>,
    /// The profile's priority, 1 (first) to 255; unique among AMT's profiles.
    #[arg(long, default_value_t = 1)]
    pub priority: u32,
    /// 4 WPA-PSK, 5 WPA-802.1X, 6 WPA2-PSK, 7 WPA2-802.1X, 32768 WPA3-SAE, 32769 WPA3-OWE (or
    /// rpc-go v2's names: WPAPSK, WPAIEEE8021x, WPA2PSK, WPA2IEEE8021x, WPA3SAE, WPA3OWE).
    #[arg(long, visible_alias = "authenticationMethod", default_value = "6", value_parser = parse_auth)]
    pub authentication_method: AuthMethod,
    /// 3 TKIP or 4 CCMP.
    #[arg(long, visible_alias = "encryptionMethod", default_value = "4", value_parser = parse_encryption)]
    pub encryption_method: Encryption,
    /// The passphrase (prefer PSK_PASSPHRASE or --psk-passphrase-file: the command line is
    /// visible to other users).
    #[arg(long, visible_alias = "pskPassphrase")]
    pub psk_passphrase: Option<Secret>,
    /// A file holding the passphrase (first line; must not be readable by others).
    #[arg(long)]
    pub psk_passphrase_file: Option<PathBuf>,
    /// Delete every user profile (with a profile: every other one).
    #[arg(long)]
    pub purge: bool,
    #[command(flatten)]
    pub ieee8021x: Ieee8021xArgs,
    /// Add the profile again even when AMT holds it as wanted (to change a passphrase or 802.1X
    /// password, which AMT never reveals).
    #[arg(long)]
    pub force: bool,
}

fn parse_auth(s: &str) -> Result<AuthMethod, String> {
    AuthMethod::parse(s).ok_or_else(|| {
        format!("'{s}': AMT takes 4, 5, 6, 7, 32768 or 32769 (WPAPSK, WPAIEEE8021x, WPA2PSK, WPA2IEEE8021x, WPA3SAE, WPA3OWE)")
    })
}

fn parse_encryption(s: &str) -> Result<Encryption, String> {
    Encryption::parse(s).ok_or_else(|| format!("'{s}': AMT takes 3 (TKIP) or 4 (CCMP)"))
}

/// The passphrase's environment variables: rpc-go's, then its v3 default.
pub const PSK_ENV: &[&str] = &["PSK_PASSPHRASE", "RPC_PSK_PASSPHRASE"];
/// Profiles AMT holds (the simulator's limit; UNCONFIRMED for firmware).
pub const MAX_PROFILES: usize = 16;

/// The profile the flags ask for.
#[derive(Clone, Debug)]
pub struct WantedProfile {
    pub name: String,
    pub ssid: String,
    pub priority: u32,
    pub auth: AuthMethod,
    pub encryption: Encryption,
    pub passphrase: Option<Secret>,
    pub dot1x: Option<Wanted>,
}

impl WantedProfile {
    /// What AddWiFiSettings sends for it (the passphrase, for PSK and SAE).
    fn new_profile(&self) -> NewProfile<'_> {
        NewProfile {
            name: &self.name,
            ssid: &self.ssid,
            priority: self.priority,
            auth: self.auth,
            encryption: self.encryption,
            passphrase: self.passphrase.as_ref(),
        }
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "SSID {}, priority {}, {}/{}",
            self.ssid,
            self.priority,
            self.auth.text(),
            self.encryption.text()
        );
        if let Some(w) = &self.dot1x {
            s.push_str(&format!(", 802.1X {}", w.describe()));
        }
        s
    }
}

fn bad(m: impl Into<String>) -> AgentError {
    AgentError::new(ExitCode::MissingOrInvalidConfiguration, m)
}

/// The profile checked against what AMT takes (the passphrase comes later: it may need a prompt).
fn wanted(a: &WirelessArgs) -> Result<Option<WantedProfile>, AgentError> {
    let Some(name) = a.profile_name.clone() else {
        if a.purge {
            return Ok(None);
        }
        return Err(AgentError::new(
            ExitCode::MissingOrIncorrectWifiProfileName,
            "a Wi-Fi profile needs --profile-name",
        )
        .help("name it with --profile-name NAME (letters and digits), or give --purge to delete the profiles"));
    };
    let ssid = a.ssid.clone().unwrap_or_default();
    let auth = a.authentication_method;
    check_fields(&name, &ssid, a.priority, auth, a.encryption_method)?;
    let dot1x = a.ieee8021x.wanted()?;
    let given_psk = a.psk_passphrase.is_some() || a.psk_passphrase_file.is_some();
    if !auth.uses_passphrase() && given_psk {
        return Err(AgentError::new(
            ExitCode::InvalidParameterCombination,
            format!("{} takes no passphrase", auth.text()),
        ));
    }
    WantedProfile::new(
        name,
        ssid,
        a.priority,
        auth,
        a.encryption_method,
        None,
        dot1x,
    )
    .map(Some)
}

impl WantedProfile {
    /// A profile from values read already (a desired-state profile's, its passphrase and 802.1X
    /// secrets resolved), checked as the flags are; `passphrase` `None` is asked for later by
    /// `configure wireless` and refused by [`Wireless::with`].
    pub fn new(
        name: String,
        ssid: String,
        priority: u32,
        auth: AuthMethod,
        encryption: Encryption,
        passphrase: Option<Secret>,
        dot1x: Option<Wanted>,
    ) -> Result<WantedProfile, AgentError> {
        check_fields(&name, &ssid, priority, auth, encryption)?;
        if auth.uses_8021x() && dot1x.is_none() {
            return Err(AgentError::new(
            ExitCode::MissingIeee8021xConfiguration,
            format!("{} needs the 802.1X settings", auth.text()),
        )
        .help("give --ieee8021x-profile-name, --ieee8021x-username and the EAP-TLS files or the PEAP password"));
        }
        if !auth.uses_8021x() && dot1x.is_some() {
            return Err(AgentError::new(
            ExitCode::InvalidParameterCombination,
            format!("{} does not use 802.1X", auth.text()),
        )
        .help(
            "use --authentication-method 7 (WPA2-802.1X) or 5 with the 802.1X flags, or drop them",
        ));
        }
        match &passphrase {
            Some(_) if !auth.uses_passphrase() => {
                return Err(AgentError::new(
                    ExitCode::InvalidParameterCombination,
                    format!("{} takes no passphrase", auth.text()),
                ))
            }
            Some(p) => check_passphrase(p)?,
            None => {}
        }
        Ok(WantedProfile {
            name,
            ssid,
            priority,
            auth,
            encryption,
            passphrase,
            dot1x,
        })
    }
}

/// The name, SSID, priority and methods, as AMT takes them.
fn check_fields(
    name: &str,
    ssid: &str,
    priority: u32,
    auth: AuthMethod,
    encryption: Encryption,
) -> Result<(), AgentError> {
    if !ieee8021x::valid_profile_name(name) {
        return Err(AgentError::new(
            ExitCode::MissingOrIncorrectWifiProfileName,
            format!("the Wi-Fi profile name '{name}' is not 1–32 letters and digits"),
        )
        .help("use only a-z, A-Z and 0-9 (no spaces or dashes), as AMT and rpc-go do"));
    }
    if ssid.is_empty() || ssid.len() > 32 {
        return Err(bad("the profile needs --ssid, 1–32 bytes"));
    }
    if !(1..=255).contains(&priority) {
        return Err(bad(format!("--priority {priority} is not 1–255")));
    }
    if auth.is_wpa3() && encryption != Encryption::Ccmp {
        return Err(bad(format!(
            "{} needs CCMP (--encryption-method 4)",
            auth.text()
        )));
    }
    Ok(())
}

/// AMT's rule for a passphrase: 8–63 printable ASCII characters.
fn check_passphrase(p: &Secret) -> Result<(), AgentError> {
    let k = p.expose();
    if !(8..=63).contains(&k.len()) || !k.bytes().all(|b| (0x20..0x7F).contains(&b)) {
        return Err(bad(
            "the passphrase must be 8–63 printable ASCII characters (AMT's rule)",
        ));
    }
    Ok(())
}

pub struct Wireless {
    /// Where secrets not given yet come from (the flags, the environment, a prompt).
    args: WirelessArgs,
    want: Option<WantedProfile>,
    purge: bool,
    force: bool,
}

impl Wireless {
    pub fn new(a: &WirelessArgs) -> Result<Wireless, AgentError> {
        Ok(Wireless {
            want: wanted(a)?,
            purge: a.purge,
            force: a.force,
            args: a.clone(),
        })
    }

    /// A profile as a desired-state profile wants it, its secrets resolved already (nothing is
    /// read from the environment or asked for); `purge` as `--purge`, `force` as `--force`.
    pub fn with(
        want: Option<WantedProfile>,
        purge: bool,
        force: bool,
    ) -> Result<Wireless, AgentError> {
        if let Some(w) = &want {
            let peap = w
                .dot1x
                .as_ref()
                .is_some_and(|d| d.method == dot1x::EapMethod::PeapMschapv2);
            if (w.auth.uses_passphrase() && w.passphrase.is_none())
                || (peap && w.dot1x.as_ref().is_some_and(|d| d.password.is_none()))
            {
                return Err(bad(format!(
                    "the Wi-Fi profile {} lacks its passphrase or 802.1X password",
                    w.name
                )));
            }
        }
        Ok(Wireless {
            args: WirelessArgs::default(),
            want,
            purge,
            force,
        })
    }

    fn resolve_secrets(&mut self) -> Result<(), AgentError> {
        let Some(w) = &mut self.want else {
            return Ok(());
        };
        if let Some(d) = &mut w.dot1x {
            d.resolve_password(&self.args.ieee8021x)?;
        }
        if w.auth.uses_passphrase() && w.passphrase.is_none() {
            let p = super::new_secret(
                "Wi-Fi passphrase",
                self.args.psk_passphrase.as_ref(),
                self.args.psk_passphrase_file.as_deref(),
                PSK_ENV,
                true,
            )?
            .ok_or_else(|| {
                bad(format!("{} needs the passphrase", w.auth.text())).help(
                    "set PSK_PASSPHRASE, or give --psk-passphrase-file FILE (mode 600), or run on a terminal to be asked",
                )
            })?;
            check_passphrase(&p)?;
            w.passphrase = Some(p);
        }
        Ok(())
    }
}

/// AMT's Wi-Fi profiles, their 802.1X settings and bindings, and the store.
#[derive(Clone)]
pub struct WirelessState {
    /// False on a platform without a wireless adapter: nothing else was read.
    pub has_wifi: bool,
    pub profiles: Vec<Profile>,
    pub settings: Vec<ProfileSettings>,
    pub contexts: Vec<CredentialContext>,
    pub store: Store,
}

/// The 802.1X settings AddWiFiSettings made for a profile: the firmware names them after the
/// profile (`Intel(r) AMT:IEEE 802.1x Settings <profile>`, the prefix rpc-go strips).
const IEEE8021X_ID_PREFIX: &str = "Intel(r) AMT:IEEE 802.1x Settings ";

impl WirelessState {
    fn settings_of(&self, p: &Profile) -> Option<&ProfileSettings> {
        let id = format!("{IEEE8021X_ID_PREFIX}{}", p.name);
        self.settings.iter().find(|s| s.instance_id == id)
    }

    fn bound_to(&self, settings: &ProfileSettings) -> Vec<&str> {
        self.contexts
            .iter()
            .filter(|c| c.settings == settings.instance_id)
            .map(|c| c.certificate.as_str())
            .collect()
    }

    fn describe(&self, p: &Profile) -> String {
        let auth = p
            .auth
            .and_then(AuthMethod::from_value)
            .map(AuthMethod::text)
            .unwrap_or("unknown method");
        let enc = p
            .encryption
            .and_then(Encryption::from_value)
            .map(Encryption::text)
            .unwrap_or("unknown encryption");
        let mut s = format!("SSID {}, priority {}, {auth}/{enc}", p.ssid, p.priority);
        if let Some(x) = self.settings_of(p) {
            s.push_str(&format!(
                ", 802.1X {} as {}",
                x.protocol.map(dot1x::protocol_text).unwrap_or_default(),
                x.username
            ));
        }
        s
    }

    /// Whether AMT holds `p` as `w` asks, as far as AMT reveals it.
    pub fn matches(&self, p: &Profile, w: &WantedProfile) -> bool {
        let base = p.ssid == w.ssid
            && p.priority == w.priority
            && p.auth == Some(w.auth.value())
            && p.encryption == Some(w.encryption.value());
        let x = self.settings_of(p);
        base && match (&w.dot1x, x) {
            (None, None) => true,
            (Some(d), Some(x)) => {
                let bound = self.bound_to(x);
                let holds = |c: &Option<ieee8021x::Cert>, root: bool| match c {
                    Some(c) => bound.iter().any(|h| self.store.is(h, c)),
                    None => !bound.iter().any(|h| {
                        self.store
                            .by_handle(h)
                            .is_some_and(|x| x.trusted_root == root)
                    }),
                };
                x.protocol == Some(d.method.value())
                    && x.username == d.username
                    && x.element_name == d.profile_name
                    && holds(&d.client, false)
                    && holds(&d.ca, true)
            }
            _ => false,
        }
    }
}

/// AMT's Wi-Fi profiles with their 802.1X settings and bindings, and (`with_store`) the
/// certificate store; `ready` runs once the machine is known to have Wi-Fi (a secret is asked for
/// only then).
pub fn read_state(
    t: &mut Target,
    with_store: bool,
    ready: impl FnOnce() -> Result<(), AgentError>,
) -> Result<WirelessState, AgentError> {
    let has_wifi = read_has_wifi(t)?;
    if !has_wifi {
        tracing::warn!(
            "this machine has no wireless adapter AMT can use: no Wi-Fi profile to configure"
        );
        return Ok(WirelessState {
            has_wifi,
            profiles: Vec::new(),
            settings: Vec::new(),
            contexts: Vec::new(),
            store: Store::default(),
        });
    }
    ready()?;
    let profiles = enumerate_all(t, wifi::ENDPOINT_SETTINGS)?
        .iter()
        .map(Profile::from_instance)
        .collect();
    let settings = enumerate_all(t, dot1x::CIM_SETTINGS)?
        .iter()
        .map(ProfileSettings::from_instance)
        .collect();
    let contexts = enumerate_all(t, dot1x::CIM_CONTEXT)?
        .iter()
        .filter_map(CredentialContext::from_instance)
        .collect();
    let store = if with_store {
        Store::read(t)?
    } else {
        Store::default()
    };
    Ok(WirelessState {
        has_wifi,
        profiles,
        settings,
        contexts,
        store,
    })
}

fn has_adapter(p: &EthernetPortSettings) -> bool {
    p.mac_address
        .as_deref()
        .is_some_and(|m| m.bytes().any(|b| b.is_ascii_hexdigit() && b != b'0'))
}

/// Whether this machine has a wireless adapter AMT can use (`… Settings 1` with a MAC).
pub fn read_has_wifi(t: &mut Target) -> Result<bool, AgentError> {
    let ctx = t.read(ethernet::enumerate())?;
    Ok(t.read(ethernet::pull(&ctx))?
        .items
        .iter()
        .any(|p| !p.is_wired() && has_adapter(p)))
}

impl Configure for Wireless {
    type State = WirelessState;

    fn name(&self) -> &'static str {
        "wireless"
    }

    fn needs(&self) -> Needs {
        Needs::Activation
    }

    fn failure(&self) -> ExitCode {
        ExitCode::WifiConfigurationFailed
    }

    fn read(&mut self, t: &mut Target) -> Result<WirelessState, AgentError> {
        let with_store = self.want.as_ref().is_some_and(|w| w.dot1x.is_some());
        read_state(t, with_store, || self.resolve_secrets())
    }

    fn plan(&self, _mode: ControlMode, s: &WirelessState) -> Result<Plan, AgentError> {
        let mut plan = Plan::default();
        if !s.has_wifi {
            return Ok(plan);
        }
        let want = self.want.as_ref();
        let mine = want.and_then(|w| s.profiles.iter().find(|p| p.name == w.name));
        // --purge: every user profile but the wanted one.
        let mut remaining: Vec<&Profile> = Vec::new();
        for p in &s.profiles {
            let is_mine = mine.is_some_and(|m| m.instance_id == p.instance_id);
            if self.purge && !p.is_synced() && !is_mine {
                plan.changes.push(Change::new(
                    format!("Wi-Fi profile {}", p.name),
                    s.describe(p),
                    "absent",
                    vec![Step::Wsman(wifi::delete_profile(&p.instance_id))],
                ));
            } else if !is_mine {
                remaining.push(p);
            }
        }
        let Some(w) = want else {
            if plan.changes.is_empty() {
                plan.kept.push(Kept::new("Wi-Fi profiles", "none to purge"));
            }
            return Ok(plan);
        };
        let setting = format!("Wi-Fi profile {}", w.name);
        if let Some(m) = mine {
            if s.matches(m, w) && !self.force {
                let mut kept = s.describe(m);
                if w.passphrase.is_some() || w.dot1x.as_ref().is_some_and(|d| d.password.is_some())
                {
                    kept.push_str(" (secrets are not readable: --force sends them again)");
                }
                plan.kept.push(Kept::new(setting, kept));
                return Ok(plan);
            }
        }
        if let Some(other) = remaining.iter().find(|p| p.priority == w.priority) {
            return Err(AgentError::new(
                ExitCode::WifiConfigurationFailed,
                format!(
                    "priority {} is held by the Wi-Fi profile {}: AMT refuses two profiles with one priority",
                    w.priority, other.name
                ),
            )
            .help("choose another --priority, or add --purge to make this the only profile"));
        }
        if mine.is_none() && remaining.len() >= MAX_PROFILES {
            return Err(AgentError::new(
                ExitCode::WifiConfigurationFailed,
                format!("AMT holds {} Wi-Fi profiles, its limit", remaining.len()),
            )
            .help(
                "delete one (amt-agent configure wireless --purge, or replace one by its name)",
            ));
        }
        let mut steps = Vec::new();
        if let Some(m) = mine {
            steps.push(Step::Wsman(wifi::delete_profile(&m.instance_id)));
        }
        steps.extend(add_steps(w, &s.store));
        let current = mine
            .map(|m| s.describe(m))
            .unwrap_or_else(|| "absent".into());
        let change = Change::new(setting, current, w.describe(), steps);
        let forced_only = mine.is_some_and(|m| s.matches(m, w));
        plan.changes.push(if forced_only {
            change.unverifiable()
        } else {
            change
        });
        Ok(plan)
    }

    fn report(&self, s: &WirelessState) -> (String, serde_json::Value) {
        if !s.has_wifi {
            return (
                "no wireless adapter: nothing configured".into(),
                json!({"wirelessAdapter": false, "profiles": []}),
            );
        }
        let text = if s.profiles.is_empty() {
            "Wi-Fi profiles: none".to_string()
        } else {
            format!(
                "Wi-Fi profiles: {}",
                s.profiles
                    .iter()
                    .map(|p| format!("{} ({})", p.name, s.describe(p)))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        };
        let profiles: Vec<serde_json::Value> = s
            .profiles
            .iter()
            .map(|p| {
                let x = s.settings_of(p);
                json!({
                    "profileName": p.name,
                    "ssid": p.ssid,
                    "priority": p.priority,
                    "authenticationMethod": p.auth,
                    "encryptionMethod": p.encryption,
                    "ieee8021x": x.map(|x| json!({
                        "profileName": x.element_name,
                        "authenticationProtocol": x.protocol.map(dot1x::protocol_text),
                        "username": x.username,
                        "certificates": s.bound_to(x),
                    })),
                })
            })
            .collect();
        (text, json!({"wirelessAdapter": true, "profiles": profiles}))
    }
}

/// The certificate and key adds an 802.1X profile needs (each refusal exits 108), then
/// AddWiFiSettings, built when its turn comes with the handles AMT gave the certificates.
fn add_steps(w: &WantedProfile, store: &Store) -> Vec<Step> {
    let Some(d) = &w.dot1x else {
        return vec![Step::Wsman(
            wifi::add_wifi_settings(&w.new_profile(), None).checked(),
        )];
    };
    let mut steps = store.add_steps(d, ExitCode::Ieee8021xConfigurationFailed);
    let describe = format!(
        "AMT_WiFiPortConfigurationService.AddWiFiSettings(WiFiEndpoint=<{}>, WiFiEndpointSettingsInput={{ElementName={}, SSID={}, Priority={}, AuthenticationMethod={}, EncryptionMethod={}}}, IEEE8021xSettingsInput={{ElementName={}, AuthenticationProtocol={}, Username={}{}}}{}{})",
        wifi::ENDPOINT_NAME,
        w.name,
        w.ssid,
        w.priority,
        w.auth.value(),
        w.encryption.value(),
        d.profile_name,
        d.method.value(),
        d.username,
        if d.password.is_some() { ", Password=***" } else { "" },
        d.client
            .as_ref()
            .map(|c| format!(", ClientCredential=<handle of {}>", c.subject))
            .unwrap_or_default(),
        d.ca
            .as_ref()
            .map(|c| format!(", CACredential=<handle of {}>", c.subject))
            .unwrap_or_default(),
    );
    let (w, d) = (w.clone(), d.clone());
    steps.push(Step::Later(Later {
        describe,
        exit: None,
        build: Box::new(move |t| {
            let client = match &d.client {
                Some(c) => Some(handle_now(t, c, false)?),
                None => None,
            };
            let ca = match &d.ca {
                Some(c) => Some(handle_now(t, c, true)?),
                None => None,
            };
            Ok(wifi::add_wifi_settings(
                &w.new_profile(),
                Some(&NewProfile8021x {
                    name: &d.profile_name,
                    protocol: d.method.value(),
                    username: &d.username,
                    password: d.password.as_ref(),
                    client_certificate: client.as_deref(),
                    ca_certificate: ca.as_deref(),
                }),
            )
            .checked())
        }),
    }));
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(f: impl FnOnce(&mut WirelessArgs)) -> WirelessArgs {
        let mut a = WirelessArgs {
            profile_name: Some("office".into()),
            ssid: Some("CorpNet".into()),
            priority: 1,
            authentication_method: AuthMethod::Wpa2Psk,
            encryption_method: Encryption::Ccmp,
            ..WirelessArgs::default()
        };
        f(&mut a);
        a
    }

    fn code(a: WirelessArgs) -> u8 {
        wanted(&a).unwrap_err().exit.code()
    }

    #[test]
    fn refusals_before_anything_is_sent() {
        assert_eq!(code(args(|a| a.profile_name = Some("my-net".into()))), 116);
        assert_eq!(code(args(|a| a.profile_name = None)), 116);
        assert_eq!(code(args(|a| a.ssid = None)), 35);
        assert_eq!(code(args(|a| a.priority = 0)), 35);
        assert!(wanted(&args(|a| a.encryption_method = Encryption::Tkip)).is_ok());
        assert_eq!(
            code(args(|a| {
                a.authentication_method = AuthMethod::Wpa3Sae;
                a.encryption_method = Encryption::Tkip
            })),
            35
        );
        assert_eq!(
            code(args(|a| a.authentication_method = AuthMethod::Wpa2Ieee8021x)),
            117
        );
        assert_eq!(
            code(args(|a| {
                a.authentication_method = AuthMethod::Wpa3Owe;
                a.psk_passphrase = Some(Secret::new("x"))
            })),
            33
        );
        assert!(wanted(&args(|a| {
            a.profile_name = None;
            a.purge = true
        }))
        .unwrap()
        .is_none());
    }
}
