//! 802.1X for `configure wired` and `configure wireless`: the flags (rpc-go v3's names, v2's as
//! aliases), the material they name — a client certificate, its RSA key and the CA that issued
//! the RADIUS server's certificate (EAP-TLS), or a user name and password (PEAP-MSCHAPv2) —
//! read and checked before anything is sent, and AMT's certificate store as the plans see it:
//! what it holds already (by content, so a second run adds nothing), the steps that add the
//! rest, and the handles AMT gives them, looked up when a later step needs them.
//!
//! Secrets: the password comes from `--ieee8021x-password-file`, `IEEE8021X_PASSWORD` (or
//! rpc-go v2's `IEE8021X_PASSWORD`), `--ieee8021x-password` (warned) or a prompt; the private key
//! from a file (mode 600) or `IEEE8021X_PRIVATE_KEY` (v2: `IEE8021X_PRIVATE_KEY`). Neither is
//! ever printed: the key travels as a [`Secret`] until the AddKey request is written.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use clap::Args;

use super::{Later, Step, Target};
use crate::error::{AgentError, ExitCode};
use crate::secret::Secret;
use crate::wsman::classes::ieee8021x::EapMethod;
use crate::wsman::classes::public_key::{self, PublicKeyCertificate};
use crate::wsman::classes::public_key_management::{self as pkm, KeyPair};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[derive(Args, Debug, Clone, Default)]
pub struct Ieee8021xArgs {
    /// The 802.1X profile's name: turns 802.1X on (letters and digits).
    #[arg(long, visible_alias = "ieee8021xProfileName")]
    pub ieee8021x_profile_name: Option<String>,
    /// The identity AMT presents to the RADIUS server.
    #[arg(long, visible_alias = "ieee8021xUsername", alias = "username")]
    pub ieee8021x_username: Option<String>,
    /// The EAP method: 0 or EAP-TLS (client certificate, key and CA), 2 or PEAP-MSCHAPv2 (user
    /// name and password).
    #[arg(long, visible_alias = "ieee8021xAuthenticationProtocol", alias = "authenticationProtocol", value_parser = parse_eap, default_value = "0")]
    pub ieee8021x_authentication_protocol: EapMethod,
    /// The PEAP-MSCHAPv2 password (prefer IEEE8021X_PASSWORD or --ieee8021x-password-file: the
    /// command line is visible to other users).
    #[arg(long, visible_alias = "ieee8021xPassword")]
    pub ieee8021x_password: Option<Secret>,
    /// A file holding the PEAP-MSCHAPv2 password (first line; must not be readable by others).
    #[arg(long)]
    pub ieee8021x_password_file: Option<PathBuf>,
    /// The client certificate (PEM or DER file) for EAP-TLS.
    #[arg(long, visible_alias = "ieee8021xClientCert", alias = "clientCert")]
    pub ieee8021x_client_cert: Option<PathBuf>,
    /// The client certificate's RSA private key (PEM or DER file, PKCS#1 or PKCS#8, mode 600);
    /// or IEEE8021X_PRIVATE_KEY.
    #[arg(long, visible_alias = "ieee8021xPrivateKey", alias = "privateKey")]
    pub ieee8021x_private_key: Option<Secret>,
    /// The CA certificate (PEM or DER file) that issued the RADIUS server's certificate.
    #[arg(long, visible_alias = "ieee8021xCACert", alias = "caCert")]
    pub ieee8021x_ca_cert: Option<PathBuf>,
}

fn parse_eap(s: &str) -> Result<EapMethod, String> {
    match s.to_ascii_uppercase().as_str() {
        "0" | "EAP-TLS" | "EAPTLS" => Ok(EapMethod::EapTls),
        "2" | "PEAP-MSCHAPV2" | "PEAPV0/EAP-MSCHAPV2" | "PEAP" => Ok(EapMethod::PeapMschapv2),
        _ => Err(format!(
            "'{s}': AMT is configured with 0 (EAP-TLS) or 2 (PEAP-MSCHAPv2)"
        )),
    }
}

/// The password's environment variables: ours, then rpc-go v2's spelling.
pub const PASSWORD_ENV: &[&str] = &["IEEE8021X_PASSWORD", "IEE8021X_PASSWORD"];
pub const PRIVATE_KEY_ENV: &[&str] = &["IEEE8021X_PRIVATE_KEY", "IEE8021X_PRIVATE_KEY"];
pub const CLIENT_CERT_ENV: &str = "IEEE8021X_CLIENT_CERT";
pub const CA_CERT_ENV: &str = "IEEE8021X_CA_CERT";

