//! The route to AMT's local WS-MAN port (rpc-go.md §4.2, user-pains.md #2): LMS on loopback when
//! it is there, else the agent's own APF session over LME. Both give a byte stream per request.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::apf::{ApfError, ApfOptions, ApfSession};
use crate::heci::MeiDevice;

/// AMT's management ports (transport.md §6).
pub const AMT_PORT_HTTP: u16 = 16992;
pub const AMT_PORT_HTTPS: u16 = 16993;

/// How long a connect to a chosen LMS may take (rpc-go: 5 s).
pub const LMS_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A byte stream to AMT: a TCP connection to LMS or an APF channel.
pub trait AmtStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AmtStream for T {}

/// Whether to use LMS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LmsMode {
    /// LMS if a TCP connect to it succeeds within the probe timeout, else APF over LME.
    #[default]
    Auto,
    /// LMS or an error (never touch LME).
    Only,
    /// APF over LME (never LMS).
    Never,
}

impl FromStr for LmsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<LmsMode, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(LmsMode::Auto),
            "only" => Ok(LmsMode::Only),
            "never" => Ok(LmsMode::Never),
            other => Err(format!("unknown LMS mode {other:?} (auto, only, never)")),
        }
    }
}

impl fmt::Display for LmsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LmsMode::Auto => "auto",
            LmsMode::Only => "only",
            LmsMode::Never => "never",
        })
    }
}

/// How to choose and use the route.
#[derive(Clone, Debug)]
pub struct RouteOptions {
    pub lms: LmsMode,
    /// Where LMS listens (rpc-go v3 dials 127.0.0.1, not `localhost`).
    pub lms_ip: IpAddr,
    /// LMS port override (tests, relays); default 16992, or 16993 with `tls`.
    pub lms_port: Option<u16>,
    /// TLS is enforced on AMT's local ports: probe 16993 instead of 16992.
    pub tls: bool,
    /// How long the LMS probe connect may take (Auto).
    pub probe_timeout: Duration,
    /// The APF session's settings.
    pub apf: ApfOptions,
}

impl Default for RouteOptions {
    fn default() -> RouteOptions {
        RouteOptions {
            lms: LmsMode::Auto,
            lms_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            lms_port: None,
            tls: false,
            probe_timeout: Duration::from_millis(300),
            apf: ApfOptions::default(),
        }
    }
}

impl RouteOptions {
    /// The LMS address probed and dialled.
    pub fn lms_addr(&self) -> SocketAddr {
        let port = self.lms_port.unwrap_or(if self.tls {
            AMT_PORT_HTTPS
        } else {
            AMT_PORT_HTTP
        });
        SocketAddr::new(self.lms_ip, port)
    }

    /// Where LMS relays AMT's TLS port: 127.0.0.1:16993, or the one `lms_port` when it is
    /// given (a relay or test listener serving both).
    pub fn lms_tls_addr(&self) -> SocketAddr {
        SocketAddr::new(self.lms_ip, self.lms_port.unwrap_or(AMT_PORT_HTTPS))
    }
}

/// Why AMT could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("LMS is not listening on {addr} ({detail})")]
    LmsUnavailable { addr: SocketAddr, detail: String },
    #[error("connecting to LMS at {addr} failed: {detail}")]
    LmsConnect { addr: SocketAddr, detail: String },
    #[error(transparent)]
    Apf(#[from] ApfError),
    /// AMT's certificate broke one of the rules of [`crate::tls`]: the message names the rule and
    /// the certificate.
    #[error("AMT's TLS certificate on port {port} was refused: {error}")]
    TlsCertificate {
        port: u16,
        error: crate::tls::AmtCertError,
    },
    /// The TLS handshake with AMT failed for another reason (protocol, alert, connection lost).
    #[error("the TLS handshake with AMT's port {port} failed: {detail}")]
    TlsHandshake { port: u16, detail: String },
    /// The TLS settings could not be built (an unreadable `--amt-ca-file`, a bad client certificate).
    #[error("cannot set up TLS to AMT: {detail}")]
    TlsSetup { detail: String },
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl RouteError {
    pub fn help(&self) -> &'static str {
        match self {
            RouteError::LmsUnavailable { .. } => {
                "start LMS (systemctl start lms), or let the agent talk to the ME itself (--lms auto or --lms never)"
            }
            RouteError::LmsConnect { .. } => {
                "LMS is running but not answering; restart it (systemctl restart lms) or use --lms never"
            }
            RouteError::Apf(e) => e.help(),
            RouteError::TlsCertificate { error, .. } => error.help(),
            RouteError::TlsHandshake { .. } => {
                "AMT ended the TLS handshake: if it asked for a client certificate (mutual TLS after \
                 ACM) provide one; else retry, and capture a trace (-vvv) if it persists"
            }
            RouteError::TlsSetup { .. } => {
                "--amt-ca-file takes a PEM (or DER) CA certificate, such as the file written by \
                 amt-sim serve --tls-root-out"
            }
            RouteError::Io(_) => "retry; if it persists, capture a trace (-vvv) and report it",
        }
    }

    /// Whether trying again on a new stream can help (a refused certificate or a bad setting
    /// will be refused again).
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            RouteError::TlsCertificate { .. } | RouteError::TlsSetup { .. }
        )
    }
}

/// The way to AMT, chosen once per run and reused for every request.
#[derive(Debug, Clone)]
pub enum Route {
    /// LMS relays loopback TCP to AMT; `addr` is its listener for the management port found by
    /// the probe, `tls_addr` the one for port 16993.
    Lms {
        addr: SocketAddr,
        tls_addr: SocketAddr,
    },
    /// The agent's own APF session over LME.
    Apf(Arc<ApfSession>),
}

