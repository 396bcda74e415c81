//! Where the agent keeps the certificate it installed for AMT's TLS (`configure tls`), so that
//! every later command talks to AMT on port 16993 verifying exactly that certificate.
//!
//! # The trust decision
//! The agent made the certificate itself, for the key pair AMT generated, and saw AMT accept and
//! bind it over a session it trusted (the ME's own LME channel, or LMS). From then on the
//! certificate is the identity of this machine's AMT on its local TLS port: the pin is its
//! SHA-256, and a TLS peer presenting anything else is refused, whatever CA signed it. The pin
//! cannot be re-derived safely later from AMT itself: reading `AMT_PublicKeyCertificate` and the
//! credential context over the connection being verified would let an impostor on the loopback
//! port (nothing stops an unprivileged process binding 127.0.0.1:16993 when LMS is not running)
//! vouch for its own certificate. So the pin lives on the host, where only root writes:
//! `<dir>/amt-tls-<UUID>.json` (`--tls-pin-dir`, env `AMT_AGENT_TLS_PIN_DIR`, default
//! `/var/lib/amt-agent`, on Windows `%ProgramData%\amt-agent`), mode 600 in a 700 directory (on
//! Windows the same as ACLs: SYSTEM, Administrators and the agent's user), keyed by AMT's UUID
//! (read over AMTHI), and refused when group or others may write it (on Windows: anyone else). For the in-process simulator, whose state ends
//! with the process, pins are kept in memory only.
//!
//! A deactivation removes the pin (the firmware forgets its TLS configuration); so does
//! `configure tls --mode None`.
//!
//! # A commit whose answer was lost
//! `configure tls` records the new certificate as a *pending* pin (`amt-tls-<UUID>.pending.json`)
//! before it sends CommitChanges, and as the pin once AMT answered. When the answer is lost (the
//! connection dropped, the agent killed) AMT may already serve only 16993 with that certificate:
//! the next session that finds AMT's local port on 16993 without a pin verifies AMT against the
//! pending certificate — the agent's own, bound over a trusted session, exactly as a pin — and
//! makes it the pin once AMT answered over it. A pending pin never moves a session from 16992 to
//! 16993: a commit that did not take effect leaves everything as it was.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{AgentError, ExitCode};
use crate::heci::MeiDevice;
use crate::tls::{LeafPin, PinAlgorithm};

/// The default directory of pin files.
pub const DEFAULT_DIR: &str = crate::os::DATA_DIR;

/// One pin: what `configure tls` installed on the AMT with this UUID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinRecord {
    pub uuid: String,
    /// Upper-case hex SHA-256 of the certificate's DER.
    pub sha256: String,
    /// The certificate (base64 DER), for diagnosis.
    pub certificate: String,
    /// Its `AMT_PublicKeyCertificate` InstanceID.
    pub instance_id: String,
    /// The TLS mode configured (`Server`, `Mutual`, …).
    pub mode: String,
    /// When (Unix seconds).
    pub configured: u64,
}

impl PinRecord {
    pub fn new(uuid: &str, cert_der: &[u8], instance_id: &str, mode: &str) -> PinRecord {
        use base64::Engine as _;
        PinRecord {
            uuid: uuid.to_string(),
            sha256: crate::tls::hex(&PinAlgorithm::Sha256.digest(cert_der)),
            certificate: base64::engine::general_purpose::STANDARD.encode(cert_der),
            instance_id: instance_id.to_string(),
            mode: mode.to_string(),
            configured: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    pub fn pin(&self) -> Result<LeafPin, AgentError> {
        LeafPin::from_hex(PinAlgorithm::Sha256, &self.sha256).map_err(|e| {
            AgentError::new(
                ExitCode::AmtConnectionFailed,
                format!("the TLS pin of AMT {} is unusable: {e}", self.uuid),
            )
        })
    }
}

/// Pin files in a directory, or pins in memory for a device whose state ends with the process.
#[derive(Clone, Debug)]
pub struct PinStore {
    dir: Option<PathBuf>,
    /// Distinguishes in-memory stores of different devices in one process (tests).
    memory_key: String,
    /// `""` for the pins, `.pending` for certificates whose commit was not answered yet.
    suffix: &'static str,
}

fn memory() -> &'static Mutex<HashMap<String, PinRecord>> {
    static M: std::sync::OnceLock<Mutex<HashMap<String, PinRecord>>> = std::sync::OnceLock::new();
    M.get_or_init(|| Mutex::new(HashMap::new()))
}

fn store_error(what: String) -> AgentError {
    AgentError::new(ExitCode::GenericFailure, what)
}

impl PinStore {
    /// The store for `device`: the files in `dir`, or memory for the in-process simulator.
    pub fn for_device(device: &dyn MeiDevice, dir: &Path) -> PinStore {
        match device.ephemeral() {
            Some(instance) => PinStore {
                dir: None,
                memory_key: instance,
                suffix: "",
            },
            None => PinStore {
                dir: Some(dir.to_path_buf()),
                memory_key: String::new(),
                suffix: "",
            },
        }
    }

