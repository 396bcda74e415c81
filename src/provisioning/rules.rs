//! The provisioning-certificate doctor's rule registry, in the ZLint model (STYLE.md): one small
//! unit per firmware requirement, each with an id, a description, the source it comes from, the
//! AMT versions it applies to, the firmware answer it leads to, why, and the fix in OpenSSL's
//! words. [`run`] evaluates every rule and names the certificate behind each result.
//!
//! Requirements: provisioning.md §2 (certificate rules), §1.2 (the answers), §6 (what other tools
//! check and miss). Where the firmware's behaviour is unpublished the rule says UNCONFIRMED.

use serde_json::json;

use super::load::{
    CertFacts, KeyKind, ProvisioningCert, AMT_ACTIVATION_OID, SERVER_AUTH_OID, SETUP_OU,
};
use crate::amthi::HashAlgorithm;
use crate::error::ExitCode;
use crate::wsman::returns::{AddNextCertInChainReturn, AdminSetupReturn};

/// How bad a broken rule is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Activation fails.
    Error,
    /// Activation may work, but the certificate is outside what Intel documents.
    Warn,
}

/// The result of one rule on one certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Warn,
    Error,
    #[serde(rename = "na")]
    NotApplicable,
}

/// What AMT answers when the rule is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirmwareAnswer {
    AddNextCertInChain(AddNextCertInChainReturn),
    AdminSetup(AdminSetupReturn),
    /// Refused before AMT is asked (e.g. the key cannot sign).
    Nothing,
}

impl FirmwareAnswer {
    pub fn method(self) -> Option<&'static str> {
        match self {
            FirmwareAnswer::AddNextCertInChain(_) => Some("AddNextCertInChain"),
            FirmwareAnswer::AdminSetup(_) => Some("AdminSetup"),
            FirmwareAnswer::Nothing => None,
        }
    }

    pub fn value(self) -> Option<u32> {
        match self {
            FirmwareAnswer::AddNextCertInChain(r) => Some(r.code()),
            FirmwareAnswer::AdminSetup(r) => Some(r.code()),
            FirmwareAnswer::Nothing => None,
        }
    }

    /// `AddNextCertInChain returns CERT_VERIFY_FAILED (4)`.
    pub fn text(self) -> String {
        match self {
            FirmwareAnswer::AddNextCertInChain(r) => format!("AddNextCertInChain returns {r}"),
            FirmwareAnswer::AdminSetup(r) => format!("AdminSetup returns {r}"),
            FirmwareAnswer::Nothing => "no call reaches AMT: the agent cannot sign".into(),
        }
    }
}

/// AMT versions a rule applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applies {
    Always,
    /// From this AMT major version on.
    FromAmt(u16),
}

impl Applies {
    pub fn text(self) -> String {
        match self {
            Applies::Always => "all AMT versions".into(),
            Applies::FromAmt(v) => format!("AMT {v} and later"),
        }
    }
}

/// One entry of the machine's trusted root-hash list (AMTHI CFG_GetCertificateHashEntry).
#[derive(Clone, Debug)]
pub struct TrustedHash {
    pub name: String,
    pub algorithm: HashAlgorithm,
    pub hash: Vec<u8>,
    pub is_active: bool,
    pub is_default: bool,
}

/// What is known about the machine the certificate is meant for. Offline, only the flags.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    /// AMT (major, minor); `None` = unknown (rules for newer firmware then apply).
    pub amt_version: Option<(u16, u16)>,
    /// The trusted hash list; `None` offline.
    pub hashes: Option<Vec<TrustedHash>>,
    /// The domains the firmware reports; `None` when it was not asked (`cert check --offline`).
    pub domains: Option<FirmwareDomains>,
    /// `-d`: stands in for the domain AMT trusts only where the firmware cannot tell (offline,
    /// or its DHCP domain unreadable); never over what the firmware reports.
    pub dns_suffix_flag: Option<String>,
    /// The OS's DNS suffix: the last stand-in, where the firmware cannot tell and `-d` is absent.
    pub os_dns_suffix: Option<String>,
}

/// The domains as this machine's firmware reports them (provisioning.md §1.2, §2.4).
#[derive(Clone, Debug)]
pub struct FirmwareDomains {
    /// GET_PKI_FQDN_SUFFIX over AMTHI: the PKI DNS suffix (`""` when none is set).
    pub pki_dns_suffix: String,
    /// `AMT_SetupAndConfigurationService` over WS-MAN, or why it could not be read.
    pub wsman: Result<WsmanDomains, String>,
}

/// The domain properties of `AMT_SetupAndConfigurationService`.
#[derive(Clone, Debug, Default)]
pub struct WsmanDomains {
    /// `TrustedDNSSuffix`: the PKI DNS suffix configured in MEBx (or by setup.bin).
    pub trusted_dns_suffix: String,
    /// `DhcpDNSSuffix`: the domain AMT received with its own DHCP lease (option 15).
    pub dhcp_dns_suffix: String,
}

/// Where the suffix the leaf's CN is compared with comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SuffixSource {
    /// AMT's PKI DNS suffix, set in MEBx or by a USB setup.bin: trusted first.
    Pki,
    /// The domain of AMT's own DHCP lease (option 15): trusted when no PKI DNS suffix is set.
    Dhcp,
    /// `-d`, standing in where the firmware cannot tell.
    Flag,
    /// The OS's DNS suffix, standing in where the firmware cannot tell and `-d` is absent.
    Os,
}

impl SuffixSource {
    /// Where the suffix comes from, for people.
    pub fn text(self) -> &'static str {
        match self {
            SuffixSource::Pki => "AMT's PKI DNS suffix (set in MEBx or by a USB setup.bin)",
            SuffixSource::Dhcp => {
                "the DHCP option 15 domain AMT received (AMT has no PKI DNS suffix)"
            }
            SuffixSource::Flag => "-d, standing in for the domain AMT trusts",
            SuffixSource::Os => "the OS's DNS suffix, standing in for the domain AMT trusts",
        }
    }
}

/// The domain AMT trusts, as far as it is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustedDomain {
    /// A suffix, where it comes from, and for a stand-in (`-d`, the OS) why the firmware could
    /// not tell.
    Suffix {
        suffix: String,
        source: SuffixSource,
        stand_in_because: Option<String>,
    },
    /// AMT has no PKI DNS suffix and its DHCP lease gave no domain: it trusts none.
    Nothing,
    /// Not known, and why.
    Unknown(String),
}

impl TrustedDomain {
    /// One line for reports: `corp.example.com, the DHCP option 15 domain AMT received …`.
    pub fn text(&self) -> String {
        match self {
            TrustedDomain::Suffix {
                suffix,
                source,
                stand_in_because,
            } => match stand_in_because {
                None => format!("{suffix}, {}", source.text()),
                Some(why) => format!("{suffix}, {}: {why}", source.text()),
            },
            TrustedDomain::Nothing => {
                "none (AMT has no PKI DNS suffix and its DHCP lease gave no domain)".into()
            }
            TrustedDomain::Unknown(why) => format!("unknown ({why})"),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            TrustedDomain::Suffix {
                suffix,
                source,
                stand_in_because,
            } => json!({
                "suffix": suffix,
                "source": source,
                "from": source.text(),
                "standInBecause": stand_in_because,
            }),
            TrustedDomain::Nothing => json!({"suffix": null, "source": "none",
                "from": "AMT has no PKI DNS suffix and its DHCP lease gave no domain"}),
            TrustedDomain::Unknown(why) => {
                json!({"suffix": null, "source": "unknown", "from": why})
            }
        }
    }
}

