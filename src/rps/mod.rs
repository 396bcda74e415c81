//! The RPS websocket protocol (rps-protocol.md, rpc-go.md §3) without I/O: message types
//! ([`message`]), the relay session state machine ([`session`]), and the naming of AMT's failures
//! inside relayed exchanges ([`amt_failure`]), so the user sees the firmware's own code and not
//! only RPS's summary.

pub mod message;
pub mod session;

use crate::wsman::envelope::Envelope;
use crate::wsman::http::{RequestParser, ResponseParser};

/// A relayed WS-MAN call that AMT did not carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmtFailure {
    pub class: String,
    /// The method or the WS-Transfer/Enumeration action (`Get`, `Put`, `Setup`, …).
    pub method: String,
    pub what: AmtFailureKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AmtFailureKind {
    /// A method's non-zero ReturnValue: its name and number.
    ReturnValue { name: String, value: u32 },
    /// A SOAP fault (`SOAP fault Sender/InvalidSelectors: …`).
    Fault(String),
}

impl std::fmt::Display for AmtFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.what {
            AmtFailureKind::ReturnValue { name, value } => write!(
                f,
                "{}.{} returned {name} ({value})",
                self.class, self.method
            ),
            AmtFailureKind::Fault(s) => write!(f, "{}.{}: {s}", self.class, self.method),
        }
    }
}

/// Class and method of a raw WS-MAN request (e.g. `IPS_HostBasedSetupService`, `Setup`).
pub fn request_call(request: &[u8]) -> Option<(String, String)> {
    let mut p = RequestParser::new();
    let req = match p.feed(request).ok()? {
        Some(r) => r,
        None => p.finish_eof().ok()?,
    };
    let env = Envelope::parse(&req.body).ok()?;
    let uri = env.resource_uri()?.to_string();
    let action = env.action()?.to_string();
    let class = uri.rsplit('/').next()?.to_string();
    let method = if let Some(m) = action.strip_prefix(&format!("{uri}/")) {
        m.to_string()
    } else {
        action.rsplit('/').next()?.to_string()
    };
    Some((class, method))
}

/// The certificate an AddNextCertInChain request carries (DER) and its leaf flag, for diagnosing
/// a chain AMT refuses.
pub fn sent_certificate(request: &[u8]) -> Option<(Vec<u8>, bool)> {
    use base64::Engine as _;
    let mut p = RequestParser::new();
    let req = match p.feed(request).ok()? {
        Some(r) => r,
        None => p.finish_eof().ok()?,
    };
    let env = Envelope::parse(&req.body).ok()?;
    let input = env.body_element()?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(input.child_text("NextCertificate")?.trim())
        .ok()?;
    Some((der, input.child_text("IsLeafCertificate") == Some("true")))
}

/// What went wrong in AMT's answer to `request`, if AMT refused or failed it. 401s are part of the
/// Digest exchange RPS runs and are not failures here.
pub fn amt_failure(request: &[u8], response: &[u8]) -> Option<AmtFailure> {
    let mut p = ResponseParser::new();
    let resp = match p.feed(response).ok()? {
        Some(r) => r,
        None => p.finish_eof().ok()?,
    };
    if resp.status == 401 || resp.body.is_empty() {
        return None;
    }
    let (class, method) = request_call(request)?;
    let env = Envelope::parse(&resp.body).ok()?;
    if let Some(fault) = env.fault() {
        return Some(AmtFailure {
            class,
            method,
            what: AmtFailureKind::Fault(fault.to_string()),
        });
    }
    let out = env.body_element()?;
    if !out.name.ends_with("_OUTPUT") {
        return None;
    }
    let value: u32 = out.child_text("ReturnValue")?.parse().ok()?;
    if value == 0 {
        return None;
    }
    let name = crate::wsman::returns::describe(&class, &method, value).0;
    Some(AmtFailure {
        class,
        method,
        what: AmtFailureKind::ReturnValue {
            name: name.to_string(),
            value,
        },
    })
}

