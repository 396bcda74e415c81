//! `configure proxy`: the HTTP proxies AMT uses to reach an MPS. `--list` reads the
//! `IPS_HTTPProxyAccessPoint` instances; adding calls `IPS_HTTPProxyService.AddProxyAccessPoint`
//! (an address already there with another port or suffix is deleted and added again); `--delete`
//! deletes the access points with that address by `Name`.

use clap::Args;
use serde_json::json;

use super::{Change, Configure, Needs, Plan, Step, Target};
use crate::amthi::ControlMode;
use crate::error::{AgentError, ExitCode};
use crate::wsman::classes::http_proxy::{self, AccessPoint, InfoFormat};

#[derive(Args, Debug, Clone, Default)]
pub struct ProxyArgs {
    /// List the proxy access points AMT holds.
    #[arg(long, conflicts_with_all = ["delete", "port", "network_dns_suffix"])]
    pub list: bool,
    /// Delete the access points with --address.
    #[arg(long)]
    pub delete: bool,
    /// The proxy's IPv4 or IPv6 address or host name.
    #[arg(long, required_unless_present = "list")]
    pub address: Option<String>,
    /// The proxy's port (default 80).
    #[arg(long)]
    pub port: Option<u16>,
    /// The DNS suffix of the network where AMT uses this proxy (AMT matches it against the
    /// network's DHCP domain).
    #[arg(long, alias = "networkdnssuffix", default_value = "")]
    pub network_dns_suffix: String,
}

pub const DEFAULT_PORT: u16 = 80;

#[derive(Clone, Debug)]
enum Want {
    List,
    Add {
        address: String,
        port: u16,
        suffix: String,
    },
    Delete {
        address: String,
    },
}

pub struct Proxy {
    want: Want,
}

impl Proxy {
    pub fn new(a: &ProxyArgs) -> Result<Proxy, AgentError> {
        if a.list {
            return Ok(Proxy { want: Want::List });
        }
        let address = a.address.clone().unwrap_or_default();
        let bad = |m: String| {
            AgentError::new(ExitCode::MissingProxyAddressAndPort, m)
                .help("give --address as an IPv4/IPv6 address or a host name, and --port 1–65535")
        };
        let host_ok = address.parse::<std::net::IpAddr>().is_ok()
            || (!address.is_empty()
                && address.len() <= 255
                && address.split('.').all(|l| {
                    (1..=63).contains(&l.len())
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                }));
        if !host_ok {
            return Err(bad(format!("'{address}' is not an address or host name")));
        }
        if a.delete {
            return Ok(Proxy {
                want: Want::Delete { address },
            });
        }
        let port = a.port.unwrap_or(DEFAULT_PORT);
        if port == 0 {
            return Err(bad("port 0 is not a proxy port".into()));
        }
        Ok(Proxy {
            want: Want::Add {
                address,
                port,
                suffix: a.network_dns_suffix.clone(),
            },
        })
    }
}

fn show(p: &AccessPoint) -> String {
    let mut s = format!("{}:{}", p.address, p.port);
    if !p.network_dns_suffix.is_empty() {
        s.push_str(&format!(" (network {})", p.network_dns_suffix));
    }
    s
}

impl Configure for Proxy {
    type State = Vec<AccessPoint>;

    fn name(&self) -> &'static str {
        "proxy"
    }

    fn needs(&self) -> Needs {
        Needs::Activation
    }

    fn failure(&self) -> ExitCode {
        ExitCode::UnableToConfigure
    }

    fn read_only(&self) -> bool {
        matches!(self.want, Want::List)
    }

    fn read(&mut self, t: &mut Target) -> Result<Vec<AccessPoint>, AgentError> {
        Ok(super::enumerate_all(t, http_proxy::ACCESS_POINT)?
            .iter()
            .map(AccessPoint::from_instance)
            .collect())
    }

    fn plan(&self, _mode: ControlMode, have: &Vec<AccessPoint>) -> Result<Plan, AgentError> {
        let mut plan = Plan::default();
        match &self.want {
            Want::List => {}
            Want::Add {
                address,
                port,
                suffix,
            } => {
                let same: Vec<&AccessPoint> = have
                    .iter()
                    .filter(|p| p.address.eq_ignore_ascii_case(address))
                    .collect();
                let want = AccessPoint {
                    name: String::new(),
                    address: address.clone(),
                    port: *port,
                    info_format: InfoFormat::of(address) as u32,
                    network_dns_suffix: suffix.clone(),
                };
                if same.len() == 1 && same[0].port == *port && same[0].network_dns_suffix == *suffix
                {
                    plan.kept
                        .push(super::Kept::new(format!("proxy {address}"), show(same[0])));
                } else {
                    let mut steps: Vec<Step> = same
                        .iter()
                        .map(|p| Step::Wsman(http_proxy::delete(&p.name)))
                        .collect();
                    steps.push(Step::Wsman(http_proxy::add_proxy_access_point(
                        address,
                        InfoFormat::of(address),
                        *port,
                        suffix,
                    )));
                    let current = if same.is_empty() {
                        "absent".to_string()
                    } else {
                        same.iter().map(|p| show(p)).collect::<Vec<_>>().join(", ")
                    };
                    plan.changes.push(Change::new(
                        format!("proxy {address}"),
                        current,
                        show(&want),
                        steps,
                    ));
                }
            }
            Want::Delete { address } => {
                let same: Vec<&AccessPoint> = have
                    .iter()
                    .filter(|p| p.address.eq_ignore_ascii_case(address))
                    .collect();
                if same.is_empty() {
                    plan.kept
                        .push(super::Kept::new(format!("proxy {address}"), "absent"));
                } else {
                    plan.changes.push(Change::new(
                        format!("proxy {address}"),
                        same.iter().map(|p| show(p)).collect::<Vec<_>>().join(", "),
                        "absent",
                        same.iter()
                            .map(|p| Step::Wsman(http_proxy::delete(&p.name)))
                            .collect(),
                    ));
                }
            }
        }
        Ok(plan)
    }

    fn report(&self, have: &Vec<AccessPoint>) -> (String, serde_json::Value) {
        let text = if have.is_empty() {
            "no proxy access points".to_string()
        } else if matches!(self.want, Want::List) {
            let mut s = String::from("---Proxy Access Points---");
            for p in have {
                s.push_str(&format!("\n{}\t: {}", p.name, show(p)));
            }
            s
        } else {
            format!(
                "proxy access points: {}",
                have.iter().map(show).collect::<Vec<_>>().join(", ")
            )
        };
        (
            text,
            json!({"proxyAccessPoints": have.iter().map(AccessPoint::to_json).collect::<Vec<_>>()}),
        )
    }
}
