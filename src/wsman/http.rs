//! HTTP/1.1 for AMT's local WS-MAN endpoint, sans-IO: bytes in, messages out, and serializers that
//! reproduce both what RPS/rpc-go send (rps-protocol.md §2) and AMT's own framing (transport.md §6,
//! byte-checked against `fixtures/amt-captures/`).
//!
//! The parsers never panic and never allocate past [`Limits`]: a peer that sends an endless header or
//! body gets [`HttpError::HeaderTooLarge`] / [`HttpError::BodyTooLarge`].

use std::fmt::Write as _;

/// One header as it appeared on the wire: original case, value with surrounding spaces removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

impl Header {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Header {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// First value of header `name` (case-insensitive) in `headers`.
pub fn header_value<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// How a parsed body was delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `Transfer-Encoding: chunked`; the body has been de-chunked.
    Chunked,
    /// `Content-Length: n`.
    ContentLength(usize),
    /// A response with neither: the body ran to the end of the connection ([`ResponseParser::finish_eof`]).
    CloseDelimited,
    /// A request with neither, or a response that cannot have a body (1xx, 204, 304).
    Empty,
}

/// A complete HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    pub status: u16,
    pub reason: String,
    /// Headers in wire order, original case.
    pub headers: Vec<Header>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Chunked-encoding trailers, if any.
    pub trailers: Vec<Header>,
    pub framing: Framing,
}

impl Response {
    /// First value of a header, case-insensitive.
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }
}

/// A complete HTTP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
    pub trailers: Vec<Header>,
    pub framing: Framing,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }

    /// Whether the client asked to close the connection after this exchange.
    pub fn wants_close(&self) -> bool {
        let close = self
            .header("Connection")
            .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
            .unwrap_or(false);
        close || self.version == "HTTP/1.0"
    }
}

/// Size limits for the parsers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Start line + headers (and, separately, chunk trailers), in bytes.
    pub max_header_bytes: usize,
    /// De-chunked body, in bytes.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    /// 16 KiB of headers, 4 MiB of body: far above anything AMT or RPS exchange.
    fn default() -> Limits {
        Limits {
            max_header_bytes: 16 * 1024,
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Why bytes could not be read as HTTP.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("HTTP header section exceeds {limit} bytes")]
    HeaderTooLarge { limit: usize },
    #[error("HTTP body exceeds {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("malformed HTTP start line: {0:?}")]
    BadStartLine(String),
    #[error("malformed HTTP header line: {0:?}")]
    BadHeader(String),
    #[error("malformed Content-Length: {0:?}")]
    BadContentLength(String),
    #[error("unsupported Transfer-Encoding: {0:?}")]
    UnsupportedTransferEncoding(String),
    #[error("malformed chunk size line: {0:?}")]
    BadChunkSize(String),
    #[error("chunk data not followed by CRLF")]
    BadChunkEnd,
    #[error("connection closed before any byte of the message")]
    ClosedBeforeMessage,
    #[error("connection closed in the middle of the message ({0})")]
    Truncated(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyState {
    Fixed(usize),
    ChunkSize,
    ChunkData(usize),
    ChunkDataEnd,
    Trailers,
    UntilEof,
}

#[derive(Clone, Debug)]
enum State {
    Head,
    Body(BodyState),
    Failed(HttpError),
}

/// A parsed start line + headers, waiting for its body.
#[derive(Clone, Debug)]
struct Head {
    start: StartLine,
    headers: Vec<Header>,
    framing: Framing,
}

#[derive(Clone, Debug)]
enum StartLine {
    Status {
        version: String,
        status: u16,
        reason: String,
    },
    Request {
        method: String,
        target: String,
        version: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Request,
    Response,
}

/// The state machine shared by both parsers.
#[derive(Clone, Debug)]
struct Core {
    side: Side,
    limits: Limits,
    buf: Vec<u8>,
    state: State,
    head: Option<Head>,
    body: Vec<u8>,
    trailers: Vec<Header>,
    trailer_bytes: usize,
}

/// Where the next line ends in `buf`: (index after the line feed, line without CR/LF).
fn take_line(buf: &[u8]) -> Option<(usize, &[u8])> {
    let lf = buf.iter().position(|&b| b == b'\n')?;
    let line = &buf[..lf];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some((lf + 1, line))
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_header_lines(lines: &[&[u8]]) -> Result<Vec<Header>, HttpError> {
    let mut headers: Vec<Header> = Vec::new();
    for raw in lines {
        if raw.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            // Obsolete line folding: join to the previous value.
            let prev = headers
                .last_mut()
                .ok_or_else(|| HttpError::BadHeader(lossy(raw)))?;
            prev.value.push(' ');
            prev.value.push_str(lossy(raw).trim());
            continue;
        }
        let text = lossy(raw);
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| HttpError::BadHeader(text.clone()))?;
        if !is_token(name) {
            return Err(HttpError::BadHeader(text.clone()));
        }
        headers.push(Header::new(name, value.trim_matches([' ', '\t'])));
    }
    Ok(headers)
}

fn parse_version(v: &str) -> Option<String> {
    match v {
        "HTTP/1.1" | "HTTP/1.0" => Some(v.to_string()),
        _ => None,
    }
}

fn parse_start_line(side: Side, line: &[u8]) -> Result<StartLine, HttpError> {
    let bad = || HttpError::BadStartLine(lossy(line));
    let text = std::str::from_utf8(line).map_err(|_| bad())?;
    match side {
        Side::Response => {
            let mut parts = text.splitn(3, ' ');
            let version = parts.next().and_then(parse_version).ok_or_else(bad)?;
            let code = parts.next().ok_or_else(bad)?;
            if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let status = code.parse().map_err(|_| bad())?;
            let reason = parts.next().unwrap_or("").to_string();
            Ok(StartLine::Status {
                version,
                status,
                reason,
            })
        }
        Side::Request => {
            let mut parts = text.split(' ');
            let (Some(method), Some(target), Some(version), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad());
            };
            if !is_token(method) || target.is_empty() {
                return Err(bad());
            }
            let version = parse_version(version).ok_or_else(bad)?;
            Ok(StartLine::Request {
                method: method.to_string(),
                target: target.to_string(),
                version,
            })
        }
    }
}

fn framing_for(side: Side, start: &StartLine, headers: &[Header]) -> Result<Framing, HttpError> {
    if let StartLine::Status { status, .. } = start {
        if (100..200).contains(status) || *status == 204 || *status == 304 {
            return Ok(Framing::Empty);
        }
    }
    let mut chunked = false;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Transfer-Encoding"))
    {
        let codings: Vec<&str> = h.value.split(',').map(str::trim).collect();
        let last = codings.last().copied().unwrap_or("");
        if last.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if !(last.is_empty() || last.eq_ignore_ascii_case("identity")) {
            return Err(HttpError::UnsupportedTransferEncoding(h.value.clone()));
        }
    }
    if chunked {
        return Ok(Framing::Chunked);
    }
    let mut length: Option<usize> = None;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Content-Length"))
    {
        let v = h.value.trim();
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HttpError::BadContentLength(h.value.clone()));
        }
        let n: usize = v
            .parse()
            .map_err(|_| HttpError::BadContentLength(h.value.clone()))?;
        if length.is_some_and(|l| l != n) {
            return Err(HttpError::BadContentLength(h.value.clone()));
        }
        length = Some(n);
    }
    Ok(match (length, side) {
        (Some(n), _) => Framing::ContentLength(n),
        (None, Side::Response) => Framing::CloseDelimited,
        (None, Side::Request) => Framing::Empty,
    })
}

