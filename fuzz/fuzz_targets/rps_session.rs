//! The RPS relay session (`rps::session::RelaySession`) driven by a script of what RPS and AMT
//! send, with the relay's own parsing of the bytes it carries (`rps::request_call`,
//! `rps::amt_failure`, and `rps::sent_certificate` with the chain put in order as the agent does
//! to diagnose a chain AMT refuses). Input: `[tls flag]` then records `[op][u16 BE length][bytes]`: a text
//! frame from RPS, AMT's answer to the last request, bytes from AMT on a tunnel connection (the
//! current one or a replaced one), or a connection event (opened, written to, dropped, closed by
//! AMT, failed to open, port switch finished).
//!
//! Checked: one request, one answer (a request is only handed to AMT while RPS waits, an answer
//! only taken while AMT has a request); nothing after the final message; exchanges and tunnel
//! messages count what was relayed; every frame for RPS is a JSON object with its method and
//! carries the bytes it was given; answers and tunnel data are refused, not sent, over RPS's size
//! limit; a replaced connection's bytes and close reach RPS never; `connection_reset` is sent
//! exactly when AMT closes without answering RPS's last write (checked against a model of the
//! connection).
#![no_main]

use amt_agent::provisioning::load::{order, CertFacts};
use amt_agent::rps::message::{parse_inbound, Identity, Inbound, MAX_MESSAGE_BYTES};
use amt_agent::rps::session::{Action, RelaySession, SessionError, State};
use amt_agent::rps::{amt_failure, request_call, sent_certificate};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn chunk(&mut self) -> Option<&'a [u8]> {
        let n = u16::from_be_bytes([self.byte()?, self.byte()?]) as usize;
        let n = n.min(self.0.len());
        let (c, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(c)
    }
}