/// A certificate to give AMT: its DER (base64, as AMT stores it) and its subject for messages.
#[derive(Clone, Debug)]
pub struct Cert {
    pub der_b64: String,
    /// The subject's common name (else the whole subject), as messages name it.
    pub subject: String,
    /// The DER `RSAPublicKey`, base64 (as AMT's `DERKey`).
    pub public_key_b64: String,
    pub can_issue: bool,
}

/// A private key to give AMT: base64 of its PKCS#1 DER (AddKey's `KeyBlob`) and the base64 DER
/// `RSAPublicKey` AMT lists it by.
#[derive(Clone, Debug)]
pub struct Key {
    pub pkcs1_b64: Secret,
    pub public_key_b64: String,
}

/// What the 802.1X flags ask for, checked.
#[derive(Clone, Debug)]
pub struct Wanted {
    pub profile_name: String,
    pub method: EapMethod,
    pub username: String,
    pub client: Option<Cert>,
    pub key: Option<Key>,
    pub ca: Option<Cert>,
    /// PEAP-MSCHAPv2: resolved by [`Wanted::resolve_password`] once the device may be talked to.
    pub password: Option<Secret>,
}

fn bad(m: impl Into<String>) -> AgentError {
    AgentError::new(ExitCode::MissingOrInvalidConfiguration, m)
}

fn missing(m: impl Into<String>) -> AgentError {
    AgentError::new(ExitCode::MissingIeee8021xConfiguration, m)
}

/// Reads a PEM or DER file (or, from an environment variable, its content; base64 DER is taken
/// too, as rpc-go's configuration files hold it) and returns the DER of the first object with
/// one of `labels`.
fn der_of(bytes: &[u8], labels: &[&str]) -> Option<Vec<u8>> {
    if bytes.starts_with(b"-----BEGIN") || bytes.windows(10).any(|w| w == b"-----BEGIN") {
        return x509_parser::pem::Pem::iter_from_buffer(bytes)
            .filter_map(Result::ok)
            .find(|p| labels.contains(&p.label.as_str()))
            .map(|p| p.contents);
    }
    if bytes.first() == Some(&0x30) {
        return Some(bytes.to_vec());
    }
    let text: String = String::from_utf8_lossy(bytes)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    B64.decode(text).ok()
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, AgentError> {
    std::fs::read(path).map_err(|e| {
        AgentError::new(
            ExitCode::FailedReadingConfiguration,
            format!("cannot read the {what} {}: {e}", path.display()),
        )
        .help("check the path and that this user may read it")
    })
}

/// A certificate from a file or an environment variable.
pub fn load_cert(path: Option<&Path>, env: &str, what: &str) -> Result<Option<Cert>, AgentError> {
    let (bytes, from) = match path {
        Some(p) => (read_file(p, what)?, p.display().to_string()),
        None => match std::env::var(env) {
            Ok(v) if !v.is_empty() => (v.into_bytes(), env.to_string()),
            _ => return Ok(None),
        },
    };
    cert_from_bytes(&bytes, &from, what).map(Some)
}

/// A certificate from PEM or DER bytes (or base64 DER); `from` says where they came from.
pub fn cert_from_bytes(bytes: &[u8], from: &str, what: &str) -> Result<Cert, AgentError> {
    let der = der_of(bytes, &["CERTIFICATE"])
        .ok_or_else(|| bad(format!("the {what} ({from}) holds no certificate")))?;
    let (rest, c) = x509_parser::parse_x509_certificate(&der).map_err(|e| {
        bad(format!(
            "the {what} ({from}) is not an X.509 certificate: {e}"
        ))
    })?;
    if !rest.is_empty() {
        return Err(bad(format!(
            "the {what} ({from}) has bytes after the certificate"
        )));
    }
    let can_issue = match c.basic_constraints() {
        Ok(Some(bc)) => bc.value.ca,
        Ok(None) => c.subject().as_raw() == c.issuer().as_raw(),
        Err(_) => false,
    };
    let subject = c
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| c.subject().to_string());
    Ok(Cert {
        der_b64: B64.encode(&der),
        subject,
        public_key_b64: B64.encode(c.public_key().subject_public_key.data.as_ref()),
        can_issue,
    })
}

