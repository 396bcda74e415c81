//! Loading a provisioning certificate: PKCS#12 (modern AES/PBKDF2 and legacy RC2/3DES, through
//! `p12-keystore`), PEM (certificates and an RSA private key), or base64 of a PFX, as rpc-go
//! takes it (rpc-go.md §5.5). The certificates are ordered leaf → root by issuer/subject
//! (provisioning.md §2.5); the key signs `ConfigurationNonce ‖ McNonce` (§3.1).

use std::path::Path;

use base64::Engine as _;
use x509_parser::prelude::*;

use crate::error::{AgentError, ExitCode};
use crate::secret::Secret;

/// Intel AMT activation usage (provisioning.md §2.1).
pub const AMT_ACTIVATION_OID: &str = "2.16.840.1.113741.1.2.3";
/// The subject OU that stands in for the OID (case-sensitive, §2.1).
pub const SETUP_OU: &str = "Intel(R) Client Setup Certificate";

/// The public key, as far as the rules need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA with its modulus size in bits.
    Rsa { bits: usize },
    /// EC or anything else, by its algorithm name.
    Other(String),
}

/// What the rules need to know about one certificate, read once from its DER.
#[derive(Clone, Debug)]
pub struct CertFacts {
    pub der: Vec<u8>,
    /// RFC 4514-style text, e.g. `CN=amt.example.com, O=Example`.
    pub subject: String,
    pub issuer: String,
    pub subject_raw: Vec<u8>,
    pub issuer_raw: Vec<u8>,
    pub common_name: Option<String>,
    pub organizational_units: Vec<String>,
    pub has_extensions: bool,
    /// `basicConstraints`: `Some((cA, pathLen))` when present.
    pub basic_constraints: Option<(bool, Option<u32>)>,
    /// `keyUsage` when present: (keyCertSign, digitalSignature).
    pub key_usage: Option<(bool, bool)>,
    /// `extendedKeyUsage` OIDs when present (dotted), serverAuth included as 1.3.6.1.5.5.7.3.1.
    pub extended_key_usage: Option<Vec<String>>,
    /// Signature algorithm OID (dotted) and our name for its digest.
    pub signature_oid: String,
    pub signature_digest: &'static str,
    pub key: KeyKind,
    /// The DER `RSAPublicKey` (SubjectPublicKeyInfo's bit string).
    pub public_key_bits: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
}

pub const SERVER_AUTH_OID: &str = "1.3.6.1.5.5.7.3.1";

fn digest_name(oid: &str) -> &'static str {
    match oid {
        // sha1WithRSAEncryption, ecdsa-with-SHA1, dsa-with-sha1
        "1.2.840.113549.1.1.5" | "1.2.840.10045.4.1" | "1.2.840.10040.4.3" => "SHA-1",
        "1.2.840.113549.1.1.4" => "MD5",
        "1.2.840.113549.1.1.11" | "1.2.840.10045.4.3.2" => "SHA-256",
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => "SHA-384",
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => "SHA-512",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS",
        _ => "unknown",
    }
}

