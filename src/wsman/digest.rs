//! HTTP Digest authentication as AMT speaks it: RFC 2617 / RFC 7616, MD5, `qop=auth`
//! (transport.md §6, rps-protocol.md §2–§3).
//!
//! Client side: [`Challenge`] (parsed `WWW-Authenticate`) and [`DigestClient`], which builds
//! `Authorization` headers the way go-wsman-messages does and keeps the nonce across requests,
//! incrementing `nc`. Server side (the simulator): [`parse_authorization`], [`verify_response`] and
//! [`NonceBook`] (issue nonces, reject replays, optional expiry → `stale=true`).
//!
//! Passwords are [`Secret`]s; nothing here prints one, nor an HA1.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine as _;
use md5::{Digest as _, Md5};
use rand::RngCore;

use crate::secret::Secret;

/// Why a Digest header could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("not a Digest header: {0:?}")]
    NotDigest(String),
    #[error("malformed Digest parameters: {0:?}")]
    Malformed(String),
    #[error("Digest header lacks `{0}`")]
    Missing(&'static str),
    #[error("unsupported Digest algorithm {0:?} (AMT uses MD5)")]
    UnsupportedAlgorithm(String),
    #[error("unsupported qop {0:?} (AMT uses auth)")]
    UnsupportedQop(String),
    #[error("malformed nonce count {0:?}")]
    BadNonceCount(String),
}