/// One DER TLV: (tag, content, rest).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&l0, mut b) = b.split_first()?;
    let len = if l0 < 0x80 {
        usize::from(l0)
    } else {
        let n = usize::from(l0 & 0x7F);
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let v = b[..n]
            .iter()
            .fold(0usize, |a, x| (a << 8) | usize::from(*x));
        b = &b[n..];
        v
    };
    (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
}

/// `rsaEncryption`'s OID, as DER content.
const RSA_ENCRYPTION: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (RFC 5208), or the input when it
/// is PKCS#1 already.
fn pkcs1_of(der: &[u8]) -> Option<Vec<u8>> {
    let (0x30, body, _) = tlv(der)? else {
        return None;
    };
    let (0x02, _version, rest) = tlv(body)? else {
        return None;
    };
    match tlv(rest)? {
        // PKCS#8: AlgorithmIdentifier, then the key in an OCTET STRING.
        (0x30, alg, rest) => {
            let (0x06, oid, _) = tlv(alg)? else {
                return None;
            };
            if oid != RSA_ENCRYPTION {
                return None;
            }
            let (0x04, key, _) = tlv(rest)? else {
                return None;
            };
            Some(key.to_vec())
        }
        // PKCS#1: the modulus follows the version.
        (0x02, _, _) => Some(der.to_vec()),
        _ => None,
    }
}

/// The private key from a file (mode 600), the flag's value if it is no file (warned: the key is
/// then on the command line), or the environment.
pub fn load_key(flag: Option<&Secret>) -> Result<Option<Key>, AgentError> {
    let bytes = match flag {
        Some(v) if Path::new(v.expose()).exists() => {
            let path = Path::new(v.expose());
            crate::secret_source::check_private_file(path, "802.1X private key")?;
            read_file(path, "private key file")?
        }
        // Shorter than any RSA key of 2048 bits in any encoding: a path that is not there, or a
        // cut-off key. Only what is written as a path is repeated (a key in PEM starts with '-',
        // in base64 DER with 'M').
        Some(v) if v.expose().len() < 256 => {
            let given = v.expose();
            let written_as_path = given.starts_with(['/', '.', '~', '\\'])
                || given
                    .as_bytes()
                    .get(1..3)
                    .is_some_and(|d| d == b":\\" || d == b":/");
            return Err(AgentError::new(
                ExitCode::FailedReadingConfiguration,
                if written_as_path {
                    format!("the 802.1X private key file {given} does not exist")
                } else {
                    "the 802.1X private key is neither an existing file nor a whole RSA key".into()
                },
            )
            .help("check the path given to --ieee8021x-private-key (or give the key in IEEE8021X_PRIVATE_KEY)"));
        }
        Some(v) => {
            tracing::warn!("the 802.1X private key was given on the command line, where other users can see it (ps, shell history); give a file (mode 600) or IEEE8021X_PRIVATE_KEY instead");
            v.expose().as_bytes().to_vec()
        }
        None => match PRIVATE_KEY_ENV
            .iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
        {
            Some(v) => v.into_bytes(),
            None => return Ok(None),
        },
    };
    key_from_bytes(&bytes).map(Some)
}

/// A private key from its PEM or DER bytes (or base64 DER): PKCS#1 or PKCS#8 RSA, unencrypted.
pub fn key_from_bytes(bytes: &[u8]) -> Result<Key, AgentError> {
    if bytes
        .windows(30)
        .any(|w| w == b"-----BEGIN ENCRYPTED PRIVATE K")
    {
        return Err(bad("the 802.1X private key is encrypted")
            .help("decrypt it for AMT: openssl pkey -in key.pem -out plain.pem (and keep plain.pem mode 600)"));
    }
    let der = der_of(bytes, &["PRIVATE KEY", "RSA PRIVATE KEY"])
        .ok_or_else(|| bad("the 802.1X private key holds no PEM or DER private key"))?;
    let pkcs1 = pkcs1_of(&der).ok_or_else(|| {
        bad("the 802.1X private key is not an RSA key (PKCS#1 or PKCS#8): AMT takes RSA keys only")
    })?;
    use ring::signature::KeyPair as _;
    let pair = ring::signature::RsaKeyPair::from_der(&pkcs1).map_err(|e| {
        bad(format!(
            "the 802.1X private key is not usable ({e}): AMT takes RSA keys of 2048 bits or more"
        ))
    })?;
    let public_key_b64 = B64.encode(pair.public_key().as_ref());
    Ok(Key {
        pkcs1_b64: Secret::new(B64.encode(&pkcs1)),
        public_key_b64,
    })
}