fn clean_suffix(s: &str) -> Option<String> {
    let t = s.trim().trim_end_matches('.');
    (!t.is_empty()).then(|| t.to_string())
}

impl Machine {
    /// The domain AMT trusts (provisioning.md §2.4): its PKI DNS suffix (AMTHI, or WS-MAN's
    /// TrustedDNSSuffix), else the domain of its own DHCP lease. `-d` and then the OS's suffix
    /// stand in only where the firmware cannot tell: offline, or its DHCP domain unreadable.
    pub fn trusted_domain(&self) -> TrustedDomain {
        let stand_in = |why: String| {
            let flag = self.dns_suffix_flag.as_deref().and_then(clean_suffix);
            let os = self.os_dns_suffix.as_deref().and_then(clean_suffix);
            match (flag, os) {
                (Some(suffix), _) => TrustedDomain::Suffix {
                    suffix,
                    source: SuffixSource::Flag,
                    stand_in_because: Some(why),
                },
                (None, Some(suffix)) => TrustedDomain::Suffix {
                    suffix,
                    source: SuffixSource::Os,
                    stand_in_because: Some(why),
                },
                (None, None) => TrustedDomain::Unknown(why),
            }
        };
        let Some(fw) = &self.domains else {
            return stand_in("the firmware was not asked (offline)".into());
        };
        let pki = |suffix| TrustedDomain::Suffix {
            suffix,
            source: SuffixSource::Pki,
            stand_in_because: None,
        };
        if let Some(p) = clean_suffix(&fw.pki_dns_suffix) {
            return pki(p);
        }
        match &fw.wsman {
            Ok(w) => {
                if let Some(p) = clean_suffix(&w.trusted_dns_suffix) {
                    pki(p)
                } else if let Some(d) = clean_suffix(&w.dhcp_dns_suffix) {
                    TrustedDomain::Suffix {
                        suffix: d,
                        source: SuffixSource::Dhcp,
                        stand_in_because: None,
                    }
                } else {
                    TrustedDomain::Nothing
                }
            }
            Err(e) => stand_in(format!(
                "AMT has no PKI DNS suffix and its DHCP domain could not be read: {e}"
            )),
        }
    }
}

/// What the rules look at.
pub struct Input<'a> {
    pub cert: &'a ProvisioningCert,
    pub machine: &'a Machine,
    /// Seconds since the epoch.
    pub now: i64,
}

/// A rule's verdict on one certificate (or the chain).
pub struct Check {
    pub certificate: String,
    pub status: Status,
    /// The fix for this machine and certificate, when the rule's own is too general.
    pub fix: Option<String>,
}

pub enum Status {
    Pass,
    Fail(String),
    NotApplicable(String),
}

fn pass(c: &CertFacts) -> Check {
    Check {
        certificate: c.name().to_string(),
        status: Status::Pass,
        fix: None,
    }
}

fn fail(c: &CertFacts, why: impl Into<String>) -> Check {
    Check {
        certificate: c.name().to_string(),
        status: Status::Fail(why.into()),
        fix: None,
    }
}

/// A failure whose fix depends on the machine (the domain AMT trusts).
fn fail_with_fix(c: &CertFacts, why: impl Into<String>, fix: String) -> Check {
    Check {
        fix: Some(fix),
        ..fail(c, why)
    }
}

fn na(certificate: impl Into<String>, why: impl Into<String>) -> Check {
    Check {
        certificate: certificate.into(),
        status: Status::NotApplicable(why.into()),
        fix: None,
    }
}

/// One firmware requirement.
pub struct Rule {
    pub id: &'static str,
    pub description: &'static str,
    /// Where the requirement comes from.
    pub source: &'static str,
    pub applies: Applies,
    pub severity: Severity,
    pub firmware: FirmwareAnswer,
    /// Why the firmware answers that.
    pub explanation: &'static str,
    /// The fix, in OpenSSL's words.
    pub fix: &'static str,
    /// The exit code (rpc-go's numbers) when this rule stops an activation.
    pub exit: ExitCode,
    pub check: fn(&Input<'_>) -> Vec<Check>,
}

/// One result: a rule, a certificate, an outcome.
pub struct Finding {
    pub rule: &'static Rule,
    pub outcome: Outcome,
    pub certificate: String,
    pub detail: String,
    /// A fix for this case, replacing the rule's general one.
    pub specific_fix: Option<String>,
}

impl Finding {
    pub fn is_failure(&self) -> bool {
        matches!(self.outcome, Outcome::Error | Outcome::Warn)
    }

    /// The fix: this case's when the rule has one, else the rule's.
    pub fn fix(&self) -> &str {
        self.specific_fix.as_deref().unwrap_or(self.rule.fix)
    }

    /// cargo-style text: `error[ID]: …`, `--> certificate: …`, `= firmware: …`, `= help: …`.
    pub fn render(&self) -> String {
        let level = match self.outcome {
            Outcome::Error => "error",
            Outcome::Warn => "warning",
            Outcome::Pass => "ok",
            Outcome::NotApplicable => "n/a",
        };
        let r = self.rule;
        let mut s = format!("{level}[{}]: {}\n", r.id, r.description);
        s += &format!("  --> certificate: {}\n", self.certificate);
        if !self.detail.is_empty() {
            s += &format!("  = found: {}\n", self.detail);
        }
        if self.is_failure() {
            s += &format!("  = firmware: {}\n", r.firmware.text());
            s += &format!("  = why: {}\n", r.explanation);
            s += &format!(
                "  = source: {} (applies to {})\n",
                r.source,
                r.applies.text()
            );
            s += &format!("  = help: {}\n", self.fix());
        }
        s
    }

