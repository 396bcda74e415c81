//! The certificate store (AMT's CertStore): `AMT_PublicKeyManagementService` (GenerateKeyPair,
//! AddKey, AddCertificate, AddTrustedRootCertificate, GeneratePKCS10RequestEx),
//! `AMT_PublicKeyCertificate` and `AMT_PublicPrivateKeyPair`. TLS (`tls.rs`) and 802.1X bind
//! certificates from here; a certificate in use cannot be deleted.
//!
//! Facts: go-wsman-messages' `publickey` package (method shapes, ReturnValue names: 2058
//! DUPLICATE, 2062 INVALID_KEY "InvalidKeyLength", 2063 INVALID_CERT, 2066 UNSUPPORTED), the
//! response fixtures in `tests/fixtures/wsman-responses/amt/publickey` and `amt/publicprivate`
//! (handles `Intel(r) AMT Certificate: Handle: N` and `Intel(r) AMT Key: Handle: N`, counted
//! separately; `DERKey` a PKCS#1 RSAPublicKey), Intel's class reference ("a certificate cannot be
//! deleted while it is being used by any service"). UNCONFIRMED choices, listed in
//! docs/simulator.md: the store's limits, 2064 CERT_KEY_NOT_MATCH for a certificate whose key AMT
//! does not hold, 2063 for a trusted root that is no CA, 16 NOT_PERMITTED before activation.
//!
//! The simulator cannot make RSA keys with its crypto library, so GenerateKeyPair hands out keys
//! from a committed pool of RSA-2048 test keys (`src/sim/ca/rsa-key-pool.pem`, `make
//! sim-rsa-pool`), never one the store already holds. They are test keys: anyone can read them.

use std::sync::OnceLock;

use base64::Engine as _;
use x509_parser::prelude::*;

use super::super::model::{input_text, prop, ret, Instance};
use crate::sim::profile::DeviceProfile;
use crate::sim::FirmwareCore;
use crate::tls::der;
use crate::wsman::envelope::{escape, ns, Element, Param};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub const SERVICE: &str = "AMT_PublicKeyManagementService";
pub const CERTIFICATE: &str = "AMT_PublicKeyCertificate";
pub const KEY_PAIR: &str = "AMT_PublicPrivateKeyPair";

const CERT_HANDLE: &str = "Intel(r) AMT Certificate: Handle: ";
const KEY_HANDLE: &str = "Intel(r) AMT Key: Handle: ";

/// How many certificates and key pairs the store holds (UNCONFIRMED: firmware's limits are
/// unpublished; the key limit is the size of the key pool).
pub const MAX_CERTIFICATES: usize = 16;
pub const MAX_KEY_PAIRS: usize = 8;

/// The key length GenerateKeyPair accepts (the only one RPS and rpc-go ask for).
pub const KEY_LENGTH: &str = "2048";

/// PT_STATUS values the store's methods answer (provisioning.md §1.1).
pub mod rv {
    pub const SUCCESS: u32 = 0;
    pub const NOT_PERMITTED: u32 = 16;
    pub const MAX_LIMIT_REACHED: u32 = 23;
    pub const INVALID_PARAMETER: u32 = 36;
    pub const DUPLICATE: u32 = 2058;
    pub const INVALID_KEY: u32 = 2062;
    pub const INVALID_CERT: u32 = 2063;
    pub const CERT_KEY_NOT_MATCH: u32 = 2064;
    pub const UNSUPPORTED: u32 = 2066;
    pub const NOT_FOUND: u32 = 2068;
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
        pem_blocks(POOL_PEM, "PRIVATE KEY")
            .into_iter()
            .map(|pkcs8| {
                let public =
                    rsa_public_of_pkcs8(&pkcs8).expect("the committed key pool holds RSA keys");
                PoolKey { pkcs8, public }
            })
            .collect()
    })
}

fn pem_blocks(text: &str, label: &str) -> Vec<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line == begin {
            body = Some(String::new());
        } else if line == end {
            if let Some(b) = body.take() {
                out.push(B64.decode(b).expect("base64 in a PEM block"));
            }
        } else if let Some(b) = body.as_mut() {
            b.push_str(line);
        }
    }
    out
}

