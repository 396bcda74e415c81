//! `configure hostname`: AMT's `HostName` and `DomainName` (`AMT_GeneralSettings`) from the OS's
//! host name and DNS suffix, with the whole instance Put back as RPS's syncHostName does
//! (transport.md §7.3). An OS without a DNS suffix leaves AMT's domain name as it is.

use clap::Args;
use serde_json::json;

use super::{Configure, Needs, Plan, Step, Target};
use crate::amthi::ControlMode;
use crate::error::{AgentError, ExitCode};
use crate::wsman::classes::general::{self, GeneralSettings};

#[derive(Args, Debug, Clone, Default)]
pub struct HostnameArgs {
    /// The host name to give AMT (default: the OS's, first label).
    #[arg(long)]
    pub hostname: Option<String>,
    /// The domain name to give AMT (default: the OS's DNS suffix).
    #[arg(long)]
    pub domain_name: Option<String>,
}

pub struct Hostname {
    host: String,
    domain: Option<String>,
}

/// A DNS label: 1–63 letters, digits and hyphens, not starting or ending with a hyphen.
fn valid_label(l: &str) -> bool {
    (1..=63).contains(&l.len())
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

impl Hostname {
    pub fn new(a: &HostnameArgs) -> Result<Hostname, AgentError> {
        let host = a.hostname.clone().unwrap_or_else(crate::os::hostname);
        let domain = a
            .domain_name
            .clone()
            .or_else(|| Some(crate::os::dns_suffix()).filter(|d| !d.is_empty()));
        if !valid_label(&host) {
            return Err(AgentError::new(
                ExitCode::MissingHostname,
                format!(
                    "'{host}' is not a host name AMT accepts (1–63 letters, digits or hyphens)"
                ),
            )
            .help(
                "pass --hostname NAME, or fix the OS host name (hostnamectl set-hostname NAME)",
            ));
        }
        if let Some(d) = &domain {
            if d.len() > 191 || !d.split('.').all(valid_label) {
                return Err(AgentError::new(
                    ExitCode::MissingDnsSuffix,
                    format!("'{d}' is not a domain name AMT accepts"),
                )
                .help("pass --domain-name example.com, or fix the OS's DNS suffix"));
            }
        }
        Ok(Hostname { host, domain })
    }
}

impl Configure for Hostname {
    type State = GeneralSettings;

    fn name(&self) -> &'static str {
        "hostname"
    }

    fn needs(&self) -> Needs {
        Needs::Activation
    }

    fn failure(&self) -> ExitCode {
        ExitCode::SyncHostnameFailed
    }

    fn read(&mut self, t: &mut Target) -> Result<GeneralSettings, AgentError> {
        t.read(general::get())
    }

    fn plan(&self, _mode: ControlMode, gs: &GeneralSettings) -> Result<Plan, AgentError> {
        let mut plan = Plan::default();
        let cur_host = gs.host_name.clone().unwrap_or_default();
        let cur_domain = gs.domain_name.clone().unwrap_or_default();
        let want_domain = self.domain.clone().unwrap_or_else(|| cur_domain.clone());
        let differs = cur_host != self.host || cur_domain != want_domain;
        let mut put = gs.clone();
        put.host_name = Some(self.host.clone());
        put.domain_name = Some(want_domain.clone());
        let call = general::put(&put).checked();
        let quote = |s: &str| {
            if s.is_empty() {
                "(empty)".to_string()
            } else {
                s.to_string()
            }
        };
        plan.setting("host name", quote(&cur_host), quote(&self.host), Vec::new);
        plan.setting(
            "domain name",
            quote(&cur_domain),
            quote(&want_domain),
            Vec::new,
        );
        if differs {
            plan.changes
                .last_mut()
                .expect("a differing setting was recorded")
                .steps
                .push(Step::Wsman(call));
        }
        Ok(plan)
    }

    fn report(&self, gs: &GeneralSettings) -> (String, serde_json::Value) {
        let h = gs.host_name.clone().unwrap_or_default();
        let d = gs.domain_name.clone().unwrap_or_default();
        (
            format!(
                "host name {h}, domain name {}",
                if d.is_empty() { "(empty)" } else { &d }
            ),
            json!({"hostName": h, "domainName": d}),
        )
    }
}
