//! The agent's APF session: a host-role [`Mux`] driven over one LME [`MeiConnection`], handing
//! out channels as tokio byte streams (transport.md §5.2, rpc-go.md §4.4).
//!
//! Two plain threads do the I/O, so nothing here needs a particular tokio runtime:
//!
//! * the **reader** blocks in [`MeiConnection::recv`] (in slices of `recv_slice`, 250 ms) and
//!   forwards every MEI message to the driver; ending the session interrupts that wait
//!   ([`MeiConnection::interrupt`]) and joins the reader, so LME is free again when the driver ends;
//! * the **driver** owns the `Mux`: it feeds it received messages and the streams' commands, writes
//!   its transmits (one MEI write each), runs its timers and dispatches its events to the streams.
//!
//! Streams talk to the driver over channels; every wait has a deadline. Failures are classified:
//! the firmware restarting the APF session or sending DISCONNECT fails the open streams and the
//! next open re-handshakes; an ME reset (ENODEV) fails them, reconnects LME (bounded) and
//! re-handshakes. At trace level every APF message is logged by type, channel and sizes only:
//! channel payloads may carry passwords.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};

use super::codec::{DisconnectReason, Message, OpenFailureReason};
use super::mux::{ChannelId, Config, Event, Mux, PortPair, Role, PORT_HTTP, PORT_HTTPS};
use crate::heci::{self, HeciError, MeiConnection, MeiDevice, RetryPolicy};

/// Settings of an [`ApfSession`].
#[derive(Clone, Debug)]
pub struct ApfOptions {
    /// LME connect retries: EBUSY backs off, ENODEV waits and reopens (both bounded).
    pub retry: RetryPolicy,
    /// From LME connected to the firmware's port pair advertised (default 5 s).
    pub handshake_timeout: Duration,
    /// From `open` called to OPEN_CONFIRMATION (default 10 s; rpc-go waits 18 s). Includes any
    /// wait for a re-handshake.
    pub open_timeout: Duration,
    /// Slice the reader blocks in `recv` before checking for shutdown (default 250 ms).
    pub recv_slice: Duration,
    /// Bytes a stream may have written but not yet on the wire before `poll_write` waits.
    pub write_buffer: usize,
    /// Multiplexer settings (window, channel numbers, PROTOCOLVERSION). The role is forced to
    /// host, the MTU comes from the LME connect answer and the open timeout from `open_timeout`.
    pub mux: Config,
}

impl Default for ApfOptions {
    fn default() -> ApfOptions {
        ApfOptions {
            retry: RetryPolicy::default(),
            handshake_timeout: Duration::from_secs(5),
            open_timeout: Duration::from_secs(10),
            recv_slice: Duration::from_millis(250),
            write_buffer: 64 * 1024,
            mux: Config::host(),
        }
    }
}

/// Why the APF route failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApfError {
    #[error("the LME client of the ME is held by another program (LMS, another agent or an earlier run that did not exit): {0}")]
    LmeBusy(HeciError),
    #[error("cannot connect to the LME client: {0}")]
    Heci(HeciError),
    #[error("the firmware did not complete the APF handshake within {waited_ms} ms ({progress})")]
    HandshakeTimeout { waited_ms: u64, progress: String },
    #[error("AMT refused the APF channel to port {port}: {reason}")]
    Refused {
        port: u16,
        reason: OpenFailureReason,
    },
    #[error("no answer to the APF channel open to port {port} within {waited_ms} ms ({why})")]
    OpenTimeout {
        port: u16,
        waited_ms: u64,
        why: &'static str,
    },
    #[error("the firmware restarted the APF session; the channel was lost")]
    SessionRestarted,
    #[error("the firmware ended the APF session (DISCONNECT {reason})")]
    Disconnected { reason: DisconnectReason },
    #[error("the LME connection was lost ({cause}); the channel was lost")]
    LinkLost { cause: HeciError },
    #[error("the APF session is closed")]
    SessionClosed,
    #[error("APF channel error: {0}")]
    Channel(String),
}

