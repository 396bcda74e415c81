//! Typed calls per AMT class (transport.md §7.3, rps-protocol.md §3 and §5, rpc-go.md §5). Each
//! function returns a [`Call`](super::calls::Call) whose decoder yields the typed answer; a
//! non-zero `ReturnValue` becomes [`WsmanError::ReturnValue`](super::calls::WsmanError) with the
//! firmware's name for it.

pub mod authorization;
pub mod cira;
pub mod ethernet;
pub mod general;
pub mod host_based_setup;
pub mod http_proxy;
pub mod ieee8021x;
pub mod public_key;
pub mod public_key_management;
pub mod redirection;
pub mod setup_and_configuration;
pub mod time_sync;
pub mod tls;
pub mod wifi;

#[cfg(test)]
mod tests;
