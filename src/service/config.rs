//! `/etc/amt-agent/agent.toml`: what the service brings the machine to. Every key can be overridden
//! by an environment variable `AMT_AGENT_<KEY>` (upper case, dots as underscores). Secrets are never
//! in this file: it names files that hold them, whose permissions are checked.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{AgentError, ExitCode};

/// Where the configuration is read from unless `--config` says otherwise.
#[cfg(not(windows))]
pub const DEFAULT_PATH: &str = "/etc/amt-agent/agent.toml";
#[cfg(windows)]
pub const DEFAULT_PATH: &str = DEFAULT_PATH_WINDOWS;
/// The Windows default (`%VAR%` is expanded), where the MSI puts agent.toml.
pub const DEFAULT_PATH_WINDOWS: &str = r"%ProgramData%\amt-agent\agent.toml";

/// The status file and lock live here unless `state_dir` says otherwise.
#[cfg(not(windows))]
pub const DEFAULT_STATE_DIR: &str = "/run/amt-agent";
#[cfg(windows)]
pub const DEFAULT_STATE_DIR: &str = DEFAULT_STATE_DIR_WINDOWS;
/// The Windows default (`%VAR%` is expanded), beside agent.toml.
pub const DEFAULT_STATE_DIR_WINDOWS: &str = r"%ProgramData%\amt-agent";

pub use crate::os::{expand_path, expand_percent_vars};

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Ccm,
    Acm,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    #[default]
    Local,
    Rps,
}

/// What the service does with drift (a setting that left the profile after it was reached).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Drift {
    /// Report it (status, status file, metrics) and change nothing.
    #[default]
    Report,
    /// Apply the profile again.
    Fix,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The ME: auto, a device path, sim, sim:profile=NAME or sim:SOCKET (as `--device`).
    pub device: String,
    /// Desired control mode.
    pub mode: Mode,
    /// How to get there: locally, or through a provisioning server.
    pub method: Method,
    /// LMS use: auto, only, never (as `--lms`).
    pub lms: String,
    pub lms_port: Option<u16>,
    /// File holding the AMT password to set (CCM) or use (mode 600 or stricter).
    pub password_file: Option<PathBuf>,
    /// Where the state lives: status.json, the lock file.
    pub state_dir: PathBuf,
    /// Prometheus textfile-collector output, when set.
    pub metrics_file: Option<PathBuf>,
    /// First retry delay after a failure; doubles up to `retry_max`, with ±20 % jitter.
    #[serde(with = "humantime_secs")]
    pub retry_initial: Duration,
    #[serde(with = "humantime_secs")]
    pub retry_max: Duration,
    /// How often an activated machine is re-checked.
    #[serde(with = "humantime_secs")]
    pub check_interval: Duration,
    /// Deadline for each WS-MAN request.
    #[serde(with = "humantime_secs")]
    pub request_timeout: Duration,
    /// method = "rps": RPS's websocket URL and the profile to activate with.
    pub rps_url: Option<String>,
    pub rps_profile: Option<String>,
    /// A private CA that signed RPS's certificate (PEM).
    pub rps_ca_file: Option<PathBuf>,
    /// The DNS suffix to report (RPS's fqdn; the doctor's CN check for local ACM).
    pub dns_suffix: Option<String>,
    /// method = "local", mode = "acm": the provisioning certificate and the files holding its
    /// password and the MEBx password to set.
    pub provisioning_cert: Option<PathBuf>,
    pub provisioning_cert_password_file: Option<PathBuf>,
    pub mebx_password_file: Option<PathBuf>,
    /// Periodic maintenance through RPS once activated (method = "rps"): any of "syncclock",
    /// "synchostname", "syncip", "syncdeviceinfo"; every `maintenance_interval`.
    pub maintenance: Vec<String>,
    #[serde(with = "humantime_secs")]
    pub maintenance_interval: Duration,
    /// A desired-state profile (README, "Desired state") instead of `mode`/`method`: the service
    /// applies it until the machine matches, then plans every `plan_interval`.
    pub profile: Option<PathBuf>,
    /// With a profile: "report" or "fix" a setting that drifted away from it.
    pub drift: Drift,
    #[serde(with = "humantime_secs")]
    pub plan_interval: Duration,
    /// With a profile: where generated passwords and apply's records live (outlives reboots).
    pub data_dir: PathBuf,
    /// With an encrypted rpc-go v3 export as the profile: the file holding its key.
    pub profile_key_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            device: "auto".into(),
            mode: Mode::Ccm,
            method: Method::Local,
            lms: "auto".into(),
            lms_port: None,
            password_file: None,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            metrics_file: None,
            retry_initial: Duration::from_secs(10),
            retry_max: Duration::from_secs(900),
            check_interval: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(30),
            rps_url: None,
            rps_profile: None,
            rps_ca_file: None,
            dns_suffix: None,
            provisioning_cert: None,
            provisioning_cert_password_file: None,
            mebx_password_file: None,
            maintenance: Vec::new(),
            maintenance_interval: Duration::from_secs(86_400),
            profile: None,
            drift: Drift::Report,
            plan_interval: Duration::from_secs(900),
            data_dir: PathBuf::from(crate::profile::secrets::DEFAULT_DATA_DIR),
            profile_key_file: None,
        }
    }
}

