//! `amtinfo --userCert`: the public-key certificates AMT holds (`AMT_PublicKeyCertificate`
//! Enumerate/Pull), in rpc-go v2's text section and `publicKeyCerts` JSON (rpc-go.md §1.4). Kept
//! apart from `amtinfo.rs`: one function reads, two render, and amtinfo only calls them.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::session::{self, AmtConnArgs};
use crate::amthi::{AmthiClient, ControlMode};
use crate::cli::AmtinfoArgs;
use crate::error::AgentError;
use crate::heci::MeiDevice;
use crate::wsman::classes::public_key::{self, PublicKeyCertificate};

/// v2's selection rules: `-userCert` asks for them; `-cert` (or `-all`, which implies it) does
/// too when an AMT password is given (flag, file or `AMT_PASSWORD`).
pub fn wanted(a: &AmtinfoArgs) -> bool {
    let password = a.conn.password.is_some()
        || a.conn.password_file.is_some()
        || std::env::var("AMT_PASSWORD").is_ok_and(|p| !p.is_empty());
    a.user_cert || ((a.cert || a.all) && password)
}

/// The certificates, or `None` on a pre-provisioned device (warned as rpc-go v2 does: before
/// activation there is no admin account to read them with).
pub fn read(
    device: Arc<dyn MeiDevice>,
    conn: &AmtConnArgs,
) -> Result<Option<Vec<PublicKeyCertificate>>, AgentError> {
    let mode = AmthiClient::new(device.clone()).control_mode()?;
    if mode == ControlMode::None {
        tracing::warn!("Device is in pre-provisioning mode. User certificates are not available");
        return Ok(None);
    }
    let mut s = session::connect(device, conn)?;
    let mut ctx = s.call(public_key::enumerate())?;
    let mut out = Vec::new();
    // Bounded: AMT holds a few dozen certificates at most and ends the sequence first.
    for _ in 0..100 {
        let page = s.call(public_key::pull(&ctx))?;
        out.extend(page.items.iter().map(PublicKeyCertificate::from_instance));
        match (page.end_of_sequence, page.context) {
            (false, Some(c)) => ctx = c,
            _ => break,
        }
    }
    Ok(Some(out))
}

/// The v2 text section: `---Public Key Certs---` and one line per certificate with its flags, or
/// `---No Public Key Certs Found---`.
pub fn text(certs: &[PublicKeyCertificate]) -> String {
    if certs.is_empty() {
        return "---No Public Key Certs Found---\n".into();
    }
    let mut s = String::from("---Public Key Certs---\n");
    for c in sorted(certs) {
        let flags = match (c.trusted_root, c.read_only) {
            (true, true) => "  (TrustedRoot, ReadOnly)",
            (true, false) => "  (TrustedRoot)",
            (false, true) => "  (ReadOnly)",
            (false, false) => "",
        };
        s.push_str(&format!("{}{flags}\n", c.display_name()));
    }
    s
}

/// v2's `publicKeyCerts`: an object keyed by CN (or InstanceID), keys sorted as Go marshals a
/// map; each value with GWM's `RefinedPublicKeyCertificateResponse` keys in its field order,
/// empty strings left out.
pub fn json(certs: &[PublicKeyCertificate]) -> Value {
    let mut m = Map::new();
    for c in sorted(certs) {
        let mut v = Map::new();
        let mut text = |k: &str, s: &str| {
            if !s.is_empty() {
                v.insert(k.into(), Value::String(s.into()));
            }
        };
        text("ElementName", &c.element_name);
        text("InstanceID", &c.instance_id);
        text("X509Certificate", &c.x509_certificate);
        v.insert("TrustedRootCertficate".into(), Value::Bool(c.trusted_root));
        let mut text = |k: &str, s: &str| {
            if !s.is_empty() {
                v.insert(k.into(), Value::String(s.into()));
            }
        };
        text("Issuer", &c.issuer);
        text("Subject", &c.subject);
        v.insert("ReadOnlyCertificate".into(), Value::Bool(c.read_only));
        m.insert(c.display_name(), Value::Object(v));
    }
    Value::Object(m)
}

/// By display name, so text and JSON come out the same every run (v2's map order was random).
fn sorted(certs: &[PublicKeyCertificate]) -> Vec<&PublicKeyCertificate> {
    let mut v: Vec<&PublicKeyCertificate> = certs.iter().collect();
    v.sort_by_key(|c| c.display_name());
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wsman::calls::Instance;

    fn cert(cn: &str, root: bool, ro: bool) -> PublicKeyCertificate {
        let mut i = Instance::default();
        i.set("ElementName", "Intel(r) AMT Certificate");
        i.set(
            "InstanceID",
            format!("Intel(r) AMT Certificate: Handle: {cn}"),
        );
        i.set("Issuer", "C=unknown,O=unknown,CN=MPSRoot-0af1d5");
        i.set("Subject", format!("C=unknown,O=unknown,CN={cn}"));
        i.set("TrustedRootCertficate", root);
        i.set("ReadOnlyCertificate", ro);
        i.set("X509Certificate", "MIIB");
        PublicKeyCertificate::from_instance(&i)
    }

    #[test]
    fn text_is_rpc_go_v2s_section_with_flags() {
        let t = text(&[
            cert("b-leaf", false, false),
            cert("a-root", true, true),
            cert("c", false, true),
        ]);
        assert_eq!(
            t,
            "---Public Key Certs---\na-root  (TrustedRoot, ReadOnly)\nb-leaf\nc  (ReadOnly)\n"
        );
        assert_eq!(text(&[]), "---No Public Key Certs Found---\n");
    }

    #[test]
    fn json_is_keyed_by_cn_with_gwms_field_names_and_order() {
        let j = json(&[cert("MPSRoot-0af1d5", true, false)]);
        let v = &j["MPSRoot-0af1d5"];
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "ElementName",
                "InstanceID",
                "X509Certificate",
                "TrustedRootCertficate",
                "Issuer",
                "Subject",
                "ReadOnlyCertificate"
            ]
        );
        assert_eq!(v["TrustedRootCertficate"], true);
    }
}