/// The user whose Digest credentials AMT refused: a 401 answer to a request that carried an
/// `Authorization: Digest` header. (The first, unauthenticated 401 of each exchange is not.)
pub fn rejected_credentials(request: &[u8], response: &[u8]) -> Option<String> {
    if !response.starts_with(b"HTTP/1.1 401") && !response.starts_with(b"HTTP/1.0 401") {
        return None;
    }
    let mut p = RequestParser::new();
    let req = match p.feed(request).ok()? {
        Some(r) => r,
        None => p.finish_eof().ok()?,
    };
    let auth = req.header("Authorization")?;
    crate::wsman::digest::parse_authorization(auth)
        .ok()
        .map(|c| c.username)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(head: &str, body: &str) -> Vec<u8> {
        format!(
            "{head}Transfer-Encoding: chunked\r\n\r\n{:X}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        )
        .into_bytes()
    }

    const SETUP_REQ: &str = r#"<?xml version="1.0" encoding="utf-8"?><Envelope xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns="http://www.w3.org/2003/05/soap-envelope"><Header><a:Action>http://intel.com/wbem/wscim/1/ips-schema/1/IPS_HostBasedSetupService/Setup</a:Action><a:To>/wsman</a:To><w:ResourceURI>http://intel.com/wbem/wscim/1/ips-schema/1/IPS_HostBasedSetupService</w:ResourceURI><a:MessageID>2</a:MessageID></Header><Body></Body></Envelope>"#;

    #[test]
    fn a_401_to_an_authenticated_request_names_the_user() {
        let plain = chunked("POST /wsman HTTP/1.1\r\nHost: x:16992\r\n", SETUP_REQ);
        let authed = chunked(
            "POST /wsman HTTP/1.1\r\nAuthorization: Digest username=\"admin\",realm=\"Digest:A\",nonce=\"n\",uri=\"/wsman\",qop=\"auth\",response=\"00\",nc=\"00000001\",cnonce=\"c\"\r\nHost: x:16992\r\n",
            SETUP_REQ,
        );
        let unauth = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";
        let ok = chunked("HTTP/1.1 200 OK\r\n", "<a/>");
        assert_eq!(rejected_credentials(&plain, unauth), None);
        assert_eq!(
            rejected_credentials(&authed, unauth).as_deref(),
            Some("admin")
        );
        assert_eq!(rejected_credentials(&authed, &ok), None);
    }

    #[test]
    fn the_certificate_of_add_next_cert_in_chain_is_read() {
        let body = r#"<?xml version="1.0" encoding="utf-8"?><Envelope xmlns="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><Header><a:Action>http://intel.com/wbem/wscim/1/ips-schema/1/IPS_HostBasedSetupService/AddNextCertInChain</a:Action><w:ResourceURI>http://intel.com/wbem/wscim/1/ips-schema/1/IPS_HostBasedSetupService</w:ResourceURI></Header><Body><h:AddNextCertInChain_INPUT xmlns:h="http://intel.com/wbem/wscim/1/ips-schema/1/IPS_HostBasedSetupService"><h:NextCertificate> AQIDBA== </h:NextCertificate><h:IsLeafCertificate>true</h:IsLeafCertificate><h:IsRootCertificate>false</h:IsRootCertificate></h:AddNextCertInChain_INPUT></Body></Envelope>"#;
        let head = "POST /wsman HTTP/1.1\r\nHost: x:16992\r\n";
        assert_eq!(
            sent_certificate(&chunked(head, body)),
            Some((vec![1, 2, 3, 4], true))
        );
        let not_leaf = body.replace("IsLeafCertificate>true", "IsLeafCertificate>false");
        assert_eq!(
            sent_certificate(&chunked(head, &not_leaf)),
            Some((vec![1, 2, 3, 4], false))
        );
        assert_eq!(sent_certificate(&chunked(head, SETUP_REQ)), None);
    }

    #[test]
    fn a_non_zero_return_value_is_named() {
        let req = chunked("POST /wsman HTTP/1.1\r\nHost: x:16992\r\n", SETUP_REQ);
        let body = r#"<a:Envelope xmlns:a="http://www.w3.org/2003/05/soap-envelope" xmlns:g="http://intel.com/wbem/wscim/1/ips-schema/1/IPS_HostBasedSetupService"><a:Header></a:Header><a:Body><g:Setup_OUTPUT><g:ReturnValue>2</g:ReturnValue></g:Setup_OUTPUT></a:Body></a:Envelope>"#;
        let resp = chunked("HTTP/1.1 200 OK\r\n", body);
        let f = amt_failure(&req, &resp).unwrap();
        assert_eq!(
            f.to_string(),
            "IPS_HostBasedSetupService.Setup returned INVALID_STATE (2)"
        );
        let ok = chunked("HTTP/1.1 200 OK\r\n", &body.replace(">2<", ">0<"));
        assert_eq!(amt_failure(&req, &ok), None);
        let unauth = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(amt_failure(&req, unauth), None);
    }
}
