//! Writes the fuzzing seed corpora (`make fuzz-seeds`, docs/robustness.md): for each target in
//! `fuzz/`, a directory of inputs in that target's format. HTTP and WS-MAN seeds come from the
//! shared fixtures (real AMT captures and go-wsman-messages responses), RPS seeds from the recorded
//! RPS sessions, setup.bin seeds from the two sample files; AMTHI, APF, socket-frame and
//! setup.bin seeds are also built with the crate's own encoders, the same layouts the unit tests
//! pin. Certificate seeds are the fixtures' and the RPS traces' certificates, and chains made here
//! with rcgen (an RSA leaf key from the openssl CLI when it is installed, else P-256) as PEM, DER,
//! PKCS#12 and base64 PKCS#12.
//!
//! Usage: `cargo run --example fuzz_seeds -- <corpus dir> [<fixtures dir>]`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::Instant;

use amt_agent::amthi::{self, Command, PtStatus};
use amt_agent::apf::{
    self, ChannelOpen, Config, DisconnectReason, Event, GlobalRequest, Message, Mux,
    OpenFailureReason, ProtocolVersion, UserauthMethod,
};
use amt_agent::heci::simsock::{encode_frame, FRAME_CONNECT, FRAME_CONNECTED, FRAME_MESSAGE};
use amt_agent::provisioning::setupbin::{
    CertHash, RootEnrolment, SetupBin, Value as SetupValue, Variable,
};
use amt_agent::rps::message::{client_message, Identity};
use amt_agent::secret::Secret;
use amt_agent::wsman::digest::{amt_challenge_value, DigestClient};
use amt_agent::wsman::http::{encode_wsman_post, ResponseParser};

struct Out {
    root: PathBuf,
    count: usize,
}

impl Out {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir).expect("create corpus dir");
        fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
        self.count += 1;
    }
}

/// The split-seed prefix the HTTP and frame targets expect: 0x0001 splits into small reads.
fn split(bytes: &[u8]) -> Vec<u8> {
    [&[0, 1][..], bytes].concat()
}

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, ext, out);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
    out.sort();
}

fn stem(p: &Path, root: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .replace(['/', '.'], "_")
}

fn amthi_seeds(out: &mut Out) {
    // Index = position in fuzz/fuzz_targets/amthi_reply.rs COMMANDS.
    let versions = amthi::CodeVersions {
        bios_version: "ADLSFWI1.R00.3091.A00".into(),
        versions: [("AMT", "16.1.25"), ("Flash", "16.1.25"), ("Sku", "16392")]
            .iter()
            .map(|(d, v)| amthi::VersionEntry {
                description: d.to_string(),
                version: v.to_string(),
            })
            .collect(),
    };
    let mut hash = [0u8; 64];
    hash.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    let bodies: Vec<(u8, Command, Vec<u8>)> = vec![
        (0, Command::GetCodeVersions, versions.encode()),
        (1, Command::GetUuid, (0..16).collect()),
        (2, Command::GetControlMode, vec![2, 0, 0, 0]),
        (3, Command::GetProvisioningState, vec![2, 0, 0, 0]),
        (
            4,
            Command::GetPkiFqdnSuffix,
            amthi::encode_ansi("vprodemo.com"),
        ),
        (
            5,
            Command::GetLocalSystemAccount,
            amthi::LocalSystemAccount {
                username: amthi::LSA_USERNAME.into(),
                password: Secret::new("Xz1!abcdefgh".to_string()),
            }
            .encode(),
        ),
        (
            6,
            Command::GetLanInterfaceSettings,
            amthi::LanInterfaceSettings {
                enabled: true,
                ipv4: 0xc0a8_0102,
                dhcp_enabled: true,
                dhcp_ip_mode: 1,
                link_status: 1,
                mac: [0, 0x1b, 0x21, 1, 2, 3],
            }
            .encode(),
        ),
        (
            7,
            Command::GetRemoteAccessConnectionStatus,
            amthi::RemoteAccessStatus {
                network_status: 0,
                remote_status: 0,
                remote_trigger: 0,
                mps_hostname: "mps.example.com".into(),
            }
            .encode(),
        ),
        (
            8,
            Command::EnumerateHashHandles,
            amthi::encode_hash_handles(&[0, 1, 2, 5]),
        ),
        (
            9,
            Command::GetCertHashEntry,
            amthi::CertHashEntry {
                is_default: true,
                is_active: true,
                hash,
                algorithm: amthi::HashAlgorithm::Sha256,
                name: "VeriSign Class 3 Primary CA-G5".into(),
            }
            .encode(),
        ),
        (
            10,
            Command::StartConfigurationHBased,
            amthi::HBasedReply {
                hash_algorithm: 2,
                amt_cert_hash: hash,
            }
            .encode(),
        ),
        (11, Command::GetAmtState, vec![0; 8]),
        (12, Command::Unprovision, Vec::new()),
    ];
    for (i, command, body) in bodies {
        let ok = amthi::encode_reply(command.code(), PtStatus::Success, &body);
        out.put("amthi_reply", command.name(), &[&[i][..], &ok].concat());
        // A status-only error reply, as firmware sends it.
        let err = amthi::encode_reply(command.code(), PtStatus::from_u32(0x2004), &[]);
        out.put(
            "amthi_reply",
            &format!("{}-error", command.name()),
            &[&[i][..], &err].concat(),
        );
    }
}

