//! The simulator socket's frames (`[kind][u32 LE length][payload]`) through `FrameReader`, the
//! bytes arriving in arbitrary reads. However the bytes are split, the frames (and the first
//! error) must be the same; every frame must re-encode to the bytes it came from.
#![no_main]

mod common;

use amt_agent::heci::simsock::{encode_frame, FrameReader};
use libfuzzer_sys::fuzz_target;

fn read_all(pieces: &[&[u8]]) -> (Vec<(u8, Vec<u8>)>, Option<String>) {
    let mut r = FrameReader::default();
    let mut frames = Vec::new();
    for p in pieces {
        r.feed(p);
        loop {
            match r.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((seed, bytes)) = common::seed_and_rest(data) else {
        return;
    };
    let whole = read_all(&[bytes]);
    let split = read_all(&common::splits(seed, bytes));
    assert_eq!(whole, split, "frames depend on how the bytes were split");
    let mut consumed = 0;
    for (kind, payload) in &whole.0 {
        let f = encode_frame(*kind, payload);
        assert_eq!(&bytes[consumed..consumed + f.len()], &f[..]);
        consumed += f.len();
    }
});
