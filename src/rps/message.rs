//! RPS websocket messages (rps-protocol.md §1, rpc-go.md §3.2–3.5): the envelope, the first
//! message's command line and payload, and the messages RPS sends, parsed leniently.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::secret::Secret;

/// The protocol version RPS 2.40.0 accepts (its VersionChecker: same major.minor, revision ≤ its own).
pub const PROTOCOL_VERSION: &str = "4.0.0";

/// RPS closes the socket on any frame larger than this (rps-protocol.md §1.1).
pub const MAX_MESSAGE_BYTES: usize = 102_400;

/// What the agent asks RPS to do; rendered as the minimist command line RPS parses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Activate {
        profile: String,
    },
    Deactivate {
        password: Secret,
        force: bool,
    },
    Maintenance {
        task: MaintenanceTask,
        password: Secret,
        force: bool,
    },
}

/// The maintenance tasks RPS runs (rps-protocol.md §5.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MaintenanceTask {
    SyncTime,
    SyncHostname,
    SyncIp,
    SyncDeviceInfo,
    /// `None`: RPS generates a random password.
    ChangePassword(Option<Secret>),
}

impl MaintenanceTask {
    /// RPS's flag and the task name in its status strings.
    pub fn rps_name(&self) -> &'static str {
        match self {
            MaintenanceTask::SyncTime => "synctime",
            MaintenanceTask::SyncHostname => "synchostname",
            MaintenanceTask::SyncIp => "syncip",
            MaintenanceTask::SyncDeviceInfo => "syncdeviceinfo",
            MaintenanceTask::ChangePassword(_) => "changepassword",
        }
    }
}

impl Command {
    /// The `method` line exactly as sent (passwords in clear text: RPS reads them from here).
    pub fn method_line(&self) -> String {
        self.render(false)
    }

    /// The `method` line with every password replaced by `***`, for logs and messages.
    pub fn method_line_redacted(&self) -> String {
        self.render(true)
    }

    fn render(&self, redact: bool) -> String {
        let pw = |s: &Secret| {
            if redact {
                "***".to_string()
            } else {
                s.expose().to_string()
            }
        };
        match self {
            Command::Activate { profile } => format!("activate --profile {profile}"),
            Command::Deactivate { password, force } => {
                let mut s = format!("deactivate --password {}", pw(password));
                if *force {
                    s.push_str(" -f");
                }
                s
            }
            Command::Maintenance {
                task,
                password,
                force,
            } => {
                let mut s = format!(
                    "maintenance -password {} --{}",
                    pw(password),
                    task.rps_name()
                );
                if let MaintenanceTask::ChangePassword(Some(new)) = task {
                    s.push(' ');
                    s.push_str(&pw(new));
                }
                if *force {
                    s.push_str(" -f");
                }
                s
            }
        }
    }
}

/// Replaces the values after `--password`/`-password`/`-p` and `--changepassword` in any command
/// line (for logging a line this agent did not build).
pub fn redact_method_line(line: &str) -> String {
    let mut out = Vec::new();
    let mut hide_next = false;
    for w in line.split(' ') {
        if hide_next && !w.starts_with('-') {
            out.push("***".to_string());
            hide_next = false;
            continue;
        }
        hide_next = matches!(
            w,
            "--password" | "-password" | "-p" | "--changepassword" | "-changepassword"
        );
        if let Some((k, _)) = w.split_once('=') {
            if matches!(k, "--password" | "-password" | "-p") {
                out.push(format!("{k}=***"));
                continue;
            }
        }
        out.push(w.to_string());
    }
    out.join(" ")
}

/// `ipConfiguration` (rpc-go's zero values unless syncip).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpConfiguration {
    pub dhcp: bool,
    pub static_ip: bool,
    pub ipsync: bool,
    pub ip_address: String,
    pub netmask: String,
    pub gateway: String,
    pub primary_dns: String,
    pub secondary_dns: String,
}

/// The decoded payload of the first message (rps-protocol.md §1.2; rpc-go's `MessagePayload`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Payload {
    pub ver: String,
    pub build: String,
    pub sku: String,
    pub features: String,
    pub uuid: String,
    pub username: String,
    /// The LSA password before activation, the AMT admin password after.
    pub password: Secret,
    pub current_mode: u32,
    pub hostname: String,
    pub fqdn: String,
    /// Lower-case hex of the ACTIVE trusted-root hashes.
    pub cert_hashes: Vec<String>,
    pub ip_configuration: IpConfiguration,
    pub dns_suffix_os: String,
    pub hostname_os: String,
    pub friendly_name: Option<String>,
    pub tls_enforced: bool,
    pub tls_tunnel: bool,
    pub lms_installed: bool,
}