impl CertFacts {
    pub fn from_der(der: &[u8]) -> Result<CertFacts, String> {
        let (_, c) =
            X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let subject = c.subject().to_string();
        let issuer = c.issuer().to_string();
        let common_name = c
            .subject()
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .map(str::to_string);
        let organizational_units = c
            .subject()
            .iter_organizational_unit()
            .filter_map(|a| a.as_str().ok().map(str::to_string))
            .collect();
        let basic_constraints = match c.basic_constraints() {
            Ok(Some(b)) => Some((b.value.ca, b.value.path_len_constraint)),
            _ => None,
        };
        let key_usage = match c.key_usage() {
            Ok(Some(k)) => Some((k.value.key_cert_sign(), k.value.digital_signature())),
            _ => None,
        };
        let extended_key_usage = match c.extended_key_usage() {
            Ok(Some(e)) => {
                let mut v: Vec<String> = e.value.other.iter().map(|o| o.to_id_string()).collect();
                if e.value.server_auth {
                    v.push(SERVER_AUTH_OID.into());
                }
                if e.value.client_auth {
                    v.push("1.3.6.1.5.5.7.3.2".into());
                }
                Some(v)
            }
            _ => None,
        };
        let signature_oid = c.signature_algorithm.algorithm.to_id_string();
        let key = match c.public_key().parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(k)) => Rsa { bits: k.key_size() },
            Ok(x509_parser::public_key::PublicKey::EC(_)) => KeyKind::Other("EC".into()),
            Ok(_) | Err(_) => KeyKind::Other(c.public_key().algorithm.algorithm.to_id_string()),
        };
        use KeyKind::Rsa;
        Ok(CertFacts {
            der: der.to_vec(),
            subject_raw: c.subject().as_raw().to_vec(),
            issuer_raw: c.issuer().as_raw().to_vec(),
            subject,
            issuer,
            common_name,
            organizational_units,
            has_extensions: !c.extensions().is_empty(),
            basic_constraints,
            key_usage,
            extended_key_usage,
            signature_digest: digest_name(&signature_oid),
            signature_oid,
            key,
            public_key_bits: c.public_key().subject_public_key.data.to_vec(),
            not_before: c.validity().not_before.timestamp(),
            not_after: c.validity().not_after.timestamp(),
        })
    }

    /// Subject equals issuer (the DER names).
    pub fn is_self_issued(&self) -> bool {
        self.subject_raw == self.issuer_raw
    }

    /// Whether `issuer`'s key verifies this certificate's signature. Small keys and SHA-1 are
    /// accepted here (ring's legacy algorithms): the linking question is separate from the
    /// AMT-KEY-SIZE and AMT-SIG-SHA1 rules, which say what AMT thinks of them.
    pub fn signed_by(&self, issuer: &CertFacts) -> bool {
        use ring::signature as sig;
        let (Ok((_, me)), Ok((_, by))) = (
            X509Certificate::from_der(&self.der),
            X509Certificate::from_der(&issuer.der),
        ) else {
            return false;
        };
        let algs: &[&dyn sig::VerificationAlgorithm] = match self.signature_oid.as_str() {
            "1.2.840.113549.1.1.5" => &[&sig::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY],
            "1.2.840.113549.1.1.11" => &[&sig::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY],
            "1.2.840.113549.1.1.12" => &[&sig::RSA_PKCS1_2048_8192_SHA384],
            "1.2.840.113549.1.1.13" => &[&sig::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY],
            "1.2.840.10045.4.3.2" => &[&sig::ECDSA_P256_SHA256_ASN1, &sig::ECDSA_P384_SHA256_ASN1],
            "1.2.840.10045.4.3.3" => &[&sig::ECDSA_P384_SHA384_ASN1, &sig::ECDSA_P256_SHA384_ASN1],
            _ => return me.verify_signature(Some(by.public_key())).is_ok(),
        };
        let key = by.public_key().subject_public_key.data.as_ref();
        let tbs = me.tbs_certificate.as_ref();
        let signature = me.signature_value.data.as_ref();
        algs.iter().any(|a| {
            sig::UnparsedPublicKey::new(*a, key)
                .verify(tbs, signature)
                .is_ok()
        })
    }

    /// How the certificate is named in diagnostics: its subject.
    pub fn name(&self) -> &str {
        if self.subject.is_empty() {
            "(empty subject)"
        } else {
            &self.subject
        }
    }
}

/// The leaf's private key (RSA), ready to sign.
pub struct SigningKey {
    pair: ring::signature::RsaKeyPair,
    /// The key as read (PKCS#8, or PKCS#1 when `pkcs8` is false): for mutual TLS (AMT 19+).
    der: Vec<u8>,
    pkcs8: bool,
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        // Best effort: do not leave the key bytes in freed memory.
        self.der.fill(0);
        std::hint::black_box(&self.der);
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

/// The digest an AdminSetup signature uses (`SigningAlgorithm` 2 or 3, provisioning.md §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningDigest {
    Sha256,
    Sha384,
}

