//! The simulated AMT web server behind ports 16992/16993: HTTP with AMT's framing, Digest
//! authentication as the firmware does it, and a stateful model of the WS-MAN classes that RPS's
//! flows, local activation and configuration use.
//!
//! * this file: the web server (HTTP framing, Digest, per-request faults);
//! * [`model`]: the generic WS-MAN operations on the instance store (Get, Put, Enumerate/Pull,
//!   Delete, Create, method dispatch), with the faults firmware answers;
//! * [`classes`]: one module per area of the firmware (setup, redirection, network, TLS, remote
//!   access, ...), each seeding its factory instances, validating writes and implementing methods.
//!
//! Facts: transport.md §6–7 (HTTP, Digest, envelopes), rps-protocol.md §3 and §9 (what a real RPS
//! needs from AMT), provisioning.md §1–3 (ReturnValues, certificate rules, signing).

pub mod classes;
mod model;

use std::collections::HashMap;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::profile::DeviceProfile;
use super::FirmwareCore;
use crate::wsman::digest::{AuthOutcome, DigestServer, NonceBook};
use crate::wsman::envelope::{self as env, action, ns, Envelope, FaultSpec};
use crate::wsman::http::{self, ChunkLayout, Request};

pub use classes::{amt_fqdn, remote_access_status, secret_digest, seed_instances, unprovision};
pub use model::Instance;
use model::{class_of, dispatch, next_id};

/// The LSA user of host-based setup.
pub const LSA_USER: &str = "$$OsAdmin";
pub const ADMIN_USER: &str = "admin";

/// Transient state of the web server (not persisted: a restart of the firmware forgets it).
pub struct WebState {
    digest: Option<DigestServer>,
    rng: StdRng,
    message_counter: u64,
    contexts: HashMap<String, (String, Vec<String>)>,
    context_counter: u32,
    pub(crate) config_nonce: [u8; 20],
    pub(crate) chain: Vec<Vec<u8>>,
    pub(crate) chain_complete: bool,
    /// Requests handled, for fault injection.
    pub requests: u64,
    /// The connection the request being handled came on (set by [`handle_on`]; after the request it
    /// still describes the latest one, which tests read). The simulated AMT 19+ ACM flow (mutual TLS with the provisioning certificate,
    /// rpc-go.md §5.4) reads `conn.client_chain` here to check it against the hash recorded by
    /// START_CONFIGURATION_HBASED.
    pub conn: ConnInfo,
    /// `amt-sim serve --wsman-log FILE`: where each authenticated request is appended.
    pub log: Option<std::path::PathBuf>,
}

/// What the web server knows about the connection a request arrived on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnInfo {
    /// The request came over TLS (AMT's port 16993).
    pub tls: bool,
    /// The client's certificate chain from mutual TLS, leaf first (DER); empty when the client sent
    /// none or the connection is plain HTTP.
    pub client_chain: Vec<Vec<u8>>,
}

impl Default for WebState {
    fn default() -> Self {
        WebState {
            digest: None,
            rng: StdRng::from_entropy(),
            message_counter: 0x2E4,
            contexts: HashMap::new(),
            context_counter: 0x14,
            config_nonce: [0; 20],
            chain: Vec::new(),
            chain_complete: false,
            requests: 0,
            conn: ConnInfo::default(),
            log: None,
        }
    }
}

/// A fresh `Digest:` + 32 upper-case hex realm.
pub fn new_realm(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    format!(
        "Digest:{}",
        crate::amthi::codec::hex(&b).to_ascii_uppercase()
    )
}

/// What the web server answers, and whether the connection ends after it.
pub struct WebReply {
    pub bytes: Vec<u8>,
    pub close: bool,
    /// Send the answer this late (`wsman-latency` fault).
    pub delay: Option<std::time::Duration>,
    /// The connection drops after `bytes` (which may be a partial answer, or none).
    pub drop_after: bool,
}

impl WebReply {
    fn new(bytes: Vec<u8>, close: bool) -> WebReply {
        WebReply {
            bytes,
            close,
            delay: None,
            drop_after: false,
        }
    }
}

fn server_header(p: &DeviceProfile) -> String {
    let (ma, mi, hf, b) = p.version_parts();
    http::amt_server_header(&format!("{ma}.{mi}.{hf}.{b}"))
}

