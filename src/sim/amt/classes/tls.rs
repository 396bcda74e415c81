//! TLS: `AMT_TLSSettingData` (802.3 and LMS), `AMT_TLSCredentialContext` (which certificate of
//! the store the TLS servers present) and what CommitChanges puts into effect
//! ([`TlsInEffect`]: the LME session and the LMS-like listener read it to serve port 16993).
//!
//! Facts: Intel's AMT guide ("most changes made via AMT_TLSSettingData are not applied until
//! CommitChanges"; with mutual authentication AMT "validates incoming client certificates based on
//! the root of trust configured"), the fixtures in `tests/fixtures/wsman-responses/amt/tls`, the
//! AlreadyExists capture (`tests/fixtures/amt-captures/400-fault-already-exists.http`, which RPS's
//! tests answer a second Create with), RPS's and rpc-go's TLS flows (the 802.3 instance carries the
//! mode; RPS enables the LMS instance and leaves its other properties as read; a
//! `NonSecureConnectionsSupported` false means TLS cannot be turned off). The Put rules are the
//! simulator's reading of those facts; the exact faults are UNCONFIRMED (docs/simulator.md).

use super::super::model::{epr, epr_parts, epr_xml, input_ref, inst, prop, Instance};
use super::keystore;
use super::rules::{self, PutRefusal};
use crate::sim::profile::{DeviceProfile, TlsInEffect, TlsSide};
use crate::wsman::envelope::{escape, ns, resource_uri, Element};

pub const SETTING_DATA: &str = "AMT_TLSSettingData";
pub const CREDENTIAL_CONTEXT: &str = "AMT_TLSCredentialContext";
pub const REMOTE_ID: &str = "Intel(r) AMT 802.3 TLS Settings";
pub const LOCAL_ID: &str = "Intel(r) AMT LMS TLS Settings";
/// The collection every TLS credential context names as `ElementProvidingContext`.
pub const ENDPOINT_COLLECTION: &str = "AMT_TLSProtocolEndpointCollection";
const COLLECTION_NAME: &str = "TLSProtocolEndpoint Instances Collection";

/// Two TLS setting instances (802.3 first, LMS second: RPS indexes them) and no credential
/// context. On a profile that enforces TLS on its local ports (AMT 19+) local TLS is on and
/// cannot be turned off: the LMS instance carries `NonSecureConnectionsSupported` false
/// (UNCONFIRMED on which versions and instances the property appears; RPS and rpc-go v3 read it
/// when present).
pub(super) fn seed(p: &mut DeviceProfile) {
    let enforced = p.tls_enforced;
    let item = |id: &str, accept: bool, enabled: bool, always_tls: bool| {
        let mut i = inst(&[
            (
                "AcceptNonSecureConnections",
                if accept { "true" } else { "false" },
            ),
            ("ElementName", id),
            ("Enabled", if enabled { "true" } else { "false" }),
            ("InstanceID", id),
            ("MutualAuthentication", "false"),
        ]);
        if always_tls {
            i.push(("NonSecureConnectionsSupported".into(), "false".into()));
        }
        i
    };
    p.instances.insert(
        SETTING_DATA.into(),
        vec![
            item(REMOTE_ID, true, false, false),
            item(LOCAL_ID, !enforced, enforced, enforced),
        ],
    );
    p.instances.insert(CREDENTIAL_CONTEXT.into(), Vec::new());
    p.tls_in_effect = None;
}

/// The certificates (InstanceIDs) a credential context binds.
pub fn bound_certificates(p: &DeviceProfile) -> Vec<String> {
    p.instances
        .get(CREDENTIAL_CONTEXT)
        .into_iter()
        .flatten()
        .filter_map(|i| prop(i, "ElementInContext").and_then(epr_parts))
        .map(|(_, _, handle)| handle.to_string())
        .collect()
}

/// A credential context binding `cert` to TLS (both properties endpoint references, as the
/// go-wsman `pull.xml` fixture).
fn context(cert: &str) -> Instance {
    keystore::credential_context(
        cert,
        &epr(
            &resource_uri(ENDPOINT_COLLECTION),
            "ElementName",
            COLLECTION_NAME,
        ),
    )
}

/// The certificate an `ElementInContext` names, checked: in the store, not a trusted root, with
/// its key pair in the store (UNCONFIRMED which fault firmware answers otherwise).
fn usable_certificate(p: &DeviceProfile, body: &Element) -> Result<String, PutRefusal> {
    let invalid = |reason: String| PutRefusal {
        subcode: (ns::WSMAN, "InvalidParameter"),
        reason,
    };
    let cert = input_ref(Some(body), "ElementInContext")
        .ok_or_else(|| invalid("ElementInContext names no AMT_PublicKeyCertificate".into()))?;
    let der = keystore::certificate_der(p, &cert)
        .ok_or_else(|| invalid(format!("no AMT_PublicKeyCertificate {cert}")))?;
    if keystore::is_trusted_root_handle(p, &cert) {
        return Err(invalid(format!(
            "{cert} is a trusted root, not a certificate AMT holds the key of"
        )));
    }
    if keystore::private_key_for(p, &der).is_none() {
        return Err(invalid(format!("AMT holds no key pair for {cert}")));
    }
    Ok(cert)
}