impl SigningDigest {
    pub fn signing_algorithm(self) -> u32 {
        match self {
            SigningDigest::Sha256 => crate::wsman::classes::host_based_setup::RSA_SHA2_256,
            SigningDigest::Sha384 => crate::wsman::classes::host_based_setup::RSA_SHA2_384,
        }
    }
}

impl SigningKey {
    /// PKCS#8 or PKCS#1 (`RSA PRIVATE KEY`) DER.
    pub fn from_der(der: &[u8]) -> Result<SigningKey, String> {
        let (pair, pkcs8) = match ring::signature::RsaKeyPair::from_pkcs8(der) {
            Ok(p) => (p, true),
            Err(_) => (
                ring::signature::RsaKeyPair::from_der(der).map_err(|e| {
                    format!(
                        "not a usable RSA private key ({e}); AMT signs with RSA 2048–8192 bits only"
                    )
                })?,
                false,
            ),
        };
        Ok(SigningKey {
            pair,
            der: der.to_vec(),
            pkcs8,
        })
    }

    /// The key for a TLS client certificate (AMT 19+ local ACM, rpc-go.md §5.4 step 4).
    pub fn tls_key(&self) -> rustls_pki_types::PrivateKeyDer<'static> {
        if self.pkcs8 {
            rustls_pki_types::PrivateKeyDer::Pkcs8(self.der.clone().into())
        } else {
            rustls_pki_types::PrivateKeyDer::Pkcs1(self.der.clone().into())
        }
    }

    /// DER `RSAPublicKey`, comparable with [`CertFacts::public_key_bits`].
    pub fn public_key(&self) -> &[u8] {
        use ring::signature::KeyPair as _;
        self.pair.public_key().as_ref()
    }

    /// RSA PKCS#1 v1.5 over the digest of `msg`.
    pub fn sign(&self, digest: SigningDigest, msg: &[u8]) -> Result<Vec<u8>, String> {
        let alg = match digest {
            SigningDigest::Sha256 => &ring::signature::RSA_PKCS1_SHA256,
            SigningDigest::Sha384 => &ring::signature::RSA_PKCS1_SHA384,
        };
        let mut sig = vec![0u8; self.pair.public().modulus_len()];
        self.pair
            .sign(alg, &ring::rand::SystemRandom::new(), msg, &mut sig)
            .map_err(|_| "RSA signing failed".to_string())?;
        Ok(sig)
    }
}

/// A provisioning certificate as loaded: certificates ordered leaf → root where they link, the
/// ones that do not link kept apart, and the key.
#[derive(Debug)]
pub struct ProvisioningCert {
    /// Leaf first, then each issuer found by subject name, ending at a self-signed root when one
    /// is present.
    pub chain: Vec<CertFacts>,
    /// Certificates in the file that are not on the leaf's path.
    pub unrelated: Vec<CertFacts>,
    /// The private key, when it could be read: `Ok` usable, `Err` why not.
    pub key: Option<Result<SigningKey, String>>,
    /// `Some(who)` when another party holds the private key and signs (RPS, for the chain it
    /// relays): the agent never had the key, so no rule about it applies.
    pub key_held_by: Option<&'static str>,
    /// What the file was (`PKCS#12`, `PEM`, `base64 PKCS#12`).
    pub format: &'static str,
}

impl ProvisioningCert {
    /// The private key, or why it cannot be used for `purpose` (`unusable` is the exit code
    /// when a key is there but unreadable or not RSA; no key at all is 125).
    pub fn usable_key(&self, purpose: &str, unusable: ExitCode) -> Result<&SigningKey, AgentError> {
        match &self.key {
            Some(Ok(k)) => Ok(k),
            Some(Err(e)) => Err(err(unusable, format!("{purpose}: {e}"))),
            None => Err(err(
                ExitCode::ProvisioningCertNoKey,
                "the provisioning certificate file holds no private key",
            )),
        }
    }
}

