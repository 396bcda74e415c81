//! `maintenance TASK -u URL`: RPS's maintenance flows (rps-protocol.md §5.5; rpc-go.md §1.1), run
//! through the same relay as remote activation.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::remote::{self, MaintenanceKind, Overrides, Request, RpsArgs};
use super::session::AmtConnArgs;
use crate::error::{AgentError, ExitCode};
use crate::heci::MeiDevice;
use crate::rps::message::IpConfiguration;
use crate::secret_source::SecretSource;

#[derive(Args, Debug)]
pub struct MaintenanceArgs {
    #[command(subcommand)]
    pub task: Task,
}

/// Options every task takes.
#[derive(Args, Debug, Default, Clone)]
pub struct Common {
    /// Force: RPS skips its check of the stored AMT password.
    #[arg(short = 'f', long)]
    pub force: bool,
    #[command(flatten)]
    pub remote: RpsArgs,
    #[command(flatten)]
    pub conn: AmtConnArgs,
}

#[derive(Subcommand, Debug)]
pub enum Task {
    /// Set AMT's clock from RPS's (RPS: --synctime).
    Syncclock(Common),
    /// Set AMT's host name to the OS's (or --hostname).
    Synchostname {
        /// Host name to send instead of the OS's.
        #[arg(long)]
        hostname: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Set AMT's wired IP settings to the OS's (or the given static settings).
    Syncip {
        /// IPv4 address (default: the OS interface with AMT's wired MAC).
        #[arg(long = "static-ip", visible_alias = "staticip")]
        static_ip: Option<Ipv4Addr>,
        #[arg(long)]
        netmask: Option<Ipv4Addr>,
        #[arg(long)]
        gateway: Option<Ipv4Addr>,
        #[arg(long = "primary-dns", visible_alias = "primarydns")]
        primary_dns: Option<Ipv4Addr>,
        #[arg(long = "secondary-dns", visible_alias = "secondarydns")]
        secondary_dns: Option<Ipv4Addr>,
        #[command(flatten)]
        common: Common,
    },
    /// Change the AMT admin password (new one from a file or AMT_NEW_PASSWORD; else RPS picks one).
    Changepassword {
        /// A file holding the new AMT password (first line; mode 600).
        #[arg(long)]
        new_password_file: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Have RPS refresh what it records about the device (no WS-MAN).
    Syncdeviceinfo(Common),
}

fn os_ip(device: &Arc<dyn MeiDevice>) -> Result<IpConfiguration, AgentError> {
    let mut amthi = crate::amthi::AmthiClient::new(device.clone());
    let wired = amthi.lan_interface(crate::amthi::LanInterface::Wired)?;
    let ip = crate::os::ipv4_for_mac(&wired.mac).ok_or_else(|| {
        AgentError::new(
            ExitCode::OsNetworkInterfacesLookupFailed,
            "no OS network interface has AMT's wired MAC address",
        )
        .help("give the address to set: --static-ip A.B.C.D --netmask M")
    })?;
    Ok(IpConfiguration {
        dhcp: wired.dhcp_enabled,
        static_ip: !wired.dhcp_enabled,
        ip_address: ip.to_string(),
        ..IpConfiguration::default()
    })
}

pub fn run(
    device: Arc<dyn MeiDevice>,
    args: &MaintenanceArgs,
    json_out: bool,
) -> Result<ExitCode, AgentError> {
    let mut ov = Overrides::default();
    let mut new_password = None;
    let (kind, common) = match &args.task {
        Task::Syncclock(c) => (MaintenanceKind::SyncClock, c),
        Task::Syncdeviceinfo(c) => (MaintenanceKind::SyncDeviceInfo, c),
        Task::Synchostname { hostname, common } => {
            ov.hostname = hostname.clone();
            (MaintenanceKind::SyncHostname, common)
        }
        Task::Syncip {
            static_ip,
            netmask,
            gateway,
            primary_dns,
            secondary_dns,
            common,
        } => {
            let s = |v: &Option<Ipv4Addr>| v.map(|a| a.to_string()).unwrap_or_default();
            ov.ip = Some(match static_ip {
                Some(ip) => IpConfiguration {
                    dhcp: false,
                    static_ip: true,
                    ipsync: false,
                    ip_address: ip.to_string(),
                    netmask: s(netmask),
                    gateway: s(gateway),
                    primary_dns: s(primary_dns),
                    secondary_dns: s(secondary_dns),
                },
                None => os_ip(&device)?,
            });
            (MaintenanceKind::SyncIp, common)
        }
        Task::Changepassword {
            new_password_file,
            common,
        } => {
            new_password = SecretSource {
                what: "new AMT password",
                flag: None,
                file: new_password_file.as_deref(),
                env: &["AMT_NEW_PASSWORD"],
            }
            .resolve(false)?;
            if new_password.is_none() {
                eprintln!("No new password given (--new-password-file, AMT_NEW_PASSWORD): RPS will generate one and keep it in its secret store");
            }
            (MaintenanceKind::ChangePassword, common)
        }
    };
    if common.remote.url.is_none() {
        return Err(AgentError::new(
            ExitCode::MissingOrIncorrectUrl,
            "-u flag is required and cannot be empty",
        )
        .help("amt-agent maintenance syncclock -u wss://rps.example.com/activate"));
    }
    let req = Request::Maintenance {
        task: kind,
        force: common.force,
        new_password,
    };
    remote::run(device, &common.remote, &common.conn, req, &ov, json_out)
}
