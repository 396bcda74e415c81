//! `WsmanClient` against an in-memory AMT: each connect is a `tokio::io::duplex` pair served by a
//! task that parses the request and answers through `DigestServer` (401 first, then 200).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::error::{AgentError, ExitCode};
use crate::wsman::digest::{AuthOutcome, DigestServer};
use crate::wsman::http::{
    encode_response, BodyEncoding, ChunkLayout, ChunkSizeStyle, Header, Request, RequestParser,
};
use crate::wsman::transport::{AmtStream, ConnectFuture};

#[derive(Clone)]
enum Mode {
    /// Digest-protected endpoint.
    Digest,
    /// Read the request, then drop the stream without a byte (this many times, then Digest).
    DropFirst(u32),
    /// Read the request and never answer.
    Silent,
    /// Answer these exact bytes.
    Raw(Vec<u8>),
}

struct Amt {
    digest: DigestServer,
    user: String,
    password: Secret,
    mode: Mode,
    requests: Vec<Request>,
}

fn amt(mode: Mode, expiry: Option<Duration>) -> Arc<Mutex<Amt>> {
    Arc::new(Mutex::new(Amt {
        digest: DigestServer::new("Digest:727734D63A1FC0423736E48DA554E462", expiry),
        user: "admin".into(),
        password: Secret::new("P@ssw0rd"),
        mode,
        requests: Vec::new(),
    }))
}

struct Duplex(Arc<Mutex<Amt>>);

impl Connector for Duplex {
    fn connect(&self, port: u16) -> ConnectFuture<'_> {
        assert_eq!(port, 16992);
        let amt = self.0.clone();
        Box::pin(async move {
            let (client, server) = tokio::io::duplex(64 * 1024);
            tokio::spawn(serve(amt, server));
            Ok(Box::new(client) as Box<dyn AmtStream>)
        })
    }
}

fn reply(st: &mut Amt, req: &Request) -> Option<Vec<u8>> {
    let now = Instant::now();
    match st.mode.clone() {
        Mode::Silent => return None,
        Mode::Raw(bytes) => return Some(bytes),
        Mode::DropFirst(n) if n > 0 => {
            st.mode = Mode::DropFirst(n - 1);
            return None;
        }
        Mode::DropFirst(_) | Mode::Digest => {}
    }
    let Amt {
        digest,
        user,
        password,
        ..
    } = st;
    let outcome = digest.authenticate(
        req.header("Authorization"),
        "POST",
        |u| (u == user.as_str()).then(|| password.clone()),
        now,
    );
    let stale = match outcome {
        AuthOutcome::Accepted { username } => {
            let body = format!(
                "<Envelope user=\"{username}\">{}</Envelope>",
                req.body.len()
            );
            return Some(encode_response(
                200,
                "OK",
                &[Header::new(
                    "Content-Type",
                    "application/soap+xml; charset=UTF-8",
                )],
                body.as_bytes(),
                &BodyEncoding::Chunked(ChunkSizeStyle::Padded4Upper, ChunkLayout::MaxSize(16)),
            ));
        }
        AuthOutcome::Stale => true,
        AuthOutcome::Rejected(_) => false,
    };
    let challenge = digest.challenge(stale, now, &mut rand::thread_rng());
    Some(encode_response(
        401,
        "Unauthorized",
        &[
            Header::new("WWW-Authenticate", challenge),
            Header::new("Content-Type", "text/html"),
            Header::new("Connection", "close"),
        ],
        b"<HTML>Log on failed</HTML>",
        &BodyEncoding::ContentLength,
    ))
}

async fn serve(amt: Arc<Mutex<Amt>>, mut s: tokio::io::DuplexStream) {
    let mut parser = RequestParser::new();
    let mut buf = [0u8; 4096];
    let req = loop {
        let n = s.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        if let Ok(Some(r)) = parser.feed(&buf[..n]) {
            break r;
        }
    };
    let answer = {
        let mut st = amt.lock().unwrap();
        st.requests.push(req.clone());
        let silent = matches!(st.mode, Mode::Silent);
        (reply(&mut st, &req), silent)
    };
    match answer {
        (Some(bytes), _) => {
            let _ = s.write_all(&bytes).await;
        }
        (None, true) => std::future::pending::<()>().await,
        (None, false) => {}
    }
}

fn client(amt: &Arc<Mutex<Amt>>, password: &str) -> WsmanClient {
    WsmanClient::new(
        Arc::new(Duplex(amt.clone())),
        Credentials::new("admin", Secret::new(password)),
        WsmanOptions {
            request_timeout: Duration::from_secs(5),
            ..WsmanOptions::default()
        },
    )
}

fn requests(amt: &Arc<Mutex<Amt>>) -> Vec<Request> {
    amt.lock().unwrap().requests.clone()
}

fn nc_and_nonce(r: &Request) -> (String, String) {
    let c = crate::wsman::digest::parse_authorization(r.header("Authorization").unwrap()).unwrap();
    (c.nc.unwrap(), c.nonce)
}

