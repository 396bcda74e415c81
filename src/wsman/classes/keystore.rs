//! AMT's certificate store: `AMT_PublicKeyManagementService` (GenerateKeyPair, AddCertificate,
//! AddTrustedRootCertificate), `AMT_PublicPrivateKeyPair` and `AMT_PublicKeyCertificate`
//! (go-wsman-messages `publickey`/`publicprivate`; the fixtures in
//! `tests/fixtures/wsman-responses/amt/publickey`). The methods answer with an endpoint reference
//! to what they created; the typed calls return its `InstanceID`.

use crate::wsman::calls::{
    self, b64, method_output, unb64, Arg, Call, Exchange, Instance, Op, PropertyValue, PullPage,
    WsmanError,
};

pub const SERVICE: &str = "AMT_PublicKeyManagementService";
pub const KEY_PAIR: &str = "AMT_PublicPrivateKeyPair";
pub const CERTIFICATE: &str = "AMT_PublicKeyCertificate";

/// `KeyAlgorithm` 0: RSA, the only value (go-wsman `publickey.RSA`).
pub const RSA: u32 = 0;
/// The key length RPS and rpc-go generate.
pub const KEY_LENGTH_2048: u32 = 2048;

/// The `InstanceID` selector of the endpoint reference in output `name`.
fn reference_id(out: &Instance, name: &'static str) -> Result<String, WsmanError> {
    let missing = || WsmanError::Missing(format!("{name} reference"));
    let el = out
        .properties
        .iter()
        .find_map(|p| match &p.value {
            PropertyValue::Element(e) if p.name == name => Some(e),
            _ => None,
        })
        .ok_or_else(missing)?;
    let set = el.find("SelectorSet").ok_or_else(missing)?;
    set.children_named("Selector")
        .find(|s| s.attr("Name") == Some("InstanceID"))
        .map(|s| s.text().trim().to_string())
        .ok_or_else(missing)
}

fn created_key_pair(ex: &Exchange<'_>) -> Result<String, WsmanError> {
    reference_id(&method_output(ex, true)?, "KeyPair")
}

fn created_certificate(ex: &Exchange<'_>) -> Result<String, WsmanError> {
    reference_id(&method_output(ex, true)?, "CreatedCertificate")
}

fn method(name: &str, decoder: fn(&Exchange<'_>) -> Result<String, WsmanError>) -> Call<String> {
    Call::new(
        SERVICE,
        Op::Invoke {
            method: name.to_string(),
        },
        decoder,
    )
}

/// GenerateKeyPair: AMT makes an RSA key pair and keeps the private key; the answer is the new
/// `AMT_PublicPrivateKeyPair`'s InstanceID.
pub fn generate_key_pair(key_length: u32) -> Call<String> {
    method("GenerateKeyPair", created_key_pair)
        .arg(Arg::text("KeyAlgorithm", RSA))
        .arg(Arg::text("KeyLength", key_length))
}

/// AddCertificate: a certificate for a key pair AMT holds (DER); the answer is its InstanceID.
pub fn add_certificate(der: &[u8]) -> Call<String> {
    method("AddCertificate", created_certificate).arg(Arg::text("CertificateBlob", b64(der)))
}

/// AddTrustedRootCertificate: a CA certificate AMT checks client certificates against (DER).
pub fn add_trusted_root_certificate(der: &[u8]) -> Call<String> {
    method("AddTrustedRootCertificate", created_certificate)
        .arg(Arg::text("CertificateBlob", b64(der)))
}

pub fn enumerate_key_pairs() -> Call<String> {
    calls::enumerate(KEY_PAIR)
}

pub fn pull_key_pairs(context: &str) -> Call<PullPage> {
    calls::pull(KEY_PAIR, context)
}

pub fn enumerate_certificates() -> Call<String> {
    calls::enumerate(CERTIFICATE)
}

pub fn pull_certificates(context: &str) -> Call<PullPage> {
    calls::pull(CERTIFICATE, context)
}

pub fn delete_certificate(instance_id: &str) -> Call<()> {
    calls::delete(
        CERTIFICATE,
        &[crate::wsman::envelope::Selector::new(
            "InstanceID",
            instance_id,
        )],
    )
}

pub fn delete_key_pair(instance_id: &str) -> Call<()> {
    calls::delete(
        KEY_PAIR,
        &[crate::wsman::envelope::Selector::new(
            "InstanceID",
            instance_id,
        )],
    )
}

/// One `AMT_PublicPrivateKeyPair`: its handle and public key (`DERKey`, PKCS#1 or SPKI DER).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPair {
    pub instance_id: String,
    pub der_key: Vec<u8>,
}

