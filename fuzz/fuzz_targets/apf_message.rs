//! APF: one MEI message through `Message::decode`. Whatever decodes must encode back to bytes that
//! decode to the same message.
#![no_main]

use amt_agent::apf::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Message::decode(data) {
        Ok(m) => {
            let _ = (m.kind(), m.name(), format!("{m:?}"));
            let again = Message::decode(&m.encode());
            assert_eq!(again.as_ref(), Ok(&m), "re-encoding changed the message");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
