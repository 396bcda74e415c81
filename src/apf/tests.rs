//! A host mux and a firmware mux driven against each other in memory, every message passing
//! through encode/decode as it would over MEI (transport.md §5.2).

use std::time::{Duration, Instant};

use super::codec::{kind, GlobalRequest, CHANNEL_DIRECT_TCPIP, SERVICE_PFWD};
use super::mux::{PORT_HTTP, PORT_HTTPS, PORT_REDIRECTION, PORT_REDIRECTION_TLS};
use super::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    HostToFw,
    FwToHost,
}

struct Link {
    host: Mux,
    fw: Mux,
    now: Instant,
    host_events: Vec<Event>,
    fw_events: Vec<Event>,
    wire: Vec<(Dir, Message)>,
}

impl Link {
    fn new(host: Config, fw: Config) -> Link {
        Link {
            host: Mux::new(host),
            fw: Mux::new(fw),
            now: Instant::now(),
            host_events: Vec::new(),
            fw_events: Vec::new(),
            wire: Vec::new(),
        }
    }

    fn default_pair() -> Link {
        Link::new(Config::host(), Config::firmware(false))
    }

    /// Moves messages both ways until both sides are quiet; collects events.
    fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(m) = self.host.poll_transmit() {
                let bytes = m.encode();
                assert!(
                    bytes.len() <= self.host.config().mtu,
                    "{m:?} exceeds the MTU"
                );
                self.fw.handle_bytes(&bytes, self.now).unwrap();
                self.wire.push((Dir::HostToFw, m));
                moved = true;
            }
            while let Some(m) = self.fw.poll_transmit() {
                let bytes = m.encode();
                assert!(bytes.len() <= self.fw.config().mtu, "{m:?} exceeds the MTU");
                self.host.handle_bytes(&bytes, self.now).unwrap();
                self.wire.push((Dir::FwToHost, m));
                moved = true;
            }
            while let Some(e) = self.host.poll_event() {
                self.host_events.push(e);
            }
            while let Some(e) = self.fw.poll_event() {
                self.fw_events.push(e);
            }
            if !moved {
                return;
            }
        }
        panic!("the two sides never went quiet");
    }

    fn established(tls: bool) -> Link {
        let mut l = Link::new(Config::host(), Config::firmware(tls));
        l.host.start();
        l.pump();
        l.clear();
        l
    }

    fn clear(&mut self) {
        self.host_events.clear();
        self.fw_events.clear();
        self.wire.clear();
    }

    fn kinds(&self, dir: Dir) -> Vec<u8> {
        self.wire
            .iter()
            .filter(|(d, _)| *d == dir)
            .map(|(_, m)| m.kind())
            .collect()
    }

    /// Takes the Data events of one side, consumes them (the app read them), returns the bytes.
    fn drain_data(&mut self, fw_side: bool) -> Vec<u8> {
        let (events, mux) = if fw_side {
            (&mut self.fw_events, &mut self.fw)
        } else {
            (&mut self.host_events, &mut self.host)
        };
        let mut out = Vec::new();
        events.retain(|e| match e {
            Event::Data { channel, data } => {
                out.extend_from_slice(data);
                mux.consume(*channel, data.len() as u32).unwrap();
                false
            }
            _ => true,
        });
        out
    }

    fn fw_channel(&self) -> ChannelId {
        self.fw_events
            .iter()
            .find_map(|e| match e {
                Event::ChannelOpened {
                    channel,
                    incoming: true,
                    ..
                } => Some(*channel),
                _ => None,
            })
            .expect("the firmware opened no channel")
    }
}

fn handshake_events(tls: bool) -> Vec<Event> {
    let (m, r) = if tls {
        (PORT_HTTPS, PORT_REDIRECTION_TLS)
    } else {
        (PORT_HTTP, PORT_REDIRECTION)
    };
    let fwd = |port| {
        Event::PortForwarded(Forward {
            address: String::new(),
            port,
        })
    };
    vec![
        Event::ServiceAccepted {
            service: SERVICE_PFWD.into(),
        },
        fwd(m),
        fwd(r),
        Event::PortPairBound(PortPair {
            management: m,
            redirection: r,
            tls,
        }),
    ]
}