/// One of every APF message the codec knows.
fn apf_messages() -> Vec<Message> {
    vec![
        Message::ProtocolVersion(ProtocolVersion::rpc_go()),
        Message::Disconnect {
            reason: DisconnectReason::ProtocolError,
        },
        Message::ServiceRequest {
            service: "pfwd@amt.intel.com".into(),
        },
        Message::ServiceAccept {
            service: "auth@amt.intel.com".into(),
        },
        Message::UserauthRequest {
            user: "admin".into(),
            service: "pfwd@amt.intel.com".into(),
            method: UserauthMethod::Password(Secret::new("secret".to_string())),
        },
        Message::UserauthFailure {
            methods: "password".into(),
            partial_success: 0,
        },
        Message::UserauthSuccess,
        Message::GlobalRequest {
            want_reply: true,
            request: GlobalRequest::TcpipForward {
                address: "127.0.0.1".into(),
                port: 16992,
            },
        },
        Message::GlobalRequest {
            want_reply: false,
            request: GlobalRequest::UdpSendTo {
                address: "192.168.1.1".into(),
                port: 623,
                originator_address: "127.0.0.1".into(),
                originator_port: 1234,
                data: b"ping".to_vec(),
            },
        },
        Message::RequestSuccess { port: Some(16992) },
        Message::RequestFailure,
        Message::ChannelOpen(ChannelOpen::forwarded(2, 16992)),
        Message::ChannelOpenConfirmation {
            recipient: 2,
            sender: 0,
            window: 4096,
        },
        Message::ChannelOpenFailure {
            recipient: 2,
            reason: OpenFailureReason::ResourceShortage,
        },
        Message::WindowAdjust {
            recipient: 0,
            bytes: 1024,
        },
        Message::ChannelData {
            recipient: 0,
            data: b"HTTP/1.1 200 OK\r\n".to_vec(),
        },
        Message::ChannelClose { recipient: 0 },
        Message::KeepaliveRequest { cookie: 7 },
        Message::KeepaliveReply { cookie: 7 },
        Message::KeepaliveOptionsRequest {
            interval: 30,
            timeout: 90,
        },
        Message::KeepaliveOptionsReply {
            interval: 30,
            timeout: 90,
        },
    ]
}

/// Records for fuzz/fuzz_targets/apf_mux.rs: `[op][u16 BE length][bytes]`.
struct MuxScript(Vec<u8>);

impl MuxScript {
    fn chunk(&mut self, op: u8, bytes: &[u8]) {
        self.0.push(op);
        self.0
            .extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        self.0.extend_from_slice(bytes);
    }
}

/// Moves messages between a host and a simulated-firmware Mux until both are quiet, recording
/// what the firmware sends as the host Mux's input.
fn pump(host: &mut Mux, fw: &mut Mux, script: &mut MuxScript, events: &mut Vec<Event>) {
    let now = Instant::now();
    loop {
        let mut moved = false;
        while let Some(m) = host.poll_transmit() {
            fw.handle_bytes(&m.encode(), now)
                .expect("host bytes decode");
            moved = true;
        }
        while let Some(m) = fw.poll_transmit() {
            let bytes = m.encode();
            script.chunk(0, &bytes);
            host.handle_bytes(&bytes, now)
                .expect("firmware bytes decode");
            moved = true;
        }
        while host.poll_event().is_some() {}
        while let Some(e) = fw.poll_event() {
            events.push(e);
        }
        if !moved {
            return;
        }
    }
}

