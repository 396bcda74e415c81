//! The profile's `network`: the wired port and the Wi-Fi, each an area made of the `configure`
//! subcommands that set it (`configure wired`; `configure wi-fi-sync` and `configure wireless`),
//! built from the profile with its secrets resolved, never by flags, the environment or a prompt.
//!
//! 802.1X is no area of its own: AMT has no 802.1X profile apart from the port or Wi-Fi profile
//! that uses it, so an entry of `network.ieee8021x` is applied with the wired port or the Wi-Fi
//! profile that names it (the wired port's `wired 802.1X` setting; a Wi-Fi profile's 802.1X is
//! part of that profile).
//!
//! Secrets AMT never reveals — a Wi-Fi passphrase, a PEAP-MSCHAPv2 password — are set once per
//! value, as the MEBx password is ([`Verifier`]): AMT reporting the rest as wanted and a verifier
//! of the same secret on this device keep the setting; another secret (or none recorded) sends
//! it again.

use std::collections::HashSet;

use super::areas::{strip_force_hint, verifier, Area, Verifier};
use crate::commands::configure::ieee8021x::{self, Material, Wanted};
use crate::commands::configure::wifisync::WifiSync;
use crate::commands::configure::wired::{self, Wired, WiredArgs};
use crate::commands::configure::wireless::{self, WantedProfile, Wireless};
use crate::commands::configure::{Configure, Kept, Plan, Target};
use crate::error::{AgentError, ExitCode};
use crate::profile::secrets::DataDir;
use crate::profile::{self, Network};
use crate::secret::Secret;
use crate::wsman::classes::ieee8021x::EapMethod;
use crate::wsman::classes::wifi::{AuthMethod, Encryption};

/// A certificate the profile gives as a file or as PEM text.
fn certificate(v: &std::path::Path, at: &str, what: &str) -> Result<ieee8021x::Cert, AgentError> {
    let text = v.to_string_lossy();
    let cert = if text.contains("-----BEGIN") {
        ieee8021x::cert_from_bytes(text.as_bytes(), at, what)
    } else {
        ieee8021x::load_cert(Some(v), "", what).and_then(|c| {
            c.ok_or_else(|| AgentError::new(ExitCode::FailedReadingConfiguration, at.to_string()))
        })
    };
    cert.map_err(|e| e.context(format!("{at}: the {what}")))
}

/// The 802.1X entry `name` of the profile, read and checked (its certificates, key and password).
fn dot1x(net: &Network, name: &str) -> Result<Wanted, AgentError> {
    let (i, d) = net
        .ieee8021x
        .iter()
        .flatten()
        .enumerate()
        .find(|(_, d)| d.name == name)
        .ok_or_else(|| {
            AgentError::new(
                ExitCode::MissingIeee8021xConfiguration,
                format!("no network.ieee8021x entry is named {name}"),
            )
        })?;
    let at = format!("network.ieee8021x[{i}]");
    let method = match d.protocol.as_str() {
        "peap-mschapv2" => EapMethod::PeapMschapv2,
        _ => EapMethod::EapTls,
    };
    let client = d
        .client_certificate
        .as_deref()
        .map(|p| {
            certificate(
                p,
                &format!("{at}.clientCertificate"),
                "802.1X client certificate",
            )
        })
        .transpose()?;
    let ca = d
        .ca_certificate
        .as_deref()
        .map(|p| certificate(p, &format!("{at}.caCertificate"), "802.1X CA certificate"))
        .transpose()?;
    let key = match &d.private_key {
        Some(r) => {
            let what = format!("{at}.privateKey");
            let text = r.resolve_text(&what)?;
            Some(ieee8021x::key_from_bytes(text.expose().as_bytes()).map_err(|e| e.context(what))?)
        }
        None => None,
    };
    let password = d
        .password
        .as_ref()
        .map(|r| r.resolve(&format!("{at}.password")))
        .transpose()?;
    Wanted::new(
        d.name.clone(),
        method,
        d.username.clone(),
        Material {
            client,
            key,
            ca,
            password,
        },
    )
    .map_err(|e| e.context(format!("{at} ({name})")))
}

