//! The APF channel multiplexer: a pure state machine usable as the host (agent, LMS-like) or as the
//! firmware (simulator), after transport.md §5.2.
//!
//! Drive it quinn-proto style: feed every received message to [`Mux::handle_message`] (or raw bytes
//! to [`Mux::handle_bytes`]), then drain [`Mux::poll_transmit`] (one MEI write each) and
//! [`Mux::poll_event`]; call [`Mux::handle_timeout`] when [`Mux::poll_timeout`] says so. Nothing
//! here does I/O or reads a clock: time comes in as `now`.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use super::codec::{
    ChannelOpen, DecodeError, DisconnectReason, GlobalRequest, Message, OpenFailureReason,
    ProtocolVersion, TriggerReason, CHANNEL_DATA_HEADER_LEN, CHANNEL_DIRECT_TCPIP,
    CHANNEL_FORWARDED_TCPIP, SERVICE_AUTH, SERVICE_PFWD,
};

/// Which end of the LME link this multiplexer plays.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    /// The OS side (rpc-go, LMS, amt-agent): accepts services and port forwards, opens
    /// `forwarded-tcpip` channels.
    Host,
    /// The ME side (amt-sim): requests `pfwd@amt.intel.com`, advertises its ports with
    /// `tcpip-forward`, accepts channels into a fixed slot pool.
    Firmware,
}

/// Management and redirection ports AMT advertises together (transport.md §5.2 step 5).
pub const PORT_HTTP: u32 = 16992;
pub const PORT_HTTPS: u32 = 16993;
pub const PORT_REDIRECTION: u32 = 623;
pub const PORT_REDIRECTION_TLS: u32 = 664;

/// Settings for one [`Mux`]. Start from [`Config::host`] or [`Config::firmware`].
#[derive(Clone, Debug)]
pub struct Config {
    pub role: Role,
    /// The PROTOCOLVERSION this side sends, first or as an answer.
    pub version: ProtocolVersion,
    /// Receive window advertised per channel (in CHANNEL_OPEN / OPEN_CONFIRMATION).
    pub initial_window: u32,
    /// Channel numbers this side hands out: firmware `0..max_channels` (lowest free first; AMT's
    /// pool is 8, transport.md §5.2 step 8), host `1..=max_channels` rotating, the first open using
    /// 2 (rpc-go, rpc-go.md §4.4).
    pub max_channels: u32,
    /// The MEI client's `max_msg_length`; each CHANNEL_DATA carries at most `mtu − 9` bytes.
    pub mtu: usize,
    /// Firmware role: services requested once the version is agreed.
    pub services: Vec<String>,
    /// Firmware role: ports announced with `tcpip-forward` once `pfwd@amt.intel.com` is
    /// accepted; incoming `forwarded-tcpip` to any other port fails with CONNECT_FAILED.
    pub advertised_ports: Vec<u32>,
    /// Firmware role: the address sent in `tcpip-forward`. LMS takes a value other than
    /// `0.0.0.0`/`::` as a local forward and as AMT's FQDN, which it writes into the hosts file
    /// (`intel/lms` `UNS/PortForwardingService/Protocol.cpp`, `_updateIPFQDN`); the simulator
    /// sends the FQDN configured in `AMT_GeneralSettings`, empty when none is (docs/simulator.md).
    pub forward_bind_address: String,
    /// Channel types accepted from the peer; others fail with UNKNOWN_CHANNEL_TYPE.
    pub accept_channel_types: Vec<String>,
    /// Confirm acceptable incoming channels at once; if false, emit
    /// [`Event::ChannelRequested`] and wait for [`Mux::accept_channel`] / [`Mux::reject_channel`].
    pub auto_accept: bool,
    /// How long an outgoing open waits for its answer (rpc-go: 18 s).
    pub open_timeout: Duration,
}

impl Config {
    /// A host as rpc-go behaves: version 1.0 trigger 9, window 4096, channels 1..=31.
    pub fn host() -> Config {
        Config {
            role: Role::Host,
            version: ProtocolVersion::rpc_go(),
            initial_window: 4096,
            max_channels: 31,
            mtu: 4160,
            services: Vec::new(),
            advertised_ports: Vec::new(),
            forward_bind_address: String::new(),
            accept_channel_types: vec![CHANNEL_DIRECT_TCPIP.into()],
            auto_accept: true,
            open_timeout: Duration::from_secs(18),
        }
    }

    /// AMT firmware: 8-slot pool, advertises 16992+623, or 16993+664 when TLS is enforced.
    pub fn firmware(tls: bool) -> Config {
        let ports = if tls {
            vec![PORT_HTTPS, PORT_REDIRECTION_TLS]
        } else {
            vec![PORT_HTTP, PORT_REDIRECTION]
        };
        Config {
            role: Role::Firmware,
            version: ProtocolVersion {
                major: 1,
                minor: 0,
                trigger: TriggerReason::LmeRequest,
                uuid: [0; 16],
            },
            initial_window: 4096,
            max_channels: 8,
            mtu: 4160,
            services: vec![SERVICE_PFWD.into()],
            advertised_ports: ports,
            forward_bind_address: String::new(),
            accept_channel_types: vec![CHANNEL_FORWARDED_TCPIP.into()],
            auto_accept: true,
            open_timeout: Duration::from_secs(18),
        }
    }
}