/// Parse a chunk-size line: hex digits in any case, optional `;extensions`, optional spaces.
fn parse_chunk_size(line: &[u8]) -> Result<usize, HttpError> {
    let bad = || HttpError::BadChunkSize(lossy(line));
    let text = std::str::from_utf8(line).map_err(|_| bad())?;
    let size = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim_matches([' ', '\t']);
    if size.is_empty() || size.len() > 15 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    usize::from_str_radix(size, 16).map_err(|_| bad())
}

enum Done {
    Response(Response),
    Request(Request),
}

impl Core {
    fn new(side: Side, limits: Limits) -> Core {
        Core {
            side,
            limits,
            buf: Vec::new(),
            state: State::Head,
            head: None,
            body: Vec::new(),
            trailers: Vec::new(),
            trailer_bytes: 0,
        }
    }

    fn feed(&mut self, data: &[u8]) -> Result<Option<Done>, HttpError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        self.buf.extend_from_slice(data);
        match self.advance() {
            Ok(done) => Ok(done),
            Err(e) => {
                self.state = State::Failed(e.clone());
                Err(e)
            }
        }
    }

    fn finish_eof(&mut self) -> Result<Done, HttpError> {
        let result = match self.state {
            State::Head if self.buf.is_empty() => Err(HttpError::ClosedBeforeMessage),
            State::Head => Err(HttpError::Truncated("headers")),
            State::Body(BodyState::UntilEof) => Ok(self.complete()),
            State::Body(BodyState::Fixed(_)) => Err(HttpError::Truncated("Content-Length body")),
            State::Body(_) => Err(HttpError::Truncated("chunked body")),
            State::Failed(ref e) => Err(e.clone()),
        };
        if let Err(e) = &result {
            self.state = State::Failed(e.clone());
        }
        result
    }

    fn take_body(&mut self, n: usize) -> Result<(), HttpError> {
        if self.body.len() + n > self.limits.max_body_bytes {
            return Err(HttpError::BodyTooLarge {
                limit: self.limits.max_body_bytes,
            });
        }
        self.body.extend_from_slice(&self.buf[..n]);
        self.buf.drain(..n);
        Ok(())
    }

    fn advance(&mut self) -> Result<Option<Done>, HttpError> {
        loop {
            match self.state.clone() {
                State::Failed(e) => return Err(e),
                State::Head => {
                    if !self.parse_head()? {
                        return Ok(None);
                    }
                }
                State::Body(BodyState::Fixed(remaining)) => {
                    if remaining == 0 {
                        return Ok(Some(self.complete()));
                    }
                    let n = remaining.min(self.buf.len());
                    if n == 0 {
                        return Ok(None);
                    }
                    self.take_body(n)?;
                    self.state = State::Body(BodyState::Fixed(remaining - n));
                }
                State::Body(BodyState::UntilEof) => {
                    let n = self.buf.len();
                    if n > 0 {
                        self.take_body(n)?;
                    }
                    return Ok(None);
                }
                State::Body(BodyState::ChunkSize) => {
                    let Some((used, line)) = take_line(&self.buf) else {
                        if self.buf.len() > 1024 {
                            return Err(HttpError::BadChunkSize(lossy(&self.buf[..64])));
                        }
                        return Ok(None);
                    };
                    let size = parse_chunk_size(line)?;
                    self.buf.drain(..used);
                    if size > self.limits.max_body_bytes.saturating_sub(self.body.len()) {
                        return Err(HttpError::BodyTooLarge {
                            limit: self.limits.max_body_bytes,
                        });
                    }
                    self.state = State::Body(if size == 0 {
                        BodyState::Trailers
                    } else {
                        BodyState::ChunkData(size)
                    });
                }
                State::Body(BodyState::ChunkData(remaining)) => {
                    let n = remaining.min(self.buf.len());
                    if n == 0 {
                        return Ok(None);
                    }
                    self.take_body(n)?;
                    self.state = State::Body(if remaining == n {
                        BodyState::ChunkDataEnd
                    } else {
                        BodyState::ChunkData(remaining - n)
                    });
                }
                State::Body(BodyState::ChunkDataEnd) => {
                    if self.buf.starts_with(b"\r\n") {
                        self.buf.drain(..2);
                    } else if self.buf.starts_with(b"\n") {
                        self.buf.drain(..1);
                    } else if self.buf.is_empty() || self.buf == b"\r" {
                        return Ok(None);
                    } else {
                        return Err(HttpError::BadChunkEnd);
                    }
                    self.state = State::Body(BodyState::ChunkSize);
                }
                State::Body(BodyState::Trailers) => {
                    let Some((used, line)) = take_line(&self.buf) else {
                        if self.trailer_bytes + self.buf.len() > self.limits.max_header_bytes {
                            return Err(HttpError::HeaderTooLarge {
                                limit: self.limits.max_header_bytes,
                            });
                        }
                        return Ok(None);
                    };
                    self.trailer_bytes += used;
                    if self.trailer_bytes > self.limits.max_header_bytes {
                        return Err(HttpError::HeaderTooLarge {
                            limit: self.limits.max_header_bytes,
                        });
                    }
                    if line.is_empty() {
                        self.buf.drain(..used);
                        return Ok(Some(self.complete()));
                    }
                    let mut parsed = parse_header_lines(&[line])?;
                    self.trailers.append(&mut parsed);
                    self.buf.drain(..used);
                }
            }
        }
    }

    /// Parse the head if it is complete; returns whether it was.
    fn parse_head(&mut self) -> Result<bool, HttpError> {
        // Tolerate blank lines before a message (RFC 9112 §2.2).
        while self.buf.starts_with(b"\r\n") || self.buf.starts_with(b"\n") {
            let n = if self.buf[0] == b'\r' { 2 } else { 1 };
            self.buf.drain(..n);
        }
        let mut lines: Vec<&[u8]> = Vec::new();
        let mut pos = 0;
        let end = loop {
            match take_line(&self.buf[pos..]) {
                Some((used, line)) => {
                    pos += used;
                    if pos > self.limits.max_header_bytes {
                        return Err(HttpError::HeaderTooLarge {
                            limit: self.limits.max_header_bytes,
                        });
                    }
                    if line.is_empty() {
                        break pos;
                    }
                    lines.push(line);
                }
                None => {
                    if self.buf.len() > self.limits.max_header_bytes {
                        return Err(HttpError::HeaderTooLarge {
                            limit: self.limits.max_header_bytes,
                        });
                    }
                    return Ok(false);
                }
            }
        };
        let start = parse_start_line(self.side, lines[0])?;
        let headers = parse_header_lines(&lines[1..])?;
        let framing = framing_for(self.side, &start, &headers)?;
        if let Framing::ContentLength(n) = framing {
            if n > self.limits.max_body_bytes {
                return Err(HttpError::BodyTooLarge {
                    limit: self.limits.max_body_bytes,
                });
            }
        }
        self.buf.drain(..end);
        self.state = State::Body(match framing {
            Framing::Chunked => BodyState::ChunkSize,
            Framing::ContentLength(n) => BodyState::Fixed(n),
            Framing::CloseDelimited => BodyState::UntilEof,
            Framing::Empty => BodyState::Fixed(0),
        });
        self.head = Some(Head {
            start,
            headers,
            framing,
        });
        Ok(true)
    }

    fn complete(&mut self) -> Done {
        let head = self.head.take().unwrap_or(Head {
            start: StartLine::Status {
                version: String::new(),
                status: 0,
                reason: String::new(),
            },
            headers: Vec::new(),
            framing: Framing::Empty,
        });
        let body = std::mem::take(&mut self.body);
        let trailers = std::mem::take(&mut self.trailers);
        self.trailer_bytes = 0;
        self.state = State::Head;
        match head.start {
            StartLine::Status {
                version,
                status,
                reason,
            } => Done::Response(Response {
                version,
                status,
                reason,
                headers: head.headers,
                body,
                trailers,
                framing: head.framing,
            }),
            StartLine::Request {
                method,
                target,
                version,
            } => Done::Request(Request {
                method,
                target,
                version,
                headers: head.headers,
                body,
                trailers,
                framing: head.framing,
            }),
        }
    }
}