    pub fn to_json(&self) -> serde_json::Value {
        let r = self.rule;
        json!({
            "id": r.id,
            "outcome": self.outcome,
            "certificate": self.certificate,
            "detail": self.detail,
            "description": r.description,
            "source": r.source,
            "applies": r.applies.text(),
            "firmware": r.firmware.text(),
            "firmwareMethod": r.firmware.method(),
            "firmwareReturnValue": r.firmware.value(),
            "explanation": r.explanation,
            "fix": self.fix(),
            "exitCode": r.exit.code(),
        })
    }
}

/// Whether a rule for `applies` is in force on this machine (unknown version: yes).
fn in_force(applies: Applies, m: &Machine) -> bool {
    match (applies, m.amt_version) {
        (Applies::Always, _) => true,
        (Applies::FromAmt(_), None) => true,
        (Applies::FromAmt(v), Some((major, _))) => major >= v,
    }
}

/// Runs every rule.
pub fn run(input: &Input<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for rule in RULES {
        if !in_force(rule.applies, input.machine) {
            out.push(Finding {
                rule,
                outcome: Outcome::NotApplicable,
                certificate: "every certificate".into(),
                specific_fix: None,
                detail: format!(
                    "applies to {}; this is AMT {}",
                    rule.applies.text(),
                    input
                        .machine
                        .amt_version
                        .map(|(a, b)| format!("{a}.{b}"))
                        .unwrap_or_default()
                ),
            });
            continue;
        }
        for c in (rule.check)(input) {
            let (outcome, detail) = match c.status {
                Status::Pass => (Outcome::Pass, String::new()),
                Status::NotApplicable(d) => (Outcome::NotApplicable, d),
                Status::Fail(d) => (
                    match rule.severity {
                        Severity::Error => Outcome::Error,
                        Severity::Warn => Outcome::Warn,
                    },
                    d,
                ),
            };
            out.push(Finding {
                rule,
                outcome,
                certificate: c.certificate,
                detail,
                specific_fix: c.fix,
            });
        }
    }
    out
}

/// The first error, in registry order (which follows the order AMT checks in: chain calls, then
/// AdminSetup).
pub fn first_error(findings: &[Finding]) -> Option<&Finding> {
    findings.iter().find(|f| f.outcome == Outcome::Error)
}

const CVF: FirmwareAnswer =
    FirmwareAnswer::AddNextCertInChain(AddNextCertInChainReturn::CertVerifyFailed);
const AUTH: FirmwareAnswer = FirmwareAnswer::AdminSetup(AdminSetupReturn::AuthFailed);

/// The registry. Order: what the firmware checks first comes first.
pub static RULES: &[Rule] = &[
    Rule {
        id: "AMT-CHAIN-ROOT",
        description: "the chain ends in a self-signed root certificate",
        source: "provisioning.md §2.5 (the root is what AMT hashes and matches; rpc-go exit 126)",
        applies: Applies::Always,
        severity: Severity::Error,
        firmware: CVF,
        explanation: "AMT matches the hash of the certificate sent with IsRootCertificate=true against its trusted list; a chain without its root sends an intermediate or the leaf in that place",
        fix: "put the root in the file: openssl pkcs12 -export -inkey leaf.key -in leaf.crt -certfile intermediates-and-root.crt -out prov.pfx",
        exit: ExitCode::ProvisioningCertNoRoot,
        check: check_root_present,
    },
    Rule {
        id: "AMT-CHAIN-COMPLETE",
        description: "every certificate is issued by the next one in the chain (name and signature)",
        source: "provisioning.md §2.5 (order leaf → root, each call verified against the previous certificate)",
        applies: Applies::Always,
        severity: Severity::Error,
        firmware: CVF,
        explanation: "AMT verifies each certificate it receives against the one before it; a missing intermediate or a certificate signed by another key breaks the chain at that call",
        fix: "include every intermediate between the leaf and the root: cat intermediate.crt root.crt > chain.crt; openssl pkcs12 -export -inkey leaf.key -in leaf.crt -certfile chain.crt -out prov.pfx",
        exit: ExitCode::AddCertificateFailed,
        check: check_complete,
    },
    Rule {
        id: "AMT-CHAIN-LENGTH",
        description: "the chain has at most 4 certificates (limit UNCONFIRMED)",
        source: "provisioning.md §2.5 (ReturnValue 5 exists; 4-certificate chains are known to work; the exact limit is unpublished)",
        applies: Applies::Always,
        severity: Severity::Error,
        firmware: FirmwareAnswer::AddNextCertInChain(AddNextCertInChainReturn::CertChainLengthExceeded),
        explanation: "AMT keeps a bounded number of chain certificates during host-based setup",
        fix: "use a shorter chain (leaf, at most two intermediates, root), e.g. a leaf issued directly by your own root: openssl x509 -req -in leaf.csr -CA root.crt -CAkey root.key -extfile cert.conf -out leaf.crt",
        exit: ExitCode::AddCertificateFailed,
        check: check_length,
    },
    Rule {
        id: "AMT-VALIDITY",
        description: "every certificate is valid now (notBefore ≤ now ≤ notAfter)",
        source: "provisioning.md §2.6 (RPS rejects such certificates at upload; AMT's clock source is UNCONFIRMED)",
        applies: Applies::Always,
        severity: Severity::Error,
        firmware: CVF,
        explanation: "an expired or not-yet-valid certificate does not verify; check the host clock too (AMT's clock follows it)",
        fix: "re-issue the certificate with a current validity, e.g. openssl x509 -req … -days 365; if the dates look right, fix the clock (timedatectl)",
        exit: ExitCode::AddCertificateFailed,
        check: check_validity,
    },
    Rule {
        id: "AMT-KEY-RSA",
        description: "the leaf's key is RSA",
        source: "provisioning.md §2.3 (SigningAlgorithm enumerates RSA only; RPS rejects EC provisioning certificates, rps#2604; firmware answer UNCONFIRMED)",
        applies: Applies::Always,
        severity: Severity::Error,
        firmware: CVF,
        explanation: "the AdminSetup signature is RSA PKCS#1 v1.5; an EC-keyed leaf cannot produce it",
        fix: "issue the leaf for an RSA key: openssl genrsa -out leaf.key 2048 (or 3072), then a new CSR and certificate",
        exit: ExitCode::SigningFailed,
        check: check_rsa,
    },
    Rule {
        id: "AMT-KEY-SIZE",
        description: "every RSA key is at least 2048 bits",
        source: "provisioning.md §2.1, §2.3 (Intel rootcertificatehashes.htm: RSA < 2048 not supported from ME 15 H / ME 16)",
        applies: Applies::FromAmt(15),
        severity: Severity::Error,
        firmware: CVF,
        explanation: "from ME 15 (H platforms) and ME 16 (all), AMT refuses RSA keys under 2048 bits anywhere in the chain",
        fix: "re-key: openssl genrsa -out new.key 2048 (3072 for AMT 22), then re-issue the certificate (and everything it signed, for a CA)",
        exit: ExitCode::AddCertificateFailed,
        check: check_key_size,
    },
    Rule {
        id: "AMT-SIG-SHA1",
        description: "no certificate is signed with SHA-1 (or MD5)",
        source: "provisioning.md §2.1, §2.2 (Intel: no certificate in the chain, root included, may be SHA-1-based from ME 15 H / ME 16)",
        applies: Applies::FromAmt(15),
        severity: Severity::Error,
        firmware: CVF,
        explanation: "from ME 15 (H) / ME 16, a SHA-1 signature anywhere in the chain, the self-signed root included, fails verification",
        fix: "re-sign with SHA-256: openssl x509 -req -sha256 … (for a root: openssl req -x509 -sha256 …); chains ending in an old SHA-1 root must be re-chained to a SHA-256 root",
        exit: ExitCode::AddCertificateFailed,
        check: check_sha1,
    },
    Rule {
        id: "AMT-ISSUER-CA",
        description: "every issuing certificate has basicConstraints CA:TRUE",
        source: "provisioning.md §2.2 (RFC 5280 / node-forge chain rules; the Intel forum case: leaf accepted, root rejected)",
        applies: Applies::Always,
        severity: Severity::Error,
        firmware: CVF,
        explanation: "AMT verifies each issuer as a CA; without basicConstraints cA=TRUE the AddNextCertInChain call for that certificate fails after the leaf's succeeded",
        fix: "add `basicConstraints = critical, CA:TRUE` to the CA's extension section (e.g. [v3_ca], used with openssl req -x509 -extensions v3_ca, or openssl x509 -req -extfile ca.conf), then re-issue the CA and what it signed",
        exit: ExitCode::AddCertificateFailed,
        check: check_issuer_ca,
    },
    Rule {
        id: "AMT-ISSUER-KEYCERTSIGN",
        description: "an issuing certificate with keyUsage includes keyCertSign",
        source: "provisioning.md §2.2 (RFC 5280; an unsourced field report of a root lacking keyCertSign failing with CERT_VERIFY_FAILED)",
        applies: Applies::Always,
        severity: Severity::Error,
        firmware: CVF,
        explanation: "a keyUsage without keyCertSign forbids the key to sign certificates, so the certificate below it does not verify",
        fix: "set `keyUsage = critical, keyCertSign, cRLSign` in the CA's extension section (or remove keyUsage), then re-issue the CA and what it signed",
        exit: ExitCode::AddCertificateFailed,
        check: check_issuer_key_usage,
    },
    Rule {
        id: "AMT-ISSUER-PATHLEN",
        description: "pathLenConstraint of each issuer allows the intermediates below it",
        source: "provisioning.md §2.2 (RFC 5280, node-forge); whether AMT enforces it is UNCONFIRMED",
        applies: Applies::Always,
        severity: Severity::Warn,
        firmware: CVF,
        explanation: "an RFC 5280 verifier rejects a chain with more intermediates below a CA than its pathlen allows",
        fix: "raise or drop the pathlen: `basicConstraints = critical, CA:TRUE, pathlen:1` (or no pathlen) in the CA's extension section",
        exit: ExitCode::AddCertificateFailed,
        check: check_pathlen,
    },
    Rule {
        id: "AMT-ROOT-HASH",
        description: "the root's hash is in this AMT's trusted list and active",
        source: "provisioning.md §2.7 (DER fingerprints, matched with the entry's own algorithm; only active entries count)",
        applies: Applies::Always,
        severity: Severity::Error,
        firmware: CVF,
        explanation: "AMT trusts a chain only when the root's fingerprint is an active entry of its hash list; the AddNextCertInChain call for the root fails otherwise",
        fix: "print the root's hashes with `amt-agent cert hash FILE` and add the SHA-256 one in MEBx (Remote Setup and Configuration → TLS PKI → Manage Hashes → Insert, answer Y to make it active) or with a USB setup.bin; or use a root already in the list (amt-agent amtinfo --cert)",
        exit: ExitCode::RootNotTrusted,
        check: check_root_hash,
    },
    Rule {
        id: "AMT-LEAF-NO-EXTENSIONS",
        description: "the leaf carries X.509v3 extensions",
        source: "provisioning.md §2.3 (classic cause: openssl x509 -req without -extfile, which does not copy the CSR's extensions)",
        applies: Applies::Always,
        severity: Severity::Error,
        firmware: AUTH,
        explanation: "a leaf without any extension has neither the AMT activation OID nor serverAuth; AMT accepts the chain but refuses AdminSetup",
        fix: "re-sign the leaf with its extensions: openssl x509 -req -in leaf.csr -CA root.crt -CAkey root.key -sha256 -days 365 -extfile cert.conf -out leaf.crt, where cert.conf has `extendedKeyUsage = serverAuth, 2.16.840.1.113741.1.2.3` (or add -copy_extensions copyall when the CSR carries them)",
        exit: ExitCode::InvalidControlMode,
        check: check_no_extensions,
    },
    Rule {
        id: "AMT-LEAF-AMT-USAGE",
        description: "the leaf has EKU 2.16.840.1.113741.1.2.3 or OU \"Intel(R) Client Setup Certificate\"",
        source: "provisioning.md §2.1, §2.3 (Intel: the AMT provisioning OID, or the exact, case-sensitive OU)",
        applies: Applies::Always,
        severity: Severity::Error,
        firmware: AUTH,
        explanation: "AMT only accepts a setup certificate marked for AMT activation; otherwise AdminSetup fails although the chain was accepted",
        fix: "add `extendedKeyUsage = serverAuth, 2.16.840.1.113741.1.2.3` to the leaf's extension file (cert.conf) and re-sign with -extfile cert.conf; or put OU=Intel(R) Client Setup Certificate in the subject",
        exit: ExitCode::InvalidControlMode,
        check: check_amt_usage,
    },
    Rule {
        id: "AMT-LEAF-SERVERAUTH",
        description: "a leaf with the AMT OID also has serverAuth",
        source: "provisioning.md §2.1 (Intel: the EKU \"must contain\" the SSL Server OID; firmware enforcement UNCONFIRMED)",
        applies: Applies::Always,
        severity: Severity::Warn,
        firmware: AUTH,
        explanation: "Intel documents serverAuth alongside the AMT OID; the early DMT draft (clientAuth only) produced leaves without it",
        fix: "use `extendedKeyUsage = serverAuth, 2.16.840.1.113741.1.2.3` in cert.conf and re-sign with -extfile cert.conf",
        exit: ExitCode::InvalidControlMode,
        check: check_server_auth,
    },
    Rule {
        id: "AMT-LEAF-NOT-CA",
        description: "the leaf is not a CA (basicConstraints CA:FALSE)",
        source: "provisioning.md §2.3, §2.8 (DMT's cert.conf; its early draft had CA:TRUE on the leaf)",
        applies: Applies::Always,
        severity: Severity::Warn,
        firmware: AUTH,
        explanation: "a CA-flagged leaf is outside Intel's and DMT's profile; firmware behaviour UNCONFIRMED",
        fix: "set `basicConstraints = CA:FALSE` in cert.conf and re-sign with -extfile cert.conf",
        exit: ExitCode::InvalidControlMode,
        check: check_leaf_not_ca,
    },
    Rule {
        id: "AMT-KEY-MATCH",
        description: "the file's private key belongs to the leaf",
        source: "provisioning.md §2.3 (MeshCentral and RPS compare the modulus); rpc-go exit 125/133",
        applies: Applies::Always,
        severity: Severity::Error,
        firmware: AUTH,
        explanation: "AdminSetup's signature is verified with the leaf's public key; another key (or none) cannot produce it",
        fix: "export the leaf with its own key: openssl pkcs12 -export -inkey leaf.key -in leaf.crt -certfile chain.crt -out prov.pfx (check with: openssl x509 -noout -modulus -in leaf.crt | openssl md5; openssl rsa -noout -modulus -in leaf.key | openssl md5)",
        exit: ExitCode::SigningFailed,
        check: check_key_match,
    },
    Rule {
        id: DOMAIN_RULE,
        description: "the leaf's CN matches the DNS suffix AMT trusts",
        source: "provisioning.md §2.4 (AMT trusts its PKI DNS suffix from MEBx/setup.bin, else the DHCP option 15 domain of its own lease, read over AMTHI and WS-MAN; matching by MeshCentral's TLD rule; exact firmware rule UNCONFIRMED)",
        applies: Applies::Always,
        severity: Severity::Error,
        firmware: AUTH,
        explanation: "\"the domain suffix in the leaf certificate must match the domain suffix of the DNS entry associated with the host platform\" (Intel); AMT compares the CN with its PKI DNS suffix, or without one with the domain of its own DHCP lease, never with what the host is told; otherwise AdminSetup fails",
        fix: "issue the leaf for a name in the domain AMT trusts (amt-agent amtinfo --dns shows its PKI DNS suffix; without one it is the DHCP option 15 domain of AMT's wired LAN), or make AMT trust the certificate's domain: amt-agent setup-bin create --root-cert ROOT.pem --pki-dns-suffix DOMAIN -o setup.bin (USB stick, read by MEBx at boot), MEBx → Remote Setup and Configuration → TLS PKI → PKI DNS Suffix, or DHCP option 15 on AMT's wired LAN",
        exit: ExitCode::InvalidControlMode,
        check: check_domain,
    },
];

/// The id of the domain rule: the one cause of AUTH_FAILED the certificate file alone cannot show.
pub const DOMAIN_RULE: &str = "AMT-LEAF-DOMAIN";

/// The broken rules that explain `answer` from AMT, most likely first: those broken by the
/// certificate of the refused call (`subject`) when there are any, else all; for AdminSetup's
/// answers the domain rule leads, since it depends on the machine, not on the file.
pub fn explain<'a>(
    findings: &'a [Finding],
    answer: FirmwareAnswer,
    subject: Option<&str>,
) -> Vec<&'a Finding> {
    let matching: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.is_failure() && f.rule.firmware == answer)
        .collect();
    let on_this: Vec<&Finding> = matching
        .iter()
        .copied()
        .filter(|f| Some(f.certificate.as_str()) == subject)
        .collect();
    let mut out = if on_this.is_empty() {
        matching
    } else {
        on_this
    };
    // Errors before warnings, the domain first among them; otherwise registry order.
    out.sort_by_key(|f| (f.outcome != Outcome::Error, f.rule.id != DOMAIN_RULE));
    out
}