/// The PKCS#1 RSAPublicKey of a PKCS#8 RSA private key.
fn rsa_public_of_pkcs8(pkcs8: &[u8]) -> Option<Vec<u8>> {
    let k = ring::signature::RsaKeyPair::from_pkcs8(pkcs8).ok()?;
    Some(k.public().as_ref().to_vec())
}

// ---------------------------------------------------------------------------------------------
// The store

/// No certificates or key pairs: a factory-fresh (or unprovisioned) CertStore.
pub(super) fn seed(p: &mut DeviceProfile) {
    p.instances.insert(CERTIFICATE.into(), Vec::new());
    p.instances.insert(KEY_PAIR.into(), Vec::new());
    p.private_keys.clear();
}

/// `AMT_PublicKeyManagementService`: a service instance (the go-wsman `get.xml` fixture's fields).
pub(super) fn computed(class: &str) -> Option<Instance> {
    (class == SERVICE).then(|| {
        super::super::model::inst(&[
            ("CreationClassName", SERVICE),
            ("ElementName", "Intel(r) AMT Certificate Store Service"),
            ("EnabledDefault", "5"),
            ("EnabledState", "5"),
            ("Name", "Intel(r) AMT Public Key Management Service"),
            ("RequestedState", "12"),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "Intel(r) AMT"),
        ])
    })
}

fn list<'a>(p: &'a DeviceProfile, class: &str) -> &'a [Instance] {
    p.instances.get(class).map(Vec::as_slice).unwrap_or(&[])
}

/// The lowest free handle number of `prefix` in `class`.
fn next_handle(p: &DeviceProfile, class: &str, prefix: &str) -> String {
    let used: Vec<u32> = list(p, class)
        .iter()
        .filter_map(|i| prop(i, "InstanceID")?.strip_prefix(prefix)?.parse().ok())
        .collect();
    let n = (0..).find(|n| !used.contains(n)).expect("a free handle");
    format!("{prefix}{n}")
}

/// A certificate of the store by InstanceID: its DER.
pub fn certificate_der(p: &DeviceProfile, instance_id: &str) -> Option<Vec<u8>> {
    list(p, CERTIFICATE)
        .iter()
        .find(|i| prop(i, "InstanceID") == Some(instance_id))
        .and_then(|i| B64.decode(prop(i, "X509Certificate")?).ok())
}

/// Whether the certificate was added as a trusted root.
pub fn is_trusted_root(p: &DeviceProfile, instance_id: &str) -> bool {
    list(p, CERTIFICATE)
        .iter()
        .find(|i| prop(i, "InstanceID") == Some(instance_id))
        .is_some_and(|i| prop(i, "TrustedRootCertficate") == Some("true"))
}

/// The trusted roots (DER), for mutual TLS.
pub fn trusted_roots(p: &DeviceProfile) -> Vec<Vec<u8>> {
    list(p, CERTIFICATE)
        .iter()
        .filter(|i| prop(i, "TrustedRootCertficate") == Some("true"))
        .filter_map(|i| B64.decode(prop(i, "X509Certificate")?).ok())
        .collect()
}

/// The PKCS#1 RSAPublicKey of a certificate (RSA only).
fn certificate_public_key(der: &[u8]) -> Option<Vec<u8>> {
    let (_, c) = X509Certificate::from_der(der).ok()?;
    Some(c.public_key().subject_public_key.data.to_vec())
}

/// The key pair whose public key is `public` (PKCS#1): its InstanceID.
fn key_pair_with(p: &DeviceProfile, public: &[u8]) -> Option<String> {
    list(p, KEY_PAIR)
        .iter()
        .find(|i| {
            prop(i, "DERKey")
                .and_then(|k| B64.decode(k).ok())
                .is_some_and(|k| k == public)
        })
        .and_then(|i| prop(i, "InstanceID").map(str::to_string))
}

/// The private key (PKCS#8) of the key pair matching a certificate in the store.
pub fn private_key_for(p: &DeviceProfile, cert_der: &[u8]) -> Option<Vec<u8>> {
    let public = certificate_public_key(cert_der)?;
    let handle = key_pair_with(p, &public)?;
    B64.decode(p.private_keys.get(&handle)?).ok()
}

