//! Where secrets come from: the environment, a file, the command line (with a warning), or a
//! no-echo prompt. They never need to be on the command line.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use crate::error::{AgentError, ExitCode};
use crate::secret::Secret;

/// One secret's sources, in order: `--NAME-file`, `--NAME` (warned), the environment, a prompt.
pub struct SecretSource<'a> {
    /// What it is, for messages ("AMT password").
    pub what: &'a str,
    pub flag: Option<&'a str>,
    pub file: Option<&'a Path>,
    /// Environment variable names, first match wins (ours, then rpc-go's).
    pub env: &'a [&'a str],
}

/// Refuses a secret's file that other users can read (or that cannot be read at all).
pub fn check_private_file(path: &Path, what: &str) -> Result<(), AgentError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        AgentError::new(
            ExitCode::FailedReadingConfiguration,
            format!("cannot read the {what} file {}: {e}", path.display()),
        )
        .help("check the path and that this user may read it")
    })?;
    if meta.mode() & 0o077 != 0 {
        return Err(AgentError::new(
            ExitCode::FailedReadingConfiguration,
            format!(
                "the {what} file {} is readable by other users (mode {:o})",
                path.display(),
                meta.mode() & 0o777
            ),
        )
        .help(format!("chmod 600 {}", path.display())));
    }
    Ok(())
}

/// Reads a secret file: the first line, without the line end. Refuses files others can read.
pub fn read_secret_file(path: &Path, what: &str) -> Result<Secret, AgentError> {
    check_private_file(path, what)?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        AgentError::new(
            ExitCode::FailedReadingConfiguration,
            format!("cannot read the {what} file {}: {e}", path.display()),
        )
    })?;
    Ok(Secret::new(text.lines().next().unwrap_or("").to_string()))
}

impl SecretSource<'_> {
    /// The secret, or `None` when no source has it and no terminal is there to ask.
    pub fn resolve(&self, prompt: bool) -> Result<Option<Secret>, AgentError> {
        if let Some(f) = self.file {
            return read_secret_file(f, self.what).map(Some);
        }
        if let Some(v) = self.flag {
            tracing::warn!("the {} was given on the command line, where other users can see it (ps, shell history); use the environment or a file instead", self.what);
            return Ok(Some(Secret::new(v)));
        }
        for name in self.env {
            if let Ok(v) = std::env::var(name) {
                if !v.is_empty() {
                    return Ok(Some(Secret::new(v)));
                }
            }
        }
        if prompt && std::io::stdin().is_terminal() {
            return prompt_no_echo(&format!("{}: ", self.what)).map(Some);
        }
        Ok(None)
    }
}

/// Reads a line from the terminal with echo off.
pub fn prompt_no_echo(label: &str) -> Result<Secret, AgentError> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).ok();
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    if let Some(t) = &saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, t);
    }
    eprintln!();
    r.map_err(|e| {
        AgentError::new(
            ExitCode::MissingOrIncorrectPassword,
            format!("reading the password: {e}"),
        )
    })?;
    Ok(Secret::new(line.trim_end_matches(['\r', '\n']).to_string()))
}