fn leaf<'a>(i: &'a Input<'_>) -> Option<&'a CertFacts> {
    i.cert.chain.first()
}

fn no_chain() -> Vec<Check> {
    vec![na("(none)", "no leaf certificate could be identified")]
}

fn any_self_issued(i: &Input<'_>) -> bool {
    i.cert
        .chain
        .iter()
        .chain(i.cert.unrelated.iter())
        .any(CertFacts::is_self_issued)
}

fn check_root_present(i: &Input<'_>) -> Vec<Check> {
    let Some(last) = i.cert.chain.last() else {
        return no_chain();
    };
    if last.is_self_issued() {
        return vec![pass(last)];
    }
    if any_self_issued(i) {
        // A root is in the file but not on the leaf's path: AMT-CHAIN-COMPLETE says which link.
        return vec![na(
            last.name(),
            "a root is in the file; see AMT-CHAIN-COMPLETE",
        )];
    }
    vec![fail(
        last,
        format!(
            "the chain ends at this certificate, issued by {}, and the file holds no self-signed root",
            last.issuer
        ),
    )]
}

fn check_complete(i: &Input<'_>) -> Vec<Check> {
    let chain = &i.cert.chain;
    if chain.is_empty() {
        return no_chain();
    }
    let mut out = Vec::new();
    for (k, c) in chain.iter().enumerate() {
        match chain.get(k + 1) {
            Some(next) => {
                if c.signed_by(next) {
                    out.push(pass(c));
                } else {
                    out.push(fail(
                        c,
                        format!(
                            "its issuer's name matches {} but that key did not sign it",
                            next.name()
                        ),
                    ));
                }
            }
            None if c.is_self_issued() => {
                if c.signed_by(c) {
                    out.push(pass(c));
                } else {
                    out.push(fail(
                        c,
                        "self-issued but its own key does not verify its signature",
                    ));
                }
            }
            None if any_self_issued(i) => out.push(fail(
                c,
                format!(
                    "its issuer {} is not in the file, so the chain stops here before the root{}",
                    c.issuer,
                    if i.cert.unrelated.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (also in the file, off the path: {})",
                            i.cert
                                .unrelated
                                .iter()
                                .map(CertFacts::name)
                                .collect::<Vec<_>>()
                                .join("; ")
                        )
                    }
                ),
            )),
            None => out.push(na(c.name(), "no root in the file; see AMT-CHAIN-ROOT")),
        }
    }
    out
}

