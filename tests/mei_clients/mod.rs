//! Host clients that use a MEI device file the way Intel's own programs do, written from what
//! those programs send (mei-clients.md, rpc-go.md §4.4, transport.md §3.2 and §5) and sharing no
//! code with the agent: every APF, MKHI and HTTP byte is built and parsed here by hand, so a codec
//! bug shared by the agent and the simulator cannot hide behind them.
//!
//! * [`RpcGoLme`] plays rpc-go v2.48's LME transport: its version first (trigger 9), then strict
//!   ping-pong through go-wsman-messages' `apf.Process`, including the two answers that package
//!   gets wrong (below); one `forwarded-tcpip` channel per WS-MAN exchange.
//! * [`LmsMkhi`] and [`LmsLme`] play Intel LMS: its start-up decision from MKHI FWCAPS, then an
//!   APF session it lets the firmware drive.
//!
//! What reaches the device from go-wsman-messages' answers (`pkg/apf/processor.go` of the
//! releases rpc-go v2.48 builds with): a `tcpip-forward` for a port other than 16992/16993 is
//! answered with the untyped constant `APF_REQUEST_FAILURE`, and `cancel-tcpip-forward` with
//! `APF_REQUEST_SUCCESS`; both are Go `int`s, which `binary.Write` refuses before writing a byte
//! ("binary.Write: some values are not fixed-sized in type int"). The buffer stays empty, so
//! rpc-go writes nothing and its handshake loop ends there: the firmware's 623 (or 664) forward
//! is never answered. An unknown service request is answered with a zeroed 23-byte
//! `APF_SERVICE_ACCEPT_MESSAGE` (type 0). No `APF_CHANNEL_WINDOW_ADJUST` is ever sent.
#![allow(dead_code)]

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

pub const LME: [u8; 16] = [
    0xdb, 0xa4, 0x33, 0x67, 0x76, 0x04, 0x7b, 0x4e, 0xb3, 0xaf, 0xbc, 0xfc, 0x29, 0xbe, 0xe7, 0xa7,
];
pub const MKHI: [u8; 16] = [
    0x15, 0x67, 0x6a, 0x8e, 0xbc, 0x9a, 0x43, 0x40, 0x88, 0xef, 0x9e, 0x39, 0xc6, 0xf6, 0x3e, 0x0f,
];

pub const PROTOCOLVERSION: u8 = 192;
pub const SERVICE_REQUEST: u8 = 5;
pub const SERVICE_ACCEPT: u8 = 6;
pub const GLOBAL_REQUEST: u8 = 80;
pub const REQUEST_SUCCESS: u8 = 81;
pub const CHANNEL_OPEN: u8 = 90;
pub const OPEN_CONFIRMATION: u8 = 91;
pub const OPEN_FAILURE: u8 = 92;
pub const WINDOW_ADJUST: u8 = 93;
pub const CHANNEL_DATA: u8 = 94;
pub const CHANNEL_CLOSE: u8 = 97;

/// One open, connected MEI descriptor; closed on drop.
pub struct MeiFd {
    fd: libc::c_int,
    pub mtu: usize,
}