/// Lower-case hex MD5 of `data`.
pub fn md5_hex(data: &str) -> String {
    hex(&Md5::digest(data.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `HA1 = MD5(user:realm:password)`, lower-case hex. Also AMT's `NetworkAdminPassword` for
/// Setup/AdminSetup when `user` is `admin` (transport.md §7.3).
pub fn ha1(user: &str, realm: &str, password: &Secret) -> String {
    md5_hex(&format!("{user}:{realm}:{}", password.expose()))
}

/// `SetAdminAclEntryEx.DigestPassword`: base64 of the raw 16-byte MD5 of `user:realm:password`.
pub fn ha1_base64(user: &str, realm: &str, password: &Secret) -> String {
    let raw = Md5::digest(format!("{user}:{realm}:{}", password.expose()).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// The `response` value for qop=auth (RFC 2617 §3.2.2.1).
pub fn compute_response(
    ha1_hex: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
    qop: &str,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    md5_hex(&format!("{ha1_hex}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))
}

/// Split `k=v, k="v", …` (RFC 7235 auth-params), tolerant of spacing and of unquoted tokens.
/// Keys are lower-cased; quoted values are unescaped.
pub fn parse_params(s: &str) -> Result<Vec<(String, String)>, DigestError> {
    let bad = || DigestError::Malformed(s.to_string());
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let skip = |i: &mut usize, set: &[u8]| {
        while *i < b.len() && set.contains(&b[*i]) {
            *i += 1;
        }
    };
    loop {
        skip(&mut i, b" \t,");
        if i >= b.len() {
            return Ok(out);
        }
        let k0 = i;
        while i < b.len() && !b" \t=,".contains(&b[i]) {
            i += 1;
        }
        let key = s[k0..i].to_ascii_lowercase();
        skip(&mut i, b" \t");
        if key.is_empty() || i >= b.len() || b[i] != b'=' {
            return Err(bad());
        }
        i += 1;
        skip(&mut i, b" \t");
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut v = String::new();
            let mut closed = false;
            let rest = &s[i..];
            let mut chars = rest.char_indices();
            while let Some((off, c)) = chars.next() {
                match c {
                    '"' => {
                        i += off + 1;
                        closed = true;
                        break;
                    }
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    c => v.push(c),
                }
            }
            if !closed {
                return Err(bad());
            }
            v
        } else {
            let v0 = i;
            while i < b.len() && !b" \t,".contains(&b[i]) {
                i += 1;
            }
            s[v0..i].to_string()
        };
        out.push((key, value));
        skip(&mut i, b" \t");
        if i < b.len() && b[i] != b',' {
            return Err(bad());
        }
    }
}

fn strip_scheme(value: &str) -> Result<&str, DigestError> {
    let v = value.trim_start();
    match v.split_once([' ', '\t']) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("Digest") => Ok(rest),
        _ => Err(DigestError::NotDigest(value.to_string())),
    }
}

fn get<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A parsed `WWW-Authenticate: Digest …` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    /// The raw qop list (`auth`), when offered.
    pub qop: Option<String>,
    pub stale: bool,
    pub opaque: Option<String>,
    pub algorithm: Option<String>,
}

impl Challenge {
    /// Parse a `WWW-Authenticate` value. Requires realm and nonce; MD5 only; if qop is offered it
    /// must include `auth`.
    pub fn parse(value: &str) -> Result<Challenge, DigestError> {
        let params = parse_params(strip_scheme(value)?)?;
        let realm = get(&params, "realm").ok_or(DigestError::Missing("realm"))?;
        let nonce = get(&params, "nonce").ok_or(DigestError::Missing("nonce"))?;
        let algorithm = get(&params, "algorithm").map(str::to_string);
        if let Some(a) = &algorithm {
            if !a.eq_ignore_ascii_case("MD5") {
                return Err(DigestError::UnsupportedAlgorithm(a.clone()));
            }
        }
        let qop = get(&params, "qop").map(str::to_string);
        if let Some(q) = &qop {
            if !q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")) {
                return Err(DigestError::UnsupportedQop(q.clone()));
            }
        }
        Ok(Challenge {
            realm: realm.to_string(),
            nonce: nonce.to_string(),
            qop,
            stale: get(&params, "stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
            opaque: get(&params, "opaque").map(str::to_string),
            algorithm,
        })
    }
}

/// AMT's exact `WWW-Authenticate` value: `Digest realm="…", nonce="…",stale="false",qop="auth"`
/// (one space after the first comma only; no opaque, no algorithm).
pub fn amt_challenge_value(realm: &str, nonce: &str, stale: bool) -> String {
    format!("Digest realm=\"{realm}\", nonce=\"{nonce}\",stale=\"{stale}\",qop=\"auth\"")
}

/// `s` as the inside of a quoted-string: `\` and `"` backslash-escaped, as [`parse_params`] reads.
fn quote(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['"', '\\']) {
        return s.into();
    }
    let mut q = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.into()
}

/// Order of the parameters in the `Authorization` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AuthorizationStyle {
    /// go-wsman-messages: `username,realm,nonce,uri,response,[opaque,]qop,nc,cnonce`.
    #[default]
    GoWsman,
    /// RPS (rps-protocol.md §2): `username,realm,nonce,uri,qop,response,nc,cnonce`.
    Rps,
}

/// Client-side Digest state: credentials plus the current challenge and nonce count.
///
/// `Debug` shows the user, realm, nonce and count, never the password.
#[derive(Clone)]
pub struct DigestClient {
    username: String,
    password: Secret,
    challenge: Option<Challenge>,
    nc: u32,
    style: AuthorizationStyle,
}

impl fmt::Debug for DigestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestClient")
            .field("username", &self.username)
            .field("password", &self.password)
            .field("realm", &self.challenge.as_ref().map(|c| &c.realm))
            .field("nonce", &self.challenge.as_ref().map(|c| &c.nonce))
            .field("nc", &self.nc)
            .finish()
    }
}

impl DigestClient {
    pub fn new(username: impl Into<String>, password: Secret) -> DigestClient {
        DigestClient {
            username: username.into(),
            password,
            challenge: None,
            nc: 0,
            style: AuthorizationStyle::GoWsman,
        }
    }

    pub fn with_style(mut self, style: AuthorizationStyle) -> DigestClient {
        self.style = style;
        self
    }

