//! `configure wired`: the wired port's addressing and 802.1X, as rpc-go's `configure wired` does
//! it (rpc-go.md §1.1–1.3) with the firmware's rules checked first.
//!
//! Addressing is one `AMT_EthernetPortSettings` Put on `… Settings 0` (rps-protocol.md §5.1
//! step 5, rpc-go's table):
//!
//! | flags | DHCPEnabled | IpSyncEnabled | SharedStaticIp | address fields |
//! |---|---|---|---|---|
//! | `--dhcp` | true | true | false | left out (the lease) |
//! | `--static --ip-sync` | false | true | true | left out (the host OS's) |
//! | `--ip-address … --subnet-mask … --gateway … --primary-dns …` | false | false | false | given |
//!
//! Bad addresses are refused before anything is sent, with rpc-go's codes: 27 address, 29 mask,
//! 30 gateway (also one outside the address's subnet), 31 primary DNS, 32 secondary DNS.
//!
//! 802.1X (`--ieee8021x-profile-name` and the flags of [`super::ieee8021x`]): an enabled 802.1X
//! that differs is turned off first (rpc-go does; it drops the old certificate bindings), the
//! key, client certificate and CA the store lacks are added (`AMT_PublicKeyManagementService`), then
//! `IPS_IEEE8021xSettings` is Put enabled and, for EAP-TLS, `SetCertificates` binds the CA and
//! the client certificate by the handles AMT gave them. Without 802.1X flags an enabled 802.1X
//! is turned off, as rpc-go does, and the certificates and key it used are deleted when nothing
//! else uses them. A refused 802.1X step exits 108, an addressing one 137.

use std::net::Ipv4Addr;

use clap::Args;
use serde_json::json;

use super::ieee8021x::{self, handle_now, Ieee8021xArgs, Store, Wanted};
use super::{Change, Configure, Kept, Later, Needs, Plan, Step, Target};
use crate::amthi::ControlMode;
use crate::error::{AgentError, ExitCode};
use crate::wsman::classes::ethernet::{self, EthernetPortSettings};
use crate::wsman::classes::ieee8021x::{
    self as dot1x, CredentialContext, EapMethod, WiredRequest, WiredSettings,
};
use crate::wsman::classes::public_key_management as pkm;

#[derive(Args, Debug, Clone, Default)]
pub struct WiredArgs {
    /// Take the address from DHCP (AMT shares the host's lease).
    #[arg(long, conflicts_with = "static_ip")]
    pub dhcp: bool,
    /// A static address: the host OS's with --ip-sync, else the one given by --ip-address ….
    #[arg(long = "static", id = "static_ip")]
    pub static_ip: bool,
    /// Synchronise a static address from the host OS (AMT shares it).
    #[arg(long, visible_alias = "ipsync")]
    pub ip_sync: bool,
    #[arg(long, visible_alias = "ipaddress")]
    pub ip_address: Option<String>,
    #[arg(long, visible_alias = "subnetmask")]
    pub subnet_mask: Option<String>,
    #[arg(long)]
    pub gateway: Option<String>,
    #[arg(long, visible_alias = "primarydns")]
    pub primary_dns: Option<String>,
    #[arg(long, visible_alias = "secondarydns")]
    pub secondary_dns: Option<String>,
    #[command(flatten)]
    pub ieee8021x: Ieee8021xArgs,
    /// Send the 802.1X settings even when AMT reports them as wanted (to change the PEAP
    /// password, which AMT never reveals).
    #[arg(long)]
    pub force: bool,
}

/// How the wired port gets its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addressing {
    Dhcp,
    /// Static, synchronised from the host OS (`SharedStaticIp`).
    HostStatic,
    Static {
        ip: Ipv4Addr,
        mask: Ipv4Addr,
        gateway: Ipv4Addr,
        primary_dns: Ipv4Addr,
        secondary_dns: Option<Ipv4Addr>,
    },
}

impl Addressing {
    pub fn describe(&self) -> String {
        match self {
            Addressing::Dhcp => "DHCP".into(),
            Addressing::HostStatic => "static, synchronised from the host OS".into(),
            Addressing::Static {
                ip,
                mask,
                gateway,
                primary_dns,
                secondary_dns,
            } => {
                let mut s = format!("static {ip}/{mask}, gateway {gateway}, DNS {primary_dns}");
                if let Some(d) = secondary_dns {
                    s.push_str(&format!(", {d}"));
                }
                s
            }
        }
    }