impl KeyPair {
    pub fn from_instance(i: &Instance) -> Result<KeyPair, WsmanError> {
        Ok(KeyPair {
            instance_id: i.require("InstanceID")?.to_string(),
            der_key: unb64("DERKey", i.require("DERKey")?, "base64")?,
        })
    }
}

/// One `AMT_PublicKeyCertificate` (the firmware spells the root flag `TrustedRootCertficate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    pub instance_id: String,
    pub der: Vec<u8>,
    pub trusted_root: bool,
    pub subject: String,
}

impl Certificate {
    pub fn from_instance(i: &Instance) -> Result<Certificate, WsmanError> {
        Ok(Certificate {
            instance_id: i.require("InstanceID")?.to_string(),
            der: unb64(
                "X509Certificate",
                i.require("X509Certificate")?,
                "base64 DER",
            )?,
            trusted_root: i.get_bool("TrustedRootCertficate")?.unwrap_or(false),
            subject: i.get("Subject").unwrap_or_default().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wsman::envelope::Envelope;

    fn fixture(rel: &str) -> Envelope {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/wsman-responses")
            .join(rel);
        Envelope::parse(&std::fs::read(&p).unwrap()).unwrap()
    }

    #[test]
    fn the_methods_give_the_handle_of_what_they_made() {
        let g = generate_key_pair(2048)
            .decode_envelope(&fixture("amt/publickey/management/generatekeypair.xml"))
            .unwrap();
        assert_eq!(g, "Intel(r) AMT Key: Handle: 0");
        let c = add_certificate(b"x")
            .decode_envelope(&fixture("amt/publickey/management/addcertificate.xml"))
            .unwrap();
        assert_eq!(c, "Intel(r) AMT Certificate: Handle: 1");
        let r = add_trusted_root_certificate(b"x")
            .decode_envelope(&fixture(
                "amt/publickey/management/addtrustedrootcertificate.xml",
            ))
            .unwrap();
        assert_eq!(r, "Intel(r) AMT Certificate: Handle: 2");
    }

    #[test]
    fn key_pairs_and_certificates_read_from_the_fixtures() {
        let page = pull_key_pairs("x")
            .decode_envelope(&fixture("amt/publicprivate/pull.xml"))
            .unwrap();
        let keys: Vec<KeyPair> = page
            .items
            .iter()
            .map(|i| KeyPair::from_instance(i).unwrap())
            .collect();
        assert_eq!(keys[1].instance_id, "Intel(r) AMT Key: Handle: 1");
        assert_eq!(keys[0].der_key[..4], [0x30, 0x82, 0x01, 0x0A]);
        let page = pull_certificates("x")
            .decode_envelope(&fixture("amt/publickey/certificate/pull.xml"))
            .unwrap();
        let certs: Vec<Certificate> = page
            .items
            .iter()
            .map(|i| Certificate::from_instance(i).unwrap())
            .collect();
        assert_eq!(
            certs.iter().map(|c| c.trusted_root).collect::<Vec<_>>(),
            [true, false, true]
        );
        assert!(certs[0].subject.ends_with("CN=MPSRoot-0af1d5"));
    }

    #[test]
    fn generate_key_pair_renders_as_wsman_messages_builds_it() {
        let xml = generate_key_pair(2048).render("1");
        assert!(xml.contains(
            "<h:GenerateKeyPair_INPUT xmlns:h=\"http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyManagementService\"><h:KeyAlgorithm>0</h:KeyAlgorithm><h:KeyLength>2048</h:KeyLength></h:GenerateKeyPair_INPUT>"
        ), "{xml}");
    }
}
