//! TLS to AMT's local port 16993 (AMT 19+ enforces TLS on its local ports), as transport-independent
//! pieces: a `rustls` certificate verifier that applies rpc-go's rules for AMT's certificate
//! (rpc-go.md §5.6), and the `ClientConfig` for the connection, with an optional client certificate
//! for the mutual TLS of the AMT 19+ local ACM flow (rpc-go.md §5.4 step 4).
//!
//! Nothing here does I/O: rustls is sans-IO, so the same config drives a TLS session over an APF
//! channel (transport.md §5.3), over a socket to LMS, or over an in-memory pipe in the tests.
//!
//! # The rules (rpc-go.md §5.6), in the order they are checked
//! A chain of 4 or 6 certificates (AMT's On-Die CA chain, presented while in provisioning):
//! 1. the leaf's CN is `iAMT CSME IDevID RCFG` or `AMT RCFG`;
//! 2. when a pin is given (the hash START_CONFIGURATION_HBASED returned), the leaf's SHA-256 or
//!    SHA-384 equals it;
//! 3. the certificate at index 3 has a CN containing `ROM CA` or `ROM DE`, and an issuer OU starting
//!    with `ODCA 2 CSME P`, `On Die CSME P`, `ODCA 2 CSME` or `On Die CSME`;
//! 4. when a UPID CSME id is given, it equals the first 20 bytes of SHA-256 of that index-3 certificate;
//! 5. the chain verifies, for any extended key usage, to a trust anchor: by default only Intel's
//!    On-Die CA root shipped in `certs/`; other anchors only when the caller adds them explicitly.
//!
//! A chain of 1 (AMT's self-signed certificate, which it switches to after activation) follows
//! [`SelfSignedPolicy`]. Any other length is refused.
//!
//! The server name is not checked: AMT's certificates name no host (user-pains.md failure mode 1,
//! "certificate is not valid for any names"); the identity is the chain to the On-Die CA and the pin.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, TrustAnchor, UnixTime};
use sha2::{Digest, Sha256, Sha384};
use x509_parser::certificate::X509Certificate;

use crate::amthi::messages::HBasedReply;

/// Intel's On-Die CA root (DER), the default and only built-in trust anchor. Source: `certs/README.md`.
pub const INTEL_ODCA_ROOT_DER: &[u8] =
    include_bytes!("../../certs/OnDie_CA_RootCA_Certificate.cer");

/// Leaf CNs AMT uses for its provisioning-time TLS certificate (rpc-go.md §5.6).
pub const ALLOWED_LEAF_CNS: [&str; 2] = ["iAMT CSME IDevID RCFG", "AMT RCFG"];

/// What the CN of the certificate at [`ROM_CA_INDEX`] must contain.
pub const ROM_CA_CN_MARKERS: [&str; 2] = ["ROM CA", "ROM DE"];

/// Prefixes one of the issuer OUs of the certificate at [`ROM_CA_INDEX`] must start with.
pub const ROM_CA_ISSUER_OU_PREFIXES: [&str; 4] = [
    "ODCA 2 CSME P",
    "On Die CSME P",
    "ODCA 2 CSME",
    "On Die CSME",
];

/// Index (0 = leaf) of the CSME ROM CA certificate in AMT's chain.
pub const ROM_CA_INDEX: usize = 3;

/// The chain lengths AMT presents in provisioning.
pub const ODCA_CHAIN_LENGTHS: [usize; 2] = [4, 6];

/// The name to connect with. AMT's certificates carry no host name, so it only feeds SNI.
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("a valid DNS name")
}

/// The digest a [`LeafPin`] holds (the START_CONFIGURATION_HBASED algorithm byte: 2 or 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinAlgorithm {
    Sha256,
    Sha384,
}