impl ApfError {
    /// The fix to suggest to the user.
    pub fn help(&self) -> &'static str {
        match self {
            ApfError::LmeBusy(_) => {
                "stop the program holding LME (for LMS: systemctl stop lms), or let the agent go through LMS (--lms auto or --lms only)"
            }
            ApfError::Heci(e) | ApfError::LinkLost { cause: e } => e.help(),
            ApfError::HandshakeTimeout { .. } => {
                "AMT may be disabled, still starting or not exposing its local ports; wait and retry, or check the state with: amt-agent amtinfo"
            }
            ApfError::Refused { .. } => {
                "AMT has few channel slots and frees them only when channels close; wait a few seconds and retry (restart LMS if it is running)"
            }
            ApfError::OpenTimeout { .. } => {
                "the firmware is slow or hung; retry, and if it persists reboot to reset the ME"
            }
            ApfError::SessionRestarted | ApfError::Disconnected { .. } => {
                "the firmware restarted its port forwarding (often after a configuration commit); retry the command"
            }
            ApfError::SessionClosed | ApfError::Channel(_) => {
                "retry; if it persists, capture a trace (-vvv) and report it"
            }
        }
    }

    fn io_kind(&self) -> io::ErrorKind {
        match self {
            ApfError::Refused { .. } => io::ErrorKind::ConnectionRefused,
            ApfError::OpenTimeout { .. } | ApfError::HandshakeTimeout { .. } => {
                io::ErrorKind::TimedOut
            }
            ApfError::SessionRestarted
            | ApfError::Disconnected { .. }
            | ApfError::LinkLost { .. } => io::ErrorKind::ConnectionReset,
            ApfError::SessionClosed => io::ErrorKind::NotConnected,
            _ => io::ErrorKind::Other,
        }
    }

    /// As an `io::Error` whose inner error is this `ApfError` (recover it with
    /// `get_ref()` + `downcast_ref`).
    pub fn into_io(self) -> io::Error {
        io::Error::new(self.io_kind(), self)
    }

    fn from_connect(e: HeciError) -> ApfError {
        match e {
            HeciError::Busy { .. } => ApfError::LmeBusy(e),
            e => ApfError::Heci(e),
        }
    }
}

// ---- messages between the handles and the driver ----------------------------------------------

enum Input {
    Received {
        generation: u64,
        result: Result<Vec<u8>, HeciError>,
    },
    Open {
        port: u16,
        requested: Instant,
        reply: oneshot::Sender<Result<StreamParts, ApfError>>,
    },
    Write {
        channel: ChannelId,
        data: Vec<u8>,
    },
    Consume {
        channel: ChannelId,
        n: u32,
    },
    Close {
        channel: ChannelId,
    },
    Shutdown,
}

enum Incoming {
    Data(Vec<u8>),
    Eof,
    Error(ApfError),
}

/// Write-side bookkeeping shared by a stream and the driver.
#[derive(Default)]
struct WriteState {
    /// Bytes the stream accepted from its user.
    written: u64,
    /// Bytes the driver has put on the wire.
    sent: u64,
    /// Set once the channel is gone; writes fail with it.
    error: Option<ApfError>,
    waker: Option<Waker>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct StreamParts {
    channel: ChannelId,
    rx: mpsc::UnboundedReceiver<Incoming>,
    shared: Arc<Mutex<WriteState>>,
}

#[derive(Default)]
struct Status {
    pair: Option<PortPair>,
    ready: bool,
}

// ---- the public handle -----------------------------------------------------------------------

/// One APF session over the LME client. Cheap to share behind an `Arc`; dropping the last handle
/// ends the session once its streams are gone. When none is open, the drop waits (at most
/// [`RELEASE_WAIT`]) until the driver has released LME, so the next session's connect finds the
/// client free instead of backing off on EBUSY (LME takes one connection at a time).
pub struct ApfSession {
    inputs: std_mpsc::Sender<Input>,
    status: Arc<Mutex<Status>>,
    opts: ApfOptions,
    /// Disconnected when the driver thread has ended (LME released).
    done: Mutex<std_mpsc::Receiver<()>>,
    /// One clone per open [`ApfStream`]: the streams still alive.
    live: Arc<()>,
}

/// The longest an [`ApfSession`]'s drop waits for the driver to release LME.
pub const RELEASE_WAIT: Duration = Duration::from_secs(1);

impl fmt::Debug for ApfSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.status);
        f.debug_struct("ApfSession")
            .field("ready", &st.ready)
            .field("pair", &st.pair)
            .finish()
    }
}