/// Incremental response parser (client side).
///
/// Feed bytes as they arrive; [`feed`](Self::feed) returns the response once it is complete. Bytes
/// after a complete response stay buffered: call `feed(&[])` to get a pipelined next one. When the
/// peer closes, call [`finish_eof`](Self::finish_eof): it completes a close-delimited body and
/// reports a truncated message otherwise. After an error the parser keeps returning that error.
#[derive(Clone, Debug)]
pub struct ResponseParser {
    core: Core,
}

impl Default for ResponseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseParser {
    pub fn new() -> ResponseParser {
        Self::with_limits(Limits::default())
    }

    pub fn with_limits(limits: Limits) -> ResponseParser {
        ResponseParser {
            core: Core::new(Side::Response, limits),
        }
    }

    /// Add bytes; `Ok(Some(_))` when a whole response has arrived.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<Response>, HttpError> {
        match self.core.feed(data)? {
            Some(Done::Response(r)) => Ok(Some(r)),
            _ => Ok(None),
        }
    }

    /// The connection closed: finish a close-delimited body, or report what was cut off.
    pub fn finish_eof(&mut self) -> Result<Response, HttpError> {
        match self.core.finish_eof()? {
            Done::Response(r) => Ok(r),
            Done::Request(_) => Err(HttpError::Truncated("not a response")),
        }
    }

    /// Bytes received but not yet part of a returned response.
    pub fn buffered(&self) -> &[u8] {
        &self.core.buf
    }
}

