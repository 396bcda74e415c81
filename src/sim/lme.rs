//! The simulated LME client: the firmware's side of APF (transport.md §5, mei-clients.md). It
//! starts the APF session itself as firmware does for LMS (protocol version, `pfwd` service
//! request, `tcpip-forward` for the HTTP ports), answers a host that starts it (rpc-go), and serves
//! each forwarded channel with the AMT web server of [`super::amt`].

use std::collections::HashMap;
use std::time::Instant;

use super::profile::DeviceProfile;
use super::{ClientSession, FirmwareCore, Outgoing};
use crate::apf::mux::{ChannelId, Config, Event, Mux};
use crate::wsman::http::RequestParser;

struct HttpConn {
    parser: RequestParser,
    closing: bool,
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
        config.mtu = mtu as usize;
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
                    tracing::debug!(%channel, port, "LME: channel opened");
                    self.conns.insert(
                        channel,
                        HttpConn {
                            parser: RequestParser::new(),
                            closing: false,
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
        let mut input = data;
        loop {
            match conn.parser.feed(input) {
                Ok(Some(req)) => {
                    let reply = super::amt::handle(fw, &req, now);
                    if let Some(d) = reply.delay {
                        self.delay = d;
                    }
                    if !reply.bytes.is_empty() {
                        let _ = self.mux.send(channel, &reply.bytes);
                    }
                    if reply.close || reply.drop_after {
                        conn.closing = true;
                        let _ = self.mux.close(channel);
                        return;
                    }
                    input = &[];
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "LME: malformed HTTP; closing the channel");
                    let html = crate::wsman::http::encode_amt_400_html(
                        &crate::wsman::http::amt_server_header(fw.profile.amt_version()),
                        b"<html><body>Bad Request</body></html>",
                    );
                    let _ = self.mux.send(channel, &html);
                    conn.closing = true;
                    let _ = self.mux.close(channel);
                    return;
                }
            }
        }
    }
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
        self.flush(now, out);
    }
}
