//! HTTP Digest: `WWW-Authenticate` challenges (what the agent receives from AMT) and
//! `Authorization` headers (what the simulator receives). Input: `[mode][header value]`.
//! An accepted challenge must yield an Authorization that the server side parses and verifies.
#![no_main]

use amt_agent::secret::Secret;
use amt_agent::wsman::digest::{self, AuthorizationStyle, Challenge, DigestClient};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // Header values reach these parsers as the HTTP parser's lossy UTF-8.
    let value = String::from_utf8_lossy(rest);
    match mode % 3 {
        0 => {
            let Ok(ch) = Challenge::parse(&value) else {
                return;
            };
            let password = Secret::new("P@ssw0rd".to_string());
            let style = if mode & 0x80 != 0 {
                AuthorizationStyle::Rps
            } else {
                AuthorizationStyle::GoWsman
            };
            let mut client = DigestClient::new("admin", password.clone()).with_style(style);
            client.set_challenge(ch.clone());
            let auth = client
                .authorization_with_cnonce("POST", "/wsman", "0a1b2c")
                .expect("a challenge was set");
            let creds = digest::parse_authorization(&auth)
                .unwrap_or_else(|e| panic!("own Authorization {auth:?} does not parse: {e}"));
            assert_eq!(creds.realm, ch.realm);
            assert_eq!(creds.nonce, ch.nonce);
            assert_eq!(creds.opaque, ch.opaque);
            assert!(
                digest::verify_response(&creds, "POST", &password),
                "own Authorization {auth:?} does not verify"
            );
        }
        1 => {
            if let Ok(c) = digest::parse_authorization(&value) {
                let _ = c.nc_value();
                let _ = digest::verify_response(&c, "POST", &Secret::new("x".to_string()));
                let _ = digest::verify_response_ha1(&c, "POST", "00112233445566778899aabbccddeeff");
            }
        }
        _ => {
            let _ = digest::parse_params(&value);
        }
    }
});
