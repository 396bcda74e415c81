//! WS-MAN: arbitrary bytes as a SOAP envelope (`Envelope::parse`), then every accessor the client
//! uses on a response, and the generic instance view of the body element.
#![no_main]

use amt_agent::wsman::calls::{element_to_json, element_xml, Instance};
use amt_agent::wsman::envelope::{parse_document, Envelope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let env = match Envelope::parse(data) {
        Ok(env) => env,
        Err(e) => {
            let _ = e.to_string();
            // Anything else well-formed still goes through the generic document parser.
            let _ = parse_document(data);
            return;
        }
    };
    let _ = (env.header(), env.body(), env.action(), env.relates_to());
    let _ = (env.message_id(), env.resource_uri(), env.is_fault());
    if let Some(f) = env.fault() {
        let _ = f.to_string();
    }
    let _ = env.return_value();
    let _ = env.enumeration_context();
    if let Some(items) = env.pull_items() {
        for el in items.items {
            let i = Instance::from_element(el);
            let _ = i.to_json();
        }
    }
    if let Some(el) = env.output().or(env.body_element()) {
        let i = Instance::from_element(el);
        let _ = (i.to_json(), i.to_args());
        let _ = element_to_json(el);
        let xml = element_xml(el);
        let _ = xml.len();
    }
});
