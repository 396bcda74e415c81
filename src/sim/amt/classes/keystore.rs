//! AMT's certificate and key store: `AMT_PublicKeyManagementService` (AddCertificate,
//! AddTrustedRootCertificate, AddKey), the `AMT_PublicKeyCertificate` and `AMT_PublicPrivateKeyPair`
//! instances they create, and the rule that what a credential context uses cannot be deleted.
//! One store for every area that holds certificates: 802.1X (wired and Wi-Fi) here, TLS and
//! CIRA's MPS root elsewhere.
//!
//! Shapes from the wsman-responses fixtures (`amt/publickey/…`, `amt/publicprivate/pull.xml`):
//! handles `Intel(r) AMT Certificate: Handle: N` / `Intel(r) AMT Key: Handle: N`, DN text written
//! last RDN first without spaces (`C=unknown,O=unknown,CN=MPSRoot-0af1d5` for a DER order CN, O, C;
//! one sample, so the rule is UNCONFIRMED), the firmware's
//! spelling `TrustedRootCertficate`, `DERKey` the PKCS#1 `RSAPublicKey`.
//!
//! GenerateKeyPair (TLS, `configure tls` and RPS's TLS flow): the simulator's crypto library makes
//! no RSA keys, so a "generated" key comes from a committed pool of RSA-2048 test keys
//! (`src/sim/ca/rsa-key-pool.pem`, `make sim-rsa-pool`), one the store does not hold yet; `KeyLength`
//! other than 2048 answers 2062 (go-wsman names it InvalidKeyLength), `KeyAlgorithm` other than 0
//! (RSA) 2066 UNSUPPORTED. The private half of every key pair (generated, or given with AddKey) is
//! kept as a hidden property: the simulated TLS server signs with it, no WS-MAN answer shows it.
//! GeneratePKCS10RequestEx signs a request's CertificationRequestInfo with a key pair's private key.
//!
//! ReturnValues are PT_STATUS (provisioning.md §1.1). Which code firmware gives for each refusal
//! is unpublished; the choices are UNCONFIRMED (docs/simulator.md): 2063 INVALID_CERT for a blob
//! that is no X.509 certificate (or a "root" that cannot issue), 2062 INVALID_KEY for a key blob
//! that is no RSA private key of 2048 bits or more, 2058 DUPLICATE for a certificate or key
//! already held, 2060 PKI_MISSING_KEYS for a client certificate whose private key AMT does not
//! hold, 23 MAX_LIMIT_REACHED past [`MAX_CERTIFICATES`] / [`MAX_KEYS`].

use base64::Engine as _;
use x509_parser::prelude::*;

use std::sync::OnceLock;

use super::super::model::{epr, epr_parts, hidden, input_ref, input_text, inst, prop, Instance};
use super::rules::PutRefusal;
use crate::sim::profile::DeviceProfile;
use crate::sim::FirmwareCore;
use crate::tls::der;
use crate::wsman::envelope::{ns, Element, Param};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub(super) const SERVICE: &str = "AMT_PublicKeyManagementService";
pub(super) const CERTIFICATE: &str = "AMT_PublicKeyCertificate";
pub(super) const KEY_PAIR: &str = "AMT_PublicPrivateKeyPair";
/// The classes whose instances bind a certificate to a use (`ElementInContext`).
pub(super) const CREDENTIAL_CONTEXTS: &[&str] = &[
    "IPS_8021xCredentialContext",
    "CIM_CredentialContext",
    "AMT_TLSCredentialContext",
];

/// Store limits (UNCONFIRMED: the firmware's are unpublished).
pub const MAX_CERTIFICATES: usize = 32;
pub const MAX_KEYS: usize = 16;

pub(super) const DUPLICATE: u32 = 2058;
const PKI_MISSING_KEYS: u32 = 2060;
const INVALID_KEY: u32 = 2062;
const INVALID_CERT: u32 = 2063;
pub(super) const MAX_LIMIT_REACHED: u32 = 23;
const INVALID_PARAMETER: u32 = 36;
const UNSUPPORTED: u32 = 2066;
const NOT_FOUND: u32 = 2068;

/// The key length GenerateKeyPair makes (the one RPS and rpc-go ask for).
pub const KEY_LENGTH: &str = "2048";

