//! The provisioning-certificate input of `cert check` / `cert hash` / local ACM: the loader
//! (`provisioning::load::from_bytes`: PEM, DER, binary or base64 PKCS#12), then the doctor's rules
//! and both reports on whatever loads, for an offline machine and two known ones.
//! Input: file bytes. The PKCS#12 password is `P@ssw0rd` (the seeds use it).
//!
//! Checked: a loaded file has a certificate; the chain links leaf → root by name, with no
//! self-issued certificate before its end and no certificate twice; the verdict's exit code is
//! the first error's; the JSON report says the same as the findings.
#![no_main]

use amt_agent::amthi::HashAlgorithm;
use amt_agent::commands::cert::{report_json, report_text, verdict_exit};
use amt_agent::error::{AgentError, ExitCode};
use amt_agent::provisioning::load::{self, ProvisioningCert};
use amt_agent::provisioning::rules::{
    self, FirmwareDomains, Input, Machine, Outcome, TrustedHash, WsmanDomains,
};
use amt_agent::secret::Secret;
use libfuzzer_sys::fuzz_target;

/// 2026-01-01T00:00:00Z: a fixed "now", so one input always gives the same findings.
const NOW: i64 = 1_767_225_600;

fn password() -> Result<Secret, AgentError> {
    Ok(Secret::new("P@ssw0rd"))
}

fn machines(cert: &ProvisioningCert) -> Vec<Machine> {
    // A machine that trusts this chain's root (so the hash rule can pass) and one that does not.
    let root = cert.chain.last().or(cert.unrelated.first());
    let trusted = root
        .map(|r| {
            let (_, hex, _) = load::fingerprints(&r.der)
                .into_iter()
                .find(|(name, _, _)| *name == "SHA-256")
                .expect("a SHA-256 fingerprint");
            let hash = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            vec![TrustedHash {
                name: "fuzz root".into(),
                algorithm: HashAlgorithm::Sha256,
                hash,
                is_active: true,
                is_default: false,
            }]
        })
        .unwrap_or_default();
    vec![
        Machine::default(),
        Machine {
            amt_version: Some((16, 1)),
            hashes: Some(trusted),
            domains: Some(FirmwareDomains {
                pki_dns_suffix: "amt.example.test".into(),
                wsman: Err("not read".into()),
            }),
            ..Machine::default()
        },
        Machine {
            amt_version: Some((11, 8)),
            hashes: Some(Vec::new()),
            domains: Some(FirmwareDomains {
                pki_dns_suffix: String::new(),
                wsman: Ok(WsmanDomains {
                    trusted_dns_suffix: ".".into(),
                    dhcp_dns_suffix: "example.com".into(),
                }),
            }),
            dns_suffix_flag: Some(".".into()),
            os_dns_suffix: Some("corp.example.co.uk".into()),
        },
        // The firmware trusts no domain; and one whose DHCP domain could not be read (-d stands in).
        Machine {
            domains: Some(FirmwareDomains {
                pki_dns_suffix: " ".into(),
                wsman: Ok(WsmanDomains::default()),
            }),
            ..Machine::default()
        },
        Machine {
            domains: Some(FirmwareDomains {
                pki_dns_suffix: String::new(),
                wsman: Err("unreachable".into()),
            }),
            dns_suffix_flag: Some("example.test".into()),
            ..Machine::default()
        },
    ]
}

fuzz_target!(|data: &[u8]| {
    let cert = match load::from_bytes(data, &password) {
        Ok(c) => c,
        Err(e) => {
            let _ = (e.to_string(), e.exit);
            return;
        }
    };
    let all: Vec<_> = cert.chain.iter().chain(cert.unrelated.iter()).collect();
    assert!(!all.is_empty(), "loaded without a certificate");
    for (i, a) in all.iter().enumerate() {
        assert!(
            all[i + 1..].iter().all(|b| b.der != a.der),
            "a certificate is kept twice"
        );
    }
    for (k, w) in cert.chain.windows(2).enumerate() {
        assert_eq!(w[1].subject_raw, w[0].issuer_raw, "chain link {k} by name");
        assert!(!w[0].is_self_issued(), "the chain goes on past a root");
    }
    for c in &all {
        let _ = (c.name(), load::fingerprints(&c.der));
    }
    if let Some(Ok(k)) = &cert.key {
        let _ = (k.public_key().len(), k.tls_key());
    }

    for machine in machines(&cert) {
        let findings = rules::run(&Input {
            cert: &cert,
            machine: &machine,
            now: NOW,
        });
        let exit = verdict_exit(&findings);
        let first = rules::first_error(&findings);
        assert_eq!(
            exit,
            first.map(|f| f.rule.exit).unwrap_or(ExitCode::Success)
        );
        let text = report_text("fuzz.pfx", &cert, &machine, &findings);
        assert_eq!(
            text.ends_with("result: activation would pass\n"),
            first.is_none()
        );
        let json = report_json(&cert, &machine, &findings, exit);
        assert_eq!(json["wouldPass"], first.is_none());
        let errors = findings
            .iter()
            .filter(|f| f.outcome == Outcome::Error)
            .count();
        let in_json = json["results"]
            .as_array()
            .expect("results")
            .iter()
            .filter(|r| r["outcome"] == "error")
            .count();
        assert_eq!(errors, in_json);
        let _ = json.to_string();
    }
});