    /// As the port reports it; `None` when the flags match no row of rpc-go's table.
    fn of_port(p: &EthernetPortSettings) -> Option<Addressing> {
        let addr = |v: &Option<String>| {
            v.as_deref()
                .and_then(|s| s.parse::<Ipv4Addr>().ok())
                .filter(|a| !a.is_unspecified())
        };
        match (p.dhcp_enabled, p.ip_sync_enabled, p.shared_static_ip) {
            (Some(true), _, Some(false) | None) => Some(Addressing::Dhcp),
            (Some(false), Some(true), Some(true)) => Some(Addressing::HostStatic),
            (Some(false), Some(false) | None, Some(false) | None) => Some(Addressing::Static {
                ip: addr(&p.ip_address)?,
                mask: addr(&p.subnet_mask)?,
                gateway: addr(&p.default_gateway).unwrap_or(Ipv4Addr::UNSPECIFIED),
                primary_dns: addr(&p.primary_dns).unwrap_or(Ipv4Addr::UNSPECIFIED),
                secondary_dns: addr(&p.secondary_dns),
            }),
            _ => None,
        }
    }

    /// The port with this addressing, as the Put sends it.
    fn apply(&self, p: &EthernetPortSettings) -> EthernetPortSettings {
        let mut p = p.clone();
        let (dhcp, sync, shared) = match self {
            Addressing::Dhcp => (true, true, false),
            Addressing::HostStatic => (false, true, true),
            Addressing::Static { .. } => (false, false, false),
        };
        p.dhcp_enabled = Some(dhcp);
        p.ip_sync_enabled = Some(sync);
        p.shared_static_ip = Some(shared);
        match self {
            // The firmware's own (lease or host) addresses: the fields are left out, as RPS does.
            Addressing::Dhcp | Addressing::HostStatic => {
                p.ip_address = None;
                p.subnet_mask = None;
                p.default_gateway = None;
                p.primary_dns = None;
                p.secondary_dns = None;
            }
            Addressing::Static {
                ip,
                mask,
                gateway,
                primary_dns,
                secondary_dns,
            } => {
                p.ip_address = Some(ip.to_string());
                p.subnet_mask = Some(mask.to_string());
                p.default_gateway = Some(gateway.to_string());
                p.primary_dns = Some(primary_dns.to_string());
                p.secondary_dns = Some(secondary_dns.unwrap_or(Ipv4Addr::UNSPECIFIED).to_string());
            }
        }
        p
    }
}

fn unicast(s: &str) -> Option<Ipv4Addr> {
    let a: Ipv4Addr = s.parse().ok()?;
    (!a.is_unspecified() && !a.is_broadcast() && !a.is_loopback() && !a.is_multicast()).then_some(a)
}

fn netmask(s: &str) -> Option<Ipv4Addr> {
    let a: Ipv4Addr = s.parse().ok()?;
    let m = u32::from(a);
    (m != 0 && m != u32::MAX && m.leading_ones() + m.trailing_zeros() == 32).then_some(a)
}