impl PinAlgorithm {
    /// From the firmware's hash algorithm byte (rpc-go.md §5.4: 2 SHA256, 3 SHA384).
    pub fn from_code(code: u8) -> Option<PinAlgorithm> {
        match code {
            2 => Some(PinAlgorithm::Sha256),
            3 => Some(PinAlgorithm::Sha384),
            _ => None,
        }
    }

    pub fn code(self) -> u8 {
        match self {
            PinAlgorithm::Sha256 => 2,
            PinAlgorithm::Sha384 => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PinAlgorithm::Sha256 => "SHA256",
            PinAlgorithm::Sha384 => "SHA384",
        }
    }

    pub fn digest_len(self) -> usize {
        match self {
            PinAlgorithm::Sha256 => 32,
            PinAlgorithm::Sha384 => 48,
        }
    }

    /// The digest of `der` with this algorithm.
    pub fn digest(self, der: &[u8]) -> Vec<u8> {
        match self {
            PinAlgorithm::Sha256 => Sha256::digest(der).to_vec(),
            PinAlgorithm::Sha384 => Sha384::digest(der).to_vec(),
        }
    }
}

/// The expected hash of AMT's TLS leaf certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct LeafPin {
    algorithm: PinAlgorithm,
    digest: Vec<u8>,
}

impl LeafPin {
    pub fn new(algorithm: PinAlgorithm, digest: &[u8]) -> Result<LeafPin, AmtCertError> {
        if digest.len() != algorithm.digest_len() {
            return Err(AmtCertError::BadPin {
                reason: format!(
                    "a {} pin is {} bytes, not {}",
                    algorithm.name(),
                    algorithm.digest_len(),
                    digest.len()
                ),
            });
        }
        Ok(LeafPin {
            algorithm,
            digest: digest.to_vec(),
        })
    }

    /// The pin of a certificate, for tests and for pinning a certificate seen before.
    pub fn of_certificate(algorithm: PinAlgorithm, der: &[u8]) -> LeafPin {
        LeafPin {
            algorithm,
            digest: algorithm.digest(der),
        }
    }

    /// From START_CONFIGURATION_HBASED's algorithm byte and 64-byte hash field (raw digest,
    /// zero-padded; or, as rpc-go also accepts, the digest as ASCII hex). `Ok(None)` when the field
    /// is all zero: the firmware gave no hash, so there is nothing to pin.
    pub fn from_hbased(algorithm: u8, field: &[u8]) -> Result<Option<LeafPin>, AmtCertError> {
        let alg = PinAlgorithm::from_code(algorithm)
            .ok_or(AmtCertError::UnsupportedPinAlgorithm { code: algorithm })?;
        if field.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let n = alg.digest_len();
        let hex_len = 2 * n;
        if field.len() >= hex_len
            && field[..hex_len].iter().all(u8::is_ascii_hexdigit)
            && field[hex_len..].iter().all(|&b| b == 0)
        {
            let text = std::str::from_utf8(&field[..hex_len]).expect("ASCII hex");
            return LeafPin::from_hex(alg, text).map(Some);
        }
        if field.len() < n {
            return Err(AmtCertError::BadPin {
                reason: format!("a {} pin needs {n} bytes, got {}", alg.name(), field.len()),
            });
        }
        LeafPin::new(alg, &field[..n]).map(Some)
    }

    /// From the decoded START_CONFIGURATION_HBASED reply.
    pub fn from_hbased_reply(reply: &HBasedReply) -> Result<Option<LeafPin>, AmtCertError> {
        LeafPin::from_hbased(reply.hash_algorithm, &reply.amt_cert_hash)
    }

    /// From a hex string (64 or 96 characters; `:` separators allowed).
    pub fn from_hex(algorithm: PinAlgorithm, text: &str) -> Result<LeafPin, AmtCertError> {
        let digest = decode_hex(text).ok_or_else(|| AmtCertError::BadPin {
            reason: format!("'{text}' is not hex"),
        })?;
        LeafPin::new(algorithm, &digest)
    }

