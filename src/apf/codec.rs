//! APF wire codec: one [`Message`] per MEI message, every layout from transport.md §5.1.
//!
//! APF integers are **big-endian** (unlike AMTHI); a "string" is a u32 BE length followed by that
//! many bytes, no NUL. Decoding never panics: every read is bounds-checked and a failure names the
//! field and the offset it was read at.

use crate::code_enum::code_enum;

use crate::secret::Secret;

/// Message type numbers (transport.md §5.1).
pub mod kind {
    pub const DISCONNECT: u8 = 1;
    pub const SERVICE_REQUEST: u8 = 5;
    pub const SERVICE_ACCEPT: u8 = 6;
    pub const USERAUTH_REQUEST: u8 = 50;
    pub const USERAUTH_FAILURE: u8 = 51;
    pub const USERAUTH_SUCCESS: u8 = 52;
    pub const GLOBAL_REQUEST: u8 = 80;
    pub const REQUEST_SUCCESS: u8 = 81;
    pub const REQUEST_FAILURE: u8 = 82;
    pub const CHANNEL_OPEN: u8 = 90;
    pub const CHANNEL_OPEN_CONFIRMATION: u8 = 91;
    pub const CHANNEL_OPEN_FAILURE: u8 = 92;
    pub const CHANNEL_WINDOW_ADJUST: u8 = 93;
    pub const CHANNEL_DATA: u8 = 94;
    pub const CHANNEL_CLOSE: u8 = 97;
    pub const PROTOCOLVERSION: u8 = 192;
    pub const KEEPALIVE_REQUEST: u8 = 208;
    pub const KEEPALIVE_REPLY: u8 = 209;
    pub const KEEPALIVE_OPTIONS_REQUEST: u8 = 210;
    pub const KEEPALIVE_OPTIONS_REPLY: u8 = 211;

    /// The firmware's spelling of a message type, `"UNKNOWN"` for any other number.
    pub fn name(kind: u8) -> &'static str {
        match kind {
            DISCONNECT => "APF_DISCONNECT",
            SERVICE_REQUEST => "APF_SERVICE_REQUEST",
            SERVICE_ACCEPT => "APF_SERVICE_ACCEPT",
            USERAUTH_REQUEST => "APF_USERAUTH_REQUEST",
            USERAUTH_FAILURE => "APF_USERAUTH_FAILURE",
            USERAUTH_SUCCESS => "APF_USERAUTH_SUCCESS",
            GLOBAL_REQUEST => "APF_GLOBAL_REQUEST",
            REQUEST_SUCCESS => "APF_REQUEST_SUCCESS",
            REQUEST_FAILURE => "APF_REQUEST_FAILURE",
            CHANNEL_OPEN => "APF_CHANNEL_OPEN",
            CHANNEL_OPEN_CONFIRMATION => "APF_CHANNEL_OPEN_CONFIRMATION",
            CHANNEL_OPEN_FAILURE => "APF_CHANNEL_OPEN_FAILURE",
            CHANNEL_WINDOW_ADJUST => "APF_CHANNEL_WINDOW_ADJUST",
            CHANNEL_DATA => "APF_CHANNEL_DATA",
            CHANNEL_CLOSE => "APF_CHANNEL_CLOSE",
            PROTOCOLVERSION => "APF_PROTOCOLVERSION",
            KEEPALIVE_REQUEST => "APF_KEEPALIVE_REQUEST",
            KEEPALIVE_REPLY => "APF_KEEPALIVE_REPLY",
            KEEPALIVE_OPTIONS_REQUEST => "APF_KEEPALIVE_OPTIONS_REQUEST",
            KEEPALIVE_OPTIONS_REPLY => "APF_KEEPALIVE_OPTIONS_REPLY",
            _ => "UNKNOWN",
        }
    }
}

/// Service names (transport.md §5.1 "Constants").
pub const SERVICE_PFWD: &str = "pfwd@amt.intel.com";
pub const SERVICE_AUTH: &str = "auth@amt.intel.com";
/// Channel type for a host TCP client reaching an AMT port (host → firmware).
pub const CHANNEL_FORWARDED_TCPIP: &str = "forwarded-tcpip";
/// Channel type for AMT connecting out to a local listener (firmware → host).
pub const CHANNEL_DIRECT_TCPIP: &str = "direct-tcpip";
/// Global request names (transport.md §5.1 "GLOBAL_REQUEST bodies").
pub const REQUEST_TCPIP_FORWARD: &str = "tcpip-forward";
pub const REQUEST_CANCEL_TCPIP_FORWARD: &str = "cancel-tcpip-forward";
pub const REQUEST_UDP_SEND_TO: &str = "udp-send-to@amt.intel.com";
/// The reserved u32 that CHANNEL_OPEN and CHANNEL_OPEN_CONFIRMATION carry.
pub const CHANNEL_RESERVED: u32 = 0xFFFF_FFFF;
/// PROTOCOLVERSION is always this long: type, major, minor, trigger, UUID[16], reserved[64].
pub const PROTOCOLVERSION_LEN: usize = 93;
/// Per-message overhead of CHANNEL_DATA (type, recipient, length): payload ≤ MTU − 9.
pub const CHANNEL_DATA_HEADER_LEN: usize = 9;