impl ApfSession {
    /// Connects LME (bounded EBUSY/ENODEV retries), sends our PROTOCOLVERSION (the host starts,
    /// like rpc-go; a firmware that speaks first is answered too), and waits up to
    /// `handshake_timeout` for `pfwd@amt.intel.com` and a full management + redirection port
    /// pair. If only a management port (16992/16993) came, the session is used anyway.
    pub async fn connect(
        device: Arc<dyn MeiDevice>,
        opts: ApfOptions,
    ) -> Result<ApfSession, ApfError> {
        let (inputs_tx, inputs_rx) = std_mpsc::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let (done_tx, done_rx) = std_mpsc::channel::<()>();
        let status = Arc::new(Mutex::new(Status::default()));
        let driver = Driver {
            device,
            opts: opts.clone(),
            inputs_tx: inputs_tx.clone(),
            inputs: inputs_rx,
            conn: None,
            reader_stop: Arc::new(AtomicBool::new(false)),
            reader: None,
            _done: done_tx,
            generation: 0,
            mux: Mux::new(host_config(&opts, 4160)),
            status: status.clone(),
            needs_start: false,
            link_error: None,
            channels: HashMap::new(),
            opening: HashMap::new(),
            waiting: Vec::new(),
            ready_reply: Some(ready_tx),
            handshake_deadline: None,
            session_dropped: false,
        };
        std::thread::Builder::new()
            .name("apf-driver".into())
            .spawn(move || driver.run())
            .map_err(|e| ApfError::Channel(format!("cannot start the APF driver thread: {e}")))?;
        // The driver answers by its own deadlines (bounded connect retries + handshake timeout);
        // this outer bound only guards against a driver that is stuck.
        let budget = connect_budget(&opts.retry) + opts.handshake_timeout + Duration::from_secs(2);
        let outcome = tokio::time::timeout(budget, ready_rx).await;
        let session = ApfSession {
            inputs: inputs_tx,
            status,
            opts,
            done: Mutex::new(done_rx),
            live: Arc::new(()),
        };
        match outcome {
            Ok(Ok(Ok(()))) => Ok(session),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(ApfError::SessionClosed),
            Err(_) => Err(ApfError::HandshakeTimeout {
                waited_ms: budget.as_millis() as u64,
                progress: "the APF driver did not answer".into(),
            }),
        }
    }

    /// Opens a `forwarded-tcpip` channel to AMT's `port` (16992, or 16993 when TLS is enforced).
    /// Waits for a re-handshake if one is in progress; fails with [`ApfError::Refused`] (the APF
    /// reason named) or [`ApfError::OpenTimeout`] after `open_timeout`.
    pub async fn open(&self, port: u16) -> Result<ApfStream, ApfError> {
        let (reply, answer) = oneshot::channel();
        self.inputs
            .send(Input::Open {
                port,
                requested: Instant::now(),
                reply,
            })
            .map_err(|_| ApfError::SessionClosed)?;
        let budget = self.opts.open_timeout + connect_budget(&self.opts.retry);
        match tokio::time::timeout(budget, answer).await {
            Ok(Ok(Ok(parts))) => Ok(ApfStream {
                _live: self.live.clone(),
                channel: parts.channel,
                port,
                inputs: self.inputs.clone(),
                rx: parts.rx,
                shared: parts.shared,
                pending: Vec::new(),
                pos: 0,
                read_done: None,
                closed: false,
                write_buffer: self.opts.write_buffer.max(1) as u64,
            }),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(ApfError::SessionClosed),
            Err(_) => Err(ApfError::OpenTimeout {
                port,
                waited_ms: budget.as_millis() as u64,
                why: "the APF driver did not answer",
            }),
        }
    }

    /// The port pair the firmware advertised in the current session (its `tls` flag tells which
    /// management port to open), if the session is ready.
    pub fn port_pair(&self) -> Option<PortPair> {
        let st = lock(&self.status);
        st.pair.filter(|_| st.ready)
    }

    /// The management port to open: 16993 when the firmware advertised only the TLS pair.
    pub fn management_port(&self) -> u16 {
        match self.port_pair() {
            Some(p) if p.tls => PORT_HTTPS as u16,
            _ => PORT_HTTP as u16,
        }
    }

    /// Ends the session: open streams keep working until they close, then LME is released.
    pub fn shutdown(&self) {
        let _ = self.inputs.send(Input::Shutdown);
    }
}

impl Drop for ApfSession {
    fn drop(&mut self) {
        self.shutdown();
        if Arc::strong_count(&self.live) == 1 {
            let done = self.done.lock().unwrap_or_else(|p| p.into_inner());
            // Disconnected (the driver ended) is the answer; a timeout leaves it to finish alone.
            let _ = done.recv_timeout(RELEASE_WAIT);
        }
    }
}

/// Worst-case time [`heci::connect`] may spend retrying.
fn connect_budget(p: &RetryPolicy) -> Duration {
    let mut busy = Duration::ZERO;
    let mut d = p.busy_first_delay;
    for _ in 0..p.busy_attempts {
        busy += d;
        d = d.saturating_mul(2);
    }
    busy + p.reset_delay * (p.reset_attempts + 1) + Duration::from_secs(1)
}

fn host_config(opts: &ApfOptions, mtu: usize) -> Config {
    let mut c = opts.mux.clone();
    c.role = Role::Host;
    c.mtu = mtu;
    c.open_timeout = opts.open_timeout;
    // AMT-initiated channels (direct-tcpip) are of no use to the agent.
    c.accept_channel_types.clear();
    c
}

