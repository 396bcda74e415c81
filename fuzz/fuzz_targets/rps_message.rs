//! One websocket text frame from RPS through `rps::message::parse_inbound`: the envelope, the
//! base64 payloads of `wsman` / `tls_data`, `port_switch`'s JSON payload (a string or an object),
//! `heartbeat_request`, and the `message` of `success` / `error` parsed into an `Outcome` with its
//! Components. Input: the frame's text (bytes as lossy UTF-8).
//!
//! Checked: a relayed payload survives the agent's own encoding (`client_message`) and parsing
//! back; an Outcome is structured exactly when the message is a JSON object, and a plain sentence
//! is its own status; a heartbeat's answer is the request with method and status replaced.
#![no_main]

use amt_agent::rps::message::{
    client_message, heartbeat_response, parse_inbound, redact_method_line, Identity, Inbound,
    Outcome,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn outcome(o: &Outcome) {
    let _ = o.mode();
    let object = matches!(
        serde_json::from_str::<Value>(o.raw.trim()),
        Ok(Value::Object(_))
    );
    assert_eq!(o.structured, object, "structured for {:?}", o.raw);
    if !o.structured {
        assert_eq!(o.status, o.raw);
        assert!(o.components.is_empty() && o.network.is_none());
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // What the agent logs of a command line it did not build.
    let _ = redact_method_line(&text);
    let m = match parse_inbound(&text) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = format!("{m:?}");
    let id = Identity {
        app_version: "0.1.0".into(),
        tenant_id: String::new(),
    };
    match m {
        Inbound::Wsman(bytes) | Inbound::TlsData(bytes) => {
            // The agent's own frames carry bytes the same way; unknown methods relay as wsman.
            let again = parse_inbound(&client_message(&id, "response", &bytes));
            assert_eq!(again, Ok(Inbound::Wsman(bytes.clone())));
            let again = parse_inbound(&client_message(&id, "tls_data", &bytes));
            assert_eq!(again, Ok(Inbound::TlsData(bytes)));
        }
        Inbound::Success(o) | Inbound::Error(o) => outcome(&o),
        Inbound::Progress(p) => {
            let _ = p.len();
        }
        Inbound::Heartbeat(v) => {
            let r: Value = serde_json::from_str(&heartbeat_response(&v)).expect("valid JSON");
            assert_eq!(r["method"], "heartbeat_response");
            assert_eq!(r["status"], "success");
            if let (Value::Object(req), Value::Object(resp)) = (&v, &r) {
                for (k, val) in req {
                    if k != "method" && k != "status" {
                        assert_eq!(resp.get(k), Some(val), "heartbeat field {k} not echoed");
                    }
                }
            }
        }
        Inbound::PortSwitch { port, delay_s } => {
            let _ = (port, delay_s);
        }
    }
});