/// This side's number for a channel: the `sender` it announced, the `recipient` the peer uses.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ChannelId(pub u32);

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "channel {}", self.0)
    }
}

/// Where an outgoing channel goes (the CHANNEL_OPEN fields this side chooses).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OpenParams {
    pub channel_type: String,
    pub connected_address: String,
    pub connected_port: u32,
    pub originator_address: String,
    pub originator_port: u32,
}

impl OpenParams {
    /// rpc-go's `forwarded-tcpip` to `::1`:`port` from `::1`:123 (transport.md §5.2 step 7).
    pub fn forwarded(port: u32) -> OpenParams {
        OpenParams {
            channel_type: CHANNEL_FORWARDED_TCPIP.into(),
            connected_address: "::1".into(),
            connected_port: port,
            originator_address: "::1".into(),
            originator_port: 123,
        }
    }
}

/// A port the firmware asked the host to expose (`tcpip-forward`) and the host accepted.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Forward {
    pub address: String,
    pub port: u32,
}

/// A complete management + redirection pair: {16992, 623} or, TLS, {16993, 664}.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PortPair {
    pub management: u32,
    pub redirection: u32,
    pub tls: bool,
}

const PAIRS: [PortPair; 2] = [
    PortPair {
        management: PORT_HTTP,
        redirection: PORT_REDIRECTION,
        tls: false,
    },
    PortPair {
        management: PORT_HTTPS,
        redirection: PORT_REDIRECTION_TLS,
        tls: true,
    },
];

/// A channel as the application sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ChannelState {
    /// We sent CHANNEL_OPEN; no answer yet.
    Opening,
    /// The peer opened it; waiting for [`Mux::accept_channel`] (only without `auto_accept`).
    AwaitingAccept,
    /// Confirmed: data flows both ways.
    Open,
    /// We asked to close: buffered data drains, then CHANNEL_CLOSE, then the peer's ack.
    Closing,
}

/// What happened, for the application. Drained with [`Mux::poll_event`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event {
    /// Both PROTOCOLVERSIONs are known; `agreed` is the lower of the two.
    VersionAgreed {
        agreed: (u32, u32),
        peer: ProtocolVersion,
    },
    /// A service was accepted: by us (we received SERVICE_REQUEST) or by the peer.
    ServiceAccepted { service: String },
    /// A `tcpip-forward` took effect (host: we accepted it; firmware: the host accepted ours).
    PortForwarded(Forward),
    /// A `cancel-tcpip-forward` took effect.
    PortForwardCancelled(Forward),
    /// The peer refused one of our global requests.
    GlobalRequestFailed { request: GlobalRequest },
    /// A full port pair is bound; LMS and rpc-go treat the LME link as ready from here.
    PortPairBound(PortPair),
    /// `udp-send-to@amt.intel.com` arrived; it is refused (REQUEST_FAILURE) as MeshAgent does,
    /// and reported so the application may relay it as LMS does.
    UdpSendTo { request: GlobalRequest },
    /// The peer wants to open a channel; answer with accept_channel / reject_channel.
    ChannelRequested {
        channel: ChannelId,
        open: ChannelOpen,
    },
    /// The peer's CHANNEL_OPEN was refused before becoming a channel.
    IncomingChannelRefused {
        open: ChannelOpen,
        reason: OpenFailureReason,
    },
    /// A channel is open (ours confirmed by the peer, or the peer's confirmed by us).
    ChannelOpened {
        channel: ChannelId,
        port: u32,
        incoming: bool,
    },
    /// The peer refused our CHANNEL_OPEN.
    ChannelOpenFailed {
        channel: ChannelId,
        reason: OpenFailureReason,
    },
    /// Our CHANNEL_OPEN got no answer within `open_timeout`. A late confirmation is closed at
    /// once so the firmware's slot is not leaked.
    ChannelOpenTimedOut { channel: ChannelId },
    /// Bytes from the peer. Call [`Mux::consume`] once the application has used them.
    Data { channel: ChannelId, data: Vec<u8> },
    /// The close handshake finished (`by_peer`: the peer closed first; we acknowledged).
    ChannelClosed { channel: ChannelId, by_peer: bool },
    /// The peer sent PROTOCOLVERSION on an established session, or we restarted it: every
    /// channel and forward of the old session is gone.
    SessionRestarted { closed: Vec<ChannelId> },
    /// DISCONNECT was received (`by_peer`) or sent by us (protocol errors, `detail` says why).
    Disconnected {
        reason: DisconnectReason,
        by_peer: bool,
        detail: String,
        closed: Vec<ChannelId>,
    },
    /// A message that names no live channel or request (stale after a restart, or late), or
    /// one this side drops on purpose (a version echo; on the firmware side an undecodable
    /// message, or a version on an agreed session).
    Ignored {
        message: &'static str,
        recipient: Option<u32>,
        why: &'static str,
    },
}

