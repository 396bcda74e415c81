//! The simulated firmware's provisioning-certificate checks for host-based ACM
//! (provisioning.md §2–3): what AddNextCertInChain and AdminSetup/UpgradeClientToAdmin answer.
//!
//! Written independently of the agent's certificate doctor, so that a test comparing the doctor's
//! prediction with the simulated firmware's answer compares two implementations, not one.

use base64::Engine as _;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::*;

use super::FirmwareCore;
use crate::wsman::envelope::Element;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// Intel AMT activation usage (provisioning.md §2.1).
pub const AMT_ACTIVATION_EKU: &str = "2.16.840.1.113741.1.2.3";
pub const SETUP_OU: &str = "Intel(R) Client Setup Certificate";
/// The firmware's chain-length limit is unpublished; 4 certificates are known to work.
pub const MAX_CHAIN: usize = 4;

// AddNextCertInChain ReturnValues (provisioning.md §1.2).
const INVALID_PARAM: u32 = 1;
const INVALID_STATE: u32 = 3;
const CERT_VERIFY_FAILED: u32 = 4;
const CHAIN_LENGTH_EXCEEDED: u32 = 5;
// AdminSetup ReturnValues.
const AS_INVALID_STATE: u32 = 2;
const AS_INVALID_PARAM: u32 = 3;
const AS_AUTH_FAILED: u32 = 5;

/// Whether this firmware refuses SHA-1 anywhere in the chain and RSA keys under 2048 bits
/// (ME 15 H platforms and ME 16+; the simulator applies it from AMT 15 on).
fn strict(fw: &FirmwareCore) -> bool {
    fw.profile.version_parts().0 >= 15
}

fn is_sha1(c: &X509Certificate<'_>) -> bool {
    let oid = c.signature_algorithm.algorithm.to_id_string();
    // sha1WithRSAEncryption, ecdsa-with-SHA1, dsa-with-sha1
    matches!(
        oid.as_str(),
        "1.2.840.113549.1.1.5" | "1.2.840.10045.4.1" | "1.2.840.10040.4.3"
    )
}

fn rsa_bits(c: &X509Certificate<'_>) -> Option<usize> {
    match c.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(k)) => {
            let m = k.modulus;
            let m = m.iter().skip_while(|b| **b == 0).count();
            Some(m * 8)
        }
        _ => None,
    }
}

fn valid_now(c: &X509Certificate<'_>) -> bool {
    c.validity().is_valid()
}

