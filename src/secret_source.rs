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

/// Refuses a secret's file that other users can read (or that cannot be read at all): on Unix by
/// the mode, on Windows by the ACL (an allow entry for Everyone, Users, Authenticated Users and the
/// like).
pub fn check_private_file(path: &Path, what: &str) -> Result<(), AgentError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        AgentError::new(
            ExitCode::FailedReadingConfiguration,
            format!("cannot read the {what} file {}: {e}", path.display()),
        )
        .help("check the path and that this user may read it")
    })?;
    #[cfg(unix)]
    if std::os::unix::fs::MetadataExt::mode(&meta) & 0o077 != 0 {
        use std::os::unix::fs::MetadataExt;
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
    #[cfg(not(unix))]
    let _ = meta;
    #[cfg(windows)]
    windows_acl_check(path, what)?;
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

/// The ACL counterpart of `chmod 600` (`os::acl`).
#[cfg(windows)]
fn windows_acl_check(path: &Path, what: &str) -> Result<(), AgentError> {
    let dacl = crate::os::file_dacl(path).map_err(|e| {
        AgentError::new(
            ExitCode::FailedReadingConfiguration,
            format!(
                "cannot read the ACL of the {what} file {}: {e}",
                path.display()
            ),
        )
    })?;
    if let Some(group) = crate::os::acl::readable_by_others(dacl.as_deref()) {
        return Err(AgentError::new(
            ExitCode::FailedReadingConfiguration,
            format!("the {what} file {} is readable by {group}", path.display()),
        )
        .help(format!(
            "icacls \"{}\" /inheritance:r /grant:r SYSTEM:R Administrators:F",
            path.display()
        )));
    }
    Ok(())
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

/// Echo off on the terminal until dropped (termios on Unix, the console mode on Windows).
struct NoEcho {
    #[cfg(unix)]
    saved: Option<nix::sys::termios::Termios>,
    #[cfg(windows)]
    saved: Option<(windows_sys::Win32::Foundation::HANDLE, u32)>,
}

impl NoEcho {
    #[cfg(unix)]
    fn start() -> NoEcho {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut quiet = t.clone();
            quiet.local_flags.remove(LocalFlags::ECHO);
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
        }
        NoEcho { saved }
    }

    #[cfg(windows)]
    fn start() -> NoEcho {
        use windows_sys::Win32::System::Console::{
            GetConsoleMode, GetStdHandle, SetConsoleMode, ENABLE_ECHO_INPUT, STD_INPUT_HANDLE,
        };
        // SAFETY: console mode calls on this process's standard input handle.
        unsafe {
            let h = GetStdHandle(STD_INPUT_HANDLE);
            let mut mode = 0u32;
            if GetConsoleMode(h, &mut mode) == 0 {
                return NoEcho { saved: None };
            }
            SetConsoleMode(h, mode & !ENABLE_ECHO_INPUT);
            NoEcho {
                saved: Some((h, mode)),
            }
        }
    }

    #[cfg(not(any(unix, windows)))]
    fn start() -> NoEcho {
        NoEcho {}
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(t) = &self.saved {
            use nix::sys::termios::{tcsetattr, SetArg};
            let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, t);
        }
        #[cfg(windows)]
        if let Some((h, mode)) = self.saved {
            // SAFETY: restores the mode read from the same handle.
            unsafe {
                windows_sys::Win32::System::Console::SetConsoleMode(h, mode);
            }
        }
    }
}

/// Reads a line from the terminal with echo off.
pub fn prompt_no_echo(label: &str) -> Result<Secret, AgentError> {
    let stdin = std::io::stdin();
    let quiet = NoEcho::start();
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    drop(quiet);
    eprintln!();
    r.map_err(|e| {
        AgentError::new(
            ExitCode::MissingOrIncorrectPassword,
            format!("reading the password: {e}"),
        )
    })?;
    Ok(Secret::new(line.trim_end_matches(['\r', '\n']).to_string()))
}
