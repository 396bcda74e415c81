//! Desired-state profiles (`src/profile`): the text of a profile file, in any of its formats (ours,
//! rpc-go v3 YAML/JSON, rpc-go v3's encrypted export or its JSON envelope), through
//! `Document::parse`, `profile check`'s every rule, and the typed profile. Input: file bytes.
//!
//! Checked: nothing panics; every problem's path maps back to a path in the file; and what the
//! checker passes (no error) always types into a `Profile` — the check and the types never
//! disagree, so `plan`/`apply` cannot fail on a profile `profile check` accepted.
#![no_main]

use amt_agent::profile::check::{check, Context, Severity};
use amt_agent::profile::{Document, KeySource};
use amt_agent::secret::Secret;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The key of the committed test vector (tests/fixtures/profiles/v3-ccm.key), so encrypted
    // seeds decrypt and their plaintext is explored too.
    let key = KeySource {
        flag: Some(Secret::new("cvgaavHDnVeDEfZHJRC6ttPerkj5bFHl")),
        file: None,
    };
    let Ok(doc) = Document::parse(text, &key) else {
        return;
    };
    let problems = check(&doc, None, &Context { data_dir: None });
    for p in &problems {
        let _ = doc.origin(&p.path);
        let _ = (&p.message, &p.help);
    }
    if !problems.iter().any(|p| p.severity == Severity::Error) {
        if let Err(e) = doc.profile() {
            panic!("profile check passed a profile that does not type: {e}");
        }
    }
});
