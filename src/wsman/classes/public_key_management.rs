//! AMT's certificate store: `AMT_PublicKeyManagementService` (AddCertificate,
//! AddTrustedRootCertificate, AddKey, GenerateKeyPair) and the `AMT_PublicPrivateKeyPair` instances it holds (the
//! certificates themselves are read with [`super::public_key`]). Shapes: wsman-messages'
//! `PublicKeyManagementService` and the wsman-responses fixtures `amt/publickey/management/`,
//! `amt/publicprivate/pull.xml`; rpc-go's 802.1X flow (`internal/certs`) uses the same calls.

use crate::secret::Secret;
use crate::wsman::calls::{
    self, method_output, Arg, Call, Exchange, Instance, Op, PullPage, WsmanError,
};
use crate::wsman::envelope::Selector;

pub const SERVICE: &str = "AMT_PublicKeyManagementService";
pub const KEY_PAIR: &str = "AMT_PublicPrivateKeyPair";
pub const CERTIFICATE: &str = super::public_key::CERTIFICATE;

/// `KeyAlgorithm` 0: RSA, the only value (go-wsman `publickey.RSA`).
pub const RSA: u32 = 0;
/// The key length RPS and rpc-go generate.
pub const KEY_LENGTH_2048: u32 = 2048;

/// The `InstanceID` selector of the reference a method created (`CreatedCertificate`,
/// `CreatedKey`): the new handle.
fn created_handle(ex: &Exchange<'_>, output: &'static str) -> Result<String, WsmanError> {
    let out = method_output(ex, true)?;
    let reference = out
        .properties
        .iter()
        .find(|p| p.name == output)
        .ok_or_else(|| WsmanError::Missing(format!("{}_OUTPUT.{output}", ex.op.name())))?;
    match &reference.value {
        calls::PropertyValue::Element(e) => e
            .find("Selector")
            .map(|s| s.text().to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| WsmanError::Missing(format!("{output}'s InstanceID"))),
        calls::PropertyValue::Text(_) => Err(WsmanError::Missing(format!("{output}'s reference"))),
    }
}

/// `AddTrustedRootCertificate(CertificateBlob)`: a CA certificate (base64 DER) AMT will trust;
/// answers its handle. 2058 DUPLICATE when AMT holds it already.
pub fn add_trusted_root_certificate(der_b64: &str) -> Call<String> {
    Call::new(
        SERVICE,
        Op::Invoke {
            method: "AddTrustedRootCertificate".into(),
        },
        |ex| created_handle(ex, "CreatedCertificate"),
    )
    .arg(Arg::text("CertificateBlob", der_b64))
}

/// `AddCertificate(CertificateBlob)`: a client certificate whose private key AMT holds.
pub fn add_certificate(der_b64: &str) -> Call<String> {
    Call::new(
        SERVICE,
        Op::Invoke {
            method: "AddCertificate".into(),
        },
        |ex| created_handle(ex, "CreatedCertificate"),
    )
    .arg(Arg::text("CertificateBlob", der_b64))
}

/// `AddKey(KeyBlob)`: an RSA private key, base64 of its PKCS#1 DER; a secret until rendered.
pub fn add_key(key_b64: &Secret) -> Call<String> {
    Call::new(
        SERVICE,
        Op::Invoke {
            method: "AddKey".into(),
        },
        |ex| created_handle(ex, "CreatedKey"),
    )
    .arg(Arg::secret("KeyBlob", key_b64))
}

/// `GenerateKeyPair(KeyAlgorithm, KeyLength)`: AMT makes an RSA key pair and keeps the private
/// key; answers the new `AMT_PublicPrivateKeyPair`'s handle (configure tls, RPS's TLS flow).
pub fn generate_key_pair(key_length: u32) -> Call<String> {
    Call::new(
        SERVICE,
        Op::Invoke {
            method: "GenerateKeyPair".into(),
        },
        |ex| created_handle(ex, "KeyPair"),
    )
    .arg(Arg::text("KeyAlgorithm", RSA))
    .arg(Arg::text("KeyLength", key_length))
}

pub fn enumerate_keys() -> Call<String> {
    calls::enumerate(KEY_PAIR)
}

pub fn pull_keys(context: &str) -> Call<PullPage> {
    calls::pull(KEY_PAIR, context)
}

pub fn delete_key(handle: &str) -> Call<()> {
    calls::delete(KEY_PAIR, &[Selector::new("InstanceID", handle)])
}

pub fn delete_certificate(handle: &str) -> Call<()> {
    calls::delete(CERTIFICATE, &[Selector::new("InstanceID", handle)])
}

/// A key pair as AMT lists it: its handle and public key (`DERKey`, base64 DER `RSAPublicKey`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPair {
    pub instance_id: String,
    pub der_key: String,
}

impl KeyPair {
    pub fn from_instance(i: &Instance) -> KeyPair {
        KeyPair {
            instance_id: i.get("InstanceID").unwrap_or_default().to_string(),
            der_key: i.get("DERKey").unwrap_or_default().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/wsman-responses/amt/publickey/management/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn the_created_handles_decode_from_the_fixtures() {
        assert_eq!(
            add_certificate("x")
                .decode(200, &fixture("addcertificate.xml"))
                .unwrap(),
            "Intel(r) AMT Certificate: Handle: 1"
        );
        assert_eq!(
            add_trusted_root_certificate("x")
                .decode(200, &fixture("addtrustedrootcertificate.xml"))
                .unwrap(),
            "Intel(r) AMT Certificate: Handle: 2"
        );
        assert_eq!(
            add_key(&Secret::new("k"))
                .decode(200, &fixture("addkey.xml"))
                .unwrap(),
            "Intel(r) AMT Key: Handle: 1"
        );
        assert_eq!(
            generate_key_pair(KEY_LENGTH_2048)
                .decode(200, &fixture("generatekeypair.xml"))
                .unwrap(),
            "Intel(r) AMT Key: Handle: 0"
        );
    }

    #[test]
    fn generate_key_pair_renders_as_wsman_messages_builds_it() {
        let xml = generate_key_pair(2048).render("1");
        assert!(xml.contains(
            "<h:GenerateKeyPair_INPUT xmlns:h=\"http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyManagementService\"><h:KeyAlgorithm>0</h:KeyAlgorithm><h:KeyLength>2048</h:KeyLength></h:GenerateKeyPair_INPUT>"
        ), "{xml}");
    }

    #[test]
    fn add_key_is_wsman_messages_bytes_and_describes_without_the_key() {
        let call = add_key(&Secret::new("S0VZ"));
        let xml = call.render("0");
        assert!(xml.contains("<Body><h:AddKey_INPUT xmlns:h=\"http://intel.com/wbem/wscim/1/amt-schema/1/AMT_PublicKeyManagementService\"><h:KeyBlob>S0VZ</h:KeyBlob></h:AddKey_INPUT></Body>"), "{xml}");
        assert_eq!(
            call.describe(),
            "AMT_PublicKeyManagementService.AddKey(KeyBlob=***)"
        );
    }
}