/// Incremental request parser (the simulator's server side); same contract as [`ResponseParser`].
/// A request without `Content-Length` or chunked encoding has an empty body.
#[derive(Clone, Debug)]
pub struct RequestParser {
    core: Core,
}

impl Default for RequestParser {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestParser {
    pub fn new() -> RequestParser {
        Self::with_limits(Limits::default())
    }

    pub fn with_limits(limits: Limits) -> RequestParser {
        RequestParser {
            core: Core::new(Side::Request, limits),
        }
    }

    pub fn feed(&mut self, data: &[u8]) -> Result<Option<Request>, HttpError> {
        match self.core.feed(data)? {
            Some(Done::Request(r)) => Ok(Some(r)),
            _ => Ok(None),
        }
    }

    /// The connection closed: `ClosedBeforeMessage` between requests, `Truncated` inside one.
    pub fn finish_eof(&mut self) -> Result<Request, HttpError> {
        match self.core.finish_eof()? {
            Done::Request(r) => Ok(r),
            Done::Response(_) => Err(HttpError::Truncated("not a request")),
        }
    }

    pub fn buffered(&self) -> &[u8] {
        &self.core.buf
    }
}

// ---------------------------------------------------------------------------------------------
// Serializers
// ---------------------------------------------------------------------------------------------

/// How a chunk-size line is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkSizeStyle {
    /// Upper-case hex without padding (`2CE`), as RPS and rpc-go send (rps-protocol.md §2).
    Upper,
    /// Four-digit, zero-padded upper-case hex (`02FA`), as AMT firmware sends (transport.md §6).
    Padded4Upper,
}

/// How a body is cut into chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkLayout {
    /// The whole body as one chunk (RPS/rpc-go requests; AMT's captured fault).
    Single,
    /// Chunks of at most `n` bytes.
    MaxSize(usize),
    /// Exactly these sizes, in order; any rest of the body goes in one last chunk. The AMT 15
    /// `AMT_GeneralSettings` capture is `Exact(vec![0x220, 0x2FA, 0x2FA, 0x3C])`.
    Exact(Vec<usize>),
}

/// How a serialized message delimits its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyEncoding {
    ContentLength,
    Chunked(ChunkSizeStyle, ChunkLayout),
}

