//! WS-MAN over HTTP as AMT's local endpoint speaks it, sans-IO: HTTP/1.1 framing ([`http`]),
//! Digest authentication ([`digest`]), SOAP envelopes ([`envelope`]), the per-method ReturnValue
//! maps ([`returns`]), and the typed layer on top: [`calls`] (a request and the decoder of its
//! answer) and [`classes`] (the AMT classes activation and maintenance use). No sockets here: the
//! APF client and the simulator's server move the bytes.

pub mod calls;
pub mod classes;
pub mod digest;
pub mod envelope;
pub mod http;
pub mod returns;