const LOGON_FAILED_HTML: &str = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\" >\n<html><head><link rel=stylesheet href=/styles.css>\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\n<title>Intel&reg; Active Management Technology</title></head>\n<body>\n<table class=header>\n<tr><td valign=top nowrap>\n<p class=top1>Intel<font class=r><sup>&reg;</sup></font> Active Management Technology\n<td valign=\"top\"><img src=\"logo.gif\" align=\"right\" alt=\"Intel\">\n</table>\n<br />\n<h2 class=warn>Log on failed. Incorrect user name or password, or user account temporarily locked.</h2>\n\n<p>\n<form METHOD=\"GET\" action=\"index.htm\"><h2><input type=submit value=\"Try again\">\n</h2></form>\n<p>\n\n</body>\n</html>\n";

pub(super) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Handles one complete HTTP request that came on a plain connection (port 16992, LMS-like TCP).
pub fn handle(fw: &mut FirmwareCore, req: &Request, now: Instant) -> WebReply {
    handle_on(fw, req, &ConnInfo::default(), now)
}

/// Handles one complete HTTP request that came on the connection `conn` describes (TLS, client
/// certificate); `fw.web.conn` holds it from here on.
pub fn handle_on(fw: &mut FirmwareCore, req: &Request, conn: &ConnInfo, now: Instant) -> WebReply {
    fw.web.conn = conn.clone();
    handle_request(fw, req, now)
}

fn handle_request(fw: &mut FirmwareCore, req: &Request, now: Instant) -> WebReply {
    fw.web.requests += 1;
    let server = server_header(&fw.profile);
    if fw.faults.drop_request(fw.web.requests) {
        tracing::debug!(
            request = fw.web.requests,
            "fault: dropping the request unanswered"
        );
        return WebReply {
            bytes: Vec::new(),
            close: true,
            delay: None,
            drop_after: true,
        };
    }
    if fw.profile.digest_realm.is_empty() {
        let r = new_realm(&mut fw.web.rng);
        fw.profile.digest_realm = r;
        fw.changed();
    }
    let realm = fw.profile.digest_realm.clone();
    if fw
        .web
        .digest
        .as_ref()
        .map(|d| d.realm != realm)
        .unwrap_or(true)
    {
        fw.web.digest = Some(DigestServer {
            realm: realm.clone(),
            book: NonceBook::new(None),
        });
    }
    if req.method != "POST" || !req.target.starts_with("/wsman") {
        return WebReply::new(
            http::encode_amt_400_html(&server, b"<html><body>Bad Request</body></html>"),
            true,
        );
    }
    let lsa_ha1 = (fw.profile.control_mode == 0).then(|| {
        crate::wsman::digest::md5_hex(&format!("{LSA_USER}:{realm}:{}", fw.profile.lsa_password))
    });
    let admin_ha1 = (!fw.profile.admin_ha1.is_empty()).then(|| fw.profile.admin_ha1.clone());
    let digest = fw.web.digest.as_mut().expect("set above");
    let outcome = digest.authenticate_ha1(
        req.header("Authorization"),
        "POST",
        |user| match user {
            LSA_USER => lsa_ha1.clone(),
            ADMIN_USER => admin_ha1.clone(),
            _ => None,
        },
        now,
    );
    let user = match outcome {
        AuthOutcome::Accepted { username } => username,
        AuthOutcome::Stale | AuthOutcome::Rejected(_) => {
            let stale = matches!(outcome, AuthOutcome::Stale);
            tracing::debug!(?outcome, "WS-MAN: 401");
            let nonce = digest.book.issue(now, &mut fw.web.rng);
            return WebReply::new(
                http::encode_amt_401(&realm, &nonce, stale, &server, LOGON_FAILED_HTML.as_bytes()),
                true,
            );
        }
    };
    if super::certs::hbased_open(fw) {
        // AMT 19+ secure host-based configuration: every request of the open configuration comes
        // over mutual TLS with the provisioning certificate START_CONFIGURATION_HBASED announced.
        // What firmware answers otherwise is unpublished; the simulator answers HTTP 403 and
        // closes the connection (UNCONFIRMED).
        let chain = if fw.web.conn.tls {
            fw.web.conn.client_chain.clone()
        } else {
            Vec::new()
        };
        if let Err(why) = super::certs::hbased_client_ok(fw, &chain) {
            tracing::debug!(reason = why, "WS-MAN during HBASED configuration: 403");
            return WebReply::new(html_error(403, &server, "Forbidden"), true);
        }
    }
    let date = http::http_date(now_unix());
    let delay = Some(fw.faults.wsman_latency()).filter(|d| !d.is_zero());
    let parsed = Envelope::parse(&req.body);
    if let Ok(e) = &parsed {
        let class = class_of(e.resource_uri().unwrap_or_default()).to_string();
        if fw.faults.http500(&class) {
            let mut r = WebReply::new(html_error(500, &server, "Internal Server Error"), true);
            r.delay = delay;
            return r;
        }
    }
    let method = parsed
        .as_ref()
        .ok()
        .and_then(|e| e.action())
        .and_then(|a| a.rsplit('/').next())
        .unwrap_or_default()
        .to_string();
    let (status, body) = match parsed {
        Ok(e) => match dispatch(fw, &e, &user) {
            Ok(xml) => (200, xml),
            Err(f) => (400, f),
        },
        Err(e) => {
            tracing::debug!(error = %e, "WS-MAN: unparsable envelope");
            let fault = FaultSpec {
                action: action::ADDRESSING_FAULT,
                code: "Sender",
                subcode: Some((ns::WSMAN, "SchemaValidationError")),
                reason: "The supplied SOAP violates the corresponding XML Schema definition.",
                detail: "",
            };
            (400, env::amt_fault_envelope("", next_id(fw), &fault))
        }
    };
    if let Some(path) = &fw.web.log {
        let (class, op) = match Envelope::parse(&req.body) {
            Ok(e) => (
                class_of(e.resource_uri().unwrap_or_default()).to_string(),
                operation_name(e.action().unwrap_or_default()),
            ),
            Err(_) => ("-".into(), "-".into()),
        };
        let line = format!("{user}\t{class}\t{op}\t{status}\n");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot append to the WS-MAN log");
        }
    }
    let close = status == 400 || req.wants_close();
    let layout = if status == 200 {
        let head = http::encode_amt_soap_response(
            status,
            &date,
            &server,
            b"",
            &ChunkLayout::Single,
            false,
        );
        let header_len = head
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(0, |i| i + 4);
        segment_layout(header_len, body.len())
    } else {
        // The captured fault is one chunk (amt-captures/400-fault-already-exists.http).
        ChunkLayout::Single
    };
    let mut bytes = http::encode_amt_soap_response(
        status,
        &date,
        &server,
        body.as_bytes(),
        &layout,
        status == 400,
    );
    let mut drop_after = false;
    if fw.faults.drop_after(&method) {
        // The firmware restarts its network stack after committing (user-pains.md, failure mode 6).
        bytes.truncate(bytes.len() / 2);
        drop_after = true;
    }
    WebReply {
        bytes,
        close,
        delay,
        drop_after,
    }
}