fn write_chunk(out: &mut Vec<u8>, data: &[u8], style: ChunkSizeStyle) {
    let line = match style {
        ChunkSizeStyle::Upper => format!("{:X}\r\n", data.len()),
        ChunkSizeStyle::Padded4Upper => format!("{:04X}\r\n", data.len()),
    };
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Append `body` chunked to `out`, terminator `0\r\n\r\n` included. Empty pieces are skipped
/// (a zero-size chunk would end the body early).
pub fn write_chunked_body(
    out: &mut Vec<u8>,
    body: &[u8],
    style: ChunkSizeStyle,
    layout: &ChunkLayout,
) {
    let mut rest = body;
    match layout {
        ChunkLayout::Single => {}
        ChunkLayout::MaxSize(n) => {
            let n = (*n).max(1);
            while rest.len() > n {
                let (a, b) = rest.split_at(n);
                write_chunk(out, a, style);
                rest = b;
            }
        }
        ChunkLayout::Exact(sizes) => {
            for &n in sizes {
                let n = n.min(rest.len());
                if n == 0 {
                    continue;
                }
                let (a, b) = rest.split_at(n);
                write_chunk(out, a, style);
                rest = b;
            }
        }
    }
    if !rest.is_empty() {
        write_chunk(out, rest, style);
    }
    out.extend_from_slice(b"0\r\n\r\n");
}

fn has_header(headers: &[Header], name: &str) -> bool {
    header_value(headers, name).is_some()
}

/// Write headers, inserting the framing header (unless the caller already placed one) just before
/// `Connection`, or last: that gives RPS's order `Host, Transfer-Encoding, Connection`.
fn write_headers(out: &mut Vec<u8>, headers: &[Header], body_len: usize, enc: &BodyEncoding) {
    let framing = match enc {
        BodyEncoding::ContentLength => Header::new("Content-Length", body_len.to_string()),
        BodyEncoding::Chunked(..) => Header::new("Transfer-Encoding", "chunked"),
    };
    let placed = has_header(headers, "Content-Length") || has_header(headers, "Transfer-Encoding");
    let insert_at = if placed {
        None
    } else {
        Some(
            headers
                .iter()
                .position(|h| h.name.eq_ignore_ascii_case("Connection"))
                .unwrap_or(headers.len()),
        )
    };
    let mut line = String::new();
    for (i, h) in headers.iter().enumerate() {
        if insert_at == Some(i) {
            let _ = write!(line, "{}: {}\r\n", framing.name, framing.value);
        }
        let _ = write!(line, "{}: {}\r\n", h.name, h.value);
    }
    if insert_at == Some(headers.len()) {
        let _ = write!(line, "{}: {}\r\n", framing.name, framing.value);
    }
    line.push_str("\r\n");
    out.extend_from_slice(line.as_bytes());
}

fn write_body(out: &mut Vec<u8>, body: &[u8], enc: &BodyEncoding) {
    match enc {
        BodyEncoding::ContentLength => out.extend_from_slice(body),
        BodyEncoding::Chunked(style, layout) => write_chunked_body(out, body, *style, layout),
    }
}

/// Serialize a request. The framing header (`Content-Length` or `Transfer-Encoding: chunked`) is
/// added before `Connection` (or last) unless `headers` already holds one.
pub fn encode_request(
    method: &str,
    target: &str,
    headers: &[Header],
    body: &[u8],
    enc: &BodyEncoding,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 256);
    out.extend_from_slice(format!("{method} {target} HTTP/1.1\r\n").as_bytes());
    write_headers(&mut out, headers, body.len(), enc);
    write_body(&mut out, body, enc);
    out
}

/// The exact request RPS and rpc-go send to AMT (rps-protocol.md §2): `POST /wsman`, headers
/// `Authorization` (when given), `Host`, `Transfer-Encoding: chunked`, `Connection: close`, the
/// body as one chunk with an unpadded upper-case hex size.
pub fn encode_wsman_post(host: &str, authorization: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut headers = Vec::with_capacity(3);
    if let Some(a) = authorization {
        headers.push(Header::new("Authorization", a));
    }
    headers.push(Header::new("Host", host));
    headers.push(Header::new("Connection", "close"));
    encode_request(
        "POST",
        "/wsman",
        &headers,
        body,
        &BodyEncoding::Chunked(ChunkSizeStyle::Upper, ChunkLayout::Single),
    )
}

/// Serialize a response. Framing header handling as in [`encode_request`].
pub fn encode_response(
    status: u16,
    reason: &str,
    headers: &[Header],
    body: &[u8],
    enc: &BodyEncoding,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 256);
    out.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
    write_headers(&mut out, headers, body.len(), enc);
    write_body(&mut out, body, enc);
    out
}

/// `Server` header value of an AMT with firmware version `ver` (e.g. `15.0.23.1706`).
pub fn amt_server_header(ver: &str) -> String {
    format!("Intel(R) Active Management Technology {ver}")
}

