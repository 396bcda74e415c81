//! The profile's `tls`: `configure tls` with the profile's mode, delay and (optionally) the
//! admin's CA, applied last — its CommitChanges moves AMT's local port to 16993, and the session
//! reconnects there verifying exactly the certificate it pinned, as every later command does.

use super::areas::Wrap;
use crate::commands::configure::tls::{issue_error, Tls, TlsMode};
use crate::commands::session::AmtConnArgs;
use crate::error::{AgentError, ExitCode};
use crate::tls::issue::Ca;

fn mode(s: &str) -> TlsMode {
    match s {
        "server-and-non-tls" => TlsMode::ServerAndNonTls,
        "mutual" => TlsMode::Mutual,
        "mutual-and-non-tls" => TlsMode::MutualAndNonTls,
        "none" => TlsMode::None,
        _ => TlsMode::Server,
    }
}

/// The admin's CA of `tls.caCertificate` (a file or PEM text) and `tls.caKey`, read and checked.
fn ca(t: &crate::profile::Tls) -> Result<Option<Ca>, AgentError> {
    let (Some(cert), Some(key)) = (&t.ca_certificate, &t.ca_key) else {
        return Ok(None);
    };
    let text = cert.to_string_lossy();
    let (cert_bytes, cert_name) = if text.contains("-----BEGIN") {
        (text.as_bytes().to_vec(), "tls.caCertificate".to_string())
    } else {
        let bytes = std::fs::read(cert).map_err(|e| {
            AgentError::new(
                ExitCode::FailedReadingConfiguration,
                format!("tls.caCertificate: cannot read {}: {e}", cert.display()),
            )
        })?;
        (bytes, cert.display().to_string())
    };
    let key_text = key.resolve_text("tls.caKey")?;
    let password = t
        .ca_key_password
        .as_ref()
        .map(|r| r.resolve("tls.caKeyPassword"))
        .transpose()?;
    Ca::from_bytes(
        &cert_bytes,
        &cert_name,
        key_text.expose().as_bytes(),
        "tls.caKey",
        password.as_ref(),
    )
    .map(Some)
    .map_err(|e| issue_error(e).context("tls"))
}

/// `tls` as an area: `configure tls` itself.
pub fn area(t: &crate::profile::Tls, conn: &AmtConnArgs) -> Result<Wrap<Tls>, AgentError> {
    let m = mode(&t.mode);
    let ca = ca(t)?;
    let wanted = format!(
        "mode {}{}",
        m.name(),
        match &ca {
            Some(c) if m != TlsMode::None =>
                format!(", AMT's certificate signed by {}", c.subject()),
            _ if m != TlsMode::None => ", AMT's certificate signed by a throwaway CA".to_string(),
            _ => String::new(),
        }
    );
    Ok(Wrap {
        c: Tls::with(m, t.delay, ca, conn),
        wanted,
    })
}
