//! TLS: `AMT_TLSSettingData` (two items, 802.3 then LMS: rps-protocol.md §3) and
//! `AMT_TLSCredentialContext` (the certificate AMT's TLS servers present). Changes to the settings
//! take effect at `AMT_SetupAndConfigurationService.CommitChanges` (Intel's AMT guide).

use crate::wsman::calls::{
    self, Arg, Call, Exchange, Instance, Op, PropertyValue, PullPage, WsmanError,
};
use crate::wsman::envelope::Selector;

pub const CLASS: &str = "AMT_TLSSettingData";
pub const CREDENTIAL_CONTEXT: &str = "AMT_TLSCredentialContext";
/// The network interface's instance.
pub const REMOTE_ID: &str = "Intel(r) AMT 802.3 TLS Settings";
/// The local interface's instance (LMS and LME: ports 16992/16993 on the host).
pub const LOCAL_ID: &str = "Intel(r) AMT LMS TLS Settings";

pub fn enumerate() -> Call<String> {
    calls::enumerate(CLASS)
}

pub fn pull(context: &str) -> Call<PullPage> {
    calls::pull(CLASS, context)
}

/// `Enabled` of an item (absent counts as false).
pub fn is_enabled(item: &Instance) -> bool {
    item.get("Enabled") == Some("true")
}

/// Put of one setting instance, whole, selected by its InstanceID (as wsman-messages does).
pub fn put(item: &Instance) -> Call<Instance> {
    let id = item.get("InstanceID").unwrap_or_default().to_string();
    calls::put(CLASS, &[Selector::new("InstanceID", id)], item)
}

/// One interface's TLS settings as AMT reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Side {
    pub enabled: bool,
    pub accept_non_secure: bool,
    pub mutual: bool,
    /// `NonSecureConnectionsSupported` false: TLS cannot be turned off, nor plain connections
    /// accepted (AMT 19+ local interface). `None` when the firmware does not report it.
    pub non_secure_supported: Option<bool>,
    /// The instance, for a Put.
    pub instance: Instance,
}

impl Side {
    fn from_instance(i: &Instance) -> Result<Side, WsmanError> {
        Ok(Side {
            enabled: i.get_bool("Enabled")?.unwrap_or(false),
            accept_non_secure: i.get_bool("AcceptNonSecureConnections")?.unwrap_or(false),
            mutual: i.get_bool("MutualAuthentication")?.unwrap_or(false),
            non_secure_supported: i.get_bool("NonSecureConnectionsSupported")?,
            instance: i.clone(),
        })
    }
}

/// Both instances of `AMT_TLSSettingData`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub remote: Side,
    pub local: Side,
}

impl Settings {
    /// From the items of a Pull: found by InstanceID, else by position (802.3 first).
    pub fn from_items(items: &[Instance]) -> Result<Settings, WsmanError> {
        let find = |id: &str, at: usize| {
            items
                .iter()
                .find(|i| i.get("InstanceID") == Some(id))
                .or_else(|| items.get(at))
                .ok_or_else(|| WsmanError::Missing(format!("{CLASS} {id}")))
        };
        Ok(Settings {
            remote: Side::from_instance(find(REMOTE_ID, 0)?)?,
            local: Side::from_instance(find(LOCAL_ID, 1)?)?,
        })
    }
}

/// The certificate (InstanceID of an `AMT_PublicKeyCertificate`) a credential context binds.
pub fn context_certificate(item: &Instance) -> Option<String> {
    item.properties.iter().find_map(|p| match &p.value {
        PropertyValue::Element(e) if p.name == "ElementInContext" => e
            .find("SelectorSet")?
            .children_named("Selector")
            .find(|s| s.attr("Name") == Some("InstanceID"))
            .map(|s| s.text().trim().to_string()),
        _ => None,
    })
}

/// The two endpoint references of a credential context, written as wsman-messages'
/// `TLSCredentialContext.Create` writes them (`a` addressing, `w` WS-Management).
fn context_args(certificate: &str) -> Vec<Arg> {
    vec![
        Arg::reference(
            "ElementInContext",
            "/wsman",
            "AMT_PublicKeyCertificate",
            "InstanceID",
            certificate,
        ),
        Arg::reference(
            "ElementProvidingContext",
            "/wsman",
            "AMT_TLSProtocolEndpointCollection",
            "ElementName",
            "TLSProtocolEndpointInstances Collection",
        ),
    ]
}

fn created(ex: &Exchange<'_>) -> Result<(), WsmanError> {
    ex.envelope
        .body()
        .find("ResourceCreated")
        .map(|_| ())
        .ok_or_else(|| WsmanError::Missing("ResourceCreated".into()))
}

/// WS-Transfer Create of the credential context binding `certificate` to TLS. A second one is
/// AMT's `AlreadyExists` fault: rebind with [`put_context`] instead.
pub fn create_context(certificate: &str) -> Call<()> {
    Call::new(CREDENTIAL_CONTEXT, Op::Create, created).args(context_args(certificate))
}

/// Put of the credential context: TLS presents `certificate` after the next CommitChanges
/// (rpc-go v3 rebinds TLS this way).
pub fn put_context(certificate: &str) -> Call<()> {
    Call::new(CREDENTIAL_CONTEXT, Op::Put, |ex| {
        calls::body_instance(ex).map(|_| ())
    })
    .args(context_args(certificate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wsman::envelope::Envelope;

    fn fixture(rel: &str) -> Envelope {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/wsman-responses/amt/tls")
            .join(rel);
        Envelope::parse(&std::fs::read(&p).unwrap()).unwrap()
    }

    #[test]
    fn settings_and_the_bound_certificate_read_from_the_fixtures() {
        let page = pull("x")
            .decode_envelope(&fixture("settingdata/pull.xml"))
            .unwrap();
        let s = Settings::from_items(&page.items).unwrap();
        assert!(!s.remote.enabled && !s.remote.accept_non_secure);
        assert!(!s.local.enabled && s.local.accept_non_secure);
        assert_eq!(s.local.non_secure_supported, None);
        let page = calls::pull(CREDENTIAL_CONTEXT, "x")
            .decode_envelope(&fixture("credentialcontext/pull.xml"))
            .unwrap();
        assert_eq!(
            context_certificate(&page.items[0]).as_deref(),
            Some("Intel(r) AMT Certificate: Handle: 3")
        );
        create_context("x")
            .decode_envelope(&fixture("credentialcontext/create.xml"))
            .unwrap();
    }

    #[test]
    fn create_renders_the_references_wsman_messages_sends() {
        let xml = create_context("Intel(r) AMT Certificate: Handle: 1").render("3");
        assert!(xml.contains("<h:AMT_TLSCredentialContext xmlns:h=\"http://intel.com/wbem/wscim/1/amt-schema/1/AMT_TLSCredentialContext\"><h:ElementInContext><a:Address>/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyCertificate</w:ResourceURI><w:SelectorSet><w:Selector Name=\"InstanceID\">Intel(r) AMT Certificate: Handle: 1</w:Selector></w:SelectorSet></a:ReferenceParameters></h:ElementInContext>"), "{xml}");
        assert!(xml.contains("http://schemas.xmlsoap.org/ws/2004/09/transfer/Create<"));
    }
}
