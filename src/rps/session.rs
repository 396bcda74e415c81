//! The relay session as a state machine without I/O (STYLE.md: quinn-proto): text frames from RPS
//! and byte strings from AMT go in, frames for RPS and actions for the driver come out. The driver
//! only moves bytes and enforces deadlines.
//!
//! Rules (rps-protocol.md §1.1, §9 for amt-agent): one request, one answer; exactly one final
//! message; every frame under 102 400 bytes; progress only as notes.

use super::message::{
    client_message, heartbeat_response, parse_inbound, Identity, Inbound, MessageError, Outcome,
    MAX_MESSAGE_BYTES,
};

/// Where the session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The first message is sent; waiting for RPS.
    AwaitRps,
    /// A `wsman` request is with AMT; RPS must wait for its answer.
    AwaitAmt,
    /// A `port_switch` is being carried out.
    Switching,
    Finished,
}

/// What the driver must do next.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Write these raw HTTP bytes to AMT on a fresh connection and hand back the answer with
    /// [`RelaySession::amt_answer`].
    ToAmt(Vec<u8>),
    /// Write these raw TLS bytes to the tunnel connection to AMT (opened anew when `new_session`).
    TunnelToAmt { bytes: Vec<u8>, new_session: bool },
    /// Send this frame to RPS.
    ToRps(String),
    /// Show this progress note.
    Progress(String),
    /// Wait `delay_s`, retarget AMT connections to `port`, then call [`RelaySession::port_switched`].
    PortSwitch { port: u16, delay_s: u64 },
    /// The session is over.
    Done(Result<Outcome, Outcome>),
}

/// Why the session cannot go on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error("AMT's answer would make a {size}-byte message, over RPS's limit of {MAX_MESSAGE_BYTES} bytes (RPS would close the connection)")]
    TooLarge { size: usize },
    #[error(
        "RPS sent {what} while {state:?}: it must wait for the answer to its previous request"
    )]
    OutOfTurn { what: &'static str, state: State },
    #[error("RPS sent {what} after its final message")]
    AfterEnd { what: &'static str },
}

/// One relay session.
#[derive(Debug)]
pub struct RelaySession {
    id: Identity,
    state: State,
    /// Answers go back as `tls_data` (TLS enforced, or after a port switch).
    tunnel: bool,
    exchanges: u32,
}

fn kind(i: &Inbound) -> &'static str {
    match i {
        Inbound::Wsman(_) => "a wsman request",
        Inbound::Success(_) => "success",
        Inbound::Error(_) => "error",
        Inbound::Progress(_) => "progress",
        Inbound::Heartbeat(_) => "a heartbeat",
        Inbound::PortSwitch { .. } => "port_switch",
        Inbound::TlsData(_) => "tls_data",
    }
}

