//! Certificates for the key pair AMT generated (`configure tls`): AMT keeps the private key
//! (`AMT_PublicKeyManagementService.GenerateKeyPair`) and shows only the public half
//! (`AMT_PublicPrivateKeyPair.DERKey`), so the certificate is made here for that public key and
//! signed by a CA key the agent holds:
//!
//! * by default a **throwaway CA**: a P-256 key made for this one certificate, dropped as soon as
//!   it has signed (rpc-go and RPS do the same with their own root). Nothing else can ever be
//!   signed by it; the agent trusts the certificate itself (a pin), not the CA;
//! * or the admin's CA: its certificate and private key from files (PEM or DER; the key PKCS#8,
//!   PKCS#1 RSA or SEC1 EC, or encrypted PKCS#8 with a password). The key is a secret: it never
//!   leaves this module's [`Ca`], whose `Debug` prints no key.
//!
//! AMT's `DERKey` is a PKCS#1 RSAPublicKey on the firmware the fixtures come from; rpc-go also
//! accepts a SubjectPublicKeyInfo ("AMT uses different formats on different versions"): both are
//! read here. Signing is rcgen on ring; nothing here does I/O (the caller reads the files).

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::*;

use super::der;
use crate::secret::Secret;

/// Why a certificate for AMT could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    #[error("AMT's public key (DERKey) is not an RSA key this agent can read: {0}")]
    AmtKey(String),
    #[error("the CA certificate {file}: {reason}")]
    CaCertificate { file: String, reason: String },
    #[error("the CA key {file}: {reason}")]
    CaKey { file: String, reason: String },
    #[error("the CA key {file} is encrypted and needs its password")]
    CaKeyPasswordMissing { file: String },
    #[error("the CA key {file} could not be decrypted: wrong password, or an unsupported cipher")]
    CaKeyPassword { file: String },
    #[error("the CA key does not belong to the CA certificate ({subject})")]
    CaMismatch { subject: String },
    #[error("signing the certificate failed: {0}")]
    Sign(String),
}

impl IssueError {
    pub fn help(&self) -> &'static str {
        match self {
            IssueError::AmtKey(_) => {
                "AMT generated a key this agent cannot read; capture the exchange (-vvv) and report it"
            }
            IssueError::CaCertificate { .. } => {
                "give the CA's certificate (PEM or DER) with CA:TRUE in basicConstraints, and keyCertSign if it has a keyUsage"
            }
            IssueError::CaKey { .. } => {
                "give the CA's private key as PEM (PRIVATE KEY, RSA PRIVATE KEY, EC PRIVATE KEY or ENCRYPTED PRIVATE KEY); \
                 a legacy OpenSSL-encrypted key converts with: openssl pkcs8 -topk8 -v2 aes-256-cbc -in ca.key -out ca.p8.pem"
            }
            IssueError::CaKeyPasswordMissing { .. } => {
                "set TLS_CA_KEY_PASSWORD, or pass --ca-key-password-file FILE (mode 600)"
            }
            IssueError::CaKeyPassword { .. } => {
                "check the password; the key must be PBES2 (openssl pkcs8 -topk8 -v2 aes-256-cbc)"
            }
            IssueError::CaMismatch { .. } => {
                "pass the private key of that CA certificate (openssl x509 -noout -pubkey -in ca.pem and openssl pkey -pubout -in ca.key must print the same key)"
            }
            IssueError::Sign(_) => "retry; if it persists, report it with a trace (-vvv)",
        }
    }
}

/// AMT's RSA public key, from `AMT_PublicPrivateKeyPair.DERKey`.
#[derive(Clone, PartialEq, Eq)]
pub struct AmtPublicKey {
    /// PKCS#1 RSAPublicKey.
    pkcs1: Vec<u8>,
    bits: usize,
}

impl fmt::Debug for AmtPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AmtPublicKey(RSA {} bits)", self.bits)
    }
}