// ---- the stream ------------------------------------------------------------------------------

/// One APF channel as a byte stream.
///
/// Reads give the peer its window back (WINDOW_ADJUST) as the bytes are read; writes are queued
/// to the driver and leave within the peer's window (at most `write_buffer` bytes wait before
/// `poll_write` returns `Pending`); `poll_flush` waits until everything written is on the wire.
/// APF has no half-close: `poll_shutdown` (and drop) sends CHANNEL_CLOSE after the queued bytes,
/// and bytes arriving after it are discarded. Errors are `io::Error`s wrapping an [`ApfError`].
pub struct ApfStream {
    /// Keeps the session's count of live streams.
    _live: Arc<()>,
    channel: ChannelId,
    port: u16,
    inputs: std_mpsc::Sender<Input>,
    rx: mpsc::UnboundedReceiver<Incoming>,
    shared: Arc<Mutex<WriteState>>,
    pending: Vec<u8>,
    pos: usize,
    read_done: Option<Option<ApfError>>,
    closed: bool,
    write_buffer: u64,
}

impl fmt::Debug for ApfStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApfStream")
            .field("channel", &self.channel.0)
            .field("port", &self.port)
            .finish()
    }
}

impl ApfStream {
    /// Our channel number.
    pub fn channel(&self) -> ChannelId {
        self.channel
    }

