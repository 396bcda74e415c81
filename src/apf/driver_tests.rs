//! The driver against a firmware-role `Mux` behind an in-memory `MeiConnection` that answers
//! HTTP by echoing the request body (transport.md §5.2 end to end, minus the kernel).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::apf::codec::{DisconnectReason, Message, OpenFailureReason};
use crate::apf::mux::{ChannelId, Config, Event, Mux};
use crate::heci::{ClientProperties, Guid, HeciError, MeiConnection, MeiDevice, RetryPolicy};
use crate::wsman::http::{encode_response, BodyEncoding, Header, RequestParser, ResponseParser};

#[derive(Clone, Default)]
struct Behaviour {
    /// Send PROTOCOLVERSION as soon as LME is connected (MeshAgent's view of the firmware).
    speak_first: bool,
    /// Swallow CHANNEL_OPEN without answering.
    never_confirm: bool,
    /// Advertise no port at all.
    no_ports: bool,
    /// Answer this many connects with EBUSY.
    busy_connects: u32,
    /// Answer this many connects with ENODEV (ME not ready).
    not_ready_connects: u32,
    /// The firmware's receive window (0: default).
    fw_window: u32,
    mtu: u32,
}

struct FwState {
    mux: Mux,
    to_host: VecDeque<Vec<u8>>,
    generation: u64,
    behaviour: Behaviour,
    requests: HashMap<u32, RequestParser>,
    connects: u32,
    served: u32,
    /// Type names of every message the host sent, and CHANNEL_DATA sizes.
    seen: Vec<&'static str>,
    data_sizes: Vec<usize>,
}

struct Fw {
    st: Mutex<FwState>,
    cv: Condvar,
}

impl Fw {
    fn new(behaviour: Behaviour) -> Arc<Fw> {
        Arc::new(Fw {
            st: Mutex::new(FwState {
                mux: fresh_mux(&behaviour),
                to_host: VecDeque::new(),
                generation: 0,
                behaviour,
                requests: HashMap::new(),
                connects: 0,
                served: 0,
                seen: Vec::new(),
                data_sizes: Vec::new(),
            }),
            cv: Condvar::new(),
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut FwState) -> R) -> R {
        let mut st = self.st.lock().unwrap();
        let r = f(&mut st);
        pump(&mut st);
        self.cv.notify_all();
        r
    }

    /// The firmware restarts its APF session (sends PROTOCOLVERSION again).
    fn restart_session(&self) {
        self.with(|st| st.mux.start());
    }

    /// The ME resets: every open LME handle gets ENODEV.
    fn me_reset(&self) {
        self.with(|st| {
            st.generation += 1;
            st.to_host.clear();
        });
    }

    fn disconnect(&self) {
        self.with(|st| st.mux.disconnect(DisconnectReason::ByApplication));
    }
}

fn fresh_mux(b: &Behaviour) -> Mux {
    let mut c = Config::firmware(false);
    if b.no_ports {
        c.advertised_ports.clear();
    }
    if b.fw_window > 0 {
        c.initial_window = b.fw_window;
    }
    c.mtu = b.mtu as usize;
    Mux::new(c)
}

/// Runs the firmware side until quiet: serves complete requests with a 200 echoing the body,
/// then closes the channel (`Connection: close`), as AMT does.
fn pump(st: &mut FwState) {
    loop {
        let mut progressed = false;
        while let Some(e) = st.mux.poll_event() {
            progressed = true;
            match e {
                Event::Data { channel, data } => {
                    st.mux.consume(channel, data.len() as u32).unwrap();
                    let parser = st.requests.entry(channel.0).or_default();
                    if let Ok(Some(req)) = parser.feed(&data) {
                        let resp = encode_response(
                            200,
                            "OK",
                            &[Header::new("Connection", "close")],
                            &req.body,
                            &BodyEncoding::ContentLength,
                        );
                        st.mux.send(channel, &resp).unwrap();
                        st.mux.close(channel).unwrap();
                        st.served += 1;
                    }
                }
                Event::ChannelClosed { channel, .. } => {
                    st.requests.remove(&channel.0);
                }
                _ => {}
            }
        }
        while let Some(m) = st.mux.poll_transmit() {
            progressed = true;
            st.to_host.push_back(m.encode());
        }
        if !progressed {
            return;
        }
    }
}

struct FakeDevice(Arc<Fw>);

impl MeiDevice for FakeDevice {
    fn describe(&self) -> String {
        "fake LME".into()
    }

