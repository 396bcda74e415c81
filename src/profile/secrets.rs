//! Secrets in a profile: a value, `env:NAME`, `file:PATH`, or `generate` (AMT, MEBx and MPS
//! passwords). AMT's passwords may not contain `:`, so `env:`/`file:` never hide a real AMT or
//! MEBx password; a passphrase that really begins with `env:` or `file:` goes in a file.
//!
//! A generated password is made once, written to `DATA_DIR/generated/NAME` (mode 600, in a mode
//! 700 directory) **before** anything is sent to AMT, and read from there on every later run, so
//! an interrupted apply and the next one use the same password and the administrator finds it
//! there (as root). It is never printed.

use std::path::{Path, PathBuf};

use rand::Rng;
use serde::{Deserialize, Deserializer};

use crate::error::{AgentError, ExitCode};
use crate::secret::Secret;

#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    Value(Secret),
    Env(String),
    File(PathBuf),
    Generate,
}

impl std::fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl SecretRef {
    pub fn parse(s: &str) -> SecretRef {
        if s == "generate" {
            SecretRef::Generate
        } else if let Some(n) = s.strip_prefix("env:") {
            SecretRef::Env(n.to_string())
        } else if let Some(p) = s.strip_prefix("file:") {
            SecretRef::File(PathBuf::from(p))
        } else {
            SecretRef::Value(Secret::new(s))
        }
    }

    /// How the profile gives it, never the value: `***`, `env:NAME`, `file:PATH`, `generate`.
    pub fn describe(&self) -> String {
        match self {
            SecretRef::Value(_) => "***".into(),
            SecretRef::Env(n) => format!("env:{n}"),
            SecretRef::File(p) => format!("file:{}", p.display()),
            SecretRef::Generate => "generate".into(),
        }
    }

    pub fn is_literal(&self) -> bool {
        matches!(self, SecretRef::Value(_))
    }

    /// The value of a reference (`generate` is resolved by [`Generated`]). `what` names it in
    /// messages ("adminPassword").
    pub fn resolve(&self, what: &str) -> Result<Secret, AgentError> {
        match self {
            SecretRef::Value(s) => Ok(s.clone()),
            SecretRef::Env(n) => match std::env::var(n) {
                Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
                _ => Err(AgentError::new(
                    ExitCode::MissingOrInvalidConfiguration,
                    format!("{what}: the environment variable {n} is not set"),
                )
                .help(format!(
                    "export {n}=… before running, or give {what} as file:PATH"
                ))),
            },
            SecretRef::File(p) => crate::secret_source::read_secret_file(p, what),
            SecretRef::Generate => Err(AgentError::new(
                ExitCode::MissingOrInvalidConfiguration,
                format!("{what}: generate is only for the AMT, MEBx and MPS passwords"),
            )),
        }
    }

    /// As [`SecretRef::resolve`], but `file:PATH` gives the whole file (a PEM private key has
    /// many lines), checked the same way: a file only its owner may read.
    pub fn resolve_text(&self, what: &str) -> Result<Secret, AgentError> {
        match self {
            SecretRef::File(p) => {
                crate::secret_source::check_private_file(p, what)?;
                std::fs::read_to_string(p).map(Secret::new).map_err(|e| {
                    AgentError::new(
                        ExitCode::FailedReadingConfiguration,
                        format!("cannot read the {what} file {}: {e}", p.display()),
                    )
                })
            }
            other => other.resolve(what),
        }
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(SecretRef::parse(&String::deserialize(d)?))
    }
}

/// rpc-go's alphabet for generated passwords (rpc-go.md §8.5): letters, digits and `!@#$%^*()`.
const SPECIAL: &[u8] = b"!@#$%^*()";

/// A random 16-character password meeting AMT's rules (and MPS's: 8–16 characters).
pub fn generate_password(rng: &mut impl Rng) -> Secret {
    const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const DIGIT: &[u8] = b"0123456789";
    let all: Vec<u8> = [LOWER, UPPER, DIGIT, SPECIAL].concat();
    loop {
        let p: String = (0..16)
            .map(|_| all[rng.gen_range(0..all.len())] as char)
            .collect();
        if crate::secret::meets_amt_rules(&p) {
            return Secret::new(p);
        }
    }
}

