use super::*;
use rand::{Rng, SeedableRng};

/// Intel ACU "Prepare a USB Key for Manual Configuration" output ([ACUBIN]).
const ACU: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/setup-bin/acu-setup-default.bin"
));
/// The same settings saved by MeshCommander's Setup.bin manager, plus 1.3 and 2.10.
const MESHCOMMANDER: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/setup-bin/meshcommander-setup.bin"
));

const POWER_PACKAGE: &str = "46732273-DC23-2F43-A98A-13D37982D855";

fn ids(r: &Record) -> Vec<(u16, u16)> {
    r.variables.iter().map(|v| (v.module, v.id)).collect()
}

fn num(r: &Record, m: u16, i: u16) -> u32 {
    r.get(m, i).and_then(|v| v.value.as_u32()).unwrap()
}

fn secret(r: &Record, m: u16, i: u16) -> String {
    match &r.get(m, i).unwrap().value {
        Value::Secret(s) => s.expose().to_string(),
        other => panic!("{m}.{i} is {other:?}"),
    }
}

#[test]
fn the_acu_file_decodes_to_intels_default_record() {
    let f = SetupBin::parse(ACU).unwrap();
    let h = &f.header;
    assert_eq!(h.file_type, FileType::V4);
    assert_eq!((h.major_version, h.minor_version), (4, 0));
    assert_eq!(h.record_chunk_count, 1);
    assert_eq!(h.record_header_bytes, 46);
    assert!(h.do_not_consume());
    assert_eq!(h.data_record_count, 1);
    assert_eq!(h.data_records_consumed, 0);
    assert_eq!(h.data_record_chunk_count, 1);
    assert_eq!(h.modules, vec![1, 2]);
    assert_eq!(f.records.len(), 1);
    let r = &f.records[0];
    assert_eq!(r.record_type, RecordType::Data);
    assert_eq!(r.flags, RECORD_FLAG_VALID | RECORD_FLAG_SCRAMBLED);
    assert_eq!((r.chunk_count, r.header_bytes, r.number), (1, 24, 1));
    assert_eq!(
        ids(r),
        vec![
            (1, 1),
            (1, 2),
            (1, 6),
            (2, 13),
            (2, 23),
            (2, 25),
            (2, 26),
            (2, 27),
            (2, 29)
        ]
    );
    assert_eq!(secret(r, 1, 1), "admin");
    assert_eq!(secret(r, 1, 2), "HeyH0Password!");
    assert_eq!(r.get(1, 6).unwrap().display_value(), POWER_PACKAGE);
    assert_eq!(r.get(2, 13).unwrap().display_value(), "2 (Enabled)");
    assert_eq!(num(r, 2, 23), 1);
    assert_eq!(r.get(2, 25).unwrap().value, Value::Bool(true));
    assert_eq!(num(r, 2, 26), 0);
    assert_eq!(r.get(2, 27).unwrap().value, Value::Bool(true));
    assert_eq!(r.get(2, 29).unwrap().display_value(), "1 (Manual)");
    assert!(r.tail.iter().all(|&b| b == 0));
    assert_eq!(f.check(), vec![], "the ACU file follows every rule");
}

#[test]
fn the_meshcommander_file_adds_feature_selection_and_redirection() {
    let acu = SetupBin::parse(ACU).unwrap();
    let f = SetupBin::parse(MESHCOMMANDER).unwrap();
    let r = &f.records[0];
    assert_eq!(
        r.get(1, 3).unwrap().display_value(),
        "1 (Intel AMT)",
        "Manageability Feature Selection = Intel AMT"
    );
    assert_eq!(
        r.get(2, 10).unwrap().display_value(),
        "7 (SOL+IDER - User/Pass Enabled)"
    );
    // Everything else is the ACU record.
    let rest: Vec<_> = r
        .variables
        .iter()
        .filter(|v| !matches!((v.module, v.id), (1, 3) | (2, 10)))
        .cloned()
        .collect();
    assert_eq!(rest, acu.records[0].variables);
    // MeshCommander leaves the module list empty while RecordHeaderBytes still counts two modules.
    assert_eq!(f.header.modules, Vec::<u16>::new());
    assert_eq!(f.header.record_header_bytes, 46);
    let issues = f.check();
    assert!(issues.iter().all(|i| !i.fatal), "{issues:?}");
    assert!(issues.iter().any(|i| i.message.contains("ModuleList")));
}

