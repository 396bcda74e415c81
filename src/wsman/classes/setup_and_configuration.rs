//! `AMT_SetupAndConfigurationService`: provisioning state, Unprovision, CommitChanges,
//! SetMEBxPassword, GetUuid (provisioning.md §1.2; these methods return PT_STATUS values).

use crate::amthi::{AmtUuid, ProvisioningState};
use crate::secret::Secret;
use crate::wsman::calls::{
    bad_value, body_instance, method_output, unb64, unit_output, Arg, Call, Exchange, Instance, Op,
    WsmanError,
};

pub const CLASS: &str = "AMT_SetupAndConfigurationService";

/// `Unprovision` ProvisioningMode 1 (enterprise): the only value effective since AMT 6.
pub const PROVISIONING_MODE_ENTERPRISE: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupAndConfigurationService {
    /// 1 = admin control mode (enterprise), 4 = client control mode.
    pub provisioning_mode: Option<u32>,
    pub provisioning_state: Option<ProvisioningState>,
    /// 0 coupled, 1 separate, 2 separate hash.
    pub password_model: Option<u32>,
    pub zero_touch_configuration_enabled: Option<bool>,
    /// Domain name received from DHCP (option 15).
    pub dhcp_dns_suffix: Option<String>,
    /// Trusted domain name configured in MEBx.
    pub trusted_dns_suffix: Option<String>,
    pub configuration_server_fqdn: Option<String>,
    pub instance: Instance,
}

fn decode(ex: &Exchange<'_>) -> Result<SetupAndConfigurationService, WsmanError> {
    let i = body_instance(ex)?;
    Ok(SetupAndConfigurationService {
        provisioning_mode: i.get_parsed("ProvisioningMode")?,
        provisioning_state: i
            .get_parsed::<u32>("ProvisioningState")?
            .map(ProvisioningState::from_u32),
        password_model: i.get_parsed("PasswordModel")?,
        zero_touch_configuration_enabled: i.get_bool("ZeroTouchConfigurationEnabled")?,
        dhcp_dns_suffix: i.get("DhcpDNSSuffix").map(str::to_string),
        trusted_dns_suffix: i.get("TrustedDNSSuffix").map(str::to_string),
        configuration_server_fqdn: i.get("ConfigurationServerFQDN").map(str::to_string),
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

pub fn get() -> Call<SetupAndConfigurationService> {
    Call::new(CLASS, Op::Get, decode)
}

/// Full unprovision (ACM deactivation); pass [`PROVISIONING_MODE_ENTERPRISE`].
pub fn unprovision(provisioning_mode: u32) -> Call<()> {
    method("Unprovision").arg(Arg::text("ProvisioningMode", provisioning_mode))
}

pub fn partial_unprovision() -> Call<()> {
    method("PartialUnprovision")
}

/// Applies pending configuration; 2057 DATA_MISSING means a MEBx password is needed first.
pub fn commit_changes() -> Call<()> {
    method("CommitChanges")
}

/// The MEBx password travels in clear text inside the (TLS or local) channel, as RPS sends it.
pub fn set_mebx_password(password: &Secret) -> Call<()> {
    method("SetMEBxPassword").arg(Arg::secret("Password", password))
}

/// `GetUuid` → the 16 raw bytes (base64 on the wire). `UUID` is read by local name and a missing
/// `ReturnValue` is tolerated: the only fixture is request-shaped and hand-edited (an unprefixed
/// `UUID`, so in the SOAP namespace, and no ReturnValue).
pub fn get_uuid() -> Call<AmtUuid> {
    Call::new(
        CLASS,
        Op::Invoke {
            method: "GetUuid".into(),
        },
        |ex| {
            let out = method_output(ex, false)?;
            let text = out
                .get("UUID")
                .ok_or_else(|| WsmanError::Missing("GetUuid_OUTPUT.UUID".into()))?;
            let raw = unb64("UUID", text, "base64 of 16 bytes")?;
            let bytes: [u8; 16] = raw
                .try_into()
                .map_err(|_| bad_value("UUID", text, "base64 of 16 bytes"))?;
            Ok(AmtUuid(bytes))
        },
    )
}