    /// The same place for pending pins: certificates sent with a CommitChanges that was not
    /// answered yet (see the module's documentation).
    pub fn pending(&self) -> PinStore {
        PinStore {
            suffix: ".pending",
            ..self.clone()
        }
    }

    /// Where the pin of `uuid` lives (`None`: in memory).
    pub fn path(&self, uuid: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| {
            d.join(format!(
                "amt-tls-{}{}.json",
                uuid.to_ascii_uppercase(),
                self.suffix
            ))
        })
    }

    fn memory_id(&self, uuid: &str) -> String {
        format!(
            "{}\u{0}{}{}",
            self.memory_key,
            uuid.to_ascii_uppercase(),
            self.suffix
        )
    }

    /// The pin of the AMT with this UUID, if `configure tls` left one.
    pub fn load(&self, uuid: &str) -> Result<Option<PinRecord>, AgentError> {
        let Some(path) = self.path(uuid) else {
            let m = memory().lock().unwrap_or_else(|p| p.into_inner());
            return Ok(m.get(&self.memory_id(uuid)).cloned());
        };
        let bytes =
            match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(store_error(format!(
                    "cannot read AMT's TLS pin {}: {e}",
                    path.display()
                ))
                .help(
                    "run as root (the pin directory is root's), or point --tls-pin-dir elsewhere",
                )),
            };
        if let Some(who) = crate::os::private::writable_by_others(&path).map_err(|e| {
            store_error(format!(
                "cannot check who may change AMT's TLS pin {}: {e}",
                path.display()
            ))
        })? {
            let fix = if cfg!(windows) {
                format!(
                    "check who changed it, then: icacls \"{}\" /inheritance:r /grant:r SYSTEM:F Administrators:F",
                    path.display()
                )
            } else {
                format!("check who changed it, then: chmod 600 {}", path.display())
            };
            return Err(store_error(format!(
                "AMT's TLS pin {} may be written by {who}: it is not trusted",
                path.display()
            ))
            .help(fix));
        }
        let rec: PinRecord = serde_json::from_slice(&bytes).map_err(|e| {
            store_error(format!("AMT's TLS pin {} is corrupt: {e}", path.display())).help(
                "remove it and run amt-agent configure tls again (AMT's certificate is re-issued)",
            )
        })?;
        Ok(Some(rec))
    }

    /// Records a pin (atomically: written beside, then renamed; mode 600 in a 700 directory).
    pub fn save(&self, rec: &PinRecord) -> Result<(), AgentError> {
        let Some(path) = self.path(&rec.uuid) else {
            let mut m = memory().lock().unwrap_or_else(|p| p.into_inner());
            m.insert(self.memory_id(&rec.uuid), rec.clone());
            return Ok(());
        };
        let dir = path.parent().expect("a file in a directory");
        let fail = |what: &str, e: std::io::Error| {
            store_error(format!("cannot {what} AMT's TLS pin {}: {e}", path.display()))
                .help("run as root, or point --tls-pin-dir (AMT_AGENT_TLS_PIN_DIR) at a directory only root writes")
        };
        crate::os::private::create_private_dir(dir)
            .map_err(|e| fail("create the directory of", e))?;
        let text = serde_json::to_string_pretty(rec).expect("a pin serialises");
        crate::os::private::write_private_file(&path, text.as_bytes()).map_err(|e| fail("write", e))
    }

    /// Refuses up front when a pin could not be recorded: TLS-only AMT without a pin would lock
    /// this agent out. Creates the directory (700) and a probe file it removes.
    pub fn check_writable(&self) -> Result<(), AgentError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let probe = PinRecord {
            uuid: ".probe".into(),
            sha256: String::new(),
            certificate: String::new(),
            instance_id: String::new(),
            mode: String::new(),
            configured: 0,
        };
        self.save(&probe)
            .and_then(|()| self.remove(".probe").map(|_| ()))
            .map_err(|e| {
                e.context(format!(
                    "the pin directory {} is not writable: AMT's TLS certificate could not be recorded",
                    dir.display()
                ))
            })
    }

    /// Forgets the pin of `uuid`; `true` when there was one.
    pub fn remove(&self, uuid: &str) -> Result<bool, AgentError> {
        let Some(path) = self.path(uuid) else {
            let mut m = memory().lock().unwrap_or_else(|p| p.into_inner());
            return Ok(m.remove(&self.memory_id(uuid)).is_some());
        };
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(store_error(format!(
                "cannot remove AMT's TLS pin {}: {e}",
                path.display()
            ))
            .help("run as root, or remove the file by hand")),
        }
    }
}