/// The hidden property holding a key pair's private key (base64 PKCS#8).
fn private_key_property() -> String {
    hidden("PrivateKey")
}

const POOL_PEM: &str = include_str!("../../ca/rsa-key-pool.pem");

/// One key of the pool: PKCS#8 and its PKCS#1 RSAPublicKey.
struct PoolKey {
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

fn pool() -> &'static [PoolKey] {
    static POOL: OnceLock<Vec<PoolKey>> = OnceLock::new();
    POOL.get_or_init(|| {
        x509_parser::pem::Pem::iter_from_buffer(POOL_PEM.as_bytes())
            .map(|p| {
                let pkcs8 = p.expect("the committed key pool is PEM").contents;
                let public =
                    rsa_public_of_pkcs8(&pkcs8).expect("the committed key pool holds RSA keys");
                PoolKey { pkcs8, public }
            })
            .collect()
    })
}

/// The PKCS#1 RSAPublicKey of a PKCS#8 RSA private key.
fn rsa_public_of_pkcs8(pkcs8: &[u8]) -> Option<Vec<u8>> {
    use ring::signature::KeyPair as _;
    let k = ring::signature::RsaKeyPair::from_pkcs8(pkcs8).ok()?;
    Some(k.public_key().as_ref().to_vec())
}

/// The service instance (fixture `amt/publickey/management/get.xml`).
pub(super) fn seed(p: &mut DeviceProfile) {
    p.instances.insert(
        SERVICE.into(),
        vec![inst(&[
            ("CreationClassName", SERVICE),
            ("ElementName", "Intel(r) AMT Certificate Store Service"),
            ("EnabledDefault", "5"),
            ("EnabledState", "5"),
            ("Name", "Intel(r) AMT Public Key Management Service"),
            ("RequestedState", "12"),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "Intel(r) AMT"),
        ])],
    );
    for class in [CERTIFICATE, KEY_PAIR] {
        p.instances.entry(class.into()).or_default();
    }
}

/// A DN as AMT writes it: last RDN first, `type=value` joined by commas.
fn amt_dn(name: &X509Name<'_>) -> String {
    let mut parts: Vec<String> = Vec::new();
    for rdn in name.iter() {
        for a in rdn.iter() {
            let key = match a.attr_type().to_id_string().as_str() {
                "2.5.4.3" => "CN".to_string(),
                "2.5.4.6" => "C".to_string(),
                "2.5.4.7" => "L".to_string(),
                "2.5.4.8" => "ST".to_string(),
                "2.5.4.10" => "O".to_string(),
                "2.5.4.11" => "OU".to_string(),
                other => other.to_string(),
            };
            let value = a.as_str().map(str::to_string).unwrap_or_default();
            parts.push(format!("{key}={value}"));
        }
    }
    parts.reverse();
    parts.join(",")
}

/// The PKCS#1 `RSAPublicKey` of a certificate (SubjectPublicKeyInfo's bit string).
fn cert_public_key(c: &X509Certificate<'_>) -> Vec<u8> {
    c.public_key().subject_public_key.data.to_vec()
}

fn can_issue(c: &X509Certificate<'_>) -> bool {
    match c.basic_constraints() {
        Ok(Some(bc)) => bc.value.ca,
        // A v1 certificate (no extensions) that issued itself is a root by convention.
        Ok(None) => c.subject().as_raw() == c.issuer().as_raw(),
        Err(_) => false,
    }
}

/// A credential context: the certificate `handle` serves `providing` (an endpoint reference made
/// by [`epr`] to the settings it is bound to).
pub(super) fn credential_context(handle: &str, providing: &str) -> Instance {
    vec![
        (
            "ElementInContext".to_string(),
            epr(
                &format!("{}{CERTIFICATE}", ns::AMT_SCHEMA),
                "InstanceID",
                handle,
            ),
        ),
        ("ElementProvidingContext".to_string(), providing.to_string()),
    ]
}

/// Every certificate handle some credential context binds.
pub(super) fn certificates_in_use(fw: &FirmwareCore) -> Vec<String> {
    CREDENTIAL_CONTEXTS
        .iter()
        .filter_map(|c| fw.profile.instances.get(*c))
        .flatten()
        .filter_map(|i| prop(i, "ElementInContext").and_then(epr_parts))
        .map(|(_, _, handle)| handle.to_string())
        .collect()
}