    pub fn algorithm(&self) -> PinAlgorithm {
        self.algorithm
    }

    pub fn digest(&self) -> &[u8] {
        &self.digest
    }

    pub fn matches(&self, der: &[u8]) -> bool {
        self.algorithm.digest(der) == self.digest
    }
}

impl fmt::Debug for LeafPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), hex(&self.digest))
    }
}

/// What to do with a chain of one certificate: AMT's self-signed certificate, which it presents
/// once activated (control mode ≠ 0), for instance right after CommitChanges restarts its port stack.
///
/// The default is [`SelfSignedPolicy::Reject`]: such a certificate proves nothing by itself, so it
/// is accepted only when the caller has something to bind it to.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum SelfSignedPolicy {
    /// Refuse it (control mode 0: a device in provisioning presents its On-Die CA chain).
    #[default]
    Reject,
    /// Accept exactly the certificate with this hash (seen before, or installed by the agent).
    Pinned(LeafPin),
    /// Accept any single self-signed certificate whose own signature verifies. rpc-go's rule: the
    /// caller has just re-read control mode ≠ 0 over HECI, which only the host's root can answer.
    AcceptActivated,
}

/// Why AMT's certificate was refused: which rule failed, on which certificate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmtCertError {
    #[error("certificate {index} from AMT could not be parsed: {reason}")]
    Unparsable { index: usize, reason: String },
    #[error("unexpected number of certificates received from AMT: {got} (expected 4 or 6, or 1 once activated)")]
    UnexpectedChainLength { got: usize },
    #[error("leaf certificate CN is not allowed: '{cn}' (subject {subject})")]
    LeafCommonName { subject: String, cn: String },
    #[error("leaf certificate {algorithm} does not match the hash START_CONFIGURATION_HBASED returned (subject {subject}): expected {expected}, got {actual}")]
    LeafHashMismatch {
        subject: String,
        algorithm: &'static str,
        expected: String,
        actual: String,
    },
    #[error("certificate 3 is not a CSME ROM CA: its CN '{cn}' contains neither 'ROM CA' nor 'ROM DE' (subject {subject})")]
    NotRomCa { subject: String, cn: String },
    #[error("the issuer of the CSME ROM CA certificate has no OU starting with an On-Die CA prefix (subject {subject}, issuer {issuer})")]
    RomCaIssuerOu { subject: String, issuer: String },
    #[error("the CSME ROM CA certificate does not match the UPID CSME id (subject {subject})")]
    UpidMismatch { subject: String },
    #[error("AMT's chain does not verify to a trusted root (leaf {subject}): {reason}; trusted: {anchors}")]
    Untrusted {
        subject: String,
        reason: String,
        anchors: String,
    },
    #[error("AMT presented a single self-signed certificate (subject {subject}), which it does only once activated")]
    SelfSignedNotAllowed { subject: String },
    #[error("AMT's single certificate is not self-signed (subject {subject}, issuer {issuer})")]
    SelfSignedWrongIssuer { subject: String, issuer: String },
    #[error("AMT's self-signed certificate has a bad signature (subject {subject}): {reason}")]
    SelfSignedSignature { subject: String, reason: String },
    #[error("AMT's self-signed certificate does not match the pinned {algorithm} (subject {subject}): expected {expected}, got {actual}")]
    SelfSignedPinMismatch {
        subject: String,
        algorithm: &'static str,
        expected: String,
        actual: String,
    },
    #[error("AMT presented another certificate than the one configure tls installed (subject {subject}): {algorithm} expected {expected}, got {actual}")]
    PinnedMismatch {
        subject: String,
        algorithm: &'static str,
        expected: String,
        actual: String,
    },
    #[error("trust anchor could not be used: {reason}")]
    BadAnchor { reason: String },
    #[error("unsupported certificate hash algorithm {code} for pinning AMT's certificate (2 SHA256, 3 SHA384)")]
    UnsupportedPinAlgorithm { code: u8 },
    #[error("bad certificate pin: {reason}")]
    BadPin { reason: String },
}

