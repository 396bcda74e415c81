//! The simulated LME client: the firmware's side of APF (transport.md §5, mei-clients.md). It
//! starts the APF session itself as firmware does for LMS (protocol version, `pfwd` service
//! request, `tcpip-forward` for the HTTP ports), answers a host that starts it (rpc-go), and serves
//! each forwarded channel with the AMT web server of [`super::amt`]. The session lasts as long as
//! the MEI connection: a host's later version (rpc-go's echo), an unanswered `tcpip-forward`
//! (rpc-go leaves 623 unanswered) and undecodable messages neither end nor restart it
//! (docs/simulator.md, "The LME client").
//!
//! On a profile with TLS enforced on the local ports (AMT 19+) the session advertises 16993/664
//! instead of 16992/623, so a channel to 16992 is refused by the multiplexer; each channel to 16993
//! runs a sans-IO `rustls::ServerConnection`: channel bytes go in with `read_tls`, the plaintext
//! requests are served with [`super::amt::handle_on`], the responses go out through `writer()` and
//! `write_tls`. The certificate follows the control mode at the channel's open: the On-Die-CA-shaped
//! chain of [`super::tls::odca_chain`] in pre-provisioning, the self-signed one once activated. A
//! client certificate is asked for but optional; the chain the client sent reaches the web server in
//! [`super::amt::ConnInfo::client_chain`].

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rustls::{ServerConfig, ServerConnection};

use super::amt::ConnInfo;
use super::profile::DeviceProfile;
use super::tls::{ClientCertMode, ServerIdentity};
use super::{ClientSession, FirmwareCore, Outgoing};
use crate::apf::mux::{
    ChannelId, Config, Event, Mux, PORT_HTTP, PORT_HTTPS, PORT_REDIRECTION, PORT_REDIRECTION_TLS,
};
use crate::wsman::http::RequestParser;

struct HttpConn {
    parser: RequestParser,
    closing: bool,
    /// The TLS session of a channel to 16993 (None: plain HTTP).
    tls: Option<Box<ServerConnection>>,
    info: ConnInfo,
}

/// The server config of the simulated port 16993 for `identity`, built once per process.
pub(crate) fn tls_config(identity: ServerIdentity) -> Arc<ServerConfig> {
    static ODCA: OnceLock<Arc<ServerConfig>> = OnceLock::new();
    static SELF_SIGNED: OnceLock<Arc<ServerConfig>> = OnceLock::new();
    let cell = match identity {
        ServerIdentity::OdcaChain => &ODCA,
        ServerIdentity::SelfSigned => &SELF_SIGNED,
    };
    cell.get_or_init(|| super::tls::server_config(identity, ClientCertMode::Optional))
        .clone()
}

/// The server config of the local port 16993 now, `None` when it serves no TLS: the certificate
/// CommitChanges bound (`AMT_TLSCredentialContext`), else on a device that enforces TLS its
/// factory identity (the On-Die-CA-shaped chain before activation, its self-signed certificate
/// after).
pub(crate) fn local_tls_config(p: &DeviceProfile) -> Option<Arc<ServerConfig>> {
    let ports = super::amt::classes::tls::local_ports(p);
    if !ports.tls {
        return None;
    }
    match ports.certificate {
        Some((cert, key)) => super::tls::configured_server_config(&cert, &key),
        None => Some(tls_config(if p.control_mode == 0 {
            ServerIdentity::OdcaChain
        } else {
            ServerIdentity::SelfSigned
        })),
    }
}

/// The ports the firmware forwards over LME: the management and redirection pair of each
/// protocol the local interface serves (plain 16992 + 623, TLS 16993 + 664).
pub(crate) fn forwarded_ports(p: &DeviceProfile) -> Vec<u32> {
    let (plain, tls) = super::amt::classes::tls::local_port_flags(p);
    let mut v = Vec::new();
    if plain {
        v.extend([PORT_HTTP, PORT_REDIRECTION]);
    }
    if tls {
        v.extend([PORT_HTTPS, PORT_REDIRECTION_TLS]);
    }
    v
}

pub struct LmeSession {
    mux: Mux,
    conns: HashMap<ChannelId, HttpConn>,
    /// Delay for what the current message produces (`wsman-latency` fault).
    delay: std::time::Duration,
}