// The reason maps' names are LMS's spelling, without its prefix.

code_enum! {
    /// APF_DISCONNECT reason (transport.md §5.1 "disconnect reasons").
    DisconnectReason {
        HostNotAllowedToConnect = 1 => "HOST_NOT_ALLOWED_TO_CONNECT",
        ProtocolError = 2 => "PROTOCOL_ERROR",
        KeyExchangeFailed = 3 => "KEY_EXCHANGE_FAILED",
        Reserved = 4 => "RESERVED",
        MacError = 5 => "MAC_ERROR",
        CompressionError = 6 => "COMPRESSION_ERROR",
        ServiceNotAvailable = 7 => "SERVICE_NOT_AVAILABLE",
        ProtocolVersionNotSupported = 8 => "PROTOCOL_VERSION_NOT_SUPPORTED",
        HostKeyNotVerifiable = 9 => "HOST_KEY_NOT_VERIFIABLE",
        ConnectionLost = 10 => "CONNECTION_LOST",
        ByApplication = 11 => "BY_APPLICATION",
        TooManyConnections = 12 => "TOO_MANY_CONNECTIONS",
        AuthCancelledByUser = 13 => "AUTH_CANCELLED_BY_USER",
        NoMoreAuthMethodsAvailable = 14 => "NO_MORE_AUTH_METHODS_AVAILABLE",
        IllegalUserName = 15 => "ILLEGAL_USER_NAME",
    }
}

code_enum! {
    /// APF_CHANNEL_OPEN_FAILURE reason (transport.md §5.1 "open-failure reasons").
    OpenFailureReason {
        AdministrativelyProhibited = 1 => "ADMINISTRATIVELY_PROHIBITED",
        ConnectFailed = 2 => "CONNECT_FAILED",
        UnknownChannelType = 3 => "UNKNOWN_CHANNEL_TYPE",
        ResourceShortage = 4 => "RESOURCE_SHORTAGE",
    }
}

code_enum! {
    /// PROTOCOLVERSION trigger reason (transport.md §5.1 "trigger reasons"). rpc-go sends 9, which
    /// no source names: it decodes as `Unknown(9)`.
    TriggerReason {
        UserInitiated = 1 => "USER_INITIATED_REQUEST",
        Alert = 2 => "ALERT_REQUEST",
        HitProvisioning = 3 => "HIT_PROVISIONING_REQUEST",
        Periodic = 4 => "PERIODIC_REQUEST",
        LmeRequest = 254 => "LME_REQUEST",
    }
}

/// APF_PROTOCOLVERSION body (transport.md §5.1, §5.2 step 2). The 64 reserved bytes are written
/// as zeros and not kept on decode.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ProtocolVersion {
    pub major: u32,
    pub minor: u32,
    pub trigger: TriggerReason,
    pub uuid: [u8; 16],
}

impl ProtocolVersion {
    /// What rpc-go sends first: 1.0, trigger 9, zero UUID (rpc-go.md §4.4).
    pub fn rpc_go() -> ProtocolVersion {
        ProtocolVersion {
            major: 1,
            minor: 0,
            trigger: TriggerReason::Unknown(9),
            uuid: [0; 16],
        }
    }
}

/// APF_CHANNEL_OPEN body (transport.md §5.1). The reserved u32 is written as
/// [`CHANNEL_RESERVED`] and not kept on decode.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ChannelOpen {
    pub channel_type: String,
    pub sender: u32,
    pub window: u32,
    pub connected_address: String,
    pub connected_port: u32,
    pub originator_address: String,
    pub originator_port: u32,
}

impl ChannelOpen {
    /// rpc-go's open (transport.md §5.2 step 7): forwarded-tcpip, window 4096, `::1`:`port`
    /// from `::1`:123.
    pub fn forwarded(sender: u32, port: u32) -> ChannelOpen {
        ChannelOpen {
            channel_type: CHANNEL_FORWARDED_TCPIP.into(),
            sender,
            window: 4096,
            connected_address: "::1".into(),
            connected_port: port,
            originator_address: "::1".into(),
            originator_port: 123,
        }
    }
}

/// APF_GLOBAL_REQUEST bodies (transport.md §5.1 "GLOBAL_REQUEST bodies").
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum GlobalRequest {
    /// `tcpip-forward`: the firmware asks the host to expose `port`.
    TcpipForward { address: String, port: u32 },
    /// `cancel-tcpip-forward`.
    CancelTcpipForward { address: String, port: u32 },
    /// `udp-send-to@amt.intel.com`.
    UdpSendTo {
        address: String,
        port: u32,
        originator_address: String,
        originator_port: u32,
        data: Vec<u8>,
    },
    /// Any other request: its name and the bytes after want-reply, untouched.
    Other { name: String, body: Vec<u8> },
}

impl GlobalRequest {
    pub fn name(&self) -> &str {
        match self {
            GlobalRequest::TcpipForward { .. } => REQUEST_TCPIP_FORWARD,
            GlobalRequest::CancelTcpipForward { .. } => REQUEST_CANCEL_TCPIP_FORWARD,
            GlobalRequest::UdpSendTo { .. } => REQUEST_UDP_SEND_TO,
            GlobalRequest::Other { name, .. } => name,
        }
    }
}