/// WS-Transfer Create of a credential context: the body of the CreateResponse (`ResourceCreated`,
/// an endpoint reference whose selectors are the two references, as the fixture `create.xml`),
/// or the fault. AMT binds one certificate to TLS: a second Create is AlreadyExists.
pub(super) fn create(
    p: &mut DeviceProfile,
    class: &str,
    body: &Element,
) -> Option<Result<String, PutRefusal>> {
    if class != CREDENTIAL_CONTEXT {
        return None;
    }
    if !bound_certificates(p).is_empty() {
        return Some(Err(PutRefusal {
            subcode: (ns::WSMAN, "AlreadyExists"),
            reason: "The sender attempted to create a resource which already exists.".into(),
        }));
    }
    let cert = match usable_certificate(p, body) {
        Ok(c) => c,
        Err(e) => return Some(Err(e)),
    };
    p.instances
        .entry(CREDENTIAL_CONTEXT.into())
        .or_default()
        .push(context(&cert));
    let cert_epr = epr_xml(&resource_uri(keystore::CERTIFICATE), "InstanceID", &cert);
    let collection = epr_xml(
        &resource_uri(ENDPOINT_COLLECTION),
        "ElementName",
        COLLECTION_NAME,
    );
    Some(Ok(format!(
        "<g:ResourceCreated><b:Address>{}</b:Address><b:ReferenceParameters><c:ResourceURI>{}\
         </c:ResourceURI><c:SelectorSet><c:Selector Name=\"ElementInContext\"><b:EndpointReference>\
         {cert_epr}</b:EndpointReference></c:Selector><c:Selector Name=\"ElementProvidingContext\">\
         <b:EndpointReference>{collection}</b:EndpointReference></c:Selector></c:SelectorSet>\
         </b:ReferenceParameters></g:ResourceCreated>",
        ns::ANONYMOUS,
        escape(&resource_uri(CREDENTIAL_CONTEXT)),
    )))
}

/// Put of the credential context (rpc-go v3 rebinds TLS to a new certificate this way, then
/// commits): the new certificate replaces the bound one. `None` for other classes.
pub(super) fn put_context(
    p: &mut DeviceProfile,
    class: &str,
    body: &Element,
) -> Option<Result<Instance, PutRefusal>> {
    if class != CREDENTIAL_CONTEXT {
        return None;
    }
    let cert = match usable_certificate(p, body) {
        Ok(c) => c,
        Err(e) => return Some(Err(e)),
    };
    let list = p.instances.entry(CREDENTIAL_CONTEXT.into()).or_default();
    let Some(ctx) = list.first_mut() else {
        return Some(Err(PutRefusal {
            subcode: (ns::WSMAN, "InvalidSelectors"),
            reason: "The Selectors for the resource were not valid.".into(),
        }));
    };
    *ctx = context(&cert);
    Some(Ok(ctx.clone()))
}

fn side(i: &Instance) -> TlsSide {
    let b = |n: &str| prop(i, n) == Some("true");
    TlsSide {
        enabled: b("Enabled"),
        accept_non_secure: b("AcceptNonSecureConnections"),
        mutual: b("MutualAuthentication"),
    }
}

fn setting<'a>(p: &'a DeviceProfile, id: &str) -> Option<&'a Instance> {
    p.instances
        .get(SETTING_DATA)?
        .iter()
        .find(|i| prop(i, "InstanceID") == Some(id))
}

/// `AMT_TLSSettingData`'s properties (the fixtures' set, `TrustedCN` for mutual authentication,
/// and `NonSecureConnectionsSupported`, which the firmware reports and clients cannot change).
const SETTINGS_SCHEMA: &[rules::PropRule] = &[
    rules::ro("ElementName", rules::Kind::Text(64)),
    rules::ro("InstanceID", rules::Kind::Text(64)),
    rules::rw("Enabled", rules::Kind::Bool),
    rules::rw("AcceptNonSecureConnections", rules::Kind::Bool),
    rules::rw("MutualAuthentication", rules::Kind::Bool),
    rules::rw("TrustedCN", rules::Kind::Text(256)),
    rules::ro("NonSecureConnectionsSupported", rules::Kind::Bool),
];

/// A refused state change (UNCONFIRMED which fault firmware answers: `wsman:InvalidParameter`).
fn state_refusal(reason: String) -> PutRefusal {
    PutRefusal {
        subcode: (ns::WSMAN, "InvalidParameter"),
        reason,
    }
}

