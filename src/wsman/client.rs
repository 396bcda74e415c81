//! The WS-MAN client: one POST to `/wsman` per fresh stream, with HTTP Digest (transport.md §5.3,
//! §6; rpc-go.md §4.5–4.6).
//!
//! Requests are framed as rpc-go frames them over LME: headers `Authorization` (once a challenge
//! is known), `Connection: close`, `Content-Type`, `Transfer-Encoding: chunked`, no `Host`, the
//! body as one chunk with a lower-case hex size. The first request goes without credentials; the
//! 401's challenge is kept and reused for later requests with an incrementing `nc`. A 401 with
//! `stale=true` is retried once with the new nonce; a 401 to fresh credentials is
//! [`WsmanError::Unauthorized`]. A stream that drops before the first response byte is retried
//! once on a new stream; every request has a deadline.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::digest::{Challenge, DigestClient, DigestError};
use super::http::{HttpError, Response, ResponseParser};
use super::redact::redact_http;
use super::transport::{Connector, RouteError, AMT_PORT_HTTP};
use crate::secret::Secret;

/// An AMT user: `$$OsAdmin` (from HECI) before activation, `admin` after.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}

impl Credentials {
    pub fn new(user: impl Into<String>, password: Secret) -> Credentials {
        Credentials {
            user: user.into(),
            password,
        }
    }
}

/// Client settings.
#[derive(Clone, Debug)]
pub struct WsmanOptions {
    /// AMT port to open (16993 when TLS is enforced; TLS itself is layered by the connector, see
    /// [`super::tls_stream`]).
    pub port: u16,
    /// Deadline for one `post`/`post_raw`, digest round trips and the retry included.
    pub request_timeout: Duration,
}