    /// The AMT port this channel is connected to.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl AsyncRead for ApfStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.pos < this.pending.len() {
                let n = (this.pending.len() - this.pos).min(buf.remaining());
                buf.put_slice(&this.pending[this.pos..this.pos + n]);
                this.pos += n;
                let _ = this.inputs.send(Input::Consume {
                    channel: this.channel,
                    n: n as u32,
                });
                return Poll::Ready(Ok(()));
            }
            if let Some(done) = &this.read_done {
                return Poll::Ready(match done {
                    None => Ok(()),
                    Some(e) => Err(e.clone().into_io()),
                });
            }
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(Incoming::Data(d))) => {
                    this.pending = d;
                    this.pos = 0;
                }
                Poll::Ready(Some(Incoming::Eof)) => this.read_done = Some(None),
                Poll::Ready(Some(Incoming::Error(e))) => this.read_done = Some(Some(e)),
                Poll::Ready(None) => this.read_done = Some(Some(ApfError::SessionClosed)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncWrite for ApfStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.closed {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after shutdown of the APF channel",
            )));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut st = lock(&self.shared);
        if let Some(e) = &st.error {
            return Poll::Ready(Err(e.clone().into_io()));
        }
        let unsent = st.written - st.sent;
        if unsent >= self.write_buffer {
            st.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = (buf.len() as u64).min(self.write_buffer - unsent) as usize;
        st.written += n as u64;
        drop(st);
        let sent = self.inputs.send(Input::Write {
            channel: self.channel,
            data: buf[..n].to_vec(),
        });
        match sent {
            Ok(()) => Poll::Ready(Ok(n)),
            Err(_) => Poll::Ready(Err(ApfError::SessionClosed.into_io())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = lock(&self.shared);
        if st.written == st.sent || self.closed {
            return Poll::Ready(Ok(()));
        }
        if let Some(e) = &st.error {
            return Poll::Ready(Err(e.clone().into_io()));
        }
        st.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.closed {
            self.closed = true;
            let _ = self.inputs.send(Input::Close {
                channel: self.channel,
            });
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for ApfStream {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.inputs.send(Input::Close {
                channel: self.channel,
            });
        }
    }
}

// ---- the driver ------------------------------------------------------------------------------

struct Chan {
    tx: mpsc::UnboundedSender<Incoming>,
    shared: Arc<Mutex<WriteState>>,
    /// Bytes handed to `Mux::send`.
    queued: u64,
    /// `queued − buffered` last published to the stream.
    sent: u64,
}

struct Opening {
    port: u16,
    requested: Instant,
    reply: oneshot::Sender<Result<StreamParts, ApfError>>,
}

struct Waiting {
    port: u16,
    requested: Instant,
    reply: oneshot::Sender<Result<StreamParts, ApfError>>,
}

struct Driver {
    device: Arc<dyn MeiDevice>,
    opts: ApfOptions,
    inputs_tx: std_mpsc::Sender<Input>,
    inputs: std_mpsc::Receiver<Input>,
    conn: Option<Arc<dyn MeiConnection>>,
    reader_stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// Dropped with the driver: tells the session's drop that LME is released.
    _done: std_mpsc::Sender<()>,
    /// Which LME connection the reader's messages belong to; older ones are ignored.
    generation: u64,
    mux: Mux,
    status: Arc<Mutex<Status>>,
    /// The session ended (DISCONNECT): the next open sends PROTOCOLVERSION again.
    needs_start: bool,
    /// Why the last LME reconnect failed (opens retry it, bounded).
    link_error: Option<ApfError>,
    channels: HashMap<ChannelId, Chan>,
    opening: HashMap<ChannelId, Opening>,
    /// Opens waiting for the session to become ready.
    waiting: Vec<Waiting>,
    /// `connect` waiting for the first handshake.
    ready_reply: Option<oneshot::Sender<Result<(), ApfError>>>,
    handshake_deadline: Option<Instant>,
    session_dropped: bool,
}

/// (channel the message names, payload bytes) for trace logs; never the payload itself.
fn trace_fields(m: &Message) -> (Option<u32>, usize) {
    match m {
        Message::ChannelOpen(o) => (Some(o.sender), 0),
        Message::ChannelOpenConfirmation { recipient, .. }
        | Message::ChannelOpenFailure { recipient, .. }
        | Message::WindowAdjust { recipient, .. }
        | Message::ChannelClose { recipient } => (Some(*recipient), 0),
        Message::ChannelData { recipient, data } => (Some(*recipient), data.len()),
        _ => (None, 0),
    }
}

impl Driver {
    fn run(mut self) {
        let started = Instant::now();
        if let Err(e) = self.connect_link() {
            if let Some(r) = self.ready_reply.take() {
                let _ = r.send(Err(e));
            }
            return;
        }
        self.handshake_deadline = Some(started.max(Instant::now()) + self.opts.handshake_timeout);
        loop {
            self.pump();
            if self.finished() {
                break;
            }
            let now = Instant::now();
            let wait = self.next_wake(now).saturating_duration_since(now);
            match self.inputs.recv_timeout(wait) {
                Ok(input) => self.handle_input(input),
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            self.mux.handle_timeout(now);
            self.expire(now);
        }
        self.pump();
        self.stop_reader();
        self.fail_all(ApfError::SessionClosed);
        tracing::debug!("APF session ended; LME released");
    }

    /// `connect` drops its handle when the handshake fails, so this also ends failed sessions.
    fn finished(&self) -> bool {
        self.session_dropped
            && self.channels.is_empty()
            && self.opening.is_empty()
            && self.waiting.is_empty()
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let mut t = now + Duration::from_secs(1);
        if let Some(m) = self.mux.poll_timeout() {
            t = t.min(m);
        }
        if self.ready_reply.is_some() {
            if let Some(d) = self.handshake_deadline {
                t = t.min(d);
            }
        }
        for w in &self.waiting {
            t = t.min(w.requested + self.opts.open_timeout);
        }
        t
    }

    // ---- the LME link -----------------------------------------------------------------------

    fn connect_link(&mut self) -> Result<(), ApfError> {
        let conn = heci::connect(&*self.device, heci::guid::LME, &self.opts.retry)
            .map_err(ApfError::from_connect)?;
        let conn: Arc<dyn MeiConnection> = Arc::from(conn);
        let mtu = conn.properties().max_msg_length as usize;
        // Every caller comes here with the old link gone (its reader stopped): LME takes one
        // connection at a time.
        debug_assert!(self.conn.is_none() && self.reader.is_none());
        self.generation += 1;
        self.mux = Mux::new(host_config(&self.opts, mtu));
        self.needs_start = false;
        self.link_error = None;
        {
            let mut st = lock(&self.status);
            st.ready = false;
            st.pair = None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        self.reader_stop = stop.clone();
        let tx = self.inputs_tx.clone();
        let generation = self.generation;
        let slice = self.opts.recv_slice;
        let reader = conn.clone();
        let handle = std::thread::Builder::new()
            .name("apf-lme-reader".into())
            .spawn(move || reader_loop(reader, generation, stop, tx, slice))
            .map_err(|e| ApfError::Channel(format!("cannot start the LME reader thread: {e}")))?;
        self.reader = Some(handle);
        self.conn = Some(conn);
        tracing::debug!(
            device = %self.device.describe(),
            mtu,
            generation,
            "LME connected; starting the APF handshake"
        );
        self.mux.start();
        Ok(())
    }

    /// Stops the reader and lets go of LME: the reader's wait is interrupted, so it returns and
    /// drops its handle now, and joining it means the handle is closed when this returns (a
    /// backend that cannot interrupt ends the wait within `recv_slice`).
    fn stop_reader(&mut self) {
        self.reader_stop.store(true, Ordering::SeqCst);
        if let Some(conn) = self.conn.take() {
            conn.interrupt();
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }

    /// The LME connection failed (ENODEV after an ME reset, closed, or another error): every
    /// channel is gone; reconnect once now (bounded by the retry policy).
    fn link_lost(&mut self, cause: HeciError) {
        if self.conn.is_none() {
            return;
        }
        tracing::warn!(error = %cause, "LME connection lost; failing open channels and reconnecting");
        self.stop_reader();
        {
            let mut st = lock(&self.status);
            st.ready = false;
        }
        // Drop whatever the old session still wanted to send.
        while self.mux.poll_transmit().is_some() {}
        while self.mux.poll_event().is_some() {}
        self.fail_all(ApfError::LinkLost {
            cause: cause.clone(),
        });
        if self.session_dropped || self.ready_reply.is_some() {
            if let Some(r) = self.ready_reply.take() {
                let _ = r.send(Err(ApfError::LinkLost { cause }));
            }
            return;
        }
        if let Err(e) = self.connect_link() {
            tracing::warn!(error = %e, "LME reconnect failed; later opens will try again");
            self.link_error = Some(e);
        }
    }

    fn transmit(&mut self, m: Message) {
        let Some(conn) = self.conn.as_ref() else {
            return;
        };
        let bytes = m.encode();
        let (channel, payload) = trace_fields(&m);
        tracing::trace!(
            dir = "send",
            kind = m.name(),
            channel,
            len = bytes.len(),
            payload,
            "APF"
        );
        // The send's result first: `link_lost` releases LME, which needs every handle to it gone.
        let sent = conn.send(&bytes);
        if let Err(e) = sent {
            self.link_lost(e);
        }
    }

    /// Writes every transmit and dispatches every event until the mux is quiet.
    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(m) = self.mux.poll_transmit() {
                self.transmit(m);
                progressed = true;
            }
            while let Some(e) = self.mux.poll_event() {
                self.on_event(e);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        self.publish_write_progress();
    }

    fn publish_write_progress(&mut self) {
        for (&id, ch) in self.channels.iter_mut() {
            let buffered = self.mux.buffered(id).unwrap_or(0) as u64;
            let sent = ch.queued.saturating_sub(buffered);
            if sent != ch.sent {
                ch.sent = sent;
                let mut st = lock(&ch.shared);
                st.sent = sent;
                if let Some(w) = st.waker.take() {
                    w.wake();
                }
            }
        }
    }

    // ---- inputs -----------------------------------------------------------------------------

    fn handle_input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Received { generation, result } => {
                if generation != self.generation || self.conn.is_none() {
                    return;
                }
                match result {
                    Ok(bytes) => self.received(&bytes, now),
                    Err(e) => self.link_lost(e),
                }
            }
            Input::Open {
                port,
                requested,
                reply,
            } => self.request_open(port, requested, reply),
            Input::Write { channel, data } => {
                let Some(ch) = self.channels.get_mut(&channel) else {
                    return;
                };
                match self.mux.send(channel, &data) {
                    Ok(()) => ch.queued += data.len() as u64,
                    Err(e) => {
                        let ch = self.channels.remove(&channel);
                        if let Some(ch) = ch {
                            finish_chan(ch, Some(ApfError::Channel(e.to_string())));
                        }
                    }
                }
            }
            Input::Consume { channel, n } => {
                if let Err(e) = self.mux.consume(channel, n) {
                    tracing::debug!(error = %e, "consume ignored");
                }
            }
            Input::Close { channel } => {
                if self.channels.remove(&channel).is_some() {
                    if let Err(e) = self.mux.close(channel) {
                        tracing::debug!(error = %e, "close of a dead channel ignored");
                    }
                }
            }
            Input::Shutdown => self.session_dropped = true,
        }
    }

    fn received(&mut self, bytes: &[u8], now: Instant) {
        match Message::decode(bytes) {
            Ok(m) => {
                let (channel, payload) = trace_fields(&m);
                tracing::trace!(
                    dir = "recv",
                    kind = m.name(),
                    channel,
                    len = bytes.len(),
                    payload,
                    "APF"
                );
                self.mux.handle_message(m, now);
            }
            Err(e) => {
                tracing::warn!(error = %e, len = bytes.len(), "undecodable APF message; disconnecting");
                let _ = self.mux.handle_bytes(bytes, now);
            }
        }
    }

    fn request_open(
        &mut self,
        port: u16,
        requested: Instant,
        reply: oneshot::Sender<Result<StreamParts, ApfError>>,
    ) {
        if self.conn.is_none() {
            if let Err(e) = self.connect_link() {
                self.link_error = Some(e.clone());
                let _ = reply.send(Err(e));
                return;
            }
        }
        if self.needs_start {
            tracing::debug!("APF session ended earlier; handshaking again");
            self.needs_start = false;
            self.mux.start();
        }
        let ready = lock(&self.status).ready;
        if ready {
            self.do_open(port, requested, reply);
        } else {
            self.waiting.push(Waiting {
                port,
                requested,
                reply,
            });
        }
    }

    fn do_open(
        &mut self,
        port: u16,
        requested: Instant,
        reply: oneshot::Sender<Result<StreamParts, ApfError>>,
    ) {
        // The open's clock started when the user asked, re-handshake included.
        match self.mux.open_channel(u32::from(port), requested) {
            Ok(id) => {
                tracing::debug!(channel = id.0, port, "APF channel open sent");
                self.opening.insert(
                    id,
                    Opening {
                        port,
                        requested,
                        reply,
                    },
                );
            }
            Err(e) => {
                let _ = reply.send(Err(ApfError::Channel(e.to_string())));
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        if let Some(deadline) = self.handshake_deadline {
            if self.ready_reply.is_some() && now >= deadline {
                let management = self
                    .mux
                    .forwards()
                    .iter()
                    .find(|f| f.port == PORT_HTTP || f.port == PORT_HTTPS)
                    .map(|f| f.port);
                if let Some(port) = management {
                    tracing::debug!(
                        port,
                        "no full port pair within the handshake deadline; using the management port"
                    );
                    let mut st = lock(&self.status);
                    st.ready = true;
                    st.pair = Some(PortPair {
                        management: port,
                        redirection: 0,
                        tls: port == PORT_HTTPS,
                    });
                    drop(st);
                    if let Some(r) = self.ready_reply.take() {
                        let _ = r.send(Ok(()));
                    }
                    self.open_waiting();
                } else {
                    let progress = self.handshake_progress();
                    if let Some(r) = self.ready_reply.take() {
                        let _ = r.send(Err(ApfError::HandshakeTimeout {
                            waited_ms: self.opts.handshake_timeout.as_millis() as u64,
                            progress,
                        }));
                    }
                }
            }
        }
        let timeout = self.opts.open_timeout;
        let (expired, kept): (Vec<Waiting>, Vec<Waiting>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| now >= w.requested + timeout);
        self.waiting = kept;
        for w in expired {
            let _ = w.reply.send(Err(ApfError::OpenTimeout {
                port: w.port,
                waited_ms: now.saturating_duration_since(w.requested).as_millis() as u64,
                why: "the APF session did not become ready",
            }));
        }
    }

    fn handshake_progress(&self) -> String {
        match (self.mux.is_established(), self.mux.forwards()) {
            (false, _) => "no PROTOCOLVERSION from the firmware".into(),
            (true, []) => "version agreed, but no port was advertised".into(),
            (true, f) => format!(
                "version agreed, ports advertised: {}",
                f.iter()
                    .map(|f| f.port.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    fn open_waiting(&mut self) {
        for w in std::mem::take(&mut self.waiting) {
            self.do_open(w.port, w.requested, w.reply);
        }
    }

    // ---- events -----------------------------------------------------------------------------

    fn on_event(&mut self, e: Event) {
        match e {
            Event::VersionAgreed { agreed, peer } => {
                tracing::debug!(
                    agreed = ?agreed,
                    peer_major = peer.major,
                    peer_minor = peer.minor,
                    "APF version agreed"
                )
            }
            Event::ServiceAccepted { service } => {
                tracing::debug!(%service, "APF service accepted")
            }
            Event::PortForwarded(f) => {
                tracing::debug!(port = f.port, address = %f.address, "AMT port forwarded")
            }
            Event::PortForwardCancelled(f) => {
                // The firmware withdrew a port (a CommitChanges turned TLS on or off): the
                // management port to open is that of a pair still bound, if any; a pair bound
                // later takes the place.
                let mut st = lock(&self.status);
                if st
                    .pair
                    .is_some_and(|p| p.management == f.port || p.redirection == f.port)
                {
                    st.pair = self.mux.port_pair();
                }
                tracing::debug!(port = f.port, pair = ?st.pair, "AMT withdrew a port forward");
            }
            Event::PortPairBound(pair) => {
                tracing::debug!(
                    management = pair.management,
                    redirection = pair.redirection,
                    tls = pair.tls,
                    "APF session ready"
                );
                {
                    let mut st = lock(&self.status);
                    st.ready = true;
                    if st.pair.is_none() {
                        st.pair = Some(pair);
                    }
                }
                if let Some(r) = self.ready_reply.take() {
                    let _ = r.send(Ok(()));
                }
                self.open_waiting();
            }
            Event::ChannelOpened {
                channel,
                port,
                incoming,
            } => {
                if incoming {
                    let _ = self.mux.close(channel);
                    return;
                }
                let Some(o) = self.opening.remove(&channel) else {
                    let _ = self.mux.close(channel);
                    return;
                };
                let (tx, rx) = mpsc::unbounded_channel();
                let shared = Arc::new(Mutex::new(WriteState::default()));
                let parts = StreamParts {
                    channel,
                    rx,
                    shared: shared.clone(),
                };
                tracing::debug!(
                    channel = channel.0,
                    port,
                    waited_ms = o.requested.elapsed().as_millis() as u64,
                    "APF channel open"
                );
                if o.reply.send(Ok(parts)).is_err() {
                    // The caller gave up meanwhile: free the firmware's slot.
                    let _ = self.mux.close(channel);
                    return;
                }
                self.channels.insert(
                    channel,
                    Chan {
                        tx,
                        shared,
                        queued: 0,
                        sent: 0,
                    },
                );
            }
            Event::ChannelOpenFailed { channel, reason } => {
                if let Some(o) = self.opening.remove(&channel) {
                    tracing::debug!(channel = channel.0, port = o.port, %reason, "APF channel refused");
                    let _ = o.reply.send(Err(ApfError::Refused {
                        port: o.port,
                        reason,
                    }));
                }
            }
            Event::ChannelOpenTimedOut { channel } => {
                if let Some(o) = self.opening.remove(&channel) {
                    let _ = o.reply.send(Err(ApfError::OpenTimeout {
                        port: o.port,
                        waited_ms: o.requested.elapsed().as_millis() as u64,
                        why: "no OPEN_CONFIRMATION",
                    }));
                }
            }
            Event::Data { channel, data } => {
                if let Some(ch) = self.channels.get(&channel) {
                    let _ = ch.tx.send(Incoming::Data(data));
                }
            }
            Event::ChannelClosed { channel, by_peer } => {
                tracing::debug!(channel = channel.0, by_peer, "APF channel closed");
                if let Some(ch) = self.channels.remove(&channel) {
                    finish_chan(ch, None);
                }
            }
            Event::SessionRestarted { .. } => {
                tracing::warn!("the firmware restarted the APF session; open channels are lost");
                lock(&self.status).ready = false;
                self.fail_open(ApfError::SessionRestarted);
            }
            Event::Disconnected {
                reason,
                by_peer,
                detail,
                ..
            } => {
                tracing::warn!(%reason, by_peer, %detail, "APF session disconnected");
                lock(&self.status).ready = false;
                self.needs_start = true;
                self.fail_open(ApfError::Disconnected { reason });
                if let Some(r) = self.ready_reply.take() {
                    let _ = r.send(Err(ApfError::Disconnected { reason }));
                }
                if !self.waiting.is_empty() {
                    self.needs_start = false;
                    self.mux.start();
                }
            }
            Event::Ignored {
                message,
                recipient,
                why,
            } => tracing::trace!(message, recipient, why, "APF message ignored"),
            other => tracing::debug!(event = ?other, "APF event"),
        }
    }

    /// Fails the channels and opens in flight (not the opens waiting for the session).
    fn fail_open(&mut self, e: ApfError) {
        for (_, ch) in self.channels.drain() {
            finish_chan(ch, Some(e.clone()));
        }
        for (_, o) in self.opening.drain() {
            let _ = o.reply.send(Err(e.clone()));
        }
    }

    fn fail_all(&mut self, e: ApfError) {
        self.fail_open(e.clone());
        for w in self.waiting.drain(..) {
            let _ = w.reply.send(Err(e.clone()));
        }
    }
}

/// The channel is gone: readers get EOF (`None`) or the error, writers the error.
fn finish_chan(ch: Chan, error: Option<ApfError>) {
    // Writers first, so a reader that sees the error finds writes failing too.
    {
        let mut st = lock(&ch.shared);
        st.error = Some(
            error
                .clone()
                .unwrap_or(ApfError::Channel("the channel was closed by AMT".into())),
        );
        if let Some(w) = st.waker.take() {
            w.wake();
        }
    }
    let _ = ch.tx.send(match error {
        None => Incoming::Eof,
        Some(e) => Incoming::Error(e),
    });
}

fn reader_loop(
    conn: Arc<dyn MeiConnection>,
    generation: u64,
    stop: Arc<AtomicBool>,
    tx: std_mpsc::Sender<Input>,
    slice: Duration,
) {
    while !stop.load(Ordering::SeqCst) {
        match conn.recv(Instant::now() + slice) {
            Ok(bytes) => {
                let input = Input::Received {
                    generation,
                    result: Ok(bytes),
                };
                if tx.send(input).is_err() {
                    return;
                }
            }
            Err(HeciError::Timeout { .. }) => {}
            Err(e) => {
                if !stop.load(Ordering::SeqCst) {
                    let _ = tx.send(Input::Received {
                        generation,
                        result: Err(e),
                    });
                }
                return;
            }
        }
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