/// A frame the agent sends to RPS: valid, and (when `bytes`) carrying them.
fn frame(text: &str, method: &str, bytes: Option<&[u8]>) {
    let v: Value = serde_json::from_str(text).expect("the agent's frame is JSON");
    assert_eq!(v["method"], method);
    if let Some(b) = bytes {
        let expected = if method == "tls_data" {
            Inbound::TlsData(b.to_vec())
        } else {
            Inbound::Wsman(b.to_vec())
        };
        assert_eq!(parse_inbound(text), Ok(expected));
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some(flags) = input.byte() else { return };
    let id = Identity {
        app_version: "0.1.0".into(),
        tenant_id: String::new(),
    };
    let mut s = RelaySession::new(id, flags & 1 == 1);
    let mut request: Vec<u8> = Vec::new();
    let mut chain: Vec<CertFacts> = Vec::new();
    let mut steps = 0;
    // The model of the tunnel connection: (id, AMT owes an answer), and the last id handed out.
    let mut conn: Option<(u64, bool)> = None;
    let mut last_id = 0u64;
    while let Some(op) = input.byte() {
        steps += 1;
        if steps > 64 {
            break;
        }
        let (state, tunnel, exchanges) = (s.state(), s.is_tunnel(), s.exchanges());
        let tunnel_messages = s.tunnel_messages();
        // The connection an event names: the current one, or one replaced before it.
        let target = if op & 0x80 != 0 {
            conn.map_or(last_id, |c| c.0)
        } else {
            last_id.saturating_sub(1)
        };
        match op % 5 {
            0 | 1 => {
                let Some(bytes) = input.chunk() else { break };
                let text = String::from_utf8_lossy(bytes);
                match s.handle_text(&text) {
                    Ok(Action::ToAmt(req)) => {
                        assert!(state == State::AwaitRps && !tunnel, "{state:?}");
                        assert_eq!(s.state(), State::AwaitAmt);
                        assert_eq!(s.exchanges(), exchanges + 1);
                        let _ = request_call(&req);
                        if let Some((der, leaf)) = sent_certificate(&req) {
                            if leaf {
                                chain.clear();
                            }
                            if let Ok(c) = CertFacts::from_der(&der) {
                                chain.push(c);
                                let (ordered, rest) = order(chain.clone(), None);
                                assert_eq!(ordered.len() + rest.len(), chain.len());
                            }
                        }
                        request = req;
                    }
                    Ok(Action::TunnelToAmt { bytes, new_session }) => {
                        assert!(s.is_tunnel());
                        assert_eq!(s.exchanges(), exchanges);
                        assert_eq!(s.tunnel_messages(), tunnel_messages + 1);
                        assert!(!new_session || bytes.len() > 5);
                        assert!(new_session || conn.is_some());
                    }
                    Ok(Action::Discard { bytes }) => {
                        assert!(s.is_tunnel() && conn.is_none());
                        assert!(bytes <= text.len());
                        assert_eq!(s.tunnel_messages(), tunnel_messages);
                    }
                    Ok(Action::ToRps(f)) => {
                        frame(&f, "heartbeat_response", None);
                        assert_eq!(s.state(), state);
                    }
                    Ok(Action::Progress(_)) => assert_eq!(s.state(), state),
                    Ok(Action::PortSwitch { .. }) => {
                        assert!(state == State::AwaitRps || tunnel, "{state:?}");
                        assert_eq!(s.state(), State::Switching);
                    }
                    Ok(Action::Done(o)) => {
                        assert_ne!(state, State::Finished);
                        assert_eq!(s.state(), State::Finished);
                        let o = o.unwrap_or_else(|e| e);
                        let _ = (o.mode(), o.components.len());
                    }
                    Err(SessionError::AfterEnd { .. }) => assert_eq!(state, State::Finished),
                    Err(SessionError::OutOfTurn { .. }) => {
                        assert!(state != State::AwaitRps && !tunnel);
                        assert_eq!(s.state(), state);
                    }
                    Err(e) => {
                        let _ = e.to_string();
                        assert_eq!(s.state(), state);
                    }
                }
            }
            2 => {
                let Some(answer) = input.chunk() else { break };
                let _ = amt_failure(&request, answer).map(|f| f.to_string());
                match s.amt_answer(answer) {
                    Ok(f) => {
                        assert_eq!(state, State::AwaitAmt);
                        assert_eq!(s.state(), State::AwaitRps);
                        assert!(f.len() <= MAX_MESSAGE_BYTES);
                        frame(&f, "response", Some(answer));
                    }
                    Err(SessionError::TooLarge { size }) => assert!(size > MAX_MESSAGE_BYTES),
                    Err(e) => {
                        assert_ne!(state, State::AwaitAmt, "{e}");
                        assert_eq!(s.state(), state);
                    }
                }
            }
            3 => {
                let Some(bytes) = input.chunk() else { break };
                let current = conn.is_some_and(|c| c.0 == target);
                match s.tunnel_data(target, bytes) {
                    Ok(Some(f)) => {
                        assert!(current, "bytes of a replaced connection reached RPS");
                        assert!(f.len() <= MAX_MESSAGE_BYTES);
                        frame(&f, "tls_data", Some(bytes));
                        conn = Some((target, false));
                    }
                    Ok(None) => assert!(!current),
                    Err(SessionError::TooLarge { size }) => {
                        // AMT did answer; the session ends over the size.
                        assert!(current && size > MAX_MESSAGE_BYTES);
                        conn = Some((target, false));
                    }
                    Err(e) => panic!("tunnel data: {e}"),
                }
            }
            _ => match (op >> 3) % 6 {
                0 => {
                    frame(&s.port_switched(), "port_switch_ack", Some(b"ok"));
                    assert!(s.is_tunnel());
                    assert_eq!(s.state(), State::AwaitRps);
                    conn = None;
                }
                1 => {
                    let id = s.tunnel_opened();
                    assert!(id > last_id, "connection ids are never reused");
                    last_id = id;
                    conn = Some((id, false));
                }
                2 => {
                    s.tunnel_wrote(target);
                    if let Some(c) = conn.as_mut().filter(|c| c.0 == target) {
                        c.1 = true;
                    }
                }
                3 => {
                    s.tunnel_dropped();
                    conn = None;
                }
                4 => {
                    let owed = conn.is_some_and(|c| c.0 == target && c.1);
                    match s.tunnel_closed(target) {
                        Some(f) => {
                            assert!(owed, "connection_reset after AMT had answered");
                            frame(&f, "connection_reset", Some(b"connection_closed"));
                        }
                        None => assert!(!owed, "AMT closed without answering; RPS not told"),
                    }
                    if conn.is_some_and(|c| c.0 == target) {
                        conn = None;
                    }
                }
                _ => {
                    frame(
                        &s.tunnel_open_failed(),
                        "connection_reset",
                        Some(b"lms_error"),
                    );
                    conn = None;
                }
            },
        }
    }
});