/// The addressing the flags ask for, checked as the firmware will check it; `None` to leave it.
pub fn addressing(a: &WiredArgs) -> Result<Option<Addressing>, AgentError> {
    let fields = [
        &a.ip_address,
        &a.subnet_mask,
        &a.gateway,
        &a.primary_dns,
        &a.secondary_dns,
    ];
    let any_field = fields.iter().any(|f| f.is_some());
    let combo = |m: &str| AgentError::new(ExitCode::InvalidParameterCombination, m.to_string());
    if a.dhcp && (any_field || a.ip_sync) {
        return Err(combo("--dhcp takes the address from the lease: static settings (--ip-address, --subnet-mask, --gateway, DNS, --ip-sync) do not go with it")
            .help("choose one: --dhcp, or --static --ip-sync, or --ip-address/--subnet-mask/--gateway/--primary-dns"));
    }
    if a.dhcp {
        return Ok(Some(Addressing::Dhcp));
    }
    if a.ip_sync {
        if any_field {
            return Err(combo("--ip-sync takes the static address from the host OS: --ip-address and the other address flags do not go with it")
                .help("drop the address flags, or drop --ip-sync to set the address yourself"));
        }
        return Ok(Some(Addressing::HostStatic));
    }
    if !any_field {
        if a.static_ip {
            return Err(AgentError::new(
                ExitCode::MissingOrIncorrectStaticIp,
                "--static needs --ip-address, --subnet-mask, --gateway and --primary-dns (or --ip-sync)",
            ));
        }
        return Ok(None);
    }
    let need = |v: &Option<String>,
                what: &str,
                code: ExitCode,
                check: fn(&str) -> Option<Ipv4Addr>|
     -> Result<Ipv4Addr, AgentError> {
        let flag = format!("--{}", what.replace(' ', "-"));
        match v {
            None => Err(AgentError::new(
                code,
                format!("a static address needs {flag}"),
            )
            .help("give --ip-address, --subnet-mask, --gateway and --primary-dns (--secondary-dns optional), or use --dhcp")),
            Some(s) => check(s).ok_or_else(|| {
                AgentError::new(code, format!("{flag} '{s}' is not a usable {what}"))
                    .help(match code {
                        ExitCode::MissingOrIncorrectNetworkMask => "give a contiguous IPv4 netmask such as 255.255.255.0",
                        _ => "give a unicast IPv4 address (not 0.0.0.0, broadcast, loopback or multicast)",
                    })
            }),
        }
    };
    let ip = need(
        &a.ip_address,
        "ip address",
        ExitCode::MissingOrIncorrectStaticIp,
        unicast,
    )?;
    let mask = need(
        &a.subnet_mask,
        "subnet mask",
        ExitCode::MissingOrIncorrectNetworkMask,
        netmask,
    )?;
    let gateway = need(
        &a.gateway,
        "gateway",
        ExitCode::MissingOrIncorrectGateway,
        unicast,
    )?;
    let (m, g, i) = (u32::from(mask), u32::from(gateway), u32::from(ip));
    if g & m != i & m || g == i {
        return Err(AgentError::new(
            ExitCode::MissingOrIncorrectGateway,
            format!("the gateway {gateway} is not another host of {ip}/{mask}'s subnet"),
        )
        .help("give the router of the port's own subnet"));
    }
    let primary_dns = need(
        &a.primary_dns,
        "primary dns",
        ExitCode::MissingOrIncorrectPrimaryDns,
        unicast,
    )?;
    let secondary_dns = match &a.secondary_dns {
        None => None,
        s => Some(need(
            s,
            "secondary dns",
            ExitCode::MissingOrIncorrectSecondaryDns,
            unicast,
        )?),
    };
    Ok(Some(Addressing::Static {
        ip,
        mask,
        gateway,
        primary_dns,
        secondary_dns,
    }))
}

pub struct Wired {
    /// Where a PEAP password not given yet comes from (the flags, the environment, a prompt).
    ieee8021x_args: Ieee8021xArgs,
    addressing: Option<Addressing>,
    dot1x: Option<Wanted>,
    force: bool,
}

impl Wired {
    pub fn new(a: &WiredArgs) -> Result<Wired, AgentError> {
        Ok(Wired {
            addressing: addressing(a)?,
            dot1x: a.ieee8021x.wanted()?,
            ieee8021x_args: a.ieee8021x.clone(),
            force: a.force,
        })
    }

    /// The port as a desired-state profile wants it: the addressing (checked by [`addressing`])
    /// and an 802.1X profile whose secrets are resolved already (nothing is read from the
    /// environment or asked for); `None` turns 802.1X off.
    pub fn with(
        addressing: Option<Addressing>,
        dot1x: Option<Wanted>,
    ) -> Result<Wired, AgentError> {
        if let Some(w) = &dot1x {
            if w.method == EapMethod::PeapMschapv2 && w.password.is_none() {
                return Err(AgentError::new(
                    ExitCode::MissingIeee8021xConfiguration,
                    "PEAP-MSCHAPv2 needs the 802.1X password",
                ));
            }
        }
        Ok(Wired {
            ieee8021x_args: Ieee8021xArgs::default(),
            addressing,
            dot1x,
            force: false,
        })
    }

    /// Sends the 802.1X settings even when AMT reports them as wanted (`--force`): the PEAP
    /// password is not readable.
    pub fn set_force(&mut self, force: bool) {
        self.force = force;
    }
}

/// The wired port, its 802.1X settings and what they are bound to, and the store.
pub struct WiredState {
    pub port: Option<EthernetPortSettings>,
    pub dot1x: WiredSettings,
    /// Certificate handles bound to the wired 802.1X settings.
    pub bound: Vec<String>,
    /// Certificate handles a Wi-Fi profile's 802.1X uses (they are not deleted with wired's).
    pub used_elsewhere: Vec<String>,
    pub store: Store,
}