/// The method part of APF_USERAUTH_REQUEST (transport.md §5.1).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum UserauthMethod {
    /// `none`.
    None,
    /// `password`: u8 0 (not a password change), then the password string.
    Password(Secret),
    /// Any other method name, with the bytes that follow it untouched.
    Other { name: String, body: Vec<u8> },
}

/// One APF message (transport.md §5.1). `Unknown` keeps any other type number and its body.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    /// 7 bytes (LMS form): reason, u16 reserved.
    Disconnect {
        reason: DisconnectReason,
    },
    ServiceRequest {
        service: String,
    },
    ServiceAccept {
        service: String,
    },
    UserauthRequest {
        user: String,
        service: String,
        method: UserauthMethod,
    },
    UserauthFailure {
        methods: String,
        partial_success: u8,
    },
    UserauthSuccess,
    GlobalRequest {
        want_reply: bool,
        request: GlobalRequest,
    },
    /// `port` is present in the reply to `tcpip-forward` (5 bytes), absent otherwise (1 byte).
    RequestSuccess {
        port: Option<u32>,
    },
    RequestFailure,
    ChannelOpen(ChannelOpen),
    /// `recipient` is the opener's channel, `sender` the confirmer's own.
    ChannelOpenConfirmation {
        recipient: u32,
        sender: u32,
        window: u32,
    },
    ChannelOpenFailure {
        recipient: u32,
        reason: OpenFailureReason,
    },
    WindowAdjust {
        recipient: u32,
        bytes: u32,
    },
    ChannelData {
        recipient: u32,
        data: Vec<u8>,
    },
    ChannelClose {
        recipient: u32,
    },
    ProtocolVersion(ProtocolVersion),
    KeepaliveRequest {
        cookie: u32,
    },
    KeepaliveReply {
        cookie: u32,
    },
    KeepaliveOptionsRequest {
        interval: u32,
        timeout: u32,
    },
    KeepaliveOptionsReply {
        interval: u32,
        timeout: u32,
    },
    Unknown {
        kind: u8,
        body: Vec<u8>,
    },
}

/// Why bytes are not an APF message. Offsets count from the type byte (offset 0).
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty APF message")]
    Empty,
    #[error("{message}: {field} needs {needed} bytes at offset {offset}, only {available} left")]
    Truncated {
        message: &'static str,
        field: &'static str,
        offset: usize,
        needed: usize,
        available: usize,
    },
    #[error(
        "{message}: {field} declares {declared} bytes at offset {offset}, only {available} left"
    )]
    LengthTooLong {
        message: &'static str,
        field: &'static str,
        offset: usize,
        declared: u32,
        available: usize,
    },
    #[error("{message}: {field} at offset {offset} is not UTF-8")]
    NotUtf8 {
        message: &'static str,
        field: &'static str,
        offset: usize,
    },
    #[error("{message}: {count} unexpected bytes after the last field, at offset {offset}")]
    TrailingBytes {
        message: &'static str,
        offset: usize,
        count: usize,
    },
}

/// A big-endian read cursor over one message; every read names the message and field.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    message: &'static str,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                message: self.message,
                field,
                offset: self.pos,
                needed: n,
                available: self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// u32 BE length then that many bytes; a length beyond the message is rejected before use.
    fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let at = self.pos;
        let declared = self.u32(field)?;
        if declared as u64 > self.remaining() as u64 {
            return Err(DecodeError::LengthTooLong {
                message: self.message,
                field,
                offset: at,
                declared,
                available: self.remaining(),
            });
        }
        self.take(declared as usize, field)
    }

    fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let at = self.pos;
        let b = self.bytes(field)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::NotUtf8 {
            message: self.message,
            field,
            offset: at,
        })
    }

    fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    fn end(&self) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(DecodeError::TrailingBytes {
                message: self.message,
                offset: self.pos,
                count: self.remaining(),
            });
        }
        Ok(())
    }
}

fn put_u32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_be_bytes());
}

fn put_bytes(v: &mut Vec<u8>, b: &[u8]) {
    put_u32(v, b.len() as u32);
    v.extend_from_slice(b);
}

fn put_str(v: &mut Vec<u8>, s: &str) {
    put_bytes(v, s.as_bytes());
}

impl Message {
    /// The type number this message is sent with.
    pub fn kind(&self) -> u8 {
        match self {
            Message::Disconnect { .. } => kind::DISCONNECT,
            Message::ServiceRequest { .. } => kind::SERVICE_REQUEST,
            Message::ServiceAccept { .. } => kind::SERVICE_ACCEPT,
            Message::UserauthRequest { .. } => kind::USERAUTH_REQUEST,
            Message::UserauthFailure { .. } => kind::USERAUTH_FAILURE,
            Message::UserauthSuccess => kind::USERAUTH_SUCCESS,
            Message::GlobalRequest { .. } => kind::GLOBAL_REQUEST,
            Message::RequestSuccess { .. } => kind::REQUEST_SUCCESS,
            Message::RequestFailure => kind::REQUEST_FAILURE,
            Message::ChannelOpen(_) => kind::CHANNEL_OPEN,
            Message::ChannelOpenConfirmation { .. } => kind::CHANNEL_OPEN_CONFIRMATION,
            Message::ChannelOpenFailure { .. } => kind::CHANNEL_OPEN_FAILURE,
            Message::WindowAdjust { .. } => kind::CHANNEL_WINDOW_ADJUST,
            Message::ChannelData { .. } => kind::CHANNEL_DATA,
            Message::ChannelClose { .. } => kind::CHANNEL_CLOSE,
            Message::ProtocolVersion(_) => kind::PROTOCOLVERSION,
            Message::KeepaliveRequest { .. } => kind::KEEPALIVE_REQUEST,
            Message::KeepaliveReply { .. } => kind::KEEPALIVE_REPLY,
            Message::KeepaliveOptionsRequest { .. } => kind::KEEPALIVE_OPTIONS_REQUEST,
            Message::KeepaliveOptionsReply { .. } => kind::KEEPALIVE_OPTIONS_REPLY,
            Message::Unknown { kind, .. } => *kind,
        }
    }