fn err(exit: ExitCode, msg: impl Into<String>) -> AgentError {
    AgentError::new(exit, msg)
}

/// Reads FILE, or, when no such file exists and the text looks like base64, the text itself as a
/// base64 PKCS#12 (rpc-go's `--provisioningCert` takes base64).
pub fn load(
    source: &str,
    password: &dyn Fn() -> Result<Secret, AgentError>,
) -> Result<ProvisioningCert, AgentError> {
    let path = Path::new(source);
    let bytes = if path.exists() {
        std::fs::read(path).map_err(|e| {
            err(
                ExitCode::FailedReadingConfiguration,
                format!("cannot read {}: {e}", path.display()),
            )
        })?
    } else {
        let b64 = base64::engine::general_purpose::STANDARD.decode(source.trim());
        return match b64 {
            Ok(b) if source.len() > 64 => from_pkcs12(&b, password, "base64 PKCS#12"),
            _ => {
                let shown: String = source.chars().take(60).collect();
                Err(err(
                    ExitCode::FailedReadingConfiguration,
                    format!("{shown}: no such file, nor base64 of a PFX"),
                )
                .help("pass a .pfx/.p12 file, a PEM file with the chain and the key, or base64 of a PFX"))
            }
        };
    };
    from_bytes(&bytes, password)
}

/// Detects the encoding: PEM armour, base64 text of a PFX, or binary PKCS#12.
pub fn from_bytes(
    bytes: &[u8],
    password: &dyn Fn() -> Result<Secret, AgentError>,
) -> Result<ProvisioningCert, AgentError> {
    if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return from_pem(bytes);
    }
    if bytes.first() == Some(&0x30) {
        // DER: a PFX, or a single certificate.
        if X509Certificate::from_der(bytes).is_ok() {
            return assemble(vec![bytes.to_vec()], None, "DER certificate");
        }
        return from_pkcs12(bytes, password, "PKCS#12");
    }
    let text: String = String::from_utf8_lossy(bytes)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let b = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| {
            err(
                ExitCode::ProvisioningCertBase64,
                format!("the file is not PKCS#12, PEM or base64 of a PFX: {e}"),
            )
        })?;
    from_pkcs12(&b, password, "base64 PKCS#12")
}

pub fn from_pkcs12(
    der: &[u8],
    password: &dyn Fn() -> Result<Secret, AgentError>,
    format: &'static str,
) -> Result<ProvisioningCert, AgentError> {
    let pw = password()?;
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(der, pw.expose()).map_err(|e| {
        match e {
            p12_keystore::error::Error::MacError(_) | p12_keystore::error::Error::UnpadError => err(
                ExitCode::ProvisioningCertPassword,
                "the provisioning certificate password is incorrect (the PKCS#12 integrity check failed)",
            )
            .help("set PROVISIONING_CERT_PASSWORD, or pass --provisioning-cert-password-file FILE"),
            e => err(
                ExitCode::ProvisioningCertInvalid,
                format!("the provisioning certificate is not a readable PKCS#12 file: {e}"),
            )
            .help("re-export it: openssl pkcs12 -export -inkey leaf.key -in leaf.crt -certfile chain.crt -out prov.pfx"),
        }
    })?;
    let certs = archive
        .certs
        .iter()
        .map(|b| b.cert.as_der().to_vec())
        .collect();
    let key = archive.keys.first().map(|k| k.key.as_der().to_vec());
    assemble(certs, key, format)
}

