//! The simulated AMT's TLS server side for its local port 16993 (AMT 19+ enforces TLS there):
//! certificates shaped like AMT's On-Die CA chain, but under a test root that is NOT Intel's,
//! and the `rustls::ServerConfig` for the simulated port. Sans-IO like the agent side: the LME
//! session feeds the bytes of an APF channel through a `rustls::ServerConnection`.
//!
//! The chain mimics AMT 19's (rpc-go.md §5.6): four certificates presented, leaf first, with
//! `iAMT CSME IDevID RCFG` at index 0 and a `ROM CA` at index 3, whose issuer's OU starts with
//! `ODCA 2 CSME P`. On a real machine that issuer is an Intel ODCA issuing CA below Intel's root; here
//! the test root itself carries that OU, so that four presented certificates reach the root.
//! ECDSA P-384 throughout, like the real chain.

use std::sync::{Arc, OnceLock};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P384_SHA384,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName as TlsName, ServerConfig, ServerConnection};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use sha2::{Digest, Sha256, Sha384};

use crate::amthi::messages::HBasedReply;

/// The test root's CN: says plainly it is not Intel's.
pub const TEST_ROOT_CN: &str = "amt-sim test OnDie CA Root — NOT Intel";

/// How to shape a generated chain. The default is AMT 19's shape; tests vary one field to trip one rule.
#[derive(Clone, Debug)]
pub struct ChainSpec {
    /// Certificates presented (leaf first, the root not included).
    pub length: usize,
    pub leaf_cn: String,
    /// CN of the certificate at index 3.
    pub rom_ca_cn: String,
    /// OU of the issuer of the certificate at index 3.
    pub rom_issuer_ou: String,
}

impl Default for ChainSpec {
    fn default() -> ChainSpec {
        ChainSpec {
            length: 4,
            leaf_cn: "iAMT CSME IDevID RCFG".to_string(),
            rom_ca_cn: "CSME SIM ROM CA".to_string(),
            rom_issuer_ou: "ODCA 2 CSME P_SIM 00000001 Issuing CA (amt-sim test, NOT Intel)"
                .to_string(),
        }
    }
}

/// A generated chain with its leaf key and the root that anchors it.
pub struct SimChain {
    root: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    leaf_key: PrivatePkcs8KeyDer<'static>,
}

impl SimChain {
    /// Generates a fresh chain (a few P-384 keys: tens of milliseconds). The simulator uses the
    /// cached [`odca_chain`]; tests generate variants.
    pub fn generate(spec: &ChainSpec) -> SimChain {
        assert!(spec.length >= 1, "a chain has a leaf");
        let root_ou = if spec.length <= 4 {
            spec.rom_issuer_ou.clone()
        } else {
            "OnDie CA Root Cert Signing (amt-sim test, NOT Intel)".to_string()
        };
        let mut params = ca_params(TEST_ROOT_CN, Some(&root_ou));
        params
            .distinguished_name
            .push(DnType::OrganizationName, "amt-sim");
        let root = CertifiedIssuer::self_signed(params, new_key()).expect("root signs itself");
        let root_der = root.der().clone();

        let mut chain = Vec::with_capacity(spec.length);
        let mut issuer = root;
        for index in (1..spec.length).rev() {
            let params = match index {
                1 => ca_params("CSME SIM SVN01 iAMT CA", None),
                2 => ca_params("CSME SIM SVN01 Kernel CA", None),
                3 => ca_params(&spec.rom_ca_cn, None),
                4 => ca_params("amt-sim ODCA Issuing CA", Some(&spec.rom_issuer_ou)),
                5 => ca_params(
                    "amt-sim ODCA Intermediate CA",
                    Some("ODCA CA2 CSME Intermediate CA (amt-sim test, NOT Intel)"),
                ),
                n => ca_params(&format!("amt-sim intermediate {n}"), None),
            };
            let next = CertifiedIssuer::signed_by(params, new_key(), &*issuer).expect("CA signs");
            chain.push(next.der().clone());
            issuer = next;
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, spec.leaf_cn.as_str());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyAgreement,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = new_key();
        let leaf = params
            .signed_by(&leaf_key, &*issuer)
            .expect("leaf is signed");
        chain.push(leaf.der().clone());
        chain.reverse();
        SimChain {
            root: root_der,
            chain,
            leaf_key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
        }
    }