/// Generated secrets and apply's records: the data directory (`--data-dir`, default
/// `/var/lib/amt-agent`, on Windows `%ProgramData%\amt-agent`; it must outlive reboots, unlike the
/// service's `/run/amt-agent`).
#[derive(Clone, Debug)]
pub struct DataDir(pub PathBuf);

pub const DEFAULT_DATA_DIR: &str = crate::os::DATA_DIR;

impl DataDir {
    pub fn generated(&self, name: &str) -> PathBuf {
        self.0.join("generated").join(name)
    }

    /// The generated secret `name` (`amt-password`, `mebx-password`, `mps-password`), made and
    /// stored first when there is none yet.
    pub fn generated_secret(&self, name: &str) -> Result<Secret, AgentError> {
        let path = self.generated(name);
        if path.exists() {
            return crate::secret_source::read_secret_file(&path, &format!("generated {name}"));
        }
        let s = generate_password(&mut rand::rngs::OsRng);
        write_private(&path, format!("{}\n", s.expose()).as_bytes())?;
        tracing::info!(path = %path.display(), "generated {name} stored (root only)");
        Ok(s)
    }

    /// The generated secret `name` if one was made before (for `plan`, which writes nothing).
    pub fn existing_generated(&self, name: &str) -> Result<Option<Secret>, AgentError> {
        let path = self.generated(name);
        if !path.exists() {
            return Ok(None);
        }
        crate::secret_source::read_secret_file(&path, &format!("generated {name}")).map(Some)
    }
}

/// Writes `bytes` to `path` readable by its owner only, atomically, in a directory only its owner
/// may enter: modes 600 and 700 on Unix, the private DACL on Windows (`os::private`).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    let fail = |e: std::io::Error| {
        AgentError::new(
            ExitCode::FailedReadingConfiguration,
            format!("cannot write {}: {e}", path.display()),
        )
        .help(format!(
            "the data directory (--data-dir, default {}) must be writable by this user ({})",
            crate::os::DATA_DIR,
            if cfg!(windows) {
                "an administrator"
            } else {
                "root"
            }
        ))
    };
    if let Some(dir) = path.parent() {
        crate::os::private::create_private_dir(dir).map_err(fail)?;
        crate::os::private::make_private(dir).map_err(fail)?;
    }
    crate::os::private::write_private_file(path, bytes).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn references_parse_and_never_show_a_value() {
        assert_eq!(SecretRef::parse("generate"), SecretRef::Generate);
        assert_eq!(
            SecretRef::parse("env:AMT_PW"),
            SecretRef::Env("AMT_PW".into())
        );
        assert_eq!(
            SecretRef::parse("file:/etc/x"),
            SecretRef::File("/etc/x".into())
        );
        let v = SecretRef::parse("P@ssw0rd!");
        assert!(v.is_literal());
        assert_eq!(format!("{v:?} {}", v.describe()), "*** ***");
    }

    #[test]
    fn generated_passwords_meet_amts_rules_and_differ() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let a = generate_password(&mut rng);
        let b = generate_password(&mut rng);
        assert_ne!(a, b);
        for p in [a, b] {
            assert_eq!(p.expose().len(), 16);
            assert!(crate::secret::meets_amt_rules(p.expose()));
        }
    }

    #[test]
    fn a_generated_secret_is_stored_first_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let d = DataDir(dir.path().join("data"));
        assert!(d.existing_generated("amt-password").unwrap().is_none());
        let a = d.generated_secret("amt-password").unwrap();
        let b = d.generated_secret("amt-password").unwrap();
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(d.generated("amt-password")).unwrap();
            assert_eq!(m.mode() & 0o777, 0o600);
            let m = std::fs::metadata(dir.path().join("data/generated")).unwrap();
            assert_eq!(m.mode() & 0o777, 0o700);
        }
        let private = crate::os::private::readable_by_others(&d.generated("amt-password"));
        assert_eq!(private.unwrap(), None);
    }
}