/// The certificate instance with this handle.
pub(super) fn certificate<'a>(fw: &'a FirmwareCore, handle: &str) -> Option<&'a Instance> {
    fw.profile
        .instances
        .get(CERTIFICATE)?
        .iter()
        .find(|i| prop(i, "InstanceID") == Some(handle))
}

pub(super) fn is_trusted_root(i: &Instance) -> bool {
    prop(i, "TrustedRootCertficate") == Some("true")
}

/// Whether AMT holds the private key of this (non-root) certificate.
pub(super) fn has_private_key(fw: &FirmwareCore, cert: &Instance) -> bool {
    let Some(der) = prop(cert, "X509Certificate").and_then(|b| B64.decode(b).ok()) else {
        return false;
    };
    let Ok((_, c)) = X509Certificate::from_der(&der) else {
        return false;
    };
    let key = B64.encode(cert_public_key(&c));
    fw.profile
        .instances
        .get(KEY_PAIR)
        .is_some_and(|l| l.iter().any(|k| prop(k, "DERKey") == Some(key.as_str())))
}

fn next_handle(list: &[Instance], prefix: &str) -> String {
    (0..)
        .map(|n| format!("{prefix}{n}"))
        .find(|h| {
            !list
                .iter()
                .any(|i| prop(i, "InstanceID") == Some(h.as_str()))
        })
        .unwrap_or_default()
}

fn created(name: &str, class: &str, handle: Option<&str>, status: u32) -> Vec<Param> {
    let reference = match handle {
        Some(h) => super::super::model::epr_xml(
            &format!("{}{class}", ns::AMT_SCHEMA),
            "InstanceID",
            h,
        ),
        None => format!(
            "<b:Address>{}</b:Address><b:ReferenceParameters><c:ResourceURI></c:ResourceURI><c:SelectorSet></c:SelectorSet></b:ReferenceParameters>",
            ns::ANONYMOUS
        ),
    };
    vec![
        Param::raw(name, reference),
        Param::text("ReturnValue", status),
    ]
}

/// Adds a certificate (`root`: to the trusted roots); the new handle or the ReturnValue.
fn add_certificate(fw: &mut FirmwareCore, blob: &str, root: bool) -> Result<String, u32> {
    let der = B64.decode(blob.trim()).map_err(|_| INVALID_CERT)?;
    let (rest, c) = X509Certificate::from_der(&der).map_err(|_| INVALID_CERT)?;
    if !rest.is_empty() || (root && !can_issue(&c)) {
        return Err(INVALID_CERT);
    }
    let (subject, issuer) = (amt_dn(c.subject()), amt_dn(c.issuer()));
    let canonical = B64.encode(&der);
    let list = fw.profile.instances.entry(CERTIFICATE.into()).or_default();
    if list.iter().any(|i| {
        prop(i, "X509Certificate") == Some(canonical.as_str()) && is_trusted_root(i) == root
    }) {
        return Err(DUPLICATE);
    }
    if list.len() >= MAX_CERTIFICATES {
        return Err(MAX_LIMIT_REACHED);
    }
    let handle = next_handle(list, "Intel(r) AMT Certificate: Handle: ");
    let cert = inst(&[
        ("ElementName", "Intel(r) AMT Certificate"),
        ("InstanceID", &handle),
        ("Issuer", &issuer),
        ("ReadOnlyCertificate", "false"),
        ("Subject", &subject),
        ("TrustedRootCertficate", if root { "true" } else { "false" }),
        ("X509Certificate", &canonical),
    ]);
    if !root && !has_private_key(fw, &cert) {
        return Err(PKI_MISSING_KEYS);
    }
    fw.profile
        .instances
        .entry(CERTIFICATE.into())
        .or_default()
        .push(cert);
    Ok(handle)
}

