//! setup.bin, the USB provisioning file MEBx reads at POST: a byte-exact, sans-IO codec.
//!
//! Layout from provisioning.md §5: a 512-byte header chunk (§5.1), then data records of
//! `DataRecordChunkCount` × 512 bytes (§5.2) whose bodies hold variable entries (§5.3), optionally
//! scrambled (+0x11 per byte). All integers little-endian.
//!
//! Decoding keeps everything: unknown file types, record types, modules and variables are data
//! (`Unknown(..)`, [`Value::Raw`]); reserved fields and padding are kept too, so `encode(parse(b))`
//! reproduces `b` byte for byte for every input `parse` accepts. [`SetupBin::check`] says what a
//! reader such as MEBx would object to.

use std::fmt;

use crate::amthi::codec::{hex, put_u16, put_u32, Reader};
use crate::amthi::HashAlgorithm;
use crate::secret::Secret;

/// Every header and record is a whole number of these.
pub const CHUNK: usize = 512;
/// Data-record header length (§5.2); the body starts here.
pub const RECORD_HEADER_BYTES: usize = 24;
/// Header flag bit 0: "do not consume records" (the one record is reused on every machine).
pub const HEADER_FLAG_DO_NOT_CONSUME: u16 = 0x0001;
/// Record flag bit 0: the record is valid.
pub const RECORD_FLAG_VALID: u32 = 0x0001;
/// Record flag bit 1: the body is scrambled.
pub const RECORD_FLAG_SCRAMBLED: u32 = 0x0002;
/// Scrambling adds this to every body byte (§5.2).
const SCRAMBLE: u8 = 0x11;

/// Why bytes are not a setup.bin at all. Anything finer (an odd value, a broken entry) is kept
/// as data and reported by [`SetupBin::check`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the file is {len} bytes; a setup.bin is at least one 512-byte header chunk")]
    TooShort { len: usize },
    /// Cannot happen once the length checks pass; kept so no read can panic.
    #[error("{0}")]
    Decode(crate::amthi::DecodeError),
    #[error("the file is {len} bytes, not a whole number of 512-byte chunks")]
    NotChunkAligned { len: usize },
    #[error("the header's {field} is 0; it must count 512-byte chunks")]
    ZeroChunkCount { field: &'static str },
    #[error("the header says its record spans {chunks} chunks, but the file has only {available}")]
    HeaderTruncated { chunks: usize, available: usize },
    #[error(
        "{rest} bytes follow the header, not a whole number of {record_len}-byte data records"
    )]
    PartialRecord { rest: usize, record_len: usize },
}

/// Why a model cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("the header's module list does not fit in its {len}-byte record")]
    HeaderTooLong { len: usize },
    #[error("record {number}: the variables need {need} bytes, the body holds {room}")]
    BodyTooLong {
        number: u32,
        need: usize,
        room: usize,
    },
    #[error("variable {module}.{id}: a value of {len} bytes does not fit a u16 length")]
    ValueTooLong { module: u16, id: u16, len: usize },
}

/// FileTypeUUID: selects the format version (§5.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    V1,
    V2,
    V3,
    V4,
    Unknown([u8; 16]),
}

const UUID_V1: [u8; 16] = [
    0xb5, 0x16, 0xfb, 0x71, 0x87, 0xcb, 0xf9, 0x4a, 0xb4, 0x41, 0xca, 0x7b, 0x38, 0x35, 0x78, 0xf9,
];
const UUID_V2: [u8; 16] = [
    0x96, 0xb2, 0x81, 0x58, 0xcf, 0x6b, 0x72, 0x4c, 0x8b, 0x91, 0xa1, 0x5e, 0x51, 0x2e, 0x99, 0xc4,
];
const UUID_V3: [u8; 16] = [
    0xa7, 0xf7, 0xf6, 0xc6, 0x89, 0xc4, 0xf6, 0x47, 0x93, 0xed, 0xe2, 0xe5, 0x02, 0x0d, 0xa5, 0x1d,
];
const UUID_V4: [u8; 16] = [
    0xaa, 0xa9, 0x34, 0x52, 0xe1, 0x29, 0xa9, 0x44, 0x8d, 0x4d, 0x08, 0x1c, 0x07, 0xb9, 0x63, 0x53,
];

impl FileType {
    pub fn from_bytes(b: [u8; 16]) -> FileType {
        match b {
            UUID_V1 => FileType::V1,
            UUID_V2 => FileType::V2,
            UUID_V3 => FileType::V3,
            UUID_V4 => FileType::V4,
            other => FileType::Unknown(other),
        }
    }

    pub fn bytes(self) -> [u8; 16] {
        match self {
            FileType::V1 => UUID_V1,
            FileType::V2 => UUID_V2,
            FileType::V3 => UUID_V3,
            FileType::V4 => UUID_V4,
            FileType::Unknown(b) => b,
        }
    }

    /// The format version the UUID selects; `None` when unknown.
    pub fn version(self) -> Option<u8> {
        match self {
            FileType::V1 => Some(1),
            FileType::V2 => Some(2),
            FileType::V3 => Some(3),
            FileType::V4 => Some(4),
            FileType::Unknown(_) => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FileType::V1 => "v1",
            FileType::V2 => "v2",
            FileType::V3 => "v3",
            FileType::V4 => "v4",
            FileType::Unknown(_) => "unknown",
        }
    }
}

