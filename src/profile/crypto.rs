//! rpc-go v3's encrypted profile export (rpc-go.md §8.5): AES-256-GCM with a 12-byte nonce, the
//! key string's 32 ASCII bytes as the AES key (not base64-decoded), and the file (or RPS's
//! `content`) is base64 of nonce ‖ ciphertext ‖ 16-byte tag. RPS's HTTP export wraps it as
//! `{"filename": …, "content": …, "key": …}`; that envelope carries its own key.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::Aes256Gcm;
use base64::Engine;

use super::KeySource;
use crate::error::{AgentError, ExitCode};
use crate::secret::Secret;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
pub const KEY_LEN: usize = 32;

/// Whether `text` is an export rather than YAML: one base64 token, or RPS's JSON envelope.
pub fn looks_encrypted(text: &str) -> bool {
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(text) {
        return m.contains_key("content") && m.contains_key("key");
    }
    !text.is_empty()
        && !text.contains(char::is_whitespace)
        && !text.contains(':')
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        && text.len() >= 4 * (NONCE_LEN + TAG_LEN) / 3
}

fn unreadable(msg: impl Into<String>) -> AgentError {
    AgentError::new(ExitCode::FailedReadingConfiguration, msg)
}

/// Decrypts an export with the key from its envelope or `key` (`--key-file`, `--key`,
/// `CONFIG_ENCRYPTION_KEY`).
pub fn decrypt_export(text: &str, key: &KeySource) -> Result<String, AgentError> {
    let (blob, own_key) = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(m)) => (
            m.get("content")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
            m.get("key")
                .and_then(|v| v.as_str())
                .filter(|k| !k.is_empty())
                .map(Secret::new),
        ),
        _ => (text.to_string(), None),
    };
    let k = match key.resolve()? {
        Some(k) => k,
        None => own_key.ok_or_else(|| {
            unreadable("the profile is encrypted (rpc-go v3 export) and no key was given").help(
                "set CONFIG_ENCRYPTION_KEY, or pass --key-file FILE (the 32-character key RPS/Console showed with the export)",
            )
        })?,
    };
    decrypt(&blob, &k)
}

/// Decrypts base64(nonce ‖ ciphertext ‖ tag) with the 32 ASCII bytes of `key`.
pub fn decrypt(blob_b64: &str, key: &Secret) -> Result<String, AgentError> {
    let key = key.expose().trim();
    if key.len() != KEY_LEN {
        return Err(unreadable(format!(
            "the decryption key has {} characters; rpc-go's export key has {KEY_LEN}",
            key.len()
        ))
        .help("give the 32-character key RPS/Console showed with the export"));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(blob_b64.trim())
        .map_err(|e| {
            unreadable(format!("the encrypted profile is not base64: {e}"))
                .help("give the file exactly as RPS/Console exported it")
        })?;
    if raw.len() < NONCE_LEN + TAG_LEN {
        return Err(unreadable(format!(
            "the encrypted profile is {} bytes, shorter than a nonce and a tag",
            raw.len()
        )));
    }
    let cipher = Aes256Gcm::new_from_slice(key.as_bytes())
        .map_err(|_| unreadable("the decryption key is not 32 bytes"))?;
    let (nonce, sealed) = raw.split_at(NONCE_LEN);
    let nonce = aes_gcm::Nonce::try_from(nonce)
        .map_err(|_| unreadable("the encrypted profile's nonce is not 12 bytes"))?;
    let plain = cipher.decrypt(&nonce, sealed).map_err(|_| {
        unreadable("the profile cannot be decrypted with this key (AES-GCM authentication failed)")
            .help("check the key: it is the one RPS/Console showed with this export, and the file must be unchanged")
    })?;
    String::from_utf8(plain).map_err(|_| unreadable("the decrypted profile is not UTF-8 text"))
}

/// Encrypts as rpc-go's export does (for the tests and `make bench`; the committed test vectors
/// come from an independent implementation, tests/fixtures/profiles/README.md).
pub fn encrypt(plain: &str, key: &Secret, nonce: [u8; NONCE_LEN]) -> Result<String, AgentError> {
    let cipher = Aes256Gcm::new_from_slice(key.expose().as_bytes())
        .map_err(|_| unreadable("the encryption key is not 32 bytes"))?;
    let n = aes_gcm::Nonce::try_from(&nonce[..]).map_err(|_| unreadable("bad nonce"))?;
    let sealed = cipher
        .encrypt(&n, plain.as_bytes())
        .map_err(|_| unreadable("AES-GCM encryption failed"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(base64::engine::general_purpose::STANDARD.encode(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdefghijklmnopqrstuv";

    #[test]
    fn a_round_trip_and_a_tampered_blob() {
        let k = Secret::new(KEY);
        let b = encrypt("configuration: {}\n", &k, [7; 12]).unwrap();
        assert!(looks_encrypted(&b));
        assert_eq!(decrypt(&b, &k).unwrap(), "configuration: {}\n");
        let mut raw = base64::engine::general_purpose::STANDARD
            .decode(&b)
            .unwrap();
        raw[14] ^= 1;
        let t = base64::engine::general_purpose::STANDARD.encode(raw);
        let e = decrypt(&t, &k).unwrap_err();
        assert_eq!(e.exit, ExitCode::FailedReadingConfiguration);
        assert!(e.message.contains("authentication failed"), "{}", e.message);
        let e = decrypt(&b, &Secret::new("short")).unwrap_err();
        assert!(e.message.contains("32"), "{}", e.message);
    }

    #[test]
    fn yaml_is_not_taken_for_an_export() {
        assert!(!looks_encrypted("version: 1\ncontrolMode: ccm"));
        assert!(!looks_encrypted("configuration:\n  amtSpecific: {}"));
        assert!(looks_encrypted(
            r#"{"filename":"p.yaml","content":"AAAA","key":"k"}"#
        ));
    }
}