#[test]
fn both_fixtures_re_encode_byte_for_byte() {
    for (name, bytes) in [("acu", ACU), ("meshcommander", MESHCOMMANDER)] {
        let f = SetupBin::parse(bytes).unwrap();
        assert_eq!(f.encode().unwrap(), bytes, "{name}");
    }
}

#[test]
fn scrambling_turns_zero_padding_into_0x11() {
    let f = SetupBin::parse(ACU).unwrap();
    let b = f.encode().unwrap();
    assert_eq!(b[1023], 0x11);
    let mut plain = f.clone();
    plain.records[0].flags = RECORD_FLAG_VALID;
    let p = plain.encode().unwrap();
    assert_eq!(p[1023], 0);
    assert_eq!(&p[544..549], b"admin");
    assert_eq!(
        SetupBin::parse(&p).unwrap().records[0].variables,
        f.records[0].variables
    );
}

fn enrolment() -> RootEnrolment {
    RootEnrolment {
        current_mebx_password: Secret::new("admin"),
        new_mebx_password: Some(Secret::new("N3w-P@ssword")),
        pki_dns_suffix: Some("corp.example.com".into()),
        deactivate_default_hashes: true,
        hash: CertHash {
            algorithm: HashAlgorithm::Sha256,
            hash: (0..32).collect(),
            name: "Example Root".into(),
        },
    }
}

#[test]
fn an_enrolment_file_decodes_to_what_was_asked() {
    let f = enrolment().file();
    let bytes = f.encode().unwrap();
    assert_eq!(bytes.len(), 1024);
    let back = SetupBin::parse(&bytes).unwrap();
    assert_eq!(back, f);
    assert_eq!(back.check(), vec![]);
    let r = &back.records[0];
    assert_eq!(ids(r), vec![(1, 1), (1, 2), (2, 3), (2, 6), (2, 7), (2, 8)]);
    assert_eq!(back.header.modules, vec![1, 2]);
    assert_eq!(back.header.record_header_bytes, 46);
    assert_eq!(
        r.get(2, 3).unwrap().value.as_text(),
        Some("corp.example.com")
    );
    assert_eq!(r.get(2, 6).unwrap().value, Value::Bool(false));
    match &r.get(2, 8).unwrap().value {
        Value::CertHash(c) => {
            assert_eq!(c.algorithm, HashAlgorithm::Sha256);
            assert_eq!(c.hash, (0..32).collect::<Vec<u8>>());
            assert_eq!(c.name, "Example Root");
        }
        v => panic!("{v:?}"),
    }
    // The 2.8 layout of §5.3, as MeshCentral writes it: 02 ‖ hash ‖ len ‖ name.
    let raw = r.get(2, 8).unwrap().value.encode();
    assert_eq!(raw[0], 2);
    assert_eq!(raw[33], 12);
    assert_eq!(&raw[34..], b"Example Root");
}

#[test]
fn passwords_never_show() {
    let f = enrolment().file();
    let r = &f.records[0];
    let text: String = r.variables.iter().map(|v| v.display_value()).collect();
    let json: String = r
        .variables
        .iter()
        .map(|v| v.to_json().to_string())
        .collect();
    let debug = format!("{f:?}");
    for out in [text, json, debug] {
        assert!(!out.contains("admin"), "{out}");
        assert!(!out.contains("N3w-P@ssword"), "{out}");
    }
}

#[test]
fn structural_damage_is_an_error_not_a_panic() {
    assert_eq!(
        SetupBin::parse(&ACU[..100]),
        Err(ParseError::TooShort { len: 100 })
    );
    assert_eq!(
        SetupBin::parse(&ACU[..700]),
        Err(ParseError::NotChunkAligned { len: 700 })
    );
    let mut b = ACU.to_vec();
    b[36] = 2; // two chunks per data record, one present
    assert!(matches!(
        SetupBin::parse(&b),
        Err(ParseError::PartialRecord { .. })
    ));
}