/// A GUID in its text form, read from Microsoft mixed-endian bytes (first three groups LE).
pub fn guid_text(b: &[u8; 16]) -> String {
    format!(
        "{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{}-{}",
        b[3],
        b[2],
        b[1],
        b[0],
        b[5],
        b[4],
        b[7],
        b[6],
        hex(&b[8..10]).to_uppercase(),
        hex(&b[10..16]).to_uppercase()
    )
}

/// The header record (§5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub file_type: FileType,
    pub record_chunk_count: u16,
    pub record_header_bytes: u16,
    pub record_number: u32,
    pub major_version: u8,
    pub minor_version: u8,
    pub flags: u16,
    pub data_record_count: u32,
    pub data_records_consumed: u32,
    pub data_record_chunk_count: u16,
    pub reserved: u16,
    /// Module ids before the 0 terminator.
    pub modules: Vec<u16>,
    /// The bytes after `modules` to the end of the header record: the u16 0 terminator and zero
    /// padding in a well-formed file. Kept so every file re-encodes exactly.
    pub tail: Vec<u8>,
}

impl Header {
    pub fn do_not_consume(&self) -> bool {
        self.flags & HEADER_FLAG_DO_NOT_CONSUME != 0
    }

    /// RecordHeaderBytes as §5.1 computes it: 40 fixed bytes, the list and its terminator.
    pub fn expected_header_bytes(modules: usize) -> usize {
        40 + 2 * modules + 2
    }
}

/// RecordTypeIdentifier (§5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordType {
    Invalid,
    Data,
    Unknown(u32),
}

impl RecordType {
    pub fn from_u32(v: u32) -> RecordType {
        match v {
            0 => RecordType::Invalid,
            1 => RecordType::Data,
            n => RecordType::Unknown(n),
        }
    }

    pub fn code(self) -> u32 {
        match self {
            RecordType::Invalid => 0,
            RecordType::Data => 1,
            RecordType::Unknown(n) => n,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RecordType::Invalid => "Invalid",
            RecordType::Data => "Data",
            RecordType::Unknown(_) => "Unknown",
        }
    }
}

/// One data record (§5.2). `tail` holds the descrambled body bytes after the last entry: the
/// terminator and zero padding normally, or an entry whose length overruns the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub record_type: RecordType,
    pub flags: u32,
    pub reserved: [u8; 8],
    pub chunk_count: u16,
    pub header_bytes: u16,
    pub number: u32,
    pub variables: Vec<Variable>,
    pub tail: Vec<u8>,
}

impl Record {
    /// A valid, scrambled data record (what Intel's ACU writes) with these variables.
    pub fn data(number: u32, variables: Vec<Variable>) -> Record {
        Record {
            record_type: RecordType::Data,
            flags: RECORD_FLAG_VALID | RECORD_FLAG_SCRAMBLED,
            reserved: [0; 8],
            chunk_count: 1,
            header_bytes: RECORD_HEADER_BYTES as u16,
            number,
            variables,
            tail: Vec::new(),
        }
    }

    pub fn scrambled(&self) -> bool {
        self.flags & RECORD_FLAG_SCRAMBLED != 0
    }

    pub fn valid(&self) -> bool {
        self.flags & RECORD_FLAG_VALID != 0
    }

    pub fn get(&self, module: u16, id: u16) -> Option<&Variable> {
        self.variables
            .iter()
            .find(|v| v.module == module && v.id == id)
    }

    fn parse(rec: &[u8]) -> Result<Record, crate::amthi::DecodeError> {
        let mut r = Reader::new(rec);
        let record_type = RecordType::from_u32(r.u32_le("RecordTypeIdentifier")?);
        let flags = r.u32_le("RecordFlags")?;
        let reserved = r.array::<8>("Reserved")?;
        let chunk_count = r.u16_le("RecordChunkCount")?;
        let header_bytes = r.u16_le("RecordHeaderByteCount")?;
        let number = r.u32_le("RecordNumber")?;
        let mut body = r.rest().to_vec();
        if flags & RECORD_FLAG_SCRAMBLED != 0 {
            for b in &mut body {
                *b = b.wrapping_sub(SCRAMBLE);
            }
        }
        let (variables, end) = parse_entries(&body);
        Ok(Record {
            record_type,
            flags,
            reserved,
            chunk_count,
            header_bytes,
            number,
            variables,
            tail: body[end..].to_vec(),
        })
    }

    /// What stopped the entry walk, when it was not a clean terminator followed by zeros.
    pub fn tail_problem(&self) -> Option<String> {
        let used: usize = self.variables.iter().map(Variable::encoded_len).sum();
        if self.tail.len() >= 8 {
            let m = u16::from_le_bytes([self.tail[0], self.tail[1]]);
            let v = u16::from_le_bytes([self.tail[2], self.tail[3]]);
            let len = u16::from_le_bytes([self.tail[4], self.tail[5]]) as usize;
            if m != 0 && v != 0 {
                return Some(format!(
                    "variable {m}.{v} at body offset {used} declares {len} bytes, but only {} remain in the record",
                    self.tail.len() - 8
                ));
            }
        } else if self.tail.iter().any(|&b| b != 0) {
            return Some(format!(
                "{} stray bytes at the end of the body (offset {used})",
                self.tail.len()
            ));
        }
        if self.tail.iter().any(|&b| b != 0) {
            return Some(format!(
                "non-zero bytes after the end-of-entries marker at body offset {used}"
            ));
        }
        None
    }
}