/// `Get`, `Put`, … for WS-Transfer/Enumeration actions, the method name for an invocation.
fn operation_name(action_uri: &str) -> String {
    match action_uri {
        action::GET => "Get".into(),
        action::PUT => "Put".into(),
        action::CREATE => "Create".into(),
        action::DELETE => "Delete".into(),
        action::ENUMERATE => "Enumerate".into(),
        action::PULL => "Pull".into(),
        other => other.rsplit('/').next().unwrap_or(other).to_string(),
    }
}

/// AMT's 200s are written in 770-byte pieces: the headers and the first chunk fill the first piece,
/// then each chunk is 0x2FA data bytes plus its 8 framing bytes (the AMT 15 GeneralSettings capture:
/// 218 header bytes + `0220` chunk = 770, then `02FA` chunks of 770, then the rest).
pub fn segment_layout(header_len: usize, body_len: usize) -> ChunkLayout {
    const PIECE: usize = 770;
    const FRAMING: usize = 8; // "XXXX\r\n" + "\r\n"
    let mut sizes = Vec::new();
    let mut left = body_len;
    let first = PIECE.saturating_sub(header_len + FRAMING);
    if first > 0 && left > 0 {
        let n = first.min(left);
        sizes.push(n);
        left -= n;
    }
    while left > 0 {
        let n = (PIECE - FRAMING).min(left);
        sizes.push(n);
        left -= n;
    }
    ChunkLayout::Exact(sizes)
}

/// A short HTML error page with `Connection: close`.
fn html_error(status: u16, server: &str, text: &str) -> Vec<u8> {
    http::encode_response(
        status,
        http::reason_phrase(status),
        &[
            http::Header::new("Server", server),
            http::Header::new("Content-Type", "text/html"),
            http::Header::new("Connection", "close"),
        ],
        format!("<html><body>{text}</body></html>").as_bytes(),
        &http::BodyEncoding::ContentLength,
    )
}

#[cfg(test)]
mod cira_tests;
#[cfg(test)]
mod network_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;