impl AmtCertError {
    /// What the user can do about it.
    pub fn help(&self) -> &'static str {
        match self {
            AmtCertError::Unparsable { .. } => {
                "AMT sent a certificate that is not valid DER; a firmware update or an ME reset may help"
            }
            AmtCertError::UnexpectedChainLength { .. } => {
                "this is not the certificate chain AMT presents; check that the channel reaches AMT's \
                 port 16993, or pass --skip-amt-cert-check to connect without verifying"
            }
            AmtCertError::LeafCommonName { .. } => {
                "the peer is not AMT's provisioning TLS endpoint (its leaf must be 'iAMT CSME IDevID RCFG' \
                 or 'AMT RCFG'); check the port, or pass --skip-amt-cert-check"
            }
            AmtCertError::LeafHashMismatch { .. } => {
                "the certificate differs from the one the firmware reported over HECI: something other \
                 than AMT answered, or the firmware changed its certificate; retry after an ME reset"
            }
            AmtCertError::NotRomCa { .. } | AmtCertError::RomCaIssuerOu { .. } => {
                "the chain is not an Intel On-Die CA chain for CSME; pass --skip-amt-cert-check only if \
                 you trust this machine's firmware by other means"
            }
            AmtCertError::UpidMismatch { .. } => {
                "the chain belongs to another CSME than the one this host reports (UPID); the TLS peer is \
                 not this machine's AMT"
            }
            AmtCertError::Untrusted { .. } => {
                "the chain does not lead to Intel's On-Die CA root (or has expired); check the system \
                 clock, update the firmware, or pass --skip-amt-cert-check; for a simulator or test \
                 AMT, trust its test root explicitly with --amt-ca-file FILE"
            }
            AmtCertError::SelfSignedNotAllowed { .. } => {
                "AMT switches to a self-signed certificate after activation: re-read the control mode \
                 over HECI; if it is no longer 0 the device is activated"
            }
            AmtCertError::SelfSignedWrongIssuer { .. }
            | AmtCertError::SelfSignedSignature { .. }
            | AmtCertError::SelfSignedPinMismatch { .. } => {
                "the single certificate is not the one AMT generated for itself; pass \
                 --skip-amt-cert-check only if you trust this machine by other means"
            }
            AmtCertError::PinnedMismatch { .. } => {
                "something other than AMT answers on its TLS port, or AMT's TLS certificate was \
                 changed by another tool: if you changed it, run amt-agent configure tls again \
                 (after removing the pin file named with -v), else find what listens on 16993"
            }
            AmtCertError::BadAnchor { .. } => "an explicitly added trust anchor must be a DER CA certificate",
            AmtCertError::UnsupportedPinAlgorithm { .. } | AmtCertError::BadPin { .. } => {
                "the firmware reported a certificate hash that cannot be used as a pin; connect without \
                 the pin, or with --skip-amt-cert-check"
            }
        }
    }

    /// The verifier's error inside a failed handshake's `rustls::Error`, if that is why it failed.
    pub fn from_rustls(e: &rustls::Error) -> Option<&AmtCertError> {
        match e {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
                inner.downcast_ref::<AmtCertError>()
            }
            _ => None,
        }
    }
}

impl From<AmtCertError> for rustls::Error {
    fn from(e: AmtCertError) -> rustls::Error {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
    }
}

/// Accepts any extended key usage, as rpc-go's chain verification does (`ExtKeyUsageAny`): AMT's
/// On-Die CA leaf is an identity certificate, not a web server's.
struct AnyEku;

impl webpki::ExtendedKeyUsageValidator for AnyEku {
    fn validate(&self, _iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        Ok(())
    }
}