impl RelaySession {
    pub fn new(id: Identity, tls_tunnel: bool) -> RelaySession {
        RelaySession {
            id,
            state: State::AwaitRps,
            tunnel: tls_tunnel,
            exchanges: 0,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// WS-MAN requests relayed so far.
    pub fn exchanges(&self) -> u32 {
        self.exchanges
    }

    pub fn is_tunnel(&self) -> bool {
        self.tunnel
    }

    /// A text frame from RPS.
    pub fn handle_text(&mut self, text: &str) -> Result<Action, SessionError> {
        let m = parse_inbound(text)?;
        if self.state == State::Finished {
            return Err(SessionError::AfterEnd { what: kind(&m) });
        }
        match m {
            Inbound::Heartbeat(v) => Ok(Action::ToRps(heartbeat_response(&v))),
            Inbound::Progress(p) => Ok(Action::Progress(p)),
            Inbound::Success(o) => {
                self.state = State::Finished;
                Ok(Action::Done(Ok(o)))
            }
            Inbound::Error(o) => {
                self.state = State::Finished;
                Ok(Action::Done(Err(o)))
            }
            other if self.state != State::AwaitRps && !self.tunnel => {
                Err(SessionError::OutOfTurn {
                    what: kind(&other),
                    state: self.state,
                })
            }
            Inbound::Wsman(bytes) if !self.tunnel => {
                self.state = State::AwaitAmt;
                self.exchanges += 1;
                Ok(Action::ToAmt(bytes))
            }
            Inbound::Wsman(bytes) | Inbound::TlsData(bytes) => {
                // rpc-go.md §3.7: a ClientHello starts a new TLS session on a new connection.
                let new_session = bytes.len() > 5 && bytes[0] == 0x16 && bytes[5] == 0x01;
                self.tunnel = true;
                self.exchanges += 1;
                Ok(Action::TunnelToAmt { bytes, new_session })
            }
            Inbound::PortSwitch { port, delay_s } => {
                self.state = State::Switching;
                Ok(Action::PortSwitch { port, delay_s })
            }
        }
    }

    /// AMT's complete raw answer to the last `wsman` request: the `response` frame for RPS.
    pub fn amt_answer(&mut self, raw: &[u8]) -> Result<String, SessionError> {
        if self.state != State::AwaitAmt {
            return Err(SessionError::OutOfTurn {
                what: "an AMT answer",
                state: self.state,
            });
        }
        let frame = client_message(&self.id, "response", raw);
        if frame.len() > MAX_MESSAGE_BYTES {
            return Err(SessionError::TooLarge { size: frame.len() });
        }
        self.state = State::AwaitRps;
        Ok(frame)
    }

    /// Bytes AMT sent on the TLS tunnel.
    pub fn tunnel_data(&mut self, raw: &[u8]) -> Result<String, SessionError> {
        let frame = client_message(&self.id, "tls_data", raw);
        if frame.len() > MAX_MESSAGE_BYTES {
            return Err(SessionError::TooLarge { size: frame.len() });
        }
        Ok(frame)
    }

    /// AMT closed the tunnel connection (`lms_error` when it could not be opened).
    pub fn tunnel_closed(&mut self, lms_error: bool) -> String {
        let what: &[u8] = if lms_error {
            b"lms_error"
        } else {
            b"connection_closed"
        };
        client_message(&self.id, "connection_reset", what)
    }

    /// The port switch is done: the `port_switch_ack` frame; later answers travel as `tls_data`.
    pub fn port_switched(&mut self) -> String {
        self.tunnel = true;
        self.state = State::AwaitRps;
        client_message(&self.id, "port_switch_ack", b"ok")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn sess() -> RelaySession {
        RelaySession::new(
            Identity {
                app_version: "t".into(),
                tenant_id: String::new(),
            },
            false,
        )
    }

    fn wsman(bytes: &[u8]) -> String {
        format!(
            r#"{{"method":"wsman","status":"ok","message":"","payload":"{}"}}"#,
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    }

    #[test]
    fn one_request_one_answer() {
        let mut s = sess();
        assert_eq!(
            s.handle_text(&wsman(b"POST /wsman")).unwrap(),
            Action::ToAmt(b"POST /wsman".to_vec())
        );
        assert!(matches!(
            s.handle_text(&wsman(b"again")),
            Err(SessionError::OutOfTurn { .. })
        ));
        let f = s.amt_answer(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["method"], "response");
        assert_eq!(v["protocolVersion"], "4.0.0");
        assert!(s.amt_answer(b"x").is_err());
        assert!(matches!(
            s.handle_text(r#"{"method":"progress","message":"Activation completed","payload":null}"#).unwrap(),
            Action::Progress(p) if p == "Activation completed"
        ));
        let done = s
            .handle_text(r#"{"method":"success","status":"success","message":"{\"Status\":\"Deactivated\"}","payload":null}"#)
            .unwrap();
        assert!(matches!(done, Action::Done(Ok(o)) if o.status == "Deactivated"));
        assert_eq!(s.state(), State::Finished);
        assert!(s.handle_text(&wsman(b"late")).is_err());
    }

    #[test]
    fn an_answer_over_the_limit_is_refused() {
        let mut s = sess();
        s.handle_text(&wsman(b"POST")).unwrap();
        let big = vec![b'a'; 80 * 1024];
        assert!(matches!(
            s.amt_answer(&big),
            Err(SessionError::TooLarge { size }) if size > MAX_MESSAGE_BYTES
        ));
        let ok = vec![b'a'; 70 * 1024];
        let mut s = sess();
        s.handle_text(&wsman(b"POST")).unwrap();
        assert!(s.amt_answer(&ok).is_ok());
    }

    #[test]
    fn port_switch_then_tunnel_data() {
        let mut s = sess();
        let a = s
            .handle_text(r#"{"method":"port_switch","status":"ok","payload":"{\"port\":\"16993\",\"delay\":0}"}"#)
            .unwrap();
        assert_eq!(
            a,
            Action::PortSwitch {
                port: 16993,
                delay_s: 0
            }
        );
        let ack: serde_json::Value = serde_json::from_str(&s.port_switched()).unwrap();
        assert_eq!(ack["method"], "port_switch_ack");
        assert_eq!(ack["payload"], "b2s=");
        let hello = [0x16, 3, 1, 0, 5, 1, 0, 0, 0];
        let msg = format!(
            r#"{{"method":"tls_data","status":"ok","payload":"{}"}}"#,
            base64::engine::general_purpose::STANDARD.encode(hello)
        );
        assert_eq!(
            s.handle_text(&msg).unwrap(),
            Action::TunnelToAmt {
                bytes: hello.to_vec(),
                new_session: true
            }
        );
        let r: serde_json::Value =
            serde_json::from_str(&s.tunnel_data(b"\x16\x03").unwrap()).unwrap();
        assert_eq!(r["method"], "tls_data");
        let c: serde_json::Value = serde_json::from_str(&s.tunnel_closed(false)).unwrap();
        assert_eq!(c["payload"], "Y29ubmVjdGlvbl9jbG9zZWQ=");
    }
}