fn contexts(t: &mut Target, class: &str) -> Result<Vec<CredentialContext>, AgentError> {
    // A platform without Wi-Fi has no CIM_CredentialContext: nothing is bound there.
    Ok(super::enumerate_if_present(t, class)?
        .unwrap_or_default()
        .iter()
        .filter_map(CredentialContext::from_instance)
        .collect())
}

impl WiredState {
    fn describe_8021x(&self) -> String {
        let d = &self.dot1x;
        if !d.is_enabled() {
            return "off".into();
        }
        let mut s = format!(
            "{} as {}",
            d.protocol
                .map(dot1x::protocol_text)
                .unwrap_or_else(|| "unknown method".into()),
            d.username.as_deref().unwrap_or("")
        );
        if d.enabled == dot1x::ENABLED_WITHOUT_CERTIFICATES {
            s.push_str(", without certificates");
        }
        let names: Vec<String> = self
            .bound
            .iter()
            .filter_map(|h| self.store.by_handle(h))
            .map(|c| {
                format!(
                    "{} {}",
                    if c.trusted_root { "CA" } else { "client" },
                    c.display_name()
                )
            })
            .collect();
        if !names.is_empty() {
            s.push_str(&format!(" ({})", names.join(", ")));
        }
        s
    }
}

impl Configure for Wired {
    type State = WiredState;

