//! The `sim:<socket>` and `sim:tcp:HOST:PORT` backends: a Unix socket, or a loopback TCP
//! connection, to a running `amt-sim serve --socket` / `--tcp`. The TCP form is how a Windows
//! build (which has no Unix sockets) reaches a simulator in another process.
//!
//! One socket connection is one open MEI file handle. Frames are `u8 kind, u32 LE length, payload`:
//!
//! | kind | direction | payload |
//! |---|---|---|
//! | 0x01 CONNECT | agent → sim | 16-byte client GUID (wire order) |
//! | 0x02 MESSAGE | both (0x82 from sim) | one whole ME message |
//! | 0x81 CONNECTED | sim → agent | u32 LE max message length, u8 protocol version |
//! | 0x8F ERRNO | sim → agent | i32 LE errno the Linux kernel would give (ENOTTY, EBUSY, ENODEV, EFBIG, …; [`super::errno`]) |
//!
//! An ERRNO frame after CONNECTED ends the handle, as an ME reset ends a real file descriptor.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
#[cfg(unix)]
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{client_label, ClientProperties, Guid, HeciError, MeiConnection, MeiDevice};

pub const FRAME_CONNECT: u8 = 0x01;
pub const FRAME_MESSAGE: u8 = 0x02;
pub const FRAME_CONNECTED: u8 = 0x81;
pub const FRAME_MESSAGE_FROM_SIM: u8 = 0x82;
pub const FRAME_ERRNO: u8 = 0x8F;
/// Frames above this are refused: far above any MEI MTU.
pub const MAX_FRAME: usize = 1 << 20;

pub fn encode_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + payload.len());
    v.push(kind);
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

/// Incremental frame reader over a byte buffer (sans-IO: feed bytes, take frames).
#[derive(Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Err` when the peer sent an impossible length.
    pub fn next_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>, String> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_le_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_FRAME {
            return Err(format!(
                "frame of {len} bytes exceeds the {MAX_FRAME}-byte limit"
            ));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let kind = self.buf[0];
        let payload = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        Ok(Some((kind, payload)))
    }
}

/// Where the simulator listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimEndpoint {
    #[cfg(unix)]
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl std::fmt::Display for SimEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            #[cfg(unix)]
            SimEndpoint::Unix(p) => write!(f, "{}", p.display()),
            SimEndpoint::Tcp(a) => write!(f, "tcp {a}"),
        }
    }
}

/// One connection to the simulator: a Unix or a TCP stream.
enum Stream {
    #[cfg(unix)]
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn connect(endpoint: &SimEndpoint, deadline: Duration) -> std::io::Result<Stream> {
        match endpoint {
            #[cfg(unix)]
            SimEndpoint::Unix(p) => UnixStream::connect(p).map(Stream::Unix),
            SimEndpoint::Tcp(a) => {
                let s = TcpStream::connect_timeout(a, deadline)?;
                // Frames are small and each waits for an answer: send them at once.
                s.set_nodelay(true)?;
                Ok(Stream::Tcp(s))
            }
        }
    }

    fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        match self {
            #[cfg(unix)]
            Stream::Unix(s) => s.set_read_timeout(d),
            Stream::Tcp(s) => s.set_read_timeout(d),
        }
    }

    fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            #[cfg(unix)]
            Stream::Unix(s) => (&*s).read(buf),
            Stream::Tcp(s) => (&*s).read(buf),
        }
    }

    fn write_all(&self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            #[cfg(unix)]
            Stream::Unix(s) => (&*s).write_all(buf),
            Stream::Tcp(s) => (&*s).write_all(buf),
        }
    }

    /// Ends both directions: a read blocked in another thread sees end of file, and the simulator
    /// frees the client at once.
    fn shutdown(&self) {
        let _ = match self {
            #[cfg(unix)]
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }
}

pub struct SimSocketDevice {
    endpoint: SimEndpoint,
}

impl SimSocketDevice {
    pub fn new(endpoint: SimEndpoint) -> SimSocketDevice {
        SimSocketDevice { endpoint }
    }
}

/// How long a connect may take before the simulator is declared unresponsive.
const CONNECT_DEADLINE: Duration = Duration::from_secs(5);

impl MeiDevice for SimSocketDevice {
    fn describe(&self) -> String {
        format!("amt-sim at {}", self.endpoint)
    }

    fn simulated_profile(&self) -> Option<String> {
        Some(match &self.endpoint {
            #[cfg(unix)]
            SimEndpoint::Unix(p) => format!("socket {}", p.display()),
            SimEndpoint::Tcp(a) => format!("tcp {a}"),
        })
    }

