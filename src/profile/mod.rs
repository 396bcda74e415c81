//! Desired-state profiles: one YAML document that says what a machine should be (control mode,
//! passwords, features, host name, clock, proxies, network, TLS, CIRA), read by `profile check`,
//! `plan`, `apply` and the service (README, "Desired state").
//!
//! Three inputs give the same [`Profile`]:
//! * ours (`version: 1`, [`docs/profile.schema.json`]);
//! * rpc-go v3's profile (`configuration:` …, rpc-go.md §8.5), converted by [`v3`];
//! * rpc-go v3's encrypted export from RPS/Console (AES-256-GCM, [`crypto`]).
//!
//! Reading is sans-IO past the file itself: [`Document::parse`] turns text into our JSON shape
//! plus the map from our paths to the file's own; [`check`] finds every problem with its path;
//! [`Document::profile`] gives the typed profile. Secrets stay [`SecretRef`]s until a command
//! resolves them ([`secrets`]).

pub mod check;
pub mod crypto;
pub mod secrets;
pub mod v3;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{AgentError, ExitCode};

pub use check::{Problem, Severity};
pub use secrets::SecretRef;

/// The JSON Schema of our format, enforced by [`check`] (the same file the README documents).
pub const SCHEMA: &str = include_str!("../../docs/profile.schema.json");

/// Which format a file was in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `version: 1`, docs/profile.schema.json.
    AmtAgent,
    /// rpc-go v3's `config.Configuration` YAML.
    RpcGoV3,
    /// rpc-go v3's encrypted export (base64 of nonce ‖ ciphertext ‖ tag, or RPS's JSON envelope).
    RpcGoV3Encrypted,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::AmtAgent => "amt-agent",
            Format::RpcGoV3 => "rpc-go-v3",
            Format::RpcGoV3Encrypted => "rpc-go-v3-encrypted",
        }
    }
}

/// A profile as read: our JSON shape, and where each of its parts came from in the file.
#[derive(Clone, Debug)]
pub struct Document {
    pub format: Format,
    /// The profile in our format (converted when the file was rpc-go's).
    pub value: Value,
    /// Our path prefix → the file's path, for rpc-go files (empty for ours).
    pub origins: Vec<(String, String)>,
    /// Problems found while converting (an rpc-go key this agent does not apply, a wrong type).
    pub conversion: Vec<Problem>,
}

/// Where the decryption key of an encrypted export comes from.
#[derive(Clone, Debug, Default)]
pub struct KeySource {
    /// `--key` (warned: visible to other users).
    pub flag: Option<crate::secret::Secret>,
    /// `--key-file`.
    pub file: Option<PathBuf>,
}

impl KeySource {
    /// `--key-file`, `--key` (warned), `CONFIG_ENCRYPTION_KEY` (rpc-go's variable).
    pub fn resolve(&self) -> Result<Option<crate::secret::Secret>, AgentError> {
        crate::secret_source::SecretSource {
            what: "profile decryption key",
            flag: self.flag.as_ref().map(crate::secret::Secret::expose),
            file: self.file.as_deref(),
            env: &["CONFIG_ENCRYPTION_KEY"],
        }
        .resolve(false)
    }
}