    fn name(&self) -> &'static str {
        "wired"
    }

    fn needs(&self) -> Needs {
        Needs::Activation
    }

    fn failure(&self) -> ExitCode {
        ExitCode::WiredConfigurationFailed
    }

    fn read(&mut self, t: &mut Target) -> Result<WiredState, AgentError> {
        if let Some(w) = &mut self.dot1x {
            w.resolve_password(&self.ieee8021x_args)?;
        }
        let ctx = t.read(ethernet::enumerate())?;
        let port = t
            .read(ethernet::pull(&ctx))?
            .items
            .into_iter()
            .find(EthernetPortSettings::is_wired)
            .filter(|p| {
                p.mac_address
                    .as_deref()
                    .is_some_and(|m| m.bytes().any(|b| b.is_ascii_hexdigit() && b != b'0'))
            });
        let dot1x = t.read(dot1x::get_wired())?;
        let bound = contexts(t, dot1x::IPS_CONTEXT)?
            .into_iter()
            .filter(|c| c.settings == dot1x.instance_id)
            .map(|c| c.certificate)
            .collect();
        let used_elsewhere = contexts(t, dot1x::CIM_CONTEXT)?
            .into_iter()
            .map(|c| c.certificate)
            .collect();
        Ok(WiredState {
            port,
            dot1x,
            bound,
            used_elsewhere,
            store: Store::read(t)?,
        })
    }

    fn plan(&self, _mode: ControlMode, s: &WiredState) -> Result<Plan, AgentError> {
        let mut plan = Plan::default();
        let Some(port) = &s.port else {
            return Err(AgentError::new(
                ExitCode::WiredConfigurationFailed,
                "this AMT has no wired port (AMT_EthernetPortSettings … Settings 0 reports no MAC address)",
            )
            .help("configure the wireless port instead: amt-agent configure wireless"));
        };
        if let Some(want) = &self.addressing {
            let have = Addressing::of_port(port);
            let current = have
                .as_ref()
                .map(Addressing::describe)
                .unwrap_or_else(|| "inconsistent (DHCP/IP sync/shared flags match no mode)".into());
            if have.as_ref() != Some(want) {
                plan.changes.push(Change::new(
                    "wired addressing",
                    current,
                    want.describe(),
                    vec![Step::Wsman(ethernet::put(&want.apply(port)).checked())],
                ));
            } else {
                plan.kept.push(Kept::new("wired addressing", current));
            }
        }
        let x = ExitCode::Ieee8021xConfigurationFailed;
        match &self.dot1x {
            None if s.dot1x.is_enabled() => {
                let mut steps = vec![Later::call(dot1x::disable_wired(&s.dot1x).checked(), x)];
                steps.extend(prune_steps(s));
                plan.changes.push(Change::new(
                    "wired 802.1X",
                    s.describe_8021x(),
                    "off",
                    steps,
                ));
            }
            None => {
                if self.addressing.is_none() {
                    return Err(AgentError::new(
                        ExitCode::MissingOrInvalidConfiguration,
                        "nothing to configure: give the addressing (--dhcp, --static --ip-sync, or --ip-address …) and/or 802.1X (--ieee8021x-profile-name …)",
                    ));
                }
                plan.kept.push(Kept::new("wired 802.1X", "off"));
            }
            Some(w) => {
                let method_ok = s.dot1x.enabled == dot1x::ENABLED
                    && s.dot1x.protocol == Some(w.method.value())
                    && s.dot1x.username.as_deref() == Some(w.username.as_str());
                let bound_as = |c: &Option<ieee8021x::Cert>, root: bool| match c {
                    None => !s
                        .bound
                        .iter()
                        .any(|h| s.store.by_handle(h).is_some_and(|x| x.trusted_root == root)),
                    Some(c) => s.bound.iter().any(|h| s.store.is(h, c)),
                };
                let same = method_ok && bound_as(&w.client, false) && bound_as(&w.ca, true);
                if same && !self.force {
                    let mut kept = s.describe_8021x();
                    if w.method == EapMethod::PeapMschapv2 {
                        kept.push_str(" (the password is not readable: --force sends it again)");
                    }
                    plan.kept.push(Kept::new("wired 802.1X", kept));
                } else {
                    // Enabled now: off first, as rpc-go does, which also drops the old
                    // certificate bindings (a switch to PEAP keeps no EAP-TLS certificates).
                    let mut steps = Vec::new();
                    if s.dot1x.is_enabled() {
                        steps.push(Later::call(dot1x::disable_wired(&s.dot1x).checked(), x));
                    }
                    steps.extend(s.store.add_steps(w, x));
                    let pw = w.password.clone();
                    let request_args = (
                        s.dot1x.element_name.clone(),
                        s.dot1x.instance_id.clone(),
                        w.method,
                        w.username.clone(),
                    );
                    let put = dot1x::enable_wired(&WiredRequest {
                        element_name: &request_args.0,
                        instance_id: &request_args.1,
                        method: request_args.2,
                        username: &request_args.3,
                        password: pw.as_ref(),
                    });
                    steps.push(Later::call(put.checked(), x));
                    if let Some(ca) = w.ca.clone() {
                        let client = w.client.clone();
                        let describe = format!(
                            "IPS_IEEE8021xSettings.SetCertificates(ServerCertificateIssuer=<handle of {}>, ClientCertificate=<{}>)",
                            ca.subject,
                            client
                                .as_ref()
                                .map(|c| format!("handle of {}", c.subject))
                                .unwrap_or_else(|| "none".into())
                        );
                        steps.push(Step::Later(Later {
                            describe,
                            exit: Some(x),
                            build: Box::new(move |t| {
                                let root = handle_now(t, &ca, true)?;
                                let client = match &client {
                                    Some(c) => Some(handle_now(t, c, false)?),
                                    None => None,
                                };
                                Ok(dot1x::set_certificates(&root, client.as_deref()))
                            }),
                        }));
                    }
                    let change =
                        Change::new("wired 802.1X", s.describe_8021x(), w.describe(), steps);
                    plan.changes
                        .push(if same { change.unverifiable() } else { change });
                }
            }
        }
        Ok(plan)
    }

    fn report(&self, s: &WiredState) -> (String, serde_json::Value) {
        let port = s.port.as_ref();
        let addressing = port
            .and_then(Addressing::of_port)
            .map(|a| a.describe())
            .unwrap_or_else(|| "unknown".into());
        let ip = port.and_then(|p| p.ip_address.clone()).unwrap_or_default();
        let text = format!("{addressing} ({ip}); 802.1X {}", s.describe_8021x());
        let f = |v: Option<&Option<String>>| v.cloned().flatten();
        let json = json!({
            "wired": {
                "dhcpEnabled": port.and_then(|p| p.dhcp_enabled),
                "ipSyncEnabled": port.and_then(|p| p.ip_sync_enabled),
                "sharedStaticIp": port.and_then(|p| p.shared_static_ip),
                "ipAddress": f(port.map(|p| &p.ip_address)),
                "subnetMask": f(port.map(|p| &p.subnet_mask)),
                "defaultGateway": f(port.map(|p| &p.default_gateway)),
                "primaryDns": f(port.map(|p| &p.primary_dns)),
                "secondaryDns": f(port.map(|p| &p.secondary_dns)),
            },
            "ieee8021x": {
                "enabled": s.dot1x.is_enabled(),
                "state": s.dot1x.enabled,
                "authenticationProtocol": s.dot1x.protocol.map(dot1x::protocol_text),
                "username": s.dot1x.username,
                "certificates": s.bound.iter().filter_map(|h| s.store.by_handle(h)).map(|c| json!({
                    "handle": c.instance_id,
                    "subject": c.subject,
                    "trustedRoot": c.trusted_root,
                })).collect::<Vec<_>>(),
            },
        });
        (text, json)
    }
}