fn check_length(i: &Input<'_>) -> Vec<Check> {
    let Some(l) = leaf(i) else {
        return no_chain();
    };
    let n = i.cert.chain.len();
    if n <= 4 {
        vec![pass(l)]
    } else {
        vec![fail(
            l,
            format!("the chain from this leaf has {n} certificates; the 5th AddNextCertInChain call is refused"),
        )]
    }
}

fn fmt_time(t: i64) -> String {
    x509_parser::time::ASN1Time::from_timestamp(t)
        .map(|a| a.to_string())
        .unwrap_or_else(|_| t.to_string())
}

fn check_validity(i: &Input<'_>) -> Vec<Check> {
    i.cert
        .chain
        .iter()
        .map(|c| {
            if i.now < c.not_before {
                fail(c, format!("not valid before {}", fmt_time(c.not_before)))
            } else if i.now > c.not_after {
                fail(c, format!("expired {}", fmt_time(c.not_after)))
            } else {
                pass(c)
            }
        })
        .collect()
}

fn check_rsa(i: &Input<'_>) -> Vec<Check> {
    let Some(l) = leaf(i) else {
        return no_chain();
    };
    match &l.key {
        KeyKind::Rsa { .. } => vec![pass(l)],
        KeyKind::Other(k) => vec![fail(l, format!("the key is {k}, not RSA"))],
    }
}

fn check_key_size(i: &Input<'_>) -> Vec<Check> {
    i.cert
        .chain
        .iter()
        .map(|c| match c.key {
            KeyKind::Rsa { bits } if bits < 2048 => fail(c, format!("RSA {bits} bits")),
            _ => pass(c),
        })
        .collect()
}

fn check_sha1(i: &Input<'_>) -> Vec<Check> {
    i.cert
        .chain
        .iter()
        .map(|c| match c.signature_digest {
            "SHA-1" | "MD5" => fail(
                c,
                format!("signed with {} ({})", c.signature_digest, c.signature_oid),
            ),
            _ => pass(c),
        })
        .collect()
}

fn issuers<'a>(i: &'a Input<'_>) -> impl Iterator<Item = &'a CertFacts> {
    i.cert.chain.iter().skip(1)
}

fn check_issuer_ca(i: &Input<'_>) -> Vec<Check> {
    issuers(i)
        .map(|c| match c.basic_constraints {
            Some((true, _)) => pass(c),
            Some((false, _)) => fail(c, "basicConstraints says CA:FALSE"),
            None => fail(c, "no basicConstraints extension"),
        })
        .collect()
}

fn check_issuer_key_usage(i: &Input<'_>) -> Vec<Check> {
    issuers(i)
        .map(|c| match c.key_usage {
            Some((false, ds)) => fail(
                c,
                format!(
                    "keyUsage is present without keyCertSign{}",
                    if ds { " (it has digitalSignature)" } else { "" }
                ),
            ),
            _ => pass(c),
        })
        .collect()
}