/// RFC 4514-ish text as AMT writes a name: `C=unknown,O=unknown,CN=MPSRoot-0af1d5` (RDNs in
/// certificate order, no spaces).
fn amt_name(name: &X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    name.iter_attributes()
        .map(|a| {
            let key = x509_parser::objects::oid2abbrev(a.attr_type(), registry)
                .map(str::to_string)
                .unwrap_or_else(|_| a.attr_type().to_id_string());
            format!("{key}={}", a.as_str().unwrap_or("?"))
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn certificate_instance(id: &str, der: &[u8], c: &X509Certificate<'_>, root: bool) -> Instance {
    super::super::model::inst(&[
        ("ElementName", "Intel(r) AMT Certificate"),
        ("InstanceID", id),
        ("Issuer", &amt_name(c.issuer())),
        ("Subject", &amt_name(c.subject())),
        ("TrustedRootCertficate", if root { "true" } else { "false" }),
        ("X509Certificate", &B64.encode(der)),
        ("ReadOnlyCertificate", "false"),
    ])
}

fn key_pair_instance(id: &str, public: &[u8]) -> Instance {
    super::super::model::inst(&[
        ("DERKey", &B64.encode(public)),
        ("ElementName", "Intel(r) AMT Key"),
        ("InstanceID", id),
    ])
}

/// An endpoint reference to an instance of `class` by InstanceID, as AMT writes one in a
/// method's output (prefixes `b` addressing and `c` WS-Management of the response envelope).
pub(super) fn epr(class: &str, instance_id: &str) -> String {
    format!(
        "<b:Address>{}</b:Address><b:ReferenceParameters><c:ResourceURI>{}</c:ResourceURI>\
         <c:SelectorSet><c:Selector Name=\"InstanceID\">{}</c:Selector></c:SelectorSet>\
         </b:ReferenceParameters>",
        ns::ANONYMOUS,
        crate::wsman::envelope::resource_uri(class),
        escape(instance_id)
    )
}

/// The InstanceID selector inside an endpoint-reference parameter (`KeyPair`, `ElementInContext`).
pub(super) fn selector_of(el: Option<&Element>, name: &str) -> Option<String> {
    let sel = el?.find("SelectorSet")?;
    sel.children_named("Selector")
        .find(|s| s.attr("Name") == Some(name))
        .map(|s| s.text().trim().to_string())
}

/// Whether the store's methods may run: AMT activated (or inside the AMT 19+ host-based
/// configuration) and the caller is admin. UNCONFIRMED: firmware's exact rule.
fn permitted(fw: &FirmwareCore, user: &str) -> bool {
    user == super::super::ADMIN_USER
        && (fw.profile.control_mode != 0 || crate::sim::certs::hbased_open(fw))
}

/// The store's methods; `None` when the method is not one of this area's.
pub(super) fn invoke(
    fw: &mut FirmwareCore,
    class: &str,
    method: &str,
    input: Option<&Element>,
    user: &str,
) -> Option<Vec<Param>> {
    if class != SERVICE {
        return None;
    }
    let known = matches!(
        method,
        "GenerateKeyPair"
            | "AddKey"
            | "AddCertificate"
            | "AddTrustedRootCertificate"
            | "GeneratePKCS10RequestEx"
    );
    if !known {
        return None;
    }
    if !permitted(fw, user) {
        return Some(ret(rv::NOT_PERMITTED));
    }
    Some(match method {
        "GenerateKeyPair" => generate_key_pair(fw, input),
        "AddKey" => add_key(fw, input),
        "AddCertificate" => add_certificate(fw, input, false),
        "AddTrustedRootCertificate" => add_certificate(fw, input, true),
        _ => generate_pkcs10(fw, input),
    })
}

fn store_key_pair(fw: &mut FirmwareCore, public: &[u8], pkcs8: &[u8]) -> String {
    let id = next_handle(&fw.profile, KEY_PAIR, KEY_HANDLE);
    let inst = key_pair_instance(&id, public);
    fw.profile
        .instances
        .entry(KEY_PAIR.into())
        .or_default()
        .push(inst);
    fw.profile
        .private_keys
        .insert(id.clone(), B64.encode(pkcs8));
    fw.changed();
    id
}

fn generate_key_pair(fw: &mut FirmwareCore, input: Option<&Element>) -> Vec<Param> {
    let alg = input_text(input, "KeyAlgorithm").map(str::trim);
    let len = input_text(input, "KeyLength").map(str::trim);
    match alg {
        Some("0") => {}
        Some(a) if a.parse::<u32>().is_ok() => return ret(rv::UNSUPPORTED),
        _ => return ret(rv::INVALID_PARAMETER),
    }
    if len != Some(KEY_LENGTH) {
        return ret(rv::INVALID_KEY);
    }
    if list(&fw.profile, KEY_PAIR).len() >= MAX_KEY_PAIRS {
        return ret(rv::MAX_LIMIT_REACHED);
    }
    let Some(key) = pool()
        .iter()
        .find(|k| key_pair_with(&fw.profile, &k.public).is_none())
    else {
        return ret(rv::MAX_LIMIT_REACHED);
    };
    let id = store_key_pair(fw, &key.public, &key.pkcs8);
    vec![
        Param::raw("KeyPair", epr(KEY_PAIR, &id)),
        Param::text("ReturnValue", rv::SUCCESS),
    ]
}

fn add_key(fw: &mut FirmwareCore, input: Option<&Element>) -> Vec<Param> {
    let Some(der) = input_text(input, "KeyBlob").and_then(|b| B64.decode(b.trim()).ok()) else {
        return ret(rv::INVALID_KEY);
    };
    // PKCS#8, or the PKCS#1 RSAPrivateKey rpc-go sends when the PEM held one.
    let (pkcs8, public) = match rsa_public_of_pkcs8(&der) {
        Some(p) => (der, p),
        None => {
            let wrapped = der::pkcs8_from_pkcs1(&der);
            match rsa_public_of_pkcs8(&wrapped) {
                Some(p) => (wrapped, p),
                None => return ret(rv::INVALID_KEY),
            }
        }
    };
    if key_pair_with(&fw.profile, &public).is_some() {
        return ret(rv::DUPLICATE);
    }
    if list(&fw.profile, KEY_PAIR).len() >= MAX_KEY_PAIRS {
        return ret(rv::MAX_LIMIT_REACHED);
    }
    let id = store_key_pair(fw, &public, &pkcs8);
    vec![
        Param::raw("CreatedKey", epr(KEY_PAIR, &id)),
        Param::text("ReturnValue", rv::SUCCESS),
    ]
}

/// AddCertificate (`root` false: its key pair must be in the store) and AddTrustedRootCertificate
/// (`root` true: a CA certificate).
fn add_certificate(fw: &mut FirmwareCore, input: Option<&Element>, root: bool) -> Vec<Param> {
    let Some(der) = input_text(input, "CertificateBlob").and_then(|b| B64.decode(b.trim()).ok())
    else {
        return ret(rv::INVALID_CERT);
    };
    let Ok((rest, c)) = X509Certificate::from_der(&der) else {
        return ret(rv::INVALID_CERT);
    };
    if !rest.is_empty() {
        return ret(rv::INVALID_CERT);
    }
    let blob = B64.encode(&der);
    if list(&fw.profile, CERTIFICATE)
        .iter()
        .any(|i| prop(i, "X509Certificate") == Some(blob.as_str()))
    {
        return ret(rv::DUPLICATE);
    }
    if root {
        let ca = c
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|b| b.value.ca);
        let may_sign = c
            .key_usage()
            .ok()
            .flatten()
            .is_none_or(|k| k.value.key_cert_sign());
        if !ca || !may_sign {
            return ret(rv::INVALID_CERT);
        }
    } else {
        let public = c.public_key().subject_public_key.data.to_vec();
        if key_pair_with(&fw.profile, &public).is_none() {
            return ret(rv::CERT_KEY_NOT_MATCH);
        }
    }
    if list(&fw.profile, CERTIFICATE).len() >= MAX_CERTIFICATES {
        return ret(rv::MAX_LIMIT_REACHED);
    }
    let id = next_handle(&fw.profile, CERTIFICATE, CERT_HANDLE);
    let inst = certificate_instance(&id, &der, &c, root);
    fw.profile
        .instances
        .entry(CERTIFICATE.into())
        .or_default()
        .push(inst);
    fw.changed();
    vec![
        Param::raw("CreatedCertificate", epr(CERTIFICATE, &id)),
        Param::text("ReturnValue", rv::SUCCESS),
    ]
}

/// GeneratePKCS10RequestEx: AMT signs a null-signed PKCS#10 request with a key pair it holds
/// (SigningAlgorithm 1 SHA256-RSA; 0 SHA1-RSA is gone from CSME 18).
fn generate_pkcs10(fw: &mut FirmwareCore, input: Option<&Element>) -> Vec<Param> {
    let handle = selector_of(input.and_then(|i| i.child("KeyPair")), "InstanceID");
    let Some(handle) = handle else {
        return ret(rv::INVALID_PARAMETER);
    };
    let Some(pkcs8) = fw
        .profile
        .private_keys
        .get(&handle)
        .and_then(|k| B64.decode(k).ok())
    else {
        return ret(rv::NOT_FOUND);
    };
    // SHA1-RSA (0) is gone from CSME 18; the simulator signs SHA-256 only, on every version.
    match input_text(input, "SigningAlgorithm").map(str::trim) {
        Some("1") => {}
        Some("0") => return ret(rv::UNSUPPORTED),
        _ => return ret(rv::INVALID_PARAMETER),
    }
    let Some(csr) =
        input_text(input, "NullSignedCertificateRequest").and_then(|b| B64.decode(b.trim()).ok())
    else {
        return ret(rv::INVALID_PARAMETER);
    };
    let Ok((_, req)) = X509CertificationRequest::from_der(&csr) else {
        return ret(rv::INVALID_PARAMETER);
    };
    let info = &req.certification_request_info;
    let Ok(key) = ring::signature::RsaKeyPair::from_pkcs8(&pkcs8) else {
        return ret(rv::INVALID_KEY);
    };
    if info.subject_pki.subject_public_key.data.as_ref() != key.public().as_ref() {
        return ret(rv::INVALID_PARAMETER);
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
        Param::text("ReturnValue", rv::SUCCESS),
    ]
}

/// Deleting from the store: a certificate the TLS credential context binds cannot go, nor the
/// key pair of such a certificate (`Err` is the fault's reason); a deleted key pair's private key
/// goes with it. `None` for other classes.
pub(super) fn on_delete(
    p: &mut DeviceProfile,
    class: &str,
    victims: &[Instance],
) -> Option<Result<(), String>> {
    let in_use = super::tls::bound_certificates(p);
    match class {
        CERTIFICATE => {
            for v in victims {
                let id = prop(v, "InstanceID").unwrap_or_default();
                if in_use.iter().any(|u| u == id) {
                    return Some(Err(format!(
                        "{id} is bound by AMT_TLSCredentialContext: delete the context first"
                    )));
                }
            }
            Some(Ok(()))
        }
        KEY_PAIR => {
            for v in victims {
                let public = prop(v, "DERKey")
                    .and_then(|k| B64.decode(k).ok())
                    .unwrap_or_default();
                let used = in_use.iter().any(|u| {
                    certificate_der(p, u)
                        .and_then(|d| certificate_public_key(&d))
                        .is_some_and(|k| k == public)
                });
                if used {
                    return Some(Err(format!(
                        "{} is the key of a certificate bound by AMT_TLSCredentialContext",
                        prop(v, "InstanceID").unwrap_or_default()
                    )));
                }
            }
            for v in victims {
                if let Some(id) = prop(v, "InstanceID") {
                    p.private_keys.remove(id);
                }
            }
            Some(Ok(()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_holds_distinct_rsa_2048_keys() {
        let p = pool();
        assert_eq!(p.len(), MAX_KEY_PAIRS);
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
    fn a_pkcs1_key_is_wrapped_into_the_pkcs8_ring_reads() {
        // The PKCS#1 RSAPrivateKey is the OCTET STRING at the end of a PKCS#8 without attributes.
        let pkcs8 = &pool()[0].pkcs8;
        let (_, info) = x509_parser::der_parser::parse_der(pkcs8).unwrap();
        let seq = info.as_sequence().unwrap();
        let pkcs1 = seq[2].as_slice().unwrap();
        assert_eq!(
            rsa_public_of_pkcs8(&der::pkcs8_from_pkcs1(pkcs1)).unwrap(),
            pool()[0].public
        );
    }
}