fn rsa_modulus_bits(pkcs1: &[u8]) -> Option<usize> {
    let (rest, seq) = x509_parser::der_parser::der::parse_der(pkcs1).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let fields = seq.as_sequence().ok()?;
    if fields.len() != 2 {
        return None;
    }
    let n = fields[0].as_bigint().ok()?;
    fields[1].as_bigint().ok()?;
    Some(n.bits() as usize)
}

impl AmtPublicKey {
    /// From `DERKey` (base64-decoded): a PKCS#1 RSAPublicKey or a SubjectPublicKeyInfo.
    pub fn from_der_key(der_key: &[u8]) -> Result<AmtPublicKey, IssueError> {
        if let Some(bits) = rsa_modulus_bits(der_key) {
            return Ok(AmtPublicKey {
                pkcs1: der_key.to_vec(),
                bits,
            });
        }
        let (_, spki) = SubjectPublicKeyInfo::from_der(der_key)
            .map_err(|e| IssueError::AmtKey(format!("neither PKCS#1 nor SPKI: {e}")))?;
        let rsa_oid = x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION;
        if spki.algorithm.algorithm != rsa_oid {
            return Err(IssueError::AmtKey(format!(
                "algorithm {} is not rsaEncryption",
                spki.algorithm.algorithm
            )));
        }
        let pkcs1 = spki.subject_public_key.data.to_vec();
        let bits = rsa_modulus_bits(&pkcs1)
            .ok_or_else(|| IssueError::AmtKey("the SPKI holds no RSAPublicKey".into()))?;
        Ok(AmtPublicKey { pkcs1, bits })
    }

    /// The key a certificate (DER) holds, if RSA.
    pub fn of_certificate(cert_der: &[u8]) -> Option<AmtPublicKey> {
        let (_, c) = X509Certificate::from_der(cert_der).ok()?;
        AmtPublicKey::from_der_key(c.public_key().raw).ok()
    }

    pub fn bits(&self) -> usize {
        self.bits
    }

    /// The PKCS#1 RSAPublicKey.
    pub fn rsa_public_key(&self) -> &[u8] {
        &self.pkcs1
    }
}

impl rcgen::PublicKeyData for AmtPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.pkcs1
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

/// The CA that signs AMT's certificate: its certificate and key. The key never prints.
pub struct Ca {
    certificate: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    subject: String,
    not_after: ::time::OffsetDateTime,
    throwaway: bool,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("subject", &self.subject)
            .field("throwaway", &self.throwaway)
            .field("key", &"***")
            .finish()
    }
}

fn random_serial() -> SerialNumber {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut b);
    b[0] &= 0x7F;
    b[0] |= 0x01;
    SerialNumber::from_slice(&b)
}