fn can_issue(c: &X509Certificate<'_>) -> bool {
    let ca = matches!(c.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    let ku_ok = match c.key_usage() {
        Ok(Some(ku)) => ku.value.key_cert_sign(),
        Ok(None) => true,
        Err(_) => false,
    };
    ca && ku_ok
}

fn sha(alg: &str, der: &[u8]) -> Vec<u8> {
    use ring::digest;
    let a = match alg {
        "SHA1" => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        "SHA384" => &digest::SHA384,
        "SHA512" => &digest::SHA512,
        _ => &digest::SHA256,
    };
    digest::digest(a, der).as_ref().to_vec()
}

/// AddNextCertInChain: leaf first, root last; each certificate is checked as it arrives.
pub fn add_next_cert(fw: &mut FirmwareCore, b64: &str, leaf: bool, root: bool) -> u32 {
    if fw.profile.control_mode == 2 {
        return INVALID_STATE;
    }
    let Ok(der) = B64.decode(b64.trim()) else {
        return INVALID_PARAM;
    };
    let Ok((_, cert)) = X509Certificate::from_der(&der) else {
        return INVALID_PARAM;
    };
    if leaf {
        fw.web.chain.clear();
        fw.web.chain_complete = false;
    } else if fw.web.chain.is_empty() || fw.web.chain_complete {
        return INVALID_STATE;
    }
    if fw.web.chain.len() + 1 > MAX_CHAIN {
        return CHAIN_LENGTH_EXCEEDED;
    }
    let verdict = check_added(fw, &cert, leaf, root);
    if verdict != 0 {
        tracing::debug!(subject = %cert.subject(), verdict, "AddNextCertInChain refused");
        fw.web.chain.clear();
        return verdict;
    }
    fw.web.chain.push(der);
    if root {
        fw.web.chain_complete = true;
    }
    0
}

fn check_added(fw: &FirmwareCore, cert: &X509Certificate<'_>, leaf: bool, root: bool) -> u32 {
    let prev = if leaf {
        None
    } else {
        // This certificate must have issued the previous one.
        let prev_der = fw.web.chain.last().expect("checked non-empty");
        match X509Certificate::from_der(prev_der) {
            Ok((_, p)) => Some(p),
            Err(_) => return CERT_VERIFY_FAILED,
        }
    };
    check_link(fw, cert, prev.as_ref(), root, leaf)
}

/// The checks of one certificate of a provisioning chain: `prev` is the certificate it must have
/// issued (`None` for the leaf); `rsa_leaf` asks for an RSA leaf (AdminSetup signs with RSA).
fn check_link(
    fw: &FirmwareCore,
    cert: &X509Certificate<'_>,
    prev: Option<&X509Certificate<'_>>,
    root: bool,
    rsa_leaf: bool,
) -> u32 {
    if !valid_now(cert) {
        return CERT_VERIFY_FAILED;
    }
    if strict(fw) && (is_sha1(cert) || rsa_bits(cert).is_some_and(|b| b < 2048)) {
        return CERT_VERIFY_FAILED;
    }
    if rsa_bits(cert).is_none() && prev.is_none() && rsa_leaf {
        return CERT_VERIFY_FAILED;
    }
    if let Some(prev) = prev {
        if prev.issuer() != cert.subject()
            || prev.verify_signature(Some(cert.public_key())).is_err()
            || !can_issue(cert)
        {
            return CERT_VERIFY_FAILED;
        }
    }
    if root {
        if cert.issuer() != cert.subject() || cert.verify_signature(None).is_err() {
            return CERT_VERIFY_FAILED;
        }
        if !can_issue(cert) {
            return CERT_VERIFY_FAILED;
        }
        if !root_trusted(fw, cert.as_ref()) {
            return CERT_VERIFY_FAILED;
        }
    }
    0
}

/// Whether the root's hash is an active entry of the trusted list, in the entry's algorithm.
fn root_trusted(fw: &FirmwareCore, der: &[u8]) -> bool {
    fw.profile.cert_hashes.iter().any(|h| {
        h.is_active
            && h.hash.eq_ignore_ascii_case(&crate::amthi::codec::hex(&sha(
                &h.algorithm.to_ascii_uppercase(),
                der,
            )))
    })
}

/// A secure host-based configuration is open: START_CONFIGURATION_HBASED recorded the provisioning
/// certificate's leaf hash and CommitChanges (or STOP_CONFIGURATION) has not closed it yet.
pub fn hbased_open(fw: &FirmwareCore) -> bool {
    let p = &fw.profile;
    p.provisioning_state == 1 && p.control_mode == 0 && !p.hbased_server_cert_hash.is_empty()
}

/// The AMT 19+ local ACM path (rpc-go.md §5.4, provisioning.md §3.6): the client certificate of
/// the mutual-TLS connection must be the provisioning certificate announced by
/// START_CONFIGURATION_HBASED — its leaf hash equal to the recorded one, its chain linking to a root
/// whose hash is active in the trusted list, and its leaf allowed to set up (AMT usage and domain,
/// as for AdminSetup). `Err` says why not (for the debug log).
pub fn hbased_client_ok(fw: &FirmwareCore, chain: &[Vec<u8>]) -> Result<(), &'static str> {
    let Some(leaf_der) = chain.first() else {
        return Err("no client certificate");
    };
    if chain.len() > MAX_CHAIN {
        return Err("client chain too long");
    }
    let alg = match fw.profile.hbased_server_hash_algorithm {
        3 => "SHA384",
        _ => "SHA256",
    };
    let hash = crate::amthi::codec::hex(&sha(alg, leaf_der));
    if !hash.eq_ignore_ascii_case(&fw.profile.hbased_server_cert_hash) {
        return Err("client leaf hash differs from START_CONFIGURATION_HBASED's");
    }
    let mut parsed = Vec::with_capacity(chain.len());
    for der in chain {
        match X509Certificate::from_der(der) {
            Ok((_, c)) => parsed.push(c),
            Err(_) => return Err("unparsable client certificate"),
        }
    }
    let last = parsed.len() - 1;
    for (k, c) in parsed.iter().enumerate() {
        let prev = k.checked_sub(1).map(|j| &parsed[j]);
        if check_link(fw, c, prev, k == last, false) != 0 {
            return Err("client chain does not verify to a trusted root");
        }
    }
    if !leaf_allows_setup(fw, &parsed[0]) {
        return Err("client leaf lacks the AMT usage or its domain does not match");
    }
    Ok(())
}

