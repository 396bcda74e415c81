//! TLS to AMT's port 16993 over any [`Connector`] (an APF channel through LME, or a TCP socket to
//! LMS): AMT 19+ enforces TLS on its local ports (user-pains.md failure mode 1, rpc-go.md §4.2,
//! §5.4, §5.6). The agent terminates TLS itself, so no LMS is needed.
//!
//! * [`amt_verifier`] picks the rules of [`crate::tls`] for the device's control mode: the On-Die CA
//!   rules in pre-provisioning, plus AMT's single self-signed certificate once activated (the control
//!   mode was just read over HECI, rpc-go's condition); `--skip-amt-cert-check` accepts anything,
//!   with a warning. Trust anchors beyond Intel's On-Die CA root come only explicitly: the files of
//!   `--amt-ca-file` (test and simulator roots), and the in-process simulator's test root when the
//!   device is that simulator ([`MeiDevice::simulator_tls_root`]: the user chose a simulated device).
//! * [`TlsConnector`] wraps each stream of an inner connector in a `tokio_rustls` client session;
//!   a refused certificate is [`RouteError::TlsCertificate`], naming the rule and the certificate.
//! * [`wsman_endpoint`] is what a WS-MAN command calls: the connector and port for a chosen route.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::transport::{ConnectFuture, Connector, Route, RouteError, AMT_PORT_HTTPS};
use crate::amthi::ControlMode;
use crate::heci::MeiDevice;
use crate::tls::{AmtCertError, AmtCertVerifier, ClientCert, LeafPin, SelfSignedPolicy};

/// How to verify AMT's certificate and what to present: the TLS part of a WS-MAN command's options.
#[derive(Clone, Debug, Default)]
pub struct AmtTlsOptions {
    /// `--skip-amt-cert-check`: accept any certificate from AMT (logged as a warning).
    pub skip_cert_check: bool,
    /// `--amt-ca-file`: extra roots (PEM, or a single DER certificate), for test and simulator AMTs
    /// (`amt-sim serve --tls-root-out FILE` writes one). Never needed for a real machine.
    pub ca_files: Vec<PathBuf>,
    /// The hash START_CONFIGURATION_HBASED returned: AMT's leaf must match it.
    pub leaf_pin: Option<LeafPin>,
    /// The UPID CSME id (bytes 0–19): binds the chain to this host's CSME.
    pub upid_csme_id: Option<[u8; 20]>,
    /// Mutual TLS: the provisioning certificate chain and key (AMT 19+ local ACM).
    pub client_cert: Option<ClientCert>,
    /// The certificate `configure tls` installed (its pin): AMT must present exactly it, and
    /// no other rule applies (`commands::tls_pin`).
    pub installed: Option<LeafPin>,
}

/// Reads the CA certificates of one `--amt-ca-file`: every `CERTIFICATE` block of a PEM file, or
/// the whole file as one DER certificate.
pub fn read_ca_file(path: &Path) -> Result<Vec<Vec<u8>>, RouteError> {
    let bytes = std::fs::read(path).map_err(|e| RouteError::TlsSetup {
        detail: format!("--amt-ca-file {}: {e}", path.display()),
    })?;
    if !bytes.windows(10).any(|w| w == b"-----BEGIN") {
        return Ok(vec![bytes]);
    }
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RouteError::TlsSetup {
            detail: format!(
                "--amt-ca-file {}: not a PEM certificate: {e}",
                path.display()
            ),
        })?;
    if certs.is_empty() {
        return Err(RouteError::TlsSetup {
            detail: format!("--amt-ca-file {}: no CERTIFICATE in it", path.display()),
        });
    }
    Ok(certs)
}

/// The verifier for AMT's certificate on this device in this control mode (module docs).
pub fn amt_verifier(
    device: &dyn MeiDevice,
    control_mode: ControlMode,
    opts: &AmtTlsOptions,
) -> Result<AmtCertVerifier, RouteError> {
    if opts.skip_cert_check {
        return Ok(AmtCertVerifier::skip());
    }
    if let Some(pin) = &opts.installed {
        return Ok(AmtCertVerifier::pinned(pin.clone()));
    }
    let mut v = if control_mode == ControlMode::None {
        AmtCertVerifier::provisioning()
    } else {
        AmtCertVerifier::activated(SelfSignedPolicy::AcceptActivated)
    };
    let setup = |e: AmtCertError, what: &str| RouteError::TlsSetup {
        detail: format!("{what}: {e}"),
    };
    if let Some(root) = device.simulator_tls_root() {
        tracing::info!(
            device = %device.describe(),
            "trusting the in-process simulator's TLS test root (not Intel's) for AMT's port 16993"
        );
        v = v
            .with_extra_anchor(&root)
            .map_err(|e| setup(e, "the simulator's test root"))?;
    }
    for path in &opts.ca_files {
        for der in read_ca_file(path)? {
            tracing::info!(file = %path.display(), "trusting an extra root for AMT's port 16993 (--amt-ca-file)");
            v = v
                .with_extra_anchor(&der)
                .map_err(|e| setup(e, &format!("--amt-ca-file {}", path.display())))?;
        }
    }
    if let Some(pin) = &opts.leaf_pin {
        v = v.with_leaf_pin(pin.clone());
    }
    if let Some(id) = opts.upid_csme_id {
        v = v.with_upid_csme_id(id);
    }
    Ok(v)
}