impl Ca {
    /// A throwaway CA: a fresh P-256 key and a self-signed CA certificate for it, valid from a
    /// day ago for 20 years (AMT's clock may lag the host's). Dropped with the value.
    pub fn throwaway(common_name: &str) -> Result<Ca, IssueError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| IssueError::Sign(e.to_string()))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "amt-agent");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = ::time::OffsetDateTime::now_utc();
        params.not_before = now - ::time::Duration::days(1);
        params.not_after = now + ::time::Duration::days(20 * 365);
        params.serial_number = Some(random_serial());
        let cert = params
            .self_signed(&key)
            .map_err(|e| IssueError::Sign(e.to_string()))?;
        let not_after = params.not_after;
        Ok(Ca {
            certificate: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
            subject: format!("O=amt-agent, CN={common_name}"),
            not_after,
            throwaway: true,
        })
    }

    /// Whether a key file's bytes hold an encrypted key (so a password must be found first).
    pub fn key_is_encrypted(key_bytes: &[u8]) -> bool {
        let text = String::from_utf8_lossy(key_bytes);
        text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
            || text.contains("Proc-Type: 4,ENCRYPTED")
    }

    /// The admin's CA from its certificate and key, as read from files (see the module docs for
    /// formats); `cert_name` and `key_name` name the files in errors.
    pub fn from_bytes(
        cert_bytes: &[u8],
        cert_name: &str,
        key_bytes: &[u8],
        key_name: &str,
        password: Option<&Secret>,
    ) -> Result<Ca, IssueError> {
        let cert_err = |reason: String| IssueError::CaCertificate {
            file: cert_name.to_string(),
            reason,
        };
        let cert_der = certificate_der(cert_bytes).map_err(cert_err)?;
        let (_, c) = X509Certificate::from_der(&cert_der)
            .map_err(|e| cert_err(format!("not an X.509 certificate: {e}")))?;
        let is_ca = c
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|b| b.value.ca);
        if !is_ca {
            return Err(cert_err(
                "it is not a CA (no basicConstraints CA:TRUE)".into(),
            ));
        }
        if c.key_usage()
            .ok()
            .flatten()
            .is_some_and(|k| !k.value.key_cert_sign())
        {
            return Err(cert_err("its keyUsage lacks keyCertSign".into()));
        }
        let subject = c.subject().to_string();
        let not_after =
            ::time::OffsetDateTime::from_unix_timestamp(c.validity().not_after.timestamp())
                .map_err(|e| cert_err(format!("unusable notAfter: {e}")))?;
        let pkcs8 = private_key_pkcs8(key_bytes, key_name, password)?;
        let key = KeyPair::try_from(pkcs8.as_slice()).map_err(|e| IssueError::CaKey {
            file: key_name.to_string(),
            reason: format!(
                "not an RSA, P-256, P-384 or Ed25519 key this agent can sign with ({e})"
            ),
        })?;
        if rcgen::PublicKeyData::subject_public_key_info(&key) != c.public_key().raw {
            return Err(IssueError::CaMismatch { subject });
        }
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(cert_der.clone()), key)
            .map_err(|e| cert_err(format!("rcgen cannot use it as an issuer: {e}")))?;
        Ok(Ca {
            certificate: cert_der,
            issuer,
            subject,
            not_after,
            throwaway: false,
        })
    }

    /// The CA's certificate (DER): AMT's trusted root for client certificates when the admin gave it.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }
}

/// The first certificate of a PEM file, or the whole file as DER.
fn certificate_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if !bytes.windows(10).any(|w| w == b"-----BEGIN") {
        return Ok(bytes.to_vec());
    }
    for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
        let pem = pem.map_err(|e| format!("unreadable PEM: {e}"))?;
        if pem.label == "CERTIFICATE" {
            return Ok(pem.contents);
        }
    }
    Err("no CERTIFICATE block in it".into())
}

/// The CA key as PKCS#8 DER, decrypted with `password` when encrypted.
fn private_key_pkcs8(
    bytes: &[u8],
    name: &str,
    password: Option<&Secret>,
) -> Result<Vec<u8>, IssueError> {
    let key_err = |reason: String| IssueError::CaKey {
        file: name.to_string(),
        reason,
    };
    if String::from_utf8_lossy(bytes).contains("Proc-Type: 4,ENCRYPTED") {
        return Err(key_err(
            "it is encrypted in OpenSSL's legacy PEM format, which this agent does not read".into(),
        ));
    }
    if !bytes.windows(10).any(|w| w == b"-----BEGIN") {
        // DER: PKCS#8 or PKCS#1.
        return Ok(if ring::signature::RsaKeyPair::from_der(bytes).is_ok() {
            der::pkcs8_from_pkcs1(bytes)
        } else {
            bytes.to_vec()
        });
    }
    for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
        let pem = pem.map_err(|e| key_err(format!("unreadable PEM: {e}")))?;
        match pem.label.as_str() {
            "PRIVATE KEY" => return Ok(pem.contents),
            "RSA PRIVATE KEY" => return Ok(der::pkcs8_from_pkcs1(&pem.contents)),
            "EC PRIVATE KEY" => {
                return der::pkcs8_from_sec1(&pem.contents)
                    .ok_or_else(|| key_err("the EC key names no curve".into()))
            }
            "ENCRYPTED PRIVATE KEY" => {
                let password = password.ok_or_else(|| IssueError::CaKeyPasswordMissing {
                    file: name.to_string(),
                })?;
                let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(pem.contents.as_slice())
                    .map_err(|e| key_err(format!("not an encrypted PKCS#8 key: {e}")))?;
                let doc = info.decrypt(password.expose().as_bytes()).map_err(|_| {
                    IssueError::CaKeyPassword {
                        file: name.to_string(),
                    }
                })?;
                return Ok(doc.as_bytes().to_vec());
            }
            _ => {}
        }
    }
    Err(key_err("no private key in it".into()))
}

