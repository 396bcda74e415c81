//! setup.bin (the USB provisioning file): `SetupBin::parse`, then everything `setup-bin show`
//! prints, `check`, and the simulator's MEBx (`sim::usb_setup::consume`). Input: file bytes.
//!
//! Checked: whatever parses re-encodes byte for byte and parses back to the same model; the same
//! model with its padding rewritten (what an encoder writes) also encodes and parses back equal;
//! MEBx either refuses the file and leaves the device untouched, or the file it writes back (one
//! record consumed) encodes and parses back equal.
#![no_main]

use amt_agent::provisioning::setupbin::{guid_text, SetupBin};
use amt_agent::sim::profile::{builtin, DEFAULT_PROFILE};
use amt_agent::sim::usb_setup::consume;
use libfuzzer_sys::fuzz_target;

fn show(f: &SetupBin) {
    let h = &f.header;
    let _ = (
        h.file_type.name(),
        h.file_type.version(),
        guid_text(&h.file_type.bytes()),
        h.do_not_consume(),
    );
    for i in f.check() {
        let _ = i.to_string();
    }
    let _ = f.next_record();
    for r in &f.records {
        let _ = (
            r.record_type.name(),
            r.valid(),
            r.scrambled(),
            r.tail_problem(),
        );
        for v in &r.variables {
            let _ = (v.label(), v.display_value(), v.to_json().to_string());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let f = match SetupBin::parse(data) {
        Ok(f) => f,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let bytes = f
        .encode()
        .unwrap_or_else(|e| panic!("a parsed file does not encode: {e}"));
    assert!(bytes == data, "encode(parse(b)) != b");
    assert_eq!(SetupBin::parse(&bytes).as_ref(), Ok(&f));
    show(&f);

    // The model as an encoder would write it: zero terminators and padding.
    let mut padded = f.clone();
    padded.fill_padding();
    if let Ok(b) = padded.encode() {
        assert_eq!(
            SetupBin::parse(&b),
            Ok(padded),
            "padded model does not round-trip"
        );
    }

    // The simulator's MEBx at POST (amt-sim --usb-setup).
    let mut device = builtin(DEFAULT_PROFILE).expect("default profile");
    let before = device.clone();
    match consume(&mut device, &f) {
        Err(e) => {
            let _ = e.len();
            assert!(device == before, "a refused file changed the device");
        }
        Ok(c) => {
            if let Some(u) = c.updated_file {
                let b = u
                    .encode()
                    .unwrap_or_else(|e| panic!("the consumed file does not encode: {e}"));
                assert_eq!(SetupBin::parse(&b), Ok(u));
            }
        }
    }
});
