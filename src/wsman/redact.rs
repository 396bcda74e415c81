//! Redaction for trace logs of HTTP/WS-MAN traffic: the `Authorization` header keeps only its
//! user name, and the contents of XML elements that carry secrets become `***`.

/// Local names (any namespace prefix) of elements whose text is a secret.
pub const SECRET_ELEMENTS: &[&str] = &[
    "NetworkAdminPassword",
    "Password",
    "DigestPassword",
    "NewPassword",
    "MEBxPassword",
    "PrivateKey",
    // AddKey's RSA private key, a Wi-Fi profile's passphrase (802.1X passwords are `Password`).
    "KeyBlob",
    "PSKPassPhrase",
];

/// Replaces the contents of every [`SECRET_ELEMENTS`] element with `***`. An element whose end
/// tag is missing (a truncated body) is redacted to the end of the text.
pub fn redact_xml(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let after = &rest[lt..];
        let Some(gt) = after.find('>') else {
            out.push_str(after);
            return out;
        };
        let tag = &after[..=gt];
        out.push_str(tag);
        rest = &after[gt + 1..];
        if tag.starts_with("</")
            || tag.starts_with("<?")
            || tag.starts_with("<!")
            || tag.ends_with("/>")
        {
            continue;
        }
        let qname = tag[1..tag.len() - 1]
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("");
        let local = qname.rsplit(':').next().unwrap_or(qname);
        if SECRET_ELEMENTS.contains(&local) {
            out.push_str("***");
            match rest.find(&format!("</{qname}")) {
                Some(end) => rest = &rest[end..],
                None => return out,
            }
        }
    }
    out.push_str(rest);
    out
}

/// `Digest username="admin",realm=…,response=…` → `Digest username="admin",***`.
pub fn redact_authorization(value: &str) -> String {
    let user = crate::wsman::digest::parse_params(
        value
            .trim_start()
            .strip_prefix("Digest")
            .unwrap_or(value)
            .trim_start(),
    )
    .ok()
    .and_then(|p| p.into_iter().find(|(k, _)| k == "username").map(|(_, v)| v));
    match user {
        Some(u) => format!("Digest username=\"{u}\",***"),
        None => "***".into(),
    }
}

/// An HTTP message as text for a trace log: `Authorization` headers redacted, the rest of the
/// header section verbatim, the body through [`redact_xml`].
pub fn redact_http(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    let (head, body) = match text.find("\r\n\r\n") {
        Some(i) => (&text[..i + 4], &text[i + 4..]),
        None => (&text[..], ""),
    };
    let mut out = String::with_capacity(text.len());
    for line in head.split_inclusive("\r\n") {
        match line.split_once(':') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("authorization") => {
                out.push_str(name);
                out.push_str(": ");
                out.push_str(&redact_authorization(value.trim()));
                out.push_str("\r\n");
            }
            _ => out.push_str(line),
        }
    }
    out.push_str(&redact_xml(body));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_xml_hides_secret_elements_with_any_prefix() {
        let xml =
            "<s:Body><h:AdminSetup_INPUT><h:NetworkAdminPassword>0123abcd</h:NetworkAdminPassword>\
                   <h:McNonce>bm9uY2U=</h:McNonce><Password a=\"1\">p@ss&lt;</Password>\
                   <g:PrivateKey>-----BEGIN\nKEY-----</g:PrivateKey><h:Password/>\
                   <h:MEBxPassword></h:MEBxPassword></h:AdminSetup_INPUT></s:Body>";
        let r = redact_xml(xml);
        assert_eq!(
            r,
            "<s:Body><h:AdminSetup_INPUT><h:NetworkAdminPassword>***</h:NetworkAdminPassword>\
             <h:McNonce>bm9uY2U=</h:McNonce><Password a=\"1\">***</Password>\
             <g:PrivateKey>***</g:PrivateKey><h:Password/>\
             <h:MEBxPassword>***</h:MEBxPassword></h:AdminSetup_INPUT></s:Body>"
        );
        for secret in ["0123abcd", "p@ss", "BEGIN"] {
            assert!(!r.contains(secret));
        }
    }

    #[test]
    fn redact_xml_keeps_similar_names_and_redacts_truncated_bodies() {
        assert_eq!(
            redact_xml("<h:PasswordModel>1</h:PasswordModel><h:DigestPassword>x"),
            "<h:PasswordModel>1</h:PasswordModel><h:DigestPassword>***"
        );
        assert_eq!(redact_xml("no xml < here"), "no xml < here");
        assert_eq!(
            redact_xml("<NewPassword>a</NewPassword>"),
            "<NewPassword>***</NewPassword>"
        );
    }

    #[test]
    fn redact_http_keeps_the_user_only() {
        let msg = b"POST /wsman HTTP/1.1\r\nAuthorization: Digest username=\"admin\",realm=\"R\",nonce=\"N\",uri=\"/wsman\",response=\"0123456789abcdef0123456789abcdef\",qop=\"auth\",nc=\"00000001\",cnonce=\"abcdef\"\r\nConnection: close\r\n\r\n1c\r\n<Password>hunter2</Password>\r\n0\r\n\r\n";
        let r = redact_http(msg);
        assert!(r.contains("Authorization: Digest username=\"admin\",***\r\n"));
        assert!(r.contains("Connection: close\r\n\r\n1c\r\n<Password>***</Password>"));
        assert!(!r.contains("hunter2") && !r.contains("0123456789abcdef"));
        assert_eq!(redact_authorization("Basic Zm9vOmJhcg=="), "***");
    }
}