impl Document {
    /// Reads `path` (any of the three formats).
    pub fn read(path: &Path, key: &KeySource) -> Result<Document, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            AgentError::new(
                ExitCode::FailedReadingConfiguration,
                format!("cannot read the profile {}: {e}", path.display()),
            )
            .help("check the path and that this user may read it")
        })?;
        Document::parse(&text, key).map_err(|e| e.context(format!("{}", path.display())))
    }

    /// Parses a profile's text.
    pub fn parse(text: &str, key: &KeySource) -> Result<Document, AgentError> {
        let trimmed = text.trim();
        if crypto::looks_encrypted(trimmed) {
            let plain = crypto::decrypt_export(trimmed, key)?;
            let mut d = Document::parse_plain(&plain)?;
            if d.format != Format::RpcGoV3 {
                return Err(AgentError::new(
                    ExitCode::FailedReadingConfiguration,
                    "the decrypted export is not an rpc-go v3 profile (no `configuration`)",
                ));
            }
            d.format = Format::RpcGoV3Encrypted;
            return Ok(d);
        }
        Document::parse_plain(text)
    }

    fn parse_plain(text: &str) -> Result<Document, AgentError> {
        let value: Value = serde_yaml_ng::from_str(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
                .unwrap_or_default();
            AgentError::new(
                ExitCode::FailedReadingConfiguration,
                format!("not YAML{at}: {e}"),
            )
            .help("a profile is YAML (or JSON); see examples/profile.yaml")
        })?;
        let Value::Object(map) = &value else {
            return Err(AgentError::new(
                ExitCode::FailedReadingConfiguration,
                "a profile is a YAML mapping (key: value lines)",
            )
            .help("see examples/profile.yaml"));
        };
        if map.contains_key("configuration") && !map.contains_key("version") {
            let (value, origins, conversion) = v3::convert(&value);
            return Ok(Document {
                format: Format::RpcGoV3,
                value,
                origins,
                conversion,
            });
        }
        Ok(Document {
            format: Format::AmtAgent,
            value,
            origins: Vec::new(),
            conversion: Vec::new(),
        })
    }

    /// The file's own path for a path of our shape (rpc-go files are converted).
    pub fn origin(&self, ours: &str) -> String {
        if self.origins.is_empty() {
            return ours.to_string();
        }
        let best = self
            .origins
            .iter()
            .filter(|(o, _)| {
                ours == o
                    || ours.starts_with(&format!("{o}."))
                    || ours.starts_with(&format!("{o}["))
                    || o.is_empty()
            })
            .max_by_key(|(o, _)| o.len());
        match best {
            Some((o, theirs)) => format!("{theirs}{}", &ours[o.len()..]),
            None => ours.to_string(),
        }
    }

    /// The typed profile; call after [`check`] found no error.
    pub fn profile(&self) -> Result<Profile, AgentError> {
        serde_json::from_value(self.value.clone()).map_err(|e| {
            AgentError::new(
                ExitCode::MissingOrInvalidConfiguration,
                format!("the profile does not match its schema: {e}"),
            )
            .help("run amt-agent profile check FILE: it names every problem with its path")
        })
    }
}

/// Reads, checks and types a profile for `plan`, `apply` and the service: any error found by
/// [`check`] stops here (exit 35), each as a `caused by:` line with its path.
pub fn load(path: &Path, key: &KeySource, ctx: &check::Context) -> Result<Loaded, AgentError> {
    let doc = Document::read(path, key)?;
    let problems = check::check(&doc, Some(path), ctx);
    let errors: Vec<&Problem> = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .collect();
    if let Some(first) = errors.first() {
        let mut e = AgentError::new(
            check::verdict(&problems),
            format!(
                "the profile {} has {} problem(s)",
                path.display(),
                errors.len()
            ),
        );
        for p in &errors {
            e = e.cause(format!("{}: {}", p.path, p.message));
        }
        return Err(e.help(first.help.clone().unwrap_or_else(|| {
            format!(
                "amt-agent profile check {} lists every problem with its fix",
                path.display()
            )
        })));
    }
    for p in problems.iter().filter(|p| p.severity == Severity::Warning) {
        tracing::warn!("profile: {}: {}", p.path, p.message);
    }
    Ok(Loaded {
        profile: doc.profile()?,
        format: doc.format,
        path: path.to_path_buf(),
        fingerprint: fingerprint(&doc.value),
    })
}

/// A profile ready to plan.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub profile: Profile,
    pub format: Format,
    pub path: PathBuf,
    /// SHA-256 of the profile's canonical JSON (secret references, not values): the service
    /// tells a changed profile from drift by it.
    pub fingerprint: String,
}

