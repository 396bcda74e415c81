//! The few DER structures the TLS code writes by hand: a PKCS#8 `PrivateKeyInfo` around a PKCS#1
//! RSA or a SEC1 EC private key (ring reads PKCS#8 only), and a `SubjectPublicKeyInfo` around a
//! PKCS#1 RSA public key (AMT's `DERKey`). Reading goes through `x509_parser::der_parser`.

use x509_parser::der_parser::ber::BerObjectContent;
use x509_parser::der_parser::der::parse_der;

fn push_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
}

/// One DER tag-length-value.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    push_len(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

pub const SEQUENCE: u8 = 0x30;
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;

/// AlgorithmIdentifier `rsaEncryption` (1.2.840.113549.1.1.1), NULL parameters.
pub const RSA_ENCRYPTION: &[u8] = &[
    0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01, 0x05, 0x00,
];

/// AlgorithmIdentifier `sha256WithRSAEncryption` (1.2.840.113549.1.1.11), NULL parameters.
pub const SHA256_WITH_RSA: &[u8] = &[
    0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B, 0x05, 0x00,
];

/// OID `id-ecPublicKey` (1.2.840.10045.2.1), as a complete TLV.
const EC_PUBLIC_KEY_OID: &[u8] = &[0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];

/// PKCS#1 `RSAPrivateKey` → PKCS#8 `PrivateKeyInfo`.
pub fn pkcs8_from_pkcs1(pkcs1: &[u8]) -> Vec<u8> {
    let mut inner = tlv(INTEGER, &[0]);
    inner.extend_from_slice(RSA_ENCRYPTION);
    inner.extend(tlv(OCTET_STRING, pkcs1));
    tlv(SEQUENCE, &inner)
}

/// SEC1 `ECPrivateKey` (with its `[0] parameters`, as OpenSSL writes it) → PKCS#8. `None` when
/// the key names no curve.
pub fn pkcs8_from_sec1(sec1: &[u8]) -> Option<Vec<u8>> {
    let (_, key) = parse_der(sec1).ok()?;
    let fields = key.as_sequence().ok()?;
    // ECPrivateKey ::= SEQUENCE { version, privateKey, [0] parameters OPTIONAL, [1] publicKey }
    let curve = fields.iter().find_map(|f| {
        if f.header.raw_tag() != Some(&[0xA0]) {
            return None;
        }
        match &f.content {
            BerObjectContent::Unknown(any) => Some(any.data.to_vec()),
            _ => f.as_slice().ok().map(<[u8]>::to_vec),
        }
    })?;
    let mut alg = EC_PUBLIC_KEY_OID.to_vec();
    alg.extend_from_slice(&curve);
    let mut inner = tlv(INTEGER, &[0]);
    inner.extend(tlv(SEQUENCE, &alg));
    inner.extend(tlv(OCTET_STRING, sec1));
    Some(tlv(SEQUENCE, &inner))
}

/// PKCS#1 `RSAPublicKey` → `SubjectPublicKeyInfo`.
pub fn spki_from_rsa_public(pkcs1: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(pkcs1);
    let mut inner = RSA_ENCRYPTION.to_vec();
    inner.extend(tlv(BIT_STRING, &bits));
    tlv(SEQUENCE, &inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_take_the_long_form_from_128_bytes() {
        assert_eq!(tlv(OCTET_STRING, &[0; 3])[..2], [0x04, 3]);
        assert_eq!(tlv(OCTET_STRING, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(OCTET_STRING, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2C]);
    }

    #[test]
    fn a_sec1_key_with_its_curve_becomes_a_pkcs8_rcgen_reads() {
        // ring's PKCS#8 holds a SEC1 key without `[0] parameters`; OpenSSL's `EC PRIVATE KEY`
        // has them. Insert prime256v1 after the private key, as OpenSSL writes it.
        let k = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let pkcs8 = k.serialize_der();
        let (_, info) = parse_der(&pkcs8).unwrap();
        let bare = info.as_sequence().unwrap()[2].as_slice().unwrap().to_vec();
        assert_eq!(bare[0], SEQUENCE);
        assert!(bare[1] < 0x80, "a short-form length");
        // version (3 bytes) and privateKey (2 + 32) follow the 2-byte header.
        let (head, tail) = bare[2..].split_at(3 + 34);
        let mut fields = head.to_vec();
        fields.extend_from_slice(&[
            0xA0, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07,
        ]);
        fields.extend_from_slice(tail);
        let sec1 = tlv(SEQUENCE, &fields);
        let again = pkcs8_from_sec1(&sec1).expect("the SEC1 key names its curve");
        let k2 = rcgen::KeyPair::try_from(again.as_slice()).unwrap();
        assert_eq!(k2.public_key_raw(), k.public_key_raw());
        assert!(pkcs8_from_sec1(&bare).is_none(), "no curve, no PKCS#8");
    }
}
