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
    /// Tunnel bytes for a TLS session whose connection to AMT is gone: nothing to do.
    Discard { bytes: usize },
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

/// The TLS tunnel's current connection to AMT.
#[derive(Clone, Copy, Debug)]
struct TunnelConn {
    id: u64,
    /// RPS's last bytes went to AMT and AMT has sent nothing since.
    awaiting: bool,
}

/// One relay session.
#[derive(Debug)]
pub struct RelaySession {
    id: Identity,
    state: State,
    /// Answers go back as `tls_data` (TLS enforced, or after a port switch).
    tunnel: bool,
    /// WS-MAN requests relayed as plain HTTP (`wsman` → `response`).
    exchanges: u32,
    /// RPS messages whose bytes went into the TLS tunnel: TLS records, not WS-MAN calls (a
    /// handshake alone takes several).
    tunnel_messages: u32,
    /// The tunnel's connection to AMT, if one is open; ids tell a replaced connection's late
    /// bytes and close from the current one's.
    conn: Option<TunnelConn>,
    next_conn: u64,
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
            tunnel_messages: 0,
            conn: None,
            next_conn: 0,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// WS-MAN requests relayed as plain HTTP so far.
    pub fn exchanges(&self) -> u32 {
        self.exchanges
    }

    /// RPS messages relayed into the TLS tunnel so far.
    pub fn tunnel_messages(&self) -> u32 {
        self.tunnel_messages
    }

