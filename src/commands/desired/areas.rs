//! A profile's areas, each the `configure` subcommand of its setting (read → pure plan → steps),
//! behind one object-safe trait so `plan` and `apply` can walk them in order. Nothing here
//! re-implements an area: [`Wrap`] runs a [`Configure`] as `configure` does; [`Proxies`] and
//! [`MebxOnce`] compose `configure proxy` and `configure mebx` for what a whole profile needs (a
//! complete proxy list; a password AMT never reveals, set once per value).

use serde::{Deserialize, Serialize};

use crate::amthi::ControlMode;
use crate::commands::configure::{self, proxy, Configure, Kept, Plan, Target};
use crate::error::{AgentError, ExitCode};
use crate::profile::secrets::{write_private, DataDir};
use crate::secret::Secret;

/// One area of a profile, planned and applied on a [`Target`].
pub trait Area {
    /// The area's name in plans (`amt-features`).
    fn name(&self) -> &'static str;
    /// What the profile wants, in one line (shown while the area cannot be read yet).
    fn wanted(&self) -> String;
    /// rpc-go's code when AMT refuses one of the area's writes.
    fn failure(&self) -> ExitCode;
    /// Reads the area and plans it.
    fn plan(&mut self, t: &mut Target) -> Result<Plan, AgentError>;
    /// After the area's steps succeeded, before it is read again.
    fn after_apply(&mut self, _t: &mut Target) -> Result<(), AgentError> {
        Ok(())
    }
}

/// A `configure` subcommand as an area.
pub struct Wrap<C: Configure> {
    pub c: C,
    pub wanted: String,
}

impl<C: Configure> Area for Wrap<C> {
    fn name(&self) -> &'static str {
        self.c.name()
    }

    fn wanted(&self) -> String {
        self.wanted.clone()
    }

    fn failure(&self) -> ExitCode {
        self.c.failure()
    }

    fn plan(&mut self, t: &mut Target) -> Result<Plan, AgentError> {
        let mode = t.control_mode;
        self.c.precheck(mode)?;
        let state = self.c.read(t)?;
        self.c.plan(mode, &state)
    }

    fn after_apply(&mut self, t: &mut Target) -> Result<(), AgentError> {
        self.c.after_apply(t)
    }
}

/// `proxies:`, the complete list: each wanted proxy is `configure proxy --address …` (added, or
/// replaced when its port or suffix differ), each other one `configure proxy --delete`.
pub struct Proxies {
    pub want: Vec<crate::profile::Proxy>,
}

impl Area for Proxies {
    fn name(&self) -> &'static str {
        "proxies"
    }

    fn wanted(&self) -> String {
        if self.want.is_empty() {
            return "none".into();
        }
        self.want
            .iter()
            .map(|p| format!("{}:{}", p.address, p.port))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn failure(&self) -> ExitCode {
        ExitCode::UnableToConfigure
    }

    fn plan(&mut self, t: &mut Target) -> Result<Plan, AgentError> {
        let list = proxy::ProxyArgs {
            list: true,
            ..Default::default()
        };
        let have = proxy::Proxy::new(&list)?.read(t)?;
        let mode = t.control_mode;
        let mut plan = Plan::default();
        for w in &self.want {
            let add = proxy::Proxy::new(&proxy::ProxyArgs {
                address: Some(w.address.clone()),
                port: Some(w.port),
                network_dns_suffix: w.network_dns_suffix.clone(),
                ..Default::default()
            })?;
            merge(&mut plan, add.plan(mode, &have)?);
        }
        let mut gone: Vec<String> = Vec::new();
        for h in &have {
            let wanted = self
                .want
                .iter()
                .any(|w| w.address.eq_ignore_ascii_case(&h.address));
            if !wanted && !gone.iter().any(|g| g.eq_ignore_ascii_case(&h.address)) {
                gone.push(h.address.clone());
                let del = proxy::Proxy::new(&proxy::ProxyArgs {
                    delete: true,
                    address: Some(h.address.clone()),
                    ..Default::default()
                })?;
                merge(&mut plan, del.plan(mode, &have)?);
            }
        }
        Ok(plan)
    }
}

fn merge(into: &mut Plan, p: Plan) {
    into.changes.extend(p.changes);
    into.kept.extend(p.kept);
}

/// A secret AMT never reveals (the MEBx password, a Wi-Fi passphrase, an 802.1X password), set
/// once per value: after AMT accepted it, a salted PBKDF2-HMAC-SHA256 verifier (never the secret)
/// is kept in a file of the data directory with the device's UUID, and a later run with the same
/// secret on the same device knows AMT has it.
#[derive(Clone, Debug)]
pub struct Verifier {
    pub path: std::path::PathBuf,
    pub uuid: String,
    /// What this run recorded: apply reads an area back right after its secret was set, and
    /// deriving the verifier again for that (100 000 iterations) would tell it nothing new.
    recorded: std::cell::RefCell<Option<(Secret, String)>>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    uuid: String,
    salt: String,
    iterations: u32,
    verifier: String,
    set_at: String,
}

const PBKDF2_ITERATIONS: u32 = 100_000;

impl Verifier {
    pub fn at(path: std::path::PathBuf, uuid: &str) -> Verifier {
        Verifier {
            path,
            uuid: uuid.to_string(),
            recorded: Default::default(),
        }
    }