/// A WS-MAN reply the way AMT frames it (transport.md §6): headers `Date`, `Server`,
/// `X-Frame-Options: DENY`, `Content-Type: application/soap+xml; charset=UTF-8`,
/// `Transfer-Encoding: chunked` (plus `Connection: close` when `close`, as on AMT's 400 faults), and
/// 4-digit zero-padded upper-case hex chunk sizes. `status` 200 or 400 (reason filled in).
pub fn encode_amt_soap_response(
    status: u16,
    date: &str,
    server: &str,
    body: &[u8],
    layout: &ChunkLayout,
    close: bool,
) -> Vec<u8> {
    let mut headers = vec![
        Header::new("Date", date),
        Header::new("Server", server),
        Header::new("X-Frame-Options", "DENY"),
        Header::new("Content-Type", "application/soap+xml; charset=UTF-8"),
        Header::new("Transfer-Encoding", "chunked"),
    ];
    if close {
        headers.push(Header::new("Connection", "close"));
    }
    encode_response(
        status,
        reason_phrase(status),
        &headers,
        body,
        &BodyEncoding::Chunked(ChunkSizeStyle::Padded4Upper, layout.clone()),
    )
}

/// AMT's 401 (transport.md §6): `WWW-Authenticate` with AMT's exact spacing
/// (`Digest realm="…", nonce="…",stale="false",qop="auth"`), `Content-Type: text/html`, `Server`,
/// `Content-Length`, `Connection: close`; no `Date`.
pub fn encode_amt_401(realm: &str, nonce: &str, stale: bool, server: &str, html: &[u8]) -> Vec<u8> {
    let headers = [
        Header::new(
            "WWW-Authenticate",
            super::digest::amt_challenge_value(realm, nonce, stale),
        ),
        Header::new("Content-Type", "text/html"),
        Header::new("Server", server),
        Header::new("Content-Length", html.len().to_string()),
        Header::new("Connection", "close"),
    ];
    encode_response(
        401,
        "Unauthorized",
        &headers,
        html,
        &BodyEncoding::ContentLength,
    )
}

/// AMT's HTML 400 for malformed HTTP: `Content-Type: text/html`, `Server`, `Content-Length`,
/// `Connection: close`.
pub fn encode_amt_400_html(server: &str, html: &[u8]) -> Vec<u8> {
    let headers = [
        Header::new("Content-Type", "text/html"),
        Header::new("Server", server),
        Header::new("Content-Length", html.len().to_string()),
        Header::new("Connection", "close"),
    ];
    encode_response(
        400,
        "Bad Request",
        &headers,
        html,
        &BodyEncoding::ContentLength,
    )
}