/// Walks the entries; returns them and the offset where the walk stopped.
fn parse_entries(body: &[u8]) -> (Vec<Variable>, usize) {
    let mut vars = Vec::new();
    let mut pos = 0usize;
    while body.len() - pos >= 8 {
        let e = &body[pos..];
        let module = u16::from_le_bytes([e[0], e[1]]);
        let id = u16::from_le_bytes([e[2], e[3]]);
        if module == 0 || id == 0 {
            break;
        }
        let len = u16::from_le_bytes([e[4], e[5]]) as usize;
        let reserved = u16::from_le_bytes([e[6], e[7]]);
        let padded = len.div_ceil(4) * 4;
        if 8 + padded > e.len() {
            break;
        }
        vars.push(Variable {
            module,
            id,
            reserved,
            value: Value::decode(module, id, &e[8..8 + len]),
            pad: e[8 + len..8 + padded].to_vec(),
        });
        pos += 8 + padded;
    }
    (vars, pos)
}

/// A user-defined root hash (variable 2.8): `HashAlgo u8 | Hash | NameLen u8 | Name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertHash {
    pub algorithm: HashAlgorithm,
    pub hash: Vec<u8>,
    pub name: String,
}

impl CertHash {
    fn decode(b: &[u8]) -> Option<CertHash> {
        let mut r = Reader::new(b);
        let algorithm = HashAlgorithm::from_u8(r.u8("HashAlgo").ok()?);
        let n = match algorithm {
            HashAlgorithm::Sha1 | HashAlgorithm::Sha256 | HashAlgorithm::Sha384 => {
                algorithm.digest_len()?
            }
            _ => return None,
        };
        let hash = r.take(n, "Hash").ok()?.to_vec();
        let name_len = r.u8("NameLen").ok()? as usize;
        let name = std::str::from_utf8(r.take(name_len, "Name").ok()?)
            .ok()?
            .to_string();
        r.expect_end("CertHash").ok()?;
        Some(CertHash {
            algorithm,
            hash,
            name,
        })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.algorithm.code());
        out.extend_from_slice(&self.hash);
        let name = self.name.as_bytes();
        let n = name.len().min(255);
        out.push(n as u8);
        out.extend_from_slice(&name[..n]);
    }
}

/// A variable's value, typed by the catalogue (§5.3). A value that does not fit its catalogue type
/// (wrong length, not text) is [`Value::Raw`], so decoding never loses a byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Text(String),
    /// A password or key: never printed.
    Secret(Secret),
    U8(u8),
    U16(u16),
    U32(u32),
    Bool(bool),
    /// 16 bytes, Microsoft mixed-endian.
    Guid([u8; 16]),
    /// 4 bytes, in file order (MeshCentral writes the last octet first).
    Ipv4([u8; 4]),
    CertHash(CertHash),
    Raw(Vec<u8>),
}

