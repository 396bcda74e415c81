//! LME / APF: the port-forwarding protocol the ME speaks on the LME client (transport.md §5).
//!
//! [`codec`] turns one MEI message into a [`Message`] and back; [`mux`] is the sans-IO channel
//! multiplexer both the agent (host role) and the simulator (firmware role) drive. Neither does I/O.
//! [`driver`] runs a host-role `Mux` over a real LME connection and hands out tokio streams.

pub mod codec;
pub mod driver;
pub mod mux;

#[cfg(test)]
mod tests;

pub use codec::{
    ChannelOpen, DecodeError, DisconnectReason, GlobalRequest, Message, OpenFailureReason,
    ProtocolVersion, TriggerReason, UserauthMethod,
};
pub use driver::{ApfError, ApfOptions, ApfSession, ApfStream};
pub use mux::{
    ChannelId, ChannelState, Config, Event, Forward, Mux, MuxError, OpenParams, PortPair, Role,
};