    /// The test root (DER): what a test passes explicitly to trust the simulator.
    pub fn root_der(&self) -> &CertificateDer<'static> {
        &self.root
    }

    /// The test root as PEM (`amt-sim serve --tls-root-out`), for `amt-agent --amt-ca-file`.
    pub fn root_pem(&self) -> String {
        pem("CERTIFICATE", self.root.as_ref())
    }

    /// The presented chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The presented chain as PEM, leaf first (`amt-sim serve --tls-chain-out`).
    pub fn chain_pem(&self) -> String {
        self.chain
            .iter()
            .map(|c| pem("CERTIFICATE", c.as_ref()))
            .collect()
    }

    pub fn leaf_der(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    pub fn leaf_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.leaf_key.clone_key())
    }

    pub fn leaf_sha256(&self) -> [u8; 32] {
        Sha256::digest(self.leaf_der()).into()
    }

    pub fn leaf_sha384(&self) -> [u8; 48] {
        Sha384::digest(self.leaf_der()).into()
    }

    /// What the simulated START_CONFIGURATION_HBASED returns for `algorithm` (2 SHA256, 3 SHA384;
    /// anything else is answered with SHA384): the leaf's hash, zero-padded to 64 bytes.
    pub fn hbased_reply(&self, algorithm: u8) -> HBasedReply {
        let mut amt_cert_hash = [0u8; 64];
        let hash_algorithm = if algorithm == 2 {
            amt_cert_hash[..32].copy_from_slice(&self.leaf_sha256());
            2
        } else {
            amt_cert_hash[..48].copy_from_slice(&self.leaf_sha384());
            3
        };
        HBasedReply {
            hash_algorithm,
            amt_cert_hash,
        }
    }
}

/// The CSME platform id the simulated UPID client reports: SHA-256 of the DER of the chain's
/// certificate at index 3 (the CSME ROM CA), so that the binding rule of rpc-go.md §5.6 (its first
/// 20 bytes equal the id's bytes 0–19) holds. UNCONFIRMED: how real firmware derives bytes 20–31
/// (nothing checks them); here they are simply the rest of the digest.
/// (A test chain shorter than four certificates uses its last one.)
pub fn csme_platform_id(chain: &SimChain) -> [u8; 32] {
    let rom_ca = chain
        .chain()
        .get(crate::tls::ROM_CA_INDEX)
        .or(chain.chain().last())
        .expect("a chain has a leaf");
    Sha256::digest(rom_ca).into()
}

/// AMT's self-signed certificate after activation (presented alone).
pub struct SimSelfSigned {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl SimSelfSigned {
    pub fn generate() -> SimSelfSigned {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "amt-sim AMT self-signed (activated)");
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyAgreement,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = new_key();
        let cert = params.self_signed(&key).expect("self-signed");
        SimSelfSigned {
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }

    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.cert).into()
    }
}

/// The simulator's On-Die-CA-shaped chain, generated once per process.
pub fn odca_chain() -> &'static SimChain {
    static CHAIN: OnceLock<SimChain> = OnceLock::new();
    CHAIN.get_or_init(|| SimChain::generate(&ChainSpec::default()))
}

/// The simulator's post-activation self-signed certificate, generated once per process.
pub fn self_signed() -> &'static SimSelfSigned {
    static CERT: OnceLock<SimSelfSigned> = OnceLock::new();
    CERT.get_or_init(SimSelfSigned::generate)
}

/// Which certificate the simulated port 16993 presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerIdentity {
    /// In provisioning (control mode 0): the On-Die-CA-shaped chain of [`odca_chain`].
    OdcaChain,
    /// Activated: the single self-signed certificate of [`self_signed`].
    SelfSigned,
}

/// Whether the simulated port asks for a client certificate (mutual TLS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCertMode {
    /// No CertificateRequest.
    None,
    /// Asks; a client without a certificate still connects.
    Optional,
    /// Asks and refuses a client without one (AMT 19+ after ACM, and its local ACM flow).
    Required,
}

/// Accepts any client chain whose key signs the handshake; the simulator then judges the chain
/// itself (`ServerConnection::peer_certificates`), as the firmware checks a provisioning
/// certificate against its trusted root hashes rather than a TLS trust store.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[TlsName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The server config of the simulated port 16993: TLS 1.2 or 1.3, ring provider.
pub fn server_config(identity: ServerIdentity, client_auth: ClientCertMode) -> Arc<ServerConfig> {
    let provider = crate::tls::provider();
    let algorithms = provider.signature_verification_algorithms;
    let builder = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3");
    let builder = match client_auth {
        ClientCertMode::None => {
            builder.with_client_cert_verifier(WebPkiClientVerifier::no_client_auth())
        }
        ClientCertMode::Optional | ClientCertMode::Required => {
            builder.with_client_cert_verifier(Arc::new(AnyClientCert {
                mandatory: client_auth == ClientCertMode::Required,
                algorithms,
            }))
        }
    };
    let (chain, key) = match identity {
        ServerIdentity::OdcaChain => (odca_chain().chain().to_vec(), odca_chain().leaf_key()),
        ServerIdentity::SelfSigned => (vec![self_signed().cert_der().clone()], self_signed().key()),
    };
    Arc::new(
        builder
            .with_single_cert(chain, key)
            .expect("the generated key matches its certificate"),
    )
}

/// The client's certificate chain (leaf first) once the handshake is done; `None` if it sent none.
pub fn client_chain(conn: &ServerConnection) -> Option<&[CertificateDer<'static>]> {
    conn.peer_certificates().filter(|c| !c.is_empty())
}

/// RFC 7468 text encoding: base64 in lines of 64 between BEGIN and END markers.
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn new_key() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).expect("ring generates P-384 keys")
}

fn ca_params(cn: &str, ou: Option<&str>) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    if let Some(ou) = ou {
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, ou);
    }
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}