/// What AMT never reveals of an 802.1X profile: its PEAP password.
fn dot1x_secret(w: &Wanted) -> Option<Secret> {
    w.password
        .as_ref()
        .map(|p| Secret::new(format!("peap-mschapv2\n{}", p.expose())))
}

// ---------------------------------------------------------------------------------------------
// wired
// ---------------------------------------------------------------------------------------------

/// `network.wired`: the port's addressing and its 802.1X (`configure wired`); without
/// `ieee8021x` an enabled 802.1X is turned off, as `configure wired` does.
pub struct WiredArea {
    wired: Wired,
    wanted: String,
    /// The PEAP password AMT does not reveal, and its verifier.
    secret: Option<(Secret, Verifier)>,
}

/// The addressing `network.wired` asks for, checked by `configure wired`'s rules (27–33).
/// `ipSync` left out means: with DHCP, yes (AMT shares the lease); static with `ipAddress`, no;
/// static without, yes (AMT takes the host OS's address).
fn addressing(w: &profile::Wired) -> Result<Option<wired::Addressing>, AgentError> {
    let mut a = WiredArgs::default();
    if w.dhcp {
        a.dhcp = true;
    } else if w.ip_sync.unwrap_or(w.ip_address.is_none()) {
        a.static_ip = true;
        a.ip_sync = true;
    } else {
        a.static_ip = true;
        a.ip_address = w.ip_address.clone();
        a.subnet_mask = w.subnet_mask.clone();
        a.gateway = w.gateway.clone();
        a.primary_dns = w.primary_dns.clone();
        a.secondary_dns = w.secondary_dns.clone();
    }
    wired::addressing(&a).map_err(|e| e.context("network.wired"))
}

impl WiredArea {
    pub fn new(net: &Network, data: &DataDir, uuid: &str) -> Result<WiredArea, AgentError> {
        let w = net
            .wired
            .as_ref()
            .expect("the wired area is listed because it is set");
        let addressing = addressing(w)?;
        let want = w.ieee8021x.as_deref().map(|n| dot1x(net, n)).transpose()?;
        let wanted = format!(
            "{}; 802.1X {}",
            addressing
                .as_ref()
                .map(wired::Addressing::describe)
                .unwrap_or_default(),
            want.as_ref()
                .map(|d| format!("{} ({})", d.describe(), d.profile_name))
                .unwrap_or_else(|| "off".into())
        );
        let secret = want
            .as_ref()
            .and_then(dot1x_secret)
            .map(|s| (s, verifier(data, "wired-8021x", uuid)));
        Ok(WiredArea {
            wired: Wired::with(addressing, want)?,
            wanted,
            secret,
        })
    }
}