impl LmeSession {
    pub fn new(p: &DeviceProfile, mtu: u32) -> LmeSession {
        let mut config = Config::firmware(p.tls_enforced);
        config.advertised_ports = forwarded_ports(p);
        config.mtu = mtu as usize;
        // Real firmware's version carries the platform UUID (rpc-go issue #1119 logs it as the
        // SystemId); the bytes are those AMTHI GET_UUID answers.
        if let Some(uuid) = crate::amthi::messages::AmtUuid::parse(&p.uuid) {
            config.version.uuid = uuid.0;
        }
        config.forward_bind_address = super::amt::amt_fqdn(p);
        LmeSession {
            mux: Mux::new(config),
            conns: HashMap::new(),
            delay: std::time::Duration::ZERO,
        }
    }

    fn flush(&mut self, now: Instant, out: &mut Vec<Outgoing>) {
        while let Some(m) = self.mux.poll_transmit() {
            tracing::trace!(message = m.name(), "LME →");
            out.push(Outgoing {
                at: now + self.delay,
                bytes: m.encode(),
            });
        }
    }

    fn events(&mut self, fw: &mut FirmwareCore, now: Instant) {
        while let Some(ev) = self.mux.poll_event() {
            match ev {
                Event::ChannelOpened {
                    channel,
                    port,
                    incoming: true,
                } => {
                    let tls = if port == PORT_HTTPS {
                        match local_tls_config(&fw.profile).map(ServerConnection::new) {
                            Some(Ok(c)) => Some(Box::new(c)),
                            Some(Err(e)) => {
                                tracing::error!(error = %e, "LME: cannot start TLS; closing the channel");
                                let _ = self.mux.close(channel);
                                continue;
                            }
                            None => {
                                tracing::debug!(
                                    "LME: no TLS on the local interface; closing the channel"
                                );
                                let _ = self.mux.close(channel);
                                continue;
                            }
                        }
                    } else {
                        None
                    };
                    tracing::debug!(%channel, port, tls = tls.is_some(), "LME: channel opened");
                    self.conns.insert(
                        channel,
                        HttpConn {
                            parser: RequestParser::new(),
                            closing: false,
                            info: ConnInfo {
                                tls: tls.is_some(),
                                client_chain: Vec::new(),
                            },
                            tls,
                        },
                    );
                }
                Event::Data { channel, data } => {
                    let _ = self.mux.consume(channel, data.len() as u32);
                    self.serve(fw, channel, &data, now);
                }
                Event::ChannelClosed { channel, .. } => {
                    self.conns.remove(&channel);
                }
                Event::SessionRestarted { closed } | Event::Disconnected { closed, .. } => {
                    for c in closed {
                        self.conns.remove(&c);
                    }
                }
                other => tracing::trace!(event = ?other, "LME event"),
            }
        }
    }