#[tokio::test]
async fn wsman_client_digest_challenge_then_nonce_reuse() {
    let amt = amt(Mode::Digest, None);
    let mut c = client(&amt, "P@ssw0rd");
    let r = c.post("<Envelope>get</Envelope>").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"<Envelope user=\"admin\">24</Envelope>");
    let r = c.post("<Envelope>second</Envelope>").await.unwrap();
    assert_eq!(r.status, 200);
    let reqs = requests(&amt);
    assert_eq!(reqs.len(), 3, "401, 200, then 200 with the kept nonce");
    assert!(reqs[0].header("Authorization").is_none());
    let (nc1, nonce1) = nc_and_nonce(&reqs[1]);
    let (nc2, nonce2) = nc_and_nonce(&reqs[2]);
    assert_eq!((nc1.as_str(), nc2.as_str()), ("00000001", "00000002"));
    assert_eq!(nonce1, nonce2);
    // rpc-go's LME framing: chunked, Connection: close, no Host.
    for r in &reqs {
        assert_eq!(r.target, "/wsman");
        assert_eq!(r.header("Transfer-Encoding"), Some("chunked"));
        assert_eq!(r.header("Connection"), Some("close"));
        assert!(r.header("Host").is_none());
    }
    assert_eq!(reqs[2].body, b"<Envelope>second</Envelope>");
}

#[test]
fn wsman_request_bytes_match_rpc_go() {
    let b = encode_wsman_request(Some("Digest username=\"admin\""), &[b'x'; 26]);
    let text = String::from_utf8(b).unwrap();
    assert_eq!(
        text,
        format!(
            "POST /wsman HTTP/1.1\r\nAuthorization: Digest username=\"admin\"\r\nConnection: close\r\n\
             Content-Type: application/soap+xml; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n\
             1a\r\n{}\r\n0\r\n\r\n",
            "x".repeat(26)
        )
    );
}

#[tokio::test]
async fn wsman_client_retries_once_on_a_stale_nonce() {
    let amt = amt(Mode::Digest, Some(Duration::from_millis(100)));
    let mut c = client(&amt, "P@ssw0rd");
    assert_eq!(c.post("<a/>").await.unwrap().status, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(c.post("<b/>").await.unwrap().status, 200);
    let reqs = requests(&amt);
    assert_eq!(reqs.len(), 4, "401, 200, stale 401, 200");
    let (_, old) = nc_and_nonce(&reqs[2]);
    let (nc, new) = nc_and_nonce(&reqs[3]);
    assert_ne!(old, new);
    assert_eq!(nc, "00000001");
}

#[tokio::test]
async fn wsman_client_wrong_password_is_unauthorized_and_exit_100() {
    let amt = amt(Mode::Digest, None);
    let mut c = client(&amt, "wrong");
    let e = c.post("<a/>").await.unwrap_err();
    assert!(
        matches!(&e, WsmanError::Unauthorized { user } if user == "admin"),
        "{e}"
    );
    assert_eq!(requests(&amt).len(), 2);
    let ae = AgentError::from(e);
    assert_eq!(ae.exit, ExitCode::AmtAuthenticationFailed);
    assert_eq!(ae.exit.code(), 100);
    // Switching credentials keeps the nonce: one request, no new 401.
    c.set_credentials(Credentials::new("admin", Secret::new("P@ssw0rd")));
    assert_eq!(c.post("<a/>").await.unwrap().status, 200);
    let reqs = requests(&amt);
    assert_eq!(reqs.len(), 3);
    assert_eq!(nc_and_nonce(&reqs[2]).0, "00000001");
}

#[tokio::test]
async fn wsman_client_retries_a_dropped_stream_once() {
    let amt1 = amt(Mode::DropFirst(1), None);
    let mut c = client(&amt1, "P@ssw0rd");
    assert_eq!(c.post("<a/>").await.unwrap().status, 200);
    assert_eq!(requests(&amt1).len(), 3);

    let amt2 = amt(Mode::DropFirst(100), None);
    let mut c = client(&amt2, "P@ssw0rd");
    let e = c.post("<a/>").await.unwrap_err();
    assert!(matches!(e, WsmanError::Io(_)), "{e}");
    assert_eq!(requests(&amt2).len(), 2, "one retry only");
    assert_eq!(AgentError::from(e).exit, ExitCode::AmtConnectionFailed);
}

#[tokio::test]
async fn wsman_client_request_deadline() {
    let amt = amt(Mode::Silent, None);
    let mut c = WsmanClient::new(
        Arc::new(Duplex(amt.clone())),
        Credentials::new("admin", Secret::new("x")),
        WsmanOptions {
            request_timeout: Duration::from_millis(200),
            ..WsmanOptions::default()
        },
    );
    let t0 = Instant::now();
    let e = c.post("<a/>").await.unwrap_err();
    assert!(matches!(e, WsmanError::Timeout { ms: 200 }), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn wsman_client_post_raw_is_byte_for_byte() {
    let answer = b"HTTP/1.1 200 OK\r\nServer: Intel(R) Active Management Technology 15.0.23.1706\r\nTransfer-Encoding: chunked\r\n\r\n0004\r\n<a/>\r\n0\r\n\r\n".to_vec();
    let amt = amt(Mode::Raw(answer.clone()), None);
    let c = client(&amt, "P@ssw0rd");
    let request = crate::wsman::http::encode_wsman_post(
        "192.168.1.10:16992",
        Some("Digest username=\"admin\",realm=\"R\""),
        b"<Envelope/>",
    );
    assert_eq!(c.post_raw(&request).await.unwrap(), answer);
    let reqs = requests(&amt);
    assert_eq!(reqs[0].header("Host"), Some("192.168.1.10:16992"));
    assert_eq!(reqs[0].body, b"<Envelope/>");
}
