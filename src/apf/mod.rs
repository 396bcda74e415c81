//! LME / APF: the port-forwarding protocol the ME speaks on the LME client (transport.md §5).
//!
//! [`codec`] turns one MEI message into a [`Message`] and back. It does no I/O.

pub mod codec;

pub use codec::{
    ChannelOpen, DecodeError, DisconnectReason, GlobalRequest, Message, OpenFailureReason,
    ProtocolVersion, TriggerReason, UserauthMethod,
};