/// What the certificate for AMT says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafSpec {
    /// Subject CN: AMT's FQDN when it has one, else its UUID.
    pub common_name: String,
    /// subjectAltName DNS names (AMT's FQDN), possibly none.
    pub dns_names: Vec<String>,
    /// How long it is valid, from a day ago (and never beyond the CA's end).
    pub validity_days: i64,
}

/// A TLS server certificate for AMT's key, signed by `ca` (DER).
pub fn issue(amt: &AmtPublicKey, ca: &Ca, spec: &LeafSpec) -> Result<Vec<u8>, IssueError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, spec.common_name.as_str());
    params.subject_alt_names = spec
        .dns_names
        .iter()
        .filter_map(|n| n.clone().try_into().ok().map(SanType::DnsName))
        .collect();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = ::time::OffsetDateTime::now_utc();
    params.not_before = now - ::time::Duration::days(1);
    params.not_after = (now + ::time::Duration::days(spec.validity_days)).min(ca.not_after);
    params.serial_number = Some(random_serial());
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(amt, &ca.issuer)
        .map_err(|e| IssueError::Sign(e.to_string()))?;
    Ok(cert.der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RSA public key as AMT shows it (the go-wsman `publicprivate/pull.xml` fixture's first).
    const FIXTURE_DERKEY: &str = "MIIBCgKCAQEA4y00wezZ1XwsSITMvqeYf61tgfVhlGbBVwq9Au0BaEgofPFCLuWMnKaTnMhUlJEGaeB2y6F8qjId0xMwLtNY6XWhmMoCP0R+ymgClT0treqtYp2zL1QPK1R04KTgF0KZh247oQpPGnB2nIe7PKCjPaY8BfOyBC6eNLeWUVIOA5TLL0gSTuk8y3iaadKo+LoWBaH/WDrIJ21Dzn6yU3zGueA8tphPH7yXaOJuNiijOUYZjVT7J0Ia8qMxUv1CrbfL2+N0lrcCG/E4f0QF1XgoCJnwIHdYaNhWzKVhfh2TTZIxJo8bXngckNOLzdYM35hUq98CxPiMSO8+G7J8RZaobQIDAQAB";

    fn b64(s: &str) -> Vec<u8> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(s).unwrap()
    }

    fn spec() -> LeafSpec {
        LeafSpec {
            common_name: "amt.example.test".into(),
            dns_names: vec!["amt.example.test".into()],
            validity_days: 3650,
        }
    }

    #[test]
    fn amt_keys_read_as_pkcs1_and_as_spki() {
        let pkcs1 = b64(FIXTURE_DERKEY);
        let k = AmtPublicKey::from_der_key(&pkcs1).unwrap();
        assert_eq!(k.bits(), 2048);
        let spki = der::spki_from_rsa_public(&pkcs1);
        assert_eq!(AmtPublicKey::from_der_key(&spki).unwrap(), k);
        assert!(AmtPublicKey::from_der_key(b"\x30\x03\x02\x01\x01").is_err());
    }

    #[test]
    fn the_certificate_carries_amts_key_and_verifies_under_the_throwaway_ca() {
        let k = AmtPublicKey::from_der_key(&b64(FIXTURE_DERKEY)).unwrap();
        let ca = Ca::throwaway("amt-agent TLS for test").unwrap();
        let leaf = issue(&k, &ca, &spec()).unwrap();
        let (_, c) = X509Certificate::from_der(&leaf).unwrap();
        assert_eq!(
            c.public_key().subject_public_key.data.as_ref(),
            k.rsa_public_key()
        );
        assert_eq!(AmtPublicKey::of_certificate(&leaf).unwrap(), k);
        let (_, root) = X509Certificate::from_der(ca.certificate_der()).unwrap();
        c.verify_signature(Some(root.public_key())).unwrap();
        assert_eq!(c.issuer(), root.subject());
        assert!(c
            .extended_key_usage()
            .unwrap()
            .is_some_and(|e| e.value.server_auth));
        assert!(!format!("{ca:?}").contains("PRIVATE"));
    }

    #[test]
    fn an_admin_ca_signs_with_its_key_and_a_wrong_key_or_a_leaf_is_refused() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, "Corp TLS CA");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let cert = p.self_signed(&key).unwrap();
        let ca = Ca::from_bytes(
            cert.pem().as_bytes(),
            "ca.pem",
            key.serialize_pem().as_bytes(),
            "ca.key",
            None,
        )
        .unwrap();
        let k = AmtPublicKey::from_der_key(&b64(FIXTURE_DERKEY)).unwrap();
        let leaf = issue(&k, &ca, &spec()).unwrap();
        let (_, c) = X509Certificate::from_der(&leaf).unwrap();
        let (_, root) = X509Certificate::from_der(cert.der()).unwrap();
        c.verify_signature(Some(root.public_key())).unwrap();

        let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let e = Ca::from_bytes(
            cert.pem().as_bytes(),
            "ca.pem",
            other.serialize_pem().as_bytes(),
            "ca.key",
            None,
        )
        .unwrap_err();
        assert!(matches!(e, IssueError::CaMismatch { .. }), "{e}");

        let mut leafp = CertificateParams::default();
        leafp.is_ca = IsCa::ExplicitNoCa;
        let leaf_cert = leafp.self_signed(&key).unwrap();
        let e = Ca::from_bytes(
            leaf_cert.pem().as_bytes(),
            "leaf.pem",
            key.serialize_pem().as_bytes(),
            "ca.key",
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a CA"), "{e}");
    }

    fn fixture(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls-ca")
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn openssl_keys_load_sec1_pkcs1_and_encrypted_pkcs8() {
        let k = AmtPublicKey::from_der_key(&b64(FIXTURE_DERKEY)).unwrap();
        for (cert, key) in [("ec-ca.pem", "ec-ca.key"), ("rsa-ca.pem", "rsa-ca.key")] {
            let ca = Ca::from_bytes(&fixture(cert), cert, &fixture(key), key, None)
                .unwrap_or_else(|e| panic!("{cert}: {e}"));
            let leaf = issue(&k, &ca, &spec()).unwrap();
            let (_, c) = X509Certificate::from_der(&leaf).unwrap();
            let (_, root) = X509Certificate::from_der(ca.certificate_der()).unwrap();
            c.verify_signature(Some(root.public_key())).unwrap();
        }
        let enc = fixture("ec-ca.enc.key");
        assert!(Ca::key_is_encrypted(&enc));
        let load = |pw: Option<&str>| {
            let s = pw.map(Secret::new);
            Ca::from_bytes(
                &fixture("ec-ca.pem"),
                "ec-ca.pem",
                &enc,
                "ec-ca.enc.key",
                s.as_ref(),
            )
        };
        assert!(matches!(
            load(None).unwrap_err(),
            IssueError::CaKeyPasswordMissing { .. }
        ));
        assert!(matches!(
            load(Some("wrong")).unwrap_err(),
            IssueError::CaKeyPassword { .. }
        ));
        assert!(load(Some("Corp-CA-key-pw1")).is_ok());
        let e = Ca::from_bytes(
            &fixture("not-a-ca.pem"),
            "not-a-ca.pem",
            &fixture("rsa-ca.key"),
            "rsa-ca.key",
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a CA"), "{e}");
    }
}