fn check_pathlen(i: &Input<'_>) -> Vec<Check> {
    i.cert
        .chain
        .iter()
        .enumerate()
        .skip(1)
        .map(|(k, c)| match c.basic_constraints {
            // Intermediates below this CA: every certificate between it and the leaf.
            Some((true, Some(p))) if (k - 1) as u32 > p => fail(
                c,
                format!("pathlen:{p} but {} intermediate(s) below it", k - 1),
            ),
            _ => pass(c),
        })
        .collect()
}

fn hash_of(alg: HashAlgorithm, der: &[u8]) -> Option<Vec<u8>> {
    use ring::digest;
    let a = match alg {
        HashAlgorithm::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        HashAlgorithm::Sha256 => &digest::SHA256,
        HashAlgorithm::Sha384 => &digest::SHA384,
        HashAlgorithm::Sha512 => &digest::SHA512,
        _ => return None,
    };
    Some(digest::digest(a, der).as_ref().to_vec())
}

fn check_root_hash(i: &Input<'_>) -> Vec<Check> {
    let Some(root) = i.cert.chain.last() else {
        return no_chain();
    };
    let Some(hashes) = &i.machine.hashes else {
        return vec![na(
            root.name(),
            "offline: the machine's hash list was not read",
        )];
    };
    let matching: Vec<&TrustedHash> = hashes
        .iter()
        .filter(|h| {
            hash_of(h.algorithm, &root.der)
                .is_some_and(|d| h.hash.len() >= d.len() && h.hash[..d.len()] == d[..])
        })
        .collect();
    if matching.iter().any(|h| h.is_active) {
        return vec![pass(root)];
    }
    if let Some(h) = matching.first() {
        return vec![fail(
            root,
            format!(
                "its {} hash matches entry \"{}\" ({}), which is NOT active",
                h.algorithm.name(),
                h.name,
                if h.is_default { "default" } else { "custom" }
            ),
        )];
    }
    let sha256 = hash_of(HashAlgorithm::Sha256, &root.der).unwrap_or_default();
    vec![fail(
        root,
        format!(
            "none of the {} entries matches; its SHA-256 is {}",
            hashes.len(),
            sha256
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<String>()
        ),
    )]
}

fn has_setup_ou(c: &CertFacts) -> bool {
    c.organizational_units.iter().any(|o| o == SETUP_OU)
}

fn has_amt_oid(c: &CertFacts) -> bool {
    c.extended_key_usage
        .as_ref()
        .is_some_and(|e| e.iter().any(|o| o == AMT_ACTIVATION_OID))
}

fn check_no_extensions(i: &Input<'_>) -> Vec<Check> {
    let Some(l) = leaf(i) else {
        return no_chain();
    };
    if l.has_extensions || has_setup_ou(l) {
        vec![pass(l)]
    } else {
        vec![fail(
            l,
            "the leaf has no X.509v3 extensions at all (signed without -extfile?), so no AMT OID, no serverAuth, and no OU either",
        )]
    }
}

fn check_amt_usage(i: &Input<'_>) -> Vec<Check> {
    let Some(l) = leaf(i) else {
        return no_chain();
    };
    if !l.has_extensions && !has_setup_ou(l) {
        return vec![na(
            l.name(),
            "the leaf has no extensions; see AMT-LEAF-NO-EXTENSIONS",
        )];
    }
    if has_amt_oid(l) || has_setup_ou(l) {
        return vec![pass(l)];
    }
    let eku = match &l.extended_key_usage {
        Some(e) if !e.is_empty() => format!("extendedKeyUsage is {}", e.join(", ")),
        _ => "no extendedKeyUsage".into(),
    };
    vec![fail(
        l,
        format!("{eku}, and no OU \"{SETUP_OU}\" in the subject"),
    )]
}

fn check_server_auth(i: &Input<'_>) -> Vec<Check> {
    let Some(l) = leaf(i) else {
        return no_chain();
    };
    match &l.extended_key_usage {
        Some(e) if e.iter().any(|o| o == AMT_ACTIVATION_OID) => {
            if e.iter().any(|o| o == SERVER_AUTH_OID) {
                vec![pass(l)]
            } else {
                vec![fail(
                    l,
                    format!("extendedKeyUsage is {} without serverAuth", e.join(", ")),
                )]
            }
        }
        _ => vec![na(l.name(), "no extendedKeyUsage with the AMT OID")],
    }
}

fn check_leaf_not_ca(i: &Input<'_>) -> Vec<Check> {
    let Some(l) = leaf(i) else {
        return no_chain();
    };
    match l.basic_constraints {
        Some((true, _)) => vec![fail(l, "the leaf says CA:TRUE")],
        _ => vec![pass(l)],
    }
}

fn check_key_match(i: &Input<'_>) -> Vec<Check> {
    let Some(l) = leaf(i) else {
        return no_chain();
    };
    if let Some(who) = i.cert.key_held_by {
        return vec![na(
            l.name(),
            format!("{who} holds the private key and signs; the agent never has it"),
        )];
    }
    match &i.cert.key {
        None => vec![fail(l, "the file holds no private key")],
        Some(Err(e)) => vec![fail(l, format!("the private key cannot be used: {e}"))],
        Some(Ok(k)) if k.public_key() == l.public_key_bits.as_slice() => vec![pass(l)],
        Some(Ok(_)) => vec![fail(
            l,
            "the private key's public half is not this certificate's key",
        )],
    }
}

/// Labels of the CN AMT compares, per TLD (MeshCentral's table, provisioning.md §2.4).
fn labels_for_tld(tld: &str) -> Option<usize> {
    const TWO: &[&str] = &[
        "com", "net", "org", "gov", "edu", "de", "ch", "dk", "cz", "cl", "ua",
    ];
    const THREE: &[&str] = &[
        "arpa", "fr", "cn", "nl", "br", "mx", "uk", "pl", "tw", "ca", "fi", "be", "ru", "se", "ar",
        "es", "no", "at", "in", "tr", "ro", "hu", "nz", "pt", "il", "gr", "co", "ie", "za", "th",
        "sg", "hk", "lt", "id", "hr", "ee", "bg",
    ];
    if TWO.contains(&tld) {
        Some(2)
    } else if THREE.contains(&tld) {
        Some(3)
    } else {
        None
    }
}

/// The part of a CN that is compared (provisioning.md §2.4, MeshCentral's rule): without `*.`,
/// lower case, shortened to its registrable part by TLD (the whole CN for TLDs outside the
/// table). A suffix equal to it, or ending with `.` + it, matches.
pub fn cn_domain(cn: &str) -> String {
    let cn = cn
        .trim()
        .trim_start_matches("*.")
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let labels: Vec<&str> = cn.split('.').collect();
    let keep = labels
        .last()
        .and_then(|t| labels_for_tld(t))
        .unwrap_or(labels.len())
        .min(labels.len());
    labels[labels.len() - keep..].join(".")
}