fn apf_seeds(out: &mut Out) {
    for (i, m) in apf_messages().iter().enumerate() {
        out.put("apf_message", &format!("{i:02}-{}", m.name()), &m.encode());
    }
    let now = Instant::now();
    let mut host = Mux::new(Config::host());
    let mut fw = Mux::new(Config::firmware(false));
    let mut events = Vec::new();
    let mut s = MuxScript(vec![1]);
    host.start();
    pump(&mut host, &mut fw, &mut s, &mut events);
    out.put("apf_mux", "handshake", &s.0);

    // rpc-go's exchange: open a channel to 16992, a request out, a response in, close.
    s.0.push(6);
    let ch = host.open_channel(apf::mux::PORT_HTTP, now).expect("open");
    pump(&mut host, &mut fw, &mut s, &mut events);
    let request = encode_wsman_post("127.0.0.1:16992", None, b"<Envelope/>");
    s.0.push(7);
    s.chunk(ch.0 as u8, &request);
    host.send(ch, &request).expect("send");
    pump(&mut host, &mut fw, &mut s, &mut events);
    let fw_ch = events
        .iter()
        .find_map(|e| match e {
            Event::ChannelOpened { channel, .. } => Some(*channel),
            _ => None,
        })
        .expect("firmware saw the channel");
    fw.send(
        fw_ch,
        b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n",
    )
    .expect("firmware send");
    pump(&mut host, &mut fw, &mut s, &mut events);
    s.0.extend_from_slice(&[8, ch.0 as u8, 48]);
    let _ = host.consume(ch, 48);
    s.0.extend_from_slice(&[9, ch.0 as u8]);
    host.close(ch).expect("close");
    pump(&mut host, &mut fw, &mut s, &mut events);
    out.put("apf_mux", "channel", &s.0);

    // The firmware speaking first (LMS style), then keepalives.
    let mut host = Mux::new(Config::host());
    let mut fw = Mux::new(Config::firmware(true));
    let mut s = MuxScript(vec![0]);
    fw.start();
    pump(&mut host, &mut fw, &mut s, &mut events);
    s.chunk(0, &Message::KeepaliveRequest { cookie: 1 }.encode());
    s.chunk(
        0,
        &Message::Disconnect {
            reason: DisconnectReason::ByApplication,
        }
        .encode(),
    );
    out.put("apf_mux", "firmware-first-tls", &s.0);
}

fn http_seeds(out: &mut Out, fixtures: &Path) -> Vec<String> {
    let captures = fixtures.join("amt-captures");
    let mut paths = Vec::new();
    files(&captures, "http", &mut paths);
    let mut challenges = Vec::new();
    let mut all = Vec::new();
    for p in &paths {
        let bytes = fs::read(p).expect("read capture");
        out.put("http_response", &stem(p, &captures), &split(&bytes));
        all.extend_from_slice(&bytes);
        let mut parser = ResponseParser::new();
        if let Ok(Some(r)) = parser.feed(&bytes) {
            if let Some(c) = r.header("WWW-Authenticate") {
                challenges.push(c.to_string());
            }
            if r.body.starts_with(b"<") {
                out.put("wsman_envelope", &stem(p, &captures), &r.body);
            }
        }
    }
    // Pipelined: every capture back to back on one connection.
    out.put("http_response", "pipelined", &split(&all));

    let body = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><Envelope/>";
    let mut client = DigestClient::new("admin", Secret::new("P@ssw0rd".to_string()));
    let challenge = amt_challenge_value("Digest:A3829B3827DE4D33D4449B366831FD01", "abcd", false);
    client
        .handle_www_authenticate(&challenge)
        .expect("challenge");
    let auth = client
        .authorization_with_cnonce("POST", "/wsman", "0a1b2c")
        .expect("authorization");
    out.put(
        "http_request",
        "post",
        &split(&encode_wsman_post("127.0.0.1:16992", None, body)),
    );
    let authed = encode_wsman_post("127.0.0.1:16992", Some(&auth), body);
    out.put("http_request", "post-auth", &split(&authed));
    out.put(
        "http_request",
        "get-content-length",
        &split(b"GET /index.htm HTTP/1.0\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"),
    );
    challenges.push(challenge);
    challenges.push(auth);
    challenges
}