/// Adds an RSA private key (base64 DER PKCS#1 `RSAPrivateKey`); the new handle or the ReturnValue.
fn add_key(fw: &mut FirmwareCore, blob: &str) -> Result<String, u32> {
    use ring::signature::KeyPair as _;
    let der = B64.decode(blob.trim()).map_err(|_| INVALID_KEY)?;
    // ring refuses RSA keys under 2048 bits, as firmware from AMT 11 on does.
    let pair = ring::signature::RsaKeyPair::from_der(&der).map_err(|_| INVALID_KEY)?;
    let public = B64.encode(pair.public_key().as_ref());
    let list = fw.profile.instances.entry(KEY_PAIR.into()).or_default();
    if list
        .iter()
        .any(|k| prop(k, "DERKey") == Some(public.as_str()))
    {
        return Err(DUPLICATE);
    }
    if list.len() >= MAX_KEYS {
        return Err(MAX_LIMIT_REACHED);
    }
    let handle = next_handle(list, "Intel(r) AMT Key: Handle: ");
    let mut key = inst(&[
        ("DERKey", &public),
        ("ElementName", "Intel(r) AMT Key"),
        ("InstanceID", &handle),
    ]);
    key.push((
        private_key_property(),
        B64.encode(der::pkcs8_from_pkcs1(&der)),
    ));
    list.push(key);
    Ok(handle)
}

/// GenerateKeyPair: a pool key the store does not hold (see the module docs).
fn generate_key_pair(fw: &mut FirmwareCore, input: Option<&Element>) -> Result<String, u32> {
    match input_text(input, "KeyAlgorithm").map(str::trim) {
        Some("0") => {}
        Some(a) if a.parse::<u32>().is_ok() => return Err(UNSUPPORTED),
        _ => return Err(INVALID_PARAMETER),
    }
    if input_text(input, "KeyLength").map(str::trim) != Some(KEY_LENGTH) {
        return Err(INVALID_KEY);
    }
    let list = fw.profile.instances.entry(KEY_PAIR.into()).or_default();
    if list.len() >= MAX_KEYS {
        return Err(MAX_LIMIT_REACHED);
    }
    let held = |public: &[u8]| {
        let b = B64.encode(public);
        list.iter().any(|k| prop(k, "DERKey") == Some(b.as_str()))
    };
    let key = pool()
        .iter()
        .find(|k| !held(&k.public))
        .ok_or(MAX_LIMIT_REACHED)?;
    let handle = next_handle(list, "Intel(r) AMT Key: Handle: ");
    let mut pair = inst(&[
        ("DERKey", &B64.encode(&key.public)),
        ("ElementName", "Intel(r) AMT Key"),
        ("InstanceID", &handle),
    ]);
    pair.push((private_key_property(), B64.encode(&key.pkcs8)));
    list.push(pair);
    Ok(handle)
}

/// GeneratePKCS10RequestEx: AMT signs a null-signed PKCS#10 request with a key pair it holds
/// (SigningAlgorithm 1, SHA256-RSA; 0, SHA1-RSA, is gone from CSME 18 and not simulated).
fn generate_pkcs10(p: &DeviceProfile, input: Option<&Element>) -> Vec<Param> {
    let ret = |v: u32| vec![Param::text("ReturnValue", v)];
    let Some(handle) = input_ref(input, "KeyPair") else {
        return ret(INVALID_PARAMETER);
    };
    let Some(pkcs8) = private_key(p, &handle) else {
        return ret(NOT_FOUND);
    };
    match input_text(input, "SigningAlgorithm").map(str::trim) {
        Some("1") => {}
        Some("0") => return ret(UNSUPPORTED),
        _ => return ret(INVALID_PARAMETER),
    }
    let Some(csr) =
        input_text(input, "NullSignedCertificateRequest").and_then(|b| B64.decode(b.trim()).ok())
    else {
        return ret(INVALID_PARAMETER);
    };
    let Ok((_, req)) = X509CertificationRequest::from_der(&csr) else {
        return ret(INVALID_PARAMETER);
    };
    let info = &req.certification_request_info;
    let Ok(key) = ring::signature::RsaKeyPair::from_pkcs8(&pkcs8) else {
        return ret(INVALID_KEY);
    };
    if Some(info.subject_pki.subject_public_key.data.to_vec()) != rsa_public_of_pkcs8(&pkcs8) {
        return ret(INVALID_PARAMETER);
    }
    let mut sig = vec![0u8; key.public().modulus_len()];
    let rng = ring::rand::SystemRandom::new();
    if key
        .sign(&ring::signature::RSA_PKCS1_SHA256, &rng, info.raw, &mut sig)
        .is_err()
    {
        return ret(1);
    }
    let mut bits = vec![0u8];
    bits.extend_from_slice(&sig);
    let mut body = info.raw.to_vec();
    body.extend_from_slice(der::SHA256_WITH_RSA);
    body.extend(der::tlv(der::BIT_STRING, &bits));
    vec![
        Param::text(
            "SignedCertificateRequest",
            B64.encode(der::tlv(der::SEQUENCE, &body)),
        ),
        Param::text("ReturnValue", 0),
    ]
}