    /// Switch user (e.g. `$$OsAdmin` → `admin` after activation), keeping nonce and count, as RPS
    /// does (rps-protocol.md §3).
    pub fn set_credentials(&mut self, username: impl Into<String>, password: Secret) {
        self.username = username.into();
        self.password = password;
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    /// Take a (new or stale) challenge from a 401; the nonce count restarts at 1.
    pub fn set_challenge(&mut self, challenge: Challenge) {
        self.challenge = Some(challenge);
        self.nc = 0;
    }

    /// Parse a `WWW-Authenticate` value and take it.
    pub fn handle_www_authenticate(&mut self, value: &str) -> Result<(), DigestError> {
        self.set_challenge(Challenge::parse(value)?);
        Ok(())
    }

    pub fn challenge(&self) -> Option<&Challenge> {
        self.challenge.as_ref()
    }

    /// The nonce count of the last header built (0 before any).
    pub fn nonce_count(&self) -> u32 {
        self.nc
    }

    /// The next `Authorization` value for `method uri`, with a fresh random cnonce (6 hex digits,
    /// like go-wsman); `None` until a challenge has been taken.
    pub fn authorization(&mut self, method: &str, uri: &str) -> Option<String> {
        let mut b = [0u8; 3];
        rand::thread_rng().fill_bytes(&mut b);
        self.authorization_with_cnonce(method, uri, &hex(&b))
    }

    /// As [`authorization`](Self::authorization) with a given cnonce (tests, reproducibility).
    pub fn authorization_with_cnonce(
        &mut self,
        method: &str,
        uri: &str,
        cnonce: &str,
    ) -> Option<String> {
        let ch = self.challenge.as_ref()?;
        self.nc = self.nc.wrapping_add(1);
        let nc = format!("{:08x}", self.nc);
        let ha1 = ha1(&self.username, &ch.realm, &self.password);
        let uses_qop = ch.qop.is_some();
        let response = if uses_qop {
            compute_response(&ha1, &ch.nonce, &nc, cnonce, "auth", method, uri)
        } else {
            // RFC 2069 compatibility: response = MD5(HA1:nonce:HA2).
            md5_hex(&format!(
                "{ha1}:{}:{}",
                ch.nonce,
                md5_hex(&format!("{method}:{uri}"))
            ))
        };
        // Quoted values are escaped (RFC 7616 quoted-string): a realm or nonce holding `"` or `\`
        // once went out raw and the header no longer parsed (fuzz target `digest`,
        // docs/robustness.md). AMT's own values hold neither, so its bytes are unchanged.
        let mut s = format!(
            "Digest username=\"{}\",realm=\"{}\",nonce=\"{}\",uri=\"{}\"",
            quote(&self.username),
            quote(&ch.realm),
            quote(&ch.nonce),
            quote(uri)
        );
        match self.style {
            AuthorizationStyle::GoWsman => {
                s.push_str(&format!(",response=\"{response}\""));
                if let Some(o) = &ch.opaque {
                    s.push_str(&format!(",opaque=\"{}\"", quote(o)));
                }
                if uses_qop {
                    s.push_str(&format!(",qop=\"auth\",nc=\"{nc}\",cnonce=\"{cnonce}\""));
                }
            }
            AuthorizationStyle::Rps => {
                if uses_qop {
                    s.push_str(&format!(
                        ",qop=\"auth\",response=\"{response}\",nc=\"{nc}\",cnonce=\"{cnonce}\""
                    ));
                } else {
                    s.push_str(&format!(",response=\"{response}\""));
                }
                if let Some(o) = &ch.opaque {
                    s.push_str(&format!(",opaque=\"{}\"", quote(o)));
                }
            }
        }
        Some(s)
    }
}

/// A parsed `Authorization: Digest …` header (server side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub qop: Option<String>,
    /// The nonce count as sent (8 hex digits).
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
    pub algorithm: Option<String>,
}

impl Credentials {
    /// The nonce count as a number (0 without qop).
    pub fn nc_value(&self) -> Result<u32, DigestError> {
        match &self.nc {
            None => Ok(0),
            Some(s) => {
                u32::from_str_radix(s, 16).map_err(|_| DigestError::BadNonceCount(s.clone()))
            }
        }
    }
}

/// Parse an `Authorization` value; `qop` and `nc` may be quoted or not.
pub fn parse_authorization(value: &str) -> Result<Credentials, DigestError> {
    let params = parse_params(strip_scheme(value)?)?;
    let req = |k: &'static str| {
        get(&params, k)
            .map(str::to_string)
            .ok_or(DigestError::Missing(k))
    };
    let opt = |k: &str| get(&params, k).map(str::to_string);
    let c = Credentials {
        username: req("username")?,
        realm: req("realm")?,
        nonce: req("nonce")?,
        uri: req("uri")?,
        response: req("response")?,
        qop: opt("qop"),
        nc: opt("nc"),
        cnonce: opt("cnonce"),
        opaque: opt("opaque"),
        algorithm: opt("algorithm"),
    };
    if let Some(a) = &c.algorithm {
        if !a.eq_ignore_ascii_case("MD5") {
            return Err(DigestError::UnsupportedAlgorithm(a.clone()));
        }
    }
    if let Some(q) = &c.qop {
        if !q.eq_ignore_ascii_case("auth") {
            return Err(DigestError::UnsupportedQop(q.clone()));
        }
        if c.nc.is_none() {
            return Err(DigestError::Missing("nc"));
        }
        if c.cnonce.is_none() {
            return Err(DigestError::Missing("cnonce"));
        }
    }
    c.nc_value()?;
    Ok(c)
}

