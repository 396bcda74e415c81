//! `IPS_HostBasedSetupService`: CCM `Setup`, ACM `AddNextCertInChain` + `AdminSetup`, and
//! `UpgradeClientToAdmin` (provisioning.md §1.2, §3; rpc-go.md §5.2–§5.3).

use crate::amthi::ControlMode;
use crate::secret::Secret;
use crate::wsman::calls::{
    b64, body_instance, unb64, unit_output, Arg, Call, Exchange, Instance, Op, WsmanError,
};

pub const CLASS: &str = "IPS_HostBasedSetupService";

/// `NetAdminPassEncryptionType` 2: HTTP Digest MD5 A1 (the only value tools send).
pub const HTTP_DIGEST_MD5_A1: u32 = 2;
/// `SigningAlgorithm` 2: RSA SHA-256.
pub const RSA_SHA2_256: u32 = 2;
/// `SigningAlgorithm` 3: RSA SHA-384 (used with AMT ≥ 21 and SHA-384 certificates; UNCONFIRMED).
pub const RSA_SHA2_384: u32 = 3;

/// `CertChainStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertChainStatus {
    NotStarted,
    ChainInProgress,
    ChainComplete,
    Unknown(u32),
}

impl CertChainStatus {
    pub fn from_u32(v: u32) -> CertChainStatus {
        match v {
            0 => CertChainStatus::NotStarted,
            1 => CertChainStatus::ChainInProgress,
            2 => CertChainStatus::ChainComplete,
            n => CertChainStatus::Unknown(n),
        }
    }

    pub fn code(self) -> u32 {
        match self {
            CertChainStatus::NotStarted => 0,
            CertChainStatus::ChainInProgress => 1,
            CertChainStatus::ChainComplete => 2,
            CertChainStatus::Unknown(n) => n,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostBasedSetupService {
    pub current_control_mode: ControlMode,
    /// Modes host-based setup may reach (1 client, 2 admin), in the firmware's order.
    pub allowed_control_modes: Vec<ControlMode>,
    /// The firmware nonce AdminSetup/UpgradeClientToAdmin sign (base64 of 20 bytes on the wire).
    pub configuration_nonce: [u8; 20],
    pub cert_chain_status: Option<CertChainStatus>,
    pub instance: Instance,
}

fn decode(ex: &Exchange<'_>) -> Result<HostBasedSetupService, WsmanError> {
    let i = body_instance(ex)?;
    let mode = |t: &str| -> Result<ControlMode, WsmanError> {
        t.parse()
            .map(ControlMode::from_u32)
            .map_err(|_| crate::wsman::calls::bad_value("control mode", t, "a number"))
    };
    let current_control_mode = mode(i.require("CurrentControlMode")?)?;
    let allowed_control_modes = i
        .get_all("AllowedControlModes")
        .map(mode)
        .collect::<Result<_, _>>()?;
    let nonce_text = i.require("ConfigurationNonce")?;
    let nonce = unb64("ConfigurationNonce", nonce_text, "base64 of 20 bytes")?;
    let configuration_nonce: [u8; 20] = nonce.try_into().map_err(|_| {
        crate::wsman::calls::bad_value("ConfigurationNonce", nonce_text, "base64 of 20 bytes")
    })?;
    let cert_chain_status = i
        .get_parsed::<u32>("CertChainStatus")?
        .map(CertChainStatus::from_u32);
    Ok(HostBasedSetupService {
        current_control_mode,
        allowed_control_modes,
        configuration_nonce,
        cert_chain_status,
        instance: i,
    })
}

fn method(name: &str) -> Call<()> {
    Call::new(
        CLASS,
        Op::Invoke {
            method: name.to_string(),
        },
        unit_output,
    )
}

/// Get (a singleton).
pub fn get() -> Call<HostBasedSetupService> {
    Call::new(CLASS, Op::Get, decode)
}

/// CCM activation: `Setup(NetAdminPassEncryptionType=2, NetworkAdminPassword)`, the password being
/// [`network_admin_password`](crate::wsman::calls::network_admin_password).
pub fn setup(network_admin_password: &Secret) -> Call<()> {
    method("Setup")
        .arg(Arg::text("NetAdminPassEncryptionType", HTTP_DIGEST_MD5_A1))
        .arg(Arg::secret("NetworkAdminPassword", network_admin_password))
}

/// ACM activation, after the chain: `AdminSetup`. `digital_signature` is the raw signature over
/// [`signing_input`](crate::wsman::calls::signing_input); nonce and signature go out in base64.
pub fn admin_setup(
    net_admin_pass_encryption_type: u32,
    network_admin_password: &Secret,
    mc_nonce: &[u8; 20],
    signing_algorithm: u32,
    digital_signature: &[u8],
) -> Call<()> {
    method("AdminSetup")
        .arg(Arg::text(
            "NetAdminPassEncryptionType",
            net_admin_pass_encryption_type,
        ))
        .arg(Arg::secret("NetworkAdminPassword", network_admin_password))
        .arg(Arg::text("McNonce", b64(mc_nonce)))
        .arg(Arg::text("SigningAlgorithm", signing_algorithm))
        .arg(Arg::text("DigitalSignature", b64(digital_signature)))
}

/// One certificate of the provisioning chain (DER), leaf first, root last.
pub fn add_next_cert_in_chain(der: &[u8], is_leaf: bool, is_root: bool) -> Call<()> {
    method("AddNextCertInChain")
        .arg(Arg::text("NextCertificate", b64(der)))
        .arg(Arg::text("IsLeafCertificate", is_leaf))
        .arg(Arg::text("IsRootCertificate", is_root))
}

/// CCM → ACM: `UpgradeClientToAdmin(McNonce, SigningAlgorithm, DigitalSignature)`; no password.
pub fn upgrade_client_to_admin(
    mc_nonce: &[u8; 20],
    signing_algorithm: u32,
    digital_signature: &[u8],
) -> Call<()> {
    method("UpgradeClientToAdmin")
        .arg(Arg::text("McNonce", b64(mc_nonce)))
        .arg(Arg::text("SigningAlgorithm", signing_algorithm))
        .arg(Arg::text("DigitalSignature", b64(digital_signature)))
}
