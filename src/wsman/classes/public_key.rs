//! `AMT_PublicKeyCertificate`: the certificates AMT holds (trusted roots, its TLS and 802.1X
//! certificates), read with Enumerate/Pull (rpc-go.md §1.4 `-userCert`).

use crate::wsman::calls::{self, Call, Instance, PullPage};

pub const CERTIFICATE: &str = "AMT_PublicKeyCertificate";

pub fn enumerate() -> Call<String> {
    calls::enumerate(CERTIFICATE)
}

pub fn pull(context: &str) -> Call<PullPage> {
    calls::pull(CERTIFICATE, context)
}

/// One certificate with the fields rpc-go v2 prints; the firmware's property names, including
/// its spelling `TrustedRootCertficate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKeyCertificate {
    pub element_name: String,
    pub instance_id: String,
    pub x509_certificate: String,
    pub trusted_root: bool,
    pub issuer: String,
    pub subject: String,
    pub read_only: bool,
}

impl PublicKeyCertificate {
    pub fn from_instance(i: &Instance) -> PublicKeyCertificate {
        let s = |n: &str| i.get(n).unwrap_or_default().to_string();
        PublicKeyCertificate {
            element_name: s("ElementName"),
            instance_id: s("InstanceID"),
            x509_certificate: s("X509Certificate"),
            trusted_root: i.get("TrustedRootCertficate") == Some("true"),
            issuer: s("Issuer"),
            subject: s("Subject"),
            read_only: i.get("ReadOnlyCertificate") == Some("true"),
        }
    }

    /// The `CN=` of the subject, the name rpc-go v2 shows the certificate by; else its InstanceID.
    pub fn display_name(&self) -> String {
        self.subject
            .split(',')
            .find_map(|p| p.trim().strip_prefix("CN="))
            .map(str::to_string)
            .unwrap_or_else(|| self.instance_id.clone())
    }
}