    fn record(&self) -> Option<Record> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// When AMT took `secret` on this device, as recorded.
    pub fn set_at(&self, secret: &Secret) -> Option<String> {
        use base64::Engine;
        if let Some((s, at)) = self.recorded.borrow().as_ref() {
            if s == secret {
                return Some(at.clone());
            }
        }
        let r = self.record()?;
        if r.uuid != self.uuid {
            return None;
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = b64.decode(&r.salt).ok()?;
        let verifier = b64.decode(&r.verifier).ok()?;
        let iterations = std::num::NonZeroU32::new(r.iterations)?;
        ring::pbkdf2::verify(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &salt,
            secret.expose().as_bytes(),
            &verifier,
        )
        .ok()
        .map(|_| r.set_at)
    }

    /// Records that AMT now holds `secret`.
    pub fn remember(&self, secret: &Secret) -> Result<(), AgentError> {
        use base64::Engine;
        use rand::RngCore;
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let mut verifier = [0u8; 32];
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            std::num::NonZeroU32::new(PBKDF2_ITERATIONS).expect("non-zero"),
            &salt,
            secret.expose().as_bytes(),
            &mut verifier,
        );
        let b64 = base64::engine::general_purpose::STANDARD;
        let r = Record {
            uuid: self.uuid.clone(),
            salt: b64.encode(salt),
            iterations: PBKDF2_ITERATIONS,
            verifier: b64.encode(verifier),
            set_at: crate::service::status::rfc3339(std::time::SystemTime::now()),
        };
        let json = serde_json::to_vec_pretty(&r).unwrap_or_default();
        write_private(&self.path, &json)?;
        *self.recorded.borrow_mut() = Some((secret.clone(), r.set_at));
        Ok(())
    }
}

/// The verifier of a secret a profile sets once per value: `DATA_DIR/verifiers/NAME.json`.
pub fn verifier(data: &DataDir, name: &str, uuid: &str) -> Verifier {
    Verifier::at(data.0.join("verifiers").join(format!("{name}.json")), uuid)
}

/// `configure`'s kept text says `--force` sends a secret again: a profile does that by itself,
/// by its verifier.
pub fn strip_force_hint(s: &str) -> &str {
    [
        " (the password is not readable",
        " (secrets are not readable",
        "kept (AMT never shows it",
    ]
    .iter()
    .fold(s, |s, hint| s.split(hint).next().unwrap_or(s))
}

/// The MEBx password: AMT never reveals it, so `configure mebx` writes on every run. A profile
/// sets it once per value ([`Verifier`], `DATA_DIR/mebx-password.json`).
pub struct MebxOnce {
    pub inner: Wrap<configure::mebx::Mebx>,
    pub password: Secret,
    pub verifier: Verifier,
}

impl MebxOnce {
    pub fn new(password: Secret, data: &DataDir, uuid: String) -> MebxOnce {
        MebxOnce {
            inner: Wrap {
                c: configure::mebx::Mebx::with(password.clone()),
                wanted: "***".into(),
            },
            password,
            verifier: Verifier::at(data.0.join("mebx-password.json"), &uuid),
        }
    }
}

impl Area for MebxOnce {
    fn name(&self) -> &'static str {
        "mebx"
    }

    fn wanted(&self) -> String {
        "***".into()
    }

    fn failure(&self) -> ExitCode {
        ExitCode::SetMebxPasswordFailed
    }

    fn plan(&mut self, t: &mut Target) -> Result<Plan, AgentError> {
        if t.control_mode != ControlMode::Acm {
            return Err(AgentError::new(
                ExitCode::SetMebxPasswordFailed,
                format!(
                    "mebx: AMT sets the MEBx password only in admin control mode; the device is in {}",
                    t.control_mode.text()
                ),
            )
            .help("remove mebxPassword from the profile, or use controlMode: acm"));
        }
        if let Some(at) = self.verifier.set_at(&self.password) {
            return Ok(Plan {
                changes: vec![],
                kept: vec![Kept::new(
                    "MEBx password",
                    format!("*** (set by amt-agent at {at}; AMT does not reveal it)"),
                )],
            });
        }
        self.inner.plan(t)
    }

    fn after_apply(&mut self, t: &mut Target) -> Result<(), AgentError> {
        self.verifier.remember(&self.password)?;
        self.inner.after_apply(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mebx_record_verifies_the_same_password_on_the_same_device_only() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir(dir.path().to_path_buf());
        let make = |pw: &str, uuid: &str| MebxOnce::new(Secret::new(pw), &data, uuid.into());
        let a = make("Mebx!Pass1", "U1");
        assert!(a.verifier.set_at(&a.password).is_none());
        a.verifier.remember(&a.password).unwrap();
        assert!(a.verifier.set_at(&a.password).is_some());
        let b = make("Mebx!Pass2", "U1");
        assert!(b.verifier.set_at(&b.password).is_none());
        let c = make("Mebx!Pass1", "U2");
        assert!(c.verifier.set_at(&c.password).is_none());
        let text = std::fs::read_to_string(&a.verifier.path).unwrap();
        assert!(!text.contains("Mebx!Pass1"), "{text}");
    }
}