/// Durations written as `"500ms"`, `"30s"`, `"15m"`, `"1h"` or a number of seconds.
mod humantime_secs {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum V {
            N(u64),
            S(String),
        }
        match V::deserialize(d)? {
            V::N(n) => Ok(Duration::from_secs(n)),
            V::S(s) => crate::cli::parse_duration(&s).map_err(serde::de::Error::custom),
        }
    }
}

impl Config {
    /// Reads the file (absent = defaults), then applies `AMT_AGENT_*` overrides.
    pub fn load(path: &Path) -> Result<Config, AgentError> {
        let path = &expand_path(path);
        let mut c = match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str::<Config>(&text).map_err(|e| {
                AgentError::new(
                    ExitCode::FailedReadingConfiguration,
                    format!("{}: {}", path.display(), e.message()),
                )
                .help("see docs/service.md for the keys; every key is optional")
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!(path = %path.display(), "no configuration file; using defaults");
                Config::default()
            }
            Err(e) => {
                return Err(AgentError::new(
                    ExitCode::FailedReadingConfiguration,
                    format!("cannot read {}: {e}", path.display()),
                ))
            }
        };
        c.apply_env(|k| std::env::var(k).ok())?;
        c.expand_paths();
        Ok(c)
    }

    /// `%ProgramData%` and the like in every path (Windows).
    fn expand_paths(&mut self) {
        self.state_dir = expand_path(&self.state_dir);
        self.data_dir = expand_path(&self.data_dir);
        for p in [
            &mut self.password_file,
            &mut self.metrics_file,
            &mut self.rps_ca_file,
            &mut self.provisioning_cert,
            &mut self.provisioning_cert_password_file,
            &mut self.mebx_password_file,
            &mut self.profile,
            &mut self.profile_key_file,
        ]
        .into_iter()
        .flatten()
        {
            *p = expand_path(p);
        }
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), AgentError> {
        let bad = |k: &str, v: &str, why: String| {
            AgentError::new(
                ExitCode::FailedReadingConfiguration,
                format!("{k}={v}: {why}"),
            )
        };
        let dur = |k: &str, v: &str| crate::cli::parse_duration(v).map_err(|e| bad(k, v, e));
        if let Some(v) = get("AMT_AGENT_DEVICE") {
            self.device = v;
        }
        if let Some(v) = get("AMT_AGENT_MODE") {
            self.mode = match v.as_str() {
                "ccm" => Mode::Ccm,
                "acm" => Mode::Acm,
                _ => return Err(bad("AMT_AGENT_MODE", &v, "ccm or acm".into())),
            };
        }
        if let Some(v) = get("AMT_AGENT_METHOD") {
            self.method = match v.as_str() {
                "local" => Method::Local,
                "rps" => Method::Rps,
                _ => return Err(bad("AMT_AGENT_METHOD", &v, "local or rps".into())),
            };
        }
        if let Some(v) = get("AMT_AGENT_LMS") {
            self.lms = v;
        }
        if let Some(v) = get("AMT_AGENT_LMS_PORT") {
            self.lms_port = Some(
                v.parse()
                    .map_err(|_| bad("AMT_AGENT_LMS_PORT", &v, "a port number".into()))?,
            );
        }
        if let Some(v) = get("AMT_AGENT_PASSWORD_FILE") {
            self.password_file = Some(v.into());
        }
        if let Some(v) = get("AMT_AGENT_STATE_DIR") {
            self.state_dir = v.into();
        }
        if let Some(v) = get("AMT_AGENT_METRICS_FILE") {
            self.metrics_file = Some(v.into());
        }
        if let Some(v) = get("AMT_AGENT_RETRY_INITIAL") {
            self.retry_initial = dur("AMT_AGENT_RETRY_INITIAL", &v)?;
        }
        if let Some(v) = get("AMT_AGENT_RETRY_MAX") {
            self.retry_max = dur("AMT_AGENT_RETRY_MAX", &v)?;
        }
        if let Some(v) = get("AMT_AGENT_CHECK_INTERVAL") {
            self.check_interval = dur("AMT_AGENT_CHECK_INTERVAL", &v)?;
        }
        if let Some(v) = get("AMT_AGENT_REQUEST_TIMEOUT") {
            self.request_timeout = dur("AMT_AGENT_REQUEST_TIMEOUT", &v)?;
        }
        let path = |k: &str| get(k).map(PathBuf::from);
        if let Some(v) = get("AMT_AGENT_RPS_URL") {
            self.rps_url = Some(v);
        }
        if let Some(v) = get("AMT_AGENT_RPS_PROFILE") {
            self.rps_profile = Some(v);
        }
        if let Some(v) = path("AMT_AGENT_RPS_CA_FILE") {
            self.rps_ca_file = Some(v);
        }
        if let Some(v) = get("AMT_AGENT_DNS_SUFFIX") {
            self.dns_suffix = Some(v);
        }
        if let Some(v) = path("AMT_AGENT_PROVISIONING_CERT") {
            self.provisioning_cert = Some(v);
        }
        if let Some(v) = path("AMT_AGENT_PROVISIONING_CERT_PASSWORD_FILE") {
            self.provisioning_cert_password_file = Some(v);
        }
        if let Some(v) = path("AMT_AGENT_MEBX_PASSWORD_FILE") {
            self.mebx_password_file = Some(v);
        }
        if let Some(v) = get("AMT_AGENT_MAINTENANCE") {
            self.maintenance = v
                .split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect();
        }
        if let Some(v) = get("AMT_AGENT_MAINTENANCE_INTERVAL") {
            self.maintenance_interval = dur("AMT_AGENT_MAINTENANCE_INTERVAL", &v)?;
        }
        if let Some(v) = path("AMT_AGENT_PROFILE") {
            self.profile = Some(v);
        }
        if let Some(v) = get("AMT_AGENT_DRIFT") {
            self.drift = match v.as_str() {
                "report" => Drift::Report,
                "fix" => Drift::Fix,
                _ => return Err(bad("AMT_AGENT_DRIFT", &v, "report or fix".into())),
            };
        }
        if let Some(v) = get("AMT_AGENT_PLAN_INTERVAL") {
            self.plan_interval = dur("AMT_AGENT_PLAN_INTERVAL", &v)?;
        }
        if let Some(v) = path("AMT_AGENT_DATA_DIR") {
            self.data_dir = v;
        }
        if let Some(v) = path("AMT_AGENT_PROFILE_KEY_FILE") {
            self.profile_key_file = Some(v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys a shipped agent.toml sets or shows commented out.
    fn keys(text: &str) -> std::collections::BTreeSet<String> {
        text.lines()
            .map(|l| l.trim_start_matches('#').trim())
            .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
            .filter(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_windows_agent_toml_parses_and_matches_the_linux_one() {
        let win = include_str!("../../packaging/windows/agent.toml");
        let linux = include_str!("../../packaging/agent.toml");
        let c: Config = toml::from_str(win).unwrap();
        assert_eq!(keys(win), keys(linux));
        let get = |k: &str| (k == "ProgramData").then(|| r"C:\ProgramData".to_string());
        let expand = |p: &Path| expand_percent_vars(&p.to_string_lossy(), get);
        assert_eq!(
            expand(c.password_file.as_deref().unwrap()),
            r"C:\ProgramData\amt-agent\amt-password"
        );
        assert_eq!(expand(&c.state_dir), r"C:\ProgramData\amt-agent");
        assert_eq!(
            expand(Path::new(DEFAULT_STATE_DIR_WINDOWS)),
            expand(&c.state_dir)
        );
    }

    #[test]
    fn windows_paths_expand_percent_variables() {
        let get = |k: &str| (k == "ProgramData").then(|| r"C:\ProgramData".to_string());
        assert_eq!(
            expand_percent_vars(DEFAULT_PATH_WINDOWS, get),
            r"C:\ProgramData\amt-agent\agent.toml"
        );
        assert_eq!(expand_percent_vars("%NOPE%\\x", get), "%NOPE%\\x");
        assert_eq!(expand_percent_vars("100% sure", get), "100% sure");
        assert_eq!(expand_percent_vars("/etc/amt-agent", get), "/etc/amt-agent");
    }

    #[test]
    fn every_key_parses_and_the_environment_wins() {
        let c: Config = toml::from_str(
            "device = \"sim\"\nmode = \"ccm\"\nmethod = \"local\"\nlms = \"never\"\nlms_port = 1\n\
             password_file = \"/etc/amt-agent/amt-password\"\nstate_dir = \"/tmp/x\"\n\
             metrics_file = \"/tmp/m.prom\"\nretry_initial = \"2s\"\nretry_max = 60\n\
             check_interval = \"1h\"\nrequest_timeout = \"30s\"\n",
        )
        .unwrap();
        assert_eq!(c.retry_initial, Duration::from_secs(2));
        assert_eq!(c.retry_max, Duration::from_secs(60));
        let mut c2 = c.clone();
        c2.apply_env(|k| (k == "AMT_AGENT_DEVICE").then(|| "sim:profile=amt12".to_string()))
            .unwrap();
        assert_eq!(c2.device, "sim:profile=amt12");
        assert!(
            toml::from_str::<Config>("nonsense = 1").is_err(),
            "unknown keys are refused"
        );
        let c: Config = toml::from_str(
            "profile = \"/etc/amt-agent/profile.yaml\"\ndrift = \"fix\"\nplan_interval = \"5m\"\n",
        )
        .unwrap();
        assert_eq!(c.drift, Drift::Fix);
        assert_eq!(c.plan_interval, Duration::from_secs(300));
        assert!(toml::from_str::<Config>("drift = \"ignore\"").is_err());
    }
}