/// Whether `creds` carry the right response for `method` and `password` (constant-time compare).
pub fn verify_response(creds: &Credentials, method: &str, password: &Secret) -> bool {
    verify_response_ha1(creds, method, &ha1(&creds.username, &creds.realm, password))
}

/// [`verify_response`] from a stored HA1 (hex MD5 of `user:realm:password`), which is all AMT keeps
/// of the admin password (Setup/AdminSetup hand it over in that form).
pub fn verify_response_ha1(creds: &Credentials, method: &str, ha1: &str) -> bool {
    let ha1 = ha1.to_ascii_lowercase();
    let expected = match (&creds.qop, &creds.nc, &creds.cnonce) {
        (Some(_), Some(nc), Some(cnonce)) => {
            compute_response(&ha1, &creds.nonce, nc, cnonce, "auth", method, &creds.uri)
        }
        _ => md5_hex(&format!(
            "{ha1}:{}:{}",
            creds.nonce,
            md5_hex(&format!("{method}:{}", creds.uri))
        )),
    };
    let got = creds.response.to_ascii_lowercase();
    expected.len() == got.len()
        && expected
            .bytes()
            .zip(got.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A fresh AMT-style nonce: 24 random bytes, base64 → 32 characters.
pub fn new_nonce(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 24];
    rng.fill_bytes(&mut b);
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// What the nonce bookkeeping says about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceStatus {
    /// Known, fresh, and the count is higher than any seen before.
    Fresh,
    /// Issued by us but expired: answer 401 with `stale="true"`.
    Stale,
    /// Never issued (or forgotten): answer 401 with a new challenge.
    Unknown,
    /// The count did not increase: a replay.
    Replay,
}

#[derive(Clone, Debug)]
struct NonceEntry {
    issued: Instant,
    highest_nc: u32,
}

/// The simulator's nonce bookkeeping: issues nonces, tracks the highest `nc` per nonce (RPS reuses
/// one nonce for a whole session across connections, so counts must only increase), and
/// optionally expires nonces. Without an expiry (the default, as RPS needs) nonces live until
/// `max_nonces` newer ones push them out.
#[derive(Clone, Debug)]
pub struct NonceBook {
    expiry: Option<Duration>,
    max_nonces: usize,
    nonces: HashMap<String, NonceEntry>,
}

impl Default for NonceBook {
    fn default() -> Self {
        Self::new(None)
    }
}

impl NonceBook {
    pub fn new(expiry: Option<Duration>) -> NonceBook {
        NonceBook {
            expiry,
            max_nonces: 64,
            nonces: HashMap::new(),
        }
    }

    pub fn set_expiry(&mut self, expiry: Option<Duration>) {
        self.expiry = expiry;
    }

    /// Issue and remember a new nonce.
    pub fn issue(&mut self, now: Instant, rng: &mut impl RngCore) -> String {
        if self.nonces.len() >= self.max_nonces {
            if let Some(oldest) = self
                .nonces
                .iter()
                .min_by_key(|(_, e)| e.issued)
                .map(|(k, _)| k.clone())
            {
                self.nonces.remove(&oldest);
            }
        }
        let nonce = new_nonce(rng);
        self.nonces.insert(
            nonce.clone(),
            NonceEntry {
                issued: now,
                highest_nc: 0,
            },
        );
        nonce
    }

    /// Remember a nonce issued elsewhere (e.g. a fixed one from a profile).
    pub fn insert(&mut self, nonce: &str, now: Instant) {
        self.nonces.insert(
            nonce.to_string(),
            NonceEntry {
                issued: now,
                highest_nc: 0,
            },
        );
    }

    /// Check `nonce`/`nc` and, when fresh, record `nc`. Call only after the response verified, so
    /// a wrong password does not use up a count.
    pub fn check_and_record(&mut self, nonce: &str, nc: u32, now: Instant) -> NonceStatus {
        let Some(entry) = self.nonces.get_mut(nonce) else {
            return NonceStatus::Unknown;
        };
        if let Some(exp) = self.expiry {
            if now.saturating_duration_since(entry.issued) > exp {
                return NonceStatus::Stale;
            }
        }
        if nc <= entry.highest_nc {
            return NonceStatus::Replay;
        }
        entry.highest_nc = nc;
        NonceStatus::Fresh
    }
}

/// Result of [`DigestServer::authenticate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Authenticated as this user.
    Accepted { username: String },
    /// Right password, expired nonce: answer 401 with `stale="true"`.
    Stale,
    /// Anything else: answer 401 with a fresh challenge.
    Rejected(RejectReason),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RejectReason {
    NoAuthorization,
    Malformed(DigestError),
    WrongRealm,
    UnknownUser,
    BadResponse,
    UnknownNonce,
    Replay,
}

/// The simulator's Digest endpoint: one realm, a nonce book.
#[derive(Clone, Debug)]
pub struct DigestServer {
    pub realm: String,
    pub book: NonceBook,
}

impl DigestServer {
    pub fn new(realm: impl Into<String>, expiry: Option<Duration>) -> DigestServer {
        DigestServer {
            realm: realm.into(),
            book: NonceBook::new(expiry),
        }
    }

    /// A `WWW-Authenticate` value in AMT's format with a newly issued nonce.
    pub fn challenge(&mut self, stale: bool, now: Instant, rng: &mut impl RngCore) -> String {
        let nonce = self.book.issue(now, rng);
        amt_challenge_value(&self.realm, &nonce, stale)
    }

    /// Check an `Authorization` header value (or its absence) for `method`; `password_of` looks
    /// a user's password up.
    pub fn authenticate(
        &mut self,
        authorization: Option<&str>,
        method: &str,
        password_of: impl Fn(&str) -> Option<Secret>,
        now: Instant,
    ) -> AuthOutcome {
        let realm = self.realm.clone();
        self.authenticate_ha1(
            authorization,
            method,
            |user| password_of(user).map(|p| ha1(user, &realm, &p)),
            now,
        )
    }

    /// [`authenticate`](Self::authenticate) with each user's stored HA1 instead of a password.
    pub fn authenticate_ha1(
        &mut self,
        authorization: Option<&str>,
        method: &str,
        ha1_of: impl Fn(&str) -> Option<String>,
        now: Instant,
    ) -> AuthOutcome {
        let Some(value) = authorization else {
            return AuthOutcome::Rejected(RejectReason::NoAuthorization);
        };
        let creds = match parse_authorization(value) {
            Ok(c) => c,
            Err(e) => return AuthOutcome::Rejected(RejectReason::Malformed(e)),
        };
        if creds.realm != self.realm {
            return AuthOutcome::Rejected(RejectReason::WrongRealm);
        }
        let Some(stored) = ha1_of(&creds.username) else {
            return AuthOutcome::Rejected(RejectReason::UnknownUser);
        };
        if !verify_response_ha1(&creds, method, &stored) {
            return AuthOutcome::Rejected(RejectReason::BadResponse);
        }
        let nc = creds.nc_value().unwrap_or(0);
        match self.book.check_and_record(&creds.nonce, nc, now) {
            NonceStatus::Fresh => AuthOutcome::Accepted {
                username: creds.username,
            },
            NonceStatus::Stale => AuthOutcome::Stale,
            NonceStatus::Unknown => AuthOutcome::Rejected(RejectReason::UnknownNonce),
            NonceStatus::Replay => AuthOutcome::Rejected(RejectReason::Replay),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// Fuzzing regression (fuzz target `digest`, docs/robustness.md): a challenge whose realm,
    /// nonce or opaque holds `"` or `\` gave an Authorization header that did not parse.
    #[test]
    fn authorization_escapes_quotes_in_challenge_values() {
        let ch = Challenge::parse(r#"Digest realm="a\"b", nonce="n\\1", opaque="o\"", qop="auth""#)
            .unwrap();
        assert_eq!((ch.realm.as_str(), ch.nonce.as_str()), ("a\"b", "n\\1"));
        let password = Secret::new("P@ssw0rd");
        for style in [AuthorizationStyle::GoWsman, AuthorizationStyle::Rps] {
            let mut client = DigestClient::new("admin", password.clone()).with_style(style);
            client.set_challenge(ch.clone());
            let auth = client
                .authorization_with_cnonce("POST", "/wsman", "0a1b2c")
                .unwrap();
            let creds = parse_authorization(&auth).unwrap();
            assert_eq!(creds.realm, ch.realm);
            assert_eq!(creds.nonce, ch.nonce);
            assert_eq!(creds.opaque.as_deref(), Some("o\""));
            assert!(verify_response(&creds, "POST", &password));
        }
    }

    const AMT15: &str = "Digest realm=\"Digest:727734D63A1FC0423736E48DA554E462\", nonce=\"B9AX94iAAAAAAAAAx6rrSfPHGUrx/3uA\",stale=\"false\",qop=\"auth\"";

    #[test]
    fn wsman_digest_rfc2617_section_3_5_vector() {
        let pw = Secret::new("Circle Of Life");
        let ha1 = ha1("Mufasa", "testrealm@host.com", &pw);
        let r = compute_response(
            &ha1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "00000001",
            "0a4f113b",
            "auth",
            "GET",
            "/dir/index.html",
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
        let creds = parse_authorization(
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", qop=auth, \
             nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert!(verify_response(&creds, "GET", &pw));
        assert!(!verify_response(
            &creds,
            "GET",
            &Secret::new("circle of life")
        ));
        assert!(!verify_response(&creds, "POST", &pw));
    }

    #[test]
    fn wsman_digest_parses_amt_challenges_and_spacing_variants() {
        let c = Challenge::parse(AMT15).unwrap();
        assert_eq!(c.realm, "Digest:727734D63A1FC0423736E48DA554E462");
        assert_eq!(c.nonce, "B9AX94iAAAAAAAAAx6rrSfPHGUrx/3uA");
        assert_eq!(
            (c.stale, c.qop.as_deref(), c.opaque),
            (false, Some("auth"), None)
        );
        for v in [
            "Digest realm=\"R\",nonce=\"N\",stale=\"false\",qop=\"auth\"",
            "digest  realm = \"R\" , nonce=N, stale=false, qop=auth",
            "Digest realm=\"R\", nonce=\"N\", qop=\"auth,auth-int\", algorithm=MD5",
        ] {
            let c = Challenge::parse(v).unwrap();
            assert_eq!(
                (c.realm.as_str(), c.nonce.as_str(), c.stale),
                ("R", "N", false),
                "{v}"
            );
        }
        assert!(
            Challenge::parse("Digest realm=\"R\", nonce=\"N\", stale=TRUE")
                .unwrap()
                .stale
        );
        assert!(matches!(
            Challenge::parse("Basic realm=\"x\""),
            Err(DigestError::NotDigest(_))
        ));
        assert_eq!(
            Challenge::parse("Digest realm=\"R\""),
            Err(DigestError::Missing("nonce"))
        );
        assert!(Challenge::parse("Digest realm=\"R, nonce=N").is_err());
        assert!(Challenge::parse("Digest realm=\"R\", nonce=N, algorithm=SHA-256").is_err());
        assert!(Challenge::parse("Digest realm=\"R\", nonce=N, qop=\"auth-int\"").is_err());
        assert_eq!(
            parse_params("a=\"x\\\"y\", b=z").unwrap(),
            vec![("a".into(), "x\"y".into()), ("b".into(), "z".into())]
        );
    }

    #[test]
    fn wsman_digest_client_builds_go_wsman_headers_reusing_the_nonce() {
        let mut c = DigestClient::new("admin", Secret::new("P@ssw0rd"));
        assert_eq!(c.authorization("POST", "/wsman"), None);
        c.handle_www_authenticate(AMT15).unwrap();
        let realm = "Digest:727734D63A1FC0423736E48DA554E462";
        let nonce = "B9AX94iAAAAAAAAAx6rrSfPHGUrx/3uA";
        let h1 = c
            .authorization_with_cnonce("POST", "/wsman", "a1b2c3")
            .unwrap();
        let r1 = compute_response(
            &md5_hex(&format!("admin:{realm}:P@ssw0rd")),
            nonce,
            "00000001",
            "a1b2c3",
            "auth",
            "POST",
            "/wsman",
        );
        assert_eq!(
            h1,
            format!("Digest username=\"admin\",realm=\"{realm}\",nonce=\"{nonce}\",uri=\"/wsman\",response=\"{r1}\",qop=\"auth\",nc=\"00000001\",cnonce=\"a1b2c3\"")
        );
        let h2 = c.authorization("POST", "/wsman").unwrap();
        assert!(h2.contains(&format!("nonce=\"{nonce}\"")) && h2.contains("nc=\"00000002\""));
        let cnonce = parse_authorization(&h2).unwrap().cnonce.unwrap();
        assert_eq!(cnonce.len(), 6);

        // A new (stale) challenge restarts the count.
        c.handle_www_authenticate("Digest realm=\"R\", nonce=\"M\",stale=\"true\",qop=\"auth\"")
            .unwrap();
        assert!(c.challenge().unwrap().stale);
        let h3 = c.authorization_with_cnonce("POST", "/wsman", "x").unwrap();
        assert!(h3.contains("nonce=\"M\"") && h3.contains("nc=\"00000001\""));

        let mut rps = DigestClient::new("u", Secret::new("p")).with_style(AuthorizationStyle::Rps);
        rps.handle_www_authenticate(AMT15).unwrap();
        let h = rps
            .authorization_with_cnonce("POST", "/wsman", "rk7g9o")
            .unwrap();
        assert!(
            h.contains(",uri=\"/wsman\",qop=\"auth\",response=\""),
            "{h}"
        );
        assert!(h.ends_with(",nc=\"00000001\",cnonce=\"rk7g9o\""), "{h}");
    }

    #[test]
    fn wsman_digest_parses_the_rps_trace_authorization() {
        // rps-protocol.md §2: the header RPS sent (its password is not in the reference).
        let h = "Digest username=\"$$OsAdmin\",realm=\"Digest:597311897A68E5376CE89AEA58868154\",nonce=\"CytF0XSprhsEYXGQc87Slxn0Om0pFove\",uri=\"/wsman\",qop=\"auth\",response=\"e54110c8e6dba9df12a070fb9efdb14a\",nc=\"00000001\",cnonce=\"rk7g9o\"";
        let c = parse_authorization(h).unwrap();
        assert_eq!(
            (
                c.username.as_str(),
                c.nc_value().unwrap(),
                c.cnonce.as_deref()
            ),
            ("$$OsAdmin", 1, Some("rk7g9o"))
        );
    }

    #[test]
    fn wsman_digest_debug_never_shows_password_or_ha1() {
        let pw = "Sup3rS3cret!";
        let mut c = DigestClient::new("admin", Secret::new(pw));
        c.handle_www_authenticate(AMT15).unwrap();
        let _ = c.authorization("POST", "/wsman");
        let dbg = format!("{c:?}");
        let ha1 = ha1(
            "admin",
            "Digest:727734D63A1FC0423736E48DA554E462",
            &Secret::new(pw),
        );
        assert!(!dbg.contains(pw) && !dbg.contains(&ha1), "{dbg}");
        assert!(dbg.contains("***") && dbg.contains("admin"));
    }

    #[test]
    fn wsman_digest_server_round_trip_replay_unknown_and_stale() {
        let mut rng = StdRng::seed_from_u64(7);
        let t0 = Instant::now();
        let realm = "Digest:62FFAC181B3F3457C5B3894ED21F3E6E";
        let mut server = DigestServer::new(realm, Some(Duration::from_secs(60)));
        let users = |u: &str| (u == "admin").then(|| Secret::new("P@ssw0rd"));
        let challenge = server.challenge(false, t0, &mut rng);
        let ch = Challenge::parse(&challenge).unwrap();
        assert_eq!(ch.nonce.len(), 32);
        assert_eq!(challenge, amt_challenge_value(realm, &ch.nonce, false));

        let mut client = DigestClient::new("admin", Secret::new("P@ssw0rd"));
        client.set_challenge(ch);
        let h1 = client.authorization("POST", "/wsman").unwrap();
        let ok = AuthOutcome::Accepted {
            username: "admin".into(),
        };
        assert_eq!(server.authenticate(Some(&h1), "POST", users, t0), ok);
        assert_eq!(
            server.authenticate(Some(&h1), "POST", users, t0),
            AuthOutcome::Rejected(RejectReason::Replay)
        );
        let h2 = client.authorization("POST", "/wsman").unwrap();
        // Unquoted qop and nc are accepted too.
        let h2u = h2
            .replace("qop=\"auth\"", "qop=auth")
            .replace("nc=\"00000002\"", "nc=00000002");
        assert_eq!(server.authenticate(Some(&h2u), "POST", users, t0), ok);

        let mut wrong = DigestClient::new("admin", Secret::new("nope"));
        wrong.set_challenge(client.challenge().unwrap().clone());
        let bad = wrong.authorization("POST", "/wsman").unwrap();
        assert_eq!(
            server.authenticate(Some(&bad), "POST", users, t0),
            AuthOutcome::Rejected(RejectReason::BadResponse)
        );
        // The rejected attempt used no count: the client's next one (3) is fresh, but past the
        // expiry the nonce is stale.
        let h3 = client.authorization("POST", "/wsman").unwrap();
        assert_eq!(
            server.authenticate(Some(&h3), "POST", users, t0 + Duration::from_secs(61)),
            AuthOutcome::Stale
        );
        assert_eq!(
            server.authenticate(None, "POST", users, t0),
            AuthOutcome::Rejected(RejectReason::NoAuthorization)
        );
        let mut other = DigestClient::new("admin", Secret::new("P@ssw0rd"));
        other
            .handle_www_authenticate(&amt_challenge_value(realm, "notissued", false))
            .unwrap();
        let h = other.authorization("POST", "/wsman").unwrap();
        assert_eq!(
            server.authenticate(Some(&h), "POST", users, t0),
            AuthOutcome::Rejected(RejectReason::UnknownNonce)
        );
        let mut ghost = DigestClient::new("ghost", Secret::new("x"));
        ghost.set_challenge(client.challenge().unwrap().clone());
        let h = ghost.authorization("POST", "/wsman").unwrap();
        assert_eq!(
            server.authenticate(Some(&h), "POST", users, t0),
            AuthOutcome::Rejected(RejectReason::UnknownUser)
        );
    }

    #[test]
    fn wsman_digest_no_expiry_keeps_one_nonce_for_a_session_and_user_switch() {
        let mut rng = StdRng::seed_from_u64(1);
        let t0 = Instant::now();
        let mut server = DigestServer::new("Digest:00000000000000000000000000000000", None);
        let users = |u: &str| match u {
            "$$OsAdmin" => Some(Secret::new("lsa")),
            "admin" => Some(Secret::new("new")),
            _ => None,
        };
        let mut c = DigestClient::new("$$OsAdmin", Secret::new("lsa"));
        c.handle_www_authenticate(&server.challenge(false, t0, &mut rng))
            .unwrap();
        let h = c.authorization("POST", "/wsman").unwrap();
        assert!(matches!(
            server.authenticate(Some(&h), "POST", users, t0),
            AuthOutcome::Accepted { .. }
        ));
        c.set_credentials("admin", Secret::new("new"));
        let h = c.authorization("POST", "/wsman").unwrap();
        let later = t0 + Duration::from_secs(86_400);
        assert_eq!(
            server.authenticate(Some(&h), "POST", users, later),
            AuthOutcome::Accepted {
                username: "admin".into()
            }
        );
    }

    #[test]
    fn wsman_digest_password_forms_for_setup_and_acl() {
        let pw = Secret::new("P@ssw0rd");
        let hexed = ha1("admin", "Digest:Realm", &pw);
        assert_eq!(hexed, md5_hex("admin:Digest:Realm:P@ssw0rd"));
        let raw = base64::engine::general_purpose::STANDARD
            .decode(ha1_base64("admin", "Digest:Realm", &pw))
            .unwrap();
        assert_eq!(hex(&raw), hexed);
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn wsman_digest_authorization_errors() {
        assert!(matches!(
            parse_authorization("Basic abc"),
            Err(DigestError::NotDigest(_))
        ));
        assert_eq!(
            parse_authorization("Digest username=\"a\",realm=\"r\",nonce=\"n\",uri=\"/\",response=\"x\",qop=auth,cnonce=c"),
            Err(DigestError::Missing("nc"))
        );
        assert!(matches!(
            parse_authorization("Digest username=\"a\",realm=\"r\",nonce=\"n\",uri=\"/\",response=\"x\",qop=auth,nc=zz,cnonce=c"),
            Err(DigestError::BadNonceCount(_))
        ));
        assert_eq!(
            parse_authorization("Digest username=\"a\",realm=\"r\""),
            Err(DigestError::Missing("nonce"))
        );
    }
}
