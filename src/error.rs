//! Exit codes (rpc-go's numeric table, rpc-go.md §2) and the agent's error type.
//!
//! An error prints as cargo's diagnostics do: `error: …`, then `caused by: …` lines, then `help: …`.

use std::fmt;

use crate::amthi::AmthiError;
use crate::apf::ApfError;
use crate::heci::HeciError;
use crate::upid::client::UpidError;
use crate::wsman::calls::WsmanError;
use crate::wsman::client::WsmanError as ClientError;
use crate::wsman::transport::RouteError;

/// rpc-go's exit codes. Only the ones this agent emits are listed; the numbers are rpc-go's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    Success = 0,
    IncorrectPermissions = 1,
    HeciDriverNotDetected = 2,
    AmtNotDetected = 3,
    AmtNotReady = 4,
    GenericFailure = 10,
    MissingOrIncorrectUrl = 20,
    MissingOrIncorrectProfile = 21,
    ServerCertificateVerificationFailed = 22,
    MissingOrIncorrectPassword = 23,
    MissingDnsSuffix = 24,
    MissingHostname = 25,
    MissingProxyAddressAndPort = 26,
    MissingOrIncorrectStaticIp = 27,
    IncorrectCommandLineParameters = 28,
    MissingOrIncorrectNetworkMask = 29,
    MissingOrIncorrectGateway = 30,
    MissingOrIncorrectPrimaryDns = 31,
    MissingOrIncorrectSecondaryDns = 32,
    InvalidParameterCombination = 33,
    FailedReadingConfiguration = 34,
    MissingOrInvalidConfiguration = 35,
    InvalidUserInput = 36,
    InvalidUuid = 37,
    PasswordsDoNotMatch = 38,
    RpsAuthenticationFailed = 70,
    AmtConnectionFailed = 71,
    OsNetworkInterfacesLookupFailed = 72,
    LmsConnectionFailed = 139,
    AmtAuthenticationFailed = 100,
    WsmanMessageError = 101,
    ActivationFailed = 102,
    NetworkConfigurationFailed = 103,
    CiraConfigurationFailed = 104,
    TlsConfigurationFailed = 105,
    WifiConfigurationFailed = 106,
    AmtFeaturesConfigurationFailed = 107,
    Ieee8021xConfigurationFailed = 108,
    UnableToDeactivate = 109,
    DeactivationFailed = 110,
    UnableToActivate = 111,
    /// A message from RPS that cannot be read (not JSON, bad base64, binary, too large).
    UnmarshalMessageFailed = 113,
    /// `configure`: the command needs an activated device (control mode 0 was read).
    DeviceNotActivated = 115,
    MissingOrIncorrectWifiProfileName = 116,
    MissingIeee8021xConfiguration = 117,
    SetMebxPasswordFailed = 118,
    ChangeAmtPasswordFailed = 119,
    /// `configure`: the firmware would refuse the change, or did not keep it.
    UnableToConfigure = 120,
    // rpc-go's activation codes 121–135 (rpc-go.md §2); all named ActivationFailed there.
    ProvisioningCertBase64 = 121,
    ProvisioningCertPassword = 122,
    ProvisioningCertInvalid = 123,
    ProvisioningCertNoCertificates = 124,
    ProvisioningCertNoKey = 125,
    ProvisioningCertNoRoot = 126,
    CertHashesUnreadable = 127,
    RootNotTrusted = 128,
    GeneralSettingsFailed = 129,
    HostBasedSetupFailed = 130,
    AddCertificateFailed = 131,
    SigningFailed = 133,
    ControlModeUnreadable = 134,
    InvalidControlMode = 135,
    /// The leaf's signature hash is neither SHA-256 nor SHA-384 family (AMT 19+ local ACM).
    /// A key pair of that kind already exists (TLS / 802.1X key generation).
    DuplicateKey = 136,
    WiredConfigurationFailed = 137,
    LeafHashUnsupported = 138,
    SyncClockFailed = 150,
    SyncHostnameFailed = 151,
    SyncIpFailed = 152,
    ChangePasswordFailed = 153,
    SyncDeviceInfoFailed = 154,
    /// `plan`: changes are pending (terraform plan -detailed-exitcode's 2). It exits 2, the number
    /// rpc-go gives HECIDriverNotDetected: `plan --json`'s `status` tells the two apart.
    ChangesPending = 255,
}