#[derive(Clone, Debug)]
enum Mode {
    Verify,
    /// `--skip-amt-cert-check`: no certificate rule; handshake signatures are still checked.
    Skip,
    /// Exactly one certificate: the one `configure tls` installed (its hash), whatever signed it.
    Pinned(LeafPin),
}

/// rustls verifier for AMT's TLS certificate on port 16993 (module docs list the rules).
#[derive(Clone, Debug)]
pub struct AmtCertVerifier {
    mode: Mode,
    anchors: Vec<TrustAnchor<'static>>,
    anchor_names: Vec<String>,
    leaf_pin: Option<LeafPin>,
    upid_csme_id: Option<[u8; 20]>,
    self_signed: SelfSignedPolicy,
    algorithms: WebPkiSupportedAlgorithms,
}

impl AmtCertVerifier {
    /// For a device in provisioning (control mode 0): Intel's On-Die CA root as the only anchor, no
    /// pin, a single self-signed certificate refused.
    pub fn provisioning() -> AmtCertVerifier {
        let root = CertificateDer::from(INTEL_ODCA_ROOT_DER);
        let anchor = webpki::anchor_from_trusted_cert(&root)
            .expect("the shipped On-Die CA root parses")
            .to_owned();
        AmtCertVerifier {
            mode: Mode::Verify,
            anchors: vec![anchor],
            anchor_names: vec![subject_of(INTEL_ODCA_ROOT_DER)],
            leaf_pin: None,
            upid_csme_id: None,
            self_signed: SelfSignedPolicy::Reject,
            algorithms: provider().signature_verification_algorithms,
        }
    }

    /// For an activated device (control mode ≠ 0): the On-Die CA chain is still accepted under the
    /// same rules (without a pin), and a single self-signed certificate per `policy`.
    pub fn activated(policy: SelfSignedPolicy) -> AmtCertVerifier {
        AmtCertVerifier::provisioning().with_self_signed(policy)
    }

    /// `--skip-amt-cert-check`: accepts any certificate, with a warning at construction and at
    /// every handshake. Handshake signatures are still verified against the presented key.
    pub fn skip() -> AmtCertVerifier {
        tracing::warn!("AMT's TLS certificate will not be verified (--skip-amt-cert-check)");
        AmtCertVerifier {
            mode: Mode::Skip,
            ..AmtCertVerifier::provisioning()
        }
    }

    /// Accepts exactly the certificate with this hash as AMT's leaf, and nothing else: the one
    /// `configure tls` installed and bound to AMT's TLS (see `commands::tls_pin`). Its chain,
    /// issuer and dates are not judged: the pin is the identity.
    pub fn pinned(pin: LeafPin) -> AmtCertVerifier {
        AmtCertVerifier {
            mode: Mode::Pinned(pin),
            ..AmtCertVerifier::provisioning()
        }
    }

    /// Requires the leaf to hash to `pin` (from START_CONFIGURATION_HBASED).
    pub fn with_leaf_pin(mut self, pin: LeafPin) -> AmtCertVerifier {
        self.leaf_pin = Some(pin);
        self
    }

    /// Trusts one more root besides Intel's (a test root such as the simulator's). Only an explicit
    /// call adds an anchor; nothing is trusted by default beyond the shipped On-Die CA root.
    pub fn with_extra_anchor(mut self, der: &[u8]) -> Result<AmtCertVerifier, AmtCertError> {
        let cert = CertificateDer::from(der);
        let anchor = webpki::anchor_from_trusted_cert(&cert)
            .map_err(|e| AmtCertError::BadAnchor {
                reason: format!("{e:?}"),
            })?
            .to_owned();
        self.anchors.push(anchor);
        self.anchor_names.push(subject_of(der));
        Ok(self)
    }

    /// Binds the chain to this host's CSME: the first 20 bytes of SHA-256 of the ROM CA certificate
    /// must equal the UPID CSME id (bytes 0–19).
    pub fn with_upid_csme_id(mut self, id: [u8; 20]) -> AmtCertVerifier {
        self.upid_csme_id = Some(id);
        self
    }