    /// What was relayed, for messages: `12 WS-MAN exchanges`, `30 tunnel messages`, or both when
    /// a port switch moved the session into the tunnel; the current mode's unit when nothing was.
    pub fn relayed(&self) -> String {
        fn count(n: u32, unit: &str) -> String {
            format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
        }
        let plain = count(self.exchanges, "WS-MAN exchange");
        let tunnel = count(self.tunnel_messages, "tunnel message");
        match (self.exchanges, self.tunnel_messages) {
            (0, 0) if self.tunnel => tunnel,
            (_, 0) => plain,
            (0, _) => tunnel,
            _ => format!("{plain} and {tunnel}"),
        }
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
                if !new_session && self.conn.is_none() {
                    // The tail of a TLS session whose connection AMT closed (typically RPS's
                    // close_notify in reply to AMT's). A fresh connection could only refuse it,
                    // and its alert would land in RPS's next session.
                    return Ok(Action::Discard { bytes: bytes.len() });
                }
                self.tunnel_messages += 1;
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

    /// A new tunnel connection to AMT is open (rpc-go.md §3.7: one per TLS session): its id for
    /// [`RelaySession::tunnel_data`] and [`RelaySession::tunnel_closed`]. It replaces any other.
    pub fn tunnel_opened(&mut self) -> u64 {
        self.next_conn += 1;
        self.conn = Some(TunnelConn {
            id: self.next_conn,
            awaiting: false,
        });
        self.next_conn
    }

    /// RPS's bytes were written to tunnel connection `id`: AMT owes an answer.
    pub fn tunnel_wrote(&mut self, id: u64) {
        if let Some(c) = self.conn.as_mut().filter(|c| c.id == id) {
            c.awaiting = true;
        }
    }

    /// The tunnel connection is given up without a close from AMT (port switch, session end).
    pub fn tunnel_dropped(&mut self) {
        self.conn = None;
    }

    /// Bytes AMT sent on tunnel connection `id`: the `tls_data` frame, or `None` when the
    /// connection was replaced since (its late bytes belong to a TLS session RPS has left).
    pub fn tunnel_data(&mut self, id: u64, raw: &[u8]) -> Result<Option<String>, SessionError> {
        match self.conn.as_mut() {
            Some(c) if c.id == id => c.awaiting = false,
            _ => return Ok(None),
        }
        let frame = client_message(&self.id, "tls_data", raw);
        if frame.len() > MAX_MESSAGE_BYTES {
            return Err(SessionError::TooLarge { size: frame.len() });
        }
        Ok(Some(frame))
    }

    /// AMT closed tunnel connection `id`. RPS is told (`connection_reset`, payload
    /// `connection_closed`) only when AMT closed without a byte since RPS's last write (rpc-go.md
    /// §3.7): a close after an answer (a 401, a fault, each with its TLS close_notify) is visible
    /// to RPS's TLS client already, and a reset then would arrive after RPS has started its next
    /// TLS session and tear that down instead. `None` too for a replaced connection.
    pub fn tunnel_closed(&mut self, id: u64) -> Option<String> {
        let c = self.conn.filter(|c| c.id == id)?;
        self.conn = None;
        c.awaiting
            .then(|| client_message(&self.id, "connection_reset", b"connection_closed"))
    }

    /// No connection to AMT's TLS port could be opened: `connection_reset` with `lms_error`.
    pub fn tunnel_open_failed(&mut self) -> String {
        self.conn = None;
        client_message(&self.id, "connection_reset", b"lms_error")
    }

    /// The port switch is done: the `port_switch_ack` frame; later answers travel as `tls_data`.
    pub fn port_switched(&mut self) -> String {
        self.tunnel = true;
        self.conn = None;
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
        let conn = s.tunnel_opened();
        s.tunnel_wrote(conn);
        let r: serde_json::Value =
            serde_json::from_str(&s.tunnel_data(conn, b"\x16\x03").unwrap().unwrap()).unwrap();
        assert_eq!(r["method"], "tls_data");
        s.tunnel_wrote(conn);
        let c: serde_json::Value = serde_json::from_str(&s.tunnel_closed(conn).unwrap()).unwrap();
        assert_eq!(c["method"], "connection_reset");
        assert_eq!(c["payload"], "Y29ubmVjdGlvbl9jbG9zZWQ=");
        let e: serde_json::Value = serde_json::from_str(&s.tunnel_open_failed()).unwrap();
        assert_eq!(e["payload"], "bG1zX2Vycm9y");
    }

    #[test]
    fn tunnel_messages_are_counted_apart_from_wsman_exchanges() {
        let tls = |bytes: &[u8]| {
            format!(
                r#"{{"method":"tls_data","status":"ok","payload":"{}"}}"#,
                base64::engine::general_purpose::STANDARD.encode(bytes)
            )
        };
        let hello = [0x16, 3, 1, 0, 5, 1, 0, 0, 0];
        let mut s = sess();
        assert_eq!(s.relayed(), "0 WS-MAN exchanges");
        s.handle_text(&wsman(b"POST /wsman")).unwrap();
        s.amt_answer(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
        assert_eq!(s.relayed(), "1 WS-MAN exchange");
        // After a port switch RPS's messages carry TLS records, not WS-MAN calls.
        s.handle_text(r#"{"method":"port_switch","status":"ok","payload":"{\"port\":\"16993\",\"delay\":0}"}"#)
            .unwrap();
        s.port_switched();
        s.handle_text(&tls(&hello)).unwrap();
        let conn = s.tunnel_opened();
        s.tunnel_wrote(conn);
        s.handle_text(&tls(b"\x17\x03\x03")).unwrap();
        assert_eq!((s.exchanges(), s.tunnel_messages()), (1, 2));
        assert_eq!(s.relayed(), "1 WS-MAN exchange and 2 tunnel messages");

        // TLS enforced from the start: only tunnel messages; a discarded one is not relayed.
        let mut t = RelaySession::new(
            Identity {
                app_version: "t".into(),
                tenant_id: String::new(),
            },
            true,
        );
        assert_eq!(t.relayed(), "0 tunnel messages");
        assert_eq!(
            t.handle_text(&tls(b"\x15\x03\x03")).unwrap(),
            Action::Discard { bytes: 3 }
        );
        t.handle_text(&tls(&hello)).unwrap();
        assert_eq!(t.relayed(), "1 tunnel message");
        assert_eq!(t.exchanges(), 0);
    }

    #[test]
    fn bytes_for_a_closed_connection_open_no_new_one() {
        let mut s = sess();
        s.port_switched();
        let tls = |b: &[u8]| {
            format!(
                r#"{{"method":"tls_data","status":"ok","payload":"{}"}}"#,
                base64::engine::general_purpose::STANDARD.encode(b)
            )
        };
        let hello = [0x16, 3, 1, 0, 5, 1, 0, 0, 0];
        assert!(matches!(
            s.handle_text(&tls(&hello)).unwrap(),
            Action::TunnelToAmt {
                new_session: true,
                ..
            }
        ));
        let a = s.tunnel_opened();
        let record = [0x17, 3, 3, 0, 2, 9, 9];
        assert!(matches!(
            s.handle_text(&tls(&record)).unwrap(),
            Action::TunnelToAmt {
                new_session: false,
                ..
            }
        ));
        s.tunnel_wrote(a);
        s.tunnel_data(a, b"answer").unwrap();
        assert_eq!(s.tunnel_closed(a), None);
        // RPS's close_notify for the session AMT just closed: dropped, no connection opened.
        assert_eq!(
            s.handle_text(&tls(&record)).unwrap(),
            Action::Discard { bytes: 7 }
        );
        // Its next session starts with a ClientHello and gets a connection.
        assert!(matches!(
            s.handle_text(&tls(&hello)).unwrap(),
            Action::TunnelToAmt {
                new_session: true,
                ..
            }
        ));
    }

    #[test]
    fn amt_closing_after_its_answer_is_no_reset() {
        let mut s = sess();
        let a = s.tunnel_opened();
        s.tunnel_wrote(a);
        // A 401 and its close_notify, then the close: RPS's TLS client sees the close itself.
        assert!(s.tunnel_data(a, b"\x17\x03\x03").unwrap().is_some());
        assert_eq!(s.tunnel_closed(a), None);
        // Closed again (a duplicate report) or never written to: nothing either.
        assert_eq!(s.tunnel_closed(a), None);
        let b = s.tunnel_opened();
        assert_eq!(s.tunnel_closed(b), None);
    }

    #[test]
    fn a_replaced_connection_is_not_mistaken_for_the_current_one() {
        let mut s = sess();
        let old = s.tunnel_opened();
        s.tunnel_wrote(old);
        // RPS starts a new TLS session before the old connection's close was seen.
        let new = s.tunnel_opened();
        s.tunnel_wrote(new);
        assert_eq!(s.tunnel_data(old, b"late").unwrap(), None);
        assert_eq!(
            s.tunnel_closed(old),
            None,
            "the old close must not reset the new session"
        );
        // The current connection dropped with RPS's request unanswered: reset.
        let r: serde_json::Value = serde_json::from_str(&s.tunnel_closed(new).unwrap()).unwrap();
        assert_eq!(r["method"], "connection_reset");
        // After a port switch the old connection is gone too.
        let c = s.tunnel_opened();
        s.tunnel_wrote(c);
        s.handle_text(r#"{"method":"port_switch","status":"ok","payload":"{\"port\":\"16993\",\"delay\":0}"}"#)
            .unwrap();
        s.port_switched();
        assert_eq!(s.tunnel_closed(c), None);
    }
}