#[test]
fn check_names_what_is_wrong() {
    // An entry claiming more bytes than the record holds.
    let mut b = ACU.to_vec();
    b[512 + 24 + 4] = 0xf0u8.wrapping_add(0x11);
    b[512 + 24 + 5] = 0x01u8.wrapping_add(0x11);
    let f = SetupBin::parse(&b).unwrap();
    assert_eq!(f.encode().unwrap(), b);
    let msg = f.check().iter().find(|i| i.fatal).unwrap().message.clone();
    assert!(
        msg.contains("variable 1.1") && msg.contains("496 bytes"),
        "{msg}"
    );

    // An unknown file type.
    let mut b = ACU.to_vec();
    b[0] ^= 0xff;
    let f = SetupBin::parse(&b).unwrap();
    assert!(f.check()[0].message.contains("unknown FileTypeUUID"));

    // A 2.8 with an unknown algorithm.
    let mut e = enrolment().file();
    let v = e.records[0].variables.last_mut().unwrap();
    let mut raw = v.value.encode();
    raw[0] = 9;
    *v = Variable::new(2, 8, Value::Raw(raw));
    let bytes = e.encode().unwrap();
    let f = SetupBin::parse(&bytes).unwrap();
    let msg = f.check().iter().find(|i| i.fatal).unwrap().message.clone();
    assert!(
        msg.contains("2.8 User Defined Certificate Addition") && msg.contains("algorithm 9"),
        "{msg}"
    );

    // SHA-256 in a v2 file.
    let mut e = enrolment().file();
    e.header.file_type = FileType::V2;
    e.header.major_version = 2;
    let msg = e.check().iter().find(|i| i.fatal).unwrap().message.clone();
    assert!(msg.contains("need file version 3"), "{msg}");
}

#[test]
fn an_unknown_variable_is_kept_and_reported() {
    let mut e = enrolment().file();
    e.records[0]
        .variables
        .push(Variable::new(7, 3, Value::Raw(vec![1, 2, 3])));
    e.header.modules = vec![1, 2, 7];
    e.header.record_header_bytes = 48;
    e.fill_padding();
    let b = e.encode().unwrap();
    let f = SetupBin::parse(&b).unwrap();
    assert_eq!(f, e);
    let issues = f.check();
    assert!(issues.iter().all(|i| !i.fatal), "{issues:?}");
    assert!(issues[0].message.contains("7.3 is not in the catalogue"));
}

/// Random and mutated inputs: parsing never panics, and whatever parses re-encodes exactly.
#[test]
fn any_bytes_parse_or_fail_cleanly_and_round_trip() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5e7b1);
    let seeds = [
        ACU.to_vec(),
        MESHCOMMANDER.to_vec(),
        enrolment().file().encode().unwrap(),
    ];
    for round in 0..4000 {
        let mut b = match round % 4 {
            0 => {
                let n = rng.gen_range(0..2100);
                (0..n).map(|_| rng.gen()).collect::<Vec<u8>>()
            }
            1 => {
                let s = &seeds[rng.gen_range(0..seeds.len())];
                s[..rng.gen_range(0..=s.len())].to_vec()
            }
            _ => {
                let mut s = seeds[rng.gen_range(0..seeds.len())].clone();
                for _ in 0..rng.gen_range(1..12) {
                    let i = rng.gen_range(0..s.len());
                    s[i] = rng.gen();
                }
                s
            }
        };
        if round % 7 == 0 && b.len() >= 512 {
            // Keep a sane header so the record walk sees random bodies.
            b[..40].copy_from_slice(&ACU[..40]);
            b.truncate(b.len() / 512 * 512);
        }
        if let Ok(f) = SetupBin::parse(&b) {
            assert_eq!(f.encode().unwrap(), b, "round {round}");
            for i in f.check() {
                assert!(!i.message.is_empty());
            }
            for r in &f.records {
                for v in &r.variables {
                    let _ = (v.display_value(), v.to_json(), v.label());
                }
            }
        }
    }
}