impl Value {
    pub fn decode(module: u16, id: u16, b: &[u8]) -> Value {
        let raw = || Value::Raw(b.to_vec());
        let Some(info) = lookup(module, id) else {
            return raw();
        };
        match info.kind {
            Kind::Text(_) => std::str::from_utf8(b)
                .map(|s| Value::Text(s.to_string()))
                .unwrap_or_else(|_| raw()),
            Kind::Secret(_) => std::str::from_utf8(b)
                .map(|s| Value::Secret(Secret::new(s)))
                .unwrap_or_else(|_| raw()),
            Kind::U8 if b.len() == 1 => Value::U8(b[0]),
            Kind::Bool if b.len() == 1 => match b[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                n => Value::U8(n),
            },
            Kind::U16 if b.len() == 2 => Value::U16(u16::from_le_bytes([b[0], b[1]])),
            Kind::U32 if b.len() == 4 => Value::U32(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Kind::Guid if b.len() == 16 => {
                let mut g = [0u8; 16];
                g.copy_from_slice(b);
                Value::Guid(g)
            }
            Kind::Ipv4 if b.len() == 4 => Value::Ipv4([b[0], b[1], b[2], b[3]]),
            Kind::CertHash => CertHash::decode(b).map(Value::CertHash).unwrap_or_else(raw),
            _ => raw(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Value::Text(s) => s.as_bytes().to_vec(),
            Value::Secret(s) => s.expose().as_bytes().to_vec(),
            Value::U8(n) => vec![*n],
            Value::Bool(b) => vec![u8::from(*b)],
            Value::U16(n) => n.to_le_bytes().to_vec(),
            Value::U32(n) => n.to_le_bytes().to_vec(),
            Value::Guid(g) => g.to_vec(),
            Value::Ipv4(a) => a.to_vec(),
            Value::CertHash(c) => {
                let mut v = Vec::new();
                c.encode(&mut v);
                v
            }
            Value::Raw(b) => b.clone(),
        }
    }

    /// The value as a number, for enumerated and boolean variables.
    pub fn as_u32(&self) -> Option<u32> {
        match self {
            Value::U8(n) => Some(*n as u32),
            Value::Bool(b) => Some(u32::from(*b)),
            Value::U16(n) => Some(*n as u32),
            Value::U32(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// One variable entry: `ModuleId u16 | VariableId u16 | Length u16 | Reserved u16 | Value | pad`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variable {
    pub module: u16,
    pub id: u16,
    pub reserved: u16,
    pub value: Value,
    /// The bytes padding the value to a multiple of 4 (zeros in a well-formed file).
    pub pad: Vec<u8>,
}

impl Variable {
    pub fn new(module: u16, id: u16, value: Value) -> Variable {
        let len = value.encode().len();
        Variable {
            module,
            id,
            reserved: 0,
            value,
            pad: vec![0; len.div_ceil(4) * 4 - len],
        }
    }

    pub fn info(&self) -> Option<&'static VarInfo> {
        lookup(self.module, self.id)
    }

    /// "2.8 User Defined Certificate Addition", or "9.1 (unknown)".
    pub fn label(&self) -> String {
        match self.info() {
            Some(i) => format!("{}.{} {}", self.module, self.id, i.name),
            None => format!("{}.{} (unknown)", self.module, self.id),
        }
    }

    fn encoded_len(&self) -> usize {
        8 + self.value.encode().len() + self.pad.len()
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let v = self.value.encode();
        let len = u16::try_from(v.len()).map_err(|_| EncodeError::ValueTooLong {
            module: self.module,
            id: self.id,
            len: v.len(),
        })?;
        put_u16(out, self.module);
        put_u16(out, self.id);
        put_u16(out, len);
        put_u16(out, self.reserved);
        out.extend_from_slice(&v);
        out.extend_from_slice(&self.pad);
        Ok(())
    }

    /// The value as a person should see it: secrets masked, enumerations named.
    pub fn display_value(&self) -> String {
        let label = |n: u32| {
            self.info()
                .and_then(|i| i.label(n))
                .map(|l| format!("{n} ({l})"))
                .unwrap_or_else(|| n.to_string())
        };
        match &self.value {
            Value::Text(s) => format!("{s:?}"),
            Value::Secret(_) => "***".into(),
            Value::Raw(_)
                if self
                    .info()
                    .is_some_and(|i| matches!(i.kind, Kind::Secret(_))) =>
            {
                "***".into()
            }
            Value::U8(_) | Value::U16(_) | Value::U32(_) | Value::Bool(_) => {
                label(self.value.as_u32().unwrap_or(0))
            }
            Value::Guid(g) => guid_text(g),
            Value::Ipv4(a) => format!("{}.{}.{}.{} (as stored)", a[0], a[1], a[2], a[3]),
            Value::CertHash(c) => {
                format!("{} {} name {:?}", c.algorithm.name(), hex(&c.hash), c.name)
            }
            Value::Raw(b) => format!("raw {} bytes: {}", b.len(), hex(b)),
        }
    }

    /// JSON view with the same masking as [`Variable::display_value`].
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let secret = self
            .info()
            .is_some_and(|i| matches!(i.kind, Kind::Secret(_)));
        let (ty, value) = match &self.value {
            Value::Text(s) => ("string", json!(s)),
            Value::Secret(_) => ("secret", json!("***")),
            Value::Raw(_) if secret => ("secret", json!("***")),
            Value::U8(n) => ("u8", json!(n)),
            Value::U16(n) => ("u16", json!(n)),
            Value::U32(n) => ("u32", json!(n)),
            Value::Bool(b) => ("bool", json!(b)),
            Value::Guid(g) => ("guid", json!(guid_text(g))),
            Value::Ipv4(a) => (
                "ipv4",
                json!(format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])),
            ),
            Value::CertHash(c) => (
                "certHash",
                json!({"algorithm": c.algorithm.name(), "hash": hex(&c.hash), "name": c.name}),
            ),
            Value::Raw(b) => ("raw", json!(hex(b))),
        };
        let mut o = json!({
            "module": self.module,
            "id": self.id,
            "name": self.info().map(|i| i.name),
            "type": ty,
            "value": value,
        });
        if let Some(l) = self
            .value
            .as_u32()
            .and_then(|n| self.info().and_then(|i| i.label(n)))
        {
            o["meaning"] = json!(l);
        }
        o
    }
}

/// A catalogue type (§5.3). The number in `Text`/`Secret` is the longest value allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text(usize),
    Secret(usize),
    U8,
    U16,
    U32,
    Bool,
    Guid,
    Ipv4,
    CertHash,
    Raw,
}

/// One catalogue entry.
#[derive(Debug)]
pub struct VarInfo {
    pub module: u16,
    pub id: u16,
    pub name: &'static str,
    pub kind: Kind,
    labels: &'static [(u32, &'static str)],
}

impl VarInfo {
    pub fn label(&self, v: u32) -> Option<&'static str> {
        self.labels.iter().find(|(n, _)| *n == v).map(|(_, l)| *l)
    }
}

const OFF_ON: &[(u32, &str)] = &[(0, "Off"), (1, "On")];
const DIS_EN: &[(u32, &str)] = &[(0, "Disabled"), (1, "Enabled")];

macro_rules! var {
    ($m:expr, $v:expr, $name:expr, $kind:expr) => {
        VarInfo {
            module: $m,
            id: $v,
            name: $name,
            kind: $kind,
            labels: &[],
        }
    };
    ($m:expr, $v:expr, $name:expr, $kind:expr, $labels:expr) => {
        VarInfo {
            module: $m,
            id: $v,
            name: $name,
            kind: $kind,
            labels: $labels,
        }
    };
}