    fn serve(&mut self, fw: &mut FirmwareCore, channel: ChannelId, data: &[u8], now: Instant) {
        let Some(conn) = self.conns.get_mut(&channel) else {
            return;
        };
        if conn.closing {
            return;
        }
        let plain = match conn.tls.as_deref_mut() {
            None => data.to_vec(),
            Some(tls) => match tls_input(tls, data) {
                Ok(p) => {
                    if conn.info.client_chain.is_empty() && !tls.is_handshaking() {
                        if let Some(chain) = super::tls::client_chain(tls) {
                            tracing::debug!(%channel, certificates = chain.len(), "LME: TLS client certificate");
                            conn.info.client_chain = chain.iter().map(|c| c.to_vec()).collect();
                        }
                    }
                    p
                }
                Err(e) => {
                    tracing::debug!(%channel, error = %e, "LME: TLS failed; closing the channel");
                    let alert = tls_output(tls);
                    if !alert.is_empty() {
                        let _ = self.mux.send(channel, &alert);
                    }
                    conn.closing = true;
                    let _ = self.mux.close(channel);
                    return;
                }
            },
        };
        let mut input: &[u8] = &plain;
        let mut out = Vec::new();
        let mut close = false;
        // A dropped connection (a drop fault) ends without TLS close_notify: the firmware's
        // network stack went away, it did not close the session.
        let mut dropped = false;
        loop {
            match conn.parser.feed(input) {
                Ok(Some(req)) => {
                    let reply = super::amt::handle_on(fw, &req, &conn.info, now);
                    if let Some(d) = reply.delay {
                        self.delay = d;
                    }
                    out.extend_from_slice(&reply.bytes);
                    if reply.close || reply.drop_after {
                        close = true;
                        dropped = reply.drop_after;
                        break;
                    }
                    input = &[];
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "LME: malformed HTTP; closing the channel");
                    out.extend_from_slice(&crate::wsman::http::encode_amt_400_html(
                        &crate::wsman::http::amt_server_header(fw.profile.amt_version()),
                        b"<html><body>Bad Request</body></html>",
                    ));
                    close = true;
                    break;
                }
            }
        }
        let wire = match conn.tls.as_deref_mut() {
            None => out,
            Some(tls) => {
                if !out.is_empty() {
                    if let Err(e) = tls.writer().write_all(&out) {
                        tracing::debug!(error = %e, "LME: TLS writer refused the response");
                    }
                }
                if close && !dropped {
                    tls.send_close_notify();
                }
                tls_output(tls)
            }
        };
        if !wire.is_empty() {
            let _ = self.mux.send(channel, &wire);
        }
        if close {
            conn.closing = true;
            let _ = self.mux.close(channel);
        }
    }
}

/// Feeds channel bytes to a TLS session and returns the plaintext they completed.
fn tls_input(tls: &mut ServerConnection, mut data: &[u8]) -> Result<Vec<u8>, rustls::Error> {
    let mut plain = Vec::new();
    while !data.is_empty() {
        if tls
            .read_tls(&mut data)
            .map_err(|e| rustls::Error::General(e.to_string()))?
            == 0
        {
            break;
        }
        tls.process_new_packets()?;
        let mut buf = [0u8; 4096];
        loop {
            match tls.reader().read(&mut buf) {
                Ok(0) => break,
                Ok(n) => plain.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(rustls::Error::General(e.to_string())),
            }
        }
    }
    Ok(plain)
}

/// What the TLS session wants sent on the channel (handshake records, application data, alerts).
fn tls_output(tls: &mut ServerConnection) -> Vec<u8> {
    let mut wire = Vec::new();
    while tls.wants_write() {
        if tls.write_tls(&mut wire).is_err() {
            break;
        }
    }
    wire
}

impl ClientSession for LmeSession {
    fn on_connect(&mut self, _fw: &mut FirmwareCore, now: Instant, out: &mut Vec<Outgoing>) {
        // Firmware opens the APF session for LMS, which waits for it (mei-clients.md).
        self.mux.start();
        self.flush(now, out);
    }

