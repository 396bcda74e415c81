//! The simulator's socket front ends (a Unix socket, or TCP on loopback for agents that have no Unix
//! sockets, such as the Windows build): one connection = one MEI file handle, framed as
//! `heci::simsock` documents.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
#[cfg(unix)]
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::amt::ConnInfo;
use super::{Firmware, ReadError, SimHandle};
use crate::heci::simsock::{
    encode_frame, FrameReader, FRAME_CONNECT, FRAME_CONNECTED, FRAME_ERRNO, FRAME_MESSAGE,
    FRAME_MESSAGE_FROM_SIM,
};
use crate::heci::{errno, Guid};

/// A byte stream one MEI handle is served on.
pub trait FrameStream: Read + Write + Send + Sized + 'static {
    fn try_clone_stream(&self) -> std::io::Result<Self>;
}

#[cfg(unix)]
impl FrameStream for UnixStream {
    fn try_clone_stream(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
}

impl FrameStream for TcpStream {
    fn try_clone_stream(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
}

/// Accepts Unix socket connections until the listener fails; each gets its own threads.
#[cfg(unix)]
pub fn serve(listener: UnixListener, fw: Firmware) {
    serve_incoming(listener.incoming(), fw)
}

/// Accepts TCP connections (`amt-sim serve --tcp`, bound to loopback by the caller).
pub fn serve_tcp(listener: TcpListener, fw: Firmware) {
    serve_incoming(
        listener.incoming().map(|s| {
            s.inspect(|s| {
                // Every frame waits for an answer: no Nagle delay.
                let _ = s.set_nodelay(true);
            })
        }),
        fw,
    )
}

fn serve_incoming<S: FrameStream>(
    incoming: impl Iterator<Item = std::io::Result<S>>,
    fw: Firmware,
) {
    for stream in incoming {
        match stream {
            Ok(s) => {
                let fw = fw.clone();
                std::thread::spawn(move || {
                    if let Err(e) = connection(s, fw) {
                        tracing::debug!(error = %e, "connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "accept failed");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn send<S: FrameStream>(w: &Mutex<S>, kind: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut s = w.lock().unwrap_or_else(|p| p.into_inner());
    s.write_all(&encode_frame(kind, payload))
}

/// Closes the handle however the connection ends (EOF, a write error, a bad frame), so its
/// client's connection slot is freed as the kernel frees it when a file descriptor is closed.
struct CloseOnDrop(Option<SimHandle>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.close();
        }
    }
}

fn connection<S: FrameStream>(stream: S, fw: Firmware) -> std::io::Result<()> {
    let writer = Arc::new(Mutex::new(stream.try_clone_stream()?));
    let mut reader_stream = stream;
    let mut guard = CloseOnDrop(None);
    let later = Arc::new(Later::default());
    let result = serve_frames(&mut reader_stream, &fw, &writer, &later, &mut guard);
    later.signal();
    result
}

fn serve_frames<S: FrameStream>(
    reader_stream: &mut S,
    fw: &Firmware,
    writer: &Arc<Mutex<S>>,
    later: &Arc<Later>,
    guard: &mut CloseOnDrop,
) -> std::io::Result<()> {
    let handle = &mut guard.0;
    let mut frames = FrameReader::default();
    let mut buf = vec![0u8; 16384];
    loop {
        let n = match reader_stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        frames.feed(&buf[..n]);
        let mut done = false;
        loop {
            let frame = match frames.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "bad frame from client; closing");
                    done = true;
                    break;
                }
            };
            match (frame.0, &*handle) {
                (FRAME_CONNECT, None) if frame.1.len() == 16 => {
                    let mut g = [0u8; 16];
                    g.copy_from_slice(&frame.1);
                    match fw.connect(Guid(g)) {
                        Ok(h) => {
                            let p = h.properties();
                            let mut payload = p.max_msg_length.to_le_bytes().to_vec();
                            payload.push(p.protocol_version);
                            send(writer, FRAME_CONNECTED, &payload)?;
                            spawn_pump(h.clone(), writer.clone(), later.clone());
                            *handle = Some(h);
                        }
                        Err(errno) => send(writer, FRAME_ERRNO, &errno.to_le_bytes())?,
                    }
                }
                (FRAME_CONNECT, Some(_)) => {
                    // A handle connects once; the kernel says EBUSY.
                    send(writer, FRAME_ERRNO, &errno::EBUSY.to_le_bytes())?
                }
                (FRAME_MESSAGE, Some(h)) => {
                    if let Err(errno) = h.write(&frame.1) {
                        send(writer, FRAME_ERRNO, &errno.to_le_bytes())?;
                        if errno == errno::ENODEV {
                            done = true;
                            break;
                        }
                    }
                    // Answers that are ready at once go out from this thread (no hand-off); the
                    // pump is woken only for answers due later.
                    while forward_ready(h, writer)? {}
                    if h.next_ready_at().is_some() {
                        later.signal();
                    }
                }
                (FRAME_MESSAGE, None) => send(writer, FRAME_ERRNO, &errno::ENODEV.to_le_bytes())?,
                _ => {
                    send(writer, FRAME_ERRNO, &errno::EINVAL.to_le_bytes())?;
                }
            }
        }
        if done {
            return Ok(());
        }
    }
}

/// Sends the next readable message, if any, popping and writing under the writer lock so that
/// two threads forwarding from one handle can never reorder its messages.
fn forward_ready<S: FrameStream>(h: &SimHandle, writer: &Mutex<S>) -> std::io::Result<bool> {
    let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
    match h.read(None, true) {
        Ok(msg) => {
            w.write_all(&encode_frame(FRAME_MESSAGE_FROM_SIM, &msg))?;
            Ok(true)
        }
        Err(ReadError::WouldBlock) | Err(ReadError::TimedOut) => Ok(false),
        Err(ReadError::Errno(e)) => {
            // ENODEV after the client closed is the normal end; after an ME reset, say it.
            if e != errno::ENODEV || !h.alive() {
                w.write_all(&encode_frame(FRAME_ERRNO, &e.to_le_bytes()))?;
            }
            Ok(e != errno::ENODEV)
        }
    }
}

/// Wakes the pump when a message is due later than now.
#[derive(Default)]
struct Later {
    pending: Mutex<bool>,
    cond: Condvar,
}

impl Later {
    fn signal(&self) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cond.notify_one();
    }

    /// Waits for a signal, at most `d`; true when signalled.
    fn wait(&self, d: Duration) -> bool {
        let g = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let (mut g, _) = self
            .cond
            .wait_timeout_while(g, d, |p| !*p)
            .unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *g, false)
    }
}

/// Moves messages that become readable later (latency faults) to the socket, and reports an ME
/// reset to the client.
fn spawn_pump<S: FrameStream>(h: SimHandle, writer: Arc<Mutex<S>>, later: Arc<Later>) {
    std::thread::spawn(move || loop {
        later.wait(Duration::from_millis(250));
        while let Some(at) = h.next_ready_at() {
            if !h.wait_readable(at.max(Instant::now()) + Duration::from_millis(5)) {
                break;
            }
            if forward_ready(&h, &writer).is_err() {
                h.close();
                return;
            }
        }
        if h.broken() {
            // Report an ME reset to the client once, then stop.
            if !h.alive() {
                let _ = send(&writer, FRAME_ERRNO, &errno::ENODEV.to_le_bytes());
            }
            return;
        }
    });
}

/// An LMS-like TCP listener (`amt-sim serve --lms-listen 127.0.0.1:PORT`): each TCP connection is
/// served by the AMT web server as LMS would relay it to port 16992, or, when it starts with a TLS
/// ClientHello, to port 16993: then the connection runs the same TLS server as the LME channels
/// (see [`super::lme`]).
pub fn serve_lms(listener: std::net::TcpListener, fw: Firmware) {
    for stream in listener.incoming() {
        match stream {
            Ok(s) => {
                let fw = fw.clone();
                std::thread::spawn(move || {
                    if let Err(e) = lms_connection(s, fw) {
                        tracing::debug!(error = %e, "LMS connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "accept failed");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn lms_connection(s: std::net::TcpStream, fw: Firmware) -> std::io::Result<()> {
    let _ = s.set_nodelay(true);
    // An idle client is dropped after a minute, as LMS does not keep dead sockets forever.
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    // One listener stands for LMS's two (16992 and 16993): a TLS ClientHello (0x16) is a
    // connection to 16993, anything else one to 16992. A port the local interface does not serve
    // (plain once TLS-only is committed, TLS before it is configured) is closed at once, as LMS
    // closes a socket whose APF channel the firmware refuses (UNCONFIRMED).
    let mut first = [0u8; 1];
    if s.peek(&mut first)? == 0 {
        return Ok(());
    }
    let (plain, tls_config) = {
        let core = fw.lock();
        let ports = super::amt::classes::tls::local_ports(&core.profile);
        (ports.plain, super::lme::local_tls_config(&core.profile))
    };
    if first[0] != 0x16 {
        if !plain {
            tracing::debug!("LMS: plain HTTP refused: the local interface serves TLS only");
            return Ok(());
        }
        let mut s = s;
        return serve_http(&mut s, &fw, |_| ConnInfo::default()).map(|_| ());
    }
    let Some(config) = tls_config else {
        tracing::debug!("LMS: TLS refused: the local interface serves no TLS");
        return Ok(());
    };
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(conn, s);
    let served = serve_http(&mut stream, &fw, |st| ConnInfo {
        tls: true,
        client_chain: super::tls::client_chain(&st.conn)
            .map(|c| c.iter().map(|d| d.to_vec()).collect())
            .unwrap_or_default(),
    });
    // A dropped connection (a drop fault) ends without close_notify, as when the firmware's
    // network stack goes away.
    if !matches!(served, Ok(Ended::Dropped)) {
        stream.conn.send_close_notify();
        let _ = stream.flush();
    }
    served.map(|_| ())
}

/// How [`serve_http`] ended.
enum Ended {
    /// The client closed, or a reply closed the connection.
    Closed,
    /// A fault dropped the connection.
    Dropped,
}

/// Serves HTTP requests on one byte stream until it ends or a reply closes it.
fn serve_http<S: Read + Write>(
    s: &mut S,
    fw: &Firmware,
    info: impl Fn(&S) -> ConnInfo,
) -> std::io::Result<Ended> {
    let mut parser = crate::wsman::http::RequestParser::new();
    let mut buf = vec![0u8; 16384];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(Ended::Closed);
        }
        let mut input = &buf[..n];
        loop {
            match parser.feed(input) {
                Ok(Some(req)) => {
                    let plan = {
                        let mut core = fw.lock();
                        let reply =
                            super::amt::handle_on(&mut core, &req, &info(s), Instant::now());
                        core.save_state();
                        reply
                    };
                    if let Some(d) = plan.delay {
                        std::thread::sleep(d);
                    }
                    s.write_all(&plan.bytes)?;
                    if plan.drop_after {
                        return Ok(Ended::Dropped);
                    }
                    if plan.close {
                        return Ok(Ended::Closed);
                    }
                    input = &[];
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "LMS: malformed HTTP");
                    return Ok(Ended::Closed);
                }
            }
        }
    }
}