/// The variable catalogue, provisioning.md §5.3 (names as MeshCentral's Setup.bin code spells them).
pub static CATALOGUE: &[VarInfo] = &[
    var!(1, 1, "Current MEBx Password", Kind::Secret(32)),
    var!(1, 2, "New MEBx Password", Kind::Secret(32)),
    var!(
        1,
        3,
        "Manageability Feature Selection",
        Kind::U8,
        &[(0, "None"), (1, "Intel AMT")]
    ),
    var!(
        1,
        4,
        "Firmware Local Update",
        Kind::U8,
        &[(0, "Disabled"), (1, "Enabled"), (2, "Password Protected")]
    ),
    var!(
        1,
        5,
        "Firmware Update Qualifier",
        Kind::U8,
        &[(0, "Always"), (1, "Never"), (2, "Restricted")]
    ),
    var!(1, 6, "Power Package", Kind::Guid),
    var!(2, 1, "Provisioning Preshared Key ID (PID)", Kind::Text(255)),
    var!(2, 2, "Provisioning Preshared Key (PPS)", Kind::Secret(255)),
    var!(2, 3, "PKI DNS Suffix", Kind::Text(255)),
    var!(2, 4, "Configuration Server FQDN", Kind::Text(255)),
    var!(
        2,
        5,
        "Remote Configuration Enabled (RCFG)",
        Kind::Bool,
        OFF_ON
    ),
    var!(
        2,
        6,
        "Pre-Installed Certificates Enabled",
        Kind::Bool,
        OFF_ON
    ),
    var!(
        2,
        7,
        "User Defined Certificate Configuration",
        Kind::U8,
        &[(0, "Disabled"), (1, "Enabled"), (2, "Delete")]
    ),
    var!(2, 8, "User Defined Certificate Addition", Kind::CertHash),
    var!(
        2,
        10,
        "SOL/IDER Redirection Configuration",
        Kind::U8,
        &[
            (0, "None"),
            (1, "SOL only - User/Pass Disabled"),
            (2, "IDER only - User/Pass Disabled"),
            (3, "SOL+IDER - User/Pass Disabled"),
            (4, "None - User/Pass Enabled"),
            (5, "SOL only - User/Pass Enabled"),
            (6, "IDER only - User/Pass Enabled"),
            (7, "SOL+IDER - User/Pass Enabled"),
        ]
    ),
    var!(2, 11, "Hostname", Kind::Text(63)),
    var!(2, 12, "Domain Name", Kind::Text(255)),
    var!(2, 13, "DHCP", Kind::U8, &[(1, "Disabled"), (2, "Enabled")]),
    var!(2, 14, "Secure Firmware Update (SFWU)", Kind::Bool, DIS_EN),
    var!(2, 15, "ITO", Kind::Raw),
    var!(
        2,
        16,
        "Provisioning Mode (PM)",
        Kind::U8,
        &[(0, "Enterprise"), (1, "Small Business")]
    ),
    var!(2, 17, "Provisioning Server Address", Kind::Ipv4),
    var!(2, 18, "Provisioning Server Port Number (PSPO)", Kind::U16),
    var!(2, 19, "Static IPv4 Parameters", Kind::Raw),
    var!(2, 20, "VLAN", Kind::Raw),
    var!(2, 21, "PASS Policy Flag", Kind::Raw),
    var!(2, 22, "IPv6", Kind::Raw),
    var!(
        2,
        23,
        "Shared/Dedicated FQDN",
        Kind::U8,
        &[(0, "Dedicated"), (1, "Shared")]
    ),
    var!(2, 24, "Dynamic DNS Update", Kind::Bool, DIS_EN),
    var!(2, 25, "Remote Desktop (KVM) State", Kind::Bool, DIS_EN),
    var!(
        2,
        26,
        "Opt-in User Consent Option",
        Kind::U8,
        &[(0, "None"), (1, "KVM"), (255, "All")]
    ),
    var!(2, 27, "Opt-in Remote IT Consent Policy", Kind::Bool, DIS_EN),
    var!(
        2,
        28,
        "ME Provision Halt/Active",
        Kind::U8,
        &[(0, "Stop"), (1, "Start")]
    ),
    var!(
        2,
        29,
        "Manual Setup and Configuration",
        Kind::U8,
        &[(0, "Automated"), (1, "Manual")]
    ),
    var!(2, 30, "Support Channel Identifier", Kind::U32),
    var!(2, 31, "Support Channel Description", Kind::Text(60)),
    var!(2, 32, "Service Account Number", Kind::Text(32)),
    var!(2, 33, "Enrollment Passcode", Kind::Secret(32)),
    var!(
        2,
        34,
        "Service Type",
        Kind::U32,
        &[(1, "Reactive"), (2, "Proactive"), (4, "One Time Session")]
    ),
    var!(2, 35, "Service Provider Identifier", Kind::Guid),
];

pub fn lookup(module: u16, id: u16) -> Option<&'static VarInfo> {
    CATALOGUE.iter().find(|i| i.module == module && i.id == id)
}

/// A whole setup.bin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupBin {
    pub header: Header,
    pub records: Vec<Record>,
}

/// Something [`SetupBin::check`] found. `fatal` ones make a reader refuse the file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Issue {
    pub fatal: bool,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.fatal { "error" } else { "warning" };
        write!(f, "{kind}: {}", self.message)
    }
}

impl SetupBin {
    /// A v4 file with one reusable record (header flag "do not consume"), as Intel's ACU and
    /// MeshCentral write it; the module list is derived from the variables.
    pub fn single_record(variables: Vec<Variable>) -> SetupBin {
        let mut modules: Vec<u16> = variables.iter().map(|v| v.module).collect();
        modules.sort_unstable();
        modules.dedup();
        let mut f = SetupBin {
            header: Header {
                file_type: FileType::V4,
                record_chunk_count: 1,
                record_header_bytes: Header::expected_header_bytes(modules.len()) as u16,
                record_number: 0,
                major_version: 4,
                minor_version: 0,
                flags: HEADER_FLAG_DO_NOT_CONSUME,
                data_record_count: 1,
                data_records_consumed: 0,
                data_record_chunk_count: 1,
                reserved: 0,
                modules,
                tail: Vec::new(),
            },
            records: vec![Record::data(1, variables)],
        };
        f.fill_padding();
        f
    }