/// Whether a leaf CN matches a trusted DNS suffix (provisioning.md §2.4, MeshCentral's rule):
/// strip `*.`, shorten the CN to its registrable part by TLD, then match when equal or when the
/// suffix ends with `.` + that part. Case-insensitive; a trailing dot is ignored.
pub fn cn_matches_suffix(cn: &str, suffix: &str) -> bool {
    let short = cn_domain(cn);
    let suffix = suffix.trim().trim_end_matches('.').to_ascii_lowercase();
    if short.is_empty() || suffix.is_empty() {
        return false;
    }
    short == suffix || suffix.ends_with(&format!(".{short}"))
}

/// A CN that the suffix matches: `amt.` + it when the rule allows, else the suffix itself.
fn cn_under(suffix: &str) -> String {
    let candidate = format!("amt.{suffix}");
    if cn_matches_suffix(&candidate, suffix) {
        candidate
    } else {
        suffix.to_string()
    }
}

/// How to make AMT trust `want` (the certificate's domain) instead.
fn enrol_fixes(want: &str) -> String {
    format!(
        "amt-agent setup-bin create --root-cert ROOT.pem --pki-dns-suffix {want} -o setup.bin (USB stick, read by MEBx at boot; add --current-mebx-password-file once the MEBx password is no longer admin), or MEBx → Remote Setup and Configuration → TLS PKI → PKI DNS Suffix = {want}"
    )
}