fn without_version(events: &[Event]) -> Vec<Event> {
    events
        .iter()
        .filter(|e| !matches!(e, Event::VersionAgreed { .. }))
        .cloned()
        .collect()
}

#[test]
fn handshake_started_by_the_host_binds_the_non_tls_pair() {
    let mut l = Link::default_pair();
    l.host.start();
    l.pump();
    assert_eq!(
        l.kinds(Dir::HostToFw),
        [
            kind::PROTOCOLVERSION,
            kind::SERVICE_ACCEPT,
            kind::REQUEST_SUCCESS,
            kind::REQUEST_SUCCESS
        ]
    );
    assert_eq!(
        l.kinds(Dir::FwToHost),
        [
            kind::PROTOCOLVERSION,
            kind::SERVICE_REQUEST,
            kind::GLOBAL_REQUEST,
            kind::GLOBAL_REQUEST
        ]
    );
    assert_eq!(without_version(&l.host_events), handshake_events(false));
    assert_eq!(without_version(&l.fw_events), handshake_events(false));
    assert!(matches!(
        l.host_events[0],
        Event::VersionAgreed { agreed: (1, 0), .. }
    ));
    assert!(l.host.is_established() && l.fw.is_established());
    assert_eq!(l.host.port_pair().map(|p| p.management), Some(PORT_HTTP));
    assert_eq!(l.fw.forwards().len(), 2);
    // The host's REQUEST_SUCCESS carries the bound port.
    assert!(l
        .wire
        .contains(&(Dir::HostToFw, Message::RequestSuccess { port: Some(623) })));
}

#[test]
fn handshake_started_by_the_firmware_lms_style() {
    let mut l = Link::new(Config::host(), Config::firmware(true));
    l.fw.start();
    l.pump();
    assert_eq!(l.kinds(Dir::FwToHost)[0], kind::PROTOCOLVERSION);
    assert_eq!(l.kinds(Dir::HostToFw)[0], kind::PROTOCOLVERSION);
    assert_eq!(without_version(&l.host_events), handshake_events(true));
    assert_eq!(
        l.host.peer_version().unwrap().trigger,
        TriggerReason::LmeRequest
    );
    assert_eq!(
        l.fw.peer_version().unwrap().trigger,
        TriggerReason::Unknown(9)
    );
}

#[test]
fn both_sides_starting_at_once_exchange_exactly_two_versions() {
    let mut l = Link::default_pair();
    l.host.start();
    l.fw.start();
    l.pump();
    let pvs = l
        .wire
        .iter()
        .filter(|(_, m)| m.kind() == kind::PROTOCOLVERSION)
        .count();
    assert_eq!(pvs, 2);
    assert_eq!(without_version(&l.host_events), handshake_events(false));
}

#[test]
fn firmware_ignores_rpc_go_echo_of_its_answer() {
    // rpc-go answers every PROTOCOLVERSION it receives, even the answer to its own.
    let mut fw = Mux::new(Config::firmware(false));
    let now = Instant::now();
    fw.handle_message(Message::ProtocolVersion(ProtocolVersion::rpc_go()), now);
    let answer = fw.poll_transmit().unwrap();
    assert_eq!(answer.kind(), kind::PROTOCOLVERSION);
    assert_eq!(fw.poll_transmit().unwrap().kind(), kind::SERVICE_REQUEST);
    fw.handle_message(answer, now); // the echo
    assert_eq!(fw.poll_transmit(), None, "an echo must not be answered");
    let events: Vec<_> = std::iter::from_fn(|| fw.poll_event()).collect();
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::SessionRestarted { .. })));
    assert!(fw.is_established());
}

fn open(l: &mut Link, port: u32) -> ChannelId {
    let id = l.host.open_channel(port, l.now).unwrap();
    l.pump();
    id
}

