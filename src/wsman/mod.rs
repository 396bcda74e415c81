//! WS-MAN over HTTP as AMT's local endpoint speaks it, sans-IO: HTTP/1.1 framing ([`http`]),
//! Digest authentication ([`digest`]), SOAP envelopes ([`envelope`]) and the per-method
//! ReturnValue maps ([`returns`]). No sockets here: the APF client and the simulator's server move
//! the bytes.

pub mod digest;
pub mod envelope;
pub mod http;
pub mod returns;