fn check_domain(i: &Input<'_>) -> Vec<Check> {
    let Some(l) = leaf(i) else {
        return no_chain();
    };
    let Some(cn) = l.common_name.as_deref() else {
        return vec![fail(l, "the leaf has no CN")];
    };
    let want = cn_domain(cn);
    let (suffix, source, stand_in_because) = match i.machine.trusted_domain() {
        TrustedDomain::Unknown(why) => {
            return vec![na(
                l.name(),
                format!("the domain AMT trusts is not known ({why}); pass -d SUFFIX: its PKI DNS suffix (amt-agent amtinfo --dns), else the DHCP option 15 domain of AMT's wired LAN"),
            )]
        }
        TrustedDomain::Nothing => {
            return vec![fail_with_fix(
                l,
                format!("AMT has no PKI DNS suffix and its DHCP lease gave no domain (option 15): it trusts no domain, so no CN matches (this one is {cn})"),
                format!(
                    "give AMT the certificate's domain {want}: {}, or DHCP option 15 = {want} on AMT's wired LAN",
                    enrol_fixes(&want)
                ),
            )]
        }
        TrustedDomain::Suffix {
            suffix,
            source,
            stand_in_because,
        } => (suffix, source, stand_in_because),
    };
    if cn_matches_suffix(cn, &suffix) {
        return vec![pass(l)];
    }
    let detail = match &stand_in_because {
        None => format!(
            "CN {cn} does not match {suffix}, {}; AMT trusts only that",
            source.text()
        ),
        Some(why) => format!("CN {cn} does not match {suffix}, {} ({why})", source.text()),
    };
    let good_cn = cn_under(&suffix);
    let fix = match source {
        SuffixSource::Pki => format!(
            "AMT trusts {suffix}, its PKI DNS suffix: issue the leaf for a name in it (CN={good_cn} in csr.conf), or change the PKI DNS suffix to the certificate's domain: {}",
            enrol_fixes(&want)
        ),
        SuffixSource::Dhcp => format!(
            "AMT has no PKI DNS suffix and trusts {suffix}, the domain of its own DHCP lease: issue the leaf for a name in it (CN={good_cn} in csr.conf), or enrol the certificate's domain as AMT's PKI DNS suffix: {}; or hand out {want} as DHCP option 15 on AMT's wired LAN",
            enrol_fixes(&want)
        ),
        SuffixSource::Flag | SuffixSource::Os => format!(
            "{suffix} only stands in for the domain AMT trusts: check its PKI DNS suffix (amt-agent amtinfo --dns; without one, the DHCP option 15 domain of AMT's wired LAN) and issue the leaf for a name in it, or enrol {want}: {}",
            enrol_fixes(&want)
        ),
    };
    vec![fail_with_fix(l, detail, fix)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cn_matching_follows_the_tld_rule() {
        assert!(cn_matches_suffix("amt.example.com", "example.com"));
        assert!(cn_matches_suffix("*.example.com", "example.com"));
        assert!(cn_matches_suffix("amt.example.com", "site1.example.com"));
        assert!(cn_matches_suffix("AMT.Example.COM", "example.com."));
        assert!(cn_matches_suffix("amt.example.co.uk", "example.co.uk"));
        assert!(!cn_matches_suffix("amt.example.co.uk", "other.co.uk"));
        assert!(!cn_matches_suffix("amt.other.com", "example.com"));
        assert!(!cn_matches_suffix("amt.example.com", ""));
        // Unknown TLD: the whole CN.
        assert!(cn_matches_suffix("amt.example.io", "x.amt.example.io"));
        assert!(!cn_matches_suffix("amt.example.io", "example.io"));
    }

    /// A leaf for `cn` (self-signed will do: only the domain rule is looked at).
    fn leaf_for(cn: &str) -> ProvisioningCert {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let der = p.self_signed(&key).unwrap().der().to_vec();
        ProvisioningCert {
            chain: vec![CertFacts::from_der(&der).unwrap()],
            unrelated: Vec::new(),
            key: None,
            key_held_by: None,
            format: "test",
        }
    }

    fn firmware(pki: &str, wsman: Result<(&str, &str), &str>) -> Option<FirmwareDomains> {
        Some(FirmwareDomains {
            pki_dns_suffix: pki.into(),
            wsman: wsman
                .map(|(t, d)| WsmanDomains {
                    trusted_dns_suffix: t.into(),
                    dhcp_dns_suffix: d.into(),
                })
                .map_err(str::to_string),
        })
    }

    fn domain_finding(cert: &ProvisioningCert, m: &Machine) -> (Outcome, String, String) {
        let f = run(&Input {
            cert,
            machine: m,
            now: 0,
        })
        .into_iter()
        .find(|f| f.rule.id == DOMAIN_RULE)
        .unwrap();
        (f.outcome, f.detail.clone(), f.fix().to_string())
    }

    fn suffix(s: &str, source: SuffixSource) -> TrustedDomain {
        TrustedDomain::Suffix {
            suffix: s.into(),
            source,
            stand_in_because: None,
        }
    }

    #[test]
    fn the_trusted_domain_is_the_firmwares_and_the_flag_only_stands_in() {
        let m = |domains, flag: Option<&str>, os: Option<&str>| Machine {
            domains,
            dns_suffix_flag: flag.map(str::to_string),
            os_dns_suffix: os.map(str::to_string),
            ..Machine::default()
        };
        // The PKI DNS suffix (AMTHI) first, then WS-MAN's TrustedDNSSuffix, then the DHCP domain.
        let fw = firmware("pki.example.com", Ok(("", "corp.example.com")));
        assert_eq!(
            m(fw, Some("amt.holdout.test"), None).trusted_domain(),
            suffix("pki.example.com", SuffixSource::Pki)
        );
        let fw = firmware("", Ok(("mebx.example.com.", "corp.example.com")));
        assert_eq!(
            m(fw, None, None).trusted_domain(),
            suffix("mebx.example.com", SuffixSource::Pki)
        );
        // The trap: -d names another domain, AMT trusts its DHCP lease's.
        let fw = firmware("", Ok(("", "corp.example.com")));
        assert_eq!(
            m(fw, Some("amt.holdout.test"), Some("os.example.org")).trusted_domain(),
            suffix("corp.example.com", SuffixSource::Dhcp)
        );
        // Neither: AMT trusts no domain, whatever -d says.
        let fw = firmware(" ", Ok(("", ".")));
        assert_eq!(
            m(fw, Some("amt.holdout.test"), None).trusted_domain(),
            TrustedDomain::Nothing
        );
        // AMT cannot tell: -d stands in, else the OS's suffix, else unknown.
        let unread = || firmware("", Err("LME busy"));
        match m(unread(), Some("amt.holdout.test"), Some("os.example.org")).trusted_domain() {
            TrustedDomain::Suffix {
                suffix,
                source: SuffixSource::Flag,
                stand_in_because: Some(why),
            } => {
                assert_eq!(suffix, "amt.holdout.test");
                assert!(why.contains("LME busy"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            m(unread(), None, Some("os.example.org")).trusted_domain(),
            TrustedDomain::Suffix {
                source: SuffixSource::Os,
                ..
            }
        ));
        assert!(matches!(
            m(unread(), None, None).trusted_domain(),
            TrustedDomain::Unknown(_)
        ));
        // Offline: -d is all there is.
        assert!(matches!(
            m(None, Some("example.com"), None).trusted_domain(),
            TrustedDomain::Suffix {
                source: SuffixSource::Flag,
                ..
            }
        ));
        assert!(matches!(
            m(None, None, None).trusted_domain(),
            TrustedDomain::Unknown(_)
        ));
    }

    #[test]
    fn the_domain_rule_names_the_suffix_its_source_and_fixes_that_work() {
        let cert = leaf_for("amt.holdout.test");
        // The trap of issue 11: no PKI DNS suffix, DHCP option 15 corp.example.com, -d the CN's.
        let trap = Machine {
            domains: firmware("", Ok(("", "corp.example.com"))),
            dns_suffix_flag: Some("amt.holdout.test".into()),
            ..Machine::default()
        };
        let (outcome, detail, fix) = domain_finding(&cert, &trap);
        assert_eq!(outcome, Outcome::Error);
        assert!(detail.contains("corp.example.com"), "{detail}");
        assert!(detail.contains("DHCP option 15"), "{detail}");
        for f in [
            "CN=amt.corp.example.com",
            "--pki-dns-suffix amt.holdout.test",
            "MEBx",
            "option 15",
        ] {
            assert!(fix.contains(f), "{f}: {fix}");
        }
        // The fixes it names work: the suggested CN under AMT's suffix, and the CN's domain
        // enrolled as the PKI DNS suffix.
        assert!(cn_matches_suffix(
            "amt.corp.example.com",
            "corp.example.com"
        ));
        let enrolled = Machine {
            domains: firmware(
                "amt.holdout.test",
                Ok(("amt.holdout.test", "corp.example.com")),
            ),
            ..Machine::default()
        };
        assert_eq!(domain_finding(&cert, &enrolled).0, Outcome::Pass);

        // A PKI suffix that does not match: named as such.
        let pki = Machine {
            domains: firmware("example.org", Ok(("example.org", ""))),
            ..Machine::default()
        };
        let (outcome, detail, fix) = domain_finding(&cert, &pki);
        assert_eq!(outcome, Outcome::Error);
        assert!(
            detail.contains("example.org, AMT's PKI DNS suffix"),
            "{detail}"
        );
        assert!(fix.contains("CN=amt.example.org"), "{fix}");

        // Nothing trusted: an error, with the ways to give AMT a domain.
        let none = Machine {
            domains: firmware("", Ok(("", ""))),
            ..Machine::default()
        };
        let (outcome, detail, fix) = domain_finding(&cert, &none);
        assert_eq!(outcome, Outcome::Error);
        assert!(detail.contains("trusts no domain"), "{detail}");
        assert!(fix.contains("--pki-dns-suffix amt.holdout.test"), "{fix}");

        // Offline without -d: not applicable, saying what to pass.
        let (outcome, detail, _) = domain_finding(&cert, &Machine::default());
        assert_eq!(outcome, Outcome::NotApplicable);
        assert!(detail.contains("-d SUFFIX"), "{detail}");
        // Offline with -d: the stand-in is named as one.
        let offline = Machine {
            dns_suffix_flag: Some("example.org".into()),
            ..Machine::default()
        };
        let (outcome, detail, fix) = domain_finding(&cert, &offline);
        assert_eq!(outcome, Outcome::Error);
        assert!(detail.contains("-d, standing in"), "{detail}");
        assert!(fix.contains("amtinfo --dns"), "{fix}");
    }

    #[test]
    fn the_key_rules_do_not_apply_to_a_key_another_party_holds() {
        let mut cert = leaf_for("amt.example.com");
        let m = Machine::default();
        let key_match = |c: &ProvisioningCert| {
            run(&Input {
                cert: c,
                machine: &m,
                now: 0,
            })
            .into_iter()
            .find(|f| f.rule.id == "AMT-KEY-MATCH")
            .map(|f| f.outcome)
        };
        assert_eq!(key_match(&cert), Some(Outcome::Error));
        cert.key_held_by = Some("RPS");
        assert_eq!(key_match(&cert), Some(Outcome::NotApplicable));
    }

    #[test]
    fn auth_failed_is_explained_by_the_domain_first() {
        let key = rcgen::KeyPair::generate().unwrap();
        // No extensions at all and a CN outside the trusted domain: two AUTH_FAILED rules.
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "amt.holdout.test");
        let der = p.self_signed(&key).unwrap().der().to_vec();
        let cert = ProvisioningCert {
            chain: vec![CertFacts::from_der(&der).unwrap()],
            unrelated: Vec::new(),
            key: None,
            key_held_by: Some("RPS"),
            format: "test",
        };
        let m = Machine {
            domains: firmware("", Ok(("", "corp.example.com"))),
            ..Machine::default()
        };
        let findings = run(&Input {
            cert: &cert,
            machine: &m,
            now: 0,
        });
        let ids: Vec<&str> = explain(&findings, AUTH, Some("CN=amt.holdout.test"))
            .iter()
            .map(|f| f.rule.id)
            .collect();
        assert_eq!(ids.first(), Some(&DOMAIN_RULE), "{ids:?}");
        assert!(ids.contains(&"AMT-LEAF-NO-EXTENSIONS"), "{ids:?}");
        assert!(!ids.contains(&"AMT-KEY-MATCH"), "{ids:?}");
    }

    #[test]
    fn every_rule_has_an_id_source_and_fix() {
        let mut ids = std::collections::HashSet::new();
        for r in RULES {
            assert!(r.id.starts_with("AMT-"), "{}", r.id);
            assert!(ids.insert(r.id), "duplicate {}", r.id);
            assert!(!r.source.is_empty() && !r.fix.is_empty() && !r.explanation.is_empty());
        }
    }
}