/// After 802.1X is off: delete the certificates it used and the client certificate's key, unless
/// a Wi-Fi profile uses them (AMT would refuse; rpc-go prunes unused certificates the same way).
fn prune_steps(s: &WiredState) -> Vec<Step> {
    let x = ExitCode::Ieee8021xConfigurationFailed;
    let mut steps = Vec::new();
    for h in &s.bound {
        if s.used_elsewhere.contains(h) {
            continue;
        }
        let Some(c) = s.store.by_handle(h) else {
            continue;
        };
        steps.push(Later::call(pkm::delete_certificate(h).checked(), x));
        if !c.trusted_root {
            if let Some(k) = key_of(&s.store, c) {
                steps.push(Later::call(pkm::delete_key(&k).checked(), x));
            }
        }
    }
    steps
}

/// The handle of the key pair whose public key is the certificate's.
fn key_of(
    store: &Store,
    c: &crate::wsman::classes::public_key::PublicKeyCertificate,
) -> Option<String> {
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(c.x509_certificate.split_whitespace().collect::<String>())
        .ok()?;
    let (_, x) = x509_parser::parse_x509_certificate(&der).ok()?;
    let public = base64::engine::general_purpose::STANDARD
        .encode(x.public_key().subject_public_key.data.as_ref());
    store
        .keys
        .iter()
        .find(|k| k.der_key.split_whitespace().collect::<String>() == public)
        .map(|k| k.instance_id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(f: impl FnOnce(&mut WiredArgs)) -> WiredArgs {
        let mut a = WiredArgs::default();
        f(&mut a);
        a
    }

    fn code(a: WiredArgs) -> u8 {
        addressing(&a).unwrap_err().exit.code()
    }

    fn statik(a: &mut WiredArgs) {
        a.ip_address = Some("192.168.7.50".into());
        a.subnet_mask = Some("255.255.255.0".into());
        a.gateway = Some("192.168.7.1".into());
        a.primary_dns = Some("192.168.7.2".into());
    }

    #[test]
    fn bad_addresses_get_rpc_go_codes() {
        type Edit = fn(&mut WiredArgs);
        let cases: [(Edit, u8); 9] = [
            (|a| a.ip_address = Some("300.1.1.1".into()), 27),
            (|a| a.ip_address = None, 27),
            (|a| a.subnet_mask = Some("255.0.255.0".into()), 29),
            (|a| a.gateway = Some("10.0.0.1".into()), 30),
            (|a| a.gateway = None, 30),
            (|a| a.primary_dns = Some("x".into()), 31),
            (|a| a.secondary_dns = Some("224.0.0.1".into()), 32),
            (|a| a.dhcp = true, 33),
            (|a| a.ip_sync = true, 33),
        ];
        for (i, (edit, want)) in cases.into_iter().enumerate() {
            let mut a = args(statik);
            edit(&mut a);
            assert_eq!(code(a), want, "case {i}");
        }
        assert_eq!(code(args(|a| a.static_ip = true)), 27);
    }

    #[test]
    fn the_modes_follow_rpc_gos_table() {
        assert_eq!(
            addressing(&args(|a| a.dhcp = true)).unwrap(),
            Some(Addressing::Dhcp)
        );
        assert_eq!(
            addressing(&args(|a| {
                a.static_ip = true;
                a.ip_sync = true
            }))
            .unwrap(),
            Some(Addressing::HostStatic)
        );
        assert_eq!(addressing(&WiredArgs::default()).unwrap(), None);
        let s = addressing(&args(statik)).unwrap().unwrap();
        assert_eq!(
            s.describe(),
            "static 192.168.7.50/255.255.255.0, gateway 192.168.7.1, DNS 192.168.7.2"
        );
    }
}
