//! HTTP requests (the simulator's server side) through `RequestParser`, fed once whole and once in
//! arbitrary reads, then closed. Input: `[u16 split seed][bytes]`. Both feedings must return the
//! same requests and fail with the same kind of error; small limits make the limit paths
//! reachable.
#![no_main]

mod common;

use std::mem::discriminant;

use amt_agent::wsman::http::{HttpError, Limits, Request, RequestParser};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    max_header_bytes: 2048,
    max_body_bytes: 8192,
};

fn run(pieces: &[&[u8]]) -> (Vec<Request>, Option<HttpError>) {
    let mut p = RequestParser::with_limits(LIMITS);
    let mut out = Vec::new();
    for piece in pieces {
        let mut next = *piece;
        loop {
            match p.feed(next) {
                Ok(Some(r)) => {
                    let _ = (r.header("Authorization"), r.wants_close());
                    out.push(r);
                    // Pipelined bytes stay buffered: ask again with nothing new.
                    next = &[];
                }
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    match p.finish_eof() {
        Ok(r) => {
            out.push(r);
            (out, None)
        }
        Err(e) => (out, Some(e)),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((seed, bytes)) = common::seed_and_rest(data) else {
        return;
    };
    let (whole, whole_err) = run(&[bytes]);
    let (split, split_err) = run(&common::splits(seed, bytes));
    assert_eq!(whole, split, "requests depend on how the bytes were split");
    // The error text may quote a different amount of buffered input; its kind may not differ.
    assert_eq!(
        whole_err.as_ref().map(discriminant),
        split_err.as_ref().map(discriminant),
        "whole: {whole_err:?}, split: {split_err:?}"
    );
    if let Some(e) = whole_err {
        let _ = e.to_string();
    }
});