/// The Put rules of `AMT_TLSSettingData` on top of its schema: TLS needs a bound certificate,
/// mutual authentication a trusted root, and a device that enforces TLS on its local ports
/// neither turns it off nor accepts plain connections. `None` for other classes.
pub(super) fn check_put(
    p: &DeviceProfile,
    class: &str,
    current: &Instance,
    body: &Element,
) -> Option<Result<(), PutRefusal>> {
    if class != SETTING_DATA {
        return None;
    }
    Some(
        rules::check_put(class, SETTINGS_SCHEMA, current, body, false)
            .and_then(|()| check_settings_state(p, current, body).map_err(state_refusal)),
    )
}

fn check_settings_state(
    p: &DeviceProfile,
    current: &Instance,
    body: &Element,
) -> Result<(), String> {
    let after = |n: &str| body.child_text(n).or_else(|| prop(current, n));
    let id = prop(current, "InstanceID").unwrap_or_default();
    let on = |n: &str| after(n).map(str::trim) == Some("true");
    let always_tls = prop(current, "NonSecureConnectionsSupported") == Some("false");
    // A device that enforces TLS locally serves its own certificate until one is bound.
    if on("Enabled") && bound_certificates(p).is_empty() && !always_tls {
        return Err(format!(
            "{id}: TLS cannot be enabled before AMT_TLSCredentialContext binds a certificate"
        ));
    }
    if on("MutualAuthentication") && id == REMOTE_ID && keystore::trusted_roots(p).is_empty() {
        return Err(format!(
            "{id}: mutual authentication needs a trusted root certificate \
             (AddTrustedRootCertificate) to check client certificates against"
        ));
    }
    if always_tls {
        if on("AcceptNonSecureConnections") {
            return Err(format!("{id}: this device accepts no non-TLS connections"));
        }
        if id == LOCAL_ID && !on("Enabled") {
            return Err(format!(
                "{id}: TLS cannot be disabled on this device's local interface"
            ));
        }
    }
    Ok(())
}

/// CommitChanges: the TLS settings and the bound certificate take effect. TLS turned off on both
/// interfaces leaves nothing in effect.
pub(super) fn commit(p: &mut DeviceProfile) {
    let (Some(remote), Some(local)) = (setting(p, REMOTE_ID), setting(p, LOCAL_ID)) else {
        return;
    };
    let (remote, local) = (side(remote), side(local));
    let certificate = bound_certificates(p).into_iter().next().unwrap_or_default();
    p.tls_in_effect = (remote.enabled || local.enabled).then_some(TlsInEffect {
        remote,
        local,
        certificate,
    });
}

/// What the local interface serves after the last commit: plain HTTP (16992) and/or TLS (16993),
/// and with which certificate and key (DER, PKCS#8). The factory state of a TLS-enforcing device
/// (its self-signed or On-Die CA certificate) is the caller's: `certificate` is `None` then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalPorts {
    pub plain: bool,
    pub tls: bool,
    pub certificate: Option<(Vec<u8>, Vec<u8>)>,
}

/// Which local ports are open, `(plain 16992, TLS 16993)`: no certificate is looked up, so this is
/// cheap enough for every LME message.
pub fn local_port_flags(p: &DeviceProfile) -> (bool, bool) {
    match p.tls_in_effect.as_ref().filter(|t| t.local.enabled) {
        Some(t) => (!p.tls_enforced && t.local.accept_non_secure, true),
        None => (!p.tls_enforced, p.tls_enforced),
    }
}

pub fn local_ports(p: &DeviceProfile) -> LocalPorts {
    let (plain, tls) = local_port_flags(p);
    let certificate = p
        .tls_in_effect
        .as_ref()
        .filter(|t| t.local.enabled)
        .and_then(|t| {
            let der = keystore::certificate_der(p, &t.certificate)?;
            let key = keystore::private_key_for(p, &der)?;
            Some((der, key))
        });
    LocalPorts {
        plain,
        tls,
        certificate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_factory_local_interface_is_plain_or_enforced_tls() {
        let mut p = crate::sim::profile::builtin("amt16.1").unwrap();
        super::super::seed_instances(&mut p);
        assert_eq!(
            local_ports(&p),
            LocalPorts {
                plain: true,
                tls: false,
                certificate: None
            }
        );
        let mut p = crate::sim::profile::builtin("amt19").unwrap();
        super::super::seed_instances(&mut p);
        assert_eq!(
            local_ports(&p),
            LocalPorts {
                plain: false,
                tls: true,
                certificate: None
            }
        );
        let local = setting(&p, LOCAL_ID).unwrap();
        assert_eq!(prop(local, "NonSecureConnectionsSupported"), Some("false"));
    }
}