/// A user call the multiplexer cannot honour.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum MuxError {
    #[error("the APF session is not established (no protocol version agreed)")]
    NotEstablished,
    #[error("no free channel number (all {max} in use)")]
    NoFreeChannel { max: u32 },
    #[error("{0} does not exist")]
    UnknownChannel(ChannelId),
    #[error("{0} is closing")]
    ChannelClosing(ChannelId),
    #[error("{0} is not waiting to be accepted")]
    NotAwaitingAccept(ChannelId),
    #[error(
        "{channel}: cannot consume {requested} bytes, only {unconsumed} received and unconsumed"
    )]
    ConsumeTooMuch {
        channel: ChannelId,
        requested: u64,
        unconsumed: u64,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Session {
    /// No version agreed yet (fresh, or we restarted and wait for the answer).
    Idle,
    Agreed,
    /// DISCONNECT sent or received; only a new PROTOCOLVERSION revives it.
    Disconnected,
}

#[derive(Debug)]
struct Channel {
    state: ChannelState,
    incoming: bool,
    /// The peer's number for this channel: the recipient of everything we send on it.
    peer: u32,
    port: u32,
    /// Bytes we may still send (the peer's window).
    tx_window: u32,
    tx_buf: VecDeque<u8>,
    /// Bytes the peer may still send us.
    rx_window: u32,
    rx_unconsumed: u64,
    close_pending: bool,
    opened_at: Instant,
    /// Outgoing open that timed out: invisible to the application, closed if confirmed late.
    abandoned: bool,
}

/// The multiplexer. See the module documentation for how to drive it.
#[derive(Debug)]
pub struct Mux {
    config: Config,
    session: Session,
    /// We sent PROTOCOLVERSION first and wait for the peer's.
    version_outstanding: bool,
    /// We answered the peer's PROTOCOLVERSION and nothing else has arrived since: a PV now is the
    /// peer echoing our answer (rpc-go echoes every PV it receives), not a restart.
    may_echo: bool,
    agreed: Option<(u32, u32)>,
    peer_version: Option<ProtocolVersion>,
    pending_services: Vec<String>,
    pending_global: VecDeque<GlobalRequest>,
    forwards: Vec<Forward>,
    pairs_bound: Vec<PortPair>,
    channels: BTreeMap<u32, Channel>,
    last_host_id: u32,
    last_activity: Option<Instant>,
    transmit: VecDeque<Message>,
    events: VecDeque<Event>,
}

impl Mux {
    pub fn new(mut config: Config) -> Mux {
        config.mtu = config.mtu.max(CHANNEL_DATA_HEADER_LEN + 1);
        Mux {
            config,
            session: Session::Idle,
            version_outstanding: false,
            may_echo: false,
            agreed: None,
            peer_version: None,
            pending_services: Vec::new(),
            pending_global: VecDeque::new(),
            forwards: Vec::new(),
            pairs_bound: Vec::new(),
            channels: BTreeMap::new(),
            last_host_id: 1,
            last_activity: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn role(&self) -> Role {
        self.config.role
    }

    // ---- user calls -------------------------------------------------------------------------

    /// Sends our PROTOCOLVERSION first (rpc-go style, transport.md §5.2 step 2). On an
    /// established session this restarts it: all channels die ([`Event::SessionRestarted`]).
    /// Not calling it means waiting for the peer's (LMS style).
    pub fn start(&mut self) {
        if self.session == Session::Agreed {
            let closed = self.reset_session();
            self.events.push_back(Event::SessionRestarted { closed });
        }
        self.session = Session::Idle;
        self.agreed = None;
        self.version_outstanding = true;
        self.may_echo = false;
        self.transmit
            .push_back(Message::ProtocolVersion(self.config.version));
    }

    /// Opens rpc-go's `forwarded-tcpip` channel to AMT `port`.
    pub fn open_channel(&mut self, port: u32, now: Instant) -> Result<ChannelId, MuxError> {
        self.open_channel_with(OpenParams::forwarded(port), now)
    }

    /// Sends CHANNEL_OPEN with our next channel number and `initial_window`. The channel is
    /// usable at once: data sent before the confirmation is buffered.
    pub fn open_channel_with(
        &mut self,
        params: OpenParams,
        now: Instant,
    ) -> Result<ChannelId, MuxError> {
        if self.session != Session::Agreed {
            return Err(MuxError::NotEstablished);
        }
        let id = self.alloc_id().ok_or(MuxError::NoFreeChannel {
            max: self.config.max_channels,
        })?;
        self.channels.insert(
            id,
            Channel {
                state: ChannelState::Opening,
                incoming: false,
                peer: 0,
                port: params.connected_port,
                tx_window: 0,
                tx_buf: VecDeque::new(),
                rx_window: self.config.initial_window,
                rx_unconsumed: 0,
                close_pending: false,
                opened_at: now,
                abandoned: false,
            },
        );
        self.transmit.push_back(Message::ChannelOpen(ChannelOpen {
            channel_type: params.channel_type,
            sender: id,
            window: self.config.initial_window,
            connected_address: params.connected_address,
            connected_port: params.connected_port,
            originator_address: params.originator_address,
            originator_port: params.originator_port,
        }));
        Ok(ChannelId(id))
    }

    /// Confirms a channel announced by [`Event::ChannelRequested`].
    pub fn accept_channel(&mut self, channel: ChannelId) -> Result<(), MuxError> {
        let window = self.config.initial_window;
        let ch = self.awaiting(channel)?;
        ch.state = ChannelState::Open;
        let (peer, port) = (ch.peer, ch.port);
        self.transmit.push_back(Message::ChannelOpenConfirmation {
            recipient: peer,
            sender: channel.0,
            window,
        });
        self.events.push_back(Event::ChannelOpened {
            channel,
            port,
            incoming: true,
        });
        self.flush(channel.0);
        Ok(())
    }

    /// Refuses a channel announced by [`Event::ChannelRequested`]; its number is free again.
    pub fn reject_channel(
        &mut self,
        channel: ChannelId,
        reason: OpenFailureReason,
    ) -> Result<(), MuxError> {
        let peer = self.awaiting(channel)?.peer;
        self.channels.remove(&channel.0);
        self.transmit.push_back(Message::ChannelOpenFailure {
            recipient: peer,
            reason,
        });
        Ok(())
    }

    /// Queues bytes. They leave as CHANNEL_DATA of at most `mtu − 9` bytes and never beyond the
    /// peer's window; the rest waits for WINDOW_ADJUST (transport.md §5.2 step 9).
    pub fn send(&mut self, channel: ChannelId, data: &[u8]) -> Result<(), MuxError> {
        let ch = self.visible_mut(channel)?;
        if ch.close_pending || ch.state == ChannelState::Closing {
            return Err(MuxError::ChannelClosing(channel));
        }
        ch.tx_buf.extend(data);
        self.flush(channel.0);
        Ok(())
    }

    /// Tells the peer the application used `n` received bytes: WINDOW_ADJUST(n) gives the credit
    /// back (transport.md §5.2 step 10). On a channel that has closed or died since the data
    /// arrived (AMT sends its response and CHANNEL_CLOSE back to back) this is a no-op.
    pub fn consume(&mut self, channel: ChannelId, n: u32) -> Result<(), MuxError> {
        let Ok(ch) = self.visible_mut(channel) else {
            return Ok(());
        };
        if u64::from(n) > ch.rx_unconsumed {
            return Err(MuxError::ConsumeTooMuch {
                channel,
                requested: n.into(),
                unconsumed: ch.rx_unconsumed,
            });
        }
        ch.rx_unconsumed -= u64::from(n);
        ch.rx_window += n;
        if n > 0 && ch.state == ChannelState::Open {
            let peer = ch.peer;
            self.transmit.push_back(Message::WindowAdjust {
                recipient: peer,
                bytes: n,
            });
        }
        Ok(())
    }

    /// Closes gracefully: buffered data drains first, then CHANNEL_CLOSE; [`Event::ChannelClosed`]
    /// follows the peer's ack. A channel still awaiting acceptance is refused instead.
    pub fn close(&mut self, channel: ChannelId) -> Result<(), MuxError> {
        if self.visible_mut(channel)?.state == ChannelState::AwaitingAccept {
            return self.reject_channel(channel, OpenFailureReason::AdministrativelyProhibited);
        }
        self.visible_mut(channel)?.close_pending = true;
        self.flush(channel.0);
        Ok(())
    }

    /// Sends a global request; replies are matched in order (SSH rules).
    pub fn global_request(&mut self, request: GlobalRequest, want_reply: bool) {
        if want_reply {
            self.pending_global.push_back(request.clone());
        }
        self.transmit.push_back(Message::GlobalRequest {
            want_reply,
            request,
        });
    }

    /// Firmware role: the ports it forwards change (AMT restarts its local ports when a
    /// CommitChanges turns TLS on or off). Once the session has announced its forwards, new
    /// ports are announced with `tcpip-forward` and dropped ones withdrawn with
    /// `cancel-tcpip-forward`; from now on a channel to a dropped port is refused.
    pub fn set_advertised_ports(&mut self, ports: Vec<u32>) {
        if ports == self.config.advertised_ports {
            return;
        }
        let announced = self.config.role == Role::Firmware
            && self.agreed.is_some()
            && !self.pending_services.iter().any(|s| s == SERVICE_PFWD);
        if announced {
            let address = self.config.forward_bind_address.clone();
            for port in self.config.advertised_ports.clone() {
                if !ports.contains(&port) {
                    self.global_request(
                        GlobalRequest::CancelTcpipForward {
                            address: address.clone(),
                            port,
                        },
                        true,
                    );
                }
            }
            for &port in &ports {
                if !self.config.advertised_ports.contains(&port) {
                    self.global_request(
                        GlobalRequest::TcpipForward {
                            address: address.clone(),
                            port,
                        },
                        true,
                    );
                }
            }
        }
        self.config.advertised_ports = ports;
    }

    /// Ends the session with DISCONNECT(reason).
    pub fn disconnect(&mut self, reason: DisconnectReason) {
        self.fail(reason, "disconnect requested by the application".into());
    }

    // ---- input ------------------------------------------------------------------------------

    /// Decodes one MEI message and handles it; the decode error is returned for undecodable
    /// bytes. A host treats them as a protocol error and queues DISCONNECT (LMS does). The
    /// firmware drops them and keeps the session: rpc-go's answers are sometimes malformed and
    /// real firmware serves it regardless (UNCONFIRMED which malformed answers it tolerates;
    /// docs/simulator.md).
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Instant) -> Result<(), DecodeError> {
        match Message::decode(bytes) {
            Ok(m) => {
                self.handle_message(m, now);
                Ok(())
            }
            Err(e) if self.config.role == Role::Firmware => {
                self.last_activity = Some(now);
                self.ignore("undecodable message", None, "dropped; the session goes on");
                Err(e)
            }
            Err(e) => {
                self.fail(DisconnectReason::ProtocolError, e.to_string());
                Err(e)
            }
        }
    }

    /// Handles one message from the peer.
    pub fn handle_message(&mut self, message: Message, now: Instant) {
        self.last_activity = Some(now);
        let is_version = matches!(message, Message::ProtocolVersion(_));
        let is_keepalive = matches!(
            message,
            Message::KeepaliveRequest { .. }
                | Message::KeepaliveReply { .. }
                | Message::KeepaliveOptionsRequest { .. }
                | Message::KeepaliveOptionsReply { .. }
        );
        if !is_version && !is_keepalive {
            self.may_echo = false;
        }
        let name = message.name();
        match message {
            Message::ProtocolVersion(pv) => self.on_version(pv),
            Message::Disconnect { reason } => {
                if self.session != Session::Disconnected {
                    let closed = self.reset_session();
                    self.session = Session::Disconnected;
                    self.version_outstanding = false;
                    self.may_echo = false;
                    self.transmit.clear();
                    self.events.push_back(Event::Disconnected {
                        reason,
                        by_peer: true,
                        detail: String::new(),
                        closed,
                    });
                }
            }
            Message::KeepaliveRequest { cookie } => {
                self.transmit.push_back(Message::KeepaliveReply { cookie })
            }
            Message::KeepaliveOptionsRequest { interval, timeout } => self
                .transmit
                .push_back(Message::KeepaliveOptionsReply { interval, timeout }),
            Message::KeepaliveReply { .. }
            | Message::KeepaliveOptionsReply { .. }
            | Message::UserauthFailure { .. }
            | Message::UserauthSuccess
            | Message::Unknown { .. } => self.ignore(name, None, "not used on LME"),
            _ if self.session == Session::Disconnected => {
                self.ignore(name, None, "session is disconnected")
            }
            Message::ServiceRequest { .. }
            | Message::ServiceAccept { .. }
            | Message::UserauthRequest { .. }
            | Message::GlobalRequest { .. }
            | Message::ChannelOpen(_)
                if self.session != Session::Agreed =>
            {
                self.fail(
                    DisconnectReason::ProtocolError,
                    format!("{name} before the protocol version was agreed"),
                )
            }
            Message::ServiceRequest { service } => {
                if service == SERVICE_PFWD || service == SERVICE_AUTH {
                    self.transmit.push_back(Message::ServiceAccept {
                        service: service.clone(),
                    });
                    self.events.push_back(Event::ServiceAccepted { service });
                } else {
                    self.fail(
                        DisconnectReason::ServiceNotAvailable,
                        format!("unknown service {service:?}"),
                    )
                }
            }
            Message::ServiceAccept { service } => self.on_service_accept(service),
            // LMS answers any USERAUTH_REQUEST on LME with success (transport.md §5.1).
            Message::UserauthRequest { .. } => self.transmit.push_back(Message::UserauthSuccess),
            Message::GlobalRequest {
                want_reply,
                request,
            } => self.on_global_request(want_reply, request),
            Message::RequestSuccess { .. } | Message::RequestFailure => {
                let ok = matches!(message, Message::RequestSuccess { .. });
                self.on_request_reply(name, ok)
            }
            Message::ChannelOpen(open) => self.on_channel_open(open, now),
            Message::ChannelOpenConfirmation {
                recipient,
                sender,
                window,
            } => self.on_open_confirmation(recipient, sender, window),
            Message::ChannelOpenFailure { recipient, reason } => {
                self.on_open_failure(recipient, reason)
            }
            Message::WindowAdjust { recipient, bytes } => self.on_window_adjust(recipient, bytes),
            Message::ChannelData { recipient, data } => self.on_data(recipient, data),
            Message::ChannelClose { recipient } => self.on_close(recipient),
        }
    }

    /// Expires outgoing opens that waited longer than `open_timeout`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let timeout = self.config.open_timeout;
        let mut expired = Vec::new();
        for (&id, ch) in self.channels.iter_mut() {
            if ch.state == ChannelState::Opening
                && !ch.incoming
                && !ch.abandoned
                && now.saturating_duration_since(ch.opened_at) >= timeout
            {
                ch.abandoned = true;
                expired.push(id);
            }
        }
        for id in expired {
            self.events.push_back(Event::ChannelOpenTimedOut {
                channel: ChannelId(id),
            });
        }
    }

    // ---- output -----------------------------------------------------------------------------

    /// The next message to write to the MEI client (one message per write).
    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Mux::handle_timeout`] should next be called, if anything waits on time.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.channels
            .values()
            .filter(|c| c.state == ChannelState::Opening && !c.incoming && !c.abandoned)
            .map(|c| c.opened_at + self.config.open_timeout)
            .min()
    }

    // ---- queries ----------------------------------------------------------------------------

    /// Both PROTOCOLVERSIONs exchanged and no DISCONNECT since.
    pub fn is_established(&self) -> bool {
        self.session == Session::Agreed
    }

    /// The agreed (major, minor): the lower of ours and the peer's.
    pub fn agreed_version(&self) -> Option<(u32, u32)> {
        self.agreed
    }

    /// The peer's last PROTOCOLVERSION.
    pub fn peer_version(&self) -> Option<ProtocolVersion> {
        self.peer_version
    }

    /// Forwards in effect in this session, in the order they were bound.
    pub fn forwards(&self) -> &[Forward] {
        &self.forwards
    }

    /// The first complete port pair of this session, if any.
    pub fn port_pair(&self) -> Option<PortPair> {
        self.pairs_bound.first().copied()
    }

    /// When the last message from the peer was handled.
    pub fn last_activity(&self) -> Option<Instant> {
        self.last_activity
    }

    pub fn channel_state(&self, channel: ChannelId) -> Option<ChannelState> {
        self.visible(channel).map(|c| c.state)
    }

    /// Channels the application can see (not counting timed-out opens still holding a number).
    pub fn channel_count(&self) -> usize {
        self.channels.values().filter(|c| !c.abandoned).count()
    }

    /// Bytes we may still send on the channel (the peer's window).
    pub fn send_window(&self, channel: ChannelId) -> Option<u32> {
        self.visible(channel).map(|c| c.tx_window)
    }

    /// Bytes queued by [`Mux::send`] that wait for window.
    pub fn buffered(&self, channel: ChannelId) -> Option<usize> {
        self.visible(channel).map(|c| c.tx_buf.len())
    }

    /// Bytes the peer may still send before we [`Mux::consume`].
    pub fn receive_window(&self, channel: ChannelId) -> Option<u32> {
        self.visible(channel).map(|c| c.rx_window)
    }

    /// The peer's number for the channel (the recipient of what we send), once known.
    pub fn peer_channel(&self, channel: ChannelId) -> Option<u32> {
        self.visible(channel)
            .filter(|c| c.incoming || c.state != ChannelState::Opening)
            .map(|c| c.peer)
    }

    // ---- internals --------------------------------------------------------------------------

    fn visible(&self, channel: ChannelId) -> Option<&Channel> {
        self.channels.get(&channel.0).filter(|c| !c.abandoned)
    }

    fn visible_mut(&mut self, channel: ChannelId) -> Result<&mut Channel, MuxError> {
        self.channels
            .get_mut(&channel.0)
            .filter(|c| !c.abandoned)
            .ok_or(MuxError::UnknownChannel(channel))
    }

    fn awaiting(&mut self, channel: ChannelId) -> Result<&mut Channel, MuxError> {
        let ch = self.visible_mut(channel)?;
        if ch.state != ChannelState::AwaitingAccept {
            return Err(MuxError::NotAwaitingAccept(channel));
        }
        Ok(ch)
    }

    fn ignore(&mut self, message: &'static str, recipient: Option<u32>, why: &'static str) {
        self.events.push_back(Event::Ignored {
            message,
            recipient,
            why,
        });
    }

    fn alloc_id(&mut self) -> Option<u32> {
        let max = self.config.max_channels;
        match self.config.role {
            Role::Firmware => (0..max).find(|id| !self.channels.contains_key(id)),
            Role::Host => {
                for _ in 0..max {
                    self.last_host_id = if self.last_host_id >= max {
                        1
                    } else {
                        self.last_host_id + 1
                    };
                    if !self.channels.contains_key(&self.last_host_id) {
                        return Some(self.last_host_id);
                    }
                }
                None
            }
        }
    }

    /// Forgets everything of the current session; returns the channels the application knew.
    fn reset_session(&mut self) -> Vec<ChannelId> {
        let closed = self
            .channels
            .iter()
            .filter(|(_, c)| !c.abandoned)
            .map(|(&id, _)| ChannelId(id))
            .collect();
        self.channels.clear();
        self.forwards.clear();
        self.pairs_bound.clear();
        self.pending_global.clear();
        self.pending_services.clear();
        self.agreed = None;
        closed
    }

    /// Sends DISCONNECT(reason) and kills the session (LMS behaviour on protocol errors).
    fn fail(&mut self, reason: DisconnectReason, detail: String) {
        let closed = self.reset_session();
        self.session = Session::Disconnected;
        self.version_outstanding = false;
        self.may_echo = false;
        self.transmit.clear();
        self.transmit.push_back(Message::Disconnect { reason });
        self.events.push_back(Event::Disconnected {
            reason,
            by_peer: false,
            detail,
            closed,
        });
    }

    fn on_version(&mut self, pv: ProtocolVersion) {
        if pv.major < 1 {
            // LMS accepts only ≥ 1.0 (transport.md §5.2 step 3).
            self.peer_version = Some(pv);
            return self.fail(
                DisconnectReason::ProtocolVersionNotSupported,
                format!("peer protocol version {}.{} < 1.0", pv.major, pv.minor),
            );
        }
        if self.version_outstanding {
            self.version_outstanding = false;
            return self.agree(pv);
        }
        if self.may_echo {
            self.may_echo = false;
            return self.ignore(
                "APF_PROTOCOLVERSION",
                None,
                "echo of the version we answered with",
            );
        }
        if self.config.role == Role::Firmware && self.session == Session::Agreed {
            // The firmware's APF session lives as long as the MEI connection: a host version on
            // an agreed session is neither answered nor a restart. rpc-go echoes every version
            // it receives, and on real firmware its handshake runs once (rpc-go issue #1119's
            // trace: version, echo, then the service request); answering or restarting loops
            // with it forever. UNCONFIRMED beyond that trace (docs/simulator.md).
            self.peer_version = Some(pv);
            return self.ignore(
                "APF_PROTOCOLVERSION",
                None,
                "the firmware keeps its session until the host reconnects",
            );
        }
        if self.session == Session::Agreed {
            let closed = self.reset_session();
            self.transmit.clear();
            self.events.push_back(Event::SessionRestarted { closed });
        }
        self.transmit
            .push_back(Message::ProtocolVersion(self.config.version));
        self.may_echo = true;
        self.agree(pv);
    }

    fn agree(&mut self, pv: ProtocolVersion) {
        let ours = (self.config.version.major, self.config.version.minor);
        let agreed = ours.min((pv.major, pv.minor));
        self.session = Session::Agreed;
        self.agreed = Some(agreed);
        self.peer_version = Some(pv);
        self.events
            .push_back(Event::VersionAgreed { agreed, peer: pv });
        if self.config.role == Role::Firmware {
            self.pending_services = self.config.services.clone();
            for service in self.config.services.clone() {
                self.transmit.push_back(Message::ServiceRequest { service });
            }
            if self.config.services.is_empty() {
                self.advertise_ports();
            }
        }
    }

    fn advertise_ports(&mut self) {
        for port in self.config.advertised_ports.clone() {
            self.global_request(
                GlobalRequest::TcpipForward {
                    address: self.config.forward_bind_address.clone(),
                    port,
                },
                true,
            );
        }
    }

    fn on_service_accept(&mut self, service: String) {
        let Some(i) = self.pending_services.iter().position(|s| *s == service) else {
            return self.ignore("APF_SERVICE_ACCEPT", None, "service was not requested");
        };
        self.pending_services.remove(i);
        self.events.push_back(Event::ServiceAccepted {
            service: service.clone(),
        });
        if service == SERVICE_PFWD {
            self.advertise_ports();
        }
    }

    fn on_global_request(&mut self, want_reply: bool, request: GlobalRequest) {
        let reply = match &request {
            GlobalRequest::TcpipForward { address, port } => {
                self.bind(address.clone(), *port);
                Message::RequestSuccess { port: Some(*port) }
            }
            GlobalRequest::CancelTcpipForward { address, port } => {
                // rpc-go answers every cancel with a bare REQUEST_SUCCESS.
                self.unbind(address.clone(), *port);
                Message::RequestSuccess { port: None }
            }
            GlobalRequest::UdpSendTo { .. } => {
                self.events.push_back(Event::UdpSendTo {
                    request: request.clone(),
                });
                Message::RequestFailure
            }
            GlobalRequest::Other { .. } => {
                self.ignore("APF_GLOBAL_REQUEST", None, "unknown request name");
                Message::RequestFailure
            }
        };
        if want_reply {
            self.transmit.push_back(reply);
        }
    }

    fn on_request_reply(&mut self, name: &'static str, ok: bool) {
        let Some(request) = self.pending_global.pop_front() else {
            return self.ignore(name, None, "no global request is waiting for a reply");
        };
        match (ok, request) {
            (true, GlobalRequest::TcpipForward { address, port }) => self.bind(address, port),
            (true, GlobalRequest::CancelTcpipForward { address, port }) => {
                self.unbind(address, port)
            }
            (true, _) => {}
            (false, request) => self
                .events
                .push_back(Event::GlobalRequestFailed { request }),
        }
    }

    fn bind(&mut self, address: String, port: u32) {
        let forward = Forward { address, port };
        if !self.forwards.contains(&forward) {
            self.forwards.push(forward.clone());
        }
        self.events.push_back(Event::PortForwarded(forward));
        for pair in PAIRS {
            let bound = |p: u32| self.forwards.iter().any(|f| f.port == p);
            if bound(pair.management)
                && bound(pair.redirection)
                && !self.pairs_bound.contains(&pair)
            {
                self.pairs_bound.push(pair);
                self.events.push_back(Event::PortPairBound(pair));
            }
        }
    }

    fn unbind(&mut self, address: String, port: u32) {
        let forward = Forward { address, port };
        self.forwards.retain(|f| *f != forward);
        self.pairs_bound
            .retain(|p| p.management != port && p.redirection != port);
        self.events.push_back(Event::PortForwardCancelled(forward));
    }

    fn on_channel_open(&mut self, open: ChannelOpen, now: Instant) {
        let refuse = if !self
            .config
            .accept_channel_types
            .contains(&open.channel_type)
        {
            Some(OpenFailureReason::UnknownChannelType)
        } else if self.config.role == Role::Firmware
            && !self.config.advertised_ports.contains(&open.connected_port)
        {
            Some(OpenFailureReason::ConnectFailed)
        } else {
            None
        };
        let id = match refuse {
            Some(_) => None,
            None => self.alloc_id(),
        };
        let Some(id) = id else {
            let reason = refuse.unwrap_or(OpenFailureReason::ResourceShortage);
            self.transmit.push_back(Message::ChannelOpenFailure {
                recipient: open.sender,
                reason,
            });
            self.events
                .push_back(Event::IncomingChannelRefused { open, reason });
            return;
        };
        self.channels.insert(
            id,
            Channel {
                state: ChannelState::AwaitingAccept,
                incoming: true,
                peer: open.sender,
                port: open.connected_port,
                tx_window: open.window,
                tx_buf: VecDeque::new(),
                rx_window: self.config.initial_window,
                rx_unconsumed: 0,
                close_pending: false,
                opened_at: now,
                abandoned: false,
            },
        );
        if self.config.auto_accept {
            // Cannot fail: the channel was inserted as AwaitingAccept just above.
            let _ = self.accept_channel(ChannelId(id));
        } else {
            self.events.push_back(Event::ChannelRequested {
                channel: ChannelId(id),
                open,
            });
        }
    }

    fn on_open_confirmation(&mut self, recipient: u32, sender: u32, window: u32) {
        let Some(ch) = self
            .channels
            .get_mut(&recipient)
            .filter(|c| c.state == ChannelState::Opening && !c.incoming)
        else {
            return self.ignore(
                "APF_CHANNEL_OPEN_CONFIRMATION",
                Some(recipient),
                "no channel of ours is opening with this number",
            );
        };
        ch.peer = sender;
        ch.tx_window = window;
        if ch.abandoned {
            // Too late for the application, but the firmware now holds a slot: free it.
            ch.state = ChannelState::Closing;
            self.transmit
                .push_back(Message::ChannelClose { recipient: sender });
            return;
        }
        ch.state = ChannelState::Open;
        let port = ch.port;
        self.events.push_back(Event::ChannelOpened {
            channel: ChannelId(recipient),
            port,
            incoming: false,
        });
        self.flush(recipient);
    }

    fn on_open_failure(&mut self, recipient: u32, reason: OpenFailureReason) {
        let opening = self
            .channels
            .get(&recipient)
            .is_some_and(|c| c.state == ChannelState::Opening && !c.incoming);
        if !opening {
            return self.ignore(
                "APF_CHANNEL_OPEN_FAILURE",
                Some(recipient),
                "no channel of ours is opening with this number",
            );
        }
        if let Some(ch) = self.channels.remove(&recipient) {
            if !ch.abandoned {
                self.events.push_back(Event::ChannelOpenFailed {
                    channel: ChannelId(recipient),
                    reason,
                });
            }
        }
    }

    fn on_window_adjust(&mut self, recipient: u32, bytes: u32) {
        let Some(ch) = self.channels.get_mut(&recipient).filter(|c| {
            !c.abandoned && matches!(c.state, ChannelState::Open | ChannelState::Closing)
        }) else {
            return self.ignore(
                "APF_CHANNEL_WINDOW_ADJUST",
                Some(recipient),
                "no open channel with this number",
            );
        };
        ch.tx_window = ch.tx_window.saturating_add(bytes);
        self.flush(recipient);
    }

    fn on_data(&mut self, recipient: u32, data: Vec<u8>) {
        let Some(ch) = self
            .channels
            .get_mut(&recipient)
            .filter(|c| matches!(c.state, ChannelState::Open | ChannelState::Closing))
        else {
            return self.ignore(
                "APF_CHANNEL_DATA",
                Some(recipient),
                "no open channel with this number",
            );
        };
        if data.len() as u64 > u64::from(ch.rx_window) {
            let detail = format!(
                "peer sent {} bytes on channel {recipient}, its window was {}",
                data.len(),
                ch.rx_window
            );
            return self.fail(DisconnectReason::ProtocolError, detail);
        }
        ch.rx_window -= data.len() as u32;
        // After our CLOSE the application is gone: the bytes are dropped, not delivered.
        if ch.state == ChannelState::Open && !ch.abandoned && !data.is_empty() {
            ch.rx_unconsumed += data.len() as u64;
            self.events.push_back(Event::Data {
                channel: ChannelId(recipient),
                data,
            });
        }
    }

    fn on_close(&mut self, recipient: u32) {
        let state = self.channels.get(&recipient).map(|c| c.state);
        match state {
            Some(ChannelState::Closing) => {
                let ch = self.channels.remove(&recipient);
                if ch.is_some_and(|c| !c.abandoned) {
                    self.events.push_back(Event::ChannelClosed {
                        channel: ChannelId(recipient),
                        by_peer: false,
                    });
                }
            }
            Some(ChannelState::Open) => {
                if let Some(ch) = self.channels.remove(&recipient) {
                    self.transmit
                        .push_back(Message::ChannelClose { recipient: ch.peer });
                }
                self.events.push_back(Event::ChannelClosed {
                    channel: ChannelId(recipient),
                    by_peer: true,
                });
            }
            // rpc-go acks only channels it saw confirmed and ignores stale closes (§5.2 step 11).
            Some(_) => self.ignore(
                "APF_CHANNEL_CLOSE",
                Some(recipient),
                "channel is not confirmed yet",
            ),
            None => self.ignore(
                "APF_CHANNEL_CLOSE",
                Some(recipient),
                "no channel with this number",
            ),
        }
    }

    /// Moves buffered bytes out as far as the peer's window and the MTU allow; sends the pending
    /// CHANNEL_CLOSE once the buffer is empty.
    fn flush(&mut self, id: u32) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        if ch.state != ChannelState::Open {
            return;
        }
        let max = self.config.mtu - CHANNEL_DATA_HEADER_LEN;
        while !ch.tx_buf.is_empty() && ch.tx_window > 0 {
            let n = ch.tx_buf.len().min(ch.tx_window as usize).min(max);
            let data: Vec<u8> = ch.tx_buf.drain(..n).collect();
            ch.tx_window -= n as u32;
            self.transmit.push_back(Message::ChannelData {
                recipient: ch.peer,
                data,
            });
        }
        if ch.tx_buf.is_empty() && ch.close_pending {
            ch.state = ChannelState::Closing;
            self.transmit
                .push_back(Message::ChannelClose { recipient: ch.peer });
        }
    }
}
