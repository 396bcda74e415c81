//! `configure tls`: TLS on AMT's network and local interfaces, with a certificate for a key pair
//! AMT generates (rpc-go.md §1.1–1.2 `tls`; the flow of rpc-go v3's `configure tls` and RPS's TLS
//! state machine, rps-protocol.md §5.6):
//!
//! 1. `AMT_PublicKeyManagementService.GenerateKeyPair` (RSA 2048): AMT keeps the private key;
//!    the agent reads the public key (`AMT_PublicPrivateKeyPair.DERKey`), makes a certificate for
//!    it (`crate::tls::issue`: a throwaway CA by default, or the admin's `--ca-cert/--ca-key`) and
//!    adds it (`AddCertificate`); with mutual authentication the admin's CA becomes a trusted root
//!    (`AddTrustedRootCertificate`) for client certificates;
//! 2. `AMT_TLSCredentialContext` Create (Put when one exists) binds it to TLS;
//! 3. `AMT_TLSSettingData` Put of the 802.3 instance (Enabled, AcceptNonSecureConnections,
//!    MutualAuthentication per the mode, as rpc-go) and of the LMS instance (Enabled, and
//!    AcceptNonSecureConnections per the mode: `Server` and `Mutual` close plain 16992 locally
//!    too; mutual authentication stays off locally, where the agent itself is the client);
//! 4. `AMT_SetupAndConfigurationService.CommitChanges`, then `--delay` seconds while AMT restarts
//!    its TLS stack.
//!
//! Then the pin (`super::super::tls_pin`) records the certificate, and the session reconnects: to
//! port 16993, verifying exactly that certificate — the re-read that checks the result already
//! runs over it, as every later command does. The previously bound certificate and its key pair
//! are deleted. `--mode None` turns TLS off on both interfaces and forgets the pin.
//!
//! A run changes nothing when AMT's settings match the mode and the bound certificate is the one
//! pinned (and, with `--ca-cert`, issued by that CA).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use super::enumerate_all;
use super::{Change, Configure, Later, Needs, Plan, Step, Target};
use crate::amthi::{AmthiClient, ControlMode};
use crate::commands::session::AmtConnArgs;
use crate::commands::tls_pin::{PinRecord, PinStore};
use crate::error::{AgentError, ExitCode};
use crate::tls::issue::{self, AmtPublicKey, Ca, LeafSpec};
use crate::tls::PinAlgorithm;
use crate::wsman::calls::{b64, unb64, Instance};
use crate::wsman::classes::public_key::PublicKeyCertificate;
use crate::wsman::classes::public_key_management::{self as pkm, KeyPair};
use crate::wsman::classes::setup_and_configuration;
use crate::wsman::classes::tls::{self, Settings, Side};

/// rpc-go's TLS modes (`--mode`, v2 `-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TlsMode {
    #[value(name = "Server", alias = "server")]
    Server,
    #[value(name = "ServerAndNonTLS", alias = "serverandnontls")]
    ServerAndNonTls,
    #[value(name = "Mutual", alias = "mutual")]
    Mutual,
    #[value(name = "MutualAndNonTLS", alias = "mutualandnontls")]
    MutualAndNonTls,
    #[value(name = "None", alias = "none")]
    None,
}