    fn connect_once(&self, _client: Guid) -> Result<Box<dyn MeiConnection>, HeciError> {
        let fw = self.0.clone();
        let generation = fw.with(|st| {
            if st.behaviour.busy_connects > 0 {
                st.behaviour.busy_connects -= 1;
                return Err(HeciError::Busy {
                    client: "LME".into(),
                    attempts: 1,
                    waited_ms: 0,
                });
            }
            if st.behaviour.not_ready_connects > 0 {
                st.behaviour.not_ready_connects -= 1;
                return Err(HeciError::DeviceNotReady {
                    path: "fake".into(),
                });
            }
            st.connects += 1;
            st.generation += 1;
            st.mux = fresh_mux(&st.behaviour);
            st.to_host.clear();
            st.requests.clear();
            if st.behaviour.speak_first {
                st.mux.start();
            }
            Ok(st.generation)
        })?;
        Ok(Box::new(FakeConn { fw, generation }))
    }
}

struct FakeConn {
    fw: Arc<Fw>,
    generation: u64,
}

fn reset_error() -> HeciError {
    HeciError::Reset {
        client: "LME".into(),
        attempts: 0,
    }
}

impl MeiConnection for FakeConn {
    fn properties(&self) -> ClientProperties {
        let mtu = self.fw.st.lock().unwrap().behaviour.mtu;
        ClientProperties {
            max_msg_length: mtu,
            protocol_version: 1,
        }
    }

    fn send(&self, msg: &[u8]) -> Result<(), HeciError> {
        self.fw.with(|st| {
            if st.generation != self.generation {
                return Err(reset_error());
            }
            assert!(
                msg.len() <= st.behaviour.mtu as usize,
                "write above the MTU"
            );
            let m = Message::decode(msg).expect("the host sent an undecodable message");
            st.seen.push(m.name());
            if let Message::ChannelData { data, .. } = &m {
                st.data_sizes.push(data.len());
            }
            if st.behaviour.never_confirm && matches!(m, Message::ChannelOpen(_)) {
                return Ok(());
            }
            st.mux.handle_message(m, Instant::now());
            Ok(())
        })
    }

    fn recv(&self, deadline: Instant) -> Result<Vec<u8>, HeciError> {
        let mut st = self.fw.st.lock().unwrap();
        loop {
            if st.generation != self.generation {
                return Err(reset_error());
            }
            if let Some(m) = st.to_host.pop_front() {
                return Ok(m);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(HeciError::Timeout {
                    client: "LME".into(),
                    timeout_ms: 0,
                });
            }
            st = self.fw.cv.wait_timeout(st, deadline - now).unwrap().0;
        }
    }
}

fn behaviour() -> Behaviour {
    Behaviour {
        mtu: 4160,
        ..Behaviour::default()
    }
}

fn fast_opts() -> ApfOptions {
    ApfOptions {
        retry: RetryPolicy {
            busy_attempts: 3,
            busy_first_delay: Duration::from_millis(5),
            reset_attempts: 3,
            reset_delay: Duration::from_millis(10),
        },
        handshake_timeout: Duration::from_secs(2),
        open_timeout: Duration::from_secs(2),
        recv_slice: Duration::from_millis(50),
        ..ApfOptions::default()
    }
}

async fn connect(fw: &Arc<Fw>, opts: ApfOptions) -> Result<ApfSession, ApfError> {
    ApfSession::connect(Arc::new(FakeDevice(fw.clone())), opts).await
}

/// POSTs `body` over a fresh channel and returns the echoed body.
async fn echo(session: &ApfSession, body: &[u8]) -> Vec<u8> {
    let mut s = session.open(16992).await.expect("open");
    let req = crate::wsman::http::encode_request(
        "POST",
        "/wsman",
        &[Header::new("Connection", "close")],
        body,
        &BodyEncoding::ContentLength,
    );
    s.write_all(&req).await.unwrap();
    s.flush().await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let mut p = ResponseParser::new();
    let resp = p.feed(&raw).unwrap().expect("complete response");
    assert_eq!(resp.status, 200);
    resp.body
}

fn apf_error(e: &std::io::Error) -> &ApfError {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<ApfError>())
        .unwrap_or_else(|| panic!("not an APF error: {e}"))
}

async fn within<T>(d: Duration, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(d, f)
        .await
        .expect("hung past its deadline")
}