impl ExitCode {
    pub fn code(self) -> u8 {
        match self {
            ExitCode::ChangesPending => 2,
            c => c as u8,
        }
    }

    /// rpc-go's name for the code.
    pub fn name(self) -> &'static str {
        match self {
            ExitCode::Success => "Success",
            ExitCode::IncorrectPermissions => "IncorrectPermissions",
            ExitCode::HeciDriverNotDetected => "HECIDriverNotDetected",
            ExitCode::AmtNotDetected => "AmtNotDetected",
            ExitCode::AmtNotReady => "AmtNotReady",
            ExitCode::GenericFailure => "GenericFailure",
            ExitCode::MissingOrIncorrectUrl => "MissingOrIncorrectURL",
            ExitCode::MissingOrIncorrectProfile => "MissingOrIncorrectProfile",
            ExitCode::ServerCertificateVerificationFailed => "ServerCertificateVerificationFailed",
            ExitCode::MissingOrIncorrectPassword => "MissingOrIncorrectPassword",
            ExitCode::MissingDnsSuffix => "MissingDNSSuffix",
            ExitCode::MissingProxyAddressAndPort => "MissingProxyAddressAndPort",
            ExitCode::MissingHostname => "MissingHostname",
            ExitCode::MissingOrIncorrectStaticIp => "MissingOrIncorrectStaticIP",
            ExitCode::MissingOrIncorrectNetworkMask => "MissingOrIncorrectNetworkMask",
            ExitCode::MissingOrIncorrectGateway => "MissingOrIncorrectGateway",
            ExitCode::MissingOrIncorrectPrimaryDns => "MissingOrIncorrectPrimaryDNS",
            ExitCode::MissingOrIncorrectSecondaryDns => "MissingOrIncorrectSecondaryDNS",
            ExitCode::MissingOrInvalidConfiguration => "MissingOrInvalidConfiguration",
            ExitCode::InvalidUserInput => "InvalidUserInput",
            ExitCode::NetworkConfigurationFailed => "NetworkConfigurationFailed",
            ExitCode::CiraConfigurationFailed => "CIRAConfigurationFailed",
            ExitCode::TlsConfigurationFailed => "TLSConfigurationFailed",
            ExitCode::WifiConfigurationFailed => "WiFiConfigurationFailed",
            ExitCode::AmtFeaturesConfigurationFailed => "AMTFeaturesConfigurationFailed",
            ExitCode::Ieee8021xConfigurationFailed => "Ieee8021xConfigurationFailed",
            ExitCode::DeviceNotActivated => "DeviceNotActivated",
            ExitCode::MissingOrIncorrectWifiProfileName => "MissingOrIncorrectWifiProfileName",
            ExitCode::MissingIeee8021xConfiguration => "MissingIeee8021xConfiguration",
            ExitCode::UnableToConfigure => "UnableToConfigure",
            ExitCode::DuplicateKey => "DuplicateKey",
            ExitCode::WiredConfigurationFailed => "WiredConfigurationFailed",
            ExitCode::RpsAuthenticationFailed => "RPSAuthenticationFailed",
            ExitCode::OsNetworkInterfacesLookupFailed => "OSNetworkInterfacesLookupFailed",
            ExitCode::SyncClockFailed => "SyncClockFailed",
            ExitCode::SyncHostnameFailed => "SyncHostnameFailed",
            ExitCode::SyncIpFailed => "SyncIpFailed",
            ExitCode::ChangePasswordFailed => "ChangePasswordFailed",
            ExitCode::SyncDeviceInfoFailed => "SyncDeviceInfoFailed",
            ExitCode::ChangesPending => "ChangesPending",
            ExitCode::IncorrectCommandLineParameters => "IncorrectCommandLineParameters",
            ExitCode::InvalidParameterCombination => "InvalidParameterCombination",
            ExitCode::FailedReadingConfiguration => "FailedReadingConfiguration",
            ExitCode::InvalidUuid => "InvalidUUID",
            ExitCode::AmtConnectionFailed => "AMTConnectionFailed",
            ExitCode::LmsConnectionFailed => "LMSConnectionFailed",
            ExitCode::AmtAuthenticationFailed => "AMTAuthenticationFailed",
            ExitCode::WsmanMessageError => "WSMANMessageError",
            ExitCode::ActivationFailed => "ActivationFailed",
            ExitCode::UnableToDeactivate => "UnableToDeactivate",
            ExitCode::DeactivationFailed => "DeactivationFailed",
            ExitCode::UnableToActivate => "UnableToActivate",
            ExitCode::UnmarshalMessageFailed => "UnmarshalMessageFailed",
            ExitCode::PasswordsDoNotMatch => "PasswordsDoNotMatch",
            ExitCode::SetMebxPasswordFailed => "SetMEBXPasswordFailed",
            ExitCode::ChangeAmtPasswordFailed => "ChangeAMTPasswordFailed",
            ExitCode::ProvisioningCertBase64
            | ExitCode::ProvisioningCertPassword
            | ExitCode::ProvisioningCertInvalid
            | ExitCode::ProvisioningCertNoCertificates
            | ExitCode::ProvisioningCertNoKey
            | ExitCode::ProvisioningCertNoRoot
            | ExitCode::CertHashesUnreadable
            | ExitCode::RootNotTrusted
            | ExitCode::GeneralSettingsFailed
            | ExitCode::HostBasedSetupFailed
            | ExitCode::AddCertificateFailed
            | ExitCode::SigningFailed
            | ExitCode::ControlModeUnreadable
            | ExitCode::InvalidControlMode
            | ExitCode::LeafHashUnsupported => "ActivationFailed",
        }
    }
}