    pub fn with_self_signed(mut self, policy: SelfSignedPolicy) -> AmtCertVerifier {
        self.self_signed = policy;
        self
    }

    pub fn is_skip(&self) -> bool {
        matches!(self.mode, Mode::Skip)
    }

    /// Applies the rules to a presented chain (leaf first), without a handshake.
    pub fn verify_chain(&self, chain: &[&[u8]], now: UnixTime) -> Result<(), AmtCertError> {
        if let Mode::Skip = self.mode {
            tracing::warn!(
                certificates = chain.len(),
                "accepting AMT's TLS certificate unverified (--skip-amt-cert-check)"
            );
            return Ok(());
        }
        if let Mode::Pinned(pin) = &self.mode {
            let leaf = chain
                .first()
                .ok_or(AmtCertError::UnexpectedChainLength { got: 0 })?;
            if pin.matches(leaf) {
                return Ok(());
            }
            return Err(AmtCertError::PinnedMismatch {
                subject: subject_of(leaf),
                algorithm: pin.algorithm.name(),
                expected: hex(&pin.digest),
                actual: hex(&pin.algorithm.digest(leaf)),
            });
        }
        let parsed = chain
            .iter()
            .enumerate()
            .map(|(index, der)| {
                x509_parser::parse_x509_certificate(der)
                    .map(|(_, c)| c)
                    .map_err(|e| AmtCertError::Unparsable {
                        index,
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        match parsed.len() {
            1 => self.verify_self_signed(chain[0], &parsed[0]),
            n if ODCA_CHAIN_LENGTHS.contains(&n) => self.verify_odca_chain(chain, &parsed, now),
            got => Err(AmtCertError::UnexpectedChainLength { got }),
        }
    }

    fn verify_odca_chain(
        &self,
        chain: &[&[u8]],
        parsed: &[X509Certificate<'_>],
        now: UnixTime,
    ) -> Result<(), AmtCertError> {
        let leaf = &parsed[0];
        let leaf_subject = leaf.subject().to_string();
        let cn = common_name(leaf).unwrap_or_default();
        if !ALLOWED_LEAF_CNS.contains(&cn.as_str()) {
            return Err(AmtCertError::LeafCommonName {
                subject: leaf_subject,
                cn,
            });
        }
        if let Some(pin) = &self.leaf_pin {
            let actual = pin.algorithm.digest(chain[0]);
            if actual != pin.digest {
                return Err(AmtCertError::LeafHashMismatch {
                    subject: leaf_subject,
                    algorithm: pin.algorithm.name(),
                    expected: hex(&pin.digest),
                    actual: hex(&actual),
                });
            }
        }
        let rom = &parsed[ROM_CA_INDEX];
        let rom_subject = rom.subject().to_string();
        let rom_cn = common_name(rom).unwrap_or_default();
        if !ROM_CA_CN_MARKERS.iter().any(|m| rom_cn.contains(m)) {
            return Err(AmtCertError::NotRomCa {
                subject: rom_subject,
                cn: rom_cn,
            });
        }
        let ou_ok = rom
            .issuer()
            .iter_organizational_unit()
            .filter_map(|a| a.as_str().ok())
            .any(|ou| ROM_CA_ISSUER_OU_PREFIXES.iter().any(|p| ou.starts_with(p)));
        if !ou_ok {
            return Err(AmtCertError::RomCaIssuerOu {
                subject: rom_subject,
                issuer: rom.issuer().to_string(),
            });
        }
        if let Some(id) = &self.upid_csme_id {
            if Sha256::digest(chain[ROM_CA_INDEX])[..20] != id[..] {
                return Err(AmtCertError::UpidMismatch {
                    subject: rom_subject,
                });
            }
            tracing::debug!(subject = %rom_subject, "UPID binding checked: the CSME ROM CA certificate matches this host's UPID CSME id");
        }
        let ee_der = CertificateDer::from(chain[0]);
        let intermediates: Vec<CertificateDer<'_>> = chain[1..]
            .iter()
            .map(|c| CertificateDer::from(*c))
            .collect();
        let untrusted = |reason: String| AmtCertError::Untrusted {
            subject: leaf_subject.clone(),
            reason,
            anchors: self.anchor_names.join("; "),
        };
        let ee = webpki::EndEntityCert::try_from(&ee_der).map_err(|e| untrusted(format!("{e}")))?;
        ee.verify_for_usage(
            self.algorithms.all,
            &self.anchors,
            &intermediates,
            now,
            AnyEku,
            None,
            None,
        )
        .map_err(|e| untrusted(format!("{e}")))?;
        Ok(())
    }

    fn verify_self_signed(
        &self,
        der: &[u8],
        cert: &X509Certificate<'_>,
    ) -> Result<(), AmtCertError> {
        let subject = cert.subject().to_string();
        match &self.self_signed {
            SelfSignedPolicy::Reject => Err(AmtCertError::SelfSignedNotAllowed { subject }),
            SelfSignedPolicy::Pinned(pin) => {
                let actual = pin.algorithm.digest(der);
                if actual == pin.digest {
                    Ok(())
                } else {
                    Err(AmtCertError::SelfSignedPinMismatch {
                        subject,
                        algorithm: pin.algorithm.name(),
                        expected: hex(&pin.digest),
                        actual: hex(&actual),
                    })
                }
            }
            SelfSignedPolicy::AcceptActivated => {
                if cert.subject().as_raw() != cert.issuer().as_raw() {
                    return Err(AmtCertError::SelfSignedWrongIssuer {
                        subject,
                        issuer: cert.issuer().to_string(),
                    });
                }
                cert.verify_signature(None)
                    .map_err(|e| AmtCertError::SelfSignedSignature {
                        subject,
                        reason: e.to_string(),
                    })
            }
        }
    }
}

impl ServerCertVerifier for AmtCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain: Vec<&[u8]> = std::iter::once(end_entity.as_ref())
            .chain(intermediates.iter().map(|c| c.as_ref()))
            .collect();
        match self.verify_chain(&chain, now) {
            Ok(()) => Ok(ServerCertVerified::assertion()),
            Err(e) => {
                tracing::debug!(error = %e, "AMT's TLS certificate refused");
                Err(e.into())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The client certificate for mutual TLS: in the AMT 19+ local ACM flow, the provisioning
/// certificate chain (leaf first) and its private key (rpc-go.md §5.4 step 4).
#[derive(Debug)]
pub struct ClientCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for ClientCert {
    fn clone(&self) -> ClientCert {
        ClientCert {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// The crypto provider every TLS config here uses (ring: no cmake, no C++ toolchain).
pub fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The client config for AMT's port 16993: TLS 1.2 or 1.3, the given verifier, and the client
/// certificate when mutual TLS is wanted.
pub fn client_config(
    verifier: AmtCertVerifier,
    client_cert: Option<ClientCert>,
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let builder = ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let config = match client_cert {
        Some(c) => builder.with_client_auth_cert(c.chain, c.key)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn common_name(cert: &X509Certificate<'_>) -> Option<String> {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_string)
}

fn subject_of(der: &[u8]) -> String {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c.subject().to_string())
        .unwrap_or_else(|_| "(unparsable certificate)".to_string())
}

/// Upper-case hex, no separators (the form fingerprints are published in).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|&b| b != b':').collect();
    if digits.len() % 2 != 0 {
        return None;
    }
    digits
        .chunks(2)
        .map(|p| {
            let s = std::str::from_utf8(p).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

pub mod der;
pub mod issue;

#[cfg(test)]
mod tests;