pub fn from_pem(bytes: &[u8]) -> Result<ProvisioningCert, AgentError> {
    let mut certs = Vec::new();
    let mut key = None;
    for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
        let pem = pem.map_err(|e| {
            err(
                ExitCode::ProvisioningCertInvalid,
                format!("unreadable PEM: {e}"),
            )
        })?;
        match pem.label.as_str() {
            "CERTIFICATE" => certs.push(pem.contents),
            "PRIVATE KEY" | "RSA PRIVATE KEY" if key.is_none() => key = Some(pem.contents),
            "ENCRYPTED PRIVATE KEY" => {
                return Err(err(
                    ExitCode::ProvisioningCertInvalid,
                    "the PEM private key is encrypted",
                )
                .help("export a PFX instead (openssl pkcs12 -export …), or decrypt the key: openssl pkey -in key.pem -out plain.pem"))
            }
            _ => {}
        }
    }
    assemble(certs, key, "PEM")
}

fn assemble(
    ders: Vec<Vec<u8>>,
    key_der: Option<Vec<u8>>,
    format: &'static str,
) -> Result<ProvisioningCert, AgentError> {
    if ders.is_empty() {
        return Err(err(
            ExitCode::ProvisioningCertNoCertificates,
            "the provisioning certificate file holds no certificates",
        ));
    }
    let mut certs = Vec::new();
    for d in &ders {
        let c = CertFacts::from_der(d).map_err(|e| err(ExitCode::ProvisioningCertInvalid, e))?;
        // PKCS#12 files often repeat a certificate; keep one.
        if !certs.iter().any(|x: &CertFacts| x.der == c.der) {
            certs.push(c);
        }
    }
    let key = key_der.map(|k| SigningKey::from_der(&k));
    let (chain, unrelated) = order(certs, key.as_ref().and_then(|k| k.as_ref().ok()));
    Ok(ProvisioningCert {
        chain,
        unrelated,
        key,
        key_held_by: None,
        format,
    })
}

/// Orders leaf → root by issuer/subject. The leaf is the certificate whose key is the private
/// key's; without a usable key, the one certificate that issued none of the others.
pub fn order(
    mut certs: Vec<CertFacts>,
    key: Option<&SigningKey>,
) -> (Vec<CertFacts>, Vec<CertFacts>) {
    let by_key = key.and_then(|k| {
        certs
            .iter()
            .position(|c| c.public_key_bits == k.public_key())
    });
    let leaf = by_key.or_else(|| {
        let issued_nothing: Vec<usize> = (0..certs.len())
            .filter(|&i| {
                !certs.iter().enumerate().any(|(j, o)| {
                    j != i && o.issuer_raw == certs[i].subject_raw && !o.is_self_issued()
                })
            })
            .collect();
        issued_nothing.first().copied()
    });
    let Some(leaf) = leaf else {
        return (Vec::new(), certs);
    };
    let mut chain = vec![certs.remove(leaf)];
    loop {
        let last = chain.last().expect("non-empty");
        if last.is_self_issued() {
            break;
        }
        // Prefer the issuer whose key verifies the signature (cross-signed duplicates share names).
        let candidates: Vec<usize> = (0..certs.len())
            .filter(|&i| certs[i].subject_raw == last.issuer_raw)
            .collect();
        let pick = candidates
            .iter()
            .copied()
            .find(|&i| last.signed_by(&certs[i]))
            .or_else(|| candidates.first().copied());
        match pick {
            Some(i) => chain.push(certs.remove(i)),
            None => break,
        }
    }
    (chain, certs)
}

/// Hex, upper case, without and with colons (as AMT's `amtinfo --cert` and MEBx show hashes).
pub fn fingerprints(der: &[u8]) -> Vec<(&'static str, String, String)> {
    use ring::digest;
    [
        ("SHA-1", &digest::SHA1_FOR_LEGACY_USE_ONLY),
        ("SHA-256", &digest::SHA256),
        ("SHA-384", &digest::SHA384),
    ]
    .into_iter()
    .map(|(name, alg)| {
        let d = digest::digest(alg, der);
        let plain: String = d.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        let colons = d
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        (name, plain, colons)
    })
    .collect()
}