impl TlsMode {
    pub fn name(self) -> &'static str {
        match self {
            TlsMode::Server => "Server",
            TlsMode::ServerAndNonTls => "ServerAndNonTLS",
            TlsMode::Mutual => "Mutual",
            TlsMode::MutualAndNonTls => "MutualAndNonTLS",
            TlsMode::None => "None",
        }
    }

    fn enabled(self) -> bool {
        self != TlsMode::None
    }

    fn non_tls(self) -> bool {
        matches!(
            self,
            TlsMode::ServerAndNonTls | TlsMode::MutualAndNonTls | TlsMode::None
        )
    }

    fn mutual(self) -> bool {
        matches!(self, TlsMode::Mutual | TlsMode::MutualAndNonTls)
    }

    /// The mode AMT's 802.3 settings say (rpc-go v3's DetermineTLSMode).
    fn of(remote: &Side) -> TlsMode {
        match (remote.enabled, remote.accept_non_secure, remote.mutual) {
            (false, _, _) => TlsMode::None,
            (true, false, false) => TlsMode::Server,
            (true, true, false) => TlsMode::ServerAndNonTls,
            (true, false, true) => TlsMode::Mutual,
            (true, true, true) => TlsMode::MutualAndNonTls,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct TlsArgs {
    /// Server (TLS only), ServerAndNonTLS (TLS and plain), Mutual (TLS with client
    /// certificates), MutualAndNonTLS, or None (TLS off).
    #[arg(long, value_enum, default_value = "Server")]
    pub mode: TlsMode,
    /// Seconds to wait after CommitChanges, while AMT restarts its TLS stack.
    #[arg(long, default_value_t = 3)]
    pub delay: u64,
    /// The CA that signs AMT's certificate (PEM or DER), with --ca-key; default a throwaway CA.
    /// With Mutual it is also AMT's trusted root for client certificates.
    #[arg(long, requires = "ca_key")]
    pub ca_cert: Option<PathBuf>,
    /// The CA's private key (PEM: PKCS#8, PKCS#1, SEC1, or encrypted PKCS#8).
    #[arg(long, requires = "ca_cert")]
    pub ca_key: Option<PathBuf>,
    /// A file holding the password of an encrypted --ca-key (prefer TLS_CA_KEY_PASSWORD).
    #[arg(long)]
    pub ca_key_password_file: Option<PathBuf>,
}

/// The environment variable of the CA key's password.
pub const CA_KEY_PASSWORD_ENV: &str = "TLS_CA_KEY_PASSWORD";

/// The certificate bound to TLS, as read.
#[derive(Clone, Debug)]
pub struct Bound {
    pub instance_id: String,
    pub der: Vec<u8>,
    pub subject: String,
    /// The key pair holding its private key, if listed.
    pub key_pair: Option<String>,
}

pub struct TlsState {
    uuid: String,
    settings: Settings,
    /// Whether an `AMT_TLSCredentialContext` exists (then a new certificate is bound with Put).
    context: bool,
    bound: Option<Bound>,
    roots: Vec<Stored>,
    pin: Option<PinRecord>,
    pin_file: String,
    /// AMT's FQDN (GeneralSettings), the certificate's name when it has one.
    fqdn: Option<String>,
}

/// A certificate in AMT's store, decoded.
#[derive(Clone, Debug)]
struct Stored {
    instance_id: String,
    der: Vec<u8>,
    trusted_root: bool,
}

impl Stored {
    fn from_instance(i: &Instance) -> Result<Stored, AgentError> {
        let c = PublicKeyCertificate::from_instance(i);
        Ok(Stored {
            der: unb64("X509Certificate", &c.x509_certificate, "base64 DER")?,
            instance_id: c.instance_id,
            trusted_root: c.trusted_root,
        })
    }
}

fn read_store(t: &mut Target) -> Result<Vec<Stored>, AgentError> {
    enumerate_all(t, pkm::CERTIFICATE)?
        .iter()
        .map(Stored::from_instance)
        .collect()
}

/// What the steps of a run made: the new certificate, then its handle.
#[derive(Clone, Debug, Default)]
struct Made {
    der: Option<Vec<u8>>,
    id: Option<String>,
}

pub struct Tls {
    args: TlsArgs,
    conn: AmtConnArgs,
    ca: Option<Arc<Ca>>,
    store: Option<PinStore>,
    made: Arc<Mutex<Made>>,
    /// The certificate bound before this run, deleted once another replaced it.
    replaced: Option<Bound>,
    uuid: String,
}

fn failed(message: impl Into<String>) -> AgentError {
    AgentError::new(ExitCode::TlsConfigurationFailed, message)
}

pub fn issue_error(e: issue::IssueError) -> AgentError {
    failed(e.to_string()).help(e.help())
}

impl Tls {
    /// Reads the admin's CA (and asks for its key's password) before anything is sent to AMT.
    pub fn new(a: &TlsArgs, conn: &AmtConnArgs) -> Result<Tls, AgentError> {
        let ca = match (&a.ca_cert, &a.ca_key) {
            (Some(cert), Some(key)) => {
                let key_bytes = std::fs::read(key).map_err(|e| {
                    failed(format!("cannot read the CA key {}: {e}", key.display()))
                        .help("pass a readable file with --ca-key")
                })?;
                let password = if Ca::key_is_encrypted(&key_bytes) {
                    super::new_secret(
                        "CA key password",
                        None,
                        a.ca_key_password_file.as_deref(),
                        &[CA_KEY_PASSWORD_ENV],
                        false,
                    )?
                } else {
                    None
                };
                let cert_bytes = std::fs::read(cert).map_err(|e| {
                    failed(format!(
                        "cannot read the CA certificate {}: {e}",
                        cert.display()
                    ))
                    .help("pass a readable file with --ca-cert")
                })?;
                let ca = Ca::from_bytes(
                    &cert_bytes,
                    &cert.display().to_string(),
                    &key_bytes,
                    &key.display().to_string(),
                    password.as_ref(),
                )
                .map_err(issue_error)?;
                Some(Arc::new(ca))
            }
            _ => None,
        };
        Ok(Tls {
            args: a.clone(),
            conn: conn.clone(),
            ca,
            store: None,
            made: Arc::new(Mutex::new(Made::default())),
            replaced: None,
            uuid: String::new(),
        })
    }

    /// TLS as a desired-state profile wants it: `mode` and `delay` as the flags give them, and
    /// the admin's CA read already (its key's password resolved: nothing is read from the
    /// environment or asked for).
    pub fn with(mode: TlsMode, delay: u64, ca: Option<Ca>, conn: &AmtConnArgs) -> Tls {
        Tls {
            args: TlsArgs {
                mode,
                delay,
                ca_cert: None,
                ca_key: None,
                ca_key_password_file: None,
            },
            conn: conn.clone(),
            ca: ca.map(Arc::new),
            store: None,
            made: Arc::new(Mutex::new(Made::default())),
            replaced: None,
            uuid: String::new(),
        }
    }

    fn mode(&self) -> TlsMode {
        self.args.mode
    }

    /// The settings an interface should have in this mode, on this device.
    fn desired(&self, side: &Side, local: bool) -> (bool, bool, bool) {
        let m = self.mode();
        let fixed = side.non_secure_supported == Some(false);
        let enabled = m.enabled() || fixed;
        let accept = m.non_tls() && !fixed;
        let mutual = m.mutual() && !local;
        (enabled, accept, mutual)
    }

    /// Whether the bound certificate is the one this run should leave bound.
    fn certificate_kept(&self, s: &TlsState) -> bool {
        let (Some(b), Some(p)) = (&s.bound, &s.pin) else {
            return false;
        };
        let pinned = crate::tls::hex(&PinAlgorithm::Sha256.digest(&b.der)) == p.sha256;
        let issued_by_ca = match &self.ca {
            None => true,
            Some(ca) => issued_by(&b.der, ca.certificate_der()),
        };
        pinned && issued_by_ca
    }
}

/// Whether `cert` carries a signature `ca_cert`'s key made.
fn issued_by(cert: &[u8], ca_cert: &[u8]) -> bool {
    let (Ok((_, c)), Ok((_, ca))) = (
        x509_parser::parse_x509_certificate(cert),
        x509_parser::parse_x509_certificate(ca_cert),
    ) else {
        return false;
    };
    c.verify_signature(Some(ca.public_key())).is_ok()
}

fn side_text(enabled: bool, accept: bool, mutual: bool) -> String {
    if !enabled {
        return "off".into();
    }
    format!(
        "on ({}{})",
        if mutual {
            "client certificates required"
        } else {
            "server authentication"
        },
        if accept {
            ", plain HTTP accepted"
        } else {
            ", TLS only"
        }
    )
}

fn subject_of(der: &[u8]) -> String {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c.subject().to_string())
        .unwrap_or_else(|_| "(unparsable)".into())
}

impl Configure for Tls {
    type State = TlsState;

    fn name(&self) -> &'static str {
        "tls"
    }

    fn needs(&self) -> Needs {
        Needs::Activation
    }

    fn failure(&self) -> ExitCode {
        ExitCode::TlsConfigurationFailed
    }

    fn read(&mut self, t: &mut Target) -> Result<TlsState, AgentError> {
        let uuid = AmthiClient::new(t.device.clone()).uuid()?.text();
        let store = self.conn.pin_store(t.device.as_ref());
        let pin = store.load(&uuid)?;
        // Once per run: the read after the changes finds the same directory.
        if self.mode().enabled() && self.store.is_none() {
            store.check_writable()?;
        }
        let pin_file = store
            .path(&uuid)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(in memory: simulated device)".into());
        self.store = Some(store);
        self.uuid = uuid.clone();
        let settings = Settings::from_items(&enumerate_all(t, tls::CLASS)?)?;
        let contexts = enumerate_all(t, tls::CREDENTIAL_CONTEXT)?;
        let bound_id = contexts.iter().find_map(tls::context_certificate);
        let certs = read_store(t)?;
        let keys: Vec<KeyPair> = enumerate_all(t, pkm::KEY_PAIR)?
            .iter()
            .map(KeyPair::from_instance)
            .collect();
        let bound = bound_id.and_then(|id| {
            let c = certs.iter().find(|c| c.instance_id == id)?;
            let public = AmtPublicKey::of_certificate(&c.der);
            let key_pair = keys
                .iter()
                .find(|k| public_key_of(k).ok().as_ref() == public.as_ref())
                .map(|k| k.instance_id.clone());
            Some(Bound {
                instance_id: id,
                der: c.der.clone(),
                subject: subject_of(&c.der),
                key_pair,
            })
        });
        let gs = t.read(crate::wsman::classes::general::get())?;
        let fqdn = match (gs.host_name.as_deref(), gs.domain_name.as_deref()) {
            (Some(h), Some(d)) if !h.is_empty() && !d.is_empty() => Some(format!("{h}.{d}")),
            (Some(h), _) if !h.is_empty() => Some(h.to_string()),
            _ => None,
        };
        if self.replaced.is_none() {
            self.replaced = bound.clone();
        }
        Ok(TlsState {
            uuid,
            settings,
            context: !contexts.is_empty(),
            bound,
            roots: certs.into_iter().filter(|c| c.trusted_root).collect(),
            pin,
            pin_file,
            fqdn,
        })
    }

    fn plan(&self, _mode: ControlMode, s: &TlsState) -> Result<Plan, AgentError> {
        let m = self.mode();
        let enforced = s.settings.local.non_secure_supported == Some(false);
        if m == TlsMode::None && enforced {
            return Err(failed(
                "tls: TLS cannot be turned off on this device: AMT enforces TLS on its local ports",
            )
            .help("choose a TLS mode (Server, ServerAndNonTLS, Mutual, MutualAndNonTLS); only the network interface's plain HTTP can be allowed"));
        }
        let admin_root_in_amt = self
            .ca
            .as_ref()
            .is_some_and(|ca| s.roots.iter().any(|r| r.der == ca.certificate_der()));
        if m.mutual() && self.ca.is_none() && s.roots.is_empty() {
            return Err(failed(format!(
                "tls: mode {} needs a trusted root certificate in AMT to check client certificates against, and AMT holds none",
                m.name()
            ))
            .help("pass --ca-cert CA.pem --ca-key CA.key: that CA signs AMT's certificate and becomes AMT's trusted root for client certificates"));
        }
        let mut plan = Plan::default();
        if m.enabled() {
            let current = match (&s.bound, &s.pin) {
                (None, _) => "none".to_string(),
                (Some(b), _) if self.certificate_kept(s) => b.subject.clone(),
                (Some(b), Some(_)) => format!(
                    "{} (not the one pinned, or not issued by --ca-cert)",
                    b.subject
                ),
                (Some(b), None) => format!("{} (no pin on this host)", b.subject),
            };
            if self.certificate_kept(s) {
                plan.kept.push(super::Kept::new("TLS certificate", current));
            } else {
                let signer = match &self.ca {
                    Some(ca) => format!("signed by {}", ca.subject()),
                    None => "signed by a throwaway CA".to_string(),
                };
                let mut steps = Vec::new();
                if let Some(ca) = &self.ca {
                    if m.mutual() && !admin_root_in_amt {
                        steps.push(Step::Wsman(
                            pkm::add_trusted_root_certificate(&b64(ca.certificate_der())).checked(),
                        ));
                    }
                }
                steps.push(self.issue_step(s));
                steps.push(self.bind_step(s.context));
                plan.changes.push(Change::new(
                    "TLS certificate",
                    current,
                    format!("a new certificate for a key AMT generates, {signer}"),
                    steps,
                ));
            }
        } else if let Some(b) = &s.bound {
            plan.kept.push(super::Kept::new(
                "TLS certificate",
                format!("{} (left in AMT)", b.subject),
            ));
        }
        for (setting, side, local) in [
            (
                "TLS on the network interface (802.3)",
                &s.settings.remote,
                false,
            ),
            ("TLS on the local interface (LMS)", &s.settings.local, true),
        ] {
            let (e, a, mu) = self.desired(side, local);
            let current = side_text(side.enabled, side.accept_non_secure, side.mutual);
            let desired = side_text(e, a, mu);
            plan.setting(setting, current, desired, || {
                let mut i = side.instance.clone();
                i.set("Enabled", e);
                i.set("AcceptNonSecureConnections", a);
                i.set("MutualAuthentication", mu);
                vec![Step::Wsman(tls::put(&i).checked())]
            });
        }
        if let Some(last) = plan.changes.last_mut() {
            last.steps.push(self.commit_step(s));
        }
        Ok(plan)
    }

    fn after_apply(&mut self, t: &mut Target) -> Result<(), AgentError> {
        let store = self.store.clone().expect("read ran first");
        let made = self.made.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let new = made.der.as_ref().zip(made.id.as_ref());
        if let Some((der, id)) = new {
            store.save(&PinRecord::new(&self.uuid, der, id, self.mode().name()))?;
            store.pending().remove(&self.uuid)?;
            tracing::info!(
                file = %store.path(&self.uuid).map(|p| p.display().to_string()).unwrap_or_else(|| "(memory)".into()),
                "AMT's TLS certificate pinned"
            );
        }
        if !self.mode().enabled() && store.remove(&self.uuid)? {
            tracing::info!("TLS is off: AMT's TLS pin removed");
        }
        if self.args.delay > 0 {
            tracing::info!(
                seconds = self.args.delay,
                "waiting while AMT restarts its TLS stack"
            );
            std::thread::sleep(Duration::from_secs(self.args.delay));
        }
        t.reconnect(&self.conn)?;
        if let (Some((_, new_id)), Some(old)) = (new, &self.replaced) {
            if &old.instance_id != new_id {
                prune(t, old);
            }
        }
        Ok(())
    }

    fn report(&self, s: &TlsState) -> (String, Value) {
        let mode = TlsMode::of(&s.settings.remote);
        let pinned = s.bound.as_ref().is_some_and(|b| {
            s.pin
                .as_ref()
                .is_some_and(|p| crate::tls::hex(&PinAlgorithm::Sha256.digest(&b.der)) == p.sha256)
        });
        let cert = s.bound.as_ref().map(|b| {
            json!({
                "instanceId": b.instance_id,
                "subject": b.subject,
                "sha256": crate::tls::hex(&PinAlgorithm::Sha256.digest(&b.der)),
                "pinned": pinned,
            })
        });
        let side = |x: &Side| json!({"enabled": x.enabled, "acceptNonSecureConnections": x.accept_non_secure, "mutualAuthentication": x.mutual});
        (
            format!(
                "mode {}; network interface TLS {}, local interface TLS {}; certificate {}",
                mode.name(),
                side_text(
                    s.settings.remote.enabled,
                    s.settings.remote.accept_non_secure,
                    s.settings.remote.mutual
                ),
                side_text(
                    s.settings.local.enabled,
                    s.settings.local.accept_non_secure,
                    s.settings.local.mutual
                ),
                match &s.bound {
                    Some(b) if pinned => format!("{} (pinned in {})", b.subject, s.pin_file),
                    Some(b) => b.subject.clone(),
                    None => "none".into(),
                }
            ),
            json!({
                "uuid": s.uuid,
                "mode": mode.name(),
                "remote": side(&s.settings.remote),
                "local": side(&s.settings.local),
                "certificate": cert,
                "pinFile": if pinned { Value::from(s.pin_file.clone()) } else { Value::Null },
            }),
        )
    }
}