/// Waits (bounded) until the firmware holds no channel.
async fn wait_all_closed(fw: &Arc<Fw>) {
    for _ in 0..200 {
        if fw.st.lock().unwrap().mux.channel_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn apf_driver_handshakes_and_moves_10k_each_way_through_a_small_window() {
    let fw = Fw::new(Behaviour {
        fw_window: 700,
        mtu: 300,
        ..behaviour()
    });
    let mut opts = fast_opts();
    opts.mux.initial_window = 512;
    within(Duration::from_secs(10), async {
        let session = connect(&fw, opts).await.unwrap();
        assert_eq!(session.management_port(), 16992);
        assert!(!session.port_pair().unwrap().tls);
        let body: Vec<u8> = (0..10 * 1024).map(|i| (i % 251) as u8).collect();
        assert_eq!(echo(&session, &body).await, body);
    })
    .await;
    let st = fw.st.lock().unwrap();
    assert_eq!(st.served, 1);
    assert_eq!(st.seen[0], "APF_PROTOCOLVERSION", "the host speaks first");
    assert!(st.seen.contains(&"APF_SERVICE_ACCEPT"));
    assert!(st.seen.contains(&"APF_REQUEST_SUCCESS"));
    // Reads gave the window back; no data message exceeded the MTU or the firmware's window.
    assert!(st.seen.contains(&"APF_CHANNEL_WINDOW_ADJUST"));
    assert!(st.data_sizes.iter().all(|&n| n <= 300 - 9));
    assert!(st.data_sizes.iter().sum::<usize>() > 10 * 1024);
    // The host acknowledged the firmware's close.
    assert_eq!(st.seen.last(), Some(&"APF_CHANNEL_CLOSE"));
}

#[tokio::test]
async fn apf_driver_answers_a_firmware_that_speaks_first() {
    let fw = Fw::new(Behaviour {
        speak_first: true,
        ..behaviour()
    });
    within(Duration::from_secs(10), async {
        let session = connect(&fw, fast_opts()).await.unwrap();
        assert_eq!(echo(&session, b"<x/>").await, b"<x/>");
        assert_eq!(echo(&session, b"again").await, b"again");
    })
    .await;
    assert_eq!(fw.st.lock().unwrap().served, 2);
}

#[tokio::test]
async fn apf_driver_names_the_refusal_reason() {
    let fw = Fw::new(behaviour());
    within(Duration::from_secs(10), async {
        let session = connect(&fw, fast_opts()).await.unwrap();
        // A non-TLS firmware advertised 16992 only: 16993 fails with CONNECT_FAILED.
        let e = session.open(16993).await.unwrap_err();
        assert!(
            matches!(
                e,
                ApfError::Refused {
                    port: 16993,
                    reason: OpenFailureReason::ConnectFailed
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("CONNECT_FAILED (2)"), "{e}");
        // The session still works.
        assert_eq!(echo(&session, b"ok").await, b"ok");
    })
    .await;
}

#[tokio::test]
async fn apf_driver_open_never_confirmed_fails_within_its_deadline() {
    let fw = Fw::new(Behaviour {
        never_confirm: true,
        ..behaviour()
    });
    let mut opts = fast_opts();
    opts.open_timeout = Duration::from_millis(300);
    within(Duration::from_secs(5), async {
        let session = connect(&fw, opts).await.unwrap();
        let t0 = Instant::now();
        let e = session.open(16992).await.unwrap_err();
        assert!(
            matches!(e, ApfError::OpenTimeout { port: 16992, .. }),
            "{e}"
        );
        assert!(t0.elapsed() >= Duration::from_millis(250));
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    })
    .await;
}

#[tokio::test]
async fn apf_driver_handshake_without_ports_times_out() {
    let fw = Fw::new(Behaviour {
        no_ports: true,
        ..behaviour()
    });
    let mut opts = fast_opts();
    opts.handshake_timeout = Duration::from_millis(300);
    let t0 = Instant::now();
    let e = within(Duration::from_secs(5), connect(&fw, opts))
        .await
        .unwrap_err();
    assert!(matches!(e, ApfError::HandshakeTimeout { .. }), "{e}");
    assert!(e.to_string().contains("no port was advertised"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn apf_driver_lme_busy_names_lms_and_the_fix() {
    let fw = Fw::new(Behaviour {
        busy_connects: 1000,
        ..behaviour()
    });
    let e = within(Duration::from_secs(5), connect(&fw, fast_opts()))
        .await
        .unwrap_err();
    assert!(matches!(e, ApfError::LmeBusy(_)), "{e}");
    assert!(e.to_string().contains("LMS"), "{e}");
    assert!(e.help().contains("systemctl stop lms"));
    assert_eq!(fw.st.lock().unwrap().connects, 0);
}

#[tokio::test]
async fn apf_driver_survives_a_firmware_session_restart() {
    let fw = Fw::new(behaviour());
    within(Duration::from_secs(10), async {
        let session = connect(&fw, fast_opts()).await.unwrap();
        let mut s = session.open(16992).await.unwrap();
        fw.restart_session();
        let mut buf = [0u8; 16];
        let e = s.read(&mut buf).await.unwrap_err();
        assert!(matches!(apf_error(&e), ApfError::SessionRestarted), "{e}");
        assert!(s.write_all(b"x").await.is_err());
        // Later opens wait for the new session's ports and work.
        assert_eq!(echo(&session, b"after restart").await, b"after restart");
    })
    .await;
    assert_eq!(fw.st.lock().unwrap().connects, 1);
}

#[tokio::test]
async fn apf_driver_reconnects_lme_after_an_me_reset() {
    let fw = Fw::new(behaviour());
    within(Duration::from_secs(10), async {
        let session = connect(&fw, fast_opts()).await.unwrap();
        let mut s = session.open(16992).await.unwrap();
        // The ME resets and is not ready for the first reconnect.
        fw.with(|st| st.behaviour.not_ready_connects = 1);
        fw.me_reset();
        let mut buf = [0u8; 16];
        let e = s.read(&mut buf).await.unwrap_err();
        assert!(matches!(apf_error(&e), ApfError::LinkLost { .. }), "{e}");
        assert!(e.to_string().contains("ENODEV"), "{e}");
        assert_eq!(echo(&session, b"after reset").await, b"after reset");
    })
    .await;
    assert_eq!(fw.st.lock().unwrap().connects, 2);
}

#[tokio::test]
async fn apf_driver_rehandshakes_after_a_disconnect() {
    let fw = Fw::new(behaviour());
    within(Duration::from_secs(10), async {
        let session = connect(&fw, fast_opts()).await.unwrap();
        let mut s = session.open(16992).await.unwrap();
        fw.disconnect();
        let mut buf = [0u8; 16];
        let e = s.read(&mut buf).await.unwrap_err();
        assert!(
            matches!(
                apf_error(&e),
                ApfError::Disconnected {
                    reason: DisconnectReason::ByApplication
                }
            ),
            "{e}"
        );
        assert_eq!(echo(&session, b"again").await, b"again");
    })
    .await;
    let st = fw.st.lock().unwrap();
    assert_eq!(
        st.seen
            .iter()
            .filter(|n| **n == "APF_PROTOCOLVERSION")
            .count(),
        2
    );
}

#[tokio::test]
async fn apf_driver_dropping_the_stream_closes_the_channel_and_the_session_releases_lme() {
    let fw = Fw::new(behaviour());
    within(Duration::from_secs(10), async {
        let session = connect(&fw, fast_opts()).await.unwrap();
        let s = session.open(16992).await.unwrap();
        let ch: ChannelId = s.channel();
        assert_eq!(ch, ChannelId(2), "rpc-go's first channel number");
        drop(s);
        drop(session);
        // The driver sends CHANNEL_CLOSE; the firmware acks and frees the slot.
        wait_all_closed(&fw).await;
    })
    .await;
    let st = fw.st.lock().unwrap();
    assert_eq!(st.mux.channel_count(), 0);
    assert!(st.seen.contains(&"APF_CHANNEL_CLOSE"));
}

#[tokio::test]
async fn apf_driver_carries_wsman_client_requests_over_the_apf_route() {
    use crate::secret::Secret;
    use crate::wsman::client::{Credentials, WsmanClient, WsmanOptions};
    use crate::wsman::transport::Route;

    let fw = Fw::new(behaviour());
    within(Duration::from_secs(10), async {
        let session = connect(&fw, fast_opts()).await.unwrap();
        let route = Route::Apf(Arc::new(session));
        assert_eq!(route.management_port(false), 16992);
        let mut client = WsmanClient::new(
            Arc::new(route),
            Credentials::new("$$OsAdmin", Secret::new("x")),
            WsmanOptions::default(),
        );
        // The canned firmware echoes the de-chunked request body.
        for body in ["<Envelope>1</Envelope>", "<Envelope>two</Envelope>"] {
            let r = client.post(body).await.unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.body, body.as_bytes());
        }
        wait_all_closed(&fw).await;
    })
    .await;
    let st = fw.st.lock().unwrap();
    assert_eq!(st.served, 2);
    assert_eq!(st.mux.channel_count(), 0, "every channel was closed");
}

#[tokio::test]
async fn apf_driver_follows_the_firmware_moving_its_management_port() {
    use crate::apf::mux::{PORT_HTTP, PORT_HTTPS, PORT_REDIRECTION, PORT_REDIRECTION_TLS};
    let fw = Fw::new(behaviour());
    within(Duration::from_secs(10), async {
        let session = connect(&fw, fast_opts()).await.unwrap();
        assert_eq!(session.management_port(), 16992);
        // A CommitChanges made TLS the only local protocol: AMT withdraws 16992/623 and forwards
        // 16993/664 on the running session.
        fw.with(|st| {
            st.mux
                .set_advertised_ports(vec![PORT_HTTPS, PORT_REDIRECTION_TLS])
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while session.management_port() != 16993 {
            assert!(Instant::now() < deadline, "the driver kept 16992");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // And back (TLS off): 16992 again.
        fw.with(|st| {
            st.mux
                .set_advertised_ports(vec![PORT_HTTP, PORT_REDIRECTION])
        });
        while session.management_port() != 16992 {
            assert!(Instant::now() < deadline, "the driver kept 16993");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(echo(&session, b"plain again").await, b"plain again");
    })
    .await;
}