/// A profile name as AMT and rpc-go take it: 1–32 letters and digits.
pub fn valid_profile_name(s: &str) -> bool {
    (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Ieee8021xArgs {
    /// Whether any 802.1X flag was given.
    pub fn any(&self) -> bool {
        self.ieee8021x_profile_name.is_some()
            || self.ieee8021x_username.is_some()
            || self.ieee8021x_password.is_some()
            || self.ieee8021x_password_file.is_some()
            || self.ieee8021x_client_cert.is_some()
            || self.ieee8021x_private_key.is_some()
            || self.ieee8021x_ca_cert.is_some()
    }

    /// The checked request, or `None` when no 802.1X flag was given. Everything but the password
    /// (which may need a prompt) is read and checked here, before AMT is asked anything.
    pub fn wanted(&self) -> Result<Option<Wanted>, AgentError> {
        let Some(name) = self.ieee8021x_profile_name.clone() else {
            if self.any() {
                return Err(missing("802.1X settings were given without --ieee8021x-profile-name")
                    .help("name the 802.1X profile with --ieee8021x-profile-name NAME (letters and digits)"));
            }
            return Ok(None);
        };
        if !valid_profile_name(&name) {
            return Err(missing(format!(
                "the 802.1X profile name '{name}' is not 1–32 letters and digits"
            ))
            .help("use only a-z, A-Z and 0-9, as AMT and rpc-go do"));
        }
        let method = self.ieee8021x_authentication_protocol;
        let username = self.ieee8021x_username.clone().unwrap_or_default();
        check_username(method, &username)?;
        let client = load_cert(
            self.ieee8021x_client_cert.as_deref(),
            CLIENT_CERT_ENV,
            "802.1X client certificate",
        )?;
        let ca = load_cert(
            self.ieee8021x_ca_cert.as_deref(),
            CA_CERT_ENV,
            "802.1X CA certificate",
        )?;
        let key = load_key(self.ieee8021x_private_key.as_ref())?;
        Wanted::new(
            name,
            method,
            username,
            Material {
                client,
                key,
                ca,
                password: None,
            },
        )
        .map(Some)
    }
}

/// What an 802.1X profile authenticates with, read already: the EAP-TLS certificate, key and
/// CA, the PEAP-MSCHAPv2 password (`None` while it is still to be asked for).
#[derive(Clone, Debug, Default)]
pub struct Material {
    pub client: Option<Cert>,
    pub key: Option<Key>,
    pub ca: Option<Cert>,
    pub password: Option<Secret>,
}

impl Wanted {
    /// An 802.1X profile from material read already (a desired-state profile's certificates,
    /// key and password), checked as the flags are: the user name, a CA that can issue, EAP-TLS
    /// with its certificate, the certificate's key and a CA, PEAP without them.
    pub fn new(
        profile_name: String,
        method: EapMethod,
        username: String,
        m: Material,
    ) -> Result<Wanted, AgentError> {
        check_username(method, &username)?;
        if let Some(ca) = &m.ca {
            if !ca.can_issue {
                return Err(bad(format!(
                    "the 802.1X CA certificate ({}) is not a CA certificate",
                    ca.subject
                ))
                .help("give the certificate of the CA that issued the RADIUS server's certificate (basicConstraints CA:TRUE)"));
            }
        }
        match method {
            EapMethod::EapTls => {
                let (Some(c), Some(k), Some(_)) = (&m.client, &m.key, &m.ca) else {
                    let lacking: Vec<&str> = [
                        (m.client.is_none(), "--ieee8021x-client-cert"),
                        (m.key.is_none(), "--ieee8021x-private-key"),
                        (m.ca.is_none(), "--ieee8021x-ca-cert"),
                    ]
                    .into_iter()
                    .filter_map(|(l, f)| l.then_some(f))
                    .collect();
                    return Err(missing(format!("EAP-TLS needs {}", lacking.join(", ")))
                        .help("give the client certificate, its private key (file, mode 600) and the CA certificate as files"));
                };
                if c.public_key_b64 != k.public_key_b64 {
                    return Err(bad(format!(
                        "the 802.1X private key is not the key of the client certificate ({})",
                        c.subject
                    ))
                    .help("give the key the client certificate was issued for"));
                }
            }
            EapMethod::PeapMschapv2 => {
                if m.client.is_some() || m.key.is_some() {
                    return Err(AgentError::new(
                        ExitCode::InvalidParameterCombination,
                        "PEAP-MSCHAPv2 authenticates with a password: a client certificate or key is not used",
                    )
                    .help("drop --ieee8021x-client-cert/--ieee8021x-private-key, or use --ieee8021x-authentication-protocol 0 (EAP-TLS)"));
                }
                if let Some(pw) = &m.password {
                    check_password(pw)?;
                }
            }
        }
        Ok(Wanted {
            profile_name,
            method,
            username,
            client: m.client,
            key: m.key,
            ca: m.ca,
            password: m.password,
        })
    }

    /// PEAP-MSCHAPv2's password from its sources (a prompt last); 117 without one.
    pub fn resolve_password(&mut self, a: &Ieee8021xArgs) -> Result<(), AgentError> {
        if self.method != EapMethod::PeapMschapv2 || self.password.is_some() {
            return Ok(());
        }
        let pw = super::new_secret(
            "802.1X password",
            a.ieee8021x_password.as_ref(),
            a.ieee8021x_password_file.as_deref(),
            PASSWORD_ENV,
            false,
        )?
        .ok_or_else(|| {
            missing("PEAP-MSCHAPv2 needs the 802.1X password").help(
                "set IEEE8021X_PASSWORD, or give --ieee8021x-password-file FILE (mode 600), or run on a terminal to be asked",
            )
        })?;
        check_password(&pw)?;
        self.password = Some(pw);
        Ok(())
    }

    /// `EAP-TLS as alice (client CN=…, CA CN=…)`.
    pub fn describe(&self) -> String {
        let mut s = format!("{} as {}", self.method.text(), self.username);
        let mut parts = Vec::new();
        if let Some(c) = &self.client {
            parts.push(format!("client {}", c.subject));
        }
        if let Some(c) = &self.ca {
            parts.push(format!("CA {}", c.subject));
        }
        if !parts.is_empty() {
            s.push_str(&format!(" ({})", parts.join(", ")));
        }
        s
    }
}

/// The identity AMT presents to the RADIUS server: 1–128 characters.
fn check_username(method: EapMethod, username: &str) -> Result<(), AgentError> {
    if username.is_empty() || username.len() > 128 {
        return Err(missing(format!(
            "802.1X ({}) needs --ieee8021x-username (1–128 characters): the identity AMT presents to the RADIUS server",
            method.text()
        )));
    }
    Ok(())
}

/// AMT's rule for the PEAP-MSCHAPv2 password.
fn check_password(pw: &Secret) -> Result<(), AgentError> {
    if pw.is_empty() || pw.expose().len() > 32 {
        return Err(bad("the 802.1X password must be 1–32 characters"));
    }
    Ok(())
}

/// AMT's certificate store as read.
#[derive(Clone, Debug, Default)]
pub struct Store {
    pub certificates: Vec<PublicKeyCertificate>,
    pub keys: Vec<KeyPair>,
}

/// Whether two base64 encodings hold the same bytes (AMT may wrap or pad differently).
fn same_b64(a: &str, b: &str) -> bool {
    let d = |s: &str| {
        B64.decode(s.chars().filter(|c| !c.is_whitespace()).collect::<String>())
            .ok()
    };
    matches!((d(a), d(b)), (Some(x), Some(y)) if x == y)
}

impl Store {
    pub fn read(t: &mut Target) -> Result<Store, AgentError> {
        Ok(Store {
            certificates: super::enumerate_all(t, public_key::CERTIFICATE)?
                .iter()
                .map(PublicKeyCertificate::from_instance)
                .collect(),
            keys: super::enumerate_all(t, pkm::KEY_PAIR)?
                .iter()
                .map(KeyPair::from_instance)
                .collect(),
        })
    }

    /// The handle of this certificate among the trusted roots (`root`) or the others.
    pub fn certificate(&self, c: &Cert, root: bool) -> Option<&str> {
        self.certificates
            .iter()
            .find(|x| x.trusted_root == root && same_b64(&x.x509_certificate, &c.der_b64))
            .map(|x| x.instance_id.as_str())
    }

    pub fn by_handle(&self, handle: &str) -> Option<&PublicKeyCertificate> {
        self.certificates.iter().find(|c| c.instance_id == handle)
    }

    pub fn has_key(&self, public_key_b64: &str) -> bool {
        self.keys
            .iter()
            .any(|k| same_b64(&k.der_key, public_key_b64))
    }

    /// Whether the certificate held under `handle` is `c`.
    pub fn is(&self, handle: &str, c: &Cert) -> bool {
        self.by_handle(handle)
            .is_some_and(|x| same_b64(&x.x509_certificate, &c.der_b64))
    }

    /// The steps that put what AMT lacks of `w` into the store: the key before its certificate
    /// (AMT refuses a client certificate whose key it does not hold), then the CA.
    pub fn add_steps(&self, w: &Wanted, exit: ExitCode) -> Vec<Step> {
        let mut steps = Vec::new();
        if let Some(k) = &w.key {
            if !self.has_key(&k.public_key_b64) {
                steps.push(Later::call(pkm::add_key(&k.pkcs1_b64).checked(), exit));
            }
        }
        if let Some(c) = &w.client {
            if self.certificate(c, false).is_none() {
                steps.push(Later::call(
                    pkm::add_certificate(&c.der_b64).checked(),
                    exit,
                ));
            }
        }
        if let Some(c) = &w.ca {
            if self.certificate(c, true).is_none() {
                steps.push(Later::call(
                    pkm::add_trusted_root_certificate(&c.der_b64).checked(),
                    exit,
                ));
            }
        }
        steps
    }
}

/// The handle AMT gave `c`, read from the store when a step needs it.
pub fn handle_now(t: &mut Target, c: &Cert, root: bool) -> Result<String, AgentError> {
    let store = Store::read(t)?;
    store
        .certificate(c, root)
        .map(str::to_string)
        .ok_or_else(|| {
            AgentError::new(
                ExitCode::Ieee8021xConfigurationFailed,
                format!(
                    "AMT does not list the {} certificate ({}) it was just given",
                    if root { "CA" } else { "client" },
                    c.subject
                ),
            )
            .help("read the store with: amt-agent amtinfo --userCert")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value that is no file is not repeated unless it is written as a path: it may be a key cut
    /// off in the paste.
    #[test]
    fn a_short_key_value_that_is_no_file_is_not_repeated() {
        let cut = "MHcCAQEEIBn2yM3kZ7Qq0vX0d4secretkeybytes";
        let Err(e) = load_key(Some(&Secret::new(cut))) else {
            panic!("accepted a cut-off key");
        };
        assert_eq!(e.exit, ExitCode::FailedReadingConfiguration);
        assert!(!format!("{e} {e:?}").contains(cut), "{e}");
        // What is written as a path is named.
        let Err(e) = load_key(Some(&Secret::new("/nonexistent/client.key"))) else {
            panic!("accepted a missing file");
        };
        assert!(e.to_string().contains("/nonexistent/client.key"), "{e}");
    }

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/ieee8021x")
            .join(name)
    }

    #[test]
    fn pkcs8_and_pkcs1_keys_give_the_same_pkcs1_blob() {
        let der = |n: &str| {
            der_of(
                &std::fs::read(fixture(n)).unwrap(),
                &["PRIVATE KEY", "RSA PRIVATE KEY"],
            )
            .unwrap()
        };
        let p8 = der("client.key");
        let p1 = der("client-pkcs1.key");
        assert_ne!(p8, p1);
        assert_eq!(pkcs1_of(&p8).unwrap(), p1);
        assert_eq!(pkcs1_of(&p1).unwrap(), p1);
        assert!(pkcs1_of(b"\x30\x03\x02\x01\x00").is_none());
    }

    #[test]
    fn certificates_load_from_pem_and_know_whether_they_can_issue() {
        let ca = load_cert(Some(&fixture("ca.pem")), "UNUSED_ENV", "CA")
            .unwrap()
            .unwrap();
        assert!(ca.can_issue);
        let client = load_cert(Some(&fixture("client.pem")), "UNUSED_ENV", "client")
            .unwrap()
            .unwrap();
        assert!(!client.can_issue);
        assert!(client.subject.contains("amt-client.corp.example.com"));
        let e = load_cert(Some(&fixture("README.md")), "UNUSED_ENV", "client").unwrap_err();
        assert_eq!(e.exit, ExitCode::MissingOrInvalidConfiguration);
    }

    #[test]
    fn profile_names_are_letters_and_digits() {
        assert!(valid_profile_name("corp8021x"));
        for bad in ["", "corp-net", "corp net", &"a".repeat(33)] {
            assert!(!valid_profile_name(bad), "{bad}");
        }
    }
}