impl Tls {
    /// GenerateKeyPair, the key's DERKey, a certificate for it, AddCertificate: the certificate
    /// is made when AMT has answered with the key.
    fn issue_step(&self, s: &TlsState) -> Step {
        let ca = self.ca.clone();
        let made = self.made.clone();
        let uuid = s.uuid.clone();
        let spec = LeafSpec {
            common_name: s.fqdn.clone().unwrap_or_else(|| uuid.clone()),
            dns_names: s.fqdn.clone().into_iter().collect(),
            validity_days: 3650,
        };
        let describe = format!(
            "{}; {}.Enumerate+Pull; {}.AddCertificate(CertificateBlob=<a certificate for the new key, CN={}, signed by {}>)",
            pkm::generate_key_pair(pkm::KEY_LENGTH_2048).describe(),
            pkm::KEY_PAIR,
            pkm::SERVICE,
            spec.common_name,
            ca.as_ref().map(|c| c.subject().to_string()).unwrap_or_else(|| "a throwaway CA".into()),
        );
        Step::Later(Later {
            describe,
            exit: None,
            build: Box::new(move |t: &mut Target| {
                let handle = t.write_call(pkm::generate_key_pair(pkm::KEY_LENGTH_2048))?;
                let key = enumerate_all(t, pkm::KEY_PAIR)?
                    .iter()
                    .map(KeyPair::from_instance)
                    .find(|k| k.instance_id == handle)
                    .ok_or_else(|| {
                        failed(format!(
                            "AMT does not list the key pair it generated ({handle})"
                        ))
                        .help("retry; if it persists, capture a trace (-vvv) and report it")
                    })?;
                let public = public_key_of(&key)?;
                tracing::debug!(key = %handle, bits = public.bits(), "AMT generated a key pair");
                let throwaway;
                let signer: &Ca = match &ca {
                    Some(c) => c,
                    None => {
                        throwaway = Ca::throwaway(&format!("amt-agent throwaway CA for {uuid}"))
                            .map_err(issue_error)?;
                        &throwaway
                    }
                };
                let der = issue::issue(&public, signer, &spec).map_err(issue_error)?;
                let call = pkm::add_certificate(&b64(&der)).checked();
                made.lock().unwrap_or_else(|p| p.into_inner()).der = Some(der);
                Ok(call)
            }),
        })
    }