impl MeiFd {
    /// open(O_RDWR) + IOCTL_MEI_CONNECT_CLIENT; the errno on failure.
    pub fn connect(path: &Path, guid: [u8; 16]) -> Result<MeiFd, i32> {
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path without NUL");
        // SAFETY: a valid NUL-terminated path.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(errno());
        }
        let mut data = guid;
        // SAFETY: IOCTL_MEI_CONNECT_CLIENT reads and writes a 16-byte buffer.
        if unsafe { libc::ioctl(fd, 0xC010_4801, data.as_mut_ptr()) } != 0 {
            let e = errno();
            // SAFETY: closing the descriptor opened above.
            unsafe { libc::close(fd) };
            return Err(e);
        }
        let mtu = u32::from_le_bytes(data[..4].try_into().expect("4 bytes")) as usize;
        Ok(MeiFd { fd, mtu })
    }

    /// One whole message.
    pub fn write(&self, msg: &[u8]) {
        // SAFETY: `msg` is valid for its length.
        let n = unsafe { libc::write(self.fd, msg.as_ptr().cast(), msg.len()) };
        assert_eq!(
            n,
            msg.len() as isize,
            "write of {} bytes: {}",
            msg.len(),
            std::io::Error::last_os_error()
        );
    }

    /// The next message, or None when none arrives before `deadline` (poll, then one read with an
    /// MTU-sized buffer, as every real client does).
    pub fn read(&self, deadline: Instant) -> Option<Vec<u8>> {
        loop {
            // Checked first, so that a peer flooding messages cannot outrun the deadline.
            let left = deadline.checked_duration_since(Instant::now())?;
            let mut p = libc::pollfd {
                fd: self.fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd.
            let r = unsafe { libc::poll(&mut p, 1, left.as_millis().min(60_000) as libc::c_int) };
            if r < 0 && errno() == libc::EINTR {
                continue;
            }
            assert!(r >= 0, "poll: {}", std::io::Error::last_os_error());
            if r == 0 {
                return None;
            }
            assert_eq!(p.revents & libc::POLLERR, 0, "POLLERR on the descriptor");
            let mut buf = vec![0u8; self.mtu];
            // SAFETY: `buf` holds `mtu` bytes.
            let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            assert!(n > 0, "read: {n} {}", std::io::Error::last_os_error());
            buf.truncate(n as usize);
            return Some(buf);
        }
    }
}