    fn on_message(
        &mut self,
        fw: &mut FirmwareCore,
        msg: &[u8],
        now: Instant,
        out: &mut Vec<Outgoing>,
    ) {
        self.delay = std::time::Duration::ZERO;
        if let Err(e) = self.mux.handle_bytes(msg, now) {
            tracing::debug!(error = %e, "LME: undecodable APF message");
        }
        self.events(fw, now);
        // A CommitChanges that turned TLS on or off changes the ports the firmware forwards.
        self.mux.set_advertised_ports(forwarded_ports(&fw.profile));
        self.flush(now, out);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::{profile, Firmware, SimHandle};
    use crate::apf::codec::{GlobalRequest, Message, ProtocolVersion, TriggerReason};
    use crate::heci::guid;

    fn next(h: &SimHandle) -> Option<Message> {
        h.read(Some(Instant::now() + Duration::from_millis(200)), false)
            .ok()
            .map(|b| Message::decode(&b).expect("the firmware sends decodable APF"))
    }

    fn drain(h: &SimHandle) -> Vec<Message> {
        std::iter::from_fn(|| next(h)).collect()
    }

    fn send(h: &SimHandle, m: &Message) {
        h.write(&m.encode()).unwrap();
    }

    /// rpc-go v2's handshake: its version first, then answer one message at a time, echoing the
    /// firmware's version and leaving the 623 forward unanswered.
    #[test]
    fn rpc_go_s_echo_and_unanswered_forward_leave_one_session() {
        let fw = Firmware::from_profile_name(Some("amt16.1")).unwrap();
        let h = fw.connect(guid::LME).unwrap();
        send(&h, &Message::ProtocolVersion(ProtocolVersion::rpc_go()));
        let Some(Message::ProtocolVersion(pv)) = next(&h) else {
            panic!("the firmware's version comes first");
        };
        assert_eq!((pv.major, pv.minor), (1, 0));
        assert_eq!(pv.trigger, TriggerReason::LmeRequest);
        let uuid = crate::amthi::messages::AmtUuid(pv.uuid).text();
        assert_eq!(
            uuid,
            fw.lock().profile.uuid,
            "the version carries the platform UUID"
        );
        send(&h, &Message::ProtocolVersion(pv)); // the echo
        let rest = drain(&h);
        let kinds: Vec<&str> = rest.iter().map(Message::name).collect();
        assert_eq!(kinds, ["APF_SERVICE_REQUEST"], "the echo restarts nothing");
        send(
            &h,
            &Message::ServiceAccept {
                service: "pfwd@amt.intel.com".into(),
            },
        );
        let forwards = drain(&h);
        let ports: Vec<u32> = forwards
            .iter()
            .map(|m| match m {
                Message::GlobalRequest {
                    want_reply: true,
                    request: GlobalRequest::TcpipForward { address, port },
                } => {
                    assert_eq!(address, "", "no AMT host name is configured yet");
                    *port
                }
                other => panic!("expected tcpip-forward, got {other:?}"),
            })
            .collect();
        assert_eq!(ports, [16992, 623]);
        send(&h, &Message::RequestSuccess { port: Some(16992) });
        // 623 is never answered; a garbage message and a late echo change nothing either.
        h.write(&[0x51, 0x00]).unwrap();
        send(&h, &Message::ProtocolVersion(pv));
        assert!(
            drain(&h).is_empty(),
            "nothing answers garbage or a late echo"
        );
        send(
            &h,
            &Message::ChannelOpen(crate::apf::codec::ChannelOpen {
                channel_type: "forwarded-tcpip".into(),
                sender: 2,
                window: 4096,
                connected_address: "::1".into(),
                connected_port: 16992,
                originator_address: "::1".into(),
                originator_port: 123,
            }),
        );
        assert!(matches!(
            next(&h),
            Some(Message::ChannelOpenConfirmation { recipient: 2, .. })
        ));
    }

    #[test]
    fn the_forward_address_is_amt_s_configured_fqdn() {
        let mut p = profile::builtin("amt16.1").unwrap();
        super::super::amt::seed_instances(&mut p);
        let gs = &mut p.instances.get_mut("AMT_GeneralSettings").unwrap()[0];
        for (k, v) in gs.iter_mut() {
            match k.as_str() {
                "HostName" => *v = "wks-0042".into(),
                "DomainName" => *v = "corp.example.com".into(),
                _ => {}
            }
        }
        assert_eq!(super::super::amt::amt_fqdn(&p), "wks-0042.corp.example.com");
        let fw = Firmware::new(p, super::super::faults::FaultPlan::new(Vec::new()), None);
        let h = fw.connect(guid::LME).unwrap();
        // LMS style: the firmware speaks first; the host answers its version and the service.
        let Some(Message::ProtocolVersion(_)) = next(&h) else {
            panic!("the firmware starts the session");
        };
        send(
            &h,
            &Message::ProtocolVersion(ProtocolVersion {
                trigger: TriggerReason::LmeRequest,
                ..ProtocolVersion::rpc_go()
            }),
        );
        assert!(matches!(next(&h), Some(Message::ServiceRequest { .. })));
        send(
            &h,
            &Message::ServiceAccept {
                service: "pfwd@amt.intel.com".into(),
            },
        );
        for m in drain(&h) {
            let Message::GlobalRequest {
                request: GlobalRequest::TcpipForward { address, .. },
                ..
            } = m
            else {
                panic!("expected tcpip-forward, got {m:?}");
            };
            assert_eq!(address, "wks-0042.corp.example.com");
        }
    }
}