    /// CommitChanges, the new certificate (if this run made one) recorded first as the pending
    /// pin: should the answer be lost after AMT moved to 16993, the next session still verifies
    /// AMT by it (`tls_pin`, "A commit whose answer was lost").
    fn commit_step(&self, s: &TlsState) -> Step {
        let commit = setup_and_configuration::commit_changes();
        let made = self.made.clone();
        let store = self.store.clone();
        let (uuid, mode) = (s.uuid.clone(), self.mode().name());
        Step::Later(Later {
            describe: commit.describe(),
            exit: None,
            build: Box::new(move |_t: &mut Target| {
                let made = made.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let (Some(der), Some(id), Some(store)) = (&made.der, &made.id, &store) {
                    store
                        .pending()
                        .save(&PinRecord::new(&uuid, der, id, mode))?;
                }
                Ok(commit.clone())
            }),
        })
    }

    /// The credential context binds the new certificate (its handle read back from the store):
    /// Create, or Put when one exists.
    fn bind_step(&self, context_exists: bool) -> Step {
        let made = self.made.clone();
        let describe = format!(
            "{}.{}(ElementInContext=<the new certificate>)",
            tls::CREDENTIAL_CONTEXT,
            if context_exists { "Put" } else { "Create" }
        );
        Step::Later(Later {
            describe,
            exit: None,
            build: Box::new(move |t: &mut Target| {
                let der = made
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .der
                    .clone()
                    .ok_or_else(|| failed("internal: no certificate was added before binding"))?;
                let id = read_store(t)?
                    .into_iter()
                    .find(|c| !c.trusted_root && c.der == der)
                    .map(|c| c.instance_id)
                    .ok_or_else(|| {
                        failed("AMT does not list the certificate it was just given")
                            .help("read the store with: amt-agent amtinfo --user-cert")
                    })?;
                tracing::info!(certificate = %id, "certificate for AMT's key added");
                made.lock().unwrap_or_else(|p| p.into_inner()).id = Some(id.clone());
                Ok(if context_exists {
                    tls::put_context(&id)
                } else {
                    tls::create_context(&id)
                })
            }),
        })
    }
}

/// The public key of a key pair AMT lists (`DERKey`, base64 PKCS#1 or SPKI DER).
fn public_key_of(k: &KeyPair) -> Result<AmtPublicKey, AgentError> {
    let der = unb64("DERKey", &k.der_key, "base64").map_err(AgentError::from)?;
    AmtPublicKey::from_der_key(&der).map_err(issue_error)
}

/// Deletes a certificate TLS no longer uses, and its key pair; a refusal only warns (AMT keeps a
/// spare certificate, nothing breaks).
fn prune(t: &mut Target, old: &Bound) {
    if let Err(e) = t.write_call(pkm::delete_certificate(&old.instance_id)) {
        tracing::warn!(certificate = %old.instance_id, error = %e, "the replaced TLS certificate could not be deleted");
        return;
    }
    if let Some(k) = &old.key_pair {
        if let Err(e) = t.write_call(pkm::delete_key(k)) {
            tracing::warn!(key = %k, error = %e, "the replaced TLS key pair could not be deleted");
        }
    }
}