impl Drop for MeiFd {
    fn drop(&mut self) {
        // SAFETY: closing our own descriptor.
        unsafe { libc::close(self.fd) };
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn put_string(v: &mut Vec<u8>, s: &[u8]) {
    v.extend_from_slice(&(s.len() as u32).to_be_bytes());
    v.extend_from_slice(s);
}

/// APF_PROTOCOLVERSION, 93 bytes: type, major, minor, trigger, UUID, 64 reserved zero bytes.
pub fn protocol_version(major: u32, minor: u32, trigger: u32, uuid: &[u8]) -> Vec<u8> {
    let mut v = vec![PROTOCOLVERSION];
    v.extend_from_slice(&major.to_be_bytes());
    v.extend_from_slice(&minor.to_be_bytes());
    v.extend_from_slice(&trigger.to_be_bytes());
    v.extend_from_slice(uuid);
    v.resize(93, 0);
    v
}

/// A `tcpip-forward` (or cancel) the firmware sent: (request name, address, port).
pub fn global_request(m: &[u8]) -> (String, String, u32) {
    let name_len = be32(m, 1) as usize;
    let name = String::from_utf8_lossy(&m[5..5 + name_len]).into_owned();
    let at = 5 + name_len + 1; // after want-reply
    let addr_len = be32(m, at) as usize;
    let addr = String::from_utf8_lossy(&m[at + 4..at + 4 + addr_len]).into_owned();
    (name, addr, be32(m, at + 4 + addr_len))
}

fn service_name(m: &[u8]) -> Vec<u8> {
    let len = be32(m, 1) as usize;
    m[5..5 + len].to_vec()
}

/// rpc-go's `APF_CHANNEL_OPEN`, 54 bytes: `forwarded-tcpip` to ::1:`port` from ::1:123, window
/// 4096.
pub fn rpc_go_channel_open(sender: u32, port: u32) -> Vec<u8> {
    let mut v = vec![CHANNEL_OPEN];
    put_string(&mut v, b"forwarded-tcpip");
    v.extend_from_slice(&sender.to_be_bytes());
    v.extend_from_slice(&4096u32.to_be_bytes());
    v.extend_from_slice(&0xFFFF_FFFFu32.to_be_bytes());
    put_string(&mut v, b"::1");
    v.extend_from_slice(&port.to_be_bytes());
    put_string(&mut v, b"::1");
    v.extend_from_slice(&123u32.to_be_bytes());
    assert_eq!(v.len(), 54);
    v
}

fn channel_data(recipient: u32, data: &[u8]) -> Vec<u8> {
    let mut v = vec![CHANNEL_DATA];
    v.extend_from_slice(&recipient.to_be_bytes());
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

fn channel_close(recipient: u32) -> Vec<u8> {
    let mut v = vec![CHANNEL_CLOSE];
    v.extend_from_slice(&recipient.to_be_bytes());
    v
}

fn window_adjust(recipient: u32, n: u32) -> Vec<u8> {
    let mut v = vec![WINDOW_ADJUST];
    v.extend_from_slice(&recipient.to_be_bytes());
    v.extend_from_slice(&n.to_be_bytes());
    v
}

/// What go-wsman-messages' `apf.Process` (as rpc-go v2.48 uses it) writes back for a message from
/// the firmware; None where it writes nothing (see the module documentation).
pub fn rpc_go_answer(m: &[u8]) -> Option<Vec<u8>> {
    match m[0] {
        // Echo of the firmware's major, minor, trigger and UUID.
        PROTOCOLVERSION => Some(protocol_version(
            be32(m, 1),
            be32(m, 5),
            be32(m, 9),
            &m[13..29],
        )),
        SERVICE_REQUEST => {
            let name = service_name(m);
            if name == b"pfwd@amt.intel.com" || name == b"auth@amt.intel.com" {
                let mut v = vec![SERVICE_ACCEPT];
                put_string(&mut v, &name);
                Some(v)
            } else {
                Some(vec![0; 23])
            }
        }
        GLOBAL_REQUEST => match global_request(m) {
            (name, _, port) if name == "tcpip-forward" && (port == 16992 || port == 16993) => {
                let mut v = vec![REQUEST_SUCCESS];
                v.extend_from_slice(&port.to_be_bytes());
                Some(v)
            }
            // APF_REQUEST_FAILURE / APF_REQUEST_SUCCESS as Go ints: binary.Write writes nothing.
            _ => None,
        },
        _ => None,
    }
}

/// Every message the firmware sent during a client's life, with when it arrived.
#[derive(Default)]
pub struct Log {
    pub received: Vec<(Instant, Vec<u8>)>,
}

impl Log {
    pub fn count(&self, kind: u8) -> usize {
        self.received.iter().filter(|(_, m)| m[0] == kind).count()
    }

    /// Messages of the handshake (version, service request, global request) after `t`.
    pub fn handshake_after(&self, t: Instant) -> usize {
        self.received
            .iter()
            .filter(|(at, m)| {
                *at > t && matches!(m[0], PROTOCOLVERSION | SERVICE_REQUEST | GLOBAL_REQUEST)
            })
            .count()
    }
}

/// One WS-MAN exchange as the firmware served it.
pub struct Exchange {
    pub response: Vec<u8>,
    /// From writing the request to AMT's CHANNEL_CLOSE.
    pub latency: Duration,
}

/// rpc-go v2.48's LME transport over a MEI device file.
pub struct RpcGoLme {
    pub fd: MeiFd,
    pub log: Log,
    our_channel: u32,
    /// When the handshake loop ended.
    pub handshake_done: Option<Instant>,
}

/// More handshake messages than any firmware sends (version, service request, two forwards).
pub const HANDSHAKE_LIMIT: usize = 64;

/// rpc-go's HECI read timeout: how long each wait for the firmware lasts.
pub const RPC_GO_READ_TIMEOUT: Duration = Duration::from_secs(3);

impl RpcGoLme {
    pub fn connect(path: &Path) -> RpcGoLme {
        let fd = MeiFd::connect(path, LME).expect("connect LME");
        RpcGoLme {
            fd,
            log: Log::default(),
            our_channel: 1,
            handshake_done: None,
        }
    }

    fn recv(&mut self, deadline: Instant) -> Option<Vec<u8>> {
        let m = self.fd.read(deadline)?;
        self.log.received.push((Instant::now(), m.clone()));
        Some(m)
    }

    /// `Initialize`: version 1.0 trigger 9 with a zero UUID, then send, read one message, answer
    /// it, until an answer is empty or a read times out.
    /// Bounded at [`HANDSHAKE_LIMIT`] messages: a firmware that keeps restarting the handshake
    /// would otherwise keep rpc-go's loop going for ever (it did, before this was fixed).
    pub fn initialize(&mut self) {
        let mut out = protocol_version(1, 0, 9, &[0; 16]);
        for _ in 0..HANDSHAKE_LIMIT {
            self.fd.write(&out);
            let Some(m) = self.recv(Instant::now() + RPC_GO_READ_TIMEOUT) else {
                break;
            };
            match rpc_go_answer(&m) {
                Some(a) => out = a,
                None => break,
            }
        }
        self.handshake_done = Some(Instant::now());
    }

    /// One request on a fresh channel (`Connect`, `Send`, the listener until AMT closes the
    /// channel). rpc-go v2.48 then waits for its own 3 s flush timer before handing the bytes
    /// on and closing; that wait is the client's, not the firmware's, so this client closes at
    /// once and the latency measured is the firmware's turnaround.
    pub fn exchange(&mut self, port: u32, request: &[u8]) -> Exchange {
        self.our_channel = (self.our_channel + 1) % 32;
        if self.our_channel == 0 {
            self.our_channel = 1;
        }
        let ours = self.our_channel;
        self.fd.write(&rpc_go_channel_open(ours, port));
        let deadline = Instant::now() + Duration::from_secs(10);
        let (amt, _window) = loop {
            let m = self
                .recv(deadline)
                .expect("the firmware answers CHANNEL_OPEN within 10 s");
            match m[0] {
                OPEN_CONFIRMATION if be32(&m, 1) == ours => break (be32(&m, 5), be32(&m, 9)),
                OPEN_FAILURE if be32(&m, 1) == ours => {
                    panic!("channel open refused, reason {}", be32(&m, 5))
                }
                _ => {
                    // rpc-go's listener answers whatever else arrives through apf.Process.
                    if let Some(a) = rpc_go_answer(&m) {
                        self.fd.write(&a);
                    }
                }
            }
        };
        let sent = Instant::now();
        // The whole request in one CHANNEL_DATA (rpc-go does not split by window).
        self.fd.write(&channel_data(amt, request));
        let mut response = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = self
                .recv(deadline)
                .expect("the firmware answers and closes the channel within 10 s");
            match m[0] {
                CHANNEL_DATA if be32(&m, 1) == ours => {
                    let n = be32(&m, 5) as usize;
                    response.extend_from_slice(&m[9..9 + n]);
                }
                CHANNEL_CLOSE if be32(&m, 1) == ours => break,
                WINDOW_ADJUST => {}
                _ => {
                    if let Some(a) = rpc_go_answer(&m) {
                        self.fd.write(&a);
                    }
                }
            }
        }
        let latency = sent.elapsed();
        self.fd.write(&channel_close(amt));
        Exchange { response, latency }
    }
}

/// Intel LMS's start-up decision (`intel/lms` `UNS/Configurator/Configurator.cpp`,
/// `ScanConfiguration`), from MKHI FWCAPS rules 0x1D (platform type) and 0x20 (features
/// enabled; `MEFWCAPS_SKU_MKHI`, AMT is bit 2).
#[derive(Debug, PartialEq, Eq)]
pub struct LmsMkhi {
    pub fw_version: (u16, u16, u16, u16),
    pub platform_type: u32,
    pub features_enabled: u32,
}

impl LmsMkhi {
    /// GET_FW_VERSION, then GET_RULE 0x20 and 0x1D, each on a fresh descriptor as LMS does.
    pub fn read(path: &Path) -> Result<LmsMkhi, i32> {
        let call = |req: &[u8]| -> Result<Vec<u8>, i32> {
            let fd = MeiFd::connect(path, MKHI)?;
            fd.write(req);
            Ok(fd
                .read(Instant::now() + Duration::from_secs(15))
                .expect("MKHI answers within LMS's 15 s"))
        };
        let v = call(&[0xFF, 0x02, 0x00, 0x00])?;
        assert!(v.len() >= 20, "GET_FW_VERSION answer of {} bytes", v.len());
        assert_eq!(&v[..4], [0xFF, 0x82, 0x00, 0x00], "GET_FW_VERSION header");
        let le16 = |at: usize| u16::from_le_bytes([v[at], v[at + 1]]);
        let fw_version = (le16(6), le16(4), le16(10), le16(8));
        let rule = |id: u32| -> Result<u32, i32> {
            let mut req = vec![0x03, 0x02, 0x00, 0x00];
            req.extend_from_slice(&id.to_le_bytes());
            let r = call(&req)?;
            assert_eq!(&r[..4], [0x03, 0x82, 0x00, 0x00], "rule {id:#x}: {r:02x?}");
            assert_eq!(u32::from_le_bytes(r[4..8].try_into().unwrap()), id);
            assert_eq!(r[8], 4, "rule {id:#x} data length");
            Ok(u32::from_le_bytes(r[9..13].try_into().unwrap()))
        };
        Ok(LmsMkhi {
            fw_version,
            features_enabled: rule(0x20)?,
            platform_type: rule(0x1D)?,
        })
    }

    pub fn image_type(&self) -> u32 {
        (self.platform_type >> 8) & 0xF
    }

    pub fn brand(&self) -> u32 {
        (self.platform_type >> 12) & 0xF
    }

    /// LMS reads the services list `SKU_5_GROUP` (port forwarding, the AMT port service) only for
    /// image type 4 (`ME_FULL_8MB`); otherwise `SKU_1_5_GROUP`, its bookkeeping services.
    pub fn starts_port_forwarding(&self) -> bool {
        self.image_type() == 4
    }

    /// …and `MANAGABILITY_GROUP` for brands AMT, Standard Manageability and L3 when AMT is enabled.
    pub fn starts_manageability(&self) -> bool {
        self.starts_port_forwarding()
            && (1..=3).contains(&self.brand())
            && self.features_enabled & (1 << 2) != 0
    }
}

/// Intel LMS's LME side: it lets the firmware start the session, agrees on its version, accepts
/// the services and every `tcpip-forward` (it binds the port and records the address, which it
/// takes as AMT's FQDN for the hosts file unless it is `0.0.0.0`/`::`).
pub struct LmsLme {
    pub fd: MeiFd,
    pub log: Log,
    /// (address, port) of each forward accepted, in order.
    pub forwards: Vec<(String, u32)>,
    pub firmware_uuid: [u8; 16],
}

/// How long LMS waits for the firmware's side of the handshake before it reconnects.
pub const LMS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

impl LmsLme {
    pub fn connect(path: &Path) -> Result<LmsLme, i32> {
        Ok(LmsLme {
            fd: MeiFd::connect(path, LME)?,
            log: Log::default(),
            forwards: Vec::new(),
            firmware_uuid: [0; 16],
        })
    }

    /// Waits (bounded) for the firmware's version, service request and forwards; answers each as
    /// LMS does. Returns once a management port (16992 or 16993) is bound and no further message
    /// arrives for 300 ms, or panics when the firmware does not start the session.
    pub fn handshake(&mut self) {
        let deadline = Instant::now() + LMS_HANDSHAKE_TIMEOUT;
        loop {
            let bound = self
                .forwards
                .iter()
                .any(|(_, p)| *p == 16992 || *p == 16993);
            let wait = if bound {
                (Instant::now() + Duration::from_millis(300)).min(deadline)
            } else {
                deadline
            };
            let Some(m) = self.fd.read(wait) else {
                assert!(
                    bound,
                    "the firmware did not start APF within {LMS_HANDSHAKE_TIMEOUT:?}"
                );
                return;
            };
            self.log.received.push((Instant::now(), m.clone()));
            match m[0] {
                PROTOCOLVERSION => {
                    assert!(be32(&m, 1) >= 1, "LMS refuses versions below 1.0");
                    self.firmware_uuid.copy_from_slice(&m[13..29]);
                    self.fd.write(&protocol_version(1, 0, 254, &[0; 16]));
                }
                SERVICE_REQUEST => {
                    let name = service_name(&m);
                    let mut v = vec![SERVICE_ACCEPT];
                    put_string(&mut v, &name);
                    self.fd.write(&v);
                }
                GLOBAL_REQUEST => {
                    let (name, addr, port) = global_request(&m);
                    assert_eq!(name, "tcpip-forward");
                    self.forwards.push((addr, port));
                    let mut v = vec![REQUEST_SUCCESS];
                    v.extend_from_slice(&port.to_be_bytes());
                    self.fd.write(&v);
                }
                other => panic!("unexpected APF message {other} during the handshake"),
            }
        }
    }

    /// One exchange the way LMS relays a local TCP client: `forwarded-tcpip` to
    /// 127.0.0.1:`port` from the client's address, LMS's window of 1024 bytes, the request
    /// split to fit AMT's window, WINDOW_ADJUST for every CHANNEL_DATA relayed.
    pub fn exchange(&mut self, port: u32, request: &[u8]) -> Exchange {
        const LMS_WINDOW: u32 = 1024;
        let ours: u32 = 0x10;
        let mut open = vec![CHANNEL_OPEN];
        put_string(&mut open, b"forwarded-tcpip");
        open.extend_from_slice(&ours.to_be_bytes());
        open.extend_from_slice(&LMS_WINDOW.to_be_bytes());
        open.extend_from_slice(&0xFFFF_FFFFu32.to_be_bytes());
        put_string(&mut open, b"127.0.0.1");
        open.extend_from_slice(&port.to_be_bytes());
        put_string(&mut open, b"127.0.0.1");
        open.extend_from_slice(&40000u32.to_be_bytes());
        self.fd.write(&open);
        let deadline = Instant::now() + Duration::from_secs(10);
        let m = self.fd.read(deadline).expect("an answer to CHANNEL_OPEN");
        assert_eq!(m[0], OPEN_CONFIRMATION, "channel open: {m:02x?}");
        let amt = be32(&m, 5);
        let mut tx_window = be32(&m, 9) as usize;
        let sent = Instant::now();
        let mut rest = request;
        let mut response = Vec::new();
        loop {
            while !rest.is_empty() && tx_window > 0 {
                let n = rest.len().min(tx_window).min(self.fd.mtu - 9);
                self.fd.write(&channel_data(amt, &rest[..n]));
                rest = &rest[n..];
                tx_window -= n;
            }
            let m = self
                .fd
                .read(deadline)
                .expect("the firmware answers and closes within 10 s");
            match m[0] {
                WINDOW_ADJUST => tx_window += be32(&m, 5) as usize,
                CHANNEL_DATA => {
                    let n = be32(&m, 5);
                    response.extend_from_slice(&m[9..9 + n as usize]);
                    self.fd.write(&window_adjust(amt, n));
                }
                CHANNEL_CLOSE => break,
                other => panic!("unexpected APF message {other} on an open channel"),
            }
        }
        let latency = sent.elapsed();
        self.fd.write(&channel_close(amt));
        Exchange { response, latency }
    }
}

/// A WS-MAN POST as RPS hands it to rpc-go (trace 10): Authorization when known, a Host header,
/// chunked body, `Connection: close`.
pub fn wsman_post(authorization: Option<&str>, body: &str) -> Vec<u8> {
    let mut r = String::from("POST /wsman HTTP/1.1\r\n");
    if let Some(a) = authorization {
        r.push_str(&format!("Authorization: {a}\r\n"));
    }
    r.push_str("Host: 127.0.0.1:16992\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    r.push_str(&format!("{:X}\r\n{body}\r\n0\r\n\r\n", body.len()));
    r.into_bytes()
}

/// Status code and de-chunked body of an HTTP response.
pub fn http_response(raw: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, mut rest) = text.split_once("\r\n\r\n").expect("an HTTP head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        let mut body = String::new();
        loop {
            let (size, after) = rest.split_once("\r\n").expect("a chunk size line");
            let n = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
            if n == 0 {
                break;
            }
            body.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        body
    } else {
        rest.to_string()
    };
    (status, head.to_string(), body)
}

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `WWW-Authenticate` parameter `name` of a 401 head.
pub fn challenge_param(head: &str, name: &str) -> String {
    let at = head
        .find(&format!("{name}=\""))
        .unwrap_or_else(|| panic!("no {name} in the challenge:\n{head}"));
    let v = &head[at + name.len() + 2..];
    v[..v.find('"').expect("closing quote")].to_string()
}

/// A Digest Authorization in RPS's spelling (qop auth, 8-digit nc, 5-character cnonce).
pub fn digest(user: &str, password: &str, realm: &str, nonce: &str, nc: u32) -> String {
    let cnonce = "x7k2q";
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex("POST:/wsman");
    let nc = format!("{nc:08x}");
    let response = md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    format!(
        "Digest username=\"{user}\",realm=\"{realm}\",nonce=\"{nonce}\",uri=\"/wsman\",qop=\"auth\",response=\"{response}\",nc=\"{nc}\",cnonce=\"{cnonce}\""
    )
}

const ENVELOPE_HEAD: &str = r#"<?xml version="1.0" encoding="utf-8"?><Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns="http://www.w3.org/2003/05/soap-envelope"><Header>"#;

/// A WS-Transfer Get of `class` (`schema` is `amt` or `ips`), as go-wsman-messages builds it.
pub fn get_envelope(schema: &str, class: &str, id: u32) -> String {
    format!(
        "{ENVELOPE_HEAD}<a:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/Get</a:Action><a:To>/wsman</a:To><w:ResourceURI>http://intel.com/wbem/wscim/1/{schema}-schema/1/{class}</w:ResourceURI><a:MessageID>{id}</a:MessageID><a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><w:OperationTimeout>PT60S</w:OperationTimeout></Header><Body></Body></Envelope>"
    )
}

/// RPS's Put of `IPS_OptInService` lowering user consent (trace 10, exchange 34).
pub fn opt_in_put_envelope(required: u32, id: u32) -> String {
    let uri = "http://intel.com/wbem/wscim/1/ips-schema/1/IPS_OptInService";
    format!(
        "{ENVELOPE_HEAD}<a:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/Put</a:Action><a:To>/wsman</a:To><w:ResourceURI>{uri}</w:ResourceURI><a:MessageID>{id}</a:MessageID><a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><w:OperationTimeout>PT60S</w:OperationTimeout></Header><Body><h:IPS_OptInService xmlns:h=\"{uri}\"><h:CanModifyOptInPolicy>1</h:CanModifyOptInPolicy><h:CreationClassName>IPS_OptInService</h:CreationClassName><h:ElementName>Intel(r) AMT OptIn Service</h:ElementName><h:Name>Intel(r) AMT OptIn Service</h:Name><h:OptInCodeTimeout>120</h:OptInCodeTimeout><h:OptInDisplayTimeout>300</h:OptInDisplayTimeout><h:OptInRequired>{required}</h:OptInRequired><h:OptInState>0</h:OptInState><h:SystemCreationClassName>CIM_ComputerSystem</h:SystemCreationClassName><h:SystemName>Intel(r) AMT</h:SystemName></h:IPS_OptInService></Body></Envelope>"
    )
}

/// The text of the first element whose local name is `name`.
pub fn element_text(xml: &str, name: &str) -> Option<String> {
    let mut from = 0;
    while let Some(i) = xml[from..].find(&format!(":{name}>")) {
        let start = from + i + name.len() + 2;
        // An opening tag: the character before the prefix is '<', not '/'.
        let tag_start = xml[..from + i].rfind('<')?;
        if !xml[tag_start..].starts_with("</") {
            let end = xml[start..].find('<')?;
            return Some(xml[start..start + end].to_string());
        }
        from = start;
    }
    None
}

/// Median, 95th percentile and maximum of a set of durations.
pub fn spread(mut d: Vec<Duration>) -> (Duration, Duration, Duration) {
    d.sort();
    let at = |q: f64| d[((d.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95), d[d.len() - 1])
}