fn digest_seeds(out: &mut Out, values: &[String]) {
    for (i, v) in values.iter().enumerate() {
        let mode = if v.contains("response=") { 1 } else { 0 };
        out.put(
            "digest",
            &format!("{i}"),
            &[&[mode][..], v.as_bytes()].concat(),
        );
        out.put(
            "digest",
            &format!("{i}-rps"),
            &[&[mode | 0x80][..], v.as_bytes()].concat(),
        );
        out.put(
            "digest",
            &format!("{i}-params"),
            &[&[2][..], v.as_bytes()].concat(),
        );
    }
    out.put(
        "digest",
        "escaped",
        b"\x00Digest realm=\"a\\\"b\", nonce=x, opaque=\"o\", algorithm=MD5, qop=\"auth,auth-int\"",
    );
}

fn wsman_seeds(out: &mut Out, fixtures: &Path) {
    let dir = fixtures.join("wsman-responses");
    let mut paths = Vec::new();
    files(&dir, "xml", &mut paths);
    for p in &paths {
        out.put(
            "wsman_envelope",
            &stem(p, &dir),
            &fs::read(p).expect("read fixture"),
        );
    }
}

fn simsock_seeds(out: &mut Out) {
    let guid = [0x12u8; 16];
    let mut stream = encode_frame(FRAME_CONNECT, &guid);
    stream.extend(encode_frame(FRAME_CONNECTED, &[0, 16, 0, 0, 1]));
    stream.extend(encode_frame(
        FRAME_MESSAGE,
        &amthi::encode_request(Command::GetUuid, &[]),
    ));
    out.put("simsock_frames", "session", &split(&stream));
}

/// Records for fuzz/fuzz_targets/rps_session.rs: `[op][u16 BE length][bytes]` after a flag byte.
fn record(script: &mut Vec<u8>, op: u8, bytes: &[u8]) {
    let n = bytes.len().min(u16::MAX as usize);
    script.push(op);
    script.extend_from_slice(&(n as u16).to_be_bytes());
    script.extend_from_slice(&bytes[..n]);
}