async fn tcp_connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

impl Route {
    /// Chooses the route as `opts.lms` says; Auto and Never connect LME through `device` when
    /// LMS is not used.
    pub async fn choose(
        opts: &RouteOptions,
        device: Arc<dyn MeiDevice>,
    ) -> Result<Route, RouteError> {
        let addr = opts.lms_addr();
        let probe = if opts.lms == LmsMode::Never {
            None
        } else {
            Some(tcp_connect(addr, opts.probe_timeout).await)
        };
        let route = match (opts.lms, probe) {
            (_, Some(Ok(_probe))) => Route::Lms {
                addr,
                tls_addr: opts.lms_tls_addr(),
            },
            (LmsMode::Only, Some(Err(detail))) => {
                return Err(RouteError::LmsUnavailable { addr, detail })
            }
            (_, probe) => {
                if let Some(Err(detail)) = probe {
                    tracing::debug!(%addr, %detail, "LMS not reachable; using LME");
                }
                let session = ApfSession::connect(device, opts.apf.clone()).await?;
                Route::Apf(Arc::new(session))
            }
        };
        tracing::debug!(route = %route, mode = %opts.lms, "route to AMT chosen");
        Ok(route)
    }

    /// The management port to ask for: the APF session's advertised one, else by `tls`.
    pub fn management_port(&self, tls: bool) -> u16 {
        match self {
            Route::Apf(s) => s.management_port(),
            Route::Lms { .. } if tls => AMT_PORT_HTTPS,
            Route::Lms { .. } => AMT_PORT_HTTP,
        }
    }

    /// A fresh stream to AMT's `port`. Over LMS 16992 goes to `addr` (16993 there too when TLS
    /// is enforced: the probe found LMS's TLS port), 16993 to `tls_addr`, other ports to the same
    /// IP and that port.
    pub async fn connect(&self, port: u16) -> Result<Box<dyn AmtStream>, RouteError> {
        match self {
            Route::Lms { addr, tls_addr } => {
                let target = match port {
                    AMT_PORT_HTTPS => *tls_addr,
                    AMT_PORT_HTTP => *addr,
                    _ => SocketAddr::new(addr.ip(), port),
                };
                let s = tcp_connect(target, LMS_CONNECT_TIMEOUT)
                    .await
                    .map_err(|detail| RouteError::LmsConnect {
                        addr: target,
                        detail,
                    })?;
                let _ = s.set_nodelay(true);
                Ok(Box::new(s))
            }
            Route::Apf(session) => Ok(Box::new(session.open(port).await?)),
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Lms { addr, .. } => write!(f, "LMS at {addr}"),
            Route::Apf(_) => write!(f, "APF over LME"),
        }
    }
}

/// Something that opens streams to AMT: a [`Route`], or an in-memory peer in tests.
pub trait Connector: Send + Sync {
    fn connect(&self, port: u16) -> ConnectFuture<'_>;
}

pub type ConnectFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Box<dyn AmtStream>, RouteError>> + Send + 'a>>;

impl Connector for Route {
    fn connect(&self, port: u16) -> ConnectFuture<'_> {
        Box::pin(Route::connect(self, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heci::{Guid, HeciError, MeiConnection};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A machine whose ME has no LME client.
    struct NoLme;
    impl MeiDevice for NoLme {
        fn describe(&self) -> String {
            "no LME".into()
        }
        fn connect_once(&self, _: Guid) -> Result<Box<dyn MeiConnection>, HeciError> {
            Err(HeciError::ClientNotFound {
                client: "LME".into(),
            })
        }
    }

    fn opts(mode: LmsMode, port: u16) -> RouteOptions {
        RouteOptions {
            lms: mode,
            lms_port: Some(port),
            ..RouteOptions::default()
        }
    }

    async fn closed_port() -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn route_uses_a_listening_lms_in_auto_and_only() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut b = [0u8; 4];
                    if s.read_exact(&mut b).await.is_ok() {
                        let _ = s.write_all(&b).await;
                    }
                });
            }
        });
        for mode in [LmsMode::Auto, LmsMode::Only] {
            let r = Route::choose(&opts(mode, port), Arc::new(NoLme))
                .await
                .unwrap();
            assert!(matches!(r, Route::Lms { addr, .. } if addr.port() == port));
            assert_eq!(r.management_port(false), 16992);
            let mut s = r.connect(16992).await.unwrap();
            s.write_all(b"ping").await.unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).await.unwrap();
            assert_eq!(&b, b"ping");
        }
    }

    #[tokio::test]
    async fn route_only_without_lms_is_a_clear_error() {
        let port = closed_port().await;
        let e = Route::choose(&opts(LmsMode::Only, port), Arc::new(NoLme))
            .await
            .unwrap_err();
        assert!(matches!(e, RouteError::LmsUnavailable { .. }), "{e}");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")));
        assert!(e.help().contains("systemctl start lms"));
    }

    #[tokio::test]
    async fn route_auto_without_lms_and_never_go_to_lme() {
        let port = closed_port().await;
        for mode in [LmsMode::Auto, LmsMode::Never] {
            let e = Route::choose(&opts(mode, port), Arc::new(NoLme))
                .await
                .unwrap_err();
            assert!(
                matches!(
                    e,
                    RouteError::Apf(ApfError::Heci(HeciError::ClientNotFound { .. }))
                ),
                "{mode}: {e}"
            );
        }
        assert_eq!("NEVER".parse::<LmsMode>().unwrap(), LmsMode::Never);
        assert!("sometimes".parse::<LmsMode>().is_err());
    }
}