/// The rustls client config for AMT's port 16993 on this device (see [`amt_verifier`]).
pub fn amt_client_config(
    device: &dyn MeiDevice,
    control_mode: ControlMode,
    opts: &AmtTlsOptions,
) -> Result<Arc<ClientConfig>, RouteError> {
    let verifier = amt_verifier(device, control_mode, opts)?;
    crate::tls::client_config(verifier, opts.client_cert.clone()).map_err(|e| {
        RouteError::TlsSetup {
            detail: format!("the client certificate cannot be used: {e}"),
        }
    })
}

/// Opens streams through an inner connector and runs a TLS client session on each.
pub struct TlsConnector {
    inner: Arc<dyn Connector>,
    tls: tokio_rustls::TlsConnector,
}

impl TlsConnector {
    pub fn new(inner: Arc<dyn Connector>, config: Arc<ClientConfig>) -> TlsConnector {
        TlsConnector {
            inner,
            tls: tokio_rustls::TlsConnector::from(config),
        }
    }
}

/// The handshake's failure as a route error: the verifier's own error when it refused the
/// certificate, else the TLS or I/O error.
fn handshake_error(port: u16, e: std::io::Error) -> RouteError {
    let tls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    if let Some(cert) = tls_error.and_then(AmtCertError::from_rustls) {
        return RouteError::TlsCertificate {
            port,
            error: cert.clone(),
        };
    }
    RouteError::TlsHandshake {
        port,
        detail: match tls_error {
            Some(t) => t.to_string(),
            None => e.to_string(),
        },
    }
}

impl Connector for TlsConnector {
    fn connect(&self, port: u16) -> ConnectFuture<'_> {
        Box::pin(async move {
            let stream = self.inner.connect(port).await?;
            let tls = self
                .tls
                .connect(crate::tls::server_name(), stream)
                .await
                .map_err(|e| handshake_error(port, e))?;
            let (_, session) = tls.get_ref();
            tracing::debug!(
                port,
                version = ?session.protocol_version(),
                suite = ?session.negotiated_cipher_suite().map(|s| s.suite()),
                "TLS to AMT established"
            );
            Ok(Box::new(tls) as Box<dyn super::transport::AmtStream>)
        })
    }
}

/// Where a WS-MAN client talks to AMT: the connector (TLS-wrapped when TLS is enforced) and the port.
#[derive(Clone)]
pub struct WsmanEndpoint {
    pub connector: Arc<dyn Connector>,
    pub port: u16,
    /// Whether the connector runs TLS.
    pub tls: bool,
}

impl std::fmt::Debug for WsmanEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsmanEndpoint")
            .field("port", &self.port)
            .field("tls", &self.tls)
            .finish()
    }
}

/// The endpoint for a chosen route: 16993 when `tls` (TLS enforced on the local ports, per the
/// watchdog flags, or configured by `configure tls`), else the management port the APF session
/// advertised (16993 on a TLS-enforced device) or over LMS 16992; on 16993 every stream runs TLS
/// under [`amt_client_config`].
pub fn wsman_endpoint(
    route: &Route,
    tls: bool,
    device: &dyn MeiDevice,
    control_mode: ControlMode,
    opts: &AmtTlsOptions,
) -> Result<WsmanEndpoint, RouteError> {
    let port = if tls {
        AMT_PORT_HTTPS
    } else {
        route.management_port(false)
    };
    let plain: Arc<dyn Connector> = Arc::new(route.clone());
    if port != AMT_PORT_HTTPS {
        return Ok(WsmanEndpoint {
            connector: plain,
            port,
            tls: false,
        });
    }
    let config = amt_client_config(device, control_mode, opts)?;
    Ok(WsmanEndpoint {
        connector: Arc::new(TlsConnector::new(plain, config)),
        port,
        tls: true,
    })
}

#[cfg(test)]
#[path = "tls_stream_tests.rs"]
mod tests;