impl Default for WsmanOptions {
    fn default() -> WsmanOptions {
        WsmanOptions {
            port: AMT_PORT_HTTP,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a WS-MAN exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum WsmanError {
    #[error("AMT rejected the credentials of user {user:?} (HTTP 401)")]
    Unauthorized { user: String },
    #[error("no complete response from AMT within {ms} ms")]
    Timeout { ms: u64 },
    #[error("cannot reach AMT: {0}")]
    Route(#[from] RouteError),
    #[error("the connection to AMT failed: {0}")]
    Io(#[from] io::Error),
    #[error("AMT's HTTP response is malformed: {0}")]
    Http(#[from] HttpError),
    #[error("AMT's Digest challenge is malformed: {0}")]
    Digest(#[from] DigestError),
    #[error("AMT answered 401 without a Digest challenge")]
    NoChallenge,
}

impl WsmanError {
    pub fn help(&self) -> &'static str {
        match self {
            WsmanError::Unauthorized { .. } => {
                "check the AMT password (after activation the user is admin with the password set at activation)"
            }
            WsmanError::Timeout { .. } => {
                "AMT did not answer in time; retry, raise the timeout, or reboot to reset the ME if it persists"
            }
            WsmanError::Route(e) => e.help(),
            WsmanError::Io(_) => "retry; if it persists, capture a trace (-vvv) and report it",
            WsmanError::Http(_) | WsmanError::Digest(_) | WsmanError::NoChallenge => {
                "the answer did not look like AMT's; capture a trace (-vvv) and report it"
            }
        }
    }
}

/// One attempt's failure: retryable when nothing of the response had arrived.
enum Failure {
    NoResponse(WsmanError),
    Fatal(WsmanError),
}

/// The WS-MAN client. Not `Clone`: it owns the Digest state (nonce and count).
pub struct WsmanClient {
    connector: Arc<dyn Connector>,
    digest: DigestClient,
    opts: WsmanOptions,
}

impl std::fmt::Debug for WsmanClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsmanClient")
            .field("digest", &self.digest)
            .field("opts", &self.opts)
            .finish()
    }
}

/// rpc-go's LME request (rpc-go.md §4.5): sorted headers, no `Host`, one lower-case hex chunk.
pub fn encode_wsman_request(authorization: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 512);
    out.extend_from_slice(b"POST /wsman HTTP/1.1\r\n");
    if let Some(a) = authorization {
        out.extend_from_slice(format!("Authorization: {a}\r\n").as_bytes());
    }
    out.extend_from_slice(
        b"Connection: close\r\nContent-Type: application/soap+xml; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    if !body.is_empty() {
        out.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn trace_http(what: &str, bytes: &[u8]) {
    if tracing::enabled!(tracing::Level::TRACE) {
        tracing::trace!(len = bytes.len(), "{what}:\n{}", redact_http(bytes));
    }
}

impl WsmanClient {
    pub fn new(
        connector: Arc<dyn Connector>,
        credentials: Credentials,
        opts: WsmanOptions,
    ) -> WsmanClient {
        WsmanClient {
            connector,
            digest: DigestClient::new(credentials.user, credentials.password),
            opts,
        }
    }

    /// Switches user or password, keeping the nonce and its count.
    pub fn set_credentials(&mut self, credentials: Credentials) {
        self.digest
            .set_credentials(credentials.user, credentials.password);
    }

    pub fn options(&self) -> &WsmanOptions {
        &self.opts
    }

    /// The Digest state (user, realm, nonce, count; never the password).
    pub fn digest(&self) -> &DigestClient {
        &self.digest
    }

    /// POSTs a SOAP envelope and returns AMT's response, whatever its status except 401 (a 400
    /// carries a SOAP fault for the caller to decode).
    pub async fn post(&mut self, envelope: &str) -> Result<Response, WsmanError> {
        let timeout = self.opts.request_timeout;
        match tokio::time::timeout(timeout, self.post_digest(envelope.as_bytes())).await {
            Ok(r) => r,
            Err(_) => Err(WsmanError::Timeout {
                ms: timeout.as_millis() as u64,
            }),
        }
    }

    async fn post_digest(&mut self, body: &[u8]) -> Result<Response, WsmanError> {
        let mut took_challenge_now = false;
        let mut stale_retried = false;
        loop {
            let authorization = self.digest.authorization("POST", "/wsman");
            let request = encode_wsman_request(authorization.as_deref(), body);
            let (_, response) = self.round_trip(&request).await?;
            if response.status != 401 {
                return Ok(response);
            }
            let www = response
                .header("WWW-Authenticate")
                .ok_or(WsmanError::NoChallenge)?;
            let challenge = Challenge::parse(www)?;
            let stale = challenge.stale;
            self.digest.set_challenge(challenge);
            match authorization {
                None => {
                    tracing::debug!("AMT asked for Digest credentials");
                }
                Some(_) if stale && !stale_retried => {
                    tracing::debug!("AMT's nonce went stale; retrying with the new one");
                    stale_retried = true;
                }
                Some(_) if !took_challenge_now => {
                    // The nonce from an earlier request may have been forgotten: one fresh try.
                    tracing::debug!("AMT refused the kept nonce; retrying with a new challenge");
                }
                Some(_) => {
                    return Err(WsmanError::Unauthorized {
                        user: self.digest.username().to_string(),
                    })
                }
            }
            took_challenge_now = true;
        }
    }

    /// Sends `request` unchanged on a fresh stream and returns AMT's response bytes exactly as
    /// received (for the RPS relay, which does its own Digest).
    pub async fn post_raw(&self, request: &[u8]) -> Result<Vec<u8>, WsmanError> {
        let timeout = self.opts.request_timeout;
        match tokio::time::timeout(timeout, self.round_trip(request)).await {
            Ok(r) => r.map(|(raw, _)| raw),
            Err(_) => Err(WsmanError::Timeout {
                ms: timeout.as_millis() as u64,
            }),
        }
    }

    /// One exchange, retried once on a new stream if it failed before any response byte.
    async fn round_trip(&self, request: &[u8]) -> Result<(Vec<u8>, Response), WsmanError> {
        trace_http("HTTP request to AMT", request);
        let mut first = true;
        loop {
            match self.exchange(request).await {
                Ok((raw, response)) => {
                    trace_http("HTTP response from AMT", &raw);
                    return Ok((raw, response));
                }
                Err(Failure::NoResponse(e)) if first => {
                    tracing::debug!(error = %e, "no response from AMT; retrying once on a new stream");
                    first = false;
                }
                Err(Failure::NoResponse(e)) | Err(Failure::Fatal(e)) => return Err(e),
            }
        }
    }

    async fn exchange(&self, request: &[u8]) -> Result<(Vec<u8>, Response), Failure> {
        let mut stream = self.connector.connect(self.opts.port).await.map_err(|e| {
            if e.is_retryable() {
                Failure::NoResponse(e.into())
            } else {
                Failure::Fatal(e.into())
            }
        })?;
        stream
            .write_all(request)
            .await
            .map_err(|e| Failure::NoResponse(e.into()))?;
        stream
            .flush()
            .await
            .map_err(|e| Failure::NoResponse(e.into()))?;
        let mut parser = ResponseParser::new();
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            let n = match stream.read(&mut buf).await {
                Ok(n) => n,
                Err(e) if raw.is_empty() => return Err(Failure::NoResponse(e.into())),
                Err(e) => return Err(Failure::Fatal(e.into())),
            };
            if n == 0 {
                if raw.is_empty() {
                    return Err(Failure::NoResponse(WsmanError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "AMT closed the stream before any response byte",
                    ))));
                }
                let response = parser.finish_eof().map_err(|e| Failure::Fatal(e.into()))?;
                return Ok((raw, response));
            }
            raw.extend_from_slice(&buf[..n]);
            if let Some(response) = parser
                .feed(&buf[..n])
                .map_err(|e| Failure::Fatal(e.into()))?
            {
                return Ok((raw, response));
            }
        }
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