fn input_text<'a>(input: Option<&'a Element>, name: &str) -> Option<&'a str> {
    input.and_then(|i| i.child_text(name))
}

/// The domain the firmware trusts: the PKI DNS suffix from MEBx/setup.bin, else DHCP option 15.
fn trusted_domain(fw: &FirmwareCore) -> String {
    if !fw.profile.pki_dns_suffix.is_empty() {
        fw.profile.pki_dns_suffix.clone()
    } else {
        fw.profile.dhcp_dns_suffix.clone()
    }
}

fn leaf_allows_setup(fw: &FirmwareCore, leaf: &X509Certificate<'_>) -> bool {
    let eku = matches!(leaf.extended_key_usage(), Ok(Some(e)) if e.value.other.iter().any(|o| o.to_id_string() == AMT_ACTIVATION_EKU));
    let ou = leaf
        .subject()
        .iter_organizational_unit()
        .any(|a| a.as_str().map(|s| s == SETUP_OU).unwrap_or(false));
    if !(eku || ou) {
        return false;
    }
    let cn = leaf
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or("");
    domain_matches(cn, &trusted_domain(fw))
}

/// TLDs whose registrable domain is the last two labels, and those where it is the last three
/// (MeshCentral's table, provisioning.md §2.4).
const TWO_LABEL_TLDS: &[&str] = &[
    "com", "net", "org", "gov", "edu", "de", "ch", "dk", "cz", "cl", "ua",
];
const THREE_LABEL_TLDS: &[&str] = &[
    "arpa", "fr", "cn", "nl", "br", "mx", "uk", "pl", "tw", "ca", "fi", "be", "ru", "se", "ar",
    "es", "no", "at", "in", "tr", "ro", "hu", "nz", "pt", "il", "gr", "co", "ie", "za", "th", "sg",
    "hk", "lt", "id", "hr", "ee", "bg",
];

/// The leaf CN against the trusted domain, as provisioning.md §2.4 describes MeshCentral's rule
/// (the firmware's own rule is unpublished): strip a leading `*.`, shorten the CN to its last N
/// labels by TLD (2 or 3; other TLDs keep the full CN), then match when the domain equals the CN or
/// ends with `.` + CN.
pub fn domain_matches(cn: &str, domain: &str) -> bool {
    let cn = cn.trim().trim_end_matches('.').to_ascii_lowercase();
    let cn = cn.strip_prefix("*.").unwrap_or(&cn);
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if cn.is_empty() || domain.is_empty() {
        return false;
    }
    let labels: Vec<&str> = cn.split('.').collect();
    let tld = labels.last().copied().unwrap_or("");
    let keep = if TWO_LABEL_TLDS.contains(&tld) {
        2
    } else if THREE_LABEL_TLDS.contains(&tld) {
        3
    } else {
        labels.len()
    };
    let short = labels[labels.len().saturating_sub(keep)..].join(".");
    domain == short || domain.ends_with(&format!(".{short}"))
}