#[test]
fn ten_kib_cross_a_1024_byte_window_intact_and_in_order() {
    let fw_cfg = Config {
        initial_window: 1024,
        ..Config::firmware(false)
    };
    let mut l = Link::new(Config::host(), fw_cfg);
    l.host.start();
    l.pump();
    l.clear();
    let ch = open(&mut l, PORT_HTTP);
    assert_eq!(ch, ChannelId(2), "rpc-go's first open uses channel 2");
    assert_eq!(l.host.send_window(ch), Some(1024));
    let fw_ch = l.fw_channel();
    assert_eq!(fw_ch, ChannelId(0), "the firmware hands out slot 0 first");

    let request: Vec<u8> = (0..10 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    l.host.send(ch, &request).unwrap();
    assert_eq!(l.host.buffered(ch), Some(10 * 1024 - 1024));
    let mut got = Vec::new();
    for _ in 0..100 {
        l.pump();
        got.extend(l.drain_data(true));
        if got.len() == request.len() {
            break;
        }
    }
    assert_eq!(got, request);
    l.pump();
    let adjusts = l
        .wire
        .iter()
        .filter(|(d, m)| *d == Dir::FwToHost && m.kind() == kind::CHANNEL_WINDOW_ADJUST)
        .count();
    assert!(adjusts >= 9, "only {adjusts} WINDOW_ADJUSTs");
    for (_, m) in l.wire.iter().filter(|(d, _)| *d == Dir::HostToFw) {
        if let Message::ChannelData { recipient, data } = m {
            assert_eq!(*recipient, 0, "data goes to AMT's channel number");
            assert!(data.len() <= 1024);
        }
    }
    assert_eq!(l.fw.receive_window(fw_ch), Some(1024));

    // And back: a 10 KiB response through the host's 4096-byte window.
    l.clear();
    let response = vec![0x5a; 10 * 1024];
    l.fw.send(fw_ch, &response).unwrap();
    let mut back = Vec::new();
    for _ in 0..100 {
        l.pump();
        back.extend(l.drain_data(false));
        if back.len() == response.len() {
            break;
        }
    }
    assert_eq!(back, response);
    assert!(!l
        .host_events
        .iter()
        .chain(&l.fw_events)
        .any(|e| matches!(e, Event::Disconnected { .. })));
}

#[test]
fn oversized_data_is_split_by_the_mtu() {
    let host = Config {
        mtu: 100,
        ..Config::host()
    };
    let fw = Config {
        mtu: 100,
        ..Config::firmware(false)
    };
    let mut l = Link::new(host, fw);
    l.host.start();
    l.pump();
    let ch = open(&mut l, PORT_HTTP);
    l.clear();
    l.host.send(ch, &[1u8; 1000]).unwrap();
    l.pump();
    let sizes: Vec<usize> = l
        .wire
        .iter()
        .filter_map(|(_, m)| match m {
            Message::ChannelData { data, .. } => Some(data.len()),
            _ => None,
        })
        .collect();
    assert_eq!(sizes.len(), 11);
    assert!(sizes[..10].iter().all(|&n| n == 91), "{sizes:?}");
    assert_eq!(sizes[10], 1000 - 910);
    assert_eq!(l.drain_data(true).len(), 1000);
}

#[test]
fn refused_channels_report_the_firmware_reason() {
    let mut l = Link::established(false);
    let ch = open(&mut l, 16994);
    assert!(l.host_events.contains(&Event::ChannelOpenFailed {
        channel: ch,
        reason: OpenFailureReason::ConnectFailed,
    }));
    assert_eq!(l.host.channel_state(ch), None);

    let params = OpenParams {
        channel_type: CHANNEL_DIRECT_TCPIP.into(),
        ..OpenParams::forwarded(PORT_HTTP)
    };
    let ch = l.host.open_channel_with(params, l.now).unwrap();
    l.pump();
    assert!(l.host_events.contains(&Event::ChannelOpenFailed {
        channel: ch,
        reason: OpenFailureReason::UnknownChannelType,
    }));
    assert_eq!(l.fw.channel_count(), 0);
}

#[test]
fn firmware_without_auto_accept_lets_the_application_refuse() {
    let fw = Config {
        auto_accept: false,
        ..Config::firmware(false)
    };
    let mut l = Link::new(Config::host(), fw);
    l.host.start();
    l.pump();
    let ch = l.host.open_channel(PORT_HTTP, l.now).unwrap();
    l.pump();
    let Some(Event::ChannelRequested { channel, open }) = l.fw_events.last().cloned() else {
        panic!("no ChannelRequested: {:?}", l.fw_events);
    };
    assert_eq!(open.connected_port, PORT_HTTP);
    assert_eq!(
        l.fw.channel_state(channel),
        Some(ChannelState::AwaitingAccept)
    );
    l.fw.reject_channel(channel, OpenFailureReason::AdministrativelyProhibited)
        .unwrap();
    l.pump();
    assert!(l.host_events.contains(&Event::ChannelOpenFailed {
        channel: ch,
        reason: OpenFailureReason::AdministrativelyProhibited,
    }));
    assert_eq!(l.fw.channel_count(), 0);

    let ch = l.host.open_channel(PORT_HTTP, l.now).unwrap();
    l.pump();
    let Some(Event::ChannelRequested { channel, .. }) = l.fw_events.last().cloned() else {
        panic!("no ChannelRequested");
    };
    l.fw.accept_channel(channel).unwrap();
    l.pump();
    assert_eq!(l.host.channel_state(ch), Some(ChannelState::Open));
}

#[test]
fn the_ninth_channel_gets_resource_shortage_until_one_closes() {
    let mut l = Link::established(false);
    let ids: Vec<ChannelId> = (0..8).map(|_| open(&mut l, PORT_HTTP)).collect();
    assert_eq!(l.fw.channel_count(), 8);
    assert!(ids
        .iter()
        .all(|&c| l.host.channel_state(c) == Some(ChannelState::Open)));
    let ninth = open(&mut l, PORT_HTTP);
    assert!(l.host_events.contains(&Event::ChannelOpenFailed {
        channel: ninth,
        reason: OpenFailureReason::ResourceShortage,
    }));
    assert!(l.fw_events.iter().any(|e| matches!(
        e,
        Event::IncomingChannelRefused {
            reason: OpenFailureReason::ResourceShortage,
            ..
        }
    )));

    let slot_of_third = l.host.peer_channel(ids[2]).unwrap();
    l.host.close(ids[2]).unwrap();
    l.pump();
    assert_eq!(l.fw.channel_count(), 7);
    let again = open(&mut l, PORT_HTTP);
    assert_eq!(l.host.channel_state(again), Some(ChannelState::Open));
    assert_eq!(l.host.peer_channel(again), Some(slot_of_third));
}

#[test]
fn host_channel_numbers_rotate_from_2_and_wrap_past_31() {
    let mut host = Mux::new(Config::host());
    let now = Instant::now();
    host.handle_message(Message::ProtocolVersion(ProtocolVersion::rpc_go()), now);
    let ids: Vec<u32> = (0..31)
        .map(|_| host.open_channel(PORT_HTTP, now).unwrap().0)
        .collect();
    let mut expected: Vec<u32> = (2..=31).collect();
    expected.push(1);
    assert_eq!(ids, expected);
    assert_eq!(
        host.open_channel(PORT_HTTP, now),
        Err(MuxError::NoFreeChannel { max: 31 })
    );
}

#[test]
fn close_handshake_both_directions() {
    let mut l = Link::established(false);
    let ch = open(&mut l, PORT_HTTP);
    let fw_ch = l.fw_channel();
    l.clear();
    // Host closes after data: the data goes first, then CHANNEL_CLOSE, then the ack.
    l.host.send(ch, b"POST /wsman").unwrap();
    l.host.close(ch).unwrap();
    assert_eq!(l.host.channel_state(ch), Some(ChannelState::Closing));
    assert_eq!(l.host.send(ch, b"x"), Err(MuxError::ChannelClosing(ch)));
    l.pump();
    assert_eq!(
        l.kinds(Dir::HostToFw),
        [kind::CHANNEL_DATA, kind::CHANNEL_CLOSE]
    );
    assert_eq!(l.kinds(Dir::FwToHost), [kind::CHANNEL_CLOSE]);
    assert!(l.fw_events.contains(&Event::ChannelClosed {
        channel: fw_ch,
        by_peer: true
    }));
    assert!(l.host_events.contains(&Event::ChannelClosed {
        channel: ch,
        by_peer: false
    }));
    assert_eq!((l.host.channel_count(), l.fw.channel_count()), (0, 0));

    // Firmware closes after its response, as AMT does (§5.2 step 11).
    let ch = open(&mut l, PORT_HTTP);
    let fw_ch = l.fw_channel();
    l.clear();
    l.fw.send(fw_ch, b"HTTP/1.1 200 OK\r\n").unwrap();
    l.fw.close(fw_ch).unwrap();
    l.pump();
    assert_eq!(
        l.wire.last(),
        Some(&(Dir::HostToFw, Message::ChannelClose { recipient: 0 }))
    );
    assert_eq!(l.drain_data(false), b"HTTP/1.1 200 OK\r\n");
    assert!(l.host_events.contains(&Event::ChannelClosed {
        channel: ch,
        by_peer: true
    }));
}

#[test]
fn stale_closes_are_ignored_and_not_acknowledged() {
    let mut l = Link::established(false);
    let ch = open(&mut l, PORT_HTTP);
    l.clear();
    // Recipient 0 after an MEI reinit names nothing on the host (its numbers start at 1).
    l.host
        .handle_message(Message::ChannelClose { recipient: 0 }, l.now);
    // A close for a channel still opening is not acknowledged either.
    let opening = l.host.open_channel(PORT_HTTP, l.now).unwrap();
    let _open_msg = l.host.poll_transmit();
    l.host.handle_message(
        Message::ChannelClose {
            recipient: opening.0,
        },
        l.now,
    );
    assert_eq!(l.host.poll_transmit(), None);
    let ignored = std::iter::from_fn(|| l.host.poll_event())
        .filter(|e| matches!(e, Event::Ignored { .. }))
        .count();
    assert_eq!(ignored, 2);
    assert_eq!(l.host.channel_state(ch), Some(ChannelState::Open));
    assert_eq!(l.host.channel_state(opening), Some(ChannelState::Opening));
}

#[test]
fn a_host_version_leaves_the_firmware_session_and_a_firmware_restart_kills_channels() {
    let mut l = Link::established(false);
    let ch = open(&mut l, PORT_HTTP);
    let fw_ch = l.fw_channel();
    l.clear();
    // rpc-go echoes every version it receives, possibly late: the firmware's session, which
    // lasts as long as the MEI connection, neither answers nor restarts.
    let echo = Message::ProtocolVersion(Config::firmware(false).version);
    l.fw.handle_bytes(&echo.encode(), l.now).unwrap();
    l.pump();
    assert!(l.wire.is_empty(), "the firmware answered: {:?}", l.wire);
    assert!(
        matches!(
            &l.fw_events[..],
            [Event::Ignored {
                message: "APF_PROTOCOLVERSION",
                ..
            }]
        ),
        "{:?}",
        l.fw_events
    );
    assert_eq!(l.fw.channel_count(), 1);
    assert_eq!(l.host.channel_state(ch), Some(ChannelState::Open));
    assert!(l.fw.is_established());

    // The firmware may restart (a new MEI connection does): the host follows and loses channels.
    l.clear();
    l.fw.start();
    l.pump();
    assert_eq!(
        l.host_events[0],
        Event::SessionRestarted { closed: vec![ch] }
    );
    assert_eq!(
        l.fw_events[0],
        Event::SessionRestarted {
            closed: vec![fw_ch]
        }
    );
    assert_eq!(l.host.send(ch, b"x"), Err(MuxError::UnknownChannel(ch)));
    assert!(l.host.is_established() && l.fw.is_established());
    assert_eq!(l.host.port_pair().map(|p| p.tls), Some(false));
}

#[test]
fn service_and_global_messages_before_the_version_are_protocol_errors() {
    let mut fw = Mux::new(Config::firmware(false));
    let now = Instant::now();
    fw.handle_message(
        Message::ServiceRequest {
            service: SERVICE_PFWD.into(),
        },
        now,
    );
    assert_eq!(fw.poll_transmit().unwrap().encode(), [1, 0, 0, 0, 2, 0, 0]);
    assert!(matches!(
        fw.poll_event(),
        Some(Event::Disconnected {
            reason: DisconnectReason::ProtocolError,
            by_peer: false,
            ..
        })
    ));

    let mut host = Mux::new(Config::host());
    host.handle_message(
        Message::GlobalRequest {
            want_reply: true,
            request: GlobalRequest::TcpipForward {
                address: "127.0.0.1".into(),
                port: PORT_HTTP,
            },
        },
        now,
    );
    assert_eq!(
        host.poll_transmit(),
        Some(Message::Disconnect {
            reason: DisconnectReason::ProtocolError
        })
    );
    assert!(host.forwards().is_empty());
    // A fresh PROTOCOLVERSION revives the link.
    host.handle_message(Message::ProtocolVersion(ProtocolVersion::rpc_go()), now);
    assert!(host.is_established());
}

#[test]
fn a_peer_overrunning_our_window_is_a_protocol_error() {
    let fw_cfg = Config {
        initial_window: 100,
        ..Config::firmware(false)
    };
    let mut l = Link::new(Config::host(), fw_cfg);
    l.host.start();
    l.pump();
    let ch = open(&mut l, PORT_HTTP);
    let fw_ch = l.fw_channel();
    l.clear();
    // A host that ignores the window (rpc-go only bookkeeps it).
    l.fw.handle_message(
        Message::ChannelData {
            recipient: fw_ch.0,
            data: vec![0; 101],
        },
        l.now,
    );
    l.pump();
    assert_eq!(
        l.wire,
        [(
            Dir::FwToHost,
            Message::Disconnect {
                reason: DisconnectReason::ProtocolError
            }
        )]
    );
    assert!(matches!(
        &l.fw_events[..],
        [Event::Disconnected { closed, detail, .. }]
            if closed == &vec![fw_ch] && detail.contains("window was 100")
    ));
    assert!(matches!(
        &l.host_events[..],
        [Event::Disconnected { by_peer: true, closed, .. }] if closed == &vec![ch]
    ));
}

#[test]
fn the_firmware_drops_undecodable_bytes_and_keeps_its_session() {
    let mut l = Link::established(false);
    let ch = open(&mut l, PORT_HTTP);
    l.clear();
    // A success reply cut short, and a message type APF does not know.
    assert!(l
        .fw
        .handle_bytes(&[94, 0, 0, 0, 1, 0, 0, 9], l.now)
        .is_err());
    assert!(l.fw.handle_bytes(&[], l.now).is_err());
    l.pump();
    assert!(l.wire.is_empty(), "the firmware answered: {:?}", l.wire);
    assert!(l.fw.is_established());
    assert_eq!(l.host.channel_state(ch), Some(ChannelState::Open));
}

#[test]
fn undecodable_bytes_and_old_versions_disconnect() {
    let now = Instant::now();
    let mut host = Mux::new(Config::host());
    assert!(host.handle_bytes(&[94, 0, 0, 0, 1, 0, 0, 9], now).is_err());
    assert_eq!(
        host.poll_transmit(),
        Some(Message::Disconnect {
            reason: DisconnectReason::ProtocolError
        })
    );

    let mut host = Mux::new(Config::host());
    host.handle_message(
        Message::ProtocolVersion(ProtocolVersion {
            major: 0,
            minor: 9,
            ..ProtocolVersion::rpc_go()
        }),
        now,
    );
    assert_eq!(
        host.poll_transmit(),
        Some(Message::Disconnect {
            reason: DisconnectReason::ProtocolVersionNotSupported
        })
    );
    assert!(!host.is_established());
}

#[test]
fn keepalive_and_userauth_are_answered() {
    let mut l = Link::established(false);
    l.host
        .handle_message(Message::KeepaliveRequest { cookie: 42 }, l.now);
    assert_eq!(
        l.host.poll_transmit(),
        Some(Message::KeepaliveReply { cookie: 42 })
    );
    l.fw.handle_message(
        Message::KeepaliveOptionsRequest {
            interval: 5,
            timeout: 15,
        },
        l.now,
    );
    assert_eq!(
        l.fw.poll_transmit(),
        Some(Message::KeepaliveOptionsReply {
            interval: 5,
            timeout: 15
        })
    );
    l.host.handle_message(
        Message::UserauthRequest {
            user: "u".into(),
            service: SERVICE_PFWD.into(),
            method: UserauthMethod::None,
        },
        l.now,
    );
    assert_eq!(l.host.poll_transmit(), Some(Message::UserauthSuccess));
}

#[test]
fn cancel_forward_and_udp_send_to() {
    let mut l = Link::established(false);
    l.fw.global_request(
        GlobalRequest::CancelTcpipForward {
            // The address the firmware advertised (its FQDN; none configured here).
            address: String::new(),
            port: PORT_REDIRECTION,
        },
        true,
    );
    l.fw.global_request(
        GlobalRequest::UdpSendTo {
            address: "10.0.0.1".into(),
            port: 53,
            originator_address: "::1".into(),
            originator_port: 1,
            data: vec![1],
        },
        true,
    );
    l.pump();
    assert_eq!(
        l.kinds(Dir::HostToFw),
        [kind::REQUEST_SUCCESS, kind::REQUEST_FAILURE]
    );
    let cancel_reply = l.wire.iter().find(|(d, _)| *d == Dir::HostToFw).unwrap();
    assert_eq!(
        cancel_reply.1.encode(),
        [81],
        "cancel is answered with a bare REQUEST_SUCCESS"
    );
    assert_eq!(l.host.forwards().len(), 1);
    assert_eq!(l.host.port_pair(), None);
    assert_eq!(l.fw.forwards().len(), 1);
    assert!(l
        .fw_events
        .iter()
        .any(|e| matches!(e, Event::GlobalRequestFailed { .. })));
    assert!(l
        .host_events
        .iter()
        .any(|e| matches!(e, Event::UdpSendTo { .. })));
}

#[test]
fn an_open_that_times_out_is_closed_when_confirmed_late() {
    let mut l = Link::established(false);
    let ch = l.host.open_channel(PORT_HTTP, l.now).unwrap();
    let held = l.host.poll_transmit().unwrap();
    assert_eq!(l.host.poll_timeout(), Some(l.now + Duration::from_secs(18)));
    l.host.handle_timeout(l.now + Duration::from_secs(17));
    assert_eq!(l.host.poll_event(), None);
    l.host.handle_timeout(l.now + Duration::from_secs(18));
    assert_eq!(
        l.host.poll_event(),
        Some(Event::ChannelOpenTimedOut { channel: ch })
    );
    assert_eq!(l.host.channel_state(ch), None);
    assert_eq!(l.host.poll_timeout(), None);
    // The open reaches the firmware late; its confirmation makes the host free the slot.
    l.fw.handle_message(held, l.now);
    l.pump();
    assert_eq!(l.fw.channel_count(), 0);
    assert_eq!(l.host.channel_count(), 0);
    assert!(!l
        .host_events
        .iter()
        .any(|e| matches!(e, Event::ChannelOpened { .. })));
}

#[test]
fn misuse_is_reported_not_panicked() {
    let mut l = Link::default_pair();
    assert_eq!(
        l.host.open_channel(PORT_HTTP, l.now),
        Err(MuxError::NotEstablished)
    );
    l.host.start();
    l.pump();
    let ch = open(&mut l, PORT_HTTP);
    assert_eq!(
        l.host.consume(ch, 1),
        Err(MuxError::ConsumeTooMuch {
            channel: ch,
            requested: 1,
            unconsumed: 0
        })
    );
    assert_eq!(
        l.host.accept_channel(ch),
        Err(MuxError::NotAwaitingAccept(ch))
    );
    assert_eq!(
        l.host.send(ChannelId(30), b"x"),
        Err(MuxError::UnknownChannel(ChannelId(30)))
    );
    assert_eq!(
        l.host.consume(ChannelId(30), 5),
        Ok(()),
        "gone channel: no-op"
    );
}

#[test]
fn after_a_peer_disconnect_a_fresh_version_is_answered() {
    let mut host = Mux::new(Config::host());
    let now = Instant::now();
    host.start();
    let _our_pv = host.poll_transmit();
    host.handle_message(
        Message::Disconnect {
            reason: DisconnectReason::ByApplication,
        },
        now,
    );
    assert!(matches!(
        host.poll_event(),
        Some(Event::Disconnected { by_peer: true, .. })
    ));
    let fw_pv = Config::firmware(false).version;
    host.handle_message(Message::ProtocolVersion(fw_pv), now);
    assert_eq!(
        host.poll_transmit(),
        Some(Message::ProtocolVersion(ProtocolVersion::rpc_go())),
        "the new session's version must be answered"
    );
    assert!(host.is_established());
}
