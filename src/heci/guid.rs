//! ME client GUIDs (reference: transport.md §3.1).
//!
//! On the wire (Linux `uuid_le`, Windows GUID memory order) Data1, Data2 and Data3 are little-endian
//! and the last eight bytes are as written.

use std::fmt;

/// A GUID kept in its 16-byte wire form.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// Builds a GUID from its canonical text fields.
    pub const fn from_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }

    pub fn wire(&self) -> &[u8; 16] {
        &self.0
    }

    /// The client's conventional name, when it is one we know.
    pub fn client_name(&self) -> Option<&'static str> {
        KNOWN.iter().find(|(g, _)| g == self).map(|(_, n)| *n)
    }

    /// Parses the canonical `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX` form.
    pub fn parse(s: &str) -> Option<Guid> {
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        if hex.len() != 32 || s.len() != 36 {
            return None;
        }
        let b = |i: usize| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).ok();
        let mut raw = [0u8; 16];
        for (i, r) in raw.iter_mut().enumerate() {
            *r = b(i)?;
        }
        let d1 = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let d2 = u16::from_be_bytes([raw[4], raw[5]]);
        let d3 = u16::from_be_bytes([raw[6], raw[7]]);
        let mut d4 = [0u8; 8];
        d4.copy_from_slice(&raw[8..]);
        Some(Guid::from_fields(d1, d2, d3, d4))
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.0;
        write!(
            f,
            "{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-",
            g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9]
        )?;
        for b in &g[10..] {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.client_name() {
            Some(n) => write!(f, "{n}({self})"),
            None => write!(f, "{self}"),
        }
    }
}

/// AMT Host Interface (PTHI): 12F80028-B4B7-4B2D-ACA8-46E0FF65814C.
pub const AMTHI: Guid = Guid::from_fields(
    0x12F80028,
    0xB4B7,
    0x4B2D,
    [0xAC, 0xA8, 0x46, 0xE0, 0xFF, 0x65, 0x81, 0x4C],
);
/// Local Manageability Engine (APF): 6733A4DB-0476-4E7B-B3AF-BCFC29BEE7A7.
pub const LME: Guid = Guid::from_fields(
    0x6733A4DB,
    0x0476,
    0x4E7B,
    [0xB3, 0xAF, 0xBC, 0xFC, 0x29, 0xBE, 0xE7, 0xA7],
);
/// Watchdog / state-independence client: 05B79A6F-4628-4D7F-899D-A91514CB32AB.
pub const WATCHDOG: Guid = Guid::from_fields(
    0x05B79A6F,
    0x4628,
    0x4D7F,
    [0x89, 0x9D, 0xA9, 0x15, 0x14, 0xCB, 0x32, 0xAB],
);
/// MKHI dynamic client: 8E6A6715-9ABC-4043-88EF-9E39C6F63E0F.
pub const MKHI: Guid = Guid::from_fields(
    0x8E6A6715,
    0x9ABC,
    0x4043,
    [0x88, 0xEF, 0x9E, 0x39, 0xC6, 0xF6, 0x3E, 0x0F],
);
/// HOTHAM (CSME flash log): 082EE5A7-7C25-470A-9643-0C06F0466EA1.
pub const HOTHAM: Guid = Guid::from_fields(
    0x082EE5A7,
    0x7C25,
    0x470A,
    [0x96, 0x43, 0x0C, 0x06, 0xF0, 0x46, 0x6E, 0xA1],
);
/// UPID (unique platform id): 92136C79-5FEA-4CFD-980E-23BE07FA5E9F.
pub const UPID: Guid = Guid::from_fields(
    0x92136C79,
    0x5FEA,
    0x4CFD,
    [0x98, 0x0E, 0x23, 0xBE, 0x07, 0xFA, 0x5E, 0x9F],
);

const KNOWN: &[(Guid, &str)] = &[
    (AMTHI, "AMTHI"),
    (LME, "LME"),
    (WATCHDOG, "WATCHDOG"),
    (MKHI, "MKHI"),
    (HOTHAM, "HOTHAM"),
    (UPID, "UPID"),
];

/// Looks a client up by its conventional name (`amthi`, `lme`, …), case-insensitively.
pub fn by_name(name: &str) -> Option<Guid> {
    KNOWN
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map(|(g, _)| *g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_bytes_match_the_reference_table() {
        assert_eq!(
            AMTHI.0,
            [
                0x28, 0x00, 0xf8, 0x12, 0xb7, 0xb4, 0x2d, 0x4b, 0xac, 0xa8, 0x46, 0xe0, 0xff, 0x65,
                0x81, 0x4c
            ]
        );
        assert_eq!(
            LME.0,
            [
                0xdb, 0xa4, 0x33, 0x67, 0x76, 0x04, 0x7b, 0x4e, 0xb3, 0xaf, 0xbc, 0xfc, 0x29, 0xbe,
                0xe7, 0xa7
            ]
        );
        assert_eq!(
            WATCHDOG.0,
            [
                0x6f, 0x9a, 0xb7, 0x05, 0x28, 0x46, 0x7f, 0x4d, 0x89, 0x9d, 0xa9, 0x15, 0x14, 0xcb,
                0x32, 0xab
            ]
        );
        assert_eq!(
            MKHI.0,
            [
                0x15, 0x67, 0x6a, 0x8e, 0xbc, 0x9a, 0x43, 0x40, 0x88, 0xef, 0x9e, 0x39, 0xc6, 0xf6,
                0x3e, 0x0f
            ]
        );
    }

    #[test]
    fn text_form_round_trips() {
        assert_eq!(AMTHI.to_string(), "12F80028-B4B7-4B2D-ACA8-46E0FF65814C");
        assert_eq!(
            Guid::parse("6733A4DB-0476-4E7B-B3AF-BCFC29BEE7A7"),
            Some(LME)
        );
        assert_eq!(Guid::parse("not-a-guid"), None);
    }
}