/// The standard reason phrase for the statuses AMT uses.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// RFC 1123 date (`Mon, 31 Jan 2022 10:23:04 GMT`) for Unix seconds, as in AMT's `Date` header.
pub fn http_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    // Civil-from-days (H. Hinnant), for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/amt-captures")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    fn parse_all_at_once(bytes: &[u8]) -> Result<Option<Response>, HttpError> {
        ResponseParser::new().feed(bytes)
    }

    fn parse_byte_by_byte(bytes: &[u8]) -> Response {
        let mut p = ResponseParser::new();
        for (i, b) in bytes.iter().enumerate() {
            if let Some(r) = p.feed(std::slice::from_ref(b)).unwrap() {
                assert_eq!(i, bytes.len() - 1, "complete before the last byte");
                return r;
            }
        }
        panic!("never completed");
    }

    #[test]
    fn wsman_parses_the_amt15_chunked_200_capture() {
        let bytes = capture("200-general-settings-get.http");
        let r = parse_all_at_once(&bytes).unwrap().unwrap();
        assert_eq!((r.status, r.reason.as_str()), (200, "OK"));
        let names: Vec<&str> = r.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Date",
                "Server",
                "X-Frame-Options",
                "Content-Type",
                "Transfer-Encoding"
            ]
        );
        assert_eq!(r.framing, Framing::Chunked);
        assert_eq!(r.body.len(), 0x220 + 0x2FA + 0x2FA + 0x3C);
        assert!(r
            .body
            .starts_with(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><a:Envelope"));
        assert!(r.body.ends_with(b"</a:Envelope>"));
        assert_eq!(parse_byte_by_byte(&bytes), r);
    }

    #[test]
    fn wsman_reproduces_the_amt15_200_capture_byte_for_byte() {
        let bytes = capture("200-general-settings-get.http");
        let r = parse_all_at_once(&bytes).unwrap().unwrap();
        let out = encode_amt_soap_response(
            200,
            &http_date(1_643_624_584),
            &amt_server_header("15.0.23.1706"),
            &r.body,
            &ChunkLayout::Exact(vec![0x220, 0x2FA, 0x2FA, 0x3C]),
            false,
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&bytes)
        );
        assert_eq!(out, bytes);
    }

    #[test]
    fn wsman_reproduces_the_400_fault_capture_byte_for_byte() {
        let bytes = capture("400-fault-already-exists.http");
        let r = parse_all_at_once(&bytes).unwrap().unwrap();
        assert_eq!((r.status, r.header("Connection")), (400, Some("close")));
        let out = encode_amt_soap_response(
            400,
            &http_date(1_676_674_661),
            &amt_server_header("15.0.23.1706"),
            &r.body,
            &ChunkLayout::Single,
            true,
        );
        assert_eq!(out, bytes);
    }

    #[test]
    fn wsman_reproduces_the_amt15_401_capture_byte_for_byte() {
        let bytes = capture("401-digest-challenge.http");
        let r = parse_all_at_once(&bytes).unwrap().unwrap();
        assert_eq!((r.status, r.reason.as_str()), (401, "Unauthorized"));
        assert_eq!(r.framing, Framing::ContentLength(434));
        let out = encode_amt_401(
            "Digest:727734D63A1FC0423736E48DA554E462",
            "B9AX94iAAAAAAAAAx6rrSfPHGUrx/3uA",
            false,
            &amt_server_header("15.0.23.1706"),
            &r.body,
        );
        assert_eq!(out, bytes);
    }

    #[test]
    fn wsman_reproduces_the_html_400_capture_byte_for_byte() {
        let bytes = capture("400-bad-request-html.http");
        let r = parse_all_at_once(&bytes).unwrap().unwrap();
        assert_eq!(r.status, 400);
        assert_eq!(r.body.len(), 400);
        let out = encode_amt_400_html(&amt_server_header("15.0.23.1706"), &r.body);
        assert_eq!(out, bytes);
    }

    #[test]
    fn wsman_parses_the_amt11_401_with_bare_lf_in_its_html_body() {
        let bytes = capture("401-digest-challenge-amt11.8.http");
        let r = parse_byte_by_byte(&bytes);
        assert_eq!(r.status, 401);
        assert_eq!(r.body.len(), 690);
        assert_eq!(r.body.iter().filter(|&&b| b == b'\n').count(), 20);
        assert!(r
            .header("www-authenticate")
            .unwrap()
            .starts_with("Digest realm="));
    }

    #[test]
    fn wsman_derived_incomplete_capture_waits_then_reports_truncation_at_eof() {
        let bytes = capture("derived/200-general-settings-get-incomplete.http");
        let mut p = ResponseParser::new();
        assert_eq!(p.feed(&bytes).unwrap(), None);
        assert_eq!(p.finish_eof(), Err(HttpError::Truncated("chunked body")));
    }

    #[test]
    fn wsman_derived_out_of_order_capture_is_rejected_at_the_start_line() {
        let bytes = capture("derived/200-general-settings-get-out-of-order.http");
        assert!(matches!(
            parse_all_at_once(&bytes),
            Err(HttpError::BadStartLine(l)) if l == "02FA"
        ));
    }

    #[test]
    fn wsman_derived_bad_xml_capture_has_valid_framing_and_a_truncated_body() {
        let bytes = capture("derived/200-general-settings-get-bad-xml.http");
        let r = parse_all_at_once(&bytes).unwrap().unwrap();
        assert_eq!(r.body.len(), 0x220);
    }

    #[test]
    fn wsman_chunk_sizes_any_case_with_extensions_and_trailers() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                    a;name=value\r\n0123456789\r\n00A \r\nabcdefghij\r\n0\r\nX-Trailer: yes\r\n\r\nNEXT";
        let mut p = ResponseParser::new();
        let r = p.feed(raw).unwrap().unwrap();
        assert_eq!(r.body, b"0123456789abcdefghij");
        assert_eq!(r.trailers, vec![Header::new("X-Trailer", "yes")]);
        assert_eq!(p.buffered(), b"NEXT");
    }

    #[test]
    fn wsman_close_delimited_body_ends_at_eof() {
        let mut p = ResponseParser::new();
        assert_eq!(
            p.feed(b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nhello ")
                .unwrap(),
            None
        );
        assert_eq!(p.feed(b"world").unwrap(), None);
        let r = p.finish_eof().unwrap();
        assert_eq!(
            (r.body.as_slice(), r.framing),
            (&b"hello world"[..], Framing::CloseDelimited)
        );
    }

    #[test]
    fn wsman_pipelined_responses_come_out_one_by_one() {
        let one = b"HTTP/1.1 204 No Content\r\n\r\n";
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let mut p = ResponseParser::new();
        let all = [&one[..], &two[..]].concat();
        assert_eq!(p.feed(&all).unwrap().unwrap().status, 204);
        assert_eq!(p.feed(&[]).unwrap().unwrap().body, b"ok");
        assert_eq!(p.finish_eof(), Err(HttpError::ClosedBeforeMessage));
    }

    #[test]
    fn wsman_limits_give_clear_errors() {
        let limits = Limits {
            max_header_bytes: 64,
            max_body_bytes: 8,
        };
        let mut p = ResponseParser::with_limits(limits);
        let long = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(100));
        assert_eq!(
            p.feed(long.as_bytes()),
            Err(HttpError::HeaderTooLarge { limit: 64 })
        );
        // Still failed afterwards.
        assert!(p.feed(b"").is_err());
        let mut p = ResponseParser::with_limits(limits);
        assert_eq!(
            p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"),
            Err(HttpError::BodyTooLarge { limit: 8 })
        );
        let mut p = ResponseParser::with_limits(limits);
        assert_eq!(
            p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n5\r\n"),
            Err(HttpError::BodyTooLarge { limit: 8 })
        );
        let mut p = ResponseParser::with_limits(limits);
        assert_eq!(
            p.feed(b"HTTP/1.1 200 OK\r\n\r\n123456789"),
            Err(HttpError::BodyTooLarge { limit: 8 })
        );
        let mut p = ResponseParser::with_limits(limits);
        assert!(p.feed(&[b'H'; 100]).is_err());
    }

    #[test]
    fn wsman_malformed_framing_is_an_error_not_a_panic() {
        for raw in [
            &b"HTTP/1.1 2000 OK\r\n\r\n"[..],
            b"HTTP/2 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n",
        ] {
            assert!(
                parse_all_at_once(raw).is_err(),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        // Arbitrary bytes never panic.
        let mut seed = 0x1234_5678u32;
        for _ in 0..200 {
            let mut p = ResponseParser::new();
            let junk: Vec<u8> = (0..64)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    let table = b"HTTP/1. 2O0K\r\n:;aF";
                    table[(seed >> 16) as usize % table.len()]
                })
                .collect();
            let _ = p.feed(&junk);
            let _ = p.finish_eof();
        }
    }

    /// rps-protocol.md §2, trace 01 request #2, byte for byte.
    const RPS_REQUEST_BODY: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Envelope xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\" xmlns=\"http://www.w3.org/2003/05/soap-envelope\"><Header><a:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/Get</a:Action><a:To>/wsman</a:To><w:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_GeneralSettings</w:ResourceURI><a:MessageID>1</a:MessageID><a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><w:OperationTimeout>PT60S</w:OperationTimeout></Header><Body></Body></Envelope>";

    #[test]
    fn wsman_request_serializer_matches_rps_layout_and_parses_back() {
        let auth = "Digest username=\"$$OsAdmin\",realm=\"Digest:597311897A68E5376CE89AEA58868154\",nonce=\"CytF0XSprhsEYXGQc87Slxn0Om0pFove\",uri=\"/wsman\",qop=\"auth\",response=\"e54110c8e6dba9df12a070fb9efdb14a\",nc=\"00000001\",cnonce=\"rk7g9o\"";
        let host = "4c4c4544-0044-4810-8052-b3c04f508888:16992";
        let out = encode_wsman_post(host, Some(auth), RPS_REQUEST_BODY.as_bytes());
        let expected = format!(
            "POST /wsman HTTP/1.1\r\nAuthorization: {auth}\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2CE\r\n{RPS_REQUEST_BODY}\r\n0\r\n\r\n"
        );
        assert_eq!(String::from_utf8(out.clone()).unwrap(), expected);

        let mut p = RequestParser::new();
        let req = p.feed(&out).unwrap().unwrap();
        assert_eq!(
            (req.method.as_str(), req.target.as_str()),
            ("POST", "/wsman")
        );
        assert_eq!(req.body, RPS_REQUEST_BODY.as_bytes());
        assert!(req.wants_close());
        assert_eq!(req.header("authorization"), Some(auth));
    }

    #[test]
    fn wsman_request_parser_handles_content_length_bodiless_and_split_input() {
        let out = encode_request(
            "POST",
            "/wsman",
            &[Header::new("Host", "h")],
            b"abc",
            &BodyEncoding::ContentLength,
        );
        assert_eq!(
            out,
            b"POST /wsman HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
        );
        let mut p = RequestParser::new();
        let (a, b) = out.split_at(20);
        assert_eq!(p.feed(a).unwrap(), None);
        let r = p.feed(b).unwrap().unwrap();
        assert_eq!((r.body.as_slice(), r.wants_close()), (&b"abc"[..], false));
        let r = p.feed(b"GET / HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert_eq!((r.method.as_str(), r.framing), ("GET", Framing::Empty));
        assert!(RequestParser::new().feed(b"POST /wsman\r\n\r\n").is_err());
        assert_eq!(
            RequestParser::new().finish_eof(),
            Err(HttpError::ClosedBeforeMessage)
        );
    }

    #[test]
    fn wsman_chunk_layouts() {
        let mut out = Vec::new();
        write_chunked_body(
            &mut out,
            b"abcdef",
            ChunkSizeStyle::Padded4Upper,
            &ChunkLayout::MaxSize(4),
        );
        assert_eq!(out, b"0004\r\nabcd\r\n0002\r\nef\r\n0\r\n\r\n");
        let mut out = Vec::new();
        write_chunked_body(&mut out, b"", ChunkSizeStyle::Upper, &ChunkLayout::Single);
        assert_eq!(out, b"0\r\n\r\n");
        let mut out = Vec::new();
        write_chunked_body(
            &mut out,
            b"abcdef",
            ChunkSizeStyle::Upper,
            &ChunkLayout::Exact(vec![1, 0, 2]),
        );
        assert_eq!(out, b"1\r\na\r\n2\r\nbc\r\n3\r\ndef\r\n0\r\n\r\n");
    }

    #[test]
    fn wsman_http_date_formats_rfc1123() {
        assert_eq!(http_date(1_643_624_584), "Mon, 31 Jan 2022 10:23:04 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