/// An error as the user sees it.
#[derive(Debug, Clone)]
pub struct AgentError {
    pub exit: ExitCode,
    pub message: String,
    pub causes: Vec<String>,
    pub help: Option<String>,
    /// What the device is left in, when a failure may have changed it (printed as `state:`).
    pub state: Option<String>,
}

impl AgentError {
    pub fn new(exit: ExitCode, message: impl Into<String>) -> AgentError {
        AgentError {
            exit,
            message: message.into(),
            causes: Vec::new(),
            help: None,
            state: None,
        }
    }

    pub fn cause(mut self, c: impl Into<String>) -> AgentError {
        self.causes.push(c.into());
        self
    }

    pub fn help(mut self, h: impl Into<String>) -> AgentError {
        self.help = Some(h.into());
        self
    }

    /// The device's state after the failure, as the firmware reports it.
    pub fn state(mut self, s: impl Into<String>) -> AgentError {
        self.state = Some(s.into());
        self
    }

    /// The same error with another exit code.
    pub fn exit(mut self, code: ExitCode) -> AgentError {
        self.exit = code;
        self
    }

    pub fn context(mut self, what: impl Into<String>) -> AgentError {
        let inner = std::mem::replace(&mut self.message, what.into());
        self.causes.insert(0, inner);
        self
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "status": "error",
            "exitCode": self.exit.code(),
            "exitName": self.exit.name(),
            "message": self.message,
            "causes": self.causes,
            "help": self.help,
            "state": self.state,
        })
    }
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        for c in &self.causes {
            write!(f, "\ncaused by: {c}")?;
        }
        if let Some(s) = &self.state {
            write!(f, "\nstate: {s}")?;
        }
        if let Some(h) = &self.help {
            write!(f, "\nhelp: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for AgentError {}

impl From<HeciError> for AgentError {
    fn from(e: HeciError) -> AgentError {
        let exit = match &e {
            HeciError::NoDevice { .. } => ExitCode::HeciDriverNotDetected,
            HeciError::PermissionDenied { .. } => ExitCode::IncorrectPermissions,
            HeciError::ClientNotFound { .. } => ExitCode::AmtNotDetected,
            HeciError::DeviceNotReady { .. }
            | HeciError::Reset { .. }
            | HeciError::Busy { .. }
            | HeciError::Timeout { .. } => ExitCode::AmtNotReady,
            HeciError::SimSocket { .. } => ExitCode::HeciDriverNotDetected,
            _ => ExitCode::GenericFailure,
        };
        AgentError::new(exit, e.to_string()).help(e.help())
    }
}

impl From<AmthiError> for AgentError {
    fn from(e: AmthiError) -> AgentError {
        match e {
            AmthiError::Heci(h) => h.into(),
            AmthiError::Status { status, .. } => {
                let exit = match status {
                    crate::amthi::PtStatus::NotReady => ExitCode::AmtNotReady,
                    _ => ExitCode::GenericFailure,
                };
                let help = match status {
                    crate::amthi::PtStatus::NotReady => {
                        "the ME is still starting; wait a few seconds and retry (or raise --amt-timeout)"
                    }
                    crate::amthi::PtStatus::InvalidPtMode => {
                        "the command is not allowed in the current control mode; check it with: amt-agent amtinfo --mode"
                    }
                    _ => "retry; if it persists, capture a trace (-vvv) and report it",
                };
                AgentError::new(exit, e.to_string()).help(help)
            }
            AmthiError::Malformed { .. } => AgentError::new(ExitCode::GenericFailure, e.to_string())
                .help("the firmware's answer did not match the AMTHI layout; capture a trace (-vvv) and report it"),
        }
    }
}

impl From<UpidError> for AgentError {
    fn from(e: UpidError) -> AgentError {
        match e {
            // UPID is a CSME client, not AMT's: its absence says nothing about AMT (exit 3 would).
            UpidError::Heci(h @ HeciError::ClientNotFound { .. }) => AgentError::new(
                ExitCode::GenericFailure,
                h.to_string(),
            )
            .help(
                "this machine's ME does not offer the UPID client (older platforms have none); \
                     amtinfo without --upid shows everything else",
            ),
            UpidError::Heci(h) => h.into(),
            e => AgentError::new(ExitCode::GenericFailure, e.to_string()).help(e.help()),
        }
    }
}

impl From<WsmanError> for AgentError {
    /// rpc-go's codes: 100 for rejected credentials, 101 for faults and unreadable answers; a
    /// non-zero ReturnValue keeps 101 unless the method has its own rpc-go code (activation 102,
    /// Unprovision 109, SetMEBxPassword 118, SetAdminAclEntryEx 119).
    fn from(e: WsmanError) -> AgentError {
        let exit = match &e {
            WsmanError::Unauthorized => ExitCode::AmtAuthenticationFailed,
            WsmanError::ReturnValue { method, .. } => match method.as_str() {
                "Setup" | "AdminSetup" | "AddNextCertInChain" | "UpgradeClientToAdmin" => {
                    ExitCode::ActivationFailed
                }
                "Unprovision" | "PartialUnprovision" => ExitCode::UnableToDeactivate,
                "SetMEBxPassword" => ExitCode::SetMebxPasswordFailed,
                "SetAdminAclEntryEx" => ExitCode::ChangeAmtPasswordFailed,
                _ => ExitCode::WsmanMessageError,
            },
            WsmanError::Fault(_)
            | WsmanError::Http { .. }
            | WsmanError::Malformed(_)
            | WsmanError::Missing(_) => ExitCode::WsmanMessageError,
        };
        AgentError::new(exit, e.to_string()).help(e.help())
    }
}

impl From<ApfError> for AgentError {
    fn from(e: ApfError) -> AgentError {
        match e {
            // Device-level failures keep their HECI exit codes (no driver, permissions, no AMT).
            ApfError::Heci(h) => AgentError::from(h).context("cannot reach AMT over LME"),
            ApfError::LmeBusy(_) => {
                AgentError::new(ExitCode::AmtNotReady, e.to_string()).help(e.help())
            }
            e => AgentError::new(ExitCode::AmtConnectionFailed, e.to_string()).help(e.help()),
        }
    }
}

impl From<RouteError> for AgentError {
    fn from(e: RouteError) -> AgentError {
        match e {
            RouteError::Apf(a) => a.into(),
            RouteError::LmsUnavailable { .. } | RouteError::LmsConnect { .. } => {
                AgentError::new(ExitCode::LmsConnectionFailed, e.to_string()).help(e.help())
            }
            RouteError::Io(_)
            | RouteError::TlsCertificate { .. }
            | RouteError::TlsHandshake { .. } => {
                AgentError::new(ExitCode::AmtConnectionFailed, e.to_string()).help(e.help())
            }
            RouteError::TlsSetup { .. } => {
                AgentError::new(ExitCode::FailedReadingConfiguration, e.to_string()).help(e.help())
            }
        }
    }
}

impl From<ClientError> for AgentError {
    fn from(e: ClientError) -> AgentError {
        let e = match e {
            ClientError::Route(r) => return r.into(),
            e => e,
        };
        let exit = match &e {
            ClientError::Unauthorized { .. } => ExitCode::AmtAuthenticationFailed,
            ClientError::Timeout { .. } | ClientError::Io(_) | ClientError::Route(_) => {
                ExitCode::AmtConnectionFailed
            }
            ClientError::Http(_) | ClientError::Digest(_) | ClientError::NoChallenge => {
                ExitCode::WsmanMessageError
            }
        };
        AgentError::new(exit, e.to_string()).help(e.help())
    }
}

pub type Result<T> = std::result::Result<T, AgentError>;