    /// Sets the header's and records' tails to the zero terminator and padding an encoder writes,
    /// so a model built in code equals the same file parsed back.
    pub fn fill_padding(&mut self) {
        let h = &mut self.header;
        let header_len = h.record_chunk_count.max(1) as usize * CHUNK;
        h.tail = vec![0; header_len.saturating_sub(40 + 2 * h.modules.len())];
        let room = h.data_record_chunk_count.max(1) as usize * CHUNK - RECORD_HEADER_BYTES;
        for r in &mut self.records {
            let used: usize = r.variables.iter().map(Variable::encoded_len).sum();
            r.tail = vec![0; room.saturating_sub(used)];
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<SetupBin, ParseError> {
        if bytes.len() < CHUNK {
            return Err(ParseError::TooShort { len: bytes.len() });
        }
        if bytes.len() % CHUNK != 0 {
            return Err(ParseError::NotChunkAligned { len: bytes.len() });
        }
        let fixed = ParseError::Decode;
        let mut r = Reader::new(&bytes[..CHUNK]);
        let file_type = FileType::from_bytes(r.array::<16>("FileTypeUUID").map_err(fixed)?);
        let record_chunk_count = r.u16_le("RecordChunkCount").map_err(fixed)?;
        let record_header_bytes = r.u16_le("RecordHeaderBytes").map_err(fixed)?;
        let record_number = r.u32_le("RecordNumber").map_err(fixed)?;
        let major_version = r.u8("MajorVersion").map_err(fixed)?;
        let minor_version = r.u8("MinorVersion").map_err(fixed)?;
        let flags = r.u16_le("Flags").map_err(fixed)?;
        let data_record_count = r.u32_le("DataRecordCount").map_err(fixed)?;
        let data_records_consumed = r.u32_le("DataRecordsConsumed").map_err(fixed)?;
        let data_record_chunk_count = r.u16_le("DataRecordChunkCount").map_err(fixed)?;
        let reserved = r.u16_le("Reserved").map_err(fixed)?;

        if record_chunk_count == 0 {
            return Err(ParseError::ZeroChunkCount {
                field: "RecordChunkCount",
            });
        }
        let header_len = record_chunk_count as usize * CHUNK;
        if header_len > bytes.len() {
            return Err(ParseError::HeaderTruncated {
                chunks: record_chunk_count as usize,
                available: bytes.len() / CHUNK,
            });
        }
        let mut pos = 40;
        let mut modules = Vec::new();
        while pos + 2 <= header_len {
            let m = u16::from_le_bytes([bytes[pos], bytes[pos + 1]]);
            if m == 0 {
                break;
            }
            modules.push(m);
            pos += 2;
        }
        let header = Header {
            file_type,
            record_chunk_count,
            record_header_bytes,
            record_number,
            major_version,
            minor_version,
            flags,
            data_record_count,
            data_records_consumed,
            data_record_chunk_count,
            reserved,
            modules,
            tail: bytes[pos..header_len].to_vec(),
        };

        let rest = &bytes[header_len..];
        let mut records = Vec::new();
        if !rest.is_empty() {
            if data_record_chunk_count == 0 {
                return Err(ParseError::ZeroChunkCount {
                    field: "DataRecordChunkCount",
                });
            }
            let record_len = data_record_chunk_count as usize * CHUNK;
            if rest.len() % record_len != 0 {
                return Err(ParseError::PartialRecord {
                    rest: rest.len(),
                    record_len,
                });
            }
            for rec in rest.chunks(record_len) {
                // A record is at least 512 bytes, so its 24-byte header is always there.
                records.push(Record::parse(rec).map_err(fixed)?);
            }
        }
        Ok(SetupBin { header, records })
    }

    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let h = &self.header;
        let header_len = (h.record_chunk_count.max(1) as usize) * CHUNK;
        let mut out = Vec::with_capacity(header_len + self.records.len() * CHUNK);
        out.extend_from_slice(&h.file_type.bytes());
        put_u16(&mut out, h.record_chunk_count);
        put_u16(&mut out, h.record_header_bytes);
        put_u32(&mut out, h.record_number);
        out.push(h.major_version);
        out.push(h.minor_version);
        put_u16(&mut out, h.flags);
        put_u32(&mut out, h.data_record_count);
        put_u32(&mut out, h.data_records_consumed);
        put_u16(&mut out, h.data_record_chunk_count);
        put_u16(&mut out, h.reserved);
        for m in &h.modules {
            put_u16(&mut out, *m);
        }
        out.extend_from_slice(&h.tail);
        if out.len() > header_len {
            return Err(EncodeError::HeaderTooLong { len: header_len });
        }
        out.resize(header_len, 0);

        let record_len = (h.data_record_chunk_count.max(1) as usize) * CHUNK;
        let room = record_len - RECORD_HEADER_BYTES;
        for rec in &self.records {
            put_u32(&mut out, rec.record_type.code());
            put_u32(&mut out, rec.flags);
            out.extend_from_slice(&rec.reserved);
            put_u16(&mut out, rec.chunk_count);
            put_u16(&mut out, rec.header_bytes);
            put_u32(&mut out, rec.number);
            let mut body = Vec::with_capacity(room);
            for v in &rec.variables {
                v.encode(&mut body)?;
            }
            body.extend_from_slice(&rec.tail);
            if body.len() > room {
                return Err(EncodeError::BodyTooLong {
                    number: rec.number,
                    need: body.len(),
                    room,
                });
            }
            body.resize(room, 0);
            if rec.scrambled() {
                for b in &mut body {
                    *b = b.wrapping_add(SCRAMBLE);
                }
            }
            out.extend_from_slice(&body);
        }
        Ok(out)
    }

    /// The record a BIOS would use next: the first for a reusable file, else the one
    /// `DataRecordsConsumed` points at.
    pub fn next_record(&self) -> Option<&Record> {
        if self.header.do_not_consume() {
            self.records.first()
        } else {
            self.records.get(self.header.data_records_consumed as usize)
        }
    }

    /// Every rule of §5 this file breaks. Fatal: a reader cannot use the file as written.
    /// Warnings: departures that known readers tolerate (or that are UNCONFIRMED either way).
    pub fn check(&self) -> Vec<Issue> {
        let mut out = Vec::new();
        let mut fatal = |m: String| {
            out.push(Issue {
                fatal: true,
                message: m,
            })
        };
        let h = &self.header;
        if let FileType::Unknown(b) = h.file_type {
            fatal(format!(
                "unknown FileTypeUUID {} (not a setup.bin v1–v4)",
                hex(&b)
            ));
        }
        if h.record_number != 0 {
            fatal(format!(
                "the header's RecordNumber is {}, must be 0",
                h.record_number
            ));
        }
        if h.data_record_count as usize != self.records.len() {
            fatal(format!(
                "the header announces {} data records, the file holds {}",
                h.data_record_count,
                self.records.len()
            ));
        }
        if self.records.is_empty() {
            fatal("the file holds no data record".into());
        }
        if !h.do_not_consume() && h.data_records_consumed as usize >= self.records.len() {
            fatal(format!(
                "all {} data records are consumed (DataRecordsConsumed {})",
                self.records.len(),
                h.data_records_consumed
            ));
        }
        let version = h.file_type.version().unwrap_or(h.major_version);
        for (i, rec) in self.records.iter().enumerate() {
            let n = i + 1;
            if let RecordType::Unknown(t) = rec.record_type {
                fatal(format!("record {n}: unknown RecordTypeIdentifier {t}"));
            }
            if let Some(p) = rec.tail_problem() {
                fatal(format!("record {n}: {p}"));
            }
            for v in &rec.variables {
                if let Some(p) = value_problem(v, version) {
                    fatal(format!("record {n}: {}: {p}", v.label()));
                }
            }
            for p in order_problems(&rec.variables) {
                fatal(format!("record {n}: {p}"));
            }
        }

        let mut warn = |m: String| {
            out.push(Issue {
                fatal: false,
                message: m,
            })
        };
        if let Some(v) = h.file_type.version() {
            if v != h.major_version {
                warn(format!(
                    "the FileTypeUUID says v{v} but MajorVersion is {}",
                    h.major_version
                ));
            }
        }
        let mut used: Vec<u16> = self
            .records
            .iter()
            .flat_map(|r| r.variables.iter().map(|v| v.module))
            .collect();
        used.sort_unstable();
        used.dedup();
        let mut listed = h.modules.clone();
        listed.sort_unstable();
        if listed != used {
            warn(format!(
                "the header's ModuleList is {:?}, the records use modules {:?}",
                h.modules, used
            ));
        }
        if h.record_header_bytes as usize != Header::expected_header_bytes(h.modules.len()) {
            warn(format!(
                "RecordHeaderBytes is {}, but a list of {} modules makes {}",
                h.record_header_bytes,
                h.modules.len(),
                Header::expected_header_bytes(h.modules.len())
            ));
        }
        if h.tail.iter().any(|&b| b != 0) {
            warn("non-zero bytes after the header's module list".into());
        }
        for (i, rec) in self.records.iter().enumerate() {
            let n = i + 1;
            if rec.record_type == RecordType::Invalid || !rec.valid() {
                warn(format!("record {n} is marked invalid"));
            }
            if rec.number as usize != n {
                warn(format!("record {n} carries RecordNumber {}", rec.number));
            }
            if rec.header_bytes as usize != RECORD_HEADER_BYTES {
                warn(format!(
                    "record {n}: RecordHeaderByteCount {}, expected 24",
                    rec.header_bytes
                ));
            }
            if rec.chunk_count != h.data_record_chunk_count {
                warn(format!(
                    "record {n}: RecordChunkCount {} differs from the header's {}",
                    rec.chunk_count, h.data_record_chunk_count
                ));
            }
            for v in &rec.variables {
                if v.info().is_none() {
                    warn(format!(
                        "record {n}: variable {}.{} is not in the catalogue; kept as raw bytes",
                        v.module, v.id
                    ));
                }
                if v.reserved != 0 || v.pad.iter().any(|&b| b != 0) {
                    warn(format!(
                        "record {n}: {}: non-zero reserved or padding bytes",
                        v.label()
                    ));
                }
            }
        }
        out
    }
}

/// A value that does not fit its catalogue type or limits.
fn value_problem(v: &Variable, version: u8) -> Option<String> {
    let info = v.info()?;
    let len = v.value.encode().len();
    match (info.kind, &v.value) {
        (Kind::Raw, _) => None,
        (Kind::Text(max) | Kind::Secret(max), Value::Text(_) | Value::Secret(_)) if len > max => {
            Some(format!("{len} bytes, at most {max} allowed"))
        }
        (Kind::Text(_) | Kind::Secret(_), Value::Raw(_)) => Some("not ASCII text".into()),
        (Kind::CertHash, Value::CertHash(c)) => {
            if c.name.len() > 32 || !c.name.is_ascii() {
                Some(format!(
                    "the friendly name must be ASCII of at most 32 bytes, found {} bytes",
                    c.name.len()
                ))
            } else if c.algorithm != HashAlgorithm::Sha1 && version < 3 {
                Some(format!(
                    "{} hashes need file version 3 or later, this file is version {version}",
                    c.algorithm.name()
                ))
            } else {
                None
            }
        }
        (Kind::CertHash, Value::Raw(b)) => Some(format!(
            "malformed: expected HashAlgo (1 SHA-1, 2 SHA-256, 3 SHA-384), the hash, NameLen and the name; found {} bytes{}",
            b.len(),
            b.first().map(|a| format!(" starting with algorithm {a}")).unwrap_or_default()
        )),
        (kind, Value::Raw(b)) => {
            let want = match kind {
                Kind::U8 | Kind::Bool => 1,
                Kind::U16 => 2,
                Kind::U32 | Kind::Ipv4 => 4,
                Kind::Guid => 16,
                _ => return None,
            };
            Some(format!("expected {want} bytes, found {}", b.len()))
        }
        _ => None,
    }
}

/// The ordering rules of §5.3: 1.1 first, 1.2 right after 1.1, 1.3 before any module-2 variable,
/// 2.28 after 2.3, 2.4 and 2.17.
fn order_problems(vars: &[Variable]) -> Vec<String> {
    let pos = |m: u16, i: u16| vars.iter().position(|v| v.module == m && v.id == i);
    let mut out = Vec::new();
    if let Some(p) = pos(1, 1) {
        if p != 0 {
            out.push(format!(
                "1.1 Current MEBx Password must be the first variable, it is number {}",
                p + 1
            ));
        }
    }
    match (pos(1, 1), pos(1, 2)) {
        (Some(a), Some(b)) if b != a + 1 => {
            out.push("1.2 New MEBx Password must directly follow 1.1".into())
        }
        (None, Some(_)) => {
            out.push("1.2 New MEBx Password without 1.1 Current MEBx Password".into())
        }
        _ => {}
    }
    if let (Some(p3), Some(first2)) = (pos(1, 3), vars.iter().position(|v| v.module == 2)) {
        if p3 > first2 {
            out.push(
                "1.3 Manageability Feature Selection must come before any module-2 variable".into(),
            );
        }
    }
    if let Some(p28) = pos(2, 28) {
        for id in [3, 4, 17] {
            if pos(2, id).is_some_and(|p| p > p28) {
                out.push(format!(
                    "2.28 ME Provision Halt/Active must come after 2.{id}"
                ));
            }
        }
    }
    out
}

/// MEBx password rule (SetMEBxPassword docs; enforcement on the USB path is UNCONFIRMED):
/// 8–32 ASCII characters with an upper-case letter, a lower-case letter, a digit and a symbol.
pub fn mebx_password_problem(p: &str) -> Option<&'static str> {
    if !(8..=32).contains(&p.len()) {
        return Some("it must be 8 to 32 characters long");
    }
    if !p.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Some("it must be printable ASCII");
    }
    let has = |f: fn(&u8) -> bool| p.as_bytes().iter().any(f);
    if !(has(u8::is_ascii_uppercase)
        && has(u8::is_ascii_lowercase)
        && has(u8::is_ascii_digit)
        && has(|b| b.is_ascii_punctuation() || *b == b' '))
    {
        return Some("it needs an upper-case letter, a lower-case letter, a digit and a symbol");
    }
    None
}