fn key_pairs(p: &DeviceProfile) -> impl Iterator<Item = &Instance> {
    p.instances.get(KEY_PAIR).into_iter().flatten()
}

fn certificates(p: &DeviceProfile) -> impl Iterator<Item = &Instance> {
    p.instances.get(CERTIFICATE).into_iter().flatten()
}

/// A certificate of the store by handle: its DER.
pub fn certificate_der(p: &DeviceProfile, handle: &str) -> Option<Vec<u8>> {
    certificates(p)
        .find(|i| prop(i, "InstanceID") == Some(handle))
        .and_then(|i| B64.decode(prop(i, "X509Certificate")?).ok())
}

/// Whether the certificate with this handle is a trusted root.
pub fn is_trusted_root_handle(p: &DeviceProfile, handle: &str) -> bool {
    certificates(p).any(|i| prop(i, "InstanceID") == Some(handle) && is_trusted_root(i))
}

/// The trusted roots (DER).
pub fn trusted_roots(p: &DeviceProfile) -> Vec<Vec<u8>> {
    certificates(p)
        .filter(|i| is_trusted_root(i))
        .filter_map(|i| B64.decode(prop(i, "X509Certificate")?).ok())
        .collect()
}

/// The private key (PKCS#8) of the key pair matching a certificate (DER), if AMT holds it.
pub fn private_key_for(p: &DeviceProfile, cert_der: &[u8]) -> Option<Vec<u8>> {
    let (_, c) = X509Certificate::from_der(cert_der).ok()?;
    let public = B64.encode(cert_public_key(&c));
    key_pairs(p)
        .find(|k| prop(k, "DERKey") == Some(public.as_str()))
        .and_then(|k| prop(k, &private_key_property()))
        .and_then(|k| B64.decode(k).ok())
}

/// The private key (PKCS#8) of the key pair with this handle.
pub fn private_key(p: &DeviceProfile, handle: &str) -> Option<Vec<u8>> {
    key_pairs(p)
        .find(|k| prop(k, "InstanceID") == Some(handle))
        .and_then(|k| prop(k, &private_key_property()))
        .and_then(|k| B64.decode(k).ok())
}

/// The service's methods; `None` for another area's.
pub(super) fn invoke(
    fw: &mut FirmwareCore,
    class: &str,
    method: &str,
    input: Option<&Element>,
    _user: &str,
) -> Option<Vec<Param>> {
    if class != SERVICE {
        return None;
    }
    if method == "GeneratePKCS10RequestEx" {
        return Some(generate_pkcs10(&fw.profile, input));
    }
    let (output, result) = match method {
        "GenerateKeyPair" => ("KeyPair", generate_key_pair(fw, input)),
        "AddCertificate" | "AddTrustedRootCertificate" => (
            "CreatedCertificate",
            add_certificate(
                fw,
                input_text(input, "CertificateBlob").unwrap_or(""),
                method == "AddTrustedRootCertificate",
            ),
        ),
        "AddKey" => (
            "CreatedKey",
            add_key(fw, input_text(input, "KeyBlob").unwrap_or("")),
        ),
        _ => return None,
    };
    let target = if output == "CreatedKey" || output == "KeyPair" {
        KEY_PAIR
    } else {
        CERTIFICATE
    };
    Some(match result {
        Ok(handle) => {
            fw.changed();
            created(output, target, Some(&handle), 0)
        }
        Err(status) => {
            tracing::debug!(method, status, "keystore: refused");
            created(output, target, None, status)
        }
    })
}