/// AdminSetup (or UpgradeClientToAdmin with `upgrade`): checks state, the leaf, and the signature
/// over ConfigurationNonce ‖ McNonce.
pub fn admin_setup(
    fw: &mut FirmwareCore,
    input: Option<&Element>,
    user: &str,
    upgrade: bool,
) -> u32 {
    let state_ok = if upgrade {
        fw.profile.control_mode == 1 && user == super::amt::ADMIN_USER
    } else {
        fw.profile.control_mode == 0
            && fw.profile.provisioning_state == 0
            && user == super::amt::LSA_USER
    };
    if !state_ok || !fw.web.chain_complete {
        return AS_INVALID_STATE;
    }
    let chain = std::mem::take(&mut fw.web.chain);
    fw.web.chain_complete = false;
    if !upgrade {
        let enc = input_text(input, "NetAdminPassEncryptionType").unwrap_or("");
        let pw = input_text(input, "NetworkAdminPassword").unwrap_or("");
        if enc != "2" || pw.len() != 32 || !pw.bytes().all(|b| b.is_ascii_hexdigit()) {
            return AS_INVALID_PARAM;
        }
    }
    let alg = input_text(input, "SigningAlgorithm").unwrap_or("");
    let verify_alg: &dyn ring::signature::VerificationAlgorithm = match alg {
        "2" => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        // SHA-384 only where firmware takes it (AMT 21 and later, provisioning.md §3.5).
        "3" if fw.profile.version_parts().0 >= 21 => &ring::signature::RSA_PKCS1_2048_8192_SHA384,
        _ => return AS_INVALID_PARAM,
    };
    let (Some(Ok(mc)), Some(Ok(sig))) = (
        input_text(input, "McNonce").map(|s| B64.decode(s.trim())),
        input_text(input, "DigitalSignature").map(|s| B64.decode(s.trim())),
    ) else {
        return AS_INVALID_PARAM;
    };
    if mc.len() != 20 {
        return AS_INVALID_PARAM;
    }
    let Some(leaf_der) = chain.first() else {
        return AS_INVALID_STATE;
    };
    let Ok((_, leaf)) = X509Certificate::from_der(leaf_der) else {
        return AS_AUTH_FAILED;
    };
    if !leaf_allows_setup(fw, &leaf) {
        tracing::debug!(subject = %leaf.subject(), "AdminSetup: leaf lacks the AMT usage or the domain does not match");
        return AS_AUTH_FAILED;
    }
    let mut signed = fw.web.config_nonce.to_vec();
    signed.extend_from_slice(&mc);
    let key = ring::signature::UnparsedPublicKey::new(
        verify_alg,
        leaf.public_key().subject_public_key.data.as_ref(),
    );
    if key.verify(&signed, &sig).is_err() {
        tracing::debug!("AdminSetup: signature does not verify");
        return AS_AUTH_FAILED;
    }
    fw.profile.control_mode = 2;
    fw.profile.provisioning_state = 2;
    fw.changed();
    0
}

#[cfg(test)]
mod tests {
    use super::domain_matches;

    #[test]
    fn domain_matching_follows_the_last_labels_rule() {
        // .com keeps the last two labels of the CN.
        assert!(domain_matches("amt.corp.example.com", "example.com"));
        assert!(domain_matches("amt.corp.example.com", "corp.example.com"));
        assert!(domain_matches("amt.corp.example.com", "other.example.com"));
        assert!(domain_matches("*.example.com", "lab.example.com"));
        assert!(domain_matches("Example.COM", "example.com"));
        assert!(!domain_matches("amt.example.com", "example.net"));
        assert!(!domain_matches("amt.example.com", "badexample.com"));
        // .uk keeps three labels.
        assert!(domain_matches("amt.corp.example.co.uk", "x.example.co.uk"));
        assert!(!domain_matches("amt.example.co.uk", "other.co.uk"));
        // Other TLDs: the full CN, and the domain must equal it or sit under it.
        assert!(domain_matches("corp.example.io", "corp.example.io"));
        assert!(domain_matches("corp.example.io", "lab.corp.example.io"));
        assert!(!domain_matches("amt.corp.example.io", "corp.example.io"));
        assert!(!domain_matches("", "example.com"));
        assert!(!domain_matches("example.com", ""));
    }
}