    /// The firmware's name for this message's type.
    pub fn name(&self) -> &'static str {
        kind::name(self.kind())
    }

    /// The wire bytes: exactly one MEI message.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.kind()];
        match self {
            Message::Disconnect { reason } => {
                put_u32(&mut v, reason.code());
                v.extend_from_slice(&[0, 0]);
            }
            Message::ServiceRequest { service } | Message::ServiceAccept { service } => {
                put_str(&mut v, service)
            }
            Message::UserauthRequest {
                user,
                service,
                method,
            } => {
                put_str(&mut v, user);
                put_str(&mut v, service);
                match method {
                    UserauthMethod::None => put_str(&mut v, "none"),
                    UserauthMethod::Password(p) => {
                        put_str(&mut v, "password");
                        v.push(0);
                        put_str(&mut v, p.expose());
                    }
                    UserauthMethod::Other { name, body } => {
                        put_str(&mut v, name);
                        v.extend_from_slice(body);
                    }
                }
            }
            Message::UserauthFailure {
                methods,
                partial_success,
            } => {
                put_str(&mut v, methods);
                v.push(*partial_success);
            }
            Message::UserauthSuccess | Message::RequestFailure => {}
            Message::GlobalRequest {
                want_reply,
                request,
            } => {
                put_str(&mut v, request.name());
                v.push(u8::from(*want_reply));
                match request {
                    GlobalRequest::TcpipForward { address, port }
                    | GlobalRequest::CancelTcpipForward { address, port } => {
                        put_str(&mut v, address);
                        put_u32(&mut v, *port);
                    }
                    GlobalRequest::UdpSendTo {
                        address,
                        port,
                        originator_address,
                        originator_port,
                        data,
                    } => {
                        put_str(&mut v, address);
                        put_u32(&mut v, *port);
                        put_str(&mut v, originator_address);
                        put_u32(&mut v, *originator_port);
                        put_bytes(&mut v, data);
                    }
                    GlobalRequest::Other { body, .. } => v.extend_from_slice(body),
                }
            }
            Message::RequestSuccess { port } => {
                if let Some(p) = port {
                    put_u32(&mut v, *p);
                }
            }
            Message::ChannelOpen(o) => {
                put_str(&mut v, &o.channel_type);
                put_u32(&mut v, o.sender);
                put_u32(&mut v, o.window);
                put_u32(&mut v, CHANNEL_RESERVED);
                put_str(&mut v, &o.connected_address);
                put_u32(&mut v, o.connected_port);
                put_str(&mut v, &o.originator_address);
                put_u32(&mut v, o.originator_port);
            }
            Message::ChannelOpenConfirmation {
                recipient,
                sender,
                window,
            } => {
                put_u32(&mut v, *recipient);
                put_u32(&mut v, *sender);
                put_u32(&mut v, *window);
                put_u32(&mut v, CHANNEL_RESERVED);
            }
            Message::ChannelOpenFailure { recipient, reason } => {
                put_u32(&mut v, *recipient);
                put_u32(&mut v, reason.code());
                put_u32(&mut v, 0);
                put_u32(&mut v, 0);
            }
            Message::WindowAdjust { recipient, bytes } => {
                put_u32(&mut v, *recipient);
                put_u32(&mut v, *bytes);
            }
            Message::ChannelData { recipient, data } => {
                put_u32(&mut v, *recipient);
                put_bytes(&mut v, data);
            }
            Message::ChannelClose { recipient } => put_u32(&mut v, *recipient),
            Message::ProtocolVersion(pv) => {
                put_u32(&mut v, pv.major);
                put_u32(&mut v, pv.minor);
                put_u32(&mut v, pv.trigger.code());
                v.extend_from_slice(&pv.uuid);
                v.extend_from_slice(&[0u8; 64]);
            }
            Message::KeepaliveRequest { cookie } | Message::KeepaliveReply { cookie } => {
                put_u32(&mut v, *cookie)
            }
            Message::KeepaliveOptionsRequest { interval, timeout }
            | Message::KeepaliveOptionsReply { interval, timeout } => {
                put_u32(&mut v, *interval);
                put_u32(&mut v, *timeout);
            }
            Message::Unknown { body, .. } => v.extend_from_slice(body),
        }
        v
    }

    /// Parses one whole MEI message. Trailing bytes after the last field are an error, except in
    /// DISCONNECT (whose reserved field differs between implementations) and in bodies kept
    /// opaque (`Unknown`, `GlobalRequest::Other`, `UserauthMethod::Other`).
    pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
        let Some(&k) = buf.first() else {
            return Err(DecodeError::Empty);
        };
        let mut r = Reader {
            buf,
            pos: 1,
            message: kind::name(k),
        };
        let m = match k {
            kind::DISCONNECT => {
                let reason = DisconnectReason::from_u32(r.u32("reason")?);
                // LMS writes a u16 reserved (7 bytes); go-wsman-messages writes a Go `uint`
                // (13 bytes on 64-bit); some peers may send none. Accept all, keep none.
                let _reserved = r.rest();
                Message::Disconnect { reason }
            }
            kind::SERVICE_REQUEST => Message::ServiceRequest {
                service: r.string("service name")?,
            },
            kind::SERVICE_ACCEPT => Message::ServiceAccept {
                service: r.string("service name")?,
            },
            kind::USERAUTH_REQUEST => {
                let user = r.string("user name")?;
                let service = r.string("service name")?;
                let name = r.string("method name")?;
                let method = match name.as_str() {
                    "none" => UserauthMethod::None,
                    "password" => {
                        let _change = r.u8("password-change flag")?;
                        UserauthMethod::Password(Secret::new(r.string("password")?))
                    }
                    _ => UserauthMethod::Other {
                        name,
                        body: r.rest().to_vec(),
                    },
                };
                Message::UserauthRequest {
                    user,
                    service,
                    method,
                }
            }
            kind::USERAUTH_FAILURE => Message::UserauthFailure {
                methods: r.string("method list")?,
                partial_success: r.u8("partial success")?,
            },
            kind::USERAUTH_SUCCESS => Message::UserauthSuccess,
            kind::GLOBAL_REQUEST => {
                let name = r.string("request name")?;
                let want_reply = r.u8("want reply")? != 0;
                let request = match name.as_str() {
                    REQUEST_TCPIP_FORWARD => GlobalRequest::TcpipForward {
                        address: r.string("bind address")?,
                        port: r.u32("port")?,
                    },
                    REQUEST_CANCEL_TCPIP_FORWARD => GlobalRequest::CancelTcpipForward {
                        address: r.string("bind address")?,
                        port: r.u32("port")?,
                    },
                    REQUEST_UDP_SEND_TO => GlobalRequest::UdpSendTo {
                        address: r.string("address")?,
                        port: r.u32("port")?,
                        originator_address: r.string("originator address")?,
                        originator_port: r.u32("originator port")?,
                        data: r.bytes("data")?.to_vec(),
                    },
                    _ => GlobalRequest::Other {
                        name,
                        body: r.rest().to_vec(),
                    },
                };
                Message::GlobalRequest {
                    want_reply,
                    request,
                }
            }
            kind::REQUEST_SUCCESS => Message::RequestSuccess {
                port: if r.remaining() == 0 {
                    None
                } else {
                    Some(r.u32("port")?)
                },
            },
            kind::REQUEST_FAILURE => Message::RequestFailure,
            kind::CHANNEL_OPEN => {
                let channel_type = r.string("channel type")?;
                let sender = r.u32("sender channel")?;
                let window = r.u32("initial window")?;
                let _reserved = r.u32("reserved")?;
                Message::ChannelOpen(ChannelOpen {
                    channel_type,
                    sender,
                    window,
                    connected_address: r.string("connected address")?,
                    connected_port: r.u32("connected port")?,
                    originator_address: r.string("originator address")?,
                    originator_port: r.u32("originator port")?,
                })
            }
            kind::CHANNEL_OPEN_CONFIRMATION => {
                let recipient = r.u32("recipient channel")?;
                let sender = r.u32("sender channel")?;
                let window = r.u32("initial window")?;
                let _reserved = r.u32("reserved")?;
                Message::ChannelOpenConfirmation {
                    recipient,
                    sender,
                    window,
                }
            }
            kind::CHANNEL_OPEN_FAILURE => {
                let recipient = r.u32("recipient channel")?;
                let reason = OpenFailureReason::from_u32(r.u32("reason")?);
                let _reserved = r.u32("reserved")?;
                let _reserved2 = r.u32("reserved2")?;
                Message::ChannelOpenFailure { recipient, reason }
            }
            kind::CHANNEL_WINDOW_ADJUST => Message::WindowAdjust {
                recipient: r.u32("recipient channel")?,
                bytes: r.u32("bytes to add")?,
            },
            kind::CHANNEL_DATA => Message::ChannelData {
                recipient: r.u32("recipient channel")?,
                data: r.bytes("data")?.to_vec(),
            },
            kind::CHANNEL_CLOSE => Message::ChannelClose {
                recipient: r.u32("recipient channel")?,
            },
            kind::PROTOCOLVERSION => {
                let major = r.u32("major version")?;
                let minor = r.u32("minor version")?;
                let trigger = TriggerReason::from_u32(r.u32("trigger reason")?);
                let mut uuid = [0u8; 16];
                uuid.copy_from_slice(r.take(16, "UUID")?);
                let _reserved = r.take(64, "reserved")?;
                Message::ProtocolVersion(ProtocolVersion {
                    major,
                    minor,
                    trigger,
                    uuid,
                })
            }
            kind::KEEPALIVE_REQUEST => Message::KeepaliveRequest {
                cookie: r.u32("cookie")?,
            },
            kind::KEEPALIVE_REPLY => Message::KeepaliveReply {
                cookie: r.u32("cookie")?,
            },
            kind::KEEPALIVE_OPTIONS_REQUEST => Message::KeepaliveOptionsRequest {
                interval: r.u32("interval")?,
                timeout: r.u32("timeout")?,
            },
            kind::KEEPALIVE_OPTIONS_REPLY => Message::KeepaliveOptionsReply {
                interval: r.u32("interval")?,
                timeout: r.u32("timeout")?,
            },
            other => Message::Unknown {
                kind: other,
                body: r.rest().to_vec(),
            },
        };
        r.end()?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    /// Joins hand-written pieces; lengths inside are spelled out by the test, not computed.
    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// Encodes to exactly `bytes`, and `bytes` decodes back to the same message.
    fn exact(m: Message, bytes: &[u8]) {
        assert_eq!(m.encode(), bytes, "encoding of {m:?}");
        assert_eq!(
            Message::decode(bytes).unwrap(),
            m,
            "decoding of {bytes:02x?}"
        );
    }

    #[test]
    fn protocolversion_as_rpc_go_sends_it_is_93_bytes() {
        let mut bytes = cat(&[&[192], &[0, 0, 0, 1], &[0, 0, 0, 0], &[0, 0, 0, 9]]);
        bytes.extend_from_slice(&[0; 16]);
        bytes.extend_from_slice(&[0; 64]);
        assert_eq!(bytes.len(), 93);
        exact(Message::ProtocolVersion(ProtocolVersion::rpc_go()), &bytes);
    }

    #[test]
    fn protocolversion_keeps_uuid_and_names_lme_trigger() {
        let uuid = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
        let mut bytes = cat(&[&[192], &[0, 0, 0, 1], &[0, 0, 0, 0], &[0, 0, 0, 254]]);
        bytes.extend_from_slice(&uuid);
        bytes.extend_from_slice(&[0; 64]);
        let pv = ProtocolVersion {
            major: 1,
            minor: 0,
            trigger: TriggerReason::LmeRequest,
            uuid,
        };
        exact(Message::ProtocolVersion(pv), &bytes);
        assert_eq!(TriggerReason::from_u32(254).name(), "LME_REQUEST");
        assert_eq!(TriggerReason::from_u32(9), TriggerReason::Unknown(9));
    }

    #[test]
    fn disconnect_is_7_bytes_lms_form_and_accepts_other_reserved_sizes() {
        exact(
            Message::Disconnect {
                reason: DisconnectReason::ProtocolError,
            },
            &[1, 0, 0, 0, 2, 0, 0],
        );
        // go-wsman-messages' 8-byte Go `uint` reserved, and no reserved at all.
        let go = [1, 0, 0, 0, 11, 0, 0, 0, 0, 0, 0, 0, 0];
        let bare = [1, 0, 0, 0, 11];
        for b in [&go[..], &bare[..]] {
            assert_eq!(
                Message::decode(b).unwrap(),
                Message::Disconnect {
                    reason: DisconnectReason::ByApplication
                }
            );
        }
    }

    #[test]
    fn service_request_and_accept_for_pfwd_are_23_bytes() {
        let bytes = cat(&[&[6], &[0, 0, 0, 18], b"pfwd@amt.intel.com"]);
        assert_eq!(bytes.len(), 23);
        exact(
            Message::ServiceAccept {
                service: SERVICE_PFWD.into(),
            },
            &bytes,
        );
        exact(
            Message::ServiceRequest {
                service: SERVICE_AUTH.into(),
            },
            &cat(&[&[5], &[0, 0, 0, 18], b"auth@amt.intel.com"]),
        );
    }

    #[test]
    fn userauth_messages() {
        exact(
            Message::UserauthRequest {
                user: "admin".into(),
                service: SERVICE_PFWD.into(),
                method: UserauthMethod::Password(Secret::new("pw")),
            },
            &cat(&[
                &[50],
                &[0, 0, 0, 5],
                b"admin",
                &[0, 0, 0, 18],
                b"pfwd@amt.intel.com",
                &[0, 0, 0, 8],
                b"password",
                &[0],
                &[0, 0, 0, 2],
                b"pw",
            ]),
        );
        exact(
            Message::UserauthRequest {
                user: "".into(),
                service: SERVICE_AUTH.into(),
                method: UserauthMethod::None,
            },
            &cat(&[
                &[50],
                &[0, 0, 0, 0],
                &[0, 0, 0, 18],
                b"auth@amt.intel.com",
                &[0, 0, 0, 4],
                b"none",
            ]),
        );
        let failure = cat(&[&[51], &[0, 0, 0, 8], b"password", &[0]]);
        assert_eq!(failure.len(), 14);
        exact(
            Message::UserauthFailure {
                methods: "password".into(),
                partial_success: 0,
            },
            &failure,
        );
        exact(Message::UserauthSuccess, &[52]);
    }

    #[test]
    fn global_requests_typed_and_opaque() {
        exact(
            Message::GlobalRequest {
                want_reply: true,
                request: GlobalRequest::TcpipForward {
                    address: "127.0.0.1".into(),
                    port: 16992,
                },
            },
            &cat(&[
                &[80],
                &[0, 0, 0, 13],
                b"tcpip-forward",
                &[1],
                &[0, 0, 0, 9],
                b"127.0.0.1",
                &[0, 0, 0x42, 0x60],
            ]),
        );
        exact(
            Message::GlobalRequest {
                want_reply: false,
                request: GlobalRequest::CancelTcpipForward {
                    address: "::".into(),
                    port: 623,
                },
            },
            &cat(&[
                &[80],
                &[0, 0, 0, 20],
                b"cancel-tcpip-forward",
                &[0],
                &[0, 0, 0, 2],
                b"::",
                &[0, 0, 0x02, 0x6f],
            ]),
        );
        exact(
            Message::GlobalRequest {
                want_reply: true,
                request: GlobalRequest::UdpSendTo {
                    address: "10.0.0.1".into(),
                    port: 53,
                    originator_address: "::1".into(),
                    originator_port: 5000,
                    data: vec![0xde, 0xad],
                },
            },
            &cat(&[
                &[80],
                &[0, 0, 0, 25],
                b"udp-send-to@amt.intel.com",
                &[1],
                &[0, 0, 0, 8],
                b"10.0.0.1",
                &[0, 0, 0, 53],
                &[0, 0, 0, 3],
                b"::1",
                &[0, 0, 0x13, 0x88],
                &[0, 0, 0, 2],
                &[0xde, 0xad],
            ]),
        );
        exact(
            Message::GlobalRequest {
                want_reply: true,
                request: GlobalRequest::Other {
                    name: "x".into(),
                    body: vec![9, 9],
                },
            },
            &[80, 0, 0, 0, 1, b'x', 1, 9, 9],
        );
    }

    #[test]
    fn request_success_with_and_without_port_and_failure() {
        exact(
            Message::RequestSuccess { port: Some(16993) },
            &[81, 0, 0, 0x42, 0x61],
        );
        exact(Message::RequestSuccess { port: None }, &[81]);
        exact(Message::RequestFailure, &[82]);
        assert!(matches!(
            Message::decode(&[81, 0, 0]),
            Err(DecodeError::Truncated {
                field: "port",
                offset: 1,
                ..
            })
        ));
    }

    #[test]
    fn channel_open_forwarded_tcpip_is_54_bytes_with_ipv6_loopback() {
        let bytes = cat(&[
            &[90],
            &[0, 0, 0, 15],
            b"forwarded-tcpip",
            &[0, 0, 0, 2],
            &[0, 0, 0x10, 0x00],
            &[0xff, 0xff, 0xff, 0xff],
            &[0, 0, 0, 3],
            b"::1",
            &[0, 0, 0x42, 0x60],
            &[0, 0, 0, 3],
            b"::1",
            &[0, 0, 0, 123],
        ]);
        assert_eq!(bytes.len(), 54);
        exact(
            Message::ChannelOpen(ChannelOpen::forwarded(2, 16992)),
            &bytes,
        );
    }

    #[test]
    fn channel_open_is_66_bytes_with_ipv4_loopback() {
        let bytes = cat(&[
            &[90],
            &[0, 0, 0, 15],
            b"forwarded-tcpip",
            &[0, 0, 0, 1],
            &[0, 0, 0x04, 0x00],
            &[0xff, 0xff, 0xff, 0xff],
            &[0, 0, 0, 9],
            b"127.0.0.1",
            &[0, 0, 0x42, 0x61],
            &[0, 0, 0, 9],
            b"127.0.0.1",
            &[0, 0, 0xc3, 0x50],
        ]);
        assert_eq!(bytes.len(), 66);
        exact(
            Message::ChannelOpen(ChannelOpen {
                channel_type: CHANNEL_FORWARDED_TCPIP.into(),
                sender: 1,
                window: 1024,
                connected_address: "127.0.0.1".into(),
                connected_port: 16993,
                originator_address: "127.0.0.1".into(),
                originator_port: 50000,
            }),
            &bytes,
        );
    }

    #[test]
    fn channel_open_confirmation_and_failure_are_17_bytes() {
        exact(
            Message::ChannelOpenConfirmation {
                recipient: 2,
                sender: 0,
                window: 4096,
            },
            &[
                91, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0x10, 0, 0xff, 0xff, 0xff, 0xff,
            ],
        );
        exact(
            Message::ChannelOpenFailure {
                recipient: 2,
                reason: OpenFailureReason::ResourceShortage,
            },
            &[92, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        assert_eq!(OpenFailureReason::from_u32(4).name(), "RESOURCE_SHORTAGE");
        assert_eq!(OpenFailureReason::from_u32(77).to_string(), "UNKNOWN (77)");
    }

    #[test]
    fn window_adjust_data_and_close() {
        exact(
            Message::WindowAdjust {
                recipient: 3,
                bytes: 1024,
            },
            &[93, 0, 0, 0, 3, 0, 0, 0x04, 0],
        );
        exact(
            Message::ChannelData {
                recipient: 1,
                data: b"abc".to_vec(),
            },
            &[94, 0, 0, 0, 1, 0, 0, 0, 3, b'a', b'b', b'c'],
        );
        exact(Message::ChannelClose { recipient: 7 }, &[97, 0, 0, 0, 7]);
    }

    #[test]
    fn keepalives() {
        exact(
            Message::KeepaliveRequest { cookie: 0x01020304 },
            &[208, 1, 2, 3, 4],
        );
        exact(
            Message::KeepaliveReply { cookie: 0x01020304 },
            &[209, 1, 2, 3, 4],
        );
        exact(
            Message::KeepaliveOptionsRequest {
                interval: 30,
                timeout: 90,
            },
            &[210, 0, 0, 0, 30, 0, 0, 0, 90],
        );
        exact(
            Message::KeepaliveOptionsReply {
                interval: 30,
                timeout: 90,
            },
            &[211, 0, 0, 0, 30, 0, 0, 0, 90],
        );
    }

    #[test]
    fn unknown_type_is_data() {
        exact(
            Message::Unknown {
                kind: 7,
                body: vec![1, 2],
            },
            &[7, 1, 2],
        );
        assert_eq!(Message::decode(&[7]).unwrap().name(), "UNKNOWN");
    }

    #[test]
    fn disconnect_reasons_have_lms_names() {
        assert_eq!(DisconnectReason::from_u32(2).name(), "PROTOCOL_ERROR");
        assert_eq!(
            DisconnectReason::from_u32(15),
            DisconnectReason::IllegalUserName
        );
        assert_eq!(DisconnectReason::from_u32(99).code(), 99);
    }

    #[test]
    fn errors_name_the_field_and_offset() {
        assert_eq!(Message::decode(&[]), Err(DecodeError::Empty));
        // A data length that runs past the message is rejected before any allocation.
        assert_eq!(
            Message::decode(&[94, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 1]),
            Err(DecodeError::LengthTooLong {
                message: "APF_CHANNEL_DATA",
                field: "data",
                offset: 5,
                declared: u32::MAX,
                available: 1,
            })
        );
        assert_eq!(
            Message::decode(&[97, 0, 0, 0, 1, 0]),
            Err(DecodeError::TrailingBytes {
                message: "APF_CHANNEL_CLOSE",
                offset: 5,
                count: 1,
            })
        );
        assert_eq!(
            Message::decode(&[5, 0, 0, 0, 1, 0xff]),
            Err(DecodeError::NotUtf8 {
                message: "APF_SERVICE_REQUEST",
                field: "service name",
                offset: 1,
            })
        );
        let mut short_pv = vec![192, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9];
        short_pv.extend_from_slice(&[0; 16]);
        short_pv.extend_from_slice(&[0; 63]);
        let e = Message::decode(&short_pv).unwrap_err();
        assert_eq!(
            e.to_string(),
            "APF_PROTOCOLVERSION: reserved needs 64 bytes at offset 29, only 63 left"
        );
    }

    fn samples() -> Vec<Message> {
        vec![
            Message::ProtocolVersion(ProtocolVersion::rpc_go()),
            Message::ChannelOpen(ChannelOpen::forwarded(2, 16992)),
            Message::GlobalRequest {
                want_reply: true,
                request: GlobalRequest::UdpSendTo {
                    address: "a".into(),
                    port: 1,
                    originator_address: "b".into(),
                    originator_port: 2,
                    data: vec![1, 2, 3],
                },
            },
            Message::UserauthRequest {
                user: "u".into(),
                service: "s".into(),
                method: UserauthMethod::Password(Secret::new("p")),
            },
            Message::ChannelData {
                recipient: 1,
                data: vec![0; 20],
            },
            Message::ServiceRequest {
                service: SERVICE_PFWD.into(),
            },
        ]
    }

    #[test]
    fn random_truncated_and_mutated_bytes_never_panic_and_round_trip_when_accepted() {
        let mut rng = StdRng::seed_from_u64(0x4150_4600);
        let kinds = [
            1u8, 5, 6, 50, 51, 52, 80, 81, 82, 90, 91, 92, 93, 94, 97, 192, 208, 209, 210, 211, 3,
        ];
        let check = |b: &[u8]| {
            if let Ok(m) = Message::decode(b) {
                // What decodes must re-encode to something that decodes the same.
                assert_eq!(Message::decode(&m.encode()).as_ref(), Ok(&m), "{b:02x?}");
            }
        };
        for _ in 0..20_000 {
            let len = rng.gen_range(0..120);
            let mut b: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if !b.is_empty() {
                b[0] = kinds[rng.gen_range(0..kinds.len())];
                // Small lengths make the string paths reachable.
                if b.len() > 4 && rng.gen_bool(0.5) {
                    b[1] = 0;
                    b[2] = 0;
                    b[3] = 0;
                    b[4] %= 24;
                }
            }
            check(&b);
        }
        for m in samples() {
            let full = m.encode();
            for cut in 0..full.len() {
                assert!(Message::decode(&full[..cut]).is_err(), "{m:?} cut at {cut}");
            }
            for _ in 0..2_000 {
                let mut b = full.clone();
                let i = rng.gen_range(0..b.len());
                b[i] = rng.gen();
                check(&b);
            }
        }
    }
}