/// What `amt-agent setup-bin create` asks for: enrol one root hash (§5.3 2.8).
pub struct RootEnrolment {
    pub current_mebx_password: Secret,
    pub new_mebx_password: Option<Secret>,
    pub pki_dns_suffix: Option<String>,
    pub deactivate_default_hashes: bool,
    pub hash: CertHash,
}

impl RootEnrolment {
    /// The variables in (module, variable) order, which satisfies every ordering rule of §5.3:
    /// 1.1, 1.2, 2.3, 2.6 = 0 (when deactivating), 2.7 = 1 (Enabled; v2 readers require it before
    /// 2.8), 2.8.
    pub fn variables(&self) -> Vec<Variable> {
        let mut v = vec![Variable::new(
            1,
            1,
            Value::Secret(self.current_mebx_password.clone()),
        )];
        if let Some(p) = &self.new_mebx_password {
            v.push(Variable::new(1, 2, Value::Secret(p.clone())));
        }
        if let Some(s) = &self.pki_dns_suffix {
            v.push(Variable::new(2, 3, Value::Text(s.clone())));
        }
        if self.deactivate_default_hashes {
            v.push(Variable::new(2, 6, Value::Bool(false)));
        }
        v.push(Variable::new(2, 7, Value::U8(1)));
        v.push(Variable::new(2, 8, Value::CertHash(self.hash.clone())));
        v
    }

    pub fn file(&self) -> SetupBin {
        SetupBin::single_record(self.variables())
    }
}

#[cfg(test)]
#[path = "setupbin_tests.rs"]
mod tests;
