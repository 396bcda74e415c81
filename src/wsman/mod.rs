//! WS-MAN over HTTP as AMT's local endpoint speaks it, sans-IO: HTTP/1.1 framing ([`http`]),
//! Digest authentication ([`digest`]), SOAP envelopes ([`envelope`]), the per-method ReturnValue
//! maps ([`returns`]), and the typed layer on top: [`calls`] (a request and the decoder of its
//! answer) and [`classes`] (the AMT classes activation and maintenance use), all sans-IO; and on
//! top of them the route to AMT ([`transport`]: LMS or APF over LME) and the Digest-authenticating
//! client ([`client`]), with trace-log redaction ([`redact`]); TLS to port 16993 over either route
//! ([`tls_stream`]).

pub mod calls;
pub mod classes;
pub mod client;
pub mod digest;
pub mod envelope;
pub mod http;
pub mod redact;
pub mod returns;
pub mod tls_stream;
pub mod transport;