/// A certificate a credential context uses cannot be deleted, nor the key of such a certificate
/// (Intel: "A certificate cannot be removed if it is referenced (for example, used by TLS,
/// 802.1X or EAC)"). The fault is UNCONFIRMED: `wsman:AccessDenied`.
pub(super) fn check_delete(
    fw: &FirmwareCore,
    class: &str,
    doomed: &Instance,
) -> Option<Result<(), PutRefusal>> {
    let r = match class {
        CERTIFICATE => match prop(doomed, "InstanceID") {
            Some(h) if certificates_in_use(fw).iter().any(|u| u == h) => Err(PutRefusal::denied(
                format!("the certificate {h} is in use (802.1X, Wi-Fi or TLS)"),
            )),
            _ => Ok(()),
        },
        KEY_PAIR => {
            let key = prop(doomed, "DERKey").unwrap_or_default();
            let in_use = certificates_in_use(fw);
            let used = in_use.iter().filter_map(|h| certificate(fw, h)).any(|c| {
                prop(c, "X509Certificate")
                    .and_then(|b| B64.decode(b).ok())
                    .and_then(|der| {
                        X509Certificate::from_der(&der)
                            .ok()
                            .map(|(_, x)| B64.encode(cert_public_key(&x)))
                    })
                    .is_some_and(|k| k == key)
            });
            if used {
                Err(PutRefusal::denied(
                    "the key belongs to a certificate in use (802.1X, Wi-Fi or TLS)",
                ))
            } else {
                Ok(())
            }
        }
        _ => return None,
    };
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{faults::FaultPlan, profile, Firmware};

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/ieee8021x/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let pem = std::fs::read(&path).unwrap();
        x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents
    }

    fn b64(name: &str) -> String {
        B64.encode(fixture(name))
    }

    fn firmware() -> Firmware {
        Firmware::new(
            profile::builtin("amt16.1").unwrap(),
            FaultPlan::new(vec![]),
            None,
        )
    }

    #[test]
    fn the_pool_holds_distinct_rsa_2048_keys() {
        let p = pool();
        assert_eq!(p.len(), 8);
        for (i, k) in p.iter().enumerate() {
            let r = ring::signature::RsaKeyPair::from_pkcs8(&k.pkcs8).unwrap();
            assert_eq!(r.public().modulus_len(), 256, "key {i} is 2048 bits");
            assert!(
                p[..i].iter().all(|o| o.public != k.public),
                "key {i} repeats"
            );
        }
    }

    #[test]
    fn a_trusted_root_gets_a_handle_and_a_second_copy_is_a_duplicate() {
        let f = firmware();
        let mut fw = f.lock();
        let ca = b64("ca.pem");
        assert_eq!(
            add_certificate(&mut fw, &ca, true).unwrap(),
            "Intel(r) AMT Certificate: Handle: 0"
        );
        assert_eq!(add_certificate(&mut fw, &ca, true), Err(DUPLICATE));
        assert_eq!(
            add_certificate(&mut fw, "bm90IGEgY2VydA==", true),
            Err(INVALID_CERT)
        );
        let c = certificate(&fw, "Intel(r) AMT Certificate: Handle: 0").unwrap();
        assert_eq!(
            prop(c, "Subject"),
            // Written C, O, CN in the DER: AMT shows the last RDN first.
            Some("CN=Example RADIUS Root CA,O=Example Corp,C=US")
        );
        assert!(is_trusted_root(c));
    }

    #[test]
    fn a_root_that_cannot_issue_is_refused() {
        let f = firmware();
        assert_eq!(
            add_certificate(&mut f.lock(), &b64("client.pem"), true),
            Err(INVALID_CERT)
        );
    }

    #[test]
    fn a_client_certificate_needs_its_key_first() {
        let f = firmware();
        let mut fw = f.lock();
        let client = b64("client.pem");
        assert_eq!(
            add_certificate(&mut fw, &client, false),
            Err(PKI_MISSING_KEYS)
        );
        // PKCS#1 DER, as AddKey takes it.
        let key = b64("client-pkcs1.key");
        assert_eq!(
            add_key(&mut fw, &key).unwrap(),
            "Intel(r) AMT Key: Handle: 0"
        );
        assert_eq!(add_key(&mut fw, &key), Err(DUPLICATE));
        // PKCS#8 is not what AddKey takes.
        assert_eq!(add_key(&mut fw, &b64("client.key")), Err(INVALID_KEY));
        let handle = add_certificate(&mut fw, &client, false).unwrap();
        let c = certificate(&fw, &handle).unwrap().clone();
        assert!(has_private_key(&fw, &c));
        assert!(!is_trusted_root(&c));
        // Another client's certificate: AMT holds no key for it.
        assert_eq!(
            add_certificate(&mut fw, &b64("client2.pem"), false),
            Err(PKI_MISSING_KEYS)
        );
    }
}
