//! ACM provisioning certificates: loading ([`load`]), the doctor's rule registry ([`rules`]), and
//! what the doctor learns about the machine over AMTHI (hashes, PKI DNS suffix, AMT version).

pub mod load;
pub mod rules;
pub mod setupbin;

use std::sync::Arc;

use crate::amthi::{AmthiClient, AmthiError};
use crate::heci::MeiDevice;

pub use load::{CertFacts, ProvisioningCert, SigningDigest, SigningKey};
pub use rules::{
    Finding, FirmwareDomains, Machine, Outcome, SuffixSource, TrustedDomain, TrustedHash,
    WsmanDomains,
};

/// Parses `16.1.27` (or `16`) into (major, minor).
pub fn parse_amt_version(s: &str) -> Option<(u16, u16)> {
    let mut it = s.trim().split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next().map(|m| m.parse().ok()).unwrap_or(Some(0))?;
    Some((major, minor))
}

/// Reads what the rules need from this machine's AMT over AMTHI: version, trusted hashes, PKI DNS
/// suffix. The WS-MAN half of the domains (TrustedDNSSuffix, DhcpDNSSuffix) is left unread: the
/// caller reads it with the credentials it has (`commands::cert::read_wsman_domains`).
pub fn read_machine(device: Arc<dyn MeiDevice>) -> Result<Machine, AmthiError> {
    let mut amthi = AmthiClient::new(device);
    let versions = amthi.code_versions()?;
    let amt_version = versions.get("AMT").and_then(parse_amt_version);
    let hashes = amthi
        .cert_hashes()?
        .into_iter()
        .map(|e| {
            let len = e.algorithm.digest_len().unwrap_or(64).min(64);
            TrustedHash {
                name: e.name.clone(),
                algorithm: e.algorithm,
                hash: e.hash[..len].to_vec(),
                is_active: e.is_active,
                is_default: e.is_default,
            }
        })
        .collect();
    let pki = amthi.pki_dns_suffix()?;
    // The OS's suffix only ever stands in where AMT has no PKI suffix of its own, so only then is
    // it looked up (a name-service lookup of up to `os::CANONICAL_NAME_DEADLINE`).
    let os = if pki.trim().is_empty() {
        crate::os::dns_suffix()
    } else {
        String::new()
    };
    Ok(Machine {
        amt_version,
        hashes: Some(hashes),
        domains: Some(FirmwareDomains {
            pki_dns_suffix: pki.trim().to_string(),
            wsman: Err("AMT_SetupAndConfigurationService was not read".into()),
        }),
        dns_suffix_flag: None,
        os_dns_suffix: Some(os).filter(|s| !s.trim().is_empty()),
    })
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