/// The RPS traces' messages as the agent receives them (`wsman` with its base64 payload put back)
/// for rps_message, and each session as a script for rps_session: RPS's frames, the recorded AMT
/// answers, the final message. Returns the certificates the AddNextCertInChain bodies carry.
fn rps_seeds(out: &mut Out, fixtures: &Path) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let dir = fixtures.join("rps-traces");
    let mut paths = Vec::new();
    files(&dir, "jsonl", &mut paths);
    let mut certs: Vec<Vec<u8>> = Vec::new();
    for p in &paths {
        let name = stem(p, &dir);
        let text = fs::read_to_string(p).expect("read trace");
        let mut script = vec![0u8];
        // The certificate requests come after the first 12 KiB: a script of their own.
        let mut cert_script = vec![0u8];
        let mut cert_answer = false;
        let mut wsman = 0;
        let mut last = None;
        for line in text.lines() {
            let Ok(rec) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let Some(mut json) = rec.get("json").cloned() else {
                continue;
            };
            let decoded = rec.get("decoded_payload").and_then(|d| d.as_str());
            if let (Some(d), Some(o)) = (decoded, json.as_object_mut()) {
                o.insert("payload".into(), b64.encode(d).into());
            }
            let frame = json.to_string();
            let method = json["method"].as_str().unwrap_or_default().to_string();
            if rec["dir"] == "rps->client" {
                if method != "wsman" || wsman < 2 {
                    out.put(
                        "rps_message",
                        &format!("{name}-{method}-{wsman}"),
                        frame.as_bytes(),
                    );
                }
                if method == "wsman" {
                    wsman += 1;
                    cert_answer = decoded.is_some_and(|d| d.contains("AddNextCertInChain"));
                    if cert_answer {
                        record(&mut cert_script, 0, frame.as_bytes());
                    }
                    for c in decoded
                        .unwrap_or_default()
                        .split("<h:NextCertificate>")
                        .skip(1)
                    {
                        if let Some(Ok(der)) = c.split('<').next().map(|t| b64.decode(t.trim())) {
                            if !certs.contains(&der) {
                                certs.push(der);
                            }
                        }
                    }
                }
                if script.len() < 12 * 1024 {
                    record(&mut script, 0, frame.as_bytes());
                } else if method != "wsman" {
                    last = Some(frame);
                }
            } else if method == "response" {
                if script.len() < 12 * 1024 {
                    record(&mut script, 2, decoded.unwrap_or_default().as_bytes());
                }
                if std::mem::take(&mut cert_answer) {
                    record(&mut cert_script, 2, decoded.unwrap_or_default().as_bytes());
                }
            }
        }
        if let Some(f) = last {
            record(&mut script, 0, f.as_bytes());
        }
        out.put("rps_session", &name, &script);
        if cert_script.len() > 1 {
            out.put("rps_session", &format!("{name}-certificates"), &cert_script);
        }
    }

    // What the traces do not show: port_switch (payload as a JSON string and as an object), TLS
    // tunnel data, a heartbeat, a plain-sentence error.
    let messages = [
        ("port-switch-string", r#"{"method":"port_switch","status":"ok","message":"","payload":"{\"port\":\"16993\",\"delay\":15}"}"#.to_string()),
        ("port-switch-object", r#"{"method":"port_switch","status":"ok","message":"","payload":{"port":16993,"delay":"2"}}"#.to_string()),
        ("heartbeat", r#"{"method":"heartbeat_request","apiKey":"xxxxx","appVersion":"2.40.0","protocolVersion":"4.0.0","status":"heartbeat","message":"","payload":"","tenantId":""}"#.to_string()),
        ("error-plain", r#"{"method":"error","status":"failed","message":"Device 1234 already enabled in admin control mode.","payload":null}"#.to_string()),
        ("tls-data", format!(r#"{{"method":"tls_data","status":"ok","message":"","payload":"{}"}}"#, b64.encode([0x16, 3, 1, 0, 5, 1, 0, 0, 1, 3]))),
    ];
    for (name, m) in &messages {
        out.put("rps_message", name, m.as_bytes());
    }
    let id = Identity {
        app_version: "0.1.0".into(),
        tenant_id: String::new(),
    };
    // A TLS-enforced session: tunnel data both ways, a port switch, the tunnel closing, the end.
    let mut script = vec![1u8];
    record(&mut script, 0, messages[4].1.as_bytes());
    record(&mut script, 3, &[0x16, 3, 3, 0, 2, 2, 0]);
    record(&mut script, 0, messages[0].1.as_bytes());
    script.push(0x84); // port switched
    record(
        &mut script,
        0,
        client_message(&id, "tls_data", b"\x17\x03\x03").as_bytes(),
    );
    script.push(0x44); // the tunnel closes (lms_error)
    record(&mut script, 0, messages[2].1.as_bytes());
    record(&mut script, 0, messages[3].1.as_bytes());
    out.put("rps_session", "tunnel", &script);
    certs
}

fn openssl_rsa_key() -> Option<String> {
    let o = Process::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A PKCS#12 file of `key` (PKCS#8) with `chain`, password `P@ssw0rd` (the fuzz target's), one
/// PBKDF2 iteration so that the fuzzer spends its time parsing rather than hashing.
fn pfx(key: &[u8], chain: &[Vec<u8>]) -> Option<Vec<u8>> {
    use p12_keystore::{
        Certificate, KeyStore, KeyStoreEntry, LocalKeyId, PrivateKey, PrivateKeyChain,
    };
    let certs: Vec<Certificate> = chain
        .iter()
        .map(|d| Certificate::from_der(d))
        .collect::<Result<_, _>>()
        .ok()?;
    let entry = PrivateKeyChain::new(
        LocalKeyId(vec![1; 20]),
        PrivateKey::from_der(key).ok()?,
        certs,
    );
    let mut ks = KeyStore::new();
    ks.add_entry("amt", KeyStoreEntry::PrivateKeyChain(entry));
    ks.writer("P@ssw0rd")
        .mac_iterations(1)
        .encryption_iterations(1)
        .write()
        .ok()
}

/// Provisioning-certificate files: the on-die CA root (DER), the chains RPS sent in the traces
/// (PEM, no key), and a root → intermediate → leaf chain made here with the AMT activation OID,
/// as PEM with its key, PKCS#12 and base64 PKCS#12.
fn cert_seeds(out: &mut Out, fixtures: &Path, trace_certs: &[Vec<u8>]) {
    use base64::Engine as _;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let mut ders = Vec::new();
    files(&fixtures.join("intel-ondie-ca"), "cer", &mut ders);
    for p in &ders {
        out.put(
            "provisioning_cert",
            &stem(p, fixtures),
            &fs::read(p).expect("read cer"),
        );
    }
    if !trace_certs.is_empty() {
        let bundle: String = trace_certs.iter().map(|d| pem("CERTIFICATE", d)).collect();
        out.put(
            "provisioning_cert",
            "rps-trace-chain.pem",
            bundle.as_bytes(),
        );
        out.put("provisioning_cert", "rps-trace-leaf.der", &trace_certs[0]);
    }

    let ca = |cn: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p
    };
    let root_key = KeyPair::generate().expect("root key");
    let root_params = ca("Fuzz Seed Root");
    let root = root_params.self_signed(&root_key).expect("root");
    let root_issuer = Issuer::new(root_params, root_key);
    let int_key = KeyPair::generate().expect("intermediate key");
    let int_params = ca("Fuzz Seed Intermediate");
    let int = int_params
        .signed_by(&int_key, &root_issuer)
        .expect("intermediate");
    let int_issuer = Issuer::new(int_params, int_key);
    let (leaf_key, kind) = match openssl_rsa_key()
        .and_then(|pem| KeyPair::from_pkcs8_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).ok())
    {
        Some(k) => (k, "rsa"),
        None => (KeyPair::generate().expect("leaf key"), "p256"),
    };
    let mut lp = CertificateParams::new(vec!["amt.example.test".to_string()]).expect("params");
    lp.distinguished_name
        .push(DnType::CommonName, "amt.example.test");
    lp.distinguished_name.push(
        DnType::OrganizationalUnitName,
        "Intel(R) Client Setup Certificate",
    );
    lp.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::Other(vec![2, 16, 840, 1, 113741, 1, 2, 3]),
    ];
    let leaf = lp.signed_by(&leaf_key, &int_issuer).expect("leaf");
    let chain = vec![leaf.der().to_vec(), int.der().to_vec(), root.der().to_vec()];
    let key = leaf_key.serialize_der();
    let mut with_key: String = chain.iter().map(|d| pem("CERTIFICATE", d)).collect();
    with_key += &pem("PRIVATE KEY", &key);
    out.put(
        "provisioning_cert",
        &format!("chain-{kind}.pem"),
        with_key.as_bytes(),
    );
    // Out of order, and a leaf alone.
    let shuffled: String = [&chain[2], &chain[0], &chain[1]]
        .iter()
        .map(|d| pem("CERTIFICATE", d))
        .collect();
    out.put("provisioning_cert", "shuffled.pem", shuffled.as_bytes());
    out.put("provisioning_cert", &format!("leaf-{kind}.der"), &chain[0]);
    if let Some(p) = pfx(&key, &chain) {
        out.put("provisioning_cert", &format!("chain-{kind}.pfx"), &p);
        let text = base64::engine::general_purpose::STANDARD.encode(&p);
        out.put(
            "provisioning_cert",
            &format!("chain-{kind}.pfx.b64"),
            text.as_bytes(),
        );
    }
    // A mutated PFX fails its MAC before anything inside is read; PFX files without a MAC (legal,
    // and accepted) let the fuzzer reach the bags. openssl writes them unencrypted, and with the
    // legacy 3DES/RC2 encryption older tools use.
    let dir = std::env::temp_dir().join(format!("amt-fuzz-seeds-{}", std::process::id()));
    if fs::create_dir_all(&dir).is_ok() {
        let (k, c) = (dir.join("key.pem"), dir.join("chain.pem"));
        let chain_pem: String = chain.iter().map(|d| pem("CERTIFICATE", d)).collect();
        if fs::write(&k, pem("PRIVATE KEY", &key)).is_ok() && fs::write(&c, chain_pem).is_ok() {
            let variants: [(&str, &[&str]); 2] = [
                (
                    "plain-nomac",
                    &["-keypbe", "NONE", "-certpbe", "NONE", "-nomac"],
                ),
                ("legacy-nomac", &["-legacy", "-iter", "1", "-nomac"]),
            ];
            for (name, extra) in variants {
                let o = dir.join("out.pfx");
                let ok = Process::new("openssl")
                    .args(["pkcs12", "-export", "-passout", "pass:P@ssw0rd", "-inkey"])
                    .arg(&k)
                    .arg("-in")
                    .arg(&c)
                    .arg("-out")
                    .arg(&o)
                    .args(extra)
                    .output()
                    .is_ok_and(|r| r.status.success());
                if let (true, Ok(b)) = (ok, fs::read(&o)) {
                    out.put("provisioning_cert", &format!("{name}-{kind}.pfx"), &b);
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

/// The two sample files, and files made with the crate's encoder: a root enrolment (scrambled, as
/// ACU writes it), the same unscrambled, and a consumable file of two records.
fn setup_bin_seeds(out: &mut Out, fixtures: &Path) {
    let dir = fixtures.join("setup-bin");
    let mut paths = Vec::new();
    files(&dir, "bin", &mut paths);
    for p in &paths {
        out.put(
            "setup_bin",
            &stem(p, &dir),
            &fs::read(p).expect("read setup.bin"),
        );
    }
    let enrolment = RootEnrolment {
        current_mebx_password: Secret::new("admin"),
        new_mebx_password: Some(Secret::new("N3w-P@ssword")),
        pki_dns_suffix: Some("amt.example.test".into()),
        deactivate_default_hashes: true,
        hash: CertHash {
            algorithm: amthi::HashAlgorithm::Sha256,
            hash: (0..32).collect(),
            name: "Fuzz Seed Root".into(),
        },
    };
    let f = enrolment.file();
    out.put("setup_bin", "enrolment", &f.encode().expect("encode"));
    let mut plain = f.clone();
    for r in &mut plain.records {
        r.flags &= !amt_agent::provisioning::setupbin::RECORD_FLAG_SCRAMBLED;
    }
    out.put(
        "setup_bin",
        "enrolment-unscrambled",
        &plain.encode().expect("encode"),
    );
    let mut two: SetupBin = f.clone();
    two.header.flags = 0;
    two.header.data_record_count = 2;
    let mut second = two.records[0].clone();
    second.number = 2;
    second
        .variables
        .push(Variable::new(1, 3, SetupValue::U8(1)));
    two.records.push(second);
    two.fill_padding();
    out.put(
        "setup_bin",
        "consumable-two-records",
        &two.encode().expect("encode"),
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(args.next().unwrap_or_else(|| "fuzz/corpus".into()));
    let fixtures = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"));
    let mut out = Out { root, count: 0 };
    amthi_seeds(&mut out);
    apf_seeds(&mut out);
    let values = http_seeds(&mut out, &fixtures);
    digest_seeds(&mut out, &values);
    wsman_seeds(&mut out, &fixtures);
    simsock_seeds(&mut out);
    let certs = rps_seeds(&mut out, &fixtures);
    cert_seeds(&mut out, &fixtures, &certs);
    setup_bin_seeds(&mut out, &fixtures);
    profile_seeds(&mut out, &fixtures);
    println!("{} seeds in {}", out.count, out.root.display());
}

/// Desired-state profiles: the committed ones (ours, rpc-go v3 plain, encrypted and its JSON
/// envelope, the bad ones) and the README's complete example.
fn profile_seeds(out: &mut Out, fixtures: &Path) {
    let dir = fixtures.join("profiles");
    for ext in ["yaml", "enc", "json"] {
        let mut paths = Vec::new();
        files(&dir, ext, &mut paths);
        for p in &paths {
            out.put(
                "profile",
                &format!("{}.{ext}", stem(p, &dir)),
                &fs::read(p).expect("read a profile"),
            );
        }
    }
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/profile.yaml");
    out.put(
        "profile",
        "example",
        &fs::read(example).expect("read examples/profile.yaml"),
    );
}