impl Payload {
    /// The JSON RPS decodes; `password` in clear text. Never log this value.
    fn wire_json(&self) -> Value {
        let ip = &self.ip_configuration;
        let mut m = Map::new();
        m.insert("ver".into(), json!(self.ver));
        m.insert("build".into(), json!(self.build));
        m.insert("sku".into(), json!(self.sku));
        m.insert("features".into(), json!(self.features));
        m.insert("uuid".into(), json!(self.uuid));
        m.insert("username".into(), json!(self.username));
        m.insert("password".into(), json!(self.password.expose()));
        m.insert("currentMode".into(), json!(self.current_mode));
        m.insert("hostname".into(), json!(self.hostname));
        m.insert("fqdn".into(), json!(self.fqdn));
        m.insert("client".into(), json!("RPC"));
        m.insert(
            "certHashes".into(),
            if self.cert_hashes.is_empty() {
                Value::Null
            } else {
                json!(self.cert_hashes)
            },
        );
        m.insert(
            "ipConfiguration".into(),
            json!({"dhcp": ip.dhcp, "static": ip.static_ip, "ipsync": ip.ipsync,
                   "ipAddress": ip.ip_address, "netmask": ip.netmask, "gateway": ip.gateway,
                   "primaryDns": ip.primary_dns, "secondaryDns": ip.secondary_dns}),
        );
        m.insert(
            "hostnameInfo".into(),
            json!({"dnsSuffixOS": self.dns_suffix_os, "hostname": self.hostname_os}),
        );
        if let Some(n) = &self.friendly_name {
            m.insert("friendlyName".into(), json!(n));
        }
        if self.tls_enforced {
            m.insert("tlsEnforced".into(), json!(true));
        }
        if self.tls_tunnel {
            m.insert("tlsTunnel".into(), json!(true));
        }
        if self.lms_installed {
            m.insert("lmsInstalled".into(), json!(true));
        }
        m.insert("progressSupported".into(), json!(true));
        Value::Object(m)
    }
}

/// The agent's side of the envelope fields that do not change within a session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub app_version: String,
    pub tenant_id: String,
}

fn envelope(id: &Identity, method: &str, status: &str, message: &str, payload: Value) -> String {
    // Field order as rpc-go sends it; RPS does not depend on it.
    json!({
        "method": method,
        "apiKey": "key",
        "appVersion": id.app_version,
        "protocolVersion": PROTOCOL_VERSION,
        "status": status,
        "message": message,
        "payload": payload,
        "tenantId": id.tenant_id,
    })
    .to_string()
}

/// The first message. The returned text holds secrets (payload password, and the method line's
/// password for deactivate/maintenance): send it, never log it.
pub fn first_message(id: &Identity, command: &Command, payload: &Payload) -> String {
    let p = B64.encode(payload.wire_json().to_string());
    envelope(id, &command.method_line(), "ok", "ok", Value::String(p))
}

/// A client message carrying `bytes` as base64 (`response`, `tls_data`, `connection_reset`,
/// `port_switch_ack`).
pub fn client_message(id: &Identity, method: &str, bytes: &[u8]) -> String {
    envelope(id, method, "ok", "ok", Value::String(B64.encode(bytes)))
}

/// A reply to `heartbeat_request`: the request echoed, method `heartbeat_response`, status success
/// (rpc-go.md §3.8). Numbers come back exactly as they were read: serde_json's `float_roundtrip`
/// feature (Cargo.toml) makes its float parsing exact, without which a long number's last bit
/// could change on the way through.
pub fn heartbeat_response(request: &Value) -> String {
    let mut v = request.clone();
    if let Value::Object(m) = &mut v {
        m.insert("method".into(), json!("heartbeat_response"));
        m.insert("status".into(), json!("success"));
    }
    v.to_string()
}

/// One `Components` entry of a final message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Component {
    pub name: String,
    /// `Success`, `Failure` or `NotApplicable`.
    pub result: String,
    pub mode: Option<String>,
    pub details: Option<String>,
}

/// A final message's `message`, which is a JSON string or a plain sentence (rps-protocol.md §7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: String,
    pub network: Option<String>,
    pub components: Vec<Component>,
    /// `message` as RPS sent it.
    pub raw: String,
    /// False when `message` was a plain sentence (RPS refused before any WS-MAN).
    pub structured: bool,
}