impl Area for WiredArea {
    fn name(&self) -> &'static str {
        "wired"
    }

    fn wanted(&self) -> String {
        self.wanted.clone()
    }

    fn failure(&self) -> ExitCode {
        self.wired.failure()
    }

    fn plan(&mut self, t: &mut Target) -> Result<Plan, AgentError> {
        let set_at = self.secret.as_ref().map(|(s, v)| v.set_at(s));
        let unknown_secret = matches!(set_at, Some(None));
        self.wired.set_force(unknown_secret);
        let mode = t.control_mode;
        self.wired.precheck(mode)?;
        let state = self.wired.read(t)?;
        let mut plan = self.wired.plan(mode, &state)?;
        for k in plan.kept.iter_mut().filter(|k| k.setting == "wired 802.1X") {
            if let Some(Some(at)) = &set_at {
                k.value = format!(
                    "{} (the password set by amt-agent at {at}; AMT does not reveal it)",
                    strip_force_hint(&k.value)
                );
            }
        }
        for c in plan
            .changes
            .iter_mut()
            .filter(|c| c.setting == "wired 802.1X")
        {
            if unknown_secret && !c.verifiable {
                c.desired.push_str(
                    " (sent again: AMT does not reveal the password, and amt-agent has no record of setting this one)",
                );
            }
        }
        Ok(plan)
    }

    fn after_apply(&mut self, t: &mut Target) -> Result<(), AgentError> {
        self.wired.after_apply(t)?;
        // Every step succeeded: AMT holds the profile's password now.
        if let Some((s, v)) = &self.secret {
            v.remember(s)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// wireless
// ---------------------------------------------------------------------------------------------

struct WifiWanted {
    profile: WantedProfile,
    /// The passphrase or PEAP password AMT does not reveal, and its verifier.
    secret: Option<(Secret, Verifier)>,
}

/// `network.wireless`: the OS and UEFI profile sync and AMT's Wi-Fi port (`configure
/// wi-fi-sync`), then `profiles`, the complete list (`configure wireless` per profile): each
/// wanted profile added, or replaced when it differs; every other user profile deleted. Profiles
/// the OS or UEFI synchronised (priority 0) are not the profile's to delete.
pub struct WirelessArea {
    sync: WifiSync,
    /// `None`: the profiles are not managed.
    profiles: Option<Vec<WifiWanted>>,
    wanted: String,
}

fn auth_method(s: &str) -> AuthMethod {
    match s {
        "wpa-psk" => AuthMethod::WpaPsk,
        "wpa-ieee8021x" => AuthMethod::WpaIeee8021x,
        "wpa2-ieee8021x" => AuthMethod::Wpa2Ieee8021x,
        _ => AuthMethod::Wpa2Psk,
    }
}

impl WirelessArea {
    pub fn new(net: &Network, data: &DataDir, uuid: &str) -> Result<WirelessArea, AgentError> {
        let w = net
            .wireless
            .as_ref()
            .expect("the wireless area is listed because it is set");
        let mut profiles = None;
        if let Some(list) = &w.profiles {
            let mut v = Vec::new();
            for (i, p) in list.iter().enumerate() {
                let at = format!("network.wireless.profiles[{i}]");
                let passphrase = p
                    .psk_passphrase
                    .as_ref()
                    .map(|r| r.resolve(&format!("{at}.pskPassphrase")))
                    .transpose()?;
                let d = p.ieee8021x.as_deref().map(|n| dot1x(net, n)).transpose()?;
                let secret = match (&passphrase, &d) {
                    (Some(k), _) => Some(Secret::new(format!("psk\n{}", k.expose()))),
                    (None, Some(d)) => dot1x_secret(d),
                    _ => None,
                };
                let profile = WantedProfile::new(
                    p.name.clone(),
                    p.ssid.clone(),
                    p.priority,
                    auth_method(&p.authentication),
                    if p.encryption == "tkip" {
                        Encryption::Tkip
                    } else {
                        Encryption::Ccmp
                    },
                    passphrase,
                    d,
                )
                .map_err(|e| e.context(at))?;
                let secret = secret.map(|s| (s, verifier(data, &format!("wifi-{}", p.name), uuid)));
                v.push(WifiWanted { profile, secret });
            }
            profiles = Some(v);
        }
        let on_off = |b: Option<bool>| match b {
            Some(true) => "on",
            Some(false) => "off",
            None => "as it is",
        };
        let wanted = format!(
            "OS sync {}, UEFI sync {}, the Wi-Fi port on; profiles: {}",
            on_off(w.wifi_sync),
            on_off(w.uefi_wifi_sync),
            match &profiles {
                None => "not managed".to_string(),
                Some(v) if v.is_empty() => "none".to_string(),
                Some(v) => v
                    .iter()
                    .map(|p| p.profile.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        );
        Ok(WirelessArea {
            sync: WifiSync::with(w.wifi_sync, w.uefi_wifi_sync),
            profiles,
            wanted,
        })
    }
}

impl Area for WirelessArea {
    fn name(&self) -> &'static str {
        "wireless"
    }

    fn wanted(&self) -> String {
        self.wanted.clone()
    }

    fn failure(&self) -> ExitCode {
        ExitCode::WifiConfigurationFailed
    }

    fn plan(&mut self, t: &mut Target) -> Result<Plan, AgentError> {
        let mode = t.control_mode;
        let sync_state = self.sync.read(t)?;
        if !sync_state.has_wifi {
            return Ok(Plan {
                changes: vec![],
                kept: vec![Kept::new(
                    "Wi-Fi",
                    "this machine has no wireless adapter AMT can use: nothing to configure",
                )],
            });
        }
        let mut plan = self.sync.plan(mode, &sync_state)?;
        let Some(wanted) = &self.profiles else {
            return Ok(plan);
        };
        let with_store = wanted.iter().any(|w| w.profile.dot1x.is_some());
        let state = wireless::read_state(t, with_store, || Ok(()))?;
        let names: HashSet<&str> = wanted.iter().map(|w| w.profile.name.as_str()).collect();

        // Every other user profile goes first: `configure wireless --purge` on those alone.
        let others: Vec<_> = state
            .profiles
            .iter()
            .filter(|p| !p.is_synced() && !names.contains(p.name.as_str()))
            .cloned()
            .collect();
        if others.is_empty() {
            plan.kept.push(Kept::new("other Wi-Fi profiles", "none"));
        } else {
            let view = wireless::WirelessState {
                profiles: others.clone(),
                ..state.clone()
            };
            let purge = Wireless::with(None, true, false)?.plan(mode, &view)?;
            plan.changes.extend(purge.changes);
        }

        // Then each wanted profile, planned as if only the profiles that stay were there: the
        // ones replaced are deleted before their successors are added.
        let mut replaced: Vec<(String, u32)> = Vec::new();
        let mut forced: Vec<(bool, Option<String>)> = Vec::new();
        for w in wanted {
            let set_at = w.secret.as_ref().map(|(s, v)| v.set_at(s));
            let unknown_secret = matches!(set_at, Some(None));
            if let Some(p) = state.profiles.iter().find(|p| p.name == w.profile.name) {
                if unknown_secret || !state.matches(p, &w.profile) {
                    replaced.push((p.name.clone(), p.priority));
                }
            }
            forced.push((unknown_secret, set_at.flatten()));
        }
        let mut first_new: Option<usize> = None;
        let mut hoisted = Vec::new();
        for (w, (unknown_secret, set_at)) in wanted.iter().zip(forced) {
            let view = wireless::WirelessState {
                profiles: state
                    .profiles
                    .iter()
                    .filter(|p| {
                        p.name == w.profile.name
                            || p.is_synced()
                            || (names.contains(p.name.as_str())
                                && !replaced.iter().any(|(r, _)| *r == p.name))
                    })
                    .cloned()
                    .collect(),
                ..state.clone()
            };
            let mut p = Wireless::with(Some(w.profile.clone()), false, unknown_secret)?
                .plan(mode, &view)
                .map_err(|e| e.context(format!("Wi-Fi profile {}", w.profile.name)))?;
            for k in &mut p.kept {
                if let Some(at) = &set_at {
                    k.value = format!(
                        "{} (its secret set by amt-agent at {at}; AMT does not reveal it)",
                        strip_force_hint(&k.value)
                    );
                }
            }
            for mut c in p.changes {
                if unknown_secret && !c.verifiable {
                    c.desired.push_str(
                        " (sent again: AMT does not reveal its passphrase or 802.1X password, and amt-agent has no record of setting this one)",
                    );
                }
                // A replaced profile whose priority another wanted profile takes is deleted
                // before any profile is added (a swap of priorities needs it).
                let takes_its_priority = wanted.iter().any(|o| {
                    o.profile.name != w.profile.name
                        && replaced
                            .iter()
                            .any(|(r, pr)| *r == w.profile.name && *pr == o.profile.priority)
                });
                if takes_its_priority && !c.steps.is_empty() {
                    hoisted.push(c.steps.remove(0));
                }
                first_new.get_or_insert(plan.changes.len());
                plan.changes.push(c);
            }
            plan.kept.extend(p.kept);
        }
        if let Some(i) = first_new {
            let steps = &mut plan.changes[i].steps;
            let rest = std::mem::take(steps);
            steps.extend(hoisted);
            steps.extend(rest);
        }
        Ok(plan)
    }

    fn after_apply(&mut self, _t: &mut Target) -> Result<(), AgentError> {
        // Every step succeeded: AMT holds each wanted profile with the profile's secrets.
        for w in self.profiles.iter().flatten() {
            if let Some((s, v)) = &w.secret {
                v.remember(s)?;
            }
        }
        Ok(())
    }
}