fn fingerprint(v: &Value) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(v.to_string().as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// The typed profile (docs/profile.schema.json)
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WantedMode {
    Ccm,
    Acm,
}

impl WantedMode {
    pub fn control_mode(self) -> crate::amthi::ControlMode {
        match self {
            WantedMode::Ccm => crate::amthi::ControlMode::Ccm,
            WantedMode::Acm => crate::amthi::ControlMode::Acm,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    pub version: u32,
    #[serde(default)]
    pub name: Option<String>,
    pub control_mode: WantedMode,
    #[serde(default)]
    pub provisioning_certificate: Option<ProvisioningCertificate>,
    pub admin_password: SecretRef,
    #[serde(default)]
    pub mebx_password: Option<SecretRef>,
    #[serde(default)]
    pub features: Option<Features>,
    #[serde(default)]
    pub hostname: Option<Hostname>,
    #[serde(default)]
    pub clock_sync: Option<bool>,
    #[serde(default)]
    pub proxies: Option<Vec<Proxy>>,
    #[serde(default)]
    pub network: Option<Network>,
    #[serde(default)]
    pub tls: Option<Tls>,
    #[serde(default)]
    pub cira: Option<Cira>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProvisioningCertificate {
    #[serde(default)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub base64: Option<SecretRef>,
    #[serde(default)]
    pub password: Option<SecretRef>,
    #[serde(default)]
    pub dns_suffix: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Consent {
    None,
    Kvm,
    #[default]
    All,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Features {
    #[serde(default)]
    pub kvm: bool,
    #[serde(default)]
    pub sol: bool,
    #[serde(default)]
    pub ider: bool,
    #[serde(default)]
    pub user_consent: Consent,
}

#[derive(Clone, Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hostname {
    #[serde(default)]
    pub host_name: Option<String>,
    #[serde(default)]
    pub domain_name: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Proxy {
    pub address: String,
    #[serde(default = "default_proxy_port")]
    pub port: u16,
    #[serde(default)]
    pub network_dns_suffix: String,
}

/// AMT's default, as `configure proxy`.
fn default_proxy_port() -> u16 {
    80
}

#[derive(Clone, Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Network {
    #[serde(default)]
    pub wired: Option<Wired>,
    #[serde(default)]
    pub wireless: Option<Wireless>,
    #[serde(default)]
    pub ieee8021x: Option<Vec<Ieee8021x>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Wired {
    #[serde(default = "yes")]
    pub dhcp: bool,
    /// Left out: with DHCP, yes; static with `ipAddress`, no; static without, yes (the host's).
    #[serde(default)]
    pub ip_sync: Option<bool>,
    #[serde(default)]
    pub ip_address: Option<String>,
    #[serde(default)]
    pub subnet_mask: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub primary_dns: Option<String>,
    #[serde(default)]
    pub secondary_dns: Option<String>,
    #[serde(default)]
    pub ieee8021x: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Wireless {
    #[serde(default)]
    pub wifi_sync: Option<bool>,
    #[serde(default)]
    pub uefi_wifi_sync: Option<bool>,
    #[serde(default)]
    pub profiles: Option<Vec<WifiProfile>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WifiProfile {
    pub name: String,
    pub ssid: String,
    #[serde(default = "one")]
    pub priority: u32,
    pub authentication: String,
    #[serde(default = "ccmp")]
    pub encryption: String,
    #[serde(default)]
    pub psk_passphrase: Option<SecretRef>,
    #[serde(default)]
    pub ieee8021x: Option<String>,
}

fn one() -> u32 {
    1
}

fn ccmp() -> String {
    "ccmp".into()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ieee8021x {
    pub name: String,
    pub protocol: String,
    pub username: String,
    #[serde(default)]
    pub password: Option<SecretRef>,
    #[serde(default)]
    pub client_certificate: Option<PathBuf>,
    #[serde(default)]
    pub private_key: Option<SecretRef>,
    #[serde(default)]
    pub ca_certificate: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tls {
    pub mode: String,
    #[serde(default)]
    pub trusted_cn: Vec<String>,
    /// The CA that signs AMT's certificate (a file or PEM text), with `ca_key`.
    #[serde(default)]
    pub ca_certificate: Option<PathBuf>,
    #[serde(default)]
    pub ca_key: Option<SecretRef>,
    #[serde(default)]
    pub ca_key_password: Option<SecretRef>,
    /// Seconds AMT gets to restart its TLS stack after CommitChanges.
    #[serde(default = "tls_delay")]
    pub delay: u64,
}

/// `configure tls --delay`'s default (rpc-go's).
fn tls_delay() -> u64 {
    3
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cira {
    pub mps_address: String,
    #[serde(default = "mps_port")]
    pub mps_port: u16,
    #[serde(default = "mps_user")]
    pub mps_username: String,
    #[serde(default)]
    pub mps_password: Option<SecretRef>,
    pub mps_certificate: PathBuf,
    #[serde(default)]
    pub environment_detection: Vec<String>,
}

fn mps_port() -> u16 {
    4433
}

fn mps_user() -> String {
    "admin".into()
}

/// The areas of a profile in the order `apply` makes them true: activation first, the admin
/// password before anything that authenticates with it, TLS last (its CommitChanges moves the
/// local port to 16993).
pub const AREAS: &[&str] = &[
    "activation",
    "admin-password",
    "mebx-password",
    "amt-features",
    "hostname",
    "sync-clock",
    "proxies",
    "wired",
    "wireless",
    "cira",
    "tls",
];

impl Profile {
    /// The areas this profile manages, in [`AREAS`] order.
    pub fn areas(&self) -> Vec<&'static str> {
        let net = self.network.as_ref();
        AREAS
            .iter()
            .copied()
            .filter(|a| match *a {
                "activation" | "admin-password" => true,
                "mebx-password" => self.mebx_password.is_some(),
                "amt-features" => self.features.is_some(),
                "hostname" => self.hostname.is_some(),
                "sync-clock" => self.clock_sync == Some(true),
                "proxies" => self.proxies.is_some(),
                "wired" => net.is_some_and(|n| n.wired.is_some()),
                "wireless" => net.is_some_and(|n| n.wireless.is_some()),
                "cira" => self.cira.is_some(),
                "tls" => self.tls.is_some(),
                _ => false,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