    fn connect_once(&self, client: Guid) -> Result<Box<dyn MeiConnection>, HeciError> {
        let shown = self.endpoint.to_string();
        let stream = Stream::connect(&self.endpoint, CONNECT_DEADLINE).map_err(|e| {
            HeciError::SimSocket {
                path: shown.clone(),
                reason: e.to_string(),
            }
        })?;
        let conn = SimSocketConnection {
            stream,
            reader: Mutex::new(FrameReader::default()),
            props: ClientProperties {
                max_msg_length: 0,
                protocol_version: 0,
            },
            client: client_label(client),
            path: shown,
        };
        conn.write_frame(FRAME_CONNECT, client.wire())?;
        let (kind, payload) = conn.read_frame(Instant::now() + CONNECT_DEADLINE)?;
        match kind {
            FRAME_CONNECTED if payload.len() >= 5 => {
                let props = ClientProperties {
                    max_msg_length: u32::from_le_bytes([
                        payload[0], payload[1], payload[2], payload[3],
                    ]),
                    protocol_version: payload[4],
                };
                Ok(Box::new(SimSocketConnection { props, ..conn }))
            }
            FRAME_ERRNO if payload.len() >= 4 => {
                let errno = i32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
                Err(conn.errno_error(errno, true))
            }
            _ => Err(conn.protocol_error("unexpected answer to CONNECT")),
        }
    }
}

pub struct SimSocketConnection {
    stream: Stream,
    reader: Mutex<FrameReader>,
    props: ClientProperties,
    client: String,
    path: String,
}

impl SimSocketConnection {
    fn write_frame(&self, kind: u8, payload: &[u8]) -> Result<(), HeciError> {
        self.stream
            .write_all(&encode_frame(kind, payload))
            .map_err(|e| self.io_error(e))
    }

    fn read_frame(&self, deadline: Instant) -> Result<(u8, Vec<u8>), HeciError> {
        let mut reader = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let mut chunk = vec![0u8; 8192];
        loop {
            match reader.next_frame() {
                Ok(Some(f)) => return Ok(f),
                Ok(None) => {}
                Err(e) => return Err(self.protocol_error(&e)),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HeciError::Timeout {
                    client: self.client.clone(),
                    timeout_ms: 0,
                });
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| self.io_error(e))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(HeciError::Closed {
                        client: self.client.clone(),
                    })
                }
                Ok(n) => reader.feed(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(self.io_error(e)),
            }
        }
    }

    fn errno_error(&self, errno: i32, connecting: bool) -> HeciError {
        super::error_from_errno(
            errno,
            &self.client,
            &self.path,
            connecting,
            self.props.max_msg_length,
        )
    }

    fn io_error(&self, e: std::io::Error) -> HeciError {
        HeciError::SimSocket {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    fn protocol_error(&self, what: &str) -> HeciError {
        HeciError::SimSocket {
            path: self.path.clone(),
            reason: what.to_string(),
        }
    }
}

impl MeiConnection for SimSocketConnection {
    fn properties(&self) -> ClientProperties {
        self.props
    }

    fn interrupt(&self) {
        self.stream.shutdown();
    }

    fn send(&self, msg: &[u8]) -> Result<(), HeciError> {
        if msg.len() > self.props.max_msg_length as usize {
            return Err(HeciError::MessageTooBig {
                client: self.client.clone(),
                len: msg.len(),
                max: self.props.max_msg_length,
            });
        }
        self.write_frame(FRAME_MESSAGE, msg)
    }

    fn recv(&self, deadline: Instant) -> Result<Vec<u8>, HeciError> {
        let (kind, payload) = self.read_frame(deadline)?;
        match kind {
            FRAME_MESSAGE_FROM_SIM => {
                if payload.len() > self.props.max_msg_length as usize {
                    // The kernel discards a message larger than the receive buffer.
                    return Err(HeciError::ReplyTooBig {
                        client: self.client.clone(),
                    });
                }
                Ok(payload)
            }
            FRAME_ERRNO if payload.len() >= 4 => {
                let errno = i32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
                Err(self.errno_error(errno, false))
            }
            _ => Err(self.protocol_error("unexpected frame")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_reads_reassemble() {
        let mut r = FrameReader::default();
        let f = encode_frame(FRAME_MESSAGE, b"hello");
        r.feed(&f[..3]);
        assert_eq!(r.next_frame().unwrap(), None);
        r.feed(&f[3..]);
        assert_eq!(
            r.next_frame().unwrap(),
            Some((FRAME_MESSAGE, b"hello".to_vec()))
        );
        assert_eq!(r.next_frame().unwrap(), None);
    }

    #[test]
    fn an_impossible_length_is_an_error_not_an_allocation() {
        let mut r = FrameReader::default();
        r.feed(&[FRAME_MESSAGE, 0xff, 0xff, 0xff, 0xff]);
        assert!(r.next_frame().is_err());
    }
}