impl Outcome {
    pub fn parse(message: &str) -> Outcome {
        let parsed: Option<Map<String, Value>> = serde_json::from_str(message.trim()).ok();
        let Some(m) = parsed else {
            return Outcome {
                status: message.to_string(),
                network: None,
                components: Vec::new(),
                raw: message.to_string(),
                structured: false,
            };
        };
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        };
        let get = |k: &str| {
            m.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|x| x.1)
        };
        let mut components = Vec::new();
        if let Some(Value::Object(c)) = get("Components") {
            for (name, v) in c {
                let f = |k: &str| match v {
                    Value::Object(o) => text(
                        o.iter()
                            .find(|(n, _)| n.eq_ignore_ascii_case(k))
                            .map(|x| x.1),
                    ),
                    Value::String(s) if k == "Result" => Some(s.clone()),
                    _ => None,
                };
                components.push(Component {
                    name: name.clone(),
                    result: f("Result").unwrap_or_default(),
                    mode: f("Mode"),
                    details: f("Details"),
                });
            }
        }
        Outcome {
            status: text(get("Status")).unwrap_or_else(|| message.to_string()),
            network: text(get("Network")),
            components,
            raw: message.to_string(),
            structured: true,
        }
    }

    /// The mode RPS says it reached (`Activation.Mode`), if any.
    pub fn mode(&self) -> Option<&str> {
        self.components
            .iter()
            .find(|c| c.name == "Activation")
            .and_then(|c| c.mode.as_deref())
    }
}

/// A message from RPS.
#[derive(Clone, Debug, PartialEq)]
pub enum Inbound {
    /// Raw HTTP request bytes for AMT.
    Wsman(Vec<u8>),
    Success(Outcome),
    Error(Outcome),
    Progress(String),
    /// The whole request, to be echoed.
    Heartbeat(Value),
    /// Reconnect to AMT on `port` after `delay` seconds, then `port_switch_ack`.
    PortSwitch {
        port: u16,
        delay_s: u64,
    },
    /// Raw TLS records for AMT's TLS port.
    TlsData(Vec<u8>),
}

/// Why an RPS message could not be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("RPS sent something that is not a JSON object: {0}")]
    NotJson(String),
    #[error("RPS sent a message without a method")]
    NoMethod,
    #[error("the payload of RPS's {method} message is not valid base64")]
    BadBase64 { method: String },
    #[error("RPS's port_switch payload is not understood: {0}")]
    BadPortSwitch(String),
}

fn field<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    m.get(k).or_else(|| {
        m.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|x| x.1)
    })
}