/// Forgets the TLS pin of this machine's AMT after the firmware reported pre-provisioning (an
/// unprovisioned AMT has no TLS configuration left); a failure only warns.
pub fn forget(device: &std::sync::Arc<dyn MeiDevice>, conn: &super::session::AmtConnArgs) {
    let uuid = match crate::amthi::AmthiClient::new(device.clone()).uuid() {
        Ok(u) => u.text(),
        Err(e) => {
            tracing::debug!(error = %e, "UUID unreadable: AMT's TLS pin, if any, is kept");
            return;
        }
    };
    let store = conn.pin_store(device.as_ref());
    if let Err(e) = store.pending().remove(&uuid) {
        tracing::warn!(error = %e, "AMT's stale pending TLS pin could not be removed");
    }
    match store.remove(&uuid) {
        Ok(true) => tracing::info!(%uuid, "AMT is not activated: its TLS pin is removed"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "AMT's stale TLS pin could not be removed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_pin_is_a_file_of_its_own() {
        let d = tempfile::tempdir().unwrap();
        let s = PinStore {
            dir: Some(d.path().to_path_buf()),
            memory_key: String::new(),
            suffix: "",
        };
        let uuid = "4c4c4544-0044-4810-8052-b3c04f508888";
        let rec = PinRecord::new(uuid, b"certificate", "Handle 1", "Server");
        s.pending().save(&rec).unwrap();
        assert!(d
            .path()
            .join("amt-tls-4C4C4544-0044-4810-8052-B3C04F508888.pending.json")
            .exists());
        assert_eq!(s.load(uuid).unwrap(), None);
        assert_eq!(s.pending().load(uuid).unwrap(), Some(rec.clone()));
        s.save(&rec).unwrap();
        assert!(s.pending().remove(uuid).unwrap());
        assert_eq!(s.load(uuid).unwrap(), Some(rec));
        assert_eq!(s.pending().load(uuid).unwrap(), None);
    }

    #[test]
    fn a_pin_survives_in_a_private_file_and_goes_away() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("pins");
        let s = PinStore {
            dir: Some(dir.clone()),
            memory_key: String::new(),
            suffix: "",
        };
        let uuid = "4c4c4544-0044-4810-8052-b3c04f508888";
        assert_eq!(s.load(uuid).unwrap(), None);
        let rec = PinRecord::new(
            uuid,
            b"certificate",
            "Intel(r) AMT Certificate: Handle: 0",
            "Server",
        );
        s.save(&rec).unwrap();
        assert_eq!(s.load(uuid).unwrap(), Some(rec.clone()));
        assert!(rec.pin().unwrap().matches(b"certificate"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = s.path(uuid).unwrap();
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            assert_eq!(
                std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
                0o700
            );
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
            let e = s.load(uuid).unwrap_err();
            assert!(e.to_string().contains("may be written by others"), "{e}");
            assert!(e.to_string().contains("chmod 600"), "{e}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(s.remove(uuid).unwrap());
        assert!(!s.remove(uuid).unwrap());
        assert_eq!(s.load(uuid).unwrap(), None);
    }
}
