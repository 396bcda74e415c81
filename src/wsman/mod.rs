//! WS-MAN over HTTP as AMT's local endpoint speaks it, sans-IO: HTTP/1.1 framing ([`http`]),
//! Digest authentication ([`digest`]), SOAP envelopes ([`envelope`]) and the per-method
//! ReturnValue maps ([`returns`]), all sans-IO; and on top of them the route to AMT
//! ([`transport`]: LMS or APF over LME) and the Digest-authenticating client ([`client`]), with
//! trace-log redaction ([`redact`]).

pub mod client;
pub mod digest;
pub mod envelope;
pub mod http;
pub mod redact;
pub mod returns;
pub mod transport;