fn str_field(m: &Map<String, Value>, k: &str) -> String {
    match field(m, k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

/// Parses one text frame from RPS. Unknown methods are relayed like `wsman`, as rpc-go does.
pub fn parse_inbound(text: &str) -> Result<Inbound, MessageError> {
    let v: Value = serde_json::from_str(text).map_err(|e| MessageError::NotJson(e.to_string()))?;
    let Value::Object(m) = &v else {
        return Err(MessageError::NotJson("not an object".into()));
    };
    let method = str_field(m, "method");
    if method.is_empty() {
        return Err(MessageError::NoMethod);
    }
    let payload = str_field(m, "payload");
    let decode = |p: &str| {
        B64.decode(p.trim()).map_err(|_| MessageError::BadBase64 {
            method: method.clone(),
        })
    };
    Ok(match method.as_str() {
        "success" => Inbound::Success(Outcome::parse(&str_field(m, "message"))),
        "error" => Inbound::Error(Outcome::parse(&str_field(m, "message"))),
        "progress" => Inbound::Progress(str_field(m, "message")),
        "heartbeat_request" => Inbound::Heartbeat(v.clone()),
        "port_switch" => {
            let p: Value = match field(m, "payload") {
                Some(Value::Object(o)) => Value::Object(o.clone()),
                _ => serde_json::from_str(&payload)
                    .map_err(|e| MessageError::BadPortSwitch(e.to_string()))?,
            };
            let num = |k: &str| -> Option<u64> {
                match p.get(k)? {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                }
            };
            let port = num("port")
                .and_then(|x| u16::try_from(x).ok())
                .ok_or_else(|| MessageError::BadPortSwitch("no port".into()))?;
            Inbound::PortSwitch {
                port,
                delay_s: num("delay").unwrap_or(0),
            }
        }
        "tls_data" => Inbound::TlsData(decode(&payload)?),
        _ => Inbound::Wsman(decode(&payload)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_lines_match_rps_minimist_syntax_and_redact() {
        let c = Command::Maintenance {
            task: MaintenanceTask::ChangePassword(Some(Secret::new("N3w-P@ssw0rd"))),
            password: Secret::new("P@ssw0rd-Amt1"),
            force: false,
        };
        assert_eq!(
            c.method_line(),
            "maintenance -password P@ssw0rd-Amt1 --changepassword N3w-P@ssw0rd"
        );
        assert_eq!(
            c.method_line_redacted(),
            "maintenance -password *** --changepassword ***"
        );
        let d = Command::Deactivate {
            password: Secret::new("x"),
            force: true,
        };
        assert_eq!(d.method_line(), "deactivate --password x -f");
        assert_eq!(
            redact_method_line("deactivate --password s3cret -f"),
            "deactivate --password *** -f"
        );
        assert_eq!(
            redact_method_line("maintenance -password a --changepassword b"),
            "maintenance -password *** --changepassword ***"
        );
    }

    #[test]
    fn first_message_payload_has_rpc_fields_and_the_real_password() {
        let p = Payload {
            ver: "16.1.25".into(),
            build: "2185".into(),
            uuid: "4c4c4544-0044-4810-8052-b3c04f508888".into(),
            username: "$$OsAdmin".into(),
            password: Secret::new("lsaP4ssw0rdFromMEI"),
            ..Payload::default()
        };
        let id = Identity {
            app_version: "0.1.0".into(),
            tenant_id: String::new(),
        };
        let text = first_message(
            &id,
            &Command::Activate {
                profile: "ccm-peer".into(),
            },
            &p,
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["method"], "activate --profile ccm-peer");
        assert_eq!(v["protocolVersion"], "4.0.0");
        let inner: Value =
            serde_json::from_slice(&B64.decode(v["payload"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(inner["password"], "lsaP4ssw0rdFromMEI");
        assert_eq!(inner["client"], "RPC");
        assert_eq!(inner["progressSupported"], true);
        assert_eq!(inner["currentMode"], 0);
        assert!(inner["certHashes"].is_null());
        assert!(inner.get("friendlyName").is_none());
    }

    #[test]
    fn final_messages_parse_whatever_the_key_order() {
        // rps-protocol.md §7.1, trace 02 order: Status, Network, Components.
        let m = r#"{"Status":"already enabled in client mode.","Network":"Wired Network Configured","Components":{"WiredNetwork":{"Result":"Success","Details":"Wired Network Configured"},"Activation":{"Details":"Already enabled in client mode","Mode":"CCM","Result":"Success"}}}"#;
        let o = Outcome::parse(m);
        assert!(o.structured);
        assert_eq!(o.status, "already enabled in client mode.");
        assert_eq!(o.mode(), Some("CCM"));
        assert_eq!(o.components.len(), 2);
        let plain = Outcome::parse("Device 1234 already enabled in admin control mode.");
        assert!(!plain.structured);
        assert_eq!(
            plain.status,
            "Device 1234 already enabled in admin control mode."
        );
    }

    #[test]
    fn inbound_messages_parse_leniently() {
        let w = r#"{"payload":"UE9TVA==","method":"wsman","status":"ok","message":""}"#;
        assert_eq!(parse_inbound(w).unwrap(), Inbound::Wsman(b"POST".to_vec()));
        let ps = r#"{"method":"port_switch","status":"ok","payload":"{\"port\":\"16993\",\"delay\":15}"}"#;
        assert_eq!(
            parse_inbound(ps).unwrap(),
            Inbound::PortSwitch {
                port: 16993,
                delay_s: 15
            }
        );
        let e = r#"{"method":"error","status":"failed","message":"{\"Status\":\"Unable to authenticate with AMT\"}","payload":null}"#;
        match parse_inbound(e).unwrap() {
            Inbound::Error(o) => assert_eq!(o.status, "Unable to authenticate with AMT"),
            x => panic!("{x:?}"),
        }
        assert!(matches!(
            parse_inbound(r#"{"method":"heartbeat_request","payload":""}"#).unwrap(),
            Inbound::Heartbeat(_)
        ));
        assert_eq!(
            parse_inbound("[]"),
            Err(MessageError::NotJson("not an object".into()))
        );
        assert!(parse_inbound(r#"{"method":"wsman","payload":"%%"}"#).is_err());
    }

    /// Found by fuzzing (rps_message): a number's last bit changed on the way through the echo
    /// (`1.7e+118` came back as `1.7000000000000002e+118`), because serde_json's default float
    /// parser is not exact. The `float_roundtrip` feature makes it exact.
    #[test]
    fn heartbeat_echo_keeps_numbers_exact() {
        // The fuzzer's input, a 119-digit integer (read as a float), and two more floats.
        let big = "16999999999999999999999999999999999999999999999999999911119999999999999999999999999999999999999999999999999999999999991";
        let text =
            format!(r#"{{"method":"heartbeat_request","aipVer":{big},"n":1.7e118,"x":5e-324}}"#);
        let req: Value = serde_json::from_str(&text).unwrap();
        let r: Value = serde_json::from_str(&heartbeat_response(&req)).unwrap();
        for k in ["aipVer", "n", "x"] {
            assert_eq!(r[k], req[k], "{k}");
        }
    }

    #[test]
    fn heartbeat_is_echoed() {
        let req: Value = serde_json::from_str(
            r#"{"method":"heartbeat_request","status":"heartbeat","payload":"abc"}"#,
        )
        .unwrap();
        let r: Value = serde_json::from_str(&heartbeat_response(&req)).unwrap();
        assert_eq!(r["method"], "heartbeat_response");
        assert_eq!(r["status"], "success");
        assert_eq!(r["payload"], "abc");
    }
}
